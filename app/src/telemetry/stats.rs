//! Exact per-route counts and latency percentiles for `/status`, from HDR histograms.
//!
//! Each (method, route) keeps a count, a 5xx error count, a count per status code and an
//! HDR histogram of server latency in microseconds (3 significant figures, up to one hour).
//! Latency is measured from the moment the request reaches the service's middleware until its
//! response head is ready, the same span the Prometheus histogram records.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use axum::http::HeaderValue;
use hdrhistogram::Histogram;
use serde::Serialize;
use utoipa::ToSchema;

use super::RouteMap;

/// Largest latency a histogram holds exactly; longer ones are recorded as this value.
const MAX_TRACKED_US: u64 = 3_600_000_000;
const SIGNIFICANT_FIGURES: u8 = 3;

/// Where `/status` latency numbers come from.
pub(crate) const LATENCY_SOURCE: &str = "server-side HDR histogram per method and route, microseconds, \
     from request arrival in the service to response head ready, cumulative since start";

/// Counters and histograms for the whole service.
#[derive(Debug)]
pub struct Stats {
    started: Instant,
    in_flight: AtomicU64,
    total: AtomicU64,
    shed: AtomicU64,
    overloaded: AtomicU64,
    routes: RwLock<RouteMap<Arc<Mutex<RouteMethods>>>>,
}

/// The entries of one route template, one per method seen (usually one or two).
#[derive(Debug, Default)]
struct RouteMethods(Vec<(&'static str, RouteStats)>);

#[derive(Debug)]
struct RouteStats {
    count: u64,
    errors: u64,
    statuses: BTreeMap<u16, u64>,
    latency_us: Histogram<u64>,
    /// The same, since the dashboard last took an interval ([`Stats::take_interval`]).
    interval: Interval,
}

#[derive(Debug)]
struct Interval {
    count: u64,
    by_class: [u64; 5],
    latency_us: Histogram<u64>,
    /// The interval's slowest request: its latency (µs, exact) and id.
    slowest: Option<(u64, HeaderValue)>,
}

impl RouteStats {
    fn new() -> Self {
        Self {
            count: 0,
            errors: 0,
            statuses: BTreeMap::new(),
            latency_us: latency_histogram(),
            interval: Interval {
                count: 0,
                by_class: [0; 5],
                latency_us: latency_histogram(),
                slowest: None,
            },
        }
    }
}

/// One route's requests in one interval: counts by status class and latency percentiles
/// (microseconds) from that interval's own HDR histogram.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IntervalRoute {
    pub method: &'static str,
    pub route: String,
    pub requests: u64,
    /// Answers by class: 1xx, 2xx, 3xx, 4xx, 5xx.
    pub by_class: [u64; 5],
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub max: u64,
    /// The `request_id` of the interval's slowest request on this route: its log lines are
    /// `/logs?request_id=…`.
    pub slowest_request_id: Option<String>,
}

/// An empty latency histogram: microseconds, 1 µs to one hour, 3 significant figures.
pub(crate) fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_TRACKED_US, SIGNIFICANT_FIGURES)
        .expect("static histogram bounds are valid")
}

/// Records `micros`, clamped into the histogram's range.
pub(crate) fn record_latency(histogram: &mut Histogram<u64>, micros: u64) {
    histogram.saturating_record(micros.clamp(1, MAX_TRACKED_US));
}

impl Default for Stats {
    fn default() -> Self {
        Self::new()
    }
}

impl Stats {
    pub fn new() -> Self {
        Self {
            started: Instant::now(),
            in_flight: AtomicU64::new(0),
            total: AtomicU64::new(0),
            shed: AtomicU64::new(0),
            overloaded: AtomicU64::new(0),
            routes: RwLock::default(),
        }
    }

    pub fn request_started(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
    }

    /// Records a finished request (which must have been started).
    pub fn request_finished(
        &self,
        method: &'static str,
        route: &str,
        status: u16,
        micros: u64,
        request_id: &HeaderValue,
    ) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.total.fetch_add(1, Ordering::Relaxed);
        let record = |entry: &Mutex<RouteMethods>| {
            let mut methods = entry.lock().unwrap_or_else(|e| e.into_inner());
            let stats = match methods.0.iter().position(|(m, _)| *m == method) {
                Some(i) => &mut methods.0[i].1,
                None => {
                    methods.0.push((method, RouteStats::new()));
                    &mut methods.0.last_mut().expect("just pushed").1
                }
            };
            stats.count += 1;
            if status >= 500 {
                stats.errors += 1;
            }
            *stats.statuses.entry(status).or_default() += 1;
            record_latency(&mut stats.latency_us, micros);
            stats.interval.count += 1;
            stats.interval.by_class[usize::from((status / 100).clamp(1, 5) - 1)] += 1;
            record_latency(&mut stats.interval.latency_us, micros);
            if stats
                .interval
                .slowest
                .as_ref()
                .is_none_or(|(slowest, _)| micros > *slowest)
            {
                stats.interval.slowest = Some((micros, request_id.clone()));
            }
        };
        // Recorded under the read guard: a known route costs no reference-count traffic.
        if let Some(entry) = self
            .routes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(route)
        {
            return record(entry);
        }
        let mut routes = self.routes.write().unwrap_or_else(|e| e.into_inner());
        record(routes.entry(route.into()).or_default());
    }

    /// Each route template and its entries, copied out so each route is then read under its
    /// own lock only.
    fn entries(&self) -> Vec<(Box<str>, Arc<Mutex<RouteMethods>>)> {
        self.routes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Every route's requests since the last call, and starts a new interval. Routes without
    /// requests in the interval are left out.
    pub fn take_interval(&self) -> Vec<IntervalRoute> {
        let entries = self.entries();
        let mut out = Vec::new();
        for (route, entry) in entries {
            let mut methods = entry.lock().unwrap_or_else(|e| e.into_inner());
            for (method, stats) in &mut methods.0 {
                let interval = &mut stats.interval;
                if interval.count == 0 {
                    continue;
                }
                let h = &interval.latency_us;
                out.push(IntervalRoute {
                    method,
                    route: route.to_string(),
                    requests: interval.count,
                    by_class: interval.by_class,
                    p50: h.value_at_quantile(0.5),
                    p90: h.value_at_quantile(0.9),
                    p99: h.value_at_quantile(0.99),
                    max: h.max(),
                    slowest_request_id: interval
                        .slowest
                        .take()
                        .and_then(|(_, id)| id.to_str().ok().map(str::to_owned)),
                });
                interval.count = 0;
                interval.by_class = [0; 5];
                interval.latency_us.reset();
            }
        }
        out.sort_by(|a, b| a.route.cmp(&b.route).then(a.method.cmp(b.method)));
        out
    }

    /// Requests refused at the concurrency limit since start.
    pub fn shed_total(&self) -> u64 {
        self.shed.load(Ordering::Relaxed)
    }

    pub fn request_shed(&self) {
        self.shed.fetch_add(1, Ordering::Relaxed);
    }

    /// Requests refused with 503 `overloaded, retry later` since start, whichever bound was
    /// full (the shed ones among them).
    pub fn overloaded_total(&self) -> u64 {
        self.overloaded.load(Ordering::Relaxed)
    }

    pub fn request_overloaded(&self) {
        self.overloaded.fetch_add(1, Ordering::Relaxed);
    }

    pub fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// A consistent-enough view for `/status`: each route is read under its own lock.
    pub fn snapshot(&self) -> StatusSnapshot {
        let entries = self.entries();
        let mut routes = Vec::new();
        let mut errors_total = 0;
        for (route, entry) in entries {
            let methods = entry.lock().unwrap_or_else(|e| e.into_inner());
            for (method, stats) in &methods.0 {
                errors_total += stats.errors;
                routes.push(RouteSnapshot {
                    method,
                    route: route.to_string(),
                    count: stats.count,
                    errors: stats.errors,
                    status_codes: stats
                        .statuses
                        .iter()
                        .map(|(code, n)| (code.to_string(), *n))
                        .collect(),
                    latency_us: LatencySnapshot::of(&stats.latency_us),
                });
            }
        }
        routes.sort_by(|a, b| a.route.cmp(&b.route).then(a.method.cmp(b.method)));
        StatusSnapshot {
            uptime_seconds: self.started.elapsed().as_secs_f64(),
            requests_in_flight: self.in_flight(),
            requests_total: self.total.load(Ordering::Relaxed),
            errors_total,
            requests_shed_total: self.shed.load(Ordering::Relaxed),
            requests_overloaded_total: self.overloaded_total(),
            latency_source: LATENCY_SOURCE,
            routes,
        }
    }
}

/// The `data` of `/status`.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatusSnapshot {
    pub uptime_seconds: f64,
    pub requests_in_flight: u64,
    /// Finished requests, every route and status, including unmatched paths.
    pub requests_total: u64,
    /// Finished requests answered with a 5xx status.
    pub errors_total: u64,
    /// Requests refused with 503 because the concurrency limit was reached (also in `requests_total`).
    pub requests_shed_total: u64,
    /// Requests refused with 503 `overloaded, retry later` by any bound: the concurrency limit,
    /// request body memory, the task queue, or one client's share of one of them
    /// (`glassbox_overloads_total` by bound; also in `requests_total`).
    pub requests_overloaded_total: u64,
    pub latency_source: &'static str,
    pub routes: Vec<RouteSnapshot>,
}

/// One method and route template.
#[derive(Debug, Serialize, ToSchema)]
pub struct RouteSnapshot {
    pub method: &'static str,
    pub route: String,
    pub count: u64,
    /// Responses with a 5xx status.
    pub errors: u64,
    pub status_codes: BTreeMap<String, u64>,
    pub latency_us: LatencySnapshot,
}

/// Percentiles in microseconds.
#[derive(Debug, Serialize, ToSchema)]
pub struct LatencySnapshot {
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p99_9: u64,
    pub max: u64,
    pub mean: f64,
}

impl LatencySnapshot {
    pub fn of(h: &Histogram<u64>) -> Self {
        Self {
            p50: h.value_at_quantile(0.5),
            p90: h.value_at_quantile(0.9),
            p99: h.value_at_quantile(0.99),
            p99_9: h.value_at_quantile(0.999),
            max: h.max(),
            mean: (h.mean() * 10.0).round() / 10.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: HeaderValue = HeaderValue::from_static("test-id");

    #[test]
    fn counts_and_percentiles() {
        let stats = Stats::new();
        for us in 1..=1000u64 {
            stats.request_started();
            let status = if us % 100 == 0 { 500 } else { 200 };
            stats.request_finished("GET", "/sleep/{ms}", status, us * 1000, &ID);
        }
        stats.request_started();
        stats.request_finished("POST", "/sleep/{ms}", 405, 10, &ID);
        let snap = stats.snapshot();
        assert_eq!(snap.requests_total, 1001);
        assert_eq!(snap.requests_in_flight, 0);
        assert_eq!(snap.errors_total, 10);
        assert_eq!(snap.routes.len(), 2);
        let get = &snap.routes[0];
        assert_eq!((get.method, get.count, get.errors), ("GET", 1000, 10));
        assert_eq!(get.status_codes["200"], 990);
        // Three significant figures: within 0.1% of the exact order statistic.
        let close = |got: u64, want: u64| (got as f64 - want as f64).abs() <= want as f64 * 0.001;
        assert!(close(get.latency_us.p50, 500_000), "{}", get.latency_us.p50);
        assert!(close(get.latency_us.p99, 990_000), "{}", get.latency_us.p99);
        assert!(
            close(get.latency_us.max, 1_000_000),
            "{}",
            get.latency_us.max
        );
        assert_eq!(snap.routes[1].status_codes["405"], 1);
    }

    #[test]
    fn an_interval_holds_only_its_own_requests() {
        let stats = Stats::new();
        let finish = |route: &str, status: u16, us: u64| {
            stats.request_started();
            stats.request_finished("GET", route, status, us, &ID);
        };
        assert!(stats.take_interval().is_empty());
        for us in 1..=100 {
            finish("/", 200, us * 10);
        }
        finish("/code/{code}", 503, 50);
        finish("/code/{code}", 404, 50);
        let first = stats.take_interval();
        assert_eq!(first.len(), 2);
        assert_eq!((first[0].route.as_str(), first[0].requests), ("/", 100));
        assert_eq!(first[0].by_class, [0, 100, 0, 0, 0]);
        assert_eq!((first[0].p50, first[0].max), (500, 1000));
        assert_eq!(first[1].by_class, [0, 0, 0, 1, 1]);

        assert_eq!(first[0].slowest_request_id.as_deref(), Some("test-id"));

        stats.request_started();
        stats.request_finished("GET", "/", 200, 9, &HeaderValue::from_static("slow"));
        stats.request_started();
        stats.request_finished("GET", "/", 200, 3, &HeaderValue::from_static("quick"));
        let slowest = stats.take_interval();
        assert_eq!(
            slowest[0].slowest_request_id.as_deref(),
            Some("slow"),
            "the interval's slowest request is named"
        );

        finish("/", 200, 7);
        let second = stats.take_interval();
        assert_eq!(second.len(), 1, "a route without requests is left out");
        assert_eq!(
            (second[0].requests, second[0].p50, second[0].max),
            (1, 7, 7)
        );
        assert_eq!(stats.snapshot().routes[0].count, 103, "the totals go on");
    }

    #[test]
    fn extreme_latencies_are_kept_within_bounds() {
        let stats = Stats::new();
        stats.request_started();
        stats.request_finished("GET", "/", 200, 0, &ID);
        stats.request_started();
        stats.request_finished("GET", "/", 200, u64::MAX, &ID);
        let snap = stats.snapshot();
        assert_eq!(snap.routes[0].count, 2);
        assert!(snap.routes[0].latency_us.max >= MAX_TRACKED_US);
    }
}
