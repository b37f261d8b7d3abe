//! The `/faults` API (`--allow-faults`): every refusal with its 400, 404 when it is off or on
//! the wrong listener, and what each kind of fault does to the requests it is about.

use std::time::Duration;

use serde_json::{Value, json};
use testkit::client::answer;
use testkit::glassbox::route_in;
use testkit::{Endpoint, InProcess, eventually};

async fn put(app: &Endpoint, name: &str, body: Value) -> (u16, Value) {
    let response = app
        .client
        .put(app.url(&format!("/faults/{name}")))
        .json(&body)
        .send()
        .await
        .expect("PUT completes");
    let status = response.status().as_u16();
    (status, response.json().await.expect("a JSON body"))
}

async fn delete(app: &Endpoint, name: &str) -> u16 {
    app.client
        .delete(app.url(&format!("/faults/{name}")))
        .send()
        .await
        .expect("DELETE completes")
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_fault_is_refused_with_a_reason() {
    let app = InProcess::start(&["--allow-faults"]).await;
    let cases: &[(Value, &str)] = &[
        (json!({"route": "*", "status": 503}), "missing field `kind`"),
        (
            json!({"kind": "boom", "route": "*"}),
            "unknown variant `boom`",
        ),
        (
            json!({"kind": "error", "route": "*", "status": 503, "rate": 1.5}),
            "rate must be between 0 and 1",
        ),
        (
            json!({"kind": "error", "route": "*", "status": 503, "rate": -0.1}),
            "rate must be between 0 and 1",
        ),
        (
            json!({"kind": "error", "route": "*", "status": 404}),
            "status must be 500 to 599",
        ),
        (
            json!({"kind": "error", "route": "*", "status": 600}),
            "status must be 500 to 599",
        ),
        (
            json!({"kind": "error", "route": "*"}),
            "an error fault needs status",
        ),
        (
            json!({"kind": "error", "status": 503}),
            "an error fault needs route",
        ),
        (
            json!({"kind": "error", "route": "/nowhere", "status": 503}),
            "unknown route template \"/nowhere\"",
        ),
        (
            json!({"kind": "error", "route": "/fibonacci/12/", "status": 503}),
            "unknown route template",
        ),
        (
            json!({"kind": "error", "route": "/health", "status": 503}),
            "the service's own route",
        ),
        (
            json!({"kind": "error", "route": "*", "status": 503, "latency_ms": 5}),
            "latency_ms does not apply to an error fault",
        ),
        (
            json!({"kind": "latency", "route": "*"}),
            "a latency fault needs latency_ms",
        ),
        (
            json!({"kind": "latency", "route": "*", "latency_ms": 0}),
            "latency_ms must be 1 to 60000",
        ),
        (
            json!({"kind": "latency", "route": "*", "latency_ms": 60001}),
            "latency_ms must be 1 to 60000",
        ),
        (
            json!({"kind": "latency", "route": "*", "latency_ms": 5, "status": 500}),
            "status does not apply",
        ),
        (
            json!({"kind": "store", "route": "/messages"}),
            "route must be * or left out",
        ),
        (
            json!({"kind": "store", "status": 500}),
            "status does not apply",
        ),
        (json!({"kind": "queue", "rate": 0.5}), "rate does not apply"),
        (
            json!({"kind": "queue", "latency_ms": 5}),
            "latency_ms does not apply",
        ),
        (
            json!({"kind": "store", "duration_s": 0}),
            "duration_s must be 1 to 86400",
        ),
        (
            json!({"kind": "store", "duration_s": 86401}),
            "duration_s must be 1 to 86400",
        ),
        (json!({"kind": "store", "seed": -1}), "invalid fault"),
        (json!({"kind": "store", "rate": "half"}), "invalid fault"),
        (json!({"kind": "store", "typo": 1}), "unknown field `typo`"),
        (json!(["store"]), "invalid fault"),
    ];
    for (body, reason) in cases {
        let (status, answer) = put(&app, "bad", body.clone()).await;
        assert_eq!(status, 400, "{body} -> {answer}");
        let error = answer["error"].as_str().unwrap_or_default();
        assert!(
            error.contains(reason),
            "{body}: {error:?} should say {reason:?}"
        );
    }
    for name in ["has space", "slash%2Fx", &"x".repeat(65)] {
        let (status, answer) = put(&app, name, json!({"kind": "queue"})).await;
        assert_eq!(status, 400, "{name}: {answer}");
        assert!(answer["error"].as_str().unwrap().contains("fault name"));
    }
    let not_json = app
        .client
        .put(app.url("/faults/x"))
        .body("{\"kind\":\"queue\"}")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), 415);
    let (status, body) = app.get_json("/faults").await;
    assert_eq!(
        (status, body),
        (200, json!({"faults": []})),
        "nothing was started"
    );
    let gone = app
        .client
        .delete(app.url("/faults/never"))
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 404);
    assert_eq!(
        gone.json::<Value>().await.unwrap(),
        json!({"error": "unknown fault"})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_are_not_found_without_allow_faults_or_on_the_public_listener() {
    let off = InProcess::start(&[]).await;
    assert_eq!(
        off.get_json("/faults").await,
        (404, json!({"error": "not found"}))
    );
    let (status, _) = put(&off, "x", json!({"kind": "queue"})).await;
    assert_eq!(status, 404);
    assert_eq!(delete(&off, "x").await, 404);

    let split = InProcess::start(&["--allow-faults", "--admin-bind", "127.0.0.1:0"]).await;
    let admin = split.admin.as_ref().expect("an admin listener");
    assert_eq!(split.get_json("/faults").await.0, 404, "not on --bind");
    let (status, _) = put(&split, "x", json!({"kind": "queue"})).await;
    assert_eq!(status, 404, "not on --bind");
    assert_eq!(admin.get_json("/faults").await.0, 200);
    let (status, body) = put(admin, "x", json!({"kind": "queue"})).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(delete(admin, "x").await, 204);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_latency_fault_moves_the_routes_server_p50_by_its_latency() {
    let app = InProcess::start(&["--allow-faults"]).await;
    let (status, body) = put(
        &app,
        "slow",
        json!({"kind": "latency", "route": "/fibonacci/{n}/", "latency_ms": 200}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["fault"]["rate"], 1.0, "rate defaults to 1");
    let requests = (0..40).map(|_| app.get("/fibonacci/20/"));
    for response in futures_util::future::join_all(requests).await {
        assert_eq!(response.status(), 200);
    }
    // Another route is not slowed: a request the fault delayed would take its 200 ms at least.
    let started = std::time::Instant::now();
    assert_eq!(app.get("/").await.status(), 200);
    let took = started.elapsed();
    assert!(took < Duration::from_millis(200), "GET / took {took:?}");
    let status = app.status().await;
    let route = route_in(&status, "/fibonacci/{n}/");
    let p50_us = route["latency_us"]["p50"].as_f64().unwrap();
    assert!(
        (200_000.0 * 0.95..=200_000.0 * 1.05).contains(&p50_us),
        "p50 {p50_us} µs for a 200 ms fault"
    );
    assert_eq!(status["faults"][0]["injected"], 40);
    testkit::drill(
        "latency fault, 200 ms, on /fibonacci/{n}/: 40 requests",
        "the route's server p50 moves by 200 ms (HDR, ±5 %); other routes untouched",
        &format!("p50 {:.1} ms", p50_us / 1000.0),
    );
    let scrape = app.scrape().await;
    let labels = [
        ("fault", "slow"),
        ("kind", "latency"),
        ("route", "/fibonacci/{n}/"),
    ];
    assert_eq!(scrape.get("glassbox_fault_active", &labels), Some(1.0));
    assert_eq!(
        scrape.get("glassbox_fault_injections_total", &labels),
        Some(40.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_fault_fails_writes_and_health_until_it_ends() {
    let app = InProcess::start(&["--allow-faults"]).await;
    let post = || async {
        let response = app
            .client
            .post(app.url("/messages"))
            .json(&json!({"message": "during the outage"}))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json::<Value>().await.unwrap())
    };
    assert_eq!(post().await.0, 201);
    let (status, body) = put(&app, "store-down", json!({"kind": "store"})).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["fault"]["route"], "*", "{body}");
    assert_eq!(body["fault"]["rate"], 1.0, "{body}");
    assert_eq!(post().await, (503, json!({"error": "store unavailable"})));
    eventually("/health to fail on the store", || async {
        let (status, body) = app.get_json("/health").await;
        status == 503
            && body["data"]["health"] == "unhealthy"
            && body["data"]["checks"]["store"]["status"] == "fail"
    })
    .await;
    let scrape = app.scrape().await;
    assert!(
        scrape.sum("glassbox_store_errors_total", &[("kind", "connection")]) >= 1.0,
        "a store fault fails calls as a lost connection does"
    );
    assert_eq!(delete(&app, "store-down").await, 204);
    assert_eq!(post().await.0, 201, "ending the fault heals writes");
    eventually("/health to pass again", || async {
        app.get_json("/health").await.0 == 200
    })
    .await;
    let scrape = app.scrape().await;
    let labels = [("fault", "store-down"), ("kind", "store"), ("route", "*")];
    assert_eq!(scrape.get("glassbox_fault_active", &labels), Some(0.0));
    testkit::drill(
        "store fault: every message store call fails",
        "POST /messages 503 store unavailable, /health 503; both heal when it ends",
        "503 and unhealthy during it; 201 and healthy after",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fault_with_a_duration_ends_by_itself() {
    let app = InProcess::start(&["--allow-faults"]).await;
    let (status, body) = put(
        &app,
        "brief",
        json!({"kind": "error", "route": "*", "status": 502, "duration_s": 1}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert!(body["fault"]["ends_at"].is_string(), "{body}");
    assert_eq!(
        app.get_json("/").await,
        (502, json!({"error": "injected fault"}))
    );
    assert_eq!(
        app.get_json("/status").await.0,
        200,
        "the service's own routes are spared"
    );
    eventually("the fault to end", || async {
        app.get_json("/faults").await.1 == json!({"faults": []})
    })
    .await;
    assert_eq!(app.get("/").await.status(), 200);
    let scrape = app.scrape().await;
    let labels = [("fault", "brief"), ("kind", "error"), ("route", "*")];
    assert_eq!(scrape.get("glassbox_fault_active", &labels), Some(0.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_fault_holds_the_workers_until_it_ends() {
    let app = InProcess::start(&["--allow-faults", "--workers", "1"]).await;
    let (status, _) = put(&app, "stalled", json!({"kind": "queue"})).await;
    assert_eq!(status, 201);
    let mut paths = Vec::new();
    for numbers in ["1 2 3 4", "10 20"] {
        let (status, body) = answer(
            app.client
                .post(app.url("/sum-evens"))
                .header("content-type", "text/plain")
                .body(numbers),
        )
        .await;
        assert_eq!(status, 201, "{body}");
        paths.push(format!(
            "/sum-evens/{}/status",
            body["token"].as_str().unwrap()
        ));
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    // The one worker was already waiting when the fault started: it holds the first task it
    // receives, unstarted; nothing takes the second.
    let first = app.get_json(&paths[0]).await.1;
    assert!(
        first["status"] == "received" || first["status"] == "requested",
        "{first}"
    );
    assert_eq!(app.get_json(&paths[1]).await.1["status"], "requested");
    assert_eq!(
        app.status().await["queue"]["counts"]["depth"],
        1,
        "one task waits in the queue"
    );
    assert_eq!(delete(&app, "stalled").await, 204);
    for path in &paths {
        eventually("the tasks to finish", || async {
            app.get_json(path).await.1["status"] == "finished"
        })
        .await;
    }
}
