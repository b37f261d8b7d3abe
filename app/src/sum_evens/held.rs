//! The latest blocks of an arriving upload, kept in memory after the spool has written them,
//! so the sum parses them where they are instead of reading them back from the file. Only the
//! last [`PER_UPLOAD`] blocks of an upload are kept, and at most [`ACROSS_UPLOADS`] bytes in
//! all; a block not kept (or no longer) is read back from the file, which has every byte. A
//! block dropped by its upload is given back to the spool for the next one, so a steady upload
//! reuses the same few buffers instead of taking fresh pages for every megabyte.

use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::range::Source;
use crate::body::{Budget, Taken};
use crate::direct_io::Aligned;

/// The blocks the spool writes (and so the blocks kept), in bytes.
pub(crate) const BLOCK: usize = 1 << 20;

/// Blocks kept per upload: two chunks' worth, so the chunk a lane takes next (handed out once
/// it has landed whole) is still in memory unless the lanes fell two chunks behind.
pub(crate) const PER_UPLOAD: usize = 16;

/// Bytes kept across uploads at once: four uploads' worth. Past it, an upload's blocks are
/// read back from its file.
pub(crate) const ACROSS_UPLOADS: usize = 4 * PER_UPLOAD * BLOCK;

/// A block of the upload in memory, with its share of what all uploads may keep (a lane
/// summing it holds it as long as it reads it, counted or not).
#[derive(Debug)]
pub(crate) struct Block {
    bytes: Aligned,
    _counted: Taken,
}

/// One upload's kept blocks, shared by its spool (which adds them) and its sum (which reads
/// them).
#[derive(Debug, Clone)]
pub(crate) struct Held {
    inner: Arc<Mutex<Kept>>,
    keeping: Arc<Budget>,
    /// Bytes the sum read back from the file because they were not kept.
    read_back: Arc<AtomicU64>,
}

#[derive(Debug, Default)]
struct Kept {
    /// By offset, consecutive as the spool writes them (a block not kept ends the run: the
    /// ones before it go).
    blocks: VecDeque<(u64, Arc<Block>)>,
    /// A buffer for the spool's next block.
    spare: Option<Aligned>,
}

impl Held {
    pub(crate) fn new(keeping: Arc<Budget>) -> Self {
        Self {
            inner: Arc::default(),
            keeping,
            read_back: Arc::default(),
        }
    }

    fn kept(&self) -> std::sync::MutexGuard<'_, Kept> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The spool wrote `block` at `at` in the file: keeps it if it may, and gives back an empty
    /// buffer (of [`BLOCK`] bytes' capacity) for the next one.
    pub(crate) fn keep(&self, at: u64, mut block: Aligned) -> Aligned {
        let mut kept = self.kept();
        let mut freed = Vec::new();
        while kept.blocks.len() >= PER_UPLOAD {
            freed.extend(kept.blocks.pop_front());
        }
        // A block no lane reads any more is the next block's buffer.
        for (_, old) in freed {
            if kept.spare.is_none()
                && let Ok(old) = Arc::try_unwrap(old)
            {
                kept.spare = Some(old.bytes);
            }
        }
        match self.keeping.try_take(None, block.len()) {
            Ok(counted) => kept.blocks.push_back((
                at,
                Arc::new(Block {
                    bytes: block,
                    _counted: counted,
                }),
            )),
            Err(_) => {
                // Not kept: the blocks before it go too, so the ones kept stay consecutive.
                kept.blocks.clear();
                block.clear();
                kept.spare.get_or_insert(block);
            }
        }
        let mut spare = kept
            .spare
            .take()
            .unwrap_or_else(|| Aligned::with_capacity(BLOCK));
        spare.clear();
        spare
    }

    /// Every chunk has been handed out (the lanes summing them hold what they read): nothing
    /// more is kept, so an upload whose task waits for a worker keeps no memory meanwhile.
    pub(crate) fn release(&self) {
        let mut kept = self.kept();
        kept.blocks.clear();
        kept.spare = None;
    }

    /// The kept blocks that hold any of `from..to`.
    fn covering(&self, from: u64, to: u64) -> Vec<(u64, Arc<Block>)> {
        self.kept()
            .blocks
            .iter()
            .filter(|(at, block)| *at < to && from < at + block.bytes.len() as u64)
            .cloned()
            .collect()
    }

    /// `file`, with the blocks kept now that hold any of `from..to` read from memory.
    pub(crate) fn source(&self, file: Arc<File>, from: u64, to: u64) -> HeldSource {
        HeldSource {
            file,
            blocks: self.covering(from, to),
            read_back: self.read_back.clone(),
        }
    }

    /// Bytes the sum has read back from the file so far.
    #[cfg(test)]
    pub(crate) fn read_back(&self) -> u64 {
        self.read_back.load(Ordering::Relaxed)
    }
}

/// Where a lane reads a chunk: a file, some of whose blocks may be in memory.
#[derive(Debug)]
pub(crate) struct HeldSource {
    file: Arc<File>,
    blocks: Vec<(u64, Arc<Block>)>,
    read_back: Arc<AtomicU64>,
}

impl HeldSource {
    /// `file` alone, nothing of it in memory (a whole file summed after its upload).
    pub(crate) fn file(file: Arc<File>) -> Self {
        Self {
            file,
            blocks: Vec::new(),
            read_back: Arc::default(),
        }
    }
}

impl Source for HeldSource {
    fn block<'a>(&'a self, offset: u64, want: usize, buf: &'a mut [u8]) -> io::Result<&'a [u8]> {
        let found = self
            .blocks
            .iter()
            .find(|(at, block)| *at <= offset && offset < at + block.bytes.len() as u64);
        if let Some((at, block)) = found {
            let from = (offset - at) as usize;
            let n = want.min(block.bytes.len() - from);
            return Ok(&block.bytes[from..from + n]);
        }
        let got = self.file.block(offset, want, buf)?;
        self.read_back
            .fetch_add(got.len() as u64, Ordering::Relaxed);
        Ok(got)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn block(byte: u8) -> Aligned {
        Aligned::copy_of(&vec![byte; BLOCK], BLOCK)
    }

    #[test]
    fn the_latest_blocks_are_kept_and_the_oldest_given_back() {
        let keeping = Budget::new(ACROSS_UPLOADS);
        let held = Held::new(keeping.clone());
        let mut buffers = std::collections::HashSet::new();
        let mut next = Aligned::with_capacity(BLOCK);
        for i in 0..3 * PER_UPLOAD {
            buffers.insert(next.as_ptr());
            next.fill_from(&vec![i as u8; BLOCK]);
            next = held.keep((i * BLOCK) as u64, next);
            assert!(next.is_empty() && next.capacity() == BLOCK);
        }
        assert_eq!(
            keeping.used(),
            PER_UPLOAD * BLOCK,
            "at most PER_UPLOAD kept"
        );
        let kept = held.covering(0, u64::MAX);
        assert_eq!(kept.len(), PER_UPLOAD);
        assert_eq!(
            kept[0].0,
            (2 * PER_UPLOAD * BLOCK) as u64,
            "the oldest went"
        );
        assert_eq!(kept[0].1.bytes[0], 2 * PER_UPLOAD as u8);
        assert_eq!(
            buffers.len(),
            PER_UPLOAD + 1,
            "a block let go is the buffer of the next one"
        );
        // A lane still reading the oldest kept block keeps it from being reused.
        let oldest = kept[0].1.bytes.as_ptr();
        let next = held.keep((3 * PER_UPLOAD * BLOCK) as u64, next);
        assert_ne!(next.as_ptr(), oldest);
        drop(kept);
        drop(held);
        assert_eq!(
            keeping.used(),
            0,
            "dropping the upload gives back what it kept"
        );
    }

    #[test]
    fn past_the_limit_across_uploads_blocks_are_not_kept() {
        let keeping = Budget::new(3 * BLOCK);
        let a = Held::new(keeping.clone());
        let b = Held::new(keeping.clone());
        for i in 0..2 {
            a.keep((i * BLOCK) as u64, block(1));
        }
        b.keep(0, block(2));
        assert_eq!(keeping.used(), 3 * BLOCK);
        // b's next block finds no room: it is not kept, nor is the one before it.
        b.keep(BLOCK as u64, block(2));
        assert!(b.covering(0, u64::MAX).is_empty());
        assert_eq!(keeping.used(), 2 * BLOCK);
    }

    #[test]
    fn a_source_reads_kept_blocks_from_memory_and_the_rest_from_the_file() {
        let mut text = vec![b'1'; 3 * BLOCK];
        text[BLOCK..2 * BLOCK].fill(b'2');
        text[2 * BLOCK..].fill(b'3');
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(&text).unwrap();
        let held = Held::new(Budget::new(ACROSS_UPLOADS));
        // Only the middle block is kept.
        held.keep(
            BLOCK as u64,
            Aligned::copy_of(&text[BLOCK..2 * BLOCK], BLOCK),
        );
        let source = held.source(Arc::new(file), 0, u64::MAX);
        let mut buf = vec![0; 4096];
        let from_file = source.block(BLOCK as u64 - 10, 4096, &mut buf).unwrap();
        assert_eq!(
            from_file.len(),
            4096,
            "a read back may run into a kept block"
        );
        assert_eq!(&from_file[..10], &[b'1'; 10]);
        assert_eq!(&from_file[10..], &text[BLOCK..BLOCK + 4086]);
        let from_memory = source.block(BLOCK as u64 + 5, 2 * BLOCK, &mut buf).unwrap();
        assert_eq!(
            from_memory.len(),
            BLOCK - 5,
            "up to the end of the kept block"
        );
        assert!(from_memory.iter().all(|&b| b == b'2'));
        assert_eq!(
            held.read_back(),
            4096,
            "only what was not kept was read back"
        );
        let past = source.block(3 * BLOCK as u64, 10, &mut buf).unwrap();
        assert!(past.is_empty(), "the end of the file");
    }
}
