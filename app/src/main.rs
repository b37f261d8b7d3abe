use std::process::ExitCode;

use glassbox::config::Command;
use glassbox::startup;
use glassbox::telemetry::logging;

fn main() -> ExitCode {
    let (command, config) = glassbox::config::parse();
    glassbox::tls::install_crypto_provider();
    match command {
        Command::Certs => match glassbox::service::certs(&config) {
            Ok(summary) => {
                println!("{summary}");
                ExitCode::SUCCESS
            }
            Err(err) => failed(&err),
        },
        Command::Openapi => {
            print!("{}", glassbox::service::openapi(&config));
            ExitCode::SUCCESS
        }
        command @ (Command::Serve | Command::Worker) => {
            let files = glassbox::telemetry::log_file::Limits {
                file_bytes: config.log_max_file_bytes,
                total_bytes: config.log_max_total_bytes,
                files: config.log_keep_files,
            };
            let guard = match logging::init(&config.log_level, Some((&config.log_dir, files))) {
                Ok(guard) => guard,
                Err(err) => return failed(&err),
            };
            let mut runtime = tokio::runtime::Builder::new_multi_thread();
            runtime.enable_all();
            if let Some(threads) = config.io_threads {
                runtime.worker_threads(threads.max(1));
            }
            let result = runtime.build().map_err(anyhow::Error::from).and_then(|rt| {
                let result = rt.block_on(async {
                    if command == Command::Worker {
                        glassbox::service::worker(config).await
                    } else {
                        glassbox::service::serve(config).await
                    }
                });
                // Past the grace period nothing is waited for: a task's computation still on
                // a blocking thread is abandoned (the task runs again after a restart).
                rt.shutdown_timeout(std::time::Duration::from_millis(500));
                result
            });
            let code = match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => {
                    tracing::error!(error = %format!("{err:#}"), "glassbox failed");
                    failed(&err)
                }
            };
            drop(guard); // flushes every buffered log line
            code
        }
    }
}

/// Says why on stderr (besides any log line) and picks the exit status: a start-up failure's
/// own, 1 for anything else.
fn failed(err: &anyhow::Error) -> ExitCode {
    match startup::find(err) {
        Some(failure) => {
            eprintln!("glassbox: {failure}");
            ExitCode::from(failure.failure().exit_status())
        }
        None => {
            eprintln!("glassbox: {err:#}");
            ExitCode::FAILURE
        }
    }
}
