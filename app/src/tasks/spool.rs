//! An upload on its way to its payload file: written under a temporary name in blocks, one
//! block on its way to the disk while the next fills (up to four when written around the page
//! cache), and renamed into place only when it is whole and synced. [`Spool::landed`] says how
//! much has reached the file, for readers that start on an upload before it ends, and a spool
//! told to [`Spool::keep_blocks`] gives each block, once written, to the sum reading it, which
//! parses it in memory.
//!
//! Such a spool writes around the page cache ([`direct_io`]) where the filesystem allows: its
//! sum has the blocks already, and the file is read again only if the service restarts before
//! the task is done. A spool whose file a worker will read next (a worker process, after the
//! commit) writes through the page cache, starting each block's writeback as it goes.
//!
//! A spool's blocks are request body in memory: they come out of `--max-buffered-bytes`
//! ([`Budget`](crate::body::Budget)), two to begin with ([`LEAST_MEMORY`]: the block filling
//! and one on its way), and more on their way while the budget has room for them, so uploads
//! at once cannot hold more memory than the budget, however many there are.

use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::task::JoinHandle;

use crate::body::Taken;
use crate::direct_io::{self, Aligned};
use crate::page_cache;
use crate::sum_evens::held::{BLOCK, Held};

/// Blocks on their way to the disk at once, while the next fills, when they are written
/// around the page cache: a direct write waits for the disk, and one at a time left the upload
/// waiting on the disk's slower moments. Through the page cache a write is a copy, and one is
/// on its way at a time.
const DIRECT_IN_FLIGHT: usize = 4;

/// The memory a spool cannot do without: the block filling and one on its way.
pub(crate) const LEAST_MEMORY: usize = 2 * BLOCK;

/// An upload being written to its payload file: under a temporary name until [`Spool::commit`],
/// removed if dropped before (a broken or refused upload leaves nothing behind).
#[derive(Debug)]
pub(crate) struct Spool {
    temp: PathBuf,
    path: PathBuf,
    file: Arc<File>,
    /// Whether blocks are written around the page cache.
    direct: bool,
    /// The block filling.
    block: Aligned,
    /// The blocks being written, oldest first, each handing its buffer back and saying whether
    /// the file is still written directly.
    writing: VecDeque<JoinHandle<io::Result<(Aligned, bool)>>>,
    /// Where written blocks go, when a sum reads them as they land.
    held: Option<Held>,
    /// The budget's share for the block filling and those on their way: one block more than
    /// may be on their way.
    memory: Taken,
    /// Bytes handed to writes, and bytes whose write has completed.
    sent: u64,
    landed: u64,
    committed: bool,
}

impl Spool {
    /// Creates the temporary file beside `path`, with `memory` (at least [`LEAST_MEMORY`])
    /// for its blocks.
    pub(crate) async fn create(path: PathBuf, memory: Taken) -> io::Result<Self> {
        debug_assert!(memory.bytes() >= LEAST_MEMORY, "{}", memory.bytes());
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("payload");
        let temp = path.with_file_name(format!(".{name}.upload"));
        let file = blocking({
            let temp = temp.clone();
            move || File::create(temp)
        })
        .await?;
        Ok(Self {
            temp,
            path,
            file: Arc::new(file),
            direct: false,
            block: Aligned::with_capacity(BLOCK),
            writing: VecDeque::new(),
            held: None,
            memory,
            sent: 0,
            landed: 0,
            committed: false,
        })
    }

    /// The file being written, opened again for reading.
    pub(crate) fn reader(&self) -> io::Result<File> {
        File::open(&self.temp)
    }

    /// Bytes of the upload that have reached the file (the page cache: not yet synced).
    pub(crate) fn landed(&self) -> u64 {
        self.landed
    }

    /// From now on, each block written is handed to `held` (blocks of exactly [`BLOCK`]
    /// bytes at multiples of it, except the last), and written around the page cache where the
    /// filesystem allows, up to [`DIRECT_IN_FLIGHT`] at once as the budget has room for them.
    pub(crate) fn keep_blocks(&mut self, held: Held) {
        self.held = Some(held);
        self.direct = direct_io::set_direct(&self.file, true).is_ok();
        if self.direct {
            while self.memory.bytes() < (1 + DIRECT_IN_FLIGHT) * BLOCK
                && self.memory.try_grow(BLOCK).is_ok()
            {}
        }
    }

    /// Blocks that may be on their way at once: up to [`DIRECT_IN_FLIGHT`] when direct, as
    /// many as the spool's memory holds besides the one filling; else one.
    fn in_flight(&self) -> usize {
        if self.direct {
            (self.memory.bytes() / BLOCK - 1).clamp(1, DIRECT_IN_FLIGHT)
        } else {
            1
        }
    }

    /// Whether the blocks go around the page cache.
    #[cfg(test)]
    pub(crate) fn is_direct(&self) -> bool {
        self.direct
    }

    pub(crate) async fn write(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            let took = self.block.fill_from(bytes);
            bytes = &bytes[took..];
            if self.block.is_full() {
                self.send().await?;
            }
        }
        Ok(())
    }

    /// Sends the block filled, first waiting for the oldest write if as many as may be are
    /// on their way ([`Spool::in_flight`]).
    async fn send(&mut self) -> io::Result<()> {
        let spare = if self.writing.len() >= self.in_flight() {
            self.wait().await?
        } else {
            None
        };
        if self.block.is_empty() {
            return Ok(());
        }
        let spare = spare.unwrap_or_else(|| Aligned::with_capacity(BLOCK));
        let block = std::mem::replace(&mut self.block, spare);
        let at = self.sent;
        self.sent += block.len() as u64;
        let (file, direct) = (self.file.clone(), self.direct);
        self.writing.push_back(tokio::task::spawn_blocking(move || {
            let direct = direct_io::write_at(&file, direct, at, &block)?;
            if !direct {
                // The disk works while the rest of the upload arrives instead of all at the
                // commit's `fsync` (the kernel would otherwise hold the pages until a tenth of
                // memory is dirty); a reader behind the writer still finds them cached.
                page_cache::start_writeback(&file, at, block.len() as u64);
            }
            Ok((block, direct))
        }));
        Ok(())
    }

    /// Waits for the oldest block on its way, if any; returns its buffer for another block.
    async fn wait(&mut self) -> io::Result<Option<Aligned>> {
        let Some(writing) = self.writing.pop_front() else {
            return Ok(None);
        };
        let (mut written, direct) = writing.await.map_err(io::Error::other)??;
        self.direct &= direct;
        let at = self.landed;
        self.landed += written.len() as u64;
        Ok(Some(match &self.held {
            Some(held) => held.keep(at, written),
            None => {
                written.clear();
                written
            }
        }))
    }

    /// Writes everything given so far to the file.
    pub(crate) async fn flush(&mut self) -> io::Result<()> {
        self.send().await?;
        while self.wait().await?.is_some() {}
        Ok(())
    }

    /// Syncs the file and moves it to its payload name.
    pub(crate) async fn commit(mut self) -> io::Result<()> {
        self.flush().await?;
        let (file, temp, path) = (self.file.clone(), self.temp.clone(), self.path.clone());
        blocking(move || {
            file.sync_all()?;
            std::fs::rename(&temp, &path)
        })
        .await?;
        self.committed = true;
        let dir = self.path.parent().unwrap_or(Path::new(".")).to_owned();
        blocking(move || File::open(dir)?.sync_all()).await
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(io::Error::other)?
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A share of a budget with room for every block a spool may use.
    pub(crate) fn memory() -> Taken {
        crate::body::Budget::new(usize::MAX)
            .try_take(None, LEAST_MEMORY)
            .unwrap()
    }

    #[tokio::test]
    async fn landed_follows_the_writes_that_completed() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::create(dir.path().join("p"), memory()).await.unwrap();
        let reader = spool.reader().unwrap();
        spool.write(&[b'1'; 1000]).await.unwrap();
        assert_eq!(spool.landed(), 0, "a part block waits");
        spool.write(&vec![b'2'; BLOCK]).await.unwrap();
        spool.write(&vec![b'3'; BLOCK]).await.unwrap();
        let landed = spool.landed();
        assert_eq!(
            landed, BLOCK as u64,
            "the first block (of exactly BLOCK) landed"
        );
        assert!(reader.metadata().unwrap().len() >= landed);
        spool.flush().await.unwrap();
        assert_eq!(spool.landed(), (2 * BLOCK + 1000) as u64);
        assert_eq!(reader.metadata().unwrap().len(), spool.landed());
        spool.commit().await.unwrap();
        assert_eq!(
            std::fs::metadata(dir.path().join("p")).unwrap().len(),
            (2 * BLOCK + 1000) as u64
        );
    }

    #[tokio::test]
    async fn written_blocks_go_to_the_sum_whole_and_in_order() {
        use crate::body::Budget;
        use crate::sum_evens::held::ACROSS_UPLOADS;
        use crate::sum_evens::range::Source;

        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::create(dir.path().join("p"), memory()).await.unwrap();
        let reader = spool.reader().unwrap();
        let held = Held::new(Budget::new(ACROSS_UPLOADS));
        spool.keep_blocks(held.clone());
        // Pieces that do not divide a block, as a connection delivers them.
        let text: Vec<u8> = (0..3 * BLOCK + 777).map(|i| (i % 251) as u8).collect();
        for piece in text.chunks(16_411) {
            spool.write(piece).await.unwrap();
        }
        spool.flush().await.unwrap();
        let source = held.source(Arc::new(reader), 0, u64::MAX);
        let mut buf = vec![0; 64];
        let mut at = 0;
        while at < text.len() {
            let got = source.block(at as u64, usize::MAX, &mut buf).unwrap();
            assert_eq!(at % BLOCK, 0, "blocks start at multiples of BLOCK");
            assert_eq!(got, &text[at..(at + BLOCK).min(text.len())]);
            at += got.len();
        }
        assert_eq!(held.read_back(), 0, "every block came from memory");
    }

    /// A temporary directory on a filesystem that takes direct writes, or `None` (the test
    /// is skipped, and says so) where there is none.
    fn direct_dir() -> Option<tempfile::TempDir> {
        let dir = tempfile::tempdir().unwrap();
        if crate::page_cache::on_tmpfs(dir.path()) || !direct_io::takes_direct_writes(dir.path()) {
            eprintln!(
                "skipped: {} cannot be written around the page cache",
                dir.path().display()
            );
            return None;
        }
        Some(dir)
    }

    #[tokio::test]
    async fn a_direct_spool_keeps_four_blocks_on_their_way_and_lands_them_in_order() {
        use crate::body::Budget;
        use crate::sum_evens::held::ACROSS_UPLOADS;
        use crate::sum_evens::range::Source;

        let Some(dir) = direct_dir() else {
            return;
        };
        let mut spool = Spool::create(dir.path().join("p"), memory()).await.unwrap();
        let held = Held::new(Budget::new(ACROSS_UPLOADS));
        spool.keep_blocks(held.clone());
        for block in 0..DIRECT_IN_FLIGHT {
            spool.write(&vec![b'0' + block as u8; BLOCK]).await.unwrap();
            assert_eq!(spool.landed(), 0, "block {block} is on its way");
        }
        // The fifth waits for the first only.
        spool.write(&vec![b'9'; BLOCK]).await.unwrap();
        assert_eq!(spool.writing.len(), DIRECT_IN_FLIGHT);
        assert_eq!(spool.landed(), BLOCK as u64);
        spool.flush().await.unwrap();
        assert!(spool.is_direct());
        assert_eq!(spool.landed(), 5 * BLOCK as u64);
        let file = std::fs::read(dir.path().join(".p.upload")).unwrap();
        let firsts: Vec<u8> = file.chunks(BLOCK).map(|b| b[0]).collect();
        assert_eq!(firsts, b"01239");
        let source = held.source(Arc::new(spool.reader().unwrap()), 0, u64::MAX);
        let mut buf = vec![0; 64];
        let kept = source
            .block(4 * BLOCK as u64, usize::MAX, &mut buf)
            .unwrap();
        assert_eq!(kept, &vec![b'9'; BLOCK][..]);
        assert_eq!(held.read_back(), 0, "the last block came from memory");
    }

    #[tokio::test]
    async fn a_direct_spool_keeps_on_their_way_only_the_blocks_its_budget_has_room_for() {
        use crate::body::Budget;
        use crate::sum_evens::held::ACROSS_UPLOADS;

        let Some(dir) = direct_dir() else {
            return;
        };
        let budget = Budget::new(3 * BLOCK);
        let memory = budget.try_take(None, LEAST_MEMORY).unwrap();
        let mut spool = Spool::create(dir.path().join("p"), memory).await.unwrap();
        spool.keep_blocks(Held::new(Budget::new(ACROSS_UPLOADS)));
        assert_eq!(budget.used(), 3 * BLOCK, "one block more, all there was");
        assert!(
            budget.try_take(None, LEAST_MEMORY).is_err(),
            "no room for another upload"
        );
        for block in 0..4 {
            spool.write(&vec![b'0' + block; BLOCK]).await.unwrap();
            assert!(spool.writing.len() <= 2, "block {block}");
        }
        spool.commit().await.unwrap();
        let file = std::fs::read(dir.path().join("p")).unwrap();
        let firsts: Vec<u8> = file.chunks(BLOCK).map(|b| b[0]).collect();
        assert_eq!(firsts, b"0123");
        assert_eq!(budget.used(), 0, "given back with the spool");
    }

    #[tokio::test]
    async fn a_spool_whose_sum_keeps_its_blocks_writes_them_around_the_page_cache() {
        use crate::body::Budget;
        use crate::page_cache::cached;
        use crate::sum_evens::held::ACROSS_UPLOADS;

        let Some(dir) = direct_dir() else {
            return;
        };
        let text: Vec<u8> = (0..8 * BLOCK + 777)
            .map(|i| b'0' + (i % 10) as u8)
            .collect();
        let spool_of = |name: &'static str, keep: bool| {
            let (dir, text) = (dir.path().to_owned(), &text);
            async move {
                let path = dir.join(name);
                let mut spool = Spool::create(path.clone(), memory()).await.unwrap();
                if keep {
                    spool.keep_blocks(Held::new(Budget::new(ACROSS_UPLOADS)));
                }
                for piece in text.chunks(16_411) {
                    spool.write(piece).await.unwrap();
                }
                let direct = spool.is_direct();
                spool.commit().await.unwrap();
                let in_cache = cached(&path);
                assert_eq!(&std::fs::read(&path).unwrap(), text, "{name} is whole");
                (direct, in_cache)
            }
        };
        let (direct, kept) = spool_of("kept", true).await;
        assert!(direct, "the full blocks went directly");
        let (plain_direct, plain) = spool_of("plain", false).await;
        assert!(!plain_direct);
        // Without a sum keeping its blocks the file stays cached for the worker that reads it
        // next (which shows the machine has the room); with one, only the last block's page,
        // whose odd length went through the cache.
        assert!(
            plain >= 8 * BLOCK as u64,
            "{plain} bytes of the plain spool cached"
        );
        assert!(
            kept <= direct_io::ALIGN as u64,
            "{kept} bytes of the spool written directly cached"
        );
    }
}
