//! A redb database file that heals. After an I/O error (a full disk, EIO) redb refuses every
//! later operation with "previous I/O error" until the database is closed and opened again; the
//! embedded store and queue would answer 503 until a restart. [`RedbFile`] notices such an
//! error, and the next use closes and reopens the file (at most once per [`RETRY`]), so they
//! recover by themselves once the cause is gone.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use redb::Database;

/// The least time between two attempts to reopen.
pub(crate) const RETRY: Duration = Duration::from_secs(1);
/// How long a reopen waits for transactions still running on the old database.
const DRAIN: Duration = Duration::from_secs(2);

/// One redb database, reopened after an I/O failure.
#[derive(Debug)]
pub(crate) struct RedbFile {
    /// `None` for a database that is not a file (tests): it cannot be reopened.
    path: Option<PathBuf>,
    db: RwLock<Option<Arc<Database>>>,
    broken: AtomicBool,
    last_attempt: Mutex<Option<Instant>>,
}

/// Why the database cannot be used now.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub(crate) struct Unavailable(String);

impl RedbFile {
    /// Opens (or creates) the file; redb checks and repairs it after a crash.
    pub(crate) fn open(path: &Path) -> Result<Arc<Self>, Unavailable> {
        let db = create(path)?;
        Ok(Arc::new(Self::with(Some(path.to_path_buf()), db)))
    }

    /// A database that is not a file (an in-memory one, for tests).
    #[cfg(test)]
    pub(crate) fn from_database(db: Database) -> Arc<Self> {
        Arc::new(Self::with(None, db))
    }

    fn with(path: Option<PathBuf>, db: Database) -> Self {
        Self {
            path,
            db: RwLock::new(Some(Arc::new(db))),
            broken: AtomicBool::new(false),
            last_attempt: Mutex::new(None),
        }
    }

    /// The database, reopened first if an I/O failure broke it. It may block (a reopen waits
    /// for transactions in flight): call it where blocking is allowed.
    pub(crate) fn get(&self) -> Result<Arc<Database>, Unavailable> {
        if self.broken.load(Ordering::Acquire) {
            self.reopen()?;
        }
        self.db
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or_else(|| Unavailable("the database is closed after an I/O failure".into()))
    }

    /// Looks at an error from the database: an I/O error breaks it until it is reopened.
    /// Returns the error, for `map_err`.
    pub(crate) fn saw(&self, err: redb::Error) -> redb::Error {
        if matches!(err, redb::Error::Io(_) | redb::Error::PreviousIo)
            && self.path.is_some()
            && !self.broken.swap(true, Ordering::AcqRel)
        {
            tracing::warn!(error = %err, file = %self.describe(), "database I/O failed; it will be reopened");
        }
        err
    }

    /// Whether an I/O failure is waiting for a reopen.
    #[cfg(test)]
    pub(crate) fn is_broken(&self) -> bool {
        self.broken.load(Ordering::Acquire)
    }

    fn describe(&self) -> String {
        self.path
            .as_deref()
            .map_or_else(|| "memory".to_owned(), |p| p.display().to_string())
    }

    fn reopen(&self) -> Result<(), Unavailable> {
        let Some(path) = &self.path else {
            return Err(Unavailable("an in-memory database failed".into()));
        };
        {
            let mut last = self.last_attempt.lock().unwrap_or_else(|e| e.into_inner());
            if last.is_some_and(|at| at.elapsed() < RETRY) {
                return Err(Unavailable(format!(
                    "{} failed with an I/O error; reopening it (every {RETRY:?})",
                    path.display()
                )));
            }
            *last = Some(Instant::now());
        }
        let reopened = self.reopen_now(path);
        if reopened.is_err() {
            // The interval counts from the end of a failed attempt (which may have waited).
            *self.last_attempt.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
        }
        reopened
    }

    fn reopen_now(&self, path: &Path) -> Result<(), Unavailable> {
        let mut slot = self.db.write().unwrap_or_else(|e| e.into_inner());
        if !self.broken.load(Ordering::Acquire) {
            // Another caller reopened it meanwhile.
            return Ok(());
        }
        if let Some(old) = slot.take() {
            // The file stays locked while any transaction holds the old database.
            let deadline = Instant::now() + DRAIN;
            while Arc::strong_count(&old) > 1 && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            if Arc::strong_count(&old) > 1 {
                *slot = Some(old);
                return Err(Unavailable(format!(
                    "{}: transactions still hold the failed database",
                    path.display()
                )));
            }
            drop(old);
        }
        let db = create(path)?;
        *slot = Some(Arc::new(db));
        self.broken.store(false, Ordering::Release);
        tracing::info!(file = %path.display(), "database reopened after an I/O failure");
        Ok(())
    }
}

fn create(path: &Path) -> Result<Database, Unavailable> {
    Database::create(path).map_err(|e| Unavailable(format!("opening {}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use redb::TableDefinition;

    const T: TableDefinition<u64, u64> = TableDefinition::new("t");

    fn write(file: &RedbFile, key: u64) -> Result<(), redb::Error> {
        let db = file
            .get()
            .map_err(|e| redb::Error::Corrupted(e.to_string()))?;
        let txn = db.begin_write().map_err(|e| file.saw(e.into()))?;
        {
            let mut table = txn.open_table(T).map_err(|e| file.saw(e.into()))?;
            table.insert(key, key).map_err(|e| file.saw(e.into()))?;
        }
        txn.commit().map_err(|e| file.saw(e.into()))
    }

    #[test]
    fn an_io_error_reopens_the_file_on_next_use_and_keeps_what_was_committed() {
        let dir = tempfile::tempdir().unwrap();
        let file = RedbFile::open(&dir.path().join("t.redb")).unwrap();
        write(&file, 1).unwrap();
        let _ = file.saw(redb::Error::PreviousIo);
        assert!(file.is_broken());
        write(&file, 2).unwrap();
        assert!(!file.is_broken());
        let db = file.get().unwrap();
        let txn = redb::ReadableDatabase::begin_read(&*db).unwrap();
        let table = txn.open_table(T).unwrap();
        assert!(redb::ReadableTable::get(&table, 1).unwrap().is_some());
        assert!(redb::ReadableTable::get(&table, 2).unwrap().is_some());
    }

    #[test]
    fn reopening_waits_for_transactions_and_is_rate_limited() {
        let dir = tempfile::tempdir().unwrap();
        let file = RedbFile::open(&dir.path().join("t.redb")).unwrap();
        let held = file.get().unwrap();
        let _ = file.saw(redb::Error::PreviousIo);
        // A holder that never lets go: the reopen gives up and says why.
        let err = file.get().unwrap_err();
        assert!(err.to_string().contains("still hold"), "{err}");
        drop(held);
        // Within the retry interval the next attempt is refused at once.
        let err = file.get().unwrap_err();
        assert!(err.to_string().contains("reopening"), "{err}");
        std::thread::sleep(RETRY);
        assert!(file.get().is_ok());
    }

    #[test]
    fn other_errors_do_not_break_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = RedbFile::open(&dir.path().join("t.redb")).unwrap();
        let _ = file.saw(redb::Error::Corrupted("x".into()));
        assert!(!file.is_broken());
    }
}
