//! The application: shared state, and building it from configuration.

use std::sync::Arc;

use anyhow::{Context, Result};
use axum::Router;

use crate::certs::{self, Outcome};
use crate::compute::ComputePool;
use crate::config::Config;
use crate::health::{CertificateCheck, Health};
use crate::limiter::Limiter;
use crate::numbers::{SimulatedNumbers, Totals};
use crate::routes;
use crate::routes::deepgram::WorkPlan;
use crate::store::{self, MessageStore, Store, StoreCheck};
use crate::telemetry::Telemetry;

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
    /// The OpenAPI document served at `/openapi.json`.
    pub openapi: String,
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl AppState {
    /// The state of a service with this configuration, telemetry and store backend; the
    /// store joins the health checks.
    pub fn new(
        config: Config,
        health: Health,
        telemetry: Arc<Telemetry>,
        backend: Arc<dyn MessageStore>,
    ) -> Result<Self> {
        config.validate().map_err(anyhow::Error::msg)?;
        let store = Store::new(backend, config.store_timeout, &telemetry.metrics);
        let health = health.with(StoreCheck {
            store: store.clone(),
        });
        let numbers = SimulatedNumbers {
            latency: config.total_latency,
            count: config.total_count,
        };
        Ok(Self(Arc::new(Shared {
            totals: Totals::new(
                Arc::new(numbers),
                ComputePool::new(config.compute_threads()),
            ),
            openapi: routes::openapi_json(&config),
            work: WorkPlan::from_config(&config)?,
            limiter: Limiter::new(config.max_concurrency),
            config,
            telemetry,
            health,
            store,
        })))
    }

    /// A state for in-process tests: the given configuration, an in-memory embedded store.
    #[cfg(test)]
    pub fn for_tests(config: Config, health: Health) -> Self {
        let telemetry = Arc::new(Telemetry::default());
        let backend = crate::store::embedded::EmbeddedStore::in_memory(
            telemetry.metrics.store_commit_batch(),
        )
        .expect("an in-memory database opens");
        Self::new(config, health, telemetry, Arc::new(backend)).expect("a valid configuration")
    }
}

/// A service ready to run: its router, TLS configuration and state.
#[derive(Debug)]
pub struct App {
    pub state: AppState,
    pub router: Router,
    pub tls: Arc<rustls::ServerConfig>,
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
        let backend = store::open(&config, &telemetry.metrics)?;
        let state = AppState::new(config, health, telemetry, backend)?;
        state.telemetry.metrics.certificate_expiry(expiry);
        let router = routes::router(state.clone());
        Ok(Self { state, router, tls })
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
