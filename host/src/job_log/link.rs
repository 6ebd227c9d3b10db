//! Links to job logs are capabilities: `{public_url}/jobs/{id}/log/{key}`, where the key is an
//! HMAC of the job id and the job's random salt under a secret the journal keeps. Whoever was
//! shown a link (on a pull request's status, a deployment, a chat message) can open that log;
//! nobody can list or guess the others, and a wrong key looks exactly like a job that does not
//! exist. The secret and the salts live in the journal, so links survive restarts and are the
//! same on every host sharing it. The salt binds a link to its job rather than to an id: a
//! journal restored from a backup holds the secret and may give an id again, never a salt.

use std::sync::Arc;

use hmac::{Hmac, Mac as _};
use sha2::Sha256;

use crate::journal::{JobId, JobRecord, JournalError, LinkSalt, Reads};

/// The journal's name for the secret log links are signed with.
pub const LINK_SECRET: &str = "job-log-links";

/// Bytes of the HMAC a link carries: 128 bits, not guessable.
const KEY_BYTES: usize = 16;

/// Length of a key with a salt in front of its HMAC, in hex.
const SALTED_KEY_HEX: usize = 2 * (LinkSalt::BYTES + KEY_BYTES);

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

    /// The full link to the log of `job`, whose salt is `salt`, as sent to GitHub.
    pub fn url(&self, job: JobId, salt: LinkSalt) -> String {
        format!("{}{}", self.base, self.path(job, salt))
    }

    /// The link's path on this host. Its key is the job's salt (when it has one) and the
    /// HMAC, both hex: the salt is no secret, and carrying it lets a forged key be turned away
    /// before the journal is asked about the job.
    pub fn path(&self, job: JobId, salt: LinkSalt) -> String {
        let shown = salt.0.map(hex::encode).unwrap_or_default();
        format!(
            "/jobs/{job}/log/{shown}{}",
            hex::encode(self.key(job, salt))
        )
    }

    /// The salt a link's `key` (from a link to `job`) was made for, if its HMAC is right
    /// (compared in constant time); `LinkSalt(None)` for a link of a job stored before salts.
    pub fn verify(&self, job: JobId, key: &str) -> Option<LinkSalt> {
        let (salt, mac) = match key.len() {
            SALTED_KEY_HEX => {
                let (salt, mac) = key.split_at(2 * LinkSalt::BYTES);
                let mut bytes = [0u8; LinkSalt::BYTES];
                hex::decode_to_slice(salt, &mut bytes).ok()?;
                (LinkSalt(Some(bytes)), mac)
            }
            _ => (LinkSalt(None), key),
        };
        let mut given = [0u8; KEY_BYTES];
        hex::decode_to_slice(mac, &mut given).ok()?;
        let right = self.mac(job, salt).verify_truncated_left(&given).is_ok();
        right.then_some(salt)
    }

    /// The job whose log the link to job `job` with key `key` opens, if any: one the journal
    /// holds with the salt the link was made for, so not another job given the same id.
    pub async fn opens(
        &self,
        journal: &dyn Reads,
        job: JobId,
        key: &str,
    ) -> Result<Option<JobRecord>, JournalError> {
        let Some(salt) = self.verify(job, key) else {
            return Ok(None);
        };
        match journal.job(job).await {
            Ok(record) if record.link_salt == salt => Ok(Some(record)),
            Ok(_) | Err(JournalError::NoSuchJob(_)) => Ok(None),
            Err(error) => Err(error),
        }
    }

    fn key(&self, job: JobId, salt: LinkSalt) -> [u8; KEY_BYTES] {
        let tag = self.mac(job, salt).finalize().into_bytes();
        let mut key = [0u8; KEY_BYTES];
        key.copy_from_slice(&tag[..KEY_BYTES]);
        key
    }

    fn mac(&self, job: JobId, salt: LinkSalt) -> Hmac<Sha256> {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.secret).expect("HMAC takes a key of any length");
        // A purpose prefix, so these tags are never valid for anything else signed with it.
        mac.update(b"switchyard job log\0");
        mac.update(&job.0.to_be_bytes());
        // A job stored before salts has none: its link is signed as it was then, so links
        // already on GitHub keep working. (The input is then 8 bytes shorter: no salted key
        // equals an unsalted one.)
        if let LinkSalt(Some(salt)) = salt {
            mac.update(&salt);
        }
        mac
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SALT: LinkSalt = LinkSalt(Some([7; LinkSalt::BYTES]));

    fn key_of(url: &str) -> &str {
        url.rsplit('/').next().unwrap()
    }

    #[test]
    fn a_link_opens_its_own_log_only() {
        let links = LogLinks::new("https://ci.example.com/", b"secret one");
        let url = links.url(JobId(7), SALT);
        let key = key_of(&url);
        assert!(
            url.starts_with("https://ci.example.com/jobs/7/log/0707"),
            "{url}"
        );
        assert_eq!(key.len(), SALTED_KEY_HEX);
        assert_eq!(links.verify(JobId(7), key), Some(SALT));
        // A link made for another salt: the salt a job given the same id again has.
        let other_salt = LinkSalt(Some([8; LinkSalt::BYTES]));
        let other = links.url(JobId(7), other_salt);
        assert_eq!(links.verify(JobId(7), key_of(&other)), Some(other_salt));
        // (job, key): another job, another secret's key, the salt swapped for another or cut
        // off, the HMAC cut or changed, not hex
        let other_secret = LogLinks::new("x", b"secret two").url(JobId(7), SALT);
        let swapped = format!("{}{}", &key_of(&other)[..32], &key[32..]);
        let mut changed = key.to_owned();
        changed.replace_range(40..41, if &key[40..41] == "0" { "1" } else { "0" });
        let cases = [
            (JobId(8), key),
            (JobId(7), key_of(&other_secret)),
            (JobId(7), &swapped),
            (JobId(7), &key[32..]),
            (JobId(7), &key[..62]),
            (JobId(7), &changed),
            (JobId(7), "zz"),
            (JobId(7), ""),
        ];
        for (job, key) in cases {
            assert_eq!(links.verify(job, key), None, "{job} {key:?}");
        }
    }

    #[test]
    fn the_same_secret_and_salt_give_the_same_links() {
        let a = LogLinks::new("http://h", b"kept in the journal");
        let b = LogLinks::new("http://h", b"kept in the journal");
        assert_eq!(a.url(JobId(1), SALT), b.url(JobId(1), SALT));
        assert_ne!(a.url(JobId(1), SALT), a.url(JobId(2), SALT));
    }

    #[test]
    fn a_job_stored_before_salts_keeps_the_link_it_was_given() {
        // The key of job 7 under "secret one" as links were made before salts: HMAC-SHA256 of
        // the purpose prefix and the id, cut to 16 bytes.
        let mut mac = Hmac::<Sha256>::new_from_slice(b"secret one").unwrap();
        mac.update(b"switchyard job log\0");
        mac.update(&7i64.to_be_bytes());
        let issued = hex::encode(&mac.finalize().into_bytes()[..KEY_BYTES]);
        let links = LogLinks::new("https://ci.example.com", b"secret one");
        assert_eq!(links.verify(JobId(7), &issued), Some(LinkSalt(None)));
        assert_eq!(
            links.path(JobId(7), LinkSalt(None)),
            format!("/jobs/7/log/{issued}")
        );
    }
}
