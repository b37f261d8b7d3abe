//! Takes one [`Point`] per interval from the service's counters and histograms.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use utoipa::ToSchema;

use super::TableRow;
use crate::app::{AppState, Shared};
use crate::tasks::telemetry::IntervalKind;
use crate::telemetry::process;
use crate::telemetry::stats::IntervalRoute;

/// How long the sampler waits for the queue's depth before leaving it out of a point.
const QUEUE_TIMEOUT: Duration = Duration::from_millis(500);

/// The service over one interval. Counts are for the interval; gauges are read at its end.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct Point {
    /// End of the interval, unix milliseconds.
    pub t: u64,
    /// Length of the interval in milliseconds (rates are counts over this).
    pub ms: u64,
    /// Routes with requests in the interval: counts by status class (1xx..5xx) and server
    /// latency percentiles in microseconds from the interval's HDR histogram.
    #[schema(value_type = Vec<Object>)]
    pub routes: Vec<IntervalRoute>,
    pub in_flight: u64,
    /// Requests refused with 503 at the concurrency limit.
    pub shed: u64,
    /// Requests refused with 503 by any bound (the concurrency limit, body memory, the task
    /// queue, or a client's share of one): `glassbox_overloads_total`.
    pub refused: u64,
    /// Connections cut for breaking a bound (a slow or oversized head, a stuck response, a
    /// broken protocol) or refused for want of room: every reason of
    /// `glassbox_connections_closed_total` but idle and evicted.
    pub cut: u64,
    /// Message store calls and failed calls.
    pub store_calls: u64,
    pub store_errors: u64,
    /// Tasks waiting for a worker; absent when the queue did not answer in time.
    pub queue_depth: Option<u64>,
    /// Task kinds with tasks that ended in the interval, with wait and lead percentiles (ms).
    #[schema(value_type = Vec<Object>)]
    pub tasks: Vec<IntervalKind>,
    /// Process CPU over the interval, percent of one core; absent where `/proc` is not.
    pub cpu_percent: Option<f64>,
    pub rss_bytes: Option<u64>,
    /// The data directory's room above `--min-free-disk` (absent when it could not be read),
    /// and what clients' writes hold there (`/status`'s `limits.disk_*`).
    pub disk_room_bytes: Option<u64>,
    pub disk_held_bytes: u64,
}

/// What the previous sample saw, for the differences.
#[derive(Debug, Default)]
struct Previous {
    at: Option<Instant>,
    shed: u64,
    refused: u64,
    cut: u64,
    store: (u64, u64),
    cpu_seconds: Option<f64>,
}

/// Samples every `--dashboard-interval` until the service is dropped.
pub(crate) fn start(state: &AppState) {
    let interval = state.dashboard.interval;
    let state = state.downgrade();
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut previous = Previous::default();
        ticks.tick().await;
        if let Some(shared) = state.upgrade() {
            // The first interval starts now: drop what came before.
            shared.telemetry.stats.take_interval();
            shared.tasks.telemetry.take_interval();
            sample(&shared, &mut previous).await;
        }
        loop {
            ticks.tick().await;
            let Some(shared) = state.upgrade() else {
                return;
            };
            let point = sample(&shared, &mut previous).await;
            shared.dashboard.alerts.observe(&point);
            shared.dashboard.timeline.push(point);
        }
    });
}

async fn sample(shared: &Shared, previous: &mut Previous) -> Point {
    let stats = &shared.telemetry.stats;
    let queue_depth = tokio::time::timeout(QUEUE_TIMEOUT, shared.tasks.queue.counts())
        .await
        .ok()
        .and_then(Result::ok)
        .map(|counts| counts.depth);
    let now = Instant::now();
    let ms = previous.at.map_or(0, |at| {
        u64::try_from(now.duration_since(at).as_millis()).unwrap_or(u64::MAX)
    });
    let routes = stats.take_interval();
    let tasks = shared.tasks.telemetry.take_interval();
    let shed = stats.shed_total();
    let refused = stats.overloaded_total();
    let cut = shared.telemetry.connections.cut_total();
    let store = shared.store.totals();
    let process = process::Usage::read();
    let cpu_percent = match (&process, previous.cpu_seconds) {
        (Some(p), Some(before)) if ms > 0 => {
            Some(((p.cpu_seconds - before) * 100_000.0 / ms as f64 * 10.0).round() / 10.0)
        }
        _ => None,
    };
    let point = Point {
        t: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(0)),
        ms,
        routes,
        in_flight: stats.in_flight(),
        shed: shed.saturating_sub(previous.shed),
        refused: refused.saturating_sub(previous.refused),
        cut: cut.saturating_sub(previous.cut),
        store_calls: store.0.saturating_sub(previous.store.0),
        store_errors: store.1.saturating_sub(previous.store.1),
        queue_depth,
        tasks,
        cpu_percent,
        rss_bytes: process.as_ref().map(|p| p.resident_bytes),
        disk_room_bytes: shared.disk.room().ok(),
        disk_held_bytes: shared.disk.held(),
    };
    *previous = Previous {
        at: Some(now),
        shed,
        refused,
        cut,
        store,
        cpu_seconds: process.map(|p| p.cpu_seconds),
    };
    let table = stats
        .snapshot()
        .routes
        .into_iter()
        .map(|r| TableRow {
            method: r.method,
            route: r.route,
            count: r.count,
            errors: r.errors,
            p50_us: r.latency_us.p50,
            p99_us: r.latency_us.p99,
            max_us: r.latency_us.max,
        })
        .collect();
    *shared
        .dashboard
        .table
        .write()
        .unwrap_or_else(|e| e.into_inner()) = std::sync::Arc::new(table);
    point
}
