//! `auth = "token"`: every call with the one token from `token_env` or `token_file`, as
//! Switchyard always did.

use switchyard_plugin_api::{GitHubResponse, HostError, wire::GitHubCall};

use super::{
    Caller, GitHub,
    client::{Api, host_error},
};

/// The personal-token client.
pub struct TokenAuth {
    api: Api,
    /// `None` when there is none: calls fail with `missing`, which names where it was looked
    /// for (the variable, or the empty file).
    token: Option<String>,
    missing: String,
}

impl TokenAuth {
    pub fn new(api: Api, token: Option<String>, missing: String) -> Self {
        Self {
            api,
            token,
            missing,
        }
    }

    fn token(&self) -> Result<&str, HostError> {
        self.token
            .as_deref()
            .ok_or_else(|| HostError::NotConfigured(self.missing.clone()))
    }
}

#[async_trait::async_trait]
impl GitHub for TokenAuth {
    async fn send(&self, call: GitHubCall, _caller: &Caller) -> Result<GitHubResponse, HostError> {
        let token = self.token()?;
        self.api.send(&call, token).await.map_err(host_error)
    }

    async fn git_token(&self, _caller: &Caller) -> Result<Option<String>, HostError> {
        Ok(self.token.clone())
    }

    async fn as_host(
        &self,
        call: GitHubCall,
    ) -> Result<(GitHubResponse, Option<String>), HostError> {
        let token = self.token()?;
        self.api.send_paged(&call, token).await.map_err(host_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::GitHubConfig;

    fn client(token: Option<&str>) -> TokenAuth {
        let config = GitHubConfig::default();
        let api = Api::new(&config, Default::default()).unwrap();
        TokenAuth::new(api, token.map(str::to_owned), config.missing_token_error())
    }

    #[tokio::test]
    async fn without_a_token_calls_fail_naming_where_it_was_looked_for() {
        let call = || GitHubCall {
            method: "GET".into(),
            path: "/rate_limit".into(),
            body: None,
        };
        let error = client(None)
            .send(call(), &Caller::nobody())
            .await
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "no GitHub token: set the environment variable GITHUB_TOKEN"
        );
        let config = GitHubConfig {
            token_file: Some("$CREDENTIALS_DIRECTORY/github-token".into()),
            ..GitHubConfig::default()
        };
        let api = Api::new(&config, Default::default()).unwrap();
        let error = TokenAuth::new(api, None, config.missing_token_error())
            .send(call(), &Caller::nobody())
            .await
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "no GitHub token: $CREDENTIALS_DIRECTORY/github-token ([github] token_file) is empty: put a token in it"
        );
    }

    #[tokio::test]
    async fn paths_cannot_send_the_token_elsewhere() {
        let client = client(Some("t0ken"));
        for path in ["https://evil.example/x", "//evil.example/x", "repos/x"] {
            let call = GitHubCall {
                method: "GET".into(),
                path: path.into(),
                body: None,
            };
            assert!(
                matches!(
                    client.send(call, &Caller::nobody()).await,
                    Err(HostError::InvalidRequest(_))
                ),
                "{path}"
            );
        }
    }
}
