//! The real servers glassbox ships configuration for, started by the tests on free loopback
//! ports and stopped when dropped: Redis, nginx and Prometheus.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;

use crate::tools::{free_port, need, repo};

fn find_program(name: &str) -> std::path::PathBuf {
    need(
        name,
        &format!(".ci/run installs it (apt-get install {name})"),
    )
}

/// SIGTERM, as a service manager would; SIGKILL after ten seconds.
fn stop(child: &mut Child) {
    let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// A `redis-server` with its own directory and an append-only file, so it keeps its data
/// across a stop and start.
#[derive(Debug)]
pub struct Redis {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Redis {
    pub fn start() -> Redis {
        let mut redis = Redis {
            port: free_port(),
            dir: tempfile::tempdir().expect("temp dir"),
            child: None,
        };
        redis.restart();
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Starts the server (again) on the same port and directory and waits until it answers.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "redis is running");
        let dir = self.dir.path().to_string_lossy().into_owned();
        let child = Command::new(find_program("redis-server"))
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--dir", &dir, "--logfile", "redis.log"])
            .args(["--save", "", "--appendonly", "yes", "--daemonize", "no"])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.answers_ping() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not answer PING on port {} (see {dir}/redis.log)",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the server (SIGTERM, as a service manager would) and waits for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop(&mut child);
        }
    }

    /// `CONFIG SET name value` on the running server, such as `maxmemory 1` to make it full.
    pub fn config_set(&self, name: &str, value: &str) {
        assert_eq!(
            self.command(&["CONFIG", "SET", name, value]).as_deref(),
            Some("OK"),
            "CONFIG SET {name} {value}"
        );
    }

    /// One command on the running server and its reply, for commands that answer a single
    /// value: a status, an integer or a string as text, `None` for nil. An error reply panics.
    pub fn command(&self, parts: &[&str]) -> Option<String> {
        let conn = TcpStream::connect(("127.0.0.1", self.port)).expect("redis answers");
        let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
        let mut command = format!("*{}\r\n", parts.len());
        for part in parts {
            command.push_str(&format!("${}\r\n{part}\r\n", part.len()));
        }
        (&conn).write_all(command.as_bytes()).unwrap();
        let mut reader = std::io::BufReader::new(&conn);
        let mut line = String::new();
        std::io::BufRead::read_line(&mut reader, &mut line).unwrap();
        let (kind, rest) = line.trim_end().split_at(1);
        match kind {
            "+" | ":" => Some(rest.to_owned()),
            "$" if rest == "-1" => None,
            "$" => {
                let len: usize = rest.parse().unwrap();
                let mut value = vec![0; len + 2];
                reader.read_exact(&mut value).unwrap();
                value.truncate(len);
                Some(String::from_utf8(value).unwrap())
            }
            _ => panic!("{parts:?}: Redis answered {line:?}"),
        }
    }

    fn answers_ping(&self) -> bool {
        let Ok(mut conn) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = conn.set_read_timeout(Some(Duration::from_secs(1)));
        let mut reply = [0u8; 7];
        conn.write_all(b"PING\r\n").is_ok()
            && conn.read_exact(&mut reply).is_ok()
            && &reply == b"+PONG\r\n"
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// nginx with the shipped configuration, rendered for free ports, in front of `upstreams`.
#[derive(Debug)]
pub struct Nginx {
    pub port: u16,
    pub status_port: u16,
    pub dir: tempfile::TempDir,
    child: Child,
}

/// Whether this nginx takes HTTP/2 as a directive (`http2 on;`, from 1.25.1) rather than as a
/// `listen` parameter.
pub fn nginx_has_http2_directive(nginx: &Path) -> bool {
    let output = Command::new(nginx).arg("-v").output().expect("nginx -v");
    let text = String::from_utf8_lossy(&output.stderr);
    let version: Vec<u32> = text
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .trim()
        .split('.')
        .filter_map(|n| n.parse().ok())
        .collect();
    version >= vec![1, 25, 1]
}

impl Nginx {
    /// nginx with the shipped defaults in front of `upstreams`.
    pub fn start(certs_dir: &Path, upstreams: &[std::net::SocketAddr]) -> Nginx {
        Self::start_with(certs_dir, upstreams, "20s")
    }

    /// Like [`Nginx::start`], keeping idle upstream connections `keepalive_timeout`.
    pub fn start_with(
        certs_dir: &Path,
        upstreams: &[std::net::SocketAddr],
        keepalive_timeout: &str,
    ) -> Nginx {
        let dir = tempfile::tempdir().expect("temp dir");
        let (port, status_port) = (free_port(), free_port());
        let shipped = repo().join("nginx");
        std::fs::create_dir_all(dir.path().join("conf.d")).unwrap();
        std::fs::copy(shipped.join("nginx.conf"), dir.path().join("nginx.conf")).unwrap();
        let servers: String = upstreams
            .iter()
            .map(|addr| format!("server {addr};\n    "))
            .collect();
        let template =
            std::fs::read_to_string(shipped.join("templates/glassbox.conf.template")).unwrap();
        let nginx = find_program("nginx");
        let directive = nginx_has_http2_directive(&nginx);
        let rendered = render(
            &template,
            &[
                ("NGINX_LISTEN", format!("127.0.0.1:{port}")),
                ("NGINX_STATUS_LISTEN", format!("127.0.0.1:{status_port}")),
                (
                    "NGINX_ACCESS_LOG",
                    dir.path().join("access.log").display().to_string(),
                ),
                ("GLASSBOX_CERTS_DIR", certs_dir.display().to_string()),
                ("GLASSBOX_TLS_NAME", "localhost".into()),
                ("GLASSBOX_UPSTREAMS", servers),
                ("NGINX_UPSTREAM_KEEPALIVE_TIMEOUT", keepalive_timeout.into()),
                (
                    "NGINX_LISTEN_HTTP2",
                    if directive { "" } else { " http2" }.into(),
                ),
                (
                    "NGINX_HTTP2",
                    if directive { "http2 on;" } else { "" }.into(),
                ),
            ],
        );
        std::fs::write(dir.path().join("conf.d/glassbox.conf"), rendered).unwrap();
        let prefix = format!("{}/", dir.path().display());
        let pid = dir.path().join("nginx.pid");
        let child = Command::new(&nginx)
            .args(["-p", &prefix, "-c", "nginx.conf", "-e", "error.log"])
            .args(["-g", &format!("daemon off; pid {};", pid.display())])
            .stdout(Stdio::null())
            .spawn()
            .expect("nginx starts");
        let nginx = Nginx {
            port,
            status_port,
            dir,
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "nginx did not listen on {port}: {}",
                nginx.error_log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        nginx
    }

    pub fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.port)
    }

    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }

    /// The JSON lines of nginx's access log so far.
    pub fn access_log(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.dir.path().join("access.log"))
            .unwrap_or_default()
            .lines()
            .map(|line| {
                serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
            })
            .collect()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

/// Substitutes `${NAME}` the way envsubst does for the listed names, and insists nothing
/// else in braces was left unrendered.
fn render(template: &str, vars: &[(&str, String)]) -> String {
    let mut out = template.to_owned();
    for (name, value) in vars {
        let placeholder = format!("${{{name}}}");
        assert!(out.contains(&placeholder), "the template never uses {name}");
        out = out.replace(&placeholder, value);
    }
    assert!(
        !out.contains("${"),
        "the template uses a variable the test does not set"
    );
    out
}

/// A Prometheus with the configuration file `config` (rendered by the test for its targets),
/// its storage under `dir`, on a free port.
#[derive(Debug)]
pub struct Prometheus {
    child: Child,
    pub url: String,
}

impl Prometheus {
    pub fn start(config: &Path, dir: &Path) -> Self {
        Self::start_on(config, dir, free_port())
    }

    /// As [`Prometheus::start`], on `port` (chosen before, so a glassbox can be told of it).
    pub fn start_on(config: &Path, dir: &Path, port: u16) -> Self {
        let child = Command::new(find_program("prometheus"))
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            // As the bundled configurations run it: glassbox's exemplars are kept.
            .arg("--enable-feature=exemplar-storage")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("prometheus.log")).expect("a log file"))
            .spawn()
            .expect("prometheus starts");
        Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    /// An instant query's result, or the error Prometheus gave.
    pub async fn query(&self, client: &reqwest::Client, expr: &str) -> Result<Vec<Value>, String> {
        let url = reqwest::Url::parse_with_params(
            &format!("{}/api/v1/query", self.url),
            [("query", expr)],
        )
        .map_err(|e| e.to_string())?;
        let response = client.get(url).send().await.map_err(|e| e.to_string())?;
        let body: Value = response.json().await.map_err(|e| e.to_string())?;
        if body["status"] != "success" {
            return Err(format!("{}: {}", body["errorType"], body["error"]));
        }
        Ok(body["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default())
    }

    /// The exemplars of `expr`'s series over the last `seconds` (`/api/v1/query_exemplars`):
    /// one entry per series, each with its `seriesLabels` and `exemplars`.
    pub async fn query_exemplars(
        &self,
        client: &reqwest::Client,
        expr: &str,
        seconds: u64,
    ) -> Result<Vec<Value>, String> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_err(|e| e.to_string())?
            .as_secs();
        let url = reqwest::Url::parse_with_params(
            &format!("{}/api/v1/query_exemplars", self.url),
            [
                ("query", expr.to_owned()),
                ("start", (now - seconds).to_string()),
                ("end", (now + 1).to_string()),
            ],
        )
        .map_err(|e| e.to_string())?;
        let response = client.get(url).send().await.map_err(|e| e.to_string())?;
        let body: Value = response.json().await.map_err(|e| e.to_string())?;
        if body["status"] != "success" {
            return Err(format!("{}: {}", body["errorType"], body["error"]));
        }
        Ok(body["data"].as_array().cloned().unwrap_or_default())
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}
