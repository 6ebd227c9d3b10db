//! A check run's text and times: the end of a build's log as Markdown within GitHub's
//! 65,535 characters, and times as GitHub wants them.

use std::time::{SystemTime, UNIX_EPOCH};

/// GitHub's limit on a check run's `output.text` and `summary`, in characters; kept in bytes,
/// which is never fewer.
pub const MAX_TEXT: usize = 65_535;

/// The log's end as Markdown: a fence no line of it can close.
pub fn log_end(tail: &str) -> String {
    let mut longest = 0;
    let mut run = 0;
    for c in tail.chars() {
        run = if c == '`' { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    let fence = "`".repeat((longest + 1).max(3));
    let head = format!("The end of the build's log:\n\n{fence}\n");
    let foot = format!("\n{fence}\n");
    let room = MAX_TEXT - head.len() - foot.len();
    // The end is what matters: cut from the front, at a line.
    let mut start = tail.len().saturating_sub(room);
    while !tail.is_char_boundary(start) {
        start += 1;
    }
    if start > 0 {
        start = tail[start..]
            .find('\n')
            .map_or(tail.len(), |at| start + at + 1);
    }
    format!("{head}{}{foot}", tail[start..].trim_end_matches('\n'))
}

pub fn cut(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

/// `YYYY-MM-DDTHH:MM:SSZ`, as GitHub wants its times.
pub fn rfc3339(at: SystemTime) -> String {
    let secs = at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) as i64;
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn times_are_rfc3339_in_utc() {
        let cases = [
            (0, "1970-01-01T00:00:00Z"),
            (951_782_400, "2000-02-29T00:00:00Z"),
            (1_796_246_530, "2026-12-02T21:22:10Z"),
        ];
        for (secs, expected) in cases {
            assert_eq!(rfc3339(UNIX_EPOCH + Duration::from_secs(secs)), expected);
        }
    }

    #[test]
    fn the_text_keeps_the_logs_end_within_githubs_limit_in_a_fence_it_cannot_close() {
        let long: String = (0..20_000).map(|i| format!("line {i}\n")).collect();
        let shown = log_end(&long);
        assert!(shown.len() <= MAX_TEXT, "{}", shown.len());
        assert!(shown.ends_with("line 19999\n```\n"));
        let first = shown.lines().nth(3).unwrap();
        assert!(
            first.starts_with("line "),
            "starts at a whole line: {first}"
        );
        let fenced = log_end("a ```` b\n");
        assert!(fenced.contains("`````\na ```` b\n`````\n"), "{fenced}");
    }
}
