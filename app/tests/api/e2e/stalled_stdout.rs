//! The real binary with its stdout piped to a reader that never reads, as under a log shipper
//! that hung: requests keep being answered, the lines stdout could not take are counted, and
//! the file log keeps every line.

use std::process::Stdio;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use testkit::client::client_trusting;
use testkit::{eventually, free_port, read_json_lines};

/// Requests in flight at once.
const CONCURRENCY: usize = 16;
/// How long the service is driven.
const DRIVE: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stdout_nobody_reads_stops_no_request_and_loses_no_file_line() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = tokio::process::Command::from(testkit::glassbox::command())
        .arg("serve")
        .args(["--bind", &format!("127.0.0.1:{port}")])
        .arg("--certs-dir")
        .arg(dir.path().join("certs"))
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("--log-dir")
        .arg(dir.path().join("logs"))
        // The pipe is never read: its 64 KiB fill, then stdout's own backlog.
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("glassbox starts");
    let _unread = child.stdout.take();
    let ca = dir.path().join("certs/ca.crt");
    eventually("the service to listen", || async { ca.exists() }).await;
    let client = client_trusting(&ca);
    let url = |path: &str| format!("https://localhost:{port}{path}");
    eventually("the service to answer", || async {
        client.get(url("/health")).send().await.is_ok()
    })
    .await;

    // Long user agents make long access lines, so stdout's 16 MiB backlog fills quickly.
    let agent = "x".repeat(4000);
    let start = Instant::now();
    let latencies: Vec<Duration> = futures_util::stream::iter(0..)
        .take_while(|_| std::future::ready(start.elapsed() < DRIVE))
        .map(|_| {
            let request = client.get(url("/")).header("user-agent", &agent);
            async move {
                let sent = Instant::now();
                let response = request.send().await.expect("GET / is answered");
                assert_eq!(response.status(), 200);
                sent.elapsed()
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let mut sorted = latencies.clone();
    sorted.sort_unstable();
    let p99 = sorted[sorted.len() * 99 / 100];
    let made = latencies.len() as u64;
    assert!(
        p99 < Duration::from_millis(200),
        "p99 {p99:?} over {made} requests"
    );

    let status: serde_json::Value = client
        .get(url("/status"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let dropped = &status["data"]["log_lines_dropped"];
    assert!(
        dropped["stdout"].as_u64().unwrap() > 0,
        "{dropped} after {made} requests"
    );
    assert_eq!(dropped["file"], 0, "{dropped}");
    let metrics = client
        .get(url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        testkit::exposition::sample(
            &metrics,
            r#"glassbox_log_lines_dropped_total{sink="stdout"}"#
        )
        .unwrap()
            > 0.0
    );

    // SIGTERM: the file log gets every line, the warning among them.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id().unwrap() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let exit = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("glassbox stops although stdout never drains")
        .unwrap();
    assert!(exit.success(), "{exit:?}");
    let lines = read_json_lines(&dir.path().join("logs"));
    let requests = lines
        .iter()
        .filter(|l| l["message"] == "request" && l["path"] == "/")
        .count() as u64;
    assert_eq!(requests, made, "every GET / has its line in the file");
    assert!(
        lines.iter().any(|l| l["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("log lines dropped"))),
        "the drop was announced"
    );
    testkit::drill(
        "stdout piped to a reader that never reads; 16 clients for 10 s",
        "p99 < 200 ms; lost stdout lines counted; the file log loses none",
        &format!(
            "p99 {:.1} ms over {made} requests; {} stdout lines dropped; {requests} of {made} in the file",
            p99.as_secs_f64() * 1e3,
            dropped["stdout"]
        ),
    );
}
