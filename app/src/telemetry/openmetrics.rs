//! The OpenMetrics exposition, for scrapers that ask for it (`Accept:
//! application/openmetrics-text`, as Prometheus does): the same families as the classic text
//! format, written the way OpenMetrics 1.0 wants them, and the request-duration histogram's
//! buckets carrying an exemplar each, the `request_id` of a recent request that fell in them.
//!
//! The classic format stays byte for byte what it was; this module rewrites it rather than
//! rendering twice: counters lose `_total` in their metadata (the family is `x`, the sample
//! `x_total`), `"` is escaped in help texts, blank lines go, `# EOF` ends it, and bucket lines
//! of [`REQUEST_DURATION`](super::metrics::REQUEST_DURATION) gain ` # {request_id="…"} value
//! timestamp`.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, TryLockError};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::http::HeaderValue;

use super::sharded::bucket_of;

/// The content type of an OpenMetrics answer.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// The content type of the classic text format.
pub const CLASSIC_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Whether a scraper's `Accept` header asks for OpenMetrics (and does not refuse it with
/// `q=0`).
pub fn wanted(accept: Option<&HeaderValue>) -> bool {
    let Some(accept) = accept.and_then(|v| v.to_str().ok()) else {
        return false;
    };
    accept.split(',').any(|range| {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or_default();
        let refused = parts.any(|p| {
            p.strip_prefix("q=")
                .and_then(|q| q.parse::<f64>().ok())
                .is_some_and(|q| q <= 0.0)
        });
        media.eq_ignore_ascii_case("application/openmetrics-text") && !refused
    })
}

/// The exemplar of one bucket: a request that fell in it, of the latest second one did.
#[derive(Debug, Clone)]
pub struct Exemplar {
    pub request_id: HeaderValue,
    /// Its duration, seconds.
    pub value: f64,
    /// When its request ended, seconds since the Unix epoch.
    pub timestamp: f64,
}

/// One exemplar slot per bucket of a histogram (the last slot is `+Inf`).
#[derive(Debug)]
pub struct Exemplars {
    bounds: &'static [f64],
    slots: Box<[Slot]>,
}

#[derive(Debug, Default)]
struct Slot {
    /// The whole second (since the Unix epoch) its exemplar's request ended in, plus one; 0
    /// while it has none. Read without the lock, so a busy bucket is passed over cheaply.
    second: AtomicU64,
    exemplar: Mutex<Option<Exemplar>>,
}

impl Exemplars {
    pub fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            slots: (0..=bounds.len()).map(|_| Slot::default()).collect(),
        }
    }

    /// Keeps `request_id`, of a request that ended `at`, as the exemplar of `bucket` (the
    /// index of the bucket `seconds` falls in, the first whose bound it does not exceed, as
    /// the histogram it goes with has already found), unless the bucket already has one from
    /// the same second: a scrape comes seconds apart, so a newer one would only be thrown away
    /// unseen, and a bucket hit by thousands of requests a second changes its exemplar once.
    /// When another request is putting its own into the same bucket at that moment, this one
    /// is left out: either is a true example of the bucket, and no request waits for another's
    /// exemplar.
    pub(crate) fn record(
        &self,
        bucket: usize,
        seconds: f64,
        request_id: &HeaderValue,
        at: SystemTime,
    ) {
        debug_assert_eq!(bucket, bucket_of(self.bounds, seconds));
        let slot = &self.slots[bucket.min(self.bounds.len())];
        let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
        let second = since.as_secs() + 1;
        if slot.second.load(Ordering::Relaxed) == second {
            return;
        }
        let mut kept = match slot.exemplar.try_lock() {
            Ok(kept) => kept,
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(TryLockError::WouldBlock) => return,
        };
        let before = kept.replace(Exemplar {
            request_id: request_id.clone(),
            value: seconds,
            timestamp: since.as_secs_f64(),
        });
        slot.second.store(second, Ordering::Relaxed);
        drop(kept);
        // The one it replaces is freed outside the lock.
        drop(before);
    }

    /// The exemplar of the bucket whose upper bound is `le` (`+Inf` for the last).
    pub fn get(&self, le: &str) -> Option<Exemplar> {
        let index = if le == "+Inf" {
            self.bounds.len()
        } else {
            let le: f64 = le.parse().ok()?;
            self.bounds.iter().position(|b| *b == le)?
        };
        self.slots[index]
            .exemplar
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// The labels of a sample line, `name{a="x",b="y"} value`, unescaped; `None` when the line
/// has none or they do not parse.
pub fn labels(line: &str) -> Option<Vec<(&str, String)>> {
    let start = line.find('{')?;
    let mut rest = &line[start + 1..];
    let mut out = Vec::new();
    loop {
        if let Some(after) = rest.strip_prefix('}') {
            return after.starts_with(' ').then_some(out);
        }
        let eq = rest.find("=\"")?;
        let name = rest[..eq].trim_start_matches(',');
        let mut value = String::new();
        let mut chars = rest[eq + 2..].char_indices();
        let end = loop {
            match chars.next()? {
                (i, '"') => break i,
                (_, '\\') => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                (_, c) => value.push(c),
            }
        };
        out.push((name, value));
        rest = &rest[eq + 2 + end + 1..];
    }
}

/// Rewrites the classic exposition `text` as OpenMetrics; `exemplar` gives the exemplar of a
/// sample line of `histogram`'s buckets, from its labels.
pub fn from_classic(
    text: &str,
    histogram: &str,
    exemplar: impl Fn(&[(&str, String)]) -> Option<Exemplar>,
) -> String {
    let counters: HashSet<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let bucket = format!("{histogram}_bucket{{");
    let mut out = String::with_capacity(text.len() + text.len() / 4);
    for line in text.lines() {
        if line.is_empty() {
            continue;
        }
        if let Some(meta) = line
            .strip_prefix("# HELP ")
            .map(|m| ("HELP", m))
            .or_else(|| line.strip_prefix("# TYPE ").map(|m| ("TYPE", m)))
        {
            let (kind, rest) = meta;
            let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
            let family = if counters.contains(name) {
                name.strip_suffix("_total").unwrap_or(name)
            } else {
                name
            };
            let tail = if kind == "HELP" {
                escape_quotes(tail)
            } else {
                tail.to_owned()
            };
            let _ = writeln!(out, "# {kind} {family} {tail}");
            continue;
        }
        out.push_str(line);
        if line.starts_with(&bucket)
            && let Some(e) = labels(line).and_then(|l| exemplar(&l))
            && let Ok(id) = e.request_id.to_str()
        {
            let _ = write!(
                out,
                " # {{request_id=\"{id}\"}} {} {:.3}",
                e.value, e.timestamp
            );
        }
        out.push('\n');
    }
    out.push_str("# EOF\n");
    out
}

/// Escapes the `"` a classic help text leaves alone (its `\\` and `\n` are already escaped).
fn escape_quotes(help: &str) -> String {
    help.replace('"', "\\\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLASSIC: &str = "# HELP x_total Things, \"quoted\".\n# TYPE x_total counter\n\
        x_total{a=\"1\"} 3\n\n# TYPE h_seconds histogram\n\
        h_seconds_bucket{route=\"/a\",le=\"0.1\"} 1\nh_seconds_bucket{route=\"/a\",le=\"+Inf\"} 2\n\
        h_seconds_sum{route=\"/a\"} 0.5\nh_seconds_count{route=\"/a\"} 2\n\n\
        # TYPE g gauge\ng 1\n";

    #[test]
    fn openmetrics_is_asked_for_by_media_type_and_not_refused() {
        let ask = |v: &'static str| wanted(Some(&HeaderValue::from_static(v)));
        assert!(ask(
            "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
        ));
        assert!(ask("Application/OpenMetrics-Text"));
        assert!(!ask("text/plain"));
        assert!(!ask("application/openmetrics-text;q=0"));
        assert!(!wanted(None));
    }

    #[test]
    fn labels_parse_with_escapes() {
        let l = labels(r#"m{a="x",b="say \"hi\"\\n",c="{n}"} 1"#).unwrap();
        assert_eq!(
            l,
            [
                ("a", "x".to_owned()),
                ("b", "say \"hi\"\\n".to_owned()),
                ("c", "{n}".to_owned())
            ]
        );
        assert_eq!(labels("m 1"), None);
        assert_eq!(labels(r#"m{a="x} 1"#), None);
    }

    #[test]
    fn the_classic_text_becomes_openmetrics_with_exemplars_on_the_buckets() {
        let exemplars = Exemplars::new(&[0.1]);
        record(
            &exemplars,
            0.05,
            &HeaderValue::from_static("abc"),
            SystemTime::now(),
        );
        let out = from_classic(CLASSIC, "h_seconds", |labels| {
            assert_eq!(labels[0], ("route", "/a".to_owned()));
            exemplars.get(&labels.iter().find(|(n, _)| *n == "le")?.1)
        });
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], r#"# HELP x Things, \"quoted\"."#);
        assert_eq!(lines[1], "# TYPE x counter");
        assert_eq!(lines[2], r#"x_total{a="1"} 3"#);
        assert!(
            lines[4].starts_with(
                r#"h_seconds_bucket{route="/a",le="0.1"} 1 # {request_id="abc"} 0.05 "#
            ),
            "{out}"
        );
        assert_eq!(lines[5], r#"h_seconds_bucket{route="/a",le="+Inf"} 2"#);
        assert!(!out.contains("\n\n"));
        assert!(out.ends_with("g 1\n# EOF\n"), "{out}");
    }

    /// [`Exemplars::record`], finding the bucket as the request histograms do.
    fn record(exemplars: &Exemplars, seconds: f64, request_id: &HeaderValue, at: SystemTime) {
        let bucket = bucket_of(exemplars.bounds, seconds);
        exemplars.record(bucket, seconds, request_id, at);
    }

    /// `ms` milliseconds after a whole second of the Unix epoch.
    fn at(ms: u64) -> SystemTime {
        UNIX_EPOCH + std::time::Duration::from_millis(1_700_000_000_000 + ms)
    }

    #[test]
    fn each_bucket_keeps_a_request_that_fell_in_it() {
        let exemplars = Exemplars::new(&[0.001, 0.01]);
        record(&exemplars, 0.001, &HeaderValue::from_static("b"), at(0));
        record(&exemplars, 0.005, &HeaderValue::from_static("c"), at(0));
        record(&exemplars, 5.0, &HeaderValue::from_static("d"), at(0));
        let id = |le| exemplars.get(le).map(|e| e.request_id);
        assert_eq!(id("0.001").unwrap(), "b", "le is inclusive");
        assert_eq!(id("0.01").unwrap(), "c");
        assert_eq!(id("+Inf").unwrap(), "d");
        assert_eq!(id("0.5"), None, "no such bucket");
    }

    #[test]
    fn a_bucket_takes_a_new_exemplar_once_a_second() {
        let exemplars = Exemplars::new(&[0.1]);
        let id = || exemplars.get("0.1").unwrap().request_id;
        record(&exemplars, 0.05, &HeaderValue::from_static("a"), at(250));
        record(&exemplars, 0.06, &HeaderValue::from_static("b"), at(999));
        assert_eq!(id(), "a", "the same second keeps the first");
        record(&exemplars, 0.07, &HeaderValue::from_static("c"), at(1_000));
        assert_eq!(id(), "c", "the next second replaces it");
        record(&exemplars, 0.08, &HeaderValue::from_static("d"), at(500));
        assert_eq!(id(), "d", "a clock set back replaces it too");
    }

    #[test]
    fn an_exemplar_carries_when_its_request_ended_and_a_busy_bucket_keeps_its_own() {
        let exemplars = Exemplars::new(&[0.1]);
        record(&exemplars, 0.05, &HeaderValue::from_static("a"), at(250));
        let kept = exemplars.get("0.1").unwrap();
        assert_eq!(
            (kept.request_id, kept.value, kept.timestamp),
            ("a".try_into().unwrap(), 0.05, 1_700_000_000.25)
        );
        let busy = exemplars.slots[0].exemplar.lock().unwrap();
        record(&exemplars, 0.06, &HeaderValue::from_static("b"), at(1_250));
        drop(busy);
        assert_eq!(
            exemplars.get("0.1").unwrap().request_id,
            "a",
            "left out while busy"
        );
        record(&exemplars, 0.07, &HeaderValue::from_static("c"), at(1_500));
        assert_eq!(exemplars.get("0.1").unwrap().request_id, "c");
    }
}
