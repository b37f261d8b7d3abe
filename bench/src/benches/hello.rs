//! GET / over TLS with wrk: glassbox (every piece of telemetry on) against the bare hyper +
//! rustls hello world, a fresh server of each in every round, alternating, so both see the
//! same machine. `BENCH_LOG_OFF=1` adds a glassbox without access lines (`--log-level warn`)
//! to each round, to see what the access log costs. `BENCH_BASELINE=PATH` adds another build
//! of glassbox (say, of the commit before a change) to each round, and prints this build's
//! requests/s and CPU per request over that one's.

use anyhow::Result;

use crate::cpu::{self, PeakRss};
use crate::run::Run;
use crate::server::Server;
use crate::settings::{flag, var};
use crate::stats::{median, per_round, spread, verdict};
use crate::wrk::Wrk;

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
        "  target (issue 2) >= 0.85 x: {}; glassbox peak RSS {peak_rss:.1} MB, target < 50 MB: {}",
        verdict(ratio, 0.85, true),
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
    Ok(())
}
