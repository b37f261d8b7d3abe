//! schemathesis (property-based API testing, from PyPI) against the served `/openapi.json`:
//! no server error, and every response fits the document.

use std::path::PathBuf;

use testkit::{Process, need};

/// `$SCHEMATHESIS`, else the copy `just test` installs under `target/py`, else `PATH`.
fn schemathesis() -> PathBuf {
    std::env::var_os("SCHEMATHESIS")
        .map(PathBuf::from)
        .unwrap_or_else(|| need("schemathesis", "`just test-tools` installs it"))
}

#[tokio::test]
async fn schemathesis_finds_no_server_error_and_no_schema_violation() {
    // Short sleeps and a small sum so a few hundred generated requests take seconds; the
    // document reflects these limits, so schemathesis generates within them. The store
    // timeout is long: with the other tests writing to the same disk, one commit's `fsync`
    // has taken over the default second in CI, and the 503 that correctly answers a slow
    // store is a server error to schemathesis. This test is about the contract, not the disk.
    let app = Process::spawn(&[
        "--store-timeout",
        "30s",
        "--max-sleep",
        "20ms",
        "--work-sleep-min",
        "0ms",
        "--work-sleep-max",
        "2ms",
        "--work-weights",
        "200:0.9,400:0.1",
        "--total-latency",
        "0ms",
        "--total-count",
        "1000",
    ])
    .await;
    // The whole API, every phase: no server error, every answer fits the document, and the
    // stateful phase follows POST /messages' link to GET /messages/{digest}.
    let report = run(&app, &[]).await;
    let selected = number_after(&report, "Selected:").expect("a summary");
    let tested = number_after(&report, "Tested:").expect("a summary");
    assert_eq!(selected.len(), 2, "{report}");
    assert_eq!(
        selected[0], selected[1],
        "every operation selected:\n{report}"
    );
    assert_eq!(tested[0], selected[1], "every operation tested:\n{report}");
    let (covered, selected) = stateful_links(&report);
    assert!(covered >= 1, "no link followed:\n{report}");
    // The document's five, and any schemathesis infers (from `PUT /faults/{name}` to the
    // other `/faults` operations, which answer 404 here: faults are off).
    assert!(selected >= 5, "{report}");

    // The task operations on their own. schemathesis 4.32 takes the optional `X-Client-Id`
    // header of the task POSTs for a reference to a resource no operation creates, and then
    // starts a scenario from them only when no other operation can start one; alone, they
    // are where every scenario starts, and all four links to status and result are followed
    // with real tokens (hooks.py sends real PNGs to POST /randomize).
    let report = run(
        &app,
        &[
            "--phases",
            "stateful",
            "--include-path-regex",
            "^/(randomize|sum-evens)",
        ],
    )
    .await;
    let (covered, selected) = stateful_links(&report);
    assert_eq!((covered, selected), (4, 4), "{report}");
}

/// Runs schemathesis with the test's settings and hooks against `app`'s document, asserts it
/// passed, and returns its report.
async fn run(app: &Process, extra: &[&str]) -> String {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/schemathesis");
    let seed = std::env::var("SCHEMATHESIS_SEED").unwrap_or_else(|_| "20261122".into());
    let output = tokio::process::Command::new(schemathesis())
        .arg("--config-file")
        .arg(format!("{dir}/schemathesis.toml"))
        .arg("run")
        .arg(app.url("/openapi.json"))
        .arg("--tls-verify")
        .arg(&app.ca)
        .args(["--max-examples", "50", "--seed", &seed, "--no-color"])
        .args(extra)
        .env("SCHEMATHESIS_HOOKS", "hooks")
        .env("PYTHONPATH", dir)
        .output()
        .await
        .expect("schemathesis runs: `just test` installs it, or `pip install schemathesis`");
    let report = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "schemathesis {extra:?} found problems:\n{report}\n{}\nthe service's own 5xx lines:\n{}",
        String::from_utf8_lossy(&output.stderr),
        server_errors(app)
    );
    // The stateful phase ran and passed.
    let stateful = report
        .lines()
        .find(|l| l.contains("Stateful (in"))
        .unwrap_or_else(|| panic!("no stateful phase:\n{report}"));
    assert!(stateful.contains('✅'), "{stateful}\n{report}");
    report
}

/// The access lines of the service's own 5xx answers (not `/code/5xx`, which a client asks
/// for), each with its `error`, one per line.
fn server_errors(app: &Process) -> String {
    app.logs()
        .iter()
        .filter(|l| l["status"].as_u64().is_some_and(|s| s >= 500) && l.get("error").is_some())
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// The `/`-separated fields after `label` on the report's line that starts with it.
fn number_after(report: &str, label: &str) -> Option<Vec<String>> {
    report
        .lines()
        .find_map(|l| l.trim().strip_prefix(label))
        .map(|rest| rest.trim().split('/').map(str::to_owned).collect())
}

/// "API Links: N covered / M selected / T total": (N, M).
fn stateful_links(report: &str) -> (u32, u32) {
    let links = number_after(report, "API Links:").expect("the stateful phase counts links");
    let first = |field: &str, word: &str| -> u32 {
        field
            .trim()
            .strip_suffix(word)
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("{links:?}"))
    };
    (first(&links[0], "covered"), first(&links[1], "selected"))
}
