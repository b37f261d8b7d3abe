//! Prometheus's own linter, `promtool check metrics`, on a real scrape.

use testkit::Process;

#[tokio::test]
async fn metrics_pass_the_prometheus_linter() {
    let app = Process::spawn(&[]).await;
    for path in ["/", "/code/503", "/nope", "/sleep/1", "/fibonacci/3"] {
        app.get(path).await;
    }
    let metrics = app.metrics().await;
    let mut lint = tokio::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool is installed (.ci/run installs Debian's prometheus package)");
    use tokio::io::AsyncWriteExt;
    let mut stdin = lint.stdin.take().unwrap();
    stdin.write_all(metrics.as_bytes()).await.unwrap();
    drop(stdin);
    let output = lint.wait_with_output().await.unwrap();
    assert!(
        output.status.success() && output.stdout.is_empty() && output.stderr.is_empty(),
        "promtool check metrics:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
