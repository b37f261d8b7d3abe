//! `bench NAME`: the benchmarks behind `just bench-NAME`. Each one builds what it measures,
//! starts it next to a reference in the same run, measures both, and prints ratios (this
//! machine is shared: a ratio holds, an absolute time does not).
//!
//! # Layout
//!
//! - [`settings`]: what the environment asks for (`BENCH_DURATION`, `BENCH_ROUNDS`, ...) and
//!   where client and servers run (`BENCH_PIN`).
//! - [`run`]: a benchmark run: the release build, its working directory and certificates, the
//!   servers it starts ([`server`]) and the HTTPS client that trusts them ([`http`]).
//! - [`wrk`]: wrk's warm-up and measured runs, parsed; [`cpu`]: CPU time and memory of servers
//!   and clients; [`stats`]: medians and round-by-round ratios.
//! - [`benches`]: one module per benchmark.

mod benches;
mod cpu;
mod h2load;
mod http;
mod nginx;
mod run;
mod server;
mod settings;
mod stats;
mod wrk;

use std::process::ExitCode;

const USAGE: &str =
    "usage: bench hello|math|messages|randomize|sum-evens|loadgen|dashboard|instructions";

fn main() -> ExitCode {
    let name = std::env::args().nth(1).unwrap_or_default();
    let Some(bench) = benches::find(&name) else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    match bench() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("bench {name}: {err:#}");
            ExitCode::FAILURE
        }
    }
}
