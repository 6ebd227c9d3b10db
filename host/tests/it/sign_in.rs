//! "Sign in with GitHub" over HTTP against the fake GitHub: the web sign-in with its state and
//! PKCE, the person's token used once and kept nowhere, who may sign in (an organization's
//! members, `allowed_users`) and the refresh that signs out a person removed from the
//! organization, what each person sees, and an action allowed to a writer and refused to a
//! reader; and, in Chromium, the same flows as a person sees them.

use std::time::Duration;

use fantoccini::Locator;

use crate::{
    dashboard::{Dash, pull_request},
    support::{EVENT_LOG, FakeGitHub, HostSpec},
};

const CLIENT_ID: &str = "Iv1.switchyardtest";
const CLIENT_SECRET: &str = "c0ffee5ecret0f7he5w1tchyardapp";
const HOST_TOKEN: &str = "ghp_hostidentitytoken0123456789";

/// People GitHub knows: (login, numeric id).
const MONA: (&str, u64) = ("mona", 101);
const HUBOT: (&str, u64) = ("hubot", 102);
const OUTSIDER: (&str, u64) = ("outsider", 103);
const GUEST: (&str, u64) = ("guest", 104);
const ADMIN: (&str, u64) = ("root", 105);

/// A host whose dashboard signs people in with the fake GitHub: members of `octo`, the guest
/// by id, the admin by id; a refresh every second.
struct People {
    dash: Dash,
    github: FakeGitHub,
    _secret: tempfile::TempDir,
}

/// A browser's cookie jar for one person: the cookies the host set, by name.
#[derive(Default, Clone)]
struct Browser {
    cookies: Vec<(String, String)>,
}

impl Browser {
    fn header(&self) -> String {
        let pairs: Vec<String> = self
            .cookies
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect();
        pairs.join("; ")
    }

    fn keep(&mut self, response: &reqwest::Response) {
        for value in response.headers().get_all("set-cookie") {
            let text = value.to_str().unwrap();
            let (pair, _) = text.split_once(';').unwrap_or((text, ""));
            let (name, value) = pair.split_once('=').unwrap();
            self.cookies.retain(|(n, _)| n != name);
            if !value.is_empty() && !text.contains("Max-Age=0") {
                self.cookies.push((name.to_owned(), value.to_owned()));
            }
        }
    }
}

impl People {
    async fn start() -> Self {
        Self::start_with(1, "").await
    }

    /// With `github_refresh_secs = refresh` and `dashboard`'s other keys.
    async fn start_with(refresh: u64, dashboard: &str) -> Self {
        Self::start_as(FakeGitHub::start().await, refresh, dashboard).await
    }

    /// Against `github` (a token's GitHub, or an App's).
    async fn start_as(github: FakeGitHub, refresh: u64, dashboard: &str) -> Self {
        let app = github.is_app();
        github.set_oauth_client(CLIENT_ID, CLIENT_SECRET);
        for (login, id) in [MONA, HUBOT, OUTSIDER, GUEST, ADMIN] {
            github.add_user(login, id);
        }
        github.set_member("octo", MONA.0, true);
        github.set_member("octo", HUBOT.0, true);
        let secret = tempfile::tempdir().unwrap();
        let file = secret.path().join("client-secret");
        std::fs::write(&file, CLIENT_SECRET).unwrap();
        let dash = Dash::start_with(
            &format!(
                "github_client_id = \"{CLIENT_ID}\"\ngithub_client_secret_file = {:?}\n\
                 allowed_organizations = [\"octo\"]\nallowed_users = [{}, {}]\nadmins = [{}]\n\
                 github_refresh_secs = {refresh}\n{dashboard}",
                file.display().to_string(),
                GUEST.1,
                ADMIN.1,
                ADMIN.1,
            ),
            HostSpec {
                plugins: EVENT_LOG.to_owned(),
                github_url: Some(github.url().to_owned()),
                github_token: (!app).then_some(HOST_TOKEN),
                github: format!("web_url = \"{}\"\n", github.url()),
                app,
                ..HostSpec::default()
            },
        )
        .await;
        Self {
            dash,
            github,
            _secret: secret,
        }
    }

    async fn get(&self, browser: &Browser, url: &str) -> reqwest::Response {
        let url = match url.starts_with("http") {
            true => url.to_owned(),
            false => format!("{}{url}", self.dash.host.base),
        };
        let mut request = self.dash.http.get(url);
        if !browser.cookies.is_empty() {
            request = request.header("cookie", browser.header());
        }
        request.send().await.unwrap()
    }

    /// A page's status and text, for `browser`.
    async fn page(&self, browser: &Browser, path: &str) -> (u16, String) {
        let response = self.get(browser, path).await;
        (response.status().as_u16(), response.text().await.unwrap())
    }

    /// The first step: the host's redirect to GitHub's authorize page, its state cookie kept.
    async fn begin(&self, browser: &mut Browser, next: &str) -> String {
        let path = format!("/dashboard/sign-in/github?next={next}");
        let response = self.get(browser, &path).await;
        assert_eq!(response.status().as_u16(), 303);
        browser.keep(&response);
        response.headers()["location"].to_str().unwrap().to_owned()
    }

    /// GitHub's answer to the authorize page, for the user it signs in as: the callback URL.
    async fn at_github(&self, authorize: &str) -> String {
        let response = self.get(&Browser::default(), authorize).await;
        assert_eq!(response.status().as_u16(), 302, "{authorize}");
        response.headers()["location"].to_str().unwrap().to_owned()
    }

    /// The whole sign-in of the person with numeric id `id`, in `browser`: the callback's
    /// answer (its cookies kept).
    async fn sign_in(&self, browser: &mut Browser, id: u64) -> reqwest::Response {
        self.github.sign_in_as(Some(id));
        let authorize = self.begin(browser, "/dashboard/jobs").await;
        let callback = self.at_github(&authorize).await;
        let response = self.get(browser, &callback).await;
        browser.keep(&response);
        response
    }

    /// A browser signed in as `id`.
    async fn signed_in(&self, id: u64) -> Browser {
        let mut browser = Browser::default();
        let response = self.sign_in(&mut browser, id).await;
        assert_eq!(response.status().as_u16(), 303);
        assert_eq!(response.headers()["location"], "/dashboard/jobs");
        browser
    }

    /// Posts a dashboard action's form from `browser`'s session, as its page would (the form
    /// token read off `page`); returns the answer's status.
    async fn post_form(
        &self,
        browser: &Browser,
        page: &str,
        path: &str,
        fields: &[(&str, &str)],
    ) -> u16 {
        let token = form_token(page);
        let mut form = vec![("csrf", token.as_str())];
        form.extend_from_slice(fields);
        let response = self
            .dash
            .http
            .post(format!("{}{path}", self.dash.host.base))
            .header("cookie", browser.header())
            .header("origin", &self.dash.host.base)
            .header("sec-fetch-site", "same-origin")
            .form(&form)
            .send()
            .await
            .unwrap();
        response.status().as_u16()
    }

    /// The last `limit` entries of the audit trail, newest first: (who, outcome).
    async fn trail(&self, limit: usize) -> Vec<(String, String)> {
        let filter = switchyard::journal::ActionFilter {
            limit,
            ..Default::default()
        };
        let actions = self.dash.host.host_state.journal.actions(filter).await;
        actions
            .unwrap()
            .into_iter()
            .map(|action| (action.actor, action.outcome))
            .collect()
    }

    /// In Chromium: the sign-in page, and its "Sign in with GitHub" clicked; GitHub signs in
    /// whoever `FakeGitHub::sign_in_as` names. The page it leads to is the caller's to wait for.
    async fn click_sign_in(&self, chromium: &crate::browser::Browser) {
        let client = &chromium.client;
        let base = &self.dash.host.base;
        client.goto(&format!("{base}/dashboard")).await.unwrap();
        chromium.click("#sign-in-github").await;
    }

    /// In Chromium: signed in with the button as `person`, the header naming them.
    async fn signed_in_chromium(&self, chromium: &crate::browser::Browser, person: (&str, u64)) {
        self.github.sign_in_as(Some(person.1));
        self.click_sign_in(chromium).await;
        let client = &chromium.client;
        let signed_in = client
            .wait()
            .at_most(Duration::from_secs(30))
            .for_element(Locator::Id("signed-in"))
            .await;
        let Ok(signed_in) = signed_in else {
            let url = client.current_url().await.unwrap();
            let shown = client.source().await.unwrap();
            panic!("not signed in: at {url}: {shown}");
        };
        assert_eq!(signed_in.text().await.unwrap(), person.0);
    }
}

/// In Chromium: signed out with the header's button, back on the sign-in page.
async fn sign_out_chromium(chromium: &crate::browser::Browser) {
    chromium.click("form.who button").await;
    chromium
        .client
        .wait()
        .at_most(Duration::from_secs(30))
        .for_element(Locator::Id("sign-in-github"))
        .await
        .unwrap();
}

/// The text of the page shown in Chromium.
async fn shown(chromium: &crate::browser::Browser) -> String {
    let text = chromium
        .client
        .execute("return document.body.innerText;", vec![]);
    text.await.unwrap().as_str().unwrap().to_owned()
}

fn query(url: &str, name: &str) -> String {
    reqwest::Url::parse(url)
        .unwrap()
        .query_pairs()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
        .unwrap_or_default()
}

#[tokio::test]
async fn a_person_signs_in_with_github_and_their_token_is_kept_nowhere() {
    let people = People::start().await;
    let mut browser = Browser::default();
    let (status, page) = people.page(&browser, "/dashboard/sign-in").await;
    assert_eq!(status, 200);
    assert!(page.contains("Sign in with GitHub"), "{page}");
    let authorize = people.begin(&mut browser, "/dashboard/jobs").await;
    // GitHub's authorize page, with the App's client id, the callback, a state, PKCE S256 and
    // no scope at all.
    assert!(
        authorize.starts_with(&format!("{}/login/oauth/authorize?", people.github.url())),
        "{authorize}"
    );
    assert_eq!(query(&authorize, "client_id"), CLIENT_ID);
    assert_eq!(
        query(&authorize, "redirect_uri"),
        format!(
            "{}/dashboard/sign-in/github/callback",
            people.dash.host.base
        )
    );
    assert_eq!(query(&authorize, "code_challenge_method"), "S256");
    assert_eq!(query(&authorize, "code_challenge").len(), 43);
    assert!(query(&authorize, "state").len() >= 43);
    assert!(!authorize.contains("scope="), "{authorize}");
    people.github.sign_in_as(Some(MONA.1));
    let callback = people.at_github(&authorize).await;
    let response = people.get(&browser, &callback).await;
    assert_eq!(response.status().as_u16(), 303);
    assert_eq!(response.headers()["location"], "/dashboard/jobs");
    browser.keep(&response);
    let session = browser
        .cookies
        .iter()
        .find(|(name, _)| name == "switchyard_session")
        .map(|(_, value)| value.clone())
        .expect("a session cookie");
    assert!(session.starts_with("github~101~mona."), "{session}");
    // The state cookie is spent.
    assert!(!browser.header().contains("switchyard_github_sign_in"));
    let (status, page) = people.page(&browser, "/dashboard/jobs").await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("mona"), "{page}");
    // The person's token: asked for once, used for GET /user, then nowhere.
    let tokens = people.github.persons_tokens();
    assert_eq!(tokens.len(), 1);
    let token = &tokens[0];
    let requests = people.github.requests();
    let with_token: Vec<String> = requests
        .iter()
        .filter(|r| r.headers.values().any(|v| v.contains(token.as_str())))
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert_eq!(with_token, ["GET /user"]);
    // Membership was asked as the host, with its own token.
    let membership: Vec<_> = requests
        .iter()
        .filter(|r| r.path == "/orgs/octo/members/mona")
        .collect();
    assert_eq!(membership.len(), 1);
    assert_eq!(membership[0].status, 204);
    assert_eq!(
        membership[0].headers["authorization"],
        format!("Bearer {HOST_TOKEN}")
    );
    assert!(!browser.header().contains(token.as_str()));
    assert!(!page.contains(token.as_str()));
    // Not in the journal's files either (the database, its WAL).
    for entry in std::fs::read_dir(people.dash.host.dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            let bytes = std::fs::read(&path).unwrap();
            let found = bytes.windows(token.len()).any(|w| w == token.as_bytes());
            assert!(!found, "the person's token is in {}", path.display());
        }
    }
    assert!(people.github.scopes_asked().iter().all(String::is_empty));
    people.dash.host.stop().await;
}

#[tokio::test]
async fn a_forged_state_and_a_code_for_another_sign_in_are_refused() {
    let people = People::start().await;
    people.github.sign_in_as(Some(MONA.1));
    // The callback in a browser that did not start the sign-in (no state cookie): refused.
    let mut starter = Browser::default();
    let authorize = people.begin(&mut starter, "/dashboard").await;
    let callback = people.at_github(&authorize).await;
    let elsewhere = Browser::default();
    let response = people.get(&elsewhere, &callback).await;
    assert_eq!(response.status().as_u16(), 403);
    let text = response.text().await.unwrap();
    assert!(text.contains("not started in this browser"), "{text}");
    // In the starting browser, with the state changed: refused.
    let forged = callback.replace(
        &format!("state={}", query(&callback, "state")),
        "state=forged",
    );
    assert_eq!(people.get(&starter, &forged).await.status().as_u16(), 403);
    // An attacker's code (of their own sign-in, its challenge theirs) injected into the
    // victim's sign-in with the victim's state: the verifier the host sends is the victim's,
    // which GitHub refuses.
    let mut attacker = Browser::default();
    let attackers = people
        .at_github(&people.begin(&mut attacker, "/dashboard").await)
        .await;
    let mut victim = Browser::default();
    let victims = people
        .at_github(&people.begin(&mut victim, "/dashboard").await)
        .await;
    let injected = victims.replace(
        &format!("code={}", query(&victims, "code")),
        &format!("code={}", query(&attackers, "code")),
    );
    let response = people.get(&victim, &injected).await;
    assert_eq!(response.status().as_u16(), 403);
    let text = response.text().await.unwrap();
    assert!(text.contains("invalid_grant"), "{text}");
    assert!(!victim.header().contains("switchyard_session"));
    // The fake refuses an exchange without the verifier, or with another: GitHub's PKCE.
    let mut browser = Browser::default();
    let callback = people
        .at_github(&people.begin(&mut browser, "/dashboard").await)
        .await;
    let code = query(&callback, "code");
    let redirect = format!(
        "{}/dashboard/sign-in/github/callback",
        people.dash.host.base
    );
    for verifier in [None, Some("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk")] {
        let mut form = vec![
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
            ("code", code.as_str()),
            ("redirect_uri", redirect.as_str()),
        ];
        form.extend(verifier.map(|v| ("code_verifier", v)));
        let answer: serde_json::Value = reqwest::Client::new()
            .post(format!("{}/login/oauth/access_token", people.github.url()))
            .header("accept", "application/json")
            .form(&form)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(answer["access_token"].is_null(), "{answer}");
        assert!(answer["error"].is_string(), "{answer}");
    }
    // Nobody was signed in by any of it.
    assert!(people.github.persons_tokens().is_empty());
    people.dash.host.stop().await;
}

#[tokio::test]
async fn only_members_and_allowed_users_sign_in_and_a_removed_member_is_signed_out() {
    let people = People::start().await;
    // Not a member of octo, not in allowed_users: told so.
    let mut outsider = Browser::default();
    let response = people.sign_in(&mut outsider, OUTSIDER.1).await;
    assert_eq!(response.status().as_u16(), 403);
    let text = response.text().await.unwrap();
    assert!(
        text.contains("outsider is not allowed to sign in to this dashboard"),
        "{text}"
    );
    assert!(!outsider.header().contains("switchyard_session"));
    assert_eq!(people.page(&outsider, "/dashboard/jobs").await.0, 303);
    // In allowed_users, a member of nothing: in.
    let guest = people.signed_in(GUEST.1).await;
    assert_eq!(people.page(&guest, "/dashboard/jobs").await.0, 200);
    // A member, then removed from the organization: out at the next refresh, and that
    // session stays ended even once they are a member again.
    let mona = people.signed_in(MONA.1).await;
    assert_eq!(people.page(&mona, "/dashboard/jobs").await.0, 200);
    people.github.set_member("octo", MONA.0, false);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let response = people.get(&mona, "/dashboard/jobs").await;
    assert_eq!(response.status().as_u16(), 303);
    assert!(
        response.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with("/dashboard/sign-in"),
    );
    people.github.set_member("octo", MONA.0, true);
    assert_eq!(people.page(&mona, "/dashboard/jobs").await.0, 303);
    // Signing in again works; the guest, in allowed_users, was never asked about.
    let again = people.signed_in(MONA.1).await;
    assert_eq!(people.page(&again, "/dashboard/jobs").await.0, 200);
    assert_eq!(people.page(&guest, "/dashboard/jobs").await.0, 200);
    let guest_asked = people
        .github
        .requests()
        .iter()
        .any(|r| r.path.ends_with("/members/guest"));
    assert!(!guest_asked);
    people.dash.host.stop().await;
}

/// The form token on a page.
fn form_token(page: &str) -> String {
    let marker = "name=\"csrf\" value=\"";
    let at = page.find(marker).expect("a form with a token") + marker.len();
    page[at..at + page[at..].find('"').unwrap()].to_owned()
}

/// A delivery `pr-1` of the public `octo/one`, its job ended; mona may write there, hubot
/// only read.
async fn a_writer_and_a_reader(people: &People) {
    deliver(people, "pr-1", "octo/one", false).await;
    people
        .github
        .set_role("octo/one", MONA.0, MONA.1, "write", "write");
    people
        .github
        .set_role("octo/one", HUBOT.0, HUBOT.1, "read", "read");
}

const REPLAY_REFUSED_TO_HUBOT: &str =
    "refused: needs the write permission on octo/one; github:102 (hubot) has read";

#[tokio::test]
async fn a_replay_is_allowed_to_a_writer_and_refused_to_a_reader() {
    let people = People::start().await;
    a_writer_and_a_reader(&people).await;
    let mut outcomes = Vec::new();
    for id in [MONA.1, HUBOT.1] {
        let browser = people.signed_in(id).await;
        let (status, page) = people.page(&browser, "/dashboard/deliveries/pr-1").await;
        assert_eq!(status, 200, "{page}");
        let replay = "/dashboard/deliveries/pr-1/replay";
        let status = people
            .post_form(&browser, &page, replay, &[("plugin", "")])
            .await;
        assert_eq!(status, 303);
        outcomes.push(people.trail(1).await.remove(0));
    }
    assert_eq!(outcomes[0].0, "github:101 (mona)");
    assert!(
        outcomes[0].1.starts_with("replayed as new jobs"),
        "{outcomes:?}"
    );
    assert_eq!(outcomes[1].0, "github:102 (hubot)");
    assert_eq!(outcomes[1].1, REPLAY_REFUSED_TO_HUBOT);
    people.dash.host.stop().await;
}

#[tokio::test]
async fn a_person_unlocks_their_own_sticky_lock_and_anothers_only_with_maintain() {
    use switchyard::journal::StickyLockRow;
    let people = People::start().await;
    deliver(&people, "pr-1", "octo/one", false).await;
    people
        .github
        .set_role("octo/one", MONA.0, MONA.1, "write", "write");
    people
        .github
        .set_role("octo/one", HUBOT.0, HUBOT.1, "maintain", "maintain");
    let journal = std::sync::Arc::clone(&people.dash.host.host_state.journal);
    for (environment, owner) in [("staging", HUBOT), ("qa", MONA)] {
        let lock = StickyLockRow {
            repository: "octo/one".to_owned(),
            environment: environment.to_owned(),
            owner: format!("github:{}", owner.1),
            owner_login: owner.0.to_owned(),
            reason: "testing".to_owned(),
            at: "2026-01-01T00:00:00Z".to_owned(),
        };
        journal.take_sticky_lock(lock).await.unwrap();
    }
    let unlock = |id: u64, environment: &'static str| {
        let people = &people;
        async move {
            let browser = people.signed_in(id).await;
            let (status, page) = people.page(&browser, "/dashboard/deployments").await;
            assert_eq!(status, 200, "{page}");
            assert!(page.contains(">Unlock</button>"), "{page}");
            let fields = [
                ("repository", "octo/one"),
                ("environment", environment),
                ("confirm", environment),
            ];
            let unlock = "/dashboard/locks/unlock";
            let status = people.post_form(&browser, &page, unlock, &fields).await;
            assert_eq!(status, 303);
            people.trail(1).await.remove(0).1
        }
    };
    // A writer may not unlock a maintainer's lock, but may unlock their own.
    let refused = unlock(MONA.1, "staging").await;
    assert!(
        refused.starts_with("not unlocked: refused: needs the maintain permission"),
        "{refused}"
    );
    assert!(unlock(MONA.1, "qa").await.starts_with("unlocked"));
    // A maintainer may unlock anyone's.
    assert!(unlock(HUBOT.1, "staging").await.starts_with("unlocked"));
    assert!(journal.sticky_locks(None).await.unwrap().is_empty());
    people.dash.host.stop().await;
}

#[tokio::test]
async fn a_replay_of_a_delivery_the_person_cannot_see_answers_as_an_unknown_one() {
    let people = People::start().await;
    deliver(&people, "public-1", "octo/one", false).await;
    deliver(&people, "secret-1", "octo/secret", true).await;
    let browser = people.signed_in(MONA.1).await;
    let (status, page) = people
        .page(&browser, "/dashboard/deliveries/public-1")
        .await;
    assert_eq!(status, 200, "{page}");
    let replay = "/dashboard/deliveries/secret-1/replay";
    let status = people
        .post_form(&browser, &page, replay, &[("plugin", "")])
        .await;
    assert_eq!(status, 404);
    let trail = people
        .dash
        .host
        .host_state
        .journal
        .actions(switchyard::journal::ActionFilter {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(
        trail.iter().all(|action| action.action != "replay"),
        "nothing said about it: {trail:?}"
    );
    people.dash.host.stop().await;
}

/// A pull request of `repository`, private or not, delivered as `id` and its job ended.
async fn deliver(people: &People, id: &str, repository: &str, private: bool) {
    let mut payload = pull_request(repository, &format!("change to {repository}"));
    payload["repository"]["private"] = serde_json::json!(private);
    assert_eq!(
        people.dash.host.send("pull_request", id, &payload).await.0,
        202
    );
    people.dash.host.ended_jobs(id, 1).await;
}

/// The repositories: one public, three private; mona reads two of them, hubot one, the guest
/// one (but GitHub's rate limit will have been spent when she asks).
const REPOSITORIES: [(&str, &str, bool); 4] = [
    ("pr-open", "octo/open", false),
    ("pr-alpha", "octo/alpha", true),
    ("pr-beta", "octo/beta", true),
    ("pr-gamma", "octo/gamma", true),
];

#[tokio::test]
async fn each_person_sees_only_the_repositories_they_can_read_within_their_call_budget() {
    let people = People::start_with(300, "").await;
    for (id, repository, private) in REPOSITORIES {
        deliver(&people, id, repository, private).await;
    }
    // An event of no repository (an App's installation event): for admins and tokens only.
    let installation = serde_json::json!({"action": "created", "installation": {"id": 7}});
    let host = &people.dash.host;
    assert_eq!(
        host.send("installation", "inst-1", &installation).await.0,
        202
    );
    host.ended_jobs("inst-1", 1).await;
    let github = &people.github;
    github.set_role("octo/alpha", MONA.0, MONA.1, "read", "read");
    github.set_role("octo/beta", MONA.0, MONA.1, "write", "write");
    github.set_role("octo/gamma", HUBOT.0, HUBOT.1, "triage", "triage");
    github.set_role("octo/alpha", GUEST.0, GUEST.1, "read", "read");
    // What the two people cost: one membership call each at sign-in, one permission call per
    // private repository each. GitHub answers exactly that many, then is rate limited.
    github.limit_rate(Some(2 + 2 * 3));
    let mona = people.signed_in(MONA.1).await;
    let hubot = people.signed_in(HUBOT.1).await;
    let admin = people.signed_in(ADMIN.1).await;
    let everyone = ["octo/open", "octo/alpha", "octo/beta", "octo/gamma"];
    for (browser, reads) in [
        (&mona, vec!["octo/open", "octo/alpha", "octo/beta"]),
        (&hubot, vec!["octo/open", "octo/gamma"]),
    ] {
        // Every list, filtered or not, and the pages of each repository, delivery and job.
        for path in [
            "/dashboard/deliveries",
            "/dashboard/jobs",
            "/dashboard/jobs?state=succeeded",
            "/dashboard/deliveries?event=pull_request",
        ] {
            let (status, page) = people.page(browser, path).await;
            assert_eq!(status, 200, "{path}: {page}");
            for repository in everyone {
                let shown = page.contains(&format!("change to {repository}"))
                    || page.contains(&format!(">{repository}<"));
                assert_eq!(shown, reads.contains(&repository), "{repository} on {path}");
            }
            assert!(!page.contains("inst-1"), "{path}");
        }
        for (id, repository, _) in REPOSITORIES {
            let expected = if reads.contains(&repository) {
                200
            } else {
                404
            };
            for path in [
                format!("/dashboard/deliveries/{id}"),
                format!("/dashboard/deliveries/{id}/payload"),
                format!("/dashboard/repositories/{repository}"),
                format!("/dashboard/deliveries?repository={repository}"),
            ] {
                let (status, page) = people.page(browser, &path).await;
                let status = match path.contains("?repository=") {
                    // A list filtered by a repository they cannot read is an empty list.
                    true if page.contains(&format!(">{repository}<")) => 200,
                    true => 404,
                    false => status,
                };
                assert_eq!(status, expected, "{path}");
            }
            let job = host.ended_jobs(id, 1).await[0].id;
            let (status, _) = people
                .page(browser, &format!("/dashboard/jobs/{job}"))
                .await;
            assert_eq!(status, expected, "job {job} of {repository}");
        }
        let (status, _) = people.page(browser, "/dashboard/deliveries/inst-1").await;
        assert_eq!(status, 404);
    }
    // Within their budget: no call was refused by the rate limit, and each person's private
    // repositories were asked about once (the pages after the first used the set).
    let requests = github.requests();
    let limited = requests.iter().filter(|r| r.status == 403).count();
    assert_eq!(limited, 0);
    let lookups = requests
        .iter()
        .filter(|r| r.path.ends_with("/permission"))
        .count();
    assert_eq!(lookups, 2 * 3);
    // The admin sees everything, the installation event included, at no call.
    let (_, page) = people.page(&admin, "/dashboard/deliveries").await;
    for repository in everyone {
        assert!(page.contains(&format!(">{repository}<")), "{repository}");
    }
    assert_eq!(
        people.page(&admin, "/dashboard/deliveries/inst-1").await.0,
        200
    );
    // The limit spent, the guest (in allowed_users: no membership call) is asked about and
    // GitHub refuses: what could not be asked stays hidden, the page still answers.
    let guest = people.signed_in(GUEST.1).await;
    let (status, page) = people.page(&guest, "/dashboard/deliveries").await;
    assert_eq!(status, 200);
    assert!(page.contains(">octo/open<"), "{page}");
    assert!(!page.contains(">octo/alpha<"), "{page}");
    let refused = github.requests().iter().filter(|r| r.status == 403).count();
    assert_eq!(refused, 3);
    people.dash.host.stop().await;
}

#[tokio::test]
async fn a_person_who_loses_read_access_loses_the_repository_at_the_next_refresh() {
    let people = People::start().await;
    deliver(&people, "pr-alpha", "octo/alpha", true).await;
    people
        .github
        .set_role("octo/alpha", MONA.0, MONA.1, "read", "read");
    let mona = people.signed_in(MONA.1).await;
    assert_eq!(
        people.page(&mona, "/dashboard/deliveries/pr-alpha").await.0,
        200
    );
    people
        .github
        .set_role("octo/alpha", MONA.0, MONA.1, "none", "none");
    // Within the refresh the set stands; after it, GitHub's answer.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        people.page(&mona, "/dashboard/deliveries/pr-alpha").await.0,
        404
    );
    let (_, page) = people.page(&mona, "/dashboard/deliveries").await;
    assert!(!page.contains(">octo/alpha<"));
    people.dash.host.stop().await;
}

/// In Chromium: a person signs in with the button, sees only their repositories on the lists,
/// and the live refresh brings them a new delivery of theirs and never one of another's; then
/// the other person, in the same browser after signing out, sees the other way round.
#[tokio::test]
async fn in_a_browser_each_person_sees_their_repositories_live() {
    let Some(browser) = crate::browser::Browser::start("sign_in::in_a_browser").await else {
        return;
    };
    let people = People::start_with(300, "").await;
    deliver(&people, "pr-alpha", "octo/alpha", true).await;
    deliver(&people, "pr-gamma", "octo/gamma", true).await;
    people
        .github
        .set_role("octo/alpha", MONA.0, MONA.1, "read", "read");
    people
        .github
        .set_role("octo/gamma", HUBOT.0, HUBOT.1, "read", "read");
    let client = &browser.client;
    let base = &people.dash.host.base;
    for (person, mine, theirs) in [
        (MONA, "octo/alpha", "octo/gamma"),
        (HUBOT, "octo/gamma", "octo/alpha"),
    ] {
        people.signed_in_chromium(&browser, person).await;
        for page in ["/dashboard/deliveries", "/dashboard/jobs"] {
            client.goto(&format!("{base}{page}")).await.unwrap();
            let shown = shown(&browser).await;
            assert!(shown.contains(mine), "{page}: {shown}");
            assert!(!shown.contains(theirs), "{page}: {shown}");
        }
        // Live: one of theirs, then one of mine; mine appears without a reload, theirs never.
        client
            .goto(&format!("{base}/dashboard/deliveries"))
            .await
            .unwrap();
        let suffix = person.1;
        deliver(&people, &format!("late-theirs-{suffix}"), theirs, true).await;
        deliver(&people, &format!("late-mine-{suffix}"), mine, true).await;
        browser
            .until(
                "the new delivery of mine, live",
                &format!("return document.body.innerHTML.includes('late-mine-{suffix}');"),
            )
            .await;
        let html: String = client
            .execute("return document.body.innerHTML;", vec![])
            .await
            .unwrap()
            .as_str()
            .unwrap()
            .to_owned();
        assert!(!html.contains(&format!("late-theirs-{suffix}")));
        sign_out_chromium(&browser).await;
    }
    browser.finish("sign-in-with-github").await;
    people.dash.host.stop().await;
}

/// In Chromium: the writer and the reader each sign in with the button and press Replay on
/// the delivery's page; the writer's replay makes a new job, the reader is told why not, and
/// the trail on the page (and in the journal) names both with their outcomes.
#[tokio::test]
async fn in_a_browser_a_replay_is_allowed_to_a_writer_and_refused_to_a_reader() {
    let Some(browser) = crate::browser::Browser::start("sign_in::in_a_browser_a_replay").await
    else {
        return;
    };
    let people = People::start_with(300, "").await;
    a_writer_and_a_reader(&people).await;
    let client = &browser.client;
    let page = format!("{}/dashboard/deliveries/pr-1", people.dash.host.base);
    let jobs = || async {
        let links = client.find_all(Locator::Css("ul.jobs a")).await.unwrap();
        links.len()
    };
    // The writer: replayed, a second job listed.
    people.signed_in_chromium(&browser, MONA).await;
    client.goto(&page).await.unwrap();
    assert_eq!(jobs().await, 1);
    browser.click("#replay-button").await;
    let notice = browser.text("action-result").await;
    assert!(
        notice.starts_with("github:101 (mona) replay: replayed as new jobs #2 (event-log)"),
        "{notice}"
    );
    assert_eq!(jobs().await, 2);
    people.dash.host.ended_jobs("pr-1", 2).await;
    sign_out_chromium(&browser).await;
    // The reader: sees the delivery and its button, and is refused; no job is made.
    people.signed_in_chromium(&browser, HUBOT).await;
    client.goto(&page).await.unwrap();
    browser.click("#replay-button").await;
    let notice = browser.text("action-result").await;
    assert_eq!(
        notice,
        format!("github:102 (hubot) replay: {REPLAY_REFUSED_TO_HUBOT}")
    );
    assert_eq!(jobs().await, 2);
    let rows: Vec<Vec<String>> = serde_json::from_value(
        client
            .execute(
                "return [...document.querySelectorAll('#audit tr.action')]\
                 .map(row => [row.cells[1].innerText, row.cells[5].innerText]);",
                vec![],
            )
            .await
            .unwrap(),
    )
    .unwrap();
    let who: Vec<&str> = rows.iter().map(|row| row[0].as_str()).collect();
    assert_eq!(who.len(), 2, "{rows:?}");
    assert!(who.contains(&"github:101 (mona)"), "{rows:?}");
    assert!(who.contains(&"github:102 (hubot)"), "{rows:?}");
    for row in &rows {
        match row[0].as_str() {
            "github:101 (mona)" => {
                assert!(row[1].starts_with("replayed as new jobs #2"), "{row:?}")
            }
            _ => assert_eq!(row[1], REPLAY_REFUSED_TO_HUBOT),
        }
    }
    let trail = people.trail(10).await;
    assert_eq!(trail.len(), 2, "{trail:?}");
    assert_eq!(
        trail[0],
        (
            "github:102 (hubot)".to_owned(),
            REPLAY_REFUSED_TO_HUBOT.to_owned()
        )
    );
    assert_eq!(trail[1].0, "github:101 (mona)");
    browser.finish("sign-in-replay-refused-to-a-reader").await;
    people.dash.host.stop().await;
}

/// In Chromium: a callback whose `state` is not the one this browser's sign-in was given (its
/// code genuine) is refused, and spends the sign-in; an outsider is shown why they may not sign
/// in; a member removed from the organization is sent to the sign-in page at the next refresh.
/// None of it is an action, so the trail stays empty.
#[tokio::test]
async fn in_a_browser_a_forged_state_an_outsider_and_a_removed_member_are_refused() {
    let Some(browser) = crate::browser::Browser::start("sign_in::in_a_browser_refused").await
    else {
        return;
    };
    let people = People::start().await;
    let client = &browser.client;
    let base = &people.dash.host.base;
    let not_signed_in = || async {
        let header = client.find(Locator::Id("signed-in")).await;
        assert!(header.is_err(), "signed in: {}", shown(&browser).await);
    };
    // A sign-in begun in this browser, held at GitHub (nobody signs in there yet): the
    // browser keeps its state cookie.
    people.github.sign_in_as(None);
    people.click_sign_in(&browser).await;
    browser
        .until(
            "GitHub's authorize page",
            "return location.pathname == '/login/oauth/authorize';",
        )
        .await;
    let authorize = client.current_url().await.unwrap().to_string();
    // Its genuine code (for this browser's PKCE challenge) with another state: refused.
    people.github.sign_in_as(Some(MONA.1));
    let callback = people.at_github(&authorize).await;
    let state = query(&callback, "state");
    client
        .goto(&callback.replace(&format!("state={state}"), "state=forged"))
        .await
        .unwrap();
    let forged = "Not signed in: this sign-in was not started in this browser, or took longer \
                  than 10 minutes.";
    assert_eq!(browser.text("problem").await, forged);
    not_signed_in().await;
    // The refusal spent the sign-in: its genuine callback no longer signs in either.
    client.goto(&callback).await.unwrap();
    assert_eq!(browser.text("problem").await, forged);
    not_signed_in().await;
    // An outsider: GitHub signs them in, the dashboard does not.
    people.github.sign_in_as(Some(OUTSIDER.1));
    people.click_sign_in(&browser).await;
    assert_eq!(
        browser.text("problem").await,
        "outsider is not allowed to sign in to this dashboard: ask its operator to add you to \
         an allowed organization or to [dashboard] allowed_users."
    );
    not_signed_in().await;
    client
        .goto(&format!("{base}/dashboard/jobs"))
        .await
        .unwrap();
    assert_eq!(
        client.current_url().await.unwrap().path(),
        "/dashboard/sign-in"
    );
    // A member signs in, then is removed from the organization: the next page after the
    // refresh is the sign-in page.
    people.signed_in_chromium(&browser, MONA).await;
    client
        .goto(&format!("{base}/dashboard/jobs"))
        .await
        .unwrap();
    assert_eq!(browser.text("signed-in").await, MONA.0);
    people.github.set_member("octo", MONA.0, false);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    client
        .goto(&format!("{base}/dashboard/jobs"))
        .await
        .unwrap();
    assert_eq!(
        client.current_url().await.unwrap().path(),
        "/dashboard/sign-in"
    );
    client
        .find(Locator::Id("sign-in-github"))
        .await
        .expect("the sign-in button");
    not_signed_in().await;
    // Only the outsider's and mona's codes were exchanged: the forged callback's never was.
    assert_eq!(people.github.persons_tokens().len(), 2);
    let trail = people.trail(10).await;
    assert!(trail.is_empty(), "{trail:?}");
    browser.finish("sign-in-refused").await;
    people.dash.host.stop().await;
}

#[tokio::test]
async fn as_a_github_app_membership_and_permissions_are_asked_with_installation_tokens() {
    let github = FakeGitHub::start_app().await;
    github.install(
        7,
        "octo",
        &["octo/alpha"],
        &[("members", "read"), ("metadata", "read")],
    );
    let people = People::start_as(github, 300, "").await;
    deliver(&people, "pr-alpha", "octo/alpha", true).await;
    people
        .github
        .set_role("octo/alpha", MONA.0, MONA.1, "read", "read");
    let mona = people.signed_in(MONA.1).await;
    assert_eq!(
        people.page(&mona, "/dashboard/deliveries/pr-alpha").await.0,
        200
    );
    // The organization's installation token, narrowed to members: read, asked whether she is a
    // member; the repository's, narrowed to metadata: read, her permission.
    let minted = people.github.minted_tokens();
    let members: Vec<_> = minted
        .iter()
        .filter(|t| t.permissions.contains_key("members"))
        .collect();
    assert_eq!(members.len(), 1);
    assert_eq!(members[0].permissions.len(), 1);
    let metadata: Vec<_> = minted
        .iter()
        .filter(|t| t.repositories == ["octo/alpha"])
        .collect();
    assert!(
        metadata
            .iter()
            .any(|t| t.permissions.keys().eq(["metadata"])),
        "{minted:?}"
    );
    let refused = people
        .github
        .requests()
        .iter()
        .filter(|r| r.status >= 400)
        .count();
    assert_eq!(refused, 0);
    people.dash.host.stop().await;
}
