//! A merged pull request becomes a GitHub Deployment request ("Delivering deployments").

use serde_json::json;
use switchyard_plugin_api::{NewDeployment, fit_description, payload::PullRequestEvent};

/// What a deployment on merge needs from the settings.
pub struct MergeRules<'a> {
    pub environment: &'a str,
    /// Base branches that deploy; empty means the repository's default branch.
    pub branches: &'a [String],
    pub required_contexts: &'a [String],
}

/// The deployment to create for `event`, or why there is none.
pub fn deployment_for(
    event: &PullRequestEvent,
    rules: &MergeRules<'_>,
) -> Result<NewDeployment, String> {
    let pr = &event.pull_request;
    if event.action != "closed" {
        return Err(format!("pull_request.{} deploys nothing", event.action));
    }
    if pr.merged != Some(true) {
        return Err(format!(
            "pull request #{} was closed without merging",
            pr.number
        ));
    }
    let base = &pr.base.git_ref;
    let deploys = if rules.branches.is_empty() {
        event.repository.default_branch.as_deref() == Some(base)
    } else {
        rules.branches.contains(base)
    };
    if !deploys {
        return Err(format!(
            "pull request #{} merged into {base}, which does not deploy",
            pr.number
        ));
    }
    let login = &pr.user.login;
    Ok(NewDeployment {
        // The merge commit is what the base branch now holds; GitHub leaves it out in old payloads.
        git_ref: pr
            .merge_commit_sha
            .clone()
            .unwrap_or_else(|| pr.head.sha.clone()),
        task: Some("deploy".to_owned()),
        auto_merge: Some(false),
        required_contexts: Some(rules.required_contexts.to_vec()),
        payload: Some(json!({
            "environment": rules.environment,
            "deploy_user": login,
            "pull_request": pr.number,
        })),
        environment: Some(rules.environment.to_owned()),
        description: Some(fit_description(&format!(
            "Deploying #{} '{}' by {login}",
            pr.number, pr.title
        ))),
        ..NewDeployment::default()
    })
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn closed(merged: bool, base: &str, merge_commit_sha: Value) -> PullRequestEvent {
        serde_json::from_value(json!({
            "action": "closed", "number": 12,
            "repository": {"full_name": "octo/app", "default_branch": "main"},
            "pull_request": {
                "number": 12, "title": "Add a feature", "merged": merged,
                "merge_commit_sha": merge_commit_sha, "user": {"login": "mona"},
                "base": {"ref": base, "sha": "b1"},
                "head": {"ref": "feature", "sha": "h1"}
            }
        }))
        .unwrap()
    }

    const RULES: MergeRules<'static> = MergeRules {
        environment: "production",
        branches: &[],
        required_contexts: &[],
    };

    #[test]
    fn a_merge_into_the_default_branch_deploys_the_merge_commit() {
        let deployment = deployment_for(&closed(true, "main", json!("m1")), &RULES).unwrap();
        assert_eq!(
            serde_json::to_value(&deployment).unwrap(),
            json!({
                "ref": "m1", "task": "deploy", "auto_merge": false, "required_contexts": [],
                "environment": "production",
                "description": "Deploying #12 'Add a feature' by mona",
                "payload": {"environment": "production", "deploy_user": "mona", "pull_request": 12}
            })
        );
    }

    #[test]
    fn without_a_merge_commit_the_head_is_deployed() {
        let deployment = deployment_for(&closed(true, "main", Value::Null), &RULES).unwrap();
        assert_eq!(deployment.git_ref, "h1");
    }

    #[test]
    fn unmerged_and_other_branches_deploy_nothing() {
        let unmerged = deployment_for(&closed(false, "main", Value::Null), &RULES).unwrap_err();
        assert_eq!(unmerged, "pull request #12 was closed without merging");
        let other = deployment_for(&closed(true, "develop", json!("m1")), &RULES).unwrap_err();
        assert!(other.contains("merged into develop"), "{other}");
        let branches = ["develop".to_owned()];
        let rules = MergeRules {
            branches: &branches,
            ..RULES
        };
        assert!(deployment_for(&closed(true, "develop", json!("m1")), &rules).is_ok());
    }

    #[test]
    fn long_titles_fit_githubs_description_limit() {
        let mut event = closed(true, "main", json!("m1"));
        event.pull_request.title = "x".repeat(300);
        let deployment = deployment_for(&event, &RULES).unwrap();
        assert_eq!(deployment.description.unwrap().chars().count(), 140);
    }
}
