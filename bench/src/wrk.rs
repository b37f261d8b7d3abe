//! wrk, the load generator of the HTTP benchmarks: a two-second warm-up, then the measured
//! run, parsed.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};

use crate::settings::Settings;

/// A wrk load against one URL, placed as the settings say.
#[derive(Debug, Clone)]
pub(crate) struct Wrk {
    url: String,
    pin: Vec<String>,
    threads: u32,
    connections: u32,
    duration: String,
    script: Option<PathBuf>,
}

/// What a measured run did.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Measured {
    pub(crate) requests_per_sec: f64,
    pub(crate) p50_ms: f64,
    pub(crate) p99_ms: f64,
    /// Requests completed.
    pub(crate) requests: u64,
    /// wrk's `Non-2xx` and `Socket errors` lines, if any.
    pub(crate) problems: Vec<String>,
}

impl Wrk {
    pub(crate) fn new(settings: &Settings, url: &str) -> Self {
        Self {
            url: url.to_owned(),
            pin: settings.placement.client_pin.clone(),
            threads: settings.placement.wrk_threads,
            connections: settings.connections,
            duration: settings.duration.clone(),
            script: None,
        }
    }

    /// With this Lua script (`-s`), from the repository's `scripts/`.
    pub(crate) fn script(mut self, name: &str) -> Self {
        self.script = Some(testkit::repo().join("scripts").join(name));
        self
    }

    /// With `threads` threads and `connections` connections instead of the settings'.
    pub(crate) fn shape(mut self, threads: u32, connections: u32) -> Self {
        self.threads = threads;
        self.connections = connections;
        self
    }

    /// Two seconds of the same load, not measured.
    pub(crate) fn warm_up(&self) -> Result<()> {
        self.wrk("2s", false).map(drop)
    }

    /// The measured run.
    pub(crate) fn measure(&self) -> Result<Measured> {
        let text = self.wrk(&self.duration, true)?;
        let measured = parse(&text)?;
        for problem in &measured.problems {
            eprintln!("  {}: {problem}", self.url);
        }
        Ok(measured)
    }

    /// A warm-up, then the measured run.
    pub(crate) fn run(&self) -> Result<Measured> {
        self.warm_up()?;
        self.measure()
    }

    fn wrk(&self, duration: &str, latency: bool) -> Result<String> {
        let mut command = crate::server::command(&self.pin, Path::new("wrk"), &[]);
        command
            .arg(format!("-t{}", self.threads))
            .arg(format!("-c{}", self.connections))
            .arg(format!("-d{duration}"));
        if latency {
            command.arg("--latency");
        }
        if let Some(script) = &self.script {
            command.arg("-s").arg(script);
        }
        let output = command
            .arg(&self.url)
            .output()
            .context("wrk is needed: apt-get install wrk")?;
        ensure!(
            output.status.success(),
            "wrk {}: {}",
            self.url,
            String::from_utf8_lossy(&output.stderr)
        );
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }
}

/// Parses wrk's report (with `--latency`).
pub(crate) fn parse(text: &str) -> Result<Measured> {
    let field = |line: &str| line.split_whitespace().nth(1).map(str::to_owned);
    let mut measured = Measured {
        requests_per_sec: f64::NAN,
        p50_ms: f64::NAN,
        p99_ms: f64::NAN,
        requests: 0,
        problems: Vec::new(),
    };
    for line in text.lines().map(str::trim) {
        if line.starts_with("Requests/sec:") {
            measured.requests_per_sec = field(line).unwrap_or_default().parse()?;
        } else if line.starts_with("50%") {
            measured.p50_ms = milliseconds(&field(line).unwrap_or_default())?;
        } else if line.starts_with("99%") {
            measured.p99_ms = milliseconds(&field(line).unwrap_or_default())?;
        } else if line.contains("requests in") {
            measured.requests = line.split_whitespace().next().unwrap_or_default().parse()?;
        } else if line.starts_with("Non-2xx") || line.starts_with("Socket errors") {
            measured.problems.push(line.to_owned());
        }
    }
    if measured.requests_per_sec.is_nan() || measured.requests == 0 {
        bail!("no result in wrk's report:\n{text}");
    }
    Ok(measured)
}

/// wrk's `812.00us`, `1.23ms`, `1.01s` or `2.00m` in milliseconds.
fn milliseconds(text: &str) -> Result<f64> {
    let split = text
        .find(|c: char| c.is_ascii_alphabetic())
        .with_context(|| format!("no unit in {text}"))?;
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse()?;
    Ok(match unit {
        "us" => number / 1000.0,
        "ms" => number,
        "s" => number * 1000.0,
        "m" => number * 60_000.0,
        other => bail!("unknown unit {other} in {text}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPORT: &str = "Running 10s test @ https://localhost:8443/
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   812.00us  301.22us  14.95ms   88.01%
    Req/Sec    39.12k     2.31k   45.01k    71.00%
  Latency Distribution
     50%  754.00us
     75%    0.95ms
     90%    1.13ms
     99%    1.85ms
  778504 requests in 10.00s, 113.89MB read
  Non-2xx or 3xx responses: 12
Requests/sec:  77831.12
Transfer/sec:     11.39MB
";

    #[test]
    fn a_report_parses() {
        let measured = parse(REPORT).unwrap();
        assert_eq!(measured.requests_per_sec, 77831.12);
        assert_eq!(measured.requests, 778_504);
        assert!((measured.p50_ms - 0.754).abs() < 1e-9);
        assert!((measured.p99_ms - 1.85).abs() < 1e-9);
        assert_eq!(measured.problems, ["Non-2xx or 3xx responses: 12"]);
        assert!(parse("wrk: connection refused").is_err());
    }

    #[test]
    fn units_become_milliseconds() {
        assert_eq!(milliseconds("812.00us").unwrap(), 0.812);
        assert_eq!(milliseconds("1.01s").unwrap(), 1010.0);
        assert_eq!(milliseconds("2.00m").unwrap(), 120_000.0);
        assert!(milliseconds("3").is_err());
    }
}
