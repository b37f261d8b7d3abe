//! The embedded store: a redb database in the data directory, written by one thread that
//! groups concurrent writes into shared commits.
//!
//! A request's write waits in a queue for the writer thread. The writer takes everything
//! queued (up to [`MAX_BATCH`] messages or [`MAX_BATCH_BYTES`]), writes it in one transaction,
//! commits it durably (`fsync`), and only then answers every waiting request. While one commit
//! is on its way to disk, the next batch gathers, so under load a single fsync acknowledges
//! many messages, and with one client each write still commits at once.
//!
//! After an I/O failure (a full disk) the file is reopened on the next write
//! ([`RedbFile`]), so the store recovers by itself once space is back. `/health` sends a probe
//! through the same writer: a tiny durable commit, which fails while writes fail.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;

use futures_util::future::BoxFuture;
use redb::{Durability, ReadableDatabase, ReadableTableMetadata, TableDefinition};

use crate::forwarded;
use crate::redb_file::RedbFile;
use tokio::sync::{mpsc, oneshot};

use super::{Digest, ErrorKind, MessageStore, Put, StoreError};

/// Messages by digest.
const MESSAGES: TableDefinition<[u8; 32], &str> = TableDefinition::new("messages");
/// The bytes of the messages each client added, by its address ([`forwarded::client_of`]):
/// what they hold of its share of the disk, found again at start.
const CLIENT_BYTES: TableDefinition<&str, u64> = TableDefinition::new("client_bytes");
/// The health probe's one row: when it last wrote (unix milliseconds).
const PROBE: TableDefinition<u8, u64> = TableDefinition::new("health_probe");
/// The most messages one commit takes.
pub(crate) const MAX_BATCH: usize = 4096;
/// The most message bytes one commit takes (it always takes at least one message).
pub(crate) const MAX_BATCH_BYTES: usize = 16 * 1024 * 1024;
/// Bytes of messages the writer adds to its clients' counts before it writes the counts
/// ([`CLIENT_BYTES`]) with a commit, and at shutdown: a crash forgets at most this much of
/// them. Written with every commit, the counts were a page more in each and cost the store
/// about 6 % of its messages a second.
const CLIENT_BYTES_EVERY: u64 = 1 << 20;
/// Writes waiting for the writer; senders wait when it is full.
const QUEUE: usize = 8192;

/// The database file inside the data directory.
pub(crate) const FILE_NAME: &str = "messages.redb";

/// The redb store. Reads run on the blocking pool; writes go through the writer thread.
#[derive(Debug)]
pub(crate) struct EmbeddedStore {
    file: Arc<RedbFile>,
    location: String,
    count: Arc<AtomicU64>,
    /// [`CLIENT_BYTES`] as it was at start.
    stored_by_client: Vec<(IpAddr, u64)>,
    writes: Option<mpsc::Sender<Job>>,
    writer: Option<JoinHandle<u64>>,
}

/// What the writer thread commits.
#[derive(Debug)]
enum Job {
    Write(Write),
    /// The health probe: a durable commit of one small row.
    Probe(oneshot::Sender<Result<(), StoreError>>),
}

#[derive(Debug)]
struct Write {
    digest: Digest,
    message: String,
    client: Option<IpAddr>,
    done: oneshot::Sender<Result<Put, StoreError>>,
}

impl Job {
    fn bytes(&self) -> usize {
        match self {
            Self::Write(write) => write.message.len(),
            Self::Probe(_) => 0,
        }
    }
}

impl EmbeddedStore {
    /// Opens (or creates) `data_dir/messages.redb`. After a crash redb checks and repairs the
    /// file here, before the service answers anything.
    pub(crate) fn open(
        data_dir: &Path,
        batch_sizes: metrics::Histogram,
    ) -> Result<Self, StoreError> {
        let path: PathBuf = data_dir.join(FILE_NAME);
        let file = RedbFile::open(&path).map_err(backend)?;
        Self::start(file, path.display().to_string(), batch_sizes)
    }

    /// A store that lives in memory only, for tests of the code around it.
    #[cfg(test)]
    pub(crate) fn in_memory(batch_sizes: metrics::Histogram) -> Result<Self, StoreError> {
        use redb::backends::InMemoryBackend;
        let db = redb::Database::builder()
            .create_with_backend(InMemoryBackend::new())
            .map_err(backend)?;
        Self::start(RedbFile::from_database(db), "memory".into(), batch_sizes)
    }

    fn start(
        file: Arc<RedbFile>,
        location: String,
        batch_sizes: metrics::Histogram,
    ) -> Result<Self, StoreError> {
        let db = file.get().map_err(backend)?;
        let txn = db.begin_write().map_err(backend)?;
        let count = txn.open_table(MESSAGES).map_err(backend)?.len();
        let stored_by_client =
            read_client_bytes(&txn.open_table(CLIENT_BYTES).map_err(backend)?).map_err(backend)?;
        txn.commit().map_err(backend)?;
        drop(db);
        let count = Arc::new(AtomicU64::new(count.map_err(backend)?));
        let (writes, queue) = mpsc::channel(QUEUE);
        let writer = Writer {
            file: file.clone(),
            count: count.clone(),
            batch_sizes,
            unwritten: HashMap::new(),
            unwritten_bytes: 0,
        };
        let writer = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || writer.run(queue))
            .map_err(backend)?;
        Ok(Self {
            file,
            location,
            count,
            stored_by_client,
            writes: Some(writes),
            writer: Some(writer),
        })
    }
}

/// The rows of [`CLIENT_BYTES`] whose address reads back.
fn read_client_bytes(
    table: &impl redb::ReadableTable<&'static str, u64>,
) -> Result<Vec<(IpAddr, u64)>, redb::StorageError> {
    let mut rows = Vec::new();
    for row in table.iter()? {
        let (client, bytes) = row?;
        if let Ok(ip) = client.value().parse() {
            rows.push((ip, bytes.value()));
        }
    }
    Ok(rows)
}

fn backend(err: impl std::fmt::Display) -> StoreError {
    StoreError::new(ErrorKind::Backend, err.to_string())
}

impl MessageStore for EmbeddedStore {
    fn backend(&self) -> &'static str {
        "embedded"
    }

    fn location(&self) -> String {
        self.location.clone()
    }

    fn put(
        &self,
        digest: Digest,
        message: String,
        client: Option<IpAddr>,
    ) -> BoxFuture<'_, Result<Put, StoreError>> {
        Box::pin(async move {
            let writes = self.writes.as_ref().ok_or_else(closed)?;
            let (done, answer) = oneshot::channel();
            writes
                .send(Job::Write(Write {
                    digest,
                    message,
                    client,
                    done,
                }))
                .await
                .map_err(|_| closed())?;
            answer.await.map_err(|_| closed())?
        })
    }

    fn get(&self, digest: Digest) -> BoxFuture<'_, Result<Option<String>, StoreError>> {
        let file = self.file.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                let failed = |e: redb::Error| backend(file.saw(e));
                let db = file.get().map_err(backend)?;
                let txn = db.begin_read().map_err(|e| failed(e.into()))?;
                let table = txn.open_table(MESSAGES).map_err(|e| failed(e.into()))?;
                let found =
                    redb::ReadableTable::get(&table, digest.0).map_err(|e| failed(e.into()))?;
                Ok(found.map(|message| message.value().to_owned()))
            })
            .await
            .map_err(backend)?
        })
    }

    fn count(&self) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(async move { Ok(self.count.load(Ordering::Acquire)) })
    }

    fn stored_by_client(&self) -> Vec<(IpAddr, u64)> {
        self.stored_by_client.clone()
    }

    fn probe(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            let writes = self.writes.as_ref().ok_or_else(closed)?;
            let (done, answer) = oneshot::channel();
            writes.send(Job::Probe(done)).await.map_err(|_| closed())?;
            answer.await.map_err(|_| closed())?
        })
    }
}

fn closed() -> StoreError {
    StoreError::new(ErrorKind::Backend, "the store writer has stopped")
}

impl Drop for EmbeddedStore {
    /// Lets the writer finish what is queued and closes the database cleanly, so the next
    /// start needs no repair.
    fn drop(&mut self) {
        drop(self.writes.take());
        if let Some(writer) = self.writer.take()
            && let Ok(commits) = writer.join()
        {
            tracing::debug!(location = %self.location, commits, "store closed");
        }
    }
}

/// The thread that owns every write.
struct Writer {
    file: Arc<RedbFile>,
    count: Arc<AtomicU64>,
    batch_sizes: metrics::Histogram,
    /// Bytes each client added since its count was last written, and all of them.
    unwritten: HashMap<IpAddr, u64>,
    unwritten_bytes: u64,
}

impl Writer {
    /// Commits batches until every sender is gone; returns how many commits it made.
    fn run(mut self, mut queue: mpsc::Receiver<Job>) -> u64 {
        let mut commits = 0;
        let mut batch = Vec::with_capacity(MAX_BATCH);
        while let Some(first) = queue.blocking_recv() {
            let mut bytes = first.bytes();
            batch.push(first);
            while batch.len() < MAX_BATCH && bytes < MAX_BATCH_BYTES {
                match queue.try_recv() {
                    Ok(job) => {
                        bytes += job.bytes();
                        batch.push(job);
                    }
                    Err(_) => break,
                }
            }
            self.batch_sizes.record(batch.len() as f64);
            commits += 1;
            match self.commit(&batch, false) {
                Ok(outcomes) => {
                    let created = outcomes.iter().filter(|o| **o == Put::Created).count();
                    self.count.fetch_add(created as u64, Ordering::Release);
                    let mut outcomes = outcomes.into_iter();
                    for job in batch.drain(..) {
                        match job {
                            Job::Write(write) => {
                                if let Some(outcome) = outcomes.next() {
                                    let _ = write.done.send(Ok(outcome));
                                }
                            }
                            Job::Probe(done) => {
                                let _ = done.send(Ok(()));
                            }
                        }
                    }
                }
                Err(err) => {
                    for job in batch.drain(..) {
                        match job {
                            Job::Write(write) => {
                                let _ = write.done.send(Err(err.clone()));
                            }
                            Job::Probe(done) => {
                                let _ = done.send(Err(err.clone()));
                            }
                        }
                    }
                }
            }
        }
        if self.unwritten_bytes > 0 {
            commits += 1;
            if let Err(err) = self.commit(&[], true) {
                tracing::warn!(error = %err, "the clients' message bytes could not be written");
            }
        }
        commits
    }

    /// Writes the batch in one durable transaction, with the clients' counts when
    /// [`CLIENT_BYTES_EVERY`] bytes are unwritten or `all_counts`; nothing of it is kept if
    /// that fails. Returns the writes' outcomes, in order.
    fn commit(&mut self, batch: &[Job], all_counts: bool) -> Result<Vec<Put>, StoreError> {
        let file = self.file.clone();
        let failed = |e: redb::Error| backend(file.saw(e));
        let db = self.file.get().map_err(backend)?;
        let mut txn = db.begin_write().map_err(|e| failed(e.into()))?;
        txn.set_durability(Durability::Immediate)
            .map_err(|e| failed(e.into()))?;
        let mut outcomes = Vec::with_capacity(batch.len());
        let mut added: HashMap<IpAddr, u64> = HashMap::new();
        {
            let mut table = txn.open_table(MESSAGES).map_err(|e| failed(e.into()))?;
            for job in batch {
                let Job::Write(write) = job else {
                    continue;
                };
                let existed = redb::ReadableTable::get(&table, write.digest.0)
                    .map_err(|e| failed(e.into()))?
                    .is_some();
                if existed {
                    outcomes.push(Put::Existed);
                } else {
                    table
                        .insert(write.digest.0, write.message.as_str())
                        .map_err(|e| failed(e.into()))?;
                    outcomes.push(Put::Created);
                    if let Some(client) = write.client {
                        *added.entry(forwarded::client_of(client)).or_default() +=
                            write.message.len() as u64;
                    }
                }
            }
        }
        let added_bytes: u64 = added.values().sum();
        let write_counts = all_counts || self.unwritten_bytes + added_bytes >= CLIENT_BYTES_EVERY;
        if write_counts {
            let mut by_client = txn.open_table(CLIENT_BYTES).map_err(|e| failed(e.into()))?;
            let mut counts = self.unwritten.clone();
            for (client, bytes) in &added {
                *counts.entry(*client).or_default() += bytes;
            }
            for (client, bytes) in counts {
                let key = client.to_string();
                let before = redb::ReadableTable::get(&by_client, key.as_str())
                    .map_err(|e| failed(e.into()))?
                    .map_or(0, |b| b.value());
                by_client
                    .insert(key.as_str(), before + bytes)
                    .map_err(|e| failed(e.into()))?;
            }
        }
        if batch.iter().any(|job| matches!(job, Job::Probe(_))) {
            let mut probe = txn.open_table(PROBE).map_err(|e| failed(e.into()))?;
            probe
                .insert(0, crate::tasks::now_ms())
                .map_err(|e| failed(e.into()))?;
        }
        txn.commit().map_err(|e| failed(e.into()))?;
        if write_counts {
            self.unwritten.clear();
            self.unwritten_bytes = 0;
        } else {
            for (client, bytes) in added {
                *self.unwritten.entry(client).or_default() += bytes;
            }
            self.unwritten_bytes += added_bytes;
        }
        Ok(outcomes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn histogram() -> metrics::Histogram {
        metrics::Histogram::noop()
    }

    #[tokio::test]
    async fn writes_read_back_and_repeats_are_not_counted_twice() {
        let store = EmbeddedStore::in_memory(histogram()).unwrap();
        let foo = Digest::of("foo");
        assert_eq!(store.get(foo).await.unwrap(), None);
        assert_eq!(
            store.put(foo, "foo".into(), None).await.unwrap(),
            Put::Created
        );
        assert_eq!(
            store.put(foo, "foo".into(), None).await.unwrap(),
            Put::Existed
        );
        assert_eq!(store.get(foo).await.unwrap().as_deref(), Some("foo"));
        assert_eq!(store.count().await.unwrap(), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writes_all_land_and_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(EmbeddedStore::open(dir.path(), histogram()).unwrap());
        let writers: Vec<_> = (0..200)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move {
                    let message = format!("message {i}");
                    store.put(Digest::of(&message), message, None).await
                })
            })
            .collect();
        for writer in writers {
            assert_eq!(writer.await.unwrap().unwrap(), Put::Created);
        }
        assert_eq!(store.count().await.unwrap(), 200);
        drop(Arc::into_inner(store).expect("the only reference"));
        // Reopened from disk, every message is there and the count is rebuilt.
        let store = EmbeddedStore::open(dir.path(), histogram()).unwrap();
        assert_eq!(store.count().await.unwrap(), 200);
        for i in [0, 99, 199] {
            let message = format!("message {i}");
            assert_eq!(
                store.get(Digest::of(&message)).await.unwrap(),
                Some(message)
            );
        }
    }

    #[tokio::test]
    async fn each_client_s_added_bytes_are_counted_and_found_again_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let v4: IpAddr = "192.0.2.1".parse().unwrap();
        let (v6, v6_neighbour): (IpAddr, IpAddr) = (
            "2001:db8::1".parse().unwrap(),
            "2001:db8::ffff".parse().unwrap(),
        );
        {
            let store = EmbeddedStore::open(dir.path(), histogram()).unwrap();
            assert!(store.stored_by_client().is_empty());
            for (message, client) in [
                ("four", Some(v4)),
                ("four", Some(v4)), // already there: not counted again
                ("seven b", Some(v4)),
                ("ipv6", Some(v6)),
                ("same /64", Some(v6_neighbour)),
                ("nobody's", None),
            ] {
                store
                    .put(Digest::of(message), message.into(), client)
                    .await
                    .unwrap();
            }
        }
        let store = EmbeddedStore::open(dir.path(), histogram()).unwrap();
        let mut counted = store.stored_by_client();
        counted.sort();
        assert_eq!(
            counted,
            [(v4, 11), ("2001:db8::".parse().unwrap(), 12)],
            "by address, an IPv6 client by its /64"
        );
    }

    #[tokio::test]
    async fn client_counts_are_written_every_mib_of_messages_and_at_shutdown() {
        let dir = tempfile::tempdir().unwrap();
        let client: IpAddr = "192.0.2.1".parse().unwrap();
        let store = EmbeddedStore::open(dir.path(), histogram()).unwrap();
        let written = || {
            let db = store.file.get().unwrap();
            let txn = db.begin_read().unwrap();
            match txn.open_table(CLIENT_BYTES) {
                Ok(table) => read_client_bytes(&table).unwrap(),
                Err(_) => Vec::new(),
            }
        };
        let put = |message: String| store.put(Digest::of(&message), message, Some(client));
        put("small".into()).await.unwrap();
        assert!(written().is_empty(), "held back below a MiB");
        put("x".repeat(CLIENT_BYTES_EVERY as usize)).await.unwrap();
        assert_eq!(written(), [(client, 5 + CLIENT_BYTES_EVERY)]);
        put("after".into()).await.unwrap();
        drop(store);
        let store = EmbeddedStore::open(dir.path(), histogram()).unwrap();
        assert_eq!(
            store.stored_by_client(),
            [(client, 10 + CLIENT_BYTES_EVERY)],
            "the rest written at shutdown"
        );
    }

    #[test]
    fn queued_writes_go_to_disk_in_shared_commits() {
        let db = redb::Database::builder()
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .unwrap();
        let (writes, queue) = mpsc::channel(QUEUE);
        let total = MAX_BATCH + 10;
        let answers: Vec<_> = (0..total)
            .map(|i| {
                let (done, answer) = oneshot::channel();
                let message = format!("m{}", i % (total - 1)); // one repeat
                writes
                    .try_send(Job::Write(Write {
                        digest: Digest::of(&message),
                        message,
                        client: None,
                        done,
                    }))
                    .unwrap();
                answer
            })
            .collect();
        drop(writes);
        let count = Arc::new(AtomicU64::new(0));
        let writer = Writer {
            file: RedbFile::from_database(db),
            count: count.clone(),
            batch_sizes: histogram(),
            unwritten: HashMap::new(),
            unwritten_bytes: 0,
        };
        assert_eq!(writer.run(queue), 2, "a full batch, then the rest");
        let outcomes: Vec<Put> = answers
            .into_iter()
            .map(|a| a.blocking_recv().unwrap().unwrap())
            .collect();
        assert_eq!(outcomes.last(), Some(&Put::Existed));
        assert_eq!(count.load(Ordering::Acquire), total as u64 - 1);
    }

    #[test]
    fn a_second_process_cannot_open_the_same_file() {
        let dir = tempfile::tempdir().unwrap();
        let _first = EmbeddedStore::open(dir.path(), histogram()).unwrap();
        let second = EmbeddedStore::open(dir.path(), histogram()).unwrap_err();
        assert!(second.detail.contains("messages.redb"), "{second}");
    }
}
