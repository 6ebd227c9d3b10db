//! Where a job's code comes from: the checkout rules the CI runner and the deployer share, and
//! that users' own plugins can reuse. Read from three settings: `clone_url` (a template),
//! `checkout` and `workdir`.
//!
//! A template that is a local path (`../app`, no `scheme:`) is made a `file://` URL relative to
//! the config's folder. The host binds a `file://` repository the template names into the
//! checkout's sandbox by itself (read-only), which it never does for a URL from a payload.

use std::path::PathBuf;

use crate::{Host, HostError, PluginConfig, PluginError, payload::Repository};

/// The placeholders a `clone_url` template may use.
const PLACEHOLDERS: [&str; 3] = ["{full_name}", "{owner}", "{repo}"];

/// How to get a commit's code into a directory.
#[derive(Debug, Clone)]
pub enum Source {
    /// Check the commit out into a fresh workspace, from the repository's own `clone_url` or
    /// from this template.
    Checkout { clone_url: Option<String> },
    /// Run in this directory as it is (`checkout = false`).
    Workdir(PathBuf),
}

impl Source {
    /// Builds the rules from a plugin's settings: `clone_url` (template with `{full_name}`,
    /// `{owner}`, `{repo}`), `checkout` (default true) and `workdir` (required when `checkout`
    /// is false, relative to the config file's folder).
    pub fn from_settings(
        config: &PluginConfig,
        clone_url: Option<String>,
        checkout: bool,
        workdir: Option<PathBuf>,
    ) -> Result<Self, PluginError> {
        if let Some(template) = &clone_url {
            check_template(template).map_err(|problem| {
                PluginError::fatal(format!("settings.clone_url {template:?}: {problem}"))
            })?;
        }
        let clone_url = clone_url.map(|template| template_url(config, template));
        match (checkout, workdir) {
            (true, _) => Ok(Self::Checkout { clone_url }),
            (false, Some(dir)) => Ok(Self::Workdir(config.resolve_path(dir))),
            (false, None) => Err(PluginError::fatal(
                "settings.workdir is required when settings.checkout = false",
            )),
        }
    }

    /// The URL to fetch `repo` from, or `None` when running in a fixed `workdir`.
    pub fn clone_url(&self, repo: &Repository) -> Result<Option<String>, HostError> {
        let Self::Checkout { clone_url } = self else {
            return Ok(None);
        };
        match clone_url {
            Some(template) => Ok(Some(expand_clone_url(template, &repo.full_name))),
            None => repo.clone_url.clone().map(Some).ok_or_else(|| {
                HostError::InvalidRequest(format!(
                    "the payload gives no clone_url for {}; set settings.clone_url",
                    repo.full_name
                ))
            }),
        }
    }

    /// Gets `sha` of `repo` ready and returns the directory to run in.
    pub async fn prepare(
        &self,
        host: &Host,
        repo: &Repository,
        sha: &str,
    ) -> Result<PathBuf, HostError> {
        match (self, self.clone_url(repo)?) {
            (Self::Workdir(dir), _) => Ok(dir.clone()),
            (Self::Checkout { .. }, Some(url)) => host.checkout(&url, sha).await,
            (Self::Checkout { .. }, None) => unreachable!("a checkout source always has a URL"),
        }
    }
}

fn check_template(template: &str) -> Result<(), String> {
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        let end = rest[start..]
            .find('}')
            .ok_or("an opening { has no closing }")?;
        let placeholder = &rest[start..start + end + 1];
        if !PLACEHOLDERS.contains(&placeholder) {
            return Err(format!(
                "unknown placeholder {placeholder}; use {}",
                PLACEHOLDERS.join(", ")
            ));
        }
        rest = &rest[start + end + 1..];
    }
    Ok(())
}

/// A `clone_url` template as a URL: a local path (no `scheme:`) becomes a `file://` URL,
/// relative to the config's folder; anything else is kept as written.
pub fn template_url(config: &PluginConfig, template: String) -> String {
    if template.contains(':') {
        return template;
    }
    let path = config.resolve_path(template);
    // A config given as `--config config.toml` has the folder `.`; a URL's path is absolute.
    let path = std::path::absolute(&path).unwrap_or(path);
    format!("file://{}", path.display())
}

/// The URL a `clone_url` template names for the repository `full_name` (`owner/repo`).
pub fn expand_clone_url(template: &str, full_name: &str) -> String {
    let (owner, repo) = full_name.split_once('/').unwrap_or(("", full_name));
    template
        .replace("{full_name}", full_name)
        .replace("{owner}", owner)
        .replace("{repo}", repo)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo(clone_url: Option<&str>) -> Repository {
        Repository {
            full_name: "octo/hello".into(),
            clone_url: clone_url.map(Into::into),
            default_branch: None,
            html_url: None,
        }
    }

    fn config() -> PluginConfig {
        PluginConfig {
            name: "ci".into(),
            settings: serde_json::Value::Null,
            config_dir: PathBuf::from("/etc/switchyard"),
            worker_threads: 1,
            github_app: None,
            check_only: false,
        }
    }

    #[test]
    fn templates_expand_every_placeholder() {
        let source = Source::from_settings(
            &config(),
            Some("file:///srv/{owner}/{repo}.git#{full_name}".into()),
            true,
            None,
        )
        .unwrap();
        assert_eq!(
            source.clone_url(&repo(None)).unwrap().as_deref(),
            Some("file:///srv/octo/hello.git#octo/hello")
        );
    }

    #[test]
    fn a_template_that_is_a_path_is_a_file_url_from_the_config_folder() {
        let cases = [
            ("../repos/{repo}", "file:///etc/switchyard/../repos/hello"),
            ("/srv/{full_name}", "file:///srv/octo/hello"),
            ("file:///srv/{repo}", "file:///srv/hello"),
            (
                "git@github.com:{full_name}.git",
                "git@github.com:octo/hello.git",
            ),
        ];
        for (template, expected) in cases {
            let source =
                Source::from_settings(&config(), Some(template.into()), true, None).unwrap();
            assert_eq!(
                source.clone_url(&repo(None)).unwrap().as_deref(),
                Some(expected),
                "{template}"
            );
        }
    }

    #[test]
    fn without_a_template_the_payload_url_is_used_or_its_absence_named() {
        let source = Source::from_settings(&config(), None, true, None).unwrap();
        let url = "https://github.com/octo/hello.git";
        assert_eq!(
            source.clone_url(&repo(Some(url))).unwrap().as_deref(),
            Some(url)
        );
        let error = source.clone_url(&repo(None)).unwrap_err();
        assert!(
            error.to_string().contains("set settings.clone_url"),
            "{error}"
        );
    }

    #[test]
    fn bad_settings_are_named() {
        let cases = [
            (
                Some("https://x/{org}/{repo}"),
                true,
                None,
                "unknown placeholder {org}",
            ),
            (Some("https://x/{repo"), true, None, "no closing }"),
            (None, false, None, "settings.workdir is required"),
        ];
        for (template, checkout, workdir, expected) in cases {
            let error =
                Source::from_settings(&config(), template.map(Into::into), checkout, workdir)
                    .unwrap_err();
            assert!(error.message.contains(expected), "{}", error.message);
        }
    }

    #[test]
    fn a_workdir_is_relative_to_the_config_folder() {
        let source = Source::from_settings(&config(), None, false, Some("site".into())).unwrap();
        let Source::Workdir(dir) = source else {
            panic!("expected a workdir")
        };
        assert_eq!(dir, PathBuf::from("/etc/switchyard/site"));
    }
}
