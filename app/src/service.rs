//! The commands end to end: `serve` runs until a signal, `certs` prepares certificates.

use anyhow::{Context, Result};
use tokio::net::TcpListener;

use crate::app::App;
use crate::certs::{self, Outcome};
use crate::config::Config;
use crate::server;

/// Builds the service, binds, and serves until SIGINT or SIGTERM.
pub async fn serve(config: Config) -> Result<()> {
    let bind = config.bind;
    let app = App::build(config)?;
    let listener = TcpListener::bind(bind)
        .await
        .with_context(|| format!("binding {bind}"))?;
    let local = listener.local_addr()?;
    tracing::info!(
        addr = %local,
        url = %format!("https://{}", display_host(local)),
        version = env!("CARGO_PKG_VERSION"),
        "listening"
    );
    server::run(listener, app, shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

fn display_host(addr: std::net::SocketAddr) -> String {
    if addr.ip().is_loopback() {
        format!("localhost:{}", addr.port())
    } else {
        addr.to_string()
    }
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut sig) => {
                sig.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!(signal = "SIGINT", "shutting down"),
        () = terminate => tracing::info!(signal = "SIGTERM", "shutting down"),
    }
}

/// `glassbox certs`: creates or renews the certificates and says what it did.
pub fn certs(config: &Config) -> Result<String> {
    let (outcome, info) = certs::ensure(&config.certs_dir, &config.cert_names)?;
    let dir = config.certs_dir.display();
    let what = match outcome {
        Outcome::Reused => "certificates are valid; nothing to do",
        Outcome::ServerIssued => "issued a new server certificate with the existing CA",
        Outcome::CaCreated => "created a new CA and server certificate; trust the new ca.crt",
    };
    Ok(format!(
        "{what}\n  CA:     {dir}/ca.crt\n  server: {dir}/server.crt (expires {}, names: {})\n  key:    {dir}/server.key\ntry: curl --cacert {dir}/ca.crt https://localhost:{}/",
        info.not_after.date(),
        info.names.join(", "),
        config.bind.port(),
    ))
}
