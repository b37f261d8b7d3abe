//! End-to-end tests: the real `glassbox` binary (`testkit::Process`), and the outside programs
//! glassbox ships configuration for or that users bring, each in a file of its own.

mod bounds;
mod browser;
mod chromium;
mod curl;
mod disk_full;
mod faults;
mod h2_windows;
mod heads;
mod logql;
mod logs;
mod long_numbers;
mod nginx;
mod own_cert;
mod process;
mod prometheus;
mod redis;
mod refusals;
mod schemathesis;
mod slow_clients;
mod slowhttptest;
mod stalled_stdout;
mod startup;

use serde_json::Value;
use testkit::{Endpoint, Process, eventually};

/// Sends `GET path` with our own request id.
pub async fn get_with_id(app: &Endpoint, path: &str, id: &str) -> u16 {
    app.client
        .get(app.url(path))
        .header("x-request-id", id)
        .send()
        .await
        .expect("GET completes")
        .status()
        .as_u16()
}

/// The "task finished" lines `app` printed, once there are `count`: a worker logs a task just
/// after recording its end, and lines reach stdout in batches.
pub async fn finished_lines(app: &Process, count: usize) -> Vec<Value> {
    let lines = || {
        app.stdout_lines()
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|l| l["message"] == "task finished")
            .collect::<Vec<_>>()
    };
    eventually("the tasks' log lines", || async { lines().len() >= count }).await;
    lines()
}
