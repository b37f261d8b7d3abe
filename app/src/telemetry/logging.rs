//! JSON logs to stdout and to a file rolled by day and by size ([`log_file`]),
//! written in batches by `log_writer`, which never makes a request wait: a sink that cannot
//! keep up loses lines, and they are counted ([`dropped_lines`]). Flushed when the guard drops.

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use anyhow::{Context, Result};

use crate::startup::{Failure, StartupError};
use tracing_subscriber::prelude::*;
use tracing_subscriber::{EnvFilter, fmt};

use super::access_log;
use super::json_format::JsonLines;
use super::log_file;
use super::log_writer::{self, Dropped, FlushGuard};

/// The installed writer's drop counts.
static DROPPED: OnceLock<Arc<Dropped>> = OnceLock::new();

/// Lines each log sink (`stdout`, `file`, `dashboard`) did not get since start, because it
/// could not keep up; empty before [`init`].
pub fn dropped_lines() -> Vec<(&'static str, u64)> {
    DROPPED.get().map(|d| d.counts()).unwrap_or_default()
}

/// The prefix and suffix of log file names: `glassbox.2026-11-22.log`.
pub const FILE_PREFIX: &str = "glassbox";
pub const FILE_SUFFIX: &str = "log";

/// Keeps the writer threads alive; dropping it flushes every buffered line.
#[must_use = "logs are flushed when the guard drops"]
#[derive(Debug)]
pub struct LogGuard(#[allow(dead_code)] FlushGuard);

/// Installs the global subscriber: JSON lines to stdout and, with `log_dir`, to a rolling file.
/// Each event is formatted once and written to both by one batching thread.
pub fn init(filter: &str, log_dir: Option<(&Path, log_file::Limits)>) -> Result<LogGuard> {
    let filter = EnvFilter::try_new(filter).map_err(|err| {
        StartupError::new(
            Failure::Usage,
            format!("`{filter}` is not a log filter"),
            "--log-level",
            err,
        )
    })?;
    let mut sinks: Vec<(&'static str, Box<dyn Write + Send>)> =
        vec![("stdout", Box::new(std::io::stdout()))];
    if let Some((dir, limits)) = log_dir {
        crate::startup::writable_dir(dir, "log directory", "--log-dir")?;
        let file = log_file::LogFile::open(dir, limits).map_err(|err| {
            StartupError::new(
                Failure::Directory,
                format!("cannot open a log file in {}", dir.display()),
                "--log-dir",
                err,
            )
        })?;
        sinks.push(("file", Box::new(file)));
    }
    // The dashboard's recent lines: the same lines, kept in memory.
    sinks.push((
        "dashboard",
        Box::new(super::log_ring::LogRing::global().sink()),
    ));
    let (writer, guard) = log_writer::start(sinks);
    let _ = DROPPED.set(guard.dropped());
    tracing_subscriber::registry()
        .with(filter)
        .with(json_layer().with_writer(writer.clone()))
        .try_init()
        .context("a global log subscriber is already installed")?;
    // After the subscriber, whose filter it reads.
    access_log::install(writer);
    Ok(LogGuard(guard))
}

fn json_layer<S>() -> fmt::Layer<S, fmt::format::DefaultFields, JsonLines>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    fmt::layer().event_format(JsonLines)
}
