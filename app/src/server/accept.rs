//! Accepting connections without running out of file descriptors, and shedding (accepting and
//! closing at once) when it happens anyway, so the accept loop neither spins nor leaves
//! clients waiting in the backlog.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};

use crate::telemetry::Telemetry;
use crate::telemetry::connections::Closed;

/// Descriptors kept for everything that is not a client connection: log files, the store,
/// task files, Redis connections, the spare below.
const RESERVED_DESCRIPTORS: u64 = 64;
/// How often a shortage of descriptors is logged (with the count since the last line).
const WARN_EVERY: Duration = Duration::from_secs(10);

/// Raises the soft open-file limit to the hard limit, as servers do at start (nginx's
/// `worker_rlimit_nofile`); returns the soft limit in force afterwards.
pub(crate) fn raise_open_file_limit() -> Option<u64> {
    #[cfg(target_os = "linux")]
    {
        use rustix::process::{Resource, getrlimit, setrlimit};
        let mut limit = getrlimit(Resource::Nofile);
        if limit.current != limit.maximum {
            limit.current = limit.maximum;
            if let Err(err) = setrlimit(Resource::Nofile, limit) {
                tracing::warn!(error = %err, "could not raise the open-file limit");
            }
        }
        getrlimit(Resource::Nofile).current
    }
    #[cfg(not(target_os = "linux"))]
    None
}

/// `--max-connections`, held below the open-file limit so that accepting never fails.
pub(crate) fn connection_limit(configured: usize) -> usize {
    #[cfg(target_os = "linux")]
    let soft = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
    #[cfg(not(target_os = "linux"))]
    let soft: Option<u64> = None;
    match soft {
        Some(soft) => {
            let room = soft.saturating_sub(RESERVED_DESCRIPTORS).max(1);
            configured.min(usize::try_from(room).unwrap_or(usize::MAX))
        }
        None => configured,
    }
}

/// Accepts connections; when descriptors run out, frees a spare one to accept and close the
/// waiting connection (so its client hears at once instead of timing out), then takes the
/// spare back.
pub(crate) struct Acceptor {
    listener: TcpListener,
    telemetry: Arc<Telemetry>,
    spare: Option<std::fs::File>,
    shed_since_warning: u64,
    warned_at: Option<Instant>,
}

impl Acceptor {
    pub(crate) fn new(listener: TcpListener, telemetry: Arc<Telemetry>) -> Self {
        Self {
            listener,
            telemetry,
            spare: spare(),
            shed_since_warning: 0,
            warned_at: None,
        }
    }

    /// The next connection to serve.
    pub(crate) async fn next(&mut self) -> (TcpStream, SocketAddr) {
        loop {
            match self.listener.accept().await {
                Ok(conn) => return conn,
                Err(err) if is_out_of_descriptors(&err) => self.shed(&err).await,
                Err(err) => {
                    // ECONNABORTED and the like: that one client's problem.
                    tracing::debug!(error = %err, "accept failed");
                }
            }
        }
    }

    async fn shed(&mut self, err: &std::io::Error) {
        self.spare = None;
        if let Ok((tcp, _)) = self.listener.accept().await {
            drop(tcp);
            self.telemetry.connections.closed(Closed::NoDescriptors);
            self.shed_since_warning += 1;
        }
        self.spare = spare();
        if self.spare.is_none() {
            // Not even one descriptor came back: wait for connections to close.
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let due = self.warned_at.is_none_or(|at| at.elapsed() >= WARN_EVERY);
        if due {
            tracing::warn!(
                error = %err,
                shed = self.shed_since_warning,
                "out of file descriptors: closing new connections at once"
            );
            self.warned_at = Some(Instant::now());
            self.shed_since_warning = 0;
        }
    }
}

fn spare() -> Option<std::fs::File> {
    std::fs::File::open("/dev/null").ok()
}

fn is_out_of_descriptors(err: &std::io::Error) -> bool {
    // EMFILE (the process's limit) and ENFILE (the system's).
    matches!(err.raw_os_error(), Some(24 | 23))
}
