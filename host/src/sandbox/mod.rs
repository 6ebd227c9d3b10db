//! The sandbox every command a plugin runs goes into: a build is untrusted code. Built on
//! bubblewrap (`bwrap`, what Flatpak uses). Inside: a PID namespace of its own (the host's
//! processes and their `/proc` entries are invisible), the system's `/usr` and a few files of
//! `/etc` read-only, a private `/tmp`, the job's workspace as the only other writable place,
//! and none of the host's own files (store, config, keys, other jobs). The environment is
//! cleared: only what the plugin asked for and the entry's `pass_env` cross. When the host runs
//! as root, the command runs as `[sandbox] run_as` (a real other uid on the host); otherwise in
//! an unprivileged user namespace. `--die-with-parent` ends it with the host. Process count and
//! memory are capped through cgroups where the machine lets the host write them (`cgroups`),
//! CPU time per process by `RLIMIT_CPU`.

mod cgroups;
mod disk;
mod fork;
mod network;

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    sync::atomic::{AtomicU64, Ordering},
};

use switchyard_plugin_api::{HostError, RunRequest};
use tokio::process::Command;

use crate::config::{ForkBinds, PluginEntry, SandboxConfig, SandboxMode};
pub use cgroups::{Cgroups, CommandGroups};
pub use disk::{Disks, is_full, unmount_all};
use network::Network;
pub use network::{PendingNetwork, Setup, Stack};

/// What the sandbox binds of the system, read-only (missing ones are skipped). Nothing here
/// holds a secret; the host's own files (store, config, keys) are elsewhere and never bound.
const SYSTEM_PATHS: &[&str] = &[
    "/usr",
    "/bin",
    "/sbin",
    "/lib",
    "/lib32",
    "/lib64",
    "/etc/alternatives",
    "/etc/ssl",
    "/etc/ca-certificates",
    "/etc/ca-certificates.conf",
    "/etc/passwd",
    "/etc/group",
    "/etc/hosts",
    "/etc/resolv.conf",
    "/etc/nsswitch.conf",
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/localtime",
    "/etc/os-release",
    "/etc/gitconfig",
];

/// `PATH` inside the sandbox.
const PATH: &str = "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin";

/// Joins the command's cgroups and caps its CPU time, then becomes the sandbox. Run by `sh` as
/// the host's user, before anything of the build exists; its arguments are the sandbox's.
const LAUNCH: &str = r#"for group in $SWITCHYARD_CGROUPS; do echo $$ > "$group/cgroup.procs" || exit 125; done
ulimit -t "$SWITCHYARD_CPU_SECS" || exit 125
unset SWITCHYARD_CGROUPS SWITCHYARD_CPU_SECS
exec "$@""#;

/// How commands are run on this host, decided at start.
#[derive(Debug)]
pub struct Sandbox {
    how: How,
    limits: Limits,
    cgroups: Cgroups,
    /// How commands with the network reach it.
    network: Network,
    /// Files holding the host's secrets (`*_file` settings): hidden even under bound paths.
    secret_files: Vec<PathBuf>,
}

#[derive(Debug, Clone)]
enum How {
    /// In bubblewrap, at this program, as this user when the host is root.
    Bwrap {
        program: PathBuf,
        run_as: Option<RunAs>,
    },
    /// Unsandboxed, as the operator chose (`mode = "none"`).
    Off,
    /// `auto` found no working bubblewrap: commands are refused, saying why.
    Unavailable(String),
}

#[derive(Debug, Clone, Copy)]
struct RunAs {
    uid: u32,
    gid: u32,
}

#[derive(Debug, Clone, Copy)]
struct Limits {
    pids: u64,
    memory_bytes: u64,
    cpu_secs: u64,
}

/// What one plugin entry's commands may have beyond the sandbox's base.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Allowance {
    pub network: bool,
    /// Host paths bound at the same place: `(path, writable)`.
    pub binds: Vec<(PathBuf, bool)>,
    /// Host variables passed in, by name: their values are read when a command starts.
    pub pass_env: Vec<String>,
    /// MiB a job's workspace holds (0: unlimited).
    pub disk_mib: u64,
    /// The entry's `settings.clone_url` template as a URL: a local repository it names is
    /// bound into the checkout's sandbox (see `services::checkout`).
    pub clone_url: Option<String>,
    /// Whether a fork's commands get the same as the rest (`trust_forks`).
    pub trust_forks: bool,
    /// What becomes of writable binds in a fork's commands.
    pub fork_binds: ForkBinds,
}

impl Allowance {
    pub fn of(entry: &PluginEntry, sandbox: &SandboxConfig) -> Self {
        Self {
            disk_mib: entry.disk_mib.unwrap_or(sandbox.disk_mib),
            network: entry.network,
            binds: entry
                .binds
                .iter()
                .map(|bind| match bind.strip_suffix(":rw") {
                    Some(path) => (PathBuf::from(path), true),
                    None => (PathBuf::from(bind), false),
                })
                .collect(),
            pass_env: entry.pass_env.clone(),
            clone_url: None,
            trust_forks: entry.trust_forks,
            fork_binds: entry.fork_binds,
        }
    }
}

/// Why the sandbox cannot be used as configured.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error(
        "[sandbox] mode = \"bwrap\", but bubblewrap does not work here: {0}. Install it (Debian and Ubuntu: `apt-get install bubblewrap`), or set mode = \"auto\" or \"none\""
    )]
    Required(String),
    #[error("[sandbox] run_as = {0:?}: no such user")]
    NoSuchUser(String),
}

/// A command ready to spawn, with the cgroups it joins (kept until it ends), and the network
/// to bring up once it is spawned (it waits for it).
pub struct Prepared {
    pub command: Command,
    pub groups: Option<CommandGroups>,
    pub network: Option<PendingNetwork>,
}

impl Sandbox {
    /// Decides how commands run here: tries a sandboxed `true` under `auto` and `bwrap`.
    pub async fn start(
        config: &SandboxConfig,
        secret_files: Vec<PathBuf>,
    ) -> Result<Self, SandboxError> {
        let limits = Limits {
            pids: config.pids,
            memory_bytes: config.memory_mib << 20,
            cpu_secs: config.cpu_secs,
        };
        let run_as = if nix::unistd::geteuid().is_root() {
            let user = nix::unistd::User::from_name(&config.run_as)
                .ok()
                .flatten()
                .ok_or_else(|| SandboxError::NoSuchUser(config.run_as.clone()))?;
            Some(RunAs {
                uid: user.uid.as_raw(),
                gid: user.gid.as_raw(),
            })
        } else {
            None
        };
        // Limits apply only to sandboxed commands, made by a root host.
        let cgroups = if run_as.is_some() && config.mode != SandboxMode::None {
            Cgroups::probe()
        } else {
            Cgroups::default()
        };
        let network = match config.mode {
            // Unsandboxed commands are in the host's namespace whatever is set.
            SandboxMode::None => Network::Open,
            _ => Network::start(config, run_as.is_some()).await,
        };
        let mut sandbox = Self {
            how: How::Off,
            limits,
            cgroups,
            network,
            secret_files,
        };
        if config.mode == SandboxMode::None {
            tracing::warn!(
                "[sandbox] mode = \"none\": commands run unsandboxed, as the host's user, and can read its secrets and files"
            );
            return Ok(sandbox);
        }
        sandbox.how = How::Bwrap {
            program: config.bwrap.clone(),
            run_as,
        };
        if let Err(reason) = sandbox.trial().await {
            match config.mode {
                SandboxMode::Bwrap => return Err(SandboxError::Required(reason)),
                _ => {
                    tracing::warn!(
                        reason = reason.to_string(),
                        "bubblewrap does not work here: every command a job runs will fail until it does (install bubblewrap, or set [sandbox] mode = \"none\" on purpose)"
                    );
                    sandbox.how = How::Unavailable(reason);
                }
            }
        }
        Ok(sandbox)
    }

    /// A sandbox that runs nothing sandboxed: for the host's own unit tests of commands.
    pub fn off() -> Self {
        Self {
            how: How::Off,
            limits: Limits {
                pids: 0,
                memory_bytes: 0,
                cpu_secs: 0,
            },
            cgroups: Cgroups::default(),
            network: Network::Open,
            secret_files: Vec::new(),
        }
    }

    /// Whether commands run as another user, whose workspace must be theirs.
    pub fn run_as(&self) -> Option<(u32, u32)> {
        match &self.how {
            How::Bwrap {
                run_as: Some(user), ..
            } => Some((user.uid, user.gid)),
            _ => None,
        }
    }

    /// What `switchyard check` and the start-up log say about it.
    pub fn describe(&self) -> String {
        match &self.how {
            How::Off => "none: commands run unsandboxed (mode = \"none\")".to_owned(),
            How::Unavailable(reason) => format!(
                "unavailable: {reason}; jobs that run commands fail until bubblewrap works (apt-get install bubblewrap)"
            ),
            How::Bwrap { program, run_as } => {
                let user = match run_as {
                    Some(user) => format!("as uid {}", user.uid),
                    None => "in a user namespace".to_owned(),
                };
                let limit = |on: bool, text: String| if on { text } else { "off".to_owned() };
                format!(
                    "bubblewrap ({}), {user}; limits: processes {}, memory {}, CPU {} s per process; network: {}",
                    program.display(),
                    limit(self.cgroups.has_pids(), self.limits.pids.to_string()),
                    limit(
                        self.cgroups.has_memory(),
                        format!("{} MiB", self.limits.memory_bytes >> 20)
                    ),
                    self.limits.cpu_secs,
                    self.network.describe(),
                )
            }
        }
    }

    /// Runs `true` in the sandbox: whether a command can start here.
    pub async fn trial(&self) -> Result<(), String> {
        let scratch = tempfile::tempdir().map_err(|e| format!("no scratch folder: {e}"))?;
        if let Some((uid, gid)) = self.run_as() {
            let _ = nix::unistd::chown(
                scratch.path(),
                Some(nix::unistd::Uid::from_raw(uid)),
                Some(nix::unistd::Gid::from_raw(gid)),
            );
        }
        let request = RunRequest {
            program: "true".to_owned(),
            ..Default::default()
        };
        let prepared = self
            .prepare(&request, scratch.path(), &Allowance::default(), "trial")
            .map_err(|e| e.to_string())?;
        let mut command = prepared.command;
        command.stdout(Stdio::null()).stderr(Stdio::piped());
        let output = command
            .output()
            .await
            .map_err(|e| format!("cannot start it: {e}"))?;
        if output.status.success() {
            Ok(())
        } else {
            let said = String::from_utf8_lossy(&output.stderr);
            Err(format!("a sandboxed `true` failed: {}", said.trim()))
        }
    }

    /// The command to spawn for `request`, sandboxed, with `workspace` as its writable place.
    /// `name` names its cgroups.
    pub fn prepare(
        &self,
        request: &RunRequest,
        workspace: &Path,
        allowance: &Allowance,
        name: &str,
    ) -> Result<Prepared, HostError> {
        let cwd = request.cwd.clone().unwrap_or_else(|| workspace.to_owned());
        let (program, run_as) = match &self.how {
            How::Off => {
                let mut command = Command::new(&request.program);
                command
                    .args(&request.args)
                    .envs(&request.env)
                    .current_dir(&cwd);
                return Ok(Prepared {
                    command,
                    groups: None,
                    network: None,
                });
            }
            How::Unavailable(reason) => {
                return Err(HostError::Run(format!(
                    "commands run only in a sandbox, and bubblewrap does not work here ({reason}): install it (Debian and Ubuntu: `apt-get install bubblewrap`), or set [sandbox] mode = \"none\" to run builds unsandboxed on purpose"
                )));
            }
            How::Bwrap { program, run_as } => (program, *run_as),
        };
        let reachable = cwd.starts_with(workspace)
            || allowance
                .binds
                .iter()
                .any(|(path, _)| cwd.starts_with(path));
        if !reachable {
            return Err(HostError::Run(format!(
                "cannot run in {}: inside the sandbox only the job's workspace and the entry's binds exist",
                cwd.display()
            )));
        }
        // A build with the network gets a namespace of its own, brought up once it is spawned.
        let network = match (&self.network, allowance.network) {
            (_, false) | (Network::Open, true) => None,
            (Network::Isolated(rules), true) => {
                Some(PendingNetwork::new(rules).map_err(|e| {
                    HostError::Run(format!("cannot set up the build's network: {e}"))
                })?)
            }
            (Network::Unavailable(reason), true) => {
                return Err(HostError::Run(format!(
                    "this entry's commands may use the network (network = true), but keeping them off the host's own network cannot be set up here: {reason}. Install slirp4netns and nftables (Debian and Ubuntu: `apt-get install slirp4netns nftables`) and run the host as root, set network = false on the entry, or set [sandbox] network_isolation = \"off\" to let builds reach what the host reaches"
                )));
            }
        };
        static COMMANDS: AtomicU64 = AtomicU64::new(0);
        let unique = format!(
            "{}-{name}-{}",
            std::process::id(),
            COMMANDS.fetch_add(1, Ordering::Relaxed)
        );
        let groups = match run_as {
            Some(_) => Some(
                self.cgroups
                    .for_command(&unique, self.limits.pids, self.limits.memory_bytes)
                    .map_err(|e| HostError::Run(format!("cannot set the build's limits: {e}")))?,
            ),
            None => None,
        };
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(LAUNCH)
            .arg("switchyard-sandbox")
            .arg(program)
            .args(self.bwrap_args(workspace, &cwd, allowance, network.is_some()))
            .env_clear()
            .env(
                "SWITCHYARD_CGROUPS",
                groups
                    .as_ref()
                    .map(|g| {
                        g.dirs()
                            .iter()
                            .map(|d| d.display().to_string())
                            .collect::<Vec<_>>()
                            .join(" ")
                    })
                    .unwrap_or_default(),
            )
            .env("SWITCHYARD_CPU_SECS", self.limits.cpu_secs.to_string())
            .env("PATH", PATH);
        die_with_host(&mut command);
        if let Some(network) = &network {
            let (info, block) = network.child_fds();
            network::place_fds(
                &mut command,
                &[(info, network::INFO_FD), (block, network::BLOCK_FD)],
            );
        }
        // Environment inside: only what is set here, handed down through the environment
        // (readable by the host's user alone), never on a command line, which every local
        // user can read in /proc: `pass_env` values and the checkout's token are secrets.
        command.env("HOME", "/tmp").env("LANG", "C.UTF-8");
        for variable in &allowance.pass_env {
            if let Ok(value) = std::env::var(variable) {
                command.env(variable, value);
            }
        }
        command.envs(&request.env);
        command.arg("--");
        if let Some(user) = run_as {
            // Dropped to the build's user inside, once the mounts are made: a real other uid.
            command.args([
                "setpriv".to_owned(),
                format!("--reuid={}", user.uid),
                format!("--regid={}", user.gid),
                "--clear-groups".to_owned(),
                "--no-new-privs".to_owned(),
                "--".to_owned(),
            ]);
        }
        command.arg(&request.program).args(&request.args);
        Ok(Prepared {
            command,
            groups,
            network,
        })
    }

    /// `isolated`: the command's network namespace is its own, brought up by the host before
    /// bubblewrap runs it (it reports the namespace on one pipe and waits on the other).
    fn bwrap_args(
        &self,
        workspace: &Path,
        cwd: &Path,
        allowance: &Allowance,
        isolated: bool,
    ) -> Vec<String> {
        let mut args: Vec<String> = [
            "--die-with-parent",
            "--new-session",
            "--unshare-pid",
            "--unshare-ipc",
            "--unshare-uts",
            "--unshare-cgroup-try",
        ]
        .map(str::to_owned)
        .into();
        if !allowance.network || isolated {
            args.push("--unshare-net".to_owned());
        }
        if isolated {
            args.extend([
                "--info-fd".to_owned(),
                network::INFO_FD.to_string(),
                "--block-fd".to_owned(),
                network::BLOCK_FD.to_string(),
            ]);
        }
        let path = |p: &Path| p.display().to_string();
        // bwrap would make /etc, for the files bound under it, private to root.
        args.extend(["--perms", "0755", "--dir", "/etc"].map(str::to_owned));
        for system in SYSTEM_PATHS {
            args.extend([
                "--ro-bind-try".to_owned(),
                system.to_string(),
                system.to_string(),
            ]);
        }
        args.extend(
            [
                "--proc", "/proc", "--dev", "/dev", "--perms", "01777", "--tmpfs", "/tmp",
            ]
            .map(str::to_owned),
        );
        // bwrap makes the folders above a bind private to root (0700): make them traversable,
        // or the build's user could not reach what is bound for it.
        let mut made = std::collections::BTreeSet::new();
        let mut parents = |target: &Path, args: &mut Vec<String>| {
            let mut ancestors: Vec<&Path> = target.ancestors().skip(1).collect();
            ancestors.reverse();
            for ancestor in ancestors {
                let bound = ancestor == Path::new("/")
                    || ancestor == Path::new("/tmp")
                    || SYSTEM_PATHS.iter().any(|p| ancestor.starts_with(p));
                if !bound && made.insert(ancestor.to_owned()) {
                    args.extend([
                        "--perms".to_owned(),
                        "0755".to_owned(),
                        "--dir".to_owned(),
                        path(ancestor),
                    ]);
                }
            }
        };
        for (bind, writable) in &allowance.binds {
            parents(bind, &mut args);
            let how = if *writable { "--bind" } else { "--ro-bind" };
            args.extend([how.to_owned(), path(bind), path(bind)]);
        }
        parents(workspace, &mut args);
        args.extend(["--bind".to_owned(), path(workspace), path(workspace)]);
        // A secret file under a bound path (a key in /etc/ssl, say) is covered up.
        for secret in &self.secret_files {
            let bound = SYSTEM_PATHS.iter().any(|p| secret.starts_with(p))
                || allowance.binds.iter().any(|(p, _)| secret.starts_with(p));
            if bound {
                args.extend(["--ro-bind".to_owned(), "/dev/null".to_owned(), path(secret)]);
            }
        }
        // The sandbox's own root (a tmpfs bwrap made) is no place to write either.
        args.extend(["--remount-ro", "/"].map(str::to_owned));
        args.extend(["--chdir".to_owned(), path(cwd)]);
        args
    }
}

/// Kills the launching `sh` if the host dies before bubblewrap's own `--die-with-parent` is in
/// place: the launch first joins cgroups, and a host killed meanwhile would otherwise leave a
/// build running under init. The signal survives the `exec` into bubblewrap (which is not
/// set-uid here), so there is no gap between the two.
#[allow(unsafe_code)]
pub(super) fn die_with_host(command: &mut Command) {
    let host = nix::unistd::getpid();
    // SAFETY: the closure runs in the forked child before exec and only makes the
    // async-signal-safe system calls prctl(2), getppid(2) and _exit(2); it allocates nothing.
    unsafe {
        command.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)?;
            // The host died between the fork and the prctl: no signal will come.
            if nix::unistd::getppid() != host {
                nix::libc::_exit(125);
            }
            Ok(())
        });
    }
}
