//! What the load generator's tests share: a real glassbox on a free port, in this process.

// Shared by several test binaries, each using a part.
#![allow(unreachable_pub, dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use tokio::sync::oneshot;

/// A glassbox serving on a free loopback port until dropped.
pub struct Glassbox {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    _dir: tempfile::TempDir,
}

impl Glassbox {
    pub async fn start() -> Self {
        glassbox::tls::install_crypto_provider();
        let dir = tempfile::tempdir().unwrap();
        let path = |name: &str| dir.path().join(name).display().to_string();
        let config = glassbox::config::Cli::parse_from([
            "glassbox",
            "--certs-dir",
            &path("certs"),
            "--data-dir",
            &path("data"),
            "--log-dir",
            &path("logs"),
            "--work-sleep-max",
            "200ms",
            "--total-latency",
            "50ms",
        ])
        .config;
        let app = glassbox::app::App::build(config.clone()).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let endpoint = app.endpoint();
        tokio::spawn(async move {
            let _app = app;
            glassbox::server::run(listener, endpoint, &config, async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        });
        Self {
            addr,
            stop: Some(stop),
            _dir: dir,
        }
    }

    pub fn host(&self) -> String {
        format!("https://localhost:{}", self.addr.port())
    }

    pub fn ca(&self) -> PathBuf {
        self._dir.path().join("certs/ca.crt")
    }
}

impl Drop for Glassbox {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The repository's root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `name` on PATH, in `target/py/bin` (where `just test-tools` installs), or where Debian
/// installs it.
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([
            repo().join("target/py/bin"),
            "/usr/sbin".into(),
            "/usr/bin".into(),
        ])
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// [`which`], failing the test with how to get `name` when it is missing.
pub fn need(name: &str, install: &str) -> PathBuf {
    which(name).unwrap_or_else(|| panic!("`{name}` is not installed; {install}"))
}
