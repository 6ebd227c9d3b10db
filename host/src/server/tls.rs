//! Serving HTTPS with the configured certificate, reloaded in place so a renewed certificate
//! needs no restart. One crypto provider in the whole binary: ring, the one reqwest's rustls
//! already uses (a second provider would make rustls refuse to pick one at run time).

use std::{
    fmt,
    path::{Path, PathBuf},
    sync::{Arc, RwLock},
};

use rustls::{
    ServerConfig,
    crypto::ring,
    server::{ClientHello, ResolvesServerCert},
    sign::CertifiedKey,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use tokio_rustls::TlsAcceptor;

/// Why a certificate or its key could not be used. Names the file and the setting, never the
/// key's content.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("[server] tls_cert {}: {reason}", path.display())]
    Certificate { path: PathBuf, reason: String },
    #[error("[server] tls_key {}: {reason}", path.display())]
    Key { path: PathBuf, reason: String },
}

/// The certificate and key files, and what was last loaded from them.
pub struct TlsCertificates {
    cert_file: PathBuf,
    key_file: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
}

impl fmt::Debug for TlsCertificates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsCertificates")
            .field("cert_file", &self.cert_file)
            .field("key_file", &self.key_file)
            .finish_non_exhaustive()
    }
}

impl TlsCertificates {
    /// Loads both files; an error names the setting and file at fault.
    pub fn load(cert_file: &Path, key_file: &Path) -> Result<Self, TlsError> {
        let current = certified_key(cert_file, key_file)?;
        Ok(Self {
            cert_file: cert_file.to_owned(),
            key_file: key_file.to_owned(),
            current: RwLock::new(Arc::new(current)),
        })
    }

    /// Reads the files again. On error the certificate in use stays, so a renewal caught
    /// half-written never takes HTTPS down.
    pub fn reload(&self) -> Result<(), TlsError> {
        let fresh = certified_key(&self.cert_file, &self.key_file)?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(fresh);
        Ok(())
    }

    /// Accepts TLS connections with whatever certificate is current at each handshake.
    pub fn acceptor(self: &Arc<Self>) -> TlsAcceptor {
        let config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(self) as Arc<dyn ResolvesServerCert>);
        let mut config = config;
        // The server speaks HTTP/1.1 only (see `server`).
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        TlsAcceptor::from(Arc::new(config))
    }
}

impl ResolvesServerCert for TlsCertificates {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(
            &self.current.read().unwrap_or_else(|e| e.into_inner()),
        ))
    }
}

fn certified_key(cert_file: &Path, key_file: &Path) -> Result<CertifiedKey, TlsError> {
    let certificate = |reason: String| TlsError::Certificate {
        path: cert_file.to_owned(),
        reason,
    };
    let key = |reason: String| TlsError::Key {
        path: key_file.to_owned(),
        reason,
    };
    let chain = CertificateDer::pem_file_iter(cert_file)
        .map_err(|e| certificate(pem_reason(e)))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| certificate(pem_reason(e)))?;
    if chain.is_empty() {
        return Err(certificate("holds no PEM certificate".into()));
    }
    let private = PrivateKeyDer::from_pem_file(key_file).map_err(|e| key(pem_reason(e)))?;
    let signing = ring::sign::any_supported_type(&private)
        .map_err(|_| key("is not an RSA, ECDSA or Ed25519 private key".into()))?;
    let certified = CertifiedKey::new(chain, signing);
    // A key that does not belong to the certificate would fail every handshake.
    certified
        .keys_match()
        .map_err(|_| key("does not match the certificate in tls_cert".into()))?;
    Ok(certified)
}

/// PEM errors in words; the file's content never goes into them.
fn pem_reason(error: rustls_pki_types::pem::Error) -> String {
    use rustls_pki_types::pem::Error;
    match error {
        Error::Io(error) => error.to_string(),
        Error::NoItemsFound => "holds no PEM item of the expected kind".into(),
        _ => "is not valid PEM".into(),
    }
}
