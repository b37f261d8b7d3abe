//! How fast one client may open connections (`--max-connection-rate`): each TLS handshake costs
//! the service far more CPU than its client, so an address opening connections as fast as it
//! can would take the cores from everyone else. Every client address (for IPv6, its /64) has a
//! token bucket holding one second's worth of connections; a connection that finds it empty is
//! closed before its handshake. Connections from `--trusted-proxies` are not counted: a proxy's
//! connections carry many clients.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

use ipnet::IpNet;

use crate::forwarded;

/// Buckets kept before the full ones are dropped: a full bucket is what a new client gets.
const PRUNE_ABOVE: usize = 4096;

/// The rate each client address may open connections at.
#[derive(Debug)]
pub(crate) struct Arrivals {
    /// Connections a second, and the most a bucket holds; 0 means no limit.
    per_second: u32,
    trusted: Vec<IpNet>,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Arrivals {
    pub(crate) fn new(per_second: u32, trusted: Vec<IpNet>) -> Self {
        Self {
            per_second,
            trusted,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Whether a connection from `peer` may be served now; takes one token if so.
    pub(crate) fn admit(&self, peer: IpAddr) -> bool {
        self.admit_at(peer, Instant::now())
    }

    fn admit_at(&self, peer: IpAddr, now: Instant) -> bool {
        if self.per_second == 0 || self.trusted.iter().any(|net| net.contains(&peer)) {
            return true;
        }
        let rate = f64::from(self.per_second);
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() >= PRUNE_ABOVE {
            // A bucket untouched for a second is full again: the same as none.
            buckets.retain(|_, b| now.saturating_duration_since(b.at).as_secs_f64() < 1.0);
        }
        let bucket = buckets.entry(forwarded::client_of(peer)).or_insert(Bucket {
            tokens: rate,
            at: now,
        });
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(rate);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn a_client_gets_a_second_s_worth_at_once_then_the_rate() {
        let arrivals = Arrivals::new(10, Vec::new());
        let start = Instant::now();
        let admitted = (0..25)
            .filter(|_| arrivals.admit_at(ip("192.0.2.1"), start))
            .count();
        assert_eq!(admitted, 10, "the bucket's ten");
        assert!(arrivals.admit_at(ip("192.0.2.2"), start), "another client");
        let later = start + Duration::from_millis(500);
        let admitted = (0..25)
            .filter(|_| arrivals.admit_at(ip("192.0.2.1"), later))
            .count();
        assert_eq!(admitted, 5, "half a second at ten a second");
        let much_later = start + Duration::from_secs(60);
        let admitted = (0..25)
            .filter(|_| arrivals.admit_at(ip("192.0.2.1"), much_later))
            .count();
        assert_eq!(admitted, 10, "a bucket holds one second's worth, no more");
    }

    #[test]
    fn an_ipv6_client_is_its_64_and_proxies_and_zero_are_not_limited() {
        let arrivals = Arrivals::new(2, vec!["10.0.0.0/8".parse().unwrap()]);
        let now = Instant::now();
        assert!(arrivals.admit_at(ip("2001:db8:1:2::1"), now));
        assert!(arrivals.admit_at(ip("2001:db8:1:2::ffff"), now));
        assert!(
            !arrivals.admit_at(ip("2001:db8:1:2:3::9"), now),
            "the same /64"
        );
        assert!(
            arrivals.admit_at(ip("2001:db8:1:3::1"), now),
            "the next /64"
        );
        assert!(
            (0..100).all(|_| arrivals.admit_at(ip("10.1.2.3"), now)),
            "a proxy"
        );
        let unlimited = Arrivals::new(0, Vec::new());
        assert!((0..100).all(|_| unlimited.admit_at(ip("192.0.2.1"), now)));
    }

    #[test]
    fn full_buckets_are_dropped_when_there_are_many() {
        let arrivals = Arrivals::new(5, Vec::new());
        let start = Instant::now();
        for n in 0..PRUNE_ABOVE as u32 {
            assert!(arrivals.admit_at(IpAddr::from((0x0a00_0000 + n).to_be_bytes()), start));
        }
        let later = start + Duration::from_secs(2);
        assert!(arrivals.admit_at(ip("192.0.2.1"), later));
        let buckets = arrivals.buckets.lock().unwrap();
        assert_eq!(buckets.len(), 1, "only the newest");
    }
}
