//! What a `glassbox worker` process serves on its `--bind`: `/status`, `/health` and
//! `/metrics`, so its tasks can be watched and scraped like the service's requests.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use super::deepgram::{Envelope, success};
use super::ops::run_health;
use crate::error::ApiError;
use crate::health::Health;
use crate::tasks::{QueueStatus, Tasks};
use crate::telemetry::Telemetry;

#[derive(Debug, Clone)]
pub(crate) struct WorkerState {
    pub telemetry: Arc<Telemetry>,
    pub health: Health,
    pub tasks: Tasks,
    pub started: Instant,
}

pub(crate) fn router(state: WorkerState) -> Router {
    Router::new()
        .route("/status", get(status))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .fallback(|| async { ApiError::NotFound })
        .with_state(state)
}

#[derive(Debug, Serialize)]
struct WorkerStatus {
    /// Always `worker`.
    role: &'static str,
    uptime_seconds: f64,
    queue: QueueStatus,
}

async fn status(State(state): State<WorkerState>) -> Json<Envelope<WorkerStatus>> {
    success(WorkerStatus {
        role: "worker",
        uptime_seconds: state.started.elapsed().as_secs_f64(),
        queue: state.tasks.status().await,
    })
}

async fn health(State(state): State<WorkerState>) -> impl IntoResponse {
    run_health(&state.health).await
}

async fn metrics(State(state): State<WorkerState>, headers: HeaderMap) -> impl IntoResponse {
    let _ = state.tasks.counts().await;
    let (content_type, text) = state
        .telemetry
        .render_metrics_for(headers.get(header::ACCEPT), 0);
    ([(header::CONTENT_TYPE, content_type)], text)
}
