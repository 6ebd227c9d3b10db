//! A job's workspace as a filesystem of its own, so a build cannot fill the disk the journal
//! is on: a sparse image file of the job's `disk_mib`, formatted ext4 and loop-mounted at the
//! workspace, removed with it. The host's ext4 has no project quotas, and a tmpfs would count
//! against memory. Sparse images promise more than the disk may hold, so a job's workspace is
//! made only while the free space of the workspaces' filesystem, less what running jobs may
//! still write, stays above `[sandbox] disk_reserve_mib`; until then it waits, saying why. Mounting takes root: a host that is not root leaves workspaces unlimited
//! (and says so). It must not leave mounts behind: a killed host's go at its next start.

use std::{
    collections::HashMap,
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
    process::Stdio,
    sync::Mutex,
    time::Duration,
};

use switchyard_plugin_api::HostError;
use tokio::process::Command;

/// How workspaces are limited on this host.
#[derive(Debug)]
pub struct Disks {
    how: How,
    reserve_bytes: u64,
    /// Images of running jobs' workspaces, by mount point, with their size: what they may
    /// still write counts against the free space.
    images: Mutex<HashMap<PathBuf, (PathBuf, u64)>>,
}

#[derive(Debug, Clone)]
enum How {
    Images,
    /// The host is not root, or runs commands unsandboxed: workspaces are plain folders.
    Unlimited(&'static str),
    /// Images are wanted but cannot be made here: workspaces with a limit are refused.
    Unavailable(String),
}

/// Room on the workspaces' filesystem for a new job of `asked` bytes: the free space, less what
/// running jobs and this one may still write, stays above the reserve, so that builds filling
/// their workspaces together never take the reserve that the journal's disk keeps.
pub fn room(free: u64, promised: u64, asked: u64, reserve: u64) -> Result<(), String> {
    if free.saturating_sub(promised).saturating_sub(asked) > reserve {
        return Ok(());
    }
    let mib = |bytes: u64| bytes >> 20;
    Err(format!(
        "waiting for disk space: {} MiB free on the workspaces' filesystem, {} MiB of it promised to running jobs, this job's disk_mib = {}, and disk_reserve_mib = {} stays free",
        mib(free),
        mib(promised),
        mib(asked),
        mib(reserve)
    ))
}

impl Disks {
    /// `root`: the host runs as root with commands sandboxed (it can mount, and workspaces
    /// are the build user's).
    pub async fn start(reserve_mib: u64, root: bool) -> Self {
        let how = if !root {
            How::Unlimited("the host does not run as root, and only root mounts a workspace")
        } else {
            let mkfs = Command::new("mkfs.ext4")
                .arg("-V")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .await;
            match mkfs {
                Ok(status) if status.success() => How::Images,
                _ => How::Unavailable(
                    "mkfs.ext4 is not installed (Debian and Ubuntu: `apt-get install e2fsprogs`)"
                        .to_owned(),
                ),
            }
        };
        if let How::Unlimited(why) = &how {
            tracing::warn!(
                reason = why.to_string(),
                "[sandbox] disk_mib is not enforced: a build may fill the disk its workspace is on"
            );
        }
        Self {
            how,
            reserve_bytes: reserve_mib << 20,
            images: Mutex::default(),
        }
    }

    /// Plain folders: for the host's unit tests.
    pub fn unlimited() -> Self {
        Self {
            how: How::Unlimited("unlimited for tests"),
            reserve_bytes: 0,
            images: Mutex::default(),
        }
    }

    /// What `switchyard check` and the start-up log say about it.
    pub fn describe(&self) -> String {
        match &self.how {
            How::Images => format!(
                "a filesystem of its own per job (disk_mib), {} MiB kept free",
                self.reserve_bytes >> 20
            ),
            How::Unlimited(why) => format!("unlimited: {why}"),
            How::Unavailable(why) => format!("unavailable: {why}; jobs fail until it is"),
        }
    }

    /// The limit in force on a workspace made with `disk_mib`, if any.
    pub fn limit(&self, disk_mib: u64) -> Option<u64> {
        match self.how {
            How::Images if disk_mib > 0 => Some(disk_mib),
            _ => None,
        }
    }

    /// Makes the workspace at `path` owned by `owner`, `disk_mib` large; `waiting` is told
    /// once why it waits for room.
    pub async fn make(
        &self,
        path: &Path,
        owner: Option<(u32, u32)>,
        disk_mib: u64,
        waiting: impl AsyncFnOnce(&str),
    ) -> Result<(), HostError> {
        let failed = |e: &dyn std::fmt::Display| {
            HostError::Internal(format!("cannot make the workspace {}: {e}", path.display()))
        };
        match &self.how {
            How::Unavailable(why) if disk_mib > 0 => {
                return Err(HostError::Run(format!(
                    "[sandbox] disk_mib = {disk_mib}, but a workspace of that size cannot be made here: {why}; or set disk_mib = 0 to leave workspaces unlimited"
                )));
            }
            How::Images if disk_mib > 0 => {}
            _ => return make_folder(path, owner).await.map_err(|e| failed(&e)),
        }
        let image = path.with_extension("img");
        let size = disk_mib << 20;
        self.wait_for_room(path, &image, size, waiting).await?;
        let made = self.make_image(path, &image, size, owner).await;
        if let Err(e) = made {
            self.remove(path).await;
            return Err(failed(&e));
        }
        Ok(())
    }

    async fn wait_for_room(
        &self,
        path: &Path,
        image: &Path,
        size: u64,
        waiting: impl AsyncFnOnce(&str),
    ) -> Result<(), HostError> {
        let dir = path.parent().unwrap_or(Path::new("/")).to_owned();
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(|e| HostError::Internal(format!("cannot make {}: {e}", dir.display())))?;
        let mut waiting = Some(waiting);
        loop {
            let free = nix::sys::statvfs::statvfs(&dir)
                .map(|fs| free_bytes(&fs))
                .map_err(|e| HostError::Internal(format!("cannot read free space: {e}")))?;
            // Checked and claimed under one lock: two jobs cannot take the same room.
            let refused = {
                let mut images = self.images();
                let promised = images
                    .values()
                    .map(|(image, size)| left(image, *size))
                    .sum();
                let room = room(free, promised, size, self.reserve_bytes);
                if room.is_ok() {
                    images.insert(path.to_owned(), (image.to_owned(), size));
                }
                room.err()
            };
            let Some(why) = refused else {
                return Ok(());
            };
            if let Some(waiting) = waiting.take() {
                tracing::info!(workspace = %path.display(), why = why.to_string(), "a job waits to start");
                waiting(&why).await;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    async fn make_image(
        &self,
        path: &Path,
        image: &Path,
        size: u64,
        owner: Option<(u32, u32)>,
    ) -> std::io::Result<()> {
        let file = tokio::fs::File::create(image).await?;
        file.set_len(size).await?;
        drop(file);
        // No journal: a workspace does not outlive a crash. The root folder is the build's.
        let (uid, gid) = owner.unwrap_or((0, 0));
        run(Command::new("mkfs.ext4")
            .args(["-q", "-F", "-m", "0", "-O", "^has_journal", "-E"])
            .arg(format!("root_owner={uid}:{gid},nodiscard"))
            .arg(image))
        .await?;
        tokio::fs::create_dir_all(path).await?;
        run(Command::new("mount")
            .args(["-o", "loop,nosuid,nodev,noatime"])
            .arg(image)
            .arg(path))
        .await?;
        let _ = tokio::fs::remove_dir(path.join("lost+found")).await;
        Ok(())
    }

    /// Unmounts and removes a workspace made by `make`, with its image; a plain folder is left
    /// to the caller. Whether it was an image.
    pub async fn remove(&self, path: &Path) -> bool {
        let Some((image, _)) = self.images().remove(path) else {
            return false;
        };
        unmount(path).await;
        let _ = tokio::fs::remove_file(&image).await;
        let _ = tokio::fs::remove_dir(path).await;
        true
    }

    fn images(&self) -> std::sync::MutexGuard<'_, HashMap<PathBuf, (PathBuf, u64)>> {
        self.images.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// What an image of `size` may still take of the disk: what it has not yet allocated.
fn left(image: &Path, size: u64) -> u64 {
    let allocated = std::fs::metadata(image).map_or(0, |m| m.blocks() * 512);
    size.saturating_sub(allocated)
}

/// Unmounts every workspace under `dir`: at start, those a killed host left mounted.
pub async fn unmount_all(dir: &Path) {
    let Ok(mounts) = tokio::fs::read_to_string("/proc/self/mountinfo").await else {
        return;
    };
    // The fifth field is the mount point, with spaces and the like escaped as octal.
    let mut points: Vec<PathBuf> = mounts
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|point| PathBuf::from(unescape(point)))
        .filter(|point| point.starts_with(dir) && point != dir)
        .collect();
    // Deepest first, should a build's mount sit in another.
    points.sort_by_key(|point| std::cmp::Reverse(point.components().count()));
    for point in points {
        tracing::info!(workspace = %point.display(), "unmounting a workspace a killed host left");
        unmount(&point).await;
    }
}

/// `/proc/self/mountinfo`'s octal escapes (`\040` for a space) undone.
fn unescape(field: &str) -> String {
    let mut out = Vec::new();
    let bytes = field.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).and_then(|digits| {
            let text = std::str::from_utf8(digits).ok()?;
            u8::from_str_radix(text, 8).ok()
        });
        match (bytes[i], octal) {
            (b'\\', Some(byte)) => {
                out.push(byte);
                i += 4;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Detaches the mount at once (a build's last process may still hold a file); the loop device
/// goes with the last user, as `mount -o loop` set it to.
async fn unmount(path: &Path) {
    if let Err(error) = run(Command::new("umount").arg("--lazy").arg(path)).await {
        tracing::warn!(workspace = %path.display(), error = error.to_string(), "cannot unmount a workspace");
    }
}

async fn make_folder(path: &Path, owner: Option<(u32, u32)>) -> std::io::Result<()> {
    tokio::fs::create_dir_all(path).await?;
    if let Some((uid, gid)) = owner {
        nix::unistd::chown(
            path,
            Some(nix::unistd::Uid::from_raw(uid)),
            Some(nix::unistd::Gid::from_raw(gid)),
        )?;
    }
    Ok(())
}

async fn run(command: &mut Command) -> std::io::Result<()> {
    let output = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .await?;
    match output.status.success() {
        true => Ok(()),
        false => Err(std::io::Error::other(format!(
            "{:?}: {}",
            command.as_std().get_program(),
            String::from_utf8_lossy(&output.stderr).trim()
        ))),
    }
}

/// Whether the filesystem at `path` is full: what a build that wrote past its limit leaves.
pub fn is_full(path: &Path) -> bool {
    nix::sys::statvfs::statvfs(path).is_ok_and(|fs| free_bytes(&fs) < 1 << 20)
}

/// Bytes an unprivileged writer may still write on a filesystem.
fn free_bytes(fs: &nix::sys::statvfs::Statvfs) -> u64 {
    fs.blocks_available().saturating_mul(fs.fragment_size())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_starts_only_while_the_reserve_stays_free() {
        const MIB: u64 = 1 << 20;
        // (free, promised, asked, reserve, starts)
        let cases = [
            (100 * MIB, 0, 10 * MIB, 20 * MIB, true),
            (100 * MIB, 69 * MIB, 10 * MIB, 20 * MIB, true),
            (100 * MIB, 70 * MIB, 10 * MIB, 20 * MIB, false),
            // Its own size counts: a job larger than the room left waits.
            (100 * MIB, 0, 79 * MIB, 20 * MIB, true),
            (100 * MIB, 0, 90 * MIB, 20 * MIB, false),
            (100 * MIB, 200 * MIB, 0, 0, false),
            (0, 0, MIB, 0, false),
        ];
        for (free, promised, asked, reserve, starts) in cases {
            let room = room(free, promised, asked, reserve);
            assert_eq!(room.is_ok(), starts, "{free} {promised} {asked} {reserve}");
        }
        let why = room(100 * MIB, 80 * MIB, 10 * MIB, 20 * MIB).unwrap_err();
        assert_eq!(
            why,
            "waiting for disk space: 100 MiB free on the workspaces' filesystem, 80 MiB of it promised to running jobs, this job's disk_mib = 10, and disk_reserve_mib = 20 stays free"
        );
    }

    #[test]
    fn mount_points_are_read_with_their_escapes_undone() {
        let cases = [
            ("/srv/work/1", "/srv/work/1"),
            ("/srv/my\\040work/1", "/srv/my work/1"),
            ("/a\\134b", "/a\\b"),
            ("/trailing\\04", "/trailing\\04"),
        ];
        for (field, expected) in cases {
            assert_eq!(unescape(field), expected);
        }
    }
}
