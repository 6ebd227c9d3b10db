//! What a command running a fork's code gets of its entry's allowance: no `pass_env` values,
//! and writable binds bound read-only or not at all (`fork_binds`), unless the entry says
//! `trust_forks = true`. A cache bound `:rw` could otherwise be poisoned by a pull request for
//! the builds that follow (see docs/security.md).

use super::Allowance;
use crate::config::ForkBinds;

impl Allowance {
    /// The allowance of a command run for a fork's pull request (`RunRequest::untrusted`).
    pub fn for_fork(&self) -> Self {
        if self.trust_forks {
            return self.clone();
        }
        let binds = self
            .binds
            .iter()
            .filter(|(_, writable)| !writable || self.fork_binds == ForkBinds::ReadOnly)
            .map(|(path, _)| (path.clone(), false))
            .collect();
        Self {
            binds,
            pass_env: Vec::new(),
            ..self.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn allowance(trust_forks: bool, fork_binds: ForkBinds) -> Allowance {
        Allowance {
            network: true,
            binds: vec![
                (PathBuf::from("/mirror"), false),
                (PathBuf::from("/cache"), true),
            ],
            pass_env: vec!["DEPLOY_KEY".to_owned()],
            disk_mib: 0,
            clone_url: None,
            trust_forks,
            fork_binds,
        }
    }

    #[test]
    fn a_fork_gets_no_secrets_and_no_writable_bind_unless_trusted() {
        let read_only = allowance(false, ForkBinds::ReadOnly).for_fork();
        assert!(read_only.pass_env.is_empty());
        assert_eq!(
            read_only.binds,
            [
                (PathBuf::from("/mirror"), false),
                (PathBuf::from("/cache"), false)
            ]
        );
        let none = allowance(false, ForkBinds::None).for_fork();
        assert!(none.pass_env.is_empty());
        assert_eq!(none.binds, [(PathBuf::from("/mirror"), false)]);
        let trusted = allowance(true, ForkBinds::None);
        assert_eq!(trusted.for_fork(), trusted);
    }
}
