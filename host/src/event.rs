//! What a delivery is once ingress has checked it: its id, its typed event kind, the few facts
//! the host reads (parsed from the raw bytes without building a JSON tree), and the raw payload.

use std::fmt;

use bytes::Bytes;
use serde::Deserialize;

/// `X-GitHub-Delivery`: a GUID from GitHub, or any short token from other senders.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DeliveryId(String);

impl DeliveryId {
    /// Accepts 1-100 characters of letters, digits, `-`, `_` and `.` (GitHub sends GUIDs).
    pub fn parse(s: &str) -> Option<Self> {
        let valid = (1..=100).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        valid.then(|| Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DeliveryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `X-GitHub-Event`, checked once at ingress. GitHub adds event kinds over time, so any
/// well-formed name is accepted and stored; plugins subscribe to the ones they know.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EventKind(String);

impl EventKind {
    /// Accepts 1-64 lowercase letters, digits and `_`, the shape of every GitHub event name.
    pub fn parse(s: &str) -> Option<Self> {
        let valid = (1..=64).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        valid.then(|| Self(s.to_owned()))
    }

    /// GitHub's hook-creation handshake: answered, never stored or dispatched.
    pub fn is_ping(&self) -> bool {
        self.0 == "ping"
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The payload fields the host reads: `action` and `repository.full_name` route the delivery,
/// and `sender.login` goes to plugins with them. serde skips everything else without allocating.
#[derive(Debug, Default, Clone, PartialEq, Eq, Deserialize)]
pub struct PayloadFacts {
    pub action: Option<String>,
    #[serde(default, deserialize_with = "full_name", rename = "repository")]
    pub repository: Option<String>,
    #[serde(default, deserialize_with = "login", rename = "sender")]
    pub sender: Option<String>,
}

fn full_name<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    struct Repository {
        full_name: Option<String>,
    }
    Ok(Option::<Repository>::deserialize(d)?.and_then(|r| r.full_name))
}

fn login<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    struct User {
        login: Option<String>,
    }
    Ok(Option::<User>::deserialize(d)?.and_then(|u| u.login))
}

impl PayloadFacts {
    /// Reads `action`, `repository.full_name` and `sender.login`, checking on the way that the
    /// whole body is one JSON object.
    pub fn parse(payload: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(payload)
    }
}

/// A verified delivery, ready for the journal.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub id: DeliveryId,
    pub kind: EventKind,
    pub facts: PayloadFacts,
    /// The JSON payload exactly as GitHub sent it (decoded from `payload=` for form bodies).
    pub payload: Bytes,
    /// RFC 3339, UTC.
    pub received_at: String,
}

/// Now, as RFC 3339 in UTC: the journal's timestamp format.
pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .expect("formatting the current UTC time cannot fail")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_facts_come_from_the_payload() {
        let facts =
            |action: Option<&str>, repository: Option<&str>, sender: Option<&str>| PayloadFacts {
                action: action.map(str::to_owned),
                repository: repository.map(str::to_owned),
                sender: sender.map(str::to_owned),
            };
        let cases = [
            (
                r#"{"action":"opened","repository":{"full_name":"octo/repo","id":1},"sender":{"login":"mona","id":2}}"#,
                facts(Some("opened"), Some("octo/repo"), Some("mona")),
            ),
            (
                r#"{"ref":"refs/heads/main","repository":{"full_name":"octo/repo"}}"#,
                facts(None, Some("octo/repo"), None),
            ),
            (
                r#"{"action":"created","repository":null,"sender":{"type":"Bot"}}"#,
                facts(Some("created"), None, None),
            ),
            (
                r#"{"zen":"Keep it logically awesome."}"#,
                facts(None, None, None),
            ),
        ];
        for (payload, expected) in cases {
            assert_eq!(
                PayloadFacts::parse(payload.as_bytes()).unwrap(),
                expected,
                "{payload}"
            );
        }
    }

    #[test]
    fn malformed_payloads_are_refused() {
        for payload in [
            "",
            "{",
            "[1,2]",
            "\"text\"",
            r#"{"action": 3}"#,
            r#"{"sender": "mona"}"#,
            "{} trailing",
        ] {
            assert!(
                PayloadFacts::parse(payload.as_bytes()).is_err(),
                "{payload:?}"
            );
        }
    }

    #[test]
    fn every_fixture_payload_yields_its_facts() {
        let fixtures: serde_json::Value = serde_json::from_slice(
            &std::fs::read(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/fixtures/webhook-examples.json"
            ))
            .unwrap(),
        )
        .unwrap();
        let mut checked = 0;
        for hook in fixtures.as_array().unwrap() {
            for example in hook["examples"].as_array().unwrap() {
                let bytes = serde_json::to_vec(example).unwrap();
                let facts = PayloadFacts::parse(&bytes).unwrap();
                assert_eq!(facts.action.as_deref(), example["action"].as_str());
                assert_eq!(
                    facts.repository.as_deref(),
                    example["repository"]["full_name"].as_str()
                );
                assert_eq!(facts.sender.as_deref(), example["sender"]["login"].as_str());
                checked += 1;
            }
        }
        assert!(checked > 100, "only {checked} examples");
    }

    #[test]
    fn ids_and_event_kinds_are_checked() {
        assert!(DeliveryId::parse("72d3162e-cc78-11e3-81ab-4c9367dc0958").is_some());
        for bad in ["", "a b", "../x", &"x".repeat(101)] {
            assert!(DeliveryId::parse(bad).is_none(), "{bad:?}");
        }
        assert!(EventKind::parse("pull_request").is_some());
        assert!(EventKind::parse("ping").unwrap().is_ping());
        for bad in ["", "Pull_Request", "pull-request", "a.b", &"x".repeat(65)] {
            assert!(EventKind::parse(bad).is_none(), "{bad:?}");
        }
    }
}
