//! `--tls-cert` and `--tls-key`: the operator's own certificate, made here by `openssl req
//! -x509` and trusted by curl alone, served as it is and read again without a restart when its
//! files change or on SIGHUP; a pair that cannot be used is refused while the old one serves.

use std::path::{Path, PathBuf};
use std::process::Command;

use testkit::{Process, eventually};

/// A self-signed certificate and key for localhost, made by Debian's openssl; `name` is its
/// subject's common name, so the pairs can be told apart.
fn openssl_pair(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let cert = dir.join(format!("{name}.crt"));
    let key = dir.join(format!("{name}.key"));
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "30", "-subj"])
        .arg(format!("/CN={name}"))
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl is installed (.ci/run installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (cert, key)
}

/// Puts `from` in place of `to` in one step, as a deployment tool would.
fn replace(from: &Path, to: &Path) {
    let tmp = to.with_extension("new");
    std::fs::copy(from, &tmp).unwrap();
    std::fs::rename(&tmp, to).unwrap();
}

/// curl, trusting only `ca`: the body, or curl's error.
fn curl(ca: &Path, url: &str) -> Result<String, String> {
    let out = Command::new("curl")
        .args([
            "--silent",
            "--show-error",
            "--fail",
            "--max-time",
            "5",
            "--cacert",
        ])
        .arg(ca)
        .arg(url)
        .output()
        .expect("curl runs");
    match out.status.success() {
        true => Ok(String::from_utf8_lossy(&out.stdout).into_owned()),
        false => Err(String::from_utf8_lossy(&out.stderr).into_owned()),
    }
}

fn reloads(metrics: &str, result: &str) -> u64 {
    let prefix = format!("glassbox_certificate_reloads_total{{result=\"{result}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map_or(0, |v| v.trim().parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operators_certificate_is_served_and_reloaded_without_a_restart() {
    let own = tempfile::tempdir().unwrap();
    let (a_cert, a_key) = openssl_pair(own.path(), "pair-a");
    let (b_cert, b_key) = openssl_pair(own.path(), "pair-b");
    // The served files: pair A at first.
    let cert = own.path().join("served.crt");
    let key = own.path().join("served.key");
    replace(&a_cert, &cert);
    replace(&a_key, &key);
    let (cert_arg, key_arg) = (cert.to_str().unwrap(), key.to_str().unwrap());
    let app = Process::spawn(&["--tls-cert", cert_arg, "--tls-key", key_arg]).await;
    let url = |path: &str| app.url(path);

    // curl trusts pair A and nothing else; no local CA was made.
    let hello = curl(&a_cert, &url("/")).expect("curl trusts the operator's certificate");
    assert!(hello.contains("Hello, world!"), "{hello}");
    assert!(curl(&b_cert, &url("/")).is_err());
    assert!(!app.dir.path().join("certs/ca.crt").exists(), "no local CA");
    let health: serde_json::Value =
        serde_json::from_str(&curl(&a_cert, &url("/health")).unwrap()).unwrap();
    let check = &health["data"]["checks"]["certificate"];
    assert_eq!(check["status"], "pass", "{health}");
    assert_eq!(check["source"], "tls_cert", "{health}");
    let days = check["days_remaining"].as_i64().unwrap();
    assert!((29..=30).contains(&days), "{health}");

    // A new pair in place: served from the next handshake on.
    replace(&b_key, &key);
    replace(&b_cert, &cert);
    eventually("pair B is served", || async {
        curl(&b_cert, &url("/")).is_ok()
    })
    .await;
    assert!(
        curl(&a_cert, &url("/")).is_err(),
        "pair A is no longer served"
    );
    let metrics = curl(&b_cert, &url("/metrics")).unwrap();
    assert!(reloads(&metrics, "ok") >= 1, "{metrics}");

    // A broken key: refused, logged, counted; pair B serves on.
    std::fs::write(
        &key,
        "-----BEGIN PRIVATE KEY-----\nbroken\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    eventually("the broken pair is refused", || async {
        reloads(&curl(&b_cert, &url("/metrics")).unwrap(), "error") >= 1
    })
    .await;
    assert!(
        curl(&b_cert, &url("/")).is_ok(),
        "the old pair keeps serving"
    );
    eventually("the refusal is logged with the key's path", || async {
        app.stdout_lines().iter().any(|l| {
            l.contains("certificate reload failed")
                && l.contains(key_arg)
                && l.contains("file_change")
        })
    })
    .await;

    // SIGHUP asks for a reload whatever the files' times say.
    let status = Command::new("kill")
        .args(["-HUP", &app.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    eventually("SIGHUP's reload is logged", || async {
        app.stdout_lines()
            .iter()
            .any(|l| l.contains("certificate reload failed") && l.contains("sighup"))
    })
    .await;
    assert!(
        curl(&b_cert, &url("/")).is_ok(),
        "SIGHUP did not stop the service"
    );

    // Pair A again, whole: served.
    replace(&a_key, &key);
    replace(&a_cert, &cert);
    eventually("pair A is served again", || async {
        curl(&a_cert, &url("/")).is_ok()
    })
    .await;
}

#[test]
fn a_tls_cert_without_its_key_is_a_usage_error() {
    let out = testkit::glassbox::command()
        .args(["serve", "--tls-cert", "/nonexistent.crt"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--tls-key"));
}

#[test]
fn an_unreadable_tls_cert_exits_78_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, _) = openssl_pair(dir.path(), "mismatched");
    let (_, other_key) = openssl_pair(dir.path(), "other");
    let out = testkit::glassbox::command()
        .args(["serve", "--bind", "127.0.0.1:0", "--log-dir"])
        .arg(dir.path().join("logs"))
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("--tls-cert")
        .arg(&cert)
        .arg("--tls-key")
        .arg(&other_key)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{stderr}");
    assert!(
        stderr.contains("does not belong to") && stderr.contains("GLASSBOX_TLS_CERT"),
        "{stderr}"
    );
}
