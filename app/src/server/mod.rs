//! The HTTPS server: accept, TLS handshake, HTTP/1.1 or HTTP/2 by ALPN, every connection held
//! to its bounds ([`connections`]), graceful shutdown.

mod accept;
mod arrivals;
mod connections;
mod ending;
mod streams;
mod watched;

use std::cell::RefCell;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::Either;
use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tower::{Service, ServiceExt};

use self::connections::{Connections, Registered, Timeouts, Verdict};
use self::ending::{broke_protocol, linger, refused_head};
use self::streams::LocalStreams;
use self::watched::{Going, InRequest, Sending, WatchedIo};
use crate::config::Config;
use crate::telemetry::Telemetry;
use crate::telemetry::connections::Closed;
use crate::tls;

pub(crate) use self::accept::{connection_limit, raise_open_file_limit};

/// What an HTTP/2 stream may buffer for a client that does not read: a response waits
/// for its client's window with at most this much of it in memory.
const H2_SEND_BUFFER: usize = 64 * 1024;
/// How long an HTTP/2 keep-alive ping may go unanswered before the connection is closed.
const H2_PING_TIMEOUT: Duration = Duration::from_secs(20);

/// How long an idle connection told to close (HTTP/2: GOAWAY) may take to go.
const IDLE_CLOSE_WAIT: Duration = Duration::from_secs(1);

/// How the connections behave; from [`crate::config::Config`].
#[derive(Debug, Clone, Copy)]
struct Limits {
    tls_handshake_timeout: Duration,
    shutdown_grace: Duration,
    timeouts: Timeouts,
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
    S: HttpService + Send + Sync + 'static,
    S::Future: Send + 'static,
{
    let limits = Limits {
        tls_handshake_timeout: config.tls_handshake_timeout,
        shutdown_grace: config.shutdown_grace,
        timeouts: Timeouts {
            idle: config.idle_timeout,
            header: config.header_read_timeout,
            write: config.write_timeout,
        },
    };
    let acceptor = TlsAcceptor::from(endpoint.tls.clone());
    let telemetry = endpoint.telemetry.clone();
    // The protocol is known from ALPN once TLS is up, so each connection gets its own
    // protocol's builder directly instead of one that sniffs the first bytes (and then reads
    // every byte of the connection through a rewind buffer). Request heads are timed by the
    // connection's watchdog, which tells a slow head from an idle keep-alive connection; so
    // hyper's own header timer (30 s unless told otherwise, re-armed for every request on a
    // kept-alive connection) is turned off.
    //
    // The middleware answers a head over --max-head-bytes itself, after reading the body it
    // came with, so the client sees the 431 and its route counts it. hyper and h2 refuse a
    // head over twice that while it is still arriving, which bounds what a head held
    // unfinished keeps. validate() holds --max-head-bytes to 1 MiB.
    let hard_head_limit = config.max_head_bytes.saturating_mul(2);
    let max_head = usize::try_from(hard_head_limit).unwrap_or(usize::MAX);
    let mut http1 = http1::Builder::new();
    http1
        .timer(TokioTimer::new())
        .header_read_timeout(None)
        // Without it a head may fill hyper's whole read buffer (about 400 KiB) before 431,
        // and ten thousand connections sending heads slowly would hold 4 GB.
        .max_header_size(max_head)
        .keep_alive(true);
    let http2 = Http2Settings {
        max_head: u32::try_from(hard_head_limit).unwrap_or(u32::MAX),
        max_streams: config.max_streams,
        stream_window: window(config.h2_stream_window),
        connection_window: window(config.h2_connection_window),
        keep_alive_interval: config.idle_timeout / 2,
    };

    let max_connections = accept::connection_limit(config.max_connections);
    let registry = Connections::new(max_connections);
    let arrivals =
        arrivals::Arrivals::new(config.max_connection_rate, config.trusted_proxies.clone());
    tracing::debug!(max_connections, "connection limit");
    let upkeep = tokio::spawn(metrics_upkeep(telemetry.clone()));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut open = JoinSet::new();
    let mut acceptor_loop = accept::Acceptor::new(listener, telemetry.clone());
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            (tcp, peer) = acceptor_loop.next() => {
                if !arrivals.admit(peer.ip()) {
                    telemetry.connections.closed(Closed::OverRate);
                    drop(tcp);
                    continue;
                }
                let Ok(registered) = registry.admit() else {
                    telemetry.connections.closed(Closed::OverLimit);
                    drop(tcp);
                    continue;
                };
                let conn = Connection {
                    acceptor: acceptor.clone(),
                    http1: http1.clone(),
                    http2,
                    router: endpoint.router.connected(peer),
                    telemetry: telemetry.clone(),
                    limits,
                    registered,
                    stop: stop_rx.clone(),
                };
                open.spawn(conn.serve(tcp, peer));
            }
            Some(_) = open.join_next(), if !open.is_empty() => {}
            () = &mut shutdown => break,
        }
    }
    drop(acceptor_loop);
    let in_flight = telemetry.stats.in_flight();
    tracing::info!(in_flight, grace = ?limits.shutdown_grace, "stopped accepting; draining");
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(limits.shutdown_grace, async {
        while open.join_next().await.is_some() {}
    })
    .await;
    upkeep.abort();
    match drained {
        Ok(()) => tracing::info!("all connections closed"),
        Err(_) => {
            tracing::warn!(
                in_flight = telemetry.stats.in_flight(),
                "grace period over; closing the remaining connections"
            );
            open.shutdown().await;
        }
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

/// What a listener can serve: a tower service from requests to axum responses that never fails,
/// told which client each connection is from.
pub(crate) trait HttpService:
    Service<hyper::Request<Incoming>, Response = axum::response::Response, Error = Infallible> + Clone
{
    /// The service for one connection from `peer`. The peer goes with the service rather than
    /// into every request's extensions: a request's first extension allocates their map, and
    /// callgrind counted about 670 instructions a `GET /` for it and its use (BENCHMARKS.md).
    fn connected(&self, peer: SocketAddr) -> Self;
}

/// The worker's router: nothing in it asks who the client is.
impl HttpService for axum::Router {
    fn connected(&self, _peer: SocketAddr) -> Self {
        self.clone()
    }
}

/// How HTTP/2 connections are set up; each gets a builder of its own, whose executor runs its
/// streams inside the connection's task ([`streams`]).
#[derive(Debug, Clone, Copy)]
struct Http2Settings {
    max_head: u32,
    max_streams: u32,
    stream_window: u32,
    connection_window: u32,
    keep_alive_interval: Duration,
}

impl Http2Settings {
    fn builder(self, streams: LocalStreams) -> http2::Builder<LocalStreams> {
        let mut http2 = http2::Builder::new(streams);
        http2
            .timer(TokioTimer::new())
            .max_header_list_size(self.max_head)
            .max_concurrent_streams(self.max_streams)
            .initial_stream_window_size(self.stream_window)
            .initial_connection_window_size(self.connection_window)
            .max_send_buf_size(H2_SEND_BUFFER)
            .keep_alive_interval(Some(self.keep_alive_interval))
            .keep_alive_timeout(H2_PING_TIMEOUT);
        http2
    }
}

struct Connection<S> {
    acceptor: TlsAcceptor,
    http1: http1::Builder,
    http2: Http2Settings,
    router: S,
    telemetry: Arc<Telemetry>,
    limits: Limits,
    registered: Registered,
    stop: watch::Receiver<bool>,
}

/// Why a connection's watchdog stepped in.
enum Stop {
    /// The server is shutting down: finish what is in flight, take nothing new.
    Shutdown,
    Verdict(Verdict),
}

impl<S> Connection<S>
where
    S: HttpService + Send + Sync + 'static,
    S::Future: Send + 'static,
{
    async fn serve(self, tcp: TcpStream, peer: SocketAddr) {
        self.telemetry.connections.opened();
        let telemetry = self.telemetry.clone();
        self.handle(tcp, peer).await;
        telemetry.connections.ended();
    }

    async fn handle(self, tcp: TcpStream, peer: SocketAddr) {
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
            Some(b"http/1.0") => "http/1.0",
            _ => "none",
        };
        self.telemetry.metrics.tls_handshake(version, alpn);

        let activity = self.registered.activity.clone();
        let router = RefCell::new(self.router);
        let on_request = activity.clone();
        let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            let request = InRequest::start(&on_request);
            let answer = call_in_place(&router, req);
            async move {
                let Ok(response) = answer.await;
                Ok::<_, Infallible>(response.map(|body| Sending::new(body, Going::new(request))))
            }
        });
        let io = TokioIo::new(WatchedIo::new(stream, activity.clone()));
        let watchdog = Watchdog {
            activity: activity.clone(),
            timeouts: self.limits.timeouts,
            stop: self.stop,
        };
        // HTTP/2 over TLS is always negotiated by ALPN (RFC 9113, section 3.2); without it
        // the client speaks HTTP/1.1 (or 1.0, which the same code serves).
        let ended = if alpn == "h2" {
            let streams = LocalStreams::default();
            let conn = self
                .http2
                .builder(streams.clone())
                .serve_connection(io, service);
            let mut driven = streams.drive(conn);
            let ended = watchdog
                .guard(
                    std::pin::Pin::new(&mut driven),
                    false,
                    &self.telemetry,
                    |d| {
                        d.get_mut().conn().graceful_shutdown();
                    },
                )
                .await;
            if ended.as_ref().is_some_and(broke_protocol) {
                self.telemetry.connections.closed(Closed::ProtocolError);
            }
            ended.map(|e| e.to_string())
        } else {
            let mut conn = self.http1.serve_connection(io, service);
            let ended = watchdog
                .guard(std::pin::Pin::new(&mut conn), true, &self.telemetry, |c| {
                    c.graceful_shutdown();
                })
                .await;
            if let Some(why) = ended.as_ref().and_then(refused_head) {
                self.telemetry.connections.closed(why);
                // hyper has sent its 400 or 431 and shut its side; what the client is still
                // sending would make the kernel answer with a reset, and the client lose the
                // answer.
                let (tls, _) = conn.into_parts().io.into_inner().into_inner().into_inner();
                linger(tls).await;
            }
            ended.map(|e| e.to_string())
        };
        if let Some(error) = ended {
            tracing::debug!(%peer, %error, "connection ended with an error");
        }
    }
}

/// Calls the connection's own copy of the service when it is ready, as axum's router and the
/// middleware around it always are; otherwise a clone of it, once that is ready. A clone per
/// request would add and drop references to the state every connection shares, each a write
/// to memory both cores contend for.
fn call_in_place<S>(
    service: &RefCell<S>,
    req: hyper::Request<Incoming>,
) -> Either<S::Future, tower::util::Oneshot<S, hyper::Request<Incoming>>>
where
    S: HttpService,
{
    let mut service = service.borrow_mut();
    match service.poll_ready(&mut std::task::Context::from_waker(std::task::Waker::noop())) {
        std::task::Poll::Ready(Ok(())) => Either::Left(service.call(req)),
        std::task::Poll::Pending => Either::Right(service.clone().oneshot(req)),
    }
}

/// Watches one connection while it runs, and steps in when it breaks a bound.
struct Watchdog {
    activity: Arc<connections::Activity>,
    timeouts: Timeouts,
    stop: watch::Receiver<bool>,
}

impl Watchdog {
    /// Runs `conn` to its end, closing it politely (`graceful`) when idle, evicted or at
    /// shutdown, and dropping it when a request head or a response is stuck. `heads`: whether
    /// request heads are timed (HTTP/1.1).
    async fn guard<C, E>(
        mut self,
        mut conn: std::pin::Pin<&mut C>,
        heads: bool,
        telemetry: &Telemetry,
        graceful: impl FnOnce(std::pin::Pin<&mut C>),
    ) -> Option<E>
    where
        C: Future<Output = Result<(), E>>,
    {
        // The watchdog runs as a task of its own, so that each wake-up of the connection (every
        // request, every read) polls one join handle rather than the watchdog's timers.
        let timeouts = self.timeouts;
        let mut watching = tokio::spawn(async move { self.watch(heads).await });
        let stop = tokio::select! {
            // In order: no random draw on each of the connection's wake-ups.
            biased;
            ended = conn.as_mut() => {
                watching.abort();
                return ended.err();
            }
            stop = &mut watching => match stop {
                Ok(stop) => stop,
                // The watchdog cannot panic short of a bug; the connection goes on unwatched.
                Err(_) => return conn.await.err(),
            },
        };
        let closed = match stop {
            Stop::Shutdown => None,
            Stop::Verdict(Verdict::Idle) => Some(Closed::Idle),
            Stop::Verdict(Verdict::Evicted) => Some(Closed::Evicted),
            Stop::Verdict(Verdict::SlowHead) => Some(Closed::HeaderTimeout),
            Stop::Verdict(Verdict::StuckWrite | Verdict::Fine(_)) => Some(Closed::WriteTimeout),
        };
        if let Some(why) = closed {
            telemetry.connections.closed(why);
        }
        match stop {
            Stop::Verdict(Verdict::SlowHead | Verdict::StuckWrite | Verdict::Fine(_)) => None,
            Stop::Shutdown => {
                graceful(conn.as_mut());
                // The server's grace period bounds this wait.
                conn.await.err()
            }
            // Closed to make room: its descriptor is wanted now, so it goes at once.
            Stop::Verdict(Verdict::Evicted) => None,
            Stop::Verdict(_) => {
                graceful(conn.as_mut());
                // Nothing is in flight: the connection ends as soon as its client reads the
                // GOAWAY (HTTP/2) or at once (HTTP/1.1); one that does not is dropped soon.
                match tokio::time::timeout(IDLE_CLOSE_WAIT.min(timeouts.write), conn).await {
                    Ok(ended) => ended.err(),
                    Err(_) => None,
                }
            }
        }
    }

    async fn watch(&mut self, heads: bool) -> Stop {
        loop {
            if *self.stop.borrow() {
                return Stop::Shutdown;
            }
            match self.activity.check(&self.timeouts, heads) {
                Verdict::Fine(next) => {
                    tokio::select! {
                        biased;
                        () = tokio::time::sleep_until(next) => {}
                        () = self.activity.close.notified() => {}
                        changed = self.stop.changed() => {
                            if changed.is_err() {
                                // The server is gone; so is every reason to stop early.
                                std::future::pending::<()>().await;
                            }
                        }
                    }
                }
                verdict => return Stop::Verdict(verdict),
            }
        }
    }
}

/// An HTTP/2 window size: at most 2^31 - 1 bytes (the protocol's limit; the configuration
/// checks the range).
fn window(bytes: u64) -> u32 {
    u32::try_from(bytes).unwrap_or(u32::MAX).min((1 << 31) - 1)
}
