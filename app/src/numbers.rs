//! The DLG seed's `/total`: fetch numbers from a "numbers API", sum them.
//!
//! The API is a trait; the simulated implementation waits (default 1 s) and then yields
//! 0..=count in chunks, generated lazily so a large count costs CPU, not memory. The sum runs on
//! the compute pool, never on the async workers, and concurrent requests share one fetch and
//! one sum: a request that arrives while a total is being computed waits for that total.

use std::fmt::Debug;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};

use crate::compute::{ComputeError, ComputePool};

/// Numbers arrive in chunks of this many.
const CHUNK: u64 = 64 * 1024;

/// A source of numbers to sum. The simulated one always answers; a real one's failures would
/// be a [`TotalError`] variant of their own.
pub(crate) trait NumbersApi: Send + Sync + Debug {
    /// Fetches the numbers; the chunks are consumed on the compute pool.
    fn fetch(&self) -> BoxFuture<'_, Numbers>;
}

/// Why `/total` has no total (the client sees it after `numbers API failed: `). Cloned to every
/// caller that shares the computation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum TotalError {
    #[error("the total does not fit in 64 bits")]
    Overflow,
    #[error(transparent)]
    Compute(#[from] ComputeError),
}

/// The numbers a fetch returned, as chunks.
pub(crate) struct Numbers(Box<dyn Iterator<Item = Vec<u64>> + Send>);

impl Debug for Numbers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Numbers(..)")
    }
}

impl Numbers {
    pub(crate) fn from_chunks(chunks: impl Iterator<Item = Vec<u64>> + Send + 'static) -> Self {
        Self(Box::new(chunks))
    }

    /// The exact sum; `None` if it does not fit in a u64.
    pub(crate) fn sum(mut self) -> Option<u64> {
        self.0.try_fold(0u64, |total, chunk| {
            chunk.iter().try_fold(total, |t, &x| t.checked_add(x))
        })
    }
}

/// The simulated API: answers 0..=count after `latency`.
#[derive(Debug, Clone)]
pub(crate) struct SimulatedNumbers {
    pub latency: Duration,
    pub count: u64,
}

impl NumbersApi for SimulatedNumbers {
    fn fetch(&self) -> BoxFuture<'_, Numbers> {
        let (latency, last) = (self.latency, self.count);
        Box::pin(async move {
            tokio::time::sleep(latency).await;
            let chunks = (0..=last / CHUNK).map(move |i| {
                let start = i * CHUNK;
                let end = (start + CHUNK - 1).min(last);
                (start..=end).collect::<Vec<u64>>()
            });
            Numbers::from_chunks(chunks)
        })
    }
}

type TotalFuture = Shared<BoxFuture<'static, Result<u64, TotalError>>>;

/// `/total`'s engine: one fetch and one sum in flight at a time, shared by every caller.
#[derive(Debug)]
pub(crate) struct Totals {
    api: Arc<dyn NumbersApi>,
    pool: ComputePool,
    in_flight: Mutex<Option<TotalFuture>>,
}

impl Totals {
    pub(crate) fn new(api: Arc<dyn NumbersApi>, pool: ComputePool) -> Self {
        Self {
            api,
            pool,
            in_flight: Mutex::new(None),
        }
    }

    /// The total, joining a computation already under way if there is one.
    pub(crate) async fn total(&self) -> Result<u64, TotalError> {
        let future = {
            let mut slot = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
            match slot.as_ref() {
                Some(running) if running.peek().is_none() => running.clone(),
                _ => {
                    let api = self.api.clone();
                    let pool = self.pool.clone();
                    let fresh = async move {
                        let numbers = api.fetch().await;
                        pool.run(move || numbers.sum())
                            .await?
                            .ok_or(TotalError::Overflow)
                    }
                    .boxed()
                    .shared();
                    *slot = Some(fresh.clone());
                    fresh
                }
            }
        };
        future.await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn sums_zero_to_a_million() {
        let api = SimulatedNumbers {
            latency: Duration::ZERO,
            count: 1_000_000,
        };
        let totals = Totals::new(Arc::new(api), ComputePool::new(2));
        assert_eq!(totals.total().await, Ok(500_000_500_000));
    }

    #[tokio::test]
    async fn chunk_edges_are_exact() {
        for count in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK] {
            let api = SimulatedNumbers {
                latency: Duration::ZERO,
                count,
            };
            let sum = api.fetch().await.sum().unwrap();
            assert_eq!(sum, count * (count + 1) / 2, "count {count}");
        }
    }

    #[test]
    fn overflow_is_reported_not_wrapped() {
        let numbers = Numbers::from_chunks(vec![vec![u64::MAX, 1]].into_iter());
        assert_eq!(numbers.sum(), None);
    }

    #[derive(Debug, Default)]
    struct Counting(AtomicUsize);
    impl NumbersApi for Counting {
        fn fetch(&self) -> BoxFuture<'_, Numbers> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Box::pin(async {
                tokio::time::sleep(Duration::from_millis(200)).await;
                Numbers::from_chunks(vec![vec![1, 2, 3]].into_iter())
            })
        }
    }

    #[tokio::test]
    async fn concurrent_callers_share_one_fetch() {
        let api = Arc::new(Counting::default());
        let totals = Arc::new(Totals::new(api.clone(), ComputePool::new(1)));
        let calls: Vec<_> = (0..20)
            .map(|_| {
                let totals = totals.clone();
                tokio::spawn(async move { totals.total().await })
            })
            .collect();
        for call in calls {
            assert_eq!(call.await.unwrap(), Ok(6));
        }
        assert_eq!(
            api.0.load(Ordering::SeqCst),
            1,
            "one fetch for twenty callers"
        );
        // A later caller starts a new one.
        assert_eq!(totals.total().await, Ok(6));
        assert_eq!(api.0.load(Ordering::SeqCst), 2);
    }
}
