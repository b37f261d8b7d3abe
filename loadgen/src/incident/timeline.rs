//! The incident's events in time order, how they print, and the checks a run must pass.

use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    LoadStarted,
    FaultStarted,
    /// The first 5xx this program's requests got.
    ClientFirst5xx,
    /// The first time glassbox's `/status` counted a 5xx more than before the fault.
    ServerFirst5xx,
    HealthUnhealthy,
    AlertPending,
    AlertFiring,
    FaultEnded,
    /// The first `POST /messages` answered 2xx after the client's first 5xx.
    ClientRecovered,
    HealthRecovered,
    AlertResolved,
    /// Still firing when the run ended.
    AlertStillFiring,
    LoadStopped,
}

/// One event: when (unix ms, from the clock of whoever saw it; all on this machine), what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Event {
    pub at_ms: u64,
    pub kind: Kind,
    pub what: String,
}

/// Every event of the run, in time order; alert events carry the alert's name.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Timeline {
    pub events: Vec<Event>,
    /// Which alerts were watched: `prometheus` or `in-process`, or none.
    pub alert_source: Option<String>,
}

impl Timeline {
    pub fn push(&mut self, event: Event) {
        let at = self.events.partition_point(|e| e.at_ms <= event.at_ms);
        self.events.insert(at, event);
    }

    pub fn has(&self, kind: Kind) -> bool {
        self.first(kind).is_some()
    }

    pub fn first(&self, kind: Kind) -> Option<&Event> {
        self.events.iter().find(|e| e.kind == kind)
    }

    fn first_alert(&self, kind: Kind, alert: &str) -> Option<&Event> {
        self.events
            .iter()
            .find(|e| e.kind == kind && e.what.starts_with(&format!("alert {alert} ")))
    }

    pub fn alert_seen(&self, alert: &str) -> bool {
        self.first_alert(Kind::AlertPending, alert).is_some()
            || self.first_alert(Kind::AlertFiring, alert).is_some()
    }

    pub fn alert_resolved(&self, alert: &str) -> bool {
        self.first_alert(Kind::AlertResolved, alert).is_some()
    }

    /// Whether the fault ended at least `time` before `now_ms`.
    pub fn fault_ended_before(&self, now_ms: u64, time: Duration) -> bool {
        self.first(Kind::FaultEnded)
            .is_some_and(|end| now_ms >= end.at_ms + time.as_millis() as u64)
    }

    /// The timeline as a table, seconds from the fault's start.
    pub fn render(&self) -> String {
        let zero = self.first(Kind::FaultStarted).map_or(0, |e| e.at_ms);
        let mut out = String::from("Incident timeline (t = 0 when the fault started)\n");
        for event in &self.events {
            let offset = (event.at_ms as f64 - zero as f64) / 1000.0;
            let _ = writeln!(out, "  {offset:>+8.1} s  {}", event.what);
        }
        if self.alert_source.is_none() {
            out.push_str(
                "  (no alert source: give --prometheus, or a glassbox with its dashboard data)\n",
            );
        }
        out
    }

    /// What a run must show, for `alert` when alerts are watched: the fault seen by client and
    /// server, the alert pending then firing during it and resolved after it, and recovery.
    pub fn verdict(&self, alert: &str) -> Result<(), Vec<String>> {
        let mut wrong = Vec::new();
        let at = |kind| self.first(kind).map(|e| e.at_ms);
        let mut need = |name: &str, event: Option<u64>| -> Option<u64> {
            if event.is_none() {
                wrong.push(format!("no {name}"));
            }
            event
        };
        let start = need("fault start", at(Kind::FaultStarted));
        let client = need("5xx seen by the client", at(Kind::ClientFirst5xx));
        let server = need("5xx counted by the server", at(Kind::ServerFirst5xx));
        let end = need("fault end", at(Kind::FaultEnded));
        let recovered = need("client recovery", at(Kind::ClientRecovered));
        let healthy = need("health recovery", at(Kind::HealthRecovered));
        // (what it would mean, earlier, later): `earlier` must not come after `later`.
        let mut orders = vec![
            (
                "the client's first 5xx came before the fault",
                start,
                client,
            ),
            ("the server counted a 5xx before the fault", start, server),
            (
                "the client recovered before the fault ended",
                end,
                recovered,
            ),
            ("health recovered before the fault ended", end, healthy),
        ];
        if self.alert_source.is_some() {
            let pending = self.first_alert(Kind::AlertPending, alert).map(|e| e.at_ms);
            let firing = self.first_alert(Kind::AlertFiring, alert).map(|e| e.at_ms);
            let resolved = self
                .first_alert(Kind::AlertResolved, alert)
                .map(|e| e.at_ms);
            for (name, event) in [
                ("pending", pending),
                ("firing", firing),
                ("resolved", resolved),
            ] {
                if event.is_none() {
                    wrong.push(format!("{alert} never {name}"));
                }
            }
            orders.extend([
                ("the alert was pending before the fault", start, pending),
                ("the alert fired before it was pending", pending, firing),
                ("the alert fired only after the fault ended", firing, end),
                ("the alert resolved before the fault ended", end, resolved),
            ]);
        }
        for (what, earlier, later) in orders {
            if let (Some(a), Some(b)) = (earlier, later)
                && a > b
            {
                wrong.push(format!("{what} ({a} > {b})"));
            }
        }
        match wrong.is_empty() {
            true => Ok(()),
            false => Err(wrong),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(at_ms: u64, kind: Kind, what: &str) -> Event {
        Event {
            at_ms,
            kind,
            what: what.to_owned(),
        }
    }

    fn story() -> Timeline {
        let mut t = Timeline {
            alert_source: Some("prometheus".into()),
            ..Timeline::default()
        };
        for e in [
            event(1_000, Kind::FaultStarted, "fault"),
            event(1_010, Kind::ClientFirst5xx, "client"),
            event(1_200, Kind::ServerFirst5xx, "server"),
            event(5_000, Kind::AlertPending, "alert A pending"),
            event(15_000, Kind::AlertFiring, "alert A firing"),
            event(41_000, Kind::FaultEnded, "end"),
            event(41_050, Kind::ClientRecovered, "recovered"),
            event(42_000, Kind::HealthRecovered, "healthy"),
            event(60_000, Kind::AlertResolved, "alert A resolved"),
        ] {
            t.push(event(e.at_ms, e.kind, &e.what));
        }
        t
    }

    #[test]
    fn a_whole_story_in_order_passes() {
        assert_eq!(story().verdict("A"), Ok(()));
        let text = story().render();
        assert!(text.contains("    +0.0 s  fault"), "{text}");
        assert!(text.contains("   +59.0 s  alert A resolved"), "{text}");
    }

    #[test]
    fn missing_or_misordered_events_are_named() {
        let mut t = story();
        t.events.retain(|e| e.kind != Kind::AlertResolved);
        t.push(event(30_000, Kind::AlertResolved, "alert A resolved"));
        t.events.retain(|e| e.kind != Kind::HealthRecovered);
        let wrong = t.verdict("A").unwrap_err();
        assert!(
            wrong.contains(&"no health recovery".to_owned()),
            "{wrong:?}"
        );
        assert!(
            wrong
                .iter()
                .any(|w| w.starts_with("the alert resolved before the fault ended")),
            "{wrong:?}"
        );
    }
}
