//! The open connections of a listener and what each is doing, so that the service can bound
//! them: how many are open (`--max-connections`, below the open-file limit), which are idle
//! and for how long (`--idle-timeout`; the longest idle is closed first to make room), whether
//! a request head is half read (`--header-read-timeout`) and whether a response is stuck on a
//! client that does not read (`--write-timeout`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// The registry of one listener's connections.
#[derive(Debug)]
pub(crate) struct Connections {
    epoch: Instant,
    max: usize,
    next_id: AtomicU64,
    open: Mutex<HashMap<u64, Arc<Activity>>>,
}

/// Why a new connection was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Full;

/// One connection's activity, shared by its task, its requests' response bodies and the
/// registry. Times are milliseconds since the registry's epoch; 0 means "not now".
#[derive(Debug)]
pub(crate) struct Activity {
    epoch: Instant,
    /// Requests whose response body is not finished yet.
    active: AtomicUsize,
    /// When the connection last became idle (no active request).
    idle_since: AtomicU64,
    /// When the first byte of a request head arrived, until the request begins (HTTP/1.1).
    head_since: AtomicU64,
    /// Responses handed to the connection and not yet sent, and when one last made progress.
    sending: AtomicUsize,
    progress_at: AtomicU64,
    /// When a write to the socket started waiting for the client, until it goes through.
    write_blocked_since: AtomicU64,
    /// Asked to close to make room for a new connection.
    evicted: AtomicBool,
    pub(crate) close: Notify,
}

/// A connection's place in the registry; leaving it frees the place.
#[derive(Debug)]
pub(crate) struct Registered {
    id: u64,
    registry: Arc<Connections>,
    pub(crate) activity: Arc<Activity>,
}

impl Connections {
    pub(crate) fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            epoch: Instant::now(),
            max,
            next_id: AtomicU64::new(1),
            open: Mutex::new(HashMap::new()),
        })
    }

    /// Connections registered now.
    #[cfg(test)]
    fn open(&self) -> usize {
        self.lock().len()
    }

    /// A place for a new connection. At the limit the longest-idle connection is asked to
    /// close and the new one takes its place; with none idle the new one is refused.
    pub(crate) fn admit(self: &Arc<Self>) -> Result<Registered, Full> {
        let mut open = self.lock();
        if open.len() >= self.max {
            let idle = open
                .values()
                .filter(|a| a.is_idle() && !a.evicted.load(Ordering::Acquire))
                .min_by_key(|a| a.idle_since.load(Ordering::Acquire));
            let Some(victim) = idle else {
                return Err(Full);
            };
            victim.evicted.store(true, Ordering::Release);
            victim.close.notify_one();
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let activity = Arc::new(Activity::new(self.epoch));
        open.insert(id, activity.clone());
        Ok(Registered {
            id,
            registry: self.clone(),
            activity,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Activity>>> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.registry.lock().remove(&self.id);
    }
}

/// What a connection's watchdog found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Nothing to do until this instant.
    Fine(Instant),
    /// Idle for the idle timeout: close it politely (HTTP/2: GOAWAY).
    Idle,
    /// Asked to make room for a new connection: close it politely.
    Evicted,
    /// A request head arrived too slowly: drop it.
    SlowHead,
    /// A response made no progress for the write timeout: drop it.
    StuckWrite,
}

/// The timeouts a watchdog applies.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timeouts {
    pub(crate) idle: Duration,
    pub(crate) header: Duration,
    pub(crate) write: Duration,
}

impl Activity {
    fn new(epoch: Instant) -> Self {
        let activity = Self {
            epoch,
            active: AtomicUsize::new(0),
            idle_since: AtomicU64::new(0),
            head_since: AtomicU64::new(0),
            sending: AtomicUsize::new(0),
            progress_at: AtomicU64::new(0),
            write_blocked_since: AtomicU64::new(0),
            evicted: AtomicBool::new(false),
            close: Notify::new(),
        };
        activity.idle_since.store(activity.now(), Ordering::Release);
        activity
    }

    /// Milliseconds since the epoch, plus one: 0 means "not now".
    fn now(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64 + 1
    }

    /// The instant of a [`Self::now`] reading.
    fn at(&self, ms: u64) -> Instant {
        self.epoch + Duration::from_millis(ms.saturating_sub(1))
    }

    fn is_idle(&self) -> bool {
        self.active.load(Ordering::Acquire) == 0
    }

    /// A request begins: the connection is busy until its response is sent.
    pub(crate) fn request_started(&self) {
        self.active.fetch_add(1, Ordering::AcqRel);
        self.head_since.store(0, Ordering::Release);
    }

    /// A request's response is finished (sent, or dropped).
    pub(crate) fn request_finished(&self) {
        if self.active.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.idle_since.store(self.now(), Ordering::Release);
        }
    }

    /// A response body starts going out.
    pub(crate) fn sending_started(&self) {
        self.progress_at.store(self.now(), Ordering::Release);
        self.sending.fetch_add(1, Ordering::AcqRel);
    }

    pub(crate) fn sending_finished(&self) {
        self.sending.fetch_sub(1, Ordering::AcqRel);
    }

    /// A response body handed over another piece.
    pub(crate) fn progressed(&self) {
        self.progress_at.store(self.now(), Ordering::Release);
    }

    /// Bytes arrived from the client. Between requests of an HTTP/1.1 connection they are a
    /// request head beginning.
    pub(crate) fn bytes_read(&self) {
        if self.is_idle() && self.head_since.load(Ordering::Acquire) == 0 {
            self.head_since.store(self.now(), Ordering::Release);
        }
    }

    /// A socket write is waiting for the client (`true`) or went through (`false`).
    pub(crate) fn write_blocked(&self, blocked: bool) {
        if !blocked {
            self.write_blocked_since.store(0, Ordering::Release);
        } else if self.write_blocked_since.load(Ordering::Acquire) == 0 {
            self.write_blocked_since
                .store(self.now(), Ordering::Release);
        }
    }

    /// What to do with the connection now. `heads` says whether request heads are timed here
    /// (HTTP/1.1; HTTP/2 frames are not request heads).
    pub(crate) fn check(&self, timeouts: &Timeouts, heads: bool) -> Verdict {
        if self.evicted.load(Ordering::Acquire) {
            return Verdict::Evicted;
        }
        let now = self.now();
        let since = |at: u64| Duration::from_millis(now.saturating_sub(at));
        let mut next = self.at(now) + timeouts.idle.min(timeouts.write).min(timeouts.header);
        let blocked = self.write_blocked_since.load(Ordering::Acquire);
        if blocked != 0 {
            if since(blocked) >= timeouts.write {
                return Verdict::StuckWrite;
            }
            next = next.min(self.at(blocked) + timeouts.write);
        }
        if self.sending.load(Ordering::Acquire) > 0 {
            let progress = self.progress_at.load(Ordering::Acquire);
            if since(progress) >= timeouts.write {
                return Verdict::StuckWrite;
            }
            next = next.min(self.at(progress) + timeouts.write);
        }
        if self.is_idle() {
            let head = self.head_since.load(Ordering::Acquire);
            if heads && head != 0 {
                if since(head) >= timeouts.header {
                    return Verdict::SlowHead;
                }
                next = next.min(self.at(head) + timeouts.header);
            } else {
                let idle = self.idle_since.load(Ordering::Acquire);
                if since(idle) >= timeouts.idle {
                    return Verdict::Idle;
                }
                next = next.min(self.at(idle) + timeouts.idle);
            }
        }
        Verdict::Fine(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUTS: Timeouts = Timeouts {
        idle: Duration::from_secs(30),
        header: Duration::from_secs(10),
        write: Duration::from_secs(20),
    };

    #[tokio::test(start_paused = true)]
    async fn an_idle_connection_closes_after_the_idle_timeout() {
        let registry = Connections::new(10);
        let conn = registry.admit().unwrap();
        let a = &conn.activity;
        assert!(matches!(a.check(&TIMEOUTS, true), Verdict::Fine(_)));
        a.request_started();
        tokio::time::advance(Duration::from_secs(60)).await;
        assert!(
            matches!(a.check(&TIMEOUTS, true), Verdict::Fine(_)),
            "a running request is not idleness"
        );
        a.request_finished();
        tokio::time::advance(Duration::from_secs(29)).await;
        let Verdict::Fine(next) = a.check(&TIMEOUTS, true) else {
            panic!("not idle long enough yet");
        };
        assert_eq!(next - Instant::now(), Duration::from_secs(1));
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(a.check(&TIMEOUTS, true), Verdict::Idle);
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_head_is_cut_after_the_header_timeout() {
        let registry = Connections::new(10);
        let conn = registry.admit().unwrap();
        let a = &conn.activity;
        a.bytes_read();
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(a.check(&TIMEOUTS, true), Verdict::SlowHead);
        assert!(
            matches!(a.check(&TIMEOUTS, false), Verdict::Fine(_)),
            "HTTP/2 frames are not request heads"
        );
        a.request_started();
        assert!(matches!(a.check(&TIMEOUTS, true), Verdict::Fine(_)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_response_nobody_reads_is_dropped_after_the_write_timeout() {
        let registry = Connections::new(10);
        let conn = registry.admit().unwrap();
        let a = &conn.activity;
        a.request_started();
        a.sending_started();
        tokio::time::advance(Duration::from_secs(15)).await;
        a.progressed();
        tokio::time::advance(Duration::from_secs(15)).await;
        assert!(matches!(a.check(&TIMEOUTS, true), Verdict::Fine(_)));
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(a.check(&TIMEOUTS, true), Verdict::StuckWrite);
        a.sending_finished();
        a.write_blocked(true);
        tokio::time::advance(Duration::from_secs(19)).await;
        assert!(matches!(a.check(&TIMEOUTS, true), Verdict::Fine(_)));
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(a.check(&TIMEOUTS, true), Verdict::StuckWrite);
        a.write_blocked(false);
        assert!(matches!(a.check(&TIMEOUTS, true), Verdict::Fine(_)));
    }

    #[tokio::test(start_paused = true)]
    async fn at_the_limit_the_longest_idle_makes_room() {
        let registry = Connections::new(2);
        let old = registry.admit().unwrap();
        tokio::time::advance(Duration::from_secs(1)).await;
        let busy = registry.admit().unwrap();
        busy.activity.request_started();
        let new = registry.admit().expect("the idle one makes room");
        assert_eq!(old.activity.check(&TIMEOUTS, true), Verdict::Evicted);
        assert!(matches!(
            busy.activity.check(&TIMEOUTS, true),
            Verdict::Fine(_)
        ));
        new.activity.request_started();
        assert_eq!(
            registry.admit().unwrap_err(),
            Full,
            "none idle but the evicted one"
        );
        drop(old);
        assert_eq!(registry.open(), 2);
    }
}
