//! Leases: this host renews those of the attempts it runs, reports the ones it could not renew
//! in time, passes on the cancellations it reads, and any host queues again the jobs whose
//! leases expired.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use deadpool_postgres::Pool;
use tokio::sync::Notify;

use switchyard_plugin_api::CancelReason;

use super::{
    CHANNEL,
    connect::{Tls, connect, pool_error},
};
use crate::journal::{JobId, JournalError, LostLease, cancel_reason};

/// What the background tasks share with the journal.
pub(super) struct Shared {
    /// Attempts this journal started and has not seen end: their leases are renewed.
    pub(super) held: Mutex<HashMap<JobId, Lease>>,
    /// This journal's name in the NOTIFYs it sends, so that it skips its own.
    pub(super) instance: String,
    /// The lowest job id that may have been queued by others since the workers last looked.
    pub(super) changed_from: Mutex<Option<i64>>,
    pub(super) changed: Notify,
    pub(super) lease: Duration,
    /// Cancellations of this host's attempts read while renewing their leases, not yet taken.
    pub(super) cancels: Mutex<Vec<(JobId, CancelReason)>>,
    pub(super) cancels_found: Notify,
    /// Attempts whose leases this host could not renew in time, not yet taken.
    pub(super) lost: Mutex<Vec<LostLease>>,
    pub(super) lost_found: Notify,
    /// Renew (and so read cancellations) now rather than at the next tick.
    pub(super) renew_now: Notify,
}

/// A lease this host holds, as its renewal sees it.
pub(super) struct Lease {
    pub(super) attempt: u32,
    /// When the statement that last set it (the start, or a renewal) was sent: the lease lasts
    /// at least until then plus the lease period, by the database's clock.
    pub(super) renewed: Instant,
    /// Whether a cancellation asked of it was passed on already: it is passed on once.
    pub(super) cancel_told: bool,
}

/// Every `interval`, and at once when a cancellation is asked: renews the leases of this host's
/// running attempts, on a connection of its own (a pool saturated by other work must not cost a
/// lease), and passes on the cancellations asked of them. An attempt whose lease was not
/// renewed within half the lease period is lost: it is reported (see
/// [`Queue::leases_lost`]) and renewed no more.
pub(super) async fn renew_leases(
    config: tokio_postgres::Config,
    tls: Tls,
    shared: Arc<Shared>,
    interval: Duration,
) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut connection: Option<tokio_postgres::Client> = None;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shared.renew_now.notified() => {}
        }
        let (ids, attempts): (Vec<i64>, Vec<i32>) = shared
            .held
            .lock()
            .unwrap()
            .iter()
            .map(|(job, lease)| (job.0, lease.attempt as i32))
            .unzip();
        if ids.is_empty() {
            continue;
        }
        let sent = Instant::now();
        // A statement that hangs (a half-open connection) is given up well before the lease.
        let renewal = async {
            let client = match connection.take() {
                Some(client) if !client.is_closed() => client,
                _ => connect(&config, &tls).await?,
            };
            let renewed = renew(&client, &ids, &attempts, shared.lease).await;
            if renewed.is_ok() {
                connection = Some(client);
            }
            renewed
        };
        match tokio::time::timeout(interval * 2, renewal).await {
            Ok(Ok(renewed)) => shared.renewed(sent, &ids, &attempts, renewed),
            Ok(Err(error)) => {
                tracing::warn!(
                    error = error.to_string(),
                    "cannot renew the leases of running jobs; trying again"
                );
            }
            Err(_) => tracing::warn!("renewing the leases of running jobs timed out; reconnecting"),
        }
        shared.give_up_stale_leases();
    }
}

impl Shared {
    /// Jobs from id `from` on may be new to this host: wakes the workers to read from there.
    pub(super) fn changed_from(&self, from: i64) {
        let mut lowest = self.changed_from.lock().unwrap();
        *lowest = Some(lowest.map_or(from, |lowest| lowest.min(from)));
        drop(lowest);
        self.changed.notify_one();
    }

    /// Marks the leases `renewed` returned (with the cancellations asked of them) as renewed at
    /// `sent`. One of this host's attempts the renewal did not find is not running as that
    /// attempt any more: ended meanwhile (it is forgotten), or queued again by another host.
    fn renewed(
        &self,
        sent: Instant,
        ids: &[i64],
        attempts: &[i32],
        renewed: Vec<(JobId, Option<CancelReason>)>,
    ) {
        let mut held = self.held.lock().unwrap();
        let mut cancels = Vec::new();
        let mut found = std::collections::HashSet::new();
        for (job, cancel) in renewed {
            found.insert(job);
            let Some(lease) = held.get_mut(&job) else {
                continue;
            };
            lease.renewed = sent;
            if let Some(reason) = cancel.filter(|_| !lease.cancel_told) {
                lease.cancel_told = true;
                cancels.push((job, reason));
            }
        }
        let mut lost = Vec::new();
        for (&id, &attempt) in ids.iter().zip(attempts) {
            let job = JobId(id);
            let asked = held
                .get(&job)
                .is_some_and(|lease| lease.attempt as i32 == attempt);
            if asked && !found.contains(&job) {
                held.remove(&job);
                lost.push(LostLease {
                    job,
                    attempt: attempt as u32,
                    until: Instant::now(),
                });
            }
        }
        drop(held);
        if !cancels.is_empty() {
            self.cancels.lock().unwrap().extend(cancels);
            self.cancels_found.notify_one();
        }
        self.report_lost(lost);
    }

    /// Gives up the leases not renewed for half the lease period: the attempt has the other
    /// half to stop before another host may take the job.
    fn give_up_stale_leases(&self) {
        let mut lost = Vec::new();
        self.held.lock().unwrap().retain(|job, lease| {
            if lease.renewed.elapsed() < self.lease / 2 {
                return true;
            }
            lost.push(LostLease {
                job: *job,
                attempt: lease.attempt,
                until: lease.renewed + self.lease,
            });
            false
        });
        self.report_lost(lost);
    }

    fn report_lost(&self, lost: Vec<LostLease>) {
        if lost.is_empty() {
            return;
        }
        for lease in &lost {
            tracing::error!(job = %lease.job, attempt = lease.attempt, "lost the lease of a running job; stopping it before another host takes it");
        }
        self.lost.lock().unwrap().extend(lost);
        self.lost_found.notify_one();
    }
}

/// Renews the leases of this host's attempts `ids`, and returns those it renewed, each with the
/// cancellation asked of it.
async fn renew(
    client: &tokio_postgres::Client,
    ids: &[i64],
    attempts: &[i32],
    lease: Duration,
) -> Result<Vec<(JobId, Option<CancelReason>)>, JournalError> {
    let rows = client
        .query(
            "UPDATE jobs SET lease_until = now() + make_interval(secs => $3)
             FROM unnest($1::bigint[], $2::integer[]) AS mine (id, attempt)
             WHERE jobs.id = mine.id AND jobs.attempts = mine.attempt AND jobs.state = 'running'
             RETURNING jobs.id, jobs.cancel_reason",
            &[&ids, &attempts, &lease.as_secs_f64()],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|row| (JobId(row.get(0)), cancel_reason(row.get(1))))
        .collect())
}

/// Every `interval`: queues again the jobs whose leases expired (on any host), and wakes the
/// workers (the polling fallback).
pub(super) async fn rescue_expired(pool: Pool, shared: Arc<Shared>, interval: Duration) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match rescue(&pool).await {
            Ok(0) => {}
            Ok(rescued) => {
                tracing::warn!(
                    jobs = rescued,
                    "queued again jobs whose host stopped renewing their leases"
                );
            }
            Err(error) => {
                tracing::warn!(error = error.to_string(), "cannot look for expired leases")
            }
        }
        shared.changed_from(0);
    }
}

/// Queues again the jobs whose leases expired and frees their locks, keeping their attempts
/// counted. Several hosts may do this at once: each takes the rows the others do not lock.
pub(super) async fn rescue(pool: &Pool) -> Result<u64, JournalError> {
    let client = pool.get().await.map_err(pool_error)?;
    let statement = client
        .prepare_cached(
            "WITH expired AS (
                 SELECT id FROM jobs WHERE state = 'running' AND lease_until < now()
                 FOR UPDATE SKIP LOCKED
             ), freed AS (
                 DELETE FROM locks WHERE job IN (SELECT id FROM expired)
             ), requeued AS (
                 UPDATE jobs SET state = 'queued', lease_until = NULL
                 FROM expired WHERE jobs.id = expired.id RETURNING jobs.id
             )
             SELECT count(*), pg_notify($1, '') FROM requeued HAVING count(*) > 0",
        )
        .await?;
    let rows = client.query(&statement, &[&CHANNEL]).await?;
    Ok(rows.first().map_or(0, |row| row.get::<_, i64>(0) as u64))
}
