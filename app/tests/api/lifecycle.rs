//! Staying up: graceful shutdown, load shedding, slow clients, health, and the commands.

use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{TestApp, eventually, sample, tls_client_config};

#[tokio::test]
async fn graceful_shutdown_lets_an_in_flight_sleep_finish() {
    let mut app = TestApp::spawn(&[]).await;
    let in_flight = app.get_in_background("/sleep/500", 1).await;
    app.terminate();
    let response = in_flight
        .await
        .unwrap()
        .expect("the in-flight request completes");
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert!(body["data"]["elapsed"].as_f64().unwrap() >= 500.0);
    let status = app.wait(Duration::from_secs(30));
    assert!(status.success(), "{status}");
    // New connections are refused once it has stopped.
    assert!(TcpStream::connect(app.addr).await.is_err());
    let logs = crate::helpers::read_json_lines(&app.dir.path().join("logs"));
    let sleep_line = logs
        .iter()
        .find(|l| l["path"] == "/sleep/500")
        .expect("the drained request was logged before exit");
    assert_eq!(sleep_line["status"], 200);
}

#[tokio::test]
async fn the_grace_period_bounds_shutdown() {
    let mut app = TestApp::spawn(&["--shutdown-grace", "200ms"]).await;
    let stuck = app.get_in_background("/sleep/30000", 1).await;
    app.terminate();
    let status = app.wait(Duration::from_secs(20));
    assert!(status.success(), "{status}");
    assert!(
        stuck.await.unwrap().is_err(),
        "the cut-off request fails on the client"
    );
    let logs = crate::helpers::read_json_lines(&app.dir.path().join("logs"));
    assert!(
        logs.iter()
            .any(|l| l["message"] == "grace period over; closing the remaining connections")
    );
}

#[tokio::test]
async fn overload_is_shed_with_503_and_retry_after() {
    let app = TestApp::spawn(&["--max-concurrency", "2"]).await;
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
    for sleeper in sleepers {
        assert_eq!(sleeper.await.unwrap().unwrap().status(), 200);
    }
    assert_eq!(app.get("/").await.status(), 200, "capacity comes back");
    assert_eq!(app.status().await["requests_shed_total"], 1);
}

#[tokio::test]
async fn slow_headers_are_cut_off() {
    let app = TestApp::spawn(&["--header-read-timeout", "300ms"]).await;
    let mut config = tls_client_config(&app.ca_path());
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
    let app = TestApp::spawn(&["--tls-handshake-timeout", "300ms"]).await;
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
    let app = TestApp::spawn(&[]).await;
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
    let mut first = TestApp::spawn(&["--cert-names", "glassbox-1,10.9.8.7"]).await;
    let ca = std::fs::read(first.ca_path()).unwrap();
    let names = first.get_json("/health").await.1["data"]["checks"]["certificate"]["names"].clone();
    assert!(names.as_array().unwrap().contains(&json!("glassbox-1")));
    assert!(names.as_array().unwrap().contains(&json!("10.9.8.7")));
    first.stop_and_read_logs();
    let dir = std::mem::replace(&mut first.dir, tempfile::tempdir().unwrap());
    drop(first);
    let second = TestApp::spawn_in(dir, &["--cert-names", "glassbox-1,10.9.8.7"]).await;
    assert_eq!(
        std::fs::read(second.ca_path()).unwrap(),
        ca,
        "the CA is reused"
    );
    assert_eq!(
        second.get("/").await.status(),
        200,
        "the old CA still verifies"
    );
}

fn glassbox(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_glassbox"))
        .args(args)
        .output()
        .expect("glassbox runs")
}

#[test]
fn the_certs_command_creates_then_reuses() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    let certs = certs.to_str().unwrap();
    let out = glassbox(&["certs", "--certs-dir", certs]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("created a new CA"), "{text}");
    assert!(text.contains("curl --cacert"), "{text}");
    for file in ["ca.crt", "ca.key", "server.crt", "server.key"] {
        assert!(dir.path().join("certs").join(file).exists(), "{file}");
    }
    assert!(!dir.path().join("logs").exists(), "certs does nothing else");
    let out = glassbox(&["certs", "--certs-dir", certs]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("nothing to do"));
}

#[test]
fn help_documents_every_contract_flag() {
    let out = glassbox(&["--help"]);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--bind",
        "--certs-dir",
        "--data-dir",
        "--log-dir",
        "GLASSBOX_BIND",
        "GLASSBOX_DATA_DIR",
        "--store",
        "--queue",
        "--workers",
        "GLASSBOX_QUEUE",
        "certs",
        "serve",
        "worker",
    ] {
        assert!(help.contains(flag), "{flag} missing from --help");
    }
}

#[test]
fn bad_configuration_is_a_clear_error() {
    let out = glassbox(&["--work-weights", "200:x"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a number"));
    let out = glassbox(&["--max-sleep", "forever"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--max-sleep"));
    let out = glassbox(&["--store", "postgres://db"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("redis://host:port/db"));
}

#[test]
fn a_worker_needs_a_redis_queue() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    let out = glassbox(&["worker", "--log-dir", &logs.to_string_lossy()]);
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("give --queue redis://host:port/db"), "{said}");
}
