//! The line written for one event: what happened, where, and when.

use serde::Deserialize;
use serde_json::json;
use switchyard_plugin_api::Event;

/// The one payload field the record needs beyond the routing facts. Reading it through a
/// struct skips the rest of the payload without building a JSON tree of it.
#[derive(Deserialize)]
struct Payload {
    sender: Option<Sender>,
}

#[derive(Deserialize)]
struct Sender {
    login: Option<String>,
}

/// One JSON object and a newline.
pub fn line(event: &Event) -> String {
    let sender = event
        .parse::<Payload>()
        .ok()
        .and_then(|p| p.sender)
        .and_then(|s| s.login);
    let record = json!({
        "delivery": event.delivery,
        "event": event.name,
        "action": event.action,
        "repository": event.repository,
        "sender": sender,
        "received_at": event.received_at,
        "job": event.job.id,
    });
    let mut line = record.to_string();
    line.push('\n');
    line
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    #[test]
    fn a_line_names_the_delivery_event_action_and_repository() {
        // (event, payload, expected action, expected repository)
        let cases = [
            (
                "pull_request",
                json!({"action": "opened", "repository": {"full_name": "octo/repo"}, "sender": {"login": "mona"}}),
                json!("opened"),
                json!("octo/repo"),
            ),
            (
                "push",
                json!({"repository": {"full_name": "octo/repo"}}),
                Value::Null,
                json!("octo/repo"),
            ),
            (
                "meta",
                json!({"action": "deleted"}),
                json!("deleted"),
                Value::Null,
            ),
        ];
        for (name, payload, action, repository) in cases {
            let event = Event::for_test(name, payload);
            let line = line(&event);
            assert!(
                line.ends_with('\n') && line.matches('\n').count() == 1,
                "{line}"
            );
            let record: Value = serde_json::from_str(&line).unwrap();
            assert_eq!(record["event"], name);
            assert_eq!(record["action"], action);
            assert_eq!(record["repository"], repository);
            assert_eq!(record["delivery"], event.delivery);
            assert_eq!(record["received_at"], event.received_at);
            assert_eq!(record["sender"], event.payload()["sender"]["login"]);
        }
    }
}
