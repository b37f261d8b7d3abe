//! The application: shared state, and building it from configuration.

use std::sync::Arc;

use anyhow::{Context, Result};

use crate::certs::{self, Outcome};
use crate::compute::ComputePool;
use crate::config::{Backend, Config};
use crate::dashboard::Dashboard;
use crate::health::{CertificateCheck, Health};
use crate::limiter::Limiter;
use crate::numbers::{SimulatedNumbers, Totals};
use crate::routes;
use crate::routes::deepgram::WorkPlan;
use crate::routes::table::RouteTable;
use crate::server::Endpoint;
use crate::store::{self, MessageStore, Store, StoreCheck};
use crate::tasks::embedded::EmbeddedQueue;
use crate::tasks::files::TaskFiles;
use crate::tasks::redis::{RedisQueue, Settings as RedisSettings};
use crate::tasks::run::Runner;
use crate::tasks::worker::Workers;
use crate::tasks::{QueueCheck, Tasks};
use crate::telemetry::Telemetry;
use crate::telemetry::log_ring::LogRing;
use tokio::sync::watch;

/// What every handler can reach. One `Arc`, so the per-request clones the middleware
/// makes cost one atomic increment.
#[derive(Debug, Clone)]
pub struct AppState(Arc<Shared>);

/// The parts of [`AppState`].
#[derive(Debug)]
pub struct Shared {
    pub config: Config,
    pub telemetry: Arc<Telemetry>,
    pub health: Health,
    pub work: WorkPlan,
    pub limiter: Arc<Limiter>,
    pub totals: Totals,
    /// Where `/messages` keeps messages.
    pub store: Store,
    /// The task queue behind `/randomize`.
    pub tasks: Tasks,
    /// Every route and its policy.
    pub routes: RouteTable,
    /// The OpenAPI document served at `/openapi.json`.
    pub openapi: String,
    /// The built-in dashboard's timeline, route table and log ring.
    pub dashboard: Dashboard,
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl AppState {
    /// The state of a service with this configuration, telemetry and backends; the store and
    /// the queue join the health checks.
    pub(crate) fn new(
        config: Config,
        health: Health,
        telemetry: Arc<Telemetry>,
        backends: Backends,
        routes: &routes::Built,
    ) -> Result<Self> {
        config.validate().map_err(anyhow::Error::msg)?;
        let store = Store::new(backends.store, config.store_timeout, &telemetry.metrics);
        let health = health
            .with(StoreCheck {
                store: store.clone(),
            })
            .with(QueueCheck {
                tasks: backends.tasks.clone(),
            });
        let numbers = SimulatedNumbers {
            latency: config.total_latency,
            count: config.total_count,
        };
        let dashboard = Dashboard::new(
            config.dashboard_interval,
            config.dashboard_window,
            LogRing::global(),
        );
        Ok(Self(Arc::new(Shared {
            dashboard,
            totals: Totals::new(Arc::new(numbers), backends.compute),
            tasks: backends.tasks,
            routes: routes.table.clone(),
            openapi: routes.openapi_json(),
            work: WorkPlan::from_config(&config)?,
            limiter: Limiter::new(config.max_concurrency),
            config,
            telemetry,
            health,
            store,
        })))
    }

    /// A state for in-process tests: the given configuration, an in-memory embedded store, an
    /// embedded queue in a temporary directory (kept until the process ends) without workers.
    #[cfg(test)]
    pub fn for_tests(config: Config, health: Health) -> Self {
        let telemetry = Arc::new(Telemetry::default());
        let store = crate::store::embedded::EmbeddedStore::in_memory(
            telemetry.metrics.store_commit_batch(),
        )
        .expect("an in-memory database opens");
        let dir = tempfile::tempdir().expect("a temporary directory").keep();
        let files = TaskFiles::new(&dir).expect("task directories");
        let queue =
            EmbeddedQueue::open(&dir, config.queue_capacity, config.task_ttl, files.clone())
                .expect("the task database opens");
        let tasks = Tasks::start(queue, files, &telemetry, 0, config.task_ttl);
        let backends = Backends {
            store: Arc::new(store),
            tasks,
            compute: ComputePool::new(config.compute_threads()),
        };
        let routes = routes::build(&config);
        Self::new(config, health, telemetry, backends, &routes).expect("a valid configuration")
    }
}

/// The parts of the service that hold data or do work, built from the configuration.
#[derive(Debug)]
pub struct Backends {
    pub store: Arc<dyn MessageStore>,
    pub tasks: Tasks,
    /// The bounded pool CPU-heavy work runs on (`/total`'s sums, tasks).
    pub compute: ComputePool,
}

/// A service ready to run: its router, TLS configuration and state, and its task workers.
#[derive(Debug)]
pub struct App {
    pub state: AppState,
    pub router: routes::Service,
    pub tls: Arc<rustls::ServerConfig>,
    pub workers: RunningWorkers,
}

/// In-process task workers, and how to stop them.
#[derive(Debug)]
pub struct RunningWorkers {
    stop: watch::Sender<bool>,
    handles: Vec<tokio::task::JoinHandle<()>>,
}

impl RunningWorkers {
    pub fn start(workers: &Workers, count: usize) -> Self {
        let (stop, stopped) = watch::channel(false);
        Self {
            handles: workers.spawn(count, &stopped),
            stop,
        }
    }

    pub fn none() -> Self {
        Self {
            stop: watch::channel(false).0,
            handles: Vec::new(),
        }
    }

    /// Asks the workers to stop taking tasks and waits, at most `grace`, for the tasks they
    /// are running; unfinished ones run again after a restart (or on another worker).
    pub async fn stop(self, grace: std::time::Duration) {
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

impl App {
    /// What the listener serves.
    pub fn endpoint(&self) -> Endpoint<routes::Service> {
        Endpoint {
            router: self.router.clone(),
            tls: self.tls.clone(),
            telemetry: self.state.telemetry.clone(),
        }
    }
}

impl App {
    /// Makes sure certificates exist, then builds everything a listener needs.
    pub fn build(config: Config) -> Result<Self> {
        let (outcome, cert) = certs::ensure(&config.certs_dir, &config.cert_names)
            .context("preparing certificates")?;
        log_cert_outcome(outcome, &config);
        let tls = crate::tls::server_config(&config.certs_dir)?;
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("creating data directory {}", config.data_dir.display()))?;
        let expiry = cert.not_after.unix_timestamp();
        let health = Health::default().with(CertificateCheck { info: cert });
        let telemetry = Arc::new(Telemetry::default());
        let compute = ComputePool::new(config.compute_threads());
        let files = TaskFiles::new(&config.data_dir).context("creating the task directories")?;
        let (tasks, workers) = match &config.queue {
            Backend::Embedded => {
                let queue = EmbeddedQueue::open(
                    &config.data_dir,
                    config.queue_capacity,
                    config.task_ttl,
                    files.clone(),
                )?;
                let count = config.workers();
                let tasks = Tasks::start(
                    queue.clone(),
                    files.clone(),
                    &telemetry,
                    count,
                    config.task_ttl,
                );
                let runner = Runner::new(&config, files, compute.clone());
                let workers = tasks.workers(queue, runner, None);
                (tasks, RunningWorkers::start(&workers, count))
            }
            Backend::Redis(url) => {
                let queue = RedisQueue::new(url, redis_settings(&config), files.clone())?;
                let tasks = Tasks::start(queue, files, &telemetry, 0, config.task_ttl);
                (tasks, RunningWorkers::none())
            }
        };
        let backends = Backends {
            store: store::open(&config, &telemetry.metrics)?,
            tasks,
            compute,
        };
        let built = routes::build(&config);
        let state = AppState::new(config, health, telemetry, backends, &built)?;
        state.telemetry.metrics.certificate_expiry(expiry);
        crate::dashboard::sampler::start(Arc::downgrade(&state.0), state.dashboard.interval);
        let router = routes::service(built.router, state.clone());
        Ok(Self {
            state,
            router,
            tls,
            workers,
        })
    }
}

/// The Redis queue's settings from the configuration.
pub fn redis_settings(config: &Config) -> RedisSettings {
    RedisSettings {
        capacity: config.queue_capacity,
        timeout: config.store_timeout,
        lease: config.task_lease,
        max_attempts: config.task_max_attempts,
        ttl: config.task_ttl,
    }
}

pub fn log_cert_outcome(outcome: Outcome, config: &Config) {
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
