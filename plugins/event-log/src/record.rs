//! The line written for one event: what happened, where, and when.

use serde::Serialize;
use switchyard_plugin_api::Event;

#[derive(Serialize)]
struct Record<'a> {
    delivery: &'a str,
    event: &'a str,
    action: Option<&'a str>,
    repository: Option<&'a str>,
    sender: Option<&'a str>,
    received_at: &'a str,
    job: i64,
}

/// One JSON object and a newline. Every field comes from what the host read at ingress, so the
/// payload itself is never parsed here.
pub fn line(event: &Event) -> String {
    let record = Record {
        delivery: &event.delivery,
        event: &event.name,
        action: event.action.as_deref(),
        repository: event.repository.as_deref(),
        sender: event.sender.as_deref(),
        received_at: &event.received_at,
        job: event.job.id,
    };
    let mut line = serde_json::to_string(&record).expect("a record of strings always serializes");
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
