//! The Paxos message store, end to end: one behavioural suite run against the embedded store,
//! against Redis, and through nginx in front of two replicas sharing Redis; a crash test; Redis
//! going away and coming back under the service.

use std::collections::BTreeMap;

use reqwest::StatusCode;
use reqwest::header::CONTENT_TYPE;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use crate::helpers::{TestApp, alpn_client_trusting, client_trusting, eventually, sample};
use crate::servers::{Nginx, Redis};

const FOO: &str = "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae";
const BAR: &str = "fcde2b2edba56bf408601fb721fe9b5c338d10ee429ea04fae5511b68fbf8fb9";

/// Where the suite sends its requests: glassbox itself or nginx in front of it.
struct Target {
    client: reqwest::Client,
    base: String,
    /// nginx refuses some requests itself before glassbox could judge them.
    proxied: bool,
}

impl Target {
    fn direct(app: &TestApp) -> Target {
        Target {
            client: app.client.clone(),
            base: app.url(""),
            proxied: false,
        }
    }

    async fn post_json(&self, body: &Value) -> (StatusCode, Value) {
        self.post_raw("application/json", body.to_string()).await
    }

    async fn post_raw(
        &self,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> (StatusCode, Value) {
        let response = self
            .client
            .post(format!("{}/messages", self.base))
            .header(CONTENT_TYPE, content_type)
            .body(body)
            .send()
            .await
            .expect("POST completes");
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, digest: &str) -> (StatusCode, Value) {
        let response = self
            .client
            .get(format!("{}/messages/{digest}", self.base))
            .send()
            .await
            .expect("GET completes");
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }
}

fn sha256_hex(message: &str) -> String {
    Sha256::digest(message.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The public Paxos check (devops-test-script's test.py), step by step.
async fn paxos_check(target: &Target) {
    let (status, body) = target.get(&"a".repeat(64)).await;
    assert_eq!(status, 404);
    assert_eq!(body, json!({"err_msg": "Message not found"}));
    let (status, body) = target.post_json(&json!({"message": "foo"})).await;
    assert_eq!(status, 201);
    assert_eq!(body, json!({"digest": FOO}));
    assert_eq!(
        target.get(FOO).await,
        (StatusCode::OK, json!({"message": "foo"}))
    );
    let (status, body) = target.post_json(&json!({"message": "bar"})).await;
    assert_eq!(
        (status, body),
        (StatusCode::CREATED, json!({"digest": BAR}))
    );
    assert_eq!(
        target.get(BAR).await,
        (StatusCode::OK, json!({"message": "bar"}))
    );
    assert_eq!(
        target.get(FOO).await,
        (StatusCode::OK, json!({"message": "foo"}))
    );
}

/// Unicode, empty and awkward messages come back byte for byte; a repeat is 201 again.
async fn round_trips(target: &Target) {
    let long = "x".repeat(512 * 1024);
    for message in [
        "",
        "é😀 日本語",
        "nul \u{0} inside",
        "line\nbreaks\r\n",
        "\"quoted\" \\",
        &long,
    ] {
        let (status, body) = target.post_json(&json!({ "message": message })).await;
        assert_eq!(status, 201, "{message:.20}");
        let digest = sha256_hex(message);
        assert_eq!(body["digest"], digest.as_str());
        let (status, again) = target.post_json(&json!({ "message": message })).await;
        assert_eq!((status, &again), (StatusCode::CREATED, &body));
        assert_eq!(
            target.get(&digest).await,
            (StatusCode::OK, json!({ "message": message }))
        );
    }
    // Other members are ignored; escapes decode before hashing.
    let (status, body) = target
        .post_raw(
            "application/json; charset=utf-8",
            r#"{"message":"\u0066oo","other":[1]}"#,
        )
        .await;
    assert_eq!(
        (status, body),
        (StatusCode::CREATED, json!({"digest": FOO}))
    );
    // A digest in capitals names the same message.
    assert_eq!(
        target.get(&FOO.to_uppercase()).await,
        (StatusCode::OK, json!({"message": "foo"}))
    );
}

/// Every malformed input gets its status and a JSON error, and stores nothing.
async fn bad_inputs(target: &Target, limit: usize) {
    let bad_json = [
        ("", "invalid JSON"),
        ("{\"message\":", "invalid JSON"),
        ("{\"message\":\"\\ud800\"}", "invalid JSON"),
        ("{}", "missing \"message\""),
        ("{\"message\":42}", "\"message\" must be a string"),
        ("{\"message\":null}", "\"message\" must be a string"),
        ("[\"foo\"]", "the body must be a JSON object"),
    ];
    for (body, why) in bad_json {
        let (status, answer) = target.post_raw("application/json", body).await;
        assert_eq!(status, 400, "{body}");
        assert!(
            answer["error"].as_str().unwrap().starts_with(why),
            "{body}: {answer}"
        );
    }
    let (status, answer) = target
        .post_raw("application/json", vec![b'{', 0xff, b'}'])
        .await;
    assert_eq!(status, 400, "{answer}");
    for content_type in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/jsonp",
    ] {
        let (status, answer) = target.post_raw(content_type, r#"{"message":"foo"}"#).await;
        assert_eq!(status, 415, "{content_type}");
        assert_eq!(answer["error"], "Content-Type must be application/json");
    }
    let response = target
        .client
        .post(format!("{}/messages", target.base))
        .body(r#"{"message":"foo"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 415, "no Content-Type at all");

    // One byte over the limit, declared and chunked.
    let oversized = format!(r#"{{"message":"{}"}}"#, "y".repeat(limit));
    let (status, answer) = target.post_raw("application/json", oversized.clone()).await;
    assert_eq!(status, 413);
    assert_eq!(
        answer,
        json!({"error": "request body too large", "limit_bytes": limit})
    );
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = oversized
        .into_bytes()
        .chunks(64 * 1024)
        .map(|c| Ok(c.to_vec()))
        .collect();
    let streamed = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
    let (status, answer) = target.post_raw("application/json", streamed).await;
    assert_eq!(status, 413, "{answer}");

    for digest in [
        "zz",
        &"a".repeat(63),
        &"a".repeat(65),
        &format!("{}g", &FOO[..63]),
        "%00",
    ] {
        let (status, answer) = target.get(digest).await;
        if target.proxied && digest == "%00" {
            // nginx refuses a NUL in the path (with its own page) before any upstream sees it.
            assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
            continue;
        }
        assert_eq!(
            (status, answer),
            (
                StatusCode::NOT_FOUND,
                json!({"err_msg": "Message not found"})
            ),
            "{digest}"
        );
    }
    let response = target
        .client
        .get(format!("{}/messages", target.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["allow"], "POST");
    let (status, _) = target.get(&sha256_hex("y")).await;
    assert_eq!(status, 404, "nothing from the refused bodies was stored");
}

async fn suite(target: &Target) {
    paxos_check(target).await;
    round_trips(target).await;
    bad_inputs(target, 1024 * 1024).await;
}

#[tokio::test]
async fn the_embedded_store_keeps_the_contract() {
    let app = TestApp::spawn(&[]).await;
    suite(&Target::direct(&app)).await;

    let status = app.status().await;
    let store = &status["store"];
    assert_eq!(store["backend"], "embedded");
    assert!(
        store["location"]
            .as_str()
            .unwrap()
            .ends_with("messages.redb")
    );
    // foo, bar, six round trips, and "foo" again through an escape: eight distinct messages.
    assert_eq!(store["messages"], 8);
    let ops: BTreeMap<&str, &Value> = store["operations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|op| (op["operation"].as_str().unwrap(), op))
        .collect();
    // Every 201 is one put: 2 (paxos) + 12 (round trips) + 1 (escaped foo).
    assert_eq!(ops["put"]["count"], 15);
    assert_eq!(ops["put"]["errors"], 0);
    assert!(ops["put"]["latency_us"]["max"].as_u64().unwrap() > 0);
    // GETs that reached the store: 4 (paxos) + 6 (round trips) + 1 (capitals) + 1 (refused y).
    assert_eq!(ops["get"]["count"], 12);

    let metrics = app.metrics().await;
    let find = |labels: &[&str]| {
        metrics
            .lines()
            .find(|l| labels.iter().all(|p| l.contains(p)) && !l.starts_with('#'))
            .and_then(|l| l.rsplit_once(' '))
            .map(|(_, v)| v.parse::<f64>().unwrap())
    };
    assert_eq!(
        sample(&metrics, r#"glassbox_store_messages{backend="embedded"}"#),
        Some(8.0)
    );
    assert_eq!(
        find(&[
            "glassbox_store_operation_duration_seconds_count{",
            r#"operation="put""#,
            r#"outcome="ok""#
        ]),
        Some(15.0)
    );
    assert_eq!(
        find(&[
            "glassbox_store_operation_duration_seconds_count{",
            r#"operation="get""#,
            r#"outcome="ok""#
        ]),
        Some(12.0)
    );
    assert_eq!(
        find(&["glassbox_store_commit_batch_size_sum"]),
        Some(15.0),
        "every put committed once"
    );
    assert_eq!(
        find(&[
            "http_server_request_duration_seconds_count{",
            r#"route="/messages""#,
            r#"status_code="201""#
        ]),
        Some(15.0)
    );

    let (code, health) = app.get_json("/health").await;
    assert_eq!(code, 200);
    assert_eq!(health["data"]["checks"]["store"]["status"], "pass");
    assert_eq!(health["data"]["checks"]["store"]["messages"], 8);
}

#[tokio::test]
async fn the_redis_store_keeps_the_contract_and_replicas_share_it() {
    let redis = Redis::start();
    let url = redis.url();
    let app = TestApp::spawn(&["--store", &url]).await;
    suite(&Target::direct(&app)).await;
    let status = app.status().await;
    assert_eq!(status["store"]["backend"], "redis");
    assert_eq!(
        status["store"]["location"],
        format!("redis://127.0.0.1:{}/0", redis.port)
    );
    assert_eq!(status["store"]["messages"], 8);

    // A second replica on the same Redis sees what the first stored, and the other way round.
    let other = TestApp::spawn(&["--store", &url]).await;
    let other_target = Target::direct(&other);
    assert_eq!(
        other_target.get(FOO).await,
        (StatusCode::OK, json!({"message": "foo"}))
    );
    let (status, body) = other_target
        .post_json(&json!({"message": "from the other replica"}))
        .await;
    assert_eq!(status, 201);
    let digest = body["digest"].as_str().unwrap();
    assert_eq!(Target::direct(&app).get(digest).await.0, 200);
    let metrics = app.metrics().await;
    assert_eq!(
        sample(&metrics, r#"glassbox_store_messages{backend="redis"}"#),
        Some(9.0)
    );
}

#[tokio::test]
async fn redis_going_away_is_a_503_and_the_service_heals_when_it_returns() {
    let mut redis = Redis::start();
    let mut app = TestApp::spawn(&["--store", &redis.url(), "--store-timeout", "500ms"]).await;
    let target = Target::direct(&app);
    let (status, _) = target.post_json(&json!({"message": "before"})).await;
    assert_eq!(status, 201);

    redis.stop();
    let (status, body) = target.post_json(&json!({"message": "during"})).await;
    assert_eq!(
        (status, body),
        (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"error": "store unavailable"})
        )
    );
    let response = app
        .client
        .get(app.url(&format!("/messages/{}", sha256_hex("before"))))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "1");
    let refused_id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let (code, health) = app.get_json("/health").await;
    assert_eq!(code, 503);
    assert_eq!(health["data"]["health"], "unhealthy");
    assert_eq!(health["data"]["checks"]["store"]["status"], "fail");
    assert_eq!(health["data"]["checks"]["certificate"]["status"], "pass");
    let status = app.status().await;
    assert!(status["store"]["error"].is_string(), "{status}");
    let metrics = app.metrics().await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("glassbox_store_errors_total{")
                && l.contains(r#"operation="put""#)
                && !l.ends_with(" 0")),
        "{metrics}"
    );
    // The service itself is fine meanwhile.
    assert_eq!(app.get("/").await.status(), 200);

    redis.restart();
    eventually("the store to recover", || async {
        target.post_json(&json!({"message": "after"})).await.0 == 201
    })
    .await;
    assert_eq!(app.get_json("/health").await.0, 200);
    // The append-only file kept what was acknowledged before the outage.
    assert_eq!(
        target.get(&sha256_hex("before")).await,
        (StatusCode::OK, json!({"message": "before"}))
    );
    assert_eq!(
        target.get(&sha256_hex("during")).await.0,
        404,
        "the refused write was not kept"
    );
    // The 503's own access line says why, next to its request id; no other line does.
    let lines = app.stop_and_read_logs();
    let refused: Vec<_> = lines
        .iter()
        .filter(|l| l["request_id"] == refused_id.as_str())
        .collect();
    assert_eq!(refused.len(), 1, "{refused:?}");
    let (line, error) = (refused[0], refused[0]["error"].as_str().unwrap_or_default());
    assert_eq!(
        (line["status"].as_u64(), line["level"].as_str()),
        (Some(503), Some("ERROR"))
    );
    assert!(
        error.starts_with("store unavailable: redis get: "),
        "{line}"
    );
    assert!(
        lines
            .iter()
            .all(|l| l["message"] != "store operation failed"),
        "no line of its own for the cause"
    );
    let health_line = lines
        .iter()
        .find(|l| l["route"] == "/health" && l["status"] == 503)
        .expect("the failed /health request's line");
    assert!(
        health_line["error"]
            .as_str()
            .unwrap_or_default()
            .starts_with("unhealthy: store: "),
        "{health_line}"
    );
}

#[tokio::test]
async fn every_acknowledged_message_survives_sigkill() {
    let mut app = TestApp::spawn(&[]).await;
    let clients = 8;
    let per_client = 400;
    let acked = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let writers: Vec<_> = (0..clients)
        .map(|c| {
            let target = Target::direct(&app);
            let acked = acked.clone();
            tokio::spawn(async move {
                for i in 0..per_client {
                    let message = format!("client {c} message {i}");
                    match target
                        .client
                        .post(format!("{}/messages", target.base))
                        .header(CONTENT_TYPE, "application/json")
                        .body(json!({ "message": message }).to_string())
                        .send()
                        .await
                    {
                        Ok(r) if r.status() == 201 => acked.lock().unwrap().push(message),
                        _ => break, // the process is gone
                    }
                }
            })
        })
        .collect();
    // Kill it mid-stream: once a good share of the writes are acknowledged, never at the end.
    eventually("writes to be acknowledged", || async {
        acked.lock().unwrap().len() >= 300
    })
    .await;
    app.kill();
    for writer in writers {
        writer.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() < clients * per_client,
        "the kill came before the end"
    );

    let restarted = TestApp::spawn_in(app.take_dir(), &[]).await;
    let target = Target::direct(&restarted);
    let mut lost = Vec::new();
    for message in &acked {
        let (status, body) = target.get(&sha256_hex(message)).await;
        if status != 200 || body["message"] != message.as_str() {
            lost.push(message.clone());
        }
    }
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged messages lost: {:?}",
        lost.len(),
        acked.len(),
        &lost[..lost.len().min(5)]
    );
    let held = restarted.status().await["store"]["messages"]
        .as_u64()
        .unwrap();
    assert!(
        held >= acked.len() as u64,
        "{held} held, {} acknowledged",
        acked.len()
    );
}

#[tokio::test]
async fn through_nginx_in_front_of_two_replicas() {
    let redis = Redis::start();
    let url = redis.url();
    let first = TestApp::spawn(&["--store", &url, "--trusted-proxies", "127.0.0.1"]).await;
    let certs = first.dir.path().join("certs");
    // The second replica serves the same certificate, as replicas behind one name do.
    let second_dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(second_dir.path().join("certs")).unwrap();
    for file in ["ca.crt", "ca.key", "server.crt", "server.key"] {
        std::fs::copy(certs.join(file), second_dir.path().join("certs").join(file)).unwrap();
    }
    let second = TestApp::spawn_in(
        second_dir,
        &["--store", &url, "--trusted-proxies", "127.0.0.1"],
    )
    .await;
    let nginx = Nginx::start(&certs, &[first.addr, second.addr]);
    let client = alpn_client_trusting(&first.ca_path());
    let target = Target {
        client: client.clone(),
        base: nginx.url(""),
        proxied: true,
    };
    suite(&target).await;

    // HTTP/2 to the client, the request id shared end to end, the real client address logged.
    let response = client
        .get(nginx.url("/"))
        .header("x-request-id", "through-nginx-1")
        .header("x-forwarded-for", "198.51.100.9")
        .send()
        .await
        .unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-request-id"], "through-nginx-1");
    let fresh = client.get(nginx.url("/")).send().await.unwrap();
    let fresh_id = fresh.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(fresh_id.len(), 32, "nginx made one: {fresh_id}");

    let stub = client_trusting(&first.ca_path())
        .get(format!(
            "http://127.0.0.1:{}/nginx_status",
            nginx.status_port
        ))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(stub.starts_with("Active connections:"), "{stub}");

    // With both replicas gone nginx answers for them, in JSON.
    let mut access = Vec::new();
    for mut replica in [first, second] {
        let requests: Vec<Value> = replica
            .stop_and_read_logs()
            .into_iter()
            .filter(|l| l["message"] == "request")
            .collect();
        assert!(requests.len() > 5, "each replica took part of the traffic");
        access.extend(requests);
    }
    let response = client.get(nginx.url("/")).send().await.unwrap();
    assert_eq!(response.status(), 502);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"error": "no glassbox replica answered"})
    );

    let line = access
        .iter()
        .find(|l| l["request_id"] == "through-nginx-1")
        .expect("glassbox logged the request under nginx's id");
    assert_eq!(
        line["client_addr"], "127.0.0.1",
        "what nginx saw, not what the client claimed"
    );
    assert!(
        line["proxy_addr"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:")
    );
    let nginx_lines = nginx.access_log();
    let nginx_line = nginx_lines
        .iter()
        .find(|l| l["request_id"] == "through-nginx-1")
        .expect("nginx logged it too");
    assert_eq!(nginx_line["status"], 200);
    assert_eq!(nginx_line["level"], "INFO");
    // nginx writes an access line once the response has gone out: wait for the 502's.
    eventually("the 502 to be logged as an error", || async {
        nginx
            .access_log()
            .iter()
            .any(|l| l["status"] == 502 && l["level"] == "ERROR")
    })
    .await;
    assert_eq!(nginx_line["version"], "HTTP/2.0");
    assert!(
        nginx_lines
            .iter()
            .any(|l| l["request_id"] == fresh_id.as_str())
    );
    assert!(nginx.error_log().lines().all(|l| !l.contains("[emerg]")));
}

#[tokio::test]
async fn forwarded_addresses_are_ignored_from_untrusted_peers() {
    let mut app = TestApp::spawn(&["--trusted-proxies", "10.0.0.0/8"]).await;
    let response = app
        .client
        .get(app.url("/"))
        .header("x-forwarded-for", "198.51.100.9")
        .header("x-request-id", "forged-1")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let logs = app.stop_and_read_logs();
    let line = logs.iter().find(|l| l["request_id"] == "forged-1").unwrap();
    assert!(
        line["client_addr"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:"),
        "{line}"
    );
    assert!(line.get("proxy_addr").is_none());
}
