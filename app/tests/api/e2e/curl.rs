//! Debian's curl, the client users bring: it trusts the generated CA with no insecure flag.

use testkit::Process;

#[tokio::test]
async fn curl_works_with_the_ca_and_no_insecure_flag() {
    let app = Process::spawn(&[]).await;
    let output = tokio::process::Command::new("curl")
        .args(["--silent", "--show-error", "--fail", "--cacert"])
        .arg(&app.ca)
        .arg(app.url("/"))
        .output()
        .await
        .expect("curl is installed (.ci/run installs it)");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        r#"{"result":"success","data":{"message":"Hello, world!"}}"#
    );
    // The same through 127.0.0.1, which the certificate also names.
    let by_ip = format!("https://127.0.0.1:{}/health", app.addr.port());
    let output = tokio::process::Command::new("curl")
        .args(["--silent", "--fail", "--cacert"])
        .arg(&app.ca)
        .arg(by_ip)
        .output()
        .await
        .unwrap();
    assert!(output.status.success());
}

/// Answers the route table hands straight to their handler, without axum's router (which
/// would add the `Content-Length` itself), carry one over either protocol: hyper writes it
/// from the body's size.
#[tokio::test]
async fn answers_carry_their_length_over_both_protocols() {
    let app = Process::spawn(&[]).await;
    for http in ["--http1.1", "--http2"] {
        for path in ["/", "/fibonacci/10/", "/code/418", "/sleep/abc"] {
            let output = tokio::process::Command::new("curl")
                .args(["--silent", "--show-error", http, "--cacert"])
                .arg(&app.ca)
                .args(["--dump-header", "-", "--output", "/dev/null"])
                .args(["--write-out", "size %{size_download}\n"])
                .arg(app.url(path))
                .output()
                .await
                .expect("curl runs");
            let text = String::from_utf8_lossy(&output.stdout).to_lowercase();
            let header = |name: &str| {
                text.lines()
                    .find_map(|line| line.strip_prefix(name))
                    .map(str::trim)
                    .map(str::to_owned)
            };
            let length = header("content-length:");
            let size = header("size ");
            assert!(
                length.is_some(),
                "{http} {path}: no content-length in {text}"
            );
            assert_eq!(length, size, "{http} {path}: {text}");
        }
    }
}
