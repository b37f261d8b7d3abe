//! The concurrency limit: counters, not a queue. A request over the limit is refused at once
//! (the caller sheds it with 503), so there are no waiters to wake.
//!
//! Two bounds hold at once: `limit` permits in all, and at most `per_client` of them for one
//! client address, so that a handful of slow clients on one address cannot take every permit.

use std::collections::HashMap;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use axum::body::{Body, Bytes, HttpBody};
use http_body::{Frame, SizeHint};

/// Admits at most `limit` holders of a [`Permit`] at once, `per_client` of them per address.
#[derive(Debug)]
pub(crate) struct Limiter {
    limit: usize,
    per_client: usize,
    in_use: AtomicUsize,
    by_client: Mutex<HashMap<IpAddr, usize>>,
}

/// Which bound refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Full {
    /// Every permit is taken.
    All,
    /// This client holds its share.
    Client,
}

/// Held while a request is served; dropping it frees the slot.
#[derive(Debug)]
pub(crate) struct Permit {
    limiter: Arc<Limiter>,
    client: Option<IpAddr>,
}

impl Limiter {
    pub(crate) fn new(limit: usize, per_client: usize) -> Arc<Self> {
        Arc::new(Self {
            limit,
            per_client: per_client.clamp(1, limit.max(1)),
            in_use: AtomicUsize::new(0),
            by_client: Mutex::new(HashMap::new()),
        })
    }

    /// A permit if a slot is free and `client` (when known) holds less than its share.
    pub(crate) fn try_acquire(self: &Arc<Self>, client: Option<IpAddr>) -> Result<Permit, Full> {
        let previous = self.in_use.fetch_add(1, Ordering::AcqRel);
        if previous >= self.limit {
            self.in_use.fetch_sub(1, Ordering::AcqRel);
            return Err(Full::All);
        }
        if let Some(ip) = client {
            let mut clients = self.clients();
            let held = clients.entry(ip).or_insert(0);
            if *held >= self.per_client {
                drop(clients);
                self.in_use.fetch_sub(1, Ordering::AcqRel);
                return Err(Full::Client);
            }
            *held += 1;
        }
        Ok(Permit {
            limiter: self.clone(),
            client,
        })
    }

    /// Permits held now.
    pub(crate) fn in_use(&self) -> usize {
        self.in_use.load(Ordering::Acquire)
    }

    fn clients(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, usize>> {
        self.by_client.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A response body holding its request's permit until the body is sent (or dropped): what a
/// response costs while its client reads it counts against the limit too.
pub(crate) struct Holding {
    inner: Body,
    permit: Option<Permit>,
}

impl Holding {
    pub(crate) fn new(inner: Body, permit: Permit) -> Self {
        Self {
            inner,
            permit: Some(permit),
        }
    }
}

impl HttpBody for Holding {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None | Some(Err(_)))) || self.inner.is_end_stream() {
            self.permit = None;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let Some(ip) = self.client {
            let mut clients = self.limiter.clients();
            if let Some(held) = clients.get_mut(&ip) {
                *held -= 1;
                if *held == 0 {
                    clients.remove(&ip);
                }
            }
        }
        self.limiter.in_use.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 1)));
    const B: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2)));

    #[test]
    fn admits_up_to_the_limit_and_frees_on_drop() {
        let limiter = Limiter::new(2, 2);
        let a = limiter.try_acquire(None).unwrap();
        let _b = limiter.try_acquire(None).unwrap();
        assert_eq!(limiter.try_acquire(None).unwrap_err(), Full::All);
        assert_eq!(limiter.in_use(), 2, "a refusal does not leak a slot");
        drop(a);
        assert!(limiter.try_acquire(None).is_ok());
    }

    #[test]
    fn one_client_holds_at_most_its_share() {
        let limiter = Limiter::new(4, 2);
        let held: Vec<_> = (0..2).map(|_| limiter.try_acquire(B).unwrap()).collect();
        assert_eq!(limiter.try_acquire(B).unwrap_err(), Full::Client);
        assert_eq!(
            limiter.in_use(),
            2,
            "a client's refusal does not leak a slot"
        );
        // Another client still gets the rest.
        let _a1 = limiter.try_acquire(A).unwrap();
        let _a2 = limiter.try_acquire(A).unwrap();
        assert_eq!(limiter.try_acquire(A).unwrap_err(), Full::All);
        drop(held);
        assert!(
            limiter.clients().get(&B.unwrap()).is_none(),
            "freed clients are forgotten"
        );
        assert!(limiter.try_acquire(B).is_ok());
    }

    #[test]
    fn concurrent_use_never_exceeds_either_bound() {
        let limiter = Limiter::new(3, 2);
        // Counts permits actually held, apart from the limiter's own bookkeeping.
        let held = Arc::new([AtomicUsize::new(0), AtomicUsize::new(0)]);
        let peak = Arc::new([
            AtomicUsize::new(0),
            AtomicUsize::new(0),
            AtomicUsize::new(0),
        ]);
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let (limiter, held, peak) = (limiter.clone(), held.clone(), peak.clone());
                std::thread::spawn(move || {
                    let (client, c) = if t % 2 == 0 { (A, 0) } else { (B, 1) };
                    for _ in 0..20_000 {
                        if let Ok(permit) = limiter.try_acquire(client) {
                            let mine = held[c].fetch_add(1, Ordering::AcqRel) + 1;
                            let all = mine + held[1 - c].load(Ordering::Acquire);
                            peak[c].fetch_max(mine, Ordering::AcqRel);
                            peak[2].fetch_max(all, Ordering::AcqRel);
                            std::hint::spin_loop();
                            held[c].fetch_sub(1, Ordering::AcqRel);
                            drop(permit);
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        for c in 0..2 {
            assert!(peak[c].load(Ordering::Acquire) <= 2, "client {c}");
        }
        assert!((1..=3).contains(&peak[2].load(Ordering::Acquire)));
        assert_eq!(limiter.in_use(), 0);
        assert!(limiter.clients().is_empty());
    }
}
