//! Signing in with a token (limited per address), and signing out of every session.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use askama::Template;
use axum::{
    Extension, Form,
    extract::{ConnectInfo, Query, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Redirect, Response},
};
use serde::Deserialize;

use super::super::message::{html, internal_error, journal_failed};
use super::super::{
    WebState, auth, client,
    signed_form::{CarriesToken, SignedForm},
};
use super::params::{Params, param};
use crate::journal::unix_millis;

#[derive(Template)]
#[template(path = "sign_in.html")]
struct SignInPage {
    next: String,
    problem: Option<String>,
    /// "Sign in with GitHub" is offered.
    github: bool,
    /// Named tokens sign in here.
    tokens: bool,
}

/// The sign-in page leading to `next`, saying `problem`, answered with `status`.
pub(super) fn page(
    state: &WebState,
    next: String,
    problem: Option<String>,
    status: StatusCode,
) -> Response {
    let tokens = state
        .dashboard
        .access
        .as_ref()
        .is_ok_and(auth::Access::has_tokens);
    let mut response = html(&SignInPage {
        next,
        problem,
        github: state.dashboard.github_sign_in.is_some(),
        tokens,
    });
    *response.status_mut() = status;
    response
}

/// Where to go after signing in: a dashboard path, never another site.
pub(super) fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(next)
            if next.starts_with("/dashboard")
                && !next.contains("//")
                && !next.contains('\\')
                && !next.chars().any(char::is_control) =>
        {
            next.to_owned()
        }
        _ => "/dashboard".to_owned(),
    }
}

pub(in crate::web) async fn form(State(state): State<WebState>, Query(params): Params) -> Response {
    let next = safe_next(param(&params, "next"));
    page(&state, next, None, StatusCode::OK)
}

#[derive(Deserialize)]
pub struct SignInForm {
    token: String,
    #[serde(default)]
    next: Option<String>,
}

/// `POST /dashboard/sign-in`: a good token sets the session cookie; a wrong one is 401, and an
/// address that sent too many wrong ones lately is answered 429 (see `limit`).
pub(in crate::web) async fn sign_in(
    State(state): State<WebState>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    Form(form): Form<SignInForm>,
) -> Response {
    let Ok(access) = &state.dashboard.access else {
        return internal_error();
    };
    let peer = peer.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |p| p.0.0.ip());
    let address = client::counted_as(state.dashboard.proxies.client(peer, &headers));
    let now = std::time::Instant::now();
    let next = safe_next(form.next.as_deref());
    if let Err(wait) = state.dashboard.sign_ins.check(address, now) {
        tracing::warn!(%address, "dashboard sign-ins refused for a while: too many wrong tokens");
        let problem = "Too many wrong tokens from your address: wait a minute, then try again.";
        let mut response = page(
            &state,
            next,
            Some(problem.to_owned()),
            StatusCode::TOO_MANY_REQUESTS,
        );
        let seconds = wait.as_secs().max(1).to_string();
        if let Ok(value) = HeaderValue::from_str(&seconds) {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        return response;
    }
    let Some(name) = access.sign_in(&form.token) else {
        tracing::warn!(%address, "a dashboard sign-in with a wrong token");
        state.dashboard.sign_ins.failed(address, now);
        let problem = Some("That token is not valid.".to_owned());
        return page(&state, next, problem, StatusCode::UNAUTHORIZED);
    };
    state.dashboard.sign_ins.succeeded(address);
    tracing::info!(%name, "signed in to the dashboard");
    // After the person's last sign-out, even within its millisecond, or it would end this too.
    let ended = match state.journal.sessions_ended(name).await {
        Ok(ended) => ended,
        Err(error) => return journal_failed(error),
    };
    let begun = unix_millis().max(ended.map_or(0, |at| at + 1));
    let Some(value) = access.session(name, begun) else {
        return internal_error();
    };
    let cookie = session_cookie(&value, auth::SESSION_SECS, state.dashboard.secure_cookie);
    let mut response = Redirect::to(&next).into_response();
    if let Ok(cookie) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

/// The `Set-Cookie` value of a session (or, with an empty value and age 0, of its end):
/// readable by no script, sent on top-level navigations from other sites but not their
/// requests, and over https only when the host's public URL is https.
pub(super) fn session_cookie(value: &str, max_age: u64, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!(
        "{}={value}; Path=/dashboard; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}",
        auth::COOKIE
    )
}

#[derive(Deserialize)]
pub struct SignOutForm {
    #[serde(default)]
    csrf: String,
}

impl CarriesToken for SignOutForm {
    fn form_token(&self) -> &str {
        &self.csrf
    }
}

/// `POST /dashboard/sign-out`: every session of the signed-in person ends, on every browser
/// and host (the journal keeps when), and this browser's cookie is cleared. It passes the
/// actions' checks (the dashboard's own origin, the session's form token), so another site
/// cannot sign anyone out. Without a session there is nothing to end: the cookie is cleared.
pub(in crate::web) async fn sign_out(
    State(state): State<WebState>,
    signed: Option<SignedForm<SignOutForm>>,
) -> Response {
    if let Some(SignedForm { name, .. }) = signed {
        if let Err(error) = state.journal.end_sessions(&name, unix_millis()).await {
            return journal_failed(error);
        }
        tracing::info!(%name, "signed out of the dashboard: every session of theirs ended");
    }
    let cookie = session_cookie("", 0, state.dashboard.secure_cookie);
    let mut response = Redirect::to("/dashboard/sign-in").into_response();
    if let Ok(cookie) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_cookies_are_http_only_lax_and_secure_behind_https() {
        assert_eq!(
            session_cookie("alice.9.ab", 60, true),
            "switchyard_session=alice.9.ab; Path=/dashboard; Max-Age=60; HttpOnly; SameSite=Lax; Secure"
        );
        assert!(!session_cookie("", 0, false).contains("Secure"));
        let config = |url: &str| {
            crate::config::Config::parse(
                &format!("[server]\npublic_url = \"{url}\"\n"),
                std::path::Path::new("/etc/switchyard/config.toml"),
            )
            .unwrap()
        };
        let https = crate::web::Dashboard::new(
            &config("https://ci.example.com"),
            Err(String::new()),
            b"k",
            Default::default(),
        );
        assert!(https.secure_cookie);
        let http = crate::web::Dashboard::new(
            &config("http://127.0.0.1:9393"),
            Err(String::new()),
            b"k",
            Default::default(),
        );
        assert!(!http.secure_cookie);
    }

    #[test]
    fn sign_in_leads_only_to_dashboard_pages() {
        assert_eq!(
            safe_next(Some("/dashboard/jobs?state=failed")),
            "/dashboard/jobs?state=failed"
        );
        for elsewhere in [
            "https://evil.example/",
            "//evil.example",
            "/dashboard//evil",
            "/\\evil",
            "/healthz",
        ] {
            assert_eq!(safe_next(Some(elsewhere)), "/dashboard", "{elsewhere}");
        }
        assert_eq!(safe_next(None), "/dashboard");
    }
}
