//! Instructions per request, counted by valgrind's callgrind: unlike requests/s the count does
//! not move with the load on this shared machine, so small changes to the hot path show. Each
//! server runs twice under callgrind, serving 500 and then 2,500 requests after the same
//! warm-up; the difference of the totals over 2,000 is one request's cost. Work that follows
//! the clock rather than the requests would leak into that difference, so glassbox's dashboard
//! sampler is set to once an hour here; the log writer's flushes still follow the clock, so the
//! count on the runtime's worker threads (hyper's dispatcher, which runs the whole service for
//! each request) is printed too: it is the steadier of the two.
//!
//! `BENCH_PATHS` (default `/`): space-separated paths to measure on glassbox.
//! `BENCH_BASELINE=PATH`: another glassbox build, counted on the same paths for comparison.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, ensure};
use futures_util::future::join_all;

use crate::http::Http;
use crate::run::Run;
use crate::server::Server;
use crate::settings::var;

/// `callgrind_annotate`'s program total and the runtime workers' inclusive count.
fn totals(out: &Path) -> Result<(u64, u64)> {
    let annotate = |inclusive: bool| -> Result<String> {
        let mut command = Command::new("callgrind_annotate");
        if inclusive {
            command.arg("--inclusive=yes");
        }
        let output = command.arg(out).output().context("callgrind_annotate")?;
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    };
    let count = |line: &str| -> Option<u64> {
        line.split_whitespace()
            .next()?
            .replace(',', "")
            .parse()
            .ok()
    };
    let total = annotate(false)?
        .lines()
        .find(|l| l.contains("PROGRAM TOTALS"))
        .and_then(count)
        .context("no program total")?;
    let workers = annotate(true)?
        .lines()
        .find(|l| l.contains("multi_thread::worker::run ["))
        .and_then(count)
        .context("no runtime worker in the profile")?;
    Ok((total, workers))
}

/// `n` GET requests over four keep-alive connections; every answer must be 200.
fn requests(http: &Http, url: &str, n: usize) -> Result<()> {
    let client = http.client();
    http.block_on(async {
        let lanes = join_all((0..4).map(|lane| async move {
            for _ in (lane..n).step_by(4) {
                let response = client.get(url).send().await?;
                ensure!(response.status() == 200, "{url}: {}", response.status());
                response.bytes().await?;
            }
            Ok::<_, anyhow::Error>(())
        }))
        .await;
        lanes.into_iter().collect::<Result<Vec<_>>>().map(drop)
    })
}

/// Instructions per request on `path` of the server `program args` starts on `port` (each run
/// under callgrind, twice).
fn per_request(
    run: &Run,
    http: &Http,
    name: &str,
    path: &str,
    start: &dyn Fn(u16) -> Vec<String>,
    program: &Path,
) -> Result<(u64, u64)> {
    let mut counts = Vec::new();
    for n in [500, 2500] {
        let port = testkit::free_port();
        let out = run.path(&format!("{name}.{n}.callgrind"));
        let mut args = vec![
            "--tool=callgrind".to_owned(),
            format!("--callgrind-out-file={}", out.display()),
            // valgrind's banner and exit report go to a file, not between the results
            format!(
                "--log-file={}",
                run.path(&format!("{name}.{n}.valgrind.log")).display()
            ),
            program.display().to_string(),
        ];
        args.extend(start(port));
        let valgrind = testkit::need("valgrind", "apt-get install valgrind");
        let server = Server::start(name, &[], &valgrind, &args, port)?;
        let url = server.url(path);
        requests(http, &url, 100)?;
        requests(http, &url, n)?;
        server.stop()?;
        counts.push(totals(&out)?);
    }
    Ok((
        (counts[1].0 - counts[0].0) / 2000,
        (counts[1].1 - counts[0].1) / 2000,
    ))
}

pub(crate) fn run() -> Result<()> {
    let run = Run::start("instructions", &["glassbox", "glassbox-reference"])?;
    let http = run.http()?;
    let certs = run.path("certs").display().to_string();
    let reference = |port: u16| vec![format!("127.0.0.1:{port}"), certs.clone()];
    let (ref_total, ref_workers) = per_request(
        &run,
        &http,
        "reference",
        "/",
        &reference,
        &run.release("glassbox-reference"),
    )?;
    println!(
        "  {:<28} {ref_total:>8} instructions/request ({ref_workers} on the runtime workers)",
        "reference GET /"
    );
    let data = run.path("data").display().to_string();
    let logs = run.path("logs").display().to_string();
    let glassbox = |port: u16| {
        [
            "serve",
            "--bind",
            &format!("127.0.0.1:{port}"),
            "--certs-dir",
            &certs,
            "--data-dir",
            &data,
            "--log-dir",
            &logs,
            "--dashboard-interval",
            "1h",
            "--dashboard-window",
            "2h",
        ]
        .map(str::to_owned)
        .to_vec()
    };
    for path in var("BENCH_PATHS")
        .unwrap_or_else(|| "/".into())
        .split_whitespace()
    {
        let (total, workers) = per_request(
            &run,
            &http,
            "glassbox",
            path,
            &glassbox,
            &run.release("glassbox"),
        )?;
        println!(
            "  {:<28} {total:>8} instructions/request   {:.2} x reference ({workers} on the workers, {:.2} x)",
            format!("glassbox GET {path}"),
            total as f64 / ref_total as f64,
            workers as f64 / ref_workers as f64
        );
        if let Some(binary) = var("BENCH_BASELINE") {
            let (base_total, base_workers) =
                per_request(&run, &http, "baseline", path, &glassbox, Path::new(&binary))?;
            println!(
                "  {:<28} {base_total:>8} instructions/request   this build {:.3} x the baseline ({base_workers} on the workers, {:.3} x)",
                format!("baseline GET {path}"),
                total as f64 / base_total as f64,
                workers as f64 / base_workers as f64
            );
        }
    }
    Ok(())
}
