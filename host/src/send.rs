//! `switchyard send`: sign a payload file with the configured secret and POST it to the server,
//! as GitHub's "Redeliver" button would, without GitHub or a tunnel.

use std::path::PathBuf;

use crate::{
    app::{StartError, webhook_secret},
    config::Config,
    event::EventKind,
};

/// One delivery to send.
#[derive(Debug, Clone)]
pub struct SendRequest {
    pub event: String,
    pub file: PathBuf,
    /// Where to send it; defaults to the config's listen address and webhook path.
    pub url: Option<String>,
    /// Defaults to a fresh UUID, as GitHub uses.
    pub delivery: Option<String>,
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
    EventKind::parse(&request.event).ok_or_else(|| SendError::Event(request.event.clone()))?;
    let body = std::fs::read(&request.file).map_err(|error| SendError::Read {
        file: request.file.clone(),
        error,
    })?;
    serde_json::from_slice::<serde::de::IgnoredAny>(&body).map_err(|error| SendError::Json {
        file: request.file.clone(),
        error,
    })?;
    let url = request
        .url
        .unwrap_or_else(|| format!("{}{}", server_base(config), config.server.webhook_path));
    let delivery = request
        .delivery
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let signature = secret.sign_sha256(&body);
    let headers = [
        ("X-GitHub-Event", request.event.as_str()),
        ("X-GitHub-Delivery", delivery.as_str()),
        ("X-Hub-Signature-256", signature.as_str()),
    ];
    post(config, &url, &headers, body).await
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
