//! Histograms whose counts are kept per thread.
//!
//! A count that every request adds to, kept in one place, moves between the cores' caches on
//! nearly every request, and the adds queue behind each other. Here each thread that records
//! adds to a shard of its own, in cache lines no other shard uses, and a reader adds the shards
//! up. A sample costs two atomic adds on lines the recording core already holds: its bucket and
//! the sum. (The `metrics` crate's histogram pushed every sample, with a clock reading, onto a
//! list all threads shared, and folded the list into buckets later; see BENCHMARKS.md.)

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// How many shards each histogram has: one per core the process may run on, at most 16.
fn shards() -> usize {
    static SHARDS: OnceLock<usize> = OnceLock::new();
    *SHARDS.get_or_init(|| {
        std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(16)
    })
}

/// The calling thread's shard: threads take them in turn, the first time they record, so the
/// runtime's workers (the first to record) each have one of their own.
fn shard() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local!(static SHARD: usize = NEXT.fetch_add(1, Ordering::Relaxed) % shards());
    SHARD.with(|shard| *shard)
}

/// A histogram with fixed upper bounds (Prometheus's `le`), counting integer amounts: its sum
/// is exact.
#[derive(Debug)]
pub(crate) struct Histogram {
    bounds: &'static [f64],
    /// One row per shard: a count per bucket (the last is `+Inf`), then the sum. Rows are
    /// `stride` cells apart, at least a cache line between the end of one and the next.
    cells: Box<[AtomicU64]>,
    stride: usize,
}

/// The counts of a [`Histogram`] at one moment, its shards added up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Snapshot {
    /// Samples per bucket (not cumulative), the last `+Inf`'s.
    pub buckets: Vec<u64>,
    /// The sum of the amounts recorded.
    pub sum: u64,
}

impl Snapshot {
    pub(crate) fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }
}

/// Cells between the end of one row and the start of the next: a 64-byte line.
const GAP: usize = 8;

/// The bucket `value` falls in among `bounds` (ascending): the first whose bound it does not
/// exceed, or `bounds.len()` for `+Inf`'s.
pub(crate) fn bucket_of(bounds: &[f64], value: f64) -> usize {
    bounds.partition_point(|le| *le < value)
}

impl Histogram {
    pub(crate) fn new(bounds: &'static [f64]) -> Self {
        let stride = (bounds.len() + 2 + GAP).next_multiple_of(GAP);
        Self {
            bounds,
            cells: (0..stride * shards()).map(|_| AtomicU64::new(0)).collect(),
            stride,
        }
    }

    pub(crate) fn bounds(&self) -> &'static [f64] {
        self.bounds
    }

    /// The bucket `value` falls in ([`bucket_of`] this histogram's bounds).
    pub(crate) fn bucket(&self, value: f64) -> usize {
        bucket_of(self.bounds, value)
    }

    /// Counts a sample in `bucket` (from [`Histogram::bucket`]) and adds `amount` to the sum.
    pub(crate) fn record(&self, bucket: usize, amount: u64) {
        let row = shard() * self.stride;
        self.cells[row + bucket.min(self.bounds.len())].fetch_add(1, Ordering::Relaxed);
        self.cells[row + self.bounds.len() + 1].fetch_add(amount, Ordering::Relaxed);
    }

    /// The shards added up. A sample being recorded meanwhile may be in its bucket and not yet
    /// in the sum; the buckets and the count always agree.
    pub(crate) fn snapshot(&self) -> Snapshot {
        let mut buckets = vec![0; self.bounds.len() + 1];
        let mut sum = 0u64;
        for row in self.cells.chunks(self.stride) {
            for (total, cell) in buckets.iter_mut().zip(row) {
                *total += cell.load(Ordering::Relaxed);
            }
            sum = sum.wrapping_add(row[self.bounds.len() + 1].load(Ordering::Relaxed));
        }
        Snapshot { buckets, sum }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOUNDS: &[f64] = &[0.5, 1.0, 2.5];

    #[test]
    fn a_sample_on_a_bound_counts_in_that_bound_s_bucket() {
        let h = Histogram::new(BOUNDS);
        let buckets: Vec<usize> = [0.0, 0.5, 0.51, 1.0, 2.5, 2.6, f64::INFINITY]
            .iter()
            .map(|&v| h.bucket(v))
            .collect();
        assert_eq!(buckets, [0, 0, 1, 1, 2, 3, 3]);
        for (bucket, amount) in [(0, 5), (1, 7), (3, 11), (9, 1)] {
            h.record(bucket, amount);
        }
        let snapshot = h.snapshot();
        assert_eq!(
            snapshot.buckets,
            [1, 1, 0, 2],
            "a bucket past the end is +Inf's"
        );
        assert_eq!(snapshot.sum, 24);
        assert_eq!(snapshot.count(), 4);
    }

    #[test]
    fn every_thread_s_samples_are_added_up_and_no_two_rows_share_a_cache_line() {
        let h = Histogram::new(BOUNDS);
        assert!(h.stride * 8 >= (BOUNDS.len() + 2) * 8 + 64);
        std::thread::scope(|scope| {
            for t in 0..8u64 {
                let h = &h;
                scope.spawn(move || {
                    for i in 0..1000 {
                        h.record((i % 4) as usize, t);
                    }
                });
            }
        });
        let snapshot = h.snapshot();
        assert_eq!(snapshot.buckets, [2000; 4]);
        assert_eq!(snapshot.sum, 1000 * (0..8).sum::<u64>());
        // A thread's samples land in its own row only.
        let fresh = Histogram::new(BOUNDS);
        let theirs = std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    fresh.record(1, 3);
                    shard()
                })
                .join()
                .unwrap()
        });
        assert!(theirs < shards());
        for (row, cells) in fresh.cells.chunks(fresh.stride).enumerate() {
            let used: u64 = cells.iter().map(|c| c.load(Ordering::Relaxed)).sum();
            assert_eq!(used, if row == theirs { 4 } else { 0 }, "row {row}");
        }
    }
}
