//! Keeping a build that may use the network off the host's own: its loopback, its addresses on
//! every interface, link-local addresses (a cloud's metadata service) and the networks
//! `[sandbox] deny_networks` lists. Each such command gets a network namespace of its own
//! (bubblewrap's `--unshare-net`) reaching out through `slirp4netns`, a user-space TCP/IP stack
//! started with `--disable-host-loopback`. slirp4netns opens the build's connections from the
//! host's namespace, so the refusals are nftables rules there, on sockets of the group
//! slirp4netns runs as: a group of this host's own that nothing else has (not the build
//! user's, which the host's other processes may share, a server answering its clients
//! included). The build's own packets never reach the host's namespace to be matched. A
//! refused connection is reset at once, not left to time out.
//!
//! It must not let a build through when it cannot be set up: a command with the network is
//! refused then, saying what to install, unless the operator turned isolation off.

use std::{
    io::{Read as _, Write as _},
    os::fd::{AsRawFd as _, OwnedFd},
    process::Stdio,
    time::Duration,
};

use switchyard_plugin_api::HostError;
use tokio::process::{Child, Command};

use crate::config::{Cidr, NetworkIsolation, SandboxConfig};

/// Prefix of the host's nftables tables; the host's pid follows.
const TABLE_PREFIX: &str = "switchyard_";

/// slirp4netns runs in group `GROUP_BASE + the host's pid`: a group no user or file has, so
/// the rules match its sockets alone, and each host's rules its own builds'.
const GROUP_BASE: u32 = 3_000_000_000;

/// Longest a build's network may take to come up.
const SETUP_TIMEOUT: Duration = Duration::from_secs(20);

/// Networks no build reaches, whatever the config lists: loopback, "this network",
/// link-local (169.254.169.254 is a cloud's metadata service), and IPv6's like them.
const ALWAYS_DENIED: &[&str] = &[
    "0.0.0.0/8",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "::1/128",
    "::/128",
    "::ffff:0:0/96",
    "fe80::/10",
];

/// How commands with the network reach it, decided at start.
#[derive(Debug)]
pub(super) enum Network {
    /// In a namespace of their own through slirp4netns, the host's rules refusing what is
    /// denied.
    Isolated(Rules),
    /// In the host's namespace, as the operator chose (`network_isolation = "off"`).
    Open,
    /// Isolation cannot be set up here: commands with the network are refused, saying why.
    Unavailable(String),
}

/// The host's nftables table; deleted when dropped.
#[derive(Debug)]
pub(super) struct Rules {
    table: String,
    /// The group slirp4netns runs as, whose sockets the rules refuse.
    gid: u32,
    denied: usize,
}

impl Network {
    /// Sets up the rules (only a root host can), or says why it cannot.
    pub(super) async fn start(config: &SandboxConfig, root: bool) -> Self {
        if config.network_isolation == NetworkIsolation::Off {
            tracing::warn!(
                "[sandbox] network_isolation = \"off\": builds with the network reach what the host reaches, its own services on 127.0.0.1 included"
            );
            return Self::Open;
        }
        match Rules::install(&config.deny_networks, root).await {
            Ok(rules) => Self::Isolated(rules),
            Err(reason) => {
                tracing::warn!(
                    reason = reason.to_string(),
                    "builds cannot be kept off the host's network: entries with network = true fail until they can (install slirp4netns and nftables, run as root, or set [sandbox] network_isolation = \"off\" on purpose)"
                );
                Self::Unavailable(reason)
            }
        }
    }

    /// What `switchyard check` and the start-up log say about it.
    pub(super) fn describe(&self) -> String {
        match self {
            Self::Isolated(rules) => format!(
                "isolated (slirp4netns; refused: loopback, the host's addresses, link-local and {} listed networks)",
                rules.denied
            ),
            Self::Open => {
                "open: builds reach what the host reaches (network_isolation = \"off\")".to_owned()
            }
            Self::Unavailable(reason) => format!(
                "unavailable: {reason}; entries with network = true fail until it is (apt-get install slirp4netns nftables)"
            ),
        }
    }
}

impl Rules {
    async fn install(deny: &[Cidr], root: bool) -> Result<Self, String> {
        if !root {
            return Err("the host does not run as root, and the rules that keep builds off its network are the host's nftables rules".to_owned());
        }
        let gid = GROUP_BASE + std::process::id();
        let version = Command::new("slirp4netns")
            .arg("--version")
            .stdin(Stdio::null())
            .output()
            .await;
        if !version.is_ok_and(|out| out.status.success()) {
            return Err("slirp4netns is not installed".to_owned());
        }
        remove_dead_tables().await;
        // Named after the process, for `remove_dead_tables`, and numbered within it: hosts
        // sharing one process (tests) each keep a table of their own, so one stopping does not
        // delete, nor one starting clash with, another's.
        static TABLES: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = TABLES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let table = format!("{TABLE_PREFIX}{}_{n}", std::process::id());
        let rules = Self {
            table,
            gid,
            denied: deny.len(),
        };
        nft_script(&rules.script(deny))
            .await
            .map_err(|e| format!("nftables refused the rules: {e}"))?;
        Ok(rules)
    }

    /// The table: every connection slirp4netns opens to a denied address is refused.
    fn script(&self, deny: &[Cidr]) -> String {
        let (mut v4, mut v6): (Vec<String>, Vec<String>) = (Vec::new(), Vec::new());
        let always = ALWAYS_DENIED.iter().map(|c| (*c).to_owned());
        for cidr in always.chain(deny.iter().map(ToString::to_string)) {
            match cidr.contains(':') {
                true => v6.push(cidr),
                false => v4.push(cidr),
            }
        }
        let Self { table, gid, .. } = self;
        let (v4, v6) = (v4.join(", "), v6.join(", "));
        // `fib daddr type local`: every address of the host, on any interface, as it is now.
        // Sockets of the group only: slirp4netns's, opening the builds' connections.
        format!(
            "table inet {table} {{\n\
               set denied4 {{ type ipv4_addr; flags interval; auto-merge; elements = {{ {v4} }} }}\n\
               set denied6 {{ type ipv6_addr; flags interval; auto-merge; elements = {{ {v6} }} }}\n\
               chain output {{\n\
                 type filter hook output priority 0; policy accept;\n\
                 meta skgid {gid} fib daddr type local meta l4proto tcp reject with tcp reset\n\
                 meta skgid {gid} fib daddr type local reject\n\
                 meta skgid {gid} ip daddr @denied4 meta l4proto tcp reject with tcp reset\n\
                 meta skgid {gid} ip daddr @denied4 reject\n\
                 meta skgid {gid} ip6 daddr @denied6 meta l4proto tcp reject with tcp reset\n\
                 meta skgid {gid} ip6 daddr @denied6 reject\n\
               }}\n\
             }}\n"
        )
    }
}

impl Drop for Rules {
    fn drop(&mut self) {
        let _ = std::process::Command::new("nft")
            .args(["delete", "table", "inet", &self.table])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Tables a killed host left behind (named after its pid, `switchyard_PID_N`): they go. A live
/// host's stay.
async fn remove_dead_tables() {
    let Ok(listed) = Command::new("nft")
        .args(["list", "tables", "inet"])
        .stdin(Stdio::null())
        .output()
        .await
    else {
        return;
    };
    for line in String::from_utf8_lossy(&listed.stdout).lines() {
        let Some(name) = line.trim().strip_prefix("table inet ") else {
            continue;
        };
        let Some(pid) = name
            .strip_prefix(TABLE_PREFIX)
            .and_then(|rest| rest.split('_').next())
        else {
            continue;
        };
        let dead = pid.bytes().all(|b| b.is_ascii_digit())
            && !std::path::Path::new("/proc").join(pid).exists();
        if dead {
            let _ = nft_script(&format!("delete table inet {name}\n")).await;
        }
    }
}

async fn nft_script(script: &str) -> Result<(), String> {
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run nft: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        use tokio::io::AsyncWriteExt as _;
        stdin
            .write_all(script.as_bytes())
            .await
            .map_err(|e| format!("cannot talk to nft: {e}"))?;
    }
    let output = child
        .wait_with_output()
        .await
        .map_err(|e| format!("nft failed: {e}"))?;
    match output.status.success() {
        true => Ok(()),
        false => Err(String::from_utf8_lossy(&output.stderr).trim().to_owned()),
    }
}

/// The pipes bubblewrap reports its namespaces on and waits on before it runs the command:
/// the command starts only once its network is up.
pub struct PendingNetwork {
    info: OwnedFd,
    info_child: Option<OwnedFd>,
    block: OwnedFd,
    block_child: Option<OwnedFd>,
    gid: u32,
}

/// bubblewrap's file descriptors for the two pipes, as its arguments name them.
pub(super) const INFO_FD: i32 = 3;
pub(super) const BLOCK_FD: i32 = 4;
/// slirp4netns's: it writes `1` there once the build's interface is up.
const READY_FD: i32 = 3;

impl PendingNetwork {
    pub(super) fn new(rules: &Rules) -> std::io::Result<Self> {
        let (info, info_child) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
        let (block_child, block) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
        Ok(Self {
            info,
            info_child: Some(info_child),
            block,
            block_child: Some(block_child),
            gid: rules.gid,
        })
    }

    /// The child's ends, to be placed at `INFO_FD` and `BLOCK_FD` before bubblewrap starts.
    pub(super) fn child_fds(&self) -> (i32, i32) {
        let raw = |fd: &Option<OwnedFd>| fd.as_ref().map_or(-1, |fd| fd.as_raw_fd());
        (raw(&self.info_child), raw(&self.block_child))
    }

    /// Once the command is spawned: brings up its network and lets it run. The returned
    /// stack lives as long as the command; dropping it ends the build's network.
    pub async fn connect(mut self) -> Result<Stack, Setup> {
        // Only the child holds these now: the pipes end when it does.
        drop(self.info_child.take());
        drop(self.block_child.take());
        let failed = |why: String| {
            Setup::Failed(HostError::Run(format!(
                "cannot set up the build's network: {why}"
            )))
        };
        let info = read_all(self.info)
            .await
            .map_err(|e| failed(e.to_string()))?;
        // bubblewrap ended before it made the namespace: what it said is in its output.
        let pid = child_pid(&info).ok_or(Setup::SandboxEnded)?;
        let (ready, ready_child) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| failed(e.to_string()))?;
        let mut slirp = Command::new("slirp4netns");
        slirp
            .args([
                "--configure",
                "--mtu=65520",
                "--disable-host-loopback",
                &format!("--ready-fd={READY_FD}"),
                &pid.to_string(),
                "tap0",
            ])
            // Root still (it joins the namespace), in the group the host's rules refuse.
            .gid(self.gid)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        place_fds(&mut slirp, &[(ready_child.as_raw_fd(), READY_FD)]);
        super::die_with_host(&mut slirp);
        let mut child = slirp
            .spawn()
            .map_err(|e| failed(format!("cannot start slirp4netns: {e}")))?;
        drop(ready_child);
        let said = read_all(ready).await.map_err(|e| failed(e.to_string()))?;
        if said.first() != Some(&b'1') {
            let _ = child.start_kill();
            let mut error = String::new();
            if let Some(mut stderr) = child.stderr.take() {
                use tokio::io::AsyncReadExt as _;
                let _ =
                    tokio::time::timeout(Duration::from_secs(2), stderr.read_to_string(&mut error))
                        .await;
            }
            return Err(failed(format!("slirp4netns: {}", error.trim())));
        }
        // The stack is up: the command may run.
        let mut block = std::fs::File::from(self.block);
        match block.write_all(b"1") {
            Ok(()) => Ok(Stack { _slirp: child }),
            // No reader left: the sandbox ended while it was set up, before the command.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(Setup::SandboxEnded),
            Err(e) => Err(failed(format!("cannot start the command: {e}"))),
        }
    }
}

/// Why a build's network did not come up.
#[derive(Debug)]
pub enum Setup {
    /// The sandbox ended before its command started (bubblewrap failing to set up the
    /// namespace's loopback, seen under load): starting it again is safe, nothing of the
    /// build ran.
    SandboxEnded,
    /// The stack could not be started.
    Failed(HostError),
}

/// A build's running network stack; ended when dropped.
pub struct Stack {
    _slirp: Child,
}

/// Reads a pipe to its end, off the runtime, within the set-up's time.
async fn read_all(fd: OwnedFd) -> std::io::Result<Vec<u8>> {
    let read = tokio::task::spawn_blocking(move || {
        let mut bytes = Vec::new();
        std::fs::File::from(fd)
            .take(64 * 1024)
            .read_to_end(&mut bytes)
            .map(|_| bytes)
    });
    match tokio::time::timeout(SETUP_TIMEOUT, read).await {
        Ok(Ok(read)) => read,
        Ok(Err(e)) => Err(std::io::Error::other(e)),
        Err(_) => Err(std::io::Error::other("timed out")),
    }
}

/// bubblewrap's `"child-pid": N`: a process inside the namespaces.
fn child_pid(info: &[u8]) -> Option<u32> {
    let info: serde_json::Value = serde_json::from_slice(info).ok()?;
    info.get("child-pid")?.as_u64()?.try_into().ok()
}

/// Places `(fd, at)` pairs at the given numbers in the child, open across its `exec`.
#[allow(unsafe_code)]
pub(super) fn place_fds(command: &mut Command, fds: &[(i32, i32)]) {
    let fds: Vec<(i32, i32)> = fds.to_vec();
    // SAFETY: the closure runs in the forked child before exec and only makes the
    // async-signal-safe system calls fcntl(2) and dup2(2); it allocates nothing (the pairs
    // were copied before the fork).
    unsafe {
        command.pre_exec(move || {
            // Moved above the targets first, so placing one cannot close another.
            let mut moved = [(-1, -1); 4];
            for (slot, &(fd, at)) in moved.iter_mut().zip(fds.iter()) {
                let high = nix::libc::fcntl(fd, nix::libc::F_DUPFD_CLOEXEC, 10);
                if high < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                *slot = (high, at);
            }
            for &(high, at) in moved.iter().take(fds.len()) {
                if nix::libc::dup2(high, at) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rules_refuse_the_host_link_local_and_the_listed_networks_for_the_group_only() {
        let rules = Rules {
            table: "switchyard_1".to_owned(),
            gid: 65534,
            denied: 2,
        };
        let deny = [
            Cidr::try_from("10.0.0.0/8".to_owned()).unwrap(),
            Cidr::try_from("fd00::/8".to_owned()).unwrap(),
        ];
        let script = rules.script(&deny);
        for expected in [
            "table inet switchyard_1",
            "0.0.0.0/8, 127.0.0.0/8, 169.254.0.0/16, 10.0.0.0/8 }",
            "fe80::/10, fd00::/8 }",
            "meta skgid 65534 fib daddr type local meta l4proto tcp reject with tcp reset",
        ] {
            assert!(script.contains(expected), "{expected} missing:\n{script}");
        }
        for rule in script.lines().filter(|l| l.contains("reject")) {
            assert!(rule.trim().starts_with("meta skgid 65534 "), "{rule}");
        }
    }

    #[test]
    fn the_namespaces_pid_is_read_from_bubblewraps_report() {
        let cases: [(&[u8], Option<u32>); 3] = [
            (
                b"{\n    \"child-pid\": 4242,\n    \"net-namespace\": 1\n}",
                Some(4242),
            ),
            (b"", None),
            (b"{\"cgroup-namespace\": 1}", None),
        ];
        for (info, expected) in cases {
            assert_eq!(
                child_pid(info),
                expected,
                "{}",
                String::from_utf8_lossy(info)
            );
        }
    }
}
