//! Telemetry is true: metrics, `/status` and logs agree with the requests the test made.

use std::collections::HashMap;

use serde_json::Value;

use crate::helpers::{TestApp, sample};

fn duration_count(method: &str, route: &str, status: u16) -> String {
    format!(
        r#"http_server_request_duration_seconds_count{{method="{method}",route="{route}",status_code="{status}"}}"#
    )
}

#[tokio::test]
async fn metrics_count_every_request_by_route_template() {
    let app = TestApp::spawn(&[]).await;
    for _ in 0..37 {
        app.get("/").await;
    }
    for ms in [1, 2, 3, 4, 5] {
        app.get(&format!("/sleep/{ms}")).await;
    }
    for code in [503, 503, 418] {
        app.get(&format!("/code/{code}")).await;
    }
    for path in ["/a", "/b/c", "/.env", "/admin?x=1"] {
        app.get(path).await;
    }
    let metrics = app.metrics().await;
    let count = |m, r, s| sample(&metrics, &duration_count(m, r, s));
    assert_eq!(count("GET", "/", 200), Some(37.0));
    assert_eq!(
        count("GET", "/sleep/{ms}", 200),
        Some(5.0),
        "one series per template"
    );
    assert_eq!(count("GET", "/code/{code}", 503), Some(2.0));
    assert_eq!(count("GET", "/code/{code}", 418), Some(1.0));
    assert_eq!(
        count("GET", "unmatched", 404),
        Some(4.0),
        "unmatched paths share one label"
    );
    assert!(
        !metrics.contains("route=\"/a\""),
        "raw paths never become labels"
    );
    assert!(metrics.contains("# TYPE http_server_request_duration_seconds histogram"));
    assert!(metrics.contains(
        r#"http_server_request_duration_seconds_bucket{method="GET",route="/",status_code="200",le="+Inf"} 37"#
    ));
    assert_eq!(
        sample(
            &metrics,
            r#"http_server_response_body_size_bytes_count{method="GET",route="/",status_code="200"}"#
        ),
        Some(37.0)
    );
    assert_eq!(
        sample(
            &metrics,
            r#"http_server_response_body_size_bytes_sum{method="GET",route="/",status_code="200"}"#
        ),
        Some(37.0 * 55.0),
        "the hello body is 55 bytes"
    );
    // The scrape in progress is the one active request.
    assert_eq!(sample(&metrics, "http_server_active_requests"), Some(1.0));
    assert_eq!(
        sample(
            &metrics,
            r#"glassbox_build_info{version="0.1.0",profile="debug"}"#
        )
        .or_else(|| sample(
            &metrics,
            r#"glassbox_build_info{version="0.1.0",profile="release"}"#
        )),
        Some(1.0)
    );
    let expiry = sample(&metrics, "glassbox_certificate_expiry_timestamp_seconds").unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(expiry > now + 30.0 * 86400.0);
    for family in [
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_max_fds",
        "process_threads",
        "process_start_time_seconds",
    ] {
        let value = sample(&metrics, family).unwrap_or_else(|| panic!("{family} missing"));
        assert!(value > 0.0, "{family} = {value}");
    }
    let handshakes: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("glassbox_tls_handshakes_total{"))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum();
    assert!(handshakes >= 1.0, "handshakes are counted");
}

#[tokio::test]
async fn status_counts_and_percentiles_agree_with_what_was_sent() {
    let app = TestApp::spawn(&[]).await;
    let sleeps = [20u64, 40, 60, 80, 100, 120, 140, 160, 180, 200];
    for ms in sleeps {
        assert_eq!(app.get(&format!("/sleep/{ms}")).await.status(), 200);
    }
    for _ in 0..3 {
        app.get("/code/500").await;
    }
    app.get("/code/404").await;
    app.get("/missing").await;

    let status = app.status().await;
    assert_eq!(status["requests_total"], 15, "{status:#}");
    assert_eq!(
        status["requests_in_flight"], 1,
        "the /status request itself"
    );
    assert_eq!(status["errors_total"], 3, "5xx only");
    assert!(status["uptime_seconds"].as_f64().unwrap() > 0.0);
    assert!(status["latency_source"].as_str().unwrap().contains("HDR"));
    let routes: HashMap<String, Value> = status["routes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                format!(
                    "{} {}",
                    r["method"].as_str().unwrap(),
                    r["route"].as_str().unwrap()
                ),
                r.clone(),
            )
        })
        .collect();
    let sleep = &routes["GET /sleep/{ms}"];
    assert_eq!(sleep["count"], 10);
    assert_eq!(sleep["errors"], 0);
    let latency = &sleep["latency_us"];
    let us = |k: &str| latency[k].as_u64().unwrap();
    // The server cannot answer before the sleep ends, and HDR keeps 3 significant figures.
    assert!(us("p50") >= 100_000 * 999 / 1000, "p50 {}", us("p50"));
    assert!(us("p90") >= 180_000 * 999 / 1000, "p90 {}", us("p90"));
    assert!(us("max") >= 200_000 * 999 / 1000, "max {}", us("max"));
    assert!(us("p50") <= us("p90") && us("p90") <= us("p99") && us("p99") <= us("p99_9"));
    assert!(us("p99_9") <= us("max"));
    let code = &routes["GET /code/{code}"];
    assert_eq!(code["count"], 4);
    assert_eq!(code["errors"], 3);
    assert_eq!(code["status_codes"]["500"], 3);
    assert_eq!(code["status_codes"]["404"], 1);
    assert_eq!(routes["GET unmatched"]["count"], 1);
}

#[tokio::test]
async fn one_json_log_line_per_request_with_its_id() {
    let mut app = TestApp::spawn(&[]).await;
    let paths = [
        "/",
        "/code/201",
        "/code/418",
        "/code/502",
        "/nope",
        "/sleep/5",
        "/code/204",
    ];
    let mut sent = Vec::new();
    for path in paths {
        let response = app.get(path).await;
        let id = response.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        sent.push((path, response.status().as_u16(), id));
    }
    let stdout_before_stop = app.stdout_lines().len();
    let lines = app.stop_and_read_logs();
    let access: Vec<&Value> = lines
        .iter()
        .filter(|l| l["target"] == "glassbox::access")
        .collect();
    assert_eq!(
        access.len(),
        sent.len(),
        "exactly one access line per request"
    );
    for (path, status, id) in &sent {
        let matching: Vec<_> = access
            .iter()
            .filter(|l| l["request_id"] == id.as_str())
            .collect();
        assert_eq!(matching.len(), 1, "{path}: one line with id {id}");
        let line = matching[0];
        assert_eq!(line["path"], *path);
        assert_eq!(line["status"], *status);
        assert_eq!(line["method"], "GET");
        let level = match status {
            500.. => "ERROR",
            400..=499 => "WARN",
            _ => "INFO",
        };
        assert_eq!(line["level"], level, "{path}");
        assert!(line["latency_ms"].as_f64().is_some());
        assert!(line["bytes"].as_u64().is_some());
        assert!(
            line["client_addr"]
                .as_str()
                .unwrap()
                .starts_with("127.0.0.1:")
        );
        assert!(line["timestamp"].as_str().unwrap().ends_with('Z'));
        assert!(line["user_agent"].is_string());
        assert!(line["route"].is_string());
    }
    let sleep = access.iter().find(|l| l["path"] == "/sleep/5").unwrap();
    assert_eq!(sleep["route"], "/sleep/{ms}");
    assert!(sleep["latency_ms"].as_f64().unwrap() >= 5.0);
    let nope = access.iter().find(|l| l["path"] == "/nope").unwrap();
    assert_eq!(nope["route"], "unmatched");
    let no_content = access.iter().find(|l| l["path"] == "/code/204").unwrap();
    assert_eq!(no_content["bytes"], 0);

    // Lifecycle events are in the file too, and stdout carries the same lines.
    let messages: Vec<&str> = lines.iter().filter_map(|l| l["message"].as_str()).collect();
    for event in [
        "listening",
        "shutting down",
        "stopped accepting; draining",
        "stopped",
    ] {
        assert!(
            messages.contains(&event),
            "{event} missing from {messages:?}"
        );
    }
    let stdout = app.stdout_lines();
    assert!(stdout.len() >= stdout_before_stop);
    let stdout_access = stdout
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).expect("stdout lines are JSON"))
        .filter(|l| l["target"] == "glassbox::access")
        .count();
    assert_eq!(stdout_access, sent.len());
}

#[tokio::test]
async fn metrics_pass_the_prometheus_linter() {
    let app = TestApp::spawn(&[]).await;
    for path in ["/", "/code/503", "/nope", "/sleep/1", "/fibonacci/3"] {
        app.get(path).await;
    }
    let metrics = app.metrics().await;
    let mut lint = tokio::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool is installed (.ci/run installs Debian's prometheus package)");
    use tokio::io::AsyncWriteExt;
    let mut stdin = lint.stdin.take().unwrap();
    stdin.write_all(metrics.as_bytes()).await.unwrap();
    drop(stdin);
    let output = lint.wait_with_output().await.unwrap();
    assert!(
        output.status.success() && output.stdout.is_empty() && output.stderr.is_empty(),
        "promtool check metrics:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test]
async fn the_log_level_filters_access_lines() {
    // The helper waits for the `listening` event, an info line of glassbox::service.
    let mut app = TestApp::spawn(&["--log-level", "warn,glassbox::service=info"]).await;
    for path in ["/", "/code/201", "/code/404", "/code/503"] {
        app.get(path).await;
    }
    let lines = app.stop_and_read_logs();
    let statuses: Vec<u64> = lines
        .iter()
        .filter(|l| l["target"] == "glassbox::access")
        .map(|l| l["status"].as_u64().unwrap())
        .collect();
    assert_eq!(
        statuses,
        vec![404, 503],
        "only 4xx (warn) and 5xx (error) lines remain"
    );
}
