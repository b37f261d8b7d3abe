//! Free space on the data directory's filesystem, against `--min-free-disk`: a write that
//! would leave less is refused with 507 before anything of it is written, and `/health` fails
//! while there is less.
//!
//! The room above `--min-free-disk` is also shared out by `--client-share`: the bytes one
//! client's writes hold ([`Hold`]: its uploads being stored, its tasks' payloads until they
//! have run and their results until they expire, its messages in the embedded store for good)
//! may be at most that share of the room they could have, the room left plus what they hold.
//! A client filling the disk gets 507 at its share, and everyone else keeps the rest. Clients
//! are counted in the concurrency limiter's hashed slots ([`limiter::slot`]).

use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::ApiError;
use crate::limiter;

/// The data directory's filesystem, the free space to keep on it, and what each client's
/// writes hold of the rest.
#[derive(Debug)]
pub(crate) struct Disk {
    dir: PathBuf,
    min_free: u64,
    /// `--client-share`: of the room above `min_free`, what one client's writes may hold.
    share: f64,
    /// Bytes each client slot's writes hold, when clients are counted (else empty).
    by_client: Box<[AtomicU64]>,
    /// Bytes all holds hold.
    held: AtomicU64,
}

impl Disk {
    /// The filesystem of `dir`, keeping `min_free` bytes free, with no client counted.
    pub(crate) fn new(dir: &Path, min_free: u64) -> Self {
        Self {
            dir: dir.to_path_buf(),
            min_free,
            share: 1.0,
            by_client: Box::default(),
            held: AtomicU64::new(0),
        }
    }

    /// The same, where one client's writes may hold `share` of the room (1: all of it, and no
    /// client is counted).
    pub(crate) fn shared(dir: &Path, min_free: u64, share: f64) -> Self {
        let counted = share < 1.0;
        Self {
            share: if counted { share } else { 1.0 },
            by_client: if counted {
                (0..limiter::SLOTS).map(|_| AtomicU64::new(0)).collect()
            } else {
                Box::default()
            },
            ..Self::new(dir, min_free)
        }
    }

    /// Of the room above `--min-free-disk`, what one client's writes may hold.
    pub(crate) fn client_share(&self) -> f64 {
        self.share
    }

    /// Bytes the holds of this process hold now: uploads being spooled, and the payloads of
    /// tasks its queue runs.
    pub(crate) fn held(&self) -> u64 {
        self.held.load(Ordering::Acquire)
    }

    /// The room above `--min-free-disk` now (0 when the free space is below it).
    pub(crate) fn room(&self) -> io::Result<u64> {
        Ok(self.free()?.saturating_sub(self.min_free))
    }

    /// Bytes an unprivileged process may still write there.
    pub(crate) fn free(&self) -> io::Result<u64> {
        let stat = rustix::fs::statvfs(&self.dir)?;
        Ok(stat.f_bavail.saturating_mul(stat.f_frsize))
    }

    /// Refuses (507) a write of `bytes` that would leave less than `--min-free-disk`.
    pub(crate) fn reserve(&self, bytes: u64) -> Result<(), NoRoom> {
        self.room_for(bytes).map_err(NoRoom)
    }

    /// Whether `bytes` more leave at least `--min-free-disk`; if not, why, for a log line or
    /// a health check.
    pub(crate) fn room_for(&self, bytes: u64) -> Result<(), String> {
        if self.min_free == 0 && bytes == 0 {
            return Ok(());
        }
        self.room_now(bytes).map(drop)
    }

    /// The room above `--min-free-disk` now, when `bytes` more fit in it; else why not.
    fn room_now(&self, bytes: u64) -> Result<u64, String> {
        let free = self
            .free()
            .map_err(|e| format!("reading the free space of {}: {e}", self.dir.display()))?;
        if bytes > free || free - bytes < self.min_free {
            return Err(format!(
                "{free} bytes free on {}, {bytes} to write, --min-free-disk {}",
                self.dir.display(),
                self.min_free
            ));
        }
        Ok(free - self.min_free)
    }

    /// A hold on the disk for one client's writes, empty until it grows.
    pub(crate) fn hold(self: &Arc<Self>, client: Option<IpAddr>) -> Hold {
        Hold {
            disk: self.clone(),
            slot: client
                .filter(|_| !self.by_client.is_empty())
                .map(limiter::slot),
            bytes: 0,
        }
    }

    /// A hold of `bytes` a client's earlier write already put on the disk: counted as they
    /// are, past any bound (a payload found again at start).
    pub(crate) fn held_already(self: &Arc<Self>, client: Option<IpAddr>, bytes: u64) -> Hold {
        let mut hold = self.hold(client);
        if let Some(slot) = hold.slot {
            self.by_client[slot].fetch_add(bytes, Ordering::AcqRel);
        }
        hold.taken(bytes);
        hold
    }
}

/// Whether a client whose writes hold `held` bytes may write `bytes` more, where `room` bytes
/// are free above `--min-free-disk`: what it holds then is at most `share` of the room it could
/// have (the room plus what it holds).
fn within_share(held: u64, bytes: u64, room: u64, share: f64) -> bool {
    (held.saturating_add(bytes)) as f64 <= share * (room.saturating_add(held)) as f64
}

/// Why a write gets no room: it would cross `--min-free-disk` or its client's share, in words.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct NoRoom(String);

impl From<NoRoom> for io::Error {
    fn from(NoRoom(why): NoRoom) -> Self {
        io::Error::new(io::ErrorKind::StorageFull, why)
    }
}

impl From<NoRoom> for ApiError {
    fn from(no_room: NoRoom) -> Self {
        ApiError::InsufficientStorage(no_room.into())
    }
}

/// Bytes one client's write holds on the disk (as [`Disk::hold`] made it), given back when
/// dropped: once the written file is gone, or is no longer this process's to count.
#[derive(Debug)]
pub(crate) struct Hold {
    disk: Arc<Disk>,
    slot: Option<usize>,
    bytes: u64,
}

impl Hold {
    /// Takes room for `bytes` more; refused (507) when they would leave less than
    /// `--min-free-disk` or take the client's writes past its share of the room.
    pub(crate) fn grow(&mut self, bytes: u64) -> Result<(), NoRoom> {
        let Some(slot) = self.slot else {
            self.disk.reserve(bytes)?;
            self.taken(bytes);
            return Ok(());
        };
        let room = self.disk.room_now(bytes).map_err(NoRoom)?;
        let counter = &self.disk.by_client[slot];
        let held = counter.fetch_add(bytes, Ordering::AcqRel);
        if let Some(refusal) = self.share_refusal(held, bytes, room) {
            counter.fetch_sub(bytes, Ordering::AcqRel);
            return Err(refusal);
        }
        self.taken(bytes);
        Ok(())
    }

    fn taken(&mut self, bytes: u64) {
        self.bytes += bytes;
        self.disk.held.fetch_add(bytes, Ordering::AcqRel);
    }

    /// Whether `bytes` more would be admitted, taking nothing: a length a client declares,
    /// refused before any of it is read.
    pub(crate) fn check(&self, bytes: u64) -> Result<(), NoRoom> {
        let Some(slot) = self.slot else {
            return self.disk.reserve(bytes);
        };
        let room = self.disk.room_now(bytes).map_err(NoRoom)?;
        let held = self.disk.by_client[slot].load(Ordering::Acquire);
        self.share_refusal(held, bytes, room).map_or(Ok(()), Err)
    }

    fn share_refusal(&self, held: u64, bytes: u64, room: u64) -> Option<NoRoom> {
        (!within_share(held, bytes, room, self.disk.share)).then(|| {
            NoRoom(format!(
                "this client's writes hold {held} bytes of {}, {bytes} more would pass its \
                 --client-share {} of the {} bytes they could have above --min-free-disk",
                self.disk.dir.display(),
                self.disk.share,
                room.saturating_add(held)
            ))
        })
    }

    /// The bytes held.
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Leaves the bytes counted for as long as the process runs: what a stored message holds
    /// (the store deletes none, and counts them again at start).
    pub(crate) fn keep(mut self) {
        self.bytes = 0;
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        self.disk.held.fetch_sub(self.bytes, Ordering::AcqRel);
        if let Some(slot) = self.slot {
            self.disk.by_client[slot].fetch_sub(self.bytes, Ordering::AcqRel);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_that_would_cross_the_minimum_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let free = Disk::new(dir.path(), 0).free().unwrap();
        assert!(free > 0);
        let roomy = Disk::new(dir.path(), 0);
        assert!(roomy.reserve(1).is_ok());
        // More than the filesystem has: refused, and the reason names the flag.
        let strict = Disk::new(dir.path(), free + (1 << 30));
        let err = strict.room_for(0).unwrap_err();
        assert!(err.contains("--min-free-disk"), "{err}");
        assert!(matches!(
            ApiError::from(strict.reserve(0).unwrap_err()),
            ApiError::InsufficientStorage(_)
        ));
        assert!(Disk::new(dir.path(), 0).reserve(u64::MAX).is_err());
    }

    #[test]
    fn a_client_holds_at_most_its_share_of_the_room_it_could_have() {
        // Alone, at half: up to half of the room there was.
        assert!(within_share(0, 50, 100, 0.5));
        assert!(!within_share(0, 51, 100, 0.5));
        // Holding 40 of the 100 (60 left), 10 more is exactly half.
        assert!(within_share(40, 10, 60, 0.5));
        assert!(!within_share(40, 11, 60, 0.5));
        // The whole share: anything that fits.
        assert!(within_share(99, 1, 1, 1.0));
        assert!(within_share(0, 0, 0, 0.5));
    }

    #[test]
    fn holds_count_per_client_and_are_given_back_when_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let probe = Disk::new(dir.path(), 0);
        let room = probe.free().unwrap();
        // Keep all but 64 MiB of the filesystem, so the room is about 64 MiB (other writers
        // on the machine move it a little).
        let min_free = room.saturating_sub(64 << 20);
        let disk = Arc::new(Disk::shared(dir.path(), min_free, 0.25));
        let (a, b) = (
            Some("192.0.2.1".parse().unwrap()),
            Some("192.0.2.2".parse().unwrap()),
        );
        let mut first = disk.hold(a);
        first.grow(8 << 20).unwrap();
        let mut second = disk.hold(a);
        // 8 + 16 MiB of about 64 is within a quarter; 8 + 16 + 8 is not.
        second.grow(8 << 20).unwrap();
        let err = second.grow(8 << 20).unwrap_err();
        assert!(err.to_string().contains("--client-share"), "{err}");
        assert_eq!(io::Error::from(err).kind(), io::ErrorKind::StorageFull);
        assert!(disk.hold(a).check(8 << 20).is_err());
        assert_eq!(second.bytes(), 8 << 20);
        // Another client has its own share.
        let mut other = disk.hold(b);
        other.grow(12 << 20).unwrap();
        // Dropped, a hold gives its bytes back to its client.
        drop(first);
        assert!(disk.hold(a).check(8 << 20).is_ok());
        second.grow(8 << 20).unwrap();
        // A request without a client address is held to the room alone.
        let mut anonymous = disk.hold(None);
        anonymous.grow(30 << 20).unwrap();
        assert!(disk.hold(None).check(room).is_err());
        assert_eq!(disk.held(), (16 + 12 + 30) << 20);
        drop((second, other, anonymous));
        assert_eq!(disk.held(), 0);
    }

    #[test]
    fn a_whole_share_counts_no_clients() {
        let dir = tempfile::tempdir().unwrap();
        assert!(Disk::shared(dir.path(), 0, 1.0).by_client.is_empty());
        assert_eq!(
            Disk::shared(dir.path(), 0, 0.5).by_client.len(),
            limiter::SLOTS
        );
        let disk = Arc::new(Disk::shared(dir.path(), 0, 1.0));
        let mut hold = disk.hold(Some("192.0.2.1".parse().unwrap()));
        hold.grow(1 << 20).unwrap();
        assert_eq!(hold.bytes(), 1 << 20);
    }
}
