//! The host's own calls about people who sign in to the dashboard with GitHub: whether they
//! belong to an organization (`GET /orgs/{org}/members/{username}`). Their permission on a
//! repository is the comment commands' call (`comments::collaborator_permission`). As a GitHub
//! App these go under an installation token (the organization's, narrowed to `members: read`);
//! with a personal token, under that token. Never under the person's own token.

use switchyard_plugin_api::{HostError, Permissions, wire::GitHubCall};

use super::{Caller, GitHub};

/// Whether `login` is a member of `organization`, as the host's identity sees it: GitHub
/// answers 204 for a member and 404 for anyone else (a token of no member of the organization
/// is redirected to its public members, where a public member is still 204).
pub(crate) async fn organization_member(
    github: &dyn GitHub,
    organization: &str,
    login: &str,
) -> Result<bool, HostError> {
    let caller = Caller::for_organization(organization, Permissions::none().read("members"));
    let call = GitHubCall {
        method: "GET".to_owned(),
        path: format!(
            "/orgs/{organization}/members/{}",
            super::comments::segment(login)?
        ),
        body: None,
    };
    match github.send(call, &caller).await {
        Ok(answer) => Ok(answer.status == 204),
        Err(HostError::GitHub { status: 404, .. }) => Ok(false),
        Err(error) => Err(error),
    }
}
