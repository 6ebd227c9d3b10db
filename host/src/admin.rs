//! The operator commands: `deliveries` reads the journal directly (SQLite lets it while the
//! server writes), `replay` and `plugins` ask the running server through its signed admin
//! calls, since only it can dispatch jobs and knows what it has loaded.

use std::fmt::Write as _;

use serde_json::{Value, json};

use crate::{
    admin_call::AdminSignature,
    app::webhook_secret,
    config::Config,
    journal::{DeliveryRecord, Journal, JournalError, RecentFilter, SqliteJournal},
    ops::ReplayRequest,
    send::{SendAnswer, SendError, post, server_base},
};

/// `switchyard deliveries`: the latest deliveries with their jobs' states, one block each.
pub async fn deliveries(config: &Config, filter: RecentFilter) -> Result<String, JournalError> {
    let journal = SqliteJournal::open(&config.store_path())?;
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
            let _ = write!(
                out,
                "    job {} {}: {} (attempts {})",
                job.id,
                job.plugin,
                job.state.as_str(),
                job.attempts
            );
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
            }],
        };
        assert_eq!(
            format_deliveries(&[record]),
            "2026-11-23T10:00:00Z  d-1  pull_request.opened  octo/app\n    \
             job 4 ci: failed (attempts 1): Build #4 timed out after 1 s\n"
        );
        assert_eq!(format_deliveries(&[]), "no deliveries\n");
    }
}
