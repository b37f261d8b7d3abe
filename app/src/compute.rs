//! The compute pool: CPU-heavy work runs on tokio's blocking threads, at most `threads` jobs at
//! once, so it never stalls the async workers that answer other requests and cannot pile up.

use std::sync::Arc;

use tokio::sync::Semaphore;

/// Why a job did not run to its end.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ComputeError {
    #[error("the compute pool is closed")]
    Closed,
    /// The job panicked (or its thread was cancelled); the panic's message.
    #[error("the compute job failed: {0}")]
    Failed(String),
}

/// A bounded gate in front of `spawn_blocking`.
#[derive(Debug, Clone)]
pub struct ComputePool {
    permits: Arc<Semaphore>,
}

impl ComputePool {
    pub fn new(threads: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(threads.max(1))),
        }
    }

    /// Runs `job` off the async workers once a slot is free.
    pub async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ComputeError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| ComputeError::Closed)?;
        tokio::task::spawn_blocking(job)
            .await
            .map_err(|e| ComputeError::Failed(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn never_runs_more_than_its_size() {
        let pool = ComputePool::new(2);
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let jobs: Vec<_> = (0..8)
            .map(|_| {
                let (pool, running, peak) = (pool.clone(), running.clone(), peak.clone());
                tokio::spawn(async move {
                    pool.run(move || {
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        peak.fetch_max(now, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(20));
                        running.fetch_sub(1, Ordering::SeqCst);
                    })
                    .await
                })
            })
            .collect();
        for job in jobs {
            job.await.unwrap().unwrap();
        }
        assert_eq!(peak.load(Ordering::SeqCst), 2);
    }
}
