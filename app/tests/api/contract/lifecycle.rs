//! Staying up: load shedding, slow clients, the certificate's health and reuse across
//! restarts. Signals and the commands are end-to-end tests.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use testkit::client::tls_client_config;
use testkit::exposition::sample;
use testkit::{InProcess, eventually};

#[tokio::test]
async fn overload_is_shed_with_503_and_retry_after() {
    // One client may hold every permit here, so the limit in all is what sheds.
    let app = InProcess::start(&["--max-concurrency", "2", "--client-share", "1"]).await;
    let sleepers = [
        app.get_in_background("/sleep/1500", 1).await,
        app.get_in_background("/sleep/1500", 2).await,
    ];
    let response = app.get("/").await;
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "1");
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"error": "overloaded, retry later"})
    );
    // Observability endpoints are never shed.
    assert_eq!(app.get("/health").await.status(), 200);
    let metrics = app.metrics().await;
    assert_eq!(
        sample(&metrics, r#"glassbox_requests_shed_total{route="/"}"#),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &metrics,
            r#"glassbox_overloads_total{route="/",bound="permits"}"#
        ),
        Some(1.0)
    );
    for sleeper in sleepers {
        assert_eq!(sleeper.await.unwrap().unwrap().status(), 200);
    }
    assert_eq!(app.get("/").await.status(), 200, "capacity comes back");
    let status = app.status().await;
    assert_eq!(status["requests_shed_total"], 1);
    assert_eq!(status["requests_overloaded_total"], 1);
}

#[tokio::test]
async fn one_client_gets_its_share_and_the_others_the_rest() {
    let app = InProcess::start(&["--max-concurrency", "4", "--client-share", "0.5"]).await;
    assert_eq!(app.status().await["limits"]["client_permits"], 2);
    let sleepers = [
        app.get_in_background("/sleep/1500", 1).await,
        app.get_in_background("/sleep/1500", 2).await,
    ];
    // The same client (this test, on 127.0.0.1) is over its share...
    let response = app.get("/").await;
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "1");
    // ...with permits still free for everyone else.
    let status = app.status().await;
    assert_eq!(status["limits"]["permits_in_use"], 2, "{status}");
    let overloads = app.scrape().await;
    assert_eq!(
        overloads.sum("glassbox_overloads_total", &[("bound", "client_permits")]),
        1.0
    );
    assert_eq!(overloads.sum("glassbox_overloads_total", &[]), 1.0);
    // Another client address gets them.
    let other = testkit::client::client_from(&app.ca, "127.0.0.2".parse().unwrap());
    let response = other.get(app.url("/")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    for sleeper in sleepers {
        assert_eq!(sleeper.await.unwrap().unwrap().status(), 200);
    }
    assert_eq!(app.get("/").await.status(), 200, "the share comes back");
    assert_eq!(app.status().await["limits"]["permits_in_use"], 0);
}

/// A host given an IPv6 /64 may send from any address in it: the /64 is one client, whose
/// share its addresses split, while the next /64 is another client. The addresses come from a
/// trusted proxy's `X-Forwarded-For`, as nginx in front of glassbox sends them.
#[tokio::test]
async fn an_ipv6_client_is_its_64() {
    let app = InProcess::start(&[
        "--max-concurrency",
        "4",
        "--client-share",
        "0.5",
        "--trusted-proxies",
        "127.0.0.1",
    ])
    .await;
    let from = |client: &str, path: &str| {
        app.client
            .get(app.url(path))
            .header("x-forwarded-for", client)
            .send()
    };
    let mut sleepers = Vec::new();
    for (n, client) in [(1, "2001:db8:1:2::1"), (2, "2001:db8:1:2::2")] {
        sleepers.push(tokio::spawn(from(client, "/sleep/1500")));
        eventually("the sleep to be in flight", || async {
            app.status().await["requests_in_flight"].as_u64() == Some(n + 1)
        })
        .await;
    }
    let response = from("2001:db8:1:2:ffff::3", "/").await.unwrap();
    assert_eq!(response.status(), 503, "a third address of the same /64");
    let response = from("2001:db8:1:3::1", "/").await.unwrap();
    assert_eq!(response.status(), 200, "the next /64");
    for sleeper in sleepers {
        assert_eq!(sleeper.await.unwrap().unwrap().status(), 200);
    }
}

#[tokio::test]
async fn slow_headers_are_cut_off() {
    let app = InProcess::start(&["--header-read-timeout", "300ms"]).await;
    let mut config = tls_client_config(&app.ca);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tcp = TcpStream::connect(app.addr).await.unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
        .connect(
            rustls::pki_types::ServerName::try_from("localhost").unwrap(),
            tcp,
        )
        .await
        .unwrap();
    tls.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(20), tls.read_to_end(&mut buf)).await;
    assert!(
        read.is_ok(),
        "the server closes a connection whose headers never end"
    );
    assert!(!String::from_utf8_lossy(&buf).contains("Hello"));
}

#[tokio::test]
async fn stalled_handshakes_time_out_and_are_counted() {
    let app = InProcess::start(&["--tls-handshake-timeout", "300ms"]).await;
    let mut tcp = TcpStream::connect(app.addr).await.unwrap();
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_secs(20), tcp.read(&mut buf)).await;
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "closed without a handshake: {read:?}"
    );
    eventually("the timeout to be counted", || async {
        sample(
            &app.metrics().await,
            r#"glassbox_tls_handshake_failures_total{reason="timeout"}"#,
        ) == Some(1.0)
    })
    .await;
}

#[tokio::test]
async fn health_reports_the_certificate() {
    let app = InProcess::start(&[]).await;
    let (status, body) = app.get_json("/health").await;
    assert_eq!(status, 200);
    assert_eq!(body["result"], "success");
    assert_eq!(body["data"]["health"], "healthy");
    let cert = &body["data"]["checks"]["certificate"];
    assert_eq!(cert["status"], "pass");
    assert!(cert["days_remaining"].as_i64().unwrap() > 300);
    assert!(
        cert["names"]
            .as_array()
            .unwrap()
            .contains(&json!("localhost"))
    );
}

#[tokio::test]
async fn certificates_are_reused_across_restarts_and_extra_names_honoured() {
    let first = InProcess::start(&["--cert-names", "glassbox-1,10.9.8.7"]).await;
    let ca = std::fs::read(&first.ca).unwrap();
    let names = first.get_json("/health").await.1["data"]["checks"]["certificate"]["names"].clone();
    assert!(names.as_array().unwrap().contains(&json!("glassbox-1")));
    assert!(names.as_array().unwrap().contains(&json!("10.9.8.7")));
    let dir = first.stop().await;
    let second = InProcess::start_in(dir, &["--cert-names", "glassbox-1,10.9.8.7"]).await;
    assert_eq!(std::fs::read(&second.ca).unwrap(), ca, "the CA is reused");
    assert_eq!(
        second.get("/").await.status(),
        200,
        "the old CA still verifies"
    );
}

/// Every response, whatever its route, method and status, says `X-Content-Type-Options:
/// nosniff`: every route of the table (its first method, parameters filled with `1`), an
/// unknown path, a wrong method.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_response_says_nosniff() {
    let app = testkit::InProcess::start(&[]).await;
    let status = app.status().await;
    let routes = status["route_table"].as_array().unwrap().clone();
    assert!(routes.len() > 20, "{routes:?}");
    let mut asked = Vec::new();
    for route in routes {
        let template = route["route"].as_str().unwrap();
        let path: String = template
            .split('/')
            .map(|segment| {
                if segment.starts_with('{') {
                    "1"
                } else {
                    segment
                }
            })
            .collect::<Vec<_>>()
            .join("/");
        let method = route["methods"][0].as_str().unwrap();
        asked.push((method.to_owned(), path));
    }
    asked.push(("GET".into(), "/no-such-path".into()));
    asked.push(("DELETE".into(), "/".into()));
    for (method, path) in asked {
        let response = app
            .client
            .request(method.parse().unwrap(), app.url(&path))
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(
            response
                .headers()
                .get("x-content-type-options")
                .and_then(|v| v.to_str().ok()),
            Some("nosniff"),
            "{method} {path}: {}",
            response.status()
        );
    }
}

/// The served OpenAPI document is whole: every `$ref` resolves, operation ids are unique, and
/// the links from the POSTs to what they created name operations that exist, so tools
/// (schemathesis' stateful phase, code generators) can walk from one to the next.
#[tokio::test]
async fn the_openapi_document_resolves_every_ref_and_links_its_operations() {
    let app = InProcess::start(&[]).await;
    let (status, doc) = app.get_json("/openapi.json").await;
    assert_eq!(status, 200);
    fn refs<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(target)) = map.get("$ref") {
                    out.push(target);
                }
                map.values().for_each(|v| refs(v, out));
            }
            Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }
    let mut found = Vec::new();
    refs(&doc, &mut found);
    assert!(found.len() > 20, "{found:?}");
    for target in &found {
        let pointer = target.strip_prefix('#').expect("a local reference");
        assert!(doc.pointer(pointer).is_some(), "{target} does not resolve");
    }
    let mut operations = std::collections::HashMap::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let id = op["operationId"].as_str().unwrap().to_owned();
            let earlier = operations.insert(id.clone(), (path.clone(), method.clone()));
            assert!(earlier.is_none(), "operationId {id} is used twice");
        }
    }
    for (from, link, to, parameter, expression) in [
        (
            "/messages",
            "GetMessage",
            "get_message",
            "digest",
            "$response.body#/digest",
        ),
        (
            "/randomize",
            "RandomizeStatus",
            "randomize_status",
            "token",
            "$response.body#/token",
        ),
        (
            "/randomize",
            "RandomizeResult",
            "randomize_result",
            "token",
            "$response.body#/token",
        ),
        (
            "/sum-evens",
            "SumEvensStatus",
            "sum_evens_status",
            "token",
            "$response.body#/token",
        ),
        (
            "/sum-evens",
            "SumEvensResult",
            "sum_evens_result",
            "token",
            "$response.body#/token",
        ),
    ] {
        let declared = &doc["paths"][from]["post"]["responses"]["201"]["links"][link];
        assert_eq!(declared["operationId"], to, "{from} {link}: {declared}");
        assert_eq!(
            declared["parameters"][parameter], expression,
            "{from} {link}"
        );
        assert!(operations.contains_key(to), "{to} is an operation");
    }
}
