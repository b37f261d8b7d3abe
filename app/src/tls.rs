//! rustls server configuration (TLS 1.2 and 1.3, ALPN h2 and http/1.1) and handshake failure reasons.

use std::io;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::certs::CertPaths;

/// Installs the process-wide rustls crypto provider. Call once, first thing in `main`.
pub fn install_crypto_provider() {
    // Err only means one is installed already, which is what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Builds the server configuration from `server.crt` and `server.key` in `certs_dir`.
pub fn server_config(certs_dir: &Path) -> Result<Arc<ServerConfig>> {
    let paths = CertPaths::in_dir(certs_dir);
    let chain = CertificateDer::pem_file_iter(&paths.server_cert)
        .with_context(|| format!("reading {}", paths.server_cert.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("parsing {}", paths.server_cert.display()))?;
    let key = PrivateKeyDer::from_pem_file(&paths.server_key)
        .with_context(|| format!("reading {}", paths.server_key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .context("choosing TLS versions")?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .context("loading the server certificate and key")?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Why a handshake failed, as a small fixed set fit for a metric label.
pub fn failure_reason(err: &io::Error) -> &'static str {
    use rustls::Error as E;
    match err.get_ref().and_then(|e| e.downcast_ref::<E>()) {
        Some(E::PeerIncompatible(_)) => "peer_incompatible",
        Some(E::AlertReceived(_)) => "alert_received",
        Some(E::InvalidMessage(_)) => "invalid_message",
        Some(E::PeerMisbehaved(_)) => "peer_misbehaved",
        Some(E::NoApplicationProtocol) => "no_application_protocol",
        Some(_) => "tls_error",
        None if err.kind() == io::ErrorKind::UnexpectedEof => "eof",
        None => "io_error",
    }
}
