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

/// An HTTP/1.0 client is served: `curl --http1.0` offers only `http/1.0` by ALPN, and a server
/// that knows just `h2` and `http/1.1` ends the handshake with `no_application_protocol`
/// (curl: "tlsv1 alert no application protocol"), as glassbox did. The handshake is counted
/// under the protocol it agreed.
#[tokio::test]
async fn curl_speaking_http_1_0_is_served() {
    let app = Process::spawn(&[]).await;
    let curl = |args: &[&str], path: &str| {
        let mut command = tokio::process::Command::new("curl");
        command
            .args(["--silent", "--show-error", "--http1.0", "--cacert"])
            .arg(&app.ca)
            .args(args)
            // curl writes HTTP/1.0 as `1`.
            .args(["--write-out", "\n%{http_code} %{http_version}"])
            .arg(app.url(path));
        async move {
            let output = command.output().await.expect("curl runs");
            assert!(
                output.status.success(),
                "{}",
                String::from_utf8_lossy(&output.stderr)
            );
            String::from_utf8(output.stdout).unwrap()
        }
    };
    assert_eq!(
        curl(&[], "/").await,
        "{\"result\":\"success\",\"data\":{\"message\":\"Hello, world!\"}}\n200 1"
    );
    let posted = curl(
        &[
            "-H",
            "Content-Type: application/json",
            "--data",
            r#"{"message": "foo"}"#,
        ],
        "/messages",
    )
    .await;
    assert!(
        posted.ends_with("\n201 1") && posted.contains("2c26b46b68ffc68f"),
        "{posted}"
    );
    let metrics = app.client.get(app.url("/metrics")).send().await.unwrap();
    let metrics = metrics.text().await.unwrap();
    assert!(
        metrics
            .lines()
            .any(|line| line.starts_with("glassbox_tls_handshakes_total{")
                && line.contains(r#"alpn="http/1.0""#)),
        "{metrics}"
    );
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

/// The README's upload command, as written there, with its file, CA and address put in.
fn readme_upload_command(ca: &std::path::Path, base: &str, file: &std::path::Path) -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("README.md");
    let lines: Vec<&str> = readme.lines().collect();
    let start = lines
        .iter()
        .position(|line| line.starts_with("curl ") && line.contains("text/plain"))
        .expect("the README shows a text/plain upload with curl");
    let mut command = String::new();
    for line in &lines[start..] {
        match line.strip_suffix('\\') {
            Some(continued) => command.push_str(continued),
            None => {
                command.push_str(line);
                break;
            }
        }
    }
    assert!(
        command.contains("/sum-evens"),
        "the README's first text/plain upload is not to /sum-evens: {command}"
    );
    command
        .replace("certs/ca.crt", &ca.display().to_string())
        .replace("https://localhost:8443", base)
        .replace("numbers.txt", &file.display().to_string())
}

/// The README's `POST /sum-evens` command, run as written, uploads a file of more than a GiB
/// and gets its exact sum: curl must stream it (`--data-binary @file` reads a file into curl's
/// memory, and curl 7.88 refuses one of a GiB or more).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_upload_command_streams_a_file_of_more_than_a_gib() {
    use std::io::Write;

    let app = Process::spawn(&[]).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("numbers.txt");
    // Two evens and an odd a line, 16 bytes: 1,025 MiB of them.
    let line = b"123456 -98764 7\n";
    let lines_per_mib = (1 << 20) / line.len();
    let block = line.repeat(lines_per_mib);
    let blocks = 1025;
    let mut out = std::io::BufWriter::new(std::fs::File::create(&file).unwrap());
    for _ in 0..blocks {
        out.write_all(&block).unwrap();
    }
    out.into_inner().unwrap().sync_all().unwrap();
    let lines = (lines_per_mib * blocks) as u64;

    let command = readme_upload_command(&app.ca, &app.url(""), &file);
    let output = tokio::process::Command::new("bash")
        .args(["-c", &format!("{command} --silent --show-error")])
        .output()
        .await
        .expect("bash and curl run");
    let answer = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{command}: {answer} {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let answer: serde_json::Value = serde_json::from_str(&answer).expect("the 201's JSON");
    let token = answer["token"].as_str().expect("a token");
    testkit::eventually("the sum to finish", || async {
        app.get_json(&format!("/sum-evens/{token}/status")).await.1["status"] == "finished"
    })
    .await;
    let (status, result) = app.get_json(&format!("/sum-evens/{token}/result")).await;
    assert_eq!(status, 200);
    assert_eq!(result["bytes"], lines * line.len() as u64);
    assert_eq!(result["numbers"], lines * 3);
    assert_eq!(result["evens"], lines * 2);
    assert_eq!(
        result["sum"].as_str().unwrap(),
        ((123_456 - 98_764) * lines).to_string()
    );
}
