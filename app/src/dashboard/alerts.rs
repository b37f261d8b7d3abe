//! The demo-window burn-rate alert (`dashboards/prometheus/rules/demo.rules.yml`), evaluated in
//! the service from the dashboard's own samples, for the built-in dashboard when no Prometheus
//! runs: the same SLO, threshold, windows and `for` as the rule.

use std::collections::VecDeque;
use std::sync::Mutex;

use serde::Serialize;
use utoipa::ToSchema;

use super::Point;

/// The rule this evaluates, by its Prometheus name.
pub(crate) const NAME: &str = "GlassboxAvailabilityBudgetBurningDemo";
/// 14.4 times the 0.1 % error budget.
pub(crate) const THRESHOLD: f64 = 14.4 * 0.001;
const LONG_MS: u64 = 60_000;
const SHORT_MS: u64 = 15_000;
const FOR_MS: u64 = 10_000;
/// Routes whose 5xx the caller chooses: outside the SLO.
const EXCLUDED: [&str; 2] = ["/code/{code}", "/work"];

/// An alert's state as Prometheus names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum State {
    Pending,
    Firing,
}

/// The alert now, when it is pending or firing.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub(crate) struct AlertView {
    pub name: &'static str,
    pub state: State,
    /// When the condition began to hold (unix ms), as Prometheus' `activeAt`.
    pub active_ms: u64,
    /// The 5xx ratio over the last minute.
    pub value: f64,
    /// `in-process`: evaluated by glassbox from its own samples.
    pub source: &'static str,
}

#[derive(Debug, Default)]
struct Inner {
    /// (end of interval ms, 5xx answers, answers) per sample within the long window.
    samples: VecDeque<(u64, u64, u64)>,
    active_since: Option<u64>,
    value: f64,
}

/// The rule's state, updated with every dashboard sample.
#[derive(Debug, Default)]
pub(crate) struct Alerts(Mutex<Inner>);

impl Alerts {
    /// Takes `point` into the windows and evaluates the rule at its time.
    pub(crate) fn observe(&self, point: &Point) {
        let (errors, requests) = point
            .routes
            .iter()
            .filter(|r| !EXCLUDED.contains(&r.route.as_str()))
            .fold((0, 0), |(e, n), r| (e + r.by_class[4], n + r.requests));
        let mut inner = self.0.lock().unwrap_or_else(|e| e.into_inner());
        inner.samples.push_back((point.t, errors, requests));
        while inner
            .samples
            .front()
            .is_some_and(|&(t, _, _)| t + LONG_MS <= point.t)
        {
            inner.samples.pop_front();
        }
        let ratio = |window: u64| {
            let (e, n) = inner
                .samples
                .iter()
                .filter(|&&(t, _, _)| t + window > point.t)
                .fold((0, 0), |(e, n), &(_, se, sn)| (e + se, n + sn));
            (n > 0).then(|| e as f64 / n as f64)
        };
        let long = ratio(LONG_MS);
        let holds =
            long.is_some_and(|r| r > THRESHOLD) && ratio(SHORT_MS).is_some_and(|r| r > THRESHOLD);
        inner.value = long.unwrap_or(0.0);
        inner.active_since = match (holds, inner.active_since) {
            (true, Some(since)) => Some(since),
            (true, None) => Some(point.t),
            (false, _) => None,
        };
    }

    /// The alert, when pending or firing at the last sample.
    pub(crate) fn active(&self, now_ms: u64) -> Vec<AlertView> {
        let inner = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let Some(since) = inner.active_since else {
            return Vec::new();
        };
        let state = match now_ms.saturating_sub(since) >= FOR_MS {
            true => State::Firing,
            false => State::Pending,
        };
        vec![AlertView {
            name: NAME,
            state,
            active_ms: since,
            value: inner.value,
            source: "in-process",
        }]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::stats::IntervalRoute;

    fn point(t: u64, route: &str, ok: u64, errors: u64) -> Point {
        Point {
            t,
            ms: 1000,
            routes: vec![IntervalRoute {
                method: "POST",
                route: route.to_owned(),
                requests: ok + errors,
                by_class: [0, ok, 0, 0, errors],
                p50: 0,
                p90: 0,
                p99: 0,
                max: 0,
                slowest_request_id: None,
            }],
            in_flight: 0,
            shed: 0,
            refused: 0,
            cut: 0,
            store_calls: 0,
            store_errors: 0,
            queue_depth: None,
            tasks: Vec::new(),
            cpu_percent: None,
            rss_bytes: None,
            disk_room_bytes: None,
            disk_held_bytes: 0,
        }
    }

    #[test]
    fn pending_then_firing_then_gone_as_the_rule_would() {
        let alerts = Alerts::default();
        let mut t = 0;
        for _ in 0..30 {
            t += 1000;
            alerts.observe(&point(t, "/messages", 100, 0));
        }
        assert!(alerts.active(t).is_empty());
        // 20 % errors: over the threshold on both windows at once.
        for _ in 0..5 {
            t += 1000;
            alerts.observe(&point(t, "/messages", 80, 20));
        }
        let now = alerts.active(t);
        assert_eq!(now[0].state, State::Pending, "{now:?}");
        // The minute's ratio crosses 1.44 % with the third bad second (60 of 3100).
        assert_eq!(now[0].active_ms, 33_000);
        for _ in 0..8 {
            t += 1000;
            alerts.observe(&point(t, "/messages", 80, 20));
        }
        assert_eq!(alerts.active(t)[0].state, State::Firing);
        // Clean again: the 15 s window clears first.
        for _ in 0..16 {
            t += 1000;
            alerts.observe(&point(t, "/messages", 100, 0));
        }
        assert!(alerts.active(t).is_empty());
    }

    #[test]
    fn errors_the_caller_chose_do_not_count() {
        let alerts = Alerts::default();
        for t in 1..=30 {
            alerts.observe(&point(t * 1000, "/code/{code}", 0, 100));
        }
        assert!(alerts.active(30_000).is_empty());
    }
}
