//! Free ports, the programs a test drives, the repository, and waiting for a condition.

use std::net::TcpListener;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// A loopback port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// The repository's root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("testkit lives in the repository")
        .to_path_buf()
}

/// `name` on `PATH`, in `target/py/bin` (where `just test-tools` installs), or where Debian
/// installs programs.
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([
            repo().join("target/py/bin"),
            "/usr/sbin".into(),
            "/usr/bin".into(),
            "/sbin".into(),
        ])
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// [`which`], failing the test with how to get `name` when it is missing.
pub fn need(name: &str, install: &str) -> PathBuf {
    which(name).unwrap_or_else(|| panic!("`{name}` is not installed; {install}"))
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

/// One row of `just drill`'s table: what a test tried, the bound it holds the service to, and
/// what it saw. Printed (and so shown only with `--nocapture`) after the test's assertions
/// have judged it.
pub fn drill(scenario: &str, bound: &str, observed: &str) {
    println!("drill\t{scenario}\t{bound}\t{observed}");
}
