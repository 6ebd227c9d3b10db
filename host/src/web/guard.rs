//! Access for every dashboard request: only at the dashboard's own addresses, a sign-in where
//! `[dashboard] access` asks for one (and for every change), and the security headers on
//! every answer.

use axum::{
    extract::{Request, State},
    http::{HeaderValue, Method, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Redirect, Response},
};

use super::{Dashboard, WebState, auth, message, people::Person, people::Refused};
use crate::{
    config::DashboardAccess,
    journal::{Visibility, unix_millis},
};

/// A URL's origin (`scheme://host[:port]`, the default port left out as browsers send it) and
/// the `Host` values a request for it carries (with and without a default port).
pub(super) fn origin_and_hosts(url: &str) -> Option<(String, Vec<String>)> {
    let url = reqwest::Url::parse(url).ok()?;
    let host = url.host_str()?.to_ascii_lowercase();
    let hosts = match (url.port(), url.port_or_known_default()) {
        (Some(port), _) => vec![format!("{host}:{port}")],
        (None, Some(default)) => vec![host.clone(), format!("{host}:{default}")],
        (None, None) => vec![host],
    };
    Some((url.origin().ascii_serialization(), hosts))
}

impl Dashboard {
    /// Whether a request's `Host` is one the dashboard is reached at. Any other is refused, so
    /// a page whose name was rebound to this host's address (DNS rebinding) reads nothing.
    fn answers_for(&self, host: Option<&str>) -> bool {
        host.is_some_and(|host| {
            let host = host.trim().to_ascii_lowercase();
            self.hosts.contains(&host)
        })
    }
}

/// Who is looking: the signed-in name, if any, and the token their forms carry.
#[derive(Clone, Debug)]
pub struct Viewer {
    /// A named token's name, or the login of a person signed in with GitHub.
    pub name: Option<String>,
    /// The person, when signed in with GitHub rather than a named token.
    pub person: Option<Person>,
    /// What the journal's queries show them: everything once signed in, only public
    /// repositories' deliveries, jobs, logs and deployments to a visitor.
    pub visibility: Visibility,
    /// The session's CSRF token (see `auth::Access::form_token`), when signed in.
    pub form_token: Option<String>,
    /// The session cookie's value, against which a form's token is checked.
    pub(super) session: Option<String>,
}

/// No inline script or style, nothing from elsewhere, no framing.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// Access for every dashboard request, and the security headers on every answer.
pub(super) async fn guard(
    State(state): State<WebState>,
    mut request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path().to_owned();
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok());
    let mut response = if !state.dashboard.answers_for(host) {
        tracing::warn!(
            host = host.unwrap_or(""),
            "a dashboard request for another host refused"
        );
        message::message(
            StatusCode::MISDIRECTED_REQUEST,
            "Wrong address",
            "The dashboard answers only at its own address ([server] public_url, or one of [dashboard] aliases).",
        )
    } else if path.starts_with("/dashboard/assets/") {
        next.run(request).await
    } else {
        match &state.dashboard.access {
            Err(hint) => message::not_configured(hint),
            Ok(access) => {
                let cookie = request
                    .headers()
                    .get(header::COOKIE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|cookies| auth::cookie(cookies, auth::COOKIE));
                let session = match cookie {
                    Some(cookie) => live_session(&state, access, cookie).await,
                    None => None,
                };
                let viewer = match session {
                    None => Viewer {
                        name: None,
                        person: None,
                        visibility: Visibility::Public,
                        form_token: None,
                        session: None,
                    },
                    Some((cookie, signed)) => {
                        let (name, person, visibility) = match signed {
                            Signed::Token(name) => (name, None, Visibility::All),
                            Signed::Person(person) => {
                                let visibility = match &state.dashboard.github_sign_in {
                                    Some(sign_in) => {
                                        sign_in
                                            .visibility(&*state.github, &*state.journal, &person)
                                            .await
                                    }
                                    None => Visibility::Public,
                                };
                                (person.login.clone(), Some(person), visibility)
                            }
                        };
                        Viewer {
                            name: Some(name),
                            person,
                            visibility,
                            form_token: Some(access.form_token(&cookie)),
                            session: Some(cookie),
                        }
                    }
                };
                let signing = path == "/dashboard/sign-in"
                    || path == "/dashboard/sign-out"
                    || path.starts_with("/dashboard/sign-in/github");
                let open = signing || state.dashboard.mode == DashboardAccess::PublicRead;
                if viewer.name.is_none() && request.method() == Method::POST && !signing {
                    // The actions need a sign-in whatever `access` says.
                    message::message(
                        StatusCode::UNAUTHORIZED,
                        "Sign in first",
                        "Changing anything needs a sign-in. Sign in, then try again from the page.",
                    )
                } else if viewer.name.is_none() && !open {
                    let wanted = request
                        .uri()
                        .path_and_query()
                        .map_or("/dashboard", |p| p.as_str());
                    let query: String = form_urlencoded::Serializer::new(String::new())
                        .append_pair("next", wanted)
                        .finish();
                    Redirect::to(&format!("/dashboard/sign-in?{query}")).into_response()
                } else {
                    request.extensions_mut().insert(viewer);
                    next.run(request).await
                }
            }
        }
    };
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if !path.starts_with("/dashboard/assets/") {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// Who a genuine session cookie names.
enum Signed {
    Token(String),
    Person(Person),
}

impl Viewer {
    /// Whom their sessions belong to in the journal: a token's name, or `github:ID`.
    pub fn session_key(&self) -> Option<String> {
        match &self.person {
            Some(person) => Some(person.session_key()),
            None => self.name.clone(),
        }
    }

    /// How the audit trail records them: `token:NAME`, or `github:ID (login)` as the
    /// commands service records a commenter.
    pub fn actor(&self) -> Option<String> {
        match &self.person {
            Some(person) => Some(person.actor()),
            None => self.name.as_ref().map(|name| format!("token:{name}")),
        }
    }
}

/// The session `cookie` and who it names, when it is genuine, not expired, and began after
/// that person last signed out; for a person signed in with GitHub, when they may still sign
/// in (asked again once [`GitHubSignIn::refresh`](super::people::GitHubSignIn) has passed:
/// found no longer allowed, every session of theirs ends). A journal that cannot say counts as
/// signed out.
async fn live_session(
    state: &WebState,
    access: &auth::Access,
    cookie: &str,
) -> Option<(String, Signed)> {
    let now = unix_millis();
    let (signed, begun) = match access.verify(cookie, now) {
        Some((name, begun)) => (Signed::Token(name.to_owned()), begun),
        None => {
            let (person, begun) = access.verify_person(cookie, now)?;
            (Signed::Person(person), begun)
        }
    };
    let key = match &signed {
        Signed::Token(name) => name.clone(),
        Signed::Person(person) => person.session_key(),
    };
    match state.journal.sessions_ended(&key).await {
        Ok(ended) if ended.is_some_and(|ended| begun <= ended) => return None,
        Ok(_) => {}
        Err(error) => {
            tracing::error!(
                error = error.to_string(),
                "cannot read when dashboard sessions ended"
            );
            return None;
        }
    }
    if let Signed::Person(person) = &signed {
        let sign_in = state.dashboard.github_sign_in.as_ref()?;
        if !sign_in.still_confirmed(person) {
            match sign_in.allowed(&*state.github, person).await {
                Ok(()) => sign_in.confirmed(person),
                Err(Refused::NotAllowed) => {
                    tracing::info!(
                        person = person.id,
                        login = person.login.as_str(),
                        "no longer allowed to sign in to the dashboard: every session of theirs ended"
                    );
                    sign_in.forget(person);
                    if let Err(error) = state.journal.end_sessions(&key, now).await {
                        tracing::error!(error = error.to_string(), "cannot end dashboard sessions");
                    }
                    return None;
                }
                // GitHub could not say: not let in this time, and asked again next time.
                Err(Refused::Unknown(_)) => return None,
            }
        }
    }
    Some((cookie.to_owned(), signed))
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_origin_is_the_url_before_its_path_and_hosts_carry_its_port() {
        for (url, origin, hosts) in [
            (
                "http://127.0.0.1:9393",
                "http://127.0.0.1:9393",
                vec!["127.0.0.1:9393"],
            ),
            (
                "https://CI.example.com/",
                "https://ci.example.com",
                vec!["ci.example.com", "ci.example.com:443"],
            ),
            (
                "https://ci.example.com/switchyard/",
                "https://ci.example.com",
                vec!["ci.example.com", "ci.example.com:443"],
            ),
            ("http://[::1]:8080", "http://[::1]:8080", vec!["[::1]:8080"]),
        ] {
            let (found, found_hosts) = super::origin_and_hosts(url).unwrap();
            assert_eq!(found, origin);
            assert_eq!(found_hosts, hosts);
        }
    }
}
