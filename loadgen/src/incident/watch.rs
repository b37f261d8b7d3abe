//! The incident's two sides: [`Load`], the client sending requests on a fixed schedule, and
//! [`Watcher`], polling glassbox (`/status`, `/health`) and the alert source.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;
use serde_json::{Value, json};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use super::{ALERT, Event, FAULT, Kind, Timeline, now_ms};

/// Requests of the steady load in flight at most.
const IN_FLIGHT: u32 = 64;

/// Adds an event to the shared timeline.
pub(super) fn push(timeline: &Mutex<Timeline>, at_ms: u64, kind: Kind, what: String) {
    timeline
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(Event { at_ms, kind, what });
}

/// Requests at a fixed rate, `POST /messages` and `GET /` in turn, whatever the answers.
pub(super) struct Load {
    ticker: JoinHandle<()>,
    permits: Arc<Semaphore>,
    sent: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    timeline: Arc<Mutex<Timeline>>,
}

impl Load {
    pub(super) fn start(
        client: reqwest::Client,
        host: &str,
        rate: u32,
        timeline: Arc<Mutex<Timeline>>,
    ) -> Self {
        let permits = Arc::new(Semaphore::new(IN_FLIGHT as usize));
        let sent = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let seen_5xx = Arc::new(AtomicBool::new(false));
        let recovered = Arc::new(AtomicBool::new(false));
        let every = Duration::from_secs_f64(1.0 / f64::from(rate.max(1)));
        let host = host.to_owned();
        let ticker = {
            let (permits, sent, failed, timeline) = (
                permits.clone(),
                sent.clone(),
                failed.clone(),
                timeline.clone(),
            );
            tokio::spawn(async move {
                let mut ticks = tokio::time::interval(every);
                ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
                for i in 0u64.. {
                    ticks.tick().await;
                    // Over IN_FLIGHT requests waiting: this tick's request is not sent.
                    let Ok(permit) = permits.clone().try_acquire_owned() else {
                        continue;
                    };
                    sent.fetch_add(1, Ordering::Relaxed);
                    let post = i % 2 == 0;
                    let request = match post {
                        true => client
                            .post(format!("{host}/messages"))
                            .json(&json!({"message": format!("incident {i}")})),
                        false => client.get(format!("{host}/")),
                    };
                    let (failed, timeline, seen_5xx, recovered) = (
                        failed.clone(),
                        timeline.clone(),
                        seen_5xx.clone(),
                        recovered.clone(),
                    );
                    tokio::spawn(async move {
                        let _permit = permit;
                        let what = if post { "POST /messages" } else { "GET /" };
                        let status = request.send().await.map(|r| r.status().as_u16());
                        let at = now_ms();
                        match status {
                            Ok(code) if code >= 500 => {
                                failed.fetch_add(1, Ordering::Relaxed);
                                if !seen_5xx.swap(true, Ordering::Relaxed) {
                                    push(
                                        &timeline,
                                        at,
                                        Kind::ClientFirst5xx,
                                        format!(
                                            "first 5xx seen by the client: {what} answered {code}"
                                        ),
                                    );
                                }
                            }
                            Ok(code) if post && code < 300 && seen_5xx.load(Ordering::Relaxed) => {
                                if !recovered.swap(true, Ordering::Relaxed) {
                                    push(
                                        &timeline,
                                        at,
                                        Kind::ClientRecovered,
                                        format!("client recovered: {what} answered {code} again"),
                                    );
                                }
                            }
                            Ok(_) => {}
                            Err(_) => {
                                failed.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    });
                }
            })
        };
        Self {
            ticker,
            permits,
            sent,
            failed,
            timeline,
        }
    }

    /// Stops sending, waits for the answers still due, and records the totals.
    pub(super) async fn stop(self) {
        self.ticker.abort();
        let _ = tokio::time::timeout(
            Duration::from_secs(15),
            self.permits.acquire_many(IN_FLIGHT),
        )
        .await;
        push(
            &self.timeline,
            now_ms(),
            Kind::LoadStopped,
            format!(
                "the client sent {} requests; {} got a 5xx or no answer",
                self.sent.load(Ordering::Relaxed),
                self.failed.load(Ordering::Relaxed)
            ),
        );
    }
}

/// Polls glassbox and the alert source, turning what changes into events.
pub(super) struct Watcher {
    polling: JoinHandle<()>,
    alerts: Arc<Mutex<BTreeMap<String, String>>>,
    timeline: Arc<Mutex<Timeline>>,
}

impl Watcher {
    pub(super) async fn start(
        client: reqwest::Client,
        host: &str,
        admin: &str,
        prometheus: Option<String>,
        timeline: Arc<Mutex<Timeline>>,
    ) -> Result<Self> {
        let status_url = format!("{host}/status");
        let baseline = errors_total(&client, &status_url).await?;
        let source = match &prometheus {
            Some(_) => "prometheus",
            None => "in-process",
        };
        timeline
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .alert_source = Some(source.to_owned());
        let alerts_url = match &prometheus {
            Some(url) => format!("{}/api/v1/alerts", url.trim_end_matches('/')),
            // A sequence number past any sample: the answer carries no points, only the alerts.
            None => format!("{admin}/dashboard/data?since=999999999999"),
        };
        let alerts: Arc<Mutex<BTreeMap<String, String>>> = Arc::default();
        let health_url = format!("{host}/health");
        let polling = {
            let (timeline, alerts) = (timeline.clone(), alerts.clone());
            tokio::spawn(async move {
                let mut unhealthy = false;
                let mut tick = 0u64;
                loop {
                    tokio::time::sleep(Duration::from_millis(250)).await;
                    tick += 1;
                    server(&client, &status_url, baseline, &timeline).await;
                    if let Ok(response) = client.get(&health_url).send().await {
                        let at = now_ms();
                        let t = &timeline;
                        match (response.status().as_u16(), unhealthy) {
                            (503, false) => {
                                unhealthy = true;
                                let body: Value = response.json().await.unwrap_or(Value::Null);
                                let failing: Vec<String> = body["data"]["checks"]
                                    .as_object()
                                    .map(|checks| {
                                        checks
                                            .iter()
                                            .filter(|(_, c)| c["status"] == "fail")
                                            .map(|(name, _)| name.clone())
                                            .collect()
                                    })
                                    .unwrap_or_default();
                                push(
                                    t,
                                    at,
                                    Kind::HealthUnhealthy,
                                    format!("/health unhealthy (failing: {})", failing.join(", ")),
                                );
                            }
                            (200, true) => {
                                unhealthy = false;
                                push(
                                    t,
                                    at,
                                    Kind::HealthRecovered,
                                    "/health healthy again".to_owned(),
                                );
                            }
                            _ => {}
                        }
                    }
                    // Alerts once a second: Prometheus evaluates the demo group every 5 s.
                    if tick.is_multiple_of(4) {
                        poll_alerts(&client, &alerts_url, source, &alerts, &timeline).await;
                    }
                }
            })
        };
        Ok(Self {
            polling,
            alerts,
            timeline,
        })
    }

    /// Stops polling; an alert still firing is recorded as such.
    pub(super) async fn stop(self) {
        self.polling.abort();
        let _ = self.polling.await;
        let at = now_ms();
        let alerts = self
            .alerts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        for (name, state) in alerts {
            push(
                &self.timeline,
                at,
                Kind::AlertStillFiring,
                format!(
                    "alert {name} still {state} when the run ended{}",
                    if name == ALERT {
                        ""
                    } else {
                        " (its windows still hold the errors)"
                    }
                ),
            );
        }
    }
}

async fn errors_total(client: &reqwest::Client, url: &str) -> Result<u64> {
    let body: Value = client
        .get(url)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    Ok(body["data"]["errors_total"].as_u64().unwrap_or(0))
}

/// The server's side: its first counted 5xx, and the fault's end as glassbox recorded it.
async fn server(client: &reqwest::Client, url: &str, baseline: u64, timeline: &Mutex<Timeline>) {
    let Ok(response) = client.get(url).send().await else {
        return;
    };
    let Ok(body) = response.json::<Value>().await else {
        return;
    };
    let data = &body["data"];
    let mut t = timeline.lock().unwrap_or_else(|e| e.into_inner());
    let errors = data["errors_total"].as_u64().unwrap_or(0);
    if errors > baseline && !t.has(Kind::ServerFirst5xx) {
        t.push(Event {
            at_ms: now_ms(),
            kind: Kind::ServerFirst5xx,
            what: format!(
                "first 5xx counted by glassbox (/status errors_total {baseline} -> {errors})"
            ),
        });
    }
    if !t.has(Kind::FaultEnded)
        && let Some(ended) = data["faults_ended"]
            .as_array()
            .and_then(|f| f.iter().rev().find(|f| f["name"] == FAULT))
        && let Some(at_ms) = ended["ended_ms"].as_u64()
        && t.first(Kind::FaultStarted)
            .is_some_and(|s| ended["started_ms"].as_u64() == Some(s.at_ms))
    {
        t.push(Event {
            at_ms,
            kind: Kind::FaultEnded,
            what: format!(
                "fault {FAULT} ended: {} of {} store calls failed",
                ended["injected"], ended["seen"]
            ),
        });
    }
}

/// Pending and firing alerts now, by name: Prometheus' `/api/v1/alerts`, or the `alerts` of
/// glassbox's `/dashboard/data`.
async fn poll_alerts(
    client: &reqwest::Client,
    url: &str,
    source: &str,
    known: &Mutex<BTreeMap<String, String>>,
    timeline: &Mutex<Timeline>,
) {
    let Ok(response) = client.get(url).send().await else {
        return;
    };
    let Ok(body) = response.json::<Value>().await else {
        return;
    };
    let list = match source {
        "prometheus" => body["data"]["alerts"].clone(),
        _ => body["alerts"].clone(),
    };
    let now: BTreeMap<String, String> = list
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| {
            let name = a["labels"]["alertname"].as_str().or(a["name"].as_str())?;
            Some((name.to_owned(), a["state"].as_str()?.to_owned()))
        })
        .collect();
    let at = now_ms();
    let mut known = known.lock().unwrap_or_else(|e| e.into_inner());
    for (name, state) in &now {
        if known.get(name) == Some(state) {
            continue;
        }
        let kind = match state.as_str() {
            "pending" => Kind::AlertPending,
            "firing" => Kind::AlertFiring,
            _ => continue,
        };
        push(
            timeline,
            at,
            kind,
            format!("alert {name} {state} ({source})"),
        );
    }
    for name in known.keys() {
        if !now.contains_key(name) {
            push(
                timeline,
                at,
                Kind::AlertResolved,
                format!("alert {name} resolved ({source})"),
            );
        }
    }
    *known = now;
}
