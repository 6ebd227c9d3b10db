//! The checks a form posted to the dashboard passes before anything is done: a sign-in, the
//! dashboard's own origin (`Origin`, `Sec-Fetch-Site`), and the session's form token
//! (`auth::Access::form_token`), made once by the [`SignedForm`] extractor for every action
//! and the sign-out.

use axum::{
    Extension, Form,
    extract::{FromRequest, FromRequestParts, OptionalFromRequest, Request},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::de::DeserializeOwned;

use super::{Viewer, WebState, message};

/// A form posted by a signed-in person from the dashboard's own pages, with their name. As an
/// `Option`, a form posted by no one signed in is `None` rather than refused.
pub(super) struct SignedForm<F> {
    /// Whose sessions these are: a named token's name, or `github:ID` for a person signed in
    /// with GitHub.
    pub name: String,
    /// Who posted it, as the journal records a person: `token:NAME`, or `github:ID (login)`
    /// (as a comment's author is).
    pub actor: String,
    /// The person, when signed in with GitHub: what they may do is asked of GitHub.
    pub person: Option<super::people::Person>,
    pub form: F,
}

/// A form that carries the session's form token (its `csrf` field).
pub(super) trait CarriesToken {
    fn form_token(&self) -> &str;
}

impl<F> FromRequest<WebState> for SignedForm<F>
where
    F: DeserializeOwned + CarriesToken + Send,
{
    type Rejection = Response;

    async fn from_request(request: Request, state: &WebState) -> Result<Self, Response> {
        let signed = <Self as OptionalFromRequest<WebState>>::from_request(request, state).await?;
        signed.ok_or_else(|| Refusal::SignedOut.into_response())
    }
}

impl<F> OptionalFromRequest<WebState> for SignedForm<F>
where
    F: DeserializeOwned + CarriesToken + Send,
{
    type Rejection = Response;

    async fn from_request(request: Request, state: &WebState) -> Result<Option<Self>, Response> {
        let (viewer, headers, form) = read::<F>(request, state).await?;
        if viewer.name.is_none() {
            return Ok(None);
        }
        let name = signed_in(state, &viewer, &headers, form.form_token())
            .map_err(IntoResponse::into_response)?;
        Ok(Some(Self {
            actor: viewer.actor().unwrap_or_default(),
            name: viewer.session_key().unwrap_or(name),
            person: viewer.person,
            form,
        }))
    }
}

/// Who is looking (as the guard found them), the request's headers, and the form.
async fn read<F: DeserializeOwned>(
    request: Request,
    state: &WebState,
) -> Result<(Viewer, HeaderMap, F), Response> {
    let (mut parts, body) = request.into_parts();
    let Extension(viewer) = Extension::<Viewer>::from_request_parts(&mut parts, state)
        .await
        .map_err(IntoResponse::into_response)?;
    let headers = parts.headers.clone();
    let Form(form) = Form::<F>::from_request(Request::from_parts(parts, body), state)
        .await
        .map_err(IntoResponse::into_response)?;
    Ok((viewer, headers, form))
}

/// Why an action was refused before anything was done (nothing is recorded for these).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    SignedOut,
    OtherSite,
    StaleForm,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let (status, text) = match self {
            Self::SignedOut => (
                StatusCode::UNAUTHORIZED,
                "Changing anything needs a sign-in.",
            ),
            Self::OtherSite => (
                StatusCode::FORBIDDEN,
                "This request came from another site. Use the buttons on the dashboard's own pages.",
            ),
            Self::StaleForm => (
                StatusCode::FORBIDDEN,
                "This form is out of date (or not from this session). Reload the page and try again.",
            ),
        };
        message::message(status, "Refused", text)
    }
}

/// Whether the request comes from the dashboard's own pages: `Sec-Fetch-Site` (sent by
/// browsers) must say `same-origin`, and `Origin` must be one of the dashboard's `origins` (the
/// public URL's and the aliases), never whatever the request's own `Host` says: that is the
/// attacker's under DNS rebinding. A client that sends neither (not a browser) passes on to
/// the form token, which another site cannot read.
fn same_origin(headers: &HeaderMap, origins: &[String]) -> bool {
    let text = |name| headers.get(name).map(|v| v.to_str().unwrap_or("?"));
    if let Some(site) = text("sec-fetch-site") {
        if site != "same-origin" {
            return false;
        }
    }
    match text(header::ORIGIN.as_str()) {
        None => true,
        Some(origin) => origins.iter().any(|known| known == origin),
    }
}

/// The signed-in name, once the request passed the CSRF checks.
fn signed_in(
    state: &WebState,
    viewer: &Viewer,
    headers: &HeaderMap,
    form_token: &str,
) -> Result<String, Refusal> {
    let Some(name) = viewer.name.clone() else {
        return Err(Refusal::SignedOut);
    };
    if !same_origin(headers, &state.dashboard.origins) {
        tracing::warn!(%name, "a dashboard action from another site refused");
        return Err(Refusal::OtherSite);
    }
    let genuine = match (&state.dashboard.access, viewer.session.as_deref()) {
        (Ok(access), Some(session)) => access.form_token_matches(session, form_token),
        _ => false,
    };
    if !genuine {
        tracing::warn!(%name, "a dashboard action with a missing or stale form token refused");
        return Err(Refusal::StaleForm);
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_dashboards_own_origin_passes() {
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut map = HeaderMap::new();
            for (name, value) in pairs {
                map.insert(*name, value.parse().unwrap());
            }
            map
        };
        let origins = [
            "https://ci.example.com".to_owned(),
            "http://localhost:9393".to_owned(),
        ];
        for (pairs, passes) in [
            (vec![], true),
            (vec![("origin", "https://ci.example.com")], true),
            (vec![("origin", "http://localhost:9393")], true),
            // The request's own Host is no proof: under DNS rebinding it is the attacker's.
            (
                vec![
                    ("origin", "http://rebound.example:9393"),
                    ("host", "rebound.example:9393"),
                ],
                false,
            ),
            (vec![("sec-fetch-site", "same-origin")], true),
            (vec![("origin", "https://evil.example")], false),
            (vec![("origin", "null")], false),
            (vec![("sec-fetch-site", "cross-site")], false),
            (vec![("sec-fetch-site", "same-site")], false),
            (
                vec![
                    ("sec-fetch-site", "same-origin"),
                    ("origin", "https://evil.example"),
                ],
                false,
            ),
        ] {
            assert_eq!(same_origin(&headers(&pairs), &origins), passes, "{pairs:?}");
        }
    }
}
