//! Per-operation counts and HDR latency histograms of the store, for `/status`.

use std::sync::Mutex;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;
use utoipa::ToSchema;

use crate::telemetry::stats::LatencySnapshot;

/// One operation's record since start.
#[derive(Debug)]
pub(super) struct OperationStats(Mutex<Record>);

#[derive(Debug)]
struct Record {
    count: u64,
    errors: u64,
    latency_us: Histogram<u64>,
}

impl Default for OperationStats {
    fn default() -> Self {
        Self(Mutex::new(Record {
            count: 0,
            errors: 0,
            latency_us: crate::telemetry::stats::latency_histogram(),
        }))
    }
}

impl OperationStats {
    pub(super) fn record(&self, elapsed: Duration, failed: bool) {
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        let mut record = self.0.lock().unwrap_or_else(|e| e.into_inner());
        record.count += 1;
        record.errors += u64::from(failed);
        crate::telemetry::stats::record_latency(&mut record.latency_us, micros);
    }

    /// Calls and failures since start.
    pub(super) fn totals(&self) -> (u64, u64) {
        let record = self.0.lock().unwrap_or_else(|e| e.into_inner());
        (record.count, record.errors)
    }

    pub(super) fn snapshot(&self, operation: &'static str) -> OperationSnapshot {
        let record = self.0.lock().unwrap_or_else(|e| e.into_inner());
        OperationSnapshot {
            operation,
            count: record.count,
            errors: record.errors,
            latency_us: LatencySnapshot::of(&record.latency_us),
        }
    }
}

/// One store operation in `/status`: latency measured around the backend call, in
/// microseconds, failures (timeouts included) counted in `errors`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct OperationSnapshot {
    /// `put`, `get` or `count`.
    pub operation: &'static str,
    pub count: u64,
    pub errors: u64,
    pub latency_us: LatencySnapshot,
}
