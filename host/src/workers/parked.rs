//! Jobs waiting in memory for a worker keep their delivery's payload LZ4-compressed. GitHub's
//! JSON shrinks about four times, so the memory window (`memory_queue_mib`) holds four times
//! the jobs before any has to be left to the journal and read back from it, which costs more
//! than compressing and decompressing here (a read-back decompresses as well).

use std::sync::Arc;

use bytes::Bytes;

use crate::{
    event::Delivery,
    journal::{JobId, LinkSalt, PendingJob},
};

/// A job waiting in memory.
pub(super) struct Parked {
    pub id: JobId,
    plugin: String,
    attempts: u32,
    interruptions: u32,
    /// The delivery, its payload compressed (shared by the jobs of one delivery) unless it
    /// was read back from the journal, which has just decompressed it.
    delivery: Arc<Delivery>,
    compressed: bool,
    link_salt: LinkSalt,
}

impl Parked {
    /// Parks the jobs of one delivery, compressing its payload once.
    pub fn all(jobs: Vec<PendingJob>) -> Vec<Self> {
        let Some(first) = jobs.first() else {
            return Vec::new();
        };
        let delivery = Arc::new(Delivery {
            payload: Bytes::from(lz4_flex::compress_prepend_size(&first.delivery.payload)),
            ..(*first.delivery).clone()
        });
        jobs.into_iter()
            .map(|job| Self {
                id: job.id,
                plugin: job.plugin,
                attempts: job.attempts,
                interruptions: job.interruptions,
                delivery: Arc::clone(&delivery),
                compressed: true,
                link_salt: job.link_salt,
            })
            .collect()
    }

    /// Parks a job as it is: read back from the journal, or due for a retry.
    pub fn plain(job: PendingJob) -> Self {
        Self {
            id: job.id,
            plugin: job.plugin,
            attempts: job.attempts,
            interruptions: job.interruptions,
            delivery: job.delivery,
            compressed: false,
            link_salt: job.link_salt,
        }
    }

    /// Payload bytes this job holds (counted for each of a delivery's jobs, to be safe).
    pub fn bytes(&self) -> usize {
        self.delivery.payload.len()
    }

    /// The job, its payload as it was. Each job of a delivery decompresses its own copy: they
    /// are taken apart, by different workers.
    pub fn take(self) -> PendingJob {
        let delivery = if self.compressed {
            let payload = lz4_flex::decompress_size_prepended(&self.delivery.payload)
                .expect("a payload compressed here decompresses");
            Arc::new(Delivery {
                payload: Bytes::from(payload),
                ..(*self.delivery).clone()
            })
        } else {
            self.delivery
        };
        PendingJob {
            id: self.id,
            plugin: self.plugin,
            attempts: self.attempts,
            interruptions: self.interruptions,
            delivery,
            link_salt: self.link_salt,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{DeliveryId, EventKind, PayloadFacts};

    #[test]
    fn parked_jobs_hold_a_smaller_payload_and_give_back_the_same_one() {
        let payload = Bytes::from(
            serde_json::to_vec(&serde_json::json!({
                "action": "opened",
                "pull_request": {"body": "a description that repeats ".repeat(200)},
            }))
            .unwrap(),
        );
        let delivery = Arc::new(Delivery {
            id: DeliveryId::parse("d-1").unwrap(),
            kind: EventKind::parse("pull_request").unwrap(),
            facts: PayloadFacts::default(),
            payload: payload.clone(),
            received_at: "2026-12-06T00:00:00Z".into(),
            headers: Vec::new(),
        });
        let jobs = ["ci", "event-log"].map(|plugin| PendingJob {
            id: JobId(if plugin == "ci" { 1 } else { 2 }),
            plugin: plugin.into(),
            attempts: 0,
            interruptions: 0,
            delivery: Arc::clone(&delivery),
            link_salt: LinkSalt(Some([1; LinkSalt::BYTES])),
        });
        let parked = Parked::all(jobs.to_vec());
        assert_eq!(parked.len(), 2);
        assert!(
            parked[0].bytes() * 4 < payload.len(),
            "{}",
            parked[0].bytes()
        );
        for (parked, plugin) in parked.into_iter().zip(["ci", "event-log"]) {
            let job = parked.take();
            assert_eq!(job.plugin, plugin);
            assert_eq!(job.delivery.payload, payload);
            assert_eq!(job.delivery.id.as_str(), "d-1");
        }
    }
}
