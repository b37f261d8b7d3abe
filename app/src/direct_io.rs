//! Writing a file around the page cache (`O_DIRECT`): the disk reads the bytes from the
//! writer's own buffer, and the kernel copies nothing into pages of its own.
//!
//! Through the page cache, every byte of an upload is copied by the kernel into a page it must
//! first find; on this project's machine that copy was half of glassbox's CPU for a 1 GiB upload
//! with the data on the disk, more than receiving, decrypting and summing it together
//! (BENCHMARKS.md). A file nobody will read back soon is better written directly.
//!
//! A direct write wants its buffer, its file offset and its length at multiples of the disk's
//! logical block size; [`ALIGN`] is a multiple of every size Linux disks use, and [`Aligned`]
//! is a buffer that starts on one. What cannot go directly (a filesystem without `O_DIRECT`, a
//! last block of odd length, a write the kernel refuses) goes through the page cache instead,
//! so nothing is lost but the saving.

use std::fmt;
use std::fs::File;
use std::io;
use std::ops::Deref;
use std::os::unix::fs::FileExt;

use rustix::fs::OFlags;

/// What a direct write's buffer address, offset and length are multiples of.
pub(crate) const ALIGN: usize = 4096;

/// Turns `O_DIRECT` on or off for `file`'s later writes. Turning it on fails (`EINVAL`) where
/// the filesystem cannot write directly.
pub(crate) fn set_direct(file: &File, direct: bool) -> io::Result<()> {
    let flags = rustix::fs::fcntl_getfl(file)?;
    let flags = if direct {
        flags | OFlags::DIRECT
    } else {
        flags.difference(OFlags::DIRECT)
    };
    Ok(rustix::fs::fcntl_setfl(file, flags)?)
}

/// Whether `file`'s writes go around the page cache.
#[cfg(test)]
pub(crate) fn is_direct(file: &File) -> bool {
    rustix::fs::fcntl_getfl(file).is_ok_and(|flags| flags.contains(OFlags::DIRECT))
}

/// Whether a file in `dir` takes a direct write (for tests, which skip where it does not).
#[cfg(test)]
pub(crate) fn takes_direct_writes(dir: &std::path::Path) -> bool {
    let path = dir.join(".direct-probe");
    let took = File::create(&path).is_ok_and(|file| {
        set_direct(&file, true).is_ok()
            && write_at(&file, true, 0, &Aligned::copy_of(&[0; ALIGN], ALIGN)).unwrap_or(false)
    });
    let _ = std::fs::remove_file(path);
    took
}

/// Writes all of `bytes` at `at`. While `direct`, a write that can go directly does; one that
/// cannot (odd length or place), or that fails, turns `O_DIRECT` off for good and goes through
/// the page cache, whose error (a full disk) is the one returned. Returns whether the file is
/// still direct.
pub(crate) fn write_at(file: &File, direct: bool, at: u64, bytes: &[u8]) -> io::Result<bool> {
    if !direct {
        file.write_all_at(bytes, at)?;
        return Ok(false);
    }
    let aligned = at.is_multiple_of(ALIGN as u64)
        && bytes.len().is_multiple_of(ALIGN)
        && bytes.as_ptr().addr().is_multiple_of(ALIGN);
    if aligned {
        match file.write_all_at(bytes, at) {
            Ok(()) => return Ok(true),
            Err(err) => {
                tracing::debug!(%err, "a direct write failed; writing through the page cache");
            }
        }
    }
    set_direct(file, false)?;
    file.write_all_at(bytes, at)?;
    Ok(false)
}

/// A buffer of up to a fixed capacity whose first byte is at a multiple of [`ALIGN`] in memory,
/// so that it can be written directly whenever its length is a multiple of it too.
pub(crate) struct Aligned {
    /// `ALIGN` bytes more than the capacity: the aligned window starts somewhere in the first
    /// `ALIGN`.
    raw: Vec<u8>,
    start: usize,
    len: usize,
}

impl Aligned {
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        let raw = vec![0; capacity + ALIGN];
        let start = (ALIGN - raw.as_ptr().addr() % ALIGN) % ALIGN;
        Self { raw, start, len: 0 }
    }

    /// A buffer of `capacity` holding a copy of `bytes`.
    #[cfg(test)]
    pub(crate) fn copy_of(bytes: &[u8], capacity: usize) -> Self {
        let mut buf = Self::with_capacity(capacity);
        assert_eq!(
            buf.fill_from(bytes),
            bytes.len(),
            "{capacity} bytes hold them"
        );
        buf
    }

    pub(crate) fn capacity(&self) -> usize {
        self.raw.len() - ALIGN
    }

    /// Appends as much of `bytes` as fits, and says how much that was.
    pub(crate) fn fill_from(&mut self, bytes: &[u8]) -> usize {
        let take = bytes.len().min(self.capacity() - self.len);
        let end = self.start + self.len;
        self.raw[end..end + take].copy_from_slice(&bytes[..take]);
        self.len += take;
        take
    }

    pub(crate) fn is_full(&self) -> bool {
        self.len == self.capacity()
    }

    pub(crate) fn clear(&mut self) {
        self.len = 0;
    }
}

impl Deref for Aligned {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.raw[self.start..self.start + self.len]
    }
}

impl fmt::Debug for Aligned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Aligned")
            .field("len", &self.len)
            .field("capacity", &self.capacity())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::page_cache::{cached, on_tmpfs};

    #[test]
    fn an_aligned_buffer_starts_on_a_multiple_of_align_and_holds_what_fits() {
        for capacity in [ALIGN, 3 * ALIGN, 1 << 20] {
            let mut buf = Aligned::with_capacity(capacity);
            assert_eq!(buf.as_ptr().addr() % ALIGN, 0);
            assert_eq!(buf.capacity(), capacity);
            assert!(buf.is_empty());
            let bytes: Vec<u8> = (0..capacity + 10).map(|i| (i % 253) as u8).collect();
            assert_eq!(buf.fill_from(&bytes[..7]), 7);
            assert_eq!(buf.fill_from(&bytes[7..]), capacity - 7, "only what fits");
            assert!(buf.is_full());
            assert_eq!(&buf[..], &bytes[..capacity]);
            buf.clear();
            assert!(buf.is_empty() && buf.as_ptr().addr().is_multiple_of(ALIGN));
        }
    }

    #[test]
    fn aligned_writes_go_around_the_page_cache_and_the_rest_through_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        if on_tmpfs(dir.path()) || !takes_direct_writes(dir.path()) {
            eprintln!(
                "skipped: {} cannot be written around the page cache",
                dir.path().display()
            );
            return;
        }
        let file = File::create(&path).unwrap();
        set_direct(&file, true).unwrap();
        let mut block = Aligned::with_capacity(1 << 20);
        block.fill_from(&vec![b'7'; 1 << 20]);
        let mut direct = true;
        for i in 0..8 {
            direct = write_at(&file, direct, i << 20, &block).unwrap();
            assert!(direct && is_direct(&file));
        }
        file.sync_all().unwrap();
        assert_eq!(cached(&path), 0, "8 MiB written, none of it cached");

        // An odd-length last block goes through the page cache, and the file stays whole.
        let mut tail = Aligned::with_capacity(ALIGN);
        tail.fill_from(b"123");
        direct = write_at(&file, direct, 8 << 20, &tail).unwrap();
        assert!(!direct && !is_direct(&file));
        file.sync_all().unwrap();
        let cached = cached(&path);
        assert!(
            cached > 0 && cached <= ALIGN as u64,
            "only the tail's page is cached: {cached} bytes"
        );
        let back = std::fs::read(&path).unwrap();
        assert_eq!(back.len(), (8 << 20) + 3);
        assert!(back[..8 << 20].iter().all(|&b| b == b'7'));
        assert_eq!(&back[8 << 20..], b"123");
    }

    #[test]
    fn a_full_disk_under_direct_writes_is_storage_full() {
        let dir = tempfile::tempdir().unwrap();
        let Some(_disk) = testkit::disk::Tmpfs::mount(dir.path(), 2) else {
            return;
        };
        if !takes_direct_writes(dir.path()) {
            eprintln!("skipped: this kernel's tmpfs has no O_DIRECT");
            return;
        }
        let file = File::create(dir.path().join("f")).unwrap();
        set_direct(&file, true).unwrap();
        let mut block = Aligned::with_capacity(1 << 20);
        block.fill_from(&vec![b'1'; 1 << 20]);
        let mut direct = true;
        let err = (0..3)
            .find_map(|i| match write_at(&file, direct, i << 20, &block) {
                Ok(still) => {
                    direct = still;
                    None
                }
                Err(err) => Some(err),
            })
            .expect("3 MiB do not fit in 2");
        assert_eq!(err.kind(), io::ErrorKind::StorageFull, "{err}");
    }

    #[test]
    fn an_unaligned_write_to_a_direct_file_is_written_through_the_page_cache() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let file = File::create(&path).unwrap();
        if set_direct(&file, true).is_err() {
            eprintln!("skipped: {} has no O_DIRECT", dir.path().display());
            return;
        }
        // A plain Vec, one byte into it: not at a multiple of ALIGN in memory.
        let bytes = vec![b'5'; 2 * ALIGN + 1];
        let direct = write_at(&file, true, 0, &bytes[1..]).unwrap();
        assert!(!direct, "the unaligned buffer went through the page cache");
        assert_eq!(std::fs::read(&path).unwrap(), &bytes[1..]);
    }
}
