//! The HTTP surface: one module per seed family, plus the service's own endpoints.

pub mod deepgram;
pub mod ops;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware::from_fn_with_state;

use crate::app::AppState;
use crate::error;
use crate::middleware;

/// The whole router. Every request passes [`middleware::observe`]: request id, body limit,
/// concurrency limit for the seed endpoints, telemetry, JSON 405 bodies.
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(deepgram::router())
        .merge(ops::router())
        .fallback(|| async { error::not_found() })
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
        .layer(from_fn_with_state(state.clone(), middleware::observe))
        .with_state(state)
}
