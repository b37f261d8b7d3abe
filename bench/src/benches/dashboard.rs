//! What a dashboard poll costs the service. The timeline is filled first by the load generator
//! (every scenario, about twenty routes) with a 100 ms sample interval and a 30 s window: 300
//! samples, as many as the default 1 s over 5 minutes. Then, each with one wrk connection so
//! nothing queues: GET / and GET /dashboard/data polled as the page does (only the samples after
//! the last one seen), read from glassbox's own server-side HDR histograms in `/status`; and the
//! page's first load of the whole timeline, timed by wrk.

use std::collections::BTreeSet;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, ensure};
use serde_json::Value;

use crate::run::Run;
use crate::stats::verdict;
use crate::wrk::Wrk;

pub(crate) fn run() -> Result<()> {
    let run = Run::start("dashboard", &["glassbox", "loadgen"])?;
    let http = run.http()?;
    let args = [
        "--dashboard-interval",
        "100ms",
        "--dashboard-window",
        "30s",
        "--work-sleep-max",
        "500ms",
        "--total-latency",
        "100ms",
    ];
    let glassbox = run.glassbox("glassbox", &args)?;
    println!("filling the timeline: loadgen, 12 users, 35 s");
    let status = Command::new(run.release("loadgen"))
        .args(["--host", &glassbox.url(""), "--ca-cert"])
        .arg(run.ca())
        .args([
            "--users",
            "12",
            "--increase-rate",
            "12",
            "--run-time",
            "35s",
        ])
        .args([
            "--metrics-bind",
            "127.0.0.1:0",
            "--no-progress",
            "--no-print-metrics",
        ])
        .arg("--quiet")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .context("running the loadgen")?;
    ensure!(status.success(), "the loadgen failed");

    let whole = http.text(&glassbox.url("/dashboard/data"))?;
    let data: Value = serde_json::from_str(&whole)?;
    let points = data["points"].as_array().cloned().unwrap_or_default();
    let routes: BTreeSet<String> = points
        .iter()
        .flat_map(|p| p["routes"].as_array().cloned().unwrap_or_default())
        .map(|r| format!("{} {}", r["method"], r["route"]))
        .collect();
    println!(
        "timeline: {} samples of {}, {} routes in them, {} rows in the table; the whole timeline is {:.0} KiB",
        points.len(),
        data["capacity"],
        routes.len(),
        data["routes"].as_array().map_or(0, Vec::len),
        whole.len() as f64 / 1024.0
    );

    let one = |wrk: Wrk| wrk.shape(1, 1);
    one(Wrk::new(&run.settings, &glassbox.url("/"))).measure()?;
    one(Wrk::new(&run.settings, &glassbox.url("/dashboard/data")).script("bench-dashboard.lua"))
        .measure()?;
    println!(
        "server-side latency, one connection (glassbox's HDR histograms: arrival to response head):"
    );
    let status = http.json(&glassbox.url("/status"))?;
    let route = |path: &str| {
        status["data"]["routes"]
            .as_array()
            .and_then(|routes| {
                routes
                    .iter()
                    .find(|r| r["method"] == "GET" && r["route"] == path)
                    .cloned()
            })
            .with_context(|| format!("/status has no GET {path}"))
    };
    let mut poll_p99 = 0;
    for (label, path) in [
        ("GET /", "/"),
        ("a poll: one sample + the table", "/dashboard/data"),
    ] {
        let r = route(path)?;
        let latency = &r["latency_us"];
        println!(
            "  {label:32} p50 {:5} us   p99 {:5} us   ({} requests)",
            latency["p50"], latency["p99"], r["count"]
        );
        poll_p99 = latency["p99"].as_u64().unwrap_or(u64::MAX);
    }
    let last = http.json(&glassbox.url("/dashboard/data"))?["last"]
        .as_u64()
        .unwrap_or(1);
    let poll =
        http.text(&glassbox.url(&format!("/dashboard/data?since={}", last.saturating_sub(1))))?;
    println!("  a poll answer: {} bytes", poll.len());
    println!(
        "  target (issue 9): a poll costs no more than a few hundred microseconds (300 us at p99): {}",
        verdict(poll_p99 as f64, 300.0, false)
    );

    let full = one(Wrk::new(&run.settings, &glassbox.url("/dashboard/data"))).measure()?;
    println!("the first load of the whole timeline, client side (wrk, TLS on loopback included):");
    println!(
        "  p50 {:.2} ms   p99 {:.2} ms   {:.0} loads/s",
        full.p50_ms, full.p99_ms, full.requests_per_sec
    );
    Ok(())
}
