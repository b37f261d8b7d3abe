//! POST /messages with distinct messages over TLS with wrk: the embedded store (durable: every
//! 201 is on disk) and Redis, next to glassbox's own GET / in the same rounds; how many
//! messages each durable commit carried. `BENCH_BASELINE=PATH`: another glassbox build's
//! embedded store in the same rounds, to compare with.

use anyhow::{Context, Result};
use testkit::exposition::Exposition;

use crate::run::Run;
use crate::server::Server;
use crate::settings::var;
use crate::stats::{median, per_round, spread, verdict};
use crate::wrk::Wrk;

pub(crate) fn run() -> Result<()> {
    let run = Run::start("messages", &["glassbox"])?;
    let settings = &run.settings;
    let redis_port = testkit::free_port();
    let redis_args: Vec<String> = [
        "--bind",
        "127.0.0.1",
        "--port",
        &redis_port.to_string(),
        "--save",
        "",
        "--appendonly",
        "yes",
        "--appendfsync",
        "everysec",
        "--dir",
    ]
    .into_iter()
    .map(str::to_owned)
    .chain([run.path("").display().to_string()])
    .collect();
    let redis_server = testkit::need("redis-server", "apt-get install redis-server");
    let _redis = Server::start(
        "redis",
        &settings.placement.server_pin,
        &redis_server,
        &redis_args,
        redis_port,
    )?;
    let embedded = run.glassbox("embedded", &[])?;
    let store = format!("redis://127.0.0.1:{redis_port}/0");
    let redis = run.glassbox("redis", &["--store", &store])?;
    let baseline = match var("BENCH_BASELINE") {
        Some(binary) => Some(run.glassbox_from(std::path::Path::new(&binary), "baseline", &[])?),
        None => None,
    };
    let mut loads = vec![
        ("get-hello", Wrk::new(settings, &embedded.url("/"))),
        (
            "post-embedded",
            Wrk::new(settings, &embedded.url("/messages")).script("bench-messages.lua"),
        ),
        (
            "post-redis",
            Wrk::new(settings, &redis.url("/messages")).script("bench-messages.lua"),
        ),
    ];
    if let Some(baseline) = &baseline {
        loads.push((
            "post-baseline",
            Wrk::new(settings, &baseline.url("/messages")).script("bench-messages.lua"),
        ));
    }
    println!(
        "glassbox over TLS, wrk -t{} -c{} -d{}, {} rounds; {}",
        settings.placement.wrk_threads,
        settings.connections,
        settings.duration,
        settings.rounds,
        settings.placement.description
    );
    let mut results: Vec<Vec<(f64, f64)>> = vec![Vec::new(); loads.len()];
    for round in 1..=settings.rounds {
        for ((name, wrk), rounds) in loads.iter().zip(&mut results) {
            let measured = wrk.run()?;
            rounds.push((measured.requests_per_sec, measured.p99_ms));
            println!(
                "  round {round}  {name:<14} {:>9.0} req/s   p99 {:>7.3} ms",
                measured.requests_per_sec, measured.p99_ms
            );
        }
    }
    let metrics = Exposition::parse(&run.http()?.text(&embedded.url("/metrics"))?);
    let commits = metrics.sum("glassbox_store_commit_batch_size_count", &[]);
    let written = metrics.sum("glassbox_store_commit_batch_size_sum", &[]);
    println!("\nmedian of {} rounds", settings.rounds);
    let rps = |rounds: &[(f64, f64)]| median(&rounds.iter().map(|r| r.0).collect::<Vec<_>>());
    let hello = rps(&results[0]);
    for ((name, _), rounds) in loads.iter().zip(&results) {
        let p99 = median(&rounds.iter().map(|r| r.1).collect::<Vec<_>>());
        println!(
            "  {name:<14} {:>9.0} req/s   p99 {p99:>7.3} ms   {:.3} x GET /",
            rps(rounds),
            rps(rounds) / hello
        );
    }
    println!(
        "  embedded store: {written:.0} messages in {commits:.0} durable commits, {:.1} messages per fsync",
        written / commits
    );
    if baseline.is_some() {
        let column = |i: usize| results[i].iter().map(|r| r.0).collect::<Vec<_>>();
        println!(
            "  post-embedded over the baseline's (BENCH_BASELINE), round by round: {}",
            spread(&per_round(&column(1), &column(3)))
        );
    }
    let ratio = rps(&results[1]) / hello;
    println!(
        "  target (issue 4): post-embedded >= 0.20 x GET /: {ratio:.3} x, {}",
        verdict(ratio, 0.20, true)
    );
    redis.stop().context("stopping the Redis-backed glassbox")
}
