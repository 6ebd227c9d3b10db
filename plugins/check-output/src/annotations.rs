//! Annotations from a build's output: compiler and linter lines that name a file, a line and
//! whether it is an error or a warning become check-run annotations on that line. Recognised:
//!
//! - `path:line[:col]: error|warning[CODE]: message`: gcc, clang, `rustc --error-format=short`,
//!   tsc's and many others' one-line form (`fatal error` counts as an error);
//! - rustc's and cargo's usual form: `error[E0308]: message` then `  --> path:line:col`;
//! - eslint's `unix` format: `path:line:col: message [Error/rule]`.
//!
//! Only paths inside the checkout count (relative, or absolute under it, naming a file there):
//! GitHub could not place others, and they may say where the host keeps things. A path is
//! resolved inside the checkout without following any link: a link, or a path through one, is
//! not annotated. The build made the checkout's links, and this runs in the host, after the
//! build, as the host's user: following one would tell the check run whether a host file
//! exists (`x.rs -> /etc/shadow`).

use std::path::{Component, Path, PathBuf};

use serde::Serialize;

/// GitHub takes at most 50 annotations per request.
pub const PER_REQUEST: usize = 50;

/// GitHub's limit on an annotation's message.
const MAX_MESSAGE: usize = 64 * 1024 - 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Warning,
    Failure,
}

/// One annotation, as GitHub's check-run `output.annotations` takes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Annotation {
    pub path: String,
    pub start_line: u64,
    pub end_line: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_column: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_column: Option<u64>,
    pub annotation_level: Level,
    pub message: String,
}

/// The annotations in `output` for files in `checkout`, in order, each once.
pub fn parse(output: &str, checkout: &Path) -> Vec<Annotation> {
    let mut found: Vec<Annotation> = Vec::new();
    // rustc's usual form: the message comes a line before its location.
    let mut pending: Option<(Level, String)> = None;
    for line in output.lines() {
        let annotation = match location_line(line) {
            Some(location) => pending
                .take()
                .and_then(|(level, message)| annotation(location, level, message, checkout)),
            None => {
                pending = heading(line);
                one_line(line, checkout)
            }
        };
        if let Some(annotation) = annotation
            && !found.contains(&annotation)
        {
            found.push(annotation);
        }
    }
    found
}

/// A file, a line and perhaps a column.
type Location<'a> = (&'a str, u64, Option<u64>);

/// `path:line[:col]` split off the front of `text`, and the rest after its `: `.
fn location(text: &str) -> Option<(Location<'_>, &str)> {
    let (path, rest) = text.split_once(':')?;
    let (line, rest) = rest.split_once(':')?;
    let line = line.parse().ok()?;
    if let Some((column, after)) = rest.split_once(':')
        && let Ok(column) = column.parse::<u64>()
    {
        return Some(((path.trim(), line, Some(column)), after.strip_prefix(' ')?));
    }
    Some(((path.trim(), line, None), rest.strip_prefix(' ')?))
}

/// `error: message`, `error[E0308]: message`, `warning: message`, `fatal error: message`.
fn heading(text: &str) -> Option<(Level, String)> {
    let (kind, message) = text.split_once(": ")?;
    let kind = kind.split('[').next()?.trim();
    let level = match kind {
        "error" | "fatal error" => Level::Failure,
        "warning" => Level::Warning,
        _ => return None,
    };
    Some((level, message.trim().to_owned()))
}

/// rustc's `  --> path:line:col`.
fn location_line(line: &str) -> Option<Location<'_>> {
    let rest = line.trim_start().strip_prefix("--> ")?;
    let mut parts = rest.rsplitn(3, ':');
    let column = parts.next()?.trim().parse().ok()?;
    let line = parts.next()?.parse().ok()?;
    Some((parts.next()?, line, Some(column)))
}

/// The one-line forms: gcc's and eslint unix's.
fn one_line(line: &str, checkout: &Path) -> Option<Annotation> {
    let (location, rest) = location(line)?;
    let (level, message) = match heading(rest) {
        Some(found) => found,
        None => eslint(rest)?,
    };
    annotation(location, level, message, checkout)
}

/// eslint's unix format ends in `[Error/rule]` or `[Warning/rule]`.
fn eslint(rest: &str) -> Option<(Level, String)> {
    let open = rest.rfind(" [")?;
    let tag = rest[open + 2..].strip_suffix(']')?;
    let level = match tag.split('/').next()? {
        "Error" => Level::Failure,
        "Warning" => Level::Warning,
        _ => return None,
    };
    Some((level, rest.trim().to_owned()))
}

fn annotation(
    (path, line, column): Location<'_>,
    level: Level,
    mut message: String,
    checkout: &Path,
) -> Option<Annotation> {
    let path = inside(path, checkout)?;
    if line == 0 || message.is_empty() {
        return None;
    }
    if message.len() > MAX_MESSAGE {
        let mut cut = MAX_MESSAGE;
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        message.truncate(cut);
    }
    Some(Annotation {
        path,
        start_line: line,
        end_line: line,
        start_column: column,
        end_column: column,
        annotation_level: level,
        message,
    })
}

/// `path` relative to the checkout, when it names a file in it.
fn inside(path: &str, checkout: &Path) -> Option<String> {
    let given = Path::new(path);
    let relative = match given.strip_prefix(checkout) {
        Ok(relative) => relative.to_owned(),
        Err(_) if given.is_absolute() => return None,
        Err(_) => given.to_owned(),
    };
    let mut clean = PathBuf::new();
    for component in relative.components() {
        match component {
            Component::Normal(part) => clean.push(part),
            Component::CurDir => {}
            // `..`, a root or a prefix: not a file of the checkout as given.
            _ => return None,
        }
    }
    let text = clean.to_str()?.to_owned();
    (!text.is_empty() && plain_file(checkout, &clean)).then_some(text)
}

/// Whether `relative` names a regular file under `root` through folders only: each part is
/// looked at with `lstat`, which never follows a link, and nothing is opened.
fn plain_file(root: &Path, relative: &Path) -> bool {
    let mut at = root.to_owned();
    let mut parts = relative.components().peekable();
    while let Some(part) = parts.next() {
        at.push(part);
        let Ok(found) = std::fs::symlink_metadata(&at) else {
            return false;
        };
        let wanted = match parts.peek() {
            Some(_) => found.file_type().is_dir(),
            None => found.file_type().is_file(),
        };
        if !wanted {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compiler_and_linter_lines_become_annotations_on_files_of_the_checkout() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for file in ["src/main.rs", "src/lib.c", "web/app.js", "notes.txt"] {
            std::fs::create_dir_all(root.join(file).parent().unwrap()).unwrap();
            std::fs::write(root.join(file), "").unwrap();
        }
        let output = format!(
            "\
   Compiling demo v0.1.0
error[E0308]: mismatched types
 --> src/main.rs:4:18
  |
warning: unused variable: `x`
  --> src/main.rs:9:9
src/lib.c:12:5: error: expected ';' before '}}' token
src/lib.c:3: warning: implicit declaration
./src/lib.c:20:1: fatal error: stdio.h: No such file
src/lib.c:21:1: note: a note is not an annotation
{root}/web/app.js:10:5: Unexpected console statement. [Error/no-console]
web/app.js:11:1: Missing semicolon. [Warning/semi]
/usr/include/stdio.h:1:1: error: outside the checkout
../other/x.c:1:1: error: outside the checkout
src/missing.rs:1:1: error: no such file in the checkout
src/lib.c:0:1: error: line zero
src/lib.c:12:5: error: expected ';' before '}}' token
notes.txt:7: error: a time: 12:30
",
            root = root.display()
        );
        let found: Vec<(String, u64, Option<u64>, Level, String)> = parse(&output, root)
            .into_iter()
            .map(|a| {
                (
                    a.path,
                    a.start_line,
                    a.start_column,
                    a.annotation_level,
                    a.message,
                )
            })
            .collect();
        let expected = [
            (
                "src/main.rs",
                4,
                Some(18),
                Level::Failure,
                "mismatched types",
            ),
            (
                "src/main.rs",
                9,
                Some(9),
                Level::Warning,
                "unused variable: `x`",
            ),
            (
                "src/lib.c",
                12,
                Some(5),
                Level::Failure,
                "expected ';' before '}' token",
            ),
            ("src/lib.c", 3, None, Level::Warning, "implicit declaration"),
            (
                "src/lib.c",
                20,
                Some(1),
                Level::Failure,
                "stdio.h: No such file",
            ),
            (
                "web/app.js",
                10,
                Some(5),
                Level::Failure,
                "Unexpected console statement. [Error/no-console]",
            ),
            (
                "web/app.js",
                11,
                Some(1),
                Level::Warning,
                "Missing semicolon. [Warning/semi]",
            ),
            ("notes.txt", 7, None, Level::Failure, "a time: 12:30"),
        ];
        let expected: Vec<_> = expected
            .into_iter()
            .map(|(p, l, c, level, m)| (p.to_owned(), l, c, level, m.to_owned()))
            .collect();
        assert_eq!(found, expected);
    }

    #[test]
    fn links_and_paths_through_them_are_not_annotated() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("checkout");
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(root.join("src")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(root.join("src/real.rs"), "").unwrap();
        std::fs::write(outside.join("secret.rs"), "").unwrap();
        let link = |target: &Path, name: &str| {
            std::os::unix::fs::symlink(target, root.join(name)).unwrap();
        };
        link(&outside.join("secret.rs"), "to-outside.rs");
        link(&outside, "outside-dir");
        link(&root.join("src/real.rs"), "to-inside.rs");
        link(&root.join("src"), "src-again");
        link(&outside.join("missing.rs"), "dangling.rs");
        // (path printed, annotated)
        let cases = [
            ("src/real.rs", true),
            ("./src/real.rs", true),
            ("src", false),
            ("to-outside.rs", false),
            ("outside-dir/secret.rs", false),
            ("to-inside.rs", false),
            ("src-again/real.rs", false),
            ("dangling.rs", false),
            ("src/real.rs/x", false),
        ];
        for (path, annotated) in cases {
            let output = format!("{path}:1:1: error: boom");
            assert_eq!(!parse(&output, &root).is_empty(), annotated, "{path}");
        }
        let absolute = format!("{}:1:1: error: boom", root.join("to-outside.rs").display());
        assert!(parse(&absolute, &root).is_empty());
    }

    #[test]
    fn an_annotation_serializes_as_github_takes_it() {
        let annotation = Annotation {
            path: "src/a.rs".into(),
            start_line: 2,
            end_line: 2,
            start_column: None,
            end_column: None,
            annotation_level: Level::Failure,
            message: "boom".into(),
        };
        assert_eq!(
            serde_json::to_value(&annotation).unwrap(),
            serde_json::json!({"path": "src/a.rs", "start_line": 2, "end_line": 2,
                               "annotation_level": "failure", "message": "boom"})
        );
    }
}
