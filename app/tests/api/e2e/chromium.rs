//! The dashboard page in a real headless Chromium that trusts only the test's CA: charts for
//! the routes with traffic, the table's counts, the log lines just sent, no console errors.

use std::path::PathBuf;
use std::time::Duration;

use testkit::Process;
use tokio::io::AsyncWriteExt;

use super::browser::Browser;
use super::get_with_id;
use super::slow_clients::{connect, h1_status};

/// Where the screenshot goes: `reports/` at the repository root.
fn screenshot_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../reports/dashboard.png")
}

#[tokio::test]
async fn chromium_shows_charts_for_the_routes_with_traffic_and_the_log_lines_just_sent() {
    // Too little body memory for an upload's spool: a way to be refused with 503.
    let app = Process::spawn(&[
        "--dashboard-interval",
        "500ms",
        "--allow-faults",
        "--max-buffered-bytes",
        "1048576",
    ])
    .await;
    let mut browser = Browser::start(&app.ca).await;
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
    // A head that is not HTTP: its connection is cut, and the in-flight chart says so.
    let mut tls = connect(app.addr, &app.ca, "127.0.0.1".parse().unwrap(), b"http/1.1").await;
    tls.write_all(b"BLAH / HTTP/9\r\n\r\n").await.unwrap();
    assert_eq!(h1_status(&mut tls).await, 400);
    browser
        .wait_for(
            "a connection cut on the in-flight chart",
            r#"document.querySelector('#chart-inflight path[data-route="connections cut/s"]') !== null
               && state.points.some((p) => p.cut > 0)"#,
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
    // A click on the latency chart at a second with a slow request names that request and
    // shows its log lines.
    assert_eq!(
        get_with_id(&app, "/sleep/300", "chromium-slowest").await,
        200
    );
    let holds_it = r#"state.points.some((p) =>
        p.routes.some((r) => r.slowest_request_id === "chromium-slowest"))"#;
    browser
        .wait_for(
            "a sample naming the slow request",
            holds_it,
            Duration::from_secs(30),
        )
        .await;
    let click = r#"(() => {
        const fig = document.getElementById("chart-latency");
        const svg = fig.querySelector("svg");
        const p = state.points.find((p) =>
            p.routes.some((r) => r.slowest_request_id === "chromium-slowest"));
        const box = svg.getBoundingClientRect();
        const { W, L, R } = CHART;
        const sx = L + ((p.t - Number(fig.dataset.t0)) / Number(fig.dataset.span)) * (W - L - R);
        svg.dispatchEvent(new MouseEvent("click", {
            bubbles: true, clientX: box.left + (sx / W) * box.width,
            clientY: box.top + box.height / 2 }));
        return true;
    })()"#;
    browser
        .wait_for(
            "a click on the latency chart",
            click,
            Duration::from_secs(5),
        )
        .await;
    browser
        .wait_for(
            "the slowest request and its log line",
            r#"(() => {
                const panel = document.getElementById("slowest");
                return !panel.hidden && panel.dataset.requestId === "chromium-slowest"
                    && panel.querySelector(".summary").textContent.includes("GET /sleep/{ms}")
                    && [...panel.querySelectorAll("tbody tr")].some((tr) =>
                        tr.textContent.includes("chromium-slowest")
                        && tr.textContent.includes("/sleep/300"));
            })()"#,
            Duration::from_secs(10),
        )
        .await;

    // An injected fault is a named band across every chart, and stays drawn after it ends.
    let started = app
        .client
        .put(app.url("/faults/chromium-drill"))
        .json(&serde_json::json!({"kind": "error", "route": "/fibonacci/{n}/", "rate": 0.5, "status": 503}))
        .send()
        .await
        .unwrap();
    assert_eq!(started.status(), 201);
    browser
        .wait_for(
            "no alert before the fault",
            r#"document.getElementById("alerts-source").dataset.source === "in-process"
               && document.getElementById("alerts-list").textContent === "none pending or firing""#,
            Duration::from_secs(10),
        )
        .await;
    // Half the Fibonacci answers are 503s: the demo burn-rate rule, evaluated in glassbox
    // when no Prometheus is given, goes pending at once and fires after 10 s.
    let alert = |state: &str| {
        format!(
            r#"document.querySelector('#alerts-list .alert[data-alert="GlassboxAvailabilityBudgetBurningDemo"][data-state="{state}"]') !== null"#
        )
    };
    // The fault's seed is random: send until a 503 has been answered (one is enough for the
    // rule; 40 requests all spared would be a 2^-40 chance).
    let mut i = 0;
    let mut refused = 0;
    while i < 6 || (refused == 0 && i < 40) {
        if get_with_id(&app, "/fibonacci/30/", &format!("during-fault-{i}")).await == 503 {
            refused += 1;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        i += 1;
    }
    assert!(refused > 0, "none of {i} requests met the 0.5-rate fault");
    browser
        .wait_for(
            "the alert pending",
            &alert("pending"),
            Duration::from_secs(10),
        )
        .await;
    let started_at = std::time::Instant::now();
    while started_at.elapsed() < Duration::from_secs(13) {
        get_with_id(&app, "/fibonacci/30/", &format!("during-fault-{i}")).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        i += 1;
    }
    browser
        .wait_for(
            "the alert firing",
            &alert("firing"),
            Duration::from_secs(10),
        )
        .await;
    let band = r##"(() => {
        const charts = ["chart-rate", "chart-latency", "chart-errors"];
        return charts.every((id) =>
            document.querySelector(`#${id} rect.fault[data-fault="chromium-drill"]`) !== null)
          && [...document.querySelectorAll("#chart-rate text.fault-label")]
               .some((t) => t.textContent === "chromium-drill");
    })()"##;
    browser
        .wait_for(
            "the fault's band on the charts",
            band,
            Duration::from_secs(30),
        )
        .await;
    let ended = app
        .client
        .delete(app.url("/faults/chromium-drill"))
        .send()
        .await
        .unwrap();
    assert_eq!(ended.status(), 204);
    tokio::time::sleep(Duration::from_secs(2)).await;
    browser
        .wait_for("the ended fault's band", band, Duration::from_secs(10))
        .await;
    // An upload refused for want of body memory (after the alert checks: it is a 5xx): the
    // in-flight chart draws the refusal.
    let refused = app
        .client
        .post(app.url("/sum-evens"))
        .header("content-type", "text/plain")
        .body("2 4 6")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 503);
    browser
        .wait_for(
            "a refusal on the in-flight chart",
            r#"document.querySelector('#chart-inflight path[data-route="refused/s"]') !== null
               && state.points.some((p) => p.refused === 1)"#,
            Duration::from_secs(30),
        )
        .await;
    // A message stored holds its bytes of the disk for good: the disk chart draws them.
    let stored = app
        .client
        .post(app.url("/messages"))
        .json(&serde_json::json!({ "message": "held on the disk" }))
        .send()
        .await
        .unwrap();
    assert_eq!(stored.status(), 201);
    browser
        .wait_for(
            "the disk chart's room and what is held",
            r#"document.querySelector('#chart-disk path[data-route="room"]') !== null
               && document.querySelector('#chart-disk path[data-route="held"]') !== null
               && state.points.some((p) => p.disk_held_bytes === 16 && p.disk_room_bytes > 0)"#,
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

/// With `--dashboard-prometheus`, the alert strip shows that Prometheus' alerts, read by the
/// page itself (Prometheus allows any origin; the page's CSP allows that one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_alert_strip_shows_the_alerts_of_the_prometheus_it_is_told_about() {
    testkit::need(
        "prometheus",
        ".ci/run installs it (apt-get install prometheus)",
    );
    let port = testkit::free_port();
    let origin = format!("http://127.0.0.1:{port}");
    let app = Process::spawn(&["--dashboard-prometheus", &origin]).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("rules.yml"),
        "groups:\n  - name: t\n    rules:\n      - alert: AlwaysFiringForTheTest\n        expr: vector(1)\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("prometheus.yml"),
        "global:\n  evaluation_interval: 1s\nrule_files:\n  - rules.yml\n",
    )
    .unwrap();
    let _prometheus = testkit::servers::Prometheus::start_on(
        &dir.path().join("prometheus.yml"),
        dir.path(),
        port,
    );
    let ready = format!("{origin}/-/ready");
    testkit::eventually("Prometheus to be ready", || async {
        reqwest::get(&ready).await.is_ok_and(|r| r.status() == 200)
    })
    .await;
    let mut browser = Browser::start(&app.ca).await;
    browser.navigate(&app.url("/dashboard")).await;
    browser
        .wait_for(
            "Prometheus' firing alert in the strip",
            r#"document.getElementById("alerts-source").dataset.source === "prometheus"
               && document.querySelector('#alerts-list .alert[data-alert="AlwaysFiringForTheTest"][data-state="firing"]') !== null"#,
            Duration::from_secs(30),
        )
        .await;
    assert!(
        browser.errors.is_empty(),
        "the page logged errors: {:#?}",
        browser.errors
    );
}
