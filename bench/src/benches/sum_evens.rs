//! `/sum-evens` for 100 MB and 1 GB files: the parser alone on an in-memory buffer and the
//! whole task from an on-disk file, next to `cat file` (the read ceiling), best of three runs
//! each. Then 1 GiB uploaded to the result, five rounds, by curl over HTTP/1.1, by curl over
//! HTTP/2, and by nghttp over HTTP/2 (a client that sends whole TLS records, where curl's
//! HTTP/2 sends twice as many: see [`Client`]). Each upload is next to the same client
//! uploading the same file to nginx (started here, one worker), which reads it into a file on
//! tmpfs and so keeps nothing on a disk, and next to the bare hyper + rustls reference, which
//! reads the body and discards it (what the stack glassbox is built on costs by itself, over
//! each protocol). glassbox runs once with its data directory on the disk (its `fsync` is
//! real) and once on tmpfs, and `dd` copies the file to that disk, through the page cache and
//! around it (`oflag=direct`), each with `conv=fsync`, as the disk's pace. Each upload's CPU is
//! measured too: the client's, and the server's (receiving, storing and, for glassbox,
//! summing), since the two share this machine's cores. `BENCH_BIG_GB=5` adds a 5 GB
//! upload-to-result with glassbox's peak RSS meanwhile. `BENCH_PIN=1` gives the client the last
//! core and the servers the others, so that neither protocol's upload is bound by the client's
//! CPU.
//!
//! The files go under `target/bench-sum-evens/` and are kept: generating them takes a while.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};

use crate::cpu::{self, PeakRss};
use crate::http::Http;
use crate::run::{self, Run};
use crate::server::Server;
use crate::settings::number;
use crate::stats::{median, per_round, spread, verdict};

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

/// Who uploads, and over which protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Client {
    /// curl over HTTP/1.1: one 16 KiB TLS record a `sendto`.
    Curl1,
    /// curl over HTTP/2, as users bring it: Debian's curl sends each 16 KiB DATA frame with its
    /// 9-byte header as two TLS records in two `sendto`s.
    Curl2,
    /// nghttp (nghttp2-client) over HTTP/2: it packs the frames into whole 16 KiB TLS records,
    /// one `write` each, as curl does over HTTP/1.1. It shows what the server's HTTP/2 costs
    /// when the client's framing does not.
    Nghttp,
}

impl Client {
    const ALL: [Self; 3] = [Self::Curl1, Self::Curl2, Self::Nghttp];
}

/// One upload: seconds to the answer and (for glassbox) to the finished result, and the CPU
/// seconds the client and the server spent meanwhile.
#[derive(Debug, Clone, Copy)]
struct Upload {
    answered: f64,
    finished: f64,
    client_cpu: f64,
    server_cpu: f64,
}

/// Measures `upload` (which returns its seconds to the answer and to the result) with the
/// client's CPU (a child this process waits for) and `server`'s.
fn measured(server: &Server, upload: impl FnOnce() -> Result<(f64, f64)>) -> Result<Upload> {
    let (client, ticks) = (cpu::children_cpu(), server.cpu_ticks());
    let (answered, finished) = upload()?;
    Ok(Upload {
        answered,
        finished,
        client_cpu: (cpu::children_cpu() - client).as_secs_f64(),
        server_cpu: cpu::tick_seconds(server.cpu_ticks() - ticks),
    })
}

/// `file` uploaded to `url` by `client` as `text/plain` (a POST, or a PUT when `put`); its
/// output. curl checks the certificate with the run's CA; nghttp has no such option and only
/// warns (to the null device here), which on loopback changes nothing measured.
fn client_upload(run: &Run, file: &Path, url: &str, client: Client, put: bool) -> Result<String> {
    let method = if put { "PUT" } else { "POST" };
    // Pinned (`BENCH_PIN=1`), the client has the last core to itself, as wrk has in the other
    // benches, and the servers the others.
    let pin = &run.settings.placement.client_pin;
    let mut command = match client {
        Client::Curl1 | Client::Curl2 => {
            let flag = match client {
                Client::Curl2 => "--http2",
                _ => "--http1.1",
            };
            let mut curl = crate::server::command(pin, Path::new("curl"), &[]);
            curl.args(["-sS", "--fail-with-body", flag, "--cacert"])
                .arg(run.ca())
                .args(["-H", "Content-Type: text/plain", "-X", method, "-T"])
                .arg(file);
            curl
        }
        Client::Nghttp => {
            let mut nghttp = crate::server::command(pin, Path::new("nghttp"), &[]);
            nghttp
                .args(["-H", "content-type: text/plain", "-H"])
                .arg(format!(":method: {method}"))
                .arg("-d")
                .arg(file);
            nghttp
        }
    };
    let output = command
        .arg(url)
        .stderr(match client {
            Client::Nghttp => Stdio::null(),
            _ => Stdio::inherit(),
        })
        .output()
        .with_context(|| format!("{client:?} is needed (curl, nghttp2-client)"))?;
    ensure!(output.status.success(), "{client:?} upload to {url} failed");
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Seconds from the start of the upload to the 201, and to the finished result.
fn upload(
    run: &Run,
    http: &Http,
    glassbox: &Server,
    file: &Path,
    client: Client,
) -> Result<(f64, f64)> {
    let started = Instant::now();
    let answer = client_upload(run, file, &glassbox.url("/sum-evens"), client, false)?;
    let created = seconds(started);
    let token = serde_json::from_str::<serde_json::Value>(&answer)?["token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    ensure!(token.len() == 32, "upload refused: {answer}");
    loop {
        let status = http.json(&glassbox.url(&format!("/sum-evens/{token}/status")))?;
        match status["status"].as_str() {
            Some("finished") => return Ok((created, seconds(started))),
            Some("errored") => bail!("errored: {status}"),
            _ => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// Seconds for `client` to PUT `file` to nginx, which keeps it on tmpfs (and forgets it
/// here; the file's being there is the check that nginx stored it).
fn to_nginx(run: &Run, nginx: &Server, file: &Path, kept: &Path, client: Client) -> Result<f64> {
    let started = Instant::now();
    client_upload(run, file, &nginx.url("/upload"), client, true)?;
    let took = seconds(started);
    std::fs::remove_file(kept.join("upload")).context("nginx kept the upload")?;
    Ok(took)
}

/// How `dd` writes its copy.
#[derive(Debug, Clone, Copy)]
enum Dd {
    /// Through the page cache, then `fsync`.
    Cached,
    /// Around it (`oflag=direct`), then `fsync`: as glassbox spools an upload it sums.
    Direct,
}

/// Seconds to copy `file` into `dir` with `dd` and `fsync` it, then remove the copy.
fn dd_fsync(file: &Path, dir: &Path, how: Dd) -> Result<f64> {
    let copy = dir.join("dd-floor");
    let started = Instant::now();
    let mut dd = Command::new("dd");
    dd.arg(format!("if={}", file.display()))
        .arg(format!("of={}", copy.display()))
        .args(["bs=1M", "conv=fsync", "status=none"]);
    if let Dd::Direct = how {
        dd.arg("oflag=direct");
    }
    let status = dd.status()?;
    let took = seconds(started);
    ensure!(status.success(), "dd to {}", dir.display());
    std::fs::remove_file(copy)?;
    Ok(took)
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
        println!(
            "  cat > /dev/null (read ceiling)         {:6.2} GB/s",
            gbps(bytes, c)
        );
        println!(
            "  whole task from the file, all cores    {:6.2} GB/s   {:.2} x cat",
            gbps(bytes, t),
            c / t
        );
    }
    uploads(&run, &http, &dir)?;

    let big: u64 = number("BENCH_BIG_GB", 0)?;
    if big > 0 {
        let glassbox = run.glassbox("glassbox-big", &["--log-level", "warn"])?;
        let (file, _) = numbers(&run, &dir, &format!("{big}g"), big * 1024)?;
        let memory = tmpfs(&run)?;
        let (nginx, kept) = nginx_storing(&run, memory.path())?;
        let d = to_nginx(&run, &nginx, &file, &kept, Client::Curl1)?;
        let rss = PeakRss::start(glassbox.pid());
        let (_, u) = upload(&run, &http, &glassbox, &file, Client::Curl1)?;
        let peak = rss.stop();
        println!("{big} GB file, once, HTTP/1.1:");
        println!("  curl upload to nginx (tmpfs)           {d:7.1} s");
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

/// A directory on tmpfs where there is one (`/dev/shm`), removed when dropped: nginx's copy
/// and the second glassbox's data stay in memory.
fn tmpfs(run: &Run) -> Result<tempfile::TempDir> {
    let shm = Path::new("/dev/shm");
    Ok(if shm.is_dir() {
        tempfile::Builder::new()
            .prefix("glassbox-bench-sum-evens.")
            .tempdir_in(shm)?
    } else {
        tempfile::tempdir_in(run.path("."))?
    })
}

/// nginx storing what is PUT to `/upload` as a file under `dir` (the body's temporary file on
/// the same filesystem, so storing it is a rename); the directory it keeps the file in.
fn nginx_storing(run: &Run, dir: &Path) -> Result<(Server, std::path::PathBuf)> {
    let kept = dir.join("nginx");
    std::fs::create_dir_all(kept.join("temp"))?;
    let locations = format!(
        "client_max_body_size 0;
        location = /upload {{
            client_body_temp_path {kept}/temp;
            root {kept};
            dav_methods PUT;
        }}",
        kept = kept.display()
    );
    Ok((crate::nginx::start(run, "nginx", &locations)?, kept))
}

/// One protocol's uploads over the rounds.
#[derive(Debug, Default)]
struct Times {
    nginx: Vec<Upload>,
    /// The bare hyper + rustls reference, discarding the body.
    bare: Vec<Upload>,
    tmpfs: Vec<Upload>,
    disk: Vec<Upload>,
}

/// One field of every upload.
fn each(uploads: &[Upload], field: impl Fn(&Upload) -> f64) -> Vec<f64> {
    uploads.iter().map(field).collect()
}

/// The 1 GB file uploaded to the result by each [`Client`], against nginx, in rounds.
fn uploads(run: &Run, http: &Http, dir: &Path) -> Result<()> {
    let rounds: usize = number("BENCH_UPLOAD_ROUNDS", 5)?;
    let (file, bytes) = numbers(run, dir, "1024", 1024)?;
    let memory = tmpfs(run)?;
    let (nginx, kept) = nginx_storing(run, memory.path())?;
    let bare = run.reference("reference")?;
    let on_disk = run.glassbox("glassbox", &["--log-level", "warn"])?;
    let on_tmpfs = run.glassbox_in(
        &run.release("glassbox"),
        "glassbox-tmpfs",
        &memory.path().join("data"),
        &["--log-level", "warn"],
    )?;
    let (disk_rss, tmpfs_rss) = (
        PeakRss::start(on_disk.pid()),
        PeakRss::start(on_tmpfs.pid()),
    );
    let mut times: [Times; 3] = Default::default();
    let (mut cached, mut direct) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        for (client, times) in Client::ALL.into_iter().zip(&mut times) {
            times.nginx.push(measured(&nginx, || {
                let took = to_nginx(run, &nginx, &file, &kept, client)?;
                Ok((took, took))
            })?);
            times.bare.push(measured(&bare, || {
                let started = Instant::now();
                client_upload(run, &file, &bare.url("/"), client, false)?;
                let took = seconds(started);
                Ok((took, took))
            })?);
            times.disk.push(measured(&on_disk, || {
                upload(run, http, &on_disk, &file, client)
            })?);
            times.tmpfs.push(measured(&on_tmpfs, || {
                upload(run, http, &on_tmpfs, &file, client)
            })?);
        }
        cached.push(dd_fsync(&file, &run.path("glassbox"), Dd::Cached)?);
        direct.push(dd_fsync(&file, &run.path("glassbox"), Dd::Direct)?);
    }
    let (disk_peak, tmpfs_peak) = (disk_rss.stop(), tmpfs_rss.stop());
    println!(
        "1 GB file ({bytes} bytes) uploaded, {rounds} rounds: medians in s, curl HTTP/1.1 | curl HTTP/2 | nghttp HTTP/2"
    );
    report_medians(&times, &cached, &direct);
    report_ratios(run, &times);
    println!(
        "  glassbox peak RSS: {disk_peak:.1} MB (data on disk), {tmpfs_peak:.1} MB (tmpfs) (target < 100 MB: {})",
        verdict(disk_peak.max(tmpfs_peak), 100.0, false)
    );
    Ok(())
}

/// Which uploads of a [`Times`] a row shows.
type Place = fn(&Times) -> &[Upload];
/// Which number of an [`Upload`] a row shows.
type Field = fn(&Upload) -> f64;

const NGINX: Place = |t| &t.nginx;
const BARE: Place = |t| &t.bare;
const DISK: Place = |t| &t.disk;
const TMPFS: Place = |t| &t.tmpfs;
const ANSWERED: Field = |u| u.answered;
const FINISHED: Field = |u| u.finished;
const CLIENT_CPU: Field = |u| u.client_cpu;
const SERVER_CPU: Field = |u| u.server_cpu;

/// The medians of one `field` of one `place`, a column per client.
fn row(what: &str, times: &[Times; 3], place: Place, field: Field) {
    let [a, b, c] = times.each_ref().map(|t| median(&each(place(t), field)));
    println!("  {what:<44} {a:6.2} | {b:6.2} | {c:6.2}");
}

fn report_medians(times: &[Times; 3], cached: &[f64], direct: &[f64]) {
    let rows: [(&str, Place, Field); 6] = [
        (
            "nginx, PUT into a file on tmpfs (reference)",
            NGINX,
            ANSWERED,
        ),
        ("hyper + rustls reference, discarding it", BARE, ANSWERED),
        ("glassbox, data on tmpfs: to the 201", TMPFS, ANSWERED),
        ("glassbox, data on tmpfs: to the result", TMPFS, FINISHED),
        ("glassbox, data on disk: to the 201", DISK, ANSWERED),
        ("glassbox, data on disk: to the result", DISK, FINISHED),
    ];
    for (what, place, field) in rows {
        row(what, times, place, field);
    }
    println!(
        "  {:<44} {:6.2}",
        "dd conv=fsync of the file to that disk",
        median(cached)
    );
    println!(
        "  {:<44} {:6.2} (the disk's pace for a direct spool)",
        "dd oflag=direct conv=fsync, the same",
        median(direct)
    );
    println!("  CPU seconds per upload (medians), the same columns:");
    let rows: [(&str, Place, Field); 8] = [
        ("  the client, to nginx", NGINX, CLIENT_CPU),
        ("  nginx", NGINX, SERVER_CPU),
        (
            "  the client, to the hyper + rustls reference",
            BARE,
            CLIENT_CPU,
        ),
        ("  the hyper + rustls reference", BARE, SERVER_CPU),
        ("  the client, to glassbox (data on disk)", DISK, CLIENT_CPU),
        ("  glassbox (data on disk), with the sum", DISK, SERVER_CPU),
        (
            "  the client, to glassbox (data on tmpfs)",
            TMPFS,
            CLIENT_CPU,
        ),
        (
            "  glassbox (data on tmpfs), with the sum",
            TMPFS,
            SERVER_CPU,
        ),
    ];
    for (what, place, field) in rows {
        row(what, times, place, field);
    }
}

fn report_ratios(run: &Run, times: &[Times; 3]) {
    let [h1, h2, nghttp] = times;
    println!("  Round by round:");
    for (name, times, target) in [
        ("curl HTTP/1.1", h1, Some(1.3)),
        ("curl HTTP/2", h2, Some(1.3)),
        ("nghttp HTTP/2", nghttp, None),
    ] {
        let reference = each(&times.nginx, ANSWERED);
        for (place, uploads) in [("disk", &times.disk), ("tmpfs", &times.tmpfs)] {
            let ratios = per_round(&each(uploads, FINISHED), &reference);
            println!(
                "  result / nginx, {name}, data on {place}: {} ({})",
                spread(&ratios),
                judged(&ratios, target, "no target: nginx had the same client")
            );
        }
    }
    for (place, pick) in [("disk", DISK), ("tmpfs", TMPFS)] {
        for (name, http2, target) in [("curl", h2, Some(1.1)), ("nghttp", nghttp, None)] {
            let (a, b) = (pick(h1), pick(http2));
            let ratios = per_round(&each(b, ANSWERED), &each(a, ANSWERED));
            println!(
                "  HTTP/2 ({name}) / HTTP/1.1 (curl) to the 201, data on {place}: {} ({})",
                spread(&ratios),
                judged(&ratios, target, "whole TLS records, as curl sends HTTP/1.1"),
            );
            print_floor(run, a, b);
        }
    }
    for (name, http2) in [("curl", h2), ("nghttp", nghttp)] {
        let ratios = per_round(&each(&http2.nginx, ANSWERED), &each(&h1.nginx, ANSWERED));
        println!(
            "  nginx's own HTTP/2 ({name}) / HTTP/1.1 (curl): {}",
            spread(&ratios)
        );
        let ratios = per_round(&each(&http2.bare, ANSWERED), &each(&h1.bare, ANSWERED));
        let cpu = |times: &Times| median(&each(&times.bare, SERVER_CPU));
        println!(
            "  the hyper + rustls reference's own HTTP/2 ({name}) / HTTP/1.1 (curl): {}; its CPU {:+.2} s, glassbox's (disk) {:+.2} s",
            spread(&ratios),
            cpu(http2) - cpu(h1),
            median(&each(&http2.disk, SERVER_CPU)) - median(&each(&h1.disk, SERVER_CPU)),
        );
    }
}

/// The verdict on the median of `ratios` against `target` (at most), or `note` for ratios
/// that have none.
fn judged(ratios: &[f64], target: Option<f64>, note: &str) -> String {
    match target {
        Some(target) => format!(
            "target <= {target}: {}",
            verdict(median(ratios), target, false)
        ),
        None => note.to_owned(),
    }
}

/// The least wall time the cores allow an upload: sharing them, the client's and glassbox's
/// CPU together over all the cores; pinned, the busier of the client on its core and glassbox
/// on the others. For HTTP/1.1's uploads `a` and HTTP/2's `b`.
fn print_floor(run: &Run, a: &[Upload], b: &[Upload]) {
    let placement = &run.settings.placement;
    let (pinned, what) = if placement.client_pin.is_empty() {
        (false, "(client + glassbox) / cores")
    } else {
        (true, "max(client, glassbox / its cores)")
    };
    let floor = |uploads: &[Upload]| {
        median(&each(uploads, |u| {
            if pinned {
                u.client_cpu
                    .max(u.server_cpu / placement.server_cores as f64)
            } else {
                (u.client_cpu + u.server_cpu) / crate::settings::cores() as f64
            }
        }))
    };
    println!(
        "    CPU floor {what}: {:.2} | {:.2} s, {:.3} x; the client's own CPU {:.3} x, glassbox's {:.3} x",
        floor(a),
        floor(b),
        floor(b) / floor(a),
        median(&each(b, CLIENT_CPU)) / median(&each(a, CLIENT_CPU)),
        median(&each(b, SERVER_CPU)) / median(&each(a, SERVER_CPU)),
    );
}
