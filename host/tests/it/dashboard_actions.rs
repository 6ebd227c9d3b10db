//! The dashboard's actions over HTTP: replay a delivery, cancel a job, release a lock. Each is
//! refused signed out (whatever `access` says), from another site, and with a missing or
//! another session's form token; done, it is in the audit trail with the token's name, on the
//! page the answer leads back to.

use switchyard::journal::{JobId, JobState};

use crate::{
    dashboard::{Dash, pull_request},
    support::{EVENT_LOG, behaviours},
};

/// The form token on a page.
fn form_token(page: &str) -> String {
    let marker = "name=\"csrf\" value=\"";
    let at = page.find(marker).expect("a form with a token") + marker.len();
    page[at..at + page[at..].find('"').unwrap()].to_owned()
}

/// How a test posts a form.
enum From {
    /// The dashboard's own page, as a browser says it.
    SamePage,
    /// A page on another site.
    OtherSite,
    /// A client that is not a browser (no `Origin`, no `Sec-Fetch-Site`).
    NoBrowser,
}

impl Dash {
    /// POSTs `form` to `path` with the session cookie (when signed in), as `from` would.
    async fn post_form(&self, path: &str, form: &[(&str, &str)], from: From) -> reqwest::Response {
        let mut request = self
            .http
            .post(format!("{}{path}", self.host.base))
            .form(form);
        if let Some(cookie) = &self.cookie {
            request = request.header("cookie", cookie);
        }
        request = match from {
            From::SamePage => request
                .header("origin", &self.host.base)
                .header("sec-fetch-site", "same-origin"),
            From::OtherSite => request
                .header("origin", "https://evil.example")
                .header("sec-fetch-site", "cross-site"),
            From::NoBrowser => request,
        };
        request.send().await.unwrap()
    }

    /// Follows an action's answer back to its page, which must say what was done.
    async fn result_page(&self, response: reqwest::Response) -> String {
        assert_eq!(response.status().as_u16(), 303);
        let location = response.headers()["location"].to_str().unwrap().to_owned();
        assert!(location.contains("action="), "{location}");
        let page = self.ok(&location).await;
        assert!(page.contains("id=\"action-result\""), "{page}");
        page
    }

    /// Bob's session's token: a genuine token, of another session.
    async fn other_sessions_token(&self, page: &str) -> String {
        let bob = self
            .sign_in(crate::dashboard::BOB_TOKEN, "/dashboard")
            .await;
        let cookie = bob.headers()["set-cookie"].to_str().unwrap();
        let cookie = cookie.split(';').next().unwrap().to_owned();
        let response = self
            .http
            .get(format!("{}{page}", self.host.base))
            .header("cookie", cookie)
            .send()
            .await
            .unwrap();
        form_token(&response.text().await.unwrap())
    }
}

/// `form` with the token field `csrf`, when given.
fn with_token(form: &[(&str, &str)], token: Option<&str>) -> Vec<(String, String)> {
    let mut fields: Vec<(String, String)> = form
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    if let Some(token) = token {
        fields.push(("csrf".into(), token.to_owned()));
    }
    fields
}

/// POSTs `fields` to `path` as `from` would; the status and text of the answer.
async fn post(dash: &Dash, path: &str, fields: &[(String, String)], from: From) -> (u16, String) {
    let pairs: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let response = dash.post_form(path, &pairs, from).await;
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

/// Every way a form is refused before anything is done: signed out, another site, no token,
/// a blank one, another session's token. Each answer is a refusal page.
async fn refusals(dash: &mut Dash, path: &str, form: &[(&str, &str)], page: &str) {
    let token = form_token(&dash.ok(page).await);
    let good = with_token(form, Some(&token));

    let cookie = dash.cookie.take();
    let (status, text) = post(dash, path, &good, From::SamePage).await;
    assert_eq!(status, 401, "signed out: {text}");
    assert!(text.contains("needs a sign-in"), "{text}");
    dash.cookie = cookie;

    let (status, text) = post(dash, path, &good, From::OtherSite).await;
    assert_eq!(status, 403, "another site: {text}");
    assert!(text.contains("came from another site"), "{text}");

    for fields in [with_token(form, None), with_token(form, Some(""))] {
        let (status, text) = post(dash, path, &fields, From::SamePage).await;
        assert_eq!(status, 403, "no token: {text}");
        assert!(text.contains("out of date"), "{text}");
    }

    let stale = dash.other_sessions_token(page).await;
    assert_ne!(stale, token);
    let fields = with_token(form, Some(&stale));
    let (status, _) = post(dash, path, &fields, From::SamePage).await;
    assert_eq!(status, 403, "another session's token");
}

#[tokio::test]
async fn replay_needs_a_sign_in_a_same_origin_form_and_its_sessions_token_and_is_audited() {
    let mut dash = Dash::start("", EVENT_LOG.to_owned())
        .await
        .signed_in()
        .await;
    let payload = pull_request("octo/one", "t");
    assert_eq!(dash.host.send("pull_request", "r-1", &payload).await.0, 202);
    dash.host.ended_jobs("r-1", 1).await;
    let page = "/dashboard/deliveries/r-1";
    assert!(dash.ok(page).await.contains("Nobody has acted on this"));

    refusals(
        &mut dash,
        "/dashboard/deliveries/r-1/replay",
        &[("plugin", "")],
        page,
    )
    .await;
    assert_eq!(
        dash.host.ended_jobs("r-1", 1).await.len(),
        1,
        "nothing replayed"
    );

    let token = form_token(&dash.ok(page).await);
    let replayed = dash
        .post_form(
            "/dashboard/deliveries/r-1/replay",
            &[("csrf", &token), ("plugin", "")],
            From::SamePage,
        )
        .await;
    let shown = dash.result_page(replayed).await;
    let jobs = dash.host.ended_jobs("r-1", 2).await;
    let new = jobs[1].id;
    assert!(
        shown.contains(&format!(
            "<strong>token:alice</strong> replay: replayed as new jobs #{new} (event-log)"
        )),
        "{shown}"
    );
    // In the trail on the delivery's page, and the new job links back to the delivery.
    assert!(
        shown.contains("<td>token:alice</td><td>replay</td>"),
        "{shown}"
    );
    let job_page = dash.ok(&format!("/dashboard/jobs/{new}")).await;
    assert!(job_page.contains("href=\"/dashboard/deliveries/r-1\""));
    assert!(
        job_page.contains(&format!("replayed as new jobs #{new} (event-log)")),
        "the replay that made it: {job_page}"
    );

    // A client that is not a browser passes with the cookie and the token; one plugin only.
    let one = dash
        .post_form(
            "/dashboard/deliveries/r-1/replay",
            &[("csrf", &token), ("plugin", "event-log")],
            From::NoBrowser,
        )
        .await;
    dash.result_page(one).await;
    dash.host.ended_jobs("r-1", 3).await;
    // A plugin that is not loaded: nothing replayed, and the trail says why.
    let nope = dash
        .post_form(
            "/dashboard/deliveries/r-1/replay",
            &[("csrf", &token), ("plugin", "nope")],
            From::SamePage,
        )
        .await;
    let shown = dash.result_page(nope).await;
    assert!(
        shown.contains("not replayed: plugin &#34;nope&#34; is not loaded"),
        "{shown}"
    );
    assert_eq!(dash.host.ended_jobs("r-1", 3).await.len(), 3);

    let trail = dash
        .host
        .host_state
        .journal
        .actions(switchyard::journal::ActionFilter {
            limit: 10,
            delivery: Some("r-1".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(trail.len(), 3);
    assert!(
        trail
            .iter()
            .all(|a| a.actor == "token:alice" && a.action == "replay")
    );
    dash.host.stop().await;
}

#[tokio::test]
async fn public_read_still_needs_a_sign_in_to_act() {
    let dash = Dash::start("access = \"public-read\"", EVENT_LOG.to_owned()).await;
    let payload = pull_request("octo/one", "t");
    assert_eq!(dash.host.send("pull_request", "p-1", &payload).await.0, 202);
    dash.host.ended_jobs("p-1", 1).await;
    let page = dash.ok("/dashboard/deliveries/p-1").await;
    assert!(!page.contains("name=\"csrf\""), "no form signed out");
    assert!(page.contains("to replay this delivery"));
    for path in [
        "/dashboard/deliveries/p-1/replay",
        "/dashboard/jobs/1/cancel",
        "/dashboard/locks/release",
    ] {
        let response = dash.post_form(path, &[("csrf", "x")], From::SamePage).await;
        assert_eq!(response.status().as_u16(), 401, "{path}");
    }
    assert_eq!(dash.host.ended_jobs("p-1", 1).await.len(), 1);
    dash.host.stop().await;
}

/// Waits until `job` is running.
async fn running(dash: &Dash, job: JobId) {
    let journal = &dash.host.host_state.journal;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while journal.job(job).await.unwrap().state != JobState::Running {
        assert!(std::time::Instant::now() < deadline, "job {job} never ran");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

fn patient() -> String {
    behaviours(
        "patient",
        "timeout_secs = 600",
        "behaviour = \"await_cancel\"",
    )
}

#[tokio::test]
async fn cancelling_a_running_job_tells_the_plugin_who_and_is_audited() {
    let mut dash = Dash::start("", patient()).await.signed_in().await;
    let payload = pull_request("octo/one", "t");
    assert_eq!(dash.host.send("pull_request", "c-1", &payload).await.0, 202);
    let job = dash.host.host_state.journal.jobs_of("c-1").await.unwrap()[0].id;
    running(&dash, job).await;
    let page = format!("/dashboard/jobs/{job}");
    assert!(dash.ok(&page).await.contains("id=\"cancel-button\""));

    let path = format!("/dashboard/jobs/{job}/cancel");
    refusals(&mut dash, &path, &[], &page).await;
    let state = dash.host.host_state.journal.job(job).await.unwrap().state;
    assert_eq!(state, JobState::Running, "not cancelled by a refused form");

    let token = form_token(&dash.ok(&page).await);
    let cancelled = dash
        .post_form(&path, &[("csrf", &token)], From::SamePage)
        .await;
    let shown = dash.result_page(cancelled).await;
    assert!(
        shown
            .contains("cancel: cancelling: the plugin was told &#34;cancelled by token:alice&#34;"),
        "{shown}"
    );
    let ended = dash.host.ended_jobs("c-1", 1).await;
    assert_eq!(ended[0].state, JobState::Failed);
    assert_eq!(
        ended[0].error.as_deref(),
        Some("stopped: cancelled by token:alice")
    );
    let (_, log) = dash.host.get(&dash.host.log_path(job).await).await;
    assert!(log.contains("cancelled: cancelled by token:alice"), "{log}");
    // The job's page: its final state, no button, the action in its trail.
    let after = dash.ok(&page).await;
    assert!(
        after.contains(r#"data-verdict="cancelled">cancelled<"#),
        "{after}"
    );
    assert!(!after.contains("id=\"cancel-button\""));
    assert!(
        after.contains("<td>token:alice</td><td>cancel</td>"),
        "{after}"
    );

    // Cancelling an ended job does nothing, and says so.
    let token = form_token(&dash.ok("/dashboard/deliveries/c-1").await);
    let again = dash
        .post_form(&path, &[("csrf", &token)], From::SamePage)
        .await;
    let shown = dash.result_page(again).await;
    assert!(
        shown.contains("not cancelled: the job had already failed"),
        "{shown}"
    );
    dash.host.stop().await;
}

#[tokio::test]
async fn a_lock_is_released_after_its_name_is_typed_its_holder_cancelled_first() {
    let mut dash = Dash::start("", patient()).await.signed_in().await;
    let payload = pull_request("octo/one", "t");
    assert_eq!(dash.host.send("pull_request", "l-1", &payload).await.0, 202);
    let journal = std::sync::Arc::clone(&dash.host.host_state.journal);
    let holder = journal.jobs_of("l-1").await.unwrap()[0].id;
    running(&dash, holder).await;
    let lock = "deploy:octo/one:production";
    assert!(journal.try_lock(lock, holder, 1).await.unwrap());
    let page = dash.ok("/dashboard/deployments").await;
    assert!(page.contains(&format!("<td>{lock}</td>")), "{page}");
    let holder_field = holder.to_string();

    let form = [
        ("name", lock),
        ("job", holder_field.as_str()),
        ("confirm", lock),
    ];
    refusals(
        &mut dash,
        "/dashboard/locks/release",
        &form,
        "/dashboard/deployments",
    )
    .await;
    assert_eq!(journal.locks().await.unwrap().len(), 1, "still held");

    // The name mistyped: nothing released, and the trail says so.
    let token = form_token(&dash.ok("/dashboard/deployments").await);
    let typo = dash
        .post_form(
            "/dashboard/locks/release",
            &[
                ("csrf", &token),
                ("name", lock),
                ("job", &holder_field),
                ("confirm", "deploy:octo/one:prod"),
            ],
            From::SamePage,
        )
        .await;
    let shown = dash.result_page(typo).await;
    assert!(
        shown.contains("not released: the name typed to confirm"),
        "{shown}"
    );
    assert_eq!(journal.locks().await.unwrap().len(), 1);
    assert_eq!(journal.job(holder).await.unwrap().state, JobState::Running);

    let released = dash
        .post_form(
            "/dashboard/locks/release",
            &[
                ("csrf", &token),
                ("name", lock),
                ("job", &holder_field),
                ("confirm", lock),
            ],
            From::SamePage,
        )
        .await;
    let shown = dash.result_page(released).await;
    assert!(
        shown.contains(&format!("released; holder job #{holder} cancelling: ")),
        "{shown}"
    );
    assert!(journal.locks().await.unwrap().is_empty());
    let ended = dash.host.ended_jobs("l-1", 1).await;
    assert_eq!(
        ended[0].error.as_deref(),
        Some("stopped: cancelled by token:alice")
    );
    // On the deployments page and the holder's page.
    assert!(shown.contains("No lock is held."));
    assert!(
        shown.contains("<td>token:alice</td><td>release</td>"),
        "{shown}"
    );
    let job_page = dash.ok(&format!("/dashboard/jobs/{holder}")).await;
    assert!(
        job_page.contains("<td>token:alice</td><td>release</td>"),
        "{job_page}"
    );
    dash.host.stop().await;
}

#[tokio::test]
async fn a_queued_job_starts_cancelled_and_its_plugin_is_told_who() {
    let spec = crate::support::HostSpec {
        plugins: patient(),
        workers: "concurrency = 1".to_owned(),
        ..Default::default()
    };
    let dash = Dash::start_with("", spec).await.signed_in().await;
    let payload = pull_request("octo/one", "t");
    assert_eq!(dash.host.send("pull_request", "q-1", &payload).await.0, 202);
    let journal = std::sync::Arc::clone(&dash.host.host_state.journal);
    let busy = journal.jobs_of("q-1").await.unwrap()[0].id;
    running(&dash, busy).await;
    // The only worker is busy: this one waits in the queue.
    assert_eq!(dash.host.send("pull_request", "q-2", &payload).await.0, 202);
    let waiting = journal.jobs_of("q-2").await.unwrap()[0].id;
    assert_eq!(journal.job(waiting).await.unwrap().state, JobState::Queued);

    let page = format!("/dashboard/jobs/{waiting}");
    let token = form_token(&dash.ok(&page).await);
    let cancelled = dash
        .post_form(
            &format!("{page}/cancel"),
            &[("csrf", &token)],
            From::SamePage,
        )
        .await;
    let shown = dash.result_page(cancelled).await;
    assert!(shown.contains("as the job starts"), "{shown}");
    assert_eq!(journal.job(waiting).await.unwrap().state, JobState::Queued);
    // The busy one, cancelled too, frees the worker; the queued one then starts already
    // cancelled, so its plugin is told who at once (and could post its final status).
    let cancelled = dash
        .post_form(
            &format!("/dashboard/jobs/{busy}/cancel"),
            &[("csrf", &token)],
            From::SamePage,
        )
        .await;
    dash.result_page(cancelled).await;
    dash.host.ended_jobs("q-1", 1).await;
    let ended = dash.host.ended_jobs("q-2", 1).await;
    assert_eq!(
        (ended[0].state, ended[0].attempts),
        (JobState::Failed, 1),
        "{ended:?}"
    );
    let (_, log) = dash.host.get(&dash.host.log_path(waiting).await).await;
    assert!(log.contains("cancelled: cancelled by token:alice"), "{log}");
    dash.host.stop().await;
}

#[tokio::test]
async fn an_environments_sticky_lock_is_unlocked_after_its_name_is_typed() {
    use switchyard::journal::StickyLockRow;
    let mut dash = Dash::start("", EVENT_LOG.to_owned())
        .await
        .signed_in()
        .await;
    let journal = std::sync::Arc::clone(&dash.host.host_state.journal);
    let lock = StickyLockRow {
        repository: "octo/one".to_owned(),
        environment: "staging".to_owned(),
        owner: "github:501".to_owned(),
        owner_login: "writer".to_owned(),
        reason: "testing <b>the</b> migration".to_owned(),
        at: "2026-01-01T00:00:00Z".to_owned(),
    };
    journal.take_sticky_lock(lock).await.unwrap();
    let page = dash.ok("/dashboard/deployments").await;
    assert!(
        page.contains("<td>octo/one</td><td>staging</td><td>github:501 (writer)</td><td>testing &#60;b&#62;the&#60;/b&#62; migration</td>")
            || page.contains("<td>octo/one</td><td>staging</td><td>github:501 (writer)</td><td>testing &lt;b&gt;the&lt;/b&gt; migration</td>"),
        "{page}"
    );
    assert!(!page.contains("<b>the</b>"), "a reason is escaped");
    assert!(page.contains(">Unlock</button>"), "{page}");

    let form = [
        ("repository", "octo/one"),
        ("environment", "staging"),
        ("confirm", "staging"),
    ];
    refusals(
        &mut dash,
        "/dashboard/locks/unlock",
        &form,
        "/dashboard/deployments",
    )
    .await;
    assert_eq!(
        journal.sticky_locks(None).await.unwrap().len(),
        1,
        "still held"
    );

    let token = form_token(&dash.ok("/dashboard/deployments").await);
    let typo = dash
        .post_form(
            "/dashboard/locks/unlock",
            &[
                ("csrf", &token),
                ("repository", "octo/one"),
                ("environment", "staging"),
                ("confirm", "stagin"),
            ],
            From::SamePage,
        )
        .await;
    let shown = dash.result_page(typo).await;
    assert!(
        shown.contains("not unlocked: the name typed to confirm"),
        "{shown}"
    );
    assert_eq!(journal.sticky_locks(None).await.unwrap().len(), 1);

    let unlocked = dash
        .post_form(
            "/dashboard/locks/unlock",
            &[
                ("csrf", &token),
                ("repository", "octo/one"),
                ("environment", "staging"),
                ("confirm", "staging"),
            ],
            From::SamePage,
        )
        .await;
    let shown = dash.result_page(unlocked).await;
    assert!(
        shown.contains("unlocked (held by github:501 (writer)"),
        "{shown}"
    );
    assert!(journal.sticky_locks(None).await.unwrap().is_empty());
    assert!(shown.contains("No environment is locked with"), "{shown}");
    let trail = journal
        .actions(switchyard::journal::ActionFilter {
            limit: 10,
            action: Some("unlock".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let actors: Vec<(&str, &str)> = trail
        .iter()
        .map(|a| (a.actor.as_str(), a.outcome.as_str()))
        .collect();
    assert_eq!(actors.len(), 2, "{actors:?}");
    assert!(
        actors.iter().all(|(actor, _)| *actor == "token:alice"),
        "{actors:?}"
    );
    dash.host.stop().await;
}
