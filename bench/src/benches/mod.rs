//! One module per benchmark; each prints its measurements, the reference measured in the same
//! run, their ratios, and the target its issue set.

mod dashboard;
mod hello;
mod instructions;
mod loadgen;
mod math;
mod messages;
mod randomize;
mod sum_evens;

use anyhow::Result;

/// The benchmark `just bench-NAME` runs.
pub(crate) fn find(name: &str) -> Option<fn() -> Result<()>> {
    Some(match name {
        "hello" => hello::run,
        "math" => math::run,
        "messages" => messages::run,
        "randomize" => randomize::run,
        "sum-evens" => sum_evens::run,
        "loadgen" => loadgen::run,
        "dashboard" => dashboard::run,
        "instructions" => instructions::run,
        _ => return None,
    })
}
