//! What every dashboard page shares: the header with the signed-in name and the job counts,
//! and rendering within the render budget.

use askama::Template;
use axum::{
    http::header,
    response::{IntoResponse, Response},
};

use super::super::{
    Viewer, WebState,
    budget::Reserved,
    message::{internal_error, journal_failed},
};
use crate::ingress::MAX_BODY_BYTES;
use crate::journal::JobCounts;

/// The header every page has.
pub struct Head {
    pub title: String,
    pub user: Option<String>,
    /// The session's CSRF token, for the forms of the actions.
    pub form_token: String,
    pub counts: JobCounts,
}

/// A page rendered within its reservation, and sent with its size kept reserved until the
/// client has taken it (see `budget`).
pub(super) fn page(reserved: Reserved, template: &impl Template) -> Response {
    match template.render() {
        Ok(page) => (
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8".to_owned()),
                (header::CONTENT_LENGTH, page.len().to_string()),
            ],
            reserved.body(page.into()),
        )
            .into_response(),
        Err(error) => {
            tracing::error!(error = error.to_string(), "cannot render a dashboard page");
            internal_error()
        }
    }
}

/// What a page may hold besides a log window or a payload: its rows, trail and header.
pub(super) const PAGE_BYTES: usize = 2 << 20;

/// A payload read back from the journal: compressed and not, each at most GitHub's largest.
pub(super) const PAYLOAD_READ: usize = 2 * MAX_BODY_BYTES;

/// Reserves `bytes` in the dashboard's budget.
pub(super) async fn reserve(state: &WebState, bytes: usize) -> Result<Reserved, Response> {
    state.dashboard.budget.reserve(bytes).await
}

pub(super) async fn head(
    state: &WebState,
    viewer: &Viewer,
    title: String,
) -> Result<Head, Response> {
    let hour_ago = time::OffsetDateTime::now_utc() - time::Duration::hours(1);
    let since = hour_ago
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let counts = state
        .journal
        .job_counts(&since, viewer.visibility.clone())
        .await
        .map_err(journal_failed)?;
    Ok(Head {
        title,
        user: viewer.name.clone(),
        form_token: viewer.form_token.clone().unwrap_or_default(),
        counts,
    })
}

/// A time as pages show it without JavaScript: UTC to the second (`2026-12-07 13:32:20 UTC`),
/// which the script turns into a relative time with the exact one, in the reader's time zone,
/// on hover. Empty stays empty; what is not RFC 3339 is shown as it is.
pub(super) fn exact_time(rfc3339: &str) -> String {
    const SHOWN: &[time::format_description::BorrowedFormatItem<'static>] =
        time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
    match time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339) {
        Ok(at) => at
            .to_offset(time::UtcOffset::UTC)
            .format(SHOWN)
            .unwrap_or_else(|_| rfc3339.to_owned()),
        Err(_) => rfc3339.to_owned(),
    }
}

/// How long something took, one format on every page: `0.4s` and `12.3s` under a minute,
/// `1m 05s` under an hour, `2h 03m` beyond.
pub(super) fn duration_text(millis: i128) -> String {
    let millis = millis.max(0);
    let seconds = millis / 1000;
    if millis < 60_000 {
        format!("{:.1}s", millis as f64 / 1000.0)
    } else if seconds < 3600 {
        format!("{}m {:02}s", seconds / 60, seconds % 60)
    } else {
        format!("{}h {:02}m", seconds / 3600, (seconds / 60) % 60)
    }
}

/// A job's duration from its RFC 3339 start and end: `running` while it runs, empty before.
pub(super) fn job_duration(started_at: Option<&str>, finished_at: Option<&str>) -> String {
    let parse = |t: &str| {
        time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
    };
    match (started_at.and_then(parse), finished_at.and_then(parse)) {
        (Some(start), Some(end)) => duration_text((end - start).whole_milliseconds()),
        (Some(_), None) => "running".to_owned(),
        _ => String::new(),
    }
}

/// The templates' own filters: `{{ at|when }}` shows a stored time as [`exact_time`] does, and
/// `{{ repository|repository_page }}` links a repository's page.
pub(super) mod filters {
    /// `{{ at|when }}`.
    pub(in crate::web) fn when<T: std::fmt::Display>(
        at: T,
        _: &dyn askama::Values,
    ) -> askama::Result<String> {
        Ok(super::exact_time(&at.to_string()))
    }

    /// `{{ repository|repository_page }}`: its page's path.
    pub(in crate::web) fn repository_page<T: std::fmt::Display>(
        repository: T,
        _: &dyn askama::Values,
    ) -> askama::Result<String> {
        Ok(super::super::links::repository_link(
            &repository.to_string(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_utc_to_the_second() {
        let cases = [
            ("2026-12-07T13:32:20.141419311Z", "2026-12-07 13:32:20 UTC"),
            ("2026-12-07T15:32:20+02:00", "2026-12-07 13:32:20 UTC"),
            ("", ""),
            ("yesterday", "yesterday"),
        ];
        for (stored, shown) in cases {
            assert_eq!(exact_time(stored), shown, "{stored}");
        }
    }

    #[test]
    fn durations_have_one_format() {
        let cases = [
            (0, "0.0s"),
            (420, "0.4s"),
            (12_340, "12.3s"),
            (65_000, "1m 05s"),
            (3_599_999, "59m 59s"),
            (7_380_000, "2h 03m"),
            (-5, "0.0s"),
        ];
        for (millis, shown) in cases {
            assert_eq!(duration_text(millis), shown, "{millis}");
        }
        let at = |s: &str| Some(s.to_owned());
        assert_eq!(
            job_duration(
                at("2026-12-07T13:32:20Z").as_deref(),
                at("2026-12-07T13:33:25.5Z").as_deref()
            ),
            "1m 05s"
        );
        assert_eq!(job_duration(Some("2026-12-07T13:32:20Z"), None), "running");
        assert_eq!(job_duration(None, None), "");
    }
}
