//! GitHub's own example payloads, built into the binary so `switchyard send --example NAME`
//! needs no file: the first example of every event and action in GitHub's webhook
//! documentation (`host/payloads/webhook-examples.json`, keyed `event` or `event.action`).

use serde_json::Value;

static EXAMPLES: &str = include_str!("../../payloads/webhook-examples.json");

/// Why an example could not be produced.
#[derive(Debug, thiserror::Error)]
pub enum ExampleError {
    #[error("no example named {name:?}; examples: {known}")]
    Unknown { name: String, known: String },
    #[error("{name} comes with several actions; name one as {name}.ACTION, one of: {actions}")]
    Ambiguous { name: String, actions: String },
    #[error("--set {0:?}: expected KEY=VALUE, e.g. deployment.sha=abc123")]
    NotAssignment(String),
    #[error("--set {key}: {problem}")]
    Path { key: String, problem: String },
}

/// An example payload and the event it is for.
#[derive(Debug)]
pub struct Example {
    pub event: String,
    pub payload: Value,
}

/// The example named `event.action`, or `event` when GitHub sends it with one action only.
pub fn example(name: &str) -> Result<Example, ExampleError> {
    let mut all: serde_json::Map<String, Value> =
        serde_json::from_str(EXAMPLES).expect("the built-in examples are JSON");
    let matching: Vec<&String> = all
        .keys()
        .filter(|key| *key == name || key.split('.').next() == Some(name))
        .collect();
    let key = match matching.as_slice() {
        [one] => (*one).clone(),
        [] => {
            return Err(ExampleError::Unknown {
                name: name.to_owned(),
                known: names(&all),
            });
        }
        several => match several.iter().find(|key| *key == &name) {
            Some(exact) => (*exact).clone(),
            None => {
                let actions: Vec<&str> = several
                    .iter()
                    .filter_map(|key| key.split_once('.').map(|(_, action)| action))
                    .collect();
                return Err(ExampleError::Ambiguous {
                    name: name.to_owned(),
                    actions: actions.join(", "),
                });
            }
        },
    };
    let payload = all.remove(&key).expect("the key was found");
    let event = key.split('.').next().unwrap_or(&key).to_owned();
    Ok(Example { event, payload })
}

/// The events with examples, and the actions of each: `deployment, pull_request.{opened,
/// closed, ...}, ...`.
fn names(all: &serde_json::Map<String, Value>) -> String {
    let mut events: Vec<(String, Vec<&str>)> = Vec::new();
    for key in all.keys() {
        let (event, action) = match key.split_once('.') {
            Some((event, action)) => (event, Some(action)),
            None => (key.as_str(), None),
        };
        match events.last_mut() {
            Some((last, actions)) if last == event => actions.extend(action),
            _ => events.push((event.to_owned(), action.into_iter().collect())),
        }
    }
    events
        .iter()
        .map(|(event, actions)| match actions.as_slice() {
            [] => event.clone(),
            actions => format!("{event}.{{{}}}", actions.join(",")),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Applies `KEY=VALUE`: `KEY` is a dotted path into the payload (`repository.full_name`,
/// `pull_request.head.sha`, `commits.0.id`); `VALUE` is JSON when it parses as JSON (`42`,
/// `true`, `null`, `{"a":1}`), else a string. Every part of the path but the last must exist,
/// so a typo is an error rather than a field GitHub never sends.
pub fn set(payload: &mut Value, assignment: &str) -> Result<(), ExampleError> {
    let (key, value) = assignment
        .split_once('=')
        .filter(|(key, _)| !key.is_empty())
        .ok_or_else(|| ExampleError::NotAssignment(assignment.to_owned()))?;
    let value = serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.to_owned()));
    let problem = |problem: String| ExampleError::Path {
        key: key.to_owned(),
        problem,
    };
    let parts: Vec<&str> = key.split('.').collect();
    let (last, parents) = parts.split_last().expect("split yields at least one part");
    let mut at = payload;
    let mut walked = String::new();
    for part in parents {
        let next = match at {
            Value::Object(fields) => fields.get_mut(*part),
            Value::Array(items) => part.parse::<usize>().ok().and_then(|i| items.get_mut(i)),
            _ => None,
        };
        walked = if walked.is_empty() {
            (*part).to_owned()
        } else {
            format!("{walked}.{part}")
        };
        at = next.ok_or_else(|| problem(format!("the payload has no {walked}")))?;
    }
    match at {
        Value::Object(fields) => {
            fields.insert((*last).to_owned(), value);
        }
        Value::Array(items) => {
            let slot = last
                .parse::<usize>()
                .ok()
                .and_then(|i| items.get_mut(i))
                .ok_or_else(|| problem(format!("no item {last} in that list")))?;
            *slot = value;
        }
        _ => {
            return Err(problem(
                "only an object's field or a list's item can be set".into(),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_an_event_or_an_event_and_action() {
        let deployment = example("deployment").unwrap();
        assert_eq!(deployment.event, "deployment");
        assert!(deployment.payload["deployment"]["sha"].is_string());
        let sync = example("pull_request.synchronize").unwrap();
        assert_eq!(sync.event, "pull_request");
        assert_eq!(sync.payload["action"], "synchronize");
        let error = example("deploymnet").unwrap_err().to_string();
        assert!(error.contains("no example named \"deploymnet\""), "{error}");
        assert!(error.contains(" deployment.{created} "), "{error}");
        let error = example("pull_request").unwrap_err().to_string();
        assert!(error.contains("pull_request.ACTION"), "{error}");
        assert!(error.contains("synchronize"), "{error}");
    }

    #[test]
    fn set_changes_fields_by_path_and_refuses_typos() {
        let mut payload = serde_json::json!({
            "ref": "refs/heads/x", "forced": false,
            "repository": {"full_name": "o/r"}, "commits": [{"id": "1"}],
        });
        set(&mut payload, "repository.full_name=me/app").unwrap();
        set(&mut payload, "commits.0.id=abc").unwrap();
        set(&mut payload, "forced=true").unwrap();
        set(&mut payload, "ref=refs/heads/main=x").unwrap();
        assert_eq!(payload["repository"]["full_name"], "me/app");
        assert_eq!(payload["commits"][0]["id"], "abc");
        assert_eq!(payload["forced"], true);
        assert_eq!(payload["ref"], "refs/heads/main=x");
        let typo = set(&mut payload, "repositroy.full_name=x").unwrap_err();
        assert!(typo.to_string().contains("has no repositroy"), "{typo}");
        assert!(set(&mut payload, "no-equals").is_err());
        assert!(set(&mut payload, "commits.99=1").is_err());
    }
}
