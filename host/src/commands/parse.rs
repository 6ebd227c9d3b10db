//! Reading commands out of a comment's body, as people write them: a line beginning with
//! `/name`, then its arguments (quotes group words). Pure: no I/O, no allocation beyond the
//! commands it returns, and bounded whatever the body (GitHub allows 65,536 characters).
//!
//! Not commands: lines in a `>` quote or in a code fence (people quote and paste commands when
//! they talk about them), lines indented as code (four spaces), and a `/word` no plugin takes
//! (people write paths and slashes in prose). Comments by bots are never read (`by_bot`).

use serde_json::Value;

/// Commands read from one comment at most; the rest are ignored, with one note.
pub(crate) const MAX_COMMANDS: usize = 10;
/// Arguments of one command at most.
pub(crate) const MAX_ARGS: usize = 16;
/// Characters of one command's arguments at most.
pub(crate) const MAX_ARGS_CHARS: usize = 1024;

/// One command as written: its name (lowercased) and its arguments, or why they could not be
/// read (answered with the command's usage).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Invocation {
    pub name: String,
    pub args: Result<Vec<String>, String>,
}

/// What a comment asks for.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Parsed {
    /// In the order written, each at most once, at most [`MAX_COMMANDS`].
    pub commands: Vec<Invocation>,
    /// Known commands past [`MAX_COMMANDS`], not read.
    pub ignored: usize,
}

/// The commands in `body` whose names `known` takes (the plugins' and `help`).
pub(crate) fn parse(body: &str, known: impl Fn(&str) -> bool) -> Parsed {
    let mut parsed = Parsed::default();
    let mut fence: Option<(u8, usize)> = None;
    for line in body.lines() {
        let (indent, text) = split_indent(line);
        if let Some((mark, length)) = fence {
            if closes_fence(text, mark, length) && indent < 4 {
                fence = None;
            }
            continue;
        }
        if indent >= 4 {
            continue;
        }
        if let Some(opened) = opens_fence(text) {
            fence = Some(opened);
            continue;
        }
        let Some((name, rest)) = command_name(text) else {
            continue;
        };
        if !known(&name) {
            continue;
        }
        if parsed.commands.len() == MAX_COMMANDS {
            parsed.ignored += 1;
            continue;
        }
        let invocation = Invocation {
            name,
            args: split_args(rest),
        };
        if !parsed.commands.contains(&invocation) {
            parsed.commands.push(invocation);
        }
    }
    parsed
}

/// Whether a comment's author is a bot (GitHub's `user.type`), this host's own App included:
/// a bot's comment is never a command, so no bot can drive another, or itself.
pub(crate) fn by_bot(comment: &Value) -> bool {
    let user = &comment["user"];
    user["type"].as_str() == Some("Bot")
        || user["login"].as_str().is_some_and(|l| l.ends_with("[bot]"))
}

/// Spaces before the text (a tab counts as four, as in Markdown), and the text.
fn split_indent(line: &str) -> (usize, &str) {
    let mut indent = 0;
    for (at, c) in line.char_indices() {
        match c {
            ' ' => indent += 1,
            '\t' => indent += 4,
            _ => return (indent, &line[at..]),
        }
    }
    (indent, "")
}

/// A fence's mark and length when `text` opens one: three or more backticks or tildes.
fn opens_fence(text: &str) -> Option<(u8, usize)> {
    let mark = *text.as_bytes().first()?;
    if mark != b'`' && mark != b'~' {
        return None;
    }
    let length = text.bytes().take_while(|&b| b == mark).count();
    (length >= 3).then_some((mark, length))
}

/// Whether `text` closes a fence opened with `length` of `mark`: as many or more of the same
/// mark, and nothing after them.
fn closes_fence(text: &str, mark: u8, length: usize) -> bool {
    let run = text.bytes().take_while(|&b| b == mark).count();
    run >= length && text[run..].trim().is_empty()
}

/// `("retest", "the rest")` when `text` is `/retest the rest`: a `/`, then a name ended by
/// white space or the line's end. `/usr/bin` and `/retest.` are not commands.
fn command_name(text: &str) -> Option<(String, &str)> {
    let text = text.strip_prefix('/')?;
    let end = text.find(char::is_whitespace).unwrap_or(text.len());
    let (name, rest) = text.split_at(end);
    let valid = !name.is_empty()
        && name.len() <= switchyard_plugin_api::MAX_COMMAND_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    valid.then(|| (name.to_ascii_lowercase(), rest))
}

/// Splits arguments at white space; `"..."` and `'...'` hold a group together, quotes removed.
fn split_args(rest: &str) -> Result<Vec<String>, String> {
    if rest.chars().count() > MAX_ARGS_CHARS {
        return Err(format!("arguments longer than {MAX_ARGS_CHARS} characters"));
    }
    let mut args = Vec::new();
    let mut chars = rest.trim().chars().peekable();
    while let Some(&first) = chars.peek() {
        if first.is_whitespace() {
            chars.next();
            continue;
        }
        let mut arg = String::new();
        while let Some(&c) = chars.peek() {
            if c.is_whitespace() {
                break;
            }
            chars.next();
            if c == '"' || c == '\'' {
                let mut closed = false;
                for inner in chars.by_ref() {
                    if inner == c {
                        closed = true;
                        break;
                    }
                    arg.push(inner);
                }
                if !closed {
                    return Err(format!("a quote ({c}) is not closed"));
                }
            } else {
                arg.push(c);
            }
        }
        if args.len() == MAX_ARGS {
            return Err(format!("more than {MAX_ARGS} arguments"));
        }
        args.push(arg);
    }
    Ok(args)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known(name: &str) -> bool {
        ["retest", "test", "deploy", "help", "ok-to-test"].contains(&name)
    }

    /// A command's name and arguments.
    type Written = (String, Vec<String>);

    fn names_and_args(body: &str) -> Vec<Written> {
        parse(body, known)
            .commands
            .into_iter()
            .map(|c| (c.name, c.args.unwrap()))
            .collect()
    }

    fn cmd(name: &str, args: &[&str]) -> Written {
        (
            name.to_owned(),
            args.iter().map(|a| a.to_string()).collect(),
        )
    }

    #[test]
    fn commands_are_read_where_people_write_them() {
        // (body, expected commands)
        let cases: Vec<(&str, Vec<Written>)> = vec![
            ("/retest", vec![cmd("retest", &[])]),
            ("/retest\r\n", vec![cmd("retest", &[])]),
            ("  /test unit", vec![cmd("test", &["unit"])]),
            ("/Retest", vec![cmd("retest", &[])]),
            (
                "LGTM, but flaky.\n/retest\n/test integration  lint\nthanks",
                vec![cmd("retest", &[]), cmd("test", &["integration", "lint"])],
            ),
            (
                "/deploy \"staging eu\" 'my branch' --force",
                vec![cmd("deploy", &["staging eu", "my branch", "--force"])],
            ),
            ("/deploy a\"b c\"d", vec![cmd("deploy", &["ab cd"])]),
            ("/ok-to-test 0123abc", vec![cmd("ok-to-test", &["0123abc"])]),
            // Repeated: once.
            ("/retest\n/retest", vec![cmd("retest", &[])]),
            // Not at the start of a line, not a name, unknown, or prose.
            ("please /retest", vec![]),
            ("/retest. or not", vec![]),
            ("/usr/bin/env", vec![]),
            ("/frobnicate now", vec![]),
            ("/ retest", vec![]),
            ("retest", vec![]),
            // Quoted, fenced or indented as code.
            ("> /retest", vec![]),
            ("  > /retest\n>> /test", vec![]),
            ("```\n/retest\n```", vec![]),
            ("~~~sh\n/retest\n~~~\n/test", vec![cmd("test", &[])]),
            ("````\n```\n/retest\n````\n/help", vec![cmd("help", &[])]),
            ("```\n/retest\n~~~\n/test", vec![]),
            ("    /retest", vec![]),
            ("\t/retest", vec![]),
            ("", vec![]),
        ];
        for (body, expected) in cases {
            assert_eq!(names_and_args(body), expected, "{body:?}");
        }
    }

    #[test]
    fn bad_arguments_are_kept_to_answer_with_the_usage() {
        let unclosed = parse("/deploy \"staging", known);
        assert_eq!(unclosed.commands.len(), 1);
        assert!(
            unclosed.commands[0]
                .args
                .as_ref()
                .unwrap_err()
                .contains("quote")
        );
        let many = format!("/test {}", "x ".repeat(MAX_ARGS + 1));
        assert!(parse(&many, known).commands[0].args.is_err());
        let long = format!("/test {}", "x".repeat(MAX_ARGS_CHARS + 1));
        assert!(parse(&long, known).commands[0].args.is_err());
        let just_enough = format!("/test {}", "x ".repeat(MAX_ARGS));
        assert_eq!(
            parse(&just_enough, known).commands[0]
                .args
                .as_ref()
                .unwrap()
                .len(),
            MAX_ARGS
        );
    }

    #[test]
    fn a_huge_comment_yields_a_bounded_list_and_a_count_of_the_rest() {
        // GitHub's largest comment, nearly every line a slash, a few hundred of them commands.
        let mut body = String::new();
        let mut n = 0;
        while body.len() < 65_536 - 16 {
            let line = match n % 3 {
                0 => format!("/test t{n}\n"),
                1 => "/nonsense\n".to_owned(),
                _ => "/ / / / / /\n".to_owned(),
            };
            body.push_str(&line);
            n += 1;
        }
        let written = body.lines().filter(|l| l.starts_with("/test ")).count();
        assert!(written > 300, "{written}");
        let parsed = parse(&body, known);
        assert_eq!(parsed.commands.len(), MAX_COMMANDS);
        assert_eq!(parsed.ignored, written - MAX_COMMANDS);
        assert_eq!(
            parsed.commands[0],
            Invocation {
                name: "test".into(),
                args: Ok(vec!["t0".into()])
            }
        );
    }

    #[test]
    fn bots_never_give_commands() {
        let comment =
            |login: &str, kind: &str| serde_json::json!({"user": {"login": login, "type": kind}});
        assert!(by_bot(&comment("switchyard[bot]", "Bot")));
        assert!(by_bot(&comment("dependabot[bot]", "User")));
        assert!(by_bot(&comment("renovate", "Bot")));
        assert!(!by_bot(&comment("mona", "User")));
        assert!(!by_bot(&comment("octo-org", "Organization")));
    }
}
