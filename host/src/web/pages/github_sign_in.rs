//! "Sign in with GitHub": `GET /dashboard/sign-in/github` sends the browser to GitHub with a
//! `state` bound to it (its own cookie) and a PKCE challenge; GitHub sends it back to
//! `GET /dashboard/sign-in/github/callback`, where the state is checked, the code exchanged,
//! the person named (see `people::oauth`), and, when they may sign in, a session begins as a
//! token's does. A forged or stale state, a code GitHub refuses and a person not allowed are
//! each told so, and count against the address as wrong tokens do.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::{
    Extension,
    extract::{ConnectInfo, Query, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Redirect, Response},
};

use super::super::message::{internal_error, journal_failed, message};
use super::super::{
    WebState, auth, client,
    people::{
        Refused,
        oauth::{self, STATE_COOKIE, STATE_SECS, SignInError},
    },
};
use super::params::{Params, param};
use super::sign_in::{page, safe_next, session_cookie};
use crate::journal::unix_millis;

/// The state cookie's `Set-Cookie` value (empty with age 0: its end). Sent back on GitHub's
/// redirect, a top-level navigation, so `Lax` suffices.
fn state_cookie(value: &str, max_age: u64, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!(
        "{STATE_COOKIE}={value}; Path=/dashboard/sign-in/github; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}"
    )
}

fn with_cookie(mut response: Response, cookie: &str) -> Response {
    if let Ok(value) = HeaderValue::from_str(cookie) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

/// `GET /dashboard/sign-in/github`: to GitHub's authorize page, with a new state.
pub(in crate::web) async fn begin(
    State(state): State<WebState>,
    Query(params): Params,
) -> Response {
    let (Some(sign_in), Ok(access)) = (&state.dashboard.github_sign_in, &state.dashboard.access)
    else {
        return message(
            StatusCode::NOT_FOUND,
            "Not configured",
            "Signing in with GitHub is not configured: set [dashboard] github_client_id.",
        );
    };
    let next = safe_next(param(&params, "next"));
    let Ok((github_state, cookie)) = oauth::begin(access.key(), &next, unix_millis() / 1000) else {
        return internal_error();
    };
    let to = sign_in.authorize_url(access.key(), &github_state);
    let cookie = state_cookie(&cookie, STATE_SECS, state.dashboard.secure_cookie);
    with_cookie(Redirect::to(&to).into_response(), &cookie)
}

/// `GET /dashboard/sign-in/github/callback?code=..&state=..`: GitHub's answer.
pub(in crate::web) async fn callback(
    State(state): State<WebState>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    Query(params): Params,
) -> Response {
    let (Some(sign_in), Ok(access)) = (&state.dashboard.github_sign_in, &state.dashboard.access)
    else {
        return message(StatusCode::NOT_FOUND, "Not found", "No such page.");
    };
    let peer = peer.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |p| p.0.0.ip());
    let address = client::counted_as(state.dashboard.proxies.client(peer, &headers));
    let now = std::time::Instant::now();
    let secure = state.dashboard.secure_cookie;
    // Whatever comes of it, this sign-in's state is spent.
    let spent = state_cookie("", 0, secure);
    let refuse = |status: StatusCode, problem: String| {
        with_cookie(
            page(&state, "/dashboard".to_owned(), Some(problem), status),
            &spent,
        )
    };
    if state.dashboard.sign_ins.check(address, now).is_err() {
        tracing::warn!(%address, "dashboard sign-ins refused for a while: too many failures");
        let problem = "Too many failed sign-ins from your address: wait a minute, then try again.";
        return refuse(StatusCode::TOO_MANY_REQUESTS, problem.to_owned());
    }
    let cookie = headers
        .get(header::COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|cookies| auth::cookie(cookies, STATE_COOKIE));
    let given = param(&params, "state").unwrap_or_default();
    let next = match oauth::check_state(access.key(), cookie, given, unix_millis() / 1000) {
        Ok(next) => safe_next(Some(&next)),
        Err(error) => {
            tracing::warn!(%address, error = error.to_string(), "a GitHub sign-in refused");
            state.dashboard.sign_ins.failed(address, now);
            return refuse(StatusCode::FORBIDDEN, format!("Not signed in: {error}."));
        }
    };
    if let Some(error) = param(&params, "error") {
        // The person declined at GitHub, or GitHub refused the App's request.
        let problem = format!("GitHub did not sign you in ({error}).");
        return refuse(StatusCode::FORBIDDEN, problem);
    }
    let code = param(&params, "code").unwrap_or_default();
    let person = match sign_in.person(access.key(), given, code).await {
        Ok(person) => person,
        Err(error) => {
            tracing::warn!(%address, error = error.to_string(), "a GitHub sign-in failed");
            let status = match &error {
                SignInError::Unreachable(_) => StatusCode::BAD_GATEWAY,
                SignInError::NotConfigured(_) => StatusCode::SERVICE_UNAVAILABLE,
                SignInError::ForgedState | SignInError::Denied(_) => {
                    state.dashboard.sign_ins.failed(address, now);
                    StatusCode::FORBIDDEN
                }
            };
            return refuse(status, format!("Not signed in: {error}."));
        }
    };
    match sign_in.allowed(&*state.github, &person).await {
        Ok(()) => sign_in.confirmed(&person),
        Err(Refused::NotAllowed) => {
            tracing::warn!(%address, person = person.id, login = person.login.as_str(), "a GitHub sign-in of someone not allowed refused");
            state.dashboard.sign_ins.failed(address, now);
            let problem = format!(
                "{} is not allowed to sign in to this dashboard: ask its operator to add you to an allowed organization or to [dashboard] allowed_users.",
                person.login
            );
            return refuse(StatusCode::FORBIDDEN, problem);
        }
        Err(Refused::Unknown(_)) => {
            let problem = "GitHub could not say whether you may sign in; try again later.";
            return refuse(StatusCode::BAD_GATEWAY, problem.to_owned());
        }
    }
    state.dashboard.sign_ins.succeeded(address);
    tracing::info!(
        person = person.id,
        login = person.login.as_str(),
        "signed in to the dashboard with GitHub"
    );
    // After the person's last sign-out, even within its millisecond, or it would end this too.
    let ended = match state.journal.sessions_ended(&person.session_key()).await {
        Ok(ended) => ended,
        Err(error) => return journal_failed(error),
    };
    let begun = unix_millis().max(ended.map_or(0, |at| at + 1));
    let session = access.person_session(&person, begun);
    let response = Redirect::to(&next).into_response();
    let response = with_cookie(
        response,
        &session_cookie(&session, auth::SESSION_SECS, secure),
    );
    with_cookie(response, &spent)
}
