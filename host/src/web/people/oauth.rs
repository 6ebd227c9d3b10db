//! GitHub's web sign-in (OAuth 2.0's authorization code flow, with PKCE): the dashboard sends
//! the browser to `{web_url}/login/oauth/authorize` with a `state` and a PKCE S256 challenge,
//! and no scope (GitHub then grants only the person's public identity). GitHub sends the
//! browser back with a code, which is exchanged (with the client secret and the PKCE verifier)
//! for the person's token; that token is used once, for `GET /user` (their login and numeric
//! id), and dropped: never stored, logged, put in a cookie or on a page.
//!
//! Nothing is kept on the host between the two steps: the `state` travels in a cookie of its
//! own, signed with the session key, bound to the browser that started (a callback whose
//! `state` is not that cookie's is refused), and the PKCE verifier is derived from the `state`
//! under the same key, so only this host can answer the challenge.

use base64::Engine as _;
use hmac::{Hmac, Mac as _};
use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use super::{GitHubSignIn, Person};

/// The cookie carrying a sign-in's `state` between the two steps.
pub const STATE_COOKIE: &str = "switchyard_github_sign_in";

/// How long a sign-in may take at GitHub.
pub const STATE_SECS: u64 = 600;

/// Bytes an answer of the code exchange or of `GET /user` may have.
const MAX_ANSWER: usize = 64 << 10;

/// Why a sign-in failed; none of them carries the person's token.
#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    #[error("this sign-in was not started in this browser, or took longer than 10 minutes")]
    ForgedState,
    #[error("GitHub did not sign you in: {0}")]
    Denied(String),
    #[error("GitHub could not be asked: {0}")]
    Unreachable(String),
    #[error("the client secret is not configured: {0}")]
    NotConfigured(String),
}

fn mac(key: &[u8], label: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(label);
    for part in parts {
        mac.update(part);
        mac.update(b"\0");
    }
    mac.finalize().into_bytes().to_vec()
}

fn base64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The PKCE verifier of a sign-in: 43 base64url characters, derived from its `state`.
pub fn verifier(key: &[u8], state: &str) -> String {
    base64url(&mac(
        key,
        b"switchyard pkce verifier\0",
        &[state.as_bytes()],
    ))
}

/// The S256 challenge of `verifier`.
pub fn challenge(verifier: &str) -> String {
    base64url(&Sha256::digest(verifier.as_bytes()))
}

/// A new sign-in: its `state` (32 random bytes), and the state cookie's value, which carries
/// it, its expiry (Unix seconds), and where to go after (`next`), signed.
pub fn begin(key: &[u8], next: &str, now_secs: u64) -> Result<(String, String), String> {
    let mut random = [0u8; 32];
    getrandom::fill(&mut random).map_err(|error| error.to_string())?;
    let state = base64url(&random);
    let expires = (now_secs + STATE_SECS).to_string();
    let next = hex::encode(next.as_bytes());
    let signature = hex::encode(mac(
        key,
        b"switchyard github sign-in state\0",
        &[state.as_bytes(), expires.as_bytes(), next.as_bytes()],
    ));
    Ok((
        state.clone(),
        format!("{state}.{expires}.{next}.{signature}"),
    ))
}

/// Checks the callback's `given` state against the browser's state `cookie`: signed by this
/// host, unexpired, the same state. Returns where to go after.
pub fn check_state(
    key: &[u8],
    cookie: Option<&str>,
    given: &str,
    now_secs: u64,
) -> Result<String, SignInError> {
    let forged = || SignInError::ForgedState;
    let mut parts = cookie.ok_or_else(forged)?.split('.');
    let (Some(state), Some(expires), Some(next), Some(signature), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(forged());
    };
    let expected = mac(
        key,
        b"switchyard github sign-in state\0",
        &[state.as_bytes(), expires.as_bytes(), next.as_bytes()],
    );
    let signed = hex::decode(signature).is_ok_and(|given| constant_time_eq(&expected, &given));
    let fresh = expires.parse::<u64>().is_ok_and(|at| now_secs < at);
    let same = constant_time_eq(state.as_bytes(), given.as_bytes());
    if !(signed && fresh && same) {
        return Err(forged());
    }
    let next = hex::decode(next).map_err(|_| forged())?;
    String::from_utf8(next).map_err(|_| forged())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl GitHubSignIn {
    /// GitHub's authorize page for a sign-in with `state`: no scope, PKCE S256.
    pub fn authorize_url(&self, key: &[u8], state: &str) -> String {
        let query = form_urlencoded::Serializer::new(String::new())
            .append_pair("client_id", &self.client_id)
            .append_pair("redirect_uri", &self.callback_url)
            .append_pair("state", state)
            .append_pair("code_challenge", &challenge(&verifier(key, state)))
            .append_pair("code_challenge_method", "S256")
            .append_pair("allow_signup", "false")
            .finish();
        format!("{}/login/oauth/authorize?{query}", self.web_url)
    }

    /// Who signed in: the `code` exchanged for their token (with the verifier of `state`),
    /// then `GET /user` with it. The token goes out of scope here.
    pub async fn person(&self, key: &[u8], state: &str, code: &str) -> Result<Person, SignInError> {
        let secret = self
            .secret
            .as_deref()
            .map_err(|hint| SignInError::NotConfigured(hint.clone()))?;
        let verifier = verifier(key, state);
        let form = [
            ("client_id", self.client_id.as_str()),
            ("client_secret", secret),
            ("code", code),
            ("redirect_uri", self.callback_url.as_str()),
            ("code_verifier", verifier.as_str()),
        ];
        #[derive(Deserialize)]
        struct Exchanged {
            access_token: Option<String>,
            error: Option<String>,
            error_description: Option<String>,
        }
        let answer = self
            .http
            .post(format!("{}/login/oauth/access_token", self.web_url))
            .header("Accept", "application/json")
            .form(&form)
            .send()
            .await
            .map_err(|error| SignInError::Unreachable(unreachable("the code exchange", error)))?;
        let status = answer.status();
        let exchanged: Exchanged = read_json(answer, "the code exchange").await?;
        let token = match (exchanged.access_token, exchanged.error) {
            (Some(token), None) if status.is_success() => token,
            (_, error) => {
                // GitHub's error code and description; never the answer itself.
                let why = [error, exchanged.error_description]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join(": ");
                let why = match why.is_empty() {
                    true => format!("the code exchange answered {status}"),
                    false => why,
                };
                return Err(SignInError::Denied(why));
            }
        };
        #[derive(Deserialize)]
        struct User {
            id: u64,
            login: String,
        }
        let answer = self
            .http
            .get(format!("{}/user", self.api_url))
            .bearer_auth(&token)
            .header("Accept", "application/vnd.github+json")
            .header("X-GitHub-Api-Version", "2022-11-28")
            .send()
            .await
            .map_err(|error| SignInError::Unreachable(unreachable("GET /user", error)))?;
        drop(token);
        if !answer.status().is_success() {
            return Err(SignInError::Denied(format!(
                "GET /user answered {}",
                answer.status()
            )));
        }
        let user: User = read_json(answer, "GET /user").await?;
        let valid = !user.login.is_empty()
            && user
                .login
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if !valid {
            return Err(SignInError::Denied(
                "GET /user named no valid login".to_owned(),
            ));
        }
        Ok(Person {
            id: user.id,
            login: user.login,
        })
    }
}

/// A failed request, without its URL (the code is in none, but the habit holds).
fn unreachable(what: &str, error: reqwest::Error) -> String {
    match error.is_timeout() {
        true => format!("{what} timed out"),
        false => format!("{what} failed: {}", error.without_url()),
    }
}

/// An answer's JSON, read within [`MAX_ANSWER`] bytes.
async fn read_json<T: serde::de::DeserializeOwned>(
    mut answer: reqwest::Response,
    what: &str,
) -> Result<T, SignInError> {
    let mut body = Vec::new();
    loop {
        match answer.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > MAX_ANSWER {
                    return Err(SignInError::Unreachable(format!(
                        "{what} answered more than {} KiB",
                        MAX_ANSWER >> 10
                    )));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => break,
            Err(error) => return Err(SignInError::Unreachable(unreachable(what, error))),
        }
    }
    serde_json::from_slice(&body)
        .map_err(|_| SignInError::Unreachable(format!("{what} answered no JSON GitHub sends")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_cookie_binds_the_callback_to_its_browser_and_expires() {
        let (state, cookie) = begin(b"key", "/dashboard/jobs", 1000).unwrap();
        assert_eq!(
            check_state(b"key", Some(&cookie), &state, 1001).unwrap(),
            "/dashboard/jobs"
        );
        // Another state, no cookie, another key, too late, a cookie with its next changed.
        let (other, _) = begin(b"key", "/dashboard", 1000).unwrap();
        for (key, cookie, given, now) in [
            (&b"key"[..], Some(cookie.as_str()), other.as_str(), 1001),
            (b"key", None, state.as_str(), 1001),
            (b"other", Some(&cookie), &state, 1001),
            (b"key", Some(&cookie), &state, 1000 + STATE_SECS),
        ] {
            assert!(check_state(key, cookie, given, now).is_err());
        }
        let elsewhere = cookie.replacen(
            &hex::encode("/dashboard/jobs"),
            &hex::encode("/dashboard/xx"),
            1,
        );
        assert!(check_state(b"key", Some(&elsewhere), &state, 1001).is_err());
    }

    #[test]
    fn the_challenge_is_s256_of_a_verifier_only_the_key_gives() {
        // RFC 7636's example: this verifier has this challenge.
        assert_eq!(
            challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        let verifier = verifier(b"key", "state");
        assert_eq!(verifier.len(), 43);
        assert_ne!(verifier, super::verifier(b"other", "state"));
        assert_ne!(verifier, super::verifier(b"key", "other"));
    }
}
