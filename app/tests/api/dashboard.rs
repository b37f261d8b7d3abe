//! The built-in dashboard: its data and `/logs` endpoints directly, and the page itself in a
//! real headless Chromium that trusts only the test's CA.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use super::browser::Browser;
use super::helpers::{TestApp, eventually};

/// Sends `GET path` with our own request id.
async fn get_with_id(app: &TestApp, path: &str, id: &str) -> u16 {
    app.client
        .get(app.url(path))
        .header("x-request-id", id)
        .send()
        .await
        .expect("GET completes")
        .status()
        .as_u16()
}

async fn logs(app: &TestApp, query: &str) -> (u16, Value) {
    app.get_json(&format!("/logs{query}")).await
}

fn request_ids(body: &Value) -> Vec<String> {
    body["lines"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l["line"]["request_id"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn logs_filter_by_level_route_and_status_with_limits() {
    let app = TestApp::spawn(&[]).await;
    for i in 0..3 {
        assert_eq!(get_with_id(&app, "/", &format!("ok-{i}")).await, 200);
        assert_eq!(
            get_with_id(&app, "/code/503", &format!("bad-{i}")).await,
            503
        );
        assert_eq!(
            get_with_id(&app, "/code/404", &format!("missing-{i}")).await,
            404
        );
    }
    eventually("the nine lines in the ring", || async {
        let (_, body) = logs(&app, "?route=/code/{code}").await;
        request_ids(&body).len() == 6
    })
    .await;

    let (status, body) = logs(&app, "?level=error").await;
    assert_eq!(status, 200);
    assert_eq!(
        request_ids(&body),
        ["bad-2", "bad-1", "bad-0"],
        "newest first"
    );
    let line = &body["lines"][0]["line"];
    assert_eq!(line["status"], 503);
    assert_eq!(line["route"], "/code/{code}");
    assert_eq!(line["level"], "ERROR");
    assert_eq!(body["capacity"], 2000);

    let (_, body) = logs(&app, "?status=4xx").await;
    assert!(
        request_ids(&body)
            .iter()
            .all(|id| id.starts_with("missing-"))
    );
    let (_, body) = logs(&app, "?status=404&route=%2Fcode%2F%7Bcode%7D&limit=2").await;
    assert_eq!(request_ids(&body), ["missing-2", "missing-1"]);
    let (_, body) = logs(&app, "?level=warn&route=/").await;
    assert!(
        request_ids(&body).is_empty(),
        "GET / answered 200: info lines"
    );
    let (_, body) = logs(&app, "?route=/").await;
    assert_eq!(request_ids(&body).len(), 3);

    // `since` returns only what came after.
    let (_, body) = logs(&app, "?limit=1").await;
    let last = body["last"].as_u64().unwrap();
    assert_eq!(get_with_id(&app, "/", "after").await, 200);
    eventually("the new line", || async {
        let (_, body) = logs(&app, &format!("?since={last}&route=/")).await;
        request_ids(&body) == ["after"]
    })
    .await;

    for (query, error) in [
        (
            "?level=loud",
            "invalid level: loud (one of trace, debug, info, warn, error)",
        ),
        (
            "?status=6xx",
            "invalid status: 6xx (a code such as 404, or a class such as 5xx)",
        ),
        (
            "?status=abc",
            "invalid status: abc (a code such as 404, or a class such as 5xx)",
        ),
        ("?limit=0", "invalid limit: 0 (1 to 1000)"),
        ("?limit=1001", "invalid limit: 1001 (1 to 1000)"),
        ("?limit=-5", "invalid limit: -5 (1 to 1000)"),
        (
            "?limit=99999999999999999999999",
            "invalid limit: 99999999999999999999999 (1 to 1000)",
        ),
        (
            "?since=x",
            "invalid since: x (a sequence number, 0 or more)",
        ),
        ("?route=", "invalid route: empty"),
        ("?level=info&level=warn", "level given more than once"),
        (
            "?verbose=1",
            "unknown parameter: verbose (known: level, route, status, limit, since)",
        ),
    ] {
        let (status, body) = logs(&app, query).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some(error)),
            "{query}"
        );
    }
    let (status, body) = app.get_json("/dashboard/data?since=-1").await;
    assert_eq!(status, 400);
    assert_eq!(
        body["error"],
        "invalid since: -1 (a sequence number, 0 or more)"
    );
}

#[tokio::test]
async fn each_sample_counts_the_requests_of_its_interval() {
    let app = TestApp::spawn(&["--dashboard-interval", "200ms", "--dashboard-window", "1m"]).await;
    let (status, first) = app.get_json("/dashboard/data").await;
    assert_eq!(status, 200);
    assert_eq!(first["interval_ms"], 200);
    assert_eq!(first["capacity"], 300);
    for _ in 0..7 {
        assert_eq!(app.get("/").await.status(), 200);
    }
    for _ in 0..2 {
        assert_eq!(app.get("/code/500").await.status(), 500);
    }
    // Every request of the test lands in exactly one sample.
    let mut counted = (0, 0);
    let mut since = None::<u64>;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while counted != (7, 2) {
        assert!(
            std::time::Instant::now() < deadline,
            "the samples hold {counted:?}, not (7, 2)"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        let path = match since {
            Some(s) => format!("/dashboard/data?since={s}"),
            None => "/dashboard/data".to_owned(),
        };
        let (_, body) = app.get_json(&path).await;
        for point in body["points"].as_array().unwrap() {
            for route in point["routes"].as_array().unwrap() {
                let requests = route["requests"].as_u64().unwrap();
                match (route["method"].as_str(), route["route"].as_str()) {
                    (Some("GET"), Some("/")) => counted.0 += requests,
                    (Some("GET"), Some("/code/{code}")) => {
                        counted.1 += requests;
                        assert_eq!(route["by_class"][4], requests, "500s are 5xx");
                    }
                    _ => {}
                }
                assert!(route["p50"].as_u64() <= route["max"].as_u64());
            }
        }
        since = body["last"].as_u64();
    }
    let (_, body) = app.get_json("/dashboard/data").await;
    let root = body["routes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["method"] == "GET" && r["route"] == "/")
        .expect("GET / in the route table")
        .clone();
    assert_eq!(root["count"], 7);
    let last = &body["points"].as_array().unwrap().last().unwrap().clone();
    assert!(last["rss_bytes"].as_u64().unwrap() > 1_000_000);
    assert!(last["cpu_percent"].as_f64().is_some());
    assert_eq!(last["queue_depth"], 0);
}

#[tokio::test]
async fn the_page_and_its_assets_load_nothing_from_elsewhere() {
    let app = TestApp::spawn(&[]).await;
    for (path, content_type) in [
        ("/dashboard", "text/html; charset=utf-8"),
        ("/dashboard/app.js", "text/javascript; charset=utf-8"),
        ("/dashboard/app.css", "text/css; charset=utf-8"),
    ] {
        let response = app.get(path).await;
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(response.headers()["content-type"], content_type, "{path}");
        let text = response.text().await.unwrap();
        for (at, _) in text.match_indices("http") {
            let rest = &text[at..];
            assert!(
                rest.starts_with("http://www.w3.org/2000/svg"),
                "{path} refers to another host: {}",
                &rest[..rest.len().min(60)]
            );
        }
    }
    let page = app.get("/dashboard").await;
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.starts_with("default-src 'self'"), "{csp}");
}

/// Where the screenshot goes: `reports/` at the repository root.
fn screenshot_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../reports/dashboard.png")
}

#[tokio::test]
async fn chromium_shows_charts_for_the_routes_with_traffic_and_the_log_lines_just_sent() {
    let app = TestApp::spawn(&["--dashboard-interval", "500ms"]).await;
    let mut browser = Browser::start(&app.ca_path()).await;
    // An empty service first: the page says so.
    browser.navigate(&app.url("/dashboard")).await;
    browser
        .wait_for(
            "the empty-state message",
            r#"document.getElementById("connection").textContent === "live"
               && !document.getElementById("empty").hidden"#,
            Duration::from_secs(30),
        )
        .await;

    let mut ids = Vec::new();
    for i in 0..20 {
        let id = format!("chromium-{i}");
        let path = match i % 4 {
            0 => "/code/503",
            1 => "/fibonacci/90/",
            _ => "/",
        };
        get_with_id(&app, path, &id).await;
        ids.push(id);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for route in ["GET /", "GET /fibonacci/{n}/", "GET /code/{code}"] {
        let expression = format!(
            r#"(() => {{
                const paths = ["chart-rate", "chart-latency"].map((id) =>
                    document.querySelector(`#${{id}} path[data-route="{route}"]`));
                return paths.every((p) => p && Number(p.dataset.points) > 0)
                    && document.querySelector('#routes tr[data-route="{route}"]') !== null;
            }})()"#
        );
        browser
            .wait_for(
                &format!("charts with points for {route}"),
                &expression,
                Duration::from_secs(30),
            )
            .await;
    }
    browser
        .wait_for(
            "the 5xx chart and the status-class chart",
            r#"document.querySelector('#chart-errors path[data-route="GET /code/{code}"]') !== null
               && document.querySelector('#chart-status path[data-route="5xx"]') !== null
               && document.getElementById("empty").hidden"#,
            Duration::from_secs(30),
        )
        .await;
    let expression = format!(
        "(() => {{ const text = document.querySelector('#logs tbody').textContent; return {}.every((id) => text.includes(id)); }})()",
        serde_json::to_string(&ids).unwrap()
    );
    browser
        .wait_for(
            "the request ids in the log panel",
            &expression,
            Duration::from_secs(30),
        )
        .await;
    // The table's total for GET / comes to the number of requests the test made (the table
    // is refreshed with each sample, so it may take one more interval).
    browser
        .wait_for(
            "the route table's total for GET / to be 10",
            r#"document.querySelector('#routes tr[data-route="GET /"] td:nth-child(7)')?.textContent === "10""#,
            Duration::from_secs(30),
        )
        .await;
    browser.screenshot(&screenshot_path()).await;
    assert!(
        browser.errors.is_empty(),
        "the page logged errors: {:#?}",
        browser.errors
    );
}
