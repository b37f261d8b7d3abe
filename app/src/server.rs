//! The HTTPS server: accept, TLS handshake, HTTP/1.1 or HTTP/2 by ALPN, graceful shutdown.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tower::{Service, ServiceExt};

use crate::config::Config;
use crate::telemetry::Telemetry;
use crate::tls;

/// How the connections behave; from [`crate::config::Config`].
#[derive(Debug, Clone, Copy)]
struct Limits {
    header_read_timeout: Duration,
    tls_handshake_timeout: Duration,
    shutdown_grace: Duration,
}

/// What a listener serves: a router (or a service around one) behind TLS, and where its
/// connections are counted.
#[derive(Debug, Clone)]
pub(crate) struct Endpoint<S = axum::Router> {
    pub router: S,
    pub tls: Arc<rustls::ServerConfig>,
    pub telemetry: Arc<Telemetry>,
}

/// Serves `endpoint` on `listener` until `shutdown` completes, then stops accepting and gives
/// in-flight requests the configured grace period to finish.
pub(crate) async fn run<S>(
    listener: TcpListener,
    endpoint: Endpoint<S>,
    config: &Config,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()>
where
    S: HttpService + Clone + Send + Sync + 'static,
    S::Future: Send + 'static,
{
    let limits = Limits {
        header_read_timeout: config.header_read_timeout,
        tls_handshake_timeout: config.tls_handshake_timeout,
        shutdown_grace: config.shutdown_grace,
    };
    let acceptor = TlsAcceptor::from(endpoint.tls.clone());
    let telemetry = endpoint.telemetry.clone();
    // The protocol is known from ALPN once TLS is up, so each connection gets its own
    // protocol's builder directly instead of one that sniffs the first bytes (and then reads
    // every byte of the connection through a rewind buffer).
    let mut http1 = http1::Builder::new();
    http1
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    let mut http2 = http2::Builder::new(TokioExecutor::new());
    http2.timer(TokioTimer::new());

    let upkeep = tokio::spawn(metrics_upkeep(telemetry.clone()));
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (tcp, peer) = match accepted {
                    Ok(conn) => conn,
                    Err(err) => {
                        // Usually EMFILE: back off instead of spinning.
                        tracing::warn!(error = %err, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let conn = Connection {
                    acceptor: acceptor.clone(),
                    http1: http1.clone(),
                    http2: http2.clone(),
                    router: endpoint.router.clone(),
                    telemetry: telemetry.clone(),
                    limits,
                };
                tokio::spawn(conn.serve(tcp, peer, graceful.watcher()));
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    let in_flight = telemetry.stats.in_flight();
    tracing::info!(in_flight, grace = ?limits.shutdown_grace, "stopped accepting; draining");
    let drained = tokio::time::timeout(limits.shutdown_grace, graceful.shutdown()).await;
    upkeep.abort();
    match drained {
        Ok(()) => tracing::info!("all connections closed"),
        Err(_) => tracing::warn!(
            in_flight = telemetry.stats.in_flight(),
            "grace period over; closing the remaining connections"
        ),
    }
    Ok(())
}

async fn metrics_upkeep(telemetry: Arc<Telemetry>) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tick.tick().await;
        telemetry.metrics.upkeep();
    }
}

/// What a listener can serve: a tower service from requests to axum responses that never fails.
pub(crate) trait HttpService:
    Service<hyper::Request<Incoming>, Response = axum::response::Response, Error = Infallible>
{
}

impl<S> HttpService for S where
    S: Service<hyper::Request<Incoming>, Response = axum::response::Response, Error = Infallible>
{
}

struct Connection<S> {
    acceptor: TlsAcceptor,
    http1: http1::Builder,
    http2: http2::Builder<TokioExecutor>,
    router: S,
    telemetry: Arc<Telemetry>,
    limits: Limits,
}

impl<S> Connection<S>
where
    S: HttpService + Clone + Send + Sync + 'static,
    S::Future: Send + 'static,
{
    async fn serve(
        self,
        tcp: TcpStream,
        peer: SocketAddr,
        watcher: hyper_util::server::graceful::Watcher,
    ) {
        let _ = tcp.set_nodelay(true);
        let handshake =
            tokio::time::timeout(self.limits.tls_handshake_timeout, self.acceptor.accept(tcp))
                .await;
        let stream = match handshake {
            Ok(Ok(stream)) => stream,
            Ok(Err(err)) => {
                let reason = tls::failure_reason(&err);
                self.telemetry.metrics.tls_failure(reason);
                tracing::debug!(%peer, reason, error = %err, "TLS handshake failed");
                return;
            }
            Err(_) => {
                self.telemetry.metrics.tls_failure("timeout");
                tracing::debug!(%peer, "TLS handshake timed out");
                return;
            }
        };
        let (_, session) = stream.get_ref();
        let version = match session.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3",
            Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2",
            _ => "other",
        };
        let alpn = match session.alpn_protocol() {
            Some(b"h2") => "h2",
            Some(b"http/1.1") => "http/1.1",
            _ => "none",
        };
        self.telemetry.metrics.tls_handshake(version, alpn);

        let router = self.router;
        let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            router.clone().oneshot(req)
        });
        let io = TokioIo::new(stream);
        // HTTP/2 over TLS is always negotiated by ALPN (RFC 9113, section 3.2); without it
        // the client speaks HTTP/1.1.
        let ended = if alpn == "h2" {
            watcher
                .watch(self.http2.serve_connection(io, service))
                .await
                .err()
                .map(|err| err.to_string())
        } else {
            watcher
                .watch(self.http1.serve_connection(io, service))
                .await
                .err()
                .map(|err| err.to_string())
        };
        if let Some(error) = ended {
            tracing::debug!(%peer, %error, "connection ended with an error");
        }
    }
}
