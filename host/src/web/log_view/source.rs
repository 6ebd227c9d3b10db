//! Where a job's log is read from, file or journal, behind one set of range reads: the page
//! and the follow stream ask for bytes, line counts, line offsets and chunk times alike, and a
//! log in PostgreSQL answers each from the few chunks around the place asked for.

use std::{path::PathBuf, sync::Arc};

use super::read;
use crate::{
    job_log::JobLogs,
    journal::{JobId, LogChunk, LogStore},
};

/// A job's log as the dashboard reads it.
pub enum LogSource {
    /// A file on this host, with its times file beside it.
    File { log: PathBuf, times: PathBuf },
    /// Chunks in the journal, shared by every host.
    Journal {
        store: Arc<dyn LogStore>,
        job: JobId,
    },
}

impl LogSource {
    pub fn of(logs: &JobLogs, job: JobId) -> Self {
        match logs.journal() {
            Some(store) => Self::Journal {
                store: Arc::clone(store),
                job,
            },
            None => Self::File {
                log: logs.path(job),
                times: logs.times_path(job),
            },
        }
    }

    /// The log's length; 0 while it does not exist yet.
    pub async fn len(&self) -> std::io::Result<u64> {
        match self {
            Self::File { log, .. } => match tokio::fs::metadata(log).await {
                Ok(metadata) => Ok(metadata.len()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
                Err(e) => Err(e),
            },
            Self::Journal { store, job } => store.log_len(*job).await.map_err(unreadable),
        }
    }

    /// Bytes `from..to` (fewer past the end).
    pub async fn read_range(&self, from: u64, to: u64) -> std::io::Result<Vec<u8>> {
        match self {
            Self::File { log, .. } => read::read_range(log, from, to).await,
            Self::Journal { store, job } => {
                let chunks = store.log_chunks(*job, from, to).await.map_err(unreadable)?;
                let mut bytes = Vec::with_capacity(to.saturating_sub(from) as usize);
                for chunk in &chunks {
                    let end = chunk.start + chunk.data.len() as u64;
                    let (first, last) = (from.max(chunk.start), to.min(end));
                    if first < last {
                        let at = (first - chunk.start) as usize..(last - chunk.start) as usize;
                        bytes.extend_from_slice(&chunk.data[at]);
                    }
                }
                Ok(bytes)
            }
        }
    }

    /// Newlines in the first `upto` bytes.
    pub async fn count_lines(&self, upto: u64) -> std::io::Result<u64> {
        match self {
            Self::File { log, .. } => read::count_lines(log, upto).await,
            Self::Journal { .. } if upto == 0 => Ok(0),
            Self::Journal { store, job } => {
                let chunks = store.log_chunks(*job, upto - 1, upto);
                let chunks = chunks.await.map_err(unreadable)?;
                Ok(chunks.first().map_or(0, |chunk| {
                    let within = (upto.saturating_sub(chunk.start) as usize).min(chunk.data.len());
                    chunk.newlines_before + newlines(&chunk.data[..within])
                }))
            }
        }
    }

    /// The offset where line `line` (1-based) starts, or the log's length when it has fewer
    /// lines.
    pub async fn line_offset(&self, line: u64) -> std::io::Result<u64> {
        match self {
            Self::File { log, .. } => read::line_offset(log, line).await,
            Self::Journal { .. } if line <= 1 => Ok(0),
            Self::Journal { store, job } => {
                let newline = line - 1;
                let chunk = store.log_chunk_with_newline(*job, newline);
                let Some(chunk) = chunk.await.map_err(unreadable)? else {
                    return Ok(0);
                };
                let wanted = newline.saturating_sub(chunk.newlines_before) as usize;
                let found = chunk
                    .data
                    .iter()
                    .enumerate()
                    .filter(|(_, b)| **b == b'\n')
                    .nth(wanted.saturating_sub(1));
                Ok(match found {
                    Some((at, _)) => chunk.start + at as u64 + 1,
                    None => chunk.start + chunk.data.len() as u64,
                })
            }
        }
    }

    /// Moves `offset` forward to the start of the next line (unless it is 0 or already at one).
    pub async fn align_to_line(&self, offset: u64) -> std::io::Result<u64> {
        if offset == 0 {
            return Ok(0);
        }
        let before = self.read_range(offset - 1, offset + 64 * 1024).await?;
        Ok(match before.iter().position(|&b| b == b'\n') {
            Some(at) => offset + at as u64,
            None => offset - 1 + before.len() as u64,
        })
    }

    /// The chunk records (offset, Unix ms) bearing on bytes `from..to`: the last one starting at
    /// or before `from`, and those after it up to `to`. None for a log without times.
    pub async fn chunk_times(&self, from: u64, to: u64) -> std::io::Result<Vec<(u64, u64)>> {
        match self {
            Self::File { times, .. } => read::chunk_times(times, from, to).await,
            Self::Journal { store, job } => {
                let chunks = store.log_chunks(*job, from, to).await.map_err(unreadable)?;
                Ok(chunks.iter().filter_map(chunk_time).collect())
            }
        }
    }
}

fn chunk_time(chunk: &LogChunk) -> Option<(u64, u64)> {
    Some((chunk.start, chunk.written_ms?))
}

fn newlines(bytes: &[u8]) -> u64 {
    bytes.iter().filter(|&&b| b == b'\n').count() as u64
}

fn unreadable(error: crate::journal::JournalError) -> std::io::Error {
    std::io::Error::other(error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn offsets_move_to_the_next_line_start() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        std::fs::write(&log, "a\nbb\nccc\n").unwrap();
        let source = LogSource::File {
            times: dir.path().join("times"),
            log,
        };
        // (offset, the start of the line at or after it)
        for (offset, aligned) in [(0, 0), (1, 2), (2, 2), (3, 5), (9, 9)] {
            assert_eq!(
                source.align_to_line(offset).await.unwrap(),
                aligned,
                "{offset}"
            );
        }
    }
}
