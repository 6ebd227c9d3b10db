//! Catching up the deliveries GitHub failed to deliver. GitHub never redelivers by itself: what
//! arrived while the host was down, or was answered 5xx, is lost unless someone asks. So on
//! start and every `[catch_up] interval_secs` this lists the webhook's recent deliveries (the
//! App's with its JWT, or in token mode the repository and organization hooks named in config),
//! groups them by GUID, and asks GitHub to deliver again each GUID none of whose attempts was
//! answered OK and that the journal does not hold. The redelivery arrives signed, through
//! ingress, like any delivery.
//!
//! How far a round got is kept in the journal per hook (the largest GitHub delivery id dealt
//! with), so a restart does not rescan; the mark is moved before redeliveries are asked for,
//! with compare-and-set, so of several hosts sharing a journal one does each round.
//!
//! This module only reads the journal and calls GitHub; it never dispatches anything itself.

mod list;

use std::{collections::HashMap, fmt::Write as _, sync::Arc, time::Duration};

use switchyard_plugin_api::{HostError, wire::GitHubCall};
use time::OffsetDateTime;

use crate::{
    config::{CatchUpConfig, Config, GitHubAuth},
    github::GitHub,
    journal::{CatchUpMarks, JournalError},
    ops::metrics::Metrics,
};

pub use list::HookAttempt;

/// A webhook whose deliveries are caught up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hook {
    /// The API path its deliveries hang off, without the leading `/`: `app/hook`,
    /// `repos/OWNER/REPO/hooks/ID` or `orgs/ORG/hooks/ID`. Also its mark's name in the journal.
    pub path: String,
}

impl Hook {
    /// The hooks `config` catches up: the App's own, or those named in `[catch_up] hooks`.
    pub fn from_config(config: &Config) -> Vec<Hook> {
        match config.github.auth {
            GitHubAuth::App => vec![Hook {
                path: "app/hook".to_owned(),
            }],
            GitHubAuth::Token => config
                .catch_up
                .hooks
                .iter()
                .map(|hook| {
                    let path = match (&hook.repository, &hook.organization) {
                        (Some(repo), _) => format!("repos/{repo}/hooks/{}", hook.id),
                        (None, Some(org)) => format!("orgs/{org}/hooks/{}", hook.id),
                        // Config validation requires one of them.
                        (None, None) => format!("hooks/{}", hook.id),
                    };
                    Hook { path }
                })
                .collect(),
        }
    }
}

/// Why a round could not be done.
#[derive(Debug, thiserror::Error)]
pub enum CatchUpError {
    #[error("listing the deliveries of {hook}: {error}")]
    List { hook: String, error: HostError },
    #[error("GitHub's list of the deliveries of {hook} is not what it documents: {problem}")]
    Answer { hook: String, problem: String },
    #[error(transparent)]
    Journal(#[from] JournalError),
}

/// How a round goes.
#[derive(Debug, Clone, Copy, Default)]
pub struct RoundOptions {
    /// Look this far back instead of back to the last round's mark; the mark only moves if the
    /// look reached it.
    pub since: Option<Duration>,
    /// List and report, but redeliver nothing and leave the mark.
    pub dry_run: bool,
}

/// A delivery found missing: GUID, the attempt asked to be redelivered, what it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missing {
    pub guid: String,
    /// The newest attempt's id: the one GitHub is asked to deliver again.
    pub attempt: i64,
    pub event: String,
    pub action: Option<String>,
    pub delivered_at: String,
    /// How GitHub recorded the newest attempt (`failed to connect`, `502`, ...).
    pub status: String,
}

/// What one round did for one hook.
#[derive(Debug, Clone, Default)]
pub struct Round {
    pub hook: String,
    /// Delivery attempts listed, and in how many pages.
    pub listed: usize,
    pub pages: u32,
    /// GUIDs GitHub never delivered OK that the journal lacks, oldest first.
    pub missing: Vec<Missing>,
    /// Of those, the ones GitHub accepted to deliver again.
    pub redelivered: Vec<String>,
    /// Redeliveries GitHub refused or that could not be asked for, with why.
    pub failed: Vec<(String, String)>,
    /// Missing GUIDs past `max_redeliveries`, left for the next round.
    pub deferred: usize,
    /// Another host (or `switchyard catch-up`) did this round first: nothing was redelivered.
    pub taken: bool,
    /// The list was longer than `max_pages` pages: older deliveries were not looked at.
    pub truncated: bool,
    /// GitHub was unavailable for a redelivery: it and the rest are left for the next round.
    pub unavailable: bool,
}

/// The catch-up of one host.
pub struct CatchUp {
    pub github: Arc<dyn GitHub>,
    pub journal: Arc<dyn CatchUpMarks>,
    pub metrics: Arc<Metrics>,
    pub settings: CatchUpConfig,
    pub hooks: Vec<Hook>,
}

impl CatchUp {
    /// Runs a round now and then every `interval_secs`, until the task is aborted.
    pub async fn run(self) {
        let mut every = tokio::time::interval(Duration::from_secs(self.settings.interval_secs));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            for hook in &self.hooks {
                match self.round(hook, RoundOptions::default()).await {
                    Ok(round) => log_round(&round),
                    // The next round tries again from the same mark.
                    Err(error) => {
                        self.metrics.catch_up_failures.inc();
                        tracing::warn!(hook = %hook.path, error = error.to_string(), "catching up missed deliveries failed");
                    }
                }
            }
        }
    }

    /// One round over `hook`: list back to the mark (or `options.since`), find what is missing,
    /// move the mark, ask GitHub to deliver again.
    pub async fn round(&self, hook: &Hook, options: RoundOptions) -> Result<Round, CatchUpError> {
        let mark = self.journal.catch_up_mark(&hook.path).await?;
        let window = match options.since {
            Some(since) => since,
            None => Duration::from_secs(self.settings.max_age_hours * 3600),
        };
        let floor = OffsetDateTime::now_utc() - window;
        // With `since`, the look goes back by time alone, past the mark if need be.
        let look = list::Look {
            mark,
            stop_at_mark: options.since.is_none(),
            floor,
            floor_is_githubs: options.since.is_none(),
        };
        let listed = list::list(&*self.github, hook, &self.settings, look).await?;
        let mut round = Round {
            hook: hook.path.clone(),
            listed: listed.attempts.len(),
            pages: listed.pages,
            truncated: listed.truncated,
            ..Round::default()
        };
        let candidates = never_delivered(&listed.attempts);
        let guids = candidates.iter().map(|m| m.guid.clone()).collect();
        let held = self.journal.held_deliveries(guids).await?;
        round.missing = candidates
            .into_iter()
            .filter(|missing| !held.contains(&missing.guid))
            .collect();
        self.metrics
            .catch_up_missing
            .inc_by(round.missing.len() as u64);
        let cap = self.settings.max_redeliveries;
        round.deferred = round.missing.len().saturating_sub(cap);
        let asked = &round.missing[..round.missing.len().min(cap)];
        let newest = listed.attempts.iter().map(|a| a.id).max();
        // Whatever is deferred must be listed again next round: the mark stops below it.
        let to = match (round.deferred, asked.last()) {
            (0, _) => newest,
            (_, Some(last)) => Some(last.attempt),
            (_, None) => None,
        };
        if options.dry_run {
            return Ok(round);
        }
        let moved = to.filter(|to| listed.complete && mark.is_none_or(|mark| *to > mark));
        if let Some(to) = moved
            && !self
                .journal
                .move_catch_up_mark(&hook.path, mark, to)
                .await?
        {
            round.taken = true;
            return Ok(round);
        }
        let mut unavailable = None;
        for missing in asked {
            match self.redeliver(hook, missing.attempt).await {
                Ok(()) => {
                    self.metrics.catch_up_redelivered.inc();
                    round.redelivered.push(missing.guid.clone());
                }
                // Rate-limited past `[github] max_wait_secs`, or GitHub away: the rest would
                // fail the same way, and all of them are left for the next round.
                Err(error @ HostError::GitHubUnavailable(_)) => {
                    round.failed.push((missing.guid.clone(), error.to_string()));
                    unavailable = Some(missing.attempt);
                    break;
                }
                // Refused (the delivery is too old to redeliver, say): asking again would not
                // help.
                Err(error) => round.failed.push((missing.guid.clone(), error.to_string())),
            }
        }
        // The mark goes back below what GitHub could not take, so the next round lists it
        // again (what was redelivered meanwhile is in the journal by then, and not asked for
        // twice).
        if let (Some(to), Some(first)) = (moved, unavailable)
            && first <= to
        {
            let back = first - 1;
            round.unavailable = self
                .journal
                .move_catch_up_mark(&hook.path, Some(to), back)
                .await?;
        }
        Ok(round)
    }

    async fn redeliver(&self, hook: &Hook, attempt: i64) -> Result<(), HostError> {
        let call = GitHubCall {
            method: "POST".to_owned(),
            path: format!("/{}/deliveries/{attempt}/attempts", hook.path),
            body: None,
        };
        self.github.as_host(call).await.map(drop)
    }
}

/// The GUIDs none of whose listed attempts GitHub recorded as OK, oldest first (by their
/// newest attempt). GitHub's `status=failure` filter is not used: it covers 4xx and 5xx
/// answers, not timeouts or refused connections.
pub fn never_delivered(attempts: &[HookAttempt]) -> Vec<Missing> {
    let mut by_guid: HashMap<&str, Vec<&HookAttempt>> = HashMap::new();
    for attempt in attempts {
        by_guid.entry(&attempt.guid).or_default().push(attempt);
    }
    let mut missing: Vec<Missing> = by_guid
        .into_values()
        .filter(|tries| !tries.iter().any(|t| t.ok()))
        .filter_map(|tries| tries.into_iter().max_by_key(|t| t.id))
        .map(|newest| Missing {
            guid: newest.guid.clone(),
            attempt: newest.id,
            event: newest.event.clone(),
            action: newest.action.clone(),
            delivered_at: newest.delivered_at.clone(),
            status: newest.describe_status(),
        })
        .collect();
    missing.sort_by_key(|m| m.attempt);
    missing
}

fn log_round(round: &Round) {
    if round.truncated {
        tracing::warn!(
            hook = %round.hook,
            pages = round.pages,
            "more deliveries than [catch_up] max_pages pages: older ones were not looked at; `switchyard catch-up --since` looks further"
        );
    }
    if round.missing.is_empty() {
        tracing::debug!(hook = %round.hook, listed = round.listed, "no missed deliveries");
        return;
    }
    tracing::info!(
        hook = %round.hook,
        listed = round.listed,
        missing = round.missing.len(),
        redelivered = round.redelivered.len(),
        failed = round.failed.len(),
        deferred = round.deferred,
        taken_by_another_host = round.taken,
        "caught up missed deliveries"
    );
    for (guid, error) in &round.failed {
        tracing::warn!(hook = %round.hook, delivery = %guid, error = error.to_string(), "GitHub did not redeliver");
    }
}

/// `switchyard catch-up`'s report of a round.
pub fn describe(round: &Round, dry_run: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}: {} delivery attempts listed in {} pages; {} never delivered and not in the journal",
        round.hook,
        round.listed,
        round.pages,
        round.missing.len()
    );
    for missing in &round.missing {
        let event = match &missing.action {
            Some(action) => format!("{}.{action}", missing.event),
            None => missing.event.clone(),
        };
        let _ = writeln!(
            out,
            "  missing {}  {event}  {}  ({})",
            missing.guid, missing.delivered_at, missing.status
        );
    }
    if dry_run {
        out.push_str("  dry run: nothing redelivered\n");
    } else if round.taken {
        out.push_str("  another host did this round: nothing redelivered here\n");
    } else {
        let _ = writeln!(out, "  redelivered: {}", round.redelivered.len());
        for guid in &round.redelivered {
            let _ = writeln!(out, "    {guid}");
        }
    }
    for (guid, error) in &round.failed {
        let _ = writeln!(out, "  not redelivered {guid}: {error}");
    }
    if round.unavailable {
        out.push_str("  GitHub was unavailable: the rest is left for the next round\n");
    }
    if round.deferred > 0 {
        let _ = writeln!(
            out,
            "  {} left for the next round ([catch_up] max_redeliveries)",
            round.deferred
        );
    }
    if round.truncated {
        out.push_str("  stopped at [catch_up] max_pages: older deliveries were not looked at\n");
    }
    out
}

/// What `switchyard check` says about catch-up.
pub fn describe_settings(config: &Config) -> String {
    let hooks = Hook::from_config(config);
    let names: Vec<&str> = hooks.iter().map(|hook| hook.path.as_str()).collect();
    match config.catch_up.enabled {
        true => format!(
            "every {} s, {}",
            config.catch_up.interval_secs,
            names.join(", ")
        ),
        false => "off ([catch_up] enabled = false; `switchyard catch-up` works by hand)".to_owned(),
    }
}

/// `6h`, `30m`, `2d`, `90s`: how far back `switchyard catch-up --since` looks.
pub fn parse_since(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?}: give a number and a unit, e.g. 6h, 30m, 2d"))?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("{text:?}: the unit is s, m, h or d")),
    };
    Ok(Duration::from_secs(number * seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt(id: i64, guid: &str, status: &str, code: u16) -> HookAttempt {
        HookAttempt {
            id,
            guid: guid.to_owned(),
            delivered_at: "2026-12-01T10:00:00Z".to_owned(),
            status: status.to_owned(),
            status_code: code,
            event: "push".to_owned(),
            action: None,
        }
    }

    #[test]
    fn a_guid_is_missing_only_when_no_attempt_was_ok() {
        let attempts = [
            attempt(1, "a", "failed to connect", 0),
            attempt(2, "b", "OK", 202),
            attempt(3, "c", "Invalid HTTP Response: 503", 503),
            attempt(4, "a", "timed out", 0),
            // Redelivered by hand, and answered this time.
            attempt(5, "c", "OK", 200),
            attempt(6, "d", "Invalid HTTP Response: 500", 500),
        ];
        let missing = never_delivered(&attempts);
        let found: Vec<(&str, i64)> = missing
            .iter()
            .map(|m| (m.guid.as_str(), m.attempt))
            .collect();
        assert_eq!(found, [("a", 4), ("d", 6)], "newest attempt, oldest first");
        assert_eq!(missing[0].status, "timed out");
    }

    #[test]
    fn since_takes_a_number_and_a_unit() {
        let cases = [
            ("6h", Ok(6 * 3600)),
            ("30m", Ok(1800)),
            ("2d", Ok(2 * 86_400)),
            ("90s", Ok(90)),
            ("6", Err("the unit")),
            ("h", Err("give a number")),
            ("1w", Err("the unit")),
        ];
        for (text, expected) in cases {
            match (parse_since(text), expected) {
                (Ok(got), Ok(secs)) => assert_eq!(got, Duration::from_secs(secs), "{text}"),
                (Err(error), Err(fragment)) => assert!(error.contains(fragment), "{error}"),
                (got, _) => panic!("{text}: {got:?}"),
            }
        }
    }
}
