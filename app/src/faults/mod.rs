//! Faults injected on purpose (`--allow-faults`, the `/faults` API): errors and latency on a
//! route, a failing or slow message store, task workers that stop taking tasks.
//!
//! A fault lives in this process's memory only: a restart clears every one. While one is
//! active, `glassbox_fault_active{fault,kind,route}` is 1; its start and end are log lines;
//! the answers it makes are requests like any other (counted, logged, in the histograms), and
//! their access lines say `injected fault <name>` in `error`. Whether a request (or a store
//! call) is affected is decided by the fault's seed and the request's place in the sequence
//! the fault has seen, so the same seed picks the same requests again.
//!
//! The hot path pays one atomic load while no fault is active.

mod spec;
pub(crate) mod store;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio::sync::watch;
use utoipa::ToSchema;

pub(crate) use self::spec::{FaultSpec, Kind};
use crate::routes::table::{Listener, Route};
use crate::telemetry::Telemetry;

/// Ended faults the dashboard still draws (oldest dropped first).
const ENDED_KEPT: usize = 32;

/// Every active fault of this process, and the recently ended ones.
#[derive(Debug, Clone, Default)]
pub(crate) struct Faults(Arc<Inner>);

#[derive(Debug, Default)]
struct Inner {
    /// Whether any fault is active: the only thing a request reads while none is.
    any: AtomicBool,
    active: RwLock<Vec<Arc<Fault>>>,
    ended: Mutex<VecDeque<FaultView>>,
    /// Whether a queue fault holds the task workers.
    queue_paused: QueuePause,
    /// Distinguishes a fault from a later one of the same name, for its end timer.
    next_id: AtomicU64,
    telemetry: Option<Arc<Telemetry>>,
}

/// One active fault.
#[derive(Debug)]
pub(crate) struct Fault {
    id: u64,
    pub name: String,
    pub spec: FaultSpec,
    /// The seed the decisions come from: the one given, or one chosen at random (reported, so
    /// a run can be repeated).
    seed: u64,
    started_ms: u64,
    ends_ms: Option<u64>,
    /// Requests (or store calls) the fault has seen, and how many it affected.
    seen: AtomicU64,
    injected: AtomicU64,
}

/// What a fault does to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Injection {
    /// Answer `status` with `{"error":"injected fault"}` without running the route.
    Error { status: u16, fault: String },
    /// Run the route after this much more time.
    Delay(Duration),
}

/// What a store fault does to one store call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StoreInjection {
    Fail(String),
    Delay(Duration),
}

/// A fault as `/faults`, `/status` and the dashboard show it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct FaultView {
    pub name: String,
    #[serde(flatten)]
    pub spec: FaultSpec,
    /// The seed decisions come from (the one given, or the one chosen).
    pub seed: u64,
    /// RFC 3339, UTC.
    pub started_at: String,
    /// When `duration_s` ends it (RFC 3339), or null: until deleted or a restart.
    pub ends_at: Option<String>,
    pub started_ms: u64,
    pub ends_ms: Option<u64>,
    /// When it ended (unix ms), for ended faults.
    pub ended_ms: Option<u64>,
    /// Requests (or store calls) it has seen and how many of them it affected.
    pub seen: u64,
    pub injected: u64,
}

/// Why a fault ended, for its log line.
#[derive(Debug, Clone, Copy)]
pub(crate) enum EndReason {
    Deleted,
    Expired,
    Replaced,
}

impl EndReason {
    fn label(self) -> &'static str {
        match self {
            Self::Deleted => "deleted",
            Self::Expired => "expired",
            Self::Replaced => "replaced",
        }
    }
}

/// Whether task workers may take tasks: a queue fault turns it off while it lasts.
#[derive(Debug)]
pub(crate) struct QueuePause(watch::Sender<bool>);

impl Default for QueuePause {
    fn default() -> Self {
        Self(watch::channel(false).0)
    }
}

impl Faults {
    /// An empty set whose faults are exported to `telemetry`'s metrics.
    pub(crate) fn new(telemetry: &Arc<Telemetry>) -> Self {
        Self(Arc::new(Inner {
            telemetry: Some(telemetry.clone()),
            ..Inner::default()
        }))
    }

    /// Starts (or replaces) the fault `name`; it ends by itself after `duration_s`, if given.
    pub(crate) fn put(&self, name: String, spec: FaultSpec) -> FaultView {
        let now = now_ms();
        let id = self.0.next_id.fetch_add(1, Ordering::Relaxed);
        let ends_ms = spec.duration_s.map(|s| now + s * 1000);
        let fault = Arc::new(Fault {
            id,
            seed: spec.seed.unwrap_or_else(rand::random),
            name,
            spec,
            started_ms: now,
            ends_ms,
            seen: AtomicU64::new(0),
            injected: AtomicU64::new(0),
        });
        let replaced = {
            let mut active = self.0.active.write().unwrap_or_else(|e| e.into_inner());
            let replaced = active
                .iter()
                .position(|f| f.name == fault.name)
                .map(|i| active.remove(i));
            active.push(fault.clone());
            replaced
        };
        if let Some(old) = replaced {
            self.end(&old, EndReason::Replaced);
        }
        self.refresh();
        self.gauge(&fault, 1.0);
        tracing::warn!(
            fault = %fault.name,
            kind = fault.spec.kind.label(),
            route = %fault.spec.route_label(),
            rate = fault.spec.rate(),
            // Not `status`: that field is a request's HTTP status in every log query.
            answer_status = fault.spec.status,
            latency_ms = fault.spec.latency_ms,
            duration_s = fault.spec.duration_s,
            seed = fault.seed,
            "fault started (kept in memory only: a restart ends it)"
        );
        if let Some(ends) = ends_ms {
            let faults = self.clone();
            let wait = Duration::from_millis(ends.saturating_sub(now));
            tokio::spawn(async move {
                tokio::time::sleep(wait).await;
                faults.end_where(|f| f.id == id, EndReason::Expired);
            });
        }
        fault.view(None)
    }

    /// Ends the fault `name`; false when there is none.
    pub(crate) fn delete(&self, name: &str) -> bool {
        self.end_where(|f| f.name == name, EndReason::Deleted)
    }

    /// Ends the active fault that `which` picks, if there is one.
    fn end_where(&self, which: impl Fn(&Fault) -> bool, reason: EndReason) -> bool {
        let removed = {
            let mut active = self.0.active.write().unwrap_or_else(|e| e.into_inner());
            active
                .iter()
                .position(|f| which(f))
                .map(|i| active.remove(i))
        };
        match removed {
            Some(fault) => {
                self.refresh();
                self.end(&fault, reason);
                true
            }
            None => false,
        }
    }

    /// The active faults, oldest first.
    pub(crate) fn active(&self) -> Vec<FaultView> {
        self.0
            .active
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|f| f.view(None))
            .collect()
    }

    /// The faults that ended (the last 32), oldest first.
    pub(crate) fn ended(&self) -> Vec<FaultView> {
        let ended = self.0.ended.lock().unwrap_or_else(|e| e.into_inner());
        ended.iter().cloned().collect()
    }

    /// The active faults and those that ended since `since_ms`, oldest first: what the
    /// dashboard draws as bands.
    pub(crate) fn since(&self, since_ms: u64) -> Vec<FaultView> {
        let mut out = self.ended();
        out.retain(|f| f.ended_ms.is_some_and(|end| end >= since_ms));
        out.extend(self.active());
        out.sort_by_key(|f| f.started_ms);
        out
    }

    /// What the active faults do to a request on `route`, if anything. An error fault answers
    /// instead of the route; latency faults add up.
    pub(crate) fn on_request(&self, route: &Route) -> Option<Injection> {
        if !self.0.any.load(Ordering::Relaxed) {
            return None;
        }
        let active = self.0.active.read().unwrap_or_else(|e| e.into_inner());
        let mut delay = Duration::ZERO;
        for fault in active.iter() {
            if !fault.applies_to(route) {
                continue;
            }
            match fault.spec.kind {
                Kind::Error if fault.decide() => {
                    self.injected(fault);
                    return Some(Injection::Error {
                        status: fault.spec.status.unwrap_or(503),
                        fault: fault.name.clone(),
                    });
                }
                Kind::Latency if fault.decide() => {
                    self.injected(fault);
                    delay += Duration::from_millis(fault.spec.latency_ms.unwrap_or(0));
                }
                _ => {}
            }
        }
        (!delay.is_zero()).then_some(Injection::Delay(delay))
    }

    /// What the active store faults do to one store call, if anything.
    pub(crate) fn on_store_call(&self) -> Option<StoreInjection> {
        if !self.0.any.load(Ordering::Relaxed) {
            return None;
        }
        let active = self.0.active.read().unwrap_or_else(|e| e.into_inner());
        let fault = active
            .iter()
            .filter(|f| f.spec.kind == Kind::Store)
            .find(|f| f.decide())?;
        self.injected(fault);
        Some(match fault.spec.latency_ms {
            Some(ms) => StoreInjection::Delay(Duration::from_millis(ms)),
            None => StoreInjection::Fail(fault.name.clone()),
        })
    }

    /// Waits while a queue fault holds the task workers; returns at once otherwise, and
    /// early when `stop` turns true.
    pub(crate) async fn queue_open(&self, stop: &mut watch::Receiver<bool>) {
        let mut paused = self.0.queue_paused.0.subscribe();
        tokio::select! {
            _ = paused.wait_for(|p| !p) => {}
            _ = stop.wait_for(|s| *s) => {}
        }
    }

    /// Whether a queue fault holds the task workers now.
    pub(crate) fn queue_paused(&self) -> bool {
        *self.0.queue_paused.0.borrow()
    }

    /// Changes of [`Faults::queue_paused`], for telling other processes' workers.
    pub(crate) fn queue_pauses(&self) -> watch::Receiver<bool> {
        self.0.queue_paused.0.subscribe()
    }

    fn injected(&self, fault: &Fault) {
        fault.injected.fetch_add(1, Ordering::Relaxed);
        if let Some(telemetry) = &self.0.telemetry {
            telemetry.metrics.fault_injected(
                &fault.name,
                fault.spec.kind.label(),
                &fault.spec.route_label(),
            );
        }
    }

    fn refresh(&self) {
        let active = self.0.active.read().unwrap_or_else(|e| e.into_inner());
        self.0.any.store(!active.is_empty(), Ordering::Relaxed);
        let paused = active.iter().any(|f| f.spec.kind == Kind::Queue);
        self.0.queue_paused.0.send_if_modified(|p| {
            let changed = *p != paused;
            *p = paused;
            changed
        });
    }

    fn end(&self, fault: &Fault, reason: EndReason) {
        self.gauge(fault, 0.0);
        let view = fault.view(Some(now_ms()));
        tracing::warn!(
            fault = %fault.name,
            kind = fault.spec.kind.label(),
            route = %fault.spec.route_label(),
            reason = reason.label(),
            seen = view.seen,
            injected = view.injected,
            "fault ended"
        );
        let mut ended = self.0.ended.lock().unwrap_or_else(|e| e.into_inner());
        if ended.len() == ENDED_KEPT {
            ended.pop_front();
        }
        ended.push_back(view);
    }

    fn gauge(&self, fault: &Fault, value: f64) {
        if let Some(telemetry) = &self.0.telemetry {
            telemetry.metrics.fault_active(
                &fault.name,
                fault.spec.kind.label(),
                &fault.spec.route_label(),
                value,
            );
        }
    }
}

impl Fault {
    /// Whether this fault is about `route`: its template, or `*` for every API route (never
    /// the service's own: `/health`, `/metrics` and `/faults` keep answering).
    fn applies_to(&self, route: &Route) -> bool {
        match &self.spec.route {
            Some(template) if template == "*" => route.listener == Listener::Public,
            Some(template) => **template == *route.route,
            None => false,
        }
    }

    /// Whether the next request (or store call) this fault sees is affected: the `n`th
    /// decision of a seed is always the same.
    fn decide(&self) -> bool {
        let rate = self.spec.rate();
        if rate >= 1.0 {
            self.seen.fetch_add(1, Ordering::Relaxed);
            return true;
        }
        let n = self.seen.fetch_add(1, Ordering::Relaxed);
        unit(splitmix64(
            self.seed ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15),
        )) < rate
    }

    fn view(&self, ended_ms: Option<u64>) -> FaultView {
        FaultView {
            name: self.name.clone(),
            spec: self.spec.clone(),
            seed: self.seed,
            started_at: rfc3339(self.started_ms),
            ends_at: self.ends_ms.map(rfc3339),
            started_ms: self.started_ms,
            ends_ms: self.ends_ms,
            ended_ms,
            seen: self.seen.load(Ordering::Relaxed),
            injected: self.injected.load(Ordering::Relaxed),
        }
    }
}

/// SplitMix64's output function: a well-mixed 64-bit value for each input.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The top 53 bits of `x` as a number in [0, 1).
fn unit(x: u64) -> f64 {
    (x >> 11) as f64 / (1u64 << 53) as f64
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn rfc3339(ms: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(seed: u64, rate: f64, n: u64) -> u64 {
        let fault = Fault {
            id: 0,
            name: "t".into(),
            spec: FaultSpec {
                rate: Some(rate),
                ..FaultSpec::of(Kind::Error)
            },
            seed,
            started_ms: 0,
            ends_ms: None,
            seen: AtomicU64::new(0),
            injected: AtomicU64::new(0),
        };
        (0..n).filter(|_| fault.decide()).count() as u64
    }

    #[test]
    fn the_same_seed_picks_the_same_requests_and_the_rate_holds() {
        assert_eq!(count(7, 0.3, 10_000), count(7, 0.3, 10_000));
        assert_ne!(count(7, 0.3, 10_000), count(8, 0.3, 10_000));
        let n = count(42, 0.3, 100_000) as f64;
        // 99.9 % of binomial(100000, 0.3) lies within 3.3 standard deviations (145 each).
        assert!((n - 30_000.0).abs() < 3.3 * 145.0, "{n}");
        assert_eq!(count(1, 0.0, 1000), 0);
        assert_eq!(count(1, 1.0, 1000), 1000);
    }
}
