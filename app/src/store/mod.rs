//! The message store behind `/messages`: one trait, two backends, and a handle that measures
//! every operation.
//!
//! - [`embedded`]: a redb database in the data directory, the default. Writes from concurrent
//!   requests are grouped into shared durable commits.
//! - [`redis`]: a Redis server shared by several replicas (`--store redis://host:port/db`).
//!
//! [`Store`] wraps either one with a timeout, `/status` statistics and Prometheus metrics, and
//! [`StoreCheck`] puts it into `/health`.

pub(crate) mod digest;
pub(crate) mod embedded;
pub(crate) mod redis;
mod stats;

use std::fmt::Debug;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

pub(crate) use self::digest::Digest;
pub(crate) use self::stats::OperationSnapshot;
use self::stats::OperationStats;
use crate::config::{Backend, Config};
use crate::health::{Check, CheckResult, CheckStatus, ProbeCache};
use crate::telemetry::metrics::{Metrics, StoreSeries};

/// Opens the backend `config.store` names: the embedded database in the data directory, or
/// a pool of (lazy) Redis connections.
pub(crate) fn open(config: &Config, metrics: &Metrics) -> anyhow::Result<Arc<dyn MessageStore>> {
    Ok(match &config.store {
        Backend::Embedded => Arc::new(embedded::EmbeddedStore::open(
            &config.data_dir,
            metrics.store_commit_batch(),
        )?),
        Backend::Redis(url) => Arc::new(redis::RedisStore::new(
            url,
            config.store_connections,
            config.store_timeout,
        )?),
    })
}

/// Whether a write added a message or found it already there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Put {
    Created,
    Existed,
}

/// Why the store could not answer. Clients see 503 `{"error":"store unavailable"}`, or 507
/// `{"error":"insufficient storage"}` when it is full; the detail goes to the log.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{kind}: {detail}")]
pub(crate) struct StoreError {
    pub kind: ErrorKind,
    pub detail: String,
}

/// The kind of a [`StoreError`], a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// No answer within the store timeout.
    Timeout,
    /// The server could not be reached or the connection broke.
    Connection,
    /// The backend answered with an error, or the disk did.
    Backend,
    /// The backend is out of room: Redis at its `maxmemory`, refusing writes.
    Full,
}

impl ErrorKind {
    pub const ALL: [Self; 4] = [Self::Timeout, Self::Connection, Self::Backend, Self::Full];

    pub fn label(self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::Connection => "connection",
            Self::Backend => "backend",
            Self::Full => "full",
        }
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}

impl StoreError {
    pub(crate) fn new(kind: ErrorKind, detail: impl Into<String>) -> Self {
        Self {
            kind,
            detail: detail.into(),
        }
    }
}

/// A [`StoreError`] with the backend and operation it happened in: what a request's access
/// line says after `store unavailable`.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{backend} {operation}: {error}")]
pub(crate) struct StoreFailure {
    pub backend: &'static str,
    pub operation: &'static str,
    pub error: StoreError,
}

/// A place to keep messages by their SHA-256 digest.
pub(crate) trait MessageStore: Send + Sync + Debug {
    /// `embedded` or `redis`, a metric label.
    fn backend(&self) -> &'static str;
    /// Where the data lives, for `/status` and `/health`: a file or a server (no password).
    fn location(&self) -> String;
    /// Keeps `message` under `digest`, from `client` (the address it is counted by); returns
    /// once it is durable.
    fn put(
        &self,
        digest: Digest,
        message: String,
        client: Option<IpAddr>,
    ) -> BoxFuture<'_, Result<Put, StoreError>>;
    fn get(&self, digest: Digest) -> BoxFuture<'_, Result<Option<String>, StoreError>>;
    /// How many messages the store holds.
    fn count(&self) -> BoxFuture<'_, Result<u64, StoreError>>;
    /// A small durable write through the same path messages take, for `/health`: it fails
    /// while writes fail.
    fn probe(&self) -> BoxFuture<'_, Result<(), StoreError>>;
    /// The bytes of the messages each client added, when this store is on the data
    /// directory's disk and counts them (the embedded store): read at start, so they count in
    /// the clients' shares of the disk again.
    fn stored_by_client(&self) -> Vec<(IpAddr, u64)> {
        Vec::new()
    }
}

/// The operations the store is measured by, in metric and `/status` order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Put,
    Get,
    Count,
}

impl Operation {
    pub const ALL: [Self; 3] = [Self::Put, Self::Get, Self::Count];

    pub fn label(self) -> &'static str {
        match self {
            Self::Put => "put",
            Self::Get => "get",
            Self::Count => "count",
        }
    }
}

/// A backend with a deadline on every operation, measured into `/status` and `/metrics`.
#[derive(Debug, Clone)]
pub(crate) struct Store(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    backend: Arc<dyn MessageStore>,
    timeout: Duration,
    stats: [OperationStats; 3],
    series: StoreSeries,
    probe: ProbeCache,
}

impl Store {
    pub(crate) fn new(
        backend: Arc<dyn MessageStore>,
        timeout: Duration,
        metrics: &Metrics,
    ) -> Self {
        let series = metrics.store_series(backend.backend());
        Self(Arc::new(Inner {
            backend,
            timeout,
            stats: Default::default(),
            series,
            probe: ProbeCache::default(),
        }))
    }

    pub(crate) fn backend(&self) -> &'static str {
        self.0.backend.backend()
    }

    pub(crate) fn location(&self) -> String {
        self.0.backend.location()
    }

    /// Store calls and failed calls since start, every operation together.
    pub(crate) fn totals(&self) -> (u64, u64) {
        self.0
            .stats
            .iter()
            .map(OperationStats::totals)
            .fold((0, 0), |(c, e), (c2, e2)| (c + c2, e + e2))
    }

    pub(crate) async fn put(
        &self,
        digest: Digest,
        message: String,
        client: Option<IpAddr>,
    ) -> Result<Put, StoreFailure> {
        self.measure(Operation::Put, self.0.backend.put(digest, message, client))
            .await
    }

    pub(crate) async fn get(&self, digest: Digest) -> Result<Option<String>, StoreFailure> {
        self.measure(Operation::Get, self.0.backend.get(digest))
            .await
    }

    /// The number of messages; also sets the `glassbox_store_messages` gauge.
    pub(crate) async fn count(&self) -> Result<u64, StoreFailure> {
        let count = self
            .measure(Operation::Count, self.0.backend.count())
            .await?;
        self.0.series.messages(count);
        Ok(count)
    }

    /// A durable write of a probe row through the path messages take (at most once per
    /// [`crate::health::PROBE_EVERY`]; meanwhile the last verdict).
    pub(crate) async fn probe(&self) -> Result<(), String> {
        self.0
            .probe
            .run(|| async {
                match tokio::time::timeout(self.0.timeout, self.0.backend.probe()).await {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(err)) => Err(err.to_string()),
                    Err(_) => Err(format!("no answer within {:?}", self.0.timeout)),
                }
            })
            .await
    }

    async fn measure<T>(
        &self,
        operation: Operation,
        work: BoxFuture<'_, Result<T, StoreError>>,
    ) -> Result<T, StoreFailure> {
        let started = Instant::now();
        let result = match tokio::time::timeout(self.0.timeout, work).await {
            Ok(result) => result,
            Err(_) => Err(StoreError::new(
                ErrorKind::Timeout,
                format!("no answer within {:?}", self.0.timeout),
            )),
        };
        let elapsed = started.elapsed();
        let error = result.as_ref().err().map(|e| e.kind);
        if error.is_some() && operation == Operation::Put {
            self.0.probe.forget();
        }
        self.0.stats[operation as usize].record(elapsed, error.is_some());
        self.0
            .series
            .operation(operation, error, elapsed.as_secs_f64());
        // The failure is counted here; the request it failed goes on to say why in its own
        // access line.
        result.map_err(|error| StoreFailure {
            backend: self.backend(),
            operation: operation.label(),
            error,
        })
    }

    /// What `/status` shows about the store. Asks it for its message count, so an
    /// unreachable store shows up here as it does in `/health`.
    pub(crate) async fn status(&self) -> StoreStatus {
        let (messages, error) = match self.count().await {
            Ok(n) => (Some(n), None),
            Err(err) => (None, Some(err.to_string())),
        };
        StoreStatus {
            backend: self.backend(),
            location: self.location(),
            messages,
            error,
            operations: Operation::ALL
                .iter()
                .map(|op| self.0.stats[*op as usize].snapshot(op.label()))
                .collect(),
        }
    }
}

/// The store part of `/status`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct StoreStatus {
    /// `embedded` or `redis`.
    pub backend: &'static str,
    /// The database file or the Redis server.
    pub location: String,
    /// Messages held; absent when the store cannot be reached.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub messages: Option<u64>,
    /// Why the store could not be asked, when it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Per operation, since start: count, failures and latency from HDR histograms.
    pub operations: Vec<OperationSnapshot>,
}

/// `/health`'s view of the store: it passes when the store answers a count in time and a
/// probe write goes through.
#[derive(Debug, Clone)]
pub(crate) struct StoreCheck {
    pub store: Store,
    /// The data directory's filesystem, for the embedded store: the check fails while its
    /// free space is below `--min-free-disk`.
    pub disk: Option<Arc<crate::disk::Disk>>,
}

impl Check for StoreCheck {
    fn name(&self) -> &'static str {
        "store"
    }

    fn run(&self) -> BoxFuture<'_, CheckResult> {
        Box::pin(async move {
            let store = &self.store;
            let (backend, location) = (store.backend(), store.location());
            let messages = match store.count().await {
                Ok(messages) => messages,
                Err(err) => {
                    return CheckResult::new(
                        CheckStatus::Fail,
                        json!({"backend": backend, "location": location, "error": err.to_string()}),
                    );
                }
            };
            let probe = match &self.disk {
                Some(disk) => match disk.room_for(0) {
                    Ok(()) => store.probe().await,
                    Err(why) => Err(why),
                },
                None => store.probe().await,
            };
            match probe {
                Ok(()) => CheckResult::new(
                    CheckStatus::Pass,
                    json!({"backend": backend, "location": location, "messages": messages, "write": "ok"}),
                ),
                Err(err) => CheckResult::new(
                    CheckStatus::Fail,
                    json!({"backend": backend, "location": location, "messages": messages,
                        "error": format!("a probe write failed: {err}")}),
                ),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Hangs;
    impl MessageStore for Hangs {
        fn backend(&self) -> &'static str {
            "hangs"
        }
        fn location(&self) -> String {
            "nowhere".into()
        }
        fn put(
            &self,
            _: Digest,
            _: String,
            _: Option<IpAddr>,
        ) -> BoxFuture<'_, Result<Put, StoreError>> {
            Box::pin(std::future::pending())
        }
        fn get(&self, _: Digest) -> BoxFuture<'_, Result<Option<String>, StoreError>> {
            Box::pin(std::future::pending())
        }
        fn count(&self) -> BoxFuture<'_, Result<u64, StoreError>> {
            Box::pin(std::future::pending())
        }
        fn probe(&self) -> BoxFuture<'_, Result<(), StoreError>> {
            Box::pin(std::future::pending())
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_store_that_never_answers_times_out_and_is_counted() {
        let metrics = Metrics::new();
        let store = Store::new(Arc::new(Hangs), Duration::from_secs(1), &metrics);
        let err = store
            .put(Digest::of("x"), "x".into(), None)
            .await
            .expect_err("times out");
        assert_eq!(err.error.kind, ErrorKind::Timeout);
        assert_eq!(err.to_string(), "hangs put: timeout: no answer within 1s");
        let status = store.status().await;
        assert!(status.error.unwrap().starts_with("hangs count: timeout"));
        let put = &status.operations[0];
        assert_eq!((put.operation, put.count, put.errors), ("put", 1, 1));
        let text = metrics.render(0);
        assert!(
            text.contains(
                r#"glassbox_store_errors_total{backend="hangs",operation="put",kind="timeout"} 1"#
            ),
            "{text}"
        );
    }
}
