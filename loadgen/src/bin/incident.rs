//! `incident`: steady load, a store fault for a fixed time, recovery; prints the timeline and
//! exits 0 when every view told the story in the right order (1 when not, 2 when glassbox
//! could not be driven).

use std::process::ExitCode;

use clap::Parser;
use loadgen::incident::{self, ALERT, Cli};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let timeline = match incident::run(&cli).await {
        Ok(timeline) => timeline,
        Err(err) => {
            eprintln!("incident: {err:#}");
            return ExitCode::from(2);
        }
    };
    println!("{}", timeline.render());
    if let Some(path) = &cli.report {
        let json = serde_json::to_string_pretty(&timeline).expect("the timeline serialises");
        if let Err(err) = std::fs::write(path, json) {
            eprintln!("incident: writing {}: {err}", path.display());
            return ExitCode::from(2);
        }
    }
    match timeline.verdict(ALERT) {
        Ok(()) => {
            println!(
                "Every view agrees: the fault, the client's and the server's 5xx, the alert, the recovery."
            );
            ExitCode::SUCCESS
        }
        Err(wrong) => {
            eprintln!("incident: the timeline is not what it should be:");
            for line in wrong {
                eprintln!("  - {line}");
            }
            ExitCode::FAILURE
        }
    }
}
