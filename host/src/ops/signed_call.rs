//! Signed admin calls (`POST /admin/replay`, `POST /admin/plugins`): what the operator commands
//! send and the server checks. They use the webhook secret, so they need no second credential,
//! but what is signed differs from a webhook's in three ways: a purpose prefix and the path (no
//! webhook body, and no call to one route, is ever valid for another), a timestamp (a captured
//! call is good for [`WINDOW`] only) and a nonce (each call is accepted once; the journal keeps
//! the nonces seen, so the refusal holds across restarts and hosts sharing the journal).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::HeaderMap;
use hmac::{Hmac, Mac as _};
use sha2::Sha256;

use crate::ingress::WebhookSecret;

pub const TIMESTAMP_HEADER: &str = "x-switchyard-timestamp";
pub const NONCE_HEADER: &str = "x-switchyard-nonce";
pub const SIGNATURE_HEADER: &str = "x-switchyard-signature";

/// How far a call's timestamp may be from the server's clock, either way.
pub const WINDOW: Duration = Duration::from_secs(60);

/// A call's signature headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminSignature {
    /// Seconds since the Unix epoch.
    pub timestamp: u64,
    pub nonce: String,
    /// `sha256=` and the hex HMAC.
    pub signature: String,
}

/// Why an admin call was refused. Never holds the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdminCallError {
    #[error(
        "missing {0} header: sign admin calls with `switchyard replay` or `switchyard plugins`"
    )]
    Missing(&'static str),
    #[error("invalid {0} header")]
    Invalid(&'static str),
    #[error("the call's timestamp is {0} s away from the server's clock (at most 60 s allowed)")]
    Stale(u64),
    #[error("signature does not match")]
    Mismatch,
    #[error("this call was made before: each signed admin call is accepted once")]
    Replayed,
}

impl AdminSignature {
    /// Signs a call to `path` with `body`, now, with a fresh nonce.
    pub fn sign(secret: &WebhookSecret, path: &str, body: &[u8]) -> Self {
        let timestamp = unix_now();
        let nonce = uuid::Uuid::new_v4().to_string();
        let tag = mac(secret, path, timestamp, &nonce, body)
            .finalize()
            .into_bytes();
        Self {
            timestamp,
            nonce,
            signature: format!("sha256={}", hex::encode(tag)),
        }
    }

    pub fn headers(&self) -> [(&'static str, String); 3] {
        [
            (TIMESTAMP_HEADER, self.timestamp.to_string()),
            (NONCE_HEADER, self.nonce.clone()),
            (SIGNATURE_HEADER, self.signature.clone()),
        ]
    }

    /// Checks a call's headers against its path and body at `now` (seconds since the epoch).
    /// The caller must still claim the nonce: that needs the journal.
    pub fn verify(
        secret: &WebhookSecret,
        path: &str,
        headers: &HeaderMap,
        body: &[u8],
        now: u64,
    ) -> Result<Self, AdminCallError> {
        let header = |name: &'static str| {
            let value = headers.get(name).ok_or(AdminCallError::Missing(name))?;
            value.to_str().map_err(|_| AdminCallError::Invalid(name))
        };
        let timestamp: u64 = header(TIMESTAMP_HEADER)?
            .parse()
            .map_err(|_| AdminCallError::Invalid(TIMESTAMP_HEADER))?;
        let nonce = header(NONCE_HEADER)?;
        let valid_nonce = (16..=64).contains(&nonce.len())
            && nonce
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if !valid_nonce {
            return Err(AdminCallError::Invalid(NONCE_HEADER));
        }
        let signature = header(SIGNATURE_HEADER)?;
        let tag = signature
            .strip_prefix("sha256=")
            .and_then(|hex| hex::decode(hex).ok())
            .ok_or(AdminCallError::Invalid(SIGNATURE_HEADER))?;
        mac(secret, path, timestamp, nonce, body)
            .verify_slice(&tag)
            .map_err(|_| AdminCallError::Mismatch)?;
        // Checked after the signature, so an unsigned caller learns nothing of the clock.
        let skew = now.abs_diff(timestamp);
        if skew > WINDOW.as_secs() {
            return Err(AdminCallError::Stale(skew));
        }
        Ok(Self {
            timestamp,
            nonce: nonce.to_owned(),
            signature: signature.to_owned(),
        })
    }

    /// Until when the nonce must be remembered: past it, the timestamp alone refuses the call.
    pub fn remember_until(&self) -> u64 {
        self.timestamp + WINDOW.as_secs()
    }
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

fn mac(
    secret: &WebhookSecret,
    path: &str,
    timestamp: u64,
    nonce: &str,
    body: &[u8],
) -> Hmac<Sha256> {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    // Fields are separated by NUL, which none of them but the body can hold, and the body
    // comes last: no two calls sign the same bytes.
    for part in [
        b"switchyard admin call".as_slice(),
        path.as_bytes(),
        timestamp.to_string().as_bytes(),
        nonce.as_bytes(),
    ] {
        mac.update(part);
        mac.update(b"\0");
    }
    mac.update(body);
    mac
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(signature: &AdminSignature) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in signature.headers() {
            map.insert(name, HeaderValue::from_str(&value).unwrap());
        }
        map
    }

    #[test]
    fn a_signed_call_verifies_for_its_path_body_and_time_only() {
        let secret = WebhookSecret::new("admin-test-secret");
        let body = br#"{"delivery":"d-1"}"#;
        let signed = AdminSignature::sign(&secret, "/admin/replay", body);
        let now = signed.timestamp;
        let ok = AdminSignature::verify(&secret, "/admin/replay", &headers(&signed), body, now);
        assert_eq!(ok.as_ref().map(|s| &s.nonce), Ok(&signed.nonce));

        let other = WebhookSecret::new("another-secret");
        let webhook_style = {
            let mut map = HeaderMap::new();
            map.insert(
                "x-hub-signature-256",
                secret.sign_sha256(body).parse().unwrap(),
            );
            map
        };
        let mut other_nonce = signed.clone();
        other_nonce.nonce = uuid::Uuid::new_v4().to_string();
        // (secret, path, headers, body, now, expected)
        let cases = [
            (
                &secret,
                "/admin/plugins",
                headers(&signed),
                &body[..],
                now,
                AdminCallError::Mismatch,
            ),
            (
                &secret,
                "/admin/replay",
                headers(&signed),
                b"{}",
                now,
                AdminCallError::Mismatch,
            ),
            (
                &other,
                "/admin/replay",
                headers(&signed),
                body,
                now,
                AdminCallError::Mismatch,
            ),
            (
                &secret,
                "/admin/replay",
                headers(&other_nonce),
                body,
                now,
                AdminCallError::Mismatch,
            ),
            (
                &secret,
                "/admin/replay",
                headers(&signed),
                body,
                now + 61,
                AdminCallError::Stale(61),
            ),
            (
                &secret,
                "/admin/replay",
                headers(&signed),
                body,
                now - 61,
                AdminCallError::Stale(61),
            ),
            (
                &secret,
                "/admin/replay",
                webhook_style,
                body,
                now,
                AdminCallError::Missing(TIMESTAMP_HEADER),
            ),
        ];
        for (secret, path, headers, body, now, expected) in cases {
            assert_eq!(
                AdminSignature::verify(secret, path, &headers, body, now),
                Err(expected.clone()),
                "{expected}"
            );
        }
        let within =
            AdminSignature::verify(&secret, "/admin/replay", &headers(&signed), body, now + 60);
        assert!(within.is_ok());
    }
}
