//! The load generator must not be what limits a demo: goose (`loadgen --hello-only`, GET / with
//! no pause) against wrk, both on the reference hello world over TLS, alternating, a fresh
//! reference each round: requests/s, their ratio, and CPU per 1,000 requests of each client.

use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use serde_json::Value;

use crate::cpu;
use crate::run::Run;
use crate::stats::median;
use crate::wrk::Wrk;

/// Runs `command` to its end; the CPU it used.
fn timed(mut command: Command) -> Result<Duration> {
    let before = cpu::children_cpu();
    let status = command.status().with_context(|| format!("{command:?}"))?;
    ensure!(status.success(), "{command:?} failed");
    Ok(cpu::children_cpu() - before)
}

fn per_thousand(cpu: Duration, requests: f64) -> f64 {
    cpu.as_secs_f64() * 1e6 / requests
}

pub(crate) fn run() -> Result<()> {
    let run = Run::start("loadgen", &["glassbox", "glassbox-reference", "loadgen"])?;
    let settings = &run.settings;
    let seconds = settings.seconds()?;
    println!(
        "GET / on the reference over TLS: wrk -t2 -c{0} against loadgen -u {0}, {1}s each, {2} rounds",
        settings.connections, seconds, settings.rounds
    );
    let mut ratios = Vec::new();
    for round in 1..=settings.rounds {
        let reference = run.reference("reference")?;
        let url = reference.url("/");
        let wrk = Wrk::new(settings, &url).shape(2, settings.connections);
        wrk.warm_up()?;
        let before = cpu::children_cpu();
        let measured = wrk.measure()?;
        let wrk_cpu = cpu::children_cpu() - before;

        // goose starts every user in the first second and resets its metrics once they run, so
        // its report's requests over its duration are the steady rate; the CPU is the whole
        // process's.
        let (report, summary) = (run.path("goose.json"), run.path("summary.json"));
        let users = settings.connections.to_string();
        let mut loadgen = Command::new(run.release("loadgen"));
        loadgen
            .args(["--host", &url, "--ca-cert"])
            .arg(run.ca())
            .args(["--hello-only", "--users", &users, "--increase-rate", &users])
            .args(["--run-time", &settings.duration, "--think-time", "0s"])
            .args(["--metrics-bind", "127.0.0.1:0", "--no-progress"])
            .args(["--no-print-metrics", "--quiet", "--report-file"])
            .arg(&report)
            .arg("--summary")
            .arg(&summary)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let goose_cpu = timed(loadgen)?;
        let report: Value = serde_json::from_slice(&std::fs::read(&report)?)?;
        let summary: Value = serde_json::from_slice(&std::fs::read(&summary)?)?;
        let steady = report["raw_metrics"]["requests"]["GET /"]["raw_data"]["counter"]
            .as_f64()
            .context("goose's report has GET /")?;
        let goose_rps = steady
            / report["raw_metrics"]["duration"]
                .as_f64()
                .unwrap_or(seconds);
        let all = summary["requests"].as_f64().unwrap_or(steady);
        reference.stop()?;
        let ratio = goose_rps / measured.requests_per_sec;
        ratios.push(ratio);
        println!(
            "  round {round}: wrk {:8.0} req/s ({:.1} ms CPU per 1k)   loadgen {goose_rps:8.0} req/s ({:.1} ms CPU per 1k)   ratio {ratio:.2}",
            measured.requests_per_sec,
            per_thousand(wrk_cpu, measured.requests as f64),
            per_thousand(goose_cpu, all),
        );
    }
    println!(
        "median loadgen/wrk requests/s ratio over {} rounds: {:.2} (issue 7 set no number: the loadgen must not be what limits a demo, which drives a few hundred requests/s)",
        settings.rounds,
        median(&ratios)
    );
    Ok(())
}
