//! The built-in dashboard's data endpoint and its page's assets; `/logs` and the page in a real
//! headless Chromium are end-to-end tests.

use std::time::Duration;

use testkit::InProcess;

#[tokio::test]
async fn each_sample_counts_the_requests_of_its_interval() {
    let app =
        InProcess::start(&["--dashboard-interval", "200ms", "--dashboard-window", "1m"]).await;
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
    let app = InProcess::start(&[]).await;
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
