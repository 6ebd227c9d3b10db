//! `paths` patterns and the files they match. Patterns are anchored at the repository's root:
//! `*` matches within one folder level, `?` one character, `**` any number of levels, and a
//! pattern that matches a folder matches everything in it (`docs` matches `docs/a/b.md`).

use super::{Check, FileError};

/// Whether `pattern` can be used: relative, without `..` or empty levels.
pub fn check_pattern(pattern: &str) -> Result<(), String> {
    if pattern.is_empty() {
        return Err("a paths pattern is empty".to_owned());
    }
    if pattern.starts_with('/') {
        return Err(
            "a paths pattern starts with /: patterns are relative to the repository's root"
                .to_owned(),
        );
    }
    if pattern.split('/').any(|level| level == "..") {
        return Err("a paths pattern holds a .. level".to_owned());
    }
    if pattern.trim_end_matches('/').split('/').any(str::is_empty) {
        return Err("a paths pattern holds an empty level (//)".to_owned());
    }
    Ok(())
}

/// Refuses a check whose `paths` pattern matches no file of the commit (`files`): a typo there
/// would skip the check on every pull request, and a skipped required check lets it merge.
pub fn check_against(checks: &[Check], files: &[String]) -> Result<(), FileError> {
    for check in checks {
        for pattern in &check.paths {
            if !files.iter().any(|file| matches(pattern, file)) {
                return Err(FileError::at(
                    check.paths_at,
                    format!(
                        "{:?} has the paths pattern {pattern:?}, which matches no file of the commit",
                        check.family
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Whether any of `patterns` matches any of `files` (paths from the repository's root).
pub fn any_match(patterns: &[String], files: &[String]) -> bool {
    files
        .iter()
        .any(|file| patterns.iter().any(|pattern| matches(pattern, file)))
}

/// Whether `pattern` matches `path` or one of the folders it lies in.
pub fn matches(pattern: &str, path: &str) -> bool {
    let pattern: Vec<&str> = pattern.trim_end_matches('/').split('/').collect();
    let path: Vec<&str> = path.split('/').collect();
    levels(&pattern, &path)
}

fn levels(pattern: &[&str], path: &[&str]) -> bool {
    match pattern.split_first() {
        // The pattern matched a folder of the path, or the path itself.
        None => true,
        Some((&"**", rest)) => (0..=path.len()).any(|skip| levels(rest, &path[skip..])),
        Some((first, rest)) => match path.split_first() {
            Some((level, below)) => {
                level_matches(first.as_bytes(), level.as_bytes()) && levels(rest, below)
            }
            None => false,
        },
    }
}

/// `*` and `?` within one level.
fn level_matches(pattern: &[u8], name: &[u8]) -> bool {
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, n));
                p += 1;
            }
            Some(&c) if c == b'?' || c == name[n] => {
                p += 1;
                n += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    p = sp + 1;
                    n = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_from_the_root_by_levels() {
        let cases = [
            ("src/**", "src/main.rs", true),
            ("src/**", "src/a/b/c.rs", true),
            ("src/**", "tests/src/a.rs", false),
            ("Cargo.toml", "Cargo.toml", true),
            ("Cargo.toml", "host/Cargo.toml", false),
            ("**/Cargo.toml", "host/Cargo.toml", true),
            ("**/Cargo.toml", "Cargo.toml", true),
            ("*.md", "README.md", true),
            ("*.md", "docs/README.md", false),
            ("docs", "docs/a/b.md", true),
            ("docs/", "docs/a.md", true),
            ("doc?/*.md", "docs/a.md", true),
            ("src/*.rs", "src/a/b.rs", false),
            ("src/*.rs", "src/main.rs", true),
            ("a*b*c", "aXXbYYc", true),
            ("a*b*c", "aXXbYY", false),
        ];
        for (pattern, path, expected) in cases {
            assert_eq!(matches(pattern, path), expected, "{pattern} vs {path}");
        }
    }

    #[test]
    fn a_pattern_that_matches_no_file_of_the_commit_is_refused() {
        let files = ["src/main.rs".to_owned(), "Cargo.toml".to_owned()];
        let checks = super::super::parse(
            b"[[check]]\nname = \"lint\"\nrun = \"x\"\npaths = [\"src/**\", \"Cargo.tmol\"]\n",
            &super::super::Bounds::default(),
            60,
        )
        .unwrap();
        let error = check_against(&checks, &files).unwrap_err();
        assert_eq!(
            error.to_string(),
            ".switchyard.toml, line 4, column 9: \"lint\" has the paths pattern \"Cargo.tmol\", which matches no file of the commit"
        );
        let fixed = [files[0].clone(), "Cargo.tmol".to_owned()];
        assert!(check_against(&checks, &fixed).is_ok());
    }

    #[test]
    fn patterns_stay_inside_the_repository() {
        assert!(check_pattern("src/**").is_ok());
        for bad in ["", "/etc/passwd", "../x", "a//b"] {
            assert!(check_pattern(bad).is_err(), "{bad:?}");
        }
    }
}
