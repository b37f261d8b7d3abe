//! Pieces of the sum-evens benchmark (`just bench-sum-evens` runs them):
//!
//! - `parse MEGABYTES`: the parser alone on an in-memory buffer, GB/s, next to a plain pass over
//!   the same bytes (counting newlines) measured in the same run;
//! - `generate FILE MEGABYTES`: writes a test file;
//! - `file FILE`: the whole task on an on-disk file (chunks summed on every core by the fair
//!   scheduler), GB/s.
//!
//! The data: random signed numbers of 1 to 20 digits (a few of 40) between spaces, newlines,
//! CRLFs and commas.

use std::hint::black_box;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Instant;

use glassbox::compute::ComputePool;
use glassbox::sum_evens::parse::sum_bytes;
use glassbox::sum_evens::scheduler::FairScheduler;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn generate(bytes: usize) -> Vec<u8> {
    generate_with(&mut StdRng::seed_from_u64(5), bytes)
}

fn generate_with(rng: &mut StdRng, bytes: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes + 64);
    while out.len() < bytes {
        if rng.random_bool(0.3) {
            out.push(b'-');
        }
        let digits = if rng.random_bool(0.01) {
            40
        } else {
            rng.random_range(1..=20)
        };
        out.push(b'1' + rng.random_range(0..9u8));
        for _ in 1..digits {
            out.push(b'0' + rng.random_range(0..10u8));
        }
        out.extend_from_slice(match rng.random_range(0..4) {
            0 => &b" "[..],
            1 => b"\n",
            2 => b"\r\n",
            _ => b",",
        });
    }
    out
}

fn best_of<T>(runs: usize, mut f: impl FnMut() -> T) -> f64 {
    (0..runs)
        .map(|_| {
            let started = Instant::now();
            black_box(f());
            started.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let number = |i: usize| -> usize {
        args.get(i)
            .and_then(|a| a.parse().ok())
            .expect("a number of megabytes")
    };
    match args.first().map(String::as_str) {
        Some("parse") => parse(number(1)),
        Some("generate") => {
            let path = args.get(1).expect("a file");
            let mut file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
            let mut rng = StdRng::seed_from_u64(5);
            let total = number(2) << 20;
            let mut written = 0;
            while written < total {
                let piece = generate_with(&mut rng, (8 << 20).min(total - written));
                file.write_all(&piece).unwrap();
                written += piece.len();
            }
            file.flush().unwrap();
        }
        Some("file") => whole_file(args.get(1).expect("a file")),
        _ => eprintln!("usage: sum_evens_bench parse MB | generate FILE MB | file FILE"),
    }
}

fn whole_file(path: &str) {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let bytes = std::fs::metadata(path).unwrap().len();
    let seconds = runtime.block_on(async {
        let scheduler = FairScheduler::start(cores, ComputePool::new(cores), Default::default());
        let started = Instant::now();
        let partial = scheduler
            .sum("bench", path.as_ref(), Arc::new(AtomicU64::new(0)))
            .await
            .expect("valid input");
        black_box(partial);
        started.elapsed().as_secs_f64()
    });
    println!("{:.3} {:.2}", seconds, bytes as f64 / 1e9 / seconds);
}

fn parse(megabytes: usize) {
    let data = generate(megabytes << 20);
    let gb = data.len() as f64 / 1e9;
    let scan = best_of(5, || data.iter().filter(|&&b| b == b'\n').count());
    let parse = best_of(5, || sum_bytes(black_box(&data)).expect("valid input"));
    let result = sum_bytes(&data).unwrap();
    println!(
        "parser, {:.0} MB in memory ({} numbers, {} even), one core:",
        data.len() as f64 / 1e6,
        result.numbers,
        result.evens
    );
    println!("  newline count (reference)  {:6.2} GB/s", gb / scan);
    println!(
        "  sum of the evens           {:6.2} GB/s   {:.2} x the reference   (target >= 1 GB/s)",
        gb / parse,
        scan / parse
    );
}
