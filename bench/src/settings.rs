//! What the environment asks of a benchmark, and where its client and servers run.

use anyhow::{Context, Result, bail};

/// `BENCH_*` settings every wrk benchmark shares.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// wrk's `-d`, as given (`10s`).
    pub(crate) duration: String,
    /// wrk's `-c`.
    pub(crate) connections: u32,
    pub(crate) rounds: usize,
    pub(crate) placement: Placement,
}

impl Settings {
    /// `BENCH_DURATION` (default `10s`), `BENCH_CONNECTIONS` (64), `BENCH_ROUNDS` (3) and
    /// `BENCH_PIN` (off).
    pub(crate) fn from_env() -> Result<Self> {
        Ok(Self {
            duration: var("BENCH_DURATION").unwrap_or_else(|| "10s".into()),
            connections: number("BENCH_CONNECTIONS", 64)?,
            rounds: number("BENCH_ROUNDS", 3)?,
            placement: Placement::new(flag("BENCH_PIN"), cores())?,
        })
    }

    /// The measured run's length in seconds.
    pub(crate) fn seconds(&self) -> Result<f64> {
        let digits = self.duration.trim_end_matches('s');
        digits
            .parse::<f64>()
            .with_context(|| format!("BENCH_DURATION {} is not seconds (e.g. 10s)", self.duration))
    }
}

/// An environment variable, when set and not empty.
pub(crate) fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Whether `name` is `1`.
pub(crate) fn flag(name: &str) -> bool {
    var(name).as_deref() == Some("1")
}

/// A whole-number setting, `default` when unset.
pub(crate) fn number<T: std::str::FromStr>(name: &str, default: T) -> Result<T> {
    match var(name) {
        None => Ok(default),
        Some(text) => text
            .parse()
            .map_err(|_| anyhow::anyhow!("{name}={text} is not a whole number")),
    }
}

pub(crate) fn cores() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// Where wrk and the servers run. By default they share every core and wrk runs two threads.
/// Pinned (`BENCH_PIN=1`), wrk runs one thread on the last core and the servers on the others,
/// so a server's requests/s measure the server and not also the client's side of TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Placement {
    /// `taskset -c ...` before a server's command, or nothing.
    pub(crate) server_pin: Vec<String>,
    /// The same before wrk's.
    pub(crate) client_pin: Vec<String>,
    pub(crate) wrk_threads: u32,
    /// Cores the servers may use: their thread or worker count.
    pub(crate) server_cores: usize,
    /// One line for the report.
    pub(crate) description: String,
}

impl Placement {
    pub(crate) fn new(pin: bool, cores: usize) -> Result<Self> {
        if !pin {
            return Ok(Self {
                server_pin: Vec::new(),
                client_pin: Vec::new(),
                wrk_threads: 2,
                server_cores: cores,
                description: format!("wrk and servers share all {cores} cores"),
            });
        }
        if cores < 2 {
            bail!("BENCH_PIN=1 needs two cores or more");
        }
        let server_cores = cores - 1;
        let taskset = |cores: String| vec!["taskset".to_owned(), "-c".to_owned(), cores];
        Ok(Self {
            server_pin: taskset(format!("0-{}", server_cores - 1)),
            client_pin: taskset(server_cores.to_string()),
            wrk_threads: 1,
            server_cores,
            description: format!(
                "wrk pinned to core {server_cores}, servers to cores 0-{}",
                server_cores - 1
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pinning_gives_wrk_the_last_core() {
        let pinned = Placement::new(true, 4).unwrap();
        assert_eq!(pinned.server_pin, ["taskset", "-c", "0-2"]);
        assert_eq!(pinned.client_pin, ["taskset", "-c", "3"]);
        assert_eq!((pinned.wrk_threads, pinned.server_cores), (1, 3));
        let shared = Placement::new(false, 4).unwrap();
        assert!(shared.server_pin.is_empty() && shared.client_pin.is_empty());
        assert_eq!((shared.wrk_threads, shared.server_cores), (2, 4));
        assert!(Placement::new(true, 1).is_err());
    }
}
