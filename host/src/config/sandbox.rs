//! `[sandbox]`: where the commands jobs run go (bubblewrap, by default), the limits on their
//! processes, memory, log and disk, and the networks builds may not reach.

use std::path::PathBuf;

use serde::Deserialize;

use super::{Invalid, at_least_one};

/// `[sandbox]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SandboxConfig {
    /// `auto` (bubblewrap where it works; where not, commands fail saying how to fix it),
    /// `bwrap` (required: the host does not start without it) or `none` (unsandboxed).
    pub mode: SandboxMode,
    /// The bubblewrap program.
    pub bwrap: PathBuf,
    /// The user commands run as when the host runs as root.
    pub run_as: String,
    /// Processes a command's tree may have at once (a fork bomb ends the build).
    pub pids: u64,
    /// Memory a command's tree may use, in MiB.
    pub memory_mib: u64,
    /// CPU seconds each process of a command may use.
    pub cpu_secs: u64,
    /// MiB a job's log may grow to; past it, output is dropped with a note.
    pub log_mib: u64,
    /// MiB a job's workspace holds (a filesystem of its own): a build writing more fails.
    /// 0 leaves workspaces unlimited. An entry's `disk_mib` overrides it.
    pub disk_mib: u64,
    /// MiB the workspaces' filesystem keeps free: a job starts only while its free space,
    /// less what running jobs may still write, stays above it.
    pub disk_reserve_mib: u64,
    /// `on`: a build with `network = true` reaches the outside world but nothing of the host's
    /// (refused where that cannot be set up); `off`: it reaches what the host reaches.
    pub network_isolation: NetworkIsolation,
    /// Networks a build may not reach, beside the host's own addresses, loopback and
    /// link-local ones: CIDRs such as `"10.0.0.0/8"` (a company's LAN, other hosts).
    pub deny_networks: Vec<Cidr>,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            mode: SandboxMode::default(),
            bwrap: PathBuf::from("bwrap"),
            run_as: "nobody".to_owned(),
            pids: 1024,
            memory_mib: 4096,
            cpu_secs: 7200,
            log_mib: 100,
            disk_mib: 10 * 1024,
            disk_reserve_mib: 2 * 1024,
            network_isolation: NetworkIsolation::default(),
            deny_networks: Vec::new(),
        }
    }
}

impl SandboxConfig {
    pub(super) fn validate(&self) -> Result<(), Invalid> {
        at_least_one(&[
            ("sandbox.pids", self.pids),
            ("sandbox.memory_mib", self.memory_mib),
            ("sandbox.cpu_secs", self.cpu_secs),
            ("sandbox.log_mib", self.log_mib),
        ])
    }
}

/// `[sandbox] mode`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SandboxMode {
    #[default]
    Auto,
    Bwrap,
    None,
}

/// Whether builds with the network are kept off the host's own network.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NetworkIsolation {
    #[default]
    On,
    Off,
}

/// An IP network: an address and a prefix length, `"192.168.0.0/16"` or `"fd00::/8"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Cidr {
    pub address: std::net::IpAddr,
    pub prefix: u8,
}

impl TryFrom<String> for Cidr {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        let invalid = || format!("{text:?} is not a network such as \"10.0.0.0/8\"");
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text.as_str(), None),
        };
        let address: std::net::IpAddr = address.parse().map_err(|_| invalid())?;
        let most = if address.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(prefix) => prefix.parse::<u8>().map_err(|_| invalid())?,
            None => most,
        };
        if prefix > most {
            return Err(invalid());
        }
        Ok(Self { address, prefix })
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.address, self.prefix)
    }
}
