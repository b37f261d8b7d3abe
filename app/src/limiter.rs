//! The concurrency limit: a counter, not a queue. A request over the limit is refused at once
//! (the caller sheds it with 503), so there are no waiters to wake and no lock to take.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Admits at most `limit` holders of a [`Permit`] at once.
#[derive(Debug)]
pub(crate) struct Limiter {
    limit: usize,
    in_use: AtomicUsize,
}

/// Held while a request is served; dropping it frees the slot.
#[derive(Debug)]
pub(crate) struct Permit(Arc<Limiter>);

impl Limiter {
    pub(crate) fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self {
            limit,
            in_use: AtomicUsize::new(0),
        })
    }

    /// A permit if a slot is free, else `None`.
    pub(crate) fn try_acquire(self: &Arc<Self>) -> Option<Permit> {
        let previous = self.in_use.fetch_add(1, Ordering::AcqRel);
        if previous < self.limit {
            Some(Permit(self.clone()))
        } else {
            self.in_use.fetch_sub(1, Ordering::AcqRel);
            None
        }
    }

    #[cfg(test)]
    fn in_use(&self) -> usize {
        self.in_use.load(Ordering::Acquire)
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.0.in_use.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_up_to_the_limit_and_frees_on_drop() {
        let limiter = Limiter::new(2);
        let a = limiter.try_acquire().unwrap();
        let _b = limiter.try_acquire().unwrap();
        assert!(limiter.try_acquire().is_none());
        assert_eq!(limiter.in_use(), 2, "a refusal does not leak a slot");
        drop(a);
        assert!(limiter.try_acquire().is_some());
    }

    #[test]
    fn concurrent_use_never_exceeds_the_limit() {
        let limiter = Limiter::new(3);
        // Counts permits actually held, apart from the limiter's own bookkeeping.
        let held = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (limiter, held, peak) = (limiter.clone(), held.clone(), peak.clone());
                std::thread::spawn(move || {
                    for _ in 0..20_000 {
                        if let Some(permit) = limiter.try_acquire() {
                            let now = held.fetch_add(1, Ordering::AcqRel) + 1;
                            peak.fetch_max(now, Ordering::AcqRel);
                            std::hint::spin_loop();
                            held.fetch_sub(1, Ordering::AcqRel);
                            drop(permit);
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let peak = peak.load(Ordering::Acquire);
        assert!((1..=3).contains(&peak), "peak {peak}");
        assert_eq!(limiter.in_use(), 0);
    }
}
