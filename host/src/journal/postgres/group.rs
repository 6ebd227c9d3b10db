//! The statements batches run (see `batch.rs`): many deliveries stored with their jobs in one
//! transaction, many queued jobs claimed in one statement, many attempts ended in one.
//!
//! Rows are written in the order of their keys, so two hosts storing overlapping batches wait
//! for each other in one order and cannot deadlock; a deadlock PostgreSQL reports anyway is
//! run again. A batch that fails for one request's data (a NUL in a text column, say) is run
//! again one request at a time, so one bad delivery fails alone.

use std::{collections::HashMap, sync::Arc, time::Duration};

use deadpool_postgres::Pool;

use super::{CHANNEL, batch::all_failed, connect::pool_error};
use crate::event::{Delivery, now_rfc3339};
use crate::journal::{
    Appended, EndedColumns, JobId, JournalError, LinkSalt, PendingJob, Place, Started,
    cancel_reason, unix_millis,
};

/// How often a batch PostgreSQL broke off as a deadlock runs again before it fails.
const DEADLOCK_RETRIES: usize = 3;

/// A delivery to store with the jobs of `plugins` (never a re-run: those go one at a time).
pub(super) struct ToStore {
    pub(super) delivery: Arc<Delivery>,
    pub(super) plugins: Vec<String>,
}

/// A queued job to start as its attempt after `attempts`.
pub(super) struct ToStart {
    pub(super) job: JobId,
    pub(super) attempts: u32,
}

/// What a start found.
pub(super) enum Claim {
    Started(Started),
    /// Queued and due, but its row was locked (a cancel or a supersede at that moment): worth
    /// asking again shortly.
    Busy,
    /// Not startable as that attempt: started elsewhere, ended, cancelled, or not due.
    Gone,
}

/// An attempt to end.
pub(super) struct ToEnd {
    pub(super) job: JobId,
    pub(super) attempt: u32,
    pub(super) columns: EndedColumns,
}

/// Runs `run` on the whole batch; a deadlock runs it again, and an error of the data (not of
/// the connection) runs each request alone so that only its own fails.
async fn resilient<'a, Request, Answer, Run, Ran>(
    batch: &'a [Request],
    run: Run,
) -> Vec<Result<Answer, JournalError>>
where
    Run: Fn(&'a [Request]) -> Ran,
    Ran: std::future::Future<Output = Result<Vec<Answer>, JournalError>>,
{
    let mut result = run(batch).await;
    for _ in 0..DEADLOCK_RETRIES {
        match &result {
            Err(JournalError::Postgres(message)) if message.starts_with("40P01") => {
                result = run(batch).await;
            }
            _ => break,
        }
    }
    match result {
        Ok(answers) => answers.into_iter().map(Ok).collect(),
        Err(error @ JournalError::Postgres(_)) if batch.len() > 1 => {
            tracing::debug!(
                error = error.to_string(),
                requests = batch.len(),
                "a batched journal write failed; writing its requests one at a time"
            );
            let mut answers = Vec::with_capacity(batch.len());
            for one in batch.chunks(1) {
                answers.push(match run(one).await {
                    Ok(mut answer) => answer.pop().ok_or(JournalError::Unavailable),
                    Err(error) => Err(error),
                });
            }
            answers
        }
        Err(error) => all_failed(batch.len(), error),
    }
}

/// Most payload bytes one transaction stores: a batch of large deliveries is split, so one
/// message to the server stays small whatever arrives together.
const STORE_BYTES: usize = 8 << 20;

/// Stores a batch of deliveries and their jobs in one transaction (or, past [`STORE_BYTES`],
/// a few), and tells the other hosts (as `instance`) of the jobs in the same commit.
pub(super) async fn store(
    pool: &Pool,
    instance: &str,
    batch: Vec<ToStore>,
) -> Vec<Result<Appended, JournalError>> {
    let mut answers = Vec::with_capacity(batch.len());
    let mut rest = &batch[..];
    while !rest.is_empty() {
        let mut bytes = 0;
        let size = rest
            .iter()
            .take_while(|request| {
                bytes += request.delivery.payload.len();
                bytes <= STORE_BYTES
            })
            .count()
            .max(1);
        let (chunk, after) = rest.split_at(size);
        answers.extend(resilient(chunk, |chunk| store_once(pool, instance, chunk)).await);
        rest = after;
    }
    answers
}

async fn store_once(
    pool: &Pool,
    instance: &str,
    batch: &[ToStore],
) -> Result<Vec<Appended>, JournalError> {
    // The first of an id in the batch is stored; a later one is a duplicate of it.
    let mut first_of: HashMap<&str, usize> = HashMap::new();
    for (n, request) in batch.iter().enumerate() {
        first_of.entry(request.delivery.id.as_str()).or_insert(n);
    }
    let mut order: Vec<usize> = first_of.values().copied().collect();
    order.sort_by_key(|&n| batch[n].delivery.id.as_str());

    let mut columns = DeliveryColumns::default();
    for &n in &order {
        columns.push(&batch[n].delivery);
    }
    let mut client = pool.get().await.map_err(pool_error)?;
    let tx = client.transaction().await?;
    let insert = tx
        .prepare_cached(
            "INSERT INTO deliveries (id, event, action, repository, received_at, payload, sender,
                                     headers, pull_request, head_sha, git_ref)
             SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                                  $6::bytea[], $7::text[], $8::text[], $9::bigint[], $10::text[],
                                  $11::text[])
             ON CONFLICT (id) DO NOTHING RETURNING id, seq",
        )
        .await?;
    // A host storing one of these ids at once holds its row: this waits for that commit, then
    // finds it there (a duplicate).
    let rows = tx.query(&insert, &columns.params()).await?;
    let seqs: HashMap<String, i64> = rows.iter().map(|row| (row.get(0), row.get(1))).collect();

    // Each repository's newest delivery says whether it is private.
    let mut newest: HashMap<&str, (bool, i64)> = HashMap::new();
    for &n in &order {
        let delivery = &batch[n].delivery;
        let (Some(repository), Some(private), Some(&seq)) = (
            &delivery.facts.repository,
            delivery.facts.private,
            seqs.get(delivery.id.as_str()),
        ) else {
            continue;
        };
        let entry = newest.entry(repository).or_insert((private, seq));
        if seq > entry.1 {
            *entry = (private, seq);
        }
    }
    if !newest.is_empty() {
        let mut newest: Vec<_> = newest.into_iter().collect();
        newest.sort_unstable_by_key(|(name, _)| *name);
        let names: Vec<&str> = newest.iter().map(|(name, _)| *name).collect();
        let private: Vec<bool> = newest.iter().map(|(_, (private, _))| *private).collect();
        let seq: Vec<i64> = newest.iter().map(|(_, (_, seq))| *seq).collect();
        let upsert = tx
            .prepare_cached(
                "INSERT INTO repositories (name, private, seq)
                 SELECT * FROM unnest($1::text[], $2::bool[], $3::bigint[])
                 ON CONFLICT (name) DO UPDATE SET private = excluded.private, seq = excluded.seq
                 WHERE excluded.seq > repositories.seq",
            )
            .await?;
        tx.execute(&upsert, &[&names, &private, &seq]).await?;
    }

    // The jobs of the deliveries that were new.
    let mut job_delivery = Vec::new();
    let mut job_plugin: Vec<&str> = Vec::new();
    let mut job_created: Vec<&str> = Vec::new();
    for &n in &order {
        let request = &batch[n];
        if let Some(&seq) = seqs.get(request.delivery.id.as_str()) {
            for plugin in &request.plugins {
                job_delivery.push(seq);
                job_plugin.push(plugin);
                job_created.push(&request.delivery.received_at);
            }
        }
    }
    let mut jobs: HashMap<i64, Vec<PendingJob>> = HashMap::new();
    if !job_delivery.is_empty() {
        let salts: Vec<Option<Vec<u8>>> = LinkSalt::fresh(job_delivery.len())?
            .iter()
            .map(|salt| salt.stored().map(<[u8]>::to_vec))
            .collect();
        let insert_jobs = tx
            .prepare_cached(
                "INSERT INTO jobs (delivery, plugin, state, created_at, link_salt)
                 SELECT delivery, plugin, 'queued', created_at, salt
                 FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bytea[])
                      WITH ORDINALITY AS j (delivery, plugin, created_at, salt, n)
                 ORDER BY n
                 RETURNING id, delivery, plugin, link_salt",
            )
            .await?;
        let rows = tx
            .query(
                &insert_jobs,
                &[&job_delivery, &job_plugin, &job_created, &salts],
            )
            .await?;
        let delivery_of: HashMap<i64, &Arc<Delivery>> = order
            .iter()
            .filter_map(|&n| {
                let delivery = &batch[n].delivery;
                seqs.get(delivery.id.as_str()).map(|&seq| (seq, delivery))
            })
            .collect();
        let mut lowest = i64::MAX;
        for row in rows {
            let id: i64 = row.get(0);
            let seq: i64 = row.get(1);
            lowest = lowest.min(id);
            jobs.entry(seq).or_default().push(PendingJob {
                id: JobId(id),
                plugin: row.get(2),
                attempts: 0,
                interruptions: 0,
                delivery: Arc::clone(delivery_of[&seq]),
                link_salt: LinkSalt::from_stored(row.get(3)),
            });
        }
        // Delivered to the listeners only if this commits; other hosts read from `lowest`.
        let notice = format!("{instance} {lowest}");
        tx.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &notice])
            .await?;
    }
    tx.commit().await?;

    Ok(batch
        .iter()
        .enumerate()
        .map(|(n, request)| {
            let id = request.delivery.id.as_str();
            match seqs.get(id) {
                Some(seq) if first_of[id] == n => {
                    let mut new = jobs.remove(seq).unwrap_or_default();
                    new.sort_by_key(|job| job.id);
                    Appended::New(new)
                }
                _ => Appended::Duplicate,
            }
        })
        .collect())
}

/// A batch's deliveries as one array per column, in the order they are inserted.
#[derive(Default)]
struct DeliveryColumns {
    id: Vec<String>,
    event: Vec<String>,
    action: Vec<Option<String>>,
    repository: Vec<Option<String>>,
    received_at: Vec<String>,
    payload: Vec<Vec<u8>>,
    sender: Vec<Option<String>>,
    headers: Vec<Option<String>>,
    pull_request: Vec<Option<i64>>,
    head_sha: Vec<Option<String>>,
    git_ref: Vec<Option<String>>,
}

impl DeliveryColumns {
    fn push(&mut self, delivery: &Delivery) {
        let place = Place::of(&delivery.payload);
        self.id.push(delivery.id.as_str().to_owned());
        self.event.push(delivery.kind.as_str().to_owned());
        self.action.push(delivery.facts.action.clone());
        self.repository.push(delivery.facts.repository.clone());
        self.received_at.push(delivery.received_at.clone());
        self.payload
            .push(lz4_flex::compress_prepend_size(&delivery.payload));
        self.sender.push(delivery.facts.sender.clone());
        self.headers.push(
            (!delivery.headers.is_empty())
                .then(|| serde_json::to_string(&delivery.headers).unwrap_or_default()),
        );
        self.pull_request.push(place.pull_request);
        self.head_sha.push(place.head_sha);
        self.git_ref.push(place.git_ref);
    }

    fn params(&self) -> [&(dyn tokio_postgres::types::ToSql + Sync); 11] {
        [
            &self.id,
            &self.event,
            &self.action,
            &self.repository,
            &self.received_at,
            &self.payload,
            &self.sender,
            &self.headers,
            &self.pull_request,
            &self.head_sha,
            &self.git_ref,
        ]
    }
}

/// Claims a batch of queued jobs in one statement, each for its own attempt, with a lease in
/// the database's clock.
pub(super) async fn claim(
    pool: &Pool,
    lease: Duration,
    batch: Vec<ToStart>,
) -> Vec<Result<Claim, JournalError>> {
    resilient(&batch, |batch| claim_once(pool, lease, batch)).await
}

async fn claim_once(
    pool: &Pool,
    lease: Duration,
    batch: &[ToStart],
) -> Result<Vec<Claim>, JournalError> {
    let ids: Vec<i64> = batch.iter().map(|start| start.job.0).collect();
    let attempts: Vec<i32> = batch.iter().map(|start| start.attempts as i32).collect();
    let now = unix_millis() as i64;
    let client = pool.get().await.map_err(pool_error)?;
    let claim = client
        .prepare_cached(
            "WITH wanted AS (
                 SELECT * FROM unnest($1::bigint[], $2::int[]) AS w (id, attempts)
             ), claimed AS (
                 SELECT jobs.id FROM jobs JOIN wanted USING (id)
                 WHERE jobs.state = 'queued' AND jobs.attempts = wanted.attempts
                   AND (jobs.not_before IS NULL OR jobs.not_before <= $3)
                 ORDER BY jobs.id
                 FOR UPDATE OF jobs SKIP LOCKED
             )
             UPDATE jobs SET state = 'running', attempts = jobs.attempts + 1, started_at = $4,
                    lease_until = now() + make_interval(secs => $5)
             FROM claimed WHERE jobs.id = claimed.id
             RETURNING jobs.id, jobs.attempts, jobs.cancel_reason",
        )
        .await?;
    let rows = client
        .query(
            &claim,
            &[&ids, &attempts, &now, &now_rfc3339(), &lease.as_secs_f64()],
        )
        .await?;
    let mut started: HashMap<i64, Started> = rows
        .iter()
        .map(|row| {
            let started = Started {
                number: row.get::<_, i32>(1) as u32,
                cancel: cancel_reason(row.get(2)),
            };
            (row.get(0), started)
        })
        .collect();
    // Those not claimed: still queued and due means their rows were locked at that moment.
    let mut busy = std::collections::HashSet::new();
    if started.len() < batch.len() {
        let (missed, missed_attempts): (Vec<i64>, Vec<i32>) = batch
            .iter()
            .filter(|start| !started.contains_key(&start.job.0))
            .map(|start| (start.job.0, start.attempts as i32))
            .unzip();
        let rows = client
            .query(
                "SELECT jobs.id FROM jobs
                 JOIN unnest($1::bigint[], $2::int[]) AS w (id, attempts) USING (id)
                 WHERE jobs.state = 'queued' AND jobs.attempts = w.attempts
                   AND (jobs.not_before IS NULL OR jobs.not_before <= $3)",
                &[&missed, &missed_attempts, &now],
            )
            .await?;
        busy.extend(rows.iter().map(|row| row.get::<_, i64>(0)));
    }
    Ok(batch
        .iter()
        .map(|start| match started.remove(&start.job.0) {
            Some(started) => Claim::Started(started),
            None if busy.contains(&start.job.0) => Claim::Busy,
            None => Claim::Gone,
        })
        .collect())
}

/// Ends a batch of attempts in one statement, each fenced by its attempt number, and frees the
/// locks their jobs held. An attempt no longer running as that number is answered
/// [`JournalError::NotRunning`].
pub(super) async fn end(pool: &Pool, batch: Vec<ToEnd>) -> Vec<Result<(), JournalError>> {
    let answers = resilient(&batch, |batch| end_once(pool, batch)).await;
    answers
        .into_iter()
        .map(|answer| answer.and_then(|fenced| fenced.map_or(Ok(()), Err)))
        .collect()
}

async fn end_once(pool: &Pool, batch: &[ToEnd]) -> Result<Vec<Option<JournalError>>, JournalError> {
    let mut ordered: Vec<&ToEnd> = batch.iter().collect();
    ordered.sort_by_key(|end| end.job);
    let column = |get: fn(&ToEnd) -> Option<String>| -> Vec<Option<String>> {
        ordered.iter().map(|end| get(end)).collect()
    };
    let ids: Vec<i64> = ordered.iter().map(|end| end.job.0).collect();
    let attempts: Vec<i32> = ordered.iter().map(|end| end.attempt as i32).collect();
    let states = column(|end| Some(end.columns.state.as_str().to_owned()));
    let errors = column(|end| end.columns.error.clone());
    let notes = column(|end| end.columns.note.clone());
    let finished = column(|end| end.columns.finished_at.clone());
    let verdicts = column(|end| end.columns.verdict.map(str::to_owned));
    let not_before: Vec<Option<i64>> = ordered.iter().map(|end| end.columns.not_before).collect();
    let client = pool.get().await.map_err(pool_error)?;
    let statement = client
        .prepare_cached(
            "WITH ended AS (
                 UPDATE jobs SET state = e.state, error = e.error, note = e.note,
                        finished_at = e.finished_at, not_before = e.not_before,
                        lease_until = NULL, verdict = e.verdict
                 FROM unnest($1::bigint[], $2::int[], $3::text[], $4::text[], $5::text[],
                             $6::text[], $7::bigint[], $8::text[])
                      AS e (id, attempt, state, error, note, finished_at, not_before, verdict)
                 WHERE jobs.id = e.id AND jobs.state = 'running' AND jobs.attempts = e.attempt
                 RETURNING jobs.id
             ), unlocked AS (
                 DELETE FROM locks WHERE job IN (SELECT id FROM ended)
             )
             SELECT id FROM ended",
        )
        .await?;
    let rows = client
        .query(
            &statement,
            &[
                &ids,
                &attempts,
                &states,
                &errors,
                &notes,
                &finished,
                &not_before,
                &verdicts,
            ],
        )
        .await?;
    let ended: std::collections::HashSet<i64> = rows.iter().map(|row| row.get(0)).collect();
    Ok(batch
        .iter()
        .map(|end| {
            (!ended.contains(&end.job.0)).then_some(JournalError::NotRunning {
                job: end.job,
                attempt: end.attempt,
            })
        })
        .collect())
}
