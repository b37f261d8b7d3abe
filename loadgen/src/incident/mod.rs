//! A scripted incident: steady load, a store fault for a fixed time, recovery; and the timeline
//! every view gives of it. The client's view is this program's own requests; the server's is
//! glassbox's `/status` and `/health`; the alerts are Prometheus' (`/api/v1/alerts`) when one is
//! given, else glassbox's in-process evaluation of the same rule (`/dashboard/data`).

mod timeline;
mod watch;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result, bail};
use clap::Parser;
use serde_json::{Value, json};

pub use self::timeline::{Event, Kind, Timeline};

/// `incident`: runs the incident against a glassbox started with `--allow-faults`.
#[derive(Debug, Clone, Parser)]
#[command(name = "incident", version, about)]
pub struct Cli {
    /// glassbox's base URL (the API).
    #[arg(long, default_value = "https://localhost:8443")]
    pub host: String,
    /// Where `/faults` and `/dashboard/data` are (glassbox's `--admin-bind`); the host when unset.
    #[arg(long)]
    pub admin: Option<String>,
    /// The CA that signed glassbox's certificate.
    #[arg(long, default_value = "certs/ca.crt")]
    pub ca_cert: PathBuf,
    /// A Prometheus scraping glassbox with the bundled rules (demo.rules.yml among them);
    /// without it the alerts come from glassbox's own evaluation.
    #[arg(long)]
    pub prometheus: Option<String>,
    /// Steady load before the fault.
    #[arg(long, default_value = "20s", value_parser = humantime::parse_duration)]
    pub steady: Duration,
    /// How long the store fault lasts (it ends by itself: `duration_s`).
    #[arg(long, default_value = "40s", value_parser = humantime::parse_duration)]
    pub fault: Duration,
    /// The longest wait after the fault for recovery and for the alerts to resolve.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub recovery: Duration,
    /// Requests per second of the steady load, half `POST /messages`, half `GET /`.
    #[arg(long, default_value_t = 40)]
    pub rate: u32,
    /// Writes the timeline as JSON here.
    #[arg(long)]
    pub report: Option<PathBuf>,
}

/// The fault this incident injects.
pub const FAULT: &str = "incident-store";
/// The alert the incident must fire and resolve.
pub const ALERT: &str = "GlassboxAvailabilityBudgetBurningDemo";

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Runs the incident and returns its timeline; an error when glassbox cannot be driven.
pub async fn run(cli: &Cli) -> Result<Timeline> {
    let pem = std::fs::read(&cli.ca_cert)
        .with_context(|| format!("reading the CA certificate {}", cli.ca_cert.display()))?;
    let ca = reqwest::Certificate::from_pem(&pem).context("the CA is not a PEM certificate")?;
    let client = reqwest::Client::builder()
        .tls_certs_only([ca])
        .timeout(Duration::from_secs(10))
        .build()
        .context("building the client")?;
    let host = cli.host.trim_end_matches('/').to_owned();
    let admin = cli
        .admin
        .as_deref()
        .unwrap_or(&host)
        .trim_end_matches('/')
        .to_owned();
    let timeline = Arc::new(Mutex::new(Timeline::default()));
    let faults_url = format!("{admin}/faults/{FAULT}");
    // A fault left from an earlier run would spoil the story.
    let _ = client.delete(&faults_url).send().await;

    let watcher = watch::Watcher::start(
        client.clone(),
        &host,
        &admin,
        cli.prometheus.clone(),
        timeline.clone(),
    )
    .await?;
    let load = watch::Load::start(client.clone(), &host, cli.rate, timeline.clone());
    watch::push(
        &timeline,
        now_ms(),
        Kind::LoadStarted,
        format!(
            "steady load: {} requests/s, POST /messages and GET / in turn",
            cli.rate
        ),
    );
    tokio::time::sleep(cli.steady).await;

    let seconds = cli.fault.as_secs().max(1);
    let response = client
        .put(&faults_url)
        .json(&json!({"kind": "store", "duration_s": seconds}))
        .send()
        .await
        .with_context(|| format!("PUT {faults_url}"))?;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if status != 201 {
        bail!(
            "PUT {faults_url} answered {status} {body} (is glassbox running with --allow-faults?)"
        );
    }
    let started = body["fault"]["started_ms"].as_u64().unwrap_or_else(now_ms);
    watch::push(
        &timeline,
        started,
        Kind::FaultStarted,
        format!("fault {FAULT} started: every store call fails, for {seconds} s"),
    );

    // Until the fault has ended (10 s ago at least: a recovery that holds), the service is
    // healthy, the client is served, and the alert (when there is an alert source) has
    // resolved; or until the recovery time is up.
    let deadline = tokio::time::Instant::now() + cli.fault + cli.recovery;
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let done = {
            let t = timeline.lock().unwrap_or_else(|e| e.into_inner());
            t.has(Kind::FaultEnded)
                && t.has(Kind::ClientRecovered)
                && t.has(Kind::HealthRecovered)
                && (t.alert_resolved(ALERT) || !t.alert_seen(ALERT))
                && t.fault_ended_before(now_ms(), Duration::from_secs(10))
        };
        if done || tokio::time::Instant::now() >= deadline {
            break;
        }
    }
    load.stop().await;
    watcher.stop().await;
    let timeline = timeline.lock().unwrap_or_else(|e| e.into_inner()).clone();
    Ok(timeline)
}
