//! Fair scheduling of sum-evens work: every running job is cut into chunks, and the lanes that
//! sum chunks take them round robin across clients (then first come, first served among one
//! client's jobs). A client with a 5 GB job and a client with a 10 MB job each get every other
//! chunk, so the small job finishes in about twice its time on an idle service, however big the
//! other one is; several chunks of one job run at once when no one else is waiting, so a lone big
//! job still uses every lane.
//!
//! A job is either a whole file ([`FairScheduler::sum`]) or an upload still arriving
//! ([`FairScheduler::incoming`]): its chunks are handed out as they land, each once a separator
//! past its end is on disk (so the number its last token starts is whole), and the job ends when
//! its length is known and every chunk is summed.

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use metrics::Counter;
use tokio::sync::{Notify, oneshot};

use super::held::{ACROSS_UPLOADS, Held, HeldSource};
use super::parse::{BadToken, Partial, is_separator};
use super::range::{BLOCK, RangeError, sum_range};
use crate::body::Budget;
use crate::compute::ComputePool;
use crate::turns::Rotation;

/// How much of a file one chunk covers.
pub const CHUNK: u64 = 8 << 20;

/// A job's length while its upload is still arriving.
const GROWING: u64 = u64::MAX;

/// Why a job failed.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error(transparent)]
    Bad(#[from] BadToken),
    #[error("{0}")]
    Io(String),
}

/// Bytes summed, counted by whether their upload was still arriving then
/// (`glassbox_sum_evens_summed_bytes_total{phase}`).
#[derive(Debug, Clone)]
pub struct Summed {
    pub receiving: Counter,
    pub received: Counter,
}

impl Default for Summed {
    fn default() -> Self {
        Self {
            receiving: Counter::noop(),
            received: Counter::noop(),
        }
    }
}

/// The scheduler: lanes (as many as the compute pool has threads) and the jobs they share.
/// The lanes end when the last clone of it is dropped.
#[derive(Debug, Clone)]
pub struct FairScheduler {
    inner: Arc<Inner>,
    _lanes: Arc<Lanes>,
}

#[derive(Debug)]
struct Inner {
    state: Mutex<State>,
    work: Notify,
    compute: ComputePool,
    summed: Summed,
    /// What arriving uploads keep in memory for their sums, together.
    keeping: Arc<Budget>,
}

/// Held by every clone of the scheduler, not by the lanes: dropping the last one tells the
/// lanes to end.
#[derive(Debug)]
struct Lanes(Arc<Inner>);

impl Drop for Lanes {
    fn drop(&mut self) {
        self.0.lock().closed = true;
        self.0.work.notify_waiters();
    }
}

#[derive(Debug, Default)]
struct State {
    /// Set when the scheduler is dropped: the lanes end.
    closed: bool,
    /// Clients with jobs, in turn order ([`Rotation`]: addresses, then the clients of one).
    turns: Rotation,
    jobs: HashMap<String, VecDeque<Arc<Job>>>,
}

#[derive(Debug)]
struct Job {
    /// The file, until its last chunk is handed out (the lanes summing hold it after that).
    file: Mutex<Option<Arc<File>>>,
    /// An arriving upload's latest blocks, in memory.
    held: Option<Held>,
    /// The file's length, or [`GROWING`] while its upload is still arriving. Set under the
    /// outcome's lock, so a job ends exactly once.
    len: AtomicU64,
    /// While growing: the offset of the last separator known to be on disk. A chunk ending
    /// at or before it can be summed.
    separator: AtomicU64,
    /// The next chunk to hand out, by its start (changed under the state's lock).
    next: AtomicU64,
    /// Chunks handed out and not yet summed.
    summing: AtomicU64,
    progress: Arc<AtomicU64>,
    outcome: Mutex<Outcome>,
    /// Nobody waits for the sum any more (its task timed out or stopped, its upload broke
    /// off): the chunks left are not summed.
    abandoned: AtomicBool,
}

#[derive(Debug)]
struct Outcome {
    partial: Partial,
    /// The earliest bad token any chunk found.
    bad: Option<BadToken>,
    io: Option<String>,
    chunks_done: u64,
    done: Option<oneshot::Sender<Result<Partial, JobError>>>,
}

impl Job {
    fn new(
        file: File,
        len: u64,
        held: Option<Held>,
        progress: Arc<AtomicU64>,
    ) -> (Arc<Self>, Finished) {
        let (done, finished) = oneshot::channel();
        let job = Arc::new(Job {
            file: Mutex::new(Some(Arc::new(file))),
            held,
            len: AtomicU64::new(len),
            separator: AtomicU64::new(0),
            next: AtomicU64::new(0),
            summing: AtomicU64::new(0),
            progress,
            outcome: Mutex::new(Outcome {
                partial: Partial::default(),
                bad: None,
                io: None,
                chunks_done: 0,
                done: Some(done),
            }),
            abandoned: AtomicBool::new(false),
        });
        (job, finished)
    }

    fn outcome(&self) -> std::sync::MutexGuard<'_, Outcome> {
        self.outcome.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The next chunk that can be summed now: its start and how far its last token may be
    /// read (the file's length, or just past a separator that has landed). While the upload
    /// arrives, one chunk at a time: one lane parses faster than a connection delivers, and
    /// more would take the cores that receive it.
    fn take_chunk(&self) -> Option<(u64, u64)> {
        let start = self.next.load(Ordering::Relaxed);
        let len = self.len.load(Ordering::Acquire);
        let readable = if len == GROWING {
            let separator = self.separator.load(Ordering::Acquire);
            if start + CHUNK > separator || self.summing.load(Ordering::Acquire) > 0 {
                return None;
            }
            separator + 1
        } else if start < len {
            len
        } else {
            return None;
        };
        self.next.store(start + CHUNK, Ordering::Relaxed);
        self.summing.fetch_add(1, Ordering::AcqRel);
        Some((start, readable))
    }

    /// Every chunk is handed out: the job leaves its client's queue.
    fn handed_out(&self) -> bool {
        let len = self.len.load(Ordering::Acquire);
        len != GROWING && self.next.load(Ordering::Relaxed) >= len
    }

    /// Sends the result when the length is known and every chunk is summed.
    fn end_if_done(outcome: &mut Outcome, len: u64) {
        if len == GROWING || outcome.chunks_done < len.div_ceil(CHUNK) {
            return;
        }
        let result = match (outcome.bad.take(), outcome.io.take()) {
            (_, Some(io)) => Err(JobError::Io(io)),
            (Some(bad), None) => Err(JobError::Bad(bad)),
            (None, None) => Ok(std::mem::take(&mut outcome.partial)),
        };
        if let Some(done) = outcome.done.take() {
            let _ = done.send(result);
        }
    }
}

/// Where a job's result arrives.
type Finished = oneshot::Receiver<Result<Partial, JobError>>;

async fn result_of(finished: Finished) -> Result<Partial, JobError> {
    finished
        .await
        .map_err(|_| JobError::Io("the scheduler stopped".into()))?
}

impl FairScheduler {
    /// Starts `lanes` lanes that sum chunks on `compute`, counting the bytes summed in
    /// `summed`.
    pub fn start(lanes: usize, compute: ComputePool, summed: Summed) -> Self {
        let inner = Arc::new(Inner {
            state: Mutex::new(State::default()),
            work: Notify::new(),
            compute,
            summed,
            keeping: Budget::new(ACROSS_UPLOADS),
        });
        for _ in 0..lanes.max(1) {
            tokio::spawn(lane(inner.clone()));
        }
        Self {
            _lanes: Arc::new(Lanes(inner.clone())),
            inner,
        }
    }

    /// Bytes of arriving uploads kept in memory for their sums now, and the most there may be.
    pub(crate) fn kept_bytes(&self) -> (usize, usize) {
        (self.inner.keeping.used(), ACROSS_UPLOADS)
    }

    /// Sums the file at `path` for `client`; `progress` counts the bytes summed so far.
    pub async fn sum(
        &self,
        client: &str,
        path: &Path,
        progress: Arc<AtomicU64>,
    ) -> Result<Partial, JobError> {
        let file =
            File::open(path).map_err(|e| JobError::Io(format!("opening the upload: {e}")))?;
        let len = file
            .metadata()
            .map_err(|e| JobError::Io(format!("reading the upload's size: {e}")))?
            .len();
        if len == 0 {
            return Ok(Partial::default());
        }
        let (job, finished) = Job::new(file, len, None, progress);
        self.queue(client, job, finished).sum().await
    }

    /// Starts summing an upload for `client` while it arrives in `file` (opened for reading
    /// on the file being written): tell the handle where separators land and, at the end, the
    /// length. Blocks given to [`Incoming::held`] are summed from memory.
    pub fn incoming(&self, client: &str, file: File) -> Incoming {
        let held = Held::new(self.inner.keeping.clone());
        let (job, finished) = Job::new(file, GROWING, Some(held), Arc::default());
        self.queue(client, job, finished)
    }

    /// Queues `job` behind `client`'s other jobs; the handle gives it up when dropped.
    fn queue(&self, client: &str, job: Arc<Job>, finished: Finished) -> Incoming {
        self.inner.add(client, job.clone());
        Incoming {
            job,
            client: client.to_owned(),
            inner: self.inner.clone(),
            finished: Some(finished),
            pending: VecDeque::new(),
        }
    }
}

/// A job in the scheduler: an upload being summed as it arrives (or, inside
/// [`FairScheduler::sum`], a whole file). Dropped before [`Incoming::sum`] finishes, the job is
/// abandoned: it leaves the queue, and the chunks already handed out are not summed.
#[derive(Debug)]
pub struct Incoming {
    job: Arc<Job>,
    client: String,
    inner: Arc<Inner>,
    finished: Option<Finished>,
    /// The last separator of each piece written and not yet known to have landed.
    pending: VecDeque<u64>,
}

impl Incoming {
    /// `data`, at `offset` in the upload, was handed to the file.
    pub fn written(&mut self, offset: u64, data: &[u8]) {
        if let Some(i) = data.iter().rposition(|&b| is_separator(b)) {
            self.pending.push_back(offset + i as u64);
        }
    }

    /// The upload's first `len` bytes are in the file: the chunks that end before a separator
    /// among them can be summed.
    pub fn landed(&mut self, len: u64) {
        let mut last = None;
        while let Some(&separator) = self.pending.front()
            && separator < len
        {
            last = Some(separator);
            self.pending.pop_front();
        }
        if let Some(separator) = last {
            self.separator_landed(separator);
        }
    }

    /// A separator at `offset` is in the file, with everything before it.
    fn separator_landed(&self, offset: u64) {
        let before = self.job.separator.swap(offset, Ordering::AcqRel);
        if before / CHUNK != offset / CHUNK {
            self.inner.work.notify_waiters();
        }
    }

    /// The upload ended, `len` bytes long and all on disk: the rest can be summed.
    pub fn finish(&self, len: u64) {
        {
            let mut outcome = self.job.outcome();
            self.job.len.store(len, Ordering::Release);
            Job::end_if_done(&mut outcome, len);
        }
        self.inner.work.notify_waiters();
    }

    /// Where the spool gives the blocks it has written, so they are summed in memory.
    pub(crate) fn held(&self) -> Option<Held> {
        self.job.held.clone()
    }

    /// Bytes summed so far.
    pub fn progress(&self) -> Arc<AtomicU64> {
        self.job.progress.clone()
    }

    /// Waits for the sum of the whole file (of an upload, call [`Incoming::finish`] first).
    pub async fn sum(mut self) -> Result<Partial, JobError> {
        let finished = self.finished.take().expect("summed once");
        result_of(finished).await
    }
}

impl Drop for Incoming {
    /// Once the sum has arrived this changes nothing; before, the job is given up.
    fn drop(&mut self) {
        self.job.abandoned.store(true, Ordering::Relaxed);
        self.inner.remove(&self.client, &self.job);
    }
}

/// What a lane does next.
enum Next {
    Chunk(Arc<Job>, HeldSource, u64, u64),
    Wait,
    End,
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `job` behind `client`'s other jobs.
    fn add(&self, client: &str, job: Arc<Job>) {
        {
            let mut state = self.lock();
            let queue = state.jobs.entry(client.to_owned()).or_default();
            queue.push_back(job);
            if queue.len() == 1 {
                state.turns.join(client);
            }
        }
        self.work.notify_waiters();
    }

    /// Takes an abandoned job out of `client`'s queue.
    fn remove(&self, client: &str, job: &Arc<Job>) {
        let mut state = self.lock();
        let Some(queue) = state.jobs.get_mut(client) else {
            return;
        };
        queue.retain(|queued| !Arc::ptr_eq(queued, job));
        if queue.is_empty() {
            state.jobs.remove(client);
            state.turns.leave(client);
        }
    }

    /// The next chunk: from the job of the client whose turn it is.
    fn next(&self) -> Next {
        let mut state = self.lock();
        if state.closed {
            return Next::End;
        }
        match Self::next_chunk(&mut state) {
            Some((job, file, start, readable)) => Next::Chunk(job, file, start, readable),
            None => Next::Wait,
        }
    }

    /// Clients take turns; a client's jobs go first come, first served, except that a job
    /// whose next chunk has not landed yet lets the client's next job go. A client with
    /// nothing ready keeps its place in the turns.
    fn next_chunk(state: &mut State) -> Option<(Arc<Job>, HeldSource, u64, u64)> {
        let State { turns, jobs, .. } = state;
        turns.serve(|client| {
            let Some(queue) = jobs.get_mut(client) else {
                return (None, false);
            };
            // An empty upload has no chunk to hand out.
            queue.retain(|job| !job.handed_out());
            let found = queue.iter().enumerate().find_map(|(i, job)| {
                let (start, readable) = job.take_chunk()?;
                let file = job.file.lock().unwrap_or_else(|e| e.into_inner()).clone()?;
                // An arriving upload's blocks in memory are taken now, before its next ones
                // push them out: the range, the byte before it and what its last token may
                // run into.
                let source = match &job.held {
                    Some(held) => held.source(file, start.saturating_sub(1), readable),
                    None => HeldSource::file(file),
                };
                Some((i, job.clone(), source, start, readable))
            });
            if let Some((i, job, _, _, _)) = &found
                && job.handed_out()
            {
                job.file.lock().unwrap_or_else(|e| e.into_inner()).take();
                if let Some(held) = &job.held {
                    held.release();
                }
                queue.remove(*i);
            }
            let stays = !queue.is_empty();
            if !stays {
                jobs.remove(client);
            }
            let chunk =
                found.map(|(_, job, source, start, readable)| (job, source, start, readable));
            (chunk, stays)
        })
    }
}

/// One lane: takes the next chunk, sums it on the compute pool, merges it into its job, until
/// the scheduler is dropped.
async fn lane(me: Arc<Inner>) {
    let mut buf = Some(vec![0u8; BLOCK]);
    loop {
        let notified = me.work.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let (job, source, start, readable) = match me.next() {
            Next::Chunk(job, source, start, readable) => (job, source, start, readable),
            Next::Wait => {
                notified.await;
                continue;
            }
            Next::End => return,
        };
        let end = (start + CHUNK).min(readable);
        // A chunk after a bad token already found cannot hold the first one; a job nobody
        // waits for needs no more sums.
        let skip = job.abandoned.load(Ordering::Relaxed)
            || job
                .outcome()
                .bad
                .as_ref()
                .is_some_and(|bad| bad.offset < start);
        let result = if skip {
            Ok(Partial::default())
        } else {
            let mut block = buf.take().unwrap_or_else(|| vec![0u8; BLOCK]);
            match me
                .compute
                .run(move || {
                    let result = sum_range(&source, start, end, readable, &mut block);
                    (result, block)
                })
                .await
            {
                Ok((result, block)) => {
                    buf = Some(block);
                    result
                }
                Err(e) => Err(RangeError::Io(std::io::Error::other(e))),
            }
        };
        job.progress.fetch_add(end - start, Ordering::Relaxed);
        me.finish_chunk(&job, (!skip).then_some(end - start), result);
    }
}

impl Inner {
    /// Merges a chunk's result into its job; `summed` is its size unless it was skipped.
    fn finish_chunk(&self, job: &Job, summed: Option<u64>, result: Result<Partial, RangeError>) {
        let mut outcome = job.outcome();
        match result {
            Ok(partial) => outcome.partial.merge(&partial),
            Err(RangeError::Bad(bad)) => {
                if outcome
                    .bad
                    .as_ref()
                    .is_none_or(|known| bad.offset < known.offset)
                {
                    outcome.bad = Some(bad);
                }
            }
            Err(RangeError::Io(e)) => {
                outcome.io.get_or_insert_with(|| e.to_string());
            }
        }
        outcome.chunks_done += 1;
        job.summing.fetch_sub(1, Ordering::AcqRel);
        let len = job.len.load(Ordering::Acquire);
        match summed {
            Some(bytes) if len == GROWING => self.summed.receiving.increment(bytes),
            Some(bytes) => self.summed.received.increment(bytes),
            None => {}
        }
        Job::end_if_done(&mut outcome, len);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sum_evens::parse::sum_bytes;
    use std::io::Write;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_job_over_many_chunks_sums_like_the_whole() {
        let mut text = String::new();
        let mut i: u64 = 0;
        while text.len() < (CHUNK as usize) * 2 + 12345 {
            text.push_str(&format!("{} ", i * 7919 % 1_000_003));
            i += 1;
        }
        text.push_str("-12345678901234567890123456789012345678901234");
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(text.as_bytes()).unwrap();
        let scheduler = FairScheduler::start(2, ComputePool::new(2), Summed::default());
        let progress = Arc::new(AtomicU64::new(0));
        let got = scheduler
            .sum("a", file.path(), progress.clone())
            .await
            .unwrap();
        assert_eq!(got, sum_bytes(text.as_bytes()).unwrap());
        assert_eq!(progress.load(Ordering::Relaxed), text.len() as u64);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_earliest_bad_token_wins_across_chunks() {
        let mut text = "2 ".repeat(CHUNK as usize); // two chunks of numbers
        text.push_str("x 4 ");
        text.push_str(&"2 ".repeat(CHUNK as usize));
        text.push('y');
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(text.as_bytes()).unwrap();
        let scheduler = FairScheduler::start(2, ComputePool::new(2), Summed::default());
        let err = scheduler
            .sum("a", file.path(), Arc::new(AtomicU64::new(0)))
            .await
            .unwrap_err();
        assert!(
            matches!(err, JobError::Bad(BadToken { offset, .. }) if offset == 2 * CHUNK),
            "{err}"
        );
    }

    /// The scheduler's state and pool with no lane running: a test takes chunks itself.
    fn lanes_without_runner() -> Inner {
        Inner {
            state: Mutex::new(State::default()),
            work: Notify::new(),
            compute: ComputePool::new(1),
            summed: Summed::default(),
            keeping: Budget::new(ACROSS_UPLOADS),
        }
    }

    /// A whole file of `len` bytes to sum, as a job.
    fn job(len: u64) -> Arc<Job> {
        Job::new(tempfile::tempfile().unwrap(), len, None, Arc::default()).0
    }

    #[test]
    fn turns_alternate_between_clients() {
        let inner = lanes_without_runner();
        {
            let mut state = inner.state.lock().unwrap();
            state
                .jobs
                .insert("big".into(), VecDeque::from([job(10 * CHUNK), job(CHUNK)]));
            state
                .jobs
                .insert("small".into(), VecDeque::from([job(2 * CHUNK)]));
            state.turns.join("big");
            state.turns.join("small");
        }
        let mut order = Vec::new();
        while let Next::Chunk(job, _, start, _) = inner.next() {
            order.push((job.len.load(Ordering::Relaxed) / CHUNK, start / CHUNK));
        }
        // big's first job, small's job, alternating until small is done; then big alone.
        assert_eq!(&order[..4], &[(10, 0), (2, 0), (10, 1), (2, 1)]);
        assert_eq!(order.len(), 10 + 1 + 2);
        assert_eq!(order.last(), Some(&(1, 0)));
    }

    /// A client that sends each job under a new `X-Client-Id` from one address gets its
    /// address's turns, no more: the other address's job still gets every other chunk.
    #[test]
    fn ids_divide_their_address_turns_and_add_none() {
        let inner = lanes_without_runner();
        {
            let mut state = inner.state.lock().unwrap();
            for (client, chunks) in [
                ("addr:192.0.2.1 id:1", 1),
                ("addr:192.0.2.1 id:2", 2),
                ("addr:192.0.2.1 id:3", 3),
                ("addr:192.0.2.2", 4),
            ] {
                state
                    .jobs
                    .insert(client.into(), VecDeque::from([job(chunks * CHUNK)]));
                state.turns.join(client);
            }
        }
        let mut order = Vec::new();
        while let Next::Chunk(job, ..) = inner.next() {
            order.push(job.len.load(Ordering::Relaxed) / CHUNK);
        }
        // The jobs are told apart by their lengths: 192.0.2.2's is the 4-chunk one.
        assert_eq!(order, [1, 4, 2, 4, 3, 4, 2, 4, 3, 3]);
    }

    /// An upload arriving: a chunk is handed out only once a separator past its end has
    /// landed; meanwhile the client's next job and other clients go on.
    #[test]
    fn a_growing_job_hands_out_chunks_as_separators_land() {
        let inner = Arc::new(lanes_without_runner());
        let (growing, _finished) =
            Job::new(tempfile::tempfile().unwrap(), GROWING, None, Arc::default());
        let (whole, _whole_finished) =
            Job::new(tempfile::tempfile().unwrap(), CHUNK, None, Arc::default());
        inner.add("a", growing.clone());
        inner.add("a", whole);
        let incoming = Incoming {
            job: growing,
            client: "a".into(),
            inner: inner.clone(),
            finished: None,
            pending: VecDeque::new(),
        };
        let chunk = |inner: &Inner| match inner.next() {
            Next::Chunk(job, _, start, readable) => {
                Some((job.len.load(Ordering::Relaxed), start, readable))
            }
            _ => None,
        };
        // Nothing of the upload has landed: the client's whole file goes first.
        assert_eq!(chunk(&inner), Some((CHUNK, 0, CHUNK)));
        assert_eq!(chunk(&inner), None);
        // A number runs past the first chunk's end: the chunk waits for its separator.
        incoming.separator_landed(CHUNK - 1);
        assert_eq!(chunk(&inner), None);
        incoming.separator_landed(CHUNK + 5);
        assert_eq!(chunk(&inner), Some((GROWING, 0, CHUNK + 6)));
        assert_eq!(chunk(&inner), None);
        // While it arrives, one chunk at a time.
        incoming.separator_landed(2 * CHUNK + 5);
        assert_eq!(chunk(&inner), None, "the first chunk is still being summed");
        // The end: every lane may take the rest; the last, short chunk reads to the length.
        let len = 2 * CHUNK + 100;
        incoming.finish(len);
        assert_eq!(chunk(&inner), Some((len, CHUNK, len)));
        assert_eq!(chunk(&inner), Some((len, 2 * CHUNK, len)));
        assert_eq!(chunk(&inner), None);
        assert!(inner.lock().jobs.is_empty(), "every job handed out");
    }

    /// Writes `text` into a file in pieces of `piece` bytes, telling `incoming` where each
    /// piece's last separator landed, as the upload route does.
    fn arrive(file: &mut std::fs::File, incoming: &mut Incoming, text: &[u8], piece: usize) {
        let mut written = 0u64;
        for part in text.chunks(piece) {
            incoming.written(written, part);
            file.write_all(part).unwrap();
            written += part.len() as u64;
            incoming.landed(written);
        }
        incoming.finish(written);
    }

    /// A file an upload is written to (removed with the directory), and a reader of it.
    fn upload_file() -> (tempfile::TempDir, std::fs::File, File) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("upload");
        let writer = std::fs::File::create(&path).unwrap();
        let reader = File::open(&path).unwrap();
        (dir, writer, reader)
    }

    fn numbers(len: usize) -> String {
        let mut text = String::new();
        let mut i: u64 = 0;
        while text.len() < len {
            text.push_str(&format!("{} ", i * 7919 % 1_000_003));
            i += 1;
        }
        // A number of far more digits than a chunk's margin, across a chunk boundary.
        text.push_str(&"9".repeat(3 << 20));
        text.push_str(" -1234567890123456789012345678901234567890 ");
        text.push_str(&"2 ".repeat(CHUNK as usize / 2));
        text
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_upload_summed_as_it_arrives_sums_like_the_whole_file() {
        let text = numbers(2 * CHUNK as usize - (1 << 20));
        let (_dir, mut writer, reader) = upload_file();
        let scheduler = FairScheduler::start(2, ComputePool::new(2), Summed::default());
        let mut incoming = scheduler.incoming("a", reader);
        let progress = incoming.progress();
        arrive(&mut writer, &mut incoming, text.as_bytes(), 1 << 20);
        let got = incoming.sum().await.unwrap();
        assert_eq!(got, sum_bytes(text.as_bytes()).unwrap());
        assert_eq!(progress.load(Ordering::Relaxed), text.len() as u64);
    }

    /// The upload route's spool gives every block it has written to the sum: nothing is
    /// read back from the file while the lanes keep up.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_upload_kept_in_memory_is_summed_without_reading_it_back() {
        use super::super::held::BLOCK as HELD_BLOCK;
        use crate::direct_io::Aligned;
        let text = numbers(2 * CHUNK as usize - (1 << 20));
        let (_dir, mut writer, reader) = upload_file();
        let scheduler = FairScheduler::start(2, ComputePool::new(2), Summed::default());
        let mut incoming = scheduler.incoming("a", reader);
        let held = incoming.held().expect("an arriving upload keeps blocks");
        let progress = incoming.progress();
        let mut at = 0u64;
        for block in text.as_bytes().chunks(HELD_BLOCK) {
            // No faster than the lanes sum (as a connection delivers, on a machine that is
            // not busy): the chunk being summed is still among the blocks kept.
            while at + 2 * HELD_BLOCK as u64 > progress.load(Ordering::Relaxed) + 2 * CHUNK {
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
            incoming.written(at, block);
            writer.write_all(block).unwrap();
            held.keep(at, Aligned::copy_of(block, HELD_BLOCK));
            at += block.len() as u64;
            incoming.landed(at);
        }
        incoming.finish(at);
        let got = incoming.sum().await.unwrap();
        assert_eq!(got, sum_bytes(text.as_bytes()).unwrap());
        assert_eq!(held.read_back(), 0, "every chunk was summed in memory");
        assert_eq!(
            scheduler.inner.keeping.used(),
            0,
            "given back once summed, while the upload's handle is still held"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_bad_number_in_an_arriving_upload_is_the_first_one() {
        let mut text = "2 ".repeat(CHUNK as usize);
        text.push_str("x 4 ");
        text.push_str(&"2 ".repeat(CHUNK as usize));
        text.push('y');
        let (_dir, mut writer, reader) = upload_file();
        let scheduler = FairScheduler::start(2, ComputePool::new(2), Summed::default());
        let mut incoming = scheduler.incoming("a", reader);
        arrive(&mut writer, &mut incoming, text.as_bytes(), 300_001);
        let err = incoming.sum().await.unwrap_err();
        assert!(
            matches!(err, JobError::Bad(BadToken { offset, .. }) if offset == 2 * CHUNK),
            "{err}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_empty_upload_sums_to_nothing_and_leaves_no_job() {
        let file = tempfile::NamedTempFile::new().unwrap();
        let scheduler = FairScheduler::start(2, ComputePool::new(2), Summed::default());
        let incoming = scheduler.incoming("a", File::open(file.path()).unwrap());
        incoming.finish(0);
        assert_eq!(incoming.sum().await.unwrap(), Partial::default());
        assert!(scheduler.inner.lock().jobs.is_empty());
    }

    /// An upload that breaks off leaves the scheduler: a lone whole file after it is summed,
    /// and nothing of the broken one is.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_broken_off_upload_is_dropped_from_the_queue() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("upload");
        std::fs::write(&path, "2 ".repeat(CHUNK as usize)).unwrap();
        let scheduler = FairScheduler::start(2, ComputePool::new(2), Summed::default());
        let incoming = scheduler.incoming("a", File::open(&path).unwrap());
        drop(incoming);
        assert!(scheduler.inner.lock().jobs.is_empty());
        let got = scheduler.sum("a", &path, Arc::default()).await.unwrap();
        assert_eq!(got.evens, CHUNK, "the whole file after it, summed");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_lanes_end_with_the_scheduler() {
        let scheduler = FairScheduler::start(2, ComputePool::new(2), Summed::default());
        let inner = Arc::downgrade(&scheduler.inner);
        let copy = scheduler.clone();
        drop(scheduler);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(inner.upgrade().is_some(), "a clone keeps the lanes");
        drop(copy);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while inner.upgrade().is_some() {
            assert!(
                std::time::Instant::now() < deadline,
                "the lanes still hold the scheduler"
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }
}
