//! The open model: transactions start on a schedule, R a second, whatever the answers'
//! latency (`--rate`), instead of goose's closed loop of users that each wait for an answer.
//!
//! A closed loop slows down when the server does, so the stall is never measured: the requests
//! that would have gone out during it are simply not sent (coordinated omission). Here every
//! start has a due time. At most `--max-in-flight` transactions run at once, as a client with
//! that many connections would; a start that finds them all busy waits and goes out late, and
//! its latency is recorded twice: from the moment it was sent (raw) and from the moment it was
//! due (corrected). Starts that went out more than [`LATE_AFTER`] after their due time are
//! counted as late.
//!
//! A start is one transaction of the weighted mix the closed model runs: one request for most
//! routes; a message written then read back, or a task submitted then polled to its result,
//! for the others. Only the first request of a transaction is on the schedule; the follow-ups
//! go when the answer they need arrives, as any client's would, and their two latencies are
//! the same.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use goose::config::GooseConfiguration;
use goose::goose::{Scenario, TransactionFunction};
use goose::prelude::GooseUser;
use hdrhistogram::Histogram;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use reqwest::Url;
use serde::Serialize;
use tokio::sync::Semaphore;

use crate::context;
use crate::recorder::{Percentiles, latency_histogram};

/// A start that goes out this long after its due time or later is late.
pub const LATE_AFTER: Duration = Duration::from_millis(5);

/// How the starts are spaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Arrival {
    /// Exactly 1/R apart.
    Constant,
    /// Independent arrivals: exponential gaps with mean 1/R (a Poisson process).
    Poisson,
}

/// What an open-model run is asked to do.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Starts per second.
    pub rate: f64,
    pub arrival: Arrival,
    /// How long starts are scheduled for; `None` until Ctrl-C.
    pub run_for: Option<Duration>,
    /// Transactions running at once, at most.
    pub max_in_flight: usize,
    /// Seeds the arrival gaps and the choice of transaction.
    pub seed: u64,
}

/// The due times of the starts, as offsets from the run's beginning.
#[derive(Debug)]
pub struct Schedule {
    arrival: Arrival,
    rate: f64,
    rng: SmallRng,
    index: u64,
    offset: f64,
}

impl Schedule {
    pub fn new(arrival: Arrival, rate: f64, seed: u64) -> Self {
        Self {
            arrival,
            rate,
            rng: SmallRng::seed_from_u64(seed),
            index: 0,
            offset: 0.0,
        }
    }
}

impl Iterator for Schedule {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let seconds = match self.arrival {
            // From the index, not by adding gaps: no rounding error builds up over a long run.
            Arrival::Constant => self.index as f64 / self.rate,
            Arrival::Poisson => {
                let at = self.offset;
                // 1 - U is in (0, 1], so the logarithm is finite.
                let u: f64 = self.rng.random();
                self.offset += -(1.0 - u).ln() / self.rate;
                at
            }
        };
        self.index += 1;
        Some(Duration::from_secs_f64(seconds))
    }
}

/// The transactions of the closed model's scenarios, each with the share of starts it gets:
/// its scenario's share of the scenario weights times its share of the scenario's
/// transaction weights (goose's own weighting), lifecycle transactions left out.
#[derive(Clone)]
pub struct Mix {
    entries: Vec<(f64, String, TransactionFunction)>,
}

impl std::fmt::Debug for Mix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.entries.iter().map(|(share, name, _)| (name, share)))
            .finish()
    }
}

impl Mix {
    pub fn new(scenarios: &[Scenario]) -> Self {
        let scenario_total: usize = scenarios.iter().map(|s| s.weight).sum();
        let mut entries = Vec::new();
        for scenario in scenarios {
            let transactions: Vec<_> = scenario
                .transactions
                .iter()
                .filter(|t| !t.on_start && !t.on_stop)
                .collect();
            let transaction_total: usize = transactions.iter().map(|t| t.weight).sum();
            for transaction in transactions {
                let share = scenario.weight as f64 / scenario_total as f64
                    * transaction.weight as f64
                    / transaction_total as f64;
                let name = format!(
                    "{}: {}",
                    scenario.name,
                    transaction.name.name_for_transaction()
                );
                entries.push((share, name, transaction.function.clone()));
            }
        }
        Self { entries }
    }

    /// Each transaction's name and share of the starts.
    pub fn shares(&self) -> impl Iterator<Item = (&str, f64)> {
        self.entries
            .iter()
            .map(|(share, name, _)| (name.as_str(), *share))
    }

    fn pick(&self, rng: &mut SmallRng) -> &TransactionFunction {
        let mut at: f64 = rng.random();
        for (share, _, function) in &self.entries {
            if at < *share {
                return function;
            }
            at -= share;
        }
        &self.entries.last().expect("a mix has transactions").2
    }
}

tokio::task_local! {
    /// The due time of the transaction running in this task, until its first request takes it.
    static DUE: Cell<Option<Instant>>;
}

/// For the request about to be recorded: `None` in the closed model; in the open model the
/// transaction's due time for its first request and `Some(None)` for its follow-ups.
pub fn take_due() -> Option<Option<Instant>> {
    DUE.try_with(Cell::take).ok()
}

/// What the schedule did.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub rate: f64,
    pub arrival: Arrival,
    pub max_in_flight: usize,
    /// Transactions started.
    pub starts: u64,
    /// Starts that went out [`LATE_AFTER`] or more after their due time.
    pub late_starts: u64,
    /// Starts over the time from the first due time to the last start (or the planned run
    /// time, when that is longer): below `rate` when starts could not keep up.
    pub achieved_rate: f64,
    /// How long after its due time each start went out, microseconds (HDR).
    pub start_lag_us: Percentiles,
    /// Transactions that ended in a goose error (a request goose could not build).
    pub transaction_errors: u64,
}

impl Report {
    /// The schedule's outcome in a few lines.
    pub fn render(&self) -> String {
        let lag = self.start_lag_us;
        format!(
            "Open model: {} transactions a second asked ({:?} arrivals, at most {} at once), \
             {:.1} achieved\n  {} started, {} late (sent {} ms or more after they were due), \
             {} ended in a goose error\n  start lag, ms: p50 {:.2}, p99 {:.2}, max {:.2}",
            self.rate,
            self.arrival,
            self.max_in_flight,
            self.achieved_rate,
            self.starts,
            self.late_starts,
            LATE_AFTER.as_millis(),
            self.transaction_errors,
            lag.p50 as f64 / 1000.0,
            lag.p99 as f64 / 1000.0,
            lag.max as f64 / 1000.0,
        )
    }
}

/// GooseUsers to run transactions with, all sharing one HTTP client (and its connections).
struct Users {
    idle: Mutex<Vec<GooseUser>>,
    base_url: Url,
    config: GooseConfiguration,
    client: reqwest::Client,
}

impl Users {
    fn take(&self) -> anyhow::Result<GooseUser> {
        if let Some(user) = self.idle.lock().expect("users lock").pop() {
            return Ok(user);
        }
        Ok(GooseUser::new(
            0,
            Arc::from("open"),
            self.base_url.clone(),
            &self.config,
            0,
            Some(self.client.clone()),
        )?)
    }

    fn give_back(&self, user: GooseUser) {
        self.idle.lock().expect("users lock").push(user);
    }
}

/// How long the dispatcher sleeps at most before looking whether Ctrl-C came.
const STOP_CHECK: Duration = Duration::from_millis(100);

/// What the dispatcher did.
struct Dispatched {
    began: Instant,
    starts: u64,
    late: u64,
    lag: Histogram<u64>,
    last_start: Instant,
}

/// Runs the open model: starts `mix`'s transactions on `plan`'s schedule against `host` until
/// the run time is over (or Ctrl-C), then waits for every transaction to finish.
///
/// The schedule is kept by a thread of its own, sleeping with the operating system's timer:
/// tokio's timer wakes on millisecond ticks, up to a millisecond late, and spinning to do
/// better costs a core. The transactions run on the runtime.
pub async fn run(
    plan: &Plan,
    mix: &Mix,
    host: &str,
    config: &GooseConfiguration,
) -> anyhow::Result<Report> {
    let context = context::get();
    let users = Arc::new(Users {
        idle: Mutex::new(Vec::new()),
        base_url: Url::parse(host)?,
        config: config.clone(),
        client: context.client.builder().build()?,
    });
    let slots = Arc::new(Semaphore::new(plan.max_in_flight));
    let errors = Arc::new(AtomicU64::new(0));
    context.recorder.open_model(plan.rate);
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let ctrl_c = tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            let _ = stop_tx.send(true);
        }
    });

    let dispatcher = {
        let (plan, mix, slots, errors) = (plan.clone(), mix.clone(), slots.clone(), errors.clone());
        let runtime = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || {
            dispatch(&plan, &mix, &runtime, &slots, &users, &errors, &stop)
        })
    };
    let dispatched = dispatcher.await?;
    ctrl_c.abort();
    // Every slot back: every transaction has finished.
    let _all = slots.acquire_many(plan.max_in_flight as u32).await?;

    let span = dispatched
        .last_start
        .saturating_duration_since(dispatched.began)
        .max(plan.run_for.unwrap_or_default());
    let achieved_rate = if span.is_zero() {
        0.0
    } else {
        dispatched.starts as f64 / span.as_secs_f64()
    };
    Ok(Report {
        rate: plan.rate,
        arrival: plan.arrival,
        max_in_flight: plan.max_in_flight,
        starts: dispatched.starts,
        late_starts: dispatched.late,
        achieved_rate,
        start_lag_us: Percentiles::of(&dispatched.lag),
        transaction_errors: errors.load(Ordering::Relaxed),
    })
}

/// The schedule, on a blocking thread: sleeps to each due time, waits for a free slot, and
/// spawns the transaction on `runtime`.
fn dispatch(
    plan: &Plan,
    mix: &Mix,
    runtime: &tokio::runtime::Handle,
    slots: &Arc<Semaphore>,
    users: &Arc<Users>,
    errors: &Arc<AtomicU64>,
    stop: &tokio::sync::watch::Receiver<bool>,
) -> Dispatched {
    let recorder = &context::get().recorder;
    let mut rng = SmallRng::seed_from_u64(plan.seed ^ 0x9e37_79b9_7f4a_7c15);
    let began = Instant::now();
    let mut out = Dispatched {
        began,
        starts: 0,
        late: 0,
        lag: latency_histogram(),
        last_start: began,
    };
    'schedule: for offset in Schedule::new(plan.arrival, plan.rate, plan.seed) {
        if plan.run_for.is_some_and(|run_for| offset >= run_for) {
            break;
        }
        let due = began + offset;
        loop {
            if *stop.borrow() {
                break 'schedule;
            }
            let left = due.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            std::thread::sleep(left.min(STOP_CHECK));
        }
        let slot = match slots.clone().try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                let mut stop = stop.clone();
                let waited = runtime.block_on(async {
                    tokio::select! {
                        slot = slots.clone().acquire_owned() => slot.ok(),
                        _ = stop.wait_for(|stopped| *stopped) => None,
                    }
                });
                match waited {
                    Some(slot) => slot,
                    None => break,
                }
            }
        };
        let sent = Instant::now();
        let behind = sent.saturating_duration_since(due);
        out.lag
            .saturating_record((behind.as_micros() as u64).max(1));
        let is_late = behind >= LATE_AFTER;
        out.starts += 1;
        out.late += u64::from(is_late);
        recorder.started(is_late);
        out.last_start = sent;

        let function = mix.pick(&mut rng).clone();
        let users = users.clone();
        let errors = errors.clone();
        runtime.spawn(DUE.scope(Cell::new(Some(due)), async move {
            let _slot = slot;
            let mut user = match users.take() {
                Ok(user) => user,
                Err(err) => {
                    eprintln!("loadgen: creating a user: {err:#}");
                    errors.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            };
            if function(&mut user).await.is_err() {
                errors.fetch_add(1, Ordering::Relaxed);
            }
            users.give_back(user);
        }));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_starts_are_exactly_one_over_the_rate_apart() {
        let due: Vec<Duration> = Schedule::new(Arrival::Constant, 4.0, 1).take(5).collect();
        assert_eq!(
            due,
            [0, 250, 500, 750, 1000].map(Duration::from_millis).to_vec()
        );
    }

    #[test]
    fn poisson_gaps_have_the_rate_as_mean_and_a_coefficient_of_variation_near_one() {
        let due: Vec<f64> = Schedule::new(Arrival::Poisson, 300.0, 7)
            .take(30_001)
            .map(|d| d.as_secs_f64())
            .collect();
        let gaps: Vec<f64> = due.windows(2).map(|w| w[1] - w[0]).collect();
        let n = gaps.len() as f64;
        let mean = gaps.iter().sum::<f64>() / n;
        let sd = (gaps.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / n).sqrt();
        assert!((mean * 300.0 - 1.0).abs() < 0.02, "mean gap {mean}");
        assert!(
            (sd / mean - 1.0).abs() < 0.03,
            "coefficient of variation {}",
            sd / mean
        );
    }

    #[test]
    fn the_same_seed_gives_the_same_schedule() {
        let a: Vec<Duration> = Schedule::new(Arrival::Poisson, 50.0, 3).take(100).collect();
        let b: Vec<Duration> = Schedule::new(Arrival::Poisson, 50.0, 3).take(100).collect();
        let c: Vec<Duration> = Schedule::new(Arrival::Poisson, 50.0, 4).take(100).collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn the_mix_gives_each_transaction_goose_s_weighting() {
        let scenarios = crate::scenarios::all(Duration::ZERO).unwrap();
        let mix = Mix::new(&scenarios);
        let total: f64 = mix.shares().map(|(_, s)| s).sum();
        assert!((total - 1.0).abs() < 1e-9, "shares sum to {total}");
        let hello = mix
            .shares()
            .find(|(name, _)| *name == "Deepgram: hello")
            .unwrap()
            .1;
        // Deepgram is 8 of the 19 scenario weight; hello 6 of its 14 transaction weight.
        assert!((hello - 8.0 / 19.0 * 6.0 / 14.0).abs() < 1e-12, "{hello}");
        assert!(mix.shares().all(|(name, _)| !name.ends_with(": start")));

        let mut rng = SmallRng::seed_from_u64(1);
        let picks = 20_000;
        let hello_fn = &mix
            .entries
            .iter()
            .find(|e| e.1 == "Deepgram: hello")
            .unwrap()
            .2;
        let hits = (0..picks)
            .filter(|_| Arc::ptr_eq(mix.pick(&mut rng), hello_fn))
            .count();
        let expected = hello * picks as f64;
        assert!(
            (hits as f64 - expected).abs() < 4.0 * (expected * (1.0 - hello)).sqrt(),
            "{hits} picks of hello, expected {expected}"
        );
    }
}
