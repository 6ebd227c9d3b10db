//! Limits on a sandboxed command's process tree through cgroup v1 (what this project's machines
//! offer): the `pids` controller ends a fork bomb, the `memory` controller caps what the tree
//! may use (the kernel's OOM killer ends the build, not the host). Each command gets a group of
//! its own under `switchyard/`, removed when it ends. Where a controller is not writable (the
//! host is not root, or runs in a container that hides it), that limit is not in force, and
//! `switchyard check` says so.

use std::path::{Path, PathBuf};

const ROOT: &str = "/sys/fs/cgroup";

/// The controllers this host can use.
#[derive(Debug, Clone, Default)]
pub struct Cgroups {
    pids: Option<PathBuf>,
    memory: Option<PathBuf>,
}

/// One command's groups; removed when dropped.
#[derive(Debug)]
pub struct CommandGroups {
    dirs: Vec<PathBuf>,
}

impl Cgroups {
    /// Finds the writable controllers, making `switchyard/` under each.
    pub fn probe() -> Self {
        let usable = |controller: &str| {
            let dir = Path::new(ROOT).join(controller).join("switchyard");
            std::fs::create_dir_all(&dir).ok()?;
            // Groups a killed host left behind (named after its pid): they go. A live host's,
            // even one made a moment ago and still empty, are not touched.
            for group in std::fs::read_dir(&dir).ok()?.flatten() {
                let name = group.file_name();
                let owner = name.to_string_lossy();
                let owner = owner.split('-').next().unwrap_or_default();
                let dead = !owner.is_empty() && !Path::new("/proc").join(owner).exists();
                if dead {
                    let _ = std::fs::remove_dir(group.path());
                }
            }
            // Writable by us: creating a group is what each command needs.
            let probe = dir.join(format!("probe-{}", std::process::id()));
            std::fs::create_dir(&probe).ok()?;
            let _ = std::fs::remove_dir(&probe);
            Some(dir)
        };
        Self {
            pids: usable("pids"),
            memory: usable("memory"),
        }
    }

    pub fn has_pids(&self) -> bool {
        self.pids.is_some()
    }

    pub fn has_memory(&self) -> bool {
        self.memory.is_some()
    }

    /// Makes the groups for one command, named `name`, with these limits.
    pub fn for_command(
        &self,
        name: &str,
        pids: u64,
        memory_bytes: u64,
    ) -> std::io::Result<CommandGroups> {
        let mut groups = CommandGroups { dirs: Vec::new() };
        let limits = [
            (&self.pids, "pids.max", pids),
            (&self.memory, "memory.limit_in_bytes", memory_bytes),
        ];
        for (controller, file, limit) in limits {
            let Some(controller) = controller else {
                continue;
            };
            let dir = controller.join(name);
            std::fs::create_dir(&dir)?;
            groups.dirs.push(dir.clone());
            std::fs::write(dir.join(file), limit.to_string())?;
        }
        Ok(groups)
    }
}

impl CommandGroups {
    /// The groups' folders, for the command to join before it starts.
    pub fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }
}

impl Drop for CommandGroups {
    fn drop(&mut self) {
        // Empty once the command's processes are gone (the sandbox's PID namespace ends them
        // all with its first process); one still being reaped is waited for off the runtime.
        let left: Vec<PathBuf> = self
            .dirs
            .drain(..)
            .filter(|dir| std::fs::remove_dir(dir).is_err())
            .collect();
        if !left.is_empty() {
            std::thread::spawn(move || {
                for _ in 0..100 {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                    if left
                        .iter()
                        .all(|dir| std::fs::remove_dir(dir).is_ok() || !dir.exists())
                    {
                        return;
                    }
                }
                let groups: Vec<_> = left.iter().map(|dir| dir.display().to_string()).collect();
                tracing::warn!(
                    groups = groups.join(","),
                    "cannot remove a command's cgroups"
                );
            });
        }
    }
}
