//! The checks a repository asks for in its `.switchyard.toml`: the file parsed within the
//! entry's bounds ([`file`]), matrices expanded into cells ([`matrix`]), `needs` checked for
//! unknown names and cycles ([`order`]), `paths` matched against changed files ([`paths`]),
//! and the file read from git's objects of the commit, never the work tree ([`git`]).
//!
//! Nothing here runs a check or reports one: that is the runner's (`lib.rs`). Every error
//! names its line and column and quotes only the file's own text, never the host's settings.

mod file;
pub mod git;
mod matrix;
mod order;
pub mod paths;

use std::{collections::BTreeMap, fmt};

use serde::Deserialize;

pub use file::parse;

/// The file's name at the root of the commit: a dotfile, like `.travis.yml` and
/// `.woodpecker.yml`, so it sits beside the project's other tooling, named for the tool it
/// configures, in the TOML the host's own config uses.
pub const FILE: &str = ".switchyard.toml";

/// The longest name a check (or a matrix cell) may have, in characters: GitHub shows check
/// names in one line, and a status context should stay readable.
pub const MAX_NAME: usize = 100;

/// How much a repository's file may ask for: the entry's settings, each with its default.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Bounds {
    /// Most checks one push may run, matrix cells counted one by one.
    pub max_checks: usize,
    /// The longest `timeout_secs` a check may ask for.
    pub max_timeout_secs: u64,
    /// The most cells one check's matrix may expand into.
    pub max_matrix_cells: usize,
    /// The largest file read, in bytes.
    pub max_file_bytes: usize,
}

impl Default for Bounds {
    fn default() -> Self {
        Self {
            max_checks: 50,
            max_timeout_secs: 6 * 3600,
            max_matrix_cells: 32,
            max_file_bytes: 64 * 1024,
        }
    }
}

/// One check to run: a `[[check]]` of the file, or one cell of its matrix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// Its check run's name or status context: `db (engine=postgres)` for a cell.
    pub name: String,
    /// The `[[check]]`'s own name, which `needs` and `/test` may name for all its cells.
    pub family: String,
    /// Run by `sh -c` in the workspace.
    pub run: String,
    pub timeout_secs: u64,
    /// The file's `env`, then the cell's matrix values (keys upper-cased).
    pub env: BTreeMap<String, String>,
    /// Run only when the pull request changes a file these match; empty: always.
    pub paths: Vec<String>,
    /// Names of the checks (cells) that must pass first.
    pub needs: Vec<String>,
    /// Where its `paths` are written, for an error found against the commit's files.
    pub paths_at: Position,
}

/// A line and column of the file, from 1.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

impl Position {
    /// The position of byte `offset` of `text`, columns counted in characters.
    pub fn of(text: &str, offset: usize) -> Self {
        let mut offset = offset.min(text.len());
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &text[..offset];
        let line_start = before.rfind('\n').map_or(0, |at| at + 1);
        Self {
            line: before.matches('\n').count() + 1,
            column: before[line_start..].chars().count() + 1,
        }
    }
}

/// Why a file was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileError {
    /// Where, when the error is about one place of the file.
    pub at: Option<Position>,
    pub message: String,
}

impl FileError {
    pub fn at(at: Position, message: impl Into<String>) -> Self {
        Self {
            at: Some(at),
            message: message.into(),
        }
    }

    pub fn whole(message: impl Into<String>) -> Self {
        Self {
            at: None,
            message: message.into(),
        }
    }
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.at {
            Some(Position { line, column }) => {
                write!(f, "{FILE}, line {line}, column {column}: {}", self.message)
            }
            None => write!(f, "{FILE}: {}", self.message),
        }
    }
}

/// Whether `name` may name a check: letters, digits, spaces and a few marks, nothing that is
/// markup in a page or a comment, nothing that hides (control characters). `Err` says why
/// without quoting the name.
pub fn check_name(name: &str, what: &str) -> Result<(), String> {
    if name.trim().is_empty() {
        return Err(format!("{what} is empty"));
    }
    let length = name.chars().count();
    if length > MAX_NAME {
        return Err(format!(
            "{what} has {length} characters; at most {MAX_NAME}"
        ));
    }
    if name != name.trim() {
        return Err(format!("{what} begins or ends with a space"));
    }
    if let Some(bad) = name.chars().find(|&c| !allowed_in_name(c)) {
        return Err(format!(
            "{what} holds U+{:04X}, which a name may not: letters, digits, spaces and - _ . : / + @ # only",
            u32::from(bad)
        ));
    }
    Ok(())
}

fn allowed_in_name(c: char) -> bool {
    c.is_ascii_alphanumeric() || " -_.:/+@#".contains(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_configs_bounds_line_uncommented_gives_the_defaults() {
        #[derive(Deserialize)]
        struct Settings {
            bounds: Bounds,
        }
        let shipped = include_str!("../../../../config.toml");
        let line = shipped
            .lines()
            .find_map(|line| line.strip_prefix("# bounds = "))
            .expect("config.toml shows the bounds");
        let parsed: Settings = toml::from_str(&format!("bounds = {line}")).unwrap();
        assert_eq!(parsed.bounds, Bounds::default());
        // Left out, each takes its default; an unknown key is refused.
        let partial: Settings = toml::from_str("bounds = { max_checks = 5 }").unwrap();
        assert_eq!(partial.bounds.max_checks, 5);
        assert_eq!(
            partial.bounds.max_file_bytes,
            Bounds::default().max_file_bytes
        );
        assert!(toml::from_str::<Settings>("bounds = { max_check = 5 }").is_err());
    }

    #[test]
    fn positions_count_lines_and_characters_from_one() {
        let text = "a = 1\nbé = 2\n";
        assert_eq!(Position::of(text, 0), Position { line: 1, column: 1 });
        assert_eq!(Position::of(text, 6), Position { line: 2, column: 1 });
        // "bé " is three characters and four bytes.
        assert_eq!(Position::of(text, 10), Position { line: 2, column: 4 });
        assert_eq!(Position::of(text, 1000), Position { line: 3, column: 1 });
    }

    #[test]
    fn names_hold_no_markup_no_control_characters_and_are_short() {
        let cases = [
            ("test", true),
            ("lint: clippy", true),
            ("db/postgres-16", true),
            ("<script>", false),
            ("a&b", false),
            ("tab\there", false),
            ("", false),
            (" padded", false),
            ("é", false),
        ];
        for (name, ok) in cases {
            assert_eq!(check_name(name, "the name").is_ok(), ok, "{name:?}");
        }
        let long = "x".repeat(MAX_NAME + 1);
        let error = check_name(&long, "the name").unwrap_err();
        assert!(error.contains("101 characters"), "{error}");
        assert!(check_name(&"x".repeat(MAX_NAME), "the name").is_ok());
        // The reason names the character by its code, never the name itself.
        let error = check_name("<b>x", "the name").unwrap_err();
        assert!(
            error.contains("U+003C") && !error.contains("<b>"),
            "{error}"
        );
    }
}
