//! The error answer the machine-facing endpoints share (the webhook, admin calls, job log
//! links): a status and a short JSON reason, `{"error": "..."}`.

use axum::{
    Json,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde_json::json;

/// `status` with `{"error": message}`.
pub fn error_response(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({"error": message}))).into_response()
}
