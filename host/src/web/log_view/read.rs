//! Reading a log by byte ranges, never whole: a window's bytes, where its lines start and
//! end, how many lines come before it, and the times its chunks were written.

use std::{io::SeekFrom, path::Path};

use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _};

/// Where the first `lines` lines of `bytes` end: after their last newline, or at the end.
pub fn end_of_lines(bytes: &[u8], lines: u64) -> usize {
    if lines == 0 {
        return 0;
    }
    bytes
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b'\n')
        .nth(lines as usize - 1)
        .map_or(bytes.len(), |(at, _)| at + 1)
}

/// Where the last `lines` whole lines of `bytes` (which ends with a newline, or is a log's
/// unfinished end) begin.
pub fn start_of_last_lines(bytes: &[u8], lines: usize) -> usize {
    let body = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    body.iter()
        .enumerate()
        .rev()
        .filter(|(_, b)| **b == b'\n')
        .nth(lines.saturating_sub(1))
        .map_or(0, |(at, _)| at + 1)
}

/// Bytes of a times file: one record per chunk.
const RECORD: u64 = 16;

/// The chunk records of a log's `times` file (see `JobLogs::times_path`) that bear on bytes
/// `from..to`: the last one starting at or before `from`, and those after it up to `to`,
/// found by a binary search of the file, read by ranges. None when there is no such file.
pub async fn chunk_times(times: &Path, from: u64, to: u64) -> std::io::Result<Vec<(u64, u64)>> {
    let times = times.to_owned();
    blocking(move || {
        use std::os::unix::fs::FileExt as _;
        let file = match std::fs::File::open(times) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let count = file.metadata()?.len() / RECORD;
        let read = |index: u64| -> std::io::Result<(u64, u64)> {
            let mut record = [0u8; RECORD as usize];
            file.read_exact_at(&mut record, index * RECORD)?;
            let number = |bytes: &[u8]| u64::from_le_bytes(bytes.try_into().unwrap_or_default());
            Ok((number(&record[..8]), number(&record[8..])))
        };
        // The first record starting after `from`.
        let (mut low, mut high) = (0, count);
        while low < high {
            let middle = (low + high) / 2;
            if read(middle)?.0 <= from {
                low = middle + 1;
            } else {
                high = middle;
            }
        }
        let mut found = Vec::new();
        let mut index = low.saturating_sub(1);
        while index < count {
            let record = read(index)?;
            if record.0 > to {
                break;
            }
            found.push(record);
            index += 1;
        }
        // Concurrent writers may have recorded out of order: the search wants them sorted.
        found.sort_unstable();
        Ok(found)
    })
    .await
}

/// Newlines in the first `upto` bytes of a file, read in chunks (never whole) on a blocking
/// thread: one hand-off for the whole count, not one per chunk.
pub async fn count_lines(path: &Path, upto: u64) -> std::io::Result<u64> {
    if upto == 0 {
        return Ok(0);
    }
    let path = path.to_owned();
    blocking(move || {
        use std::io::Read as _;
        let mut reader = std::fs::File::open(path)?.take(upto);
        let mut buffer = vec![0u8; CHUNK];
        let mut lines = 0u64;
        loop {
            let read = reader.read(&mut buffer)?;
            if read == 0 {
                return Ok(lines);
            }
            lines += buffer[..read].iter().filter(|&&b| b == b'\n').count() as u64;
        }
    })
    .await
}

/// The offset where line `line` (1-based) starts, or the file's length when it has fewer lines.
pub async fn line_offset(path: &Path, line: u64) -> std::io::Result<u64> {
    if line <= 1 {
        return Ok(0);
    }
    let path = path.to_owned();
    blocking(move || {
        use std::io::Read as _;
        let mut file = std::fs::File::open(path)?;
        let mut buffer = vec![0u8; CHUNK];
        let (mut seen, mut offset) = (1u64, 0u64);
        loop {
            let read = file.read(&mut buffer)?;
            if read == 0 {
                return Ok(offset);
            }
            for (i, &b) in buffer[..read].iter().enumerate() {
                if b == b'\n' {
                    seen += 1;
                    if seen == line {
                        return Ok(offset + i as u64 + 1);
                    }
                }
            }
            offset += read as u64;
        }
    })
    .await
}

/// Bytes read at a time when scanning a log.
const CHUNK: usize = 1 << 20;

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> std::io::Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(std::io::Error::other)?
}

/// Reads `[from, to)` of a file.
pub async fn read_range(path: &Path, from: u64, to: u64) -> std::io::Result<Vec<u8>> {
    let mut file = tokio::fs::File::open(path).await?;
    file.seek(SeekFrom::Start(from)).await?;
    let mut bytes = Vec::with_capacity(to.saturating_sub(from) as usize);
    file.take(to.saturating_sub(from))
        .read_to_end(&mut bytes)
        .await?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_end_and_start_at_line_boundaries() {
        let log = b"a\nbb\nccc\n";
        // (lines, end of the first ones, start of the last ones)
        for (lines, end, start) in [(0, 0, 9), (1, 2, 5), (2, 5, 2), (3, 9, 0), (9, 9, 0)] {
            assert_eq!(end_of_lines(log, lines as u64), end, "{lines}");
            if lines > 0 {
                assert_eq!(start_of_last_lines(log, lines), start, "{lines}");
            }
        }
        assert_eq!(start_of_last_lines(b"a\nunfinished", 1), 2);
    }

    #[tokio::test]
    async fn line_offsets_and_counts_agree() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        std::fs::write(&path, "a\nbb\nccc\n").unwrap();
        assert_eq!(line_offset(&path, 3).await.unwrap(), 5);
        assert_eq!(count_lines(&path, 5).await.unwrap(), 2);
        assert_eq!(read_range(&path, 2, 5).await.unwrap(), b"bb\n");
    }
}
