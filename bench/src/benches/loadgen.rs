//! The load generator must not be what limits a demo: goose (`loadgen --hello-only`, GET / with
//! no pause) against wrk, both on the reference hello world over TLS, alternating, a fresh
//! reference each round: requests/s, their ratio, and CPU per 1,000 requests of each client.
//! Then the open model (`--rate`): doubling rates until one is not held on schedule (achieved
//! below 99 % of the rate, or more than 1 % of the starts late), with its CPU per 1,000
//! requests at each rate.

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
    open_model(&run)
}

/// Seconds each open-model rate runs.
const OPEN_SECONDS: u32 = 5;

/// The open model on the reference: rates 500, 1,000, 2,000, … until one is not held.
fn open_model(run: &Run) -> Result<()> {
    let connections = run.settings.connections.to_string();
    println!(
        "open model, GET / on the reference, --max-in-flight {connections}, {OPEN_SECONDS}s per rate: \
         held = achieved >= 99% of the rate and at most 1% of the starts late (5 ms or more)"
    );
    let reference = run.reference("reference")?;
    let url = reference.url("/");
    let mut highest = None;
    let mut rate = 500u32;
    // The CPU and requests of the previous rate: the difference is the cost of the extra
    // requests alone, without the process's start-up.
    let mut previous: Option<(Duration, f64)> = None;
    loop {
        let summary = run.path(&format!("open-{rate}.json"));
        let mut loadgen = Command::new(run.release("loadgen"));
        loadgen
            .args(["--host", &url, "--ca-cert"])
            .arg(run.ca())
            .args(["--hello-only", "--rate", &rate.to_string()])
            .args(["--max-in-flight", &connections])
            .args(["--run-time", &format!("{OPEN_SECONDS}s")])
            .args([
                "--metrics-bind",
                "127.0.0.1:0",
                "--no-progress",
                "--summary",
            ])
            .arg(&summary)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let cpu = timed(loadgen)?;
        let summary: Value = serde_json::from_slice(&std::fs::read(&summary)?)?;
        let open = &summary["open"];
        let achieved = open["achieved_rate"]
            .as_f64()
            .context("the open model's report")?;
        let starts = open["starts"].as_f64().unwrap_or(0.0);
        let late = open["late_starts"].as_f64().unwrap_or(0.0);
        let lag_p99 = open["start_lag_us"]["p99"].as_f64().unwrap_or(0.0) / 1000.0;
        let held = achieved >= 0.99 * f64::from(rate) && late <= 0.01 * starts;
        let requests = summary["requests"].as_f64().unwrap_or(starts);
        let marginal = previous
            .filter(|(before, n)| cpu > *before && requests > *n)
            .map_or_else(
                || "-".to_owned(),
                |(before, n)| format!("{:.1}", per_thousand(cpu - before, requests - n)),
            );
        previous = Some((cpu, requests));
        println!(
            "  rate {rate:6}: achieved {achieved:8.0}/s, {late:6.0} of {starts:6.0} starts late, start lag p99 {lag_p99:6.2} ms, \
             {:.1} ms CPU per 1k (whole process; {marginal} for the requests added since the previous rate)  {}",
            per_thousand(cpu, requests),
            if held { "held" } else { "NOT held" }
        );
        if held {
            highest = Some(rate);
        }
        if !held || rate >= 64_000 {
            break;
        }
        rate *= 2;
    }
    reference.stop()?;
    match highest {
        Some(rate) => println!("highest rate held on schedule: {rate}/s"),
        None => println!("highest rate held on schedule: below 500/s"),
    }
    Ok(())
}
