//! rustls server configuration (TLS 1.2 and 1.3, ALPN h2, http/1.1 and http/1.0) and handshake failure
//! reasons; `identity`: the served certificate, reloadable; `reload`: when to reload it.

use std::io;
use std::sync::Arc;

use anyhow::{Context, Result};
use rustls::ServerConfig;

pub mod identity;
pub mod reload;

pub use identity::{Identity, Source};

/// Installs the process-wide rustls crypto provider. Call once, first thing in `main`.
pub fn install_crypto_provider() {
    // Err only means one is installed already, which is what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Builds the server configuration around `identity`, which picks the certificate for each
/// handshake (so a reloaded pair needs no new configuration).
pub fn server_config(identity: Arc<Identity>) -> Result<Arc<ServerConfig>> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .context("choosing TLS versions")?
        .with_no_client_auth()
        .with_cert_resolver(identity);
    // In the server's order of preference. A client that offers none of them (curl
    // `--http1.0` offers only `http/1.0`) would otherwise have its handshake refused with
    // `no_application_protocol`.
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec(), b"http/1.0".to_vec()];
    Ok(Arc::new(config))
}

/// The crypto provider every TLS configuration and key uses: *ring*.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
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
