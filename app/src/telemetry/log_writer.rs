//! A batching log writer that never makes a request wait. Request threads append formatted
//! lines to a shared buffer (a copy under a short lock, no allocation, no wake-up); one thread
//! takes the buffer every [`FLUSH_EVERY`] (or as soon as it grows large) and hands the batch
//! to each sink's own thread: stdout, the log file and the dashboard's ring each write at
//! their own pace, so a stdout nobody reads does not stop the file log.
//!
//! Every wait is bounded by dropping, never by blocking a writer: a line that finds the shared
//! buffer full, or a batch that finds a sink [`SINK_CAP`] bytes behind, is dropped for that
//! sink and counted ([`Dropped`]: `glassbox_log_lines_dropped_total{sink}` and `/status`), and
//! a warning line says so at most once per [`WARN_EVERY`]. Dropping the [`FlushGuard`] writes
//! out what every sink can take within [`CLOSE_WAIT`].

use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tracing_subscriber::fmt::MakeWriter;

/// How often buffered lines are written when the service is quiet.
const FLUSH_EVERY: Duration = Duration::from_millis(50);
/// Above this, the flusher is woken at once.
const WAKE_AT: usize = 256 * 1024;
/// At this size new lines are dropped (and counted) until the flusher takes the buffer.
const CAP: usize = 16 * 1024 * 1024;
/// How far a sink may fall behind, in bytes handed to it and not yet written.
const SINK_CAP: usize = 16 * 1024 * 1024;
/// The least time between two warnings about dropped lines.
const WARN_EVERY: Duration = Duration::from_secs(10);
/// How long closing waits for the sinks to write what they were given.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

#[derive(Debug, Default)]
struct State {
    buffer: Vec<u8>,
    closing: bool,
    /// Lines dropped because the buffer was full, not yet added to every sink's count.
    dropped: u64,
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
    /// Signalled when there is work for the flusher.
    changed: Condvar,
}

/// Lines each sink did not get, by sink name.
#[derive(Debug, Default)]
pub(crate) struct Dropped(Vec<(&'static str, AtomicU64)>);

impl Dropped {
    /// `(sink, lines dropped)` for every sink.
    pub(crate) fn counts(&self) -> Vec<(&'static str, u64)> {
        self.0
            .iter()
            .map(|(name, n)| (*name, n.load(Ordering::Relaxed)))
            .collect()
    }

    fn add(&self, sink: usize, lines: u64) {
        self.0[sink].1.fetch_add(lines, Ordering::Relaxed);
    }

    fn total(&self) -> u64 {
        self.0.iter().map(|(_, n)| n.load(Ordering::Relaxed)).sum()
    }
}

/// The `MakeWriter` handed to the tracing subscriber.
#[derive(Debug, Clone)]
pub(crate) struct BatchWriter {
    shared: Arc<Shared>,
}

/// Owns the writer threads; dropping it flushes and stops them.
#[derive(Debug)]
pub(crate) struct FlushGuard {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    dropped: Arc<Dropped>,
}

impl FlushGuard {
    pub(crate) fn dropped(&self) -> Arc<Dropped> {
        self.dropped.clone()
    }
}

/// A sink's own thread and what it has not written yet.
struct SinkThread {
    batches: mpsc::Sender<Arc<Vec<u8>>>,
    queued: Arc<AtomicUsize>,
    done: mpsc::Receiver<()>,
}

impl SinkThread {
    fn start(name: &'static str, mut sink: Box<dyn Write + Send>) -> Self {
        let (batches, incoming) = mpsc::channel::<Arc<Vec<u8>>>();
        let (finished, done) = mpsc::channel();
        let queued = Arc::new(AtomicUsize::new(0));
        let pending = queued.clone();
        std::thread::Builder::new()
            .name(format!("glassbox-log-{name}"))
            .spawn(move || {
                for batch in incoming {
                    // A closed stdout must not stop the file log, and vice versa.
                    let _ = sink.write_all(&batch).and_then(|()| sink.flush());
                    pending.fetch_sub(batch.len(), Ordering::AcqRel);
                }
                let _ = finished.send(());
            })
            .expect("spawning a log sink thread");
        Self {
            batches,
            queued,
            done,
        }
    }

    /// Hands `batch` over unless the sink is too far behind; false when it was dropped.
    fn offer(&self, batch: &Arc<Vec<u8>>) -> bool {
        let queued = self.queued.load(Ordering::Acquire);
        if queued > 0 && queued + batch.len() > SINK_CAP {
            return false;
        }
        self.queued.fetch_add(batch.len(), Ordering::AcqRel);
        if self.batches.send(batch.clone()).is_err() {
            self.queued.fetch_sub(batch.len(), Ordering::AcqRel);
            return false;
        }
        true
    }
}

fn lines_in(bytes: &[u8]) -> u64 {
    memchr::memchr_iter(b'\n', bytes).count() as u64
}

/// Starts the flusher thread and one thread per sink in `sinks` (named for the counts).
pub(crate) fn start(
    sinks: Vec<(&'static str, Box<dyn Write + Send>)>,
) -> (BatchWriter, FlushGuard) {
    let shared = Arc::new(Shared::default());
    let dropped = Arc::new(Dropped(
        sinks
            .iter()
            .map(|(name, _)| (*name, AtomicU64::new(0)))
            .collect(),
    ));
    let threads: Vec<SinkThread> = sinks
        .into_iter()
        .map(|(name, sink)| SinkThread::start(name, sink))
        .collect();
    let flusher = shared.clone();
    let counts = dropped.clone();
    let thread = std::thread::Builder::new()
        .name("glassbox-log".into())
        .spawn(move || flush(&flusher, threads, &counts))
        .expect("spawning the log thread");
    (
        BatchWriter {
            shared: shared.clone(),
        },
        FlushGuard {
            shared,
            thread: Some(thread),
            dropped,
        },
    )
}

/// The flusher: takes the buffer when due and offers it to every sink.
fn flush(shared: &Shared, sinks: Vec<SinkThread>, dropped: &Dropped) {
    let mut due = Instant::now() + FLUSH_EVERY;
    let mut warned = (None::<Instant>, 0u64);
    loop {
        let (batch, closing, overflowed) = {
            let mut state = shared.state.lock().unwrap_or_else(|e| e.into_inner());
            // A batch is written when it is large, when it is due, or at shutdown; an empty
            // buffer at its due time waits another period. Under load this means a write per
            // sink every FLUSH_EVERY (or every WAKE_AT bytes), not one per handful of lines.
            while !state.closing && state.buffer.len() < WAKE_AT {
                let now = Instant::now();
                if now >= due {
                    if !state.buffer.is_empty() {
                        break;
                    }
                    due = now + FLUSH_EVERY;
                }
                state = shared
                    .changed
                    .wait_timeout(state, due - now)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
            let capacity = state.buffer.len().clamp(WAKE_AT, CAP);
            let batch = std::mem::replace(&mut state.buffer, Vec::with_capacity(capacity));
            (batch, state.closing, std::mem::take(&mut state.dropped))
        };
        due = Instant::now() + FLUSH_EVERY;
        for sink in 0..sinks.len() {
            dropped.add(sink, overflowed);
        }
        if !batch.is_empty() {
            let batch = Arc::new(batch);
            for (i, sink) in sinks.iter().enumerate() {
                if !sink.offer(&batch) {
                    dropped.add(i, lines_in(&batch));
                }
            }
        }
        let total = dropped.total();
        if total > warned.1 && warned.0.is_none_or(|at| at.elapsed() >= WARN_EVERY) {
            let counts = dropped.counts();
            tracing::warn!(
                dropped_lines = total,
                ?counts,
                "log lines dropped: a log sink is not keeping up (stdout not read?)"
            );
            warned = (Some(Instant::now()), total);
        }
        if closing {
            let rest = {
                let mut state = shared.state.lock().unwrap_or_else(|e| e.into_inner());
                std::mem::take(&mut state.buffer)
            };
            if !rest.is_empty() {
                let rest = Arc::new(rest);
                for (i, sink) in sinks.iter().enumerate() {
                    if !sink.offer(&rest) {
                        dropped.add(i, lines_in(&rest));
                    }
                }
            }
            // Each sink writes what it was given, for as long as closing may take: a sink
            // that never drains (a stdout nobody reads) does not hold the process.
            let deadline = Instant::now() + CLOSE_WAIT;
            let done: Vec<_> = sinks
                .into_iter()
                .map(|sink| {
                    drop(sink.batches);
                    sink.done
                })
                .collect();
            for finished in done {
                let left = deadline.saturating_duration_since(Instant::now());
                let _ = finished.recv_timeout(left);
            }
            return;
        }
    }
}

impl Drop for FlushGuard {
    fn drop(&mut self) {
        if let Ok(mut state) = self.shared.state.lock() {
            state.closing = true;
        }
        self.shared.changed.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl BatchWriter {
    /// A writer for one line, borrowing the shared buffer.
    pub(crate) fn line_writer(&self) -> LineWriter<'_> {
        LineWriter {
            shared: &self.shared,
        }
    }
}

/// What one event writes through; borrows the shared buffer instead of cloning a handle.
#[derive(Debug)]
pub(crate) struct LineWriter<'a> {
    shared: &'a Shared,
}

impl Write for BatchWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        LineWriter {
            shared: &self.shared,
        }
        .write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Write for LineWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut state = self.shared.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.buffer.len() + buf.len() > CAP && !state.closing {
            // The flusher is behind: the line is dropped (and counted), the request goes on.
            state.dropped += lines_in(buf).max(1);
            return Ok(buf.len());
        }
        let before = state.buffer.len();
        state.buffer.extend_from_slice(buf);
        // The flusher checks the size before it waits, so one wake-up when the buffer
        // crosses the mark is enough (a wake-up is a system call).
        if before < WAKE_AT && state.buffer.len() >= WAKE_AT {
            self.shared.changed.notify_all();
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for BatchWriter {
    type Writer = LineWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        LineWriter {
            shared: &self.shared,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);
    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn every_line_reaches_every_sink_in_order_by_shutdown() {
        let (a, b) = (Sink::default(), Sink::default());
        let (writer, guard) = start(vec![("a", Box::new(a.clone())), ("b", Box::new(b.clone()))]);
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let mut w = writer.clone();
                std::thread::spawn(move || {
                    for i in 0..20_000 {
                        w.write_all(format!("{t} {i}\n").as_bytes()).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        drop(guard);
        for sink in [a, b] {
            let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
            let mut next = [0usize; 4];
            for line in text.lines() {
                let (t, i) = line.split_once(' ').unwrap();
                let (t, i): (usize, usize) = (t.parse().unwrap(), i.parse().unwrap());
                assert_eq!(i, next[t], "lines of one thread stay in order");
                next[t] += 1;
            }
            assert_eq!(next, [20_000; 4]);
        }
    }

    #[test]
    fn quiet_lines_are_written_without_shutdown() {
        let sink = Sink::default();
        let (mut writer, _guard) = start(vec![("sink", Box::new(sink.clone()))]);
        writer.write_all(b"one line\n").unwrap();
        for _ in 0..200 {
            if !sink.0.lock().unwrap().is_empty() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("a buffered line was not written within two seconds");
    }

    /// A sink that blocks forever on its first write, like a stdout pipe nobody reads.
    struct Stalled;
    impl Write for Stalled {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            loop {
                std::thread::park();
            }
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_stalled_sink_drops_and_counts_while_writers_and_other_sinks_go_on() {
        let file = Sink::default();
        let (writer, guard) = start(vec![
            ("stdout", Box::new(Stalled)),
            ("file", Box::new(file.clone())),
        ]);
        let dropped = guard.dropped();
        let line = format!("{}\n", "x".repeat(199));
        // 40 MB of lines: more than the stalled sink's backlog may hold.
        let lines = 200_000;
        let start = Instant::now();
        let mut w = writer.clone();
        for _ in 0..lines {
            w.write_all(line.as_bytes()).unwrap();
            // Gives the flusher a chance, as real request threads do.
            if start.elapsed() < Duration::from_secs(20) {
                std::thread::yield_now();
            }
        }
        drop(guard);
        let counts: std::collections::HashMap<_, _> = dropped.counts().into_iter().collect();
        let written = lines_in(&file.0.lock().unwrap());
        assert!(counts["stdout"] > 0, "{counts:?}");
        assert_eq!(
            written + counts["file"],
            lines as u64 + warnings(&file),
            "the file log has every line it did not count as dropped: {counts:?}"
        );
        assert!(
            counts["stdout"] >= lines as u64 - (SINK_CAP / line.len()) as u64,
            "{counts:?}"
        );
    }

    /// Warning lines the writer itself added (none without a subscriber; counted anyway).
    fn warnings(sink: &Sink) -> u64 {
        let text = sink.0.lock().unwrap();
        memchr::memmem::find_iter(&text, b"log lines dropped").count() as u64
    }
}
