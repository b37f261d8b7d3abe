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
    // document reflects these limits, so schemathesis generates within them.
    let app = Process::spawn(&[
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
    let config = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/schemathesis/schemathesis.toml"
    );
    let seed = std::env::var("SCHEMATHESIS_SEED").unwrap_or_else(|_| "20261122".into());
    let output = tokio::process::Command::new(schemathesis())
        .arg("--config-file")
        .arg(config)
        .arg("run")
        .arg(app.url("/openapi.json"))
        .arg("--tls-verify")
        .arg(&app.ca)
        .args(["--max-examples", "50", "--seed", &seed, "--no-color"])
        .env("SCHEMATHESIS_HOOKS", "")
        .output()
        .await
        .expect("schemathesis runs: `just test` installs it, or `pip install schemathesis`");
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "schemathesis found problems:\n{report}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let number_after = |label: &str| {
        report
            .lines()
            .find_map(|l| l.trim().strip_prefix(label))
            .map(|rest| {
                rest.trim()
                    .split('/')
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
    };
    let selected = number_after("Selected:").expect("a summary");
    let tested = number_after("Tested:").expect("a summary");
    assert_eq!(selected.len(), 2, "{report}");
    assert_eq!(
        selected[0], selected[1],
        "every operation selected:\n{report}"
    );
    assert_eq!(tested[0], selected[1], "every operation tested:\n{report}");
    // The stateful phase ran, passed, and followed the document's links with real ids.
    let stateful = report
        .lines()
        .find(|l| l.contains("Stateful (in"))
        .unwrap_or_else(|| panic!("no stateful phase:\n{report}"));
    assert!(stateful.contains('✅'), "{stateful}\n{report}");
    let links = number_after("API Links:").expect("the stateful phase counts links");
    let covered: u32 = links[0]
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{links:?}"));
    assert!(covered >= 1, "no link followed:\n{report}");
    assert!(links[1].contains("selected"), "{links:?}");
}
