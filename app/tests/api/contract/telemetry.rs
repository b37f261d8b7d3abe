//! Telemetry is true: metrics, `/status` and logs agree with the requests the test made.

use std::collections::HashMap;

use serde_json::Value;

use testkit::InProcess;
use testkit::exposition::sample;

fn duration_count(method: &str, route: &str, status: u16) -> String {
    format!(
        r#"http_server_request_duration_seconds_count{{http_request_method="{method}",http_route="{route}",http_response_status_code="{status}"}}"#
    )
}

#[tokio::test]
async fn metrics_count_every_request_by_route_template() {
    let app = InProcess::start(&[]).await;
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
        r#"http_server_request_duration_seconds_bucket{http_request_method="GET",http_route="/",http_response_status_code="200",le="+Inf"} 37"#
    ));
    assert_eq!(
        sample(
            &metrics,
            r#"http_server_response_body_size_bytes_count{http_request_method="GET",http_route="/",http_response_status_code="200"}"#
        ),
        Some(37.0)
    );
    assert_eq!(
        sample(
            &metrics,
            r#"http_server_response_body_size_bytes_sum{http_request_method="GET",http_route="/",http_response_status_code="200"}"#
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
    let app = InProcess::start(&[]).await;
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

/// `/code/{code}` can answer 400 codes: the metrics label the rare ones by class, so its
/// series stay bounded, while `/status` and the counts stay exact.
#[tokio::test]
async fn every_status_code_keeps_the_code_series_bounded_and_the_counts_exact() {
    let app = InProcess::start(&[]).await;
    let codes: Vec<u16> = (200..600).collect();
    for code in &codes {
        assert_eq!(
            app.get(&format!("/code/{code}")).await.status().as_u16(),
            *code
        );
    }
    let metrics = app.metrics().await;
    let prefix = r#"http_server_request_duration_seconds_count{http_request_method="GET",http_route="/code/{code}",http_response_status_code=""#;
    let labels: HashMap<String, f64> = metrics
        .lines()
        .filter_map(|l| l.strip_prefix(prefix))
        .map(|rest| {
            let (label, value) = rest.split_once("\"} ").unwrap();
            (label.to_owned(), value.parse().unwrap())
        })
        .collect();
    // The bound the README states: 35 codes of their own plus four classes.
    assert!(labels.len() <= 39, "{} labels: {labels:?}", labels.len());
    assert_eq!(labels.values().sum::<f64>(), codes.len() as f64);
    assert_eq!(labels["418"], 1.0, "a common code keeps its label");
    // 400 401 403 404 405 406 408 409 410 411 413 414 415 416 418 422 429 431 keep theirs.
    assert_eq!(
        labels["4xx"],
        100.0 - 18.0,
        "4xx holds the 4xx codes without their own"
    );
    assert!(labels.keys().all(|l| l.len() == 3), "{labels:?}");
    // /status keeps every code.
    let status = app.status().await;
    let route = testkit::glassbox::route_in(&status, "/code/{code}");
    assert_eq!(
        route["status_codes"]
            .as_object()
            .unwrap_or_else(|| panic!("/code/{{code}} in {status}"))
            .len(),
        codes.len(),
        "{route}"
    );
}

/// An OpenMetrics scrape, as Prometheus asks for one: the same families in OpenMetrics' form,
/// and on the request-duration buckets exemplars whose `request_id` is a request in the log
/// with that route and a latency inside the bucket. The classic scrape is unchanged.
#[tokio::test]
async fn an_openmetrics_scrape_carries_exemplars_that_lead_to_the_log_line() {
    let mut app = testkit::Process::spawn(&[]).await;
    for ms in (0..=40).step_by(2) {
        let response = app
            .client
            .get(app.url(&format!("/sleep/{ms}")))
            .header("x-request-id", format!("exemplar-sleep-{ms}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    app.get("/").await;

    let classic = app.metrics().await;
    assert!(classic.contains("# TYPE glassbox_tls_handshakes_total counter"));
    assert!(
        !classic.contains("# {"),
        "no exemplars in the classic format"
    );
    assert!(!classic.contains("# EOF"));

    let response = app
        .client
        .get(app.url("/metrics"))
        .header(
            "accept",
            "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.headers()["content-type"],
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    let text = response.text().await.unwrap();
    assert!(text.ends_with("# EOF\n"), "{text}");
    assert!(!text.contains("\n\n"), "no blank lines in OpenMetrics");
    assert!(
        text.contains("# TYPE glassbox_tls_handshakes counter\n"),
        "a counter family is named without _total: {text}"
    );
    assert!(text.contains("\nglassbox_tls_handshakes_total{"), "{text}");

    let logs = app.stop_and_read_logs();
    let mut checked = 0;
    let mut previous_le = 0.0;
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("http_server_request_duration_seconds_bucket{") else {
            continue;
        };
        let labels = &rest[..rest.find("} ").unwrap()];
        let label = |name: &str| {
            let start = labels.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
            labels[start..start + labels[start..].find('"').unwrap()].to_owned()
        };
        let le: f64 = match label("le").as_str() {
            "+Inf" => f64::INFINITY,
            le => le.parse().unwrap(),
        };
        let low = std::mem::replace(&mut previous_le, if le.is_infinite() { 0.0 } else { le });
        let Some((_, exemplar)) = line.split_once(" # ") else {
            continue;
        };
        // {request_id="…"} value timestamp
        let (id, rest) = exemplar
            .strip_prefix("{request_id=\"")
            .and_then(|e| e.split_once("\"} "))
            .unwrap_or_else(|| panic!("exemplar {exemplar}"));
        let value: f64 = rest.split(' ').next().unwrap().parse().unwrap();
        assert!(
            low < value && value <= le,
            "{value} s is inside ({low}, {le}]: {line}"
        );
        let logged = logs
            .iter()
            .find(|l| l["request_id"] == id)
            .unwrap_or_else(|| panic!("{id} is not in the log"));
        assert_eq!(logged["route"], label("http_route"), "{logged}");
        assert_eq!(logged["method"], label("http_request_method"), "{logged}");
        assert_eq!(
            logged["status"].to_string(),
            label("http_response_status_code"),
            "{logged}"
        );
        let latency = logged["latency_ms"].as_f64().unwrap() / 1000.0;
        assert!(
            low < latency + 1e-6 && latency <= le + 1e-6,
            "the logged {latency} s is inside ({low}, {le}]"
        );
        checked += 1;
    }
    assert!(
        checked >= 4,
        "the sleeps fill at least four buckets with exemplars ({checked}): {text}"
    );
}
