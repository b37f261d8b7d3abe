//! The Paxos message store: one behavioural suite, run here against the embedded store and by
//! the end-to-end tests against Redis and through nginx in front of two replicas.

use std::collections::BTreeMap;

use reqwest::StatusCode;
use reqwest::header::CONTENT_TYPE;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use testkit::client::answer;
use testkit::{Endpoint, InProcess};

pub const FOO: &str = "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae";
pub const BAR: &str = "fcde2b2edba56bf408601fb721fe9b5c338d10ee429ea04fae5511b68fbf8fb9";

/// Where the suite sends its requests: glassbox itself or nginx in front of it.
pub struct Target {
    pub client: reqwest::Client,
    pub base: String,
    /// nginx refuses some requests itself before glassbox could judge them.
    pub proxied: bool,
}

impl Target {
    pub fn direct(app: &Endpoint) -> Target {
        Target {
            client: app.client.clone(),
            base: app.url(""),
            proxied: false,
        }
    }

    pub async fn post_json(&self, body: &Value) -> (StatusCode, Value) {
        self.post_raw("application/json", body.to_string()).await
    }

    pub async fn post_raw(
        &self,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> (StatusCode, Value) {
        let url = format!("{}/messages", self.base);
        answer(
            self.client
                .post(url)
                .header(CONTENT_TYPE, content_type)
                .body(body),
        )
        .await
    }

    pub async fn get(&self, digest: &str) -> (StatusCode, Value) {
        answer(self.client.get(format!("{}/messages/{digest}", self.base))).await
    }
}

pub fn sha256_hex(message: &str) -> String {
    Sha256::digest(message.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The public Paxos check (devops-test-script's test.py), step by step.
pub async fn paxos_check(target: &Target) {
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
pub async fn round_trips(target: &Target) {
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
pub async fn bad_inputs(target: &Target, limit: usize) {
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

/// Everything a message store must do, through `target`.
pub async fn suite(target: &Target) {
    paxos_check(target).await;
    round_trips(target).await;
    bad_inputs(target, 1024 * 1024).await;
}

#[tokio::test]
async fn the_embedded_store_keeps_the_contract() {
    let app = InProcess::start(&[]).await;
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

    let scrape = app.scrape().await;
    assert_eq!(
        scrape.get("glassbox_store_messages", &[("backend", "embedded")]),
        Some(8.0)
    );
    let operations = "glassbox_store_operation_duration_seconds_count";
    let ok = |operation| scrape.sum(operations, &[("operation", operation), ("outcome", "ok")]);
    assert_eq!(ok("put"), 15.0);
    assert_eq!(ok("get"), 12.0);
    assert_eq!(
        scrape.sum("glassbox_store_commit_batch_size_sum", &[]),
        15.0,
        "every put committed once"
    );
    assert_eq!(scrape.answered("/messages", "201"), 15.0);

    let (code, health) = app.get_json("/health").await;
    assert_eq!(code, 200);
    assert_eq!(health["data"]["checks"]["store"]["status"], "pass");
    assert_eq!(health["data"]["checks"]["store"]["messages"], 8);
}
