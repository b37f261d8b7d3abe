//! The Logs dashboard's LogQL and the Alloy pipeline against glassbox's real log lines: every
//! field a query filters or groups by is one the lines have, every stream label is one Alloy
//! sets, and every value a query matches is one the lines carry.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde_json::Value;

use testkit::{Process, eventually, repo};

fn dashboards() -> PathBuf {
    repo().join("dashboards")
}

/// Skips a double-quoted string starting at `i`; returns the index after it.
fn skip_string(bytes: &[u8], mut i: usize) -> usize {
    i += 1;
    while i < bytes.len() && bytes[i] != b'"' {
        i += if bytes[i] == b'\\' { 2 } else { 1 };
    }
    i + 1
}

/// Each `name op value` comparison in a LogQL query, with whether it is in a stream selector
/// (`{...}`) and whether a `| json` came before it; plus the names in `by (...)`.
#[derive(Debug)]
struct Comparison {
    name: String,
    value: String,
    in_selector: bool,
    after_json: bool,
}

fn comparisons(query: &str) -> (Vec<Comparison>, Vec<String>) {
    let bytes = query.as_bytes();
    let (mut out, mut grouped) = (Vec::new(), Vec::new());
    let (mut depth, mut after_json, mut i) = (0, false, 0);
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                i = skip_string(bytes, i);
                continue;
            }
            b'{' => depth += 1,
            b'}' => depth -= 1,
            b'|' if query[i + 1..].trim_start().starts_with("json") => after_json = true,
            b'=' | b'!' | b'>' | b'<' => {
                let op_len = if query[i..].starts_with("=~")
                    || query[i..].starts_with("!~")
                    || query[i..].starts_with("!=")
                    || query[i..].starts_with(">=")
                    || query[i..].starts_with("<=")
                {
                    2
                } else {
                    1
                };
                let name: String = query[..i]
                    .trim_end()
                    .chars()
                    .rev()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect();
                let rest = query[i + op_len..].trim_start();
                let value = if rest.starts_with('"') {
                    let end = skip_string(rest.as_bytes(), 0);
                    rest[1..end - 1].to_owned()
                } else {
                    rest.split(|c: char| c.is_whitespace() || c == '}' || c == '|')
                        .next()
                        .unwrap_or_default()
                        .to_owned()
                };
                out.push(Comparison {
                    name,
                    value,
                    in_selector: depth > 0,
                    after_json,
                });
                i += op_len;
                continue;
            }
            _ => {}
        }
        if query[i..].starts_with("by (") {
            let end = query[i..].find(')').unwrap() + i;
            grouped.extend(query[i + 4..end].split(',').map(|s| s.trim().to_owned()));
        }
        i += 1;
    }
    (out, grouped)
}

/// The names in an Alloy block `stage.NAME { values = { a = "", b = "" } }`.
fn alloy_stage_names(config: &str, stage: &str) -> BTreeSet<String> {
    let start = config
        .find(&format!("stage.{stage} {{"))
        .unwrap_or_else(|| panic!("no stage.{stage}"));
    let block = &config[start..start + config[start..].find("\n  }").unwrap()];
    let inner = &block[block.find("= {").unwrap() + 3..];
    inner
        .split([',', '\n'])
        .filter_map(|part| part.split_once('=').map(|(k, _)| k.trim().to_owned()))
        .filter(|k| !k.is_empty() && !k.contains('}'))
        .collect()
}

#[test]
fn the_comparison_parser_reads_logql() {
    let (found, grouped) = comparisons(
        r#"sum by (status) (count_over_time({service="glassbox", level=~"E.*"} | json | latency_ms > 250 [5m]))"#,
    );
    let names: Vec<(&str, &str, bool, bool)> = found
        .iter()
        .map(|c| {
            (
                c.name.as_str(),
                c.value.as_str(),
                c.in_selector,
                c.after_json,
            )
        })
        .collect();
    assert_eq!(
        names,
        [
            ("service", "glassbox", true, false),
            ("level", "E.*", true, false),
            ("latency_ms", "250", false, true)
        ]
    );
    assert_eq!(grouped, ["status"]);
}

#[tokio::test]
async fn logql_fields_and_alloy_labels_exist_in_real_log_lines() {
    let mut app = Process::spawn(&[]).await;
    // Lines of every kind the dashboard shows: fast, slow, 4xx, 5xx, a task.
    app.get("/").await;
    app.get("/sleep/300").await;
    app.get("/code/503").await;
    app.get("/nope").await;
    let png = {
        let mut out = Vec::new();
        let mut encoder = png::Encoder::new(&mut out, 120, 120);
        encoder.set_color(png::ColorType::Grayscale);
        encoder
            .write_header()
            .unwrap()
            .write_image_data(&[7u8; 120 * 120])
            .unwrap();
        out
    };
    let response = app
        .client
        .post(app.url("/randomize"))
        .header("content-type", "image/png")
        .body(png)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    eventually("a task finished line", || async {
        app.stdout_lines()
            .iter()
            .any(|l| l.contains("task finished"))
    })
    .await;
    let lines = app.stop_and_read_logs();

    let mut keys: BTreeSet<String> = BTreeSet::new();
    let mut values: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in &lines {
        for (key, value) in line.as_object().unwrap() {
            keys.insert(key.clone());
            let text = match value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            values.entry(key.clone()).or_default().insert(text);
        }
    }

    let alloy = std::fs::read_to_string(dashboards().join("alloy/config.alloy")).unwrap();
    let static_labels = alloy_stage_names(&alloy, "static_labels");
    let labels: BTreeSet<String> = static_labels
        .union(&alloy_stage_names(&alloy, "labels"))
        .cloned()
        .collect();
    let metadata = alloy_stage_names(&alloy, "structured_metadata");
    let extracted = alloy_stage_names(&alloy, "json");
    assert_eq!(static_labels, BTreeSet::from(["service".to_owned()]));
    assert_eq!(
        labels,
        BTreeSet::from(["level".to_owned(), "service".to_owned()])
    );
    for field in extracted
        .iter()
        .chain(&metadata)
        .chain(labels.iter().filter(|l| *l != "service"))
    {
        assert!(
            keys.contains(field),
            "Alloy reads `{field}`, which no log line has: {keys:?}"
        );
    }

    let board: Value = serde_json::from_str(
        &std::fs::read_to_string(dashboards().join("grafana/dashboards/logs.json")).unwrap(),
    )
    .unwrap();
    let mut checked = 0;
    for panel in board["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let query = target["expr"].as_str().unwrap();
            let (found, grouped) = comparisons(query);
            assert!(!found.is_empty(), "{query}: no stream selector");
            for c in &found {
                checked += 1;
                if c.in_selector {
                    assert!(
                        labels.contains(&c.name),
                        "{query}: `{}` is not a label Alloy sets",
                        c.name
                    );
                } else if !c.after_json {
                    assert!(
                        labels.contains(&c.name) || metadata.contains(&c.name),
                        "{query}: `{}` needs `| json` or structured metadata",
                        c.name
                    );
                }
                if c.name != "service" {
                    assert!(
                        keys.contains(&c.name),
                        "{query}: no log line has `{}`",
                        c.name
                    );
                }
                // A value matched exactly must be one a line carries (the label Alloy takes
                // from the field of the same name).
                let exact = !c.value.is_empty()
                    && c.value
                        .chars()
                        .all(|ch| ch.is_ascii_alphanumeric() || ch == '_');
                if exact && c.name != "service" && !c.value.chars().all(|ch| ch.is_ascii_digit()) {
                    assert!(
                        values.get(&c.name).is_some_and(|v| v.contains(&c.value)),
                        "{query}: no line has {}={}",
                        c.name,
                        c.value
                    );
                }
            }
            for name in grouped {
                assert!(
                    labels.contains(&name) || metadata.contains(&name),
                    "{query}: by ({name}) is neither a label nor metadata"
                );
                assert!(keys.contains(&name), "{query}: no log line has `{name}`");
            }
        }
    }
    assert!(checked >= 6, "{checked} comparisons checked");
    assert!(
        values["latency_ms"]
            .iter()
            .any(|v| v.parse::<f64>().is_ok_and(|ms| ms > 250.0))
    );
}
