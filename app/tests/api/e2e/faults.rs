//! An error fault on the real binary: the share it picks is the rate, the same seed picks the
//! same requests, and `/status`, `/metrics`, the fault itself and the log files count the same
//! injected answers.

use serde_json::{Value, json};
use testkit::glassbox::route_in;
use testkit::{Process, eventually};

const ROUTE: &str = "/fibonacci/{n}/";

/// Starts the fault `name` (error 503 at rate 0.3 with `seed` on the Fibonacci route), sends
/// `n` requests eight at a time, ends the fault and returns how many it answered.
async fn run_fault(app: &Process, name: &str, seed: u64, n: usize) -> u64 {
    let response = app
        .client
        .put(app.url(&format!("/faults/{name}")))
        .json(&json!({"kind": "error", "route": ROUTE, "rate": 0.3, "status": 503, "seed": seed}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let mut injected = 0;
    for chunk in (0..n).collect::<Vec<_>>().chunks(8) {
        let paths: Vec<String> = chunk
            .iter()
            .map(|i| format!("/fibonacci/{}/", i % 90))
            .collect();
        let requests = paths.iter().map(|path| app.get(path));
        for response in futures_util::future::join_all(requests).await {
            match response.status().as_u16() {
                503 => {
                    assert_eq!(
                        response.json::<Value>().await.unwrap(),
                        json!({"error": "injected fault"})
                    );
                    injected += 1;
                }
                200 => {}
                other => panic!("unexpected {other}"),
            }
        }
    }
    let faults = app.get_json("/faults").await.1;
    assert_eq!(faults["faults"][0]["seen"], n as u64, "{faults}");
    assert_eq!(faults["faults"][0]["injected"], injected, "{faults}");
    let deleted = app
        .client
        .delete(app.url(&format!("/faults/{name}")))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    injected
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_fault_injects_its_rate_reproducibly_and_every_view_counts_the_same() {
    let app = Process::spawn(&["--allow-faults"]).await;
    let first = run_fault(&app, "flaky", 42, 1000).await;
    // Binomial(1000, 0.3): mean 300, standard deviation 14.5; 99.9 % lies within 3.29 of them.
    assert!((253..=347).contains(&first), "{first} of 1000 at rate 0.3");

    let status = app.status().await;
    let route = route_in(&status, ROUTE);
    assert_eq!(route["status_codes"]["503"], first, "{route}");
    assert_eq!(route["count"], 1000);
    let scrape = app.scrape().await;
    let labels = [("fault", "flaky"), ("kind", "error"), ("route", ROUTE)];
    assert_eq!(
        scrape.get("glassbox_fault_injections_total", &labels),
        Some(first as f64)
    );
    assert_eq!(scrape.get("glassbox_fault_active", &labels), Some(0.0));
    assert_eq!(scrape.answered(ROUTE, "503"), first as f64);
    // The log writer writes in batches: wait for the last line this test looks for too.
    eventually(
        "the log files to hold every injected answer and the fault's end",
        || async {
            let lines = app.logs();
            let logged = lines
                .iter()
                .filter(|l| {
                    l["route"] == ROUTE
                        && l["status"] == 503
                        && l["error"] == "injected fault flaky"
                })
                .count();
            logged as u64 == first && lines.iter().any(|l| l["message"] == "fault ended")
        },
    )
    .await;
    let lines = app.logs();
    let started = lines.iter().find(|l| {
        l["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("fault started"))
    });
    let started = started.expect("a line when the fault started");
    assert_eq!(started["fault"], "flaky");
    assert_eq!(started["seed"], 42);
    assert!(
        started["message"]
            .as_str()
            .unwrap()
            .contains("a restart ends it")
    );
    let ended = lines
        .iter()
        .find(|l| l["message"] == "fault ended")
        .expect("a line when it ended");
    assert_eq!(
        (ended["reason"].clone(), ended["injected"].clone()),
        (json!("deleted"), json!(first))
    );

    // The same seed picks the same requests again; another seed picks others.
    assert_eq!(run_fault(&app, "flaky", 42, 1000).await, first);
    let other = run_fault(&app, "other", 43, 1000).await;
    assert!((253..=347).contains(&other), "{other}");
    testkit::drill(
        "error fault, rate 0.3, seed 42, on /fibonacci/{n}/: 1,000 requests, twice",
        "injected within binomial 99.9 % (253..=347); /status, /metrics, /faults and the log agree; same seed, same count",
        &format!("{first} injected, every view {first}; again {first}; seed 43: {other}"),
    );
}
