//! What only the real binary has: signals and the grace period, a crash (SIGKILL) and the
//! restart after it, its own runtime's threads, and the commands besides `serve`.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::header::CONTENT_TYPE;
use serde_json::{Value, json};
use testkit::{Process, eventually};
use tokio::net::TcpStream;

use super::finished_lines;
use crate::contract::messages::{Target, sha256_hex};
use crate::contract::tasks::{Api, assert_randomized, distinct_png};

#[tokio::test]
async fn total_never_blocks_other_requests() {
    // One request thread: a sum running on it would stall every other request.
    let app = Process::spawn(&[
        "--io-threads",
        "1",
        "--total-latency",
        "0ms",
        "--total-count",
        "50000000",
    ])
    .await;
    let totals: Vec<_> = (0..4)
        .map(|_| {
            let client = app.client.clone();
            let url = app.url("/total");
            tokio::spawn(async move { client.get(url).send().await?.json::<Value>().await })
        })
        .collect();
    // Wait until the sum is under way: the /total requests are in flight.
    eventually("the totals to be in flight", || async {
        app.status().await["requests_in_flight"].as_u64() == Some(5)
    })
    .await;
    let mut answered = 0;
    while answered < 25 {
        assert_eq!(app.get("/").await.status(), 200);
        answered += 1;
    }
    assert!(
        totals.iter().all(|t| !t.is_finished()),
        "25 replies came back while the sums were still running"
    );
    let expected = 50_000_000u64 * 50_000_001 / 2;
    for total in totals {
        assert_eq!(total.await.unwrap().unwrap(), json!({"total": expected}));
    }
}

#[tokio::test]
async fn every_acknowledged_message_survives_sigkill() {
    let mut app = Process::spawn(&[]).await;
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

    let restarted = Process::spawn_in(app.take_dir(), &[]).await;
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
async fn a_restart_runs_queued_and_interrupted_tasks() {
    let mut app = Process::spawn(&["--workers", "1", "--randomize-delay", "30s"]).await;
    let (png, raw) = distinct_png(250, 190);
    let mut tokens = Vec::new();
    for _ in 0..3 {
        tokens.push(Api(&app).token(&png).await);
    }
    eventually("the first task to be running", || async {
        Api(&app).state(&tokens[0]).await == "received"
    })
    .await;
    app.kill();
    let restarted = Process::spawn_in(app.take_dir(), &["--workers", "2"]).await;
    let api = Api(&restarted);
    for token in &tokens {
        assert_eq!(api.wait_until_done(token).await, "finished", "{token}");
        let output = api.result(token).await.bytes().await.unwrap();
        assert_randomized(&raw, 250, 190, &output);
    }
    let attempts: BTreeMap<String, u64> = finished_lines(&restarted, tokens.len())
        .await
        .iter()
        .map(|l| {
            (
                l["token"].as_str().unwrap().to_owned(),
                l["attempts"].as_u64().unwrap(),
            )
        })
        .collect();
    // Log lines show a token's first eight digits (SPEC.md: logs keep no capabilities).
    let logged = |token: &String| format!("{}…", &token[..8]);
    assert_eq!(
        attempts[&logged(&tokens[0])],
        2,
        "the interrupted task ran a second time"
    );
    assert_eq!(attempts[&logged(&tokens[1])], 1);
}

#[tokio::test]
async fn graceful_shutdown_lets_an_in_flight_sleep_finish() {
    let mut app = Process::spawn(&[]).await;
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
    let logs = app.logs();
    let sleep_line = logs
        .iter()
        .find(|l| l["path"] == "/sleep/500")
        .expect("the drained request was logged before exit");
    assert_eq!(sleep_line["status"], 200);
}

#[tokio::test]
async fn the_grace_period_bounds_shutdown() {
    let mut app = Process::spawn(&["--shutdown-grace", "200ms"]).await;
    let stuck = app.get_in_background("/sleep/30000", 1).await;
    app.terminate();
    let status = app.wait(Duration::from_secs(20));
    assert!(status.success(), "{status}");
    assert!(
        stuck.await.unwrap().is_err(),
        "the cut-off request fails on the client"
    );
    let logs = app.logs();
    assert!(
        logs.iter()
            .any(|l| l["message"] == "grace period over; closing the remaining connections")
    );
}

fn glassbox(args: &[&str]) -> std::process::Output {
    testkit::glassbox::command()
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

/// A crash in the middle of an upload leaves its half-written spool file; the next start of
/// the service removes it (and a file of a task that has no record).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_cut_by_a_crash_leaves_nothing_after_a_restart() {
    let mut app = Process::spawn(&[]).await;
    let payloads = app.data_dir().join("tasks/payloads");
    let chunks = futures_util::stream::unfold(0u32, |n| async move {
        if n == 0 {
            Some((Ok::<_, std::io::Error>("2 4 6 8\n".repeat(100_000)), 1))
        } else {
            // Then nothing more: the upload hangs until the crash.
            std::future::pending::<()>().await;
            None
        }
    });
    let upload = app
        .client
        .post(app.url("/sum-evens"))
        .header("content-type", "text/plain")
        .body(reqwest::Body::wrap_stream(chunks))
        .send();
    let upload = tokio::spawn(upload);
    let spooling = || {
        std::fs::read_dir(&payloads)
            .unwrap()
            .filter_map(|e| e.ok())
            .any(|e| e.file_name().to_string_lossy().ends_with(".upload"))
    };
    testkit::eventually("the upload to be spooling", || async { spooling() }).await;
    app.kill();
    upload.abort();
    assert!(spooling(), "the crash left the half-written upload");
    let orphan = payloads.join("0123456789abcdef0123456789abcdef");
    std::fs::write(&orphan, b"no record has this token").unwrap();

    let restarted = Process::spawn_in(app.take_dir(), &[]).await;
    let left: Vec<_> = std::fs::read_dir(restarted.data_dir().join("tasks/payloads"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "left after the restart: {left:?}");
    assert_eq!(restarted.get("/health").await.status(), 200);
}

/// A randomize task that sleeps (`--randomize-delay`) as long as the test needs it running.
async fn submit_slow_task(app: &Process) -> String {
    let api = crate::contract::tasks::Api(app);
    let token = api
        .token(&crate::contract::tasks::distinct_png(8, 8).0)
        .await;
    testkit::eventually("the task to be running", || async {
        api.state(&token).await == "received"
    })
    .await;
    token
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_long_task_returns_within_the_grace_and_the_task_runs_again() {
    let mut app = Process::spawn(&["--shutdown-grace", "2s", "--randomize-delay", "60s"]).await;
    let token = submit_slow_task(&app).await;
    let start = std::time::Instant::now();
    app.terminate();
    let status = app.wait(Duration::from_secs(10));
    let took = start.elapsed();
    assert!(status.success(), "{status}");
    assert!(took < Duration::from_secs(4), "SIGTERM took {took:?}");

    let restarted = Process::spawn_in(app.take_dir(), &[]).await;
    let api = crate::contract::tasks::Api(&restarted);
    assert_eq!(api.wait_until_done(&token).await, "finished");
    let line = finished_lines(&restarted, 1).await.remove(0);
    assert_eq!(line["attempts"], 2, "{line}");
    testkit::drill(
        "SIGTERM while a task runs (--shutdown-grace 2s)",
        "exit within the grace + 2 s; the task runs again after the restart",
        &format!(
            "exited after {:.1} s; the task finished on attempt 2",
            took.as_secs_f64()
        ),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_over_its_time_limit_ends_errored_with_the_reason() {
    let app = Process::spawn(&["--randomize-delay", "30s", "--randomize-timeout", "1s"]).await;
    let api = crate::contract::tasks::Api(&app);
    let token = api
        .token(&crate::contract::tasks::distinct_png(8, 8).0)
        .await;
    assert_eq!(api.wait_until_done(&token).await, "errored");
    let (_, status) = api.status(&token).await;
    assert_eq!(
        status["error"], "timed out after 1s (--randomize-timeout)",
        "{status}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_whose_process_dies_more_often_than_the_attempt_limit_ends_errored() {
    let flags = ["--task-max-attempts", "2", "--randomize-delay", "60s"];
    let mut app = Process::spawn(&flags).await;
    let token = submit_slow_task(&app).await;
    app.kill();
    let mut again = Process::spawn_in(app.take_dir(), &flags).await;
    testkit::eventually("the task to run again", || async {
        crate::contract::tasks::Api(&again).state(&token).await == "received"
    })
    .await;
    again.kill();
    let last = Process::spawn_in(again.take_dir(), &flags).await;
    let api = crate::contract::tasks::Api(&last);
    let (_, status) = api.status(&token).await;
    assert_eq!(status["status"], "errored", "{status}");
    assert!(
        status["error"]
            .as_str()
            .unwrap()
            .contains("gave up after 2 attempts"),
        "{status}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn glassbox_serve_binds_the_admin_listener() {
    let port = testkit::free_port();
    let app = Process::spawn(&["--admin-bind", &format!("127.0.0.1:{port}")]).await;
    let admin =
        testkit::Endpoint::new(format!("127.0.0.1:{port}").parse().unwrap(), app.ca.clone());
    testkit::eventually("the admin listener", || async {
        admin.client.get(admin.url("/health")).send().await.is_ok()
    })
    .await;
    assert_eq!(admin.get("/metrics").await.status(), 200);
    assert_eq!(app.get("/metrics").await.status(), 404);
    assert_eq!(app.get("/").await.status(), 200);
    let listening = app
        .stdout_lines()
        .iter()
        .any(|l| l.contains("admin listening"));
    assert!(listening, "{:?}", app.stdout_lines());
}

#[tokio::test]
async fn a_corrupt_ca_key_stops_certs_and_serve_with_its_path_until_new_ca() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    let run = |args: &[&str]| {
        testkit::glassbox::command()
            .args(args)
            .arg("--certs-dir")
            .arg(&certs)
            .args(["--bind", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path().join("data"))
            .arg("--log-dir")
            .arg(dir.path().join("logs"))
            .output()
            .expect("glassbox runs")
    };
    assert!(run(&["certs"]).status.success());
    let ca_key = certs.join("ca.key");
    std::fs::write(&ca_key, "-----BEGIN PRIVATE KEY-----\nbroken\n").unwrap();
    let said = |output: &std::process::Output| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    };
    for command in ["certs", "serve"] {
        let output = run(&[command]);
        assert!(
            !output.status.success(),
            "{command} went on with a broken CA"
        );
        let text = said(&output);
        assert!(
            text.contains(&certs.display().to_string()) && text.contains("ca.key"),
            "{command}: {text}"
        );
        assert!(text.contains("--new-ca"), "{command}: {text}");
    }
    assert_eq!(
        std::fs::read_to_string(&ca_key).unwrap(),
        "-----BEGIN PRIVATE KEY-----\nbroken\n",
        "the CA was not replaced behind the user's back"
    );
    let output = run(&["certs", "--new-ca"]);
    assert!(output.status.success(), "{}", said(&output));
    assert!(said(&output).contains("created a new CA"));
}
