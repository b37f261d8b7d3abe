//! `/randomize`: images per second for a 1024x1024 photo-like PNG with 1, 2 and 4 workers, the
//! lead time when uploads arrive at a fixed rate (half of what two workers do), and GET / on
//! the same build in the same run. `BENCH_IMAGES` (default 24) uploads per run.

use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use futures_util::future::join_all;
use serde_json::Value;

use crate::http::Http;
use crate::run::Run;
use crate::server::Server;
use crate::settings::number;
use crate::wrk::Wrk;

/// An 8-bit RGB PNG of gradients and noise, so it compresses like a photograph.
fn photo_like_png(width: u32, height: u32) -> Result<Vec<u8>> {
    let mut pixels = Vec::with_capacity((width * height * 3) as usize);
    let mut noise = 1u32;
    for y in 0..height {
        for x in 0..width {
            noise = noise.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let n = (noise >> 24) % 24;
            pixels.extend([
                ((x / 4 + n) & 255) as u8,
                ((y / 4 + n) & 255) as u8,
                (((x + y) / 8) & 255) as u8,
            ]);
        }
    }
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, width, height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(&pixels)?;
    writer.finish()?;
    Ok(out)
}

/// A glassbox with `workers` task workers, and the client that talks to it.
struct Service<'a> {
    server: Server,
    http: &'a Http,
}

impl Service<'_> {
    async fn submit(&self, png: &[u8]) -> Result<String> {
        let response = self
            .http
            .client()
            .post(self.server.url("/randomize"))
            .header("content-type", "image/png")
            .body(png.to_vec())
            .send()
            .await?;
        ensure!(response.status() == 201, "upload: {}", response.status());
        let body: Value = response.json().await?;
        Ok(body["token"].as_str().unwrap_or_default().to_owned())
    }

    fn wait_all(&self, tokens: &[String]) -> Result<()> {
        for token in tokens {
            loop {
                let status = self
                    .http
                    .json(&self.server.url(&format!("/randomize/{token}/status")))?;
                match status["status"].as_str() {
                    Some("finished") => break,
                    Some("errored") => anyhow::bail!("{token} errored: {status}"),
                    _ => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        }
        Ok(())
    }

    /// The randomize kind's lead and execution time percentiles, and how many finished.
    fn times(&self) -> Result<(Value, Value, u64)> {
        let status = self.http.json(&self.server.url("/status"))?;
        let kind = &status["data"]["queue"]["kinds"][0];
        Ok((
            kind["lead_ms"].clone(),
            kind["execution_ms"].clone(),
            kind["finished"].as_u64().unwrap_or(0),
        ))
    }
}

fn start<'a>(run: &Run, http: &'a Http, name: &str, workers: usize) -> Result<Service<'a>> {
    let workers = workers.to_string();
    let args = ["--workers", &workers, "--log-level", "warn,glassbox=info"];
    Ok(Service {
        server: run.glassbox(name, &args)?,
        http,
    })
}

/// Images/s: `images` uploads from four clients at once, from the first upload to the last
/// result; and the execution time percentiles.
fn throughput(
    run: &Run,
    http: &Http,
    png: &[u8],
    workers: usize,
    images: usize,
) -> Result<(f64, Value)> {
    let service = start(run, http, &format!("w{workers}"), workers)?;
    let warm = http.block_on(service.submit(png))?;
    service.wait_all(&[warm])?;
    let started = Instant::now();
    let uploads = http.block_on(join_all((0..4).map(|_| async {
        let mut tokens = Vec::new();
        for _ in 0..images / 4 {
            tokens.push(service.submit(png).await?);
        }
        Ok::<_, anyhow::Error>(tokens)
    })));
    let tokens: Vec<String> = uploads.into_iter().collect::<Result<Vec<_>>>()?.concat();
    service.wait_all(&tokens)?;
    let rate = tokens.len() as f64 / started.elapsed().as_secs_f64();
    let (_, execution, _) = service.times()?;
    service.server.stop()?;
    Ok((rate, execution))
}

/// Lead time when uploads arrive evenly at `rate` per second.
fn fixed_rate(
    run: &Run,
    http: &Http,
    png: &[u8],
    workers: usize,
    rate: f64,
    images: usize,
) -> Result<Value> {
    let service = start(run, http, &format!("rate{workers}"), workers)?;
    let start = Instant::now();
    let mut tokens = Vec::new();
    for i in 0..images {
        let due = start + Duration::from_secs_f64(i as f64 / rate);
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        tokens.push(http.block_on(service.submit(png))?);
    }
    service.wait_all(&tokens)?;
    let (lead, _, finished) = service.times()?;
    ensure!(finished == images as u64, "{finished} of {images} finished");
    service.server.stop()?;
    Ok(lead)
}

pub(crate) fn run() -> Result<()> {
    let run = Run::start("randomize", &["glassbox"])?;
    let http = run.http()?;
    let images: usize = number("BENCH_IMAGES", 24)?;
    let png = photo_like_png(1024, 1024)?;
    println!(
        "randomize: a {:.1} MB 1024x1024 RGB PNG, {images} uploads per run, {} cores",
        png.len() as f64 / 1e6,
        crate::settings::cores()
    );
    let mut rates = Vec::new();
    for workers in [1, 2, 4] {
        let (rate, execution) = throughput(&run, &http, &png, workers, images)?;
        rates.push(rate);
        println!(
            "  {workers} worker(s)  {rate:6.2} images/s   execution p50 {} ms, p99 {} ms   {:.2} x 1 worker",
            execution["p50"],
            execution["p99"],
            rate / rates[0]
        );
    }
    let submission = rates[1] / 2.0;
    let lead = fixed_rate(&run, &http, &png, 2, submission, images)?;
    println!(
        "  2 workers at a fixed {submission:.2} uploads/s (half their throughput): lead time p50 {} ms, p99 {} ms, max {} ms",
        lead["p50"], lead["p99"], lead["max"]
    );
    let hello = run.glassbox("hello", &[])?;
    let measured = Wrk::new(&run.settings, &hello.url("/"))
        .shape(2, run.settings.connections)
        .run()?;
    let best = rates.iter().copied().fold(0.0, f64::max);
    println!(
        "  GET / on the same build: {:.0} req/s; one image costs as much as {:.0} hello worlds",
        measured.requests_per_sec,
        measured.requests_per_sec / best
    );
    Ok(())
}
