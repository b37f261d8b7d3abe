//! Everything the service reports about itself: access logs, `/status` statistics and
//! Prometheus metrics, all fed from one place per request so they always agree.

pub(crate) mod access_log;
pub(crate) mod connections;
pub(crate) mod json_format;
pub mod log_file;
pub(crate) mod log_ring;
pub(crate) mod log_writer;
pub mod logging;
pub(crate) mod metrics;
pub mod openmetrics;
pub(crate) mod process;
pub(crate) mod redact;
pub(crate) mod sharded;
pub(crate) mod stats;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use axum::http::{HeaderValue, Uri};

use self::metrics::Metrics;
use self::stats::Stats;
use crate::error::ErrorCause;

/// The route label of requests that matched no route, so scanners cannot grow label sets.
pub const UNMATCHED_ROUTE: &str = "unmatched";
/// The status recorded for requests whose client went away before the response was ready
/// (nginx's convention).
pub const CLIENT_CLOSED: u16 = 499;

/// A map keyed by route template. The keys come from the route table (or are
/// [`UNMATCHED_ROUTE`]), never from a client, so a fast hash with a fixed seed is safe; SipHash
/// cost about 150 instructions a lookup, and every request makes two.
pub(crate) type RouteMap<V> = std::collections::HashMap<Box<str>, V, foldhash::fast::FixedState>;

/// Statistics and metrics of one service instance.
#[derive(Debug, Default)]
pub struct Telemetry {
    pub stats: Stats,
    pub metrics: Metrics,
    pub connections: connections::ConnectionStats,
}

impl Telemetry {
    /// The Prometheus exposition: the recorder's families, the process, the connections and
    /// the log lines dropped. `active_requests` is read from the statistics at scrape time.
    pub fn render_metrics(&self, active_requests: u64) -> String {
        use std::fmt::Write;
        let mut out = self.metrics.render(active_requests);
        self.connections.render(&mut out);
        let _ = writeln!(
            out,
            "# HELP glassbox_log_lines_dropped_total Log lines a destination lost because it could not keep up.\n\
             # TYPE glassbox_log_lines_dropped_total counter"
        );
        for (sink, n) in logging::dropped_lines() {
            let _ = writeln!(
                out,
                "glassbox_log_lines_dropped_total{{sink=\"{sink}\"}} {n}"
            );
        }
        out
    }

    /// The exposition in the format the scraper's `Accept` header asks for: OpenMetrics, with
    /// exemplars on the request-duration buckets, or the classic text. Returns its content
    /// type and the text.
    pub fn render_metrics_for(
        &self,
        accept: Option<&HeaderValue>,
        active_requests: u64,
    ) -> (&'static str, String) {
        let classic = self.render_metrics(active_requests);
        if !openmetrics::wanted(accept) {
            return (openmetrics::CLASSIC_CONTENT_TYPE, classic);
        }
        let text = openmetrics::from_classic(&classic, metrics::REQUEST_DURATION, |labels| {
            self.metrics.exemplar(labels)
        });
        (openmetrics::CONTENT_TYPE, text)
    }
}

/// What the access log says about a request, gathered when it arrives. The parts are shared
/// with the request (reference-counted), not copied; the labels are the process's own strings.
#[derive(Debug, Clone)]
pub struct RequestInfo {
    pub method: &'static str,
    /// The route template, when the path matched one (the route table's interned copy).
    pub matched: Option<&'static str>,
    pub uri: Uri,
    pub version: &'static str,
    pub request_id: HeaderValue,
    /// The TCP peer: the client, or the proxy it came through.
    pub client_addr: Option<SocketAddr>,
    /// The client a trusted proxy reports (`X-Forwarded-For`), when the peer is one.
    pub forwarded_for: Option<IpAddr>,
    pub user_agent: Option<HeaderValue>,
}

impl RequestInfo {
    /// The route template, or [`UNMATCHED_ROUTE`].
    pub fn route(&self) -> &str {
        self.matched.unwrap_or(UNMATCHED_ROUTE)
    }

    /// The client's address: the forwarded one behind a trusted proxy, else the peer's.
    pub fn client(&self) -> Option<IpAddr> {
        self.forwarded_for
            .or_else(|| self.client_addr.map(|addr| addr.ip()))
    }

    /// The path as the client sent it.
    pub fn path(&self) -> &str {
        self.uri.path()
    }

    pub fn request_id(&self) -> &str {
        self.request_id.to_str().unwrap_or_default()
    }

    pub fn user_agent(&self) -> &str {
        self.user_agent
            .as_ref()
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }
}

/// A request in flight. Finish it with [`InFlight::finish`]; if it is dropped first (the
/// client disconnected), it is recorded with status 499 so no request goes uncounted.
///
/// It owns its handle on the telemetry, so the future that answers a request can be handed it
/// whole: that future then holds the request's [`RequestInfo`] once, not also as the argument
/// it was made from (async functions keep their arguments for their whole life), which keeps it
/// small enough for the allocator's per-thread cache (BENCHMARKS.md).
#[derive(Debug)]
pub struct InFlight {
    telemetry: Arc<Telemetry>,
    info: RequestInfo,
    started: Instant,
    done: bool,
}

impl InFlight {
    pub fn start(telemetry: Arc<Telemetry>, info: RequestInfo) -> Self {
        telemetry.stats.request_started();
        Self {
            telemetry,
            info,
            started: Instant::now(),
            done: false,
        }
    }

    pub fn info(&self) -> &RequestInfo {
        &self.info
    }

    /// Counts the request as refused because `bound` was full (`glassbox_overloads_total`).
    pub fn overloaded(&self, bound: &'static str) {
        self.telemetry.stats.request_overloaded();
        self.telemetry.metrics.overload(self.info.route(), bound);
    }

    /// Records the response in stats, metrics and the access log, with why it failed when it
    /// did.
    pub fn finish(mut self, status: u16, bytes: u64, cause: Option<&ErrorCause>) {
        self.record(status, bytes, cause);
    }

    fn record(&mut self, status: u16, bytes: u64, cause: Option<&ErrorCause>) {
        self.done = true;
        let elapsed = self.started.elapsed();
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        // One reading of the wall clock for the exemplar and the access line.
        let now = SystemTime::now();
        let t = &*self.telemetry;
        let info = &self.info;
        t.stats
            .request_finished(info.method, info.route(), status, micros, &info.request_id);
        t.metrics.request(info, status, elapsed, bytes, now);
        access_log::write(info, now, status, micros, bytes, cause);
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if !self.done {
            self.record(CLIENT_CLOSED, 0, None);
        }
    }
}
