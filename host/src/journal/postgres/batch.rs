//! Group commit for PostgreSQL: requests of one kind that arrive together (deliveries to store,
//! attempts to start, attempts to end) run as one statement or transaction, so many deliveries
//! share one commit and its WAL flush.
//!
//! A batch is whatever arrived while the batch before it ran, as the SQLite writer does: at low
//! load a request waits for no batch to fill, it runs at once alone; under load the batches
//! grow by themselves. Each caller is answered only once its batch's commit (or failure) is
//! known, so a `202` still means committed.

use std::future::Future;

use tokio::sync::{mpsc, oneshot};

use crate::journal::JournalError;

/// A request and where its answer goes.
type Waiting<Request, Answer> = (Request, oneshot::Sender<Result<Answer, JournalError>>);

/// The way into one kind of batch. Cheap to clone.
pub(super) struct Batcher<Request, Answer> {
    requests: mpsc::Sender<Waiting<Request, Answer>>,
}

impl<Request, Answer> Clone for Batcher<Request, Answer> {
    fn clone(&self) -> Self {
        Self {
            requests: self.requests.clone(),
        }
    }
}

impl<Request: Send + 'static, Answer: Send + 'static> Batcher<Request, Answer> {
    /// Starts the task that runs batches of at most `most` requests through `run`, which
    /// answers each request of its batch, in order (one answer per request). Requests beyond
    /// what waits in the channel (`most` again) wait to be let in: a flood is held back
    /// where it comes from, not in memory.
    pub(super) fn start<Run, Ran>(most: usize, run: Run) -> (Self, tokio::task::JoinHandle<()>)
    where
        Run: Fn(Vec<Request>) -> Ran + Send + 'static,
        Ran: Future<Output = Vec<Result<Answer, JournalError>>> + Send,
    {
        let (sender, mut receiver) = mpsc::channel::<Waiting<Request, Answer>>(most);
        let task = tokio::spawn(async move {
            let mut batch = Vec::with_capacity(most);
            while receiver.recv_many(&mut batch, most).await > 0 {
                let (requests, answers): (Vec<_>, Vec<_>) = batch.drain(..).unzip();
                let count = requests.len();
                let mut results = run(requests).await.into_iter();
                for answer in answers {
                    let result = results.next().unwrap_or_else(|| {
                        Err(JournalError::Postgres(format!(
                            "a batch of {count} gave fewer answers than requests"
                        )))
                    });
                    // A caller that stopped waiting (its client went away) needs no answer.
                    let _ = answer.send(result);
                }
            }
        });
        (Self { requests: sender }, task)
    }

    /// Runs `request` in the next batch and answers once that batch is done.
    pub(super) async fn call(&self, request: Request) -> Result<Answer, JournalError> {
        let (answer, answered) = oneshot::channel();
        self.requests
            .send((request, answer))
            .await
            .map_err(|_| JournalError::Unavailable)?;
        answered.await.map_err(|_| JournalError::Unavailable)?
    }
}

/// The same error for every request of a batch that failed as a whole.
pub(super) fn all_failed<Answer>(
    count: usize,
    error: JournalError,
) -> Vec<Result<Answer, JournalError>> {
    (0..count).map(|_| Err(error.clone())).collect()
}

#[cfg(test)]
mod tests {
    use std::sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    };

    use super::*;

    #[tokio::test]
    async fn requests_that_arrive_together_share_a_batch_and_each_gets_its_own_answer() {
        let batches = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&batches);
        let (batcher, _task) = Batcher::start(64, move |requests: Vec<u32>| {
            counted.fetch_add(1, Ordering::Relaxed);
            async move {
                // Long enough for the others to queue behind the first batch.
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                requests.into_iter().map(|n| Ok(n * 2)).collect()
            }
        });
        let calls = (0..40).map(|n| {
            let batcher = batcher.clone();
            tokio::spawn(async move { batcher.call(n).await })
        });
        let answers = futures_util::future::join_all(calls).await;
        for (n, answer) in answers.into_iter().enumerate() {
            assert_eq!(answer.unwrap().unwrap(), n as u32 * 2);
        }
        // Whatever had arrived when the first ran, then everything that queued behind it: not
        // one batch per request.
        let batches = batches.load(Ordering::Relaxed);
        assert!((1..=2).contains(&batches), "{batches} batches");
    }

    #[tokio::test]
    async fn a_batch_that_answers_too_few_fails_the_rest_rather_than_hanging() {
        let (batcher, _task) = Batcher::start(8, |_requests: Vec<u32>| async {
            Vec::<Result<u32, JournalError>>::new()
        });
        let error = batcher.call(1).await.unwrap_err();
        assert!(error.to_string().contains("fewer answers"), "{error}");
    }
}
