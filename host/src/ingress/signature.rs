//! Webhook signatures: HMAC of the raw body with the shared secret, compared in constant time.

use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::Sha256;

/// The webhook secret. Its `Debug` never shows the value.
#[derive(Clone)]
pub struct WebhookSecret(Vec<u8>);

impl WebhookSecret {
    pub fn new(secret: impl Into<Vec<u8>>) -> Self {
        Self(secret.into())
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// `sha256=<hex>`, as GitHub sends in `X-Hub-Signature-256`.
    pub fn sign_sha256(&self, body: &[u8]) -> String {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes keys of any length");
        mac.update(body);
        format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
    }
}

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret(..)")
    }
}

/// Why a signature was refused. Messages never include the secret or the expected value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("missing X-Hub-Signature-256 header")]
    Missing,
    #[error(
        "only a SHA-1 X-Hub-Signature was sent; send X-Hub-Signature-256 or set [server] accept_sha1 = true"
    )]
    Sha1NotAccepted,
    #[error("malformed signature header: expected {0}=<hex>")]
    Malformed(&'static str),
    #[error("signature does not match the payload")]
    Mismatch,
}

/// The signature headers of one request.
#[derive(Debug, Clone, Copy, Default)]
pub struct SignatureHeaders<'a> {
    pub sha256: Option<&'a str>,
    pub sha1: Option<&'a str>,
}

/// Checks `X-Hub-Signature-256`, or the legacy SHA-1 header when allowed and the SHA-256 one is
/// absent.
pub fn verify(
    secret: &WebhookSecret,
    headers: SignatureHeaders<'_>,
    body: &[u8],
    accept_sha1: bool,
) -> Result<(), SignatureError> {
    match (headers.sha256, headers.sha1) {
        (Some(signature), _) => check::<Hmac<Sha256>>(secret, "sha256", signature, body),
        (None, Some(signature)) if accept_sha1 => {
            check::<Hmac<Sha1>>(secret, "sha1", signature, body)
        }
        (None, Some(_)) => Err(SignatureError::Sha1NotAccepted),
        (None, None) => Err(SignatureError::Missing),
    }
}

fn check<M: Mac + hmac::digest::KeyInit>(
    secret: &WebhookSecret,
    prefix: &'static str,
    signature: &str,
    body: &[u8],
) -> Result<(), SignatureError> {
    let expected = signature
        .strip_prefix(prefix)
        .and_then(|s| s.strip_prefix('='))
        .and_then(|hex| hex::decode(hex.trim()).ok())
        .ok_or(SignatureError::Malformed(prefix))?;
    let mut mac = <M as hmac::digest::KeyInit>::new_from_slice(secret.as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(body);
    // verify_slice compares in constant time.
    mac.verify_slice(&expected)
        .map_err(|_| SignatureError::Mismatch)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha1_signature(secret: &[u8], body: &[u8]) -> String {
        let mut mac = <Hmac<Sha1> as hmac::digest::KeyInit>::new_from_slice(secret).unwrap();
        mac.update(body);
        format!("sha1={}", hex::encode(mac.finalize().into_bytes()))
    }

    #[test]
    fn matches_githubs_documented_example() {
        // From GitHub's "Validating webhook deliveries": secret "It's a Secret to Everybody",
        // payload "Hello, World!".
        let secret = WebhookSecret::new("It's a Secret to Everybody");
        let expected = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert_eq!(secret.sign_sha256(b"Hello, World!"), expected);
    }

    #[test]
    fn signatures_are_checked() {
        let secret = WebhookSecret::new("s3cret");
        let body = br#"{"action":"opened"}"#;
        let good256 = secret.sign_sha256(body);
        let other256 = WebhookSecret::new("other").sign_sha256(body);
        let good1 = sha1_signature(b"s3cret", body);
        let bad1 = sha1_signature(b"other", body);
        let h = |sha256, sha1| SignatureHeaders { sha256, sha1 };
        // (headers, accept_sha1, expected)
        let cases = [
            (h(Some(&good256), None), false, Ok(())),
            (
                h(Some(&other256), None),
                false,
                Err(SignatureError::Mismatch),
            ),
            (h(None, None), false, Err(SignatureError::Missing)),
            (h(None, None), true, Err(SignatureError::Missing)),
            (
                h(Some("sha256=zz"), None),
                false,
                Err(SignatureError::Malformed("sha256")),
            ),
            (
                h(Some(&good1), None),
                true,
                Err(SignatureError::Malformed("sha256")),
            ),
            (
                h(None, Some(&good1)),
                false,
                Err(SignatureError::Sha1NotAccepted),
            ),
            (h(None, Some(&good1)), true, Ok(())),
            (h(None, Some(&bad1)), true, Err(SignatureError::Mismatch)),
            // SHA-1 is only a fallback: a bad SHA-256 is not rescued by a good SHA-1.
            (
                h(Some(&other256), Some(&good1)),
                true,
                Err(SignatureError::Mismatch),
            ),
        ];
        for (headers, accept_sha1, expected) in cases {
            assert_eq!(
                verify(&secret, headers, body, accept_sha1),
                expected,
                "{headers:?}"
            );
        }
    }

    #[test]
    fn a_changed_body_fails() {
        let secret = WebhookSecret::new("s3cret");
        let signature = secret.sign_sha256(b"{\"a\":1}");
        let headers = SignatureHeaders {
            sha256: Some(&signature),
            sha1: None,
        };
        assert_eq!(
            verify(&secret, headers, b"{\"a\":2}", false),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn the_secret_stays_out_of_debug_output() {
        assert!(!format!("{:?}", WebhookSecret::new("hunter2")).contains("hunter2"));
    }
}
