//! The service's own endpoints: `/status`, `/health`, `/metrics` and `/openapi.json`. The
//! concurrency limit never sheds them, so an overload can be watched.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use super::deepgram::{Envelope, success};
use super::table::{Policy, Route};
use super::{Routes, handlers};
use crate::app::AppState;
use crate::error::ErrorCause;
use crate::health::{self, CheckResult, Health};
use crate::store::StoreStatus;
use crate::tasks::QueueStatus;
use crate::telemetry::connections::ConnectionSnapshot;
use crate::telemetry::stats::StatusSnapshot;

pub(crate) fn routes() -> Routes {
    Routes::new()
        .route(handlers!(status), Policy::SERVICE.compressed())
        .route(handlers!(health), Policy::SERVICE)
        .route(handlers!(metrics), Policy::ADMIN.compressed())
        .route(handlers!(openapi), Policy::SERVICE.compressed())
}

/// The `data` of `/status`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct StatusData<'a> {
    #[serde(flatten)]
    pub service: StatusSnapshot,
    pub store: StoreStatus,
    pub queue: QueueStatus,
    /// Every route the service serves and how it treats it.
    pub route_table: &'a [Route],
    /// The faults injected now (`/faults`, with `--allow-faults`), oldest first.
    pub faults: Vec<crate::faults::FaultView>,
    /// The faults that ended (the last 32), oldest first, with `ended_ms`.
    pub faults_ended: Vec<crate::faults::FaultView>,
    pub limits: LimitsSnapshot,
    pub connections: ConnectionSnapshot,
    /// Log lines each destination (`stdout`, `file`, `dashboard`) lost because it could not
    /// keep up.
    pub log_lines_dropped: BTreeMap<&'static str, u64>,
}

/// The concurrency limit now.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct LimitsSnapshot {
    /// `--max-concurrency`.
    pub permits: usize,
    /// Held now: requests being served and responses being sent.
    pub permits_in_use: usize,
    /// The most one client may hold (`--client-share`).
    pub client_permits: usize,
    /// Request body bytes held in memory now (whole bodies being read, and the blocks of
    /// `/sum-evens` uploads on their way to the disk), and the most there may be
    /// (`--max-buffered-bytes`).
    pub buffered_bytes: usize,
    pub max_buffered_bytes: usize,
    /// The most of it one client may hold (`--client-share`).
    pub client_buffered_bytes: usize,
    /// Bytes of `/sum-evens` uploads kept in memory for the sums that read them as they
    /// arrive, and the most there may be (0 and 0 when uploads are not summed as they arrive).
    pub sum_kept_bytes: usize,
    pub max_sum_kept_bytes: usize,
    /// Free bytes on the data directory's filesystem above `--min-free-disk` now (absent when
    /// they cannot be read).
    pub disk_room_bytes: Option<u64>,
    /// Bytes clients' writes hold there, as this process counts them: uploads being spooled,
    /// the payloads of tasks its embedded queue has waiting or running and the results it
    /// keeps, and the embedded store's messages.
    pub disk_held_bytes: u64,
    /// Of the room and what they hold, the most one client's may hold (`--client-share`).
    pub client_disk_share: f64,
}

/// Uptime, requests in flight, totals, and per method and route: counts, 5xx errors, statuses
/// and latency percentiles from HDR histograms; the store's message count and latencies; the
/// route table.
#[utoipa::path(get, path = "/status", tag = "observability",
    responses((status = 200, description = "Service statistics", body = Envelope<StatusData>)))]
async fn status(State(state): State<AppState>) -> Response {
    let (store, queue) = tokio::join!(state.store.status(), state.tasks.status());
    let (sum_kept_bytes, max_sum_kept_bytes) = state
        .tasks
        .incoming
        .as_ref()
        .map_or((0, 0), |sums| sums.kept_bytes());
    success(StatusData {
        service: state.telemetry.stats.snapshot(),
        store,
        queue,
        route_table: state.routes.routes(),
        faults: state.faults.active(),
        faults_ended: state.faults.ended(),
        limits: LimitsSnapshot {
            permits: state.config.max_concurrency,
            permits_in_use: state.limiter.in_use(),
            client_permits: state.config.client_permits(),
            buffered_bytes: state.buffered.used(),
            max_buffered_bytes: state.config.max_buffered_bytes,
            client_buffered_bytes: state.buffered.per_client(),
            sum_kept_bytes,
            max_sum_kept_bytes,
            disk_room_bytes: state.disk.room().ok(),
            disk_held_bytes: state.disk.held(),
            client_disk_share: state.disk.client_share(),
        },
        connections: state.telemetry.connections.snapshot(),
        log_lines_dropped: crate::telemetry::logging::dropped_lines()
            .into_iter()
            .collect(),
    })
    .into_response()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum HealthWord {
    Healthy,
    Unhealthy,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct HealthData {
    pub health: HealthWord,
    /// Each check by name: `{"status":"pass"|"fail", ...what it saw}`.
    #[schema(value_type = Object)]
    pub checks: BTreeMap<&'static str, CheckResult>,
}

/// Runs every health check; 503 when one fails.
#[utoipa::path(get, path = "/health", tag = "observability",
    responses(
        (status = 200, description = "Every check passed", body = Envelope<HealthData>),
        (status = 503, description = "A check failed", body = Envelope<HealthData>),
    ))]
async fn health(State(state): State<AppState>) -> impl IntoResponse {
    run_health(&state.health).await
}

/// Runs the checks: 200 when every one passes, else 503, with what each saw (and the failures
/// for the request's access line).
pub(crate) async fn run_health(checks: &Health) -> Response {
    let (healthy, checks) = checks.run().await;
    if healthy {
        let health = HealthWord::Healthy;
        return (StatusCode::OK, success(HealthData { health, checks })).into_response();
    }
    let cause = ErrorCause(format!("unhealthy: {}", health::failures(&checks)));
    let health = HealthWord::Unhealthy;
    let mut response = (
        StatusCode::SERVICE_UNAVAILABLE,
        success(HealthData { health, checks }),
    )
        .into_response();
    cause.attach(&mut response);
    response
}

/// Prometheus exposition: histograms with explicit buckets, counters and gauges; OpenMetrics
/// with exemplars (the `request_id` of a recent request in each request-duration bucket) when
/// the scraper's `Accept` asks for `application/openmetrics-text`.
#[utoipa::path(get, path = "/metrics", tag = "observability",
    responses((status = 200, description = "Prometheus text format 0.0.4, or OpenMetrics 1.0.0 with exemplars when asked for",
        content((String = "text/plain; version=0.0.4; charset=utf-8"),
            (String = "application/openmetrics-text; version=1.0.0; charset=utf-8")))))]
async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> impl IntoResponse {
    // Refreshes the message-count gauge; a store that cannot answer keeps its last value and
    // counts the failure in the store's error metrics.
    let _ = tokio::join!(state.store.count(), state.tasks.counts());
    state
        .telemetry
        .metrics
        .disk(state.disk.room().ok(), state.disk.held());
    let (content_type, text) = state.telemetry.render_metrics_for(
        headers.get(header::ACCEPT),
        state.telemetry.stats.in_flight(),
    );
    ([(header::CONTENT_TYPE, content_type)], text)
}

/// This document: OpenAPI 3.1, generated from the code.
#[utoipa::path(get, path = "/openapi.json", tag = "observability",
    responses((status = 200, description = "The OpenAPI document", body = Object)))]
async fn openapi(State(state): State<AppState>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, super::JSON)], state.openapi.clone())
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use time::{Duration, OffsetDateTime};
    use tower::ServiceExt;

    use crate::app::AppState;
    use crate::certs::ServerCertInfo;
    use crate::health::{CertificateCheck, Health};

    fn state(health: Health) -> AppState {
        AppState::for_tests(crate::config::defaults(), health)
    }

    async fn get(state: AppState, path: &str) -> (u16, serde_json::Value) {
        let built = crate::routes::build(&state.config);
        let response = crate::routes::service(
            built.router,
            state,
            crate::routes::table::Serving::Everything,
        )
        .oneshot(Request::get(path).body(Body::empty()).unwrap())
        .await
        .unwrap();
        let status = response.status().as_u16();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, serde_json::from_slice(&bytes).unwrap_or_default())
    }

    async fn health_with(not_after: OffsetDateTime) -> (u16, serde_json::Value) {
        let info = ServerCertInfo {
            not_before: not_after - Duration::days(365),
            not_after,
            names: vec!["localhost".into()],
        };
        get(
            state(Health::default().with(CertificateCheck {
                identity: std::sync::Arc::new(crate::tls::Identity::reporting(info)),
            })),
            "/health",
        )
        .await
    }

    #[tokio::test]
    async fn an_expired_certificate_makes_the_service_unhealthy() {
        let (status, body) = health_with(OffsetDateTime::now_utc() - Duration::hours(1)).await;
        assert_eq!(status, 503);
        assert_eq!(body["result"], "success");
        assert_eq!(body["data"]["health"], "unhealthy");
        assert_eq!(body["data"]["checks"]["certificate"]["status"], "fail");
        let (status, body) = health_with(OffsetDateTime::now_utc() + Duration::days(90)).await;
        assert_eq!(status, 200);
        assert_eq!(body["data"]["health"], "healthy");
    }

    #[tokio::test]
    async fn every_route_never_shed_answers_at_the_concurrency_limit() {
        let mut config = crate::config::defaults();
        config.max_concurrency = 1;
        config.allow_faults = true;
        let state = AppState::for_tests(config, Health::default());
        let _taken = state.limiter.try_acquire(None).expect("the one permit");
        let never_shed: Vec<_> = state
            .routes
            .routes()
            .iter()
            .filter(|r| !r.shed)
            .map(|r| (r.route.to_string(), r.methods.contains(&"GET")))
            .collect();
        assert_eq!(never_shed.len(), 11, "{never_shed:?}");
        for (path, gettable) in &never_shed {
            let (status, _) = get(state.clone(), path).await;
            // `/faults/{name}` takes PUT and DELETE: a GET is answered 405, not shed.
            let expected = if *gettable { 200 } else { 405 };
            assert_eq!(status, expected, "{path}");
        }
        let (status, body) = get(state.clone(), "/").await;
        assert_eq!(
            (status, body["error"].as_str()),
            (503, Some("overloaded, retry later"))
        );
    }
}
