//! GET / over TLS with wrk: glassbox (every piece of telemetry on) against the bare hyper +
//! rustls hello world, a fresh server of each in every round, alternating, so both see the
//! same machine. `BENCH_LOG_OFF=1` adds a glassbox without access lines (`--log-level warn`)
//! to each round, to see what the access log costs. `BENCH_BASELINE=PATH` adds another build
//! of glassbox (say, of the commit before a change) to each round, and prints this build's
//! requests/s and CPU per request over that one's. Then the same over HTTP/2 with h2load
//! (16 connections of 10 streams, one thread): glassbox, the reference and nginx (one worker,
//! the same body), fresh servers in every round.

use anyhow::Result;

use crate::cpu::{self, PeakRss};
use crate::run::Run;
use crate::server::Server;
use crate::settings::{flag, var};
use crate::stats::{median, per_round, spread, verdict};
use crate::wrk::Wrk;
use crate::{h2load, nginx};

/// One server's measured run.
#[derive(Debug, Clone, Copy)]
struct Sample {
    requests_per_sec: f64,
    p99_ms: f64,
    peak_rss_mb: f64,
    cpu_us: f64,
}

/// Warms up, then measures `server`: requests/s and p99 from wrk, the server's CPU per request
/// over the measured run only, its peak RSS meanwhile.
fn measure(run: &Run, server: &Server) -> Result<Sample> {
    let wrk = Wrk::new(&run.settings, &server.url("/"));
    wrk.warm_up()?;
    let ticks = server.cpu_ticks();
    let rss = PeakRss::start(server.pid());
    let measured = wrk.measure()?;
    let sample = Sample {
        requests_per_sec: measured.requests_per_sec,
        p99_ms: measured.p99_ms,
        peak_rss_mb: rss.stop(),
        cpu_us: cpu::micros_per_request(server.cpu_ticks() - ticks, measured.requests),
    };
    println!(
        "  {:<10} {:>10.0} req/s   p99 {:>7.3} ms   peak RSS {:>6.1} MB   CPU {:>5.1} us/request",
        server.name, sample.requests_per_sec, sample.p99_ms, sample.peak_rss_mb, sample.cpu_us
    );
    Ok(sample)
}

/// One server's run under h2load: requests/s and its CPU per request.
#[derive(Debug, Clone, Copy)]
struct Http2Sample {
    requests_per_sec: f64,
    cpu_us: f64,
}

fn measure_h2(run: &Run, server: &Server) -> Result<Http2Sample> {
    let ticks = server.cpu_ticks();
    let measured = h2load::run(&run.settings, &server.url("/"))?;
    let sample = Http2Sample {
        requests_per_sec: measured.requests_per_sec,
        cpu_us: cpu::micros_per_request(server.cpu_ticks() - ticks, measured.requests),
    };
    let failed = if measured.failed > 0 {
        format!("   {} failed", measured.failed)
    } else {
        String::new()
    };
    println!(
        "  {:<10} {:>10.0} req/s   CPU {:>5.1} us/request (warm-up included){failed}",
        server.name, sample.requests_per_sec, sample.cpu_us
    );
    Ok(sample)
}

/// GET / over HTTP/2: glassbox against the reference, with nginx alongside.
fn over_http2(run: &Run) -> Result<()> {
    let settings = &run.settings;
    println!(
        "\nGET / over TLS and HTTP/2, h2load -t1 -c16 -m10 -D{}, {} alternating rounds; {}",
        settings.duration, settings.rounds, settings.placement.description
    );
    let body = r#"{"result":"success","data":{"message":"Hello, world!"}}"#;
    let locations =
        format!("location = / {{ default_type application/json; return 200 '{body}'; }}");
    let (mut reference, mut glassbox, mut nginx) = (Vec::new(), Vec::new(), Vec::new());
    for round in 1..=settings.rounds {
        println!("round {round}");
        let server = run.reference("reference")?;
        reference.push(measure_h2(run, &server)?);
        server.stop()?;
        let server = run.glassbox(&format!("glassbox-h2-{round}"), &[])?;
        glassbox.push(measure_h2(run, &server)?);
        server.stop()?;
        let server = nginx::start(run, &format!("nginx-{round}"), &locations)?;
        nginx.push(measure_h2(run, &server)?);
        server.stop()?;
    }
    let rps = |samples: &[Http2Sample]| -> Vec<f64> {
        samples.iter().map(|s| s.requests_per_sec).collect()
    };
    let cpu = |samples: &[Http2Sample]| -> Vec<f64> { samples.iter().map(|s| s.cpu_us).collect() };
    println!("\nmedian of {} rounds over HTTP/2", settings.rounds);
    for (name, samples) in [
        ("reference", &reference),
        ("glassbox", &glassbox),
        ("nginx", &nginx),
    ] {
        println!(
            "  {name:<10} {:>10.0} req/s   server CPU {:.1} us/request",
            median(&rps(samples)),
            median(&cpu(samples))
        );
    }
    let ratios = per_round(&rps(&glassbox), &rps(&reference));
    println!(
        "  requests/s, glassbox over the reference, round by round: {} (target (issue 23) >= 0.9 x: {})",
        spread(&ratios),
        verdict(median(&ratios), 0.9, true)
    );
    println!(
        "  CPU per request, glassbox over the reference: {}",
        spread(&per_round(&cpu(&glassbox), &cpu(&reference)))
    );
    println!(
        "  requests/s, nginx over the reference: {}",
        spread(&per_round(&rps(&nginx), &rps(&reference)))
    );
    Ok(())
}

pub(crate) fn run() -> Result<()> {
    let run = Run::start("hello", &["glassbox", "glassbox-reference"])?;
    let settings = &run.settings;
    let log_off = flag("BENCH_LOG_OFF");
    let baseline = var("BENCH_BASELINE").map(std::path::PathBuf::from);
    println!(
        "GET / over TLS, wrk -t{} -c{} -d{}, {} alternating rounds; {}",
        settings.placement.wrk_threads,
        settings.connections,
        settings.duration,
        settings.rounds,
        settings.placement.description
    );
    let (mut reference, mut glassbox, mut quiet) = (Vec::new(), Vec::new(), Vec::new());
    let mut earlier = Vec::new();
    for round in 1..=settings.rounds {
        println!("round {round}");
        let server = run.reference("reference")?;
        reference.push(measure(&run, &server)?);
        server.stop()?;
        let server = run.glassbox(&format!("glassbox-{round}"), &[])?;
        glassbox.push(measure(&run, &server)?);
        server.stop()?;
        if let Some(binary) = &baseline {
            let server = run.glassbox_from(binary, &format!("baseline-{round}"), &[])?;
            earlier.push(measure(&run, &server)?);
            server.stop()?;
        }
        if log_off {
            let server = run.glassbox(&format!("no-access-{round}"), &["--log-level", "warn"])?;
            quiet.push(measure(&run, &server)?);
            server.stop()?;
        }
    }
    let column =
        |samples: &[Sample], f: fn(&Sample) -> f64| -> Vec<f64> { samples.iter().map(f).collect() };
    let rps = |s: &Sample| s.requests_per_sec;
    let p99 = |s: &Sample| s.p99_ms;
    let cpu_us = |s: &Sample| s.cpu_us;
    let ratios = per_round(&column(&glassbox, rps), &column(&reference, rps));
    let peak_rss = glassbox.iter().map(|s| s.peak_rss_mb).fold(0.0, f64::max);
    println!("\nmedian of {} rounds", settings.rounds);
    for (name, samples) in [("reference", &reference), ("glassbox", &glassbox)] {
        println!(
            "  {name:<10} {:>10.0} req/s   p99 {:>7.3} ms   server CPU {:.1} us/request",
            median(&column(samples, rps)),
            median(&column(samples, p99)),
            median(&column(samples, cpu_us))
        );
    }
    let ratio = median(&ratios);
    println!(
        "  requests/s, glassbox over the reference, round by round: {}",
        spread(&ratios)
    );
    println!(
        "  target (issue 2) >= 0.85 x: {}; (issue 23) >= 0.9 x: {}; glassbox peak RSS {peak_rss:.1} MB, target < 50 MB: {}",
        verdict(ratio, 0.85, true),
        verdict(ratio, 0.9, true),
        verdict(peak_rss, 50.0, false)
    );
    println!(
        "  p99 over the reference's, round by round: {}",
        spread(&per_round(
            &column(&glassbox, p99),
            &column(&reference, p99)
        ))
    );
    if let Some(binary) = &baseline {
        println!(
            "  this build over {} (BENCH_BASELINE): requests/s {}; CPU per request {}",
            binary.display(),
            spread(&per_round(&column(&glassbox, rps), &column(&earlier, rps))),
            spread(&per_round(
                &column(&glassbox, cpu_us),
                &column(&earlier, cpu_us)
            ))
        );
        println!(
            "  the baseline over the reference: requests/s {}",
            spread(&per_round(&column(&earlier, rps), &column(&reference, rps)))
        );
    }
    if log_off {
        println!(
            "  no access lines (--log-level warn): requests/s {}; CPU {:.1} us/request",
            spread(&per_round(&column(&quiet, rps), &column(&reference, rps))),
            median(&column(&quiet, cpu_us))
        );
    }
    over_http2(&run)
}
