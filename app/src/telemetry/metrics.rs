//! Prometheus metrics: one recorder per service instance, rendered at `/metrics`.
//!
//! Names follow the Prometheus and OpenTelemetry HTTP conventions. Histograms have explicit
//! buckets (never summaries), so Prometheus can aggregate and compute quantiles over them.

use std::fmt::Write as _;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use metrics::{
    Counter, Gauge, Histogram, Unit, counter, describe_counter, describe_gauge, describe_histogram,
    gauge, histogram,
};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

use super::openmetrics::{Exemplar, Exemplars};
use super::process;
use super::sharded;
use super::{RequestInfo, RouteMap};
use crate::store::{ErrorKind, Operation};

pub(crate) const REQUEST_DURATION: &str = "http_server_request_duration_seconds";
pub(crate) const RESPONSE_SIZE: &str = "http_server_response_body_size_bytes";
pub(crate) const ACTIVE_REQUESTS: &str = "http_server_active_requests";
pub(crate) const REQUESTS_SHED: &str = "glassbox_requests_shed_total";
pub(crate) const OVERLOADS: &str = "glassbox_overloads_total";
pub(crate) const TLS_HANDSHAKES: &str = "glassbox_tls_handshakes_total";
pub(crate) const TLS_HANDSHAKE_FAILURES: &str = "glassbox_tls_handshake_failures_total";
pub(crate) const CERT_EXPIRY: &str = "glassbox_certificate_expiry_timestamp_seconds";
pub(crate) const CERT_RELOADS: &str = "glassbox_certificate_reloads_total";
pub(crate) const BUILD_INFO: &str = "glassbox_build_info";
pub(crate) const STORE_DURATION: &str = "glassbox_store_operation_duration_seconds";
pub(crate) const STORE_ERRORS: &str = "glassbox_store_errors_total";
pub(crate) const STORE_MESSAGES: &str = "glassbox_store_messages";
pub(crate) const STORE_COMMIT_BATCH: &str = "glassbox_store_commit_batch_size";
pub(crate) const DISK_ROOM: &str = "glassbox_disk_room_bytes";
pub(crate) const DISK_HELD: &str = "glassbox_disk_held_bytes";
pub(crate) const FAULT_ACTIVE: &str = "glassbox_fault_active";
pub(crate) const FAULT_INJECTIONS: &str = "glassbox_fault_injections_total";

/// The request series' labels, with OpenTelemetry's names for HTTP server metrics as
/// Prometheus spells them (`http.request.method`, `http.route`, `http.response.status_code`).
/// The access log's `method`, `route` and `status` fields carry the same values.
pub(crate) const METHOD_LABEL: &str = "http_request_method";
pub(crate) const ROUTE_LABEL: &str = "http_route";
pub(crate) const STATUS_LABEL: &str = "http_response_status_code";

/// Seconds; fine at the low end, where a TLS hello world lives, up to the longest `/sleep`.
const DURATION_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0, 60.0,
];
/// Messages per durable commit, powers of two up to the largest batch.
const BATCH_BUCKETS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0,
];
/// Seconds, for tasks: from a few milliseconds to an hour.
const TASK_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0,
    600.0, 1800.0, 3600.0,
];
/// The task histograms' common prefix (they share [`TASK_BUCKETS`]).
pub(crate) const TASK_PREFIX: &str = "glassbox_task_";
/// Bytes, powers of four from 64 B to 16 MiB.
const SIZE_BUCKETS: &[f64] = &[
    64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0, 16777216.0,
];

/// Status codes that keep their own `http_response_status_code` label: every code a glassbox
/// route answers besides `/code/{code}`, and the ones clients commonly meet. Any other code is
/// labelled by its class (`2xx` .. `5xx`), so `/code/{code}`'s 400 possible codes make at most
/// `OWN_STATUS_LABELS.len() + 4` label values per method (about 34 series each, over the two
/// request histograms) instead of 400; `/status` keeps every code exact.
pub(crate) const OWN_STATUS_LABELS: &[u16] = &[
    200, 201, 202, 204, 206, 301, 302, 303, 304, 307, 308, 400, 401, 403, 404, 405, 406, 408, 409,
    410, 411, 413, 414, 415, 416, 418, 422, 429, 431, 500, 501, 502, 503, 504, 507,
];

/// The series key of `status`: itself when it has its own label, else its class (2..=5).
fn status_key(status: u16) -> u16 {
    match OWN_STATUS_LABELS.binary_search(&status) {
        Ok(_) => status,
        Err(_) => status / 100,
    }
}

/// The `http_response_status_code` label of a series key.
fn status_label(key: u16) -> String {
    match key {
        0..=9 => format!("{key}xx"),
        _ => key.to_string(),
    }
}

/// The series key a `http_response_status_code` label stands for: [`status_label`] undone.
fn status_key_of_label(label: &str) -> Option<u16> {
    match label.strip_suffix("xx") {
        Some(class) => class.parse().ok(),
        None => label.parse().ok(),
    }
}

/// The recorder, its render handle, and the per-request series.
///
/// The two request histograms every request records into are glassbox's own
/// ([`sharded::Histogram`], rendered here in the recorder's text format); the recorder keeps
/// the rest, which only some requests touch.
#[derive(Debug)]
pub struct Metrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    active: Gauge,
    /// Route template, then (method, status) pairs: a `&str` finds its route without allocating.
    series: RwLock<RouteMap<Vec<RequestSeries>>>,
}

#[derive(Debug, Clone)]
struct RequestSeries {
    method: &'static str,
    /// The status's series key ([`status_key`]).
    status: u16,
    histograms: Arc<RequestHistograms>,
}

/// One of the request histogram families as `/metrics` writes it.
struct Family {
    name: &'static str,
    help: &'static str,
    /// The histogram's integer sum per unit of the family's (nanoseconds a second, or 1).
    sum_per_unit: f64,
    /// A series' histogram of this family.
    of: fn(&RequestHistograms) -> &sharded::Histogram,
}

/// One series' request histograms.
#[derive(Debug)]
struct RequestHistograms {
    /// [`REQUEST_DURATION`], summing nanoseconds (rendered as seconds).
    duration: sharded::Histogram,
    /// [`RESPONSE_SIZE`], summing bytes.
    size: sharded::Histogram,
    /// The duration histogram's exemplars, one per bucket, for OpenMetrics scrapes.
    exemplars: Exemplars,
}

const REQUEST_DURATION_HELP: &str =
    "Duration of HTTP server requests, from arrival in the service to response head ready.";
const RESPONSE_SIZE_HELP: &str = "Size of HTTP response bodies.";

impl RequestSeries {
    fn find<'a>(list: &'a [Self], method: &str, status: u16) -> Option<&'a Self> {
        list.iter()
            .find(|s| s.method == method && s.status == status)
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(REQUEST_DURATION.into()), DURATION_BUCKETS)
            .and_then(|b| {
                b.set_buckets_for_metric(Matcher::Full(RESPONSE_SIZE.into()), SIZE_BUCKETS)
            })
            .and_then(|b| {
                b.set_buckets_for_metric(Matcher::Full(STORE_DURATION.into()), DURATION_BUCKETS)
            })
            .and_then(|b| {
                b.set_buckets_for_metric(Matcher::Full(STORE_COMMIT_BATCH.into()), BATCH_BUCKETS)
            })
            .and_then(|b| {
                b.set_buckets_for_metric(Matcher::Prefix(TASK_PREFIX.into()), TASK_BUCKETS)
            })
            .expect("bucket lists are not empty")
            .build_recorder();
        let handle = recorder.handle();
        let active = metrics::with_local_recorder(&recorder, || gauge!(ACTIVE_REQUESTS));
        let metrics = Self {
            recorder,
            handle,
            active,
            series: RwLock::default(),
        };
        metrics.with(|| {
            describe_gauge!(ACTIVE_REQUESTS, "HTTP requests being served right now.");
            describe_counter!(
                REQUESTS_SHED,
                "Requests refused with 503 because the concurrency limit was reached."
            );
            describe_counter!(
                OVERLOADS,
                "Requests refused with 503 by the bound that was full: permits, client_permits, \
                 body_memory, client_body_memory, queue, client_queue."
            );
            describe_counter!(TLS_HANDSHAKES, "Completed TLS handshakes by version and ALPN protocol.");
            describe_counter!(TLS_HANDSHAKE_FAILURES, "Failed or timed-out TLS handshakes by reason.");
            describe_gauge!(
                CERT_EXPIRY,
                Unit::Seconds,
                "Expiry of the served certificate, as a unix timestamp."
            );
            describe_counter!(
                CERT_RELOADS,
                "Attempts to read the served certificate again (SIGHUP or changed files), by result."
            );
            describe_gauge!(BUILD_INFO, "Always 1; the labels describe the running build.");
            describe_histogram!(
                STORE_DURATION,
                Unit::Seconds,
                "Duration of message store operations, timeouts included, by outcome."
            );
            describe_counter!(STORE_ERRORS, "Failed message store operations by kind.");
            describe_gauge!(STORE_MESSAGES, "Messages in the store, as of its last count.");
            describe_histogram!(
                STORE_COMMIT_BATCH,
                "Messages written per durable commit of the embedded store (group commit)."
            );
            describe_gauge!(
                DISK_ROOM,
                Unit::Bytes,
                "Free bytes on the data directory's filesystem above --min-free-disk, as of the last scrape."
            );
            describe_gauge!(
                DISK_HELD,
                Unit::Bytes,
                "Bytes clients' writes hold on the data directory's filesystem, as this process counts \
                 them (uploads being stored; task payloads and results on the embedded queue; \
                 messages in the embedded store): one client may hold --client-share of the room \
                 they could have."
            );
            describe_gauge!(
                FAULT_ACTIVE,
                "1 while the injected fault is active, 0 after it ended (the /faults API, --allow-faults)."
            );
            describe_counter!(
                FAULT_INJECTIONS,
                "Requests or store calls an injected fault answered, failed or slowed."
            );
            gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION"), "profile" => build_profile())
                .set(1.0);
        });
        metrics
    }

    /// Runs `f` with this instance's recorder, so the `metrics` macros in it register here.
    pub fn with<T>(&self, f: impl FnOnce() -> T) -> T {
        metrics::with_local_recorder(&self.recorder, f)
    }

    /// Records one request that took `elapsed` and ended `at`; its id becomes the exemplar of
    /// its duration bucket.
    pub fn request(
        &self,
        info: &RequestInfo,
        status: u16,
        elapsed: Duration,
        bytes: u64,
        at: SystemTime,
    ) {
        let (method, route) = (info.method, info.route());
        let record = |series: &RequestSeries| {
            let h = &series.histograms;
            let seconds = elapsed.as_secs_f64();
            let bucket = h.duration.bucket(seconds);
            let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
            h.duration.record(bucket, nanos);
            h.size.record(h.size.bucket(bytes as f64), bytes);
            h.exemplars.record(bucket, seconds, &info.request_id, at);
        };
        let status = status_key(status);
        // Recorded under the read guard: a known series costs no reference-count traffic.
        if let Some(series) = self
            .series
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(route)
            .and_then(|list| RequestSeries::find(list, method, status))
        {
            return record(series);
        }
        record(&self.register(method, route, status));
    }

    fn register(&self, method: &'static str, route: &str, status: u16) -> RequestSeries {
        let created = RequestSeries {
            method,
            status,
            histograms: Arc::new(RequestHistograms {
                duration: sharded::Histogram::new(DURATION_BUCKETS),
                size: sharded::Histogram::new(SIZE_BUCKETS),
                exemplars: Exemplars::new(DURATION_BUCKETS),
            }),
        };
        let mut series = self.series.write().unwrap_or_else(|e| e.into_inner());
        let list = series.entry(route.into()).or_default();
        if let Some(raced) = RequestSeries::find(list, method, status) {
            return raced.clone();
        }
        list.push(created.clone());
        created
    }

    /// The exemplar of the request-duration bucket a sample line's `labels` name.
    pub fn exemplar(&self, labels: &[(&str, String)]) -> Option<Exemplar> {
        let label = |name: &str| labels.iter().find(|(n, _)| *n == name).map(|(_, v)| v);
        let status = status_key_of_label(label(STATUS_LABEL)?)?;
        let series = self.series.read().unwrap_or_else(|e| e.into_inner());
        let list = series.get(label(ROUTE_LABEL)?.as_str())?;
        RequestSeries::find(list, label(METHOD_LABEL)?, status)?
            .histograms
            .exemplars
            .get(label("le")?)
    }

    /// The store's series for `backend`, registered once.
    pub fn store_series(&self, backend: &'static str) -> StoreSeries {
        self.with(|| {
            let duration = |op: Operation, outcome: &'static str| {
                histogram!(STORE_DURATION, "backend" => backend, "operation" => op.label(), "outcome" => outcome)
            };
            let errors = |op: Operation, kind: ErrorKind| {
                counter!(STORE_ERRORS, "backend" => backend, "operation" => op.label(), "kind" => kind.label())
            };
            StoreSeries {
                ok: Operation::ALL.map(|op| duration(op, "ok")),
                failed: Operation::ALL.map(|op| duration(op, "error")),
                errors: Operation::ALL.map(|op| ErrorKind::ALL.map(|kind| errors(op, kind))),
                messages: gauge!(STORE_MESSAGES, "backend" => backend),
            }
        })
    }

    /// The embedded store's batch-size histogram.
    pub fn store_commit_batch(&self) -> Histogram {
        self.with(|| histogram!(STORE_COMMIT_BATCH))
    }

    /// A request refused with 503 because `bound` was full.
    pub fn overload(&self, route: &str, bound: &'static str) {
        self.with(|| {
            counter!(OVERLOADS, "route" => route.to_string(), "bound" => bound).increment(1);
        });
    }

    pub fn shed(&self, route: &str) {
        self.with(|| counter!(REQUESTS_SHED, "route" => route.to_string()).increment(1));
    }

    pub fn tls_handshake(&self, version: &'static str, alpn: &'static str) {
        self.with(|| counter!(TLS_HANDSHAKES, "version" => version, "alpn" => alpn).increment(1));
    }

    pub fn tls_failure(&self, reason: &'static str) {
        self.with(|| counter!(TLS_HANDSHAKE_FAILURES, "reason" => reason).increment(1));
    }

    pub fn certificate_expiry(&self, unix_seconds: i64) {
        self.with(|| gauge!(CERT_EXPIRY).set(unix_seconds as f64));
    }

    /// An injected fault started (1) or ended (0).
    pub fn fault_active(&self, fault: &str, kind: &'static str, route: &str, value: f64) {
        self.with(|| {
            gauge!(FAULT_ACTIVE, "fault" => fault.to_owned(), "kind" => kind, "route" => route.to_owned())
                .set(value);
        });
    }

    /// A request or store call an injected fault affected.
    pub fn fault_injected(&self, fault: &str, kind: &'static str, route: &str) {
        self.with(|| {
            counter!(FAULT_INJECTIONS, "fault" => fault.to_owned(), "kind" => kind, "route" => route.to_owned())
                .increment(1);
        });
    }

    /// A reload of the served certificate: `ok`, or `error` (the previous one keeps serving).
    pub fn certificate_reload(&self, result: &'static str) {
        self.with(|| counter!(CERT_RELOADS, "result" => result).increment(1));
    }

    /// The exposition text: the recorder's families, the request histograms, then the process
    /// families. `active_requests` is read from the statistics at scrape time rather than kept
    /// twice.
    pub fn render(&self, active_requests: u64) -> String {
        self.active.set(active_requests as f64);
        let mut out = self.handle.render();
        self.render_requests(&mut out);
        process::render(&mut out);
        out
    }

    /// The two request histogram families, in the recorder's text format: series sorted by
    /// route, method and status; each family followed by a blank line.
    fn render_requests(&self, out: &mut String) {
        let mut series: Vec<(String, RequestSeries)> = {
            let map = self.series.read().unwrap_or_else(|e| e.into_inner());
            map.iter()
                .flat_map(|(route, list)| list.iter().map(|s| (route.to_string(), s.clone())))
                .collect()
        };
        series.sort_by(|(ra, a), (rb, b)| (ra, a.method, a.status).cmp(&(rb, b.method, b.status)));
        let families = [
            Family {
                name: REQUEST_DURATION,
                help: REQUEST_DURATION_HELP,
                sum_per_unit: 1e9,
                of: |h| &h.duration,
            },
            Family {
                name: RESPONSE_SIZE,
                help: RESPONSE_SIZE_HELP,
                sum_per_unit: 1.0,
                of: |h| &h.size,
            },
        ];
        for Family {
            name,
            help,
            sum_per_unit,
            of,
        } in families
        {
            if series.is_empty() {
                break;
            }
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
            for (route, s) in &series {
                let labels = format!(
                    "{METHOD_LABEL}=\"{}\",{ROUTE_LABEL}=\"{}\",{STATUS_LABEL}=\"{}\"",
                    escape_label(s.method),
                    escape_label(route),
                    status_label(s.status)
                );
                let h = of(&s.histograms);
                let snapshot = h.snapshot();
                let mut below = 0;
                for (le, n) in h.bounds().iter().zip(&snapshot.buckets) {
                    below += n;
                    let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{le}\"}} {below}");
                }
                let count = snapshot.count();
                let sum = snapshot.sum as f64 / sum_per_unit;
                let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {count}");
                let _ = writeln!(out, "{name}_sum{{{labels}}} {sum}");
                let _ = writeln!(out, "{name}_count{{{labels}}} {count}");
            }
            out.push('\n');
        }
    }

    /// The data directory's room above `--min-free-disk` (when it could be read) and what
    /// clients' writes hold there.
    pub fn disk(&self, room: Option<u64>, held: u64) {
        self.with(|| {
            if let Some(room) = room {
                gauge!(DISK_ROOM).set(room as f64);
            }
            gauge!(DISK_HELD).set(held as f64);
        });
    }

    /// Folds recorded histogram samples into their buckets; run every few seconds so memory
    /// stays flat when nobody scrapes.
    pub fn upkeep(&self) {
        self.handle.run_upkeep();
    }
}

/// The store's metric handles: durations by operation and outcome, errors by operation and
/// kind, and the message count.
#[derive(Debug, Clone)]
pub struct StoreSeries {
    ok: [Histogram; 3],
    failed: [Histogram; 3],
    errors: [[Counter; ErrorKind::ALL.len()]; 3],
    messages: Gauge,
}

impl StoreSeries {
    pub fn operation(&self, operation: Operation, error: Option<ErrorKind>, seconds: f64) {
        let op = operation as usize;
        match error {
            None => self.ok[op].record(seconds),
            Some(kind) => {
                self.failed[op].record(seconds);
                self.errors[op][kind as usize].increment(1);
            }
        }
    }

    pub fn messages(&self, count: u64) {
        self.messages.set(count as f64);
    }
}

/// A label value as the text format wants it: backslash, double quote and line feed escaped.
fn escape_label(value: &str) -> std::borrow::Cow<'_, str> {
    if !value.contains(['\\', '"', '\n']) {
        return value.into();
    }
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
        .into()
}

fn build_profile() -> &'static str {
    if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::UNMATCHED_ROUTE;

    /// A request's record, as the middleware makes it.
    fn info(method: &'static str, route: &'static str, id: &'static str) -> RequestInfo {
        RequestInfo {
            method,
            matched: Some(route),
            uri: "/".parse().unwrap(),
            version: "HTTP/1.1",
            request_id: axum::http::HeaderValue::from_static(id),
            client_addr: None,
            forwarded_for: None,
            user_agent: None,
        }
    }

    /// The lines of `family`'s metadata and samples, sorted (the recorder orders series by
    /// its own hash), and whether a blank line follows the family.
    fn family(text: &str, family: &str) -> (Vec<String>, bool) {
        let mut lines = Vec::new();
        let mut blank_after = false;
        let mut inside = false;
        for line in text.lines() {
            let ours = line.starts_with(family)
                || line
                    .strip_prefix("# HELP ")
                    .is_some_and(|l| l.starts_with(family))
                || line
                    .strip_prefix("# TYPE ")
                    .is_some_and(|l| l.starts_with(family));
            if ours {
                lines.push(line.to_owned());
            } else if inside {
                blank_after = line.is_empty();
            }
            inside = ours;
        }
        lines.sort();
        (lines, blank_after)
    }

    #[test]
    fn the_request_histograms_render_as_the_recorder_rendered_them() {
        // Durations in 2^-9 s steps and sizes in bytes add up exactly as floats too, so the
        // recorder's sums and ours must agree to the last digit. Samples on a bound, past the
        // last bound, and a status that is labelled by its class.
        let step = 1_953_125; // ns: 2^-9 s
        let samples: [(&str, &str, u16, u64, u64); 7] = [
            ("GET", "/", 200, step, 0),
            ("GET", "/", 200, 3 * step, 64),
            ("GET", "/", 200, 512 * step, 65),
            ("GET", "/", 404, 100_000 * step, 20_000_000),
            ("POST", "/sleep/{ms}", 200, 2 * step, 4096),
            ("GET", UNMATCHED_ROUTE, 419, step, 100),
            ("GET", UNMATCHED_ROUTE, 419, step, 100),
        ];
        let reference = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(REQUEST_DURATION.into()), DURATION_BUCKETS)
            .and_then(|b| {
                b.set_buckets_for_metric(Matcher::Full(RESPONSE_SIZE.into()), SIZE_BUCKETS)
            })
            .unwrap()
            .build_recorder();
        let reference_handle = reference.handle();
        metrics::with_local_recorder(&reference, || {
            describe_histogram!(REQUEST_DURATION, Unit::Seconds, REQUEST_DURATION_HELP);
            describe_histogram!(RESPONSE_SIZE, Unit::Bytes, RESPONSE_SIZE_HELP);
            for (method, route, status, nanos, bytes) in samples {
                let labels = [
                    (METHOD_LABEL, method.to_string()),
                    (ROUTE_LABEL, route.to_string()),
                    (STATUS_LABEL, status_label(status_key(status))),
                ];
                histogram!(REQUEST_DURATION, &labels)
                    .record(Duration::from_nanos(nanos).as_secs_f64());
                histogram!(RESPONSE_SIZE, &labels).record(bytes as f64);
            }
        });
        let expected = reference_handle.render();

        let metrics = Metrics::new();
        for (method, route, status, nanos, bytes) in samples {
            let info = info(method, route, "r");
            metrics.request(
                &info,
                status,
                Duration::from_nanos(nanos),
                bytes,
                SystemTime::now(),
            );
        }
        let rendered = metrics.render(0);
        for (name, bounds) in [
            (REQUEST_DURATION, DURATION_BUCKETS),
            (RESPONSE_SIZE, SIZE_BUCKETS),
        ] {
            let (ours, blank) = family(&rendered, name);
            assert_eq!(ours, family(&expected, name).0, "{rendered}");
            assert_eq!(ours.len(), 2 + 4 * (bounds.len() + 3), "four series");
            assert!(blank, "a blank line ends the family: {rendered}");
        }
        assert!(rendered.contains(
            "http_server_request_duration_seconds_bucket{http_request_method=\"GET\",http_route=\"/\",http_response_status_code=\"200\",le=\"1\"} 3\n"
        ));
    }

    #[test]
    fn a_label_value_is_escaped() {
        assert_eq!(escape_label("/a"), "/a");
        assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn own_status_labels_are_sorted_for_the_binary_search() {
        assert!(OWN_STATUS_LABELS.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(status_label(status_key(418)), "418");
        assert_eq!(status_label(status_key(419)), "4xx");
    }

    #[test]
    fn a_status_label_leads_back_to_its_series_key() {
        for status in [200, 418, 419, 599] {
            let key = status_key(status);
            assert_eq!(status_key_of_label(&status_label(key)), Some(key));
        }
        assert_eq!(status_key_of_label("teapot"), None);
    }
}
