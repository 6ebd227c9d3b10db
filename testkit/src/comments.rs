//! Payloads of new comments, as GitHub's `issue_comment` `created` delivery carries them, for
//! trying a plugin's comment commands: [`NewComment`].

use serde_json::{Value, json};

/// A new comment on a pull request or an issue, built up and turned into the delivery's
/// payload with [`NewComment::payload`]; send it with `TestHost::send("issue_comment", ..)`.
///
/// ```
/// use switchyard_testkit::NewComment;
///
/// let payload = NewComment::on_pull_request("octo/app", 7)
///     .by("mona", 1001)
///     .body("/retest")
///     .payload();
/// assert_eq!(payload["comment"]["user"]["login"], "mona");
/// assert!(payload["issue"]["pull_request"].is_object());
/// ```
#[derive(Debug, Clone)]
pub struct NewComment {
    repository: String,
    number: u64,
    pull_request: bool,
    id: u64,
    body: String,
    author: (String, u64, &'static str),
    thread_author: (String, u64),
    state: &'static str,
    locked: bool,
    installation: Option<u64>,
}

impl NewComment {
    /// A comment on pull request `number` of `repository` (`owner/repo`), opened by `octocat`
    /// (id 1), written by `octocat` and saying nothing yet.
    pub fn on_pull_request(repository: &str, number: u64) -> Self {
        Self {
            repository: repository.to_owned(),
            number,
            pull_request: true,
            id: 1,
            body: String::new(),
            author: ("octocat".to_owned(), 1, "User"),
            thread_author: ("octocat".to_owned(), 1),
            state: "open",
            locked: false,
            installation: None,
        }
    }

    /// A comment on issue `number` of `repository`.
    pub fn on_issue(repository: &str, number: u64) -> Self {
        Self {
            pull_request: false,
            ..Self::on_pull_request(repository, number)
        }
    }

    /// Written by `login`, whose GitHub numeric id is `id`.
    pub fn by(mut self, login: &str, id: u64) -> Self {
        self.author = (login.to_owned(), id, "User");
        self
    }

    /// Written by the bot `login` (`user.type` is `Bot`).
    pub fn by_bot(mut self, login: &str, id: u64) -> Self {
        self.author = (login.to_owned(), id, "Bot");
        self
    }

    /// The pull request (or issue) was opened by `login` (`id`).
    pub fn thread_by(mut self, login: &str, id: u64) -> Self {
        self.thread_author = (login.to_owned(), id);
        self
    }

    /// What the comment says.
    pub fn body(mut self, body: &str) -> Self {
        self.body = body.to_owned();
        self
    }

    /// The comment's id (default 1).
    pub fn id(mut self, id: u64) -> Self {
        self.id = id;
        self
    }

    /// The thread is closed.
    pub fn closed(mut self) -> Self {
        self.state = "closed";
        self
    }

    /// Sent to a GitHub App's installation `id` (the payload's `installation`).
    pub fn installation(mut self, id: u64) -> Self {
        self.installation = Some(id);
        self
    }

    /// The delivery's payload.
    pub fn payload(&self) -> Value {
        let (login, id, kind) = &self.author;
        let user = |login: &str, id: u64, kind: &str| json!({"login": login, "id": id, "type": kind, "site_admin": false});
        let owner = self.repository.split('/').next().unwrap_or_default();
        let kind_of_thread = if self.pull_request { "pull" } else { "issues" };
        let thread_url = format!(
            "https://github.com/{}/{kind_of_thread}/{}",
            self.repository, self.number
        );
        let mut issue = json!({
            "number": self.number,
            "title": format!("thread {}", self.number),
            "state": self.state,
            "locked": self.locked,
            "user": user(&self.thread_author.0, self.thread_author.1, "User"),
            "html_url": thread_url,
        });
        if self.pull_request {
            issue["pull_request"] = json!({
                "url": format!("https://api.github.com/repos/{}/pulls/{}", self.repository, self.number),
            });
        }
        let mut payload = json!({
            "action": "created",
            "issue": issue,
            "comment": {
                "id": self.id,
                "html_url": format!("{thread_url}#issuecomment-{}", self.id),
                "body": self.body,
                "user": user(login, *id, kind),
            },
            "repository": {
                "full_name": self.repository,
                "name": self.repository.split('/').nth(1).unwrap_or_default(),
                "private": false,
                "owner": {"login": owner},
            },
            "sender": user(login, *id, kind),
        });
        if let Some(installation) = self.installation {
            payload["installation"] = json!({"id": installation});
        }
        payload
    }
}
