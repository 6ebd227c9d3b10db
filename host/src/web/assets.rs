//! The dashboard's stylesheet and script.

use axum::{
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};

/// The stylesheet and script, built into the binary: no CDN, no build step.
pub(super) async fn asset(axum::extract::Path(file): axum::extract::Path<String>) -> Response {
    let (content_type, body): (&str, &'static str) = match file.as_str() {
        "dashboard.css" => (
            "text/css; charset=utf-8",
            include_str!("../../assets/dashboard.css"),
        ),
        "dashboard.js" => (
            "text/javascript; charset=utf-8",
            include_str!("../../assets/dashboard.js"),
        ),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        body,
    )
        .into_response()
}
