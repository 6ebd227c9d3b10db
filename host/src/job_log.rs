//! Job logs: one plain-text file per job under the store's `logs` folder, with secrets masked
//! on the way in, served at `/jobs/{id}/log`.

use std::{path::PathBuf, sync::Arc};

use axum::{
    extract::{Path, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use tokio::io::AsyncWriteExt as _;

use crate::{
    app::AppState,
    ingress::error_response,
    journal::{JobId, JournalError},
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
        let secrets = secrets
            .into_iter()
            .filter(|s| s.len() >= 4)
            .map(String::into_bytes)
            .collect();
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

/// `GET /jobs/{id}/log`: the log so far. A job that has written nothing yet has an empty log;
/// only an unknown job is a 404.
pub async fn serve_log(State(state): State<AppState>, Path(id): Path<i64>) -> Response {
    let text = match tokio::fs::read(state.logs.path(JobId(id))).await {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            match state.journal.job(JobId(id)).await {
                Ok(_) => Vec::new(),
                Err(JournalError::NoSuchJob(_)) => {
                    return error_response(StatusCode::NOT_FOUND, &format!("no job {id}"));
                }
                Err(error) => return internal_error(id, &error),
            }
        }
        Err(error) => return internal_error(id, &error),
    };
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response()
}

fn internal_error(job: i64, error: &dyn std::fmt::Display) -> Response {
    tracing::error!(job, %error, "cannot read job log");
    error_response(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
}

#[cfg(test)]
mod tests {
    use super::*;

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
