//! The services plugins call back into while they run a job: checking out a commit, running a
//! command in the sandbox, named locks, and outbound HTTP (shared with the GitHub client). The
//! table that hands them to plugins across the ABI is `plugins::services`.

pub mod checkout;
pub mod deploys;
pub mod heads;
pub mod locks;
pub mod outbound;
pub mod process;
