//! The most recent log lines, in memory, for the dashboard's log panel and `GET /logs`.
//!
//! The ring is one more sink of the batching log writer: it sees exactly the lines stdout and
//! the log file get, after the log filter, on the writer's own thread (never on a request's).
//! It keeps each batch as it came, one copy, and where each line of it is; when full, the
//! oldest line goes. A busy service turns the ring over many times a second and a reader asks
//! for a few lines now and then, so a line is only read when a query reaches it: its level,
//! route and status are found then, by a scan for their keys rather than a JSON parse (the
//! lines are glassbox's own, one object each, so a key followed by `":` cannot be inside a
//! string value). Reading every line on arrival cost the log thread about 1,500 instructions
//! a request (callgrind, BENCHMARKS.md).

use std::collections::VecDeque;
use std::io::Write;
use std::sync::{Arc, LazyLock, Mutex};

use memchr::memmem::Finder;

/// Lines the process-wide ring keeps.
pub(crate) const CAPACITY: usize = 2000;
/// Longer lines are not kept (the file still has them).
const MAX_LINE: usize = 16 * 1024;

static GLOBAL: LazyLock<Arc<LogRing>> = LazyLock::new(|| Arc::new(LogRing::new(CAPACITY)));

/// Log severity, ordered from least to most severe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Level {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

impl Level {
    pub(crate) const NAMES: &str = "trace, debug, info, warn, error";

    /// Parses a level name as `/logs` takes it: lowercase.
    pub(crate) fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "trace" => Self::Trace,
            "debug" => Self::Debug,
            "info" => Self::Info,
            "warn" => Self::Warn,
            "error" => Self::Error,
            _ => return None,
        })
    }

    /// Parses the level of a log line (`INFO`).
    fn of_line(name: &str) -> Option<Self> {
        Some(match name {
            "TRACE" => Self::Trace,
            "DEBUG" => Self::Debug,
            "INFO" => Self::Info,
            "WARN" => Self::Warn,
            "ERROR" => Self::Error,
            _ => return None,
        })
    }
}

/// One kept line.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    /// Increases by one per line, from 1: a client asks for what came after the last it saw.
    /// (Lines a busy batch pushed out before they were kept still take a number.)
    pub seq: u64,
    pub level: Level,
    /// Where the route template is in `line`.
    route: Option<(u32, u32)>,
    pub status: Option<u16>,
    /// The line as written, one JSON object.
    pub line: String,
}

impl Entry {
    /// The line's route template, if it has one.
    pub(crate) fn route(&self) -> Option<&str> {
        let (start, len) = self.route?;
        self.line.get(start as usize..(start + len) as usize)
    }
}

/// A status filter: one code (`404`) or a class (`5xx`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StatusFilter {
    Code(u16),
    Class(u16),
}

impl StatusFilter {
    pub(crate) fn parse(text: &str) -> Option<Self> {
        let t = text.to_ascii_lowercase();
        if let Some(class) = t.strip_suffix("xx") {
            return match class.parse::<u16>() {
                Ok(c @ 1..=5) if class.len() == 1 => Some(Self::Class(c)),
                _ => None,
            };
        }
        match t.parse::<u16>() {
            Ok(code @ 100..=599) if t.len() == 3 => Some(Self::Code(code)),
            _ => None,
        }
    }

    fn matches(self, status: u16) -> bool {
        match self {
            Self::Code(code) => status == code,
            Self::Class(class) => status / 100 == class,
        }
    }
}

/// Which lines a query wants.
#[derive(Debug, Clone, Default)]
pub(crate) struct Query {
    /// This level and more severe.
    pub level: Option<Level>,
    /// Exactly this route template (`unmatched` included).
    pub route: Option<String>,
    pub status: Option<StatusFilter>,
    /// Only the lines of this request (`request_id`).
    pub request_id: Option<String>,
    /// Only lines after this sequence number.
    pub since: Option<u64>,
    /// At most this many, the newest.
    pub limit: usize,
}

impl Query {
    fn matches(&self, entry: &Entry) -> bool {
        self.since.is_none_or(|since| entry.seq > since)
            && self.level.is_none_or(|level| entry.level >= level)
            && self
                .route
                .as_deref()
                .is_none_or(|route| entry.route() == Some(route))
            && self
                .status
                .is_none_or(|filter| entry.status.is_some_and(|s| filter.matches(s)))
            && self.request_id.as_deref().is_none_or(|id| {
                string_field(&entry.line, &REQUEST_ID)
                    .is_some_and(|(start, len)| &entry.line[start..start + len] == id)
            })
    }
}

/// A batch as the log writer handed it over, and where its lines are. It is let go when its
/// last line is pushed out, so besides its `capacity` lines the ring holds at most the lines
/// already pushed out of the oldest chunk: fewer than `capacity` more (a chunk brings at most
/// `capacity` lines), each within [`MAX_LINE`].
#[derive(Debug)]
struct Chunk {
    bytes: Box<[u8]>,
    /// Each kept line's `(start, end)` in `bytes`, without its newline.
    lines: Vec<(u32, u32)>,
    /// How many of `lines`, from the first, were pushed out.
    gone: usize,
}

impl Chunk {
    /// `bytes`, whole lines each ending in a newline, with the lines that [`fits`] indexed.
    fn new(bytes: Box<[u8]>) -> Self {
        let mut lines = Vec::new();
        let mut start = 0;
        for end in memchr::memchr_iter(b'\n', &bytes) {
            if fits(&bytes[start..end]) {
                lines.push((start as u32, end as u32));
            }
            start = end + 1;
        }
        Self {
            bytes,
            lines,
            gone: 0,
        }
    }

    fn kept(&self) -> &[(u32, u32)] {
        &self.lines[self.gone..]
    }
}

#[derive(Debug)]
struct Inner {
    /// Oldest first; every chunk keeps at least one line.
    chunks: VecDeque<Chunk>,
    /// Lines kept in all of `chunks`.
    kept: usize,
    next_seq: u64,
    /// The tail of a write that did not end in a newline yet.
    partial: Vec<u8>,
}

impl Inner {
    /// Takes `chunk`'s lines in (their numbers follow on), then pushes out the oldest lines
    /// beyond `capacity`.
    fn keep(&mut self, chunk: Chunk, capacity: usize) {
        if chunk.lines.is_empty() {
            return;
        }
        self.next_seq += chunk.lines.len() as u64;
        self.kept += chunk.lines.len();
        self.chunks.push_back(chunk);
        while self.kept > capacity {
            let Some(oldest) = self.chunks.front_mut() else {
                break;
            };
            let out = (self.kept - capacity).min(oldest.kept().len());
            oldest.gone += out;
            self.kept -= out;
            if oldest.kept().is_empty() {
                self.chunks.pop_front();
            }
        }
    }

    /// Every kept line with its number, newest first.
    fn newest_first(&self) -> impl Iterator<Item = (u64, &[u8])> {
        let mut after = self.next_seq;
        self.chunks.iter().rev().flat_map(move |chunk| {
            let kept = chunk.kept();
            // The number of the chunk's oldest kept line.
            let first = after - kept.len() as u64;
            after = first;
            kept.iter()
                .enumerate()
                .rev()
                .map(move |(i, &(start, end))| {
                    (first + i as u64, &chunk.bytes[start as usize..end as usize])
                })
        })
    }
}

/// A bounded ring of log lines.
#[derive(Debug)]
pub(crate) struct LogRing {
    capacity: usize,
    inner: Mutex<Inner>,
}

/// The keys a line is filtered by, each with its searcher built once.
static LEVEL: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(br#""level":""#));
static ROUTE: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(br#""route":""#));
static STATUS: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(br#""status":"#));
static REQUEST_ID: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(br#""request_id":""#));

/// Where a string field's value is in a line of glassbox's JSON: after `key` (the quoted key,
/// its colon and the opening quote) up to the closing quote. glassbox's levels and route
/// templates have nothing to escape; a value with a backslash is not taken.
fn string_field(line: &str, key: &Finder<'_>) -> Option<(usize, usize)> {
    let start = key.find(line.as_bytes())? + key.needle().len();
    let len = memchr::memchr2(b'"', b'\\', &line.as_bytes()[start..])?;
    (line.as_bytes()[start + len] == b'"').then_some((start, len))
}

/// A number field as an HTTP status, or nothing when the field is something else.
fn status_field(line: &str) -> Option<u16> {
    let start = STATUS.find(line.as_bytes())? + STATUS.needle().len();
    let rest = &line[start..];
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    rest[..digits].parse().ok()
}

/// Whether a line (without its newline) may be kept: within [`MAX_LINE`], and braced like a
/// JSON object (the rest of what makes an entry is looked at when a query reaches it).
fn fits(line: &[u8]) -> bool {
    let line = line.trim_ascii();
    line.len() <= MAX_LINE && line.first() == Some(&b'{') && line.last() == Some(&b'}')
}

/// A kept line (one that [`fits`], so braced) read as an entry; nothing when it is not UTF-8
/// or has no `level`.
fn entry(seq: u64, line: &[u8]) -> Option<Entry> {
    let text = std::str::from_utf8(line.trim_ascii()).ok()?;
    let level = string_field(text, &LEVEL)
        .and_then(|(start, len)| Level::of_line(&text[start..start + len]))?;
    Some(Entry {
        seq,
        level,
        route: string_field(text, &ROUTE)
            .and_then(|(start, len)| Some((u32::try_from(start).ok()?, u32::try_from(len).ok()?))),
        status: status_field(text),
        line: text.to_owned(),
    })
}

impl LogRing {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            inner: Mutex::new(Inner {
                chunks: VecDeque::new(),
                kept: 0,
                next_seq: 1,
                partial: Vec::new(),
            }),
        }
    }

    /// The ring the process's log writer feeds.
    pub(crate) fn global() -> Arc<LogRing> {
        GLOBAL.clone()
    }

    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// A writer for the log writer's sinks: complete lines go into the ring.
    pub(crate) fn sink(self: &Arc<Self>) -> RingSink {
        RingSink(self.clone())
    }

    /// Keeps one line (without its newline).
    #[cfg(test)]
    fn push_line(&self, line: &[u8]) {
        self.write_chunk(&[line, b"\n"].concat());
    }

    /// Appends a chunk of the log stream: every complete line in it is kept, in one copy of
    /// the chunk. A chunk of more lines than the ring holds (a busy service's batch) is kept
    /// only from its last `capacity` lines: the earlier ones would be pushed out by them at
    /// once, so they are counted (their sequence numbers are used) but not copied. Lines that
    /// do not [`fits`] are dropped here, other lines that are not JSON objects with a `level`
    /// when a query reaches them.
    fn write_chunk(&self, chunk: &[u8]) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let mut rest = chunk;
        if let Some(skip_to) = memchr::memrchr_iter(b'\n', chunk).nth(self.capacity) {
            let skipped = memchr::memchr_iter(b'\n', &chunk[..=skip_to]).count();
            inner.next_seq += skipped as u64;
            inner.partial.clear();
            rest = &chunk[skip_to + 1..];
        }
        // A line begun in an earlier write is finished first, in a chunk of its own.
        if !inner.partial.is_empty()
            && let Some(end) = memchr::memchr(b'\n', rest)
        {
            let mut whole = std::mem::take(&mut inner.partial);
            whole.extend_from_slice(&rest[..=end]);
            rest = &rest[end + 1..];
            inner.keep(Chunk::new(whole.into_boxed_slice()), self.capacity);
        }
        let complete = memchr::memrchr(b'\n', rest).map_or(0, |last| last + 1);
        let (whole, tail) = rest.split_at(complete);
        if !whole.is_empty() {
            inner.keep(Chunk::new(whole.into()), self.capacity);
        }
        if !tail.is_empty() && inner.partial.len() + tail.len() <= MAX_LINE {
            inner.partial.extend_from_slice(tail);
        } else if !tail.is_empty() {
            inner.partial.clear();
        }
    }

    /// The newest lines matching `query`, newest first, and the newest sequence number kept.
    pub(crate) fn query(&self, query: &Query) -> (Vec<Entry>, u64) {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let found = inner
            .newest_first()
            .take_while(|&(seq, _)| query.since.is_none_or(|since| seq > since))
            .filter_map(|(seq, line)| entry(seq, line))
            .filter(|e| query.matches(e))
            .take(query.limit)
            .collect();
        (found, inner.next_seq - 1)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).kept
    }

    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The ring as a `Write` sink of the log writer.
#[derive(Debug)]
pub(crate) struct RingSink(Arc<LogRing>);

impl Write for RingSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write_chunk(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access(level: &str, route: &str, status: u16, id: &str) -> String {
        format!(
            r#"{{"timestamp":"2026-11-22T10:00:00.000000Z","level":"{level}","message":"request","method":"GET","route":"{route}","status":{status},"request_id":"{id}","target":"glassbox::access"}}"#
        )
    }

    fn all(limit: usize) -> Query {
        Query {
            limit,
            ..Query::default()
        }
    }

    #[test]
    fn a_request_id_finds_exactly_that_request_s_lines() {
        let ring = LogRing::new(10);
        for id in ["abc", "abcd", "xabc", "abc"] {
            ring.push_line(access("INFO", "/", 200, id).as_bytes());
        }
        let query = Query {
            request_id: Some("abc".to_owned()),
            ..all(10)
        };
        let (entries, _) = ring.query(&query);
        assert_eq!(entries.len(), 2, "not abcd, not xabc");
    }

    #[test]
    fn keeps_the_newest_lines_up_to_its_capacity() {
        let ring = LogRing::new(3);
        for i in 0..5 {
            ring.push_line(access("INFO", "/", 200, &format!("r{i}")).as_bytes());
        }
        let (entries, last) = ring.query(&all(10));
        assert_eq!(last, 5);
        let seqs: Vec<u64> = entries.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, [5, 4, 3], "newest first, the two oldest gone");
        assert!(entries[0].line.contains(r#""request_id":"r4""#));
    }

    #[test]
    fn a_chunk_longer_than_the_ring_keeps_its_newest_lines() {
        let ring = Arc::new(LogRing::new(3));
        let mut sink = ring.sink();
        sink.write_all(b"{\"level\":\"INFO\",\"message\":\"partial ")
            .unwrap();
        let chunk: String = (0..10)
            .map(|i| access("INFO", "/", 200, &format!("r{i}")) + "\n")
            .collect();
        sink.write_all(chunk.as_bytes()).unwrap();
        sink.write_all(access("WARN", "/", 404, "tail").as_bytes())
            .unwrap();
        let (entries, last) = ring.query(&all(10));
        let ids: Vec<&str> = entries
            .iter()
            .map(|e| {
                e.line
                    .split("request_id\":\"")
                    .nth(1)
                    .unwrap()
                    .split('"')
                    .next()
                    .unwrap()
            })
            .collect();
        assert_eq!(ids, ["r9", "r8", "r7"], "the newest three, newest first");
        assert_eq!(
            last, 10,
            "the skipped lines (the partial one's included) took numbers"
        );
        sink.write_all(b"\n").unwrap();
        let (entries, last) = ring.query(&all(10));
        assert_eq!(
            (entries[0].status, last),
            (Some(404), 11),
            "the unfinished line comes next"
        );
    }

    #[test]
    fn lines_are_numbered_and_pushed_out_across_the_chunks_they_came_in() {
        let ring = Arc::new(LogRing::new(4));
        let mut sink = ring.sink();
        let lines = |ids: &[&str]| -> String {
            ids.iter()
                .map(|id| match *id {
                    "junk" => "{\"no\":\"level\"}\n".to_owned(),
                    id => access("INFO", "/", 200, id) + "\n",
                })
                .collect()
        };
        sink.write_all(lines(&["r0", "r1", "r2"]).as_bytes())
            .unwrap();
        sink.write_all(lines(&["r3", "junk", "r5"]).as_bytes())
            .unwrap();
        let numbered = |entries: &[Entry]| -> Vec<(u64, String)> {
            entries
                .iter()
                .map(|e| {
                    let v: serde_json::Value = serde_json::from_str(&e.line).unwrap();
                    (e.seq, v["request_id"].as_str().unwrap().to_owned())
                })
                .collect()
        };
        let (entries, last) = ring.query(&all(10));
        assert_eq!(last, 6);
        assert_eq!(
            numbered(&entries),
            [(6, "r5".into()), (4, "r3".into()), (3, "r2".into())],
            "r0 and r1 pushed out of the first chunk; the line without a level took number 5 and is not shown"
        );
        sink.write_all(lines(&["r6", "r7", "r8", "r9"]).as_bytes())
            .unwrap();
        let (entries, last) = ring.query(&all(10));
        assert_eq!(last, 10);
        assert_eq!(
            numbered(&entries),
            [
                (10, "r9".into()),
                (9, "r8".into()),
                (8, "r7".into()),
                (7, "r6".into())
            ]
        );
        let inner = ring.inner.lock().unwrap();
        assert_eq!(
            (inner.chunks.len(), inner.kept),
            (1, 4),
            "chunks with no line left are let go"
        );
    }

    #[test]
    fn filters_by_level_route_status_and_sequence() {
        let ring = LogRing::new(100);
        ring.push_line(access("INFO", "/", 200, "a").as_bytes());
        ring.push_line(access("WARN", "/sleep/{ms}", 404, "b").as_bytes());
        ring.push_line(access("ERROR", "/work", 500, "c").as_bytes());
        ring.push_line(
            br#"{"timestamp":"t","level":"INFO","message":"listening","target":"glassbox"}"#,
        );
        ring.push_line(access("ERROR", "/work", 503, "d").as_bytes());
        let ids = |q: Query| -> Vec<String> {
            ring.query(&q)
                .0
                .iter()
                .map(|e| {
                    let v: serde_json::Value = serde_json::from_str(&e.line).unwrap();
                    v["request_id"].as_str().unwrap_or("-").to_owned()
                })
                .collect()
        };
        let q = |f: fn(&mut Query)| {
            let mut q = all(50);
            f(&mut q);
            q
        };
        assert_eq!(ids(q(|q| q.level = Some(Level::Warn))), ["d", "c", "b"]);
        assert_eq!(ids(q(|q| q.route = Some("/work".into()))), ["d", "c"]);
        assert_eq!(
            ids(q(|q| q.status = StatusFilter::parse("5xx"))),
            ["d", "c"]
        );
        assert_eq!(ids(q(|q| q.status = StatusFilter::parse("404"))), ["b"]);
        assert_eq!(ids(q(|q| q.since = Some(3))), ["d", "-"]);
        assert_eq!(ids(all(1)), ["d"]);
    }

    #[test]
    fn a_chunk_may_end_mid_line_and_junk_is_skipped() {
        let ring = Arc::new(LogRing::new(10));
        let line = access("INFO", "/", 200, "split");
        let (a, b) = line.split_at(40);
        let mut sink = ring.sink();
        sink.write_all(b"not json\n").unwrap();
        sink.write_all(a.as_bytes()).unwrap();
        assert!(ring.is_empty());
        sink.write_all(format!("{b}\n{{\"no\":\"level\"}}\n").as_bytes())
            .unwrap();
        let (entries, _) = ring.query(&all(10));
        assert_eq!(entries.len(), 1);
        assert_eq!(&*entries[0].line, line);
        assert_eq!(entries[0].status, Some(200));
    }

    #[test]
    fn fields_are_found_by_key_and_lookalikes_inside_strings_are_not() {
        let ring = LogRing::new(10);
        ring.push_line(
            br#"{"timestamp":"t","level":"WARN","message":"said \"route\":\"/x\" and \"status\":200","target":"glassbox"}"#,
        );
        ring.push_line(br#"{"level":"INFO","message":"task finished","status":"finished"}"#);
        let (entries, _) = ring.query(&all(10));
        assert_eq!(entries[1].level, Level::Warn);
        assert_eq!((entries[1].route(), entries[1].status), (None, None));
        assert_eq!(
            entries[0].status, None,
            "a status that is not a number is not an HTTP status"
        );
    }

    #[test]
    fn status_filters_parse_codes_and_classes_only() {
        assert_eq!(StatusFilter::parse("404"), Some(StatusFilter::Code(404)));
        assert_eq!(StatusFilter::parse("5XX"), Some(StatusFilter::Class(5)));
        for bad in ["", "4", "99", "600", "6xx", "44xx", "abc", "4x"] {
            assert_eq!(StatusFilter::parse(bad), None, "{bad}");
        }
        assert_eq!(Level::parse("warn"), Some(Level::Warn));
        assert_eq!(
            Level::parse("WARN"),
            None,
            "the query takes lowercase names"
        );
        assert_eq!(Level::parse("fatal"), None);
    }
}
