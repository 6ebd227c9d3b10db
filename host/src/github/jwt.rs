//! The App's own identity: its RSA private key and the RS256 JSON Web Token GitHub asks for on
//! the App endpoints (`/app`, `/app/installations/{id}/access_tokens`, ...).
//!
//! Signed with ring directly: ring is already the one crypto provider of this binary (reqwest's
//! rustls and the host's TLS server use it), and an RS256 JWT is three base64url parts. A JWT
//! crate would bring its own backend (aws-lc or RustCrypto) beside it.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicI64, Ordering},
    },
    time::{SystemTime, UNIX_EPOCH},
};

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use ring::{
    rand::SystemRandom,
    signature::{RSA_PKCS1_SHA256, RsaKeyPair},
};
use rustls_pki_types::{PrivateKeyDer, pem::PemObject as _};

/// `iat` is set this far in the past, as GitHub advises, against a clock slightly ahead.
pub const ISSUED_BEFORE_SECS: i64 = 60;
/// A JWT is good this long after `iat`: GitHub takes at most 10 minutes ahead of now.
pub const LIFETIME_SECS: i64 = 600;
/// A JWT is reused while it has at least this long left.
const REUSE_WHILE_SECS: i64 = 120;

/// The App's private key, checked to be RSA. Never printed: its `Debug` shows its size only.
pub struct AppKey {
    pair: RsaKeyPair,
    /// The PEM's base64 lines, for job logs to mask.
    lines: Vec<String>,
}

impl std::fmt::Debug for AppKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AppKey(RSA {} bits)", self.bits())
    }
}

impl AppKey {
    /// Reads a PEM private key: PKCS#1 (`BEGIN RSA PRIVATE KEY`, what GitHub hands out) or
    /// PKCS#8 (`BEGIN PRIVATE KEY`). The error says what is wrong, never what the text is.
    pub fn from_pem(pem: &str) -> Result<Self, String> {
        let der = PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|e| {
            format!(
                "not a PEM private key ({e}): expected the .pem file GitHub made for the App, starting with -----BEGIN RSA PRIVATE KEY-----"
            )
        })?;
        let pair = match &der {
            PrivateKeyDer::Pkcs1(key) => RsaKeyPair::from_der(key.secret_pkcs1_der()),
            PrivateKeyDer::Pkcs8(key) => RsaKeyPair::from_pkcs8(key.secret_pkcs8_der()),
            PrivateKeyDer::Sec1(_) => {
                return Err(
                    "an EC key, not an RSA key: GitHub Apps sign with RSA (generate a private key on the App's settings page)".to_owned(),
                );
            }
            _ => return Err("not an RSA private key".to_owned()),
        };
        let pair = pair.map_err(|rejected| match rejected.to_string().as_str() {
            "WrongAlgorithm" => "not an RSA key: GitHub Apps sign with RSA (generate a private key on the App's settings page)".to_owned(),
            reason => format!("not a usable RSA private key ({reason})"),
        })?;
        let lines = pem
            .lines()
            .map(str::trim)
            .filter(|line| line.len() >= 16 && !line.starts_with("-----"))
            .map(str::to_owned)
            .collect();
        Ok(Self { pair, lines })
    }

    /// The key's PEM lines, each a secret for job logs to mask.
    pub fn masked_lines(&self) -> &[String] {
        &self.lines
    }

    /// The modulus size.
    pub fn bits(&self) -> usize {
        self.pair.public().modulus_len() * 8
    }

    /// An RS256 signature of `message`.
    fn sign(&self, message: &[u8]) -> Vec<u8> {
        let mut signature = vec![0; self.pair.public().modulus_len()];
        self.pair
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                message,
                &mut signature,
            )
            .expect("an RSA key of ring's own checking signs any message");
        signature
    }
}

/// Makes and reuses the App's JWTs, on a clock corrected for GitHub's.
pub struct AppJwt {
    key: Arc<AppKey>,
    /// The `iss` claim: the App id or its client id.
    issuer: String,
    /// GitHub's clock minus ours, in seconds, as learned from a refused JWT's `Date`.
    skew: AtomicI64,
    /// The JWT last made and its `exp`.
    current: Mutex<Option<(String, i64)>>,
}

impl AppJwt {
    pub fn new(key: Arc<AppKey>, issuer: String) -> Self {
        Self {
            key,
            issuer,
            skew: AtomicI64::new(0),
            current: Mutex::new(None),
        }
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Now on GitHub's clock, as far as the host knows it, in Unix seconds.
    pub fn now(&self) -> i64 {
        unix_now() + self.skew.load(Ordering::Relaxed)
    }

    /// The seconds GitHub's clock is ahead of ours (negative: behind).
    pub fn skew(&self) -> i64 {
        self.skew.load(Ordering::Relaxed)
    }

    /// A JWT with minutes left: the last one, or a new one.
    pub fn token(&self) -> String {
        let now = self.now();
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((jwt, exp)) = current.as_ref()
            && exp - now >= REUSE_WHILE_SECS
        {
            return jwt.clone();
        }
        let iat = now - ISSUED_BEFORE_SECS;
        let exp = iat + LIFETIME_SECS;
        let jwt = self.sign(iat, exp);
        *current = Some((jwt.clone(), exp));
        jwt
    }

    /// Learns GitHub's clock from the `Date` header of an answer that refused a JWT for its
    /// times, and forgets the JWT. Returns whether the header could be read.
    pub fn correct_clock(&self, date: Option<&str>) -> bool {
        let Some(github) = date.and_then(|d| httpdate::parse_http_date(d.trim()).ok()) else {
            return false;
        };
        let github = match github.duration_since(UNIX_EPOCH) {
            Ok(since) => since.as_secs() as i64,
            Err(_) => return false,
        };
        let skew = github - unix_now();
        self.skew.store(skew, Ordering::Relaxed);
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) = None;
        tracing::warn!(
            skew_secs = skew,
            "GitHub refused the App's JWT for its times: this machine's clock is off by {skew} s from GitHub's; correcting for it (fix the clock: run an NTP client)"
        );
        true
    }

    fn sign(&self, iat: i64, exp: i64) -> String {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT"}"#);
        // An App id goes as the number it is; a client id as text.
        let iss = match self.issuer.parse::<u64>() {
            Ok(id) => serde_json::json!(id),
            Err(_) => serde_json::json!(self.issuer),
        };
        let claims = serde_json::json!({"iat": iat, "exp": exp, "iss": iss});
        let claims = URL_SAFE_NO_PAD.encode(claims.to_string());
        let signed = format!("{header}.{claims}");
        let signature = URL_SAFE_NO_PAD.encode(self.key.sign(signed.as_bytes()));
        format!("{signed}.{signature}")
    }
}

/// Whether a 401 from an App endpoint refused the JWT for its `iat` or `exp`: GitHub's
/// messages name the claim.
pub fn refused_for_times(status: u16, message: &str) -> bool {
    status == 401 && (message.contains("'iat'") || message.contains("'exp'"))
}

pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> Arc<AppKey> {
        Arc::new(AppKey::from_pem(switchyard_testkit::app::TEST_APP_KEY).unwrap())
    }

    fn claims(jwt: &str) -> serde_json::Value {
        let part = jwt.split('.').nth(1).unwrap();
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
    }

    #[test]
    fn the_jwt_is_rs256_with_githubs_times_and_is_reused() {
        let jwt = AppJwt::new(key(), "12345".into());
        let token = jwt.token();
        let header: serde_json::Value = serde_json::from_slice(
            &URL_SAFE_NO_PAD
                .decode(token.split('.').next().unwrap())
                .unwrap(),
        )
        .unwrap();
        assert_eq!(header["alg"], "RS256");
        let claims = claims(&token);
        let now = unix_now();
        let iat = claims["iat"].as_i64().unwrap();
        let exp = claims["exp"].as_i64().unwrap();
        assert!((now - 61..=now - 59).contains(&iat), "{claims}");
        assert!(exp - now <= 600 && exp - now > 500, "{claims}");
        assert_eq!(claims["iss"], 12345);
        let client = AppJwt::new(key(), "Iv1.abc".into());
        assert_eq!(self::claims(&client.token())["iss"], "Iv1.abc");
        assert!(switchyard_testkit::app::verify_jwt(&token).is_ok());
        assert_eq!(jwt.token(), token, "reused while it has minutes left");
    }

    #[test]
    fn the_clock_is_corrected_from_the_date_header() {
        let jwt = AppJwt::new(key(), "1".into());
        let first = jwt.token();
        let ahead = SystemTime::now() + std::time::Duration::from_secs(3600);
        assert!(jwt.correct_clock(Some(&httpdate::fmt_http_date(ahead))));
        assert!((3598..=3601).contains(&jwt.skew()), "{}", jwt.skew());
        let second = jwt.token();
        assert_ne!(first, second, "a new JWT on the corrected clock");
        let iat = claims(&second)["iat"].as_i64().unwrap();
        assert!((unix_now() + 3600 - 62..=unix_now() + 3600 - 58).contains(&iat));
        assert!(!jwt.correct_clock(Some("yesterday")));
        assert!(!jwt.correct_clock(None));
    }

    #[test]
    fn keys_that_are_not_rsa_pem_are_refused_saying_why() {
        let cases = [
            ("", "not a PEM private key"),
            ("hunter2", "not a PEM private key"),
            (
                "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n",
                "not a usable RSA private key",
            ),
        ];
        for (pem, problem) in cases {
            let error = AppKey::from_pem(pem).unwrap_err();
            assert!(error.contains(problem), "{pem:?}: {error}");
            assert!(!error.contains("hunter2"));
        }
        let ec = rcgen::KeyPair::generate().unwrap().serialize_pem();
        let error = AppKey::from_pem(&ec).unwrap_err();
        assert!(error.contains("not an RSA key"), "{error}");
        assert_eq!(format!("{:?}", key()), "AppKey(RSA 2048 bits)");
    }

    #[test]
    fn only_time_refusals_are_retried_after_a_correction() {
        assert!(refused_for_times(
            401,
            "'Issued at' claim ('iat') must be an Integer representing a time in the past"
        ));
        assert!(refused_for_times(
            401,
            "'Expiration time' claim ('exp') is too far in the future"
        ));
        assert!(!refused_for_times(
            401,
            "A JSON web token could not be decoded"
        ));
        assert!(!refused_for_times(403, "'iat'"));
    }
}
