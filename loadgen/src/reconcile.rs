//! Did the server count exactly the requests the load generator made? Per route and status
//! code, the loadgen's records against the difference of two `/status` snapshots, and the
//! client's latency next to the server's.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde::Serialize;

use crate::recorder::{Percentiles, RouteKey, RouteRecord};
use crate::status::{ServerFault, ServerLatency, ServerStatus};

/// The reconciliation of one run.
#[derive(Debug, Clone, Serialize)]
pub struct Reconciliation {
    /// Routes the load generator used.
    pub routes: Vec<Row>,
    /// Requests the server counted on routes the load generator never used (a Prometheus
    /// scrape, a browser): shown, not compared.
    pub other: Vec<Other>,
    /// The reconciliation's own `/status` calls, taken off the server's `GET /status` count.
    pub own_status_calls: u64,
    /// Every route's counts agree, by status code.
    pub matched: bool,
    pub server_latency_source: String,
    /// Injected faults that were active at some time during the run, with what they affected
    /// during it. Their answers are requests like any other, in the counts above.
    pub faults: Vec<RunFault>,
}

/// An injected fault seen during the run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunFault {
    pub name: String,
    pub kind: String,
    pub route: String,
    /// Requests (or store calls) it affected between the two `/status` snapshots.
    pub affected: u64,
    /// Whether it ended before the run did.
    pub ended: bool,
}

/// The faults active before, after, or ended in between: the same fault (name and start) is
/// listed once, with what it affected between the snapshots.
fn run_faults(before: &ServerStatus, after: &ServerStatus) -> Vec<RunFault> {
    let same = |a: &ServerFault, b: &ServerFault| a.name == b.name && a.started_ms == b.started_ms;
    let was_ended = |f: &ServerFault| before.faults_ended.iter().any(|b| same(b, f));
    let mut out: Vec<(ServerFault, bool)> = Vec::new();
    let candidates = before
        .faults
        .iter()
        .map(|f| (f, false))
        .chain(after.faults.iter().map(|f| (f, false)))
        .chain(
            after
                .faults_ended
                .iter()
                .filter(|f| !was_ended(f))
                .map(|f| (f, true)),
        );
    for (fault, ended) in candidates {
        match out.iter_mut().find(|(known, _)| same(known, fault)) {
            // The later view has the later count.
            Some(known) => *known = (fault.clone(), ended || known.1),
            None => out.push((fault.clone(), ended)),
        }
    }
    out.into_iter()
        .map(|(fault, ended)| {
            let earlier = before
                .faults
                .iter()
                .find(|b| same(b, &fault))
                .map_or(0, |b| b.injected);
            RunFault {
                route: fault.route.clone().unwrap_or_else(|| "*".to_owned()),
                affected: fault.injected.saturating_sub(earlier),
                name: fault.name,
                kind: fault.kind,
                ended,
            }
        })
        .collect()
}

#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub method: String,
    pub route: String,
    pub loadgen: u64,
    pub server: u64,
    /// Status code (or `none` for requests that got no answer) to (loadgen, server).
    pub status_codes: BTreeMap<String, (u64, u64)>,
    pub matched: bool,
    pub client_latency_us: Percentiles,
    /// In the open model: the client's latency from the time the request was due.
    pub client_corrected_latency_us: Option<Percentiles>,
    pub server_p50_us: u64,
    pub server_p99_us: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Other {
    pub method: String,
    pub route: String,
    pub server: u64,
}

#[derive(Debug, Default)]
struct Counted {
    count: u64,
    status_codes: BTreeMap<String, u64>,
    latency: Option<ServerLatency>,
}

/// The server's counts between `before` and `after`, less `own_status_calls` on
/// `GET /status`, with `after`'s latency percentiles.
fn server_delta(
    before: &ServerStatus,
    after: &ServerStatus,
    own_status_calls: u64,
) -> BTreeMap<RouteKey, Counted> {
    let mut delta: BTreeMap<RouteKey, Counted> = BTreeMap::new();
    for route in &after.routes {
        let counted = delta
            .entry(RouteKey::new(&route.method, &route.route))
            .or_default();
        counted.count += route.count;
        for (code, n) in &route.status_codes {
            *counted.status_codes.entry(code.clone()).or_default() += n;
        }
        counted.latency = Some(route.latency_us);
    }
    for route in &before.routes {
        if let Some(counted) = delta.get_mut(&RouteKey::new(&route.method, &route.route)) {
            counted.count = counted.count.saturating_sub(route.count);
            for (code, n) in &route.status_codes {
                if let Some(c) = counted.status_codes.get_mut(code) {
                    *c = c.saturating_sub(*n);
                }
            }
        }
    }
    if let Some(status) = delta.get_mut(&RouteKey::new("GET", "/status")) {
        status.count = status.count.saturating_sub(own_status_calls);
        if let Some(ok) = status.status_codes.get_mut("200") {
            *ok = ok.saturating_sub(own_status_calls);
        }
    }
    delta.retain(|_, counted| {
        counted.status_codes.retain(|_, n| *n > 0);
        counted.count > 0
    });
    delta
}

/// Compares what the load generator `made` with what the server counted.
pub fn reconcile(
    made: &BTreeMap<RouteKey, RouteRecord>,
    before: &ServerStatus,
    after: &ServerStatus,
    own_status_calls: u64,
) -> Reconciliation {
    let counted = server_delta(before, after, own_status_calls);
    let mut routes = Vec::new();
    for (key, record) in made {
        let server = counted.get(key);
        let mut codes: BTreeMap<String, (u64, u64)> = BTreeMap::new();
        for (code, n) in &record.status_codes {
            codes.entry(code.to_string()).or_default().0 = *n;
        }
        if record.transport_errors > 0 {
            codes.entry("none".to_owned()).or_default().0 = record.transport_errors;
        }
        for (code, n) in server.map(|s| &s.status_codes).into_iter().flatten() {
            codes.entry(code.clone()).or_default().1 = *n;
        }
        let server_count = server.map_or(0, |s| s.count);
        let matched = record.requests == server_count && codes.values().all(|(l, s)| l == s);
        let latency = server.and_then(|s| s.latency);
        routes.push(Row {
            method: key.method.clone(),
            route: key.route.clone(),
            loadgen: record.requests,
            server: server_count,
            status_codes: codes,
            matched,
            client_latency_us: record.percentiles(),
            client_corrected_latency_us: record.corrected_percentiles(),
            server_p50_us: latency.map_or(0, |l| l.p50),
            server_p99_us: latency.map_or(0, |l| l.p99),
        });
    }
    let used: BTreeSet<&RouteKey> = made.keys().collect();
    let other = counted
        .iter()
        .filter(|(key, _)| !used.contains(key))
        .map(|(key, c)| Other {
            method: key.method.clone(),
            route: key.route.clone(),
            server: c.count,
        })
        .collect();
    Reconciliation {
        matched: routes.iter().all(|r| r.matched),
        routes,
        other,
        own_status_calls,
        server_latency_source: after.latency_source.clone(),
        faults: run_faults(before, after),
    }
}

fn ms(micros: u64) -> String {
    format!("{:.2}", micros as f64 / 1000.0)
}

/// A corrected percentile, or `-` for a row without one.
fn ms_or_dash(micros: Option<u64>) -> String {
    micros.map_or_else(|| "-".to_owned(), ms)
}

fn gap(client: u64, server: u64) -> String {
    format!("{:+.2}", (client as f64 - server as f64) / 1000.0)
}

impl Reconciliation {
    fn render_closed_latency(&self, out: &mut String, width: usize) {
        self.latency_table(
            out,
            width,
            "client = full request to last body byte (loadgen HDR); server = arrival to response \
             head, since glassbox started (glassbox HDR); gap = client - server",
            &[
                ("client p50", 10),
                ("server p50", 10),
                ("gap", 8),
                ("client p99", 10),
                ("server p99", 10),
                ("gap", 8),
            ],
            |row| {
                let c = row.client_latency_us;
                vec![
                    ms(c.p50),
                    ms(row.server_p50_us),
                    gap(c.p50, row.server_p50_us),
                    ms(c.p99),
                    ms(row.server_p99_us),
                    gap(c.p99, row.server_p99_us),
                ]
            },
        );
    }

    /// The open model's table: the client's raw and corrected latency next to the server's.
    fn render_open_latency(&self, out: &mut String, width: usize) {
        self.latency_table(
            out,
            width,
            "raw = from the send to the last body byte, corrected = from the time the schedule \
             said it was due (loadgen HDR, open model); server = arrival to response head, since \
             glassbox started (glassbox HDR)",
            &[
                ("raw p50", 9),
                ("corr p50", 9),
                ("server p50", 10),
                ("raw p99", 9),
                ("corr p99", 9),
                ("server p99", 10),
            ],
            |row| {
                let (c, corrected) = (row.client_latency_us, row.client_corrected_latency_us);
                vec![
                    ms(c.p50),
                    ms_or_dash(corrected.map(|p| p.p50)),
                    ms(row.server_p50_us),
                    ms(c.p99),
                    ms_or_dash(corrected.map(|p| p.p99)),
                    ms(row.server_p99_us),
                ]
            },
        );
    }

    /// A latency table: what its columns mean, their headings and widths, and a row of cells
    /// per route.
    fn latency_table(
        &self,
        out: &mut String,
        width: usize,
        legend: &str,
        columns: &[(&str, usize)],
        cells: impl Fn(&Row) -> Vec<String>,
    ) {
        let _ = writeln!(out, "\nLatency per route, milliseconds: {legend}");
        let line = |out: &mut String, first: &str, rest: &mut dyn Iterator<Item = String>| {
            let _ = write!(out, "  {first:width$}");
            for ((_, w), cell) in columns.iter().zip(rest) {
                let _ = write!(out, "  {cell:>w$}");
            }
            out.push('\n');
        };
        line(
            out,
            "route",
            &mut columns.iter().map(|(heading, _)| (*heading).to_owned()),
        );
        for row in &self.routes {
            line(
                out,
                &format!("{} {}", row.method, row.route),
                &mut cells(row).into_iter(),
            );
        }
    }

    /// The two tables `just demo` prints.
    pub fn render(&self) -> String {
        let width = self
            .routes
            .iter()
            .map(|r| r.method.len() + 1 + r.route.len())
            .chain([10])
            .max()
            .unwrap_or(10);
        let mut out = String::new();
        let _ = writeln!(
            out,
            "Requests per route: made by the loadgen, counted by glassbox (/status after minus before)"
        );
        let _ = writeln!(
            out,
            "  {:width$}  {:>9}  {:>9}",
            "route", "loadgen", "server"
        );
        let (mut made, mut counted) = (0, 0);
        for row in &self.routes {
            let verdict = if row.matched {
                "ok".to_owned()
            } else {
                let codes: Vec<String> = row
                    .status_codes
                    .iter()
                    .filter(|(_, (l, s))| l != s)
                    .map(|(code, (l, s))| format!("{code}: {l} vs {s}"))
                    .collect();
                format!("MISMATCH ({})", codes.join(", "))
            };
            let _ = writeln!(
                out,
                "  {:width$}  {:>9}  {:>9}  {verdict}",
                format!("{} {}", row.method, row.route),
                row.loadgen,
                row.server
            );
            made += row.loadgen;
            counted += row.server;
        }
        let _ = writeln!(
            out,
            "  {:width$}  {made:>9}  {counted:>9}  {}",
            "all routes",
            if self.matched {
                "ok: every route and status code agrees"
            } else {
                "MISMATCH"
            }
        );
        let _ = writeln!(
            out,
            "  (the reconciliation's own /status calls, {}, are left out)",
            self.own_status_calls
        );
        for fault in &self.faults {
            let _ = writeln!(
                out,
                "  fault during the run: {} ({} on {}), {} affected{}; its answers are counted above",
                fault.name,
                fault.kind,
                fault.route,
                fault.affected,
                if fault.ended {
                    ", ended"
                } else {
                    ", still active"
                }
            );
        }
        for other in &self.other {
            let _ = writeln!(
                out,
                "  not from the loadgen: {} {}, {} requests",
                other.method, other.route, other.server
            );
        }
        if self
            .routes
            .iter()
            .any(|r| r.client_corrected_latency_us.is_some())
        {
            self.render_open_latency(&mut out, width);
        } else {
            self.render_closed_latency(&mut out, width);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recorder::Recorder;
    use crate::status::ServerFault;
    use crate::status::ServerRoute;

    fn route(method: &str, path: &str, codes: &[(&str, u64)]) -> ServerRoute {
        ServerRoute {
            method: method.to_owned(),
            route: path.to_owned(),
            count: codes.iter().map(|(_, n)| n).sum(),
            status_codes: codes.iter().map(|(c, n)| ((*c).to_owned(), *n)).collect(),
            latency_us: ServerLatency { p50: 100, p99: 900 },
        }
    }

    fn status(routes: Vec<ServerRoute>) -> ServerStatus {
        ServerStatus {
            requests_in_flight: 1,
            latency_source: "server".to_owned(),
            routes,
            faults: Vec::new(),
            faults_ended: Vec::new(),
        }
    }

    fn fault(name: &str, started_ms: u64, ended_ms: Option<u64>, injected: u64) -> ServerFault {
        ServerFault {
            name: name.to_owned(),
            kind: "error".to_owned(),
            route: Some("/".to_owned()),
            started_ms,
            ended_ms,
            injected,
        }
    }

    #[test]
    fn the_faults_of_the_run_are_named_with_what_they_affected_during_it() {
        let mut before = status(vec![]);
        before.faults = vec![fault("old", 1, None, 10)];
        before.faults_ended = vec![fault("gone", 0, Some(1), 99)];
        let mut after = status(vec![]);
        after.faults = vec![fault("old", 1, None, 25), fault("new", 5, None, 3)];
        after.faults_ended = vec![fault("gone", 0, Some(1), 99), fault("brief", 2, Some(4), 7)];
        let r = reconcile(&Recorder::new().snapshot(), &before, &after, 0);
        let seen: Vec<(&str, u64, bool)> = r
            .faults
            .iter()
            .map(|f| (f.name.as_str(), f.affected, f.ended))
            .collect();
        assert_eq!(
            seen,
            [("old", 15, false), ("new", 3, false), ("brief", 7, true)]
        );
        assert!(
            r.render()
                .contains("fault during the run: brief (error on /), 7 affected, ended"),
            "{}",
            r.render()
        );
    }

    #[test]
    fn equal_counts_match_and_the_reconciliations_own_calls_are_taken_off() {
        let recorder = Recorder::new();
        for _ in 0..5 {
            recorder.record(&RouteKey::new("GET", "/"), Some(200), 300, None);
        }
        recorder.record(&RouteKey::new("GET", "/status"), Some(200), 300, None);
        let before = status(vec![
            route("GET", "/", &[("200", 2)]),
            route("GET", "/metrics", &[("200", 1)]),
        ]);
        let after = status(vec![
            route("GET", "/", &[("200", 7)]),
            route("GET", "/status", &[("200", 3)]),
            route("GET", "/metrics", &[("200", 4)]),
        ]);
        let r = reconcile(&recorder.snapshot(), &before, &after, 2);
        assert!(r.matched, "{}", r.render());
        assert_eq!(r.routes.len(), 2);
        assert_eq!((r.routes[0].loadgen, r.routes[0].server), (5, 5));
        assert_eq!(r.other.len(), 1);
        assert_eq!(
            (r.other[0].route.as_str(), r.other[0].server),
            ("/metrics", 3)
        );
        assert!(
            r.render()
                .contains("ok: every route and status code agrees")
        );
    }

    #[test]
    fn a_missing_request_or_a_different_status_is_a_mismatch() {
        let recorder = Recorder::new();
        let key = RouteKey::new("POST", "/work");
        recorder.record(&key, Some(200), 300, None);
        recorder.record(&key, Some(500), 300, None);
        recorder.record(&key, None, 300, None);
        let before = status(vec![]);
        let same_total = status(vec![route("POST", "/work", &[("200", 2), ("500", 1)])]);
        let r = reconcile(&recorder.snapshot(), &before, &same_total, 0);
        assert!(
            !r.matched,
            "three each, but the server answered one the client never heard"
        );
        assert_eq!(r.routes[0].status_codes["none"], (1, 0));
        assert!(
            r.render().contains("MISMATCH (200: 1 vs 2, none: 1 vs 0)"),
            "{}",
            r.render()
        );

        let fewer = status(vec![route("POST", "/work", &[("200", 1)])]);
        assert!(!reconcile(&recorder.snapshot(), &before, &fewer, 0).matched);
    }

    #[test]
    fn the_open_model_table_puts_raw_corrected_and_server_latency_side_by_side() {
        let recorder = Recorder::new();
        let key = RouteKey::new("GET", "/");
        recorder.record(&key, Some(200), 1_000, Some(1_900));
        let after = status(vec![route("GET", "/", &[("200", 1)])]);
        let r = reconcile(&recorder.snapshot(), &status(vec![]), &after, 0);
        let text = r.render();
        assert!(text.contains("corr p99"), "{text}");
        let row = text
            .lines()
            .rfind(|l| l.trim_start().starts_with("GET /"))
            .unwrap();
        let cells: Vec<&str> = row.split_whitespace().collect();
        // route (two words), raw p50, corr p50, server p50, raw p99, corr p99, server p99
        assert_eq!(
            cells[2..],
            ["1.00", "1.90", "0.10", "1.00", "1.90", "0.90"],
            "{text}"
        );

        let closed = Recorder::new();
        closed.record(&key, Some(200), 2_000, None);
        let text = reconcile(&closed.snapshot(), &status(vec![]), &after, 0).render();
        assert!(!text.contains("corr"), "{text}");
    }
}
