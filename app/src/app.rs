//! The state every handler shares, built from the configuration, the telemetry, the backends
//! and the route table ([`crate::service`] builds it).

use std::sync::{Arc, Weak};

use anyhow::Result;

use crate::compute::ComputePool;
use crate::config::Config;
use crate::dashboard::Dashboard;
use crate::disk::Disk;
use crate::faults::Faults;
use crate::faults::store::FaultyStore;
use crate::health::Health;
use crate::limiter::Limiter;
use crate::numbers::{SimulatedNumbers, Totals};
use crate::routes;
use crate::routes::deepgram::WorkPlan;
use crate::routes::table::RouteTable;
use crate::store::{MessageStore, Store, StoreCheck};
use crate::tasks::{QueueCheck, Tasks};
use crate::telemetry::Telemetry;
use crate::telemetry::log_ring::LogRing;

/// What every handler can reach. One `Arc`, so the per-request clones the middleware
/// makes cost one atomic increment.
#[derive(Debug, Clone)]
pub(crate) struct AppState(Arc<Shared>);

/// The parts of [`AppState`].
#[derive(Debug)]
pub(crate) struct Shared {
    pub config: Config,
    pub telemetry: Arc<Telemetry>,
    pub health: Health,
    pub work: WorkPlan,
    pub limiter: Arc<Limiter>,
    /// Request bodies held in memory, in all.
    pub buffered: Arc<crate::body::Budget>,
    pub totals: Totals,
    /// Where `/messages` keeps messages.
    pub store: Store,
    /// The task queue behind `/randomize`.
    pub tasks: Tasks,
    /// The data directory's filesystem and `--min-free-disk`.
    pub disk: Arc<Disk>,
    /// Every route and its policy.
    pub routes: RouteTable,
    /// The OpenAPI document served at `/openapi.json`.
    pub openapi: String,
    /// The built-in dashboard's timeline, route table and log ring.
    pub dashboard: Dashboard,
    /// Faults injected through `/faults`.
    pub faults: Faults,
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl AppState {
    /// The state of a service with this (validated) configuration, telemetry, backends and
    /// routes; the store and the queue join the health checks.
    pub(crate) fn new(
        config: Config,
        health: Health,
        telemetry: Arc<Telemetry>,
        backends: Backends,
        routes: &routes::Built,
    ) -> Result<Self> {
        let stored_by_client = backends.store.stored_by_client();
        let faulty = FaultyStore::wrap(backends.store, backends.faults.clone());
        let store = Store::new(faulty, config.store_timeout, &telemetry.metrics);
        let disk = backends.tasks.files.disk.clone();
        // The messages each client stored before count in its share of the disk again.
        for (client, bytes) in stored_by_client {
            disk.held_already(Some(client), bytes).keep();
        }
        let health = health
            .with(StoreCheck {
                store: store.clone(),
                disk: (store.backend() == "embedded").then(|| disk.clone()),
            })
            .with(QueueCheck::new(backends.tasks.clone()));
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
            faults: backends.faults,
            totals: Totals::new(Arc::new(numbers), backends.compute),
            tasks: backends.tasks,
            disk,
            routes: routes.table.clone(),
            openapi: routes.openapi_json(),
            work: WorkPlan::from_config(&config)?,
            limiter: Limiter::new(config.max_concurrency, config.client_permits()),
            buffered: crate::body::Budget::shared(
                config.max_buffered_bytes,
                config.client_buffered_bytes(),
            ),
            config,
            telemetry,
            health,
            store,
        })))
    }

    /// The shared parts without a counted reference: what a task that should end with the
    /// service (the dashboard's sampler) holds.
    pub(crate) fn downgrade(&self) -> Weak<Shared> {
        Arc::downgrade(&self.0)
    }

    /// A state for in-process tests: the given configuration, an in-memory embedded store, an
    /// embedded queue in a temporary directory (kept until the process ends) without workers.
    #[cfg(test)]
    pub(crate) fn for_tests(config: Config, health: Health) -> Self {
        let routes = routes::build(&config);
        Self::for_tests_routed(config, health, &routes)
    }

    /// [`Self::for_tests`] with these routes.
    #[cfg(test)]
    pub(crate) fn for_tests_routed(config: Config, health: Health, routes: &routes::Built) -> Self {
        let telemetry = Arc::new(Telemetry::default());
        let store = crate::store::embedded::EmbeddedStore::in_memory(
            telemetry.metrics.store_commit_batch(),
        )
        .expect("an in-memory database opens");
        let dir = tempfile::tempdir().expect("a temporary directory").keep();
        let files = crate::tasks::files::TaskFiles::new(&dir, 0).expect("task directories");
        let queue = crate::tasks::embedded::EmbeddedQueue::open(
            &dir,
            crate::tasks::Places::of(&config),
            config.task_ttl,
            config.task_max_attempts,
            files.clone(),
        )
        .expect("the task database opens");
        let tasks = Tasks::start(queue, files, &telemetry, 0, config.task_ttl);
        let backends = Backends {
            store: Arc::new(store),
            tasks,
            compute: ComputePool::new(config.compute_threads()),
            faults: Faults::new(&telemetry),
        };
        Self::new(config, health, telemetry, backends, routes).expect("a valid configuration")
    }
}

/// The parts of the service that hold data or do work, built from the configuration.
#[derive(Debug)]
pub(crate) struct Backends {
    pub store: Arc<dyn MessageStore>,
    pub tasks: Tasks,
    /// The bounded pool CPU-heavy work runs on (`/total`'s sums, tasks).
    pub compute: ComputePool,
    /// Faults injected through `/faults`: the store is wrapped in them, the workers share them.
    pub faults: Faults,
}
