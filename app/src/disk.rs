//! Free space on the data directory's filesystem, against `--min-free-disk`: a write that
//! would leave less is refused with 507 before anything of it is written, and `/health` fails
//! while there is less.

use std::io;
use std::path::{Path, PathBuf};

use crate::error::ApiError;

/// The data directory's filesystem and the free space to keep on it.
#[derive(Debug)]
pub(crate) struct Disk {
    dir: PathBuf,
    min_free: u64,
}

impl Disk {
    pub(crate) fn new(dir: &Path, min_free: u64) -> Self {
        Self {
            dir: dir.to_path_buf(),
            min_free,
        }
    }

    /// Bytes an unprivileged process may still write there.
    pub(crate) fn free(&self) -> io::Result<u64> {
        let stat = rustix::fs::statvfs(&self.dir)?;
        Ok(stat.f_bavail.saturating_mul(stat.f_frsize))
    }

    /// Refuses (507) a write of `bytes` that would leave less than `--min-free-disk`.
    pub(crate) fn reserve(&self, bytes: u64) -> Result<(), ApiError> {
        self.room_for(bytes).map_err(|why| {
            ApiError::InsufficientStorage(io::Error::new(io::ErrorKind::StorageFull, why))
        })
    }

    /// Whether `bytes` more leave at least `--min-free-disk`; if not, why, for a log line or
    /// a health check.
    pub(crate) fn room_for(&self, bytes: u64) -> Result<(), String> {
        if self.min_free == 0 && bytes == 0 {
            return Ok(());
        }
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
        Ok(())
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
            strict.reserve(0),
            Err(ApiError::InsufficientStorage(_))
        ));
        assert!(Disk::new(dir.path(), 0).reserve(u64::MAX).is_err());
    }
}
