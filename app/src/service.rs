//! The commands end to end: `serve` runs until a signal, `worker` runs task workers for a
//! Redis queue, `certs` prepares certificates.

use std::sync::Arc;

use anyhow::{Context, Result};
use tokio::net::TcpListener;

use crate::app::{App, RunningWorkers};
use crate::certs::{self, Outcome};
use crate::compute::ComputePool;
use crate::config::{Backend, Config};
use crate::health::{CertificateCheck, Health};
use crate::routes::worker::WorkerState;
use crate::server::{self, Endpoint};
use crate::tasks::files::TaskFiles;
use crate::tasks::redis::RedisQueue;
use crate::tasks::run::Runner;
use crate::tasks::{QueueCheck, Tasks};
use crate::telemetry::Telemetry;

/// Builds the service, binds, and serves until SIGINT or SIGTERM.
pub async fn serve(config: Config) -> Result<()> {
    let bind = config.bind;
    let mut app = App::build(config)?;
    let workers = std::mem::replace(&mut app.workers, RunningWorkers::none());
    let listener = TcpListener::bind(bind)
        .await
        .with_context(|| format!("binding {bind}"))?;
    let local = listener.local_addr()?;
    tracing::info!(
        addr = %local,
        url = %format!("https://{}", display_host(local)),
        version = env!("CARGO_PKG_VERSION"),
        "listening"
    );
    let endpoint = app.endpoint();
    server::run(listener, endpoint, &app.state.config, shutdown_signal()).await?;
    workers.stop(app.state.config.shutdown_grace).await;
    drop(app);
    tracing::info!("stopped");
    Ok(())
}

fn display_host(addr: std::net::SocketAddr) -> String {
    if addr.ip().is_loopback() {
        format!("localhost:{}", addr.port())
    } else {
        addr.to_string()
    }
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut sig) => {
                sig.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!(signal = "SIGINT", "shutting down"),
        () = terminate => tracing::info!(signal = "SIGTERM", "shutting down"),
    }
}

/// `glassbox certs`: creates or renews the certificates and says what it did.
pub fn certs(config: &Config) -> Result<String> {
    let (outcome, info) = certs::ensure(&config.certs_dir, &config.cert_names)?;
    let dir = config.certs_dir.display();
    let what = match outcome {
        Outcome::Reused => "certificates are valid; nothing to do",
        Outcome::ServerIssued => "issued a new server certificate with the existing CA",
        Outcome::CaCreated => "created a new CA and server certificate; trust the new ca.crt",
    };
    Ok(format!(
        "{what}\n  CA:     {dir}/ca.crt\n  server: {dir}/server.crt (expires {}, names: {})\n  key:    {dir}/server.key\ntry: curl --cacert {dir}/ca.crt https://localhost:{}/",
        info.not_after.date(),
        info.names.join(", "),
        config.bind.port(),
    ))
}

/// `glassbox worker`: task workers for a Redis queue, with `/status`, `/health` and `/metrics`
/// on `--bind`, until SIGINT or SIGTERM (then running tasks get the grace period to finish).
pub async fn worker(config: Config) -> Result<()> {
    let Backend::Redis(url) = &config.queue else {
        anyhow::bail!(
            "glassbox worker takes its tasks from a Redis queue: give --queue redis://host:port/db \
             (with the embedded queue, `glassbox serve` runs the workers itself)"
        );
    };
    config.validate().map_err(anyhow::Error::msg)?;
    let (outcome, cert) =
        certs::ensure(&config.certs_dir, &config.cert_names).context("preparing certificates")?;
    crate::app::log_cert_outcome(outcome, &config);
    let tls = crate::tls::server_config(&config.certs_dir)?;
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating data directory {}", config.data_dir.display()))?;
    let telemetry = Arc::new(Telemetry::default());
    telemetry
        .metrics
        .certificate_expiry(cert.not_after.unix_timestamp());
    let files = TaskFiles::new(&config.data_dir).context("creating the task directories")?;
    let queue = RedisQueue::new(url, crate::app::redis_settings(&config), files.clone())?;
    queue.start_reaper();
    let count = config.workers();
    let tasks = Tasks::start(
        queue.clone(),
        files.clone(),
        &telemetry,
        count,
        config.task_ttl,
    );
    let runner = Runner::new(&config, files, ComputePool::new(config.compute_threads()));
    let workers = tasks.workers(queue, runner, Some(config.task_lease / 3));
    let running = RunningWorkers::start(&workers, count);
    let health = Health::default()
        .with(CertificateCheck { info: cert })
        .with(QueueCheck {
            tasks: tasks.clone(),
        });
    let router = crate::routes::worker::router(WorkerState {
        telemetry: telemetry.clone(),
        health,
        tasks,
        started: std::time::Instant::now(),
    });
    let bind = config.bind;
    let listener = TcpListener::bind(bind)
        .await
        .with_context(|| format!("binding {bind}"))?;
    let local = listener.local_addr()?;
    tracing::info!(
        addr = %local,
        url = %format!("https://{}", display_host(local)),
        workers = count,
        queue = %url,
        version = env!("CARGO_PKG_VERSION"),
        "listening"
    );
    let endpoint = Endpoint {
        router,
        tls,
        telemetry,
    };
    server::run(listener, endpoint, &config, shutdown_signal()).await?;
    running.stop(config.shutdown_grace).await;
    tracing::info!("stopped");
    Ok(())
}
