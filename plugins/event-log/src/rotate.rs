//! The event log's file, rotated by size: once a line would take it past the limit, it is
//! renamed to `PATH.1` (replacing the one before) and a new file is started. So the log holds
//! the latest events in at most twice the limit, and a long-running host's disk never fills
//! with it.

use std::{
    fs::{File, OpenOptions},
    io::Write as _,
    path::{Path, PathBuf},
};

pub struct RotatingFile {
    path: PathBuf,
    file: File,
    len: u64,
    /// Bytes past which the file is rotated; `None`: never.
    limit: Option<u64>,
}

impl RotatingFile {
    pub fn open(path: PathBuf, limit: Option<u64>) -> std::io::Result<Self> {
        let file = append_to(&path)?;
        let len = file.metadata()?.len();
        Ok(Self {
            path,
            file,
            len,
            limit,
        })
    }

    /// Appends `line` with one write, rotating first if it would not fit.
    pub fn append(&mut self, line: &[u8]) -> std::io::Result<()> {
        let full = self
            .limit
            .is_some_and(|limit| self.len > 0 && self.len + line.len() as u64 > limit);
        if full {
            self.rotate()?;
        }
        self.file.write_all(line)?;
        self.len += line.len() as u64;
        Ok(())
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        let mut previous = self.path.clone().into_os_string();
        previous.push(".1");
        std::fs::rename(&self.path, previous)?;
        self.file = append_to(&self.path)?;
        self.len = 0;
        Ok(())
    }
}

fn append_to(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_rotates_past_its_limit_keeping_one_previous() {
        let dir = std::env::temp_dir().join(format!("event-log-rotate-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("events.jsonl");
        let _ = std::fs::remove_file(&path);
        let mut file = RotatingFile::open(path.clone(), Some(10)).unwrap();
        for line in ["one\n", "two\n", "three\n", "four\n", "five\n"] {
            file.append(line.as_bytes()).unwrap();
        }
        let read = |p: &Path| std::fs::read_to_string(p).unwrap();
        assert_eq!(read(&path), "four\nfive\n");
        assert_eq!(read(&dir.join("events.jsonl.1")), "three\n");
        // Reopened, it counts what the file holds already.
        let mut again = RotatingFile::open(path.clone(), Some(10)).unwrap();
        again.append(b"sixteen\n").unwrap();
        assert_eq!(read(&path), "sixteen\n");
        assert_eq!(read(&dir.join("events.jsonl.1")), "four\nfive\n");
        // Without a limit, it only grows.
        let mut unlimited = RotatingFile::open(path.clone(), None).unwrap();
        unlimited.append(&[b'x'; 100]).unwrap();
        assert_eq!(read(&path).len(), 108);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
