//! The embedded queue: task records in `<data-dir>/tasks.redb`, a bounded in-process queue of
//! tokens, in-process workers.
//!
//! Every state change is committed durably before it is acted on, so after a crash or a
//! restart the records say exactly which tasks were not finished: those are queued again (in
//! the order they were requested), and a task that was running counts one more attempt.
//! Finished and errored tasks are kept until `--task-ttl` after they ended, then their records
//! and files are removed.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use crate::redb_file::RedbFile;
use tokio::sync::Notify;

use super::fair::{FairLine, Tally};
use super::files::TaskFiles;
use super::{
    Places, QueueCounts, QueueError, TaskId, TaskQueue, TaskRecord, TaskSource, TaskState, now_ms,
};

/// Task records by token, as JSON.
const TASKS: TableDefinition<u128, &str> = TableDefinition::new("tasks");
/// The health probe's one row: when it last wrote (unix milliseconds).
const PROBE: TableDefinition<u8, u64> = TableDefinition::new("health_probe");

/// The database file inside the data directory.
pub(crate) const FILE_NAME: &str = "tasks.redb";

#[derive(Debug)]
pub(crate) struct EmbeddedQueue {
    /// Reopened after an I/O failure, so the queue heals once the disk has room again.
    file: Arc<RedbFile>,
    location: String,
    /// Tasks waiting for a worker, round robin between clients.
    line: Mutex<Line>,
    /// Wakes a worker when a task joins the line.
    arrived: Notify,
    places: Places,
    /// Tasks by state, kept in step with the records.
    counts: Mutex<[u64; 4]>,
    ttl: Duration,
    files: TaskFiles,
}

#[derive(Debug, Default)]
struct Line {
    waiting: FairLine,
    /// Places promised to submissions still being recorded.
    reserved: Tally,
}

impl Line {
    /// Whether `client` would find a place: one in the queue, and one in its share.
    fn room_for(&self, client: &str, places: Places) -> Result<(), QueueError> {
        let (waiting, reserved) = (self.waiting.tally(), &self.reserved);
        places.admit(
            waiting.total() + reserved.total(),
            waiting.at_address_of(client) + reserved.at_address_of(client),
        )
    }
}

/// A place promised to a submission while its record is written: it becomes the task's place
/// in the line, or is given back when the submission fails or is dropped (its client went
/// away mid-write), so no place is lost.
struct Reservation<'a> {
    line: &'a Mutex<Line>,
    client: &'a str,
    taken: bool,
}

fn lock(line: &Mutex<Line>) -> std::sync::MutexGuard<'_, Line> {
    line.lock().unwrap_or_else(|e| e.into_inner())
}

impl<'a> Reservation<'a> {
    /// Promises `client` a place, if the queue and the client's share have one.
    fn new(line: &'a Mutex<Line>, client: &'a str, places: Places) -> Result<Self, QueueError> {
        let mut locked = lock(line);
        locked.room_for(client, places)?;
        locked.reserved.add(client);
        Ok(Self {
            line,
            client,
            taken: false,
        })
    }

    /// The task `id` takes the place, in one step so no other submission sees it free.
    fn take(mut self, id: TaskId) {
        let mut line = lock(self.line);
        line.reserved.remove(self.client);
        line.waiting.push(self.client, id);
        self.taken = true;
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if !self.taken {
            lock(self.line).reserved.remove(self.client);
        }
    }
}

fn unavailable(err: impl std::fmt::Display) -> QueueError {
    QueueError::unavailable(err)
}

impl EmbeddedQueue {
    /// Opens the records and queues again every task that had not finished (even more than
    /// the capacity: they were accepted; the capacity bounds new submissions).
    pub(crate) fn open(
        data_dir: &Path,
        places: Places,
        ttl: Duration,
        max_attempts: u32,
        files: TaskFiles,
    ) -> Result<Arc<Self>, QueueError> {
        let path = data_dir.join(FILE_NAME);
        let file = RedbFile::open(&path).map_err(unavailable)?;
        let db = file.get().map_err(unavailable)?;
        let Recovered {
            waiting,
            counts,
            known,
            clients,
        } = recover(&db, max_attempts).map_err(unavailable)?;
        drop(db);
        // The data directory is this process's alone (redb locks the file): whatever a crash
        // left half written, and files of tasks without a record, go now.
        let swept = files.sweep_leftovers(None, Some(&known));
        if swept > 0 {
            tracing::info!(files = swept, "removed files a crash left behind");
        }
        if waiting.len() > 0 {
            tracing::info!(tasks = waiting.len(), "queueing unfinished tasks again");
        }
        // Their payloads and results count in their clients' shares of the disk again.
        for (id, client) in &clients {
            files.hold_again(*id, client);
        }
        let line = Line {
            waiting,
            reserved: Tally::default(),
        };
        Ok(Arc::new(Self {
            file,
            location: path.display().to_string(),
            line: Mutex::new(line),
            arrived: Notify::new(),
            places,
            counts: Mutex::new(counts),
            ttl,
            files,
        }))
    }

    /// Deletes the records and files of tasks that ended more than the TTL ago.
    pub(crate) async fn remove_expired(&self) -> Result<usize, QueueError> {
        let cutoff = super::expiry_cutoff(self.ttl);
        let expired = self
            .with_db(move |db| -> Result<Vec<TaskRecord>, redb::Error> {
                let txn = db.begin_write()?;
                let mut expired = Vec::new();
                {
                    let mut table = txn.open_table(TASKS)?;
                    for entry in table.iter()? {
                        let (_, value) = entry?;
                        if let Ok(record) = serde_json::from_str::<TaskRecord>(value.value())
                            && record.state.is_final()
                            && record.finished_ms.is_some_and(|t| t < cutoff)
                        {
                            expired.push(record);
                        }
                    }
                    for record in &expired {
                        table.remove(record.id.0)?;
                    }
                }
                txn.commit()?;
                Ok(expired)
            })
            .await?;
        for record in &expired {
            self.count(Some(record.state), None);
            self.files.remove(record.id).await;
        }
        Ok(expired.len())
    }

    fn count(&self, from: Option<TaskState>, to: Option<TaskState>) {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(from) = from {
            counts[from as usize] = counts[from as usize].saturating_sub(1);
        }
        if let Some(to) = to {
            counts[to as usize] += 1;
        }
    }

    /// Runs `work` on the blocking pool with the database, reopened first if an I/O failure
    /// broke it; an I/O error from `work` breaks it until then.
    async fn with_db<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Database) -> Result<T, redb::Error> + Send + 'static,
    ) -> Result<T, QueueError> {
        let file = self.file.clone();
        tokio::task::spawn_blocking(move || {
            let db = file.get().map_err(unavailable)?;
            work(&db).map_err(|e| unavailable(file.saw(e)))
        })
        .await
        .map_err(unavailable)?
    }

    async fn write(&self, record: &TaskRecord) -> Result<(), QueueError> {
        let (key, value) = (
            record.id.0,
            serde_json::to_string(record).map_err(unavailable)?,
        );
        self.with_db(move |db| {
            let txn = db.begin_write()?;
            txn.open_table(TASKS)?.insert(key, value.as_str())?;
            txn.commit()?;
            Ok(())
        })
        .await
    }

    /// A durable write of a probe file where payloads go and of a probe row where records go,
    /// for `/health`: it fails while submissions would.
    pub(crate) async fn probe(&self) -> Result<(), QueueError> {
        self.files
            .probe()
            .await
            .map_err(|e| unavailable(format!("writing a task file: {e}")))?;
        self.with_db(|db| {
            let mut txn = db.begin_write()?;
            txn.set_durability(redb::Durability::Immediate)?;
            txn.open_table(PROBE)?.insert(0, super::now_ms())?;
            txn.commit()?;
            Ok(())
        })
        .await
    }

    async fn read(&self, id: TaskId) -> Result<Option<TaskRecord>, QueueError> {
        let text = self
            .with_db(move |db| {
                let txn = db.begin_read()?;
                let table = txn.open_table(TASKS)?;
                Ok(table.get(id.0)?.map(|v| v.value().to_owned()))
            })
            .await?;
        text.map(|t| serde_json::from_str(&t).map_err(unavailable))
            .transpose()
    }
}

/// Counts the records by state and lines up the unfinished ones, oldest first within each
/// client; a task that was running when the process stopped goes back to requested, or ends
/// errored once it has been started `max_attempts` times. Also returns every task id on
/// record.
/// What the queue's file holds at start.
struct Recovered {
    /// The unfinished tasks, waiting again.
    waiting: FairLine,
    /// Tasks by state.
    counts: [u64; 4],
    /// Every task with a record.
    known: std::collections::HashSet<TaskId>,
    /// Every task whose record reads, and its client.
    clients: Vec<(TaskId, String)>,
}

fn recover(db: &Database, max_attempts: u32) -> Result<Recovered, redb::Error> {
    let txn = db.begin_write()?;
    let mut counts = [0u64; 4];
    let mut unfinished = Vec::new();
    let mut clients = Vec::new();
    let mut known = std::collections::HashSet::new();
    {
        let mut table = txn.open_table(TASKS)?;
        let mut interrupted = Vec::new();
        for entry in table.iter()? {
            let (key, value) = entry?;
            // Known by its key even if its record cannot be read: its files stay.
            known.insert(TaskId(key.value()));
            let Ok(mut record) = serde_json::from_str::<TaskRecord>(value.value()) else {
                continue;
            };
            if record.state == TaskState::Received {
                if record.attempts >= max_attempts.max(1) {
                    // Started that often and stopped each time with its process: a task that
                    // kills its process would otherwise do it forever.
                    record.state = TaskState::Errored;
                    record.finished_ms = Some(now_ms());
                    record.error = Some(format!(
                        "gave up after {} attempts: the process running it stopped each time \
                         (--task-max-attempts)",
                        record.attempts
                    ));
                } else {
                    record.state = TaskState::Requested;
                }
                interrupted.push(record.clone());
            }
            counts[record.state as usize] += 1;
            clients.push((record.id, record.client_name().to_owned()));
            if !record.state.is_final() {
                unfinished.push((
                    record.created_ms,
                    record.id,
                    record.client_name().to_owned(),
                ));
            }
        }
        for record in interrupted {
            let text = serde_json::to_string(&record).unwrap_or_default();
            table.insert(record.id.0, text.as_str())?;
        }
    }
    txn.commit()?;
    unfinished.sort();
    let mut waiting = FairLine::default();
    for (_, id, client) in unfinished {
        waiting.push(&client, id);
    }
    Ok(Recovered {
        waiting,
        counts,
        known,
        clients,
    })
}

impl TaskQueue for EmbeddedQueue {
    fn backend(&self) -> &'static str {
        "embedded"
    }

    fn location(&self) -> String {
        self.location.clone()
    }

    fn places(&self) -> Places {
        self.places
    }

    fn submit(&self, task: TaskRecord) -> BoxFuture<'_, Result<(), QueueError>> {
        Box::pin(async move {
            let place = Reservation::new(&self.line, task.client_name(), self.places)?;
            self.write(&task).await?;
            place.take(task.id);
            self.count(None, Some(task.state));
            self.arrived.notify_one();
            Ok(())
        })
    }

    fn room_for<'a>(&'a self, client: &'a str) -> BoxFuture<'a, Result<(), QueueError>> {
        let answer = lock(&self.line).room_for(client, self.places);
        Box::pin(std::future::ready(answer))
    }

    fn get(&self, id: TaskId) -> BoxFuture<'_, Result<Option<TaskRecord>, QueueError>> {
        Box::pin(self.read(id))
    }

    fn sweep(&self) -> BoxFuture<'_, Result<usize, QueueError>> {
        Box::pin(self.remove_expired())
    }

    fn probe(&self) -> BoxFuture<'_, Result<(), QueueError>> {
        Box::pin(EmbeddedQueue::probe(self))
    }

    fn counts(&self) -> BoxFuture<'_, Result<QueueCounts, QueueError>> {
        Box::pin(async move {
            let counts = *self.counts.lock().unwrap_or_else(|e| e.into_inner());
            Ok(QueueCounts {
                depth: lock(&self.line).waiting.len() as u64,
                requested: counts[0],
                received: counts[1],
                finished: counts[2],
                errored: counts[3],
            })
        })
    }
}

impl TaskSource for EmbeddedQueue {
    fn take(&self) -> BoxFuture<'_, Result<Option<TaskRecord>, QueueError>> {
        Box::pin(async move {
            loop {
                let arrived = self.arrived.notified();
                tokio::pin!(arrived);
                arrived.as_mut().enable();
                let next = lock(&self.line).waiting.pop();
                let Some(id) = next else {
                    arrived.await;
                    continue;
                };
                // A task swept or finished meanwhile is skipped.
                let Some(mut task) = self.read(id).await? else {
                    continue;
                };
                if task.state != TaskState::Requested {
                    continue;
                }
                task.state = TaskState::Received;
                task.received_ms = Some(now_ms());
                task.attempts += 1;
                self.write(&task).await?;
                self.count(Some(TaskState::Requested), Some(TaskState::Received));
                return Ok(Some(task));
            }
        })
    }

    fn renew(&self, _: TaskId) -> BoxFuture<'_, Result<(), QueueError>> {
        Box::pin(async { Ok(()) })
    }

    fn complete(&self, task: TaskRecord) -> BoxFuture<'_, Result<(), QueueError>> {
        Box::pin(async move {
            self.write(&task).await?;
            self.count(Some(TaskState::Received), Some(task.state));
            Ok(())
        })
    }

    fn progress(&self, task: &TaskRecord) -> BoxFuture<'_, Result<(), QueueError>> {
        let task = task.clone();
        Box::pin(async move { self.write(&task).await })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tasks::TaskKind;

    fn open(dir: &Path, capacity: usize, ttl: Duration) -> Arc<EmbeddedQueue> {
        open_shared(dir, Places::new(capacity, 1.0), ttl)
    }

    fn open_shared(dir: &Path, places: Places, ttl: Duration) -> Arc<EmbeddedQueue> {
        EmbeddedQueue::open(dir, places, ttl, 3, TaskFiles::new(dir, 0).unwrap()).unwrap()
    }

    fn task(n: u128, created: u64) -> TaskRecord {
        TaskRecord::new(TaskId(n), TaskKind::Randomize, created)
    }

    #[tokio::test]
    async fn a_full_queue_refuses_and_states_move_and_are_counted() {
        let dir = tempfile::tempdir().unwrap();
        let queue = open(dir.path(), 2, Duration::from_secs(3600));
        queue.submit(task(1, 10)).await.unwrap();
        queue.submit(task(2, 20)).await.unwrap();
        assert!(matches!(
            queue.submit(task(3, 30)).await,
            Err(QueueError::Full)
        ));
        assert_eq!(
            queue.get(TaskId(3)).await.unwrap(),
            None,
            "a refused task is not recorded"
        );
        let counts = queue.counts().await.unwrap();
        assert_eq!((counts.depth, counts.requested), (2, 2));

        let mut taken = queue.take().await.unwrap().unwrap();
        assert_eq!(
            (taken.id, taken.state, taken.attempts),
            (TaskId(1), TaskState::Received, 1)
        );
        assert_eq!(
            queue.get(TaskId(1)).await.unwrap().unwrap().state,
            TaskState::Received
        );
        taken.state = TaskState::Finished;
        taken.finished_ms = Some(now_ms());
        queue.complete(taken).await.unwrap();
        let counts = queue.counts().await.unwrap();
        assert_eq!(
            (
                counts.depth,
                counts.requested,
                counts.received,
                counts.finished
            ),
            (1, 1, 0, 1)
        );
    }

    #[tokio::test]
    async fn an_address_holds_its_share_of_the_places_and_its_ids_share_it() {
        let dir = tempfile::tempdir().unwrap();
        let places = Places::new(4, 0.5);
        assert_eq!(
            places,
            Places {
                total: 4,
                per_client: 2
            }
        );
        let queue = open_shared(dir.path(), places, Duration::from_secs(3600));
        let from = |n: u128, client: &str| {
            let mut t = task(n, n as u64);
            t.client = Some(client.into());
            t
        };
        queue.submit(from(1, "addr:192.0.2.1 id:a")).await.unwrap();
        queue.submit(from(2, "addr:192.0.2.1 id:b")).await.unwrap();
        for client in ["addr:192.0.2.1 id:c", "addr:192.0.2.1"] {
            assert!(
                matches!(
                    queue.submit(from(3, client)).await,
                    Err(QueueError::ClientShare)
                ),
                "{client}: the address holds its two places"
            );
        }
        assert_eq!(queue.get(TaskId(3)).await.unwrap(), None, "not recorded");
        assert!(matches!(
            queue.room_for("addr:192.0.2.1 id:e").await,
            Err(QueueError::ClientShare)
        ));
        queue.room_for("addr:192.0.2.2").await.unwrap();
        queue.submit(from(4, "addr:192.0.2.2")).await.unwrap();
        queue.submit(from(5, "addr:192.0.2.3")).await.unwrap();
        assert!(
            matches!(
                queue.submit(from(6, "addr:192.0.2.4")).await,
                Err(QueueError::Full)
            ),
            "four waiting in all"
        );
        assert!(matches!(
            queue.room_for("addr:192.0.2.1 id:d").await,
            Err(QueueError::Full)
        ));
        // A task taken frees its address's place.
        assert_eq!(queue.take().await.unwrap().unwrap().id, TaskId(1));
        queue.room_for("addr:192.0.2.1 id:d").await.unwrap();
        queue.submit(from(7, "addr:192.0.2.1 id:d")).await.unwrap();
    }

    #[tokio::test]
    async fn a_submission_dropped_while_its_record_is_written_gives_its_place_back() {
        let dir = tempfile::tempdir().unwrap();
        let queue = open(dir.path(), 1, Duration::from_secs(3600));
        let mut submit = queue.submit(task(1, 1));
        // Polled once: the place is promised and the record's write is on the blocking pool.
        let polled = tokio::time::timeout(Duration::ZERO, &mut submit).await;
        drop(submit);
        if polled.is_err() {
            assert_eq!(lock(&queue.line).reserved.total(), 0, "the place is back");
            queue.submit(task(2, 2)).await.unwrap();
        }
    }

    #[test]
    fn a_share_is_at_least_one_place_and_at_most_all() {
        assert_eq!(Places::new(1000, 0.5).per_client, 500);
        assert_eq!(Places::new(3, 0.5).per_client, 2, "rounded up");
        assert_eq!(Places::new(10, 0.01).per_client, 1);
        assert_eq!(Places::new(10, 1.0).per_client, 10);
        assert_eq!(
            Places::new(0, 0.5),
            Places {
                total: 1,
                per_client: 1
            }
        );
    }

    #[tokio::test]
    async fn a_restart_queues_unfinished_tasks_again_in_order() {
        let dir = tempfile::tempdir().unwrap();
        {
            let queue = open(dir.path(), 10, Duration::from_secs(3600));
            for (n, created) in [(1, 30), (2, 10), (3, 20)] {
                queue.submit(task(n, created)).await.unwrap();
            }
            let running = queue.take().await.unwrap().unwrap(); // task 1, interrupted below
            assert_eq!(running.id, TaskId(1));
        }
        let queue = open(dir.path(), 10, Duration::from_secs(3600));
        let counts = queue.counts().await.unwrap();
        assert_eq!((counts.requested, counts.received), (3, 0));
        let mut order = Vec::new();
        for _ in 0..3 {
            let t = queue.take().await.unwrap().unwrap();
            order.push((t.id.0, t.attempts));
        }
        assert_eq!(
            order,
            [(2, 1), (3, 1), (1, 2)],
            "oldest request first; the interrupted one tried twice"
        );
    }

    #[tokio::test]
    async fn a_restart_holds_payloads_and_results_in_their_clients_shares_again() {
        let dir = tempfile::tempdir().unwrap();
        let shared = || {
            let disk = crate::disk::Disk::shared(dir.path(), 0, 0.5);
            TaskFiles::on(dir.path(), disk).unwrap().keeping_holds()
        };
        let places = Places::new(10, 1.0);
        let ttl = Duration::from_secs(3600);
        let client: std::net::IpAddr = "192.0.2.1".parse().unwrap();
        {
            let files = shared();
            let queue = EmbeddedQueue::open(dir.path(), places, ttl, 3, files.clone()).unwrap();
            for (n, bytes) in [(1, 3000), (2, 5000)] {
                let mut hold = files.disk.hold(Some(client));
                files
                    .write_payload(TaskId(n), &vec![b'2'; bytes], &mut hold)
                    .await
                    .unwrap();
                files.keep_hold(TaskId(n), hold);
                let mut t = task(n, n as u64);
                t.client = Some("addr:192.0.2.1 id:a".into());
                queue.submit(t).await.unwrap();
            }
            assert_eq!(files.disk.held(), 8000);
            files.remove_payload(TaskId(1)).await;
            assert_eq!(
                files.disk.held(),
                5000,
                "a removed payload's hold goes with it"
            );
            let mut done = queue.take().await.unwrap().unwrap();
            files.write_result(&done, &[b'r'; 700]).await.unwrap();
            done.state = TaskState::Finished;
            queue.complete(done).await.unwrap();
            assert_eq!(files.disk.held(), 5700, "a result counts too");
        }
        // Task 2 is unfinished: its payload is held for its client again; task 1's result
        // too, until it expires.
        let files = shared();
        let queue = EmbeddedQueue::open(dir.path(), places, ttl, 3, files.clone()).unwrap();
        assert_eq!(files.disk.held(), 5700);
        let taken = queue.take().await.unwrap().unwrap();
        assert_eq!(taken.id, TaskId(2));
        files.remove_payload(taken.id).await;
        assert_eq!(files.disk.held(), 700);
        files.remove(TaskId(1)).await;
        assert_eq!(files.disk.held(), 0);
    }

    #[tokio::test]
    async fn clients_take_turns_in_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let queue = open(dir.path(), 10, Duration::from_secs(3600));
        for (n, client) in [(1, "big"), (2, "big"), (3, "big"), (4, "small")] {
            let mut t = task(n, n as u64);
            t.client = Some(client.into());
            queue.submit(t).await.unwrap();
        }
        let mut order = Vec::new();
        for _ in 0..4 {
            order.push(queue.take().await.unwrap().unwrap().id.0);
        }
        assert_eq!(
            order,
            [1, 4, 2, 3],
            "the small client's task comes second, not last"
        );
    }

    #[tokio::test]
    async fn ended_tasks_expire_with_their_files() {
        let dir = tempfile::tempdir().unwrap();
        let queue = open(dir.path(), 10, Duration::from_millis(1));
        let files = &queue.files;
        files
            .write_payload(TaskId(1), b"x", &mut files.disk.hold(None))
            .await
            .unwrap();
        queue.submit(task(1, 1)).await.unwrap();
        let mut t = queue.take().await.unwrap().unwrap();
        queue.files.write_result(&t, b"y").await.unwrap();
        t.state = TaskState::Finished;
        t.finished_ms = Some(now_ms() - 10);
        queue.complete(t).await.unwrap();
        queue.submit(task(2, 2)).await.unwrap();
        assert_eq!(
            queue.remove_expired().await.unwrap(),
            1,
            "only the finished task"
        );
        assert_eq!(queue.get(TaskId(1)).await.unwrap(), None);
        assert_eq!(queue.files.read_result(TaskId(1)).await.unwrap(), None);
        assert!(queue.get(TaskId(2)).await.unwrap().is_some());
        assert_eq!(queue.counts().await.unwrap().finished, 0);
    }

    #[tokio::test]
    async fn a_task_its_process_stopped_too_often_ends_errored() {
        let dir = tempfile::tempdir().unwrap();
        {
            let queue = open(dir.path(), 10, Duration::from_secs(3600));
            queue.submit(task(1, 10)).await.unwrap();
        }
        // Three starts, each ended by the process stopping (the queue is dropped with the
        // task received, as a crash leaves it).
        for attempt in 1..=3 {
            let queue = open(dir.path(), 10, Duration::from_secs(3600));
            let taken = queue.take().await.unwrap().unwrap();
            assert_eq!(taken.attempts, attempt);
        }
        let queue = open(dir.path(), 10, Duration::from_secs(3600));
        let record = queue.get(TaskId(1)).await.unwrap().unwrap();
        assert_eq!(record.state, TaskState::Errored);
        assert!(
            record
                .error
                .as_deref()
                .unwrap()
                .contains("gave up after 3 attempts"),
            "{record:?}"
        );
        assert_eq!(queue.counts().await.unwrap().errored, 1);
        assert_eq!(queue.counts().await.unwrap().depth, 0);
    }
}
