//! "Sign in with GitHub" over HTTP against the fake GitHub: the web sign-in with its state and
//! PKCE, the person's token used once and kept nowhere, who may sign in (an organization's
//! members, `allowed_users`) and the refresh that signs out a person removed from the
//! organization, what each person sees, and an action allowed to a writer and refused to a
//! reader.

use std::time::Duration;

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
        Self::start_with("").await
    }

    async fn start_with(dashboard: &str) -> Self {
        let github = FakeGitHub::start().await;
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
                 allowed_organizations = [\"octo\"]\nallowed_users = [{}]\nadmins = [{}]\n\
                 github_refresh_secs = 1\n{dashboard}",
                file.display().to_string(),
                GUEST.1,
                ADMIN.1,
            ),
            HostSpec {
                plugins: EVENT_LOG.to_owned(),
                github_url: Some(github.url().to_owned()),
                github_token: Some(HOST_TOKEN),
                github: format!("web_url = \"{}\"\n", github.url()),
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

#[tokio::test]
async fn a_replay_is_allowed_to_a_writer_and_refused_to_a_reader() {
    let people = People::start().await;
    let mut payload = pull_request("octo/one", "change");
    payload["repository"]["private"] = serde_json::json!(false);
    assert_eq!(
        people
            .dash
            .host
            .send("pull_request", "pr-1", &payload)
            .await
            .0,
        202
    );
    people.dash.host.ended_jobs("pr-1", 1).await;
    people
        .github
        .set_role("octo/one", MONA.0, MONA.1, "write", "write");
    people
        .github
        .set_role("octo/one", HUBOT.0, HUBOT.1, "read", "read");
    let mut outcomes = Vec::new();
    for id in [MONA.1, HUBOT.1] {
        let browser = people.signed_in(id).await;
        let (status, page) = people.page(&browser, "/dashboard/deliveries/pr-1").await;
        assert_eq!(status, 200, "{page}");
        let response = people
            .dash
            .http
            .post(format!(
                "{}/dashboard/deliveries/pr-1/replay",
                people.dash.host.base
            ))
            .header("cookie", browser.header())
            .header("origin", &people.dash.host.base)
            .header("sec-fetch-site", "same-origin")
            .form(&[("csrf", form_token(&page).as_str()), ("plugin", "")])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 303);
        let trail = people
            .dash
            .host
            .host_state
            .journal
            .actions(switchyard::journal::ActionFilter {
                limit: 1,
                ..Default::default()
            })
            .await
            .unwrap();
        outcomes.push((trail[0].actor.clone(), trail[0].outcome.clone()));
    }
    assert_eq!(outcomes[0].0, "github:101 (mona)");
    assert!(
        outcomes[0].1.starts_with("replayed as new jobs"),
        "{outcomes:?}"
    );
    assert_eq!(outcomes[1].0, "github:102 (hubot)");
    assert_eq!(
        outcomes[1].1,
        "refused: needs the write permission on octo/one; github:102 (hubot) has read"
    );
    people.dash.host.stop().await;
}
