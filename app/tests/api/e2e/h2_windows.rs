//! `--h2-stream-window` and `--h2-connection-window` are what glassbox announces to an HTTP/2
//! client (read with nghttp2's `nghttp -v`, which prints the frames it receives).

use std::process::Command;

use testkit::{Process, need};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http2_windows_announced_are_the_flags() {
    let nghttp = need(
        "nghttp",
        ".ci/run installs it (apt-get install nghttp2-client)",
    );
    let app = Process::spawn(&[
        "--h2-stream-window",
        "4MiB",
        "--h2-connection-window",
        "8MiB",
    ])
    .await;
    let url = app.url("/");
    let output = tokio::task::spawn_blocking(move || {
        Command::new(nghttp).args(["-nv", &url]).output().unwrap()
    })
    .await
    .unwrap();
    let frames = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{frames}");
    assert!(
        frames.contains("[SETTINGS_INITIAL_WINDOW_SIZE(0x04):4194304]"),
        "the stream window:\n{frames}"
    );
    // The connection window starts at the protocol's 65,535 bytes and is raised at once.
    let increment = (8u64 << 20) - 65_535;
    assert!(
        frames.contains(&format!("(window_size_increment={increment})")),
        "the connection window:\n{frames}"
    );
}
