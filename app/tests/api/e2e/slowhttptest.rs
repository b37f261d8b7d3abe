//! Debian's `slowhttptest` against glassbox: slow bodies (R-U-Dead-Yet) and slow headers
//! (Slowloris) from 127.0.0.1, while another address keeps being served.

use std::time::{Duration, Instant};

use testkit::client::client_from;
use testkit::{InProcess, eventually};

/// Runs slowhttptest in `mode` (`-B` or `-H`) for 12 s against `url`: 150 connections, each
/// sending a little every 2 s. Meanwhile `/` and `/health` are asked from 127.0.0.2; returns
/// how many of those answered 200 of how many were asked, and the most permits 127.0.0.1 held.
async fn attack(app: &InProcess, mode: &str, url: &str) -> (usize, usize, u64) {
    let tool = testkit::need("slowhttptest", "apt-get install slowhttptest");
    let mut run = tokio::process::Command::new(tool)
        .args([
            mode, "-c", "150", "-r", "150", "-i", "2", "-l", "12", "-p", "3",
        ])
        .args(["-s", "100000", "-f", "application/json", "-u", url])
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("slowhttptest starts");
    let other = client_from(&app.ca, "127.0.0.2".parse().unwrap());
    let (mut asked, mut served, mut held) = (0, 0, 0);
    let start = Instant::now();
    // Probe once the attack is under way, until just before it ends.
    tokio::time::sleep(Duration::from_secs(2)).await;
    while start.elapsed() < Duration::from_secs(11) {
        for path in ["/", "/health"] {
            asked += 1;
            let status = other.get(app.url(path)).send().await.map(|r| r.status());
            served += usize::from(status.is_ok_and(|s| s == 200));
        }
        let status = app.status().await;
        held = held.max(status["limits"]["permits_in_use"].as_u64().unwrap());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let exit = tokio::time::timeout(Duration::from_secs(30), run.wait())
        .await
        .expect("slowhttptest stops by itself")
        .unwrap();
    assert!(exit.success(), "slowhttptest: {exit}");
    (served, asked, held)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_bodies_and_slow_headers_from_slowhttptest_leave_others_served() {
    let app = InProcess::start(&[
        "--max-concurrency",
        "64",
        "--client-share",
        "0.5",
        "--header-read-timeout",
        "3s",
    ])
    .await;
    let url = app.url("/messages");

    // Slow bodies: each a few bytes every 2 s, never done. Progress keeps a body under
    // --body-timeout, so the client's share is what bounds them.
    let (served, asked, held) = attack(&app, "-B", &url).await;
    assert_eq!(served, asked, "127.0.0.2 was refused during slow bodies");
    assert!(
        held <= 32,
        "slow bodies held {held} permits, over the share"
    );
    assert!(
        held >= 16,
        "the attack did hold permits ({held}): the test tried"
    );
    eventually("the slow bodies' permits to be free", || async {
        app.status().await["limits"]["permits_in_use"] == 0
    })
    .await;
    testkit::drill(
        "slowhttptest -B (slow bodies): 150 connections from 127.0.0.1 for 12 s",
        "127.0.0.1 holds at most its share (32 of 64); 127.0.0.2 served throughout",
        &format!(
            "held at most {held}; 127.0.0.2 got {served} of {asked} x 200; permits free after"
        ),
    );

    // Slow headers: a header line every 2 s; each connection is cut at --header-read-timeout.
    let (served, asked, _) = attack(&app, "-H", &url).await;
    assert_eq!(served, asked, "127.0.0.2 was refused during slow headers");
    let status = app.status().await;
    let cut = status["connections"]["closed_total"]["header_timeout"]
        .as_u64()
        .unwrap();
    assert!(cut >= 150, "slow heads cut: {status}");
    testkit::drill(
        "slowhttptest -H (slow headers): 150 connections from 127.0.0.1 for 12 s",
        "heads cut at --header-read-timeout 3s; 127.0.0.2 served throughout",
        &format!("{cut} connections cut; 127.0.0.2 got {served} of {asked} x 200"),
    );
}
