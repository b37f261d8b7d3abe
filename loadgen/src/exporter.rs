//! The client-side series on a plain-HTTP `/metrics` for Prometheus to scrape while the test
//! runs.

use std::net::SocketAddr;

use anyhow::{Context as _, Result};
use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

use crate::context;

/// Binds `addr` and serves `/metrics` until the process ends; returns the bound address.
pub async fn start(addr: SocketAddr) -> Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the metrics endpoint {addr} (--metrics-bind)"))?;
    let local = listener.local_addr()?;
    let app = Router::new().route("/metrics", get(metrics));
    tokio::spawn(async move {
        if let Err(err) = axum::serve(listener, app).await {
            eprintln!("loadgen: the metrics endpoint stopped: {err}");
        }
    });
    Ok(local)
}

async fn metrics() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        context::get().recorder.render(),
    )
}
