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

/// What a run against a glassbox left: the exit code, the metrics scrapes taken while it ran,
/// and its summary (`null` when it wrote none).
struct Run {
    code: Option<i32>,
    scrapes: Vec<String>,
    summary: Value,
}

/// Runs the loadgen against `glassbox` (its URL, trusting its CA) with `args`, writing its
/// summary to a file of its own.
async fn run_against(glassbox: &InProcess, args: &[&str]) -> Run {
    let out = tempfile::tempdir().unwrap();
    let summary = out.path().join("summary.json");
    let (host, ca) = (glassbox.url(""), glassbox.ca.display().to_string());
    let file = summary.display().to_string();
    let mut all = vec!["--host", &host, "--ca-cert", &ca, "--summary", &file];
    all.extend_from_slice(args);
    let (code, scrapes) = loadgen(&all).await;
    let summary = if summary.exists() {
        read_json(&summary)
    } else {
        Value::Null
    };
    Run {
        code,
        scrapes,
        summary,
    }
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
            r#"loadgen_request_duration_seconds_bucket{http_request_method="GET",http_route="/",http_response_status_code="200",le="#
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
    let run = run_against(
        &glassbox,
        &[
            "--users",
            "6",
            "--increase-rate",
            "6",
            "--run-time",
            "4s",
            "--think-time",
            "20ms",
            "--reconcile",
        ],
    )
    .await;
    assert_eq!(run.code, Some(0), "the loadgen failed or found a mismatch");
    let reconciliation = &run.summary["reconciliation"];
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

/// The value of the unlabelled series `name` in a Prometheus text scrape.
fn scalar(scrape: &str, name: &str) -> Option<f64> {
    scrape
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// The open model at 300 transactions a second for 10 s over every scenario: it holds the
/// rate, the server counts exactly what was sent, and both latencies are in the summary and
/// on the metrics endpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_open_model_holds_its_rate_and_reconciles_exactly() {
    let glassbox = glassbox().await;
    let Run {
        code,
        scrapes,
        summary,
    } = run_against(
        &glassbox,
        &[
            "--rate",
            "300",
            "--arrival",
            "constant",
            "--run-time",
            "10s",
            "--reconcile",
        ],
    )
    .await;
    assert_eq!(code, Some(0), "the loadgen failed or found a mismatch");
    assert_eq!(summary["model"], "open");
    let open = &summary["open"];
    let achieved = open["achieved_rate"].as_f64().unwrap();
    assert!(
        (achieved - 300.0).abs() <= 3.0,
        "achieved {achieved} a second, asked 300: {open:#}"
    );
    assert_eq!(open["starts"], 3000, "{open:#}");
    let reconciliation = &summary["reconciliation"];
    assert_eq!(reconciliation["matched"], true, "{reconciliation:#}");
    let routes = summary["routes"].as_array().unwrap();
    let made: u64 = routes.iter().map(|r| r["requests"].as_u64().unwrap()).sum();
    assert!(
        made >= 3000,
        "every start sends at least one request: {made}"
    );
    for route in [
        "/",
        "/fibonacci/{n}/",
        "/messages",
        "/randomize",
        "/sum-evens",
    ] {
        assert!(
            routes.iter().any(|r| r["route"] == route),
            "no {route} in the mix: {routes:#?}"
        );
    }
    for row in routes
        .iter()
        .filter(|r| !r["status_codes"].as_object().unwrap().is_empty())
    {
        let (raw, corrected) = (&row["latency_us"], &row["corrected_latency_us"]);
        assert!(
            corrected["max"].as_u64().unwrap() >= raw["max"].as_u64().unwrap(),
            "a request is never due after it was sent: {row:#}"
        );
    }
    let last = scrapes.last().expect("the metrics endpoint was scraped");
    assert_eq!(scalar(last, "loadgen_target_rate"), Some(300.0), "{last}");
    assert!(
        scalar(last, "loadgen_starts_total").unwrap_or(0.0) > 0.0,
        "{last}"
    );
    assert!(
        last.contains("loadgen_request_corrected_duration_seconds_bucket{"),
        "{last}"
    );
}

/// A stall the closed model would hide: GET / at 300 a second through 4 connections while a
/// latency fault holds every answer for 1 s (for 2 s). The few requests that were out during
/// it took 1 s; the hundreds due meanwhile waited for a connection, went out late and were
/// quick. Raw latency hides the stall, corrected latency shows it, late starts count it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrected_latency_shows_a_stall_that_raw_latency_hides() {
    let glassbox = InProcess::start(&["--allow-faults"]).await;
    let stall = {
        let request = glassbox.client.put(glassbox.url("/faults/stall")).json(
            &serde_json::json!({"kind": "latency", "route": "/", "rate": 1.0,
                "latency_ms": 1000, "duration_s": 2}),
        );
        async move {
            tokio::time::sleep(Duration::from_secs(4)).await;
            request.send().await.unwrap().status().as_u16()
        }
    };
    let run = run_against(
        &glassbox,
        &[
            "--hello-only",
            "--rate",
            "300",
            "--max-in-flight",
            "4",
            "--run-time",
            "10s",
        ],
    );
    let (
        stalled,
        Run {
            code,
            scrapes,
            summary,
        },
    ) = tokio::join!(stall, run);
    assert_eq!(stalled, 201);
    assert_eq!(code, Some(0));
    let row = summary["routes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["route"] == "/")
        .unwrap()
        .clone();
    let raw_p99 = row["latency_us"]["p99"].as_u64().unwrap();
    let corrected_p99 = row["corrected_latency_us"]["p99"].as_u64().unwrap();
    assert!(
        corrected_p99 >= 1_000_000,
        "the corrected p99 ({corrected_p99} µs) is at least the 1 s stall: {row:#}"
    );
    assert!(
        raw_p99 < 500_000,
        "the raw p99 ({raw_p99} µs) hides the stall: {row:#}"
    );
    assert!(
        row["latency_us"]["max"].as_u64().unwrap() >= 1_000_000,
        "the requests out during the stall took 1 s: {row:#}"
    );
    let late = summary["open"]["late_starts"].as_u64().unwrap();
    // 2 s of starts at 300 a second waited for a connection.
    assert!(late >= 300, "{late} late starts: {:#}", summary["open"]);
    let scraped = scrapes
        .iter()
        .filter_map(|s| scalar(s, "loadgen_late_starts_total"))
        .fold(0.0, f64::max);
    assert!(
        scraped >= 300.0,
        "the metrics endpoint counts the late starts too ({scraped})"
    );
}
