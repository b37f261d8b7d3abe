//! The sum-evens parser alone on an in-memory buffer: GB/s, next to a plain pass over the same
//! bytes (counting newlines) measured in the same run. `just bench-sum-evens` runs it.
//!
//! Usage: sum_evens_parse [MEGABYTES]; the buffer holds random signed numbers of 1 to 20 digits
//! (a few of 40) between spaces, newlines, CRLFs and commas.

use std::hint::black_box;
use std::time::Instant;

use glassbox::sum_evens::parse::sum_bytes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn generate(bytes: usize) -> Vec<u8> {
    let mut rng = StdRng::seed_from_u64(5);
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
    let megabytes: usize = std::env::args()
        .nth(1)
        .map_or(100, |a| a.parse().expect("a number of megabytes"));
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
