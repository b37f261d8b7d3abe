//! Building and running the service, the one path `glassbox serve`, `glassbox worker`, the
//! tests and the load generator's harness all take: `prepare` what both roles need, build a
//! [`Service`] for the role, then [`Service::run`] it on a bound listener until a shutdown
//! future completes. `run` stops everything the service started (connections, task workers)
//! before it returns.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::app::{AppState, Backends};
use crate::certs::{self, Outcome};
use crate::compute::ComputePool;
use crate::config::{Backend, Config};
use crate::disk::Disk;
use crate::faults::Faults;
use crate::health::{CertificateCheck, Health};
use crate::routes::table::Serving;
use crate::routes::{self, worker::WorkerState};
use crate::server::{self, Endpoint, HttpService};
use crate::startup::{self, Failure, StartupError};
use crate::store;
use crate::tasks::embedded::EmbeddedQueue;
use crate::tasks::files::TaskFiles;
use crate::tasks::redis::{RedisQueue, Settings as RedisSettings};
use crate::tasks::run::Runner;
use crate::tasks::{Places, QueueCheck, Tasks};
use crate::telemetry::Telemetry;
use crate::tls::{Identity, Source};

/// `glassbox serve`: builds the service, binds `--bind`, and serves until SIGINT or SIGTERM.
pub async fn serve(config: Config) -> Result<()> {
    let service = Service::serve(config)?;
    let listener = bind(service.config().bind, "--bind").await?;
    let admin = match service.config().admin_bind {
        Some(addr) => Some(bind(addr, "--admin-bind").await?),
        None => None,
    };
    service
        .run_with_admin(listener, admin, shutdown_signal())
        .await
}

/// `glassbox worker`: task workers for a Redis queue, with `/status`, `/health` and `/metrics`
/// on `--bind`, until SIGINT or SIGTERM (then running tasks get the grace period to finish).
pub async fn worker(config: Config) -> Result<()> {
    let service = Service::worker(config)?;
    let listener = bind(service.config().bind, "--bind").await?;
    service.run(listener, shutdown_signal()).await
}

async fn bind(addr: SocketAddr, flag: &'static str) -> Result<TcpListener> {
    TcpListener::bind(addr).await.map_err(|err| {
        let why = match err.kind() {
            std::io::ErrorKind::AddrInUse => "another process is listening there".to_owned(),
            std::io::ErrorKind::AddrNotAvailable => {
                "no interface of this machine has that address".to_owned()
            }
            std::io::ErrorKind::PermissionDenied => {
                "ports below 1024 need privileges this process lacks".to_owned()
            }
            _ => err.to_string(),
        };
        StartupError::new(
            Failure::Address,
            format!("cannot listen on {addr}"),
            flag,
            anyhow::anyhow!("{why} ({err})"),
        )
        .into()
    })
}

/// What a process of either role is made of before it serves.
#[derive(Debug)]
struct Prepared {
    config: Config,
    tls: Arc<rustls::ServerConfig>,
    /// The served certificate, which `tls` asks on every handshake.
    identity: Arc<Identity>,
    telemetry: Arc<Telemetry>,
    /// `/health`'s checks so far: the certificate.
    health: Health,
    files: TaskFiles,
    compute: ComputePool,
    /// Faults injected through `/faults` (none in a `glassbox worker`, which has no such API).
    faults: Faults,
}

/// Checks the configuration, makes sure certificates and the data directory exist, and
/// starts telemetry. The configuration is validated here and nowhere else.
fn prepare(config: Config) -> Result<Prepared> {
    if let Err(err) = config.validate() {
        let flag = err.flag();
        return Err(
            StartupError::new(Failure::Usage, "the flags do not go together", flag, err).into(),
        );
    }
    let open_files = crate::server::raise_open_file_limit();
    tracing::info!(
        open_files,
        max_connections = crate::server::connection_limit(config.max_connections),
        "open-file limit"
    );
    let identity = Arc::new(identity(&config)?);
    let tls = crate::tls::server_config(identity.clone())?;
    startup::writable_dir(&config.data_dir, "data directory", "--data-dir")?;
    let telemetry = Arc::new(Telemetry::default());
    telemetry
        .metrics
        .certificate_expiry(identity.info().not_after.unix_timestamp());
    let disk = Disk::shared(&config.data_dir, config.min_free_disk, config.client_share);
    let mut files =
        TaskFiles::on(&config.data_dir, disk).context("creating the task directories")?;
    if config.queue == Backend::Embedded {
        // This process runs its tasks and removes their files.
        files = files.keeping_holds();
    }
    Ok(Prepared {
        faults: Faults::new(&telemetry),
        compute: ComputePool::new(config.compute_threads()),
        health: Health::default().with(CertificateCheck {
            identity: identity.clone(),
        }),
        config,
        tls,
        identity,
        telemetry,
        files,
    })
}

/// The certificate to serve: the operator's `--tls-cert` and `--tls-key` as they are, or the
/// local CA's server certificate, made or renewed first.
fn identity(config: &Config) -> Result<Identity> {
    let provider = crate::tls::provider();
    if let (Some(cert), Some(key)) = (&config.tls_cert, &config.tls_key) {
        let source = Source::Operator {
            cert: cert.clone(),
            key: key.clone(),
        };
        let identity = Identity::load(source, provider).map_err(|err| {
            StartupError::new(
                Failure::Certificate,
                "cannot use the certificate and key given",
                "--tls-cert",
                err,
            )
        })?;
        tracing::info!(
            cert = %cert.display(),
            not_after = %crate::tls::reload::rfc3339(identity.info().not_after),
            names = ?identity.info().names,
            "serving the operator's certificate (no local CA, no renewal; reloaded when its files change or on SIGHUP)"
        );
        return Ok(identity);
    }
    let (outcome, _) = certs::ensure_with(
        &config.certs_dir,
        &config.cert_names,
        config.ca_key.as_deref(),
        false,
    )
    .map_err(|err| certs_failure(config, err))?;
    log_cert_outcome(outcome, config);
    let source = Source::LocalCa {
        certs_dir: config.certs_dir.clone(),
    };
    Identity::load(source, provider).map_err(|err| certs_failure(config, err).into())
}

/// A certificate failure as the operator sees it: a directory that cannot be written, or
/// certificates that cannot be used.
fn certs_failure(config: &Config, err: anyhow::Error) -> StartupError {
    let unwritable = err
        .chain()
        .filter_map(|e| e.downcast_ref::<std::io::Error>())
        .any(|e| {
            use std::io::ErrorKind::*;
            matches!(
                e.kind(),
                PermissionDenied | ReadOnlyFilesystem | NotADirectory | StorageFull
            )
        });
    let dir = config.certs_dir.display();
    match unwritable {
        true => StartupError::new(
            Failure::Directory,
            format!("cannot write certificates to {dir}"),
            "--certs-dir",
            err,
        ),
        false => StartupError::new(
            Failure::Certificate,
            format!("cannot use the certificates in {dir}"),
            "--certs-dir",
            err,
        ),
    }
}

/// Which process this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// `glassbox serve`: the endpoints; task workers too with the embedded queue.
    Serve,
    /// `glassbox worker`: task workers for a Redis queue, and their own `/status`.
    Worker,
}

impl Role {
    fn label(self) -> &'static str {
        match self {
            Self::Serve => "serve",
            Self::Worker => "worker",
        }
    }
}

/// The task queue as this process uses it, and the workers it runs on it: the embedded queue
/// with its in-process workers, or a Redis queue that only `glassbox worker` processes run.
fn tasks(prepared: &Prepared, role: Role) -> Result<(Tasks, Background)> {
    let config = &prepared.config;
    let files = prepared.files.clone();
    let runner = || {
        Runner::new(
            config,
            prepared.files.clone(),
            prepared.compute.clone(),
            &prepared.telemetry,
        )
    };
    let ttl = config.task_ttl;
    Ok(match (&config.queue, role) {
        (Backend::Embedded, Role::Serve) => {
            let queue = EmbeddedQueue::open(
                &config.data_dir,
                Places::of(config),
                ttl,
                config.task_max_attempts,
                files.clone(),
            )?;
            let count = config.workers();
            let mut tasks = Tasks::start(queue.clone(), files, &prepared.telemetry, count, ttl);
            let runner = runner();
            // The workers here run every task this process queues: uploads are summed as they
            // arrive.
            if count > 0 && config.sum_while_receiving {
                tasks.incoming = Some(runner.incoming());
            }
            let workers = tasks.workers(queue, runner, None, prepared.faults.clone());
            let background = Background::start(|stop| workers.spawn(count, stop));
            (tasks, background)
        }
        (Backend::Redis(url), Role::Serve) => {
            let queue = RedisQueue::new(url, redis_settings(config), files.clone())?;
            mirror_queue_pauses(&prepared.faults, queue.clone());
            let tasks = Tasks::start(queue, files, &prepared.telemetry, 0, ttl);
            (tasks, Background::none())
        }
        (Backend::Redis(url), Role::Worker) => {
            let queue = RedisQueue::new(url, redis_settings(config), files.clone())?;
            queue.start_reaper();
            let count = config.workers();
            let tasks = Tasks::start(queue.clone(), files, &prepared.telemetry, count, ttl);
            let workers = tasks.workers(
                queue,
                runner(),
                Some(config.task_lease / 3),
                prepared.faults.clone(),
            );
            let background = Background::start(|stop| workers.spawn(count, stop));
            (tasks, background)
        }
        (Backend::Embedded, Role::Worker) => {
            return Err(StartupError::new(
                Failure::Usage,
                "glassbox worker takes its tasks from a Redis queue",
                "--queue",
                anyhow::anyhow!(
                    "give --queue redis://host:port/db (with the embedded queue, `glassbox serve` \
                     runs the workers itself)"
                ),
            )
            .into());
        }
    })
}

/// Tells the `glassbox worker` processes on a Redis queue about this service's queue faults:
/// the pause is set in Redis, refreshed well within its expiry while the fault lasts, and
/// removed when it ends.
fn mirror_queue_pauses(faults: &Faults, queue: Arc<RedisQueue>) {
    use crate::tasks::TaskQueue as _;
    let mut pauses = faults.queue_pauses();
    tokio::spawn(async move {
        loop {
            let paused = *pauses.borrow_and_update();
            if let Err(err) = queue.set_paused(paused).await {
                tracing::warn!(error = %err, paused, "could not tell the workers about a queue fault");
            }
            let refresh = crate::tasks::redis::PAUSED_TTL / 3;
            let changed = match paused {
                true => tokio::time::timeout(refresh, pauses.changed()).await,
                false => Ok(pauses.changed().await),
            };
            if let Ok(Err(_)) = changed {
                return;
            }
        }
    });
}

/// The Redis queue's settings from the configuration.
fn redis_settings(config: &Config) -> RedisSettings {
    RedisSettings {
        places: Places::of(config),
        timeout: config.store_timeout,
        lease: config.task_lease,
        max_attempts: config.task_max_attempts,
        ttl: config.task_ttl,
    }
}

fn log_cert_outcome(outcome: Outcome, config: &Config) {
    let dir = config.certs_dir.display();
    match outcome {
        Outcome::Reused => tracing::info!(dir = %dir, "reusing certificates"),
        Outcome::ServerIssued => tracing::info!(dir = %dir, "issued a new server certificate"),
        Outcome::CaCreated => tracing::warn!(
            dir = %dir,
            "created a new local CA: clients must trust the new ca.crt"
        ),
    }
}

/// A process ready to serve: `glassbox serve`'s endpoints, or a `glassbox worker`'s.
#[derive(Debug)]
pub struct Service(Kind);

#[derive(Debug)]
enum Kind {
    Serve(Parts<routes::Service>),
    Worker(Parts<axum::Router>),
}

/// What a listener serves, and what runs beside it.
#[derive(Debug)]
struct Parts<S> {
    config: Config,
    role: Role,
    /// The served certificate, reloaded while the listener runs.
    identity: Arc<Identity>,
    endpoint: Endpoint<S>,
    /// The operator's routes on `--admin-bind`, when it is set.
    admin: Option<Endpoint<S>>,
    /// The task workers this process runs (none for a service on a Redis queue).
    background: Background,
    workers: usize,
    /// Where the queue is (no password), for the `listening` line.
    queue: String,
}

impl Service {
    /// `glassbox serve`: every endpoint, the message store and the task queue the
    /// configuration names, the dashboard's sampler, and task workers with the embedded queue.
    pub fn serve(config: Config) -> Result<Self> {
        let prepared = prepare(config)?;
        let (tasks, background) = tasks(&prepared, Role::Serve)?;
        let (workers, queue) = (tasks.workers, tasks.queue.location());
        let Prepared {
            config,
            tls,
            identity,
            telemetry,
            health,
            compute,
            faults,
            ..
        } = prepared;
        let backends = Backends {
            store: store::open(&config, &telemetry.metrics)?,
            tasks,
            compute,
            faults,
        };
        let built = routes::build(&config);
        let state = AppState::new(config.clone(), health, telemetry.clone(), backends, &built)?;
        crate::dashboard::sampler::start(&state);
        let (main, admin) = match config.admin_bind {
            Some(_) => (Serving::Public, Some(Serving::Admin)),
            None => (Serving::Everything, None),
        };
        let admin = admin.map(|serving| Endpoint {
            router: routes::service(built.router.clone(), state.clone(), serving),
            tls: tls.clone(),
            telemetry: telemetry.clone(),
        });
        let router = routes::service(built.router, state, main);
        Ok(Self(Kind::Serve(Parts {
            endpoint: Endpoint {
                router,
                tls,
                telemetry,
            },
            admin,
            config,
            identity,
            role: Role::Serve,
            background,
            workers,
            queue,
        })))
    }

    /// `glassbox worker`: task workers for a Redis queue, and `/status`, `/health` and
    /// `/metrics` about them.
    pub fn worker(config: Config) -> Result<Self> {
        let prepared = prepare(config)?;
        let (tasks, background) = tasks(&prepared, Role::Worker)?;
        let health = prepared.health.with(QueueCheck::new(tasks.clone()));
        let (workers, queue) = (tasks.workers, tasks.queue.location());
        let router = routes::worker::router(WorkerState {
            telemetry: prepared.telemetry.clone(),
            health,
            tasks,
            started: std::time::Instant::now(),
        });
        Ok(Self(Kind::Worker(Parts {
            endpoint: Endpoint {
                router,
                tls: prepared.tls,
                telemetry: prepared.telemetry,
            },
            admin: None,
            config: prepared.config,
            identity: prepared.identity,
            role: Role::Worker,
            background,
            workers,
            queue,
        })))
    }

    /// The configuration it was built with.
    pub fn config(&self) -> &Config {
        match &self.0 {
            Kind::Serve(parts) => &parts.config,
            Kind::Worker(parts) => &parts.config,
        }
    }

    /// Serves on `listener` until `shutdown` completes; then stops accepting, gives in-flight
    /// requests and running tasks the grace period (`--shutdown-grace`) and returns once
    /// everything it started has stopped.
    pub async fn run(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> Result<()> {
        self.run_with_admin(listener, None, shutdown).await
    }

    /// [`Service::run`], with the operator's routes on `admin` when `--admin-bind` is set
    /// (the listener must then be given).
    pub async fn run_with_admin(
        self,
        listener: TcpListener,
        admin: Option<TcpListener>,
        shutdown: impl Future<Output = ()>,
    ) -> Result<()> {
        match self.0 {
            Kind::Serve(parts) => parts.run(listener, admin, shutdown).await,
            Kind::Worker(parts) => parts.run(listener, admin, shutdown).await,
        }
    }
}

impl<S> Parts<S>
where
    S: HttpService + Send + Sync + 'static,
    S::Future: Send + 'static,
{
    async fn run(
        self,
        listener: TcpListener,
        admin_listener: Option<TcpListener>,
        shutdown: impl Future<Output = ()>,
    ) -> Result<()> {
        let local = listener.local_addr()?;
        let admin = match (self.admin, admin_listener) {
            (Some(endpoint), Some(listener)) => Some((endpoint, listener)),
            (None, None) => None,
            (Some(_), None) => bail!("--admin-bind is set but no admin listener was given"),
            (None, Some(_)) => bail!("an admin listener was given without --admin-bind"),
        };
        if let Some((_, admin)) = &admin {
            let addr = admin.local_addr()?;
            tracing::info!(
                addr = %addr,
                url = %format!("https://{}/dashboard", display_host(addr)),
                "admin listening: /metrics, /logs, /dashboard"
            );
        }
        tracing::info!(
            addr = %local,
            url = %format!("https://{}", display_host(local)),
            role = self.role.label(),
            workers = self.workers,
            queue = %self.queue,
            version = env!("CARGO_PKG_VERSION"),
            "listening"
        );
        // The workers are told to stop at the same time as the listener, so the grace period
        // bounds both together rather than one after the other.
        let (signalled, signal) = tokio::sync::oneshot::channel::<()>();
        let background = self.background;
        let grace = self.config.shutdown_grace;
        let workers = tokio::spawn(async move {
            let _ = signal.await;
            background.stop(grace).await;
        });
        let reloading = tokio::spawn(crate::tls::reload::watch(
            self.identity.clone(),
            self.endpoint.telemetry.clone(),
        ));
        // One signal stops both listeners.
        let stopping = tokio_util::sync::CancellationToken::new();
        let shutdown = async {
            shutdown.await;
            stopping.cancel();
            let _ = signalled.send(());
        };
        let admin_served = async {
            match admin {
                Some((endpoint, listener)) => {
                    server::run(listener, endpoint, &self.config, stopping.cancelled()).await
                }
                None => Ok(()),
            }
        };
        let (served, admin_served) = tokio::join!(
            server::run(listener, self.endpoint, &self.config, shutdown),
            admin_served
        );
        stopping.cancel();
        reloading.abort();
        let _ = workers.await;
        served?;
        admin_served?;
        tracing::info!("stopped");
        Ok(())
    }
}

fn display_host(addr: SocketAddr) -> String {
    if addr.ip().is_loopback() {
        format!("localhost:{}", addr.port())
    } else {
        addr.to_string()
    }
}

/// Tasks a service runs beside its listener (the task workers), and how to stop them.
#[derive(Debug)]
struct Background {
    stop: watch::Sender<bool>,
    handles: Vec<JoinHandle<()>>,
}

impl Background {
    /// Starts what `spawn` spawns, handing it the stop signal.
    fn start(spawn: impl FnOnce(&watch::Receiver<bool>) -> Vec<JoinHandle<()>>) -> Self {
        let (stop, stopped) = watch::channel(false);
        Self {
            handles: spawn(&stopped),
            stop,
        }
    }

    fn none() -> Self {
        Self::start(|_| Vec::new())
    }

    /// Signals stop and waits, at most `grace`, for the tasks to end; workers finish the task
    /// they are running, and one still running after `grace` runs again after a restart (or
    /// on another worker).
    async fn stop(self, grace: Duration) {
        let _ = self.stop.send(true);
        let running = self.handles.len();
        if tokio::time::timeout(grace, futures_util::future::join_all(self.handles))
            .await
            .is_err()
        {
            tracing::warn!(
                workers = running,
                "workers still busy after the grace period; their tasks will run again"
            );
        }
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

/// `glassbox openapi`: the OpenAPI document of a service with this configuration.
pub fn openapi(config: &Config) -> String {
    routes::openapi_json(config)
}

/// `glassbox certs`: creates or renews the certificates and says what it did.
pub fn certs(config: &Config) -> Result<String> {
    let (outcome, info) = certs::ensure_with(
        &config.certs_dir,
        &config.cert_names,
        config.ca_key.as_deref(),
        config.new_ca,
    )
    .map_err(|err| certs_failure(config, err))?;
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
