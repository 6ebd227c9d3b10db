//! `switchyard-chat`: tells a chat room about deployments and failing commit statuses through a
//! Slack-compatible incoming webhook (`{"text": ...}`), which Slack, Mattermost, Rocket.Chat and
//! Discord's `/slack` endpoint all take. The webhook URL is a secret: it comes from the
//! environment variable `url_env` names and is never logged.

mod message;

use serde::Deserialize;
use serde_json::json;
use switchyard_plugin_api::{
    payload::{DeploymentStatusEvent, StatusEvent},
    prelude::*,
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    /// Name of the environment variable holding the incoming-webhook URL.
    #[serde(default)]
    url_env: Option<String>,
    /// A file holding the incoming-webhook URL, used instead of `url_env` when set.
    #[serde(default)]
    url_file: Option<std::path::PathBuf>,
    /// States to tell about. Unset: every deployment status, and statuses that are `failure`
    /// or `error`.
    #[serde(default)]
    states: Option<Vec<String>>,
}

struct Chat {
    url: String,
    states: Option<Vec<String>>,
}

impl Chat {
    fn new(config: &PluginConfig) -> Result<Self, PluginError> {
        let settings: Settings = config.settings()?;
        let url = config.secret(
            "url",
            settings.url_env.as_deref(),
            settings.url_file.as_deref(),
        )?;
        Ok(Self {
            url,
            states: settings.states,
        })
    }

    fn wants(&self, state: &str, default: &[&str]) -> bool {
        match &self.states {
            Some(states) => states.iter().any(|s| s == state),
            None => default.is_empty() || default.contains(&state),
        }
    }
}

#[async_trait]
impl Plugin for Chat {
    fn subscriptions(&self) -> Vec<Subscription> {
        vec![
            Subscription::event("deployment_status"),
            Subscription::event("status"),
        ]
    }

    /// Notifies elsewhere; calls GitHub for nothing.
    fn permissions(&self) -> Option<Permissions> {
        Some(Permissions::none())
    }

    async fn handle(&self, event: &Event, host: &Host) -> Result<Outcome, PluginError> {
        // Each kind with the states told by default (empty: all of them).
        let (state, told_by_default, text): (String, &[&str], String) = match event.name.as_str() {
            "deployment_status" => {
                let event: DeploymentStatusEvent = event.parse()?;
                let text = message::deployment(&event);
                (event.deployment_status.state, &[], text)
            }
            "status" => {
                let event: StatusEvent = event.parse()?;
                let text = message::status(&event);
                (event.state, &["failure", "error"], text)
            }
            other => return Ok(Outcome::Skipped(format!("{other} events are not told"))),
        };
        if !self.wants(&state, told_by_default) {
            return Ok(Outcome::Skipped(format!(
                "{} {state} is not told",
                event.name
            )));
        }
        host.post_json(&self.url, json!({ "text": text })).await?;
        host.log(format!("switchyard: told the chat room: {text}"))
            .await;
        Ok(Outcome::Done)
    }
}

declare_plugin!(Chat, Chat::new);
