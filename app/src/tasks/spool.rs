//! An upload on its way to its payload file: written under a temporary name in blocks, one
//! block on its way to the disk while the next fills, and renamed into place only when it is
//! whole and synced. [`Spool::landed`] says how much has reached the file, for readers that
//! start on an upload before it ends.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::task::JoinHandle;

/// How much the spool gathers before a write.
const BLOCK: usize = 1 << 20;

/// An upload being written to its payload file: under a temporary name until [`Spool::commit`],
/// removed if dropped before (a broken or refused upload leaves nothing behind).
#[derive(Debug)]
pub(crate) struct Spool {
    temp: PathBuf,
    path: PathBuf,
    file: Arc<File>,
    /// The block filling.
    block: Vec<u8>,
    /// The block being written, which hands its buffer back.
    writing: Option<JoinHandle<io::Result<Vec<u8>>>>,
    /// Bytes handed to writes, and bytes whose write has completed.
    sent: u64,
    landed: u64,
    committed: bool,
}

impl Spool {
    /// Creates the temporary file beside `path`.
    pub(crate) async fn create(path: PathBuf) -> io::Result<Self> {
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
            block: Vec::with_capacity(BLOCK),
            writing: None,
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

    pub(crate) async fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.block.extend_from_slice(bytes);
        if self.block.len() >= BLOCK {
            self.send().await?;
        }
        Ok(())
    }

    /// Waits for the block on its way, then sends the one filled.
    async fn send(&mut self) -> io::Result<()> {
        let spare = self.wait().await?;
        if self.block.is_empty() {
            return Ok(());
        }
        let block = std::mem::replace(&mut self.block, spare);
        let at = self.sent;
        self.sent += block.len() as u64;
        let file = self.file.clone();
        self.writing = Some(tokio::task::spawn_blocking(move || {
            (&*file).write_all(&block)?;
            start_writeback(&file, at, block.len());
            Ok(block)
        }));
        Ok(())
    }

    /// Waits for the block on its way, if any; returns a buffer for the next one.
    async fn wait(&mut self) -> io::Result<Vec<u8>> {
        let mut spare = match self.writing.take() {
            Some(writing) => writing.await.map_err(io::Error::other)??,
            None => Vec::with_capacity(BLOCK),
        };
        self.landed = self.sent;
        spare.clear();
        Ok(spare)
    }

    /// Writes everything given so far to the file.
    pub(crate) async fn flush(&mut self) -> io::Result<()> {
        self.send().await?;
        self.wait().await.map(drop)
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

/// Starts writing `len` bytes at `at` to the disk without waiting, so the disk works while
/// the rest of the upload arrives instead of all at the commit's `fsync` (the kernel would
/// otherwise hold them until a tenth of memory is dirty). `POSIX_FADV_DONTNEED` on Linux starts
/// writeback of the range's dirty pages and drops only pages already clean, so the sum reading
/// them behind the writer still finds them cached. A failure here costs only that head start.
fn start_writeback(file: &File, at: u64, len: usize) {
    let _ = rustix::fs::fadvise(
        file,
        at,
        std::num::NonZeroU64::new(len as u64),
        rustix::fs::Advice::DontNeed,
    );
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(io::Error::other)?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn landed_follows_the_writes_that_completed() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::create(dir.path().join("p")).await.unwrap();
        let reader = spool.reader().unwrap();
        spool.write(&[b'1'; 1000]).await.unwrap();
        assert_eq!(spool.landed(), 0, "a part block waits");
        spool.write(&vec![b'2'; BLOCK]).await.unwrap();
        spool.write(&vec![b'3'; BLOCK]).await.unwrap();
        let landed = spool.landed();
        assert_eq!(landed, (BLOCK + 1000) as u64, "the first block landed");
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
}
