//! The facts of an `issue_comment` delivery the service reads: who wrote what, where. Only a
//! comment `created` is read: an edited comment would run its command again (or a command its
//! author never wrote, edited in after someone approved), and a deleted one has nothing to run.

use serde_json::Value;

use super::parse::{self, Parsed};
use crate::event::Delivery;

/// A new comment on an issue or a pull request.
#[derive(Debug, Clone)]
pub(crate) struct Comment {
    pub id: u64,
    pub url: String,
    pub body: String,
    pub author_id: u64,
    pub author_login: String,
    pub by_bot: bool,
    /// `owner/repo`.
    pub repository: String,
    /// The issue's or pull request's number.
    pub number: u64,
    pub pull_request: bool,
    /// The numeric id of the issue's or pull request's author.
    pub thread_author: Option<u64>,
    pub closed: bool,
    pub locked: bool,
}

impl Comment {
    /// The comment `delivery` carries, when it is an `issue_comment` `created`.
    pub(crate) fn of(delivery: &Delivery) -> Option<Self> {
        Self::from_payload(
            delivery.kind.as_str(),
            delivery.facts.action.as_deref(),
            &delivery.payload,
        )
    }

    /// The comment a payload of event `kind` and `action` carries, when it is a new one.
    pub(crate) fn from_payload(kind: &str, action: Option<&str>, payload: &[u8]) -> Option<Self> {
        if kind != "issue_comment" || action != Some("created") {
            return None;
        }
        let payload: Value = serde_json::from_slice(payload).ok()?;
        let (comment, issue) = (&payload["comment"], &payload["issue"]);
        Some(Self {
            id: comment["id"].as_u64()?,
            url: comment["html_url"].as_str().unwrap_or_default().to_owned(),
            body: comment["body"].as_str().unwrap_or_default().to_owned(),
            author_id: comment["user"]["id"].as_u64()?,
            author_login: comment["user"]["login"].as_str()?.to_owned(),
            by_bot: parse::by_bot(comment),
            repository: payload["repository"]["full_name"].as_str()?.to_owned(),
            number: issue["number"].as_u64()?,
            pull_request: issue["pull_request"].is_object(),
            thread_author: issue["user"]["id"].as_u64(),
            closed: issue["state"].as_str() == Some("closed"),
            locked: issue["locked"].as_bool() == Some(true),
        })
    }

    /// The commands it holds whose names `known` takes; none for a bot's comment.
    pub(crate) fn commands(&self, known: impl Fn(&str) -> bool) -> Parsed {
        if self.by_bot {
            return Parsed::default();
        }
        parse::parse(&self.body, known)
    }

    /// `owner/repo#12`.
    pub(crate) fn thread(&self) -> String {
        format!("{}#{}", self.repository, self.number)
    }

    /// How the journal and the logs name its author: `github:12345 (mona)`.
    pub(crate) fn person(&self) -> String {
        format!("github:{} ({})", self.author_id, self.author_login)
    }
}
