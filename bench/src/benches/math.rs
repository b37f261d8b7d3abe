//! The math endpoints over TLS with wrk, next to glassbox's own GET /, the Sanic seed's service
//! (`reference/sanic`, plain HTTP, one worker per core) and the bare hyper + rustls hello world,
//! all started once and measured in turn in every round: requests/s, p99, server CPU per
//! request, and the ratios. `BENCH_SANIC=0` leaves Sanic out.
//!
//! By default wrk shares the cores with the servers, so a server's requests/s also pay for the
//! client's side of TLS, which Sanic over plain HTTP does not ask of wrk; `BENCH_PIN=1` gives
//! wrk a core of its own.

use std::process::Stdio;

use anyhow::{Context, Result, ensure};

use crate::cpu;
use crate::run::Run;
use crate::server::{self, Server};
use crate::settings::var;
use crate::stats::{median, per_round, spread, verdict};
use crate::wrk::Wrk;

/// One URL measured in every round.
#[derive(Debug)]
struct Target<'a> {
    server: &'a Server,
    url: String,
    path: &'static str,
    /// requests/s, p99 ms, server CPU us per request, one per round.
    rounds: Vec<(f64, f64, f64)>,
}

impl Target<'_> {
    fn column(&self, f: fn(&(f64, f64, f64)) -> f64) -> Vec<f64> {
        self.rounds.iter().map(f).collect()
    }
}

/// The Sanic seed's service in `target/py`, installed from PyPI the first time.
fn sanic(run: &Run) -> Result<Server> {
    let python = run.root.join("target/py/bin/python");
    if !python.exists() {
        let status = std::process::Command::new("python3")
            .args(["-m", "venv"])
            .arg(run.root.join("target/py"))
            .status()?;
        ensure!(status.success(), "python3 -m venv target/py failed");
    }
    let has_sanic = std::process::Command::new(&python)
        .args(["-c", "import sanic"])
        .stderr(Stdio::null())
        .status()?
        .success();
    if !has_sanic {
        let status = std::process::Command::new(run.root.join("target/py/bin/pip"))
            .args(["install", "--quiet", "-r"])
            .arg(run.root.join("reference/sanic/requirements.txt"))
            .status()?;
        ensure!(status.success(), "installing Sanic failed");
    }
    let port = testkit::free_port();
    let placement = &run.settings.placement;
    let args = [
        run.root
            .join("reference/sanic/server.py")
            .display()
            .to_string(),
        "--port".into(),
        port.to_string(),
        "--workers".into(),
        placement.server_cores.to_string(),
    ];
    let mut command = server::command(&placement.server_pin, &python, &args);
    let log = std::fs::File::create(run.path("sanic.log"))?;
    command.stderr(log);
    Server::start_command("sanic", command, port).context("see sanic.log")
}

pub(crate) fn run() -> Result<()> {
    let run = Run::start("math", &["glassbox", "glassbox-reference"])?;
    let settings = &run.settings;
    let glassbox = run.glassbox("glassbox", &[])?;
    let hello = run.reference("hello")?;
    let sanic = match var("BENCH_SANIC").as_deref() {
        Some("0") => None,
        _ => Some(sanic(&run)?),
    };
    let tls = |server, path| Target {
        server,
        url: server.url(path),
        path,
        rounds: Vec::new(),
    };
    let mut targets = vec![
        tls(&glassbox, "/"),
        tls(&glassbox, "/fibonacci/400/"),
        tls(&glassbox, "/factorial/400/"),
        tls(&hello, "/"),
    ];
    if let Some(sanic) = &sanic {
        for path in ["/fibonacci/400/", "/factorial/400/"] {
            targets.push(Target {
                server: sanic,
                url: format!("http://127.0.0.1:{}{path}", sanic.port),
                path,
                rounds: Vec::new(),
            });
        }
    }
    println!(
        "wrk -t{} -c{} -d{}, {} rounds; glassbox over TLS, Sanic ({} workers) over plain HTTP; {}",
        settings.placement.wrk_threads,
        settings.connections,
        settings.duration,
        settings.rounds,
        settings.placement.server_cores,
        settings.placement.description
    );
    for round in 1..=settings.rounds {
        for target in &mut targets {
            let wrk = Wrk::new(settings, &target.url);
            wrk.warm_up()?;
            let ticks = target.server.cpu_ticks();
            let measured = wrk.measure()?;
            let cpu_us =
                cpu::micros_per_request(target.server.cpu_ticks() - ticks, measured.requests);
            target
                .rounds
                .push((measured.requests_per_sec, measured.p99_ms, cpu_us));
            println!(
                "  round {round}  {:<8} {:<16} {:>9.0} req/s   p99 {:>7.3} ms   server CPU {cpu_us:>5.1} us/request",
                target.server.name, target.path, measured.requests_per_sec, measured.p99_ms
            );
        }
    }
    let rps = |r: &(f64, f64, f64)| r.0;
    let p99 = |r: &(f64, f64, f64)| r.1;
    let cpu_us = |r: &(f64, f64, f64)| r.2;
    let hello_world = median(&targets[0].column(rps));
    println!("\nmedian of {} rounds", settings.rounds);
    for target in &targets {
        println!(
            "  {:<8} {:<16} {:>9.0} req/s   p99 {:>7.3} ms   server CPU {:>5.1} us/request   {:.3} x glassbox GET /",
            target.server.name,
            target.path,
            median(&target.column(rps)),
            median(&target.column(p99)),
            median(&target.column(cpu_us)),
            median(&target.column(rps)) / hello_world
        );
    }
    if sanic.is_some() {
        println!(
            "\nglassbox (TLS) against Sanic (plain HTTP), same route, same run; target (issue 3): >= 4 x in requests/s"
        );
        for (ours, theirs) in [(1, 4), (2, 5)] {
            let (ours, theirs) = (&targets[ours], &targets[theirs]);
            let ratio = median(&ours.column(rps)) / median(&theirs.column(rps));
            println!(
                "  {:<16} requests/s {ratio:.2} x ({}), server CPU per request {:.2} x less; round by round {}",
                ours.path,
                verdict(ratio, 4.0, true),
                median(&theirs.column(cpu_us)) / median(&ours.column(cpu_us)),
                spread(&per_round(&ours.column(rps), &theirs.column(rps)))
            );
        }
        println!(
            "  the hello world over TLS (no work at all) against Sanic fibonacci: {:.2} x",
            median(&targets[3].column(rps)) / median(&targets[4].column(rps))
        );
    }
    Ok(())
}
