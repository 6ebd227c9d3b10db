//! Job logs: one plain-text file per job under the store's `logs` folder, or, when the journal
//! keeps logs (PostgreSQL, shared by every host), chunks in the journal; secrets masked on the
//! way in, served at a capability link (`link`), streamed live while the job runs (`follow`).

mod follow;
mod link;
mod readers;

use std::{path::PathBuf, sync::Arc};

use base64::Engine as _;
use tokio::io::AsyncWriteExt as _;

pub use follow::{LogState, serve_log};
pub use link::{LINK_SECRET, LogLinks};
pub use readers::{LogReaders, NoPlace, Place};

use crate::journal::{JobId, JournalError, LogStore};

/// Where job logs live, and the secrets they must never show.
#[derive(Clone)]
pub struct JobLogs {
    dir: PathBuf,
    secrets: Arc<Vec<Vec<u8>>>,
    /// Bytes a log may grow to; what comes after is dropped, with a note.
    limit: u64,
    /// Set when the journal keeps the logs: then no file is written.
    journal: Option<Arc<dyn LogStore>>,
}

const MASK: &[u8] = b"********";

/// See [`JobLogs::gather_delay`]: short enough that a followed log still reads as live.
const GATHER_DELAY: std::time::Duration = std::time::Duration::from_millis(50);

/// Secrets masked by their shape rather than their value, for the tokens minted while the host
/// runs: a GitHub App's installation tokens (`ghs_` and at least 20 letters and digits), and
/// any token in git's basic `Authorization` header: `base64("x-access-token:")` is exactly 20
/// characters, so whatever follows is the token's own base64.
const SHAPED: [(&[u8], usize); 2] = [(b"ghs_", 20), (b"eC1hY2Nlc3MtdG9rZW46", 8)];
/// Longest run a shaped secret is masked over: room kept around a cut line.
const SHAPED_MAX: usize = 256;

impl JobLogs {
    /// Every secret is masked, however short: a short one masks ordinary text too, which is
    /// better than showing it (the host warns about short webhook secrets at start). Each of
    /// at least [`BASE64_LEAST`] bytes is masked in base64 too (see `base64_forms`).
    pub fn new(dir: PathBuf, secrets: impl IntoIterator<Item = String>) -> Self {
        let mut secrets: Vec<Vec<u8>> = secrets
            .into_iter()
            .filter(|s| !s.is_empty())
            .map(String::into_bytes)
            .flat_map(|secret| {
                let forms = base64_forms(&secret);
                std::iter::once(secret).chain(forms)
            })
            .collect();
        // Longest first, so a secret that contains another is masked whole; and each once,
        // though a value can come from two sources (a plugin's `_env` naming the token).
        secrets.sort_unstable_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        secrets.dedup();
        Self {
            dir,
            secrets: Arc::new(secrets),
            limit: u64::MAX,
            journal: None,
        }
    }

    /// Keeps the logs in `journal` when it keeps logs (so every host sharing it reads them).
    pub fn kept_in(mut self, journal: Arc<dyn LogStore>) -> Self {
        if journal.keeps_logs() {
            self.journal = Some(journal);
        }
        self
    }

    /// The journal holding the logs, when not files.
    pub fn journal(&self) -> Option<&Arc<dyn LogStore>> {
        self.journal.as_ref()
    }

    /// Caps each log at `bytes` (`[sandbox] log_mib`): a build printing without end fills no
    /// disk.
    pub fn with_limit(mut self, bytes: u64) -> Self {
        self.limit = bytes;
        self
    }

    /// How long a writer may gather output read close together into one append: when the
    /// journal keeps the logs each append is a statement on the shared database, so a build
    /// printing a line at a time must not cost one per line. Files take each read as it comes.
    pub fn gather_delay(&self) -> Option<std::time::Duration> {
        self.journal.as_ref().map(|_| GATHER_DELAY)
    }

    /// Length of the longest secret masked.
    pub fn longest_secret(&self) -> usize {
        self.secrets.first().map_or(0, Vec::len).max(SHAPED_MAX)
    }

    pub fn path(&self, job: JobId) -> PathBuf {
        self.dir.join(format!("{job}.log"))
    }

    /// When each chunk of a job's log file was written: 16-byte records, the chunk's offset
    /// and the time in Unix milliseconds (both little-endian `u64`), in order. The dashboard's
    /// log viewer shows them as per-line timestamps on demand.
    pub fn times_path(&self, job: JobId) -> PathBuf {
        self.dir.join(format!("{job}.times"))
    }

    /// Appends text to a job's log. Each call is one `write` on an O_APPEND file, so lines from
    /// concurrent writers (stdout and stderr of a command) stay whole.
    pub async fn append(&self, job: JobId, text: &[u8]) -> std::io::Result<()> {
        let text = self.mask(text);
        if let Some(journal) = &self.journal {
            if text.is_empty() {
                return Ok(());
            }
            // One statement: the journal checks the limit as it appends.
            let length = journal
                .append_log(job, text, self.limit)
                .await
                .map_err(std::io::Error::other)?;
            if length.is_some_and(|length| length >= self.limit) {
                let note = self.limit_note().into_bytes();
                journal
                    .append_log(job, note, u64::MAX)
                    .await
                    .map_err(std::io::Error::other)?;
            }
            return Ok(());
        }
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
        let length = file.metadata().await?.len();
        if length >= self.limit {
            return Ok(());
        }
        if !text.is_empty() {
            self.stamp(job, length).await?;
        }
        file.write_all(&text).await?;
        if length + text.len() as u64 >= self.limit {
            file.write_all(self.limit_note().as_bytes()).await?;
        }
        file.flush().await
    }

    /// Records that the chunk at `offset` of `job`'s log is written now. Concurrent writers
    /// of one log may record in either order; the viewer takes each line's nearest record.
    async fn stamp(&self, job: JobId, offset: u64) -> std::io::Result<()> {
        let mut record = [0u8; 16];
        record[..8].copy_from_slice(&offset.to_le_bytes());
        record[8..].copy_from_slice(&crate::journal::unix_millis().to_le_bytes());
        let mut times = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.times_path(job))
            .await?;
        times.write_all(&record).await
    }

    fn limit_note(&self) -> String {
        format!(
            "\nswitchyard: the log reached its limit of {} MiB; further output is dropped\n",
            self.limit >> 20
        )
    }

    /// Deletes a job's log file; returns whether there was one. A log in the journal goes
    /// with its job, when the journal prunes it.
    pub async fn remove(&self, job: JobId) -> bool {
        if self.journal.is_some() {
            return false;
        }
        let _ = tokio::fs::remove_file(self.times_path(job)).await;
        match tokio::fs::remove_file(self.path(job)).await {
            Ok(()) => true,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
            Err(error) => {
                tracing::warn!(%job, error = error.to_string(), "cannot remove a job log");
                false
            }
        }
    }

    /// Has the journal give no job an id that a log file here has: a journal restored from a
    /// backup knows only the jobs up to the backup, and a job after it would otherwise be given
    /// the id (and the log file) of one it lost. Run at start, before any job is stored.
    pub async fn skip_logged_ids(&self, journal: &dyn LogStore) -> Result<(), JournalError> {
        if self.journal.is_some() {
            return Ok(());
        }
        let dir = self.dir.clone();
        let highest = tokio::task::spawn_blocking(move || highest_logged_job(&dir))
            .await
            .map_err(|_| JournalError::Unavailable)?
            .map_err(|error| {
                JournalError::Storage(format!(
                    "cannot list the job logs in {}: {error}",
                    self.dir.display()
                ))
            })?;
        match highest {
            Some(job) => journal.skip_job_ids_through(job).await,
            None => Ok(()),
        }
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
        for (prefix, least) in SHAPED {
            let mut at = 0;
            while let Some(found) = find(&text[at..], prefix) {
                let start = at + found;
                let token = |b: &u8| b.is_ascii_alphanumeric() || b"_+/=".contains(b);
                let length = text[start + prefix.len()..]
                    .iter()
                    .take(SHAPED_MAX)
                    .take_while(|b| token(b))
                    .count();
                if length >= least {
                    let end = start + prefix.len() + length;
                    text.splice(start..end, MASK.iter().copied());
                    at = start + MASK.len();
                } else {
                    at = start + prefix.len();
                }
            }
        }
        text
    }
}

/// Secrets shorter than this are masked as they are only: the base64 of a short one is a few
/// characters, which ordinary text has everywhere.
pub const BASE64_LEAST: usize = 8;

/// What of `secret`'s base64 shows whatever surrounds it, at each of its three alignments (0, 1
/// or 2 bytes before it in its group of three), in the standard and the URL-safe alphabet: a
/// build printing `base64` of a file or a variable holding the secret shows one of them. The
/// characters shared with the bytes around it are left out, as they vary with those bytes.
fn base64_forms(secret: &[u8]) -> Vec<Vec<u8>> {
    if secret.len() < BASE64_LEAST {
        return Vec::new();
    }
    let mut forms = Vec::new();
    for before in 0..3 {
        let mut aligned = vec![0u8; before];
        aligned.extend_from_slice(secret);
        // Characters made only of the secret's bits: from the first whose 6 bits all come
        // after the `before` bytes, to the last whose 6 bits all come from the secret.
        let first = (before * 8).div_ceil(6);
        let last = aligned.len() * 8 / 6;
        for engine in [
            &base64::engine::general_purpose::STANDARD_NO_PAD,
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        ] {
            let encoded = engine.encode(&aligned).into_bytes();
            let form = encoded[first..last].to_vec();
            if !forms.contains(&form) {
                forms.push(form);
            }
        }
    }
    forms
}

/// With base64 forms, a log chunk is searched for several times as many secrets as before:
/// memchr's vectorised search keeps that a small part of writing the chunk.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(haystack, needle)
}

/// The highest job id among the log files in `dir` (`{id}.log`, `{id}.times`), if any.
fn highest_logged_job(dir: &std::path::Path) -> std::io::Result<Option<JobId>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error),
    };
    let mut highest = None;
    for entry in entries {
        let name = entry?.file_name();
        let id = name
            .to_str()
            .and_then(|name| name.split_once('.'))
            .filter(|(_, kind)| matches!(*kind, "log" | "times"))
            .and_then(|(id, _)| id.parse().ok())
            .map(JobId);
        highest = highest.max(id);
    }
    Ok(highest)
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
    fn installation_tokens_are_masked_by_their_shape() {
        let logs = JobLogs::new(PathBuf::new(), []);
        let token = "ghs_16C7e42F292c6912E7710c838347Ae178B4a";
        let header = format!(
            "Authorization: basic {}",
            crate::services::checkout::encoded_credentials(token)
        );
        // (input, expected)
        let cases = [
            (format!("token {token}."), "token ********.".to_owned()),
            (header, "Authorization: basic ********".to_owned()),
            (
                "ghs_short and ghs_".to_owned(),
                "ghs_short and ghs_".to_owned(),
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(
                String::from_utf8(logs.mask(input.as_bytes())).unwrap(),
                expected
            );
        }
    }

    #[test]
    fn a_secrets_base64_is_masked_at_each_alignment_in_both_alphabets() {
        let secret = "s3cr3t-v4lue?>~~";
        let logs = JobLogs::new(PathBuf::new(), [secret.to_owned()]);
        let engines = [
            base64::engine::general_purpose::STANDARD,
            base64::engine::general_purpose::URL_SAFE,
        ];
        for engine in engines {
            for before in ["", "a", "ab", "abc", "x=", "export TOKEN="] {
                for after in ["", "\n", "z", "zz"] {
                    let printed = engine.encode(format!("{before}{secret}{after}"));
                    let masked = String::from_utf8(logs.mask(printed.as_bytes())).unwrap();
                    assert!(
                        masked.contains("********"),
                        "{before:?} {after:?}: {masked}"
                    );
                    // What is left shows at most the characters shared with the text around.
                    let shown = masked.replace("********", "");
                    let around = engine.encode(format!("{before}{after}")).len();
                    assert!(shown.len() <= around + 6, "{before:?} {after:?}: {masked}");
                }
            }
        }
        // Short secrets are masked as they are, not by their few base64 characters.
        let short = JobLogs::new(PathBuf::new(), ["abc".to_owned()]);
        assert_eq!(short.mask(b"YWJj and abc"), b"YWJj and ********");
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
            ("short ones too: ab", "short ones too: ********"),
        ];
        for (input, expected) in cases {
            assert_eq!(
                String::from_utf8(logs.mask(input.as_bytes())).unwrap(),
                expected
            );
        }
    }

    #[tokio::test]
    async fn a_log_stops_growing_at_its_limit_with_a_note() {
        let dir = tempfile::tempdir().unwrap();
        let logs = JobLogs::new(dir.path().join("logs"), []).with_limit(1 << 20);
        let line = vec![b'x'; 100 * 1024];
        for _ in 0..30 {
            logs.append(JobId(1), &line).await.unwrap();
        }
        let log = std::fs::read(logs.path(JobId(1))).unwrap();
        assert!(log.len() < (1 << 20) + 200 * 1024, "{} bytes", log.len());
        let text = String::from_utf8_lossy(&log);
        assert_eq!(text.matches("reached its limit of 1 MiB").count(), 1);
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

    #[test]
    fn the_highest_logged_job_is_found_among_log_files_only() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(highest_logged_job(&dir.path().join("none")).unwrap(), None);
        // (files in the folder, the highest job found)
        let cases: [(&[&str], Option<i64>); 4] = [
            (&[], None),
            (&["3.log", "12.times", "9.log"], Some(12)),
            (&["40.log.partial", "41.txt", "x.log", "7.log"], Some(7)),
            (&["notes", ".5.log"], None),
        ];
        for (files, highest) in cases {
            let logs = tempfile::tempdir().unwrap();
            for file in files {
                std::fs::write(logs.path().join(file), b"").unwrap();
            }
            let found = highest_logged_job(logs.path()).unwrap();
            assert_eq!(found, highest.map(JobId), "{files:?}");
        }
    }
}
