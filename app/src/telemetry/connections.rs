//! Connections: how many are open and why each one the service closed was closed, for
//! `/status` (`connections`) and `/metrics` (`glassbox_connections_open`,
//! `glassbox_connections_closed_total{reason}`).

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;
use utoipa::ToSchema;

/// Why the service closed a connection (a client closing its own is not counted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Closed {
    /// No request for `--idle-timeout`.
    Idle,
    /// Closed to make room for a new connection at `--max-connections`.
    Evicted,
    /// A request head took longer than `--header-read-timeout`.
    HeaderTimeout,
    /// A response waited for its client longer than `--write-timeout`.
    WriteTimeout,
    /// A new connection over `--max-connections` with none idle to close.
    OverLimit,
    /// A new connection over its client's `--max-connection-rate`, closed before its handshake.
    OverRate,
    /// An HTTP/1 request head over twice `--max-head-bytes`, answered 431 by hyper.
    HeadTooLarge,
    /// An HTTP/1 request head that does not parse, answered 400.
    BadHead,
    /// An HTTP/2 connection ended with a GOAWAY for breaking the protocol: streams reset as
    /// fast as they open, a header block that never ends, a malformed frame.
    ProtocolError,
    /// A new connection accepted and closed at once because the process ran out of file
    /// descriptors.
    NoDescriptors,
}

impl Closed {
    const ALL: [Self; 10] = [
        Self::Idle,
        Self::Evicted,
        Self::HeaderTimeout,
        Self::WriteTimeout,
        Self::OverLimit,
        Self::OverRate,
        Self::HeadTooLarge,
        Self::BadHead,
        Self::ProtocolError,
        Self::NoDescriptors,
    ];

    /// Whether the connection was cut for breaking a bound, or refused for want of room, as
    /// opposed to closed in the course of housekeeping (idle, or evicted to make room).
    fn is_cut(self) -> bool {
        !matches!(self, Self::Idle | Self::Evicted)
    }

    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::Idle => "idle",
            Self::Evicted => "evicted",
            Self::HeaderTimeout => "header_timeout",
            Self::WriteTimeout => "write_timeout",
            Self::OverLimit => "over_limit",
            Self::OverRate => "over_rate",
            Self::HeadTooLarge => "head_too_large",
            Self::BadHead => "bad_head",
            Self::ProtocolError => "protocol_error",
            Self::NoDescriptors => "no_descriptors",
        }
    }
}

/// The counts, kept with atomics.
#[derive(Debug, Default)]
pub struct ConnectionStats {
    open: AtomicU64,
    closed: [AtomicU64; Closed::ALL.len()],
}

/// The `connections` of `/status`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectionSnapshot {
    /// Connections open now (TLS handshakes included).
    pub open: u64,
    /// Connections the service closed, by reason: idle, evicted, header_timeout,
    /// write_timeout, over_limit, over_rate, head_too_large, bad_head, protocol_error,
    /// no_descriptors.
    pub closed_total: std::collections::BTreeMap<&'static str, u64>,
}

impl ConnectionStats {
    pub(crate) fn opened(&self) {
        self.open.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn ended(&self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
    }

    pub(crate) fn closed(&self, why: Closed) {
        self.closed[why as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Connections cut or refused since start: every reason but idle and evicted.
    pub(crate) fn cut_total(&self) -> u64 {
        Closed::ALL
            .iter()
            .filter(|why| why.is_cut())
            .map(|&why| self.closed[why as usize].load(Ordering::Relaxed))
            .sum()
    }

    pub fn snapshot(&self) -> ConnectionSnapshot {
        ConnectionSnapshot {
            open: self.open.load(Ordering::Relaxed),
            closed_total: Closed::ALL
                .iter()
                .map(|&why| {
                    (
                        why.label(),
                        self.closed[why as usize].load(Ordering::Relaxed),
                    )
                })
                .collect(),
        }
    }

    /// Appends the connection families to a Prometheus exposition.
    pub(crate) fn render(&self, out: &mut String) {
        let open = self.open.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "# HELP glassbox_connections_open Client connections open now.\n\
             # TYPE glassbox_connections_open gauge\n\
             glassbox_connections_open {open}\n\
             # HELP glassbox_connections_closed_total Connections the service closed, by reason.\n\
             # TYPE glassbox_connections_closed_total counter"
        );
        for why in Closed::ALL {
            let n = self.closed[why as usize].load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "glassbox_connections_closed_total{{reason=\"{}\"}} {n}",
                why.label()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_reach_status_and_metrics() {
        let stats = ConnectionStats::default();
        stats.opened();
        stats.opened();
        stats.ended();
        stats.closed(Closed::Idle);
        stats.closed(Closed::WriteTimeout);
        stats.closed(Closed::WriteTimeout);
        let snap = stats.snapshot();
        assert_eq!(snap.open, 1);
        assert_eq!(snap.closed_total["idle"], 1);
        assert_eq!(snap.closed_total["write_timeout"], 2);
        assert_eq!(snap.closed_total["over_limit"], 0);
        // Idle is housekeeping; the two write timeouts were cut.
        assert_eq!(stats.cut_total(), 2);
        let mut text = String::new();
        stats.render(&mut text);
        assert!(text.contains("\nglassbox_connections_open 1\n"), "{text}");
        assert!(text.contains("glassbox_connections_closed_total{reason=\"write_timeout\"} 2\n"));
    }
}
