//! A glassbox to talk to: in this process ([`InProcess`]) or as the real binary ([`Process`]),
//! each on a free loopback port with its own certificates, data and logs, behind an
//! [`Endpoint`] that trusts only the CA it generated.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::client::client_trusting;
use crate::exposition::Exposition;
use crate::tools::eventually;

/// Where a glassbox listens, and a client that trusts its CA.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    /// The CA the service generated.
    pub ca: PathBuf,
}

/// The entry of `route` (a template) in `/status`'s `routes`, or `null` when it has none.
pub fn route_in(status: &Value, route: &str) -> Value {
    status["routes"]
        .as_array()
        .and_then(|routes| routes.iter().find(|r| r["route"] == route))
        .cloned()
        .unwrap_or(Value::Null)
}

impl Endpoint {
    /// The service at `addr`, trusting only `ca`.
    pub fn new(addr: SocketAddr, ca: PathBuf) -> Self {
        Self {
            addr,
            client: client_trusting(&ca),
            ca,
        }
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
    ) -> JoinHandle<reqwest::Result<reqwest::Response>> {
        let request = self.client.get(self.url(path)).send();
        let handle = tokio::spawn(request);
        eventually("the request to be in flight", || async {
            self.status().await["requests_in_flight"].as_u64() == Some(in_flight + 1)
        })
        .await;
        handle
    }

    /// The `data` of `/status`.
    pub async fn status(&self) -> Value {
        let (code, body) = self.get_json("/status").await;
        assert_eq!(code, 200);
        body["data"].clone()
    }

    /// `/metrics` as text.
    pub async fn metrics(&self) -> String {
        self.get("/metrics")
            .await
            .text()
            .await
            .expect("metrics text")
    }

    /// `/metrics`, parsed.
    pub async fn scrape(&self) -> Exposition {
        Exposition::parse(&self.metrics().await)
    }
}

/// The flags every test glassbox starts with: its own directories under `dir`, a free port.
fn base_args(dir: &Path, data: &Path) -> Vec<String> {
    let path = |sub: &str| dir.join(sub).display().to_string();
    vec![
        "--bind".into(),
        "127.0.0.1:0".into(),
        "--certs-dir".into(),
        path("certs"),
        "--data-dir".into(),
        data.display().to_string(),
        "--log-dir".into(),
        path("logs"),
    ]
}

/// A glassbox serving in this process, as `glassbox serve` would: the same
/// [`glassbox::service::Service`], on a free loopback port, until [`InProcess::stop`] or drop.
/// It writes no log lines (the process-wide log subscriber is the binary's to install).
#[derive(Debug)]
pub struct InProcess {
    endpoint: Endpoint,
    /// The admin listener, when started with `--admin-bind` (its address is a free port
    /// chosen here, whatever the flag said).
    pub admin: Option<Endpoint>,
    pub dir: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
    running: Option<JoinHandle<anyhow::Result<()>>>,
}

impl InProcess {
    /// Starts a service with `args` (glassbox's flags) in a new temporary directory.
    pub async fn start(args: &[&str]) -> Self {
        Self::start_in(tempfile::tempdir().expect("temp dir"), args).await
    }

    /// Starts a service using `dir` for certificates, data and logs (again, after a stop).
    pub async fn start_in(dir: tempfile::TempDir, args: &[&str]) -> Self {
        crate::client::install_provider();
        let mut argv = vec!["glassbox".to_owned()];
        argv.extend(base_args(dir.path(), &dir.path().join("data")));
        argv.extend(args.iter().map(|a| (*a).to_owned()));
        let config = glassbox::config::try_parse_from(&argv)
            .unwrap_or_else(|e| panic!("{argv:?}: {e}"))
            .1;
        let wants_admin = config.admin_bind.is_some();
        let service = glassbox::service::Service::serve(config).expect("the service builds");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port");
        let addr = listener.local_addr().expect("bound");
        let admin_listener = match wants_admin {
            true => Some(
                tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("a loopback port"),
            ),
            false => None,
        };
        let admin = admin_listener.as_ref().map(|l| {
            Endpoint::new(
                l.local_addr().expect("bound"),
                dir.path().join("certs/ca.crt"),
            )
        });
        let (stop, stopped) = oneshot::channel::<()>();
        let running = tokio::spawn(service.run_with_admin(listener, admin_listener, async {
            let _ = stopped.await;
        }));
        Self {
            endpoint: Endpoint::new(addr, dir.path().join("certs/ca.crt")),
            admin,
            dir,
            stop: Some(stop),
            running: Some(running),
        }
    }

    /// Stops the service as SIGTERM would (in-flight requests and running tasks get the grace
    /// period) and waits until everything it started has stopped; returns its directory.
    pub async fn stop(mut self) -> tempfile::TempDir {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(running) = self.running.take() {
            running
                .await
                .expect("the service task")
                .expect("the service stops cleanly");
        }
        std::mem::replace(&mut self.dir, tempfile::tempdir().expect("temp dir"))
    }

    /// The data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }
}

impl Deref for InProcess {
    type Target = Endpoint;

    fn deref(&self) -> &Endpoint {
        &self.endpoint
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        // The service stops in the background: connections drain, workers finish.
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The real `glassbox` binary, started on a free loopback port with its own directories; for
/// what only a process has: signals, exit codes, log files and stdout, crashes.
#[derive(Debug)]
pub struct Process {
    endpoint: Endpoint,
    pub dir: tempfile::TempDir,
    child: Child,
    stdout: Arc<Mutex<Vec<String>>>,
}

/// A command running the `glassbox` binary, with no `GLASSBOX_*` variable of the test's
/// environment.
pub fn command() -> Command {
    command_via(&[])
}

/// [`command`], run through `wrapper` (such as `prlimit --nofile=256`).
pub fn command_via(wrapper: &[&str]) -> Command {
    let mut command = match wrapper.split_first() {
        Some((program, args)) => {
            let mut command = Command::new(program);
            command.args(args).arg(binary());
            command
        }
        None => Command::new(binary()),
    };
    for (key, _) in std::env::vars() {
        if key.starts_with("GLASSBOX_") {
            command.env_remove(key);
        }
    }
    command
}

/// The `glassbox` binary next to the running test (cargo builds it for the glassbox crate's
/// integration tests).
fn binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the test's path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("tests run from target/<profile>/deps");
    let binary = dir.join(format!("glassbox{}", std::env::consts::EXE_SUFFIX));
    assert!(
        binary.is_file(),
        "{} is missing: run the glassbox crate's tests, which build it",
        binary.display()
    );
    binary
}

impl Process {
    /// Starts `glassbox serve` with quiet-by-default test settings plus `args`.
    pub async fn spawn(args: &[&str]) -> Process {
        Self::spawn_in(tempfile::tempdir().expect("temp dir"), args).await
    }

    /// Starts `glassbox serve` using `dir` for certificates, data and logs.
    pub async fn spawn_in(dir: tempfile::TempDir, args: &[&str]) -> Process {
        let data = dir.path().join("data");
        Self::spawn_command(&[], "serve", dir, &data, args).await
    }

    /// Starts `glassbox serve` through `wrapper` (a program that runs the rest of its command
    /// line, such as `prlimit --nofile=256`).
    pub async fn spawn_via(wrapper: &[&str], args: &[&str]) -> Process {
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().join("data");
        Self::spawn_command(wrapper, "serve", dir, &data, args).await
    }

    /// Starts `glassbox worker` in its own directory, on the data directory `data` (which it
    /// shares with the service that queues the tasks).
    pub async fn spawn_worker(data: &Path, args: &[&str]) -> Process {
        let dir = tempfile::tempdir().expect("temp dir");
        Self::spawn_command(&[], "worker", dir, data, args).await
    }

    async fn spawn_command(
        wrapper: &[&str],
        subcommand: &str,
        dir: tempfile::TempDir,
        data: &Path,
        args: &[&str],
    ) -> Process {
        crate::client::install_provider();
        let mut command = command_via(wrapper);
        command
            .arg(subcommand)
            .args(base_args(dir.path(), data))
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
        // What to trust: the operator's certificate when one is given, else the local CA.
        let ca = args
            .iter()
            .position(|a| *a == "--tls-cert")
            .and_then(|at| args.get(at + 1))
            .map_or_else(|| dir.path().join("certs/ca.crt"), PathBuf::from);
        // A process whose client cannot be made is not left running.
        let endpoint = match std::panic::catch_unwind(|| Endpoint::new(addr, ca)) {
            Ok(endpoint) => endpoint,
            Err(panic) => {
                let _ = child.kill();
                let _ = child.wait();
                std::panic::resume_unwind(panic);
            }
        };
        Process {
            endpoint,
            dir,
            child,
            stdout,
        }
    }

    /// The data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident memory now, in bytes (`VmRSS`).
    pub fn rss_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("the process is running");
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/PID/status");
        kib * 1024
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

    /// Every JSON line of its log files so far.
    pub fn logs(&self) -> Vec<Value> {
        read_json_lines(&self.dir.path().join("logs"))
    }

    /// Stops the process and returns every JSON line of its log files.
    pub fn stop_and_read_logs(&mut self) -> Vec<Value> {
        self.terminate();
        let status = self.wait(Duration::from_secs(30));
        assert!(status.success(), "glassbox exited with {status}");
        self.logs()
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

impl Deref for Process {
    type Target = Endpoint;

    fn deref(&self) -> &Endpoint {
        &self.endpoint
    }
}

impl Drop for Process {
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
