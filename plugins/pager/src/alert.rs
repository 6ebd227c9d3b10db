//! Which events page, and the PagerDuty Events API v2 body for each: a failure triggers an
//! alert keyed by repository + environment (or context); the next success resolves it.

use serde_json::{Value, json};
use switchyard_plugin_api::{
    fit_chars,
    payload::{DeploymentStatusEvent, StatusEvent, short_sha},
};

/// What to tell PagerDuty.
#[derive(Debug, Clone, PartialEq)]
pub enum Alert {
    Trigger {
        dedup_key: String,
        summary: String,
        source: String,
        component: String,
        link: Option<(String, &'static str)>,
        details: Value,
    },
    Resolve {
        dedup_key: String,
    },
}

/// PagerDuty caps summaries at 1024 characters.
const MAX_SUMMARY_CHARS: usize = 1024;

pub fn for_deployment(event: &DeploymentStatusEvent) -> Option<Alert> {
    let repo = &event.repository.full_name;
    let environment = event.environment();
    let dedup_key = format!("switchyard/{repo}/deployment/{environment}");
    let status = &event.deployment_status;
    match status.state.as_str() {
        "failure" | "error" => Some(Alert::Trigger {
            summary: summary(format!(
                "Deploy of {repo} to {environment} {}: {}",
                status.state,
                status.description.as_deref().unwrap_or("no description")
            )),
            dedup_key,
            source: repo.clone(),
            component: environment.to_owned(),
            link: event.log_url().map(|url| (url.to_owned(), "Deploy log")),
            details: json!({
                "state": status.state,
                "sha": short_sha(&event.deployment.sha),
                "ref": event.deployment.git_ref,
                "deployment": event.deployment.id,
                "triggered_by": event.who(),
            }),
        }),
        "success" => Some(Alert::Resolve { dedup_key }),
        _ => None,
    }
}

/// Only statuses on the default branch page: a red pull request is not an incident.
pub fn for_status(event: &StatusEvent) -> Option<Alert> {
    if !event.on_default_branch() {
        return None;
    }
    let repo = &event.repository.full_name;
    let dedup_key = format!("switchyard/{repo}/status/{}", event.context);
    match event.state.as_str() {
        "failure" | "error" => Some(Alert::Trigger {
            summary: summary(format!(
                "{} {} on the default branch of {repo} ({})",
                event.context,
                event.state,
                short_sha(&event.sha)
            )),
            dedup_key,
            source: repo.clone(),
            component: event.context.clone(),
            link: event
                .target_url
                .clone()
                .filter(|u| !u.is_empty())
                .map(|url| (url, "Build log")),
            details: json!({
                "state": event.state,
                "sha": event.sha,
                "description": event.description,
                "author": event.who(),
            }),
        }),
        "success" => Some(Alert::Resolve { dedup_key }),
        _ => None,
    }
}

impl Alert {
    /// The Events API v2 body.
    pub fn body(&self, routing_key: &str, severity: &str) -> Value {
        match self {
            Self::Trigger {
                dedup_key,
                summary,
                source,
                component,
                link,
                details,
            } => json!({
                "routing_key": routing_key,
                "event_action": "trigger",
                "dedup_key": dedup_key,
                "client": "Switchyard",
                "payload": {
                    "summary": summary,
                    "source": source,
                    "severity": severity,
                    "component": component,
                    "custom_details": details,
                },
                "links": link.iter().map(|(href, text)| json!({"href": href, "text": text})).collect::<Vec<_>>(),
            }),
            Self::Resolve { dedup_key } => json!({
                "routing_key": routing_key,
                "event_action": "resolve",
                "dedup_key": dedup_key,
            }),
        }
    }
}

fn summary(text: String) -> String {
    fit_chars(&text, MAX_SUMMARY_CHARS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment_status(state: &str, environment: &str) -> DeploymentStatusEvent {
        serde_json::from_value(json!({
            "deployment_status": {"state": state, "description": "exit 3", "log_url": "http://h/jobs/4/log"},
            "deployment": {"id": 9, "sha": "1a2b3c4d5e", "ref": "main", "environment": environment,
                           "creator": {"login": "mona"}},
            "repository": {"full_name": "octo/app"}
        }))
        .unwrap()
    }

    #[test]
    fn a_failed_deploy_triggers_and_a_success_resolves_with_one_dedup_key() {
        let trigger = for_deployment(&deployment_status("failure", "production")).unwrap();
        let resolve = for_deployment(&deployment_status("success", "production")).unwrap();
        let trigger = trigger.body("KEY", "critical");
        let resolve = resolve.body("KEY", "critical");
        assert_eq!(trigger["event_action"], "trigger");
        assert_eq!(resolve["event_action"], "resolve");
        assert_eq!(
            trigger["dedup_key"],
            "switchyard/octo/app/deployment/production"
        );
        assert_eq!(trigger["dedup_key"], resolve["dedup_key"]);
        assert_eq!(trigger["payload"]["severity"], "critical");
        assert_eq!(trigger["payload"]["source"], "octo/app");
        assert_eq!(
            trigger["payload"]["summary"],
            "Deploy of octo/app to production failure: exit 3"
        );
        assert_eq!(
            trigger["links"],
            json!([{"href": "http://h/jobs/4/log", "text": "Deploy log"}])
        );
        assert_eq!(trigger["routing_key"], "KEY");
    }

    #[test]
    fn environments_page_separately_and_progress_states_do_not_page() {
        let staging = for_deployment(&deployment_status("error", "staging")).unwrap();
        assert_eq!(
            staging.body("K", "error")["dedup_key"],
            "switchyard/octo/app/deployment/staging"
        );
        for state in ["queued", "in_progress", "pending", "inactive"] {
            assert_eq!(
                for_deployment(&deployment_status(state, "production")),
                None,
                "{state}"
            );
        }
    }

    #[test]
    fn statuses_page_only_on_the_default_branch() {
        let status = |branch: &str, state: &str| -> StatusEvent {
            serde_json::from_value(json!({
                "sha": "abcdef1234", "state": state, "context": "ci/switchyard",
                "branches": [{"name": branch}],
                "repository": {"full_name": "octo/app", "default_branch": "main"}
            }))
            .unwrap()
        };
        assert_eq!(for_status(&status("feature", "failure")), None);
        let trigger = for_status(&status("main", "failure"))
            .unwrap()
            .body("K", "error");
        assert_eq!(
            trigger["dedup_key"],
            "switchyard/octo/app/status/ci/switchyard"
        );
        assert!(matches!(
            for_status(&status("main", "success")),
            Some(Alert::Resolve { .. })
        ));
    }

    #[test]
    fn summaries_fit_pagerdutys_limit() {
        assert_eq!(summary("x".repeat(5000)).chars().count(), MAX_SUMMARY_CHARS);
    }
}
