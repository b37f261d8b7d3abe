//! The built-in live dashboard: a page served from the binary (`GET /dashboard`, assets
//! embedded at build time) that polls a compact JSON endpoint every second.
//!
//! A sampler task takes one [`Point`] per interval — each route's requests in that interval
//! with latency percentiles from the interval's own HDR histogram, status classes, requests in
//! flight and refused, connections cut, store calls, queue depth and task wait and lead times,
//! process CPU and memory — into a bounded [`Timeline`]. A poll returns only the points after
//! the last one the page saw, so it costs the service a copy of a point or two and their
//! serialisation.

pub(crate) mod alerts;
pub(crate) mod sampler;
pub(crate) mod timeline;

use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde::Serialize;
use utoipa::ToSchema;

pub(crate) use self::sampler::Point;
use self::timeline::Timeline;
use crate::telemetry::log_ring::LogRing;

/// The page and its assets, compiled into the binary.
pub(crate) mod assets {
    pub(crate) const INDEX_HTML: &str = include_str!("assets/index.html");
    pub(crate) const APP_JS: &str = include_str!("assets/app.js");
    pub(crate) const APP_CSS: &str = include_str!("assets/app.css");
}

/// What the dashboard shows: the timeline, the current route table, and the log ring.
#[derive(Debug)]
pub(crate) struct Dashboard {
    pub interval: Duration,
    pub timeline: Timeline<Point>,
    /// Per route since start, refreshed by the sampler with each point.
    pub table: RwLock<Arc<Vec<TableRow>>>,
    pub logs: Arc<LogRing>,
    /// The demo burn-rate alert, evaluated from the samples.
    pub alerts: alerts::Alerts,
}

impl Dashboard {
    /// A dashboard keeping `window` of samples taken every `interval` (which the configuration
    /// holds to 100 ms at the least).
    pub(crate) fn new(interval: Duration, window: Duration, logs: Arc<LogRing>) -> Self {
        let capacity = (window.as_millis() / interval.as_millis()).clamp(2, 100_000) as usize;
        Self {
            interval,
            timeline: Timeline::new(capacity),
            table: RwLock::new(Arc::new(Vec::new())),
            logs,
            alerts: alerts::Alerts::default(),
        }
    }

    /// How much history the timeline holds.
    pub(crate) fn window(&self) -> Duration {
        self.interval * self.timeline.capacity() as u32
    }

    pub(crate) fn table(&self) -> Arc<Vec<TableRow>> {
        self.table.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// One method and route since the service started (from the `/status` histograms).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct TableRow {
    pub method: &'static str,
    pub route: String,
    pub count: u64,
    /// 5xx answers.
    pub errors: u64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
}
