//! The client's own view of every request: counts by status, full latency in HDR histograms
//! (microseconds, from the request leaving goose to the last byte of the body), and the same
//! numbers as Prometheus series for dashboards that put the client next to the server.
//!
//! In the open model ([`crate::open`]) each request has a second latency, from the moment its
//! transaction was due to start: the latency corrected for coordinated omission.
//!
//! goose's own reports time to first byte in whole milliseconds and restart after the ramp-up;
//! these never restart, so they count exactly the requests that were made.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use hdrhistogram::Histogram;
use metrics::{
    Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram,
};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};
use serde::Serialize;

pub const REQUEST_DURATION: &str = "loadgen_request_duration_seconds";
pub const CORRECTED_DURATION: &str = "loadgen_request_corrected_duration_seconds";
pub const STARTS: &str = "loadgen_starts_total";
pub const LATE_STARTS: &str = "loadgen_late_starts_total";
pub const TARGET_RATE: &str = "loadgen_target_rate";
pub const REQUESTS_IN_FLIGHT: &str = "loadgen_requests_in_flight";
pub const TRANSPORT_ERRORS: &str = "loadgen_transport_errors_total";
pub const USERS: &str = "loadgen_users";

/// Label names: OpenTelemetry's HTTP attribute names as Prometheus spells them, the same as
/// glassbox's `http_server_*` series, so a query can join client and server on them.
pub const METHOD_LABEL: &str = "http_request_method";
pub const ROUTE_LABEL: &str = "http_route";
pub const STATUS_LABEL: &str = "http_response_status_code";

/// The same buckets as glassbox's `http_server_request_duration_seconds`, so a dashboard can
/// put the two side by side bucket for bucket.
const DURATION_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0, 60.0,
];

/// Where the latency numbers come from, written next to them in every output.
pub const LATENCY_SOURCE: &str = "loadgen HDR histogram per method and route, microseconds, \
    from the request leaving goose (after any throttle) to the last byte of the response body";

/// Where the corrected latency comes from.
pub const CORRECTED_SOURCE: &str = "loadgen HDR histogram per method and route, microseconds, \
    from the time the open model's schedule said the request's transaction was due to the last \
    byte of the response body (equal to the raw latency for a transaction's follow-up requests)";

/// A method and the route template glassbox labels the request with (`unmatched` for paths
/// it has no route for).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct RouteKey {
    pub method: String,
    pub route: String,
}

impl RouteKey {
    pub fn new(method: &str, route: &str) -> Self {
        Self {
            method: method.to_owned(),
            route: route.to_owned(),
        }
    }
}

impl std::fmt::Display for RouteKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.method, self.route)
    }
}

/// What was recorded for one route.
#[derive(Debug, Clone)]
pub struct RouteRecord {
    /// The route's Prometheus handles, registered once: the hot path does no registry lookup.
    series: Series,
    /// Every request sent, answered or not.
    pub requests: u64,
    /// Requests that got no response: connection refused or reset, timeout, bad TLS.
    pub transport_errors: u64,
    /// Answered requests by status code.
    pub status_codes: BTreeMap<u16, u64>,
    /// Full latency of answered requests, microseconds.
    pub latency: Histogram<u64>,
    /// In the open model: the latency of answered requests from the time they were due.
    pub corrected: Option<Histogram<u64>>,
}

#[derive(Debug, Clone)]
struct Series {
    in_flight: metrics::Gauge,
    transport_errors: metrics::Counter,
    duration: Vec<(u16, metrics::Histogram)>,
    corrected: Vec<(u16, metrics::Histogram)>,
}

impl RouteRecord {
    fn new(series: Series) -> Self {
        Self {
            series,
            requests: 0,
            transport_errors: 0,
            status_codes: BTreeMap::new(),
            latency: latency_histogram(),
            corrected: None,
        }
    }

    pub fn percentiles(&self) -> Percentiles {
        Percentiles::of(&self.latency)
    }

    /// Percentiles of the corrected latency, in the open model.
    pub fn corrected_percentiles(&self) -> Option<Percentiles> {
        self.corrected.as_ref().map(Percentiles::of)
    }
}

/// Microseconds, from 1 µs to an hour, three significant digits.
pub fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("bounds are valid")
}

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Percentiles {
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p99_9: u64,
    pub max: u64,
}

impl Percentiles {
    pub fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        Self {
            p50: h.value_at_quantile(0.50),
            p90: h.value_at_quantile(0.90),
            p99: h.value_at_quantile(0.99),
            p99_9: h.value_at_quantile(0.999),
            max: h.max(),
        }
    }
}

/// The recorder a load test shares between its users.
#[derive(Debug)]
pub struct Recorder {
    routes: Mutex<BTreeMap<RouteKey, RouteRecord>>,
    total: AtomicU64,
    transport_errors: AtomicU64,
    server_errors: AtomicU64,
    prometheus: PrometheusRecorder,
    handle: PrometheusHandle,
}

impl Default for Recorder {
    fn default() -> Self {
        Self::new()
    }
}

impl Recorder {
    pub fn new() -> Self {
        let prometheus = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(REQUEST_DURATION.into()), DURATION_BUCKETS)
            .and_then(|b| {
                b.set_buckets_for_metric(Matcher::Full(CORRECTED_DURATION.into()), DURATION_BUCKETS)
            })
            .expect("the bucket lists are not empty")
            .build_recorder();
        let handle = prometheus.handle();
        let recorder = Self {
            routes: Mutex::new(BTreeMap::new()),
            total: AtomicU64::new(0),
            transport_errors: AtomicU64::new(0),
            server_errors: AtomicU64::new(0),
            prometheus,
            handle,
        };
        recorder.with(|| {
            describe_histogram!(
                REQUEST_DURATION,
                Unit::Seconds,
                "Full latency of the load generator's requests as the client saw it, to the last body byte."
            );
            describe_gauge!(REQUESTS_IN_FLIGHT, "Load generator requests sent and not yet answered.");
            describe_counter!(
                TRANSPORT_ERRORS,
                "Load generator requests that got no HTTP response (refused, reset, timed out)."
            );
            describe_gauge!(USERS, "goose users running.");
            describe_histogram!(
                CORRECTED_DURATION,
                Unit::Seconds,
                "Open model: latency of the load generator's requests from the time their transaction was due (corrected for coordinated omission)."
            );
            describe_counter!(STARTS, "Open model: transactions started on the schedule.");
            describe_counter!(
                LATE_STARTS,
                "Open model: transactions that went out 5 ms or more after they were due."
            );
            describe_gauge!(TARGET_RATE, "Open model: transactions the schedule starts per second.");
            gauge!(USERS).set(0.0);
        });
        recorder
    }

    fn with<T>(&self, f: impl FnOnce() -> T) -> T {
        metrics::with_local_recorder(&self.prometheus, f)
    }

    /// The Prometheus text exposition of the client-side series.
    pub fn render(&self) -> String {
        self.handle.render()
    }

    /// Marks a request as sent; the guard marks it finished when dropped.
    pub fn start(&self, key: &RouteKey) -> InFlight {
        let gauge = self.route(key, |record| record.series.in_flight.clone());
        gauge.increment(1.0);
        InFlight { gauge }
    }

    /// Runs `f` on `key`'s record, creating it (and registering its series) on first use.
    fn route<T>(&self, key: &RouteKey, f: impl FnOnce(&mut RouteRecord) -> T) -> T {
        let mut routes = self.routes.lock().expect("recorder lock");
        if let Some(record) = routes.get_mut(key) {
            return f(record);
        }
        let series = self.with(|| Series {
            in_flight: gauge!(REQUESTS_IN_FLIGHT, METHOD_LABEL => key.method.clone(), ROUTE_LABEL => key.route.clone()),
            transport_errors: counter!(TRANSPORT_ERRORS, METHOD_LABEL => key.method.clone(), ROUTE_LABEL => key.route.clone()),
            duration: Vec::new(),
            corrected: Vec::new(),
        });
        f(routes
            .entry(key.clone())
            .or_insert_with(|| RouteRecord::new(series)))
    }

    /// Records one request: its status, or `None` when no response came, and its latency; in
    /// the open model also its latency from the time it was due (`corrected`).
    pub fn record(&self, key: &RouteKey, status: Option<u16>, micros: u64, corrected: Option<u64>) {
        self.total.fetch_add(1, Ordering::Relaxed);
        match status {
            Some(status) if status >= 500 => {
                self.server_errors.fetch_add(1, Ordering::Relaxed);
            }
            Some(_) => {}
            None => {
                self.transport_errors.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.route(key, |record| {
            record.requests += 1;
            let Some(status) = status else {
                record.transport_errors += 1;
                record.series.transport_errors.increment(1);
                return;
            };
            *record.status_codes.entry(status).or_default() += 1;
            record.latency.saturating_record(micros.max(1));
            self.series(&mut record.series.duration, REQUEST_DURATION, key, status)
                .record(micros as f64 / 1e6);
            if let Some(corrected) = corrected {
                record
                    .corrected
                    .get_or_insert_with(latency_histogram)
                    .saturating_record(corrected.max(1));
                self.series(
                    &mut record.series.corrected,
                    CORRECTED_DURATION,
                    key,
                    status,
                )
                .record(corrected as f64 / 1e6);
            }
        });
    }

    /// `name`'s histogram for `key` and `status`, registered on first use.
    fn series(
        &self,
        known: &mut Vec<(u16, metrics::Histogram)>,
        name: &'static str,
        key: &RouteKey,
        status: u16,
    ) -> metrics::Histogram {
        if let Some((_, histogram)) = known.iter().find(|(s, _)| *s == status) {
            return histogram.clone();
        }
        let histogram = self.with(|| {
            histogram!(name,
                METHOD_LABEL => key.method.clone(),
                ROUTE_LABEL => key.route.clone(),
                STATUS_LABEL => status.to_string())
        });
        known.push((status, histogram.clone()));
        histogram
    }

    /// The open model is running at `rate` transactions a second.
    pub fn open_model(&self, rate: f64) {
        self.with(|| {
            gauge!(TARGET_RATE).set(rate);
            counter!(STARTS).absolute(0);
            counter!(LATE_STARTS).absolute(0);
        });
    }

    /// The open model started a transaction, on time or late.
    pub fn started(&self, late: bool) {
        self.with(|| {
            counter!(STARTS).increment(1);
            if late {
                counter!(LATE_STARTS).increment(1);
            }
        });
    }

    pub fn user_started(&self) {
        self.with(|| gauge!(USERS).increment(1.0));
    }

    pub fn user_stopped(&self) {
        self.with(|| gauge!(USERS).decrement(1.0));
    }

    /// Requests, transport errors and 5xx answers so far, for the progress line.
    pub fn totals(&self) -> (u64, u64, u64) {
        (
            self.total.load(Ordering::Relaxed),
            self.transport_errors.load(Ordering::Relaxed),
            self.server_errors.load(Ordering::Relaxed),
        )
    }

    /// A copy of every route's record.
    pub fn snapshot(&self) -> BTreeMap<RouteKey, RouteRecord> {
        self.routes.lock().expect("recorder lock").clone()
    }
}

/// A request in flight; dropping it takes it off the gauge, whichever way the request ended.
#[derive(Debug)]
pub struct InFlight {
    gauge: metrics::Gauge,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.gauge.decrement(1.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_statuses_latency_and_transport_errors_per_route() {
        let recorder = Recorder::new();
        let root = RouteKey::new("GET", "/");
        let code = RouteKey::new("GET", "/code/{code}");
        for micros in [100, 200, 300, 400] {
            recorder.record(&root, Some(200), micros, None);
        }
        recorder.record(&code, Some(503), 50, None);
        recorder.record(&code, None, 60_000_000, None);

        let snapshot = recorder.snapshot();
        let r = &snapshot[&root];
        assert_eq!((r.requests, r.transport_errors), (4, 0));
        assert_eq!(r.status_codes[&200], 4);
        let p = r.percentiles();
        assert_eq!((p.p50, p.max), (200, 400));
        let c = &snapshot[&code];
        assert_eq!((c.requests, c.transport_errors), (2, 1));
        assert_eq!(
            c.latency.len(),
            1,
            "a request with no answer has no latency"
        );
        assert_eq!(recorder.totals(), (6, 1, 1));
    }

    #[test]
    fn prometheus_series_match_the_records() {
        let recorder = Recorder::new();
        let key = RouteKey::new("POST", "/messages");
        {
            let _in_flight = recorder.start(&key);
            assert!(recorder.render().contains(
                r#"loadgen_requests_in_flight{http_request_method="POST",http_route="/messages"} 1"#
            ));
        }
        recorder.record(&key, Some(201), 1500, None);
        recorder.record(&key, Some(201), 2600, None);
        recorder.record(&key, None, 10, None);
        recorder.user_started();
        let text = recorder.render();
        assert!(text.contains(
            r#"loadgen_request_duration_seconds_count{http_request_method="POST",http_route="/messages",http_response_status_code="201"} 2"#
        ), "{text}");
        assert!(text.contains(
            r#"loadgen_request_duration_seconds_bucket{http_request_method="POST",http_route="/messages",http_response_status_code="201",le="0.001"} 0"#
        ), "{text}");
        assert!(
            text.contains(r#"loadgen_transport_errors_total{http_request_method="POST",http_route="/messages"} 1"#),
            "{text}"
        );
        assert!(text.contains(
            r#"loadgen_requests_in_flight{http_request_method="POST",http_route="/messages"} 0"#
        ));
        assert!(text.contains("loadgen_users 1"), "{text}");
        assert!(
            !text.contains(CORRECTED_DURATION),
            "the closed model has no corrected latency: {text}"
        );
    }

    #[test]
    fn the_open_model_records_both_latencies_and_its_starts() {
        let recorder = Recorder::new();
        let key = RouteKey::new("GET", "/");
        recorder.open_model(300.0);
        recorder.started(false);
        recorder.started(true);
        // Sent 1 ms after it was due, answered 1 ms later; then a follow-up, on its own time.
        recorder.record(&key, Some(200), 1_000, Some(2_000));
        recorder.record(&key, Some(200), 400, Some(400));
        let r = &recorder.snapshot()[&key];
        assert_eq!(r.percentiles().max, 1_000);
        let corrected = r.corrected_percentiles().unwrap();
        assert_eq!((corrected.p50, corrected.max), (400, 2_000));
        let text = recorder.render();
        for line in [
            r#"loadgen_request_corrected_duration_seconds_bucket{http_request_method="GET",http_route="/",http_response_status_code="200",le="0.001"} 1"#,
            r#"loadgen_request_corrected_duration_seconds_bucket{http_request_method="GET",http_route="/",http_response_status_code="200",le="0.0025"} 2"#,
            r#"loadgen_request_duration_seconds_bucket{http_request_method="GET",http_route="/",http_response_status_code="200",le="0.001"} 2"#,
            "loadgen_starts_total 2",
            "loadgen_late_starts_total 1",
            "loadgen_target_rate 300",
        ] {
            assert!(text.contains(line), "no {line} in {text}");
        }
    }
}
