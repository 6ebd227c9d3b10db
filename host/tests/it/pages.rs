//! The pages a developer keeps open, over HTTP: a repository's, a pull request's and a commit's,
//! with the jobs of real signed deliveries (builds and a deploy), the search that leads to
//! them, times in UTC to the second without the script, and a private repository as absent
//! from each of them as one that does not exist.

use serde_json::json;

use crate::dashboard::{Dash, pull_request};
use crate::support::{EVENT_LOG, example};

pub(crate) const SHA: &str = "5ab0c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f6a7b8";
const OTHER_SHA: &str = "77aa00bb11cc22dd33ee44ff55aa66bb77cc88dd";

/// Pull request `number` of `repository` at `sha`, from branch `branch`.
pub(crate) fn pull_request_at(
    repository: &str,
    number: i64,
    sha: &str,
    branch: &str,
) -> serde_json::Value {
    let mut payload = pull_request(repository, "Make it faster");
    payload["number"] = json!(number);
    payload["pull_request"]["number"] = json!(number);
    payload["pull_request"]["head"]["sha"] = json!(sha);
    payload["pull_request"]["head"]["ref"] = json!(branch);
    payload
}

/// A push of `sha` to `branch` of `repository`.
pub(crate) fn push_of(repository: &str, sha: &str, branch: &str) -> serde_json::Value {
    let mut payload = example("push", None);
    payload["repository"]["full_name"] = json!(repository);
    payload["after"] = json!(sha);
    payload["ref"] = json!(format!("refs/heads/{branch}"));
    payload
}

/// A deployment of `sha` of `repository` to production.
pub(crate) fn deployment_of(repository: &str, sha: &str) -> serde_json::Value {
    let mut payload = example("deployment", Some("created"));
    payload["repository"]["full_name"] = json!(repository);
    payload["deployment"]["sha"] = json!(sha);
    payload["deployment"]["ref"] = json!("main");
    payload
}

/// Where a redirect leads.
async fn redirect(dash: &Dash, path: &str) -> String {
    let response = dash.get(path).await;
    assert_eq!(response.status().as_u16(), 303, "{path}");
    response.headers()["location"].to_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_commits_builds_and_deploy_are_on_its_pages_and_search_finds_them() {
    let dash = Dash::start("", EVENT_LOG.to_owned())
        .await
        .signed_in()
        .await;
    let repo = "octo/app";
    let sends = [
        (
            "pr-old",
            "pull_request",
            pull_request_at(repo, 7, OTHER_SHA, "faster"),
        ),
        (
            "pr-new",
            "pull_request",
            pull_request_at(repo, 7, SHA, "faster"),
        ),
        ("push-main", "push", push_of(repo, SHA, "main")),
        ("deploy-1", "deployment", deployment_of(repo, SHA)),
        (
            "elsewhere",
            "pull_request",
            pull_request_at("octo/lib", 3, OTHER_SHA, "fix"),
        ),
    ];
    let mut jobs = std::collections::HashMap::new();
    for (id, event, payload) in &sends {
        assert_eq!(dash.host.send(event, id, payload).await.0, 202);
        jobs.insert(*id, dash.host.ended_jobs(id, 1).await[0].id);
    }
    let job_link = |id: &str| format!("href=\"/dashboard/jobs/{}\"", jobs[id]);

    // The repository: its pull request with the jobs of its newest commit, its branch, its
    // deploy, its jobs; not another repository's.
    let page = dash.ok("/dashboard/repositories/octo/app").await;
    assert!(
        page.contains("href=\"/dashboard/repositories/octo/app/pulls/7\">#7 faster</a>"),
        "{page}"
    );
    let pulls = &page[page.find("id=\"pulls\"").unwrap()..page.find("id=\"branches\"").unwrap()];
    assert!(pulls.contains(&job_link("pr-new")), "{pulls}");
    assert!(
        !pulls.contains(&job_link("pr-old")),
        "only the newest commit's: {pulls}"
    );
    let branches =
        &page[page.find("id=\"branches\"").unwrap()..page.find("id=\"deploys\"").unwrap()];
    assert!(branches.contains(">main</td>"), "{branches}");
    assert!(branches.contains(&job_link("push-main")), "{branches}");
    let deploys = &page[page.find("id=\"deploys\"").unwrap()..page.find("id=\"jobs\"").unwrap()];
    assert!(deploys.contains(&job_link("deploy-1")), "{deploys}");
    assert!(!deploys.contains(&job_link("push-main")), "{deploys}");
    assert!(!page.contains(&job_link("elsewhere")), "{page}");

    // The pull request: its jobs, newest first, with their commits; no push, no deploy.
    let page = dash.ok("/dashboard/repositories/octo/app/pulls/7").await;
    let (new, old) = (
        page.find(&job_link("pr-new")).expect("the newest job"),
        page.find(&job_link("pr-old")).expect("the older job"),
    );
    assert!(new < old, "newest first");
    assert!(page.contains(&format!(
        "href=\"/dashboard/repositories/octo/app/commits/{SHA}\""
    )));
    assert!(!page.contains(&job_link("push-main")) && !page.contains(&job_link("deploy-1")));
    assert!(page.contains(&format!(
        "href=\"/dashboard/jobs/{}#log\">log</a>",
        jobs["pr-new"]
    )));

    // The commit: its build, its push and its deploy together, newest first.
    let page = dash
        .ok(&format!("/dashboard/repositories/octo/app/commits/{SHA}"))
        .await;
    let at: Vec<usize> = ["deploy-1", "push-main", "pr-new"]
        .iter()
        .map(|id| {
            page.find(&job_link(id))
                .unwrap_or_else(|| panic!("{id}: {page}"))
        })
        .collect();
    assert!(at.windows(2).all(|w| w[0] < w[1]), "newest first: {at:?}");
    assert!(!page.contains(&job_link("pr-old")), "{page}");
    // By a prefix of it too.
    let prefixed = dash
        .ok(&format!(
            "/dashboard/repositories/octo/app/commits/{}",
            &SHA[..7]
        ))
        .await;
    assert!(prefixed.contains(&job_link("deploy-1")));

    // Search: one match opens its page; a number names pull requests of every repository.
    let commit = format!("/dashboard/repositories/octo/app/commits/{SHA}");
    assert_eq!(
        redirect(&dash, &format!("/dashboard/search?q={}", &SHA[..8])).await,
        commit
    );
    assert_eq!(
        redirect(
            &dash,
            &format!("/dashboard/search?q={}", SHA.to_uppercase())
        )
        .await,
        commit
    );
    let pull = "/dashboard/repositories/octo/app/pulls/7";
    assert_eq!(redirect(&dash, "/dashboard/search?q=%237").await, pull);
    assert_eq!(
        redirect(&dash, "/dashboard/search?q=octo%2Fapp%237").await,
        pull
    );
    assert_eq!(
        redirect(&dash, "/dashboard/search?q=octo%2Fapp").await,
        "/dashboard/repositories/octo/app"
    );
    assert_eq!(
        redirect(&dash, "/dashboard/search?q=deploy-1").await,
        "/dashboard/deliveries/deploy-1"
    );
    // Two commits start alike: both are listed.
    let (status, page) = dash
        .page(&format!("/dashboard/search?q={}", &OTHER_SHA[..6]))
        .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page.matches("<tr class=\"hit\">").count(), 2, "{page}");
    assert!(page.contains(&format!(
        "/dashboard/repositories/octo/lib/commits/{OTHER_SHA}"
    )));
    let (status, page) = dash.page("/dashboard/search?q=nothing-like-it").await;
    assert_eq!(status, 404);
    assert!(page.contains("id=\"no-match\""), "{page}");

    // The existing pages link to them.
    let job = dash
        .ok(&format!("/dashboard/jobs/{}", jobs["pr-new"]))
        .await;
    for link in [
        "id=\"repository-link\" href=\"/dashboard/repositories/octo/app\"".to_owned(),
        format!("id=\"pull-request-link\" href=\"{pull}\""),
        format!("id=\"commit-link\" href=\"{commit}\""),
    ] {
        assert!(job.contains(&link), "{link}: {job}");
    }
    let list = dash.ok("/dashboard/jobs").await;
    assert!(list.contains("<a href=\"/dashboard/repositories/octo/lib\">octo/lib</a>"));
    let list = dash.ok("/dashboard/deliveries").await;
    assert!(list.contains("title=\"octo/app\"><a href=\"/dashboard/repositories/octo/app\">"));

    // Unknown places are not found.
    for path in [
        "/dashboard/repositories/octo/none",
        "/dashboard/repositories/octo/app/pulls/8",
        "/dashboard/repositories/octo/app/pulls/x",
        "/dashboard/repositories/octo/app/commits/0000000",
        "/dashboard/repositories/octo/app/commits/abc",
    ] {
        assert_eq!(dash.page(path).await.0, 404, "{path}");
    }
    dash.host.stop().await;
}

/// Every `<time>` element's text.
fn times(page: &str) -> Vec<&str> {
    page.match_indices("<time>")
        .map(|(at, _)| {
            let rest = &page[at + "<time>".len()..];
            &rest[..rest.find("</time>").unwrap()]
        })
        .collect()
}

#[tokio::test]
async fn without_the_script_times_are_utc_to_the_second_and_durations_have_one_format() {
    let dash = Dash::start("", EVENT_LOG.to_owned())
        .await
        .signed_in()
        .await;
    let payload = pull_request_at("octo/app", 9, SHA, "times");
    assert_eq!(
        dash.host.send("pull_request", "times-1", &payload).await.0,
        202
    );
    let job = dash.host.ended_jobs("times-1", 1).await[0].id;
    let utc = regex_lite(r"^\d\d\d\d-\d\d-\d\d \d\d:\d\d:\d\d UTC$");
    for path in [
        "/dashboard/deliveries".to_owned(),
        "/dashboard/deliveries/times-1".to_owned(),
        "/dashboard/jobs".to_owned(),
        format!("/dashboard/jobs/{job}"),
        "/dashboard/repositories/octo/app".to_owned(),
        "/dashboard/repositories/octo/app/pulls/9".to_owned(),
    ] {
        let page = dash.ok(&path).await;
        let shown = times(&page);
        assert!(!shown.is_empty(), "{path}");
        for time in shown {
            assert!(utc(time), "{path}: {time:?}");
        }
    }
    // One duration format: `0.4s` under a minute (the job took less).
    let page = dash.ok("/dashboard/jobs").await;
    let row = &page[page.find("<tr class=\"job\">").unwrap()..];
    let row = &row[..row.find("</tr>").unwrap()];
    // The row's last cell.
    let duration = row.rsplit("<td>").next().unwrap();
    let duration = &duration[..duration.find("</td>").unwrap()];
    assert!(
        duration.ends_with('s')
            && !duration.contains(' ')
            && duration[..duration.len() - 1].parse::<f64>().is_ok(),
        "{duration:?}"
    );
    dash.host.stop().await;
}

/// Whether a text matches `pattern`, for the few shapes these tests check: `\d` and literal
/// characters, anchored at both ends.
fn regex_lite(pattern: &'static str) -> impl Fn(&str) -> bool {
    let pattern = pattern.trim_start_matches('^').trim_end_matches('$');
    move |text: &str| {
        let mut chars = text.chars();
        let mut expected = pattern.chars();
        while let Some(p) = expected.next() {
            let c = chars.next();
            let ok = match p {
                '\\' => {
                    expected.next();
                    c.is_some_and(|c| c.is_ascii_digit())
                }
                p => c == Some(p),
            };
            if !ok {
                return false;
            }
        }
        chars.next().is_none()
    }
}

#[tokio::test]
async fn a_private_repository_is_as_absent_from_the_new_pages_and_search_as_an_unknown_one() {
    let dash = Dash::start("access = \"public-read\"", EVENT_LOG.to_owned()).await;
    for (id, repository, private) in [
        ("open-1", "octo/open", false),
        ("secret-1", "octo/secret", true),
    ] {
        let mut payload = pull_request_at(repository, 5, SHA, "branch");
        payload["repository"]["private"] = json!(private);
        if private {
            payload["pull_request"]["head"]["sha"] = json!(OTHER_SHA);
        }
        assert_eq!(dash.host.send("pull_request", id, &payload).await.0, 202);
        dash.host.ended_jobs(id, 1).await;
    }
    // A visitor sees the public repository's pages.
    assert!(
        dash.ok("/dashboard/repositories/octo/open")
            .await
            .contains("#5 branch")
    );
    dash.ok("/dashboard/repositories/octo/open/pulls/5").await;
    dash.ok(&format!("/dashboard/repositories/octo/open/commits/{SHA}"))
        .await;
    // The private one answers as an unknown one does, page by page.
    for (hidden, unknown) in [
        (
            "/dashboard/repositories/octo/secret",
            "/dashboard/repositories/octo/unknown",
        ),
        (
            "/dashboard/repositories/octo/secret/pulls/5",
            "/dashboard/repositories/octo/unknown/pulls/5",
        ),
        (
            &format!("/dashboard/repositories/octo/secret/commits/{OTHER_SHA}"),
            &format!("/dashboard/repositories/octo/unknown/commits/{OTHER_SHA}"),
        ),
    ] {
        let (hidden_status, hidden_page) = dash.page(hidden).await;
        let (unknown_status, unknown_page) = dash.page(unknown).await;
        assert_eq!(hidden_status, 404, "{hidden}");
        assert_eq!(
            (hidden_status, &hidden_page),
            (unknown_status, &unknown_page),
            "{hidden}"
        );
    }
    // And in search: its sha, its repository, its pull request, its delivery.
    for (hidden, unknown) in [
        (&OTHER_SHA[..10], "0123456789"),
        ("octo/secret", "octo/unknown"),
        ("octo/secret#5", "octo/unknown#5"),
        ("secret-1", "unknown-1"),
    ] {
        let (status, page) = dash
            .page(&format!("/dashboard/search?q={}", urlencode(hidden)))
            .await;
        let (unknown_status, unknown_page) = dash
            .page(&format!("/dashboard/search?q={}", urlencode(unknown)))
            .await;
        assert_eq!(status, 404, "{hidden}: {page}");
        assert_eq!(
            (status, page.replace(hidden, "Q")),
            (unknown_status, unknown_page.replace(unknown, "Q")),
            "{hidden}"
        );
        assert!(!page.contains("octo/secret/"), "{page}");
    }
    // `#5` finds the public pull request alone.
    assert_eq!(
        redirect(&dash, "/dashboard/search?q=%235").await,
        "/dashboard/repositories/octo/open/pulls/5"
    );
    // Signed in, it is there.
    let dash = dash.signed_in().await;
    dash.ok("/dashboard/repositories/octo/secret").await;
    assert_eq!(
        redirect(&dash, &format!("/dashboard/search?q={}", &OTHER_SHA[..10])).await,
        format!("/dashboard/repositories/octo/secret/commits/{OTHER_SHA}")
    );
    dash.host.stop().await;
}

fn urlencode(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}
