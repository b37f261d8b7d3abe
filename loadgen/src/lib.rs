//! glassbox's load generator: goose scenarios for every endpoint, the client's own latency
//! in HDR histograms and on a Prometheus endpoint, and a reconciliation of the requests made
//! against the server's own counts.
//!
//! # Layout
//!
//! - [`cli`]: the command line, glassbox's options plus every goose option.
//! - [`scenarios`]: one module per seed family; request names are route templates.
//! - [`open`]: the open model (`--rate`): starts on a schedule, latency also from the due time.
//! - [`request`]: sends one request through goose and records it.
//! - [`recorder`]: per-route counts and full-latency HDR histograms, and their Prometheus series.
//! - [`exporter`]: serves those series at `/metrics`.
//! - [`status`], [`reconcile`]: the server's `/status` before and after, compared with the records.
//! - [`summary`]: the run as JSON. [`progress`]: the line printed while it runs.
//! - [`context`]: what every user shares. [`payloads`]: PNGs and number files to send.

pub mod cli;
pub mod context;
pub mod exporter;
pub mod incident;
pub mod open;
pub mod payloads;
pub mod progress;
pub mod reconcile;
pub mod recorder;
pub mod request;
pub mod scenarios;
pub mod status;
pub mod summary;

use std::time::Duration;

use anyhow::{Context as _, Result};
use goose::prelude::*;

use crate::cli::{Cli, DEFAULT_HOST};
use crate::context::{ClientSettings, Context};
use crate::progress::Progress;
use crate::status::StatusClient;
use crate::summary::Summary;

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The load test ran (and, with `--reconcile`, every count agreed).
    Done,
    /// The server counted something other than what was sent.
    Mismatch,
}

/// Runs the load test `cli` describes.
pub async fn run(mut cli: Cli) -> Result<Outcome> {
    let informational = cli.goose.version || cli.goose.list || cli.goose.scenarios_list;
    let host = cli
        .goose
        .host
        .get_or_insert_with(|| DEFAULT_HOST.to_owned())
        .clone();
    let settings = ClientSettings::new(&cli.goose, &host, &cli.options.ca_cert)?;
    let context = context::init(Context::new(settings, cli.options.think_time));

    let scenarios = if cli.options.hello_only {
        vec![scenarios::hello_only()?]
    } else {
        scenarios::all(cli.options.think_time)?
    };
    let open_plan = cli.options.open.rate.map(|rate| open::Plan {
        rate,
        arrival: cli.options.open.arrival,
        run_for: run_time(&cli.goose),
        max_in_flight: cli.options.open.max_in_flight as usize,
        seed: cli.options.open.seed,
    });
    if open_plan.is_some() && cli.goose.users.is_some() {
        anyhow::bail!(
            "--rate starts transactions on a schedule instead of running goose users: leave out \
             --users"
        );
    }
    let mix = open::Mix::new(&scenarios);
    let mut attack = GooseAttack::initialize_with_config(cli.goose.clone())?;
    for scenario in scenarios {
        attack = attack.register_scenario(scenario);
    }
    if informational {
        attack.execute().await?;
        return Ok(Outcome::Done);
    }

    let metrics = exporter::start(cli.options.metrics_bind).await?;
    eprintln!("loadgen: client-side metrics at http://{metrics}/metrics");
    let mut server = if cli.options.reconcile {
        let client = context
            .client
            .builder()
            .build()
            .context("building the client")?;
        let mut server = StatusClient::new(client, &host);
        let before = server.fetch().await.context(
            "--reconcile needs the server's /status before the run (is glassbox running at --host?)",
        )?;
        Some((server, before))
    } else {
        None
    };

    let progress = (!cli.options.no_progress).then(|| Progress::start(run_time(&cli.goose)));
    let result = match &open_plan {
        Some(plan) => {
            eprintln!(
                "loadgen: open model, {} transactions a second ({:?} arrivals), at most {} at once",
                plan.rate, plan.arrival, plan.max_in_flight
            );
            open::run(plan, &mix, &host, &cli.goose).await.map(Some)
        }
        None => attack.execute().await.map(|_| None).map_err(Into::into),
    };
    if let Some(progress) = progress {
        progress.stop();
    }
    let open_report = result?;
    if let Some(report) = &open_report {
        println!("\n{}", report.render());
    }

    let records = context.recorder.snapshot();
    let reconciliation = match server.as_mut() {
        Some((server, before)) => {
            let after = server
                .settled(Duration::from_secs(10))
                .await
                .context("the server's /status after the run")?;
            let calls = server.calls() - 1;
            Some(reconcile::reconcile(&records, before, &after, calls))
        }
        None => None,
    };
    if let Some(reconciliation) = &reconciliation {
        println!("\n{}", reconciliation.render());
    }
    let outcome = match &reconciliation {
        Some(r) if !r.matched => Outcome::Mismatch,
        _ => Outcome::Done,
    };
    if let Some(path) = &cli.options.summary {
        Summary::new(&host, &records, reconciliation, open_report).write(path)?;
    }
    Ok(outcome)
}

/// goose's `--run-time`, when given.
fn run_time(goose: &goose::config::GooseConfiguration) -> Option<Duration> {
    goose
        .run_time
        .as_deref()
        .and_then(goose::util::parse_timespan)
        .map(|s| Duration::from_secs(s as u64))
}
