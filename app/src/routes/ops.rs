//! The service's own endpoints: `/status`, `/health` and `/metrics`. They are never shed.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use super::deepgram::success;
use crate::app::AppState;

/// Routes the concurrency limit never sheds.
pub const UNLIMITED: [&str; 3] = ["/status", "/health", "/metrics"];

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/status", get(status))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
}

/// `GET /status`: uptime, requests in flight, totals and per-route counts and percentiles.
async fn status(State(state): State<AppState>) -> Json<Value> {
    let snapshot = state.telemetry.stats.snapshot();
    success(serde_json::to_value(snapshot).unwrap_or_default())
}

/// `GET /health`: runs every check; 503 when one fails.
async fn health(State(state): State<AppState>) -> impl IntoResponse {
    let (healthy, checks) = state.health.run().await;
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let word = if healthy { "healthy" } else { "unhealthy" };
    (status, success(json!({"health": word, "checks": checks})))
}

/// `GET /metrics`: Prometheus text exposition.
async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state
            .telemetry
            .metrics
            .render(state.telemetry.stats.in_flight()),
    )
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use clap::Parser;
    use time::{Duration, OffsetDateTime};
    use tower::ServiceExt;

    use crate::app::AppState;
    use crate::certs::ServerCertInfo;
    use crate::config::Cli;
    use crate::health::{CertificateCheck, Health};

    async fn health_with(not_after: OffsetDateTime) -> (u16, serde_json::Value) {
        let info = ServerCertInfo {
            not_before: not_after - Duration::days(365),
            not_after,
            names: vec!["localhost".into()],
        };
        let config = Cli::parse_from(["glassbox"]).config;
        let state =
            AppState::new(config, Health::default().with(CertificateCheck { info })).unwrap();
        let response = crate::routes::router(state)
            .oneshot(Request::get("/health").body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status().as_u16();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, serde_json::from_slice(&bytes).unwrap())
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
}

#[cfg(test)]
mod unlimited_tests {
    use axum::body::Body;
    use axum::http::Request;
    use clap::Parser;
    use tower::ServiceExt;

    use crate::app::AppState;
    use crate::config::Cli;
    use crate::health::Health;

    #[tokio::test]
    async fn every_unlimited_route_exists() {
        let state = AppState::new(Cli::parse_from(["glassbox"]).config, Health::default()).unwrap();
        for path in super::UNLIMITED {
            let response = super::router()
                .with_state(state.clone())
                .oneshot(Request::get(path).body(Body::empty()).unwrap())
                .await
                .unwrap();
            assert_eq!(response.status(), 200, "{path}");
        }
    }
}
