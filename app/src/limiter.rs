//! The concurrency limit: counters, not a queue. A request over the limit is refused at once
//! (the caller sheds it with 503), so there are no waiters to wake and no lock to take.
//!
//! Two bounds hold at once: `limit` permits in all, and at most `per_client` of them for one
//! client (an address; for IPv6 its /64), so that a handful of slow clients on one address
//! cannot take every permit.
//! Clients are counted in [`SLOTS`] counters chosen by a hash of the address, the way a
//! counting Bloom filter counts: no map, no lock and no allocation per request, at the price
//! that two addresses sharing a slot (one chance in 16,384 for a given pair) share one share.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

use crate::body::keep::{Keep, KeepUntilSent};
use crate::forwarded;

/// Per-client counters.
pub(crate) const SLOTS: usize = 1 << 14;

/// Admits at most `limit` holders of a [`Permit`] at once, `per_client` of them per address.
#[derive(Debug)]
pub(crate) struct Limiter {
    limit: usize,
    per_client: usize,
    in_use: AtomicUsize,
    by_client: Box<[AtomicU32]>,
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
    /// The client's counter, when the client was counted.
    slot: Option<usize>,
}

/// The counter of the client `ip` is ([`forwarded::client_of`]: an IPv6 client is its /64): a
/// multiplicative hash of its bytes (the keys are the service's own view of its clients'
/// addresses; nothing here needs a keyed hash).
pub(crate) fn slot(ip: IpAddr) -> usize {
    let bytes = match forwarded::client_of(ip) {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    };
    let mut hash = 0u64;
    for chunk in bytes.chunks_exact(8) {
        let word = u64::from_le_bytes(chunk.try_into().expect("eight bytes"));
        hash = (hash ^ word)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
            .rotate_left(29);
    }
    (hash.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (64 - SLOTS.trailing_zeros())) as usize
}

impl Limiter {
    pub(crate) fn new(limit: usize, per_client: usize) -> Arc<Self> {
        Arc::new(Self {
            limit,
            per_client: per_client.clamp(1, limit.max(1)),
            in_use: AtomicUsize::new(0),
            by_client: (0..SLOTS).map(|_| AtomicU32::new(0)).collect(),
        })
    }

    /// A permit if a slot is free and `client` (when known) holds less than its share.
    pub(crate) fn try_acquire(self: &Arc<Self>, client: Option<IpAddr>) -> Result<Permit, Full> {
        let previous = self.in_use.fetch_add(1, Ordering::AcqRel);
        if previous >= self.limit {
            self.in_use.fetch_sub(1, Ordering::AcqRel);
            return Err(Full::All);
        }
        // With a share of every permit, the limit in all is the only bound.
        let slot = client.filter(|_| self.per_client < self.limit).map(slot);
        if let Some(slot) = slot {
            let held = self.by_client[slot].fetch_add(1, Ordering::AcqRel);
            if held as usize >= self.per_client {
                self.by_client[slot].fetch_sub(1, Ordering::AcqRel);
                self.in_use.fetch_sub(1, Ordering::AcqRel);
                return Err(Full::Client);
            }
        }
        Ok(Permit {
            limiter: self.clone(),
            slot,
        })
    }

    /// Permits held now.
    pub(crate) fn in_use(&self) -> usize {
        self.in_use.load(Ordering::Acquire)
    }
}

/// A response body holding its request's permit until the body is sent (or dropped): what a
/// response costs while its client reads it counts against the limit too.
pub(crate) type Holding = KeepUntilSent<Permit>;

impl Keep for Permit {}

impl Drop for Permit {
    fn drop(&mut self) {
        if let Some(slot) = self.slot {
            self.limiter.by_client[slot].fetch_sub(1, Ordering::AcqRel);
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
        assert_eq!(
            limiter.by_client[slot(B.unwrap())].load(Ordering::Acquire),
            0
        );
        assert!(limiter.try_acquire(B).is_ok());
    }

    #[test]
    fn the_addresses_of_one_ipv6_64_share_one_share() {
        let limiter = Limiter::new(8, 2);
        let ip = |text: &str| Some(text.parse::<IpAddr>().unwrap());
        let _one = limiter.try_acquire(ip("2001:db8:7:7::1")).unwrap();
        let _two = limiter.try_acquire(ip("2001:db8:7:7::2")).unwrap();
        assert_eq!(
            limiter.try_acquire(ip("2001:db8:7:7:ffff::3")).unwrap_err(),
            Full::Client
        );
        assert!(limiter.try_acquire(ip("2001:db8:7:8::1")).is_ok());
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
        assert!(
            limiter
                .by_client
                .iter()
                .all(|held| held.load(Ordering::Acquire) == 0)
        );
    }

    #[test]
    fn neighbouring_addresses_get_their_own_counters() {
        // The addresses the tests and a small network use, each with its own share.
        let mut seen = std::collections::HashSet::new();
        for n in 1..=254u8 {
            assert!(seen.insert(slot(IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, n)))));
        }
        let mut spread = std::collections::HashSet::new();
        for n in 0..4096u32 {
            spread.insert(slot(IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + n))));
        }
        assert!(
            spread.len() > 3000,
            "4,096 addresses in {} counters",
            spread.len()
        );
        assert!(slot("::1".parse().unwrap()) < SLOTS);
    }

    #[test]
    fn a_share_of_everything_keeps_no_clients() {
        let limiter = Limiter::new(2, 2);
        let _a = limiter.try_acquire(A).unwrap();
        let _b = limiter.try_acquire(A).unwrap();
        assert_eq!(limiter.try_acquire(B).unwrap_err(), Full::All);
        assert!(
            limiter
                .by_client
                .iter()
                .all(|held| held.load(Ordering::Acquire) == 0)
        );
    }
}
