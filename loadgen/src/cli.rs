//! The command line: glassbox's own options first, then every goose option, unchanged.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser};
use goose::config::GooseConfiguration;

use crate::open::Arrival;

/// The service `--host` defaults to: glassbox as `just demo` and `just run` start it.
pub const DEFAULT_HOST: &str = "https://localhost:8443";

#[derive(Debug, Parser)]
#[command(
    name = "loadgen",
    args_override_self = true,
    about = "Drives every glassbox endpoint with goose, records the client's own latency, and \
             reconciles what it sent with what the server counted.",
    after_help = "Every goose option above passes through unchanged; --host defaults to \
                  https://localhost:8443. With --rate, the open model replaces goose's users \
                  (--run-time still sets the length; goose's reports are not written). \
                  Presets: just load, just load-ramp, just load-spike, just load-soak, \
                  just load-rate."
)]
pub struct Cli {
    #[command(flatten)]
    pub options: Options,
    #[command(flatten)]
    pub goose: GooseConfiguration,
}

/// The load generator's own options.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "glassbox")]
pub struct Options {
    /// CA certificate the service's certificate must chain to (the only one trusted for https).
    #[arg(
        long,
        env = "LOADGEN_CA_CERT",
        default_value = "certs/ca.crt",
        value_name = "FILE"
    )]
    pub ca_cert: PathBuf,

    /// Serve the client-side Prometheus metrics here (plain HTTP, /metrics); port 0 picks one.
    #[arg(
        long,
        env = "LOADGEN_METRICS_BIND",
        default_value = "127.0.0.1:9899",
        value_name = "ADDR"
    )]
    pub metrics_bind: SocketAddr,

    /// Longest pause a user takes between two transactions (uniform from zero); 0s for none.
    #[arg(long, env = "LOADGEN_THINK_TIME", default_value = "100ms", value_parser = humantime::parse_duration, value_name = "TIME")]
    pub think_time: Duration,

    /// Compare the requests made with the server's own counts from its /status (before and
    /// after the run), per route and status code, and print the client and server latency
    /// side by side. Exits with status 3 when a count differs.
    #[arg(long, env = "LOADGEN_RECONCILE")]
    pub reconcile: bool,

    /// Write the client-side summary (and the reconciliation) as JSON to FILE.
    #[arg(long, env = "LOADGEN_SUMMARY", value_name = "FILE")]
    pub summary: Option<PathBuf>,

    /// Run one scenario only: GET / with no pause, to measure the load generator's own ceiling.
    #[arg(long)]
    pub hello_only: bool,

    /// Do not print the progress line.
    #[arg(long, env = "LOADGEN_NO_PROGRESS")]
    pub no_progress: bool,

    #[command(flatten)]
    pub open: OpenOptions,
}

/// The open model's options.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Open model (instead of goose's users)")]
pub struct OpenOptions {
    /// Start R transactions a second whatever the answers' latency, with latency recorded
    /// from the send and from the due time (corrected for coordinated omission).
    #[arg(long, env = "LOADGEN_RATE", value_name = "R", value_parser = parse_rate)]
    pub rate: Option<f64>,

    /// How starts are spaced: exactly 1/R apart, or as a Poisson process with mean 1/R.
    #[arg(
        long,
        env = "LOADGEN_ARRIVAL",
        value_enum,
        default_value = "constant",
        requires = "rate"
    )]
    pub arrival: Arrival,

    /// Transactions running at once, at most (a client's connections); a start that finds
    /// them all busy waits and goes out late.
    #[arg(long, env = "LOADGEN_MAX_IN_FLIGHT", default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=100_000), requires = "rate")]
    pub max_in_flight: u32,

    /// Seed for the Poisson gaps and the choice of transactions: the same seed, the same run.
    #[arg(long, env = "LOADGEN_SEED", default_value_t = 1, requires = "rate")]
    pub seed: u64,
}

fn parse_rate(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate > 0.0 && rate <= 1_000_000.0 => Ok(rate),
        _ => Err(format!(
            "{text} is not a rate: give transactions per second, more than 0 and at most 1000000"
        )),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn goose_options_pass_through_next_to_ours() {
        let cli = Cli::try_parse_from([
            "loadgen",
            "--users",
            "4",
            "-t",
            "10s",
            "--report-file",
            "r.html",
            "--report-file",
            "r.json",
            "--reconcile",
            "--think-time",
            "0s",
            "--host",
            "https://localhost:9443",
        ])
        .unwrap();
        assert_eq!(cli.goose.users, Some(4));
        assert_eq!(cli.goose.run_time.as_deref(), Some("10s"));
        assert_eq!(cli.goose.report_file, ["r.html", "r.json"]);
        assert_eq!(cli.goose.host.as_deref(), Some("https://localhost:9443"));
        assert!(cli.options.reconcile);
        assert_eq!(cli.options.think_time, Duration::ZERO);
    }

    #[test]
    fn the_open_model_takes_a_rate_and_refuses_a_bad_one() {
        let cli =
            Cli::try_parse_from(["loadgen", "--rate", "300", "--arrival", "poisson"]).unwrap();
        assert_eq!(cli.options.open.rate, Some(300.0));
        assert_eq!(cli.options.open.arrival, Arrival::Poisson);
        assert_eq!(cli.options.open.max_in_flight, 1000);
        for bad in ["0", "-1", "NaN", "inf", "fast"] {
            let err =
                Cli::try_parse_from(["loadgen".to_owned(), format!("--rate={bad}")]).unwrap_err();
            assert!(err.to_string().contains("is not a rate"), "{bad}: {err}");
        }
        let err = Cli::try_parse_from(["loadgen", "--arrival", "poisson"]).unwrap_err();
        assert!(err.to_string().contains("--rate"), "{err}");
        let err =
            Cli::try_parse_from(["loadgen", "--rate", "5", "--max-in-flight", "0"]).unwrap_err();
        assert!(err.to_string().contains("max-in-flight"), "{err}");
    }

    #[test]
    fn a_later_option_wins_so_presets_can_be_overridden() {
        let cli = Cli::try_parse_from(["loadgen", "--users", "20", "--users", "50"]).unwrap();
        assert_eq!(cli.goose.users, Some(50));
    }
}
