//! The Redis store, for replicas that share their messages: one hash, `glassbox:messages`,
//! digest to message, so a write is one `HSETNX` and the count one `HLEN`.
//!
//! Connections come from a small pool of multiplexed connections, each opened on first use and
//! reopened by itself when it breaks, with connect and response timeouts. While Redis is away
//! every operation fails fast with a connection error (the service answers 503); once it is
//! back the next operations reconnect.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::future::BoxFuture;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, RedisError};

use super::{Digest, ErrorKind, MessageStore, Put, StoreError};
use crate::redis_memory;

/// The hash every message lives in.
pub(crate) const KEY: &str = "glassbox:messages";
/// The health probe's key: written with a 60 s expiry by each `/health` (at most once a second).
pub(crate) const PROBE_KEY: &str = "glassbox:health-probe";

/// A pool of self-healing connections to one Redis server.
#[derive(Debug)]
pub(crate) struct RedisStore {
    connections: Vec<ConnectionManager>,
    next: AtomicUsize,
    location: String,
}

impl RedisStore {
    /// Prepares `connections` lazy connections to `url`; nothing is dialled until the first
    /// operation, so the service starts (unhealthy) while Redis is down.
    pub(crate) fn new(
        url: &str,
        connections: usize,
        timeout: Duration,
    ) -> Result<Self, StoreError> {
        let client =
            Client::open(url).map_err(|e| StoreError::new(ErrorKind::Backend, e.to_string()))?;
        let info = client.get_connection_info();
        let location = format!("redis://{}/{}", info.addr(), info.redis_settings().db());
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(2)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(timeout);
        let connections = (0..connections.max(1))
            .map(|_| ConnectionManager::new_lazy_with_config(client.clone(), config.clone()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| classify(&e))?;
        redis_memory::warn_if_evicting(connections[0].clone(), "messages", location.clone());
        Ok(Self {
            connections,
            next: AtomicUsize::new(0),
            location,
        })
    }

    /// The next connection, round robin.
    fn connection(&self) -> ConnectionManager {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.connections.len();
        self.connections[i].clone()
    }
}

fn classify(err: &RedisError) -> StoreError {
    let kind = if redis_memory::is_full(err) {
        ErrorKind::Full
    } else if err.is_timeout() {
        ErrorKind::Timeout
    } else if err.is_io_error()
        || err.is_connection_dropped()
        || err.is_connection_refusal()
        || err.is_unrecoverable_error()
    {
        ErrorKind::Connection
    } else {
        ErrorKind::Backend
    };
    StoreError::new(kind, err.to_string())
}

impl MessageStore for RedisStore {
    fn backend(&self) -> &'static str {
        "redis"
    }

    fn location(&self) -> String {
        self.location.clone()
    }

    /// The message is in Redis's memory, not on the data directory's disk: its client is not
    /// counted.
    fn put(
        &self,
        digest: Digest,
        message: String,
        _client: Option<std::net::IpAddr>,
    ) -> BoxFuture<'_, Result<Put, StoreError>> {
        let mut conn = self.connection();
        Box::pin(async move {
            let added: bool = redis::cmd("HSETNX")
                .arg(KEY)
                .arg(digest.to_hex())
                .arg(message)
                .query_async(&mut conn)
                .await
                .map_err(|e| classify(&e))?;
            Ok(if added { Put::Created } else { Put::Existed })
        })
    }

    fn get(&self, digest: Digest) -> BoxFuture<'_, Result<Option<String>, StoreError>> {
        let mut conn = self.connection();
        Box::pin(async move {
            redis::cmd("HGET")
                .arg(KEY)
                .arg(digest.to_hex())
                .query_async(&mut conn)
                .await
                .map_err(|e| classify(&e))
        })
    }

    fn count(&self) -> BoxFuture<'_, Result<u64, StoreError>> {
        let mut conn = self.connection();
        Box::pin(async move {
            redis::cmd("HLEN")
                .arg(KEY)
                .query_async(&mut conn)
                .await
                .map_err(|e| classify(&e))
        })
    }

    /// A key that expires by itself: refused like a message when Redis refuses writes (out
    /// of memory under `noeviction`, or `MISCONF` after a failed save on a full disk).
    fn probe(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        let mut conn = self.connection();
        Box::pin(async move {
            redis::cmd("SET")
                .arg(PROBE_KEY)
                .arg(crate::tasks::now_ms())
                .arg("PX")
                .arg(60_000)
                .query_async::<()>(&mut conn)
                .await
                .map_err(|e| classify(&e))
        })
    }
}
