//! Log bytes as HTML: every line numbered with an anchor (`#L120`), ANSI colours as classes
//! (the page's CSP allows no inline style), `::group::`/`::endgroup::` as foldable `<details>`,
//! lines that look like errors marked, timestamps when asked for. Everything else in the text
//! is escaped.

use std::fmt::Write as _;

use super::Cap;

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape(text: &str, out: &mut String) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // Other control characters (a stray escape, a bell) are dropped; tabs stay.
            '\t' => out.push('\t'),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
}

/// SGR state carried from one line to the next.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Style {
    fg: Option<u8>,
    bg: Option<u8>,
    bold: bool,
    italic: bool,
    underline: bool,
}

impl Style {
    fn classes(&self) -> String {
        let mut classes = Vec::new();
        if let Some(fg) = self.fg {
            classes.push(format!("fg{fg}"));
        }
        if let Some(bg) = self.bg {
            classes.push(format!("bg{bg}"));
        }
        if self.bold {
            classes.push("b".to_owned());
        }
        if self.italic {
            classes.push("i".to_owned());
        }
        if self.underline {
            classes.push("u".to_owned());
        }
        classes.join(" ")
    }

    /// Applies one SGR sequence's parameters (`1;31`). Colours are 0-15: the 8 basic ones and
    /// their bright forms; 256-colour and RGB colours are skipped.
    fn apply(&mut self, params: &str) {
        let mut codes = params.split(';').map(|p| {
            if p.is_empty() {
                Some(0)
            } else {
                p.parse::<u16>().ok()
            }
        });
        while let Some(code) = codes.next() {
            match code {
                Some(0) => *self = Self::default(),
                Some(1) => self.bold = true,
                Some(3) => self.italic = true,
                Some(4) => self.underline = true,
                Some(22) => self.bold = false,
                Some(23) => self.italic = false,
                Some(24) => self.underline = false,
                Some(c @ 30..=37) => self.fg = Some((c - 30) as u8),
                Some(39) => self.fg = None,
                Some(c @ 40..=47) => self.bg = Some((c - 40) as u8),
                Some(49) => self.bg = None,
                Some(c @ 90..=97) => self.fg = Some((c - 90 + 8) as u8),
                Some(c @ 100..=107) => self.bg = Some((c - 100 + 8) as u8),
                Some(38 | 48) => {
                    // 5;N or 2;R;G;B: skipped whole.
                    let skip = match codes.next() {
                        Some(Some(5)) => 1,
                        Some(Some(2)) => 3,
                        _ => 0,
                    };
                    for _ in 0..skip {
                        codes.next();
                    }
                }
                _ => {}
            }
        }
    }
}

/// Renders one line's text (without its newline) as escaped HTML with `<span class>` runs for
/// its colours, updating `style`; also returns the text with escape sequences removed.
pub fn ansi_to_html(line: &str, style: &mut Style) -> (String, String) {
    let mut html = String::with_capacity(line.len() + 16);
    let mut plain = String::with_capacity(line.len());
    let mut open = false;
    let start_span = |html: &mut String, style: &Style, open: &mut bool| {
        let classes = style.classes();
        if !classes.is_empty() {
            let _ = write!(html, "<span class=\"{classes}\">");
            *open = true;
        }
    };
    start_span(&mut html, style, &mut open);
    let mut rest = line;
    while let Some(at) = rest.find('\u{1b}') {
        let text = &rest[..at];
        escape(text, &mut html);
        plain.push_str(text);
        let after = &rest[at + 1..];
        // CSI: ESC [ params final-byte. Only `m` (colours) is kept; others are dropped.
        if let Some(csi) = after.strip_prefix('[') {
            let end = csi.find(|c: char| ('@'..='~').contains(&c));
            match end {
                Some(end) => {
                    if csi[end..].starts_with('m') {
                        let before = *style;
                        style.apply(&csi[..end]);
                        if *style != before {
                            if open {
                                html.push_str("</span>");
                                open = false;
                            }
                            start_span(&mut html, style, &mut open);
                        }
                    }
                    rest = &csi[end + 1..];
                }
                None => rest = "",
            }
        } else if let Some(osc) = after.strip_prefix(']') {
            // OSC (a title, a hyperlink): up to BEL or ESC \.
            let end = osc.find(['\u{7}', '\u{1b}']).unwrap_or(osc.len());
            rest = osc[end..]
                .strip_prefix('\u{7}')
                .or_else(|| osc[end..].strip_prefix("\u{1b}\\"))
                .unwrap_or("");
        } else {
            rest = after.get(1..).unwrap_or("");
        }
    }
    escape(rest, &mut html);
    plain.push_str(rest);
    if open {
        html.push_str("</span>");
    }
    (html, plain)
}

/// Whether a line (escape sequences removed) looks like an error.
pub fn looks_like_error(plain: &str) -> bool {
    let lower = plain.to_ascii_lowercase();
    lower.starts_with("::error")
        || ["error", "failed", "panicked", "fatal:"]
            .iter()
            .any(|word| lower.contains(word))
}

/// Renders log lines numbered from `first`, nesting `::group::` sections in `<details>`. Lines
/// arrive one at a time: [`LogHtml::line`], then [`LogHtml::finish`].
pub struct LogHtml {
    pub html: String,
    next: u64,
    style: Style,
    /// Inside a group opened by this renderer.
    in_group: bool,
}

impl LogHtml {
    pub fn new(first: u64) -> Self {
        Self {
            html: String::new(),
            next: first,
            style: Style::default(),
            in_group: false,
        }
    }

    /// The number the next line gets.
    pub fn next_number(&self) -> u64 {
        self.next
    }

    /// A line, with the time it was written shown before it when `stamp` is given.
    pub fn line_stamped(&mut self, text: &str, stamp: Option<&str>) {
        let stamp = stamp.map_or(String::new(), |stamp| {
            format!("<span class=\"ts\">{stamp}</span>")
        });
        let n = self.next;
        self.next += 1;
        let text = text.strip_suffix('\r').unwrap_or(text);
        // A carriage return redraws the line (progress bars): what is shown is the last draw.
        let text = text.rsplit('\r').next().unwrap_or(text);
        let (body, plain) = ansi_to_html(text, &mut self.style);
        let trimmed = plain.trim_start();
        let mut class = String::from("line");
        if looks_like_error(&plain) {
            class.push_str(" error");
        }
        if let Some(title) = trimmed.strip_prefix("::group::") {
            if self.in_group {
                self.html.push_str("</div></details>");
            }
            let mut title_html = String::new();
            escape(title, &mut title_html);
            let _ = write!(
                self.html,
                "<details class=\"group\"><summary><span class=\"{class} group-start\" id=\"L{n}\"><a class=\"ln\" href=\"#L{n}\">{n}</a>{stamp}<span class=\"t\">{title_html}</span></span></summary><div class=\"group-body\">"
            );
            self.in_group = true;
            return;
        }
        if trimmed.starts_with("::endgroup::") {
            // Hidden as GitHub Actions hides it: the group's end, kept by number and by the
            // class the follow script closes the group at.
            let _ = write!(
                self.html,
                "<span class=\"line group-end\" id=\"L{n}\" hidden></span>"
            );
            if self.in_group {
                self.html.push_str("</div></details>");
                self.in_group = false;
            }
            return;
        }
        let _ = write!(
            self.html,
            "<span class=\"{class}\" id=\"L{n}\"><a class=\"ln\" href=\"#L{n}\">{n}</a>{stamp}<span class=\"t\">{body}</span></span>"
        );
    }

    pub fn finish(mut self) -> String {
        if self.in_group {
            self.html.push_str("</div></details>");
        }
        self.html
    }
}

/// What [`render`] made of a window.
pub struct Rendered {
    pub html: String,
    /// The number the next line gets.
    pub next_line: u64,
    /// Lines rendered: all of the window's, or fewer when the cap was reached.
    pub lines: u64,
}

/// Renders `bytes` (whole lines, from offset `at` of the log) numbered from `first`, until
/// `cap`; each line with the time the chunk holding its start was written when `times` is
/// given (see `chunk_times`). At least one line is rendered, so a reader always gets on.
pub fn render(
    bytes: &[u8],
    first: u64,
    at: u64,
    times: Option<&[(u64, u64)]>,
    cap: Cap,
) -> Rendered {
    let text = String::from_utf8_lossy(bytes);
    let text = text.strip_suffix('\n').unwrap_or(&text);
    let mut out = LogHtml::new(first);
    let mut offset = at;
    let mut lines = 0u64;
    if !bytes.is_empty() {
        for line in text.split('\n') {
            if lines > 0 && (lines >= cap.lines as u64 || out.html.len() >= cap.bytes) {
                break;
            }
            let stamp = times.and_then(|times| time_at(times, offset)).map(clock);
            out.line_stamped(line, stamp.as_deref());
            offset += line.len() as u64 + 1;
            lines += 1;
        }
    }
    Rendered {
        next_line: out.next_number(),
        html: out.finish(),
        lines,
    }
}

/// The time of the last chunk written at or before `offset`.
fn time_at(times: &[(u64, u64)], offset: u64) -> Option<u64> {
    let after = times.partition_point(|(start, _)| *start <= offset);
    after.checked_sub(1).map(|i| times[i].1)
}

/// `HH:MM:SS.mmm` in UTC, of Unix milliseconds.
fn clock(millis: u64) -> String {
    let of_day = millis % 86_400_000;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        of_day / 3_600_000,
        of_day / 60_000 % 60,
        of_day / 1000 % 60,
        of_day % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::super::read::{chunk_times, end_of_lines};
    use super::*;

    const UNCAPPED: Cap = Cap {
        lines: usize::MAX,
        bytes: usize::MAX,
    };

    #[test]
    fn a_window_of_empty_lines_is_capped_in_lines_and_rendered_bytes() {
        let empty = vec![b'\n'; 300_000];
        // (cap, lines rendered)
        let cases = [
            (
                Cap {
                    lines: 5000,
                    bytes: 1 << 20,
                },
                5000,
            ),
            (
                Cap {
                    lines: 1_000_000,
                    bytes: 64 << 10,
                },
                0,
            ),
            (Cap { lines: 0, bytes: 0 }, 1),
        ];
        for (cap, lines) in cases {
            let rendered = render(&empty, 1, 0, None, cap);
            if lines > 0 {
                assert_eq!(rendered.lines, lines);
            }
            assert!(rendered.lines >= 1);
            assert!(
                rendered.html.len() < cap.bytes.max(1000) + 1000,
                "{}",
                rendered.html.len()
            );
            assert_eq!(rendered.next_line, 1 + rendered.lines);
            assert_eq!(
                end_of_lines(&empty, rendered.lines),
                rendered.lines as usize
            );
        }
    }

    #[tokio::test]
    async fn each_line_gets_the_time_of_the_chunk_its_start_was_written_in() {
        let dir = tempfile::tempdir().unwrap();
        let times = dir.path().join("1.times");
        // Chunks at 0, 8 and 19, a second apart from 01:00:00 UTC; one written out of order.
        let base = 3_600_000u64;
        let mut records = Vec::new();
        for (offset, millis) in [(0u64, base), (19, base + 2000), (8, base + 1000)] {
            records.extend_from_slice(&offset.to_le_bytes());
            records.extend_from_slice(&millis.to_le_bytes());
        }
        std::fs::write(&times, records).unwrap();
        let all = chunk_times(&times, 0, 30).await.unwrap();
        assert_eq!(all, [(0, base), (8, base + 1000), (19, base + 2000)]);
        // A window from 10 on: the chunk it starts in, and the later ones.
        let window = chunk_times(&times, 10, 30).await.unwrap();
        assert_eq!(time_at(&window, 10), Some(base + 1000));
        assert_eq!(time_at(&window, 25), Some(base + 2000));
        let missing = dir.path().join("none.times");
        assert!(chunk_times(&missing, 0, 10).await.unwrap().is_empty());

        // "one\ntwo\n" at 0..8, "three\n" at 8, "four\n" at 14 (same chunk), "five" at 19.
        let rendered = render(b"one\ntwo\nthree\nfour\nfive\n", 1, 0, Some(&all), UNCAPPED);
        let (html, next) = (rendered.html, rendered.next_line);
        assert_eq!(next, 6);
        let stamps: Vec<&str> = html
            .split("<span class=\"ts\">")
            .skip(1)
            .map(|rest| &rest[..rest.find('<').unwrap()])
            .collect();
        assert_eq!(
            stamps,
            [
                "01:00:00.000",
                "01:00:00.000",
                "01:00:01.000",
                "01:00:01.000",
                "01:00:02.000"
            ]
        );
        let plain = render(b"one\n", 1, 0, None, UNCAPPED).html;
        assert!(!plain.contains("class=\"ts\""));
    }

    #[test]
    fn html_and_ansi_become_escaped_spans() {
        let mut style = Style::default();
        let (html, plain) = ansi_to_html(
            "\u{1b}[1;31m<script>alert('x')</script>\u{1b}[0m & done\u{1b}]0;title\u{7}\u{1b}[2K",
            &mut style,
        );
        assert_eq!(
            html,
            "<span class=\"fg1 b\">&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;</span> &amp; done"
        );
        assert_eq!(plain, "<script>alert('x')</script> & done");
        assert_eq!(style, Style::default());
        // Colour carries to the next line until reset.
        let (first, _) = ansi_to_html("\u{1b}[92mgreen", &mut style);
        let (second, _) = ansi_to_html("still\u{1b}[39m plain", &mut style);
        assert_eq!(first, "<span class=\"fg10\">green</span>");
        assert_eq!(second, "<span class=\"fg10\">still</span> plain");
    }

    #[test]
    fn lines_are_numbered_grouped_and_errors_marked() {
        let rendered = render(
            b"start\n::group::Build <x>\ncompiling\nerror: it broke\n::endgroup::\nend\n",
            10,
            0,
            None,
            UNCAPPED,
        );
        let (html, next) = (rendered.html, rendered.next_line);
        assert_eq!(next, 16);
        assert!(html.contains("<span class=\"line\" id=\"L10\"><a class=\"ln\" href=\"#L10\">10</a><span class=\"t\">start</span></span>"));
        assert!(html.contains(
            "<details class=\"group\"><summary><span class=\"line group-start\" id=\"L11\">"
        ));
        assert!(html.contains("Build &lt;x&gt;"));
        assert!(html.contains("<span class=\"line error\" id=\"L13\">"));
        // The end marker is hidden, its number kept, and the group closed there.
        assert!(html.contains("<span class=\"line group-end\" id=\"L14\" hidden></span></div></details><span class=\"line\" id=\"L15\">"));
        assert!(!html.contains("::endgroup::"));
        assert!(!html.contains("::group::"));
    }
}
