//! The Prometheus, Grafana, Loki and Alloy files in `dashboards/`, checked with what this
//! machine can run: promtool, a real Prometheus scraping a real glassbox and the load
//! generator, and glassbox's real log lines. Grafana, Loki and Alloy themselves run only in
//! the compose stack.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use testkit::servers::Prometheus;
use testkit::{InProcess, eventually, free_port, need, repo};

fn dashboards_dir() -> PathBuf {
    repo().join("dashboards")
}

fn program(name: &str) -> PathBuf {
    need(name, ".ci/run installs it (apt-get install prometheus)")
}

fn run(program_path: &Path, args: &[&str]) -> String {
    let out = Command::new(program_path)
        .args(args)
        .output()
        .expect("the program runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "{} {args:?} failed:\n{text}",
        program_path.display()
    );
    text
}

/// Every dashboard, by file name.
fn dashboards() -> BTreeMap<String, Value> {
    let dir = dashboards_dir().join("grafana/dashboards");
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            let text = std::fs::read_to_string(&path).unwrap();
            let board: Value = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{} does not parse: {e}", path.display()));
            out.insert(
                path.file_name().unwrap().to_string_lossy().into_owned(),
                board,
            );
        }
    }
    assert_eq!(
        out.len(),
        4,
        "overview, loadtest, store-queue, logs: {:?}",
        out.keys()
    );
    out
}

fn panels(board: &Value) -> Vec<&Value> {
    board["panels"].as_array().unwrap().iter().collect()
}

/// (datasource uid, query) of every panel target, template variable and annotation.
fn queries(board: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for panel in panels(board) {
        for target in panel["targets"].as_array().unwrap() {
            let uid = target["datasource"]["uid"].as_str().unwrap().to_owned();
            out.push((uid, target["expr"].as_str().unwrap().to_owned()));
        }
    }
    for variable in board["templating"]["list"].as_array().unwrap() {
        let uid = variable["datasource"]["uid"].as_str().unwrap().to_owned();
        out.push((uid, variable["query"]["query"].as_str().unwrap().to_owned()));
    }
    for annotation in board["annotations"]["list"].as_array().unwrap() {
        let uid = annotation["datasource"]["uid"].as_str().unwrap().to_owned();
        out.push((uid, annotation["expr"].as_str().unwrap().to_owned()));
    }
    out
}

/// A dashboard query as Prometheus takes it: variables at their "All" value, the rate
/// interval a minute, and `label_values(series, label)` as the series it reads.
fn concrete(query: &str) -> String {
    let query = query
        .replace("$__rate_interval", "1m")
        .replace("$instance", ".*")
        .replace("$route", ".*")
        .replace("$kind", ".*");
    match query.strip_prefix("label_values(") {
        Some(rest) => rest[..rest.rfind(',').expect("label_values(series, label)")].to_owned(),
        None => query,
    }
}

/// The `expr` of every recording rule in the rules files.
fn recording_rules() -> Vec<(String, String)> {
    let text = ["glassbox.rules.yml", "demo.rules.yml"]
        .map(|file| {
            std::fs::read_to_string(dashboards_dir().join("prometheus/rules").join(file)).unwrap()
        })
        .join("\n");
    let mut out = Vec::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let Some(name) = line.trim().strip_prefix("- record: ") else {
            continue;
        };
        let expr_line = lines.next().expect("an expr after record");
        let expr = expr_line
            .trim()
            .strip_prefix("expr: ")
            .expect("expr follows record");
        let expr = if expr == "|" {
            let mut block = Vec::new();
            while let Some(next) = lines.peek() {
                if next.trim().is_empty() || next.trim_start().starts_with("- ") {
                    break;
                }
                block.push(lines.next().unwrap().trim().to_owned());
            }
            block.join(" ")
        } else {
            expr.to_owned()
        };
        out.push((name.to_owned(), expr));
    }
    assert!(out.len() >= 20, "{} recording rules found", out.len());
    out
}

#[test]
fn promtool_checks_the_rules_and_their_unit_tests() {
    let promtool = program("promtool");
    let rules = dashboards_dir().join("prometheus/rules");
    for (file, tests) in [
        ("glassbox.rules.yml", "tests.yml"),
        ("demo.rules.yml", "demo.tests.yml"),
    ] {
        run(
            &promtool,
            &["check", "rules", rules.join(file).to_str().unwrap()],
        );
        let out = run(
            &promtool,
            &["test", "rules", rules.join(tests).to_str().unwrap()],
        );
        assert!(out.contains("SUCCESS"), "{out}");
        every_rule_is_tested(&rules.join(file), &rules.join(tests));
    }
}

/// promtool passes a file that tests nothing: every recording rule's series and every alert
/// of `rules` must be asked for by some case of `tests`.
fn every_rule_is_tested(rules: &Path, tests: &Path) {
    let tests = std::fs::read_to_string(tests).unwrap();
    let bundled = std::fs::read_to_string(rules).unwrap();
    let untested: Vec<&str> = bundled
        .lines()
        .filter_map(|line| {
            let line = line.trim();
            line.strip_prefix("- record: ")
                .or_else(|| line.strip_prefix("- alert: "))
        })
        .filter(|name| {
            !tests.contains(&format!("expr: {name}"))
                && !tests.contains(&format!("({name}"))
                && !tests.contains(&format!("alertname: {name}\n"))
        })
        .collect();
    assert!(
        untested.is_empty(),
        "rules no promtool test asks for: {untested:?}"
    );
}

/// `text` as Grafana's provisioning reads it: `$$` is a literal `$`; `${NAME}` and `$NAME` are
/// environment variables, empty when unset (so a `${__value.raw}` meant for Grafana's own
/// templating is lost unless written `$${__value.raw}`).
fn grafana_expand(text: &str, env: &dyn Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(braced) = after.strip_prefix('{')
            && let Some(end) = braced.find('}')
        {
            out.push_str(&env(&braced[..end]).unwrap_or_default());
            rest = &braced[end + 1..];
        } else {
            let len = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            if len == 0 {
                out.push('$');
            } else {
                out.push_str(&env(&after[..len]).unwrap_or_default());
            }
            rest = &after[len..];
        }
    }
    out.push_str(rest);
    out
}

#[test]
fn grafana_provisioning_keeps_its_template_variables_through_env_expansion() {
    let no_env = |_: &str| None;
    assert_eq!(grafana_expand("a $$b ${C} $D e", &no_env), "a $b   e");
    let dir = dashboards_dir().join("grafana/provisioning");
    let mut files = Vec::new();
    for sub in ["datasources", "dashboards"] {
        for entry in std::fs::read_dir(dir.join(sub)).unwrap() {
            files.push(entry.unwrap().path());
        }
    }
    for file in files {
        let raw = std::fs::read_to_string(&file).unwrap();
        let rendered = grafana_expand(&raw, &no_env);
        // Every `${...}` the file means for Grafana's templating is still there, written
        // `$${...}`; no value holds a `$` Grafana would take for a variable of ours.
        let kept = raw.matches("$${").count();
        assert_eq!(
            rendered.matches("${").count(),
            kept,
            "{}: a ${{...}} was expanded away",
            file.display()
        );
        let values: String = raw
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .collect::<Vec<_>>()
            .join("\n");
        assert_eq!(
            values.matches('$').count(),
            2 * values.matches("$$").count(),
            "{}: an unescaped $ in a value",
            file.display()
        );
    }
    let datasources = grafana_expand(
        &std::fs::read_to_string(dir.join("datasources/datasources.yml")).unwrap(),
        &no_env,
    );
    assert!(
        datasources.contains(r#"request_id="${__value.raw}""#),
        "the derived field's link lost its value: {datasources}"
    );
    // The exemplar link: Explore with a Loki pane whose query finds the exemplar's request.
    let url = datasources
        .lines()
        .find_map(|l| l.trim().strip_prefix("url: '/explore?"))
        .expect("an exemplar link to Explore")
        .trim_end_matches('\'');
    let panes = url
        .split('&')
        .find_map(|p| p.strip_prefix("panes="))
        .expect("a panes parameter");
    assert!(panes.contains("${__value.raw}"), "{panes}");
    let panes: Value =
        serde_json::from_str(&percent_decode(&panes.replace("${__value.raw}", "abc123"))).unwrap();
    let pane = &panes["req"];
    assert_eq!(pane["datasource"], "glassbox-loki");
    assert_eq!(
        pane["queries"][0]["expr"],
        r#"{service="glassbox"} | request_id="abc123""#
    );
}

/// `%XX` escapes decoded (the exemplar link's Explore pane).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
            out.push(u8::from_str_radix(hex, 16).unwrap());
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

#[test]
fn dashboards_parse_with_unique_uids_known_datasources_units_and_sources() {
    let provisioned = std::fs::read_to_string(
        dashboards_dir().join("grafana/provisioning/datasources/datasources.yml"),
    )
    .unwrap();
    let uids: BTreeSet<&str> = provisioned
        .lines()
        .filter_map(|l| l.trim().strip_prefix("uid: "))
        .collect();
    assert_eq!(
        uids,
        BTreeSet::from(["glassbox-loki", "glassbox-prometheus"])
    );
    let mut board_uids = BTreeSet::new();
    for (file, board) in dashboards() {
        assert!(
            board_uids.insert(board["uid"].as_str().unwrap().to_owned()),
            "{file}: uid reused"
        );
        let mut panel_ids = BTreeSet::new();
        for panel in panels(&board) {
            let title = panel["title"].as_str().unwrap();
            assert!(
                panel_ids.insert(panel["id"].as_u64().unwrap()),
                "{file}: {title}: id reused"
            );
            assert!(
                uids.contains(panel["datasource"]["uid"].as_str().unwrap()),
                "{file}: {title}: unknown datasource"
            );
            assert!(
                panel["description"].as_str().is_some_and(|d| d.len() > 20),
                "{file}: {title}: says nowhere where its numbers come from"
            );
            if panel["type"] != "logs" {
                assert!(
                    panel["fieldConfig"]["defaults"]["unit"].as_str().is_some(),
                    "{file}: {title}: no unit"
                );
            }
        }
        for (uid, query) in queries(&board) {
            assert!(
                uids.contains(uid.as_str()),
                "{file}: {query}: unknown datasource {uid}"
            );
        }
    }
}

/// A Prometheus with the bundled configuration and rules, rendered for this test's targets and
/// a one-second scrape and evaluation interval (every rule group's included).
fn bundled_prometheus(glassbox: &str, ca: &Path, loadgen: &str, dir: &Path) -> Prometheus {
    let bundled =
        std::fs::read_to_string(dashboards_dir().join("prometheus/prometheus.yml")).unwrap();
    // The rule groups' own intervals (30 s, 1 min) become a second, like the global one.
    let bundled_rules =
        std::fs::read_to_string(dashboards_dir().join("prometheus/rules/glassbox.rules.yml"))
            .unwrap();
    let fast_rules = bundled_rules
        .replace("    interval: 30s\n", "    interval: 1s\n")
        .replace("    interval: 1m\n", "    interval: 1s\n");
    assert!(
        fast_rules
            .lines()
            .filter(|line| line.trim_start().starts_with("interval:"))
            .all(|line| line.trim() == "interval: 1s"),
        "a rule group interval this test does not shorten"
    );
    let rules = dir.join("glassbox.rules.yml");
    std::fs::write(&rules, &fast_rules).unwrap();
    let demo_rules = dashboards_dir().join("prometheus/rules/demo.rules.yml");
    let config = bundled
        .replace("scrape_interval: 5s", "scrape_interval: 1s")
        .replace("rules/demo.rules.yml", demo_rules.to_str().unwrap())
        .replace("evaluation_interval: 5s", "evaluation_interval: 1s")
        .replace("../../certs/ca.crt", ca.to_str().unwrap())
        .replace("rules/glassbox.rules.yml", rules.to_str().unwrap())
        .replace("localhost:8443", glassbox)
        .replace("localhost:9899", loadgen);
    assert_ne!(config, bundled);
    let path = dir.join("prometheus.yml");
    std::fs::write(&path, config).unwrap();
    run(
        &program("promtool"),
        &["check", "config", path.to_str().unwrap()],
    );
    Prometheus::start(&path, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dashboard_and_recording_rule_query_returns_data_from_a_real_prometheus() {
    let glassbox = InProcess::start(&[
        "--work-sleep-max",
        "200ms",
        "--total-latency",
        "50ms",
        "--allow-faults",
        // One address may hold 32 permits: far more than the loadgen's, few enough to fill.
        "--max-concurrency",
        "64",
    ])
    .await;
    // An active fault that affects nothing (rate 0), so the fault annotations have a series.
    let fault = glassbox
        .client
        .put(glassbox.url("/faults/harmless"))
        .json(&serde_json::json!({"kind": "latency", "route": "/", "rate": 0, "latency_ms": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(fault.status(), 201);
    let loadgen_port = free_port();
    let prometheus_dir = tempfile::tempdir().unwrap();
    let prometheus = bundled_prometheus(
        &format!("localhost:{}", glassbox.addr.port()),
        &glassbox.ca,
        &format!("localhost:{loadgen_port}"),
        prometheus_dir.path(),
    );
    let mut loadgen = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args([
            "--host",
            &glassbox.url(""),
            "--ca-cert",
            glassbox.ca.to_str().unwrap(),
        ])
        // The open model: it fills every client series the closed one does (loadgen_users is
        // there, at 0) and the corrected latency and the schedule's counters besides.
        .args(["--rate", "40", "--run-time", "90s"])
        .args(["--metrics-bind", &format!("127.0.0.1:{loadgen_port}")])
        .args(["--no-print-metrics", "--no-progress", "--quiet"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();

    // What the mix does not always do in a short run: a server error the caller asked for, and
    // a TLS handshake that fails (a client speaking plain HTTP).
    let client = reqwest::Client::new();
    let trusting = reqwest::Client::builder()
        .tls_certs_only([
            reqwest::Certificate::from_pem(&std::fs::read(&glassbox.ca).unwrap()).unwrap(),
        ])
        .build()
        .unwrap();
    for _ in 0..3 {
        let status = trusting
            .get(format!("{}/code/503", glassbox.url("")))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 503);
        let mut plain = std::net::TcpStream::connect(glassbox.addr).unwrap();
        std::io::Write::write_all(&mut plain, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let _ = plain.read(&mut [0u8; 64]);
    }

    // Another address over its --client-share of the permits, for the overloads by bound.
    let hog = testkit::client::client_from(&glassbox.ca, "127.0.0.2".parse().unwrap());
    let sleepers: Vec<_> = (0..32)
        .map(|_| tokio::spawn(hog.get(glassbox.url("/sleep/3000")).send()))
        .collect();
    // Asked until the first 503, so exactly one request is refused.
    eventually("the other address to be over its share", || async {
        hog.get(glassbox.url("/")).send().await.unwrap().status() == 503
    })
    .await;
    for sleeper in sleepers {
        assert_eq!(sleeper.await.unwrap().unwrap().status(), 200);
    }

    // Wait until both targets have been scraped for a while and the rules have run.
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let ready = async {
            let up = prometheus.query(&client, "sum(up)").await.ok()?;
            let rate = prometheus
                .query(&client, "sum(loadgen_target_rate)")
                .await
                .ok()?;
            let rule = prometheus
                .query(
                    &client,
                    "count(http_route_method:http_server_request_duration_seconds:p99_1m)",
                )
                .await
                .ok()?;
            let tasks = prometheus
                .query(&client, "count(glassbox_task_lead_seconds_count)")
                .await
                .ok()?;
            let budget = prometheus
                .query(
                    &client,
                    "count(glassbox:slo_availability_error_budget_remaining:ratio30d)",
                )
                .await
                .ok()?;
            let value = |v: &[Value]| {
                v.first()
                    .and_then(|s| s["value"][1].as_str()?.parse::<f64>().ok())
            };
            Some(
                value(&up) == Some(2.0)
                    && value(&rate) == Some(40.0)
                    && value(&rule).is_some_and(|n| n >= 10.0)
                    && value(&tasks).is_some_and(|n| n >= 2.0)
                    && value(&budget) == Some(1.0),
            )
        }
        .await;
        if ready == Some(true) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus never saw both targets, the rules and tasks"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // A few more seconds of samples, so rates over a minute have several points.
    tokio::time::sleep(Duration::from_secs(5)).await;

    let mut checked = 0;
    let mut failures = Vec::new();
    let mut all: Vec<(String, String)> = Vec::new();
    for (file, board) in dashboards() {
        for (uid, query) in queries(&board) {
            if uid == "glassbox-prometheus" {
                all.push((format!("{file}: {query}"), concrete(&query)));
            }
        }
    }
    for (name, expr) in recording_rules() {
        all.push((format!("rule {name}"), expr));
    }
    for (what, expr) in &all {
        match prometheus.query(&client, expr).await {
            Ok(result) if result.is_empty() => failures.push(format!("{what}\n    empty: {expr}")),
            Ok(_) => checked += 1,
            Err(error) => failures.push(format!("{what}\n    {error}: {expr}")),
        }
    }

    // The overloads panel's bound is the one that refused, as often as it did.
    let refused = prometheus
        .query(
            &client,
            r#"sum by (bound) (glassbox_overloads_total{bound="client_permits"})"#,
        )
        .await
        .unwrap();
    assert_eq!(
        refused
            .first()
            .map(|s| s["value"][1].as_str().unwrap().to_owned()),
        Some("1".to_owned()),
        "{refused:?}"
    );

    // Prometheus scraped glassbox in OpenMetrics and kept its exemplars: each is a request id
    // on a request-duration bucket, with a latency inside that bucket.
    let exemplars = prometheus
        .query_exemplars(&client, "http_server_request_duration_seconds_bucket", 300)
        .await
        .expect("query_exemplars answers");
    let mut seen = 0;
    for series in &exemplars {
        let labels = &series["seriesLabels"];
        assert!(labels["http_route"].is_string(), "{series:#}");
        let le: f64 = match labels["le"].as_str().unwrap() {
            "+Inf" => f64::INFINITY,
            le => le.parse().unwrap(),
        };
        for exemplar in series["exemplars"].as_array().unwrap() {
            let id = exemplar["labels"]["request_id"]
                .as_str()
                .unwrap_or_default();
            assert!(
                id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()),
                "a glassbox request id: {exemplar:#}"
            );
            let value: f64 = exemplar["value"].as_str().unwrap().parse().unwrap();
            assert!(value <= le, "{value} is inside le={le}: {series:#}");
            seen += 1;
        }
    }
    assert!(
        seen >= 10,
        "Prometheus kept only {seen} exemplars: {exemplars:#?}"
    );

    let _ = loadgen.kill();
    let _ = loadgen.wait();
    assert!(
        failures.is_empty(),
        "{} of {} queries failed:\n{}",
        failures.len(),
        all.len(),
        failures.join("\n")
    );
    assert!(checked > 60, "only {checked} queries");
}

/// Every alert says what happened (`summary`, `description`) and where to read what to do:
/// a `runbook_url` that is a section of docs/RUNBOOK.md.
#[test]
fn every_alert_has_a_summary_a_description_and_a_runbook_section() {
    let rules = ["glassbox.rules.yml", "demo.rules.yml"]
        .map(|file| {
            std::fs::read_to_string(dashboards_dir().join("prometheus/rules").join(file)).unwrap()
        })
        .join("\n");
    let runbook = std::fs::read_to_string(dashboards_dir().join("../docs/RUNBOOK.md")).unwrap();
    let anchors: Vec<String> = runbook
        .lines()
        .filter_map(|l| l.strip_prefix("## "))
        .map(|heading| heading.trim().to_lowercase())
        .collect();
    // Each alert's text: from its `- alert:` line to the next rule.
    let mut alerts = Vec::new();
    for block in rules.split("      - ").skip(1) {
        if let Some(rest) = block.strip_prefix("alert: ") {
            let name = rest.lines().next().unwrap().trim().to_owned();
            alerts.push((name, block.to_owned()));
        }
    }
    assert!(alerts.len() >= 12, "{} alerts", alerts.len());
    for (name, block) in &alerts {
        for field in ["summary: ", "description: "] {
            assert!(block.contains(field), "{name} has no {field}");
        }
        let url = block
            .lines()
            .find_map(|l| l.trim().strip_prefix("runbook_url: "))
            .unwrap_or_else(|| panic!("{name} has no runbook_url"));
        let anchor = url
            .strip_prefix("docs/RUNBOOK.md#")
            .unwrap_or_else(|| panic!("{name}: {url}"));
        assert_eq!(anchor, name.to_lowercase(), "{name}'s section");
        assert!(
            anchors.iter().any(|a| a == anchor),
            "docs/RUNBOOK.md has no ## {name}"
        );
    }
}
