//! Asynchronous tasks: a token per task, a queue behind a trait, workers that run them, and the
//! telemetry the SpaceTime seed asked for (wait, execution and lead time per task).
//!
//! - [`embedded`]: the default. Task records in a redb database in the data directory, a bounded
//!   in-process queue, in-process workers; a restart runs queued and interrupted tasks again.
//! - [`redis`]: `--queue redis://...`. The service only enqueues; `glassbox worker` processes
//!   take tasks with a reliable-queue pattern (a claimed task sits in a processing list under a
//!   lease that its worker renews; when a worker dies its tasks go back to the queue).
//!
//! Payloads and results are files under `<data-dir>/tasks/` ([`files`]), shared by the service
//! and every worker that mounts the same data directory.

pub(crate) mod embedded;
mod fair;
pub(crate) mod files;
pub(crate) mod incoming;
pub(crate) mod redis;
pub(crate) mod run;
pub(crate) mod spool;
pub(crate) mod telemetry;
pub(crate) mod worker;

use std::fmt;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use futures_util::future::BoxFuture;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::json;

use self::telemetry::TaskTelemetry;
use crate::disk::Hold;
use crate::health::{Check, CheckResult, CheckStatus, ProbeCache};

/// A task's token: 128 random bits, shown as 32 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct TaskId(pub u128);

impl TaskId {
    pub(crate) fn random() -> Self {
        Self(rand::random())
    }

    /// 32 hex digits (either case); anything else is no token.
    pub(crate) fn parse(text: &str) -> Option<Self> {
        (text.len() == 32 && text.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| u128::from_str_radix(text, 16).ok().map(Self))
            .flatten()
    }
}

impl TaskId {
    /// The token as log lines show it: its first 8 hex digits (SPEC.md: logs keep no
    /// capabilities).
    pub(crate) fn logged(&self) -> String {
        crate::telemetry::redact::capability(&self.to_string())
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl fmt::Debug for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TaskId({self})")
    }
}

impl Serialize for TaskId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for TaskId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Self::parse(&text).ok_or_else(|| serde::de::Error::custom("not a task token"))
    }
}

/// What a task does; a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum TaskKind {
    /// Shuffle a PNG's tiles.
    Randomize,
    /// Sum the even numbers of a text file.
    SumEvens,
}

impl TaskKind {
    pub(crate) const ALL: [Self; 2] = [Self::Randomize, Self::SumEvens];

    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::Randomize => "randomize",
            Self::SumEvens => "sum-evens",
        }
    }
}

/// Where a task is: requested → received (a worker took it) → finished or errored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum TaskState {
    Requested,
    Received,
    Finished,
    Errored,
}

impl TaskState {
    pub(crate) const ALL: [Self; 4] = [
        Self::Requested,
        Self::Received,
        Self::Finished,
        Self::Errored,
    ];

    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::Requested => "requested",
            Self::Received => "received",
            Self::Finished => "finished",
            Self::Errored => "errored",
        }
    }

    pub(crate) fn is_final(self) -> bool {
        matches!(self, Self::Finished | Self::Errored)
    }
}

/// Everything known about one task. Times are unix milliseconds, so they compare across the
/// processes and hosts of a Redis deployment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct TaskRecord {
    pub id: TaskId,
    pub kind: TaskKind,
    pub state: TaskState,
    /// Why it errored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When the request that made it arrived.
    pub created_ms: u64,
    /// When a worker last took it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub received_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_ms: Option<u64>,
    /// How many times a worker took it (more than one after a worker died or a restart).
    #[serde(default)]
    pub attempts: u32,
    /// Who asked (`X-Client-Id`, or the client's address): fair scheduling goes by it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    /// The payload's size, for tasks that report progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_total: Option<u64>,
    /// How much of the payload the running worker has done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_done: Option<u64>,
}

/// The client of a task whose request named none: one shared name, one share.
pub(crate) const ANONYMOUS: &str = "anonymous";

impl TaskRecord {
    /// Whom the task is for: its client, or one shared name for tasks without one.
    pub(crate) fn client_name(&self) -> &str {
        self.client.as_deref().unwrap_or(ANONYMOUS)
    }

    pub(crate) fn new(id: TaskId, kind: TaskKind, created_ms: u64) -> Self {
        Self {
            id,
            kind,
            state: TaskState::Requested,
            error: None,
            created_ms,
            received_ms: None,
            finished_ms: None,
            attempts: 0,
            client: None,
            bytes_total: None,
            bytes_done: None,
        }
    }
}

/// Now, in unix milliseconds.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// How many tasks may wait: in all (`--queue-capacity`), and from one client's address (its
/// `--client-share` of them, at least one). A client's ids share its address's places, as they
/// share its turns ([`crate::turns`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Places {
    pub total: usize,
    pub per_client: usize,
}

impl Places {
    pub(crate) fn of(config: &crate::config::Config) -> Self {
        Self::new(config.queue_capacity, config.client_share)
    }

    pub(crate) fn new(total: usize, share: f64) -> Self {
        Self {
            total: total.max(1),
            per_client: crate::config::share_of(total, share),
        }
    }

    /// Whether a task finds a place with `waiting` tasks in all and `at_address` of its
    /// client's address (waiting, or promised a place): the queue is full first, then the
    /// client's share.
    pub(crate) fn admit(self, waiting: usize, at_address: usize) -> Result<(), QueueError> {
        if waiting >= self.total {
            Err(QueueError::Full)
        } else if at_address >= self.per_client {
            Err(QueueError::ClientShare)
        } else {
            Ok(())
        }
    }
}

/// Why the queue could not do what was asked.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum QueueError {
    /// The queue holds `--queue-capacity` tasks already (503 with `Retry-After`).
    #[error("the queue is full")]
    Full,
    /// The client's address has its `--client-share` of the `--queue-capacity` places waiting
    /// already (503 with `Retry-After`).
    #[error("this client has its share of the queue waiting")]
    ClientShare,
    /// The backend failed or could not be reached (503).
    #[error("{0}")]
    Unavailable(String),
    /// The disk is full, or the payload would cross `--min-free-disk`, or Redis is at its
    /// `maxmemory` (507).
    #[error("{0}")]
    NoSpace(String),
}

impl QueueError {
    pub(crate) fn unavailable(err: impl fmt::Display) -> Self {
        Self::Unavailable(err.to_string())
    }
}

/// How many tasks are where.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub(crate) struct QueueCounts {
    /// Tasks waiting for a worker.
    pub depth: u64,
    /// Retained tasks by state (finished and errored ones until they expire).
    pub requested: u64,
    pub received: u64,
    pub finished: u64,
    pub errored: u64,
}

/// The service's side of a queue: record and enqueue, look up, count.
pub(crate) trait TaskQueue: Send + Sync + fmt::Debug {
    /// `embedded` or `redis`.
    fn backend(&self) -> &'static str;
    /// Where the task records live.
    fn location(&self) -> String;
    /// How many tasks may wait, in all and per client address.
    fn places(&self) -> Places;
    /// Records `task` (requested) and queues it. Its payload is already in the data directory.
    fn submit(&self, task: TaskRecord) -> BoxFuture<'_, Result<(), QueueError>>;
    /// Whether a task of `client` would find a place now ([`Places`]), asked before a long
    /// upload so that a refusal comes before its bytes do; `submit` decides.
    fn room_for<'a>(&'a self, client: &'a str) -> BoxFuture<'a, Result<(), QueueError>>;
    fn get(&self, id: TaskId) -> BoxFuture<'_, Result<Option<TaskRecord>, QueueError>>;
    fn counts(&self) -> BoxFuture<'_, Result<QueueCounts, QueueError>>;
    /// Removes the records and files of tasks that ended more than the TTL ago; how many.
    fn sweep(&self) -> BoxFuture<'_, Result<usize, QueueError>>;
    /// A small durable write where task records are written, for `/health`: it fails while
    /// submissions would.
    fn probe(&self) -> BoxFuture<'_, Result<(), QueueError>>;
    /// Tells the task workers of every process (a queue fault) to take no task while `paused`
    /// is true; the embedded queue's workers are this process's and need no telling.
    fn set_paused(&self, paused: bool) -> BoxFuture<'_, Result<(), QueueError>> {
        let _ = paused;
        Box::pin(async { Ok(()) })
    }
}

/// A temporary task file not written to for this long is a leftover (an upload in progress
/// writes all the time, and one that stalls ends at `--body-timeout`).
const STALE_TEMPORARY_FILE: std::time::Duration = std::time::Duration::from_secs(600);

/// The end time before which an ended task has expired.
fn expiry_cutoff(ttl: std::time::Duration) -> u64 {
    now_ms().saturating_sub(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX))
}

/// Sweeps `queue` every quarter of `ttl` (between 1 s and 1 min), for as long as it lives.
fn start_sweeper(queue: &Arc<dyn TaskQueue>, ttl: std::time::Duration) {
    let queue = Arc::downgrade(queue);
    let every = (ttl / 4).clamp(
        std::time::Duration::from_secs(1),
        std::time::Duration::from_secs(60),
    );
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            let Some(queue) = queue.upgrade() else { return };
            match queue.sweep().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(tasks = n, "removed expired tasks"),
                Err(err) => tracing::warn!(error = %err, "sweeping expired tasks failed"),
            }
        }
    });
}

/// A worker's side of a queue.
pub(crate) trait TaskSource: Send + Sync + fmt::Debug {
    /// The next task, already marked received; `None` when none came within the backend's
    /// polling interval (the worker then checks whether it should stop, and asks again).
    fn take(&self) -> BoxFuture<'_, Result<Option<TaskRecord>, QueueError>>;
    /// Keeps this worker's claim on a running task alive.
    fn renew(&self, id: TaskId) -> BoxFuture<'_, Result<(), QueueError>>;
    /// Records the final state and lets go of the task.
    fn complete(&self, task: TaskRecord) -> BoxFuture<'_, Result<(), QueueError>>;
    /// Records how far a running task is (its `bytes_done`).
    fn progress(&self, task: &TaskRecord) -> BoxFuture<'_, Result<(), QueueError>>;
    /// Whether another process's queue fault holds the workers ([`TaskQueue::set_paused`]).
    fn paused(&self) -> BoxFuture<'_, bool> {
        Box::pin(async { false })
    }
}

/// The queue as the routes see it: the backend, where payloads and results are, telemetry.
#[derive(Debug, Clone)]
pub(crate) struct Tasks {
    pub queue: Arc<dyn TaskQueue>,
    pub files: files::TaskFiles,
    pub telemetry: Arc<TaskTelemetry>,
    /// In-process workers, or none when separate `glassbox worker` processes do the work.
    pub workers: usize,
    /// `/health`'s last probe of the write path, forgotten when a real write fails.
    pub probe: Arc<ProbeCache>,
    /// Where sum-evens uploads are summed while they arrive, when this process's workers run
    /// its tasks (the embedded queue).
    pub incoming: Option<incoming::IncomingSums>,
}

impl Tasks {
    /// The queue as this process uses it, with `workers` workers of its own; starts the sweep
    /// of expired tasks.
    pub(crate) fn start(
        queue: Arc<dyn TaskQueue>,
        files: files::TaskFiles,
        telemetry: &Arc<crate::telemetry::Telemetry>,
        workers: usize,
        ttl: std::time::Duration,
    ) -> Self {
        if queue.backend() != "embedded" {
            // The data directory may be shared with other replicas and workers: only
            // temporary files nobody has written to for a while are a crash's leftovers.
            let swept = files.sweep_leftovers(Some(STALE_TEMPORARY_FILE), None);
            if swept > 0 {
                tracing::info!(files = swept, "removed stale temporary task files");
            }
        }
        start_sweeper(&queue, ttl);
        Self {
            queue,
            files,
            telemetry: Arc::new(TaskTelemetry::new(telemetry.clone(), workers)),
            workers,
            probe: Arc::default(),
            incoming: None,
        }
    }

    /// A task's payload or record could not be written: the next `/health` probes afresh.
    pub(crate) fn write_failed(&self) {
        self.probe.forget();
    }

    /// Workers that take tasks from `source` and run them with `runner`, measured here, and
    /// held while a queue fault of `faults` lasts.
    pub(crate) fn workers(
        &self,
        source: Arc<dyn TaskSource>,
        runner: run::Runner,
        renew_every: Option<std::time::Duration>,
        faults: crate::faults::Faults,
    ) -> worker::Workers {
        worker::Workers {
            source,
            runner: Arc::new(runner),
            telemetry: self.telemetry.clone(),
            renew_every,
            faults,
        }
    }

    /// Writes the payload, held by its client's `hold` on the disk, then records and queues the
    /// task; a refused task leaves no file.
    pub(crate) async fn submit(
        &self,
        task: TaskRecord,
        payload: &[u8],
        mut hold: Hold,
    ) -> Result<(), QueueError> {
        self.files
            .write_payload(task.id, payload, &mut hold)
            .await
            .map_err(|e| {
                self.write_failed();
                if e.kind() == std::io::ErrorKind::StorageFull {
                    QueueError::NoSpace(format!("writing the payload: {e}"))
                } else {
                    QueueError::Unavailable(format!("writing the payload: {e}"))
                }
            })?;
        self.enqueue(task, hold).await
    }

    /// Records and queues a task whose payload is already in place, held by `hold` of its
    /// client's share of the disk; a refused task's payload is removed. The hold lasts as long
    /// as the payload when this process's workers run the task (the embedded queue); with
    /// Redis, another process may run it, and the hold ends here
    /// ([`files::TaskFiles::keeping_holds`]).
    pub(crate) async fn enqueue(&self, task: TaskRecord, hold: Hold) -> Result<(), QueueError> {
        let (id, kind) = (task.id, task.kind);
        // Kept before the task is queued: a worker may finish it, and remove its payload,
        // before `submit` returns.
        self.files.keep_hold(id, hold);
        match self.queue.submit(task).await {
            Ok(()) => {
                self.telemetry.submitted(kind);
                Ok(())
            }
            Err(err) => {
                if matches!(err, QueueError::Unavailable(_)) {
                    self.write_failed();
                }
                self.files.remove(id).await;
                Err(err)
            }
        }
    }

    /// What `/status` shows about the queue.
    pub(crate) async fn status(&self) -> QueueStatus {
        let (counts, error) = match self.counts().await {
            Ok(counts) => (Some(counts), None),
            Err(err) => (None, Some(err.to_string())),
        };
        let places = self.queue.places();
        QueueStatus {
            backend: self.queue.backend(),
            location: self.queue.location(),
            capacity: places.total,
            client_places: places.per_client,
            workers: self.workers,
            workers_busy: self.telemetry.busy(),
            counts,
            error,
            kinds: self.telemetry.snapshot(),
        }
    }

    /// The queue's counts; also sets the queue gauges.
    pub(crate) async fn counts(&self) -> Result<QueueCounts, QueueError> {
        let counts = self.queue.counts().await?;
        self.telemetry.set_counts(&counts);
        Ok(counts)
    }
}

/// The queue part of `/status`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct QueueStatus {
    /// `embedded` or `redis`.
    pub backend: &'static str,
    pub location: String,
    /// Tasks that may wait (`--queue-capacity`).
    pub capacity: usize,
    /// Tasks one client address may have waiting (`--client-share` of the capacity).
    pub client_places: usize,
    /// Workers in this process (0 when `glassbox worker` processes do the work).
    pub workers: usize,
    pub workers_busy: u64,
    /// Absent when the queue cannot be reached.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub counts: Option<QueueCounts>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Per task kind, tasks finished in this process: counts by outcome and wait, execution and
    /// lead time percentiles in milliseconds.
    pub kinds: Vec<telemetry::KindSnapshot>,
}

/// `/health`'s view of the queue: it passes when the backend answers its counts in time and
/// a probe write goes through (at most one probe per [`crate::health::PROBE_EVERY`]).
#[derive(Debug, Clone)]
pub(crate) struct QueueCheck {
    pub tasks: Tasks,
}

impl QueueCheck {
    pub(crate) fn new(tasks: Tasks) -> Self {
        Self { tasks }
    }
}

impl Check for QueueCheck {
    fn name(&self) -> &'static str {
        "queue"
    }

    fn run(&self) -> BoxFuture<'_, CheckResult> {
        Box::pin(async move {
            let queue = &self.tasks.queue;
            let (backend, location) = (queue.backend(), queue.location());
            let depth = match self.tasks.counts().await {
                Ok(counts) => counts.depth,
                Err(err) => {
                    return CheckResult::new(
                        CheckStatus::Fail,
                        json!({"backend": backend, "location": location, "error": err.to_string()}),
                    );
                }
            };
            let probe = self
                .tasks
                .probe
                .run(|| async { queue.probe().await.map_err(|e| e.to_string()) })
                .await;
            match probe {
                Ok(()) => CheckResult::new(
                    CheckStatus::Pass,
                    json!({"backend": backend, "location": location, "depth": depth, "write": "ok"}),
                ),
                Err(err) => CheckResult::new(
                    CheckStatus::Fail,
                    json!({"backend": backend, "location": location, "depth": depth,
                        "error": format!("a probe write failed: {err}")}),
                ),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens() {
        let id = TaskId::random();
        let text = id.to_string();
        assert_eq!(text.len(), 32);
        assert_eq!(TaskId::parse(&text), Some(id));
        assert_eq!(TaskId::parse(&text.to_uppercase()), Some(id));
        assert_eq!(TaskId(1).to_string(), format!("{}1", "0".repeat(31)));
        for bad in [
            "",
            "abc",
            &"g".repeat(32),
            &"a".repeat(33),
            "+0000000000000000000000000000001",
        ] {
            assert_eq!(TaskId::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn records_round_trip_through_json() {
        let mut record = TaskRecord::new(TaskId(7), TaskKind::Randomize, 1000);
        record.state = TaskState::Errored;
        record.error = Some("not a valid PNG".into());
        let text = serde_json::to_string(&record).unwrap();
        assert!(text.contains(r#""kind":"randomize""#), "{text}");
        assert_eq!(serde_json::from_str::<TaskRecord>(&text).unwrap(), record);
    }
}
