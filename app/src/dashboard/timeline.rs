//! A bounded window of samples taken at a fixed interval: the last few minutes of the
//! service, for charts. Each sample gets a sequence number, so a page that has seen up to `n`
//! asks only for what came after.

use std::collections::VecDeque;
use std::sync::Mutex;

use serde::Serialize;

/// A sample with its sequence number.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Stamped<P> {
    pub seq: u64,
    #[serde(flatten)]
    pub point: P,
}

#[derive(Debug)]
struct Inner<P> {
    points: VecDeque<Stamped<P>>,
    next_seq: u64,
}

/// The newest `capacity` samples.
#[derive(Debug)]
pub(crate) struct Timeline<P> {
    capacity: usize,
    inner: Mutex<Inner<P>>,
}

impl<P: Clone> Timeline<P> {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            inner: Mutex::new(Inner {
                points: VecDeque::with_capacity(capacity.max(1)),
                next_seq: 1,
            }),
        }
    }

    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// Appends a sample, dropping the oldest when full; returns its sequence number.
    pub(crate) fn push(&self, point: P) -> u64 {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if inner.points.len() == self.capacity {
            inner.points.pop_front();
        }
        let seq = inner.next_seq;
        inner.next_seq += 1;
        inner.points.push_back(Stamped { seq, point });
        seq
    }

    /// The samples after `since` (all of them for `None`), oldest first, and the newest
    /// sequence number (0 before the first sample).
    pub(crate) fn since(&self, since: Option<u64>) -> (Vec<Stamped<P>>, u64) {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let after = since.unwrap_or(0);
        let newer = inner
            .points
            .iter()
            .rev()
            .take_while(|p| p.seq > after)
            .count();
        let start = inner.points.len() - newer;
        (
            inner.points.range(start..).cloned().collect(),
            inner.next_seq - 1,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_samples_in_order() {
        let timeline = Timeline::new(3);
        assert_eq!(timeline.since(None).1, 0);
        for i in 0..5 {
            assert_eq!(timeline.push(i * 10), i + 1);
        }
        let (points, last) = timeline.since(None);
        assert_eq!(last, 5);
        let seqs: Vec<(u64, u64)> = points.iter().map(|p| (p.seq, p.point)).collect();
        assert_eq!(seqs, [(3, 20), (4, 30), (5, 40)]);
    }

    #[test]
    fn since_returns_only_newer_samples() {
        let timeline = Timeline::new(10);
        for i in 0..4 {
            timeline.push(i);
        }
        let seqs = |since| -> Vec<u64> { timeline.since(since).0.iter().map(|p| p.seq).collect() };
        assert_eq!(seqs(Some(2)), [3, 4]);
        assert!(seqs(Some(4)).is_empty());
        assert!(
            seqs(Some(99)).is_empty(),
            "a client ahead of the server (restarted) gets nothing"
        );
        assert_eq!(seqs(Some(0)), [1, 2, 3, 4]);
    }

    #[test]
    fn a_client_that_fell_behind_gets_what_is_left() {
        let timeline = Timeline::new(2);
        for i in 0..6 {
            timeline.push(i);
        }
        let (points, last) = timeline.since(Some(1));
        assert_eq!(last, 6);
        assert_eq!(points.iter().map(|p| p.seq).collect::<Vec<_>>(), [5, 6]);
    }
}
