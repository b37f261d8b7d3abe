//! Running one task: what each kind does with its payload.

use std::time::Duration;

use rand::SeedableRng;
use rand::rngs::StdRng;

use super::files::TaskFiles;
use super::{TaskKind, TaskRecord};
use crate::compute::ComputePool;
use crate::config::Config;
use crate::randomize;

/// Everything a worker needs to run any kind of task.
#[derive(Debug, Clone)]
pub struct Runner {
    pub files: TaskFiles,
    compute: ComputePool,
    /// The seed's artificial delay before each randomize task.
    delay: Duration,
    max_pixels: u64,
    seed: Option<u64>,
}

impl Runner {
    pub fn new(config: &Config, files: TaskFiles, compute: ComputePool) -> Self {
        Self {
            files,
            compute,
            delay: config.randomize_delay,
            max_pixels: config.max_image_pixels,
            seed: config.seed,
        }
    }

    /// Runs `task`; an error is the reason its status will give.
    pub async fn run(&self, task: &TaskRecord) -> Result<(), String> {
        match task.kind {
            TaskKind::Randomize => self.randomize(task).await,
        }
    }

    async fn randomize(&self, task: &TaskRecord) -> Result<(), String> {
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        let payload = self
            .files
            .read_payload(task.id)
            .await
            .map_err(|e| format!("reading the upload: {e}"))?;
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
            .await?
            .map_err(|e| e.to_string())?;
        self.files
            .write_result(task.id, &output)
            .await
            .map_err(|e| format!("writing the result: {e}"))
    }
}
