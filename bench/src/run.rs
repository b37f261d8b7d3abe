//! A benchmark run: the release build it measures, a working directory with its own
//! certificates, and the servers it starts there.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, ensure};

use crate::http::Http;
use crate::server::Server;
use crate::settings::Settings;

/// One run of one benchmark.
#[derive(Debug)]
pub(crate) struct Run {
    /// The repository.
    pub(crate) root: PathBuf,
    pub(crate) settings: Settings,
    work: tempfile::TempDir,
}

impl Run {
    /// Builds `packages` in release mode, then makes a working directory under `target/` (on
    /// the machine's disk, so the stores' fsyncs are real) with a CA and a server certificate.
    pub(crate) fn start(name: &str, packages: &[&str]) -> Result<Self> {
        let root = testkit::repo();
        build(&root, packages, &[])?;
        let target = root.join("target");
        std::fs::create_dir_all(&target)?;
        let work = tempfile::Builder::new()
            .prefix(&format!("bench-{name}."))
            .tempdir_in(&target)?;
        let run = Self {
            root,
            settings: Settings::from_env()?,
            work,
        };
        let certs = run.path("certs");
        let status = Command::new(run.release("glassbox"))
            .arg("certs")
            .arg("--certs-dir")
            .arg(&certs)
            .output()
            .context("glassbox certs")?;
        ensure!(status.status.success(), "glassbox certs failed");
        Ok(run)
    }

    /// `target/release/<binary>`.
    pub(crate) fn release(&self, binary: &str) -> PathBuf {
        self.root.join("target/release").join(binary)
    }

    /// A path in the working directory.
    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.work.path().join(name)
    }

    /// The CA every server of the run is signed by.
    pub(crate) fn ca(&self) -> PathBuf {
        self.path("certs/ca.crt")
    }

    /// An HTTPS client that trusts the run's CA.
    pub(crate) fn http(&self) -> Result<Http> {
        Http::new(&self.ca())
    }

    /// `glassbox serve` with `args`, its data and logs under `name`, on a free port, as the
    /// placement says (pinned, with as many I/O threads as the servers have cores).
    pub(crate) fn glassbox(&self, name: &str, args: &[&str]) -> Result<Server> {
        self.glassbox_from(&self.release("glassbox"), name, args)
    }

    /// Like [`Run::glassbox`], with another build of glassbox (`binary`), such as one of an
    /// earlier commit to compare with.
    pub(crate) fn glassbox_from(&self, binary: &Path, name: &str, args: &[&str]) -> Result<Server> {
        self.glassbox_in(binary, name, &self.path(name).join("data"), args)
    }

    /// Like [`Run::glassbox_from`], with its data directory at `data` (another filesystem).
    pub(crate) fn glassbox_in(
        &self,
        binary: &Path,
        name: &str,
        data: &Path,
        args: &[&str],
    ) -> Result<Server> {
        let port = testkit::free_port();
        let dir = self.path(name);
        let argv: Vec<String> = [
            "serve".to_owned(),
            "--bind".to_owned(),
            format!("127.0.0.1:{port}"),
            "--certs-dir".to_owned(),
            self.path("certs").display().to_string(),
            "--data-dir".to_owned(),
            data.display().to_string(),
            "--log-dir".to_owned(),
            dir.join("logs").display().to_string(),
            "--io-threads".to_owned(),
            self.settings.placement.server_cores.to_string(),
        ]
        .into_iter()
        .chain(args.iter().map(|a| (*a).to_owned()))
        .collect();
        Server::start(
            name,
            &self.settings.placement.server_pin,
            binary,
            &argv,
            port,
        )
    }

    /// The bare hyper + rustls hello world on a free port, placed like glassbox.
    pub(crate) fn reference(&self, name: &str) -> Result<Server> {
        let port = testkit::free_port();
        let args = [
            format!("127.0.0.1:{port}"),
            self.path("certs").display().to_string(),
        ];
        Server::start(
            name,
            &self.settings.placement.server_pin,
            &self.release("glassbox-reference"),
            &args,
            port,
        )
    }
}

/// `cargo build --release --quiet -p PACKAGE... EXTRA...` in `root`.
pub(crate) fn build(root: &Path, packages: &[&str], extra: &[&str]) -> Result<()> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(root)
        .args(["build", "--release", "--quiet"]);
    for package in packages {
        command.args(["-p", package]);
    }
    let status = command
        .args(extra)
        .status()
        .context("running cargo build")?;
    ensure!(
        status.success(),
        "cargo build {packages:?} {extra:?} failed"
    );
    Ok(())
}
