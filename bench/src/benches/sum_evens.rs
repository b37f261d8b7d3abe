//! `/sum-evens` for 100 MB and 1 GB files: the parser alone on an in-memory buffer, the whole
//! task from an on-disk file, and the upload over TLS to the result; each next to `cat file`
//! (the read ceiling) or, for the upload, curl sending the same file to the reference server,
//! which reads it and throws it away. `BENCH_BIG_GB=5` adds a 5 GB upload-to-result next to
//! the same reference, with glassbox's peak RSS meanwhile. Best of three runs each.
//!
//! The files go under `target/bench-sum-evens/` and are kept: generating them takes a while.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};

use crate::cpu::PeakRss;
use crate::http::Http;
use crate::run::{self, Run};
use crate::server::Server;
use crate::settings::number;
use crate::stats::verdict;

/// The example binary that generates files and times the parser and the task.
fn example(run: &Run, args: &[&str]) -> Result<String> {
    let output = Command::new(run.release("examples/sum_evens_bench"))
        .args(args)
        .output()
        .context("the sum_evens_bench example")?;
    ensure!(output.status.success(), "sum_evens_bench {args:?} failed");
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// The shortest of three timings.
fn best(mut time: impl FnMut() -> Result<f64>) -> Result<f64> {
    let mut best = f64::INFINITY;
    for _ in 0..3 {
        best = best.min(time()?);
    }
    Ok(best)
}

fn seconds(started: Instant) -> f64 {
    started.elapsed().as_secs_f64()
}

/// `curl -T file` to `url` with the run's CA, as `text/plain`; its output.
fn curl_upload(run: &Run, file: &Path, url: &str) -> Result<String> {
    let output = Command::new("curl")
        .args(["-sS", "--fail-with-body", "--cacert"])
        .arg(run.ca())
        .args(["-H", "Content-Type: text/plain", "-X", "POST", "-T"])
        .arg(file)
        .arg(url)
        .stderr(Stdio::inherit())
        .output()
        .context("curl is needed")?;
    ensure!(output.status.success(), "curl upload to {url} failed");
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Seconds from the start of the upload to the finished result.
fn upload(run: &Run, http: &Http, glassbox: &Server, file: &Path) -> Result<f64> {
    let started = Instant::now();
    let answer = curl_upload(run, file, &glassbox.url("/sum-evens"))?;
    let token = serde_json::from_str::<serde_json::Value>(&answer)?["token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    ensure!(token.len() == 32, "upload refused: {answer}");
    loop {
        let status = http.json(&glassbox.url(&format!("/sum-evens/{token}/status")))?;
        match status["status"].as_str() {
            Some("finished") => return Ok(seconds(started)),
            Some("errored") => bail!("errored: {status}"),
            _ => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// Seconds for curl to send `file` to the discarding reference.
fn discard(run: &Run, reference: &Server, file: &Path) -> Result<f64> {
    let started = Instant::now();
    curl_upload(run, file, &reference.url("/"))?;
    Ok(seconds(started))
}

fn cat(file: &Path) -> Result<f64> {
    let started = Instant::now();
    let status = Command::new("cat")
        .arg(file)
        .stdout(Stdio::null())
        .status()?;
    ensure!(status.success(), "cat {}", file.display());
    Ok(seconds(started))
}

fn gbps(bytes: u64, seconds: f64) -> f64 {
    bytes as f64 / 1e9 / seconds
}

/// The generated file of `megabytes`, made if missing.
fn numbers(run: &Run, dir: &Path, name: &str, megabytes: u64) -> Result<(std::path::PathBuf, u64)> {
    let file = dir.join(format!("numbers-{name}.txt"));
    if !file.exists() {
        let (path, size) = (file.display().to_string(), megabytes.to_string());
        example(run, &["generate", &path, &size])?;
    }
    let bytes = std::fs::metadata(&file)?.len();
    Ok((file, bytes))
}

pub(crate) fn run() -> Result<()> {
    let run = Run::start("sum-evens", &["glassbox", "glassbox-reference"])?;
    run::build(&run.root, &["glassbox"], &["--example", "sum_evens_bench"])?;
    let http = run.http()?;
    let dir = run.root.join("target/bench-sum-evens");
    std::fs::create_dir_all(&dir)?;
    let glassbox = run.glassbox("glassbox", &["--log-level", "warn"])?;
    let reference = run.reference("reference")?;

    println!(
        "sum-evens, {} cores; best of 3 runs each",
        crate::settings::cores()
    );
    for megabytes in [100, 1024] {
        let (file, bytes) = numbers(&run, &dir, &megabytes.to_string(), megabytes)?;
        println!("{megabytes} MB file ({bytes} bytes):");
        for line in example(&run, &["parse", &megabytes.to_string()])?.lines() {
            println!("  {line}");
        }
        let path = file.display().to_string();
        let c = best(|| cat(&file))?;
        let t = best(|| {
            let out = example(&run, &["file", &path])?;
            out.split_whitespace()
                .next()
                .unwrap_or_default()
                .parse::<f64>()
                .context("sum_evens_bench file prints seconds first")
        })?;
        let u = best(|| upload(&run, &http, &glassbox, &file))?;
        let d = best(|| discard(&run, &reference, &file))?;
        println!(
            "  cat > /dev/null (read ceiling)         {:6.2} GB/s",
            gbps(bytes, c)
        );
        println!(
            "  whole task from the file, all cores    {:6.2} GB/s   {:.2} x cat",
            gbps(bytes, t),
            c / t
        );
        println!(
            "  curl upload to a discarding server     {:6.2} GB/s",
            gbps(bytes, d)
        );
        println!(
            "  upload over TLS to the result          {:6.2} GB/s   {:.2} x the discarding upload's time",
            gbps(bytes, u),
            u / d
        );
    }

    let big: u64 = number("BENCH_BIG_GB", 0)?;
    if big > 0 {
        let (file, _) = numbers(&run, &dir, &format!("{big}g"), big * 1024)?;
        let d = discard(&run, &reference, &file)?;
        let rss = PeakRss::start(glassbox.pid());
        let u = upload(&run, &http, &glassbox, &file)?;
        let peak = rss.stop();
        println!("{big} GB file, once:");
        println!("  curl upload to a discarding server     {d:7.1} s");
        println!(
            "  upload over TLS to the result          {u:7.1} s   {:.2} x (target <= 2: {})",
            u / d,
            verdict(u / d, 2.0, false)
        );
        println!(
            "  glassbox peak RSS meanwhile            {peak:7.1} MB (target < 100 MB: {})",
            verdict(peak, 100.0, false)
        );
    }
    Ok(())
}
