//! The message text. Plain text with bare links: Slack, Mattermost and Rocket.Chat all link a
//! bare URL, while each has its own link markup.

use switchyard_plugin_api::payload::{DeploymentStatusEvent, StatusEvent, short_sha};

/// `octo/app: deployment to production failure (1a2b3c4 by mona): Deploy failed: exit 3 - <log>`
pub fn deployment(event: &DeploymentStatusEvent) -> String {
    let status = &event.deployment_status;
    let mut text = format!(
        "{}: deployment to {} {} ({}{})",
        event.repository.full_name,
        event.environment(),
        status.state,
        short_sha(&event.deployment.sha),
        by(event.who().as_deref()),
    );
    push_details(&mut text, status.description.as_deref(), event.log_url());
    text
}

/// `octo/app: ci/switchyard failure on 1a2b3c4 (by mona): Build #3 failed: exit 1 - <log>`
pub fn status(event: &StatusEvent) -> String {
    let mut text = format!(
        "{}: {} {} on {}{}",
        event.repository.full_name,
        event.context,
        event.state,
        short_sha(&event.sha),
        match event.who() {
            Some(login) => format!(" (by {login})"),
            None => String::new(),
        },
    );
    let link = event.target_url.as_deref().filter(|u| !u.is_empty());
    push_details(&mut text, event.description.as_deref(), link);
    text
}

fn by(login: Option<&str>) -> String {
    login.map(|l| format!(" by {l}")).unwrap_or_default()
}

fn push_details(text: &mut String, description: Option<&str>, link: Option<&str>) {
    if let Some(description) = description.filter(|d| !d.is_empty()) {
        text.push_str(": ");
        text.push_str(description);
    }
    if let Some(link) = link {
        text.push_str(" - ");
        text.push_str(link);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_deployment_message_names_repository_environment_state_sha_user_and_log() {
        let event: DeploymentStatusEvent = serde_json::from_value(json!({
            "deployment_status": {"state": "failure", "description": "Deploy failed: exit 3",
                                  "log_url": "https://ci.example.com/jobs/5/log"},
            "deployment": {"id": 1, "sha": "1a2b3c4d5e6f", "ref": "main", "environment": "production",
                           "payload": "{\"deploy_user\":\"mona\"}", "creator": {"login": "bot"}},
            "repository": {"full_name": "octo/app"}
        }))
        .unwrap();
        assert_eq!(
            deployment(&event),
            "octo/app: deployment to production failure (1a2b3c4 by mona): Deploy failed: exit 3 \
             - https://ci.example.com/jobs/5/log"
        );
    }

    #[test]
    fn a_status_message_names_repository_context_state_sha_author_and_link() {
        let event: StatusEvent = serde_json::from_value(json!({
            "sha": "9f8e7d6c5b4a", "state": "error", "context": "ci/switchyard",
            "description": "", "target_url": null,
            "commit": {"author": {"login": "mona"}}, "sender": {"login": "bot"},
            "repository": {"full_name": "octo/app"}
        }))
        .unwrap();
        assert_eq!(
            status(&event),
            "octo/app: ci/switchyard error on 9f8e7d6 (by mona)"
        );
    }
}
