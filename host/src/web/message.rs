//! The dashboard's plain answers: a template rendered as a page, and the message pages (not
//! found, refused, not configured, the journal unreadable) every part of it gives.

use askama::Template;
use axum::{
    http::StatusCode,
    response::{Html, IntoResponse, Response},
};

use crate::journal::JournalError;

pub(super) fn html(template: &impl Template) -> Response {
    match template.render() {
        Ok(page) => Html(page).into_response(),
        Err(error) => {
            tracing::error!(error = error.to_string(), "cannot render a dashboard page");
            internal_error()
        }
    }
}

pub(super) fn message(status: StatusCode, title: &str, text: &str) -> Response {
    #[derive(Template)]
    #[template(path = "message.html")]
    struct Message<'a> {
        title: &'a str,
        message: &'a str,
    }
    let mut response = html(&Message {
        title,
        message: text,
    });
    *response.status_mut() = status;
    response
}

pub(super) fn internal_error() -> Response {
    (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
}

pub(super) fn journal_failed(error: JournalError) -> Response {
    tracing::error!(
        error = error.to_string(),
        "the dashboard cannot read the journal"
    );
    message(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Internal error",
        "The journal could not be read; see the host's log.",
    )
}

pub(super) fn not_configured(hint: &str) -> Response {
    message(
        StatusCode::SERVICE_UNAVAILABLE,
        "Dashboard not configured",
        &format!("The dashboard is not configured: {hint}. Then restart switchyard."),
    )
}

pub(super) async fn not_found() -> Response {
    message(StatusCode::NOT_FOUND, "Not found", "No such page.")
}
