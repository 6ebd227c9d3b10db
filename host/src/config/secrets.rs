//! Which settings name secrets, and reading them. The config file holds only the names of the
//! variables and files that hold secrets, never a secret itself.

use std::path::{Path, PathBuf};

use super::{Backend, Config, GitHubAuth};

impl Config {
    /// Names of every environment variable that holds a secret: the webhook secret, the GitHub
    /// token, the dashboard's tokens, the database URL (with PostgreSQL), the App's private key
    /// (with `auth = "app"`), and each plugin setting ending in `_env` (by convention, such as
    /// the chat plugin's `url_env`). Commands run for plugins never inherit them.
    pub fn secret_variables(&self) -> Vec<String> {
        let from_plugins = self.plugins.iter().flat_map(|entry| {
            entry
                .settings
                .iter()
                .filter(|(key, _)| key.ends_with("_env"))
                .filter_map(|(_, value)| value.as_str().map(str::to_owned))
        });
        let database =
            (self.store.backend == Backend::Postgres).then(|| self.store.url_env.clone());
        let app_key =
            (self.github.auth == GitHubAuth::App).then(|| self.github.private_key_env.clone());
        [
            self.server.secret_env.clone(),
            self.github.token_env.clone(),
            self.dashboard.tokens_env.clone(),
            self.dashboard.github_client_secret_env.clone(),
        ]
        .into_iter()
        .chain(database)
        .chain(app_key)
        .chain(from_plugins)
        .collect()
    }

    /// Files holding secrets, named by `*_file` settings: the host's own and plugins' (by
    /// convention, every plugin setting ending in `_file` names one). Never visible to builds.
    pub fn secret_files(&self) -> Vec<PathBuf> {
        let from_plugins = self.plugins.iter().flat_map(|entry| {
            entry
                .settings
                .iter()
                .filter(|(key, _)| key.ends_with("_file"))
                .filter_map(|(_, value)| value.as_str().map(PathBuf::from))
        });
        [
            self.server.secret_file.clone(),
            self.github.token_file.clone(),
            self.store.url_file.clone(),
            self.github.private_key_file.clone(),
            self.dashboard.tokens_file.clone(),
            self.dashboard.github_client_secret_file.clone(),
        ]
        .into_iter()
        .flatten()
        .chain(from_plugins)
        .map(|path| self.secret_path(&path))
        .collect()
    }

    /// A `*_file` setting's path: `$CREDENTIALS_DIRECTORY/...` (systemd's credentials)
    /// expanded, and relative paths resolved against the config file's folder.
    pub fn secret_path(&self, path: &Path) -> PathBuf {
        let credentials = path
            .strip_prefix("$CREDENTIALS_DIRECTORY")
            .ok()
            .zip(std::env::var_os("CREDENTIALS_DIRECTORY"));
        match credentials {
            Some((rest, dir)) => PathBuf::from(dir).join(rest),
            None => self.dir.join(path),
        }
    }
}

/// Reads a secret from a file: its content without the trailing newline. The error names the
/// file, never the content.
pub fn secret_from_file(path: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| format!("cannot read the secret file {}: {error}", path.display()))?;
    Ok(text.trim_end_matches(['\n', '\r']).to_owned())
}

/// Reads a secret from the environment; `None` when unset or empty.
pub fn secret_from_env(variable: &str) -> Option<String> {
    std::env::var(variable).ok().filter(|v| !v.is_empty())
}
