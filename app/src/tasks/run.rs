//! Running one task: what each kind does with its payload.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use rand::SeedableRng;
use rand::rngs::StdRng;

use super::files::TaskFiles;
use super::incoming::IncomingSums;
use super::{TaskKind, TaskRecord};
use crate::compute::{ComputeError, ComputePool};
use crate::config::Config;
use crate::randomize::{self, ImageError};
use crate::sum_evens::SumEvensResult;
use crate::sum_evens::scheduler::{FairScheduler, JobError, Summed};
use crate::telemetry::Telemetry;

/// Bytes of sum-evens uploads summed, by whether the upload was still arriving.
pub(crate) const SUMMED_BYTES: &str = "glassbox_sum_evens_summed_bytes_total";

fn summed_counters(telemetry: &Telemetry) -> Summed {
    telemetry.metrics.with(|| {
        metrics::describe_counter!(
            SUMMED_BYTES,
            metrics::Unit::Bytes,
            "Bytes of sum-evens uploads summed: phase=receiving while the upload was still arriving, received after it ended (or from its payload file)."
        );
        Summed {
            receiving: metrics::counter!(SUMMED_BYTES, "phase" => "receiving"),
            received: metrics::counter!(SUMMED_BYTES, "phase" => "received"),
        }
    })
}

/// Why a task errored; its status says this to the client.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TaskError {
    #[error("reading the upload: {0}")]
    ReadUpload(std::io::Error),
    #[error("writing the result: {0}")]
    WriteResult(std::io::Error),
    /// A bad number (with its offset) or a failure reading the spooled file.
    #[error(transparent)]
    Sum(#[from] JobError),
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error(transparent)]
    Compute(#[from] ComputeError),
    #[error("encoding the result: {0}")]
    Encode(#[from] serde_json::Error),
    /// The kind's time limit passed.
    #[error("timed out after {limit:?} ({flag})")]
    TimedOut { limit: Duration, flag: &'static str },
}

/// Everything a worker needs to run any kind of task.
#[derive(Debug, Clone)]
pub(crate) struct Runner {
    pub files: TaskFiles,
    compute: ComputePool,
    /// The seed's artificial delay before each randomize task.
    delay: Duration,
    max_pixels: u64,
    seed: Option<u64>,
    /// Where sum-evens jobs are cut into chunks and shared fairly between clients.
    scheduler: FairScheduler,
    /// Sums begun on that scheduler while their uploads arrived, by task.
    incoming: IncomingSums,
    /// Each kind's time limit.
    randomize_timeout: Duration,
    sum_evens_timeout: Duration,
}

impl Runner {
    /// Call inside a tokio runtime: the sum-evens scheduler's lanes start here, counting the
    /// bytes they sum on `telemetry`.
    pub(crate) fn new(
        config: &Config,
        files: TaskFiles,
        compute: ComputePool,
        telemetry: &Telemetry,
    ) -> Self {
        let scheduler = FairScheduler::start(
            config.compute_threads(),
            compute.clone(),
            summed_counters(telemetry),
        );
        Self {
            files,
            incoming: IncomingSums::new(scheduler.clone()),
            scheduler,
            compute,
            delay: config.randomize_delay,
            max_pixels: config.max_image_pixels,
            seed: config.seed,
            randomize_timeout: config.randomize_timeout,
            sum_evens_timeout: config.sum_evens_timeout,
        }
    }

    /// Where `POST /sum-evens` begins sums for this runner's workers to finish.
    pub(crate) fn incoming(&self) -> IncomingSums {
        self.incoming.clone()
    }

    /// The counter of `task`'s payload bytes done: its sum's own when one was begun while the
    /// upload arrived (it has counted those bytes already).
    pub(crate) fn progress(&self, task: &TaskRecord) -> Arc<AtomicU64> {
        self.incoming.progress(task.id).unwrap_or_default()
    }

    /// Runs `task`, counting the payload bytes done in `progress`; an error is the reason its
    /// status will give.
    pub(crate) async fn run(
        &self,
        task: &TaskRecord,
        progress: Arc<AtomicU64>,
    ) -> Result<(), TaskError> {
        let (limit, flag) = match task.kind {
            TaskKind::Randomize => (self.randomize_timeout, "--randomize-timeout"),
            TaskKind::SumEvens => (self.sum_evens_timeout, "--sum-evens-timeout"),
        };
        // Past the limit the work is dropped: a sum's remaining chunks are skipped, an image's
        // compute finishes on its thread but its result is not kept.
        let work = async {
            match task.kind {
                TaskKind::Randomize => self.randomize(task).await,
                TaskKind::SumEvens => self.sum_evens(task, progress).await,
            }
        };
        tokio::time::timeout(limit, work)
            .await
            .unwrap_or(Err(TaskError::TimedOut { limit, flag }))
    }

    async fn sum_evens(
        &self,
        task: &TaskRecord,
        progress: Arc<AtomicU64>,
    ) -> Result<(), TaskError> {
        let path = self.files.payload(task.id);
        let bytes = tokio::fs::metadata(&path)
            .await
            .map_err(TaskError::ReadUpload)?
            .len();
        let partial = match self.incoming.take(task.id) {
            Some(incoming) => incoming.sum().await?,
            None => {
                self.scheduler
                    .sum(task.client_name(), &path, progress)
                    .await?
            }
        };
        let (numbers, evens) = (partial.numbers, partial.evens);
        // Writing out a sum of millions of digits is CPU work: the compute pool does it, not
        // an I/O thread.
        let sum = self.compute.run(move || partial.sum.to_decimal()).await?;
        let result = SumEvensResult {
            sum,
            numbers,
            evens,
            bytes,
        };
        let json = serde_json::to_vec(&result)?;
        self.files
            .write_result(task, &json)
            .await
            .map_err(TaskError::WriteResult)
    }

    async fn randomize(&self, task: &TaskRecord) -> Result<(), TaskError> {
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        let payload = self
            .files
            .read_payload(task.id)
            .await
            .map_err(TaskError::ReadUpload)?;
        let (max_pixels, seed) = (self.max_pixels, self.seed);
        let output = self
            .compute
            .run(move || {
                let mut rng = match seed {
                    Some(seed) => StdRng::seed_from_u64(seed),
                    None => StdRng::from_os_rng(),
                };
                randomize::randomize(&payload, max_pixels, &mut rng)
            })
            .await??;
        self.files
            .write_result(task, &output)
            .await
            .map_err(TaskError::WriteResult)
    }
}
