//! What files written front to back leave in the page cache.
//!
//! `POSIX_FADV_DONTNEED` on Linux does two things to a range: it starts writeback of the
//! range's dirty pages without waiting for it, and it drops the pages that are already clean.
//! The task spool uses the first, so the disk works while an upload arrives ([`start_writeback`]).
//! The log file uses both ([`Trail`]): it would otherwise fill the page cache with lines nobody
//! reads twice, tens of megabytes a second under load, and every new page costs the copy into
//! it more than a page the cache gave back (measured in BENCHMARKS.md).

use std::fs::File;
use std::num::NonZeroU64;

/// Starts writing `len` bytes at `at` to the disk without waiting, and drops any of them
/// already written. A failure costs only the head start, so it is ignored.
pub(crate) fn start_writeback(file: &File, at: u64, len: u64) {
    let _ = rustix::fs::fadvise(file, at, NonZeroU64::new(len), rustix::fs::Advice::DontNeed);
}

/// How far behind the end of a file writeback is started: a batch of lines this large.
const STEP: u64 = 8 << 20;
/// How much of a file's end stays cached, for readers tailing it (Promtail, `tail -f`).
const KEEP: u64 = 32 << 20;

/// A file's tail in the page cache: every [`STEP`] bytes, writeback of the new ones starts, and
/// the pages more than [`KEEP`] behind the end (written back by then) are dropped. The file
/// holds at most about `KEEP + STEP` bytes of cache, plus what the disk has not yet written.
#[derive(Debug, Default)]
pub(crate) struct Trail {
    /// Where writeback was last started up to.
    started: u64,
    /// Where pages were last dropped up to.
    dropped: u64,
}

impl Trail {
    /// For a file that already holds `len` bytes (appending to it); what was there is left.
    pub(crate) fn at(len: u64) -> Self {
        Self {
            started: len,
            dropped: len,
        }
    }

    /// The file now ends at `end`.
    pub(crate) fn written(&mut self, file: &File, end: u64) {
        if end < self.started + STEP {
            return;
        }
        start_writeback(file, self.started, end - self.started);
        self.started = end;
        let behind = end.saturating_sub(KEEP);
        if behind > self.dropped {
            start_writeback(file, self.dropped, behind - self.dropped);
            self.dropped = behind;
        }
    }
}

/// Bytes of `path` in the page cache, as util-linux's `fincore` counts them.
#[cfg(test)]
pub(crate) fn cached(path: &std::path::Path) -> u64 {
    let out = std::process::Command::new("fincore")
        .args(["--bytes", "--noheadings", "--output", "RES"])
        .arg(path)
        .output()
        .expect("fincore, from util-linux-extra on Debian");
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// Whether `path` is on tmpfs, whose pages are the file and cannot be dropped or bypassed.
#[cfg(test)]
pub(crate) fn on_tmpfs(path: &std::path::Path) -> bool {
    const TMPFS_MAGIC: i64 = 0x0102_1994;
    rustix::fs::statfs(path).unwrap().f_type as i64 == TMPFS_MAGIC
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::path::Path;

    use super::*;

    #[test]
    fn a_long_file_keeps_only_its_tail_cached() {
        let dir = tempfile::tempdir().unwrap();
        if on_tmpfs(dir.path()) {
            eprintln!(
                "skipped: {} is tmpfs, whose pages cannot be dropped",
                dir.path().display()
            );
            return;
        }
        let batch = vec![b'x'; 256 << 10];
        let write = |path: &Path, trail: Option<&mut Trail>| {
            let mut file = File::create(path).unwrap();
            let mut end = 0;
            let mut trail = trail;
            for _ in 0..(64 << 20) / batch.len() {
                file.write_all(&batch).unwrap();
                end += batch.len() as u64;
                if let Some(trail) = trail.as_deref_mut() {
                    trail.written(&file, end);
                }
                if end % STEP == 0 {
                    // The disk keeps up, as it does with a log: what the trail drops later
                    // has been written by then.
                    file.sync_data().unwrap();
                }
            }
            file.sync_data().unwrap();
            std::fs::metadata(path).unwrap().len()
        };

        let plain = dir.path().join("plain");
        assert_eq!(write(&plain, None), 64 << 20);
        let trailed = dir.path().join("trailed");
        assert_eq!(write(&trailed, Some(&mut Trail::at(0))), 64 << 20);

        // Without the trail the whole file stays cached (the comparison shows the machine has
        // the memory to keep it); with it, about the last KEEP bytes.
        let (plain, trailed) = (cached(&plain), cached(&trailed));
        assert!(plain > (56 << 20), "{plain} bytes of the plain file cached");
        assert!(
            trailed <= KEEP + STEP,
            "{trailed} bytes of the trailed file cached, the plain one {plain}"
        );
        assert!(trailed >= KEEP - STEP, "its tail stays: {trailed} bytes");
    }

    #[test]
    fn appending_leaves_what_was_there() {
        let mut trail = Trail::at(100 << 20);
        let dir = tempfile::tempdir().unwrap();
        let file = File::create(dir.path().join("f")).unwrap();
        trail.written(&file, (100 << 20) + STEP - 1);
        assert_eq!((trail.started, trail.dropped), (100 << 20, 100 << 20));
        trail.written(&file, (100 << 20) + STEP);
        assert_eq!(trail.started, (100 << 20) + STEP);
        assert_eq!(
            trail.dropped,
            100 << 20,
            "nothing of its own is KEEP behind yet"
        );
        trail.written(&file, (100 << 20) + KEEP + STEP);
        assert_eq!(trail.dropped, (100 << 20) + STEP);
    }
}
