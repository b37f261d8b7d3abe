//! JSON logs to stdout and to a daily-rolling file, through non-blocking writers that never
//! drop a line (they apply back-pressure instead) and are flushed when the guards drop.

use std::path::Path;

use anyhow::{Context, Result};
use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_appender::rolling::{RollingFileAppender, Rotation};
use tracing_subscriber::fmt::time::UtcTime;
use tracing_subscriber::prelude::*;
use tracing_subscriber::{EnvFilter, fmt};

/// The prefix and suffix of log file names: `glassbox.2026-11-22.log`.
pub const FILE_PREFIX: &str = "glassbox";
pub const FILE_SUFFIX: &str = "log";

/// Keeps the writer threads alive; dropping it flushes every buffered line.
#[must_use = "logs are flushed when the guard drops"]
#[derive(Debug)]
pub struct LogGuard(#[allow(dead_code)] Vec<WorkerGuard>);

/// Installs the global subscriber: JSON lines to stdout and, with `log_dir`, to a rolling file.
pub fn init(filter: &str, log_dir: Option<&Path>, keep_files: usize) -> Result<LogGuard> {
    let filter =
        EnvFilter::try_new(filter).with_context(|| format!("bad log filter `{filter}`"))?;
    let mut guards = Vec::new();

    let (stdout, guard) = NonBlockingBuilder::default()
        .lossy(false)
        .thread_name("glassbox-log-stdout")
        .finish(std::io::stdout());
    guards.push(guard);
    let stdout_layer = json_layer().with_writer(stdout);

    let file_layer = match log_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("creating log directory {}", dir.display()))?;
            let appender = RollingFileAppender::builder()
                .rotation(Rotation::DAILY)
                .filename_prefix(FILE_PREFIX)
                .filename_suffix(FILE_SUFFIX)
                .max_log_files(keep_files.max(1))
                .build(dir)
                .with_context(|| format!("opening a log file in {}", dir.display()))?;
            let (file, guard) = NonBlockingBuilder::default()
                .lossy(false)
                .thread_name("glassbox-log-file")
                .finish(appender);
            guards.push(guard);
            Some(json_layer().with_writer(file))
        }
        None => None,
    };

    tracing_subscriber::registry()
        .with(filter)
        .with(stdout_layer)
        .with(file_layer)
        .try_init()
        .context("a global log subscriber is already installed")?;
    Ok(LogGuard(guards))
}

fn json_layer<S>() -> fmt::Layer<
    S,
    fmt::format::JsonFields,
    fmt::format::Format<fmt::format::Json, UtcTime<time::format_description::well_known::Rfc3339>>,
>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    fmt::layer()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .with_timer(UtcTime::rfc_3339())
}
