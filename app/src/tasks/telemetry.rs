//! What the SpaceTime seed asked to measure: for every task its wait time (queued → taken by a
//! worker), execution time (taken → done) and lead time (request received → done), as one JSON
//! log line, as Prometheus histograms by kind and outcome, and as HDR percentiles in `/status`;
//! plus queue depth, workers busy and tasks by state as gauges.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use hdrhistogram::Histogram;
use metrics::{
    Counter, Gauge, Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge,
    histogram,
};
use serde::Serialize;
use utoipa::ToSchema;

use super::{QueueCounts, TaskKind, TaskRecord, TaskState};
use crate::telemetry::metrics::Metrics;
use crate::telemetry::stats::LatencySnapshot;

pub(crate) const WAIT: &str = "glassbox_task_wait_seconds";
pub(crate) const EXECUTION: &str = "glassbox_task_execution_seconds";
pub(crate) const LEAD: &str = "glassbox_task_lead_seconds";
pub(crate) const SUBMITTED: &str = "glassbox_tasks_submitted_total";
pub(crate) const DEPTH: &str = "glassbox_queue_depth";
pub(crate) const WORKERS: &str = "glassbox_workers";
pub(crate) const BUSY: &str = "glassbox_workers_busy";
pub(crate) const BY_STATE: &str = "glassbox_tasks";

/// The outcome label of a finished task.
fn outcome(state: TaskState) -> &'static str {
    if state == TaskState::Finished {
        "finished"
    } else {
        "errored"
    }
}

#[derive(Debug)]
pub(crate) struct TaskTelemetry {
    busy: AtomicU64,
    busy_gauge: Gauge,
    depth: Gauge,
    by_state: [Gauge; 4],
    submitted: [Counter; TaskKind::ALL.len()],
    kinds: [Mutex<KindStats>; TaskKind::ALL.len()],
    metrics: std::sync::Arc<crate::telemetry::Telemetry>,
}

/// One kind's tasks finished in this process.
#[derive(Debug)]
struct KindStats {
    finished: u64,
    errored: u64,
    wait_ms: Histogram<u64>,
    execution_ms: Histogram<u64>,
    lead_ms: Histogram<u64>,
    /// Tasks ended, wait and lead since the dashboard last took an interval.
    interval_ended: u64,
    interval_wait_ms: Histogram<u64>,
    interval_lead_ms: Histogram<u64>,
}

/// One task kind's tasks that ended in an interval, with wait and lead percentiles in
/// milliseconds from that interval's own HDR histograms.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct IntervalKind {
    pub kind: &'static str,
    pub ended: u64,
    pub wait_p50_ms: u64,
    pub wait_p99_ms: u64,
    pub lead_p50_ms: u64,
    pub lead_p99_ms: u64,
}

fn ms_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 7 * 86_400_000, 3).expect("static histogram bounds are valid")
}

impl TaskTelemetry {
    /// Registers the task series on the process's recorder; `workers` is how many run here.
    pub(crate) fn new(
        telemetry: std::sync::Arc<crate::telemetry::Telemetry>,
        workers: usize,
    ) -> Self {
        let metrics: &Metrics = &telemetry.metrics;
        let (busy_gauge, depth, by_state, submitted) = metrics.with(|| {
            describe_histogram!(
                WAIT,
                Unit::Seconds,
                "Time tasks waited in the queue before a worker took them."
            );
            describe_histogram!(EXECUTION, Unit::Seconds, "Time workers spent on tasks.");
            describe_histogram!(
                LEAD,
                Unit::Seconds,
                "Time from a task's request to its result (wait + execution)."
            );
            describe_counter!(SUBMITTED, "Tasks accepted (201) by this process.");
            describe_gauge!(DEPTH, "Tasks waiting for a worker.");
            describe_gauge!(WORKERS, "Task workers in this process.");
            describe_gauge!(BUSY, "Task workers of this process running a task now.");
            describe_gauge!(BY_STATE, "Retained tasks by state, as of the last count.");
            gauge!(WORKERS).set(workers as f64);
            (
                gauge!(BUSY),
                gauge!(DEPTH),
                TaskState::ALL.map(|s| gauge!(BY_STATE, "state" => s.label())),
                TaskKind::ALL.map(|k| counter!(SUBMITTED, "kind" => k.label())),
            )
        });
        Self {
            busy: AtomicU64::new(0),
            busy_gauge,
            depth,
            by_state,
            submitted,
            kinds: TaskKind::ALL.map(|_| {
                Mutex::new(KindStats {
                    finished: 0,
                    errored: 0,
                    wait_ms: ms_histogram(),
                    execution_ms: ms_histogram(),
                    lead_ms: ms_histogram(),
                    interval_ended: 0,
                    interval_wait_ms: ms_histogram(),
                    interval_lead_ms: ms_histogram(),
                })
            }),
            metrics: telemetry,
        }
    }

    pub(crate) fn submitted(&self, kind: TaskKind) {
        self.submitted[kind as usize].increment(1);
    }

    pub(crate) fn started(&self) {
        let now = self.busy.fetch_add(1, Ordering::Relaxed) + 1;
        self.busy_gauge.set(now as f64);
    }

    pub(crate) fn stopped(&self) {
        let now = self.busy.fetch_sub(1, Ordering::Relaxed) - 1;
        self.busy_gauge.set(now as f64);
    }

    pub(crate) fn busy(&self) -> u64 {
        self.busy.load(Ordering::Relaxed)
    }

    pub(crate) fn set_counts(&self, counts: &QueueCounts) {
        self.depth.set(counts.depth as f64);
        let values = [
            counts.requested,
            counts.received,
            counts.finished,
            counts.errored,
        ];
        for (gauge, value) in self.by_state.iter().zip(values) {
            gauge.set(value as f64);
        }
    }

    /// Records a task that reached its final state: one log line, three histograms, `/status`.
    pub(crate) fn finished(&self, task: &TaskRecord) {
        let finished = task.finished_ms.unwrap_or(task.created_ms);
        let received = task.received_ms.unwrap_or(task.created_ms);
        let wait = received.saturating_sub(task.created_ms);
        let execution = finished.saturating_sub(received);
        let lead = finished.saturating_sub(task.created_ms);
        let outcome = outcome(task.state);
        let (kind, id) = (task.kind.label(), task.id.logged());
        match &task.error {
            None => tracing::info!(
                target: "glassbox::tasks", kind, token = %id, outcome,
                wait_ms = wait, execution_ms = execution, lead_ms = lead,
                attempts = task.attempts, "task finished"
            ),
            Some(error) => tracing::warn!(
                target: "glassbox::tasks", kind, token = %id, outcome,
                wait_ms = wait, execution_ms = execution, lead_ms = lead,
                attempts = task.attempts, error = %error, "task finished"
            ),
        }
        self.metrics.metrics.with(|| {
            let labels = [("kind", kind), ("outcome", outcome)];
            histogram!(WAIT, &labels).record(wait as f64 / 1000.0);
            histogram!(EXECUTION, &labels).record(execution as f64 / 1000.0);
            histogram!(LEAD, &labels).record(lead as f64 / 1000.0);
        });
        let mut stats = self.kinds[task.kind as usize]
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if task.state == TaskState::Finished {
            stats.finished += 1;
        } else {
            stats.errored += 1;
        }
        let stats = &mut *stats;
        stats.wait_ms.saturating_record(wait.max(1));
        stats.execution_ms.saturating_record(execution.max(1));
        stats.lead_ms.saturating_record(lead.max(1));
        stats.interval_ended += 1;
        stats.interval_wait_ms.saturating_record(wait.max(1));
        stats.interval_lead_ms.saturating_record(lead.max(1));
    }

    /// Each kind's tasks that ended since the last call (kinds with none left out), and
    /// starts a new interval.
    pub(crate) fn take_interval(&self) -> Vec<IntervalKind> {
        let mut out = Vec::new();
        for kind in TaskKind::ALL {
            let mut stats = self.kinds[kind as usize]
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if stats.interval_ended == 0 {
                continue;
            }
            out.push(IntervalKind {
                kind: kind.label(),
                ended: stats.interval_ended,
                wait_p50_ms: stats.interval_wait_ms.value_at_quantile(0.5),
                wait_p99_ms: stats.interval_wait_ms.value_at_quantile(0.99),
                lead_p50_ms: stats.interval_lead_ms.value_at_quantile(0.5),
                lead_p99_ms: stats.interval_lead_ms.value_at_quantile(0.99),
            });
            stats.interval_ended = 0;
            stats.interval_wait_ms.reset();
            stats.interval_lead_ms.reset();
        }
        out
    }

    pub(crate) fn snapshot(&self) -> Vec<KindSnapshot> {
        TaskKind::ALL
            .iter()
            .map(|kind| {
                let stats = self.kinds[*kind as usize]
                    .lock()
                    .unwrap_or_else(|e| e.into_inner());
                KindSnapshot {
                    kind: kind.label(),
                    finished: stats.finished,
                    errored: stats.errored,
                    wait_ms: LatencySnapshot::of(&stats.wait_ms),
                    execution_ms: LatencySnapshot::of(&stats.execution_ms),
                    lead_ms: LatencySnapshot::of(&stats.lead_ms),
                }
            })
            .collect()
    }
}

/// One task kind in `/status`: tasks this process saw finish, and their times in milliseconds
/// (HDR histograms, 3 significant figures; a time under 1 ms counts as 1).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct KindSnapshot {
    pub kind: &'static str,
    pub finished: u64,
    pub errored: u64,
    pub wait_ms: LatencySnapshot,
    pub execution_ms: LatencySnapshot,
    pub lead_ms: LatencySnapshot,
}
