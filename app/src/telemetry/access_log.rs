//! The access log: one JSON line per request, in the same shape as every other log line
//! (`timestamp`, `level`, `message`, fields, `target`), written straight to the log writer.
//!
//! It honours the log filter (`--log-level`) like any tracing event, but skips tracing's
//! per-field visitor: measured with callgrind, formatting the line through a tracing event cost
//! about 9,700 instructions a request, more than the whole TLS hello-world reference spends on
//! one (see BENCHMARKS.md). Formatted here it costs a fraction of that.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::OnceLock;
use std::time::SystemTime;

use tracing::Level;

use super::RequestInfo;
use super::json_format::{ByteLine, push_json_label, push_json_str, push_timestamp, push_u64};
use super::log_writer::BatchWriter;
use super::redact;
use crate::error::ErrorCause;

/// The target access lines carry, for filters (`glassbox::access=warn`) and queries.
pub(crate) const TARGET: &str = "glassbox::access";

static SINK: OnceLock<Sink> = OnceLock::new();

/// Where access lines go, and which of their levels the log filter lets through.
#[derive(Debug)]
struct Sink {
    writer: BatchWriter,
    /// Whether lines at error, warn and info pass the filter.
    error: bool,
    warn: bool,
    info: bool,
}

/// Sends access lines to `writer` (the one the log subscriber writes to), at the levels the
/// global subscriber's filter lets through. Call it once that subscriber is installed: the
/// filter is asked here, once, not on every request (it does not change while the process
/// runs, and asking cost about 250 instructions a request). Until this is called, as in tests
/// that build the router in-process, no access lines are written.
pub(crate) fn install(writer: BatchWriter) {
    let _ = SINK.set(Sink {
        writer,
        error: tracing::enabled!(target: TARGET, Level::ERROR),
        warn: tracing::enabled!(target: TARGET, Level::WARN),
        info: tracing::enabled!(target: TARGET, Level::INFO),
    });
}

/// Logs one request that ended `now`: info below 400, warn for 4xx, error for 5xx; a failed
/// request's line says why in `error`.
pub(crate) fn write(
    info: &RequestInfo,
    now: SystemTime,
    status: u16,
    micros: u64,
    bytes: u64,
    cause: Option<&ErrorCause>,
) {
    let Some(sink) = SINK.get() else {
        return;
    };
    let (level, enabled) = match status {
        500.. => (Level::ERROR, sink.error),
        400..=499 => (Level::WARN, sink.warn),
        _ => (Level::INFO, sink.info),
    };
    if !enabled {
        return;
    }
    thread_local!(static LINE: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(512)));
    LINE.with(|line| {
        let mut line = line.borrow_mut();
        line.clear();
        let outcome = Outcome {
            status,
            micros,
            bytes,
            cause,
        };
        format(&mut line, now, level, info, &outcome);
        let _ = sink.writer.line_writer().write_all(&line);
    });
}

/// How a request ended.
#[derive(Debug)]
struct Outcome<'a> {
    status: u16,
    micros: u64,
    bytes: u64,
    cause: Option<&'a ErrorCause>,
}

/// The line, as bytes: numbers and strings are copied in without a UTF-8 check each.
fn format(
    out: &mut Vec<u8>,
    now: SystemTime,
    level: Level,
    info: &RequestInfo,
    outcome: &Outcome<'_>,
) {
    out.extend_from_slice(b"{\"timestamp\":\"");
    push_timestamp(out, now);
    out.extend_from_slice(b"\",\"level\":\"");
    out.extend_from_slice(level.as_str().as_bytes());
    out.extend_from_slice(b"\",\"message\":\"request\",\"method\":");
    push_json_label(out, info.method);
    out.extend_from_slice(b",\"route\":");
    push_json_label(out, info.route());
    out.extend_from_slice(b",\"path\":");
    push_json_str(out, &redact::path(info.matched, info.path()));
    out.extend_from_slice(b",\"version\":");
    push_json_label(out, info.version);
    out.extend_from_slice(b",\"status\":");
    push_u64(out, u64::from(outcome.status));
    out.extend_from_slice(b",\"latency_ms\":");
    push_millis(out, outcome.micros);
    out.extend_from_slice(b",\"bytes\":");
    push_u64(out, outcome.bytes);
    if let Some(cause) = outcome.cause {
        out.extend_from_slice(b",\"error\":");
        push_json_str(out, &redact::bounded(&cause.0, redact::MAX_ERROR_BYTES));
    }
    out.extend_from_slice(b",\"request_id\":");
    push_json_str(out, info.request_id());
    match (info.forwarded_for, info.client_addr) {
        (Some(client), proxy) => {
            let _ = write!(ByteLine(out), ",\"client_addr\":\"{client}\"");
            if let Some(proxy) = proxy {
                out.extend_from_slice(b",\"proxy_addr\":\"");
                push_addr(out, proxy);
                out.push(b'"');
            }
        }
        (None, Some(addr)) => {
            out.extend_from_slice(b",\"client_addr\":\"");
            push_addr(out, addr);
            out.push(b'"');
        }
        (None, None) => {}
    }
    out.extend_from_slice(b",\"user_agent\":");
    push_json_str(
        out,
        &redact::bounded(info.user_agent(), redact::MAX_USER_AGENT_BYTES),
    );
    out.extend_from_slice(b",\"target\":\"");
    out.extend_from_slice(TARGET.as_bytes());
    out.extend_from_slice(b"\"}\n");
}

/// `a.b.c.d:port` without the formatting machinery: the address and its colon go into the line
/// in one copy (at most 16 bytes), then the port; IPv6 through `Display`.
fn push_addr(out: &mut Vec<u8>, addr: std::net::SocketAddr) {
    match addr {
        std::net::SocketAddr::V4(v4) => {
            let mut text = [0u8; 16];
            let mut at = 0;
            let [a, b, c, d] = v4.ip().octets();
            for (octet, after) in [(a, b'.'), (b, b'.'), (c, b'.'), (d, b':')] {
                // Three bytes always go in; the next write covers those past the octet's own.
                let (digits, len) = OCTETS[usize::from(octet)];
                text[at..at + 3].copy_from_slice(&digits);
                at += usize::from(len);
                text[at] = after;
                at += 1;
            }
            out.extend_from_slice(&text[..at]);
            push_u64(out, u64::from(v4.port()));
        }
        std::net::SocketAddr::V6(_) => {
            let _ = write!(ByteLine(out), "{addr}");
        }
    }
}

/// Every octet's decimal digits and how many there are: an address is four lookups.
const OCTETS: [([u8; 3], u8); 256] = {
    let mut table = [([0u8; 3], 0u8); 256];
    let mut n = 0;
    while n < 256 {
        let (h, t, o) = ((n / 100) as u8, (n / 10 % 10) as u8, (n % 10) as u8);
        table[n] = match n {
            0..=9 => ([b'0' + o, 0, 0], 1),
            10..=99 => ([b'0' + t, b'0' + o, 0], 2),
            _ => ([b'0' + h, b'0' + t, b'0' + o], 3),
        };
        n += 1;
    }
    table
};

/// Microseconds as a JSON number of milliseconds (`177` → `0.177`, `5000` → `5`), the same
/// number `micros as f64 / 1000.0` is, without float formatting.
fn push_millis(out: &mut Vec<u8>, micros: u64) {
    push_u64(out, micros / 1000);
    let frac = micros % 1000;
    if frac != 0 {
        let digits = [
            b'0' + (frac / 100) as u8,
            b'0' + (frac / 10 % 10) as u8,
            b'0' + (frac % 10) as u8,
        ];
        let keep = if frac.is_multiple_of(100) {
            1
        } else if frac.is_multiple_of(10) {
            2
        } else {
            3
        };
        out.push(b'.');
        out.extend_from_slice(&digits[..keep]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn info() -> RequestInfo {
        RequestInfo {
            method: "GET",
            matched: None,
            uri: "/sleep/5?x=1".parse().unwrap(),
            version: "HTTP/2",
            request_id: HeaderValue::from_static("abc-1"),
            client_addr: Some("127.0.0.1:4000".parse().unwrap()),
            forwarded_for: None,
            user_agent: Some(HeaderValue::from_static("curl/8 \"quoted\"")),
        }
    }

    #[test]
    fn a_line_is_one_json_object_with_every_field() {
        let mut line = Vec::new();
        let now = SystemTime::UNIX_EPOCH + std::time::Duration::from_micros(1_700_000_000_123_456);
        let outcome = Outcome {
            status: 404,
            micros: 1_234,
            bytes: 21,
            cause: None,
        };
        format(&mut line, now, Level::WARN, &info(), &outcome);
        let line = String::from_utf8(line).unwrap();
        assert!(line.ends_with("}\n") && line.matches('\n').count() == 1);
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["timestamp"], "2023-11-14T22:13:20.123456Z");
        assert_eq!(v["level"], "WARN");
        assert_eq!(v["message"], "request");
        assert_eq!(v["method"], "GET");
        assert_eq!(v["route"], "unmatched");
        assert_eq!(v["path"], "/sleep/5");
        assert_eq!(v["version"], "HTTP/2");
        assert_eq!(v["status"], 404);
        assert_eq!(v["latency_ms"], 1.234);
        assert_eq!(v["bytes"], 21);
        assert_eq!(v["request_id"], "abc-1");
        assert_eq!(v["client_addr"], "127.0.0.1:4000");
        assert_eq!(v["user_agent"], "curl/8 \"quoted\"");
        assert_eq!(v["target"], TARGET);
        assert!(v.get("error").is_none(), "no cause, no field");
    }

    #[test]
    fn a_failed_request_says_why_on_its_own_line() {
        let cause = ErrorCause("store unavailable: redis put: connection: \"refused\"".into());
        let outcome = Outcome {
            status: 503,
            micros: 1,
            bytes: 31,
            cause: Some(&cause),
        };
        let mut line = Vec::new();
        format(
            &mut line,
            SystemTime::now(),
            Level::ERROR,
            &info(),
            &outcome,
        );
        let v: serde_json::Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(v["error"], cause.0.as_str());
        assert_eq!(v["request_id"], "abc-1");
    }

    #[test]
    fn behind_a_trusted_proxy_the_client_is_the_forwarded_address() {
        let mut line = Vec::new();
        let info = RequestInfo {
            forwarded_for: Some("203.0.113.7".parse().unwrap()),
            ..info()
        };
        let outcome = Outcome {
            status: 200,
            micros: 1,
            bytes: 1,
            cause: None,
        };
        format(&mut line, SystemTime::now(), Level::INFO, &info, &outcome);
        let v: serde_json::Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(v["client_addr"], "203.0.113.7");
        assert_eq!(v["proxy_addr"], "127.0.0.1:4000");
    }

    #[test]
    fn addresses_print_as_display_does() {
        for addr in [
            "127.0.0.1:4000",
            "10.0.0.255:1",
            "0.0.0.0:0",
            "255.255.255.255:65535",
            "1.20.100.9:10000",
            "[::1]:8443",
            "[fe80::1%2]:9",
        ] {
            let addr: std::net::SocketAddr = addr.parse().unwrap();
            let mut out = Vec::new();
            push_addr(&mut out, addr);
            assert_eq!(String::from_utf8(out).unwrap(), addr.to_string());
        }
    }

    #[test]
    fn milliseconds_are_the_same_number_as_float_division() {
        for micros in [
            0u64,
            1,
            10,
            100,
            177,
            999,
            1000,
            1001,
            1010,
            1100,
            5000,
            123_456_789,
            u64::MAX,
        ] {
            let mut out = Vec::new();
            push_millis(&mut out, micros);
            let out = String::from_utf8(out).unwrap();
            let parsed: f64 = out.parse().unwrap();
            assert_eq!(parsed, micros as f64 / 1000.0, "{micros} -> {out}");
            if micros < 1 << 53 {
                // Where floats are exact, it is also the text a float would print.
                let float = (micros as f64 / 1000.0).to_string();
                assert_eq!(out, float.trim_end_matches(".0"), "{micros}");
            }
        }
    }
}
