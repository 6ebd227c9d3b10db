//! The `VerifiedDelivery` extractor: reads the body within GitHub's size cap and the host's
//! body budget, checks the signature over the raw bytes, and only then looks at the headers,
//! the content type and the JSON.

use std::sync::Arc;

use axum::{
    body::Bytes,
    extract::{FromRef, FromRequest, Request},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};

use super::{
    IngressSettings,
    body::BodyError,
    signature::{self, SignatureError, SignatureHeaders},
};
use crate::{
    event::{Delivery, DeliveryId, EventKind, PayloadError, PayloadFacts, now_rfc3339},
    http_error::error_response,
};

/// GitHub caps webhook payloads at 25 MB; anything larger is not from GitHub.
pub const MAX_BODY_BYTES: usize = crate::config::MAX_BODY_MIB << 20;

/// A delivery whose signature, headers and body checked out.
pub struct VerifiedDelivery(pub Delivery);

/// Why a delivery was refused. Messages are safe to send back: they never hold the secret.
#[derive(Debug, thiserror::Error)]
pub enum IngressError {
    #[error(transparent)]
    Body(#[from] BodyError),
    #[error(transparent)]
    Signature(#[from] SignatureError),
    #[error("missing {0} header")]
    MissingHeader(&'static str),
    #[error("invalid {0} header")]
    InvalidHeader(&'static str),
    #[error(
        "unsupported content type {0:?}: send application/json or application/x-www-form-urlencoded"
    )]
    UnsupportedContentType(String),
    #[error("form body has no `payload` field")]
    MissingFormPayload,
    #[error(transparent)]
    Payload(#[from] PayloadError),
    #[error("internal error")]
    Internal,
    /// The journal cannot be reached now: nothing was stored, and the sender should retry.
    #[error("the journal is unavailable; retry later")]
    Unavailable,
}

impl IngressError {
    fn status(&self) -> StatusCode {
        match self {
            Self::Body(error) => error.status(),
            Self::Signature(_) => StatusCode::UNAUTHORIZED,
            Self::UnsupportedContentType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

impl IntoResponse for IngressError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_client_error() {
            tracing::warn!(
                status = status.as_u16(),
                error = self.to_string(),
                "delivery refused"
            );
        }
        match self {
            Self::Body(error) => error.response(status),
            _ => error_response(status, &self.to_string()),
        }
    }
}

impl<S> FromRequest<S> for VerifiedDelivery
where
    S: Send + Sync,
    Arc<IngressSettings>: FromRef<S>,
{
    type Rejection = IngressError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let settings = Arc::<IngressSettings>::from_ref(state);
        let (parts, body) = settings.bodies.read(request, MAX_BODY_BYTES).await?;
        let headers = parts.headers;
        let signatures = SignatureHeaders {
            sha256: header(&headers, "x-hub-signature-256"),
            sha1: header(&headers, "x-hub-signature"),
        };
        signature::verify(
            &settings.secret,
            signatures,
            &body.bytes,
            settings.accept_sha1,
        )?;
        // Its budget is given back when this returns: a signed body is GitHub's.
        let body = body.bytes.clone();

        let kind = header(&headers, "x-github-event")
            .ok_or(IngressError::MissingHeader("X-GitHub-Event"))?;
        let kind = EventKind::parse(kind).ok_or(IngressError::InvalidHeader("X-GitHub-Event"))?;
        let id = header(&headers, "x-github-delivery")
            .ok_or(IngressError::MissingHeader("X-GitHub-Delivery"))?;
        let id = DeliveryId::parse(id).ok_or(IngressError::InvalidHeader("X-GitHub-Delivery"))?;

        let payload = payload(&headers, body)?;
        let facts = PayloadFacts::parse(&payload)?;
        Ok(Self(Delivery {
            id,
            kind,
            facts,
            payload,
            received_at: now_rfc3339(),
            headers: stored_headers(&headers),
        }))
    }
}

/// The only headers stored with a delivery: GitHub's own and the few that describe the body.
/// Anything else a sender (or a proxy on the way) adds, an API key or a client's address, is
/// not GitHub's to show on the dashboard.
fn stored_header(name: &str) -> bool {
    name.starts_with("x-github-")
        || name.starts_with("x-hub-signature")
        || matches!(name, "user-agent" | "content-type" | "content-length")
}

/// The headers of a delivery as stored with it: only those [`stored_header`] allows, names
/// lowercase, in the order received, signatures masked (keeping their `sha256=` prefix), at
/// most 100.
pub fn stored_headers(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .filter(|(name, _)| stored_header(name.as_str()))
        .take(100)
        .map(|(name, value)| {
            let name = name.as_str().to_owned();
            let value = String::from_utf8_lossy(value.as_bytes());
            let value = if name.starts_with("x-hub-signature") {
                match value.split_once('=') {
                    Some((algorithm, _)) => format!("{algorithm}=********"),
                    None => "********".to_owned(),
                }
            } else {
                value.into_owned()
            };
            (name, value)
        })
        .collect()
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

/// The JSON payload: the body itself, or the `payload` field of a form body.
fn payload(headers: &HeaderMap, body: Bytes) -> Result<Bytes, IngressError> {
    let content_type = header(headers, "content-type").unwrap_or_default();
    let mime = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match mime.as_str() {
        "application/json" => Ok(body),
        "application/x-www-form-urlencoded" => form_urlencoded::parse(&body)
            .find(|(key, _)| key == "payload")
            .map(|(_, value)| Bytes::from(value.into_owned()))
            .ok_or(IngressError::MissingFormPayload),
        _ => Err(IngressError::UnsupportedContentType(
            content_type.to_owned(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(content_type: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_str(content_type).unwrap());
        headers
    }

    #[test]
    fn json_and_form_bodies_yield_the_payload() {
        let json = r#"{"action":"opened","n":"a b&c"}"#;
        let form: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("payload", json)
            .finish();
        // (content type, body, expected payload)
        let cases = [
            ("application/json", json.to_owned(), json),
            ("application/json; charset=utf-8", json.to_owned(), json),
            ("Application/JSON", json.to_owned(), json),
            ("application/x-www-form-urlencoded", form.clone(), json),
            (
                "application/x-www-form-urlencoded",
                format!("other=1&{form}"),
                json,
            ),
        ];
        for (content_type, body, expected) in cases {
            let payload = payload(&headers(content_type), Bytes::from(body)).unwrap();
            assert_eq!(payload, expected.as_bytes(), "{content_type}");
        }
    }

    #[test]
    fn other_bodies_are_refused() {
        let refused = |content_type: &str, body: &str| {
            payload(&headers(content_type), Bytes::from(body.to_owned())).unwrap_err()
        };
        assert!(
            matches!(refused("text/plain", "{}"), IngressError::UnsupportedContentType(t) if t == "text/plain")
        );
        assert!(matches!(
            refused("", "{}"),
            IngressError::UnsupportedContentType(_)
        ));
        assert!(matches!(
            refused("application/x-www-form-urlencoded", "other=1"),
            IngressError::MissingFormPayload
        ));
    }

    #[test]
    fn refusals_map_to_statuses() {
        // (error, status)
        let cases = [
            (IngressError::Signature(SignatureError::Missing), 401),
            (IngressError::Signature(SignatureError::Mismatch), 401),
            (IngressError::MissingHeader("X-GitHub-Event"), 400),
            (
                IngressError::UnsupportedContentType("text/plain".into()),
                415,
            ),
            (IngressError::Body(BodyError::TooLarge { max: 1 }), 413),
            (IngressError::Body(BodyError::Busy), 503),
            (IngressError::MissingFormPayload, 400),
            (IngressError::Internal, 500),
            (IngressError::Unavailable, 503),
        ];
        for (error, status) in cases {
            assert_eq!(error.status().as_u16(), status, "{error}");
        }
    }
}
