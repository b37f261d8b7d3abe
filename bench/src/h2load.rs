//! h2load (Debian's nghttp2-client), the HTTP/2 load generator of `bench-hello`: one thread,
//! 16 connections of 10 concurrent streams each, a two-second warm-up, then the measured run.

use std::path::Path;

use anyhow::{Context, Result, ensure};

use crate::server::command;
use crate::settings::Settings;

/// What a measured run did.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Measured {
    pub(crate) requests_per_sec: f64,
    /// Requests that succeeded (2xx).
    pub(crate) requests: u64,
    /// Requests that failed or errored.
    pub(crate) failed: u64,
}

/// Runs h2load against `url` as the settings place clients, for their duration.
pub(crate) fn run(settings: &Settings, url: &str) -> Result<Measured> {
    let args = [
        "-t1".to_owned(),
        "-c16".to_owned(),
        "-m10".to_owned(),
        "--warm-up-time=2".to_owned(),
        format!("-D{}", settings.seconds()?),
        url.to_owned(),
    ];
    let output = command(&settings.placement.client_pin, Path::new("h2load"), &args)
        .output()
        .context("h2load is needed: apt-get install nghttp2-client")?;
    let text = String::from_utf8_lossy(&output.stdout);
    ensure!(output.status.success(), "h2load {url}: {text}");
    let measured = parse(&text)?;
    ensure!(
        measured.requests > 0,
        "h2load {url}: no request succeeded\n{text}"
    );
    Ok(measured)
}

/// Parses h2load's report: `finished in 10.00s, 51234.50 req/s, ...` and `requests: N total,
/// N started, N done, N succeeded, N failed, N errored, N timeout`.
pub(crate) fn parse(text: &str) -> Result<Measured> {
    let finished = text
        .lines()
        .find_map(|line| line.strip_prefix("finished in "))
        .context("h2load printed no `finished in` line")?;
    let requests_per_sec = finished
        .split(", ")
        .find_map(|part| part.strip_suffix(" req/s"))
        .context("no req/s")?
        .parse()?;
    let counts = text
        .lines()
        .find_map(|line| line.strip_prefix("requests: "))
        .context("h2load printed no `requests:` line")?;
    let count = |name: &str| -> Result<u64> {
        counts
            .split(", ")
            .find_map(|part| part.strip_suffix(&format!(" {name}")))
            .with_context(|| format!("no {name} count"))?
            .parse()
            .map_err(Into::into)
    };
    Ok(Measured {
        requests_per_sec,
        requests: count("succeeded")?,
        failed: count("failed")? + count("errored")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_is_read() {
        let text = "starting benchmark...\n\
            finished in 10.00s, 51234.50 req/s, 2.10MB/s\n\
            requests: 512345 total, 512505 started, 512345 done, 512340 succeeded, 5 failed, 0 errored, 0 timeout\n\
            status codes: 512340 2xx, 0 3xx, 0 4xx, 5 5xx\n";
        assert_eq!(
            parse(text).unwrap(),
            Measured {
                requests_per_sec: 51234.5,
                requests: 512340,
                failed: 5
            }
        );
        assert!(parse("nothing").is_err());
    }
}
