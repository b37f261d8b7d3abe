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

/// `/status`'s `log_lines_dropped`: lines each sink lost.
async fn dropped_lines(client: &reqwest::Client, status_url: &str) -> serde_json::Value {
    let status: serde_json::Value = client
        .get(status_url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    status["data"]["log_lines_dropped"].clone()
}

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

    // Long user agents and paths make long access lines (about 1 KB: both are logged cut to
    // their bound), so stdout's 16 MiB backlog fills within seconds; the service is driven for
    // `DRIVE`, or longer until stdout has lost lines.
    let agent = "x".repeat(4000);
    let path = format!("/{}", "p".repeat(600));
    let start = Instant::now();
    let status_url = url("/status");
    let latencies: Vec<Duration> = futures_util::stream::iter(0u64..)
        .take_while(|n| {
            let (n, client, status_url) = (*n, client.clone(), status_url.clone());
            async move {
                let driven = start.elapsed();
                if driven < DRIVE {
                    return true;
                }
                // From the 10th second on, every 1,000 requests: until stdout lost lines.
                if n % 1000 != 0 || driven > DRIVE * 4 {
                    return driven <= DRIVE * 4 && n % 1000 != 0;
                }
                dropped_lines(&client, &status_url).await["stdout"] == 0
            }
        })
        .map(|_| {
            let request = client.get(url(&path)).header("user-agent", &agent);
            async move {
                let sent = Instant::now();
                let response = request.send().await.expect("the request is answered");
                assert_eq!(response.status(), 404);
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

    let dropped = &dropped_lines(&client, &status_url).await;
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
        .filter(|l| l["message"] == "request" && l["route"] == "unmatched")
        .count() as u64;
    assert_eq!(requests, made, "every request has its line in the file");
    assert!(
        lines.iter().any(|l| l["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("log lines dropped"))),
        "the drop was announced"
    );
    testkit::drill(
        "stdout piped to a reader that never reads; 16 clients for 10 s or until lines are lost",
        "p99 < 200 ms; lost stdout lines counted; the file log loses none",
        &format!(
            "p99 {:.1} ms over {made} requests; {} stdout lines dropped; {requests} of {made} in the file",
            p99.as_secs_f64() * 1e3,
            dropped["stdout"]
        ),
    );
}
