//! Starts the real `glassbox` binary on a free loopback port with its own directories, and
//! talks to it over TLS trusting only the CA it generated.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use serde_json::Value;

/// A running glassbox process.
pub struct TestApp {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    pub dir: tempfile::TempDir,
    child: Child,
    stdout: Arc<Mutex<Vec<String>>>,
}

pub fn install_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

impl TestApp {
    /// Starts glassbox with quiet-by-default test settings plus `args`.
    pub async fn spawn(args: &[&str]) -> TestApp {
        let dir = tempfile::tempdir().expect("temp dir");
        Self::spawn_in(dir, args).await
    }

    /// Starts glassbox using `dir` for certificates, data and logs.
    pub async fn spawn_in(dir: tempfile::TempDir, args: &[&str]) -> TestApp {
        let data = dir.path().join("data");
        Self::spawn_command("serve", dir, &data, args).await
    }

    /// Starts `glassbox worker` in its own directory, on the data directory `data` (which it
    /// shares with the service that queues the tasks).
    pub async fn spawn_worker(data: &Path, args: &[&str]) -> TestApp {
        let dir = tempfile::tempdir().expect("temp dir");
        Self::spawn_command("worker", dir, data, args).await
    }

    /// The data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    async fn spawn_command(
        subcommand: &str,
        dir: tempfile::TempDir,
        data: &Path,
        args: &[&str],
    ) -> TestApp {
        install_provider();
        let path = |sub: &str| dir.path().join(sub).to_string_lossy().into_owned();
        let mut command = Command::new(env!("CARGO_BIN_EXE_glassbox"));
        for (key, _) in std::env::vars() {
            if key.starts_with("GLASSBOX_") {
                command.env_remove(key);
            }
        }
        command
            .args([subcommand, "--bind", "127.0.0.1:0"])
            .args(["--certs-dir", &path("certs")])
            .args(["--data-dir", &data.to_string_lossy()])
            .args(["--log-dir", &path("logs")])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = command.spawn().expect("glassbox starts");
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let (ready_tx, ready_rx) = mpsc::channel();
        let reader = BufReader::new(child.stdout.take().expect("piped stdout"));
        let lines = stdout.clone();
        std::thread::spawn(move || {
            for line in reader.lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<Value>(&line)
                    && v["message"] == "listening"
                {
                    let _ = ready_tx.send(v["addr"].as_str().unwrap_or_default().to_owned());
                }
                lines.lock().unwrap().push(line);
            }
        });
        let Ok(addr) = ready_rx.recv_timeout(Duration::from_secs(60)) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("glassbox did not log `listening` with its address within a minute");
        };
        let addr: SocketAddr = addr.parse().expect("a socket address");
        let client = client_trusting(&dir.path().join("certs/ca.crt"));
        TestApp {
            addr,
            client,
            dir,
            child,
            stdout,
        }
    }

    pub fn ca_path(&self) -> PathBuf {
        self.dir.path().join("certs/ca.crt")
    }

    /// `https://localhost:PORT{path}`: the name the certificate is checked against.
    pub fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.addr.port())
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("GET completes")
    }

    pub async fn post(&self, path: &str) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .send()
            .await
            .expect("POST completes")
    }

    /// `GET path` and its JSON body.
    pub async fn get_json(&self, path: &str) -> (u16, Value) {
        let response = self.get(path).await;
        let status = response.status().as_u16();
        (status, response.json().await.expect("a JSON body"))
    }

    /// Starts `GET path` in the background and returns once the service is serving it
    /// (`in_flight` requests besides the `/status` poll itself).
    pub async fn get_in_background(
        &self,
        path: &str,
        in_flight: u64,
    ) -> tokio::task::JoinHandle<reqwest::Result<reqwest::Response>> {
        let request = self.client.get(self.url(path)).send();
        let handle = tokio::spawn(request);
        eventually("the request to be in flight", || async {
            self.status().await["requests_in_flight"].as_u64() == Some(in_flight + 1)
        })
        .await;
        handle
    }

    pub async fn status(&self) -> Value {
        let (code, body) = self.get_json("/status").await;
        assert_eq!(code, 200);
        body["data"].clone()
    }

    pub async fn metrics(&self) -> String {
        self.get("/metrics")
            .await
            .text()
            .await
            .expect("metrics text")
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM).expect("signal delivered");
    }

    /// Waits for the process to exit, at most `limit`.
    pub fn wait(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "glassbox did not exit within {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the process and returns every JSON line of its log files.
    pub fn stop_and_read_logs(&mut self) -> Vec<Value> {
        self.terminate();
        let status = self.wait(Duration::from_secs(30));
        assert!(status.success(), "glassbox exited with {status}");
        read_json_lines(&self.dir.path().join("logs"))
    }

    /// Kills the process with SIGKILL, as a crash or the OOM killer would, and reaps it.
    pub fn kill(&mut self) {
        kill(Pid::from_raw(self.child.id() as i32), Signal::SIGKILL).expect("signal delivered");
        let _ = self.child.wait();
    }

    /// The directory the process used (certificates, data, logs), to start another in it.
    pub fn take_dir(&mut self) -> tempfile::TempDir {
        std::mem::replace(&mut self.dir, tempfile::tempdir().expect("temp dir"))
    }

    /// Lines printed to stdout so far.
    pub fn stdout_lines(&self) -> Vec<String> {
        self.stdout.lock().unwrap().clone()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every line of every file in `dir`, each of which must be JSON.
pub fn read_json_lines(dir: &Path) -> Vec<Value> {
    let mut lines = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("log dir exists")
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for file in files {
        for line in std::fs::read_to_string(&file).unwrap().lines() {
            let value: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{}: not JSON ({e}): {line}", file.display()));
            lines.push(value);
        }
    }
    lines
}

pub fn root_store(ca: &Path) -> rustls::RootCertStore {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).expect("CA file") {
        roots.add(cert.expect("CA pem")).expect("CA accepted");
    }
    roots
}

/// A rustls client configuration that trusts only `ca`.
pub fn tls_client_config(ca: &Path) -> rustls::ClientConfig {
    install_provider();
    rustls::ClientConfig::builder()
        .with_root_certificates(root_store(ca))
        .with_no_client_auth()
}

/// An HTTP client that trusts only `ca` (no system roots, no "accept invalid").
pub fn client_trusting(ca: &Path) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls_client_config(ca))
        .timeout(Duration::from_secs(60))
        // Below the service's 10 s header-read timeout, which also ends idle keep-alive
        // connections: a pooled connection is never reused just as the service closes it.
        .pool_idle_timeout(Duration::from_secs(5))
        .build()
        .expect("client builds")
}

/// Like [`client_trusting`], offering HTTP/2 and HTTP/1.1 by ALPN as browsers and curl do.
pub fn alpn_client_trusting(ca: &Path) -> reqwest::Client {
    let mut config = tls_client_config(ca);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    reqwest::Client::builder()
        .tls_backend_preconfigured(config)
        .timeout(Duration::from_secs(60))
        // Below the service's 10 s header-read timeout, which also ends idle keep-alive
        // connections: a pooled connection is never reused just as the service closes it.
        .pool_idle_timeout(Duration::from_secs(5))
        .build()
        .expect("client builds")
}

/// Finds the value of a Prometheus sample by its exact name and label set.
pub fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|line| {
        let (name, value) = line.rsplit_once(' ')?;
        (name == series).then(|| value.parse().ok()).flatten()
    })
}

/// Polls `check` until it holds, failing after a generous bound (for effects that land
/// asynchronously, such as a counter bumped by another task).
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `name` on PATH or in the system directories Debian installs programs into.
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/usr/bin".into(), "/sbin".into()])
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// [`which`], failing the test with how to install `name` when it is missing.
pub fn find_program(name: &str) -> PathBuf {
    which(name).unwrap_or_else(|| {
        panic!("`{name}` is not installed; `.ci/run` installs it (apt-get install {name})")
    })
}
