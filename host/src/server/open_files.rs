//! The open-file limit. Every connection is a file descriptor, and so are the journal, job
//! logs, plugin libraries and the pipes of running commands: the connection cap must leave room
//! for those, or a flood of sockets makes `accept` and every file open fail at once.

use nix::sys::resource::{Resource, getrlimit, setrlimit};

/// Descriptors kept for everything but connections.
pub(super) const RESERVED: u64 = 256;

/// Raises the soft open-file limit to the hard one and returns the soft limit now in force.
pub(super) fn raise_limit() -> Option<u64> {
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).ok()?;
    if soft < hard {
        match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => return Some(hard),
            Err(error) => tracing::warn!(
                error = error.to_string(),
                soft,
                hard,
                "cannot raise the open-file limit"
            ),
        }
    }
    Some(soft)
}

/// Connections that fit under an open-file limit of `limit`, at least one.
pub(super) fn room_for_connections(limit: u64) -> usize {
    usize::try_from(limit.saturating_sub(RESERVED))
        .unwrap_or(usize::MAX)
        .max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_leaves_the_reserve() {
        // (limit, room)
        let cases = [(1024, 768), (256, 1), (0, 1), (u64::MAX, usize::MAX - 256)];
        for (limit, room) in cases {
            assert_eq!(room_for_connections(limit), room, "{limit}");
        }
    }

    #[test]
    fn the_limit_is_raised_to_the_hard_limit() {
        let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
        assert_eq!(raise_limit(), Some(hard));
        assert_eq!(getrlimit(Resource::RLIMIT_NOFILE).unwrap().0, hard);
    }
}
