//! The message store as a store fault sees it: each call asks the active faults first, and an
//! affected call fails the way a lost Redis connection does (or waits, for a slow store).
//! Everything above it, the timeout, the metrics, `/health` and the 503, is the real path.

use std::sync::Arc;

use futures_util::future::BoxFuture;

use super::{Faults, StoreInjection};
use crate::store::{Digest, ErrorKind, MessageStore, Put, StoreError};

/// A store whose calls the active store faults may fail or slow.
#[derive(Debug)]
pub(crate) struct FaultyStore {
    inner: Arc<dyn MessageStore>,
    faults: Faults,
}

impl FaultyStore {
    pub(crate) fn wrap(inner: Arc<dyn MessageStore>, faults: Faults) -> Arc<dyn MessageStore> {
        Arc::new(Self { inner, faults })
    }

    /// Runs `call` unless a store fault fails it first, after any delay one adds.
    fn guarded<'a, T: Send + 'a>(
        &'a self,
        call: impl FnOnce() -> BoxFuture<'a, Result<T, StoreError>> + Send + 'a,
    ) -> BoxFuture<'a, Result<T, StoreError>> {
        match self.faults.on_store_call() {
            None => call(),
            Some(StoreInjection::Fail(fault)) => Box::pin(async move {
                Err(StoreError::new(
                    ErrorKind::Connection,
                    format!("injected fault {fault}"),
                ))
            }),
            Some(StoreInjection::Delay(delay)) => Box::pin(async move {
                tokio::time::sleep(delay).await;
                call().await
            }),
        }
    }
}

impl MessageStore for FaultyStore {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }

    fn location(&self) -> String {
        self.inner.location()
    }

    fn put(
        &self,
        digest: Digest,
        message: String,
        client: Option<std::net::IpAddr>,
    ) -> BoxFuture<'_, Result<Put, StoreError>> {
        self.guarded(move || self.inner.put(digest, message, client))
    }

    fn get(&self, digest: Digest) -> BoxFuture<'_, Result<Option<String>, StoreError>> {
        self.guarded(move || self.inner.get(digest))
    }

    fn count(&self) -> BoxFuture<'_, Result<u64, StoreError>> {
        self.guarded(move || self.inner.count())
    }

    fn probe(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        self.guarded(move || self.inner.probe())
    }
}
