//! A recording fake GitHub on 127.0.0.1. It validates request bodies against GitHub's own
//! OpenAPI schemas (`fixtures/github-rest-subset.json` and `fixtures/github-rest-operations.json`,
//! built into the crate), answering 422 as GitHub would for a body GitHub would reject, and can
//! be told to answer the next calls with errors.
//!
//! Started as a GitHub App ([`FakeGitHub::start_app`]), it checks credentials as GitHub does:
//! the App endpoints want an RS256 JWT signed with [`crate::app::TEST_APP_KEY`] whose times are
//! within GitHub's bounds on the fake's clock (which a test may set off); every other call wants
//! an installation token the fake minted, unexpired, and refuses with GitHub's 403 "Resource not
//! accessible by integration" a call outside the token's permissions or repositories.
//!
//! It also plays GitHub's web sign-in ([`FakeGitHub::set_oauth_client`],
//! [`FakeGitHub::sign_in_as`]: see `oauth`), organization membership
//! ([`FakeGitHub::set_member`]) and the primary rate limit ([`FakeGitHub::limit_rate`]).

use std::{
    collections::{BTreeMap, VecDeque},
    sync::{Arc, Mutex, OnceLock},
};

use axum::{
    Router,
    body::Bytes,
    http::{HeaderMap, Method, StatusCode, Uri},
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

mod bad_answers;
mod check_runs;
mod comments;
mod deliveries;
mod oauth;

pub use bad_answers::BadAnswer;
pub use check_runs::CheckRun;
pub use deliveries::DeliveryAttempt;

/// GitHub's request schemas and example answers for the calls the fake knows, embedded so the
/// kit reads no file at run time.
const SCHEMAS: &str = include_str!("../fixtures/github-rest-subset.json");
/// GitHub's descriptions of the App endpoints and check runs, keyed by operationId.
const APP_OPERATIONS: &str = include_str!("../fixtures/github-rest-operations.json");

/// What an installation token must hold for each operation the fake serves to one, as GitHub's
/// "Permissions required for fine-grained tokens" lists it.
const REQUIRED: [(&str, &str, &str); 14] = [
    ("orgs/check-membership-for-user", "members", "read"),
    ("pulls/get", "pull_requests", "read"),
    ("pulls/list-files", "pull_requests", "read"),
    ("repos/list-commit-statuses-for-ref", "statuses", "read"),
    ("checks/list-for-ref", "checks", "read"),
    ("repos/get-branch", "contents", "read"),
    ("repos/compare-commits", "contents", "read"),
    ("issues/create-comment", "issues", "write"),
    ("reactions/create-for-issue-comment", "issues", "write"),
    ("create_status", "statuses", "write"),
    ("create_deployment", "deployments", "write"),
    ("create_deployment_status", "deployments", "write"),
    ("checks/create", "checks", "write"),
    ("checks/update", "checks", "write"),
];

/// GitHub's answer to a call its token may not make.
pub const NOT_ACCESSIBLE: &str = "Resource not accessible by integration";

/// The calls the fake validates and answers, by operation name and path pattern.
const OPERATIONS: [(&str, &[&str]); 15] = [
    ("repos/get-branch", &["repos", "*", "*", "branches", "*"]),
    (
        "orgs/check-membership-for-user",
        &["orgs", "*", "members", "*"],
    ),
    (
        "repos/get-collaborator-permission-level",
        &["repos", "*", "*", "collaborators", "*", "permission"],
    ),
    ("pulls/get", &["repos", "*", "*", "pulls", "*"]),
    (
        "pulls/list-files",
        &["repos", "*", "*", "pulls", "*", "files"],
    ),
    (
        "repos/list-commit-statuses-for-ref",
        &["repos", "*", "*", "commits", "*", "statuses"],
    ),
    (
        "checks/list-for-ref",
        &["repos", "*", "*", "commits", "*", "check-runs"],
    ),
    (
        "repos/compare-commits",
        &["repos", "*", "*", "compare", "*"],
    ),
    (
        "issues/create-comment",
        &["repos", "*", "*", "issues", "*", "comments"],
    ),
    (
        "reactions/create-for-issue-comment",
        &["repos", "*", "*", "issues", "comments", "*", "reactions"],
    ),
    ("checks/create", &["repos", "*", "*", "check-runs"]),
    ("checks/update", &["repos", "*", "*", "check-runs", "*"]),
    ("create_status", &["repos", "*", "*", "statuses", "*"]),
    ("create_deployment", &["repos", "*", "*", "deployments"]),
    (
        "create_deployment_status",
        &["repos", "*", "*", "deployments", "*", "statuses"],
    ),
];

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// `POST`, `GET`, ...
    pub method: String,
    /// The URL path, e.g. `/repos/octo/app/deployments/1/statuses`.
    pub path: String,
    /// The query string without its `?`, e.g. `per_page=100&cursor=v1_1002`; empty when none.
    pub query: String,
    /// Header names in lower case; a repeated header's values joined with `, `.
    pub headers: BTreeMap<String, String>,
    /// The JSON body, or `null` when there was none or it was not JSON.
    pub body: Value,
    /// The GitHub operation the path matched (`create_status`, `create_deployment`,
    /// `create_deployment_status`, and GitHub's operationIds: `checks/create`,
    /// `apps/create-installation-access-token`, ...; `git` for a git fetch), if any.
    pub operation: Option<&'static str>,
    /// The status the fake answered: 201 for a call GitHub accepts, 422 for a body it would
    /// refuse, 404 for an endpoint the fake does not know, or a status from
    /// [`FakeGitHub::answer_next`].
    pub status: u16,
}

/// An answer to give instead of the default success.
struct Scripted {
    status: u16,
    headers: Vec<(String, String)>,
    body: Value,
}

#[derive(Default)]
struct State {
    requests: Vec<Recorded>,
    script: VecDeque<Scripted>,
    violations: Vec<String>,
    /// Where to send webhooks, and the secret to sign them with.
    webhooks: Option<(String, String)>,
    /// Deployments created, in order: deployment `n` is at `n - 1`.
    deployments: Vec<Value>,
    sent: u64,
    /// Set when the fake is a GitHub App.
    app: Option<HostState>,
    /// The fake's own base URL, for the `Link` headers of paged lists.
    url: String,
    /// Every attempt to deliver a webhook, in order.
    hook_deliveries: Vec<DeliveryAttempt>,
    next_delivery_id: i64,
    /// Check runs created: run `n` is at `n - 1`.
    check_runs: Vec<CheckRun>,
    /// Bad answers for the next calls to these paths, in order.
    bad_answers: Vec<(String, BadAnswer)>,
    /// Roles given by [`FakeGitHub::set_role`].
    collaborators: Vec<comments::Collaborator>,
    /// Pull requests opened by [`FakeGitHub::open_pull_request`], as `pulls/get` answers them.
    pulls: Vec<Value>,
    /// The files each pull request changes, by [`FakeGitHub::set_pull_request_files`]:
    /// (repository, number, file names).
    pull_files: Vec<(String, u64, Vec<String>)>,
    streamed: bad_answers::Streamed,
    /// Commit states set by [`FakeGitHub::set_commit_state`], `(repo, sha, context, state)`
    /// in order; once one is set, deployments' `required_contexts` are enforced.
    commit_states: Vec<(String, String, String, String)>,
    /// Heads behind their base, set by [`FakeGitHub::set_behind`]: `(repo, head sha, behind_by)`.
    behind: Vec<(String, String, u64)>,
    /// Branches' heads set by [`FakeGitHub::set_branch`]: `(repo, branch, sha)`.
    branches: Vec<(String, String, String)>,
    /// GitHub's web sign-in: the OAuth client, users, codes, people's tokens, memberships.
    oauth: oauth::OAuth,
    /// API calls left before GitHub's primary rate limit answers; `None`: no limit.
    rate_limit: Option<u64>,
}

/// The fake App: its installations, the tokens it minted, its clock.
#[derive(Default)]
struct HostState {
    installations: Vec<Installation>,
    tokens: Vec<MintedToken>,
    /// Seconds the fake's clock is ahead of this machine's (negative: behind).
    clock_offset: i64,
    /// How long minted tokens last, in seconds.
    token_lifetime: i64,
}

/// An installation of the fake App.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installation {
    pub id: u64,
    /// The user or organization it is installed on.
    pub account: String,
    /// `owner/repo` of each repository it may access.
    pub repositories: Vec<String>,
    /// What the App may do there, `name` to `read`/`write`/`admin`.
    pub permissions: BTreeMap<String, String>,
}

/// An installation token the fake minted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MintedToken {
    pub token: String,
    pub installation: u64,
    /// `owner/repo` of each repository it may access (the installation's when not narrowed).
    pub repositories: Vec<String>,
    /// What it may do, `name` to `read`/`write`/`admin`.
    pub permissions: BTreeMap<String, String>,
    /// Unix seconds, on the fake's clock.
    pub expires_at: i64,
    /// Whether the request narrowed it to repositories.
    pub narrowed: bool,
}

fn level(access: &str) -> u8 {
    match access {
        "read" => 1,
        "write" => 2,
        "admin" => 3,
        _ => 0,
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// A fake GitHub REST API on a free loopback port, for `[github] api_url`.
///
/// Every request is recorded ([`FakeGitHub::requests`]). `POST`s to the commit status,
/// deployment and deployment status endpoints are checked against GitHub's schema: a body
/// GitHub would refuse is answered 422 and listed in [`FakeGitHub::violations`], which a test
/// should assert is empty. Accepted calls get GitHub's example answer (201). Any other path
/// gets 404. The server stops when the value is dropped.
pub struct FakeGitHub {
    url: String,
    state: Arc<Mutex<State>>,
    server: JoinHandle<()>,
}

impl std::fmt::Debug for FakeGitHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeGitHub")
            .field("url", &self.url)
            .finish()
    }
}

impl FakeGitHub {
    /// Starts the fake on 127.0.0.1, on the current tokio runtime.
    pub async fn start() -> Self {
        Self::serve(State::default()).await
    }

    /// Starts the fake as a GitHub App whose id is [`crate::app::TEST_APP_ID`] and whose key
    /// is [`crate::app::TEST_APP_KEY`], with no installation yet ([`FakeGitHub::install`]).
    /// Tokens last an hour, as GitHub's do ([`FakeGitHub::set_token_lifetime`]).
    pub async fn start_app() -> Self {
        Self::serve(State {
            app: Some(HostState {
                token_lifetime: 3600,
                ..HostState::default()
            }),
            ..State::default()
        })
        .await
    }

    async fn serve(state: State) -> Self {
        let state = Arc::new(Mutex::new(state));
        let shared = Arc::clone(&state);
        let app = Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let state = Arc::clone(&shared);
                async move { answer(&state, method, uri, headers, body) }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("the fake GitHub binds a loopback port");
        let url = format!("http://{}", listener.local_addr().unwrap());
        state.lock().unwrap_or_else(|p| p.into_inner()).url = url.clone();
        let server = tokio::spawn(async move {
            axum::serve(listener, app)
                .await
                .expect("the fake GitHub serves");
        });
        Self { url, state, server }
    }

    /// The API's base URL, e.g. `http://127.0.0.1:40123`: the host's `[github] api_url`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Whether it was started as a GitHub App ([`FakeGitHub::start_app`]).
    pub fn is_app(&self) -> bool {
        self.state().app.is_some()
    }

    fn with_app<T>(&self, change: impl FnOnce(&mut HostState) -> T) -> T {
        let mut state = self.state();
        let app = state
            .app
            .as_mut()
            .expect("the fake GitHub was started with start_app");
        change(app)
    }

    /// Installs the App on `account` for `repositories` (`owner/repo`) with `permissions`
    /// (`("statuses", "write")`, ...). Panics unless started with [`FakeGitHub::start_app`].
    pub fn install(
        &self,
        id: u64,
        account: &str,
        repositories: &[&str],
        permissions: &[(&str, &str)],
    ) {
        let installation = Installation {
            id,
            account: account.to_owned(),
            repositories: repositories.iter().map(|r| (*r).to_owned()).collect(),
            permissions: permissions
                .iter()
                .map(|(name, access)| ((*name).to_owned(), (*access).to_owned()))
                .collect(),
        };
        self.with_app(|app| {
            app.installations.retain(|i| i.id != id);
            app.installations.push(installation);
        });
    }

    /// Uninstalls the App from installation `id`: its tokens stop working.
    pub fn uninstall(&self, id: u64) {
        self.with_app(|app| app.installations.retain(|i| i.id != id));
    }

    /// Sets the fake's clock `secs` ahead of this machine's (behind when negative): what a host
    /// with a skewed clock sees. Answers carry it in `Date`.
    pub fn set_clock_offset(&self, secs: i64) {
        self.with_app(|app| app.clock_offset = secs);
    }

    /// Tokens minted from now on last `secs`.
    pub fn set_token_lifetime(&self, secs: i64) {
        self.with_app(|app| app.token_lifetime = secs);
    }

    /// Expires every token minted so far, as time passing would.
    pub fn expire_tokens(&self) {
        self.with_app(|app| {
            let now = unix_now() + app.clock_offset;
            for token in &mut app.tokens {
                token.expires_at = token.expires_at.min(now);
            }
        });
    }

    /// The installation tokens minted, in order.
    pub fn minted_tokens(&self) -> Vec<MintedToken> {
        self.with_app(|app| app.tokens.clone())
    }

    /// The next call to a known operation gets this answer instead of success, after its body
    /// passed the schema (of webhook deliveries' calls, only a redelivery); calls queue up, one
    /// answer each.
    pub fn answer_next(&self, status: u16, headers: &[(&str, &str)], body: Value) {
        self.state().script.push_back(Scripted {
            status,
            headers: headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            body,
        });
    }

    /// The next call to `path` (the URL's path, without its query), whatever its method and
    /// credentials, gets `answer`: what GitHub should never send. Calls queue up, one answer
    /// each; the call is recorded with the answer's status.
    pub fn answer_badly(&self, path: &str, answer: BadAnswer) {
        self.state().bad_answers.push((path.to_owned(), answer));
    }

    /// Bytes of [`BadAnswer::Huge`] answers sent so far: what the client read, and what the
    /// sockets between held.
    pub fn bytes_streamed(&self) -> u64 {
        let streamed = &self.state().streamed;
        streamed.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// From now on, like GitHub with a webhook configured, answer a created deployment (or
    /// deployment status) by POSTing a `deployment` (or `deployment_status`) webhook to `url`,
    /// signed with `secret`. A webhook the receiver does not accept is a violation.
    pub fn send_webhooks_to(&self, url: &str, secret: &str) {
        self.state().webhooks = Some((url.to_owned(), secret.to_owned()));
    }

    /// Delivers `payload` as `event` to `hook`'s webhook as GitHub would: a new GUID, POSTed
    /// signed to the target of [`FakeGitHub::send_webhooks_to`], the attempt recorded as `OK`,
    /// `Invalid HTTP Response: CODE` or `failed to connect` (the receiver down). `hook` is
    /// `app/hook`, `repos/OWNER/REPO/hooks/ID` or `orgs/ORG/hooks/ID`. Returns the GUID.
    pub async fn deliver(&self, hook: &str, event: &str, payload: &Value) -> String {
        let guid = uuid::Uuid::new_v4().to_string();
        deliveries::deliver(&self.state, hook, &guid, event, payload, false).await;
        guid
    }

    /// Records an attempt to deliver `guid` without sending anything: what GitHub lists after
    /// a delivery it gave up on though the receiver got it (`timed out`), say. Returns the
    /// attempt's id.
    pub fn record_delivery(
        &self,
        hook: &str,
        guid: &str,
        event: &str,
        payload: &Value,
        (status, status_code): (&str, u16),
    ) -> i64 {
        deliveries::record(
            &mut self.state(),
            DeliveryAttempt {
                id: 0,
                hook: hook.to_owned(),
                guid: guid.to_owned(),
                event: event.to_owned(),
                action: payload["action"].as_str().map(str::to_owned),
                status: status.to_owned(),
                status_code,
                redelivery: false,
                delivered_at: unix_now(),
                payload: payload.clone(),
            },
        )
    }

    /// Every attempt to deliver to `hook`, oldest first, redeliveries included.
    pub fn hook_deliveries(&self, hook: &str) -> Vec<DeliveryAttempt> {
        let state = self.state();
        let attempts = state.hook_deliveries.iter().filter(|a| a.hook == hook);
        attempts.cloned().collect()
    }

    /// The check runs created on `repo` (`owner/name`), in order, as the requests left them.
    pub fn check_runs(&self, repo: &str) -> Vec<CheckRun> {
        let state = self.state();
        let runs = state.check_runs.iter();
        let runs = runs.filter(|r| r.repository.eq_ignore_ascii_case(repo));
        runs.cloned().collect()
    }

    /// Every request received, in order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.state().requests.clone()
    }

    /// Gives `login` (GitHub's numeric id `id`) the role `role` on `repository`: `read`,
    /// `triage`, `write`, `maintain`, `admin`, or a custom role's name built on `base`. The
    /// collaborator permission call answers as GitHub does for it; a login given no role gets
    /// GitHub's 404.
    pub fn set_role(&self, repository: &str, login: &str, id: u64, role: &str, base: &str) {
        let mut state = self.state();
        state.collaborators.retain(|c| {
            !(c.repository.eq_ignore_ascii_case(repository) && c.login.eq_ignore_ascii_case(login))
        });
        state.collaborators.push(comments::Collaborator {
            repository: repository.to_owned(),
            login: login.to_owned(),
            id,
            role: role.to_owned(),
            base: base.to_owned(),
        });
    }

    /// Makes the fake an OAuth client's GitHub (a GitHub App's or an OAuth App's client id and
    /// secret), for GitHub's web sign-in.
    pub fn set_oauth_client(&self, client_id: &str, secret: &str) {
        self.state().oauth.client = Some((client_id.to_owned(), secret.to_owned()));
    }

    /// A user GitHub knows, `login` with numeric id `id`.
    pub fn add_user(&self, login: &str, id: u64) {
        let users = &mut self.state().oauth.users;
        users.retain(|u| u.id != id);
        users.push(oauth::User {
            login: login.to_owned(),
            id,
        });
    }

    /// The authorize page answers at once for the user with numeric id `id` (as if they were
    /// signed in to GitHub and had authorized the App before); `None`: for nobody.
    pub fn sign_in_as(&self, id: Option<u64>) {
        self.state().oauth.signing_in = id;
    }

    /// Makes `login` a member of `organization`, or (`false`) no longer one.
    pub fn set_member(&self, organization: &str, login: &str, member: bool) {
        let members = &mut self.state().oauth.members;
        members.retain(|(org, who)| {
            !(org.eq_ignore_ascii_case(organization) && who.eq_ignore_ascii_case(login))
        });
        if member {
            members.push((organization.to_owned(), login.to_owned()));
        }
    }

    /// GitHub's primary rate limit: `calls` more API calls are answered (the web sign-in's
    /// `/login/oauth/*` and `GET /user`, the person's own, do not count), then every one gets GitHub's 403 "API rate limit
    /// exceeded" with `x-ratelimit-remaining: 0`; `None` lifts it.
    pub fn limit_rate(&self, calls: Option<u64>) {
        self.state().rate_limit = calls;
    }

    /// The tokens the code exchange gave people, in order.
    pub fn persons_tokens(&self) -> Vec<String> {
        let oauth = &self.state().oauth;
        oauth
            .tokens
            .iter()
            .map(|(token, _)| token.clone())
            .collect()
    }

    /// The `scope` each authorize request asked for (empty when none), in order.
    pub fn scopes_asked(&self) -> Vec<String> {
        self.state().oauth.scopes.clone()
    }

    /// Opens pull request `number` on `repository` with head `head_sha` in `head_repository`
    /// (another repository: a fork), as `pulls/get` answers it; called again, moves its head
    /// (a push).
    pub fn open_pull_request(
        &self,
        repository: &str,
        number: u64,
        head_sha: &str,
        head_repository: &str,
    ) {
        let pull = comments::pull(repository, number, head_sha, head_repository);
        let mut state = self.state();
        state.pulls.retain(|p| {
            !(p["number"] == pull["number"] && p["base"]["repo"] == pull["base"]["repo"])
        });
        state.pulls.push(pull);
    }

    /// The files pull request `number` of `repository` changes, as `pulls/list-files` answers
    /// them (paged by `per_page` and `page`); none until set.
    pub fn set_pull_request_files(&self, repository: &str, number: u64, files: &[&str]) {
        let mut state = self.state();
        state
            .pull_files
            .retain(|(repo, n, _)| !(repo == repository && *n == number));
        let files = files.iter().map(|f| (*f).to_owned()).collect();
        state
            .pull_files
            .push((repository.to_owned(), number, files));
    }

    /// The requests to one operation (`create_status`, `create_deployment`,
    /// `create_deployment_status`), in order.
    pub fn calls(&self, operation: &str) -> Vec<Recorded> {
        let requests = &self.state().requests;
        let calls = requests.iter().filter(|r| r.operation == Some(operation));
        calls.cloned().collect()
    }

    /// The bodies of the deployment statuses created for deployment `id` of `repo`
    /// (`owner/name`), in order: `state`, `description`, `log_url`, ... as sent. Only calls
    /// that succeeded count, as on GitHub; [`FakeGitHub::requests`] has them all.
    pub fn deployment_statuses(&self, repo: &str, id: u64) -> Vec<Value> {
        let path = format!("/repos/{repo}/deployments/{id}/statuses");
        self.bodies_posted_to(&path)
    }

    /// The bodies of the commit statuses created for `sha` of `repo` (`owner/name`), in order;
    /// only calls that succeeded count.
    pub fn commit_statuses(&self, repo: &str, sha: &str) -> Vec<Value> {
        self.bodies_posted_to(&format!("/repos/{repo}/statuses/{sha}"))
    }

    fn bodies_posted_to(&self, path: &str) -> Vec<Value> {
        let requests = &self.state().requests;
        let posted = requests
            .iter()
            .filter(|r| r.method == "POST" && r.path == path && (200..300).contains(&r.status));
        posted.map(|r| r.body.clone()).collect()
    }

    /// Sets `context`'s state on `sha` of `repo`, as a CI posting a status would, and from then
    /// on answers a deployment whose `required_contexts` are not all `success` on its `ref`
    /// with GitHub's 409.
    pub fn set_commit_state(&self, repo: &str, sha: &str, context: &str, state: &str) {
        self.state().commit_states.push((
            repo.to_owned(),
            sha.to_owned(),
            context.to_owned(),
            state.to_owned(),
        ));
    }

    /// Makes `repos/get-branch` of `repo`'s `branch` answer with head `sha` (a push to it);
    /// unknown branches are 404.
    pub fn set_branch(&self, repo: &str, branch: &str, sha: &str) {
        let mut state = self.state();
        state
            .branches
            .retain(|(r, b, _)| !(r == repo && b == branch));
        state
            .branches
            .push((repo.to_owned(), branch.to_owned(), sha.to_owned()));
    }

    /// Makes `repos/compare-commits` of `repo` answer that `head_sha` is `behind_by` commits
    /// behind the base it is compared with (by default a head is 1 ahead and 0 behind).
    pub fn set_behind(&self, repo: &str, head_sha: &str, behind_by: u64) {
        let mut state = self.state();
        state
            .behind
            .retain(|(r, sha, _)| !(r == repo && sha == head_sha));
        state
            .behind
            .push((repo.to_owned(), head_sha.to_owned(), behind_by));
    }

    /// What GitHub would have refused: bodies that fail its schema, and webhooks the
    /// receiver did not accept. Assert this stays empty.
    pub fn violations(&self) -> Vec<String> {
        self.state().violations.clone()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A test that panicked while holding the lock must not hide its own failure.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Drop for FakeGitHub {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn operation(path: &str) -> Option<&'static str> {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    OPERATIONS.iter().find_map(|(name, pattern)| {
        let matches = pattern.len() == segments.len()
            && pattern
                .iter()
                .zip(&segments)
                .all(|(p, s)| *p == "*" || p == s);
        matches.then_some(*name)
    })
}

fn schemas() -> &'static Value {
    static SCHEMAS_PARSED: OnceLock<Value> = OnceLock::new();
    SCHEMAS_PARSED
        .get_or_init(|| serde_json::from_str(SCHEMAS).expect("the embedded schemas are JSON"))
}

fn app_operations() -> &'static Value {
    static PARSED: OnceLock<Value> = OnceLock::new();
    PARSED.get_or_init(|| {
        serde_json::from_str(APP_OPERATIONS).expect("the embedded operations are JSON")
    })
}

/// The request schema of a known operation.
fn request_schema(operation: &str) -> &'static Value {
    match schemas().get(operation) {
        Some(known) => &known["schema"],
        None => &app_operations()[operation]["request_schema"],
    }
}

/// GitHub's example answer to a known operation, and its status.
fn example(operation: &str) -> (StatusCode, Value) {
    if let Some(known) = schemas().get(operation) {
        return (StatusCode::CREATED, known["example_response"].clone());
    }
    let responses = &app_operations()[operation]["responses"];
    for status in ["201", "200"] {
        if let Some(answer) = responses.get(status) {
            let status = StatusCode::from_bytes(status.as_bytes()).expect("a status");
            return (status, answer["example"].clone());
        }
    }
    panic!("the fake GitHub has no example answer for {operation:?}")
}

/// Why GitHub would refuse `body` as a request to `operation` (`create_status`,
/// `create_deployment`, `create_deployment_status`, `checks/create`,
/// `apps/create-installation-access-token`): empty when it would accept it.
///
/// # Panics
/// For an operation the fake does not know.
pub fn schema_errors(operation: &str, body: &Value) -> Vec<String> {
    static VALIDATORS: OnceLock<BTreeMap<&'static str, jsonschema::Validator>> = OnceLock::new();
    let validators = VALIDATORS.get_or_init(|| {
        // A GET has no body to check.
        let names = OPERATIONS
            .iter()
            .map(|(name, _)| *name)
            .filter(|name| !request_schema(name).is_null())
            .chain(["apps/create-installation-access-token"]);
        names
            .map(|name| {
                let validator = jsonschema::validator_for(request_schema(name))
                    .expect("the embedded schemas compile");
                (name, validator)
            })
            .collect()
    });
    let validator = validators
        .get(operation)
        .unwrap_or_else(|| panic!("the fake GitHub has no schema for {operation:?}"));
    validator.iter_errors(body).map(|e| e.to_string()).collect()
}

fn json_answer(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

fn answer(
    shared: &Arc<Mutex<State>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_owned();
    let query = uri.query().unwrap_or_default().to_owned();
    let raw = body;
    let body: Value = serde_json::from_slice(&raw).unwrap_or(Value::Null);
    let operation = operation(&path);
    let mut recorded_headers = BTreeMap::<String, String>::new();
    for (name, value) in &headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        recorded_headers
            .entry(name.as_str().to_owned())
            .and_modify(|v| *v = format!("{v}, {value}"))
            .or_insert(value);
    }
    let mut state = shared.lock().unwrap_or_else(|p| p.into_inner());
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let hook = deliveries::split_hook(&segments);
    let bad = state.bad_answers.iter().position(|(p, _)| *p == path);
    let bad = bad.map(|at| state.bad_answers.remove(at).1);
    let authorization = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let (operation, response) = match (state.app.is_some(), hook) {
        _ if bad.is_some() => {
            let answer = bad.expect("a bad answer");
            (operation, bad_answers::respond(answer, &state.streamed))
        }
        (app, Some((hook, rest))) if app == (hook == "app/hook") => {
            let post = method == Method::POST;
            let operation = deliveries::operation(&hook, rest, post);
            let authorization = headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            // As an App, the JWT, as on every App endpoint; else some token.
            let refused = match app {
                true => check_app_jwt(&state, authorization)
                    .err()
                    .map(|message| github_error(StatusCode::UNAUTHORIZED, &message)),
                false => authorization
                    .is_empty()
                    .then(|| github_error(StatusCode::UNAUTHORIZED, "Requires authentication")),
            };
            let response = match (operation, rest, refused) {
                (None, _, _) => github_error(StatusCode::NOT_FOUND, "Not Found"),
                (Some(_), _, Some(refused)) => refused,
                (Some(op), ["deliveries"], None) => deliveries::list(&mut state, op, &hook, &query),
                (Some(_), [_, _, _], None) if !state.script.is_empty() => {
                    scripted(state.script.pop_front().expect("a scripted answer"))
                }
                (Some(_), [_, id, _], None) => deliveries::redeliver(shared, &mut state, &hook, id),
                (Some(_), _, None) => github_error(StatusCode::NOT_FOUND, "Not Found"),
            };
            (operation, response)
        }
        _ if counted(&path) && state.rate_limit == Some(0) => (operation, rate_limited()),
        _ if path == "/login/oauth/authorize" && method == Method::GET => {
            (None, oauth::authorize(&mut state, &query))
        }
        _ if path == "/login/oauth/access_token" && method == Method::POST => {
            (None, oauth::access_token(&mut state, &raw))
        }
        _ if path == "/user" && method == Method::GET => (
            Some("users/get-authenticated"),
            oauth::user(&state, &headers),
        ),
        // A person's token is for `GET /user` only: the host asks everything else as itself.
        _ if oauth::persons_token(&state, authorization) => (
            operation,
            github_error(
                StatusCode::FORBIDDEN,
                "the fake GitHub refuses a person's sign-in token outside GET /user",
            ),
        ),
        (true, _) => app_respond(shared, &mut state, &method, &uri, &headers, &body),
        (false, _) => (
            operation,
            respond(shared, &mut state, &method, &path, &query, &body, operation),
        ),
    };
    if counted(&path)
        && let Some(left) = state.rate_limit.as_mut()
    {
        *left = left.saturating_sub(1);
    }
    state.requests.push(Recorded {
        method: method.to_string(),
        path,
        query,
        headers: recorded_headers,
        body,
        operation,
        status: response.status().as_u16(),
    });
    response
}

/// The answer GitHub would give; for a created deployment (status), the webhook it would send.
fn respond(
    shared: &Arc<Mutex<State>>,
    state: &mut State,
    method: &Method,
    path: &str,
    query: &str,
    body: &Value,
    operation: Option<&'static str>,
) -> Response {
    let expected = match operation {
        Some("checks/update") => Method::PATCH,
        Some(
            "repos/get-collaborator-permission-level"
            | "pulls/get"
            | "pulls/list-files"
            | "repos/list-commit-statuses-for-ref"
            | "checks/list-for-ref"
            | "repos/compare-commits"
            | "repos/get-branch"
            | "orgs/check-membership-for-user",
        ) => Method::GET,
        _ => Method::POST,
    };
    let Some(name) = operation.filter(|_| *method == expected) else {
        return json_answer(StatusCode::NOT_FOUND, json!({"message": "Not Found"}));
    };
    if *method == Method::GET {
        if let Some(answer) = state.script.pop_front() {
            return scripted(answer);
        }
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        if name == "orgs/check-membership-for-user" {
            return oauth::membership(state, segments[1], segments[3]);
        }
        let repo = format!("{}/{}", segments[1], segments[2]);
        return match name {
            "pulls/get" => comments::pull_request(state, &repo, segments[4]),
            "pulls/list-files" => comments::pull_files(state, &repo, segments[4], query),
            "repos/list-commit-statuses-for-ref" => statuses_for_ref(state, &repo, segments[4]),
            "checks/list-for-ref" => check_runs::list_for_ref(state, &repo, segments[4], query),
            "repos/compare-commits" => compare(state, &repo, segments[4]),
            "repos/get-branch" => branch(state, &repo, segments[4]),
            _ => comments::permission(state, &repo, segments[4]),
        };
    }
    let errors = schema_errors(name, body);
    if !errors.is_empty() {
        state
            .violations
            .push(format!("{name}: {errors:?} in {body}"));
        let message = format!("Invalid request.\n\n{}", errors.join("\n"));
        return json_answer(
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"message": message}),
        );
    }
    if let Some(answer) = state.script.pop_front() {
        return scripted(answer);
    }
    let repo = path
        .split('/')
        .skip(2)
        .take(2)
        .collect::<Vec<_>>()
        .join("/");
    match name {
        "checks/create" => return check_runs::create(state, repo, body),
        "checks/update" => {
            let id = path.rsplit('/').next().unwrap_or_default();
            return check_runs::update(state, &repo, id, body);
        }
        _ => {}
    }
    let (status, mut answer) = example(name);
    let repository = json!({"full_name": repo, "name": repo.split('/').nth(1)});
    let hook = match name {
        "create_deployment" => {
            if let Some(refusal) = required_contexts_refusal(state, &repo, body) {
                return json_answer(StatusCode::CONFLICT, json!({"message": refusal}));
            }
            let id = state.deployments.len() as u64 + 1;
            for (key, value) in [
                ("id", json!(id)),
                ("sha", body["ref"].clone()),
                ("ref", body["ref"].clone()),
                ("task", body.get("task").cloned().unwrap_or(json!("deploy"))),
                ("payload", body.get("payload").cloned().unwrap_or(json!({}))),
                (
                    "environment",
                    body.get("environment")
                        .cloned()
                        .unwrap_or(json!("production")),
                ),
                (
                    "description",
                    body.get("description").cloned().unwrap_or(Value::Null),
                ),
                (
                    "creator",
                    json!({"login": "switchyard[bot]", "id": 41898282}),
                ),
            ] {
                answer[key] = value;
            }
            state.deployments.push(answer.clone());
            Some((
                "deployment",
                json!({"action": "created", "deployment": answer, "repository": repository}),
            ))
        }
        "create_deployment_status" => {
            let id: usize = path
                .split('/')
                .nth(5)
                .and_then(|id| id.parse().ok())
                .unwrap_or(0);
            let deployment = state.deployments.get(id.wrapping_sub(1)).cloned().unwrap_or_else(|| {
                json!({"id": id, "sha": "0000000000000000000000000000000000000000", "ref": "main", "environment": "production"})
            });
            for key in ["state", "description", "log_url", "environment"] {
                answer[key] = body.get(key).cloned().unwrap_or(Value::Null);
            }
            Some((
                "deployment_status",
                json!({
                    "action": "created", "deployment_status": answer, "deployment": deployment,
                    "repository": repository
                }),
            ))
        }
        _ => None,
    };
    if let (Some((event, payload)), Some((url, secret))) = (hook, state.webhooks.clone()) {
        state.sent += 1;
        let delivery = format!("fake-github-{}-{}", std::process::id(), state.sent);
        let state = Arc::clone(shared);
        tokio::spawn(async move {
            let status = crate::host::post_signed(&url, &secret, event, &delivery, &payload).await;
            if status != Ok(202) {
                let mut state = state.lock().unwrap_or_else(|p| p.into_inner());
                state
                    .violations
                    .push(format!("the {event} webhook {delivery} got {status:?}"));
            }
        });
    }
    json_answer(status, answer)
}

/// `repos/get-branch`: GitHub's example, with the head [`FakeGitHub::set_branch`] set.
fn branch(state: &State, repo: &str, name: &str) -> Response {
    let Some((_, _, sha)) = state
        .branches
        .iter()
        .find(|(r, b, _)| r == repo && b == name)
    else {
        return json_answer(
            StatusCode::NOT_FOUND,
            json!({"message": "Branch not found"}),
        );
    };
    let (status, mut answer) = example("repos/get-branch");
    answer["name"] = json!(name);
    answer["commit"]["sha"] = json!(sha);
    json_answer(status, answer)
}

/// `repos/compare-commits` of `base...head`: GitHub's example, with the head's standing.
fn compare(state: &State, repo: &str, basehead: &str) -> Response {
    let head = basehead.split("...").nth(1).unwrap_or_default();
    let behind_by = state
        .behind
        .iter()
        .find(|(r, sha, _)| r == repo && sha == head)
        .map_or(0, |(_, _, behind)| *behind);
    let (status, mut answer) = example("repos/compare-commits");
    answer["ahead_by"] = json!(1);
    answer["behind_by"] = json!(behind_by);
    answer["status"] = json!(if behind_by == 0 { "ahead" } else { "diverged" });
    json_answer(status, answer)
}

/// GitHub's 409 message when a deployment's required contexts are not all green on its ref
/// (only once [`FakeGitHub::set_commit_state`] was called).
fn required_contexts_refusal(state: &State, repo: &str, body: &Value) -> Option<String> {
    if state.commit_states.is_empty() {
        return None;
    }
    let git_ref = body["ref"].as_str().unwrap_or_default();
    let required = body["required_contexts"].as_array()?;
    let failing: Vec<&str> = required
        .iter()
        .filter_map(Value::as_str)
        .filter(|context| {
            let latest = state
                .commit_states
                .iter()
                .rev()
                .find(|(r, sha, c, _)| r == repo && sha == git_ref && c == context);
            latest.is_none_or(|(_, _, _, s)| s != "success")
        })
        .collect();
    (!failing.is_empty()).then(|| {
        format!(
            "Conflict: Commit status checks failed for {git_ref}. {}",
            failing.join(", ")
        )
    })
}

/// Whether a call counts against the host's rate limit: not the web sign-in's, nor `GET /user`
/// (made with the person's token: their budget).
fn counted(path: &str) -> bool {
    !path.starts_with("/login/oauth/") && path != "/user"
}

/// GitHub's answer once the primary rate limit is spent: 403, no calls left, the reset an
/// hour away.
fn rate_limited() -> Response {
    let mut response = github_error(
        StatusCode::FORBIDDEN,
        "API rate limit exceeded for installation ID 1.",
    );
    let reset = (unix_now() + 3600).to_string();
    for (name, value) in [
        ("x-ratelimit-limit", "5000".to_owned()),
        ("x-ratelimit-remaining", "0".to_owned()),
        ("x-ratelimit-reset", reset),
    ] {
        let value = value.parse().expect("a header value");
        response.headers_mut().insert(name, value);
    }
    response
}

/// A scripted answer, as [`FakeGitHub::answer_next`] set it.
fn scripted(scripted: Scripted) -> Response {
    let status = StatusCode::from_u16(scripted.status).expect("a valid scripted status");
    let mut response = json_answer(status, scripted.body);
    for (name, value) in scripted.headers {
        let name = axum::http::HeaderName::from_bytes(name.as_bytes())
            .expect("a valid scripted header name");
        let value = value.parse().expect("a valid scripted header value");
        response.headers_mut().insert(name, value);
    }
    response
}

/// GitHub's `repos/list-commit-statuses-for-ref` answer: the statuses created for `sha`
/// (only those GitHub accepted), newest first.
fn statuses_for_ref(state: &State, repo: &str, sha: &str) -> Response {
    let path = format!("/repos/{repo}/statuses/{sha}");
    let statuses: Vec<Value> = state
        .requests
        .iter()
        .enumerate()
        .filter(|(_, r)| r.operation == Some("create_status") && r.status < 300)
        .filter(|(_, r)| r.path.eq_ignore_ascii_case(&path))
        .rev()
        .map(|(id, r)| {
            json!({
                "id": id + 1,
                "state": r.body["state"],
                "context": r.body.get("context").cloned().unwrap_or(json!("default")),
                "description": r.body.get("description").cloned().unwrap_or(Value::Null),
                "target_url": r.body.get("target_url").cloned().unwrap_or(Value::Null),
            })
        })
        .collect();
    json_answer(StatusCode::OK, Value::Array(statuses))
}

/// An error answer as GitHub gives it.
fn github_error(status: StatusCode, message: &str) -> Response {
    json_answer(
        status,
        json!({"message": message, "documentation_url": "https://docs.github.com/rest", "status": status.as_str()}),
    )
}

/// How the fake answers as a GitHub App: credentials first, then the call. Every answer carries
/// the fake's clock in `Date`.
fn app_respond(
    shared: &Arc<Mutex<State>>,
    state: &mut State,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Value,
) -> (Option<&'static str>, Response) {
    let app = state.app.as_ref().expect("app mode");
    let now = unix_now() + app.clock_offset;
    let path = uri.path();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let authorization = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let (operation, mut response) = match segments.as_slice() {
        [_, repo, ..] if repo.ends_with(".git") => (
            Some("git"),
            git_answer(state, &segments, authorization, now),
        ),
        ["app", ..] | ["repos", _, _, "installation"] | ["orgs", _, "installation"] => {
            app_endpoint(state, method, &segments, authorization, body, now)
        }
        _ => {
            let operation = operation(path);
            let response = match installation_token(state, authorization, now) {
                Err(refused) => refused,
                Ok(token) => match permitted(&token, operation, &segments) {
                    Err(refused) => refused,
                    Ok(()) => respond(
                        shared,
                        state,
                        method,
                        path,
                        uri.query().unwrap_or_default(),
                        body,
                        operation,
                    ),
                },
            };
            (operation, response)
        }
    };
    let date = std::time::UNIX_EPOCH + std::time::Duration::from_secs(now.max(0) as u64);
    if let Ok(date) = httpdate::fmt_http_date(date).parse() {
        response.headers_mut().insert("date", date);
    }
    (operation, response)
}

/// The installation token a call carries, if the fake minted it and it is good now.
// The error is the answer itself, made once per refused call.
#[allow(clippy::result_large_err)]
fn installation_token(
    state: &State,
    authorization: &str,
    now: i64,
) -> Result<MintedToken, Response> {
    let app = state.app.as_ref().expect("app mode");
    let bad = || github_error(StatusCode::UNAUTHORIZED, "Bad credentials");
    let (scheme, token) = authorization.split_once(' ').ok_or_else(bad)?;
    if !(scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("token")) {
        return Err(bad());
    }
    let minted = app
        .tokens
        .iter()
        .find(|t| t.token == token.trim())
        .ok_or_else(bad)?;
    let installed = app
        .installations
        .iter()
        .any(|i| i.id == minted.installation);
    if minted.expires_at <= now || !installed {
        return Err(bad());
    }
    Ok(minted.clone())
}

/// Whether `token` may make the call: the operation's permission, on a repository it covers.
#[allow(clippy::result_large_err)]
fn permitted(
    token: &MintedToken,
    operation: Option<&'static str>,
    segments: &[&str],
) -> Result<(), Response> {
    let required = REQUIRED
        .iter()
        .find(|(op, _, _)| Some(*op) == operation)
        .map(|(_, name, access)| (*name, *access));
    let repo = match segments {
        ["repos", owner, repo, ..] => Some(format!("{owner}/{repo}")),
        _ => None,
    };
    let covered = repo.as_ref().is_none_or(|repo| {
        token
            .repositories
            .iter()
            .any(|r| r.eq_ignore_ascii_case(repo))
    });
    let allowed = required.is_none_or(|(name, access)| {
        token
            .permissions
            .get(name)
            .is_some_and(|have| level(have) >= level(access))
    });
    if covered && allowed {
        return Ok(());
    }
    let mut refused = github_error(StatusCode::FORBIDDEN, NOT_ACCESSIBLE);
    if let Some((name, access)) = required
        && let Ok(value) = format!("{name}={access}").parse()
    {
        refused
            .headers_mut()
            .insert("x-accepted-github-permissions", value);
    }
    Err(refused)
}

/// A git fetch from `/{owner}/{repo}.git/...`: the fake serves no repository, but checks the
/// credentials git sends as GitHub would (basic, `x-access-token` and an installation token
/// with `contents: read` on the repository) and answers 404 once they pass.
fn git_answer(state: &State, segments: &[&str], authorization: &str, now: i64) -> Response {
    use base64::Engine as _;
    let repo = format!("{}/{}", segments[0], segments[1].trim_end_matches(".git"));
    let basic = authorization
        .split_once(' ')
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
        .and_then(|(_, encoded)| {
            base64::engine::general_purpose::STANDARD
                .decode(encoded.trim())
                .ok()
        })
        .and_then(|decoded| String::from_utf8(decoded).ok());
    let token = match basic
        .as_deref()
        .and_then(|b| b.strip_prefix("x-access-token:"))
    {
        Some(token) => format!("Bearer {token}"),
        None => return github_error(StatusCode::UNAUTHORIZED, "Bad credentials"),
    };
    let minted = match installation_token(state, &token, now) {
        Ok(minted) => minted,
        Err(refused) => return refused,
    };
    let covered = minted
        .repositories
        .iter()
        .any(|r| r.eq_ignore_ascii_case(&repo));
    let reads = minted
        .permissions
        .get("contents")
        .is_some_and(|have| level(have) >= level("read"));
    if !(covered && reads) {
        return github_error(StatusCode::FORBIDDEN, NOT_ACCESSIBLE);
    }
    github_error(
        StatusCode::NOT_FOUND,
        "Not Found (the fake GitHub checks git's credentials but serves no repository)",
    )
}

/// The App endpoints, which want the App's JWT.
fn app_endpoint(
    state: &mut State,
    method: &Method,
    segments: &[&str],
    authorization: &str,
    body: &Value,
    now: i64,
) -> (Option<&'static str>, Response) {
    let claims = app_jwt(authorization, now);
    let (operation, answer) = match (method, segments) {
        (&Method::GET, ["app"]) => (Some("apps/get-authenticated"), app_itself as AppAnswer),
        (&Method::GET, ["app", "installations"]) => (
            Some("apps/list-installations"),
            list_installations as AppAnswer,
        ),
        (&Method::GET, ["repos", _, _, "installation"]) => (
            Some("apps/get-repo-installation"),
            repo_installation as AppAnswer,
        ),
        (&Method::GET, ["orgs", _, "installation"]) => (
            Some("apps/get-org-installation"),
            org_installation as AppAnswer,
        ),
        (&Method::POST, ["app", "installations", _, "access_tokens"]) => (
            Some("apps/create-installation-access-token"),
            mint_token as AppAnswer,
        ),
        _ => return (None, github_error(StatusCode::NOT_FOUND, "Not Found")),
    };
    if let Err(message) = claims {
        return (operation, github_error(StatusCode::UNAUTHORIZED, &message));
    }
    (operation, answer(state, segments, body, now))
}

/// Whether `authorization` carries a JWT of the fake's App, good at `now`; else GitHub's
/// message.
fn app_jwt(authorization: &str, now: i64) -> Result<crate::app::Claims, String> {
    authorization
        .split_once(' ')
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .ok_or_else(|| "A JSON web token could not be decoded".to_owned())
        .and_then(|(_, jwt)| crate::app::verify_jwt(jwt.trim()))
        .and_then(|claims| {
            crate::app::check_times(&claims, now)?;
            match claims.iss == crate::app::TEST_APP_ID.to_string() {
                true => Ok(claims),
                false => Err("Integration not found".to_owned()),
            }
        })
}

/// [`app_jwt`] on the fake's clock.
fn check_app_jwt(state: &State, authorization: &str) -> Result<(), String> {
    let offset = state.app.as_ref().map_or(0, |app| app.clock_offset);
    app_jwt(authorization, unix_now() + offset).map(drop)
}

type AppAnswer = fn(&mut State, &[&str], &Value, i64) -> Response;

fn app_itself(_: &mut State, _: &[&str], _: &Value, _: i64) -> Response {
    let (_, mut app) = example("apps/get-authenticated");
    app["id"] = json!(crate::app::TEST_APP_ID);
    app["slug"] = json!("switchyard-test");
    app["name"] = json!("Switchyard test App");
    json_answer(StatusCode::OK, app)
}

fn installation_json(installation: &Installation) -> Value {
    let (_, list) = example("apps/list-installations");
    let mut answer = list[0].clone();
    answer["id"] = json!(installation.id);
    answer["app_id"] = json!(crate::app::TEST_APP_ID);
    answer["account"]["login"] = json!(installation.account);
    answer["permissions"] = json!(installation.permissions);
    answer["repository_selection"] = json!("selected");
    answer
}

fn list_installations(state: &mut State, _: &[&str], _: &Value, _: i64) -> Response {
    let app = state.app.as_ref().expect("app mode");
    let list: Vec<Value> = app.installations.iter().map(installation_json).collect();
    json_answer(StatusCode::OK, Value::Array(list))
}

fn repo_installation(state: &mut State, segments: &[&str], _: &Value, _: i64) -> Response {
    let app = state.app.as_ref().expect("app mode");
    let repo = format!("{}/{}", segments[1], segments[2]);
    let found = app
        .installations
        .iter()
        .find(|i| i.repositories.iter().any(|r| r.eq_ignore_ascii_case(&repo)));
    match found {
        Some(installation) => json_answer(StatusCode::OK, installation_json(installation)),
        None => github_error(StatusCode::NOT_FOUND, "Not Found"),
    }
}

fn org_installation(state: &mut State, segments: &[&str], _: &Value, _: i64) -> Response {
    let app = state.app.as_ref().expect("app mode");
    let found = app
        .installations
        .iter()
        .find(|i| i.account.eq_ignore_ascii_case(segments[1]));
    match found {
        Some(installation) => json_answer(StatusCode::OK, installation_json(installation)),
        None => github_error(StatusCode::NOT_FOUND, "Not Found"),
    }
}

/// `POST /app/installations/{id}/access_tokens`, narrowed as asked, within the installation.
fn mint_token(state: &mut State, segments: &[&str], body: &Value, now: i64) -> Response {
    let operation = "apps/create-installation-access-token";
    let body = if body.is_null() {
        json!({})
    } else {
        body.clone()
    };
    let errors = schema_errors(operation, &body);
    if !errors.is_empty() {
        state
            .violations
            .push(format!("{operation}: {errors:?} in {body}"));
        return github_error(StatusCode::UNPROCESSABLE_ENTITY, "Invalid request.");
    }
    let app = state.app.as_mut().expect("app mode");
    let id: u64 = segments[2].parse().unwrap_or(0);
    let Some(installation) = app.installations.iter().find(|i| i.id == id).cloned() else {
        return github_error(StatusCode::NOT_FOUND, "Not Found");
    };
    let repositories = match body["repositories"].as_array() {
        Some(names) => {
            let mut repositories = Vec::new();
            for name in names.iter().filter_map(Value::as_str) {
                let found = installation.repositories.iter().find(|r| {
                    r.split('/')
                        .nth(1)
                        .is_some_and(|n| n.eq_ignore_ascii_case(name))
                });
                match found {
                    Some(repo) => repositories.push(repo.clone()),
                    None => {
                        return github_error(
                            StatusCode::UNPROCESSABLE_ENTITY,
                            "There is at least one repository that does not exist or is not accessible to the parent installation.",
                        );
                    }
                }
            }
            repositories
        }
        None => installation.repositories.clone(),
    };
    let permissions: BTreeMap<String, String> = match body["permissions"].as_object() {
        Some(asked) => {
            let mut granted = BTreeMap::new();
            for (name, access) in asked {
                let access = access.as_str().unwrap_or_default();
                let have = installation.permissions.get(name).map_or(
                    // Every installation can read metadata.
                    if name == "metadata" { 1 } else { 0 },
                    |have| level(have),
                );
                if level(access) == 0 || level(access) > have {
                    return github_error(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "The permissions requested are not granted to this installation.",
                    );
                }
                granted.insert(name.clone(), access.to_owned());
            }
            granted
        }
        None => installation.permissions.clone(),
    };
    // `ghs_` and 36 letters and digits, like GitHub's.
    let random = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let token = format!("ghs_{}", &random[..36]);
    let expires_at = now + app.token_lifetime;
    let minted = MintedToken {
        token: token.clone(),
        installation: id,
        repositories: repositories.clone(),
        permissions: permissions.clone(),
        expires_at,
        narrowed: body["repositories"].is_array(),
    };
    app.tokens.push(minted);
    let (status, mut answer) = example("apps/create-installation-access-token");
    let expires = time::OffsetDateTime::from_unix_timestamp(expires_at)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default();
    let template = answer["repositories"][0].clone();
    answer["token"] = json!(token);
    answer["expires_at"] = json!(expires);
    answer["permissions"] = json!(permissions);
    answer["repository_selection"] = json!("selected");
    answer["repositories"] = repositories
        .iter()
        .map(|full_name| {
            let mut repo = template.clone();
            repo["full_name"] = json!(full_name);
            repo["name"] = json!(full_name.split('/').nth(1));
            repo
        })
        .collect();
    json_answer(status, answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fake_refuses_what_github_would() {
        assert!(
            schema_errors(
                "create_status",
                &json!({"state": "success", "context": "ci"})
            )
            .is_empty()
        );
        assert!(!schema_errors("create_status", &json!({"state": "bogus"})).is_empty());
        assert!(!schema_errors("create_status", &json!({"context": "no state"})).is_empty());
        assert!(
            !schema_errors("create_deployment", &json!({"environment": "production"})).is_empty()
        );
        assert!(!schema_errors("create_deployment_status", &json!({"state": "done"})).is_empty());
        assert_eq!(operation("/repos/o/r/statuses/abc"), Some("create_status"));
        assert_eq!(
            operation("/repos/o/r/deployments/5/statuses"),
            Some("create_deployment_status")
        );
        assert_eq!(operation("/repos/o/r/pulls"), None);
    }

    #[tokio::test]
    async fn calls_are_recorded_with_their_answers_and_only_accepted_statuses_count() {
        let github = FakeGitHub::start().await;
        let http = reqwest::Client::new();
        let post = |path: &str, body: Value| {
            let request = http.post(format!("{}{path}", github.url())).json(&body);
            async move { request.send().await.unwrap().status().as_u16() }
        };
        let statuses = "/repos/o/r/deployments/3/statuses";
        assert_eq!(post(statuses, json!({"state": "in_progress"})).await, 201);
        assert_eq!(post(statuses, json!({"state": "done"})).await, 422);
        github.answer_next(
            502,
            &[("retry-after", "1")],
            json!({"message": "Bad Gateway"}),
        );
        assert_eq!(post(statuses, json!({"state": "success"})).await, 502);
        assert_eq!(post(statuses, json!({"state": "success"})).await, 201);
        assert_eq!(post("/repos/o/r/pulls", json!({})).await, 404);

        let answered: Vec<u16> = github.requests().iter().map(|r| r.status).collect();
        assert_eq!(answered, [201, 422, 502, 201, 404]);
        let created: Vec<Value> = github
            .deployment_statuses("o/r", 3)
            .into_iter()
            .map(|s| s["state"].clone())
            .collect();
        assert_eq!(created, ["in_progress", "success"]);
        assert_eq!(github.calls("create_deployment_status").len(), 4);
        let violations = github.violations();
        assert_eq!(violations.len(), 1, "{violations:?}");
        assert!(violations[0].starts_with("create_deployment_status"));
    }

    /// OpenAPI 3.0's `nullable: true` in JSON Schema's words: `type: [T, "null"]`.
    fn nullable_as_json_schema(schema: &mut Value) {
        match schema {
            Value::Object(object) => {
                if object.remove("nullable") == Some(json!(true))
                    && let Some(Value::String(kind)) = object.get("type").cloned()
                {
                    object.insert("type".into(), json!([kind, "null"]));
                }
                object.values_mut().for_each(nullable_as_json_schema);
            }
            Value::Array(items) => items.iter_mut().for_each(nullable_as_json_schema),
            _ => {}
        }
    }

    #[tokio::test]
    async fn deliveries_are_listed_as_github_describes_them_paged_and_redelivered() {
        let github = FakeGitHub::start().await;
        // Nothing listens on port 9: every attempt fails to connect.
        github.send_webhooks_to("http://127.0.0.1:9/hook", "a-secret-of-some-length");
        let hook = "repos/o/r/hooks/3";
        let mut guids = Vec::new();
        for n in 0..3 {
            let payload = json!({"action": "opened", "number": n});
            guids.push(github.deliver(hook, "pull_request", &payload).await);
        }
        github.record_delivery(hook, &guids[0], "pull_request", &json!({}), ("OK", 200));
        let http = reqwest::Client::new();
        let get = |query: String| {
            let request = http
                .get(format!("{}/{hook}/deliveries?{query}", github.url()))
                .bearer_auth("a-token");
            async move {
                let answer = request.send().await.unwrap();
                let link = answer
                    .headers()
                    .get("link")
                    .map(|v| v.to_str().unwrap().to_owned());
                (answer.json::<Value>().await.unwrap(), link)
            }
        };
        let (page, link) = get("per_page=3".into()).await;
        let mut schema =
            app_operations()["repos/list-webhook-deliveries"]["responses"]["200"]["schema"].clone();
        nullable_as_json_schema(&mut schema);
        let validator = jsonschema::validator_for(&schema).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&page)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{errors:?} in {page}");
        let listed: Vec<(&str, &str)> = page
            .as_array()
            .unwrap()
            .iter()
            .map(|a| (a["guid"].as_str().unwrap(), a["status"].as_str().unwrap()))
            .collect();
        assert_eq!(
            listed,
            [
                (guids[0].as_str(), "OK"),
                (guids[2].as_str(), "failed to connect"),
                (guids[1].as_str(), "failed to connect"),
            ],
            "newest first"
        );
        let link = link.unwrap();
        let cursor = link
            .split("cursor=")
            .nth(1)
            .unwrap()
            .split('>')
            .next()
            .unwrap();
        let (rest, last) = get(format!("per_page=3&cursor={cursor}")).await;
        assert_eq!(rest[0]["guid"], json!(guids[0]));
        assert_eq!(last, None, "the last page has no next");

        let id = rest[0]["id"].as_i64().unwrap();
        let answer = http
            .post(format!("{}/{hook}/deliveries/{id}/attempts", github.url()))
            .bearer_auth("a-token")
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status().as_u16(), 202);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while github.hook_deliveries(hook).len() < 5 {
            assert!(
                std::time::Instant::now() < deadline,
                "no redelivery recorded"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let again = github.hook_deliveries(hook).pop().unwrap();
        assert_eq!(
            (again.guid.as_str(), again.redelivery),
            (guids[0].as_str(), true)
        );
        assert_eq!(again.payload, json!({"action": "opened", "number": 0}));

        // An unknown parameter or a page too large is what GitHub would refuse.
        let (refused, _) = get("per_page=500".into()).await;
        assert_eq!(refused["message"], "Validation Failed");
        assert_eq!(github.violations().len(), 1, "{:?}", github.violations());
    }

    #[tokio::test]
    async fn a_webhook_the_receiver_refuses_is_a_violation() {
        let github = FakeGitHub::start().await;
        // Port 9 (discard) has no listener on loopback: the delivery fails.
        github.send_webhooks_to(
            "http://127.0.0.1:9/event_handler",
            "a-secret-of-some-length",
        );
        let answer = reqwest::Client::new()
            .post(format!("{}/repos/o/r/deployments", github.url()))
            .json(&json!({"ref": "main", "environment": "staging"}))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status().as_u16(), 201);
        let deployment: Value = answer.json().await.unwrap();
        assert_eq!(
            (deployment["id"].clone(), deployment["environment"].clone()),
            (json!(1), json!("staging"))
        );
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while github.violations().is_empty() {
            assert!(
                std::time::Instant::now() < deadline,
                "no violation recorded"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert!(
            github.violations()[0].starts_with("the deployment webhook"),
            "{:?}",
            github.violations()
        );
    }
}
