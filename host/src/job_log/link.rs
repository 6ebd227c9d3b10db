//! Links to job logs are capabilities: `{public_url}/jobs/{id}/log/{key}`, where the key is an
//! HMAC of the job id under a secret the journal keeps. Whoever was shown a link (on a pull
//! request's status, a deployment, a chat message) can open that log; nobody can list or guess
//! the others, and a wrong key looks exactly like a job that does not exist. The secret lives in
//! the journal, so links survive restarts and are the same on every host sharing it.

use std::sync::Arc;

use hmac::{Hmac, Mac as _};
use sha2::Sha256;

use crate::journal::JobId;

/// The journal's name for the secret log links are signed with.
pub const LINK_SECRET: &str = "job-log-links";

/// Bytes of the HMAC a link carries: 128 bits, not guessable.
const KEY_BYTES: usize = 16;

/// Makes and checks log links.
#[derive(Clone)]
pub struct LogLinks {
    base: Arc<str>,
    secret: Arc<[u8]>,
}

impl LogLinks {
    /// `base` is the host's public URL; `secret` the journal's [`LINK_SECRET`].
    pub fn new(base: &str, secret: &[u8]) -> Self {
        Self {
            base: base.trim_end_matches('/').into(),
            secret: secret.into(),
        }
    }

    /// The full link to `job`'s log, as sent to GitHub.
    pub fn url(&self, job: JobId) -> String {
        format!("{}{}", self.base, self.path(job))
    }

    /// The link's path on this host.
    pub fn path(&self, job: JobId) -> String {
        format!("/jobs/{job}/log/{}", hex::encode(self.key(job)))
    }

    /// Whether `key` (hex, from a link) is `job`'s. Compared in constant time.
    pub fn verify(&self, job: JobId, key: &str) -> bool {
        let mut given = [0u8; KEY_BYTES];
        hex::decode_to_slice(key, &mut given).is_ok()
            && self.mac(job).verify_truncated_left(&given).is_ok()
    }

    fn key(&self, job: JobId) -> [u8; KEY_BYTES] {
        let tag = self.mac(job).finalize().into_bytes();
        let mut key = [0u8; KEY_BYTES];
        key.copy_from_slice(&tag[..KEY_BYTES]);
        key
    }

    fn mac(&self, job: JobId) -> Hmac<Sha256> {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.secret).expect("HMAC takes a key of any length");
        // A purpose prefix, so these tags are never valid for anything else signed with it.
        mac.update(b"switchyard job log\0");
        mac.update(&job.0.to_be_bytes());
        mac
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_opens_its_own_log_only() {
        let links = LogLinks::new("https://ci.example.com/", b"secret one");
        let url = links.url(JobId(7));
        let key = url.rsplit('/').next().unwrap();
        assert!(
            url.starts_with("https://ci.example.com/jobs/7/log/"),
            "{url}"
        );
        assert_eq!(key.len(), 2 * KEY_BYTES);
        assert!(links.verify(JobId(7), key));
        // (job, key): another job, another secret's key, cut, changed, not hex
        let other_secret = LogLinks::new("x", b"secret two").url(JobId(7));
        let other_key = other_secret.rsplit('/').next().unwrap();
        let mut changed = key.to_owned();
        changed.replace_range(0..1, if key.starts_with('0') { "1" } else { "0" });
        let cases = [
            (JobId(8), key),
            (JobId(7), other_key),
            (JobId(7), &key[..30]),
            (JobId(7), &changed),
            (JobId(7), "zz"),
            (JobId(7), ""),
        ];
        for (job, key) in cases {
            assert!(!links.verify(job, key), "{job} {key:?}");
        }
    }

    #[test]
    fn the_same_secret_gives_the_same_links() {
        let a = LogLinks::new("http://h", b"kept in the journal");
        let b = LogLinks::new("http://h", b"kept in the journal");
        assert_eq!(a.url(JobId(1)), b.url(JobId(1)));
        assert_ne!(a.url(JobId(1)), a.url(JobId(2)));
    }
}
