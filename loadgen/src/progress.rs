//! One line of progress while the test runs: rewritten in place on a terminal, a line every
//! few seconds otherwise (CI logs).

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

use crate::context;

#[derive(Debug)]
pub struct Progress {
    task: JoinHandle<()>,
    terminal: bool,
}

impl Progress {
    /// Starts printing to stderr; `run_for` is the planned run time, when known.
    pub fn start(run_for: Option<Duration>) -> Self {
        let terminal = std::io::stderr().is_terminal();
        let every = if terminal {
            Duration::from_secs(1)
        } else {
            Duration::from_secs(5)
        };
        let task = tokio::spawn(async move {
            let started = Instant::now();
            let mut last = (0u64, Instant::now());
            let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            loop {
                ticks.tick().await;
                let (requests, transport, server) = context::get().recorder.totals();
                let now = Instant::now();
                let rate = (requests - last.0) as f64 / now.duration_since(last.1).as_secs_f64();
                last = (requests, now);
                let elapsed = started.elapsed().as_secs();
                let of = run_for
                    .map(|d| format!("/{}s", d.as_secs()))
                    .unwrap_or_default();
                let line = format!(
                    "loadgen {elapsed:>4}s{of}: {requests} requests, {rate:.0}/s, \
                     {server} 5xx answers, {transport} without answer"
                );
                let mut err = std::io::stderr().lock();
                let _ = if terminal {
                    write!(err, "\r{line}\x1b[K")
                } else {
                    writeln!(err, "{line}")
                };
                let _ = err.flush();
            }
        });
        Self { task, terminal }
    }

    pub fn stop(self) {
        self.task.abort();
        if self.terminal {
            eprintln!();
        }
    }
}
