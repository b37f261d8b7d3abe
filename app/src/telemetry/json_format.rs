//! The JSON line format of every log event, written straight into the subscriber's buffer:
//! `{"timestamp":"…Z","level":"INFO","message":"…",<fields>,"target":"…"}`.
//!
//! tracing-subscriber's own JSON formatter allocates a string per displayed field and per
//! timestamp; at tens of thousands of requests per second that was a large share of the
//! service's CPU (see BENCHMARKS.md), so this one formats in place. The access log
//! ([`super::access_log`]) writes the same shape with the helpers here.

use std::cell::Cell;
use std::fmt::{self, Write};
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// Formats events as one JSON object per line.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        writer.write_str("{\"timestamp\":\"")?;
        write_timestamp(&mut writer, SystemTime::now())?;
        write!(writer, "\",\"level\":\"{}\"", meta.level())?;
        let mut fields = Fields {
            writer: &mut writer,
            result: Ok(()),
        };
        event.record(&mut fields);
        fields.result?;
        writer.write_str(",\"target\":")?;
        write_json_str(&mut writer, meta.target())?;
        writer.write_str("}\n")
    }
}

struct Fields<'a, 'w> {
    writer: &'a mut Writer<'w>,
    result: fmt::Result,
}

impl Fields<'_, '_> {
    fn key(&mut self, field: &Field) -> fmt::Result {
        self.writer.write_char(',')?;
        write_json_str(self.writer, field.name())?;
        self.writer.write_char(':')
    }

    fn put(&mut self, field: &Field, value: impl FnOnce(&mut Writer<'_>) -> fmt::Result) {
        if self.result.is_ok() {
            self.result = self.key(field).and_then(|()| value(self.writer));
        }
    }
}

impl Visit for Fields<'_, '_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, |w| write_json_str(w, value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, |w| write_u64(w, value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, |w| write!(w, "{value}"));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, |w| {
            if value.is_finite() {
                write!(w, "{value}")
            } else {
                w.write_str("null")
            }
        });
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, |w| write!(w, "{value}"));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, |w| {
            w.write_char('"')?;
            write!(Escaped(w), "{value:?}")?;
            w.write_char('"')
        });
    }
}

/// Whether `s` has a byte JSON strings must escape. Sixteen bytes at a time, each block tested
/// whole: a test that stops at the first match cannot be vectorised, this one is (callgrind
/// counted about 8 instructions a byte for the short-circuiting form on ids and user agents).
fn needs_escaping(s: &str) -> bool {
    fn special(b: u8) -> bool {
        (b < 0x20) | (b == b'"') | (b == b'\\')
    }
    let mut blocks = s.as_bytes().chunks_exact(16);
    blocks
        .by_ref()
        .any(|block| block.iter().fold(false, |found, &b| found | special(b)))
        || blocks.remainder().iter().any(|&b| special(b))
}

/// Escapes what it is given as the inside of a JSON string.
struct Escaped<'a, W: Write>(&'a mut W);

impl<W: Write> Write for Escaped<'_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        // Almost every value needs no escaping; this scan vectorises, the loop below does not.
        if !needs_escaping(s) {
            return self.0.write_str(s);
        }
        let mut start = 0;
        for (i, b) in s.bytes().enumerate() {
            let escape = match b {
                b'"' => "\\\"",
                b'\\' => "\\\\",
                b'\n' => "\\n",
                b'\r' => "\\r",
                b'\t' => "\\t",
                0..=0x1f => "",
                _ => continue,
            };
            self.0.write_str(&s[start..i])?;
            if escape.is_empty() {
                write!(self.0, "\\u{b:04x}")?;
            } else {
                self.0.write_str(escape)?;
            }
            start = i + 1;
        }
        self.0.write_str(&s[start..])
    }
}

pub(crate) fn write_json_str(w: &mut impl Write, s: &str) -> fmt::Result {
    w.write_char('"')?;
    Escaped(w).write_str(s)?;
    w.write_char('"')
}

/// Decimal digits of `value`, without going through `core::fmt`'s padding machinery.
pub(crate) fn write_u64(w: &mut impl Write, value: u64) -> fmt::Result {
    let mut buf = [0u8; 20];
    w.write_str(std::str::from_utf8(digits(value, &mut buf)).map_err(|_| fmt::Error)?)
}

/// `value` in decimal, in the end of `buf`.
fn digits(mut value: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    &buf[at..]
}

/// Appends `value` in decimal to a byte line.
pub(crate) fn push_u64(out: &mut Vec<u8>, value: u64) {
    let mut buf = [0u8; 20];
    out.extend_from_slice(digits(value, &mut buf));
}

/// Appends `s`, one of the service's own labels (a method, a protocol version, a route
/// template), as a JSON string without looking for what to escape: labels have nothing to.
pub(crate) fn push_json_label(out: &mut Vec<u8>, label: &str) {
    debug_assert!(!needs_escaping(label), "{label:?} is no label");
    out.push(b'"');
    out.extend_from_slice(label.as_bytes());
    out.push(b'"');
}

/// Appends `s` as a JSON string to a byte line.
pub(crate) fn push_json_str(out: &mut Vec<u8>, s: &str) {
    if needs_escaping(s) {
        let _ = write_json_str(&mut ByteLine(out), s);
    } else {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    }
}

/// A byte line as a `fmt::Write`, for the rare values that need escaping or `Display`.
pub(crate) struct ByteLine<'a>(pub(crate) &'a mut Vec<u8>);

impl Write for ByteLine<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// Writes `value` as exactly `width` digits (zero-padded) into `out`.
fn put_digits(out: &mut [u8], mut value: u64) {
    for slot in out.iter_mut().rev() {
        *slot = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

/// RFC 3339 in UTC with microseconds: `2026-11-22T08:56:46.328709Z`.
pub(crate) fn write_timestamp(w: &mut impl Write, now: SystemTime) -> fmt::Result {
    match timestamp(now) {
        Ok(stamp) => w.write_str(std::str::from_utf8(&stamp).map_err(|_| fmt::Error)?),
        Err((year, month, day)) => write!(w, "{year}-{month:02}-{day:02}T00:00:00.000000Z"),
    }
}

/// Appends the [`write_timestamp`] form of `now` to a byte line. The date and time up to the
/// second are kept per thread: lines of the same second only write their microseconds.
pub(crate) fn push_timestamp(out: &mut Vec<u8>, now: SystemTime) {
    thread_local!(static SECOND: Cell<Option<(u64, [u8; 27])>> = const { Cell::new(None) });
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let stamp = match SECOND.get() {
        Some((second, mut stamp)) if second == secs => {
            put_digits(&mut stamp[20..26], u64::from(since.subsec_micros()));
            stamp
        }
        _ => match timestamp(now) {
            Ok(stamp) => {
                SECOND.set(Some((secs, stamp)));
                stamp
            }
            Err(_) => {
                let _ = write_timestamp(&mut ByteLine(out), now);
                return;
            }
        },
    };
    out.extend_from_slice(&stamp);
}

/// The timestamp's 27 bytes, or the date when its year has other than four digits.
fn timestamp(now: SystemTime) -> Result<[u8; 27], (i64, u32, u32)> {
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    if !(0..=9999).contains(&year) {
        return Err((year, month, day));
    }
    let mut buf = *b"0000-00-00T00:00:00.000000Z";
    put_digits(&mut buf[0..4], year as u64);
    put_digits(&mut buf[5..7], u64::from(month));
    put_digits(&mut buf[8..10], u64::from(day));
    put_digits(&mut buf[11..13], rem / 3600);
    put_digits(&mut buf[14..16], rem / 60 % 60);
    put_digits(&mut buf[17..19], rem % 60);
    put_digits(&mut buf[20..26], u64::from(since.subsec_micros()));
    Ok(buf)
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps_match_the_time_crate() {
        for secs in [
            0u64,
            951_782_400,
            1_700_000_000,
            1_798_761_599,
            4_102_444_800,
            1_709_164_800,
        ] {
            let at = UNIX_EPOCH + Duration::new(secs, 123_456_789);
            let mut ours = String::new();
            write_timestamp(&mut ours, at).unwrap();
            let theirs = time::OffsetDateTime::from(at);
            let expected = format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.123456Z",
                theirs.year(),
                theirs.month() as u8,
                theirs.day(),
                theirs.hour(),
                theirs.minute(),
                theirs.second()
            );
            assert_eq!(ours, expected);
        }
    }

    #[test]
    fn pushed_timestamps_are_right_within_a_second_and_across_seconds() {
        // The same second twice (the second from the thread's cache), the next one, an earlier
        // one, and a year with five digits (not cached).
        for (secs, micros) in [
            (1_700_000_000, 5),
            (1_700_000_000, 999_999),
            (1_700_000_001, 0),
            (1_699_999_999, 42),
            (1_700_000_001, 7),
            (253_402_300_800, 1),
            (1_700_000_001, 8),
        ] {
            let at = UNIX_EPOCH + Duration::new(secs, micros * 1000);
            let mut written = String::new();
            write_timestamp(&mut written, at).unwrap();
            let mut pushed = b"x".to_vec();
            push_timestamp(&mut pushed, at);
            assert_eq!(
                pushed,
                [b"x", written.as_bytes()].concat(),
                "{secs}.{micros}"
            );
        }
    }

    #[test]
    fn integers_are_written_in_decimal() {
        for value in [0u64, 7, 10, 99, 1_000_000, u64::MAX] {
            let mut out = String::new();
            write_u64(&mut out, value).unwrap();
            assert_eq!(out, value.to_string());
        }
    }

    #[test]
    fn strings_are_escaped_into_valid_json() {
        let nasty = "quote\" back\\ nl\n tab\t nul\u{0} bell\u{7} é ✓";
        let mut out = String::new();
        write_json_str(&mut out, nasty).unwrap();
        let parsed: String = serde_json::from_str(&out).unwrap();
        assert_eq!(parsed, nasty);
    }

    #[test]
    fn a_byte_to_escape_is_found_wherever_it_is() {
        // In a sixteen-byte block or in the remainder after the blocks, first, last or between.
        for len in 0..40 {
            let plain = "a".repeat(len);
            assert!(!needs_escaping(&plain), "{len} plain bytes");
            for at in 0..len {
                for special in ['"', '\\', '\n', '\u{0}', '\u{1f}'] {
                    let mut s = plain.clone();
                    s.replace_range(at..=at, &special.to_string());
                    assert!(needs_escaping(&s), "{special:?} at {at} of {len}");
                    let mut out = Vec::new();
                    push_json_str(&mut out, &s);
                    let parsed: String = serde_json::from_slice(&out).unwrap();
                    assert_eq!(parsed, s);
                }
            }
        }
        assert!(
            !needs_escaping("é ✓ \u{7f} ~"),
            "only controls, quotes and backslashes"
        );
    }

    #[test]
    fn events_are_one_json_object_per_line() {
        use std::sync::{Arc, Mutex};
        #[derive(Clone, Default)]
        struct Buf(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Buf {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buf = Buf::default();
        let sink = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .event_format(JsonLines)
            .with_writer(move || sink.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(
                target: "glassbox::access",
                status = 404u64,
                latency_ms = 0.125,
                ok = false,
                delta = -3i64,
                path = "/a\"b",
                addr = %"127.0.0.1:1",
                nan = f64::NAN,
                "request {}", 1
            );
        });
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert!(text.ends_with("}\n") && text.lines().count() == 1, "{text}");
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["level"], "WARN");
        assert_eq!(v["message"], "request 1");
        assert_eq!(v["status"], 404);
        assert_eq!(v["latency_ms"], 0.125);
        assert_eq!(v["ok"], false);
        assert_eq!(v["delta"], -3);
        assert_eq!(v["path"], "/a\"b");
        assert_eq!(v["addr"], "127.0.0.1:1");
        assert!(v["nan"].is_null());
        assert_eq!(v["target"], "glassbox::access");
        assert!(v["timestamp"].as_str().unwrap().ends_with('Z'));
    }
}
