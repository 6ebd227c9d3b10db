//! `switchyard send`: sign a payload (a file, or one of GitHub's examples built in) with the
//! configured secret and POST it to the server, as GitHub's "Redeliver" button would, without
//! GitHub or a tunnel.

mod examples;

pub use examples::ExampleError;

use std::path::PathBuf;

use crate::{
    config::Config,
    event::EventKind,
    wiring::{StartError, webhook_secret},
};

/// One delivery to send.
#[derive(Debug, Clone)]
pub struct SendRequest {
    /// The `X-GitHub-Event`; with an example, defaults to the example's event.
    pub event: Option<String>,
    pub payload: Payload,
    /// `KEY=VALUE` changes to the payload (see `examples::set`).
    pub sets: Vec<String>,
    /// Where to send it; defaults to the config's listen address and webhook path.
    pub url: Option<String>,
    /// Defaults to a fresh UUID, as GitHub uses.
    pub delivery: Option<String>,
}

/// Where the payload comes from.
#[derive(Debug, Clone)]
pub enum Payload {
    File(PathBuf),
    /// One of GitHub's examples: `deployment`, `pull_request.synchronize`.
    Example(String),
}

/// The server's answer.
#[derive(Debug)]
pub struct SendAnswer {
    pub status: u16,
    pub body: String,
}

#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error(transparent)]
    Secret(#[from] StartError),
    #[error("invalid event name {0:?}: expected something like pull_request")]
    Event(String),
    #[error("--event is needed with a payload file")]
    NoEvent,
    #[error(transparent)]
    Example(#[from] ExampleError),
    #[error("cannot read {}: {error}", file.display())]
    Read {
        file: PathBuf,
        error: std::io::Error,
    },
    #[error("{} is not valid JSON: {error}", file.display())]
    Json {
        file: PathBuf,
        error: serde_json::Error,
    },
    #[error("[server] tls_cert {}: holds no PEM certificate this client can trust", .0.display())]
    Certificate(PathBuf),
    // reqwest's own message is generic; the cause (e.g. "Connection refused") follows in the chain.
    #[error("cannot reach {url} (is `switchyard serve` running?)")]
    Http { url: String, source: reqwest::Error },
}

pub async fn send(config: &Config, request: SendRequest) -> Result<SendAnswer, SendError> {
    let secret = webhook_secret(config)?;
    let (event, body) = payload(&request)?;
    EventKind::parse(&event).ok_or_else(|| SendError::Event(event.clone()))?;
    let url = request
        .url
        .unwrap_or_else(|| format!("{}{}", server_base(config), config.server.webhook_path));
    let delivery = request
        .delivery
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let signature = secret.sign_sha256(&body);
    let headers = [
        ("X-GitHub-Event", event.as_str()),
        ("X-GitHub-Delivery", delivery.as_str()),
        ("X-Hub-Signature-256", signature.as_str()),
    ];
    post(config, &url, &headers, body).await
}

/// The event name and the body to sign. A file is sent byte for byte unless `--set` changes it.
fn payload(request: &SendRequest) -> Result<(String, Vec<u8>), SendError> {
    let (event, mut payload, bytes) = match &request.payload {
        Payload::Example(name) => {
            let example = examples::example(name)?;
            (
                request.event.clone().unwrap_or(example.event),
                example.payload,
                None,
            )
        }
        Payload::File(file) => {
            let event = request.event.clone().ok_or(SendError::NoEvent)?;
            let bytes = std::fs::read(file).map_err(|error| SendError::Read {
                file: file.clone(),
                error,
            })?;
            let payload = serde_json::from_slice(&bytes).map_err(|error| SendError::Json {
                file: file.clone(),
                error,
            })?;
            (event, payload, Some(bytes))
        }
    };
    if let (Some(bytes), true) = (&bytes, request.sets.is_empty()) {
        return Ok((event, bytes.clone()));
    }
    for assignment in &request.sets {
        examples::set(&mut payload, assignment)?;
    }
    let body = serde_json::to_vec_pretty(&payload).expect("a JSON value serializes");
    Ok((event, body))
}

/// The answer as a person reads it: the status line, then each job and its log link when the
/// server accepted the delivery, else the server's body as it came.
pub fn describe(answer: &SendAnswer) -> String {
    let mut text = format!("HTTP {}\n", answer.status);
    let parsed: Option<serde_json::Value> = serde_json::from_str(&answer.body).ok();
    let jobs = parsed.as_ref().and_then(|body| body["jobs"].as_array());
    match (parsed.as_ref(), jobs) {
        (Some(body), Some(jobs)) => {
            let delivery = body["delivery"].as_str().unwrap_or("?");
            let duplicate = if body["duplicate"] == true {
                " (seen before: nothing dispatched)"
            } else {
                ""
            };
            text += &format!("delivery {delivery}: {} jobs{duplicate}\n", jobs.len());
            for job in jobs {
                text += &format!(
                    "  job {} {}: {}\n",
                    job["job"],
                    job["plugin"].as_str().unwrap_or("?"),
                    job["log"].as_str().unwrap_or("(no log link)")
                );
            }
        }
        _ => text += &format!("{}\n", answer.body),
    }
    text
}

/// The server this config runs, for commands that talk to it: `http://{listen}`; with TLS,
/// `public_url` when set (the name the certificate is for), else `https://{listen}`.
pub fn server_base(config: &Config) -> String {
    if let (Some(_), Some(url)) = (config.tls_files(), &config.server.public_url) {
        return url.trim_end_matches('/').to_owned();
    }
    let mut addr = config.server.listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    format!("{}://{addr}", config.scheme())
}

/// A client for the server this config runs. With TLS it also trusts the configured
/// certificate itself, so a self-signed one works for these commands as it does for a webhook
/// whose "SSL verification" is on with that certificate installed.
fn local_client(config: &Config) -> Result<reqwest::Client, SendError> {
    let mut client = reqwest::Client::builder();
    if let Some((cert, _)) = config.tls_files() {
        let pem = std::fs::read(&cert).map_err(|error| SendError::Read {
            file: cert.clone(),
            error,
        })?;
        let chain = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|_| SendError::Certificate(cert.clone()))?;
        for certificate in chain {
            client = client.add_root_certificate(certificate);
        }
    }
    client
        .build()
        .map_err(|_| SendError::Certificate(PathBuf::from("(built-in roots)")))
}

/// POSTs a JSON body with these (signature) headers to the server `config` runs.
pub async fn post(
    config: &Config,
    url: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> Result<SendAnswer, SendError> {
    let mut request = local_client(config)?
        .post(url)
        .header("Content-Type", "application/json")
        .header(
            "User-Agent",
            concat!("switchyard-send/", env!("CARGO_PKG_VERSION")),
        );
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request
        .body(body)
        .send()
        .await
        .map_err(|source| SendError::Http {
            url: url.to_owned(),
            source,
        })?;
    let status = response.status().as_u16();
    let body = response.text().await.unwrap_or_default();
    Ok(SendAnswer { status, body })
}
