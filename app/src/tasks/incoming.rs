//! Sums begun while their uploads arrive. With in-process workers, `POST /sum-evens` starts
//! summing an upload on the fair scheduler as its chunks land, and keeps the sum here under the
//! task's id; the worker that runs the task takes it instead of reading the payload again, so
//! the result is ready about a chunk's parse time after the last byte. The payload is spooled
//! and synced as before: after a restart, a task is summed from it.

use std::collections::HashMap;
use std::fs::File;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use super::TaskId;
use crate::sum_evens::scheduler::{FairScheduler, Incoming};

#[derive(Debug, Clone)]
pub(crate) struct IncomingSums {
    scheduler: FairScheduler,
    kept: Arc<Mutex<HashMap<TaskId, Incoming>>>,
}

impl IncomingSums {
    pub(crate) fn new(scheduler: FairScheduler) -> Self {
        Self {
            scheduler,
            kept: Arc::default(),
        }
    }

    fn kept(&self) -> std::sync::MutexGuard<'_, HashMap<TaskId, Incoming>> {
        self.kept.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Bytes of arriving uploads kept in memory for their sums now, and the most there may be.
    pub(crate) fn kept_bytes(&self) -> (usize, usize) {
        self.scheduler.kept_bytes()
    }

    /// Starts summing `client`'s upload as it arrives in `file`.
    pub(crate) fn begin(&self, client: &str, file: File) -> Incoming {
        self.scheduler.incoming(client, file)
    }

    /// Keeps a whole upload's sum for the task `id` (before the task is queued, so its worker
    /// finds it).
    pub(crate) fn keep(&self, id: TaskId, incoming: Incoming) {
        self.kept().insert(id, incoming);
    }

    /// The task was not queued after all: its sum is given up.
    pub(crate) fn forget(&self, id: TaskId) {
        self.kept().remove(&id);
    }

    /// The sum begun for `id`, once: the worker running the task takes it.
    pub(crate) fn take(&self, id: TaskId) -> Option<Incoming> {
        self.kept().remove(&id)
    }

    /// The bytes of `id`'s upload summed so far, when its sum was begun here.
    pub(crate) fn progress(&self, id: TaskId) -> Option<Arc<AtomicU64>> {
        self.kept().get(&id).map(Incoming::progress)
    }
}
