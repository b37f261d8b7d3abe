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
