//! Reading a hook's list of delivery attempts from GitHub, newest first, page by page with
//! GitHub's cursor, back to the mark or the time floor, whichever comes first.

use serde::Deserialize;
use switchyard_plugin_api::wire::GitHubCall;
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

use super::{CatchUpError, Hook};
use crate::{config::CatchUpConfig, github::GitHub};

/// One delivery attempt as GitHub lists it ("Simple webhook delivery").
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct HookAttempt {
    pub id: i64,
    pub guid: String,
    pub delivered_at: String,
    /// `OK`, `failed to connect`, `timed out`, `Invalid HTTP Response: 503`, ...
    pub status: String,
    /// 0 when no answer came.
    pub status_code: u16,
    pub event: String,
    pub action: Option<String>,
}

impl HookAttempt {
    /// Whether the receiver took it: GitHub says `OK` for any 2xx answer.
    pub fn ok(&self) -> bool {
        self.status.eq_ignore_ascii_case("ok") || (200..300).contains(&self.status_code)
    }

    pub fn describe_status(&self) -> String {
        match self.status_code {
            0 => self.status.clone(),
            code if self.status.contains(&code.to_string()) => self.status.clone(),
            code => format!("{}, HTTP {code}", self.status),
        }
    }
}

/// How far back to look.
pub struct Look {
    /// The largest attempt id a previous round dealt with.
    pub mark: Option<i64>,
    /// Stop at the mark (a normal round) rather than going on by time (`--since`).
    pub stop_at_mark: bool,
    /// Attempts delivered before this are not looked at.
    pub floor: OffsetDateTime,
    /// The floor is GitHub's own window: nothing before it could be redelivered anyway.
    pub floor_is_githubs: bool,
}

/// What the list held back to where the look stopped.
#[derive(Debug, Default)]
pub struct Listed {
    /// Newest first.
    pub attempts: Vec<HookAttempt>,
    pub pages: u32,
    /// Everything newer than the mark was seen (or all that `max_pages` allows): the mark
    /// may move.
    pub complete: bool,
    /// Stopped at `max_pages` with more to read.
    pub truncated: bool,
}

pub async fn list(
    github: &dyn GitHub,
    hook: &Hook,
    settings: &CatchUpConfig,
    look: Look,
) -> Result<Listed, CatchUpError> {
    let mut listed = Listed::default();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/{}/deliveries?per_page={}", hook.path, settings.page_size);
        if let Some(cursor) = &cursor {
            path.push_str("&cursor=");
            path.push_str(&encode(cursor));
        }
        let call = GitHubCall {
            method: "GET".to_owned(),
            path,
            body: None,
        };
        let (answer, next) = github
            .as_host(call)
            .await
            .map_err(|error| CatchUpError::List {
                hook: hook.path.clone(),
                error,
            })?;
        listed.pages += 1;
        let page: Vec<HookAttempt> =
            serde_json::from_value(answer.body).map_err(|error| CatchUpError::Answer {
                hook: hook.path.clone(),
                problem: error.to_string(),
            })?;
        let mut stopped = false;
        for attempt in page {
            let at_mark = look.mark.is_some_and(|mark| attempt.id <= mark);
            if at_mark {
                listed.complete = true;
                if look.stop_at_mark {
                    stopped = true;
                    break;
                }
            }
            let old = OffsetDateTime::parse(&attempt.delivered_at, &Rfc3339)
                .is_ok_and(|at| at < look.floor);
            if old {
                listed.complete |= look.floor_is_githubs;
                stopped = true;
                break;
            }
            listed.attempts.push(attempt);
        }
        match next {
            _ if stopped => break,
            None => {
                listed.complete = true;
                break;
            }
            // The mark moves all the same (the round warns): listing the same newest pages
            // again would only ask for the same redeliveries twice.
            Some(_) if listed.pages >= settings.max_pages => {
                listed.truncated = true;
                listed.complete = true;
                break;
            }
            Some(next) => cursor = Some(next),
        }
    }
    Ok(listed)
}

/// A cursor as a query parameter: GitHub's are letters, digits and `_`, but one that is not
/// must not change the path.
fn encode(cursor: &str) -> String {
    cursor
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
