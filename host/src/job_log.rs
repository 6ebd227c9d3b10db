//! Job logs: one plain-text file per job under the store's `logs` folder, with secrets masked
//! on the way in, served at `/jobs/{id}/log` (streamed live while the job runs).

use std::{path::PathBuf, sync::Arc, time::Duration};

use axum::{
    body::Body,
    extract::{Path, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _, AsyncWriteExt as _};

use crate::{
    app::AppState,
    ingress::error_response,
    journal::{JobId, JobState, Journal, JournalError},
};

/// Where job logs live, and the secrets they must never show.
#[derive(Clone)]
pub struct JobLogs {
    dir: PathBuf,
    secrets: Arc<Vec<Vec<u8>>>,
}

const MASK: &[u8] = b"********";

impl JobLogs {
    /// `secrets` shorter than 4 bytes are not masked: they would mask ordinary text.
    pub fn new(dir: PathBuf, secrets: impl IntoIterator<Item = String>) -> Self {
        let mut secrets: Vec<Vec<u8>> = secrets
            .into_iter()
            .filter(|s| s.len() >= 4)
            .map(String::into_bytes)
            .collect();
        // Longest first, so a secret that contains another is masked whole; and each once,
        // though a value can come from two sources (a plugin's `_env` naming the token).
        secrets.sort_unstable_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        secrets.dedup();
        Self {
            dir,
            secrets: Arc::new(secrets),
        }
    }

    pub fn path(&self, job: JobId) -> PathBuf {
        self.dir.join(format!("{job}.log"))
    }

    /// Appends text to a job's log. Each call is one `write` on an O_APPEND file, so lines from
    /// concurrent writers (stdout and stderr of a command) stay whole.
    pub async fn append(&self, job: JobId, text: &[u8]) -> std::io::Result<()> {
        let text = self.mask(text);
        let path = self.path(job);
        let mut options = tokio::fs::OpenOptions::new();
        options.create(true).append(true);
        let mut file = match options.open(&path).await {
            // The folder is made on first use only, not on every line.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                tokio::fs::create_dir_all(&self.dir).await?;
                options.open(&path).await?
            }
            opened => opened?,
        };
        file.write_all(&text).await?;
        file.flush().await
    }

    /// Replaces every occurrence of a secret with `********`.
    pub fn mask(&self, text: &[u8]) -> Vec<u8> {
        let mut text = text.to_vec();
        for secret in self.secrets.iter() {
            let mut at = 0;
            while let Some(found) = find(&text[at..], secret) {
                let start = at + found;
                text.splice(start..start + secret.len(), MASK.iter().copied());
                at = start + MASK.len();
            }
        }
        text
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// How often a streamed log checks for new output while its job runs.
const FOLLOW_INTERVAL: Duration = Duration::from_millis(250);

/// `GET /jobs/{id}/log`: the job's log as plain text. While the job is queued or running the
/// response streams, sending new output as it is written, and ends when the job ends; so a
/// status link shows a build live. Only an unknown job is a 404.
pub async fn serve_log(State(state): State<AppState>, Path(id): Path<i64>) -> Response {
    let job = JobId(id);
    match state.journal.job(job).await {
        Ok(_) => {}
        Err(JournalError::NoSuchJob(_)) => {
            return error_response(StatusCode::NOT_FOUND, &format!("no job {id}"));
        }
        Err(error) => {
            tracing::error!(job = id, %error, "cannot look up job for its log");
            return error_response(StatusCode::INTERNAL_SERVER_ERROR, "internal error");
        }
    }
    let follow = Follow {
        path: state.logs.path(job),
        offset: 0,
        job,
        journal: state.journal.clone(),
        ended: false,
    };
    let body = Body::from_stream(futures_util::stream::unfold(follow, Follow::next));
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response()
}

/// A reader that follows a job's log file until the job ends and everything is sent.
struct Follow {
    path: PathBuf,
    offset: u64,
    job: JobId,
    journal: Arc<dyn Journal>,
    /// The job had ended when last checked: send what is left, then stop.
    ended: bool,
}

impl Follow {
    async fn next(mut self) -> Option<(std::io::Result<Vec<u8>>, Self)> {
        loop {
            match self.read_new().await {
                Ok(chunk) if !chunk.is_empty() => return Some((Ok(chunk), self)),
                Ok(_) if self.ended => return None,
                Ok(_) => {}
                Err(error) => {
                    return Some((
                        Err(error),
                        Self {
                            ended: true,
                            ..self
                        },
                    ));
                }
            }
            // Nothing new: check (after reading, so no output written before the end is
            // missed) whether the job is over, else wait for more.
            self.ended = match self.journal.job(self.job).await {
                Ok(record) => matches!(record.state, JobState::Succeeded | JobState::Failed),
                Err(_) => true,
            };
            if !self.ended {
                tokio::time::sleep(FOLLOW_INTERVAL).await;
            }
        }
    }

    /// Bytes written since the last read; none while the file does not exist yet.
    async fn read_new(&mut self) -> std::io::Result<Vec<u8>> {
        let mut file = match tokio::fs::File::open(&self.path).await {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        file.seek(std::io::SeekFrom::Start(self.offset)).await?;
        let mut chunk = Vec::new();
        file.read_to_end(&mut chunk).await?;
        self.offset += chunk.len() as u64;
        Ok(chunk)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_containing_another_is_masked_whole() {
        let logs = JobLogs::new(
            PathBuf::new(),
            [
                "token".to_owned(),
                "x-token-long".to_owned(),
                "token".to_owned(),
            ],
        );
        assert_eq!(
            logs.mask(b"a x-token-long b token c"),
            b"a ******** b ******** c"
        );
    }

    #[test]
    fn secrets_are_masked() {
        let logs = JobLogs::new(
            PathBuf::new(),
            [
                "ghp_token123".to_owned(),
                "web-secret".to_owned(),
                "ab".to_owned(),
            ],
        );
        // (input, expected)
        let cases = [
            (
                "clone https://x-access-token:ghp_token123@github.com",
                "clone https://x-access-token:********@github.com",
            ),
            ("ghp_token123ghp_token123", "****************"),
            ("secret is web-secret.", "secret is ********."),
            ("nothing to hide, ab", "nothing to hide, ab"),
        ];
        for (input, expected) in cases {
            assert_eq!(
                String::from_utf8(logs.mask(input.as_bytes())).unwrap(),
                expected
            );
        }
    }

    #[tokio::test]
    async fn appends_accumulate_in_one_file_per_job() {
        let dir = tempfile::tempdir().unwrap();
        let logs = JobLogs::new(dir.path().join("logs"), []);
        logs.append(JobId(7), b"one\n").await.unwrap();
        logs.append(JobId(7), b"two\n").await.unwrap();
        logs.append(JobId(8), b"other\n").await.unwrap();
        assert_eq!(
            std::fs::read_to_string(logs.path(JobId(7))).unwrap(),
            "one\ntwo\n"
        );
    }
}
