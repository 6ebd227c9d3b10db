//! GitHub's web sign-in, as the fake answers it: the authorize page (answering at once for the
//! user a test chose, [`FakeGitHub::sign_in_as`](super::FakeGitHub::sign_in_as)), the code
//! exchange with PKCE (`/login/oauth/*` are not in GitHub's REST schemas: checked by hand, as
//! GitHub documents them), `GET /user` for the token it gave (`users/get-authenticated`'s
//! example with the user's login and id), and organization membership
//! (`orgs/check-membership-for-user`: 204 for a member, 404 for anyone else).

use axum::{
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use base64::Engine as _;
use serde_json::json;
use sha2::{Digest as _, Sha256};

use super::{State, example, github_error, json_answer};

/// A GitHub user the fake knows.
#[derive(Debug, Clone)]
pub(super) struct User {
    pub login: String,
    pub id: u64,
}

/// A code the authorize page gave, until it is exchanged once.
#[derive(Debug, Clone)]
struct Code {
    code: String,
    user: u64,
    challenge: String,
    redirect_uri: String,
}

/// The OAuth side of the fake: the App's credentials, its users, codes and tokens given.
#[derive(Debug, Default)]
pub(super) struct OAuth {
    pub client: Option<(String, String)>,
    pub users: Vec<User>,
    /// Whom the authorize page signs in.
    pub signing_in: Option<u64>,
    codes: Vec<Code>,
    /// Tokens given to people, with whose they are.
    pub tokens: Vec<(String, u64)>,
    /// `(organization, login)` memberships.
    pub members: Vec<(String, String)>,
    /// The scopes each authorize request asked for, in order.
    pub scopes: Vec<String>,
    given: u64,
}

fn query_pairs(query: &str) -> Vec<(String, String)> {
    reqwest::Url::parse(&format!("http://fake/?{query}"))
        .map(|url| url.query_pairs().into_owned().collect())
        .unwrap_or_default()
}

fn pair<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
}

/// GitHub's answer to a code exchange it refuses: 200, with an error in the JSON.
fn exchange_error(error: &str, description: &str) -> Response {
    json_answer(
        StatusCode::OK,
        json!({"error": error, "error_description": description}),
    )
}

/// `GET /login/oauth/authorize`: straight back to `redirect_uri` with a code for the chosen
/// user, when the request is one GitHub would take (its client id, a PKCE S256 challenge).
pub(super) fn authorize(state: &mut State, query: &str) -> Response {
    let pairs = query_pairs(query);
    let oauth = &mut state.oauth;
    let Some((client_id, _)) = &oauth.client else {
        return github_error(StatusCode::NOT_FOUND, "Not Found");
    };
    if pair(&pairs, "client_id") != Some(client_id) {
        return github_error(StatusCode::NOT_FOUND, "no such application");
    }
    let (Some(redirect_uri), Some(challenge), Some("S256")) = (
        pair(&pairs, "redirect_uri"),
        pair(&pairs, "code_challenge"),
        pair(&pairs, "code_challenge_method"),
    ) else {
        return github_error(
            StatusCode::BAD_REQUEST,
            "this fake, like the host, requires PKCE with S256",
        );
    };
    oauth
        .scopes
        .push(pair(&pairs, "scope").unwrap_or_default().to_owned());
    let Some(user) = oauth.signing_in else {
        return github_error(StatusCode::FORBIDDEN, "nobody is signing in");
    };
    oauth.given += 1;
    let code = format!("code{}{}", oauth.given, std::process::id());
    oauth.codes.push(Code {
        code: code.clone(),
        user,
        challenge: challenge.to_owned(),
        redirect_uri: redirect_uri.to_owned(),
    });
    let mut back = reqwest::Url::parse(redirect_uri).expect("the host sends a URL");
    back.query_pairs_mut().append_pair("code", &code);
    if let Some(given) = pair(&pairs, "state") {
        back.query_pairs_mut().append_pair("state", given);
    }
    let mut response = StatusCode::FOUND.into_response();
    let location = back.as_str().parse().expect("a URL is a header value");
    response.headers_mut().insert(header::LOCATION, location);
    response
}

/// `POST /login/oauth/access_token`: a token for a code, its secret, its redirect and the
/// verifier whose S256 is the code's challenge; each code once.
pub(super) fn access_token(state: &mut State, body: &[u8]) -> Response {
    let pairs = query_pairs(&String::from_utf8_lossy(body));
    let oauth = &mut state.oauth;
    let Some((client_id, secret)) = &oauth.client else {
        return github_error(StatusCode::NOT_FOUND, "Not Found");
    };
    if pair(&pairs, "client_id") != Some(client_id) || pair(&pairs, "client_secret") != Some(secret)
    {
        return exchange_error(
            "incorrect_client_credentials",
            "The client_id and/or client_secret passed are incorrect.",
        );
    }
    let Some(at) = oauth
        .codes
        .iter()
        .position(|c| Some(c.code.as_str()) == pair(&pairs, "code"))
    else {
        return exchange_error(
            "bad_verification_code",
            "The code passed is incorrect or expired.",
        );
    };
    // A code is spent by any exchange, good or not, as GitHub's are.
    let code = oauth.codes.remove(at);
    if pair(&pairs, "redirect_uri").is_some_and(|uri| uri != code.redirect_uri) {
        return exchange_error(
            "redirect_uri_mismatch",
            "The redirect_uri MUST match the registered callback URL for this application.",
        );
    }
    let verified = pair(&pairs, "code_verifier").is_some_and(|verifier| {
        let digest = Sha256::digest(verifier.as_bytes());
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest) == code.challenge
    });
    if !verified {
        return exchange_error(
            "invalid_grant",
            "The code_verifier does not match the challenge.",
        );
    }
    oauth.given += 1;
    let token = format!(
        "gho_fake{:032}",
        oauth.given * 7919 + u64::from(std::process::id())
    );
    oauth.tokens.push((token.clone(), code.user));
    json_answer(
        StatusCode::OK,
        json!({"access_token": token, "token_type": "bearer", "scope": ""}),
    )
}

/// `GET /user` with a token the exchange gave.
pub(super) fn user(state: &State, headers: &HeaderMap) -> Response {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .map(|(_, token)| token.trim().to_owned());
    let oauth = &state.oauth;
    let found = oauth
        .tokens
        .iter()
        .find(|(given, _)| Some(given) == token.as_ref())
        .and_then(|(_, id)| oauth.users.iter().find(|u| u.id == *id));
    let Some(user) = found else {
        return github_error(StatusCode::UNAUTHORIZED, "Bad credentials");
    };
    let (_, mut answer) = example("users/get-authenticated");
    answer["login"] = json!(user.login);
    answer["id"] = json!(user.id);
    json_answer(StatusCode::OK, answer)
}

/// Whether `authorization` is a token the exchange gave a person (not the host's identity).
pub(super) fn persons_token(state: &State, authorization: &str) -> bool {
    let token = authorization
        .split_once(' ')
        .map_or(authorization, |(_, t)| t)
        .trim();
    state.oauth.tokens.iter().any(|(given, _)| given == token)
}

/// `GET /orgs/{org}/members/{username}`: 204 for a member, 404 for anyone else.
pub(super) fn membership(state: &State, organization: &str, login: &str) -> Response {
    let member = state.oauth.members.iter().any(|(org, who)| {
        org.eq_ignore_ascii_case(organization) && who.eq_ignore_ascii_case(login)
    });
    match member {
        true => StatusCode::NO_CONTENT.into_response(),
        false => github_error(StatusCode::NOT_FOUND, "Not Found"),
    }
}
