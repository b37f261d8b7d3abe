//! TLS clients that trust only a given CA: no system roots, no "accept invalid certificates".

use std::path::Path;
use std::time::Duration;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// The process's rustls crypto provider, as glassbox installs it.
pub fn install_provider() {
    glassbox::tls::install_crypto_provider();
}

/// The certificates of the PEM file `ca`.
pub fn root_store(ca: &Path) -> rustls::RootCertStore {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).expect("CA file") {
        roots.add(cert.expect("CA pem")).expect("CA accepted");
    }
    roots
}

/// A rustls client configuration that trusts only `ca`.
pub fn tls_client_config(ca: &Path) -> rustls::ClientConfig {
    install_provider();
    rustls::ClientConfig::builder()
        .with_root_certificates(root_store(ca))
        .with_no_client_auth()
}

/// An HTTP/1.1 client that trusts only `ca`.
pub fn client_trusting(ca: &Path) -> reqwest::Client {
    client_with(tls_client_config(ca))
}

/// Like [`client_trusting`], offering HTTP/2 and HTTP/1.1 by ALPN as browsers and curl do.
pub fn alpn_client_trusting(ca: &Path) -> reqwest::Client {
    let mut config = tls_client_config(ca);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    client_with(config)
}

/// Like [`client_trusting`], connecting from the loopback address `from` (such as
/// 127.0.0.2): another client, as the service counts clients.
pub fn client_from(ca: &Path, from: std::net::IpAddr) -> reqwest::Client {
    builder(tls_client_config(ca))
        .local_address(from)
        .build()
        .expect("client builds")
}

fn client_with(config: rustls::ClientConfig) -> reqwest::Client {
    builder(config).build().expect("client builds")
}

fn builder(config: rustls::ClientConfig) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .tls_backend_preconfigured(config)
        .timeout(Duration::from_secs(60))
        // Well below the service's idle timeout (30 s by default): a pooled connection is
        // never reused just as the service closes it.
        .pool_idle_timeout(Duration::from_secs(5))
        // What is on the wire, whatever features another crate of the workspace turns on
        // in reqwest: no Accept-Encoding added, no body decoded behind the test's back.
        .no_gzip()
        .no_brotli()
        .no_zstd()
        .no_deflate()
}

/// Sends `request`; its status and JSON body (`null` when the body is not JSON).
pub async fn answer(request: reqwest::RequestBuilder) -> (reqwest::StatusCode, serde_json::Value) {
    let response = request.send().await.expect("the request completes");
    let status = response.status();
    (status, response.json().await.unwrap_or_default())
}
