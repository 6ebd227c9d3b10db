//! Where the pages of a place in the code are: a repository's, a pull request's, a commit's.
//! Every page that names one links to it through these.

/// One path segment, percent-encoded.
fn segment(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// The repository page of `owner/name`.
pub(super) fn repository_link(repository: &str) -> String {
    let (owner, name) = repository.split_once('/').unwrap_or((repository, ""));
    format!(
        "/dashboard/repositories/{}/{}",
        segment(owner),
        segment(name)
    )
}

/// The page of pull request `number` of `repository`.
pub(super) fn pull_request_link(repository: &str, number: i64) -> String {
    format!("{}/pulls/{number}", repository_link(repository))
}

/// The page of commit `sha` of `repository`.
pub(super) fn commit_link(repository: &str, sha: &str) -> String {
    format!("{}/commits/{}", repository_link(repository), segment(sha))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links() {
        assert_eq!(
            repository_link("octo/hello world"),
            "/dashboard/repositories/octo/hello+world"
        );
        assert_eq!(
            pull_request_link("octo/app", 12),
            "/dashboard/repositories/octo/app/pulls/12"
        );
        assert_eq!(
            commit_link("octo/app", "abc"),
            "/dashboard/repositories/octo/app/commits/abc"
        );
    }
}
