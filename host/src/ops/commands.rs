//! The operator commands: `deliveries` reads the journal directly (SQLite lets it while the
//! server writes), `replay` and `plugins` ask the running server through its signed admin
//! calls, since only it can dispatch jobs and knows what it has loaded.

use std::fmt::Write as _;

use serde_json::{Value, json};

use crate::{
    config::Config,
    journal::{self, DeliveryRecord, RecentFilter},
    ops::endpoints::ReplayRequest,
    ops::signed_call::AdminSignature,
    send::{SendAnswer, SendError, post, server_base},
    wiring::webhook_secret,
};

/// `switchyard deliveries`: the latest deliveries with their jobs' states, one block each.
pub async fn deliveries(config: &Config, filter: RecentFilter) -> anyhow::Result<String> {
    let journal = journal::open(crate::wiring::store_target(config)?).await?;
    let deliveries = journal.recent(filter).await?;
    Ok(format_deliveries(&deliveries))
}

pub fn format_deliveries(deliveries: &[DeliveryRecord]) -> String {
    if deliveries.is_empty() {
        return "no deliveries\n".to_owned();
    }
    let mut out = String::new();
    for delivery in deliveries {
        let event = match &delivery.action {
            Some(action) => format!("{}.{action}", delivery.event),
            None => delivery.event.clone(),
        };
        let repository = delivery.repository.as_deref().unwrap_or("-");
        let _ = writeln!(
            out,
            "{}  {}  {event}  {repository}",
            delivery.received_at, delivery.id
        );
        if delivery.jobs.is_empty() {
            let _ = writeln!(out, "    (no plugin subscribed)");
        }
        for job in &delivery.jobs {
            // The verdict first, what people scan for; the journal state beside it.
            let _ = match job.verdict {
                Some(verdict) => write!(
                    out,
                    "    job {} {}: {verdict} (state {}, attempts {})",
                    job.id,
                    job.plugin,
                    job.state.as_str(),
                    job.attempts
                ),
                None => write!(
                    out,
                    "    job {} {}: {} (attempts {})",
                    job.id,
                    job.plugin,
                    job.state.as_str(),
                    job.attempts
                ),
            };
            if let Some(detail) = job.error.as_deref().or(job.note.as_deref()) {
                let _ = write!(out, ": {detail}");
            }
            out.push('\n');
        }
    }
    out
}

/// `switchyard replay`: asks the server to dispatch a stored delivery again.
pub async fn replay(
    config: &Config,
    delivery: String,
    plugin: Option<String>,
) -> Result<SendAnswer, SendError> {
    let body = serde_json::to_vec(&ReplayRequest { delivery, plugin })
        .expect("a replay request serializes");
    admin_call(config, "/admin/replay", body).await
}

/// `switchyard plugins`: asks the server which plugins it runs.
pub async fn plugins(config: &Config) -> Result<SendAnswer, SendError> {
    admin_call(config, "/admin/plugins", b"{}".to_vec()).await
}

async fn admin_call(config: &Config, path: &str, body: Vec<u8>) -> Result<SendAnswer, SendError> {
    let secret = webhook_secret(config)?;
    let url = format!("{}{path}", server_base(config));
    let signature = AdminSignature::sign(&secret, path, &body);
    let headers = signature.headers();
    let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    post(config, &url, &headers, body).await
}

/// The server's `/admin/plugins` answer as lines, disabled entries of the config included.
pub fn format_plugins(config: &Config, answer: &Value) -> String {
    let mut out = String::new();
    let loaded = answer["plugins"].as_array().cloned().unwrap_or_default();
    for entry in &config.plugins {
        let running = loaded.iter().find(|p| p["name"] == json!(entry.name));
        let _ = match running {
            Some(p) => writeln!(
                out,
                "{}  enabled  {} {}  {}",
                entry.name,
                p["package"].as_str().unwrap_or_default(),
                p["version"].as_str().unwrap_or_default(),
                p["events"]
                    .as_array()
                    .map(|e| e
                        .iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(", "))
                    .unwrap_or_default()
            ),
            None if entry.enabled => writeln!(
                out,
                "{}  enabled in the config, not loaded (reload pending or failed)",
                entry.name
            ),
            None => writeln!(out, "{}  disabled", entry.name),
        };
    }
    out
}

/// Who `switchyard check` says the host acts as on GitHub.
pub fn github_identity(config: &Config, secrets: &crate::wiring::Secrets) -> String {
    let github = &config.github;
    match (&github.auth, &secrets.github_app_key) {
        (crate::config::GitHubAuth::App, Some(key)) => {
            let id = match (&github.app_id, &github.client_id) {
                (Some(id), _) => format!("app_id {id}"),
                (None, Some(client)) => format!("client_id {client}"),
                (None, None) => "no id".to_owned(),
            };
            let origin = match &github.private_key_file {
                Some(file) => config.secret_path(file).display().to_string(),
                None => github.private_key_env.clone(),
            };
            format!(
                "GitHub App, {id}, private key from {origin} (RSA, {} bits); `switchyard app` asks GitHub about it",
                key.bits()
            )
        }
        _ => match (&github.token_file, &secrets.github_token) {
            (_, None) => format!(
                "no token ({}; until then jobs that call GitHub fail)",
                config.missing_github_token()
            ),
            (Some(file), Some(_)) => format!("token from {}", config.secret_path(file).display()),
            (None, Some(_)) => format!("token from {}", github.token_env),
        },
    }
}

/// A plugin's GitHub permissions as `switchyard check` prints them.
pub fn describe_permissions(plugin: &crate::plugins::LoadedPlugin) -> String {
    match (
        &plugin.permissions,
        &plugin.declared,
        &plugin.entry.permissions,
    ) {
        (None, _, _) => "not declared (the App installation's)".to_owned(),
        (Some(effective), Some(declared), Some(_)) if effective != declared => {
            format!("{effective} (narrowed from {declared})")
        }
        (Some(effective), None, Some(_)) => format!("{effective} (from config.toml)"),
        (Some(effective), _, _) => effective.to_string(),
    }
}

/// `switchyard app`: with the App's JWT, who GitHub says the App is and its installations.
pub async fn github_app(config: &Config) -> anyhow::Result<String> {
    use anyhow::Context as _;
    if config.github.auth != crate::config::GitHubAuth::App {
        anyhow::bail!(
            "{}: [github] auth is \"token\": set auth = \"app\" with app_id (or client_id) and the App's private key to act as a GitHub App (see docs/github-app.md)",
            config.file.display()
        );
    }
    let key = crate::wiring::github_app_key(config)?;
    let api = crate::github::client::Api::new(&config.github, Default::default())
        .context("cannot build the HTTP client")?;
    let app = crate::github::App::new(&config.github, api, std::sync::Arc::new(key));
    Ok(app.about().await?)
}

/// `switchyard catch-up`: one round over each hook by hand, as the server's would (or back
/// `since`), printing what was missing and what GitHub was asked to deliver again.
pub async fn catch_up(
    config: &Config,
    since: Option<std::time::Duration>,
    dry_run: bool,
) -> anyhow::Result<String> {
    use crate::catch_up::{CatchUp, Hook, RoundOptions, describe};
    let hooks = Hook::from_config(config);
    if hooks.is_empty() {
        anyhow::bail!(
            "no webhook to catch up: with [github] auth = \"token\", name them in [catch_up] hooks (see docs/deliveries.md#catching-up-missed-deliveries)"
        );
    }
    let secrets = crate::wiring::Secrets::from_env(config)?;
    let metrics = std::sync::Arc::new(crate::ops::metrics::Metrics::new());
    let github = crate::github::connect(
        &config.github,
        secrets.github_token.clone(),
        secrets.github_app_key.clone(),
        std::sync::Arc::clone(&metrics),
    )?;
    let journal = journal::open(crate::wiring::store_target(config)?).await?;
    let catch_up = CatchUp {
        github,
        journal,
        metrics,
        settings: config.catch_up.clone(),
        hooks: hooks.clone(),
    };
    let mut out = String::new();
    for hook in &hooks {
        let round = catch_up
            .round(hook, RoundOptions { since, dry_run })
            .await?;
        out.push_str(&describe(&round, dry_run));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::{JobId, JobRecord, JobState};

    #[test]
    fn deliveries_print_one_block_each_with_their_jobs() {
        let record = DeliveryRecord {
            seq: 1,
            sender: None,
            id: "d-1".into(),
            event: "pull_request".into(),
            action: Some("opened".into()),
            repository: Some("octo/app".into()),
            received_at: "2026-11-23T10:00:00Z".into(),
            jobs: vec![JobRecord {
                id: JobId(4),
                delivery: "d-1".into(),
                plugin: "ci".into(),
                state: JobState::Failed,
                attempts: 1,
                error: Some("Build #4 timed out after 1 s".into()),
                note: None,
                link_salt: Default::default(),
                verdict: Some(switchyard_plugin_api::Verdict::TimedOut),
            }],
        };
        assert_eq!(
            format_deliveries(std::slice::from_ref(&record)),
            "2026-11-23T10:00:00Z  d-1  pull_request.opened  octo/app\n    \
             job 4 ci: timed out (state failed, attempts 1): Build #4 timed out after 1 s\n"
        );
        // Ended before verdicts were recorded: its state alone.
        let mut old = record;
        old.jobs[0].verdict = None;
        assert_eq!(
            format_deliveries(&[old]),
            "2026-11-23T10:00:00Z  d-1  pull_request.opened  octo/app\n    \
             job 4 ci: failed (attempts 1): Build #4 timed out after 1 s\n"
        );
        assert_eq!(format_deliveries(&[]), "no deliveries\n");
    }
}
