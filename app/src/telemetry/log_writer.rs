//! A batching log writer: request threads append formatted lines to a shared buffer (a copy
//! under a short lock, no allocation, no wake-up), and one thread writes the buffer to stdout
//! and the log file every [`FLUSH_EVERY`] or as soon as it grows large. Nothing is dropped:
//! when the buffer reaches its cap, writers wait for the flusher. Dropping the
//! [`FlushGuard`] writes out everything buffered.

use std::io::{self, Write};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tracing_subscriber::fmt::MakeWriter;

/// How often buffered lines are written when the service is quiet.
const FLUSH_EVERY: Duration = Duration::from_millis(50);
/// Above this, the flusher is woken at once.
const WAKE_AT: usize = 256 * 1024;
/// At this size writers wait for the flusher: back-pressure instead of lost lines.
const CAP: usize = 16 * 1024 * 1024;

#[derive(Debug, Default)]
struct State {
    buffer: Vec<u8>,
    closing: bool,
    /// Writers waiting for room (the buffer is at [`CAP`]); the flusher wakes them.
    writers_waiting: usize,
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
    /// Signalled when there is work for the flusher, or room for writers.
    changed: Condvar,
}

/// The `MakeWriter` handed to the tracing subscriber.
#[derive(Debug, Clone)]
pub(crate) struct BatchWriter {
    shared: Arc<Shared>,
}

/// Owns the flusher thread; dropping it flushes and stops it.
#[derive(Debug)]
pub(crate) struct FlushGuard {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

/// Starts the flusher thread writing to `sinks`.
pub(crate) fn start(mut sinks: Vec<Box<dyn Write + Send>>) -> (BatchWriter, FlushGuard) {
    let shared = Arc::new(Shared::default());
    let flusher = shared.clone();
    let thread = std::thread::Builder::new()
        .name("glassbox-log".into())
        .spawn(move || {
            let mut out = Vec::with_capacity(WAKE_AT);
            let mut due = Instant::now() + FLUSH_EVERY;
            loop {
                let (closing, writers_waiting) = {
                    let mut state = flusher.state.lock().unwrap_or_else(|e| e.into_inner());
                    // A batch is written when it is large, when it is due, or at shutdown; an
                    // empty buffer at its due time waits another period. Under load this means
                    // a write per sink every FLUSH_EVERY (or every WAKE_AT bytes), not one per
                    // handful of lines.
                    while !state.closing && state.buffer.len() < WAKE_AT {
                        let now = Instant::now();
                        if now >= due {
                            if !state.buffer.is_empty() {
                                break;
                            }
                            due = now + FLUSH_EVERY;
                        }
                        state = flusher
                            .changed
                            .wait_timeout(state, due - now)
                            .unwrap_or_else(|e| e.into_inner())
                            .0;
                    }
                    std::mem::swap(&mut state.buffer, &mut out);
                    (state.closing, state.writers_waiting > 0)
                };
                due = Instant::now() + FLUSH_EVERY;
                if writers_waiting {
                    flusher.changed.notify_all();
                }
                if !out.is_empty() {
                    for sink in &mut sinks {
                        // A closed stdout must not stop the file log, and vice versa.
                        let _ = sink.write_all(&out).and_then(|()| sink.flush());
                    }
                    out.clear();
                    if out.capacity() > 4 * WAKE_AT {
                        out.shrink_to(WAKE_AT);
                    }
                }
                if closing
                    && flusher
                        .state
                        .lock()
                        .map(|s| s.buffer.is_empty())
                        .unwrap_or(true)
                {
                    return;
                }
            }
        })
        .expect("spawning the log thread");
    (
        BatchWriter {
            shared: shared.clone(),
        },
        FlushGuard {
            shared,
            thread: Some(thread),
        },
    )
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
        while state.buffer.len() >= CAP && !state.closing {
            state.writers_waiting += 1;
            self.shared.changed.notify_all();
            state = self
                .shared
                .changed
                .wait(state)
                .unwrap_or_else(|e| e.into_inner());
            state.writers_waiting -= 1;
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
        let (writer, guard) = start(vec![Box::new(a.clone()), Box::new(b.clone())]);
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
        let (mut writer, _guard) = start(vec![Box::new(sink.clone())]);
        writer.write_all(b"one line\n").unwrap();
        for _ in 0..200 {
            if !sink.0.lock().unwrap().is_empty() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("a buffered line was not written within two seconds");
    }
}
