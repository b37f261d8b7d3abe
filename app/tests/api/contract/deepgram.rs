//! The Deepgram endpoints, their error bodies, and the contract's envelope rules.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use testkit::InProcess;

#[tokio::test]
async fn hello_world() {
    let app = InProcess::start(&[]).await;
    let response = app.get("/").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    assert_eq!(
        response.text().await.unwrap(),
        r#"{"result":"success","data":{"message":"Hello, world!"}}"#
    );
}

#[tokio::test]
async fn sleep_measures_and_bounds() {
    let app = InProcess::start(&["--max-sleep", "150ms"]).await;
    let (status, body) = app.get_json("/sleep/120").await;
    assert_eq!(status, 200);
    assert_eq!(body["result"], "success");
    let elapsed = body["data"]["elapsed"]
        .as_f64()
        .expect("elapsed is a number");
    assert!(elapsed >= 120.0, "slept {elapsed} ms");
    assert_eq!(
        app.get_json("/sleep/150").await.0,
        200,
        "the maximum itself is allowed"
    );
    assert_eq!(app.get_json("/sleep/0").await.0, 200);

    let too_long = json!({"result": "failed", "reason": "sleep too long"});
    for path in [
        "/sleep/151",
        "/sleep/60001",
        "/sleep/99999999999999999999999999999999999999",
    ] {
        assert_eq!(app.get_json(path).await, (400, too_long.clone()), "{path}");
    }
    let not_found = json!({"error": "not found"});
    for path in [
        "/sleep/abc",
        "/sleep/-1",
        "/sleep/1e3",
        "/sleep/1.5",
        "/sleep/%20",
    ] {
        assert_eq!(app.get_json(path).await, (404, not_found.clone()), "{path}");
    }
}

#[tokio::test]
async fn default_max_sleep_is_one_minute() {
    let app = InProcess::start(&[]).await;
    let (status, body) = app.get_json("/sleep/60001").await;
    assert_eq!(
        (status, body["reason"].as_str()),
        (400, Some("sleep too long"))
    );
}

#[tokio::test]
async fn code_answers_with_its_status() {
    let app = InProcess::start(&[]).await;
    for code in [200u16, 201, 299, 301, 400, 404, 418, 429, 500, 503, 599] {
        let (status, body) = app.get_json(&format!("/code/{code}")).await;
        assert_eq!(status, code);
        assert_eq!(body, json!({"result": "success", "data": {"code": code}}));
    }
    for code in [204u16, 205, 304] {
        let response = app.get(&format!("/code/{code}")).await;
        assert_eq!(response.status().as_u16(), code);
        assert!(response.headers().get("x-request-id").is_some());
        assert_eq!(
            response.bytes().await.unwrap().len(),
            0,
            "{code} has no body"
        );
    }
    let invalid = json!({"result": "failed", "reason": "invalid code"});
    for code in [
        "199",
        "600",
        "0",
        "100",
        "-1",
        "abc",
        "1e3",
        "200.0",
        "+200",
        "%2B200",
        "%20200",
        "99999999999999999999",
    ] {
        assert_eq!(
            app.get_json(&format!("/code/{code}")).await,
            (400, invalid.clone()),
            "{code}"
        );
    }
}

#[tokio::test]
async fn work_status_matches_body_and_weights() {
    let app = InProcess::start(&[
        "--work-sleep-min",
        "0ms",
        "--work-sleep-max",
        "3ms",
        "--seed",
        "7",
    ])
    .await;
    const N: usize = 600;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..N {
        let client = app.client.clone();
        let url = app.url("/work");
        tasks.spawn(async move {
            let response = client.post(url).send().await.unwrap();
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap();
            (status, body)
        });
    }
    let mut counts: BTreeMap<u16, usize> = BTreeMap::new();
    while let Some(result) = tasks.join_next().await {
        let (status, body) = result.unwrap();
        assert_eq!(
            body["result"], "success",
            "the body says success whatever the status"
        );
        assert_eq!(
            body["data"]["code"], status,
            "status matches the body's code"
        );
        let elapsed = body["data"]["elapsed"].as_u64().unwrap();
        assert!(elapsed < 3, "sleep {elapsed} is inside 0..3 ms");
        *counts.entry(status).or_default() += 1;
    }
    assert_eq!(
        counts.keys().copied().collect::<Vec<_>>(),
        vec![200, 400, 500],
        "{counts:?}"
    );
    // Within four standard deviations of the binomial expectation for weights .95/.04/.01.
    for (code, p) in [(200, 0.95), (400, 0.04), (500, 0.01)] {
        let expected = N as f64 * p;
        let sd = (N as f64 * p * (1.0 - p)).sqrt();
        let got = counts[&code] as f64;
        assert!(
            (got - expected).abs() <= 4.0 * sd,
            "{code}: {got} vs {expected}±{sd}"
        );
    }
}

#[tokio::test]
async fn work_weights_are_configuration() {
    let app = InProcess::start(&[
        "--work-sleep-min",
        "0ms",
        "--work-sleep-max",
        "1ms",
        "--work-weights",
        "201:1,503:0,418:1",
    ])
    .await;
    let mut seen = BTreeMap::<u16, usize>::new();
    for _ in 0..60 {
        *seen
            .entry(app.post("/work").await.status().as_u16())
            .or_default() += 1;
    }
    assert!(
        !seen.contains_key(&503),
        "weight 0 is never drawn: {seen:?}"
    );
    assert!(seen.get(&201).copied().unwrap_or(0) > 10, "{seen:?}");
    assert!(seen.get(&418).copied().unwrap_or(0) > 10, "{seen:?}");
}

#[tokio::test]
async fn work_default_sleep_range() {
    let app = InProcess::start(&["--work-weights", "200:1"]).await;
    let (status, body) = {
        let response = app.post("/work").await;
        (
            response.status().as_u16(),
            response.json::<Value>().await.unwrap(),
        )
    };
    assert_eq!(status, 200);
    let elapsed = body["data"]["elapsed"].as_u64().unwrap();
    assert!((100..5000).contains(&elapsed), "{elapsed}");
}

#[tokio::test]
async fn unknown_paths_and_wrong_methods() {
    let app = InProcess::start(&[]).await;
    for path in [
        "/nope",
        "/sleep",
        "/sleep/",
        "/code",
        "/wp-admin/setup.php",
        "/%ff",
    ] {
        assert_eq!(
            app.get_json(path).await,
            (404, json!({"error": "not found"})),
            "{path}"
        );
    }
    let response = app.get("/work").await;
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["allow"], "POST");
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"error": "method not allowed"})
    );

    let response = app.client.delete(app.url("/")).send().await.unwrap();
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["allow"], "GET,HEAD");
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"error": "method not allowed"})
    );

    let response = app.post("/status").await;
    assert_eq!(response.status(), 405);

    let response = app.client.head(app.url("/")).send().await.unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn request_ids() {
    let app = InProcess::start(&[]).await;
    let id = |r: &reqwest::Response| r.headers()["x-request-id"].to_str().unwrap().to_owned();
    let a = app.get("/").await;
    let b = app.get("/nope").await;
    assert_eq!(id(&a).len(), 32);
    assert_ne!(id(&a), id(&b));
    let echoed = app
        .client
        .get(app.url("/"))
        .header("x-request-id", "trace-42.a_b")
        .send()
        .await
        .unwrap();
    assert_eq!(id(&echoed), "trace-42.a_b");
    let replaced = app
        .client
        .get(app.url("/"))
        .header("x-request-id", "bad id;drop")
        .send()
        .await
        .unwrap();
    assert_ne!(id(&replaced), "bad id;drop");
    assert_eq!(id(&replaced).len(), 32);
}

#[tokio::test]
async fn oversized_bodies_are_refused() {
    let app = InProcess::start(&["--max-body-bytes", "1024", "--work-sleep-max", "101ms"]).await;
    let response = app
        .client
        .post(app.url("/work"))
        .body(vec![b'x'; 2048])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"error": "request body too large", "limit_bytes": 1024})
    );
    let response = app
        .client
        .post(app.url("/work"))
        .body(vec![b'x'; 1024])
        .send()
        .await
        .unwrap();
    assert_ne!(response.status(), 413, "a body at the limit is accepted");
}
