//! The run as JSON: what the client saw per route and, with `--reconcile`, what the server
//! counted.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context as _, Result};
use serde::Serialize;

use crate::open;
use crate::reconcile::Reconciliation;
use crate::recorder::{CORRECTED_SOURCE, LATENCY_SOURCE, Percentiles, RouteKey, RouteRecord};

#[derive(Debug, Serialize)]
pub struct Summary {
    pub host: String,
    pub latency_source: &'static str,
    /// `closed` (goose's users) or `open` (`--rate`).
    pub model: &'static str,
    /// In the open model: what the schedule asked for and did.
    pub open: Option<open::Report>,
    /// In the open model: where `corrected_latency_us` comes from.
    pub corrected_latency_source: Option<&'static str>,
    pub requests: u64,
    pub routes: Vec<RouteSummary>,
    pub reconciliation: Option<Reconciliation>,
}

#[derive(Debug, Serialize)]
pub struct RouteSummary {
    pub method: String,
    pub route: String,
    pub requests: u64,
    pub transport_errors: u64,
    pub status_codes: BTreeMap<String, u64>,
    pub latency_us: Percentiles,
    /// In the open model: latency from the time the request was due.
    pub corrected_latency_us: Option<Percentiles>,
}

impl Summary {
    pub fn new(
        host: &str,
        records: &BTreeMap<RouteKey, RouteRecord>,
        reconciliation: Option<Reconciliation>,
        open: Option<open::Report>,
    ) -> Self {
        let routes: Vec<RouteSummary> = records
            .iter()
            .map(|(key, record)| RouteSummary {
                method: key.method.clone(),
                route: key.route.clone(),
                requests: record.requests,
                transport_errors: record.transport_errors,
                status_codes: record
                    .status_codes
                    .iter()
                    .map(|(code, n)| (code.to_string(), *n))
                    .collect(),
                latency_us: record.percentiles(),
                corrected_latency_us: record.corrected_percentiles(),
            })
            .collect();
        Self {
            host: host.to_owned(),
            latency_source: LATENCY_SOURCE,
            model: if open.is_some() { "open" } else { "closed" },
            corrected_latency_source: open.as_ref().map(|_| CORRECTED_SOURCE),
            open,
            requests: routes.iter().map(|r| r.requests).sum(),
            routes,
            reconciliation,
        }
    }

    pub fn write(&self, path: &Path) -> Result<()> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let mut text = serde_json::to_string_pretty(self).expect("the summary serialises");
        text.push('\n');
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
    }
}
