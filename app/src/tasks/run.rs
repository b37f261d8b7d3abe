//! Running one task: what each kind does with its payload.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use rand::SeedableRng;
use rand::rngs::StdRng;

use super::files::TaskFiles;
use super::{TaskKind, TaskRecord};
use crate::compute::{ComputeError, ComputePool};
use crate::config::Config;
use crate::randomize::{self, ImageError};
use crate::sum_evens::SumEvensResult;
use crate::sum_evens::scheduler::{FairScheduler, JobError};

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
    /// Each kind's time limit.
    randomize_timeout: Duration,
    sum_evens_timeout: Duration,
}

impl Runner {
    /// Call inside a tokio runtime: the sum-evens scheduler's lanes start here.
    pub(crate) fn new(config: &Config, files: TaskFiles, compute: ComputePool) -> Self {
        Self {
            files,
            scheduler: FairScheduler::start(config.compute_threads(), compute.clone()),
            compute,
            delay: config.randomize_delay,
            max_pixels: config.max_image_pixels,
            seed: config.seed,
            randomize_timeout: config.randomize_timeout,
            sum_evens_timeout: config.sum_evens_timeout,
        }
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
        let client = task.client.as_deref().unwrap_or("anonymous");
        let partial = self.scheduler.sum(client, &path, progress).await?;
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
            .write_result(task.id, &json)
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
            .write_result(task.id, &output)
            .await
            .map_err(TaskError::WriteResult)
    }
}
