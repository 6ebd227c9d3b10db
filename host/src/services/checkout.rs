//! Checking out a commit for a job: a fresh workspace per job, git's output in the job's log,
//! and the GitHub token handed to git without ever being written down: the personal token, or
//! as a GitHub App the job's installation token.
//!
//! The token travels as an `http.<url>.extraHeader` through git's `GIT_CONFIG_*` environment
//! variables, scoped to the GitHub host the config names: it is not in the URL (which git
//! prints and stores), not in `.git/config` (which the job's command can read), and never sent
//! to a mirror on another host.
//!
//! A local `file://` repository that the entry's `clone_url` template names (the operator's
//! choice, never a payload's) is bound into the checkout's sandbox read-only, and git there
//! trusts it (`safe.directory`, for that path only): as root, builds run as another user than
//! the repository's owner. One that lies in the host's own folders is refused.

use std::{
    collections::HashSet,
    path::{Path, PathBuf},
    sync::Mutex,
};

use base64::Engine as _;
use switchyard_plugin_api::{CheckoutRequest, HostError, RunRequest, Workspace, expand_clone_url};

use crate::{
    job_log::JobLogs,
    journal::JobId,
    sandbox::{Disks, unmount_all},
    services::process::{self, Place},
};

/// Bounds each git command, so a hung server cannot hold a worker for the job's whole timeout.
const GIT_TIMEOUT_SECS: u64 = 600;

/// Workspaces of running jobs, under the store's `workspaces` folder.
pub struct Checkouts {
    dir: PathBuf,
    /// `https://github.com/`, or the GitHub Enterprise host: the only URLs git gets a token for.
    url_prefix: Option<String>,
    /// Jobs that made a workspace: most jobs never check out, and need no cleaning.
    made: Mutex<HashSet<JobId>>,
    /// How large a workspace may grow.
    disks: Disks,
    /// The host's own folders (what, where): no local repository is bound from them.
    protected: Vec<(&'static str, PathBuf)>,
}

/// A local repository the entry's `clone_url` template names: its real path, bound read-only
/// into the checkout's sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalOrigin(pub PathBuf);

/// `base64(x-access-token:TOKEN)`, as git sends it in a basic `Authorization`: masked in logs
/// like the token itself.
pub fn encoded_credentials(token: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("x-access-token:{token}"))
}

impl Checkouts {
    /// `api_url` is `[github] api_url`: api.github.com means git on github.com; a GitHub
    /// Enterprise `https://HOST/api/v3` means git on HOST.
    pub fn new(dir: PathBuf, api_url: &str) -> Self {
        Self {
            dir,
            url_prefix: git_url_prefix(api_url),
            made: Mutex::default(),
            disks: Disks::unlimited(),
            protected: Vec::new(),
        }
    }

    /// Never binds a local repository that lies in (or holds) one of `folders`: the store,
    /// the config's folder, the credentials.
    pub fn protecting(self, folders: Vec<(&'static str, PathBuf)>) -> Self {
        let protected = folders
            .into_iter()
            .map(|(what, path)| (what, std::fs::canonicalize(&path).unwrap_or(path)))
            .collect();
        Self { protected, ..self }
    }

    /// The local repository to bind for `clone_url`: only a `file://` URL that `template` (the
    /// entry's `settings.clone_url`) names for `repository`. Any other URL is fetched as it is,
    /// and a local one from a payload is reachable only through the entry's `binds`.
    pub fn local_origin(
        &self,
        clone_url: &str,
        template: Option<&str>,
        repository: Option<&str>,
    ) -> Result<Option<LocalOrigin>, HostError> {
        let named = template
            .zip(repository)
            .map(|(template, repository)| expand_clone_url(template, repository));
        if !clone_url.starts_with("file://") || named.as_deref() != Some(clone_url) {
            return Ok(None);
        }
        // The event's name fills the template's placeholders: it must not climb out of the
        // folder the operator named.
        let repository = repository.unwrap_or_default();
        if repository
            .split('/')
            .any(|part| part.is_empty() || part == "." || part == "..")
        {
            return Err(HostError::InvalidRequest(format!(
                "the repository name {repository:?} cannot name a local folder"
            )));
        }
        let path = reqwest::Url::parse(clone_url)
            .ok()
            .and_then(|url| url.to_file_path().ok())
            .ok_or_else(|| {
                HostError::InvalidRequest(format!(
                    "settings.clone_url names {clone_url:?}, which is not a local path"
                ))
            })?;
        let path = std::fs::canonicalize(&path).map_err(|error| {
            HostError::Checkout(format!(
                "settings.clone_url names {}: {error}",
                path.display()
            ))
        })?;
        for (what, folder) in &self.protected {
            let relation = if path.starts_with(folder) {
                "lies in"
            } else if folder.starts_with(&path) {
                "holds"
            } else {
                continue;
            };
            return Err(HostError::InvalidRequest(format!(
                "settings.clone_url names {}, which {relation} the host's {what} folder {}: the host never binds it into a build's sandbox; keep the repository elsewhere",
                path.display(),
                folder.display()
            )));
        }
        Ok(Some(LocalOrigin(path)))
    }

    /// Workspaces limited as `disks` says.
    pub fn with_disks(self, disks: Disks) -> Self {
        Self { disks, ..self }
    }

    /// What `switchyard check` and the start-up log say of workspaces.
    pub fn describe_disks(&self) -> String {
        self.disks.describe()
    }

    /// The limit in force on a workspace an entry with `disk_mib` makes, if any.
    pub fn disk_limit(&self, disk_mib: u64) -> Option<u64> {
        self.disks.limit(disk_mib)
    }

    /// Whether git fetching `clone_url` is given the GitHub token: only on the configured
    /// GitHub's host.
    pub fn wants_credentials(&self, clone_url: &str) -> bool {
        self.url_prefix
            .as_deref()
            .is_some_and(|prefix| clone_url.starts_with(prefix))
    }

    pub fn workspace(&self, job: JobId) -> PathBuf {
        self.dir.join(job.to_string())
    }

    /// The job's workspace, made if it is not there yet (`disk_mib` large, waiting for room
    /// on the disk, said in `logs`), and owned by `owner` (the user its commands run as) when
    /// given.
    pub async fn ensure(
        &self,
        job: JobId,
        owner: Option<(u32, u32)>,
        disk_mib: u64,
        logs: &JobLogs,
    ) -> Result<PathBuf, HostError> {
        let path = self.workspace(job);
        let new = self.made().insert(job);
        if new || tokio::fs::symlink_metadata(&path).await.is_err() {
            self.make_workspace(job, &path, owner, disk_mib, logs)
                .await?;
        }
        Ok(path)
    }

    async fn make_workspace(
        &self,
        job: JobId,
        path: &Path,
        owner: Option<(u32, u32)>,
        disk_mib: u64,
        logs: &JobLogs,
    ) -> Result<(), HostError> {
        let waiting = async |why: &str| {
            let line = format!("switchyard: {why}\n");
            let _ = logs.append(job, line.as_bytes()).await;
        };
        self.disks.make(path, owner, disk_mib, waiting).await
    }

    /// Removes a job's workspace, if it made one.
    pub async fn clean(&self, job: JobId) {
        let made = self.made().remove(&job);
        if made {
            self.remove_workspace(&self.workspace(job)).await;
        }
    }

    async fn remove_workspace(&self, path: &Path) {
        self.disks.remove(path).await;
        remove_dir(path).await;
    }

    fn made(&self) -> std::sync::MutexGuard<'_, HashSet<JobId>> {
        self.made.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Removes every workspace: at start, none belongs to a running job. Those a killed host
    /// left mounted are unmounted first.
    pub async fn clean_all(&self) {
        unmount_all(&self.dir).await;
        remove_dir(&self.dir).await;
    }

    /// Fetches `request.sha` into the job's fresh workspace and checks it out (detached), with
    /// git run in `place`'s sandbox (its workspace is set here), and `token` for GitHub URLs;
    /// `local` (see [`Self::local_origin`]) is bound into that sandbox and trusted by git.
    pub async fn checkout(
        &self,
        request: CheckoutRequest,
        logs: &JobLogs,
        job: JobId,
        place: Place<'_>,
        token: Option<&str>,
        local: Option<LocalOrigin>,
    ) -> Result<Workspace, HostError> {
        let CheckoutRequest { mut clone_url, sha } = request;
        if !(4..=64).contains(&sha.len()) || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(HostError::InvalidRequest(format!(
                "not a commit sha: {sha:?}"
            )));
        }
        if clone_url.is_empty() || clone_url.starts_with('-') {
            return Err(HostError::InvalidRequest(format!(
                "not a clone URL: {clone_url:?}"
            )));
        }
        let path = self.workspace(job);
        self.made().insert(job);
        self.remove_workspace(&path).await;
        let disk_mib = place.allowance.disk_mib;
        self.make_workspace(job, &path, place.sandbox.run_as(), disk_mib, logs)
            .await?;
        let mut allowance = place.allowance.clone();
        let env = self.git_env(&clone_url, token);
        let mut fetch = vec!["fetch".to_owned()];
        if let Some(LocalOrigin(origin)) = &local {
            // git sees the real path, which is what it is told to trust.
            clone_url = format!("file://{}", origin.display());
            allowance.binds.push((origin.clone(), false));
            // Fetching from a folder needs no network (nor, as a user, the isolation it takes).
            allowance.network = false;
            fetch.push(trusting_upload_pack(origin));
        }
        let fetch: Vec<&str> = fetch.iter().map(String::as_str).collect();
        let git = Git {
            place: Place {
                workspace: &path,
                disk_mib: self.disk_limit(disk_mib),
                allowance: &allowance,
                ..place
            },
            logs,
            job,
            env,
        };
        let shown_url = without_userinfo(&clone_url);
        git.run(&["init", "--quiet"]).await?;
        let by_sha = git
            .run(&[&fetch[..], &["--depth=1", "--no-tags", &clone_url, &sha]].concat())
            .await;
        if by_sha.is_err() {
            // Some servers refuse to serve a sha no ref was asked for: fetch every branch and
            // pull request head, one of which has it.
            git.note("fetching by sha failed; fetching branches and pull request heads instead")
                .await;
            git.run(
                &[
                    &fetch[..],
                    &[
                        "--no-tags",
                        &clone_url,
                        "+refs/heads/*:refs/remotes/origin/*",
                        "+refs/pull/*/head:refs/remotes/origin/pull/*",
                    ],
                ]
                .concat(),
            )
            .await
            .map_err(|_| {
                HostError::Checkout(format!("cannot fetch {sha} from {shown_url} (see the log)"))
            })?;
        }
        git.run(&[
            "-c",
            "advice.detachedHead=false",
            "checkout",
            "--quiet",
            "--detach",
            &sha,
        ])
        .await
        .map_err(|_| HostError::Checkout(format!("commit {sha} is not in {shown_url}")))?;
        Ok(Workspace { path })
    }

    /// The environment git runs with: never prompt, and the token for GitHub URLs only.
    fn git_env(&self, clone_url: &str, token: Option<&str>) -> Vec<(String, String)> {
        let mut env = vec![("GIT_TERMINAL_PROMPT".to_owned(), "0".to_owned())];
        if let (Some(prefix), Some(token)) = (&self.url_prefix, token)
            && clone_url.starts_with(prefix.as_str())
        {
            env.extend([
                ("GIT_CONFIG_COUNT".to_owned(), "1".to_owned()),
                (
                    "GIT_CONFIG_KEY_0".to_owned(),
                    format!("http.{prefix}.extraHeader"),
                ),
                (
                    "GIT_CONFIG_VALUE_0".to_owned(),
                    format!("Authorization: basic {}", encoded_credentials(token)),
                ),
            ]);
        }
        env
    }
}

/// The `--upload-pack` that lets git read `origin` as the build's user: a repository another
/// user owns is "dubious" to git unless `safe.directory` names it, and for a local repository
/// git clears the `GIT_CONFIG_*` environment before starting upload-pack, so the setting goes
/// on its command line (for that path only: its work tree and its `.git`).
fn trusting_upload_pack(origin: &Path) -> String {
    let quoted = |path: &Path| format!("'{}'", path.display().to_string().replace('\'', r"'\''"));
    format!(
        "--upload-pack=git -c safe.directory={} -c safe.directory={} upload-pack",
        quoted(origin),
        quoted(&origin.join(".git"))
    )
}

/// Runs git commands in a workspace, echoing each into the job's log.
struct Git<'a> {
    place: Place<'a>,
    logs: &'a JobLogs,
    job: JobId,
    env: Vec<(String, String)>,
}

impl Git<'_> {
    async fn run(&self, args: &[&str]) -> Result<(), HostError> {
        let shown: Vec<String> = args.iter().map(|a| without_userinfo(a)).collect();
        self.note(&format!("$ git {}", shown.join(" "))).await;
        let mut request = RunRequest {
            program: "git".to_owned(),
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            cwd: Some(self.place.workspace.to_owned()),
            timeout_secs: Some(GIT_TIMEOUT_SECS),
            ..RunRequest::default()
        };
        request.env.extend(self.env.iter().cloned());
        let output = process::run(request, self.logs.clone(), self.job, &self.place).await?;
        if output.success() {
            Ok(())
        } else {
            Err(HostError::Checkout(format!("git {} failed", args[0])))
        }
    }

    async fn note(&self, text: &str) {
        let line = format!("switchyard: {text}\n");
        let _ = self.logs.append(self.job, line.as_bytes()).await;
    }
}

/// `https://HOST/` of git on the GitHub that `api_url` belongs to. An API on plain `http`
/// (a local test double, never GitHub) serves git on `http` too: the token already travels
/// that way to the API.
fn git_url_prefix(api_url: &str) -> Option<String> {
    let url = reqwest::Url::parse(api_url).ok()?;
    let host = url.host_str()?;
    let host = if host == "api.github.com" {
        "github.com"
    } else {
        host
    };
    let scheme = match url.scheme() {
        "http" => "http",
        _ => "https",
    };
    Some(match url.port() {
        Some(port) => format!("{scheme}://{host}:{port}/"),
        None => format!("{scheme}://{host}/"),
    })
}

/// A URL with any `user:password@` removed, for the log.
fn without_userinfo(text: &str) -> String {
    match reqwest::Url::parse(text) {
        Ok(mut url) if !url.username().is_empty() || url.password().is_some() => {
            let _ = url.set_username("");
            let _ = url.set_password(None);
            url.to_string()
        }
        _ => text.to_owned(),
    }
}

/// Removes a workspace a build wrote, whatever it made there. `rm -rf` walks any depth without
/// recursing on a stack or following links: the standard library's recursive removal
/// overflowed its thread's stack on a tree 15,000 folders deep, killing the host at every start.
async fn remove_dir(path: &Path) {
    if tokio::fs::symlink_metadata(path).await.is_err() {
        return;
    }
    let removed = tokio::process::Command::new("rm")
        .args(["-rf", "--one-file-system", "--"])
        .arg(path)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .output()
        .await;
    match removed {
        Ok(output) if output.status.success() => {}
        Ok(output) => tracing::warn!(
            path = %path.display(),
            error = String::from_utf8_lossy(&output.stderr).trim(),
            "cannot remove workspace"
        ),
        Err(error) => {
            tracing::warn!(path = %path.display(), error = error.to_string(), "cannot remove workspace")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn git_runs_on_the_host_the_api_url_names() {
        let cases = [
            ("https://api.github.com", Some("https://github.com/")),
            (
                "https://ghe.example.com/api/v3",
                Some("https://ghe.example.com/"),
            ),
            (
                "http://127.0.0.1:8080/api/v3",
                Some("http://127.0.0.1:8080/"),
            ),
            ("not a url", None),
        ];
        for (api_url, expected) in cases {
            assert_eq!(git_url_prefix(api_url).as_deref(), expected, "{api_url}");
        }
    }

    #[test]
    fn the_token_goes_to_github_urls_only_and_only_in_the_environment() {
        let checkouts = Checkouts::new("/w".into(), "https://api.github.com");
        let env = checkouts.git_env("https://github.com/octo/hello.git", Some("ghp_secret"));
        let header = &env
            .iter()
            .find(|(k, _)| k == "GIT_CONFIG_VALUE_0")
            .unwrap()
            .1;
        // base64("x-access-token:ghp_secret")
        assert_eq!(
            header,
            "Authorization: basic eC1hY2Nlc3MtdG9rZW46Z2hwX3NlY3JldA=="
        );
        assert!(env.contains(&(
            "GIT_CONFIG_KEY_0".to_owned(),
            "http.https://github.com/.extraHeader".to_owned()
        )));
        assert_eq!(
            encoded_credentials("ghp_secret"),
            "eC1hY2Nlc3MtdG9rZW46Z2hwX3NlY3JldA=="
        );
        assert!(checkouts.wants_credentials("https://github.com/octo/hello.git"));
        let without = checkouts.git_env("https://github.com/octo/hello.git", None);
        assert!(without.iter().all(|(k, _)| !k.starts_with("GIT_CONFIG")));
        for elsewhere in [
            "https://mirror.example.com/octo/hello.git",
            "https://github.com.evil.example/octo/hello.git",
            "file:///srv/octo/hello.git",
        ] {
            assert!(!checkouts.wants_credentials(elsewhere));
            let env = checkouts.git_env(elsewhere, Some("ghp_secret"));
            assert!(
                env.iter().all(|(k, _)| !k.starts_with("GIT_CONFIG")),
                "{elsewhere}"
            );
        }
    }

    #[test]
    fn only_a_local_repository_the_template_names_is_bound_and_never_from_the_hosts_folders() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().canonicalize().unwrap();
        let store = real.join("store");
        for folder in ["app", "store/repo", "store/logs"] {
            std::fs::create_dir_all(real.join(folder)).unwrap();
        }
        let checkouts = Checkouts::new(store.join("workspaces"), "https://api.github.com")
            .protecting(vec![("store", store.clone())]);
        let template = format!("file://{}/{{repo}}", real.display());
        let url = format!("file://{}/app", real.display());
        assert_eq!(
            checkouts
                .local_origin(&url, Some(&template), Some("me/app"))
                .unwrap(),
            Some(LocalOrigin(real.join("app")))
        );
        // A payload's URL, another repository's, or no template: fetched as given, not bound.
        for (template, repository) in [
            (None, Some("me/app")),
            (Some(template.as_str()), Some("me/other")),
            (Some(template.as_str()), None),
        ] {
            assert_eq!(
                checkouts.local_origin(&url, template, repository).unwrap(),
                None
            );
        }
        let https = "https://github.com/{full_name}.git";
        let named = "https://github.com/me/app.git";
        assert_eq!(
            checkouts
                .local_origin(named, Some(https), Some("me/app"))
                .unwrap(),
            None
        );
        let refused = [
            (
                format!("file://{}/store/{{repo}}", real.display()),
                "repo",
                "lies in",
            ),
            (format!("file://{}", real.display()), "app", "holds"),
        ];
        for (template, repo, relation) in refused {
            let url = expand_clone_url(&template, &format!("me/{repo}"));
            let error = checkouts
                .local_origin(&url, Some(&template), Some(&format!("me/{repo}")))
                .unwrap_err()
                .to_string();
            assert!(
                error.contains(&format!("{relation} the host's store folder")),
                "{error}"
            );
        }
        let climbing = format!("file://{}/app/{{full_name}}", real.display());
        let error = checkouts
            .local_origin(
                &expand_clone_url(&climbing, "../store"),
                Some(&climbing),
                Some("../store"),
            )
            .unwrap_err()
            .to_string();
        assert!(error.contains("cannot name a local folder"), "{error}");
        let missing = format!("file://{}/{{repo}}", real.display());
        let error = checkouts
            .local_origin(
                &expand_clone_url(&missing, "me/gone"),
                Some(&missing),
                Some("me/gone"),
            )
            .unwrap_err()
            .to_string();
        assert!(error.contains("gone"), "{error}");
    }

    #[test]
    fn urls_lose_their_credentials_in_the_log() {
        assert_eq!(
            without_userinfo("https://bot:hunter2@mirror.example.com/o/r.git"),
            "https://mirror.example.com/o/r.git"
        );
        assert_eq!(
            without_userinfo("file:///srv/o/r.git"),
            "file:///srv/o/r.git"
        );
        assert_eq!(without_userinfo("--depth=1"), "--depth=1");
    }
}
