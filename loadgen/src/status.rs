//! glassbox's own account of its traffic, from `GET /status`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
struct Envelope {
    data: ServerStatus,
}

/// The parts of `/status` a reconciliation needs.
#[derive(Debug, Clone, Deserialize)]
pub struct ServerStatus {
    pub requests_in_flight: u64,
    #[serde(default)]
    pub latency_source: String,
    pub routes: Vec<ServerRoute>,
    /// Injected faults active now, and those that ended (older glassbox builds have neither).
    #[serde(default)]
    pub faults: Vec<ServerFault>,
    #[serde(default)]
    pub faults_ended: Vec<ServerFault>,
}

/// An injected fault as `/status` lists it.
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
pub struct ServerFault {
    pub name: String,
    pub kind: String,
    pub route: Option<String>,
    pub started_ms: u64,
    #[serde(default)]
    pub ended_ms: Option<u64>,
    /// Requests (or store calls) it affected since it started.
    pub injected: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ServerRoute {
    pub method: String,
    pub route: String,
    pub count: u64,
    pub status_codes: BTreeMap<String, u64>,
    pub latency_us: ServerLatency,
}

#[derive(Debug, Clone, Copy, Deserialize)]
pub struct ServerLatency {
    pub p50: u64,
    pub p99: u64,
}

/// Fetches `/status` and counts its own calls, which the server counts too.
#[derive(Debug)]
pub struct StatusClient {
    client: reqwest::Client,
    url: String,
    calls: u64,
}

impl StatusClient {
    pub fn new(client: reqwest::Client, host: &str) -> Self {
        Self {
            client,
            url: format!("{}/status", host.trim_end_matches('/')),
            calls: 0,
        }
    }

    /// `/status` calls made so far.
    pub fn calls(&self) -> u64 {
        self.calls
    }

    pub async fn fetch(&mut self) -> Result<ServerStatus> {
        self.calls += 1;
        let response = self
            .client
            .get(&self.url)
            .send()
            .await
            .with_context(|| format!("GET {}", self.url))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .with_context(|| format!("GET {}", self.url))?;
        if !status.is_success() {
            bail!("GET {} answered {status}", self.url);
        }
        let envelope: Envelope = serde_json::from_slice(&body)
            .with_context(|| format!("GET {}: not glassbox's /status", self.url))?;
        Ok(envelope.data)
    }

    /// `/status` once nothing but this call is in flight, so every request of the run has
    /// been counted (waits up to `patience`).
    pub async fn settled(&mut self, patience: Duration) -> Result<ServerStatus> {
        let deadline = Instant::now() + patience;
        loop {
            let status = self.fetch().await?;
            if status.requests_in_flight <= 1 || Instant::now() >= deadline {
                return Ok(status);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
