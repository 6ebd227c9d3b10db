//! The documentation stays honest: README.md and docs/*.md link only to files and sections that
//! exist, name only repository paths that exist, write only `switchyard` command lines the binary
//! accepts, and README gives the exact run and test commands (CI runs the test command).
//!
//! Every failure names the file, the line and the broken reference.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Component, Path, PathBuf},
    process::Command,
};

use crate::support::workspace;

/// README's command to build and serve with the shipped config, byte for byte.
const RUN_COMMAND: &str = r#"cargo build --release --workspace && SWITCHYARD_WEBHOOK_SECRET="${SWITCHYARD_WEBHOOK_SECRET:-dev-secret-for-local-tries}" ./target/release/switchyard serve --config config.toml"#;
/// README's test command, which `.ci/run` runs.
const TEST_COMMAND: &str = "cargo test --workspace";

/// Top-level folders of the repository: a path in backticks starting with one of these is a
/// repository path and must exist.
const REPO_FOLDERS: &[&str] = &["host/", "plugin-api/", "plugins/", "docs/", ".ci/"];

#[test]
fn links_point_at_files_and_sections_that_exist() {
    let root = workspace();
    let pages = pages(&root);
    let mut anchors: BTreeMap<PathBuf, BTreeSet<String>> = BTreeMap::new();
    let mut problems = Vec::new();
    let mut checked = 0;
    for page in &pages {
        for link in &page.links {
            let at = format!("{}:{}", page.name, link.line);
            if link.target.contains("://") || link.target.starts_with("mailto:") {
                continue;
            }
            checked += 1;
            let (path, anchor) = match link.target.split_once('#') {
                Some((path, anchor)) => (path, Some(anchor)),
                None => (link.target.as_str(), None),
            };
            let target = if path.is_empty() {
                page.path.clone()
            } else {
                match inside(&root, &page.path.parent().unwrap().join(path)) {
                    Some(target) => target,
                    None => {
                        problems.push(format!(
                            "{at}: link ({}) leaves the repository",
                            link.target
                        ));
                        continue;
                    }
                }
            };
            if !target.exists() {
                problems.push(format!(
                    "{at}: link ({}) points at {}, which is not in the repository",
                    link.target,
                    relative(&root, &target)
                ));
                continue;
            }
            let Some(anchor) = anchor else { continue };
            if target.extension().is_none_or(|e| e != "md") {
                continue;
            }
            let known = anchors.entry(target.clone()).or_insert_with(|| {
                let text = std::fs::read_to_string(&target).unwrap();
                Markdown::parse(&text).anchors()
            });
            if !known.contains(anchor) {
                problems.push(format!(
                    "{at}: link ({}): {} has no section #{anchor}",
                    link.target,
                    relative(&root, &target)
                ));
            }
        }
    }
    assert!(checked > 0, "no links found: the Markdown reader is broken");
    report(&problems);
}

#[test]
fn repository_paths_in_backticks_exist() {
    let root = workspace();
    let mut problems = Vec::new();
    let mut checked = 0;
    for page in pages(&root) {
        for code in page.code() {
            for word in words(&code.text) {
                let is_repo_path = REPO_FOLDERS.iter().any(|folder| word.starts_with(folder))
                    || (!word.contains('/') && [".toml", ".md"].iter().any(|e| word.ends_with(e)));
                checked += usize::from(is_repo_path);
                if is_repo_path && !root.join(word).exists() {
                    problems.push(format!(
                        "{}:{}: `{word}` is not in the repository",
                        page.name, code.line
                    ));
                }
            }
        }
    }
    assert!(
        checked > 0,
        "no repository paths found: the Markdown reader is broken"
    );
    report(&problems);
}

#[test]
fn switchyard_command_lines_parse() {
    let root = workspace();
    let top = help(&[]);
    let subcommands = subcommands(&top);
    assert!(
        subcommands.contains("serve"),
        "`switchyard --help` lists no serve subcommand:\n{top}"
    );
    let mut helps: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut problems = Vec::new();
    let mut checked = 0;
    for page in pages(&root) {
        for code in page.code().filter(|code| code.shell) {
            for command in command_lines(&code.text) {
                checked += 1;
                let at = format!("{}:{}", page.name, code.line);
                let help_args: Vec<&str> = match &command.subcommand {
                    Some(name) if subcommands.contains(name) => vec![name],
                    Some(name) => {
                        problems.push(format!(
                            "{at}: `switchyard {name}`: the binary has no subcommand {name:?} \
                             (it has {subcommands:?})"
                        ));
                        continue;
                    }
                    None => Vec::new(),
                };
                let key = help_args.join(" ");
                let flags = helps
                    .entry(key.clone())
                    .or_insert_with(|| long_flags(&help(&help_args)));
                for flag in &command.flags {
                    if !flags.contains(flag) {
                        problems.push(format!(
                            "{at}: `switchyard {key}` has no flag {flag} (its --help lists {flags:?})"
                        ));
                    }
                }
            }
        }
    }
    assert!(
        checked > 0,
        "no switchyard commands found: the Markdown reader is broken"
    );
    report(&problems);
}

#[test]
fn readme_gives_the_run_and_test_commands_exactly() {
    let root = workspace();
    let readme = pages(&root)
        .into_iter()
        .find(|p| p.name == "README.md")
        .unwrap();
    let mut problems = Vec::new();
    for (command, section) in [(RUN_COMMAND, "Run it"), (TEST_COMMAND, "Run the tests")] {
        let found = readme
            .blocks
            .iter()
            .find(|line| line.text == command && line.section == section);
        if found.is_none() {
            let elsewhere = readme.blocks.iter().find(|line| line.text == command);
            problems.push(match elsewhere {
                Some(line) => format!(
                    "README.md:{}: `{command}` must be under \"## {section}\", not \"{}\"",
                    line.line, line.section
                ),
                None => format!(
                    "README.md: no code block under \"## {section}\" has the line `{command}`"
                ),
            });
        }
    }
    report(&problems);
}

fn report(problems: &[String]) {
    assert!(
        problems.is_empty(),
        "the documentation is out of date:\n{}",
        problems.join("\n")
    );
}

/// README.md and every docs/*.md, parsed.
fn pages(root: &Path) -> Vec<Page> {
    let mut paths = vec![root.join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .expect("docs/ is missing")
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    paths.extend(docs);
    paths
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap();
            let Markdown {
                blocks,
                spans,
                links,
                ..
            } = Markdown::parse(&text);
            Page {
                name: relative(root, &path),
                path,
                blocks,
                spans,
                links,
            }
        })
        .collect()
}

struct Page {
    /// Relative to the repository, for messages.
    name: String,
    path: PathBuf,
    blocks: Vec<Line>,
    spans: Vec<Line>,
    links: Vec<Link>,
}

impl Page {
    /// Every inline code span and every line of a fenced code block.
    fn code(&self) -> impl Iterator<Item = &Line> {
        self.spans.iter().chain(&self.blocks)
    }
}

/// A line of a fenced code block, or an inline code span (newlines made spaces).
struct Line {
    line: usize,
    text: String,
    /// The `##` heading a code block's line is under (empty for a span).
    section: String,
    /// Whether commands may be written here: a span, or a block of shell (not `text` output,
    /// TOML or Rust).
    shell: bool,
}

struct Link {
    line: usize,
    target: String,
}

/// What the checks need from a Markdown file: code, links and headings, each with its line.
#[derive(Default)]
struct Markdown {
    blocks: Vec<Line>,
    spans: Vec<Line>,
    links: Vec<Link>,
    headings: Vec<String>,
}

impl Markdown {
    fn parse(text: &str) -> Markdown {
        let mut doc = Markdown::default();
        // Prose with fenced blocks blanked out, so spans and links keep their line numbers.
        let mut prose = String::new();
        // The open fence's marker, and whether its block is shell.
        let mut fence: Option<(String, bool)> = None;
        let mut section = String::new();
        let mut continued = String::new();
        for (index, raw) in text.lines().enumerate() {
            let trimmed = raw.trim_start();
            if let Some((open, shell)) = &fence {
                if trimmed.trim_end() == open {
                    fence = None;
                } else if let Some(head) = trimmed.strip_suffix('\\') {
                    continued.push_str(head);
                } else {
                    continued.push_str(trimmed);
                    doc.blocks.push(Line {
                        line: index + 1,
                        text: std::mem::take(&mut continued),
                        section: section.clone(),
                        shell: *shell,
                    });
                }
                prose.push('\n');
                continue;
            }
            if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
                let marker = trimmed.chars().next().unwrap();
                let width = trimmed.chars().take_while(|&c| c == marker).count();
                let info = trimmed[width..].trim();
                let shell = ["", "sh", "bash", "shell", "console"].contains(&info);
                fence = Some((marker.to_string().repeat(width), shell));
                prose.push('\n');
                continue;
            }
            if let Some(heading) = heading(raw) {
                if raw.starts_with("## ") {
                    section = heading.clone();
                }
                doc.headings.push(heading);
            }
            prose.push_str(raw);
            prose.push('\n');
        }
        let line_of = |offset: usize| prose[..offset].matches('\n').count() + 1;
        // Inline code spans: a run of N backticks up to the next run of exactly N, within a
        // paragraph. What is left over is scanned for links.
        let bytes = prose.as_bytes();
        let mut outside = String::with_capacity(prose.len());
        let mut at = 0;
        while at < bytes.len() {
            if bytes[at] != b'`' {
                let next = prose[at..].find('`').map_or(prose.len(), |n| at + n);
                outside.push_str(&prose[at..next]);
                at = next;
                continue;
            }
            let width = bytes[at..].iter().take_while(|&&b| b == b'`').count();
            let open = at + width;
            match closing_run(&prose[open..], width) {
                Some(length) => {
                    let content = prose[open..open + length].replace('\n', " ");
                    let content = match content.strip_prefix(' ') {
                        Some(inner) if inner.ends_with(' ') => inner[..inner.len() - 1].to_owned(),
                        _ => content,
                    };
                    doc.spans.push(Line {
                        line: line_of(at),
                        text: content,
                        section: String::new(),
                        shell: true,
                    });
                    let end = open + length + width;
                    // Keep the span's newlines so links after it keep their line numbers.
                    outside.extend(
                        prose[at..end]
                            .chars()
                            .map(|c| if c == '\n' { '\n' } else { ' ' }),
                    );
                    at = end;
                }
                None => {
                    outside.push_str(&prose[at..open]);
                    at = open;
                }
            }
        }
        let mut from = 0;
        while let Some(found) = outside[from..].find("](") {
            let start = from + found + 2;
            let Some(length) = outside[start..].find(')') else {
                break;
            };
            let target = outside[start..start + length].split_whitespace().next();
            if let Some(target) = target {
                doc.links.push(Link {
                    line: outside[..start].matches('\n').count() + 1,
                    target: target.to_owned(),
                });
            }
            from = start + length;
        }
        doc
    }

    /// The section anchors GitHub makes for the headings, duplicates numbered as it does.
    fn anchors(&self) -> BTreeSet<String> {
        let mut anchors = BTreeSet::new();
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        for heading in &self.headings {
            let slug = slug(heading);
            let count = seen.entry(slug.clone()).or_insert(0);
            anchors.insert(if *count == 0 {
                slug.clone()
            } else {
                format!("{slug}-{count}")
            });
            *count += 1;
        }
        anchors
    }
}

/// The text of an ATX heading (`## Title`), links reduced to their text.
fn heading(line: &str) -> Option<String> {
    let hashes = line.chars().take_while(|&c| c == '#').count();
    if !(1..=6).contains(&hashes) || !line[hashes..].starts_with(' ') {
        return None;
    }
    let mut text = line[hashes..]
        .trim()
        .trim_end_matches('#')
        .trim()
        .to_owned();
    while let (Some(open), Some(middle)) = (text.find('['), text.find("](")) {
        let Some(close) = text[middle..].find(')').map(|n| middle + n) else {
            break;
        };
        if open > middle {
            break;
        }
        text = format!(
            "{}{}{}",
            &text[..open],
            &text[open + 1..middle],
            &text[close + 1..]
        );
    }
    Some(text)
}

/// GitHub's anchor for a heading: lower case, punctuation dropped, spaces made hyphens.
fn slug(heading: &str) -> String {
    heading
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .flat_map(char::to_lowercase)
        .collect()
}

/// Length of a code span's content: up to the next run of exactly `width` backticks, if one
/// comes before the paragraph ends.
fn closing_run(rest: &str, width: usize) -> Option<usize> {
    let bytes = rest.as_bytes();
    let mut at = 0;
    while at < bytes.len() {
        if bytes[at..].starts_with(b"\n\n") {
            return None;
        }
        if bytes[at] == b'`' {
            let run = bytes[at..].iter().take_while(|&&b| b == b'`').count();
            if run == width {
                return Some(at);
            }
            at += run;
        } else {
            at += 1;
        }
    }
    None
}

/// Words of a code line, split where a path cannot go on (quotes, brackets, commas, `=`).
fn words(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| c.is_whitespace() || "\"'()[],=<>`;|".contains(c))
        .map(|word| word.trim_end_matches(['.', ':']))
        .filter(|word| !word.is_empty())
        // Templates and globs (`{full_name}`, `lib*.so`, `$CREDENTIALS_DIRECTORY/...`).
        .filter(|word| !word.contains(['{', '*', '$']) && !word.contains("..."))
}

/// A `switchyard ...` command written in the docs: its subcommand, if any, and its long flags.
#[derive(Debug)]
struct CommandLine {
    subcommand: Option<String>,
    flags: Vec<String>,
}

/// The `switchyard` command lines in a code line: the program (`switchyard` or a path ending in
/// `/switchyard`, not a cargo `-p switchyard`) followed by a subcommand or a flag.
fn command_lines(text: &str) -> Vec<CommandLine> {
    let tokens: Vec<&str> = text.split_whitespace().collect();
    let mut commands = Vec::new();
    for (index, token) in tokens.iter().enumerate() {
        // `./target/release/switchyard`, `/usr/local/bin/switchyard`; not `ci/switchyard`.
        let program = *token == "switchyard"
            || (token.starts_with(['.', '/']) && token.ends_with("/switchyard"));
        // An argument of cargo (`cargo install ... switchyard --root DIR`), not a run of it.
        let command_start = tokens[..index]
            .iter()
            .rposition(|word| matches!(*word, "&&" | "||" | "|" | ";" | "&"))
            .map_or(0, |separator| separator + 1);
        // Past `VAR=value` assignments before the program.
        let program_at = tokens[command_start..index]
            .iter()
            .position(|word| !word.contains('='))
            .map_or(index, |offset| command_start + offset);
        let cargo_argument = tokens.get(program_at) == Some(&"cargo") && program_at < index;
        if !program || cargo_argument {
            continue;
        }
        let rest = &tokens[index + 1..];
        let subcommand = match rest.first() {
            Some(word) if word.chars().all(|c| c.is_ascii_lowercase()) => Some((*word).to_owned()),
            Some(word) if word.trim_start_matches('[').starts_with("--") => None,
            _ => continue,
        };
        let flags = rest
            .iter()
            .take_while(|word| {
                !matches!(**word, "&&" | "||" | "|" | ";" | "&" | ">") && !word.starts_with('#')
            })
            .map(|word| {
                word.trim_start_matches('[')
                    .trim_end_matches([']', ',', '.', ')'])
            })
            .filter(|word| word.starts_with("--"))
            .map(|word| word.split('=').next().unwrap().to_owned())
            .collect();
        commands.push(CommandLine { subcommand, flags });
    }
    commands
}

/// `switchyard [ARGS] --help`, as the binary prints it.
fn help(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(args)
        .arg("--help")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "switchyard {} --help failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The subcommands a `--help` lists under "Commands:".
fn subcommands(help: &str) -> BTreeSet<String> {
    help.lines()
        .skip_while(|line| !line.starts_with("Commands:"))
        .skip(1)
        .take_while(|line| !line.trim().is_empty())
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_owned)
        .collect()
}

/// Every `--flag` a `--help` mentions.
fn long_flags(help: &str) -> BTreeSet<String> {
    help.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .filter(|word| word.starts_with("--") && word.len() > 2)
        .map(str::to_owned)
        .collect()
}

/// `path` made absolute and normal, if it stays inside `root`.
fn inside(root: &Path, path: &Path) -> Option<PathBuf> {
    let mut normal = PathBuf::new();
    for part in path.components() {
        match part {
            Component::ParentDir => {
                if !normal.pop() {
                    return None;
                }
            }
            Component::CurDir => {}
            other => normal.push(other),
        }
    }
    normal.starts_with(root).then_some(normal)
}

fn relative(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .display()
        .to_string()
}

/// The port the shipped `config.toml` listens on, which the documented commands use as written.
const SHIPPED_PORT: u16 = 9393;

/// Held by each test that serves on [`SHIPPED_PORT`], one at a time.
static SHIPPED_PORT_IN_USE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// docs/writing-plugins.md's "Try a plugin locally", its commands run as written in a switchyard
/// checkout laid out as the section says (the plugin in `../my-deploy`, the repository in
/// `../app`, the entry added to the shipped `config.toml`): as root, where builds run as
/// `nobody` and the repository is root's, and as an unprivileged user.
#[tokio::test]
async fn the_local_try_out_runs_as_written_as_root_and_as_a_user() {
    let page = std::fs::read_to_string(workspace().join("docs/writing-plugins.md")).unwrap();
    let blocks = section_blocks(&page, "## Try a plugin locally");
    let pick = |language: &str, index: usize| {
        blocks
            .iter()
            .filter(|(lang, _)| lang == language)
            .nth(index)
            .map(|(_, text)| text.clone())
            .unwrap_or_else(|| panic!("no {language} block #{index} in the try-out: {blocks:?}"))
    };
    let (entry, serve, send) = (pick("toml", 0), pick("sh", 0), pick("sh", 1));
    let _port = SHIPPED_PORT_IN_USE.lock().await;
    let users: &[Option<u32>] = match nix::unistd::geteuid().is_root() {
        true => &[None, Some(NOBODY)],
        false => {
            eprintln!("as root: skipped, the tests do not run as root (only root can be both)");
            &[None]
        }
    };
    for user in users {
        try_out(&entry, &serve, &send, *user).await;
    }
}

const NOBODY: u32 = 65534;

/// The fenced code blocks of a section, with their language, in order.
fn section_blocks(page: &str, heading: &str) -> Vec<(String, String)> {
    let start = page.find(heading).expect("the section exists");
    let section = &page[start + heading.len()..];
    let section = &section[..section.find("\n## ").unwrap_or(section.len())];
    let mut blocks = Vec::new();
    let mut open: Option<(String, String)> = None;
    for line in section.lines() {
        match (open.take(), line.strip_prefix("```")) {
            (None, Some(language)) => open = Some((language.trim().to_owned(), String::new())),
            (Some(block), Some(_)) => blocks.push(block),
            (Some((language, mut text)), None) => {
                text.push_str(line);
                text.push('\n');
                open = Some((language, text));
            }
            (None, None) => {}
        }
    }
    blocks
}

async fn try_out(entry: &str, serve: &str, send: &str, user: Option<u32>) {
    use std::os::unix::fs::symlink;
    let who = match user {
        Some(uid) => format!("as uid {uid}"),
        None => "as the tests' user".to_owned(),
    };
    let event_log = crate::support::library("switchyard-event-log");
    let template = crate::support::library("switchyard-deploy-template");
    let dir = tempfile::tempdir().unwrap();
    let checkout = dir.path().join("switchyard");
    std::fs::create_dir_all(checkout.join("target/release")).unwrap();
    // The shipped plugins are found beside the binary (its real path, where they were built).
    assert!(event_log.exists());
    symlink(
        env!("CARGO_BIN_EXE_switchyard"),
        checkout.join("target/release/switchyard"),
    )
    .unwrap();
    let shipped = std::fs::read_to_string(workspace().join("config.toml")).unwrap();
    std::fs::write(checkout.join("config.toml"), format!("{shipped}\n{entry}")).unwrap();
    let plugin = dir.path().join("my-deploy/target/release");
    std::fs::create_dir_all(&plugin).unwrap();
    std::fs::copy(&template, plugin.join("libmy_deploy.so")).unwrap();
    let app = dir.path().join("app");
    std::fs::create_dir_all(app.join("script")).unwrap();
    let script = app.join("script/deploy");
    std::fs::write(
        &script,
        "#!/bin/sh\necho \"deployed $SWITCHYARD_SHA by $(id -u)\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let git = |args: &[&str]| {
        let out = Command::new("git")
            .args(["-c", "user.name=me", "-c", "user.email=me@example.com"])
            .args(args)
            .current_dir(&app)
            .output()
            .unwrap();
        assert!(out.status.success(), "git {args:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    git(&["init", "--quiet"]);
    git(&["add", "."]);
    git(&["commit", "--quiet", "-m", "deploy script"]);
    let sha = git(&["rev-parse", "HEAD"]);
    let home = dir.path().join("home");
    std::fs::create_dir(&home).unwrap();
    if let Some(uid) = user {
        let owned = Command::new("chown")
            .args(["-R", &format!("{uid}:{uid}")])
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(owned.success());
    }
    // A shell in the checkout, as `user`, with none of the tests' own secrets or tokens.
    let shell = |script: &str| {
        let mut command = match user {
            Some(uid) => {
                let mut command = Command::new("setpriv");
                command.args([
                    &format!("--reuid={uid}"),
                    &format!("--regid={uid}"),
                    "--clear-groups",
                    "bash",
                ]);
                command
            }
            None => Command::new("bash"),
        };
        command
            .args(["-c", script])
            .current_dir(&checkout)
            .env("HOME", &home)
            .env_remove("GITHUB_TOKEN")
            .env_remove("SWITCHYARD_WEBHOOK_SECRET")
            .env_remove("SWITCHYARD_CONFIG")
            .env_remove("SWITCHYARD_DASHBOARD_TOKENS");
        command
    };
    let printed = dir.path().join("serve.out");
    let logged = dir.path().join("serve.err");
    let mut server = shell(serve);
    std::os::unix::process::CommandExt::process_group(&mut server, 0);
    let server = ServerGroup(
        server
            .stdout(std::fs::File::create(&printed).unwrap())
            .stderr(std::fs::File::create(&logged).unwrap())
            .spawn()
            .unwrap(),
    );
    crate::support::net::wait_until_listening(SHIPPED_PORT).await;
    let sent = shell(send).output().unwrap();
    let answer = String::from_utf8_lossy(&sent.stdout).into_owned();
    let log = || std::fs::read_to_string(&logged).unwrap_or_default();
    assert!(
        sent.status.success(),
        "{who}: send: {answer}{}\n{}",
        String::from_utf8_lossy(&sent.stderr),
        log()
    );
    let link = answer
        .lines()
        .find_map(|line| line.split_once(" my-deploy: ").map(|(_, link)| link))
        .unwrap_or_else(|| panic!("{who}: no job line in {answer}"))
        .to_owned();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let calls = std::fs::read_to_string(&printed).unwrap();
        if calls.contains(r#""state":"success""#) {
            break;
        }
        assert!(
            !calls.contains(r#""state":"error""#) && !calls.contains(r#""state":"failure""#),
            "{who}: the deploy failed: {calls}\n{}",
            reqwest::get(&link).await.unwrap().text().await.unwrap()
        );
        assert!(
            std::time::Instant::now() < deadline,
            "{who}: no success status printed: {calls}\n{}",
            log()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let job_log = reqwest::get(&link).await.unwrap().text().await.unwrap();
    assert!(
        job_log.contains(&format!("deployed {sha}")),
        "{who}: {job_log}"
    );
    drop(server);
}

/// A server started in a process group of its own, ended with the group (the shell that runs
/// it and the host), so the shipped port is free for the next run.
struct ServerGroup(std::process::Child);

impl Drop for ServerGroup {
    fn drop(&mut self) {
        let group = nix::unistd::Pid::from_raw(self.0.id() as i32);
        let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
        let _ = self.0.wait();
    }
}

/// docs/dashboard.md's start command, run as written in a checkout with the shipped config: the
/// host starts (the command sets the webhook secret), and the token it prints signs in.
#[tokio::test]
async fn the_dashboard_start_command_runs_and_its_printed_token_signs_in() {
    let page = std::fs::read_to_string(workspace().join("docs/dashboard.md")).unwrap();
    let blocks = section_blocks(&page, "## Access and tokens");
    let (_, start) = blocks
        .iter()
        .find(|(language, text)| language == "sh" && text.contains("serve"))
        .expect("a start command in \"Access and tokens\"");
    let _port = SHIPPED_PORT_IN_USE.lock().await;
    let _event_log = crate::support::library("switchyard-event-log");
    let dir = tempfile::tempdir().unwrap();
    let checkout = dir.path().join("switchyard");
    std::fs::create_dir_all(checkout.join("target/release")).unwrap();
    std::os::unix::fs::symlink(
        env!("CARGO_BIN_EXE_switchyard"),
        checkout.join("target/release/switchyard"),
    )
    .unwrap();
    std::fs::copy(
        workspace().join("config.toml"),
        checkout.join("config.toml"),
    )
    .unwrap();
    let printed = dir.path().join("start.out");
    let mut command = Command::new("bash");
    command
        .args(["-c", start])
        .current_dir(&checkout)
        .env_remove("SWITCHYARD_WEBHOOK_SECRET")
        .env_remove("SWITCHYARD_DASHBOARD_TOKENS")
        .env_remove("SWITCHYARD_CONFIG")
        .stdout(std::fs::File::create(&printed).unwrap())
        .stderr(std::process::Stdio::null());
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    let server = ServerGroup(command.spawn().unwrap());
    crate::support::net::wait_until_listening(SHIPPED_PORT).await;
    let said = std::fs::read_to_string(&printed).unwrap();
    let token = said
        .split_once(" with the token ")
        .map(|(_, token)| token.trim().to_owned())
        .unwrap_or_else(|| panic!("no token printed: {said}"));
    assert_eq!(token.len(), 48, "{said}");
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let sign_in = |token: String| {
        http.post(format!("http://127.0.0.1:{SHIPPED_PORT}/dashboard/sign-in"))
            .header("origin", format!("http://127.0.0.1:{SHIPPED_PORT}"))
            .form(&[("token", token), ("next", "/dashboard".to_owned())])
            .send()
    };
    let answer = sign_in(token.clone()).await.unwrap();
    let cookie = answer
        .headers()
        .get("set-cookie")
        .map(|value| value.to_str().unwrap().to_owned());
    assert!(
        cookie.is_some_and(|cookie| cookie.starts_with("switchyard_session=alice.")),
        "{:?}",
        answer
    );
    let wrong = sign_in(token.chars().rev().collect()).await.unwrap();
    assert!(wrong.headers().get("set-cookie").is_none());
    drop(server);
}
