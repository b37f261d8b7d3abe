//! Task payloads and results as files under `<data-dir>/tasks/`: `payloads/<token>` and
//! `results/<token>`. Every file is written to a temporary name, synced, and renamed into place,
//! so a reader (or a restart after a crash) sees a whole file or none.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::io::AsyncWriteExt;

use super::TaskId;
use super::spool::Spool;
use crate::body::Taken;
use crate::disk::{Disk, Hold};

/// The probe file's size: one page, the least a write to a full disk can fail on.
const PROBE_BYTES: usize = 4096;

#[derive(Debug, Clone)]
pub(crate) struct TaskFiles {
    root: PathBuf,
    /// The data directory's filesystem: payloads that would leave less than
    /// `--min-free-disk` free are refused.
    pub(crate) disk: Arc<Disk>,
    /// Whether this process removes the files of the tasks it queues (its queue is the
    /// embedded one), so what they hold of their clients' shares of the disk is kept here.
    keeps_holds: bool,
    /// What the payloads and results this process will remove hold of their clients' shares
    /// of the disk: given back when the file goes.
    holds: Arc<Mutex<HashMap<(TaskId, Kind), Hold>>>,
}

/// A task's file, for what it holds of the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Payload,
    Result,
}

impl TaskFiles {
    /// Files under `data_dir/tasks`, whose directories are created here, keeping `min_free`
    /// bytes free on their filesystem.
    #[cfg(test)]
    pub(crate) fn new(data_dir: &Path, min_free: u64) -> io::Result<Self> {
        Self::on(data_dir, Disk::new(data_dir, min_free))
    }

    /// Files under `data_dir/tasks`, on `disk` (the data directory's filesystem, with its
    /// minimum and its clients' shares).
    pub(crate) fn on(data_dir: &Path, disk: Disk) -> io::Result<Self> {
        let root = data_dir.join("tasks");
        for sub in ["payloads", "results"] {
            std::fs::create_dir_all(root.join(sub))?;
        }
        Ok(Self {
            root,
            disk: Arc::new(disk),
            keeps_holds: false,
            holds: Arc::default(),
        })
    }

    /// These files, where this process removes the files of the tasks it queues (the
    /// embedded queue): what a payload or result holds of its client's share of the disk
    /// lasts until the file is removed. With Redis another process's worker or sweeper may
    /// remove it where this one cannot see, so nothing is kept.
    pub(crate) fn keeping_holds(mut self) -> Self {
        self.keeps_holds = true;
        self
    }

    /// Keeps `hold`, what the payload of `id` holds of its client's share of the disk, until
    /// the payload is removed here (when [`TaskFiles::keeping_holds`]; else it ends now).
    pub(crate) fn keep_hold(&self, id: TaskId, hold: Hold) {
        self.keep(id, Kind::Payload, hold);
    }

    fn keep(&self, id: TaskId, kind: Kind, hold: Hold) {
        if self.keeps_holds {
            self.lock_holds().insert((id, kind), hold);
        }
    }

    /// Holds again what the payload and result of a task hold of its client's share, found
    /// at start (nothing for a file that is not there).
    pub(crate) fn hold_again(&self, id: TaskId, client: &str) {
        if !self.keeps_holds {
            return;
        }
        for (kind, path) in [
            (Kind::Payload, self.payload(id)),
            (Kind::Result, self.result(id)),
        ] {
            if let Ok(meta) = std::fs::metadata(path) {
                let hold = self.disk.held_already(crate::turns::ip(client), meta.len());
                self.keep(id, kind, hold);
            }
        }
    }

    fn lock_holds(&self) -> std::sync::MutexGuard<'_, HashMap<(TaskId, Kind), Hold>> {
        self.holds.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn payload(&self, id: TaskId) -> PathBuf {
        self.root.join("payloads").join(id.to_string())
    }

    pub(crate) fn result(&self, id: TaskId) -> PathBuf {
        self.root.join("results").join(id.to_string())
    }

    /// Starts writing the payload of `id`, its blocks in `memory` ([`Spool::create`]).
    pub(crate) async fn spool(&self, id: TaskId, memory: Taken) -> io::Result<Spool> {
        Spool::create(self.payload(id), memory).await
    }

    /// Writes a whole payload, held by its client's `hold`, unless it would cross
    /// `--min-free-disk` or the client's share of the room above it (`StorageFull`).
    pub(crate) async fn write_payload(
        &self,
        id: TaskId,
        bytes: &[u8],
        hold: &mut Hold,
    ) -> io::Result<()> {
        hold.grow(bytes.len() as u64)?;
        write_durably(&self.payload(id), bytes).await
    }

    /// Writes the result of `task`, which counts in its client's share of the disk until it is
    /// removed (it is not refused: the work is done; the client's next uploads are).
    pub(crate) async fn write_result(
        &self,
        task: &super::TaskRecord,
        bytes: &[u8],
    ) -> io::Result<()> {
        write_durably(&self.result(task.id), bytes).await?;
        if self.keeps_holds {
            let client = task.client.as_deref().and_then(crate::turns::ip);
            let hold = self.disk.held_already(client, bytes.len() as u64);
            self.keep(task.id, Kind::Result, hold);
        }
        Ok(())
    }

    /// Writes and removes a small file where payloads are spooled, durably as a payload is:
    /// the health check's probe of the upload path (a full disk fails it).
    pub(crate) async fn probe(&self) -> io::Result<()> {
        self.disk
            .room_for(PROBE_BYTES as u64)
            .map_err(|why| io::Error::new(io::ErrorKind::StorageFull, why))?;
        let path = self.root.join("payloads").join(".health-probe");
        write_durably(&path, &[0u8; PROBE_BYTES]).await?;
        tokio::fs::remove_file(&path).await
    }

    pub(crate) async fn read_payload(&self, id: TaskId) -> io::Result<Vec<u8>> {
        tokio::fs::read(self.payload(id)).await
    }

    /// The result file open for reading, with its length, or `None` when there is none (yet,
    /// or any more).
    pub(crate) async fn open_result(
        &self,
        id: TaskId,
    ) -> io::Result<Option<(tokio::fs::File, u64)>> {
        match tokio::fs::File::open(self.result(id)).await {
            Ok(file) => {
                let len = file.metadata().await?.len();
                Ok(Some((file, len)))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The result, or `None` when there is none (yet, or any more).
    #[cfg(test)]
    pub(crate) async fn read_result(&self, id: TaskId) -> io::Result<Option<Vec<u8>>> {
        match tokio::fs::read(self.result(id)).await {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Removes the task's payload and result, whichever exist.
    pub(crate) async fn remove(&self, id: TaskId) {
        self.remove_payload(id).await;
        let _ = tokio::fs::remove_file(self.result(id)).await;
        self.lock_holds().remove(&(id, Kind::Result));
    }

    /// The payload is not needed once the task is done; its client's hold on the disk goes
    /// with it.
    pub(crate) async fn remove_payload(&self, id: TaskId) {
        let _ = tokio::fs::remove_file(self.payload(id)).await;
        self.lock_holds().remove(&(id, Kind::Payload));
    }

    /// Removes what a crash can leave behind: temporary files (an upload being spooled, a file
    /// being written) not modified for `stale` (all of them with `None`, when this process
    /// alone uses the directory), and, when the tasks that exist are `known`, payloads and
    /// results of tasks that do not. Returns how many files went. Blocking: for start-up.
    pub(crate) fn sweep_leftovers(
        &self,
        stale: Option<std::time::Duration>,
        known: Option<&std::collections::HashSet<TaskId>>,
    ) -> usize {
        let mut removed = 0;
        for sub in ["payloads", "results"] {
            let Ok(entries) = std::fs::read_dir(self.root.join(sub)) else {
                continue;
            };
            for entry in entries.flatten() {
                let name = entry.file_name();
                let name = name.to_string_lossy();
                let leftover = if name.starts_with('.') {
                    stale.is_none_or(|stale| {
                        entry
                            .metadata()
                            .and_then(|m| m.modified())
                            .ok()
                            .and_then(|at| at.elapsed().ok())
                            .is_some_and(|age| age >= stale)
                    })
                } else {
                    match (known, TaskId::parse(&name)) {
                        (Some(known), Some(id)) => !known.contains(&id),
                        _ => false,
                    }
                };
                if leftover && std::fs::remove_file(entry.path()).is_ok() {
                    removed += 1;
                }
            }
        }
        removed
    }
}

/// Temporary file, `fsync`, rename, `fsync` the directory: after a crash the file is whole or
/// absent.
async fn write_durably(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let temp = dir.join(format!(".{name}.{:016x}.tmp", rand::random::<u64>()));
    let written = async {
        let mut file = tokio::fs::File::create(&temp).await?;
        file.write_all(bytes).await?;
        file.sync_all().await?;
        tokio::fs::rename(&temp, path).await?;
        tokio::fs::File::open(dir).await?.sync_all().await
    }
    .await;
    if written.is_err() {
        let _ = tokio::fs::remove_file(&temp).await;
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tasks::spool::tests::memory;

    #[tokio::test]
    async fn a_spool_lands_whole_or_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let files = TaskFiles::new(dir.path(), 0).unwrap();
        let mut spool = files.spool(TaskId(1), memory()).await.unwrap();
        spool.write(b"1 2 ").await.unwrap();
        spool.write(b"3").await.unwrap();
        spool.commit().await.unwrap();
        assert_eq!(files.read_payload(TaskId(1)).await.unwrap(), b"1 2 3");
        let mut broken = files.spool(TaskId(2), memory()).await.unwrap();
        broken.write(b"4 5").await.unwrap();
        drop(broken);
        let left: Vec<_> = std::fs::read_dir(dir.path().join("tasks/payloads"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            left,
            [TaskId(1).to_string()],
            "the dropped upload left nothing"
        );
    }

    #[tokio::test]
    async fn files_round_trip_and_go() {
        let dir = tempfile::tempdir().unwrap();
        let files = TaskFiles::new(dir.path(), 0).unwrap().keeping_holds();
        let id = TaskId(42);
        let mut hold = files.disk.hold(None);
        files.write_payload(id, b"in", &mut hold).await.unwrap();
        files.keep_hold(id, hold);
        assert_eq!(files.read_payload(id).await.unwrap(), b"in");
        assert_eq!(files.read_result(id).await.unwrap(), None);
        let mut task = super::super::TaskRecord::new(id, super::super::TaskKind::Randomize, 0);
        task.client = Some("addr:192.0.2.1 id:a".into());
        files.write_result(&task, b"out").await.unwrap();
        assert_eq!(
            files.read_result(id).await.unwrap().as_deref(),
            Some(&b"out"[..])
        );
        assert_eq!(files.disk.held(), 5, "the payload and the result count");
        files.remove_payload(id).await;
        assert_eq!(files.disk.held(), 3, "the result still counts");
        files.remove(id).await;
        assert_eq!(files.disk.held(), 0);
        assert!(files.read_payload(id).await.is_err());
        assert_eq!(files.read_result(id).await.unwrap(), None);
        let left: Vec<_> = std::fs::read_dir(dir.path().join("tasks/payloads"))
            .unwrap()
            .collect();
        assert!(left.is_empty(), "no temporary files stay behind");
    }

    #[test]
    fn leftovers_of_a_crash_are_swept() {
        let dir = tempfile::tempdir().unwrap();
        let files = TaskFiles::new(dir.path(), 0).unwrap();
        let payloads = dir.path().join("tasks/payloads");
        let results = dir.path().join("tasks/results");
        let (kept, orphan) = (TaskId(1), TaskId(2));
        std::fs::write(payloads.join(kept.to_string()), b"kept").unwrap();
        std::fs::write(results.join(orphan.to_string()), b"orphan").unwrap();
        std::fs::write(payloads.join(format!(".{orphan}.upload")), b"half").unwrap();
        std::fs::write(results.join(".x.0123.tmp"), b"half").unwrap();
        // Shared directory: only stale temporary files go, and these are new.
        let hour = std::time::Duration::from_secs(3600);
        assert_eq!(files.sweep_leftovers(Some(hour), None), 0);
        // This process's own directory, with the tasks it knows.
        let known = std::collections::HashSet::from([kept]);
        assert_eq!(files.sweep_leftovers(None, Some(&known)), 3);
        let left: Vec<_> = std::fs::read_dir(&payloads)
            .unwrap()
            .chain(std::fs::read_dir(&results).unwrap())
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, vec![std::ffi::OsString::from(kept.to_string())]);
    }
}
