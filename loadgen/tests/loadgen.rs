//! The load generator against a real glassbox (in this process, on a free port, over TLS):
//! its reports, its metrics endpoint, and an exact reconciliation with the server's counts.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

use testkit::InProcess;

/// A glassbox whose slow endpoints are quick, so a short run touches every route.
async fn glassbox() -> InProcess {
    InProcess::start(&["--work-sleep-max", "200ms", "--total-latency", "50ms"]).await
}

/// Runs the loadgen binary with `args`; returns its exit code and every metrics scrape taken
/// while it ran.
async fn loadgen(args: &[&str]) -> (Option<i32>, Vec<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(args)
        .args([
            "--metrics-bind",
            "127.0.0.1:0",
            "--no-print-metrics",
            "--no-progress",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("[loadgen] {line}");
            let _ = tx.send(line);
        }
    });
    let metrics_url = loop {
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(line) => {
                if let Some(url) = line.strip_prefix("loadgen: client-side metrics at ") {
                    break Some(url.to_owned());
                }
            }
            Err(_) => break None,
        }
    };
    let scraper = reqwest::Client::new();
    let mut scrapes = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the loadgen did not stop by itself"
        );
        if let Some(url) = &metrics_url
            && let Ok(response) = scraper.get(url).send().await
            && let Ok(text) = response.text().await
        {
            scrapes.push(text);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    (status.code(), scrapes)
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} does not parse: {e}", path.display()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_drives_every_scenario_and_the_server_counts_every_request() {
    let glassbox = glassbox().await;
    let out = tempfile::tempdir().unwrap();
    let file = |name: &str| out.path().join(name).display().to_string();
    let (host, ca) = (glassbox.url(""), glassbox.ca.display().to_string());
    let (code, scrapes) = loadgen(&[
        "--host",
        &host,
        "--ca-cert",
        &ca,
        "--users",
        "8",
        "--increase-rate",
        "8",
        "--run-time",
        "4s",
        "--no-reset-metrics",
        "--think-time",
        "20ms",
        "--reconcile",
        "--summary",
        &file("summary.json"),
        "--report-file",
        &file("report.html"),
        "--report-file",
        &file("report.json"),
        "--report-file",
        &file("report.md"),
    ])
    .await;
    assert_eq!(code, Some(0), "the loadgen failed or found a mismatch");

    let summary = read_json(&out.path().join("summary.json"));
    let reconciliation = &summary["reconciliation"];
    assert_eq!(reconciliation["matched"], true, "{reconciliation:#}");
    let routes = reconciliation["routes"].as_array().unwrap();
    for row in routes {
        assert_eq!(row["loadgen"], row["server"], "{row:#}");
        assert_eq!(row["matched"], true, "{row:#}");
    }
    let made: Vec<String> = routes
        .iter()
        .map(|r| {
            format!(
                "{} {}",
                r["method"].as_str().unwrap(),
                r["route"].as_str().unwrap()
            )
        })
        .collect();
    // One route that only each scenario uses: Deepgram, Math, Messages, Randomize, SumEvens,
    // BadRequests.
    for route in [
        "GET /",
        "GET /fibonacci/{n}/",
        "POST /messages",
        "GET /randomize/{token}/result",
        "GET /sum-evens/{token}/result",
        "GET unmatched",
    ] {
        assert!(made.iter().any(|m| m == route), "no {route} in {made:?}");
    }

    // goose's report counts the same requests (no reset after the ramp-up).
    let report = read_json(&out.path().join("report.json"));
    let goose_requests = report["raw_metrics"]["requests"].as_object().unwrap();
    for row in routes {
        let name = format!(
            "{} {}",
            row["method"].as_str().unwrap(),
            row["route"].as_str().unwrap()
        );
        let counted = goose_requests
            .get(&name)
            .unwrap_or_else(|| panic!("goose has no {name}"))["raw_data"]["counter"]
            .as_u64();
        assert_eq!(counted, row["loadgen"].as_u64(), "{name}");
    }
    let scenarios = report["scenario_metrics"].to_string();
    for scenario in [
        "Deepgram",
        "Math",
        "Messages",
        "Randomize",
        "SumEvens",
        "BadRequests",
    ] {
        assert!(scenarios.contains(scenario), "no {scenario} in {scenarios}");
    }
    let html = std::fs::read_to_string(out.path().join("report.html")).unwrap();
    assert!(html.contains("<html") && html.contains("/fibonacci/{n}/"));
    let markdown = std::fs::read_to_string(out.path().join("report.md")).unwrap();
    assert!(
        markdown.contains("| GET | /messages/{digest} |"),
        "{markdown}"
    );

    // The metrics endpoint served the client-side histograms while the test ran.
    assert!(
        scrapes.iter().any(|s| s.contains(
            r#"loadgen_request_duration_seconds_bucket{method="GET",route="/",status_code="200",le="#
        ) && s.contains("loadgen_users 8")),
        "{} scrapes, none with the histograms and 8 users",
        scrapes.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_from_another_ca_is_refused() {
    let glassbox = glassbox().await;
    let other = tempfile::tempdir().unwrap();
    glassbox::certs::ensure(other.path(), &[]).unwrap();
    let summary = other.path().join("summary.json");
    let (host, ca) = (glassbox.url(""), other.path().join("ca.crt"));
    let (code, _) = loadgen(&[
        "--host",
        &host,
        "--ca-cert",
        &ca.display().to_string(),
        "--users",
        "1",
        "--hello-only",
        "--iterations",
        "3",
        "--summary",
        &summary.display().to_string(),
    ])
    .await;
    assert_eq!(code, Some(0));
    let summary = read_json(&summary);
    let route = &summary["routes"][0];
    assert_eq!(route["route"], "/");
    assert_eq!(route["requests"], 3);
    assert_eq!(route["transport_errors"], 3, "{summary:#}");
}

/// Faults make answers the load generator counts like any other: the reconciliation stays
/// exact, and the summary names each fault with what it affected during the run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_under_injected_faults_reconciles_exactly_and_names_the_faults() {
    let glassbox = InProcess::start(&[
        "--work-sleep-max",
        "200ms",
        "--total-latency",
        "50ms",
        "--allow-faults",
    ])
    .await;
    let put = |name: &'static str, body: Value| {
        let request = glassbox
            .client
            .put(glassbox.url(&format!("/faults/{name}")))
            .json(&body);
        async move { request.send().await.unwrap().status().as_u16() }
    };
    let flaky =
        serde_json::json!({"kind": "error", "route": "/", "rate": 0.5, "status": 503, "seed": 1});
    assert_eq!(put("flaky", flaky).await, 201);
    let slow = serde_json::json!({"kind": "latency", "route": "*", "rate": 0.1, "latency_ms": 20});
    assert_eq!(put("slow", slow).await, 201);
    let out = tempfile::tempdir().unwrap();
    let summary = out.path().join("summary.json");
    let (host, ca) = (glassbox.url(""), glassbox.ca.display().to_string());
    let (code, _) = loadgen(&[
        "--host",
        &host,
        "--ca-cert",
        &ca,
        "--users",
        "6",
        "--increase-rate",
        "6",
        "--run-time",
        "4s",
        "--think-time",
        "20ms",
        "--reconcile",
        "--summary",
        &summary.display().to_string(),
    ])
    .await;
    assert_eq!(code, Some(0), "the loadgen failed or found a mismatch");
    let summary = read_json(&summary);
    let reconciliation = &summary["reconciliation"];
    assert_eq!(reconciliation["matched"], true, "{reconciliation:#}");
    // The fault is about the route, every method of it (the Deepgram scenario also sends
    // DELETE /).
    let injected: u64 = reconciliation["routes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["route"] == "/")
        .map(|r| r["status_codes"]["503"][0].as_u64().unwrap_or(0))
        .sum();
    assert!(injected > 0, "{reconciliation:#}");
    let faults = reconciliation["faults"].as_array().unwrap();
    let named: Vec<&str> = faults.iter().map(|f| f["name"].as_str().unwrap()).collect();
    assert_eq!(named, ["flaky", "slow"], "{faults:#?}");
    assert_eq!(
        faults[0]["affected"], injected,
        "every 503 on / was the fault's"
    );
    assert!(faults[1]["affected"].as_u64().unwrap() > 0);
}
