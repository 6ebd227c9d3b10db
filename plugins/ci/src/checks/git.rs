//! The file as the commit holds it: read from git's objects inside the job's sandbox
//! (`git ls-tree`, then `git cat-file` of the blob it names), never through the work tree, so
//! a symlink to elsewhere or a file the checkout rewrote is never what is read. Only a
//! regular file (mode 100644 or 100755) is read; a symlink, folder or submodule is refused.
//!
//! The blob and the commit's list of files are written under `.git/` of the checkout (the work
//! tree never holds them, and the build has not run yet), then read here with their size
//! bounded, so neither passes through the job's log.

use std::{
    io::Read as _,
    path::{Path, PathBuf},
};

use switchyard_plugin_api::prelude::*;

use super::{FILE, FileError};

/// The most bytes of the commit's list of files read for `paths` checks: 4 MiB.
const MAX_LIST_BYTES: usize = 4 << 20;

/// What the commit holds at [`FILE`].
#[derive(Debug, PartialEq, Eq)]
pub enum Found {
    /// No such file: the entry's `command` runs as one check.
    Missing,
    /// The file's bytes, at most the bound and one byte more (so the parser can tell it was
    /// larger).
    Bytes(Vec<u8>),
    /// Something that is not a regular file.
    Refused(FileError),
}

/// The file and the commit's files.
#[derive(Debug)]
pub struct Read {
    pub found: Found,
    /// Every file of the commit, from the root; empty when the list could not be read.
    pub files: Vec<String>,
}

const SCRIPT: &str = r#"set -u
out=.git/switchyard
entry=$(git ls-tree "$SWITCHYARD_SHA" -- "$SWITCHYARD_FILE") || exit 2
echo "entry: $entry"
git ls-tree -r -z --name-only "$SWITCHYARD_SHA" | head -c "$SWITCHYARD_LIST_BYTES" > "$out-files"
case "$entry" in
  "100644 blob "*|"100755 blob "*)
    oid=${entry#* blob }
    oid=${oid%%	*}
    git cat-file blob "$oid" | head -c "$SWITCHYARD_FILE_BYTES" > "$out-file" || exit 3
    ;;
esac
"#;

/// Reads [`FILE`] and the list of files of `sha` from the checkout in `dir`, reading at most
/// `max_bytes` of the file and one byte more.
pub async fn read(
    host: &Host,
    dir: &Path,
    sha: &str,
    max_bytes: usize,
    untrusted: bool,
) -> Result<Read, HostError> {
    let mut request = RunRequest::shell(SCRIPT)
        .cwd(dir.to_owned())
        .timeout_secs(120)
        .env("SWITCHYARD_SHA", sha)
        .env("SWITCHYARD_FILE", FILE)
        .env("SWITCHYARD_FILE_BYTES", (max_bytes + 1).to_string())
        .env("SWITCHYARD_LIST_BYTES", MAX_LIST_BYTES.to_string())
        .keep_output(16 * 1024);
    if untrusted {
        request = request.untrusted();
    }
    host.log(format!(
        "switchyard: reading {FILE} of {} from git's objects",
        short_sha(sha)
    ))
    .await;
    let output = host.run(&request).await?;
    if !output.success() {
        return Err(HostError::Run(format!(
            "reading {FILE} from the commit's objects failed ({})",
            output.ending()
        )));
    }
    let entry = output
        .output
        .lines()
        .find_map(|line| line.strip_prefix("entry: "))
        .unwrap_or_default();
    let files = bounded(&stored(dir, "files"), MAX_LIST_BYTES)
        .map(|list| {
            list.split(|&b| b == 0)
                .filter(|name| !name.is_empty())
                .filter_map(|name| String::from_utf8(name.to_vec()).ok())
                .collect()
        })
        .unwrap_or_default();
    let found = match mode(entry) {
        None => Found::Missing,
        Some("100644" | "100755") => {
            let bytes = bounded(&stored(dir, "file"), max_bytes + 1).map_err(|error| {
                HostError::Run(format!("reading {FILE} from the checkout's .git: {error}"))
            })?;
            Found::Bytes(bytes)
        }
        Some(other) => Found::Refused(FileError::whole(refusal(other))),
    };
    Ok(Read { found, files })
}

/// The mode of an `ls-tree` line (`100644 blob OID\tNAME`), `None` when there is none.
fn mode(entry: &str) -> Option<&str> {
    let entry = entry.trim();
    (!entry.is_empty()).then(|| entry.split(' ').next().unwrap_or_default())
}

fn refusal(mode: &str) -> String {
    let what = match mode {
        "120000" => "a symbolic link",
        "040000" => "a folder",
        "160000" => "a submodule",
        _ => "not a regular file",
    };
    format!("the commit's {FILE} is {what}; only a regular file is read")
}

fn stored(dir: &Path, what: &str) -> PathBuf {
    dir.join(".git").join(format!("switchyard-{what}"))
}

/// At most `limit` bytes of `path`.
fn bounded(path: &Path, limit: usize) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(limit as u64)
        .read_to_end(&mut bytes)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_regular_file_is_read() {
        assert_eq!(mode(""), None);
        assert_eq!(mode("100644 blob abc\t.switchyard.toml"), Some("100644"));
        for (entry, word) in [
            ("120000 blob abc\t.switchyard.toml", "symbolic link"),
            ("040000 tree abc\t.switchyard.toml", "folder"),
            ("160000 commit abc\t.switchyard.toml", "submodule"),
        ] {
            let refused = refusal(mode(entry).unwrap());
            assert!(refused.contains(word), "{refused}");
        }
    }
}
