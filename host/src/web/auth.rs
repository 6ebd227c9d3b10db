//! Who may read the dashboard: named tokens (`name:token` lines, from `[dashboard] tokens_file`
//! or the variable `tokens_env` names) and the session cookie a sign-in sets.
//!
//! The cookie is `name.begun.mac`: an HMAC, under a key the journal keeps, of the name, when
//! the session began (Unix milliseconds; it lasts [`SESSION_SECS`] from then) and a digest of
//! the token signed in with. Nothing is kept per session, sessions survive restarts, and
//! removing (or changing) a person's token ends their sessions at the next start. A sign-out
//! ends every session of that person begun until then (the journal keeps the time, see
//! `Journal::end_sessions`).

use hmac::{Hmac, Mac as _};
use sha2::{Digest as _, Sha256};

use super::people::Person;
use crate::config::{Config, secret_from_env, secret_from_file};

/// The journal's name for the key session cookies are signed with.
pub const SESSION_SECRET: &str = "dashboard-sessions";

/// The session cookie's name.
pub const COOKIE: &str = "switchyard_session";

/// How long a sign-in lasts.
pub const SESSION_SECS: u64 = 12 * 3600;

/// A token must carry at least 128 bits: 32 hex digits, or 22 characters of base64url (or of
/// any richer alphabet). With that, guessing is hopeless whatever the sign-in limit lets by.
const MIN_HEX_CHARS: usize = 32;
const MIN_CHARS: usize = 22;

/// Whether `token` is long enough for its alphabet and not a shorter string repeated
/// (`abab...`), which carries only the bits of its part.
fn strong(token: &str) -> bool {
    let length = token.chars().count();
    let hex = token.bytes().all(|b| b.is_ascii_hexdigit());
    let enough = if hex { MIN_HEX_CHARS } else { MIN_CHARS };
    let bytes = token.as_bytes();
    let repeated = (1..bytes.len())
        .filter(|part| bytes.len() % part == 0)
        .any(|part| bytes.chunks(part).all(|chunk| chunk == &bytes[..part]));
    length >= enough && !repeated
}

/// One person's token.
#[derive(Clone)]
pub struct Token {
    pub name: String,
    digest: [u8; 32],
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token").field("name", &self.name).finish()
    }
}

/// Parses `name:token` lines; blank lines and `#` comments are skipped. An error names the
/// line, never its content.
pub fn parse_tokens(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut tokens = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let number = index + 1;
        let Some((name, token)) = line.split_once(':') else {
            return Err(format!("line {number} is not `name:token`"));
        };
        let (name, token) = (name.trim(), token.trim());
        let valid_name = (1..=64).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.@".contains(&b));
        if !valid_name {
            return Err(format!(
                "line {number}: a name is 1-64 letters, digits, `-`, `_`, `.` or `@`"
            ));
        }
        if token.is_empty() {
            return Err(format!("line {number}: the token is empty"));
        }
        if !strong(token) {
            return Err(format!(
                "line {number}: the token is too weak (at least {MIN_HEX_CHARS} hex digits or {MIN_CHARS} random base64url characters, not a repeated string; make one with: openssl rand -hex 24)"
            ));
        }
        if tokens.iter().any(|(other, _)| other == name) {
            return Err(format!("line {number}: the name {name} is given twice"));
        }
        tokens.push((name.to_owned(), token.to_owned()));
    }
    if tokens.is_empty() {
        return Err("it holds no `name:token` line".to_owned());
    }
    Ok(tokens)
}

/// The tokens people sign in with, and the key their sessions are signed with.
pub struct Access {
    tokens: Vec<Token>,
    key: Vec<u8>,
}

impl Access {
    pub fn new(tokens: Vec<(String, String)>, key: &[u8]) -> Self {
        let tokens = tokens
            .into_iter()
            .map(|(name, token)| Token {
                name,
                digest: Sha256::digest(token.as_bytes()).into(),
            })
            .collect();
        Self {
            tokens,
            key: key.to_vec(),
        }
    }

    /// Whether any named token is configured (a dashboard may have only GitHub's sign-in).
    pub fn has_tokens(&self) -> bool {
        !self.tokens.is_empty()
    }

    /// The name whose token `given` is. Every token is compared, in constant time each, so the
    /// answer's timing tells nothing about which one came close.
    pub fn sign_in(&self, given: &str) -> Option<&str> {
        let digest: [u8; 32] = Sha256::digest(given.trim().as_bytes()).into();
        let mut found = None;
        for token in &self.tokens {
            if constant_time_eq(&token.digest, &digest) {
                found = Some(token.name.as_str());
            }
        }
        found
    }

    /// A session cookie's value for `name`, begun at `begun` (Unix milliseconds).
    pub fn session(&self, name: &str, begun: u64) -> Option<String> {
        let token = self.tokens.iter().find(|t| t.name == name)?;
        let mac = self.mac(token, begun);
        Some(format!("{name}.{begun}.{}", hex::encode(mac)))
    }

    /// The signed-in name a cookie value carries and when its session began, when it is
    /// genuine and not expired at `now` (Unix milliseconds).
    pub fn verify(&self, cookie: &str, now: u64) -> Option<(&str, u64)> {
        let (rest, mac) = cookie.rsplit_once('.')?;
        let (name, begun) = rest.rsplit_once('.')?;
        let begun: u64 = begun.parse().ok()?;
        if begun.saturating_add(SESSION_SECS * 1000) <= now {
            return None;
        }
        let token = self.tokens.iter().find(|t| t.name == name)?;
        let given = hex::decode(mac).ok()?;
        constant_time_eq(&self.mac(token, begun), &given).then_some((token.name.as_str(), begun))
    }

    /// A session cookie's value for `person` (signed in with GitHub), begun at `begun`:
    /// `github~ID~LOGIN.begun.mac`. No token stands behind it: the refresh (see `people`)
    /// asks GitHub again whether they may still sign in.
    pub fn person_session(&self, person: &Person, begun: u64) -> String {
        let name = format!("github~{}~{}", person.id, person.login);
        let mac = self.person_mac(&name, begun);
        format!("{name}.{begun}.{}", hex::encode(mac))
    }

    /// The person a cookie value of [`Self::person_session`] carries and when their session
    /// began, when it is genuine and not expired at `now`.
    pub fn verify_person(&self, cookie: &str, now: u64) -> Option<(Person, u64)> {
        let (rest, mac) = cookie.rsplit_once('.')?;
        let (name, begun) = rest.rsplit_once('.')?;
        let begun: u64 = begun.parse().ok()?;
        if begun.saturating_add(SESSION_SECS * 1000) <= now {
            return None;
        }
        let given = hex::decode(mac).ok()?;
        if !constant_time_eq(&self.person_mac(name, begun), &given) {
            return None;
        }
        let mut parts = name.splitn(3, '~');
        let (Some("github"), Some(id), Some(login)) = (parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        let person = Person {
            id: id.parse().ok()?,
            login: login.to_owned(),
        };
        Some((person, begun))
    }

    fn person_mac(&self, name: &str, begun: u64) -> Vec<u8> {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes a key of any length");
        // Not a token session's label: a person's name cannot pass for a token's.
        mac.update(b"switchyard dashboard github session\0");
        mac.update(name.as_bytes());
        mac.update(b"\0");
        mac.update(&begun.to_be_bytes());
        mac.finalize().into_bytes().to_vec()
    }

    /// The key sessions (and GitHub sign-ins' states) are signed with.
    pub fn key(&self) -> &[u8] {
        &self.key
    }

    /// The token the forms of the session `cookie` carry (CSRF protection): an HMAC of the
    /// session cookie, so it is the session's own, and a form from another session, an older
    /// one included, is refused.
    pub fn form_token(&self, cookie: &str) -> String {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes a key of any length");
        mac.update(b"switchyard dashboard form\0");
        mac.update(cookie.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// Whether `given` is the form token of the session `cookie`, compared in constant time.
    pub fn form_token_matches(&self, cookie: &str, given: &str) -> bool {
        constant_time_eq(self.form_token(cookie).as_bytes(), given.trim().as_bytes())
    }

    fn mac(&self, token: &Token, begun: u64) -> Vec<u8> {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes a key of any length");
        // Not the earlier cookies' label: those carried an expiry in seconds where these carry
        // a beginning in milliseconds.
        mac.update(b"switchyard dashboard session begun\0");
        mac.update(token.name.as_bytes());
        mac.update(b"\0");
        mac.update(&begun.to_be_bytes());
        mac.update(&token.digest);
        mac.finalize().into_bytes().to_vec()
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The value of cookie `name` in a `Cookie` header.
pub fn cookie<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').find_map(|pair| {
        let (key, value) = pair.trim().split_once('=')?;
        (key == name).then_some(value)
    })
}

/// Reads the `name:token` lines the config names. `Err` says what to set; it never holds a
/// token.
pub fn load_tokens(config: &Config) -> Result<Vec<(String, String)>, String> {
    let settings = &config.dashboard;
    match &settings.tokens_file {
        Some(file) => {
            let path = config.secret_path(file);
            let text = secret_from_file(&path)
                .map_err(|problem| format!("[dashboard] tokens_file: {problem}"))?;
            parse_tokens(&text).map_err(|problem| {
                format!(
                    "[dashboard] tokens_file {}: {problem}; write `name:token` lines",
                    path.display()
                )
            })
        }
        None => {
            let variable = &settings.tokens_env;
            let text = secret_from_env(variable).ok_or_else(|| {
                format!(
                    "set {variable} to `name:token` lines (one per person), or name a file of them in [dashboard] tokens_file"
                )
            })?;
            parse_tokens(&text)
                .map_err(|problem| format!("{variable}: {problem}; set it to `name:token` lines"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_parse_with_comments_and_errors_never_echo_a_token() {
        let tokens = parse_tokens(&format!("# people\nalice: {ALICE}\n\nbob:{BOB}\n")).unwrap();
        assert_eq!(
            tokens,
            vec![
                ("alice".to_owned(), ALICE.to_owned()),
                ("bob".to_owned(), BOB.to_owned())
            ]
        );
        let error = parse_tokens(&format!("alice:{ALICE}\nsecret-without-name\n")).unwrap_err();
        assert_eq!(error, "line 2 is not `name:token`");
        assert!(parse_tokens(&format!("a b:{ALICE}")).is_err());
        assert!(parse_tokens("alice:").is_err());
        assert!(parse_tokens(&format!("alice:{ALICE}\nalice:{BOB}")).is_err());
        assert!(parse_tokens("# nothing\n").is_err());
    }

    const ALICE: &str = "Vq3x9LkT2mZpR7wYc4Hn8s";
    const BOB: &str = "5f2b9c0e7d1a4b3c8e6f0a1b2c3d4e5f";

    #[test]
    fn tokens_under_128_bits_are_refused_and_never_echoed() {
        for (token, strong) in [
            // 22 base64url characters, 32 hex digits: 128 bits and more.
            (ALICE, true),
            (BOB, true),
            ("3f6b0c1e9d2a47c58e1f0b2d6a9c4e7f1a2b3c4d5e6f7081", true),
            // Hex counts 4 bits a character: 31 are not enough, nor 22.
            ("5f2b9c0e7d1a4b3c8e6f0a1b2c3d4e5", false),
            ("5f2b9c0e7d1a4b3c8e6f0a", false),
            // Short, however random it looks.
            ("Vq3x9LkT2mZpR7wYc4Hn8", false),
            ("alice-token-1", false),
            // A repetition carries the bits of its part only.
            ("abcdefghijkabcdefghijkabcdefghijk", false),
            ("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", false),
            ("Vq3x9LkT2mZpR7wYc4Hn8sVq3x9LkT2mZpR7wYc4Hn8s", false),
        ] {
            let parsed = parse_tokens(&format!("alice:{token}"));
            assert_eq!(parsed.is_ok(), strong, "{token}");
            if let Err(error) = parsed {
                assert!(
                    error.starts_with("line 1: the token is too weak"),
                    "{error}"
                );
                assert!(!error.contains(token), "{error}");
            }
        }
    }

    #[test]
    fn a_session_names_its_person_until_it_expires_or_the_token_changes() {
        let access = Access::new(vec![("alice".into(), ALICE.into())], b"key");
        assert_eq!(access.sign_in(ALICE), Some("alice"));
        assert_eq!(access.sign_in(BOB), None);
        let cookie = access.session("alice", 1000).unwrap();
        let end = 1000 + SESSION_SECS * 1000;
        assert_eq!(access.verify(&cookie, end - 1), Some(("alice", 1000)));
        assert_eq!(access.verify(&cookie, end), None);
        // Tampered beginning, another key, another token for the same name: refused.
        let later = cookie.replacen(".1000.", ".2000.", 1);
        assert_eq!(access.verify(&later, 1500), None);
        let other_key = Access::new(vec![("alice".into(), ALICE.into())], b"other");
        assert_eq!(other_key.verify(&cookie, 1500), None);
        let new_token = Access::new(vec![("alice".into(), BOB.into())], b"key");
        assert_eq!(new_token.verify(&cookie, 1500), None);
        assert_eq!(
            cookie_value("a=1; switchyard_session=x.1.ff"),
            Some("x.1.ff")
        );
    }

    #[test]
    fn a_form_token_belongs_to_its_session_alone() {
        let access = Access::new(
            vec![("alice".into(), ALICE.into()), ("bob".into(), BOB.into())],
            b"key",
        );
        let alice = access.session("alice", 1000).unwrap();
        let earlier = access.session("alice", 900).unwrap();
        let bob = access.session("bob", 1000).unwrap();
        let token = access.form_token(&alice);
        assert!(access.form_token_matches(&alice, &token));
        for (cookie, given) in [
            (&bob, token.as_str()),
            (&alice, &access.form_token(&earlier)),
            (&alice, ""),
            (&alice, &token[1..]),
        ] {
            assert!(!access.form_token_matches(cookie, given), "{given}");
        }
        let other_key = Access::new(vec![("alice".into(), ALICE.into())], b"other");
        assert!(!other_key.form_token_matches(&alice, &token));
    }

    #[test]
    fn a_persons_session_names_them_and_cannot_pass_for_a_tokens() {
        let access = Access::new(vec![("alice".into(), ALICE.into())], b"key");
        let mona = Person {
            id: 42,
            login: "mona".into(),
        };
        let cookie = access.person_session(&mona, 1000);
        assert_eq!(access.verify_person(&cookie, 1500), Some((mona, 1000)));
        assert_eq!(access.verify(&cookie, 1500), None);
        assert_eq!(
            access.verify_person(&cookie, 1000 + SESSION_SECS * 1000),
            None
        );
        // Another id or login under the same mac, another key: refused.
        for forged in [
            cookie.replacen("~42~", "~43~", 1),
            cookie.replacen("~mona.", "~hubot.", 1),
        ] {
            assert_eq!(access.verify_person(&forged, 1500), None, "{forged}");
        }
        let other_key = Access::new(Vec::new(), b"other");
        assert_eq!(other_key.verify_person(&cookie, 1500), None);
        // A token's session is no person's.
        let token = access.session("alice", 1000).unwrap();
        assert_eq!(access.verify_person(&token, 1500), None);
    }

    fn cookie_value(header: &str) -> Option<&str> {
        cookie(header, COOKIE)
    }
}
