//! Fair scheduling of sum-evens work: every running job is cut into chunks, and the lanes that
//! sum chunks take them round robin across clients (then first come, first served among one
//! client's jobs). A client with a 5 GB job and a client with a 10 MB job each get every other
//! chunk, so the small job finishes in about twice its time on an idle service, however big the
//! other one is; several chunks of one job run at once when no one else is waiting, so a lone big
//! job still uses every lane.

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{Notify, oneshot};

use super::parse::{BadToken, Partial};
use super::range::{BLOCK, RangeError, sum_range};
use crate::compute::ComputePool;

/// How much of a file one chunk covers.
pub const CHUNK: u64 = 8 << 20;

/// Why a job failed.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error(transparent)]
    Bad(#[from] BadToken),
    #[error("{0}")]
    Io(String),
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
}

/// Held by every clone of the scheduler, not by the lanes: dropping the last one tells the
/// lanes to end.
#[derive(Debug)]
struct Lanes(Arc<Inner>);

impl Drop for Lanes {
    fn drop(&mut self) {
        self.0
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .closed = true;
        self.0.work.notify_waiters();
    }
}

#[derive(Debug, Default)]
struct State {
    /// Set when the scheduler is dropped: the lanes end.
    closed: bool,
    /// Clients with chunks left to hand out, in turn order.
    turns: VecDeque<String>,
    jobs: HashMap<String, VecDeque<Arc<Job>>>,
}

#[derive(Debug)]
struct Job {
    file: Arc<File>,
    len: u64,
    /// The next chunk to hand out, by its start.
    next: AtomicU64,
    progress: Arc<AtomicU64>,
    outcome: Mutex<Outcome>,
    /// Nobody waits for the sum any more (its task timed out or stopped): the chunks left
    /// are skipped, not summed.
    abandoned: AtomicBool,
}

/// Marks its job abandoned when the sum is no longer awaited.
struct Abandon(Arc<Job>);

impl Drop for Abandon {
    fn drop(&mut self) {
        self.0.abandoned.store(true, Ordering::Relaxed);
    }
}

#[derive(Debug)]
struct Outcome {
    partial: Partial,
    /// The earliest bad token any chunk found.
    bad: Option<BadToken>,
    io: Option<String>,
    chunks_left: u64,
    done: Option<oneshot::Sender<Result<Partial, JobError>>>,
}

impl FairScheduler {
    /// Starts `lanes` lanes that sum chunks on `compute`.
    pub fn start(lanes: usize, compute: ComputePool) -> Self {
        let inner = Arc::new(Inner {
            state: Mutex::new(State::default()),
            work: Notify::new(),
            compute,
        });
        for _ in 0..lanes.max(1) {
            tokio::spawn(lane(inner.clone()));
        }
        Self {
            _lanes: Arc::new(Lanes(inner.clone())),
            inner,
        }
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
        let (done, finished) = oneshot::channel();
        let job = Arc::new(Job {
            file: Arc::new(file),
            len,
            next: AtomicU64::new(0),
            progress,
            outcome: Mutex::new(Outcome {
                partial: Partial::default(),
                bad: None,
                io: None,
                chunks_left: len.div_ceil(CHUNK),
                done: Some(done),
            }),
            abandoned: AtomicBool::new(false),
        });
        let _abandon = Abandon(job.clone());
        {
            let mut state = self.inner.state.lock().unwrap_or_else(|e| e.into_inner());
            let queue = state.jobs.entry(client.to_owned()).or_default();
            queue.push_back(job);
            if queue.len() == 1 {
                state.turns.push_back(client.to_owned());
            }
        }
        self.inner.work.notify_waiters();
        finished
            .await
            .map_err(|_| JobError::Io("the scheduler stopped".into()))?
    }
}

/// What a lane does next.
enum Next {
    Chunk(Arc<Job>, u64),
    Wait,
    End,
}

impl Inner {
    /// The next chunk: from the job of the client whose turn it is.
    fn next(&self) -> Next {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.closed {
            return Next::End;
        }
        match Self::next_chunk(&mut state) {
            Some((job, start)) => Next::Chunk(job, start),
            None => Next::Wait,
        }
    }

    fn next_chunk(state: &mut State) -> Option<(Arc<Job>, u64)> {
        let client = state.turns.pop_front()?;
        let queue = state.jobs.get_mut(&client)?;
        let job = queue.front()?.clone();
        let start = job.next.fetch_add(CHUNK, Ordering::Relaxed);
        if start + CHUNK >= job.len {
            queue.pop_front();
        }
        if queue.is_empty() {
            state.jobs.remove(&client);
        } else {
            state.turns.push_back(client);
        }
        Some((job, start))
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
        let (job, start) = match me.next() {
            Next::Chunk(job, start) => (job, start),
            Next::Wait => {
                notified.await;
                continue;
            }
            Next::End => return,
        };
        let end = (start + CHUNK).min(job.len);
        // A chunk after a bad token already found cannot hold the first one; a job nobody
        // waits for needs no more sums.
        let skip = job.abandoned.load(Ordering::Relaxed)
            || job
                .outcome
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .bad
                .as_ref()
                .is_some_and(|bad| bad.offset < start);
        let result = if skip {
            Ok(Partial::default())
        } else {
            let (file, len) = (job.file.clone(), job.len);
            let mut block = buf.take().unwrap_or_else(|| vec![0u8; BLOCK]);
            match me
                .compute
                .run(move || {
                    let result = sum_range(&file, start, end, len, &mut block);
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
        finish_chunk(&job, result);
    }
}

fn finish_chunk(job: &Job, result: Result<Partial, RangeError>) {
    let mut outcome = job.outcome.lock().unwrap_or_else(|e| e.into_inner());
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
    outcome.chunks_left -= 1;
    if outcome.chunks_left == 0 {
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
        let scheduler = FairScheduler::start(2, ComputePool::new(2));
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
        let scheduler = FairScheduler::start(2, ComputePool::new(2));
        let err = scheduler
            .sum("a", file.path(), Arc::new(AtomicU64::new(0)))
            .await
            .unwrap_err();
        assert!(
            matches!(err, JobError::Bad(BadToken { offset, .. }) if offset == 2 * CHUNK),
            "{err}"
        );
    }

    #[test]
    fn turns_alternate_between_clients() {
        let inner = Inner {
            state: Mutex::new(State::default()),
            work: Notify::new(),
            compute: ComputePool::new(1),
        };
        let file = Arc::new(tempfile::tempfile().unwrap());
        let job = |len| {
            Arc::new(Job {
                file: file.clone(),
                len,
                next: AtomicU64::new(0),
                progress: Arc::new(AtomicU64::new(0)),
                outcome: Mutex::new(Outcome {
                    partial: Partial::default(),
                    bad: None,
                    io: None,
                    chunks_left: 0,
                    done: None,
                }),
                abandoned: AtomicBool::new(false),
            })
        };
        {
            let mut state = inner.state.lock().unwrap();
            state
                .jobs
                .insert("big".into(), VecDeque::from([job(10 * CHUNK), job(CHUNK)]));
            state
                .jobs
                .insert("small".into(), VecDeque::from([job(2 * CHUNK)]));
            state.turns = VecDeque::from(["big".to_string(), "small".to_string()]);
        }
        let mut order = Vec::new();
        while let Next::Chunk(job, start) = inner.next() {
            order.push((job.len / CHUNK, start / CHUNK));
        }
        // big's first job, small's job, alternating until small is done; then big alone.
        assert_eq!(&order[..4], &[(10, 0), (2, 0), (10, 1), (2, 1)]);
        assert_eq!(order.len(), 10 + 1 + 2);
        assert_eq!(order.last(), Some(&(1, 0)));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_lanes_end_with_the_scheduler() {
        let scheduler = FairScheduler::start(2, ComputePool::new(2));
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
