//! `loadgen`: parses the command line and runs the load test.

use std::process::ExitCode;

use clap::Parser;
use loadgen::Outcome;
use loadgen::cli::Cli;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match loadgen::run(cli).await {
        Ok(Outcome::Done) => ExitCode::SUCCESS,
        Ok(Outcome::Mismatch) => {
            eprintln!("loadgen: the server's counts differ from the requests made (see above)");
            ExitCode::from(3)
        }
        Err(err) => {
            eprintln!("loadgen: {err:#}");
            ExitCode::FAILURE
        }
    }
}
