//! `just incident` against a real Prometheus (Debian's, started here on a free port with the
//! bundled configuration and rules, scraping every second): the demo burn-rate alert is
//! pending, then firing during the store fault, and resolved after it, and the timeline the
//! incident prints has every view's events in the right order.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use testkit::servers::Prometheus;
use testkit::{InProcess, eventually, free_port, need};

fn dashboards_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../dashboards"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_incident_fires_the_burn_rate_alert_during_the_fault_and_resolves_it_after() {
    need(
        "prometheus",
        ".ci/run installs it (apt-get install prometheus)",
    );
    let glassbox = InProcess::start(&["--allow-faults"]).await;
    let dir = tempfile::tempdir().unwrap();
    let bundled =
        std::fs::read_to_string(dashboards_dir().join("prometheus/prometheus.yml")).unwrap();
    let rules = dashboards_dir().join("prometheus/rules");
    let config = bundled
        .replace("scrape_interval: 5s", "scrape_interval: 1s")
        .replace("evaluation_interval: 5s", "evaluation_interval: 1s")
        .replace("../../certs/ca.crt", glassbox.ca.to_str().unwrap())
        .replace("rules/", &format!("{}/", rules.display()))
        .replace(
            "localhost:8443",
            &format!("localhost:{}", glassbox.addr.port()),
        )
        .replace("localhost:9899", &format!("localhost:{}", free_port()));
    let path = dir.path().join("prometheus.yml");
    std::fs::write(&path, config).unwrap();
    let prometheus = Prometheus::start(&path, dir.path());
    let client = reqwest::Client::new();
    eventually("Prometheus to scrape glassbox", || async {
        prometheus
            .query(&client, "up{job=\"glassbox\"} == 1")
            .await
            .is_ok_and(|r| !r.is_empty())
    })
    .await;

    let report = dir.path().join("incident.json");
    let run = {
        let (host, ca, url, report) = (
            glassbox.url(""),
            glassbox.ca.clone(),
            prometheus.url.clone(),
            report.clone(),
        );
        tokio::task::spawn_blocking(move || {
            Command::new(env!("CARGO_BIN_EXE_incident"))
                .args(["--host", &host, "--prometheus", &url])
                .arg("--ca-cert")
                .arg(&ca)
                .args(["--steady", "5s", "--fault", "25s", "--recovery", "60s"])
                .arg("--report")
                .arg(&report)
                .output()
                .unwrap()
        })
    };
    let output = tokio::time::timeout(Duration::from_secs(150), run)
        .await
        .expect("the incident ends by itself")
        .unwrap();
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{printed}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let timeline: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(timeline["alert_source"], "prometheus");
    let events = timeline["events"].as_array().unwrap();
    let at = |kind: &str, needle: &str| -> u64 {
        events
            .iter()
            .find(|e| e["kind"] == kind && e["what"].as_str().unwrap().contains(needle))
            .and_then(|e| e["at_ms"].as_u64())
            .unwrap_or_else(|| panic!("no {kind} {needle}:\n{printed}"))
    };
    let demo = "GlassboxAvailabilityBudgetBurningDemo";
    let start = at("fault_started", "incident-store");
    let first_5xx = at("client_first5xx", "POST /messages");
    let server = at("server_first5xx", "");
    let pending = at("alert_pending", demo);
    let firing = at("alert_firing", demo);
    let end = at("fault_ended", "incident-store");
    let recovered = at("client_recovered", "");
    let resolved = at("alert_resolved", demo);
    assert!(start <= first_5xx && start <= server, "{printed}");
    assert!(
        start <= pending && pending < firing && firing < end,
        "{printed}"
    );
    assert!(end <= recovered && end < resolved, "{printed}");
    // The fault lasted what it was told, by glassbox's own clock.
    assert!((end - start).abs_diff(25_000) < 1_000, "{printed}");

    // Prometheus agrees: the alert is gone, and its rule saw the 5xx.
    let alerts: Value = client
        .get(format!("{}/api/v1/alerts", prometheus.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        !alerts["data"]["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["labels"]["alertname"] == demo),
        "{alerts}"
    );
    let peak = prometheus
        .query(
            &client,
            "max_over_time(glassbox:slo_availability_errors:ratio_rate15s[5m])",
        )
        .await
        .unwrap();
    let peak: f64 = peak[0]["value"][1].as_str().unwrap().parse().unwrap();
    assert!(peak > 0.0144, "the short window's worst 5xx ratio {peak}");
    let s = |ms: u64| format!("{:+.1} s", (ms as f64 - start as f64) / 1000.0);
    testkit::drill(
        "incident: store fault for 25 s under steady load, real Prometheus",
        "burn-rate alert pending, then firing during the fault, resolved after; recovery after the end",
        &format!(
            "pending {}, firing {}, fault end {}, recovered {}, resolved {}",
            s(pending),
            s(firing),
            s(end),
            s(recovered),
            s(resolved)
        ),
    );
}
