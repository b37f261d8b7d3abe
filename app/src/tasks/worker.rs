//! The worker loop, the same for in-process workers and `glassbox worker` processes: take a
//! task, run it (renewing the claim on it meanwhile), record the outcome, measure it.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::run::Runner;
use super::telemetry::TaskTelemetry;
use super::{QueueError, TaskSource, TaskState, now_ms};
use crate::faults::Faults;

/// How often a worker held by a queue fault looks again.
const PAUSE_POLL: Duration = Duration::from_millis(500);
/// How often a running task's progress is recorded.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);

/// What every worker of a process shares.
#[derive(Debug, Clone)]
pub(crate) struct Workers {
    pub source: Arc<dyn TaskSource>,
    pub runner: Arc<Runner>,
    pub telemetry: Arc<TaskTelemetry>,
    /// How often a running task's claim is renewed; `None` when claims never expire.
    pub renew_every: Option<Duration>,
    /// A queue fault holds the workers while it lasts.
    pub faults: Faults,
}

impl Workers {
    /// Starts `count` workers. They stop taking tasks once `stop` turns true and return after
    /// the task they are running, if any.
    pub(crate) fn spawn(&self, count: usize, stop: &watch::Receiver<bool>) -> Vec<JoinHandle<()>> {
        (0..count)
            .map(|_| tokio::spawn(self.clone().work(stop.clone())))
            .collect()
    }

    async fn work(self, mut stop: watch::Receiver<bool>) {
        loop {
            // While a queue fault lasts (this process's, or one another process set on the
            // shared queue) no worker starts waiting for a task.
            self.faults.queue_open(&mut stop).await;
            while self.source.paused().await {
                tokio::select! {
                    _ = stop.changed() => return,
                    () = tokio::time::sleep(PAUSE_POLL) => {}
                }
            }
            if *stop.borrow() {
                return;
            }
            let taken = tokio::select! {
                _ = stop.changed() => return,
                taken = self.source.take() => taken,
            };
            match taken {
                Ok(Some(task)) => {
                    self.hold_while_paused(&task, &mut stop).await;
                    self.run(task).await;
                }
                Ok(None) => {}
                Err(err) => {
                    tracing::warn!(error = %err, "could not take a task; retrying in 1 s");
                    tokio::select! {
                        _ = stop.changed() => return,
                        () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                }
            }
        }
    }

    /// A worker already waiting when a queue fault started holds what it received, unstarted,
    /// until the fault ends (at most one task per worker), keeping its claim on it meanwhile.
    async fn hold_while_paused(&self, task: &super::TaskRecord, stop: &mut watch::Receiver<bool>) {
        while !*stop.borrow() && (self.faults.queue_paused() || self.source.paused().await) {
            if self.renew_every.is_some()
                && let Err(err) = self.source.renew(task.id).await
            {
                tracing::warn!(token = %task.id.logged(), error = %err, "could not renew a held task's lease");
            }
            tokio::select! {
                _ = stop.changed() => {}
                () = tokio::time::sleep(PAUSE_POLL) => {}
            }
        }
    }

    async fn run(&self, mut task: super::TaskRecord) {
        self.telemetry.started();
        let progress = self.runner.progress(&task);
        let outcome = {
            let running = task.clone();
            let work = self.runner.run(&running, progress.clone());
            tokio::pin!(work);
            let every = self
                .renew_every
                .map_or(PROGRESS_EVERY, |r| r.min(PROGRESS_EVERY));
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            let mut renewed = Instant::now();
            let mut reported = 0;
            loop {
                tokio::select! {
                    outcome = &mut work => break outcome,
                    _ = tick.tick() => {
                        if let Some(renew_every) = self.renew_every
                            && renewed.elapsed() >= renew_every
                        {
                            renewed = Instant::now();
                            if let Err(err) = self.source.renew(task.id).await {
                                tracing::warn!(token = %task.id.logged(), error = %err, "could not renew a task's lease");
                            }
                        }
                        let done = progress.load(Ordering::Relaxed);
                        if done != reported {
                            reported = done;
                            task.bytes_done = Some(done);
                            if let Err(err) = self.source.progress(&task).await {
                                tracing::debug!(token = %task.id.logged(), error = %err, "could not record progress");
                            }
                        }
                    }
                }
            }
        };
        if task.bytes_total.is_some() {
            task.bytes_done = Some(progress.load(Ordering::Relaxed));
        }
        task.finished_ms = Some(now_ms());
        match outcome {
            Ok(()) => task.state = TaskState::Finished,
            Err(error) => {
                task.state = TaskState::Errored;
                task.error = Some(error.to_string());
            }
        }
        match self.complete(&task).await {
            Ok(()) => {
                self.runner.files.remove_payload(task.id).await;
                self.telemetry.finished(&task);
            }
            Err(err) => tracing::error!(
                token = %task.id.logged(),
                error = %err,
                "could not record a finished task; it will run again"
            ),
        }
        self.telemetry.stopped();
    }

    /// Records the outcome, retrying a backend that is briefly away.
    async fn complete(&self, task: &super::TaskRecord) -> Result<(), QueueError> {
        let mut delay = Duration::from_millis(100);
        for _ in 0..5 {
            match self.source.complete(task.clone()).await {
                Ok(()) => return Ok(()),
                Err(err) => {
                    tracing::warn!(token = %task.id.logged(), error = %err, "recording a finished task failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
            }
        }
        self.source.complete(task.clone()).await
    }
}
