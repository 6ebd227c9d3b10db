//! `switchyard-pager`: pages through the PagerDuty Events API v2 when a deploy fails (and, if
//! asked, when the default branch goes red), and resolves the alert when the next one
//! succeeds. The routing key is a secret: it comes from the environment variable
//! `routing_key_env` names and is never logged.

mod alert;

use serde::Deserialize;
use switchyard_plugin_api::prelude::*;

use crate::alert::Alert;

const SEVERITIES: [&str; 4] = ["critical", "error", "warning", "info"];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    /// Name of the environment variable holding the routing key.
    #[serde(default)]
    routing_key_env: Option<String>,
    /// A file holding the routing key, used instead of `routing_key_env` when set.
    #[serde(default)]
    routing_key_file: Option<std::path::PathBuf>,
    #[serde(default = "default_url")]
    url: String,
    /// `critical`, `error`, `warning` or `info`.
    #[serde(default = "default_severity")]
    severity: String,
    /// Also page when a commit status fails on the default branch.
    #[serde(default)]
    page_on_status: bool,
}

fn default_url() -> String {
    "https://events.pagerduty.com/v2/enqueue".to_owned()
}
fn default_severity() -> String {
    "error".to_owned()
}

struct Pager {
    settings: Settings,
    routing_key: String,
}

impl Pager {
    fn new(config: &PluginConfig) -> Result<Self, PluginError> {
        let settings: Settings = config.settings()?;
        if !SEVERITIES.contains(&settings.severity.as_str()) {
            return Err(PluginError::fatal(format!(
                "settings.severity {:?}: use one of {}",
                settings.severity,
                SEVERITIES.join(", ")
            )));
        }
        let routing_key = config.secret(
            "routing_key",
            settings.routing_key_env.as_deref(),
            settings.routing_key_file.as_deref(),
        )?;
        Ok(Self {
            settings,
            routing_key,
        })
    }
}

#[async_trait]
impl Plugin for Pager {
    fn subscriptions(&self) -> Vec<Subscription> {
        let mut events = vec![Subscription::event("deployment_status")];
        if self.settings.page_on_status {
            events.push(Subscription::event("status"));
        }
        events
    }

    /// Notifies elsewhere; calls GitHub for nothing.
    fn permissions(&self) -> Option<Permissions> {
        Some(Permissions::none())
    }

    async fn handle(&self, event: &Event, host: &Host) -> Result<Outcome, PluginError> {
        let alert = match event.name.as_str() {
            "deployment_status" => alert::for_deployment(&event.parse()?),
            "status" if self.settings.page_on_status => alert::for_status(&event.parse()?),
            _ => None,
        };
        let Some(alert) = alert else {
            return Ok(Outcome::Skipped("nothing to page or resolve".into()));
        };
        let body = alert.body(&self.routing_key, &self.settings.severity);
        host.post_json(&self.settings.url, body).await?;
        let (action, key) = match &alert {
            Alert::Trigger { dedup_key, .. } => ("triggered", dedup_key),
            Alert::Resolve { dedup_key } => ("resolved", dedup_key),
        };
        host.log(format!("switchyard: {action} PagerDuty alert {key}"))
            .await;
        Ok(Outcome::Done)
    }
}

declare_plugin!(Pager, Pager::new);
