//! The deployer's records in the host's journal: each environment's sticky lock (`/lock`, held
//! until `/unlock`) and each deployment a plugin created, with the person behind it, so the
//! deploy that runs it can tell "created here" (and by whom) from a deployment someone else
//! created through GitHub's API. The journal holds them across restarts, retention and hosts.
//! See docs/plugins.md's deployer section.

use serde::{Deserialize, Serialize};

use crate::{Host, HostError, Role, wire::ServiceRequest};

/// A person by kind and GitHub's numeric id (logins can be renamed and reused), with the
/// login for display.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersonRef {
    pub id: u64,
    pub login: String,
}

impl PersonRef {
    /// How the journal keys them: `github:12345`.
    pub fn key(&self) -> String {
        format!("github:{}", self.id)
    }
}

/// An environment's sticky lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StickyLock {
    /// `owner/repo`.
    pub repository: String,
    pub environment: String,
    /// Who holds it: `github:12345`.
    pub owner: String,
    pub owner_login: String,
    pub reason: String,
    /// Since when (RFC 3339).
    pub at: String,
}

/// A deployment a plugin created, recorded right after GitHub created it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeployRecord {
    pub repository: String,
    pub deployment_id: u64,
    pub environment: String,
    pub sha: String,
    /// Who asked (`github:12345`), or `auto` for a deploy on merge or on green.
    pub requested_by: String,
    pub requested_login: String,
    #[serde(default)]
    pub forced: bool,
    #[serde(default)]
    pub rollback: bool,
    /// When it was recorded (RFC 3339); the host fills it in.
    #[serde(default)]
    pub at: String,
}

/// A deploy that succeeded: see [`Host::record_deploy_success`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeploySuccess {
    pub repository: String,
    pub environment: String,
    pub deployment_id: u64,
    pub sha: String,
    /// Who it was for (a login).
    pub deployed_for: String,
    #[serde(default)]
    pub pull_request: Option<u64>,
    /// When (RFC 3339); the host fills it in.
    #[serde(default)]
    pub at: String,
}

/// Who asks for an automatic deploy.
pub const AUTO: &str = "auto";

/// A request to the journal's deploy records: see the [`Host`] methods below.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum DeployRequest {
    /// Answers with the [`StickyLock`] that holds after it: this one, or one held before.
    Lock { lock: StickyLock },
    /// Answers with the `Option` of the [`StickyLock`] released.
    Unlock {
        repository: String,
        environment: String,
        /// Who released it, for the audit trail: `github:12345 (mona)`.
        by: String,
    },
    /// Answers with a `Vec` of [`StickyLock`].
    Locks { repository: String },
    /// Answers with `()`.
    Record { record: DeployRecord },
    /// Answers with an `Option` of [`DeployRecord`].
    Recorded {
        repository: String,
        deployment_id: u64,
    },
    /// Answers with a `bool`: whether this call claimed the automatic deploy of `sha` to
    /// `environment` (once per environment and sha, across hosts).
    Claim {
        repository: String,
        environment: String,
        sha: String,
    },
    /// Answers with `()`: gives a claim back.
    Unclaim {
        repository: String,
        environment: String,
        sha: String,
    },
    /// Answers with `()`.
    Succeeded { success: DeploySuccess },
    /// Answers with a `Vec` of [`DeploySuccess`], newest first.
    Successes {
        repository: String,
        /// `None`: every environment's.
        environment: Option<String>,
        limit: usize,
    },
    /// Answers with an `Option` of [`Role`]: a person's permission on the repository, from
    /// GitHub or the host's cache of at most 60 s (the commands service's).
    Permission {
        repository: String,
        person: PersonRef,
    },
}

impl Host {
    /// Takes `environment`'s sticky lock for `owner` with `reason`, if no one holds it; returns
    /// the lock that holds now (compare its `owner`). The host records it in the audit trail.
    pub async fn sticky_lock(
        &self,
        repository: &str,
        environment: &str,
        owner: &PersonRef,
        reason: &str,
    ) -> Result<StickyLock, HostError> {
        let lock = StickyLock {
            repository: repository.to_owned(),
            environment: environment.to_owned(),
            owner: owner.key(),
            owner_login: owner.login.clone(),
            reason: reason.to_owned(),
            at: String::new(),
        };
        self.deploys(DeployRequest::Lock { lock }).await
    }

    /// Releases `environment`'s sticky lock (whoever holds it: the plugin checks who may),
    /// returning it; `by` goes to the audit trail.
    pub async fn sticky_unlock(
        &self,
        repository: &str,
        environment: &str,
        by: &str,
    ) -> Result<Option<StickyLock>, HostError> {
        self.deploys(DeployRequest::Unlock {
            repository: repository.to_owned(),
            environment: environment.to_owned(),
            by: by.to_owned(),
        })
        .await
    }

    /// The sticky locks held in `repository`, by environment.
    pub async fn sticky_locks(&self, repository: &str) -> Result<Vec<StickyLock>, HostError> {
        self.deploys(DeployRequest::Locks {
            repository: repository.to_owned(),
        })
        .await
    }

    /// Records a deployment this plugin created, with who asked for it.
    pub async fn record_deployment(&self, record: &DeployRecord) -> Result<(), HostError> {
        self.deploys(DeployRequest::Record {
            record: record.clone(),
        })
        .await
    }

    /// The record of deployment `id`, if a plugin on a host sharing this journal created it.
    pub async fn deployment_record(
        &self,
        repository: &str,
        deployment_id: u64,
    ) -> Result<Option<DeployRecord>, HostError> {
        self.deploys(DeployRequest::Recorded {
            repository: repository.to_owned(),
            deployment_id,
        })
        .await
    }

    /// `person`'s permission on `repository` (`None`: none), as the commands service reads it.
    pub async fn permission_of(
        &self,
        repository: &str,
        person: &PersonRef,
    ) -> Result<Option<Role>, HostError> {
        self.deploys(DeployRequest::Permission {
            repository: repository.to_owned(),
            person: person.clone(),
        })
        .await
    }

    /// Claims the automatic deploy of `sha` to `environment` before creating it: `false` when
    /// another job (on any host sharing the journal) claimed it first.
    pub async fn claim_deploy(
        &self,
        repository: &str,
        environment: &str,
        sha: &str,
    ) -> Result<bool, HostError> {
        self.deploys(DeployRequest::Claim {
            repository: repository.to_owned(),
            environment: environment.to_owned(),
            sha: sha.to_owned(),
        })
        .await
    }

    /// Gives back a claim whose deployment GitHub refused (not green yet), so a later event
    /// may try again.
    pub async fn release_deploy_claim(
        &self,
        repository: &str,
        environment: &str,
        sha: &str,
    ) -> Result<(), HostError> {
        self.deploys(DeployRequest::Unclaim {
            repository: repository.to_owned(),
            environment: environment.to_owned(),
            sha: sha.to_owned(),
        })
        .await
    }

    /// Records a deploy that succeeded (what `/where` and `/rollback` read).
    pub async fn record_deploy_success(&self, success: &DeploySuccess) -> Result<(), HostError> {
        self.deploys(DeployRequest::Succeeded {
            success: success.clone(),
        })
        .await
    }

    /// The successful deploys of `repository` (of `environment`, or all), newest first: at most
    /// `limit`, and at most 200.
    pub async fn deploy_successes(
        &self,
        repository: &str,
        environment: Option<&str>,
        limit: usize,
    ) -> Result<Vec<DeploySuccess>, HostError> {
        self.deploys(DeployRequest::Successes {
            repository: repository.to_owned(),
            environment: environment.map(str::to_owned),
            limit,
        })
        .await
    }

    async fn deploys<T: serde::de::DeserializeOwned>(
        &self,
        request: DeployRequest,
    ) -> Result<T, HostError> {
        self.service(ServiceRequest::Deploys(request)).await
    }
}
