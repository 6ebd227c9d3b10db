//! One commit's build: the checkout, then the checks its `.switchyard.toml` asks for (or, with
//! no file, the entry's `command` as the one check named `context`), each reported on its own
//! (its status context or check run) and run in turn, each after the checks it needs. A file
//! that is refused becomes one failing check named for the file, and nothing else runs.
//!
//! The checks of one build share its job: its log, its cancel and the host's timeout of the
//! whole job (`timeout_secs` of the `[[plugins]]` entry), and `max_builds` bounds the commands
//! running at once on this host.

use std::{
    collections::{BTreeMap, HashSet},
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use switchyard_plugin_api::prelude::*;

use crate::{
    Ci, KEPT_OUTPUT, Source, changes,
    checks::{self, FILE, FileError, git::Found, paths},
    report::{Ending, Kind, Printed, Reporter},
    reported,
    target::Target,
};

/// One check to run, from the file or the entry's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    pub name: String,
    /// The `[[check]]` it came from (a matrix cell's family), which `/test` may name.
    pub family: String,
    pub run: String,
    pub timeout_secs: u64,
    pub env: BTreeMap<String, String>,
    pub needs: Vec<String>,
    /// Run only when the pull request changes a file these match; empty: always.
    pub paths: Vec<String>,
}

/// What a commit asks to be built.
#[derive(Debug)]
pub enum Plan {
    Checks(Vec<Planned>),
    /// The file was refused: one failing check named for it.
    Refused(FileError),
}

/// The reports of a build's checks, shared with the path that reports a cancel.
#[derive(Default)]
pub struct Reports<'a>(Mutex<Vec<Arc<Reporter<'a>>>>);

impl<'a> Reports<'a> {
    fn add(&self, report: Reporter<'a>) -> Arc<Reporter<'a>> {
        let report = Arc::new(report);
        self.lock().push(report.clone());
        report
    }

    /// The checks whose end is not reported yet.
    pub fn open(&self) -> Vec<Arc<Reporter<'a>>> {
        self.lock()
            .iter()
            .filter(|r| !r.has_ended())
            .cloned()
            .collect()
    }

    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Arc<Reporter<'a>>>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Which checks of the plan a build runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Only {
    All,
    /// `/retest`: the checks whose latest report on GitHub went wrong (all when none can be
    /// read back).
    WentWrong,
    /// A check by its name, or all cells of a `[[check]]` by the family's name.
    Named(String),
}

impl Ci {
    /// Checks the commit out, plans its checks and runs them; `reports` holds each check's
    /// report as it is made, for a cancel.
    pub(crate) async fn build<'a>(
        &'a self,
        event: &'a Event,
        target: &'a Target,
        host: &'a Host,
        reports: &Reports<'a>,
        only: &Only,
    ) -> Result<Outcome, PluginError> {
        let prepared = match self
            .source
            .prepare(host, &target.repository, &target.sha)
            .await
        {
            Ok(dir) => match self.plan(host, &dir, target).await {
                Ok(plan) => Ok((dir, plan)),
                Err(error) => Err(error.to_string()),
            },
            Err(error) => Err(error.to_string()),
        };
        // Neither checked out nor read: the entry's context says it errored.
        let (dir, plan) = match prepared {
            Ok(prepared) => prepared,
            Err(error) => {
                let report = reports.add(self.reporter(event, target, host));
                let ending = Ending::Errored(error);
                let summary = ending.to_string();
                report.finished(ending, Printed::default()).await?;
                return Err(PluginError::fatal(summary));
            }
        };
        let from_file = match &plan {
            Plan::Checks(planned) => planned.as_slice() != [self.context_check()],
            Plan::Refused(_) => true,
        };
        if from_file && target.fork.is_some() {
            let (kind, app) = (self.kind, self.app.as_ref());
            let context = &self.settings.context;
            reported::close_waiting(host, target, kind, app, context, event.job.id).await;
        }
        let planned = match plan {
            Plan::Checks(planned) => planned,
            Plan::Refused(error) => {
                return self.refused(event, target, host, reports, &error).await;
            }
        };
        let chosen: Vec<Planned> = match only {
            Only::All => planned,
            Only::WentWrong => {
                let bad = reported::went_wrong(host, target, self.kind, self.app.as_ref()).await;
                match bad {
                    Some(bad) if planned.iter().any(|p| bad.contains(&p.name)) => {
                        let chosen: Vec<Planned> = planned
                            .into_iter()
                            .filter(|p| bad.contains(&p.name))
                            .collect();
                        let names: HashSet<String> =
                            chosen.iter().map(|p| p.name.clone()).collect();
                        host.log(format!(
                            "switchyard: /retest builds what went wrong: {}",
                            chosen
                                .iter()
                                .map(|p| p.name.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ))
                        .await;
                        // What passed is not built again; what it needs among these still
                        // comes first.
                        chosen
                            .into_iter()
                            .map(|p| Planned {
                                needs: p.needs.into_iter().filter(|n| names.contains(n)).collect(),
                                ..p
                            })
                            .collect()
                    }
                    _ => planned,
                }
            }
            Only::Named(name) => {
                let chosen: Vec<Planned> = planned
                    .into_iter()
                    .filter(|p| &p.name == name || &p.family == name)
                    .map(|p| Planned {
                        // Asked for by name: built whatever its paths, and what it needs is
                        // not built again.
                        needs: Vec::new(),
                        paths: Vec::new(),
                        ..p
                    })
                    .collect();
                if chosen.is_empty() {
                    // A Re-run of a check run this commit has not (another entry's, or the
                    // file changed) builds nothing.
                    let reason = format!(
                        "{} has no check named {name:?}, so it is not this entry's: /test ? lists them",
                        short_sha(&target.sha)
                    );
                    host.log(format!("switchyard: {reason}")).await;
                    return Ok(Outcome::Skipped(reason));
                }
                chosen
            }
        };
        self.run_all(event, target, host, reports, &dir, chosen)
            .await
    }

    /// The checks `target` asks for: its file's, or the entry's `command` without one. Only a
    /// checkout has git's objects to read the file from; a fixed `workdir` runs `command`.
    pub(crate) async fn plan(
        &self,
        host: &Host,
        dir: &Path,
        target: &Target,
    ) -> Result<Plan, PluginError> {
        if matches!(self.source, Source::Workdir(_)) {
            return Ok(Plan::Checks(vec![self.context_check()]));
        }
        let bounds = &self.settings.bounds;
        let read = checks::git::read(
            host,
            dir,
            &target.sha,
            bounds.max_file_bytes,
            target.fork.is_some(),
        )
        .await?;
        let bytes = match read.found {
            Found::Missing => return Ok(Plan::Checks(vec![self.context_check()])),
            Found::Refused(error) => return Ok(Plan::Refused(error)),
            Found::Bytes(bytes) => bytes,
        };
        let parsed = checks::parse(&bytes, bounds, self.settings.timeout_secs)
            .and_then(|checks| checks::paths::check_against(&checks, &read.files).map(|()| checks));
        Ok(match parsed {
            Ok(checks) => Plan::Checks(
                checks
                    .into_iter()
                    .map(|check| Planned {
                        name: check.name,
                        family: check.family,
                        run: check.run,
                        timeout_secs: check.timeout_secs,
                        env: check.env,
                        needs: check.needs,
                        paths: check.paths,
                    })
                    .collect(),
            ),
            Err(error) => Plan::Refused(error),
        })
    }

    /// `/test ?`: answers in the thread with the head's checks, or why its file is refused.
    pub(crate) async fn list(&self, host: &Host, target: &Target) -> Result<Outcome, PluginError> {
        let dir = self
            .source
            .prepare(host, &target.repository, &target.sha)
            .await?;
        let head = short_sha(&target.sha);
        let text = match self.plan(host, &dir, target).await? {
            Plan::Checks(planned) => {
                // Names hold no markup (the parser refuses it), so they are quoted as they are.
                let lines: Vec<String> = planned
                    .iter()
                    .map(|check| match check.needs.as_slice() {
                        [] => format!("- `{}`", check.name),
                        needs => format!("- `{}` (after {})", check.name, needs.join(", ")),
                    })
                    .collect();
                format!(
                    "The checks of `{head}`:\n{}\n\n`/test NAME` builds one, `/test` all of them.",
                    lines.join("\n")
                )
            }
            Plan::Refused(error) => format!("`{head}`'s {FILE} is refused: {error}"),
        };
        if let Err(error) = host.reply(&text).await {
            host.log(format!("switchyard: cannot answer in the thread: {error}"))
                .await;
        }
        Ok(Outcome::Done)
    }

    fn context_check(&self) -> Planned {
        Planned {
            name: self.settings.context.clone(),
            family: self.settings.context.clone(),
            run: self.settings.command.clone(),
            timeout_secs: self.settings.timeout_secs,
            env: BTreeMap::new(),
            needs: Vec::new(),
            paths: Vec::new(),
        }
    }

    /// A refused file: one failing check named for it, saying why; nothing else runs.
    async fn refused<'a>(
        &'a self,
        event: &'a Event,
        target: &'a Target,
        host: &'a Host,
        reports: &Reports<'a>,
        error: &FileError,
    ) -> Result<Outcome, PluginError> {
        let mut report = self.reporter(event, target, host);
        report.name = FILE.to_owned();
        report.command = String::new();
        let report = reports.add(report);
        host.log(format!("switchyard: {error}")).await;
        let ending = Ending::Refused(error.to_string());
        let summary = ending.to_string();
        let printed = Printed {
            tail: error.to_string(),
            annotations: Vec::new(),
        };
        report.finished(ending, printed).await?;
        Ok(Outcome::Finished {
            verdict: Verdict::Failed,
            summary,
        })
    }

    /// Runs `planned` in order, each after what it needs; the build's verdict is its worst.
    async fn run_all<'a>(
        &'a self,
        event: &'a Event,
        target: &'a Target,
        host: &'a Host,
        reports: &Reports<'a>,
        dir: &Path,
        planned: Vec<Planned>,
    ) -> Result<Outcome, PluginError> {
        let several = planned.len() > 1;
        let mut made = Vec::new();
        for check in &planned {
            let mut report = self.reporter(event, target, host);
            report.name = check.name.clone();
            report.command = check.run.clone();
            let report = reports.add(report);
            // Several checks: each shows at once, queued; one keeps the runner's old ways.
            if several {
                report.queued().await?;
            }
            made.push(report);
        }
        let changed = match planned.iter().any(|check| !check.paths.is_empty()) {
            true => changes::changed_files(host, target).await,
            false => None,
        };
        let mut passed = HashSet::new();
        let mut ended = Vec::new();
        let mut errors = Vec::new();
        let mut last_summary = String::new();
        for (check, report) in planned.iter().zip(&made) {
            let failed_need = check.needs.iter().find(|n| !passed.contains(n.as_str()));
            if let Some(need) = failed_need {
                let ending = Ending::NotRun(format!("it needs {need}, which did not pass"));
                ended.push((check.name.clone(), Verdict::Cancelled));
                report.finished(ending, Printed::default()).await?;
                continue;
            }
            let skipped = changed.as_ref().is_some_and(|files| {
                !check.paths.is_empty() && !paths::any_match(&check.paths, files)
            });
            if skipped {
                // What needs it goes on: a skipped check stands for one with nothing to check.
                passed.insert(check.name.as_str());
                ended.push((check.name.clone(), Verdict::Skipped));
                last_summary = Ending::PathsSkipped.to_string();
                report
                    .finished(Ending::PathsSkipped, Printed::default())
                    .await?;
                continue;
            }
            let (verdict, summary) = self.run_check(report, check, dir, several).await?;
            last_summary = summary;
            match verdict {
                Ok(verdict) => {
                    if verdict == Verdict::Passed {
                        passed.insert(check.name.as_str());
                    }
                    ended.push((check.name.clone(), verdict));
                }
                Err(error) => errors.push(format!("{}: {error}", check.name)),
            }
        }
        if !several {
            // One check: the job says what it said, as before checks files.
            return match (ended.pop(), errors.is_empty()) {
                (Some((_, verdict)), true) => Ok(Outcome::Finished {
                    verdict,
                    summary: last_summary,
                }),
                _ => Err(PluginError::fatal(last_summary)),
            };
        }
        let bad: Vec<&str> = ended
            .iter()
            .filter(|(_, v)| *v != Verdict::Passed)
            .map(|(name, _)| name.as_str())
            .collect();
        if !errors.is_empty() {
            return Err(PluginError::fatal(format!(
                "{} of {} checks could not run: {}",
                errors.len(),
                planned.len(),
                errors.join("; ")
            )));
        }
        let verdict = worst(ended.iter().map(|(_, v)| *v));
        let summary = match bad.as_slice() {
            [] => format!("{} checks passed", planned.len()),
            bad => format!(
                "{} of {} checks did not pass: {}",
                bad.len(),
                planned.len(),
                bad.join(", ")
            ),
        };
        Ok(Outcome::Finished { verdict, summary })
    }

    /// Waits for a build slot, then runs one check and reports how it ended: its verdict, or
    /// the error that kept it from running (reported as errored).
    async fn run_check(
        &self,
        report: &Reporter<'_>,
        check: &Planned,
        dir: &Path,
        queued: bool,
    ) -> Result<(Result<Verdict, String>, String), PluginError> {
        let slot = match (self.slots.try_acquire(), report.kind, queued) {
            (Ok(slot), Kind::Statuses, _) | (Ok(slot), _, true) => slot,
            (slot, _, _) => {
                if !queued {
                    report.queued().await?;
                }
                match slot {
                    Ok(slot) => slot,
                    Err(_) => self
                        .slots
                        .acquire()
                        .await
                        .map_err(|_| PluginError::fatal("build slots closed"))?,
                }
            }
        };
        report.running().await?;
        let ended = self.run(report, check, dir).await;
        drop(slot);
        let (ending, printed, verdict) = match ended {
            Ok(output) => {
                let printed = Printed {
                    annotations: switchyard_check_output::annotations::parse(&output.output, dir),
                    tail: output.output.clone(),
                };
                let secs = output.seconds();
                let (ending, verdict) = match (output.success(), output.timed_out) {
                    (true, _) => (Ending::Passed { secs }, Verdict::Passed),
                    (false, false) => (
                        Ending::Failed {
                            ending: output.ending(),
                            secs,
                        },
                        Verdict::Failed,
                    ),
                    (false, true) => (
                        Ending::TimedOut {
                            secs: check.timeout_secs,
                        },
                        Verdict::TimedOut,
                    ),
                };
                (ending, printed, Ok(verdict))
            }
            Err(error) => (
                Ending::Errored(error.to_string()),
                Printed::default(),
                Err(error.to_string()),
            ),
        };
        let summary = ending.to_string();
        report.finished(ending, printed).await?;
        Ok((verdict, summary))
    }

    /// Runs one check's command in the checkout.
    async fn run(
        &self,
        report: &Reporter<'_>,
        check: &Planned,
        dir: &Path,
    ) -> Result<RunOutput, HostError> {
        let (host, target) = (report.host, report.target);
        let mut request = RunRequest::shell(&check.run)
            .cwd(PathBuf::from(dir))
            .timeout_secs(check.timeout_secs);
        for (key, value) in &check.env {
            request = request.env(key, value);
        }
        request = request
            .env("CI", "true")
            .env("SWITCHYARD_SHA", &target.sha)
            .env("SWITCHYARD_REF", &target.branch)
            .env("SWITCHYARD_REPO", &target.repository.full_name)
            .env("SWITCHYARD_BUILD_ID", report.build.to_string())
            .env("SWITCHYARD_CHECK", &check.name);
        if let Some(number) = target.pull_request {
            request = request.env("SWITCHYARD_PR", number.to_string());
        }
        if report.kind == Kind::Checks {
            request = request.keep_output(KEPT_OUTPUT);
        }
        if target.fork.is_some() {
            // A fork's code: the host withholds secrets and writable binds (`trust_forks`).
            request = request.untrusted();
        }
        host.log(format!("switchyard: [{}] $ {}", check.name, check.run))
            .await;
        host.run(&request).await
    }
}

/// The verdict of several checks: the worst of theirs.
fn worst(verdicts: impl Iterator<Item = Verdict>) -> Verdict {
    let rank = |v: &Verdict| match v {
        Verdict::Skipped => 0,
        Verdict::Passed => 1,
        Verdict::Cancelled => 2,
        Verdict::TimedOut => 3,
        _ => 4,
    };
    verdicts.max_by_key(rank).unwrap_or(Verdict::Passed)
}
