//! The file's text into checks: its size and encoding first, then TOML (errors placed by the
//! `toml` crate's spans), then each key's rules, the matrices and `needs`, all within the
//! entry's [`Bounds`].

use std::collections::{BTreeMap, HashSet};

use serde::Deserialize;
use toml::Spanned;

use super::{Bounds, Check, FileError, Position, check_name, matrix, order};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    check: Vec<Spanned<RawCheck>>,
}

/// One key's values of a `matrix`.
pub(super) type Axis = Spanned<Vec<Spanned<toml::Value>>>;

/// A `[[check]]` as written, each value with where it is.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCheck {
    pub name: Spanned<String>,
    pub run: Spanned<String>,
    #[serde(default)]
    pub timeout_secs: Option<Spanned<u64>>,
    #[serde(default)]
    pub env: Option<Spanned<BTreeMap<String, String>>>,
    #[serde(default)]
    pub paths: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    pub matrix: Option<Spanned<BTreeMap<String, Axis>>>,
    #[serde(default)]
    pub needs: Option<Spanned<Vec<Spanned<String>>>>,
}

/// Parses `bytes`, a commit's `.switchyard.toml`, into its checks in the order to run them
/// (each after the checks it needs); `timeout_secs` is the entry's, for a check that names none.
pub fn parse(bytes: &[u8], bounds: &Bounds, timeout_secs: u64) -> Result<Vec<Check>, FileError> {
    if bytes.len() > bounds.max_file_bytes {
        return Err(FileError::whole(format!(
            "the file has {} bytes, more than this entry's max_file_bytes = {}",
            bytes.len(),
            bounds.max_file_bytes
        )));
    }
    let text = std::str::from_utf8(bytes).map_err(|error| {
        let valid = std::str::from_utf8(&bytes[..error.valid_up_to()]).unwrap_or_default();
        let at = Position::of(valid, valid.len());
        FileError::at(at, "the file is not UTF-8 text")
    })?;
    let place = |span: std::ops::Range<usize>| Position::of(text, span.start);
    let raw: RawFile = toml::from_str(text).map_err(|error| FileError {
        at: error.span().map(place),
        message: error.message().trim().to_owned(),
    })?;
    let raws = &raw.check;
    if raws.is_empty() {
        return Err(FileError::whole(
            "the file names no check: add a [[check]] with a name and a run",
        ));
    }
    if let Some(past) = raws.get(bounds.max_checks) {
        return Err(FileError::at(
            place(past.span()),
            format!(
                "the file has {} checks, more than this entry's max_checks = {}",
                raws.len(),
                bounds.max_checks
            ),
        ));
    }
    let mut checks = Vec::new();
    let mut names = HashSet::new();
    for raw in raws {
        let raw = raw.get_ref();
        let family = raw.name.get_ref();
        check_name(family, "the check's name")
            .map_err(|e| FileError::at(place(raw.name.span()), e))?;
        let base = base_check(raw, bounds, timeout_secs, &place)?;
        for check in matrix::expand(raw, base, bounds, &place)? {
            if checks.len() == bounds.max_checks {
                return Err(FileError::at(
                    place(raw.name.span()),
                    format!(
                        "with its matrices the file has more than this entry's max_checks = {} checks",
                        bounds.max_checks
                    ),
                ));
            }
            if !names.insert(check.name.clone()) {
                return Err(FileError::at(
                    place(raw.name.span()),
                    format!("two checks are named {:?}", check.name),
                ));
            }
            checks.push(check);
        }
    }
    order::sorted(checks, raws, &place)
}

/// The check a `[[check]]` describes before its matrix: run, timeout, env, paths and needs
/// checked against their rules.
fn base_check(
    raw: &RawCheck,
    bounds: &Bounds,
    timeout_secs: u64,
    place: &impl Fn(std::ops::Range<usize>) -> Position,
) -> Result<Check, FileError> {
    if raw.run.get_ref().trim().is_empty() {
        return Err(FileError::at(place(raw.run.span()), "run is empty"));
    }
    let timeout_secs = match &raw.timeout_secs {
        Some(asked) if *asked.get_ref() == 0 => {
            return Err(FileError::at(
                place(asked.span()),
                "timeout_secs must be at least 1",
            ));
        }
        Some(asked) if *asked.get_ref() > bounds.max_timeout_secs => {
            return Err(FileError::at(
                place(asked.span()),
                format!(
                    "timeout_secs = {} is more than this entry's max_timeout_secs = {}",
                    asked.get_ref(),
                    bounds.max_timeout_secs
                ),
            ));
        }
        Some(asked) => *asked.get_ref(),
        None => timeout_secs.min(bounds.max_timeout_secs),
    };
    let mut env = BTreeMap::new();
    if let Some(table) = &raw.env {
        for (key, value) in table.get_ref() {
            env_name(key).map_err(|e| FileError::at(place(table.span()), e))?;
            if value.contains('\0') {
                return Err(FileError::at(
                    place(table.span()),
                    format!("env.{key} holds a NUL"),
                ));
            }
            env.insert(key.clone(), value.clone());
        }
    }
    let mut paths = Vec::new();
    let mut paths_at = Position::default();
    if let Some(list) = &raw.paths {
        paths_at = place(list.span());
        if list.get_ref().is_empty() {
            return Err(FileError::at(
                paths_at,
                "paths = [] matches nothing, so the check would never run: leave paths out to run it always",
            ));
        }
        for pattern in list.get_ref() {
            super::paths::check_pattern(pattern.get_ref())
                .map_err(|e| FileError::at(place(pattern.span()), e))?;
            paths.push(pattern.get_ref().clone());
        }
    }
    let needs = raw.needs.as_ref().map_or_else(Vec::new, |list| {
        list.get_ref().iter().map(|n| n.get_ref().clone()).collect()
    });
    Ok(Check {
        name: raw.name.get_ref().clone(),
        family: raw.name.get_ref().clone(),
        run: raw.run.get_ref().clone(),
        timeout_secs,
        env,
        paths,
        needs,
        paths_at,
    })
}

/// An `env` key: a shell variable's name, not one the runner sets itself.
pub(super) fn env_name(key: &str) -> Result<(), String> {
    let mut chars = key.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if !first_ok || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(
            "an env key is not a variable name (letters, digits and _, not first a digit)"
                .to_owned(),
        );
    }
    if key == "CI" || key.starts_with("SWITCHYARD_") {
        return Err(format!("env.{key} is set by the runner itself"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::Position;

    fn parsed(text: &str) -> Result<Vec<Check>, FileError> {
        parse(text.as_bytes(), &Bounds::default(), 3600)
    }

    fn refused(text: &str) -> FileError {
        parsed(text).expect_err("refused")
    }

    fn names(checks: &[Check]) -> Vec<&str> {
        checks.iter().map(|c| c.name.as_str()).collect()
    }

    #[test]
    fn the_issues_example_gives_four_checks_with_their_settings() {
        let checks = parsed(
            r#"
[[check]]
name = "test"
run = "cargo test --workspace"
timeout_secs = 1800

[[check]]
name = "lint"
run = "cargo clippy --all-targets -- -D warnings"
paths = ["src/**", "Cargo.toml", "Cargo.lock"]
env = { RUSTFLAGS = "-D warnings" }

[[check]]
name = "db"
run = "./ci/db-tests.sh"
matrix = { engine = ["sqlite", "postgres"] }
"#,
        )
        .unwrap();
        assert_eq!(
            names(&checks),
            ["test", "lint", "db (engine=sqlite)", "db (engine=postgres)"]
        );
        assert_eq!(checks[0].timeout_secs, 1800);
        assert_eq!(
            checks[1].timeout_secs, 3600,
            "the entry's timeout by default"
        );
        assert_eq!(checks[1].paths, ["src/**", "Cargo.toml", "Cargo.lock"]);
        assert_eq!(checks[1].env["RUSTFLAGS"], "-D warnings");
        assert_eq!(checks[3].env["ENGINE"], "postgres");
        assert_eq!(checks[3].family, "db");
    }

    #[test]
    fn a_matrix_of_two_keys_names_each_cell_by_both_in_key_order() {
        let checks = parsed(
            r#"
[[check]]
name = "t"
run = "make"
matrix = { python = ["3.11", "3.12"], os = ["linux"], debug = [true] }
"#,
        )
        .unwrap();
        assert_eq!(
            names(&checks),
            [
                "t (debug=true, os=linux, python=3.11)",
                "t (debug=true, os=linux, python=3.12)"
            ]
        );
        assert_eq!(checks[1].env["PYTHON"], "3.12");
        assert_eq!(checks[1].env["DEBUG"], "true");
    }

    #[test]
    fn needs_run_first_and_name_all_cells_of_a_check() {
        let checks = parsed(
            r#"
[[check]]
name = "deploy-preview"
run = "true"
needs = ["db", "lint"]

[[check]]
name = "db"
run = "true"
matrix = { engine = ["a", "b"] }
needs = ["lint"]

[[check]]
name = "lint"
run = "true"
"#,
        )
        .unwrap();
        assert_eq!(
            names(&checks),
            ["lint", "db (engine=a)", "db (engine=b)", "deploy-preview"]
        );
        assert_eq!(checks[3].needs, ["db (engine=a)", "db (engine=b)", "lint"]);
    }

    /// Each bad input: where the error points, and words it must say.
    #[test]
    fn bad_files_are_refused_at_their_line_and_column() {
        type Case<'a> = (&'a str, Option<(usize, usize)>, &'a str);
        let cases: &[Case] = &[
            (
                "[[check]]\nname = \"a\"\n",
                Some((1, 1)),
                "missing field `run`",
            ),
            (
                "[[check]]\nname = \"a\"\nrun = 3\n",
                Some((3, 7)),
                "invalid type",
            ),
            (
                "[[check]]\nname = \"a\"\nrun = \"x\"\ncolour = 1\n",
                Some((4, 1)),
                "unknown field `colour`",
            ),
            (
                "[[check]]\nname = \"a\"\nrun = \"x\"\n[[check]]\nname = \"a\"\nrun = \"y\"\n",
                Some((5, 8)),
                "two checks are named \"a\"",
            ),
            (
                "[[check]]\nname = \"db\"\nrun = \"x\"\nmatrix = { e = [\"a\"] }\n[[check]]\nname = \"db (e=a)\"\nrun = \"y\"\n",
                Some((6, 8)),
                "U+0028",
            ),
            (
                "[[check]]\nname = \"a\"\nrun = \"x\"\nneeds = [\"b\"]\n[[check]]\nname = \"b\"\nrun = \"y\"\nneeds = [\"a\"]\n",
                Some((4, 9)),
                "cycle: a -> b -> a",
            ),
            (
                "[[check]]\nname = \"a\"\nrun = \"x\"\nneeds = [\"a\"]\n",
                Some((4, 9)),
                "cycle: a -> a",
            ),
            (
                "[[check]]\nname = \"a\"\nrun = \"x\"\nneeds = [\"zz\"]\n",
                Some((4, 9)),
                "which no check is named",
            ),
            (
                "[[check]]\nname = \"a\"\nrun = \"x\"\npaths = []\n",
                Some((4, 9)),
                "matches nothing",
            ),
            (
                "[[check]]\nname = \"a\"\nrun = \"x\"\npaths = [\"../etc\"]\n",
                Some((4, 10)),
                ".. level",
            ),
            (
                "[[check]]\nname = \"<b>x</b>\"\nrun = \"x\"\n",
                Some((2, 8)),
                "U+003C",
            ),
            (
                "[[check]]\nname = \"a\"\nrun = \"x\"\ntimeout_secs = 99999\n",
                Some((4, 16)),
                "max_timeout_secs = 21600",
            ),
            (
                "[[check]]\nname = \"a\"\nrun = \"x\"\ntimeout_secs = 0\n",
                Some((4, 16)),
                "at least 1",
            ),
            (
                "[[check]]\nname = \"a\"\nrun = \"  \"\n",
                Some((3, 7)),
                "run is empty",
            ),
            (
                "[[check]]\nname = \"a\"\nrun = \"x\"\nenv = { SWITCHYARD_SHA = \"1\" }\n",
                Some((4, 7)),
                "set by the runner",
            ),
            (
                "[[check]]\nname = \"a\"\nrun = \"x\"\nenv = { \"1X\" = \"1\" }\n",
                Some((4, 7)),
                "not a variable name",
            ),
            (
                "[[check]]\nname = \"a\"\nrun = \"x\"\nmatrix = { e = [] }\n",
                Some((4, 16)),
                "no values",
            ),
            (
                "[[check]]\nname = \"a\"\nrun = \"x\"\nmatrix = { e = [1.5] }\n",
                Some((4, 17)),
                "not a string",
            ),
            ("", None, "names no check"),
        ];
        for (text, at, words) in cases {
            let error = refused(text);
            let expected = at.map(|(line, column)| Position { line, column });
            assert_eq!(error.at, expected, "{text:?}: {error}");
            assert!(error.to_string().contains(words), "{text:?}: {error}");
        }
    }

    #[test]
    fn a_long_name_is_refused_without_being_quoted() {
        let long = "n".repeat(500);
        let error = refused(&format!("[[check]]\nname = \"{long}\"\nrun = \"x\"\n"));
        assert!(error.message.contains("500 characters"), "{error}");
        assert!(!error.message.contains(&long[..50]), "{error}");
    }

    #[test]
    fn a_file_past_max_file_bytes_is_refused_before_it_is_parsed() {
        let big = "#".repeat(10 << 20);
        let error = refused(&big);
        assert_eq!(error.at, None);
        assert!(
            error.to_string().contains("max_file_bytes = 65536"),
            "{error}"
        );
    }

    #[test]
    fn a_file_that_is_not_utf8_is_refused_where_it_stops_being_text() {
        let error = parse(b"[[check]]\nname = \"a\xff\"\n", &Bounds::default(), 60).unwrap_err();
        assert_eq!(
            error.at,
            Some(Position {
                line: 2,
                column: 10
            })
        );
        assert!(error.message.contains("not UTF-8"), "{error}");
    }

    #[test]
    fn ten_thousand_checks_are_refused_by_max_checks() {
        let text: String = (0..10_000)
            .map(|i| format!("[[check]]\nname = \"c{i}\"\nrun = \"x\"\n"))
            .collect();
        let bounds = Bounds {
            max_file_bytes: 1 << 20,
            ..Bounds::default()
        };
        let error = parse(text.as_bytes(), &bounds, 60).unwrap_err();
        assert!(error.message.contains("10000 checks"), "{error}");
        assert!(error.message.contains("max_checks = 50"), "{error}");
        // Pointing at the first check past the bound.
        assert_eq!(
            error.at,
            Some(Position {
                line: 151,
                column: 1
            })
        );
    }

    #[test]
    fn a_matrix_of_100_by_100_is_refused_by_max_matrix_cells_before_it_is_expanded() {
        let values: Vec<String> = (0..100).map(|i| format!("\"v{i}\"")).collect();
        let list = values.join(", ");
        let text = format!(
            "[[check]]\nname = \"m\"\nrun = \"x\"\nmatrix = {{ a = [{list}], b = [{list}] }}\n"
        );
        let error = refused(&text);
        assert!(error.message.contains("max_matrix_cells = 32"), "{error}");
        assert_eq!(
            error.at,
            Some(Position {
                line: 4,
                column: 10
            })
        );
    }

    #[test]
    fn cells_of_several_matrices_together_are_bounded_by_max_checks() {
        let text: String = (0..3)
            .map(|i| {
                format!(
                    "[[check]]\nname = \"m{i}\"\nrun = \"x\"\nmatrix = {{ a = [{}] }}\n",
                    (0..20)
                        .map(|v| format!("\"{v}\""))
                        .collect::<Vec<_>>()
                        .join(",")
                )
            })
            .collect();
        let error = refused(&text);
        assert!(error.message.contains("max_checks = 50"), "{error}");
    }

    #[test]
    fn errors_quote_only_the_files_text() {
        // A value of the host's settings (the bound aside) never appears: only what the
        // file wrote, by position.
        let error = refused("[[check]]\nname = \"a\"\nrun = \"x\"\nneeds = [\"ghost\"]\n");
        assert_eq!(
            error.to_string(),
            ".switchyard.toml, line 4, column 9: \"a\" needs \"ghost\", which no check is named"
        );
    }

    #[test]
    fn this_repositorys_own_file_parses_within_the_shipped_bounds() {
        let own = include_bytes!("../../../../.switchyard.toml");
        let checks = parse(own, &Bounds::default(), 3600).unwrap();
        assert_eq!(
            names(&checks),
            ["fmt", "clippy", "unit tests", "integration tests"]
        );
        assert!(checks.iter().all(|c| !c.run.is_empty()));
        assert_eq!(checks[2].needs, ["fmt"]);
    }
}
