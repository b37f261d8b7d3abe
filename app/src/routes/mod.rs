//! The HTTP surface: one module per seed family, plus the service's own endpoints.

pub mod deepgram;
pub mod ops;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware::from_fn_with_state;

use crate::app::AppState;
use crate::error;
use crate::middleware;

/// The whole router. Every request passes [`middleware::observe`] (request id, body limit,
/// telemetry, JSON 405 bodies); the seed endpoints also sit behind the concurrency limit.
pub fn router(state: AppState) -> Router {
    let seeds = deepgram::router().route_layer(from_fn_with_state(state.clone(), middleware::shed));
    Router::new()
        .merge(seeds)
        .merge(ops::router())
        .fallback(|| async { error::not_found() })
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
        .layer(from_fn_with_state(state.clone(), middleware::observe))
        .with_state(state)
}
