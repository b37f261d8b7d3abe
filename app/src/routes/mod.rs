//! The HTTP surface: one module per seed family, plus the service's own endpoints.

pub mod deepgram;
pub mod ops;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware::{from_fn, from_fn_with_state};

use crate::app::AppState;
use crate::error;
use crate::middleware;

/// The whole router. Layers, outermost first: telemetry and request ids, JSON bodies for
/// 405s, the body limit; the seed endpoints also sit behind the concurrency limit.
pub fn router(state: AppState) -> Router {
    let seeds = deepgram::router().route_layer(from_fn_with_state(state.clone(), middleware::shed));
    Router::new()
        .merge(seeds)
        .merge(ops::router())
        .fallback(|| async { error::not_found() })
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
        .layer(from_fn_with_state(state.clone(), middleware::limit_body))
        .layer(from_fn(middleware::method_not_allowed))
        .layer(from_fn_with_state(state.clone(), middleware::observe))
        .with_state(state)
}
