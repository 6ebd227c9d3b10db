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
/// and `sender.login` goes to plugins with them. Everything else is skipped without allocating.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PayloadFacts {
    pub action: Option<String>,
    pub repository: Option<String>,
    pub sender: Option<String>,
    /// `repository.private`: whether the dashboard may show the repository to visitors
    /// (`None` when the payload does not say, which counts as private).
    pub private: Option<bool>,
}

/// Why a payload is not a delivery, in GitHub's terms: what is wrong with the body, never
/// which Rust type failed to parse.
#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    #[error("the payload is not UTF-8 (invalid byte at offset {0})")]
    NotUtf8(usize),
    #[error("the payload must be a JSON object")]
    NotAnObject,
    #[error("the payload is not valid JSON: {0}")]
    Syntax(serde_json::Error),
    #[error("invalid payload: {0}")]
    Field(serde_json::Error),
}

impl PayloadFacts {
    /// Reads `action`, `repository.full_name` and `sender.login`, checking on the way that the
    /// whole body is UTF-8 and one JSON object whose known fields have GitHub's types.
    pub fn parse(payload: &[u8]) -> Result<Self, PayloadError> {
        // serde_json skips ignored strings without checking their UTF-8: check it all first,
        // so no plugin is ever handed a payload it cannot read.
        let text =
            std::str::from_utf8(payload).map_err(|e| PayloadError::NotUtf8(e.valid_up_to()))?;
        if !text.trim_start().starts_with('{') {
            return Err(PayloadError::NotAnObject);
        }
        serde_json::from_str::<Facts>(text)
            .map(|Facts(facts)| facts)
            .map_err(|error| match error.classify() {
                serde_json::error::Category::Data => PayloadError::Field(error),
                _ => PayloadError::Syntax(error),
            })
    }
}

/// Deserializes [`PayloadFacts`] with errors that name the field and the type GitHub sends.
struct Facts(PayloadFacts);

impl<'de> Deserialize<'de> for Facts {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(FactsVisitor).map(Facts)
    }
}

struct FactsVisitor;

impl<'de> serde::de::Visitor<'de> for FactsVisitor {
    type Value = PayloadFacts;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut facts = PayloadFacts::default();
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match key.as_ref() {
                "action" => facts.action = map.next_value_seed(Text("action"))?,
                "repository" => {
                    (facts.repository, facts.private) = map.next_value_seed(REPOSITORY)?
                }
                "sender" => facts.sender = map.next_value_seed(SENDER)?.0,
                _ => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
        }
        Ok(facts)
    }
}

/// Visitor methods that refuse a JSON type with the field's own message (`self.wrong()`),
/// rather than serde's, which names Rust types.
macro_rules! refuse_scalars {
    ($($method:ident($kind:ty)),*) => {$(
        fn $method<E: serde::de::Error>(self, _: $kind) -> Result<Self::Value, E> {
            Err(self.wrong())
        }
    )*};
}

/// A string field, or null: anything else is an error naming the field.
struct Text(&'static str);

impl<'de> serde::de::DeserializeSeed<'de> for Text {
    type Value = Option<String>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Text {
    type Value = Option<String>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{}\" must be a string", self.0)
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Some(v.to_owned()))
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    refuse_scalars!(
        visit_bool(bool),
        visit_i64(i64),
        visit_u64(u64),
        visit_f64(f64)
    );

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
        Err(self.wrong())
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
        Err(self.wrong())
    }
}

impl Text {
    fn wrong<E: serde::de::Error>(&self) -> E {
        E::custom(format_args!("\"{}\" must be a string", self.0))
    }
}

/// An object field (or null) of which one string member is read: `repository.full_name`,
/// with `repository.private` when `flag` names it (any other type there counts as unsaid).
struct Member {
    field: &'static str,
    member: &'static str,
    /// `field.member`, for the member's own errors.
    path: &'static str,
    flag: Option<&'static str>,
}

const REPOSITORY: Member = Member {
    field: "repository",
    member: "full_name",
    path: "repository.full_name",
    flag: Some("private"),
};
const SENDER: Member = Member {
    field: "sender",
    member: "login",
    path: "sender.login",
    flag: None,
};

impl<'de> serde::de::DeserializeSeed<'de> for Member {
    type Value = (Option<String>, Option<bool>);

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Member {
    type Value = (Option<String>, Option<bool>);

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{}\" must be an object", self.field)
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        Ok((None, None))
    }

    fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        Ok((None, None))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let (mut value, mut flag) = (None, None);
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if key == self.member {
                value = map.next_value_seed(Text(self.path))?;
            } else if self.flag == Some(key.as_ref()) {
                flag = map.next_value::<serde_json::Value>()?.as_bool();
            } else {
                map.next_value::<serde::de::IgnoredAny>()?;
            }
        }
        Ok((value, flag))
    }

    refuse_scalars!(visit_str(&str));

    refuse_scalars!(
        visit_bool(bool),
        visit_i64(i64),
        visit_u64(u64),
        visit_f64(f64)
    );

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
        Err(self.wrong())
    }
}

impl Member {
    fn wrong<E: serde::de::Error>(&self) -> E {
        E::custom(format_args!("\"{}\" must be an object", self.field))
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
    /// The request's headers as received (names lowercase), signatures and credentials masked
    /// (see `ingress::stored_headers`), for the dashboard. Empty for deliveries stored before
    /// headers were kept, and in deliveries read back for a job (only `Journal::delivery` reads
    /// them).
    pub headers: Vec<(String, String)>,
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
                private: None,
            };
        let cases = [
            (
                r#"{"action":"opened","repository":{"full_name":"octo/repo","id":1,"private":false},"sender":{"login":"mona","id":2}}"#,
                PayloadFacts {
                    private: Some(false),
                    ..facts(Some("opened"), Some("octo/repo"), Some("mona"))
                },
            ),
            (
                r#"{"repository":{"private":true,"full_name":"octo/secret"}}"#,
                PayloadFacts {
                    private: Some(true),
                    ..facts(None, Some("octo/secret"), None)
                },
            ),
            // Not a boolean: unsaid, which the dashboard counts as private.
            (
                r#"{"repository":{"full_name":"octo/odd","private":"no"}}"#,
                facts(None, Some("octo/odd"), None),
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
    fn malformed_payloads_are_refused_in_githubs_terms() {
        // (payload, the error's message starts with)
        let cases: [(&[u8], &str); 14] = [
            (b"", "the payload must be a JSON object"),
            (b"{", "the payload is not valid JSON: EOF while parsing"),
            (b"[1,2]", "the payload must be a JSON object"),
            (b"[null]", "the payload must be a JSON object"),
            (b"\"text\"", "the payload must be a JSON object"),
            (
                b"{} trailing",
                "the payload is not valid JSON: trailing characters",
            ),
            (
                b"{\"action\": 3}",
                "invalid payload: \"action\" must be a string",
            ),
            (
                b"{\"action\": {}}",
                "invalid payload: \"action\" must be a string",
            ),
            (
                b"{\"sender\": \"mona\"}",
                "invalid payload: \"sender\" must be an object",
            ),
            (
                b"{\"repository\": [1]}",
                "invalid payload: \"repository\" must be an object",
            ),
            (
                b"{\"repository\": 1}",
                "invalid payload: \"repository\" must be an object",
            ),
            (
                b"{\"repository\": {\"full_name\": 1}}",
                "invalid payload: \"repository.full_name\" must be a string",
            ),
            (
                b"{\"sender\": {\"login\": false}}",
                "invalid payload: \"sender.login\" must be a string",
            ),
            (
                b"{\"ignored\": \"caf\xc3\", \"action\": \"opened\"}",
                "the payload is not UTF-8 (invalid byte at offset 16)",
            ),
        ];
        for (payload, expected) in cases {
            let error = PayloadFacts::parse(payload).unwrap_err().to_string();
            assert!(
                error.starts_with(expected),
                "{}: {error}",
                String::from_utf8_lossy(payload)
            );
            for rust_word in ["invalid type", "struct", "PayloadFacts", "expected a"] {
                assert!(!error.contains(rust_word), "{error}");
            }
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
