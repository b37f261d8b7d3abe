//! The Redis queue: the service records and enqueues, `glassbox worker` processes take.
//!
//! Keys (all under `glassbox:`):
//! - `task:<token>`: the task's record, JSON;
//! - `tasks:pending`: tokens waiting (pushed on the left, taken from the right);
//! - `tasks:waiting`: a hash of how many of those tokens each client address has (a task's
//!   client up to its ` id:`), counted up on submit and on a requeue, down when a worker marks
//!   the task received, so one address holds at most its `--client-share` of the places;
//! - `tasks:processing`: tokens a worker has taken. `BLMOVE` moves a token from pending to
//!   processing in one step, so a taken task is always in one of the two lists;
//! - `tasks:lease:<token>`: set with a expiry by the worker running the task and renewed while it
//!   runs. A reaper in every worker process looks for tokens in processing whose lease is gone
//!   (their worker died) and moves them back to pending, up to `--task-max-attempts` times;
//! - `tasks:finished`, `tasks:errored`: sorted sets of ended tokens by end time, for counting
//!   and for expiry after `--task-ttl`.
//!
//! Delivery is at least once: a worker that stalls past its lease may finish a task another
//! worker has also run. Both write a complete result; the last one wins.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, Script};

use super::files::TaskFiles;
use super::{
    Places, QueueCounts, QueueError, TaskId, TaskQueue, TaskRecord, TaskSource, TaskState, now_ms,
};
use crate::{redis_memory, turns};

/// The health probe's key: written with a 60 s expiry by `/health` (at most once a second).
const PROBE_KEY: &str = "glassbox:tasks:health-probe";
const PENDING: &str = "glassbox:tasks:pending";
const PROCESSING: &str = "glassbox:tasks:processing";
const WAITING: &str = "glassbox:tasks:waiting";
const FINISHED: &str = "glassbox:tasks:finished";
const ERRORED: &str = "glassbox:tasks:errored";
/// Set while a queue fault holds every process's workers; it expires unless the service that
/// set it refreshes it, so a service that dies mid-fault does not hold them for ever.
const PAUSED_KEY: &str = "glassbox:tasks:paused";
pub(crate) const PAUSED_TTL: Duration = Duration::from_secs(15);
/// How long a `take` blocks waiting for a task before it returns to check for shutdown.
const BLOCK: Duration = Duration::from_secs(1);

fn task_key(id: TaskId) -> String {
    format!("glassbox:task:{id}")
}

fn lease_key(id: TaskId) -> String {
    format!("glassbox:tasks:lease:{id}")
}

fn unavailable(err: impl std::fmt::Display) -> QueueError {
    QueueError::unavailable(err)
}

/// What a Redis error means for the queue: full (507, as a full disk) or unavailable (503).
fn failed(err: redis::RedisError) -> QueueError {
    if redis_memory::is_full(&err) {
        QueueError::NoSpace(format!("Redis is at its maxmemory: {err}"))
    } else {
        unavailable(err)
    }
}

/// How the queue behaves; from the configuration.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Settings {
    pub places: Places,
    pub timeout: Duration,
    pub lease: Duration,
    pub max_attempts: u32,
    pub ttl: Duration,
}

#[derive(Debug)]
pub(crate) struct RedisQueue {
    client: Client,
    location: String,
    settings: Settings,
    connections: Vec<ConnectionManager>,
    next: AtomicUsize,
    /// Connections for blocking takes, one per worker taking at a time.
    blocking: Mutex<Vec<ConnectionManager>>,
    files: TaskFiles,
}

impl RedisQueue {
    /// Lazy connections to `url`: nothing is dialled before the first command.
    pub(crate) fn new(
        url: &str,
        settings: Settings,
        files: TaskFiles,
    ) -> Result<Arc<Self>, QueueError> {
        let client = Client::open(url).map_err(unavailable)?;
        let info = client.get_connection_info();
        let location = format!("redis://{}/{}", info.addr(), info.redis_settings().db());
        let config = manager_config(settings.timeout);
        let connections = (0..2)
            .map(|_| ConnectionManager::new_lazy_with_config(client.clone(), config.clone()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(unavailable)?;
        redis_memory::warn_if_evicting(connections[0].clone(), "tasks", location.clone());
        Ok(Arc::new(Self {
            client,
            location,
            settings,
            connections,
            next: AtomicUsize::new(0),
            blocking: Mutex::new(Vec::new()),
            files,
        }))
    }

    fn connection(&self) -> ConnectionManager {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.connections.len();
        self.connections[i].clone()
    }

    /// A connection of its own for a blocking command (it would hold up a shared one).
    fn blocking_connection(&self) -> Result<ConnectionManager, QueueError> {
        if let Some(conn) = self
            .blocking
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop()
        {
            return Ok(conn);
        }
        ConnectionManager::new_lazy_with_config(
            self.client.clone(),
            manager_config(self.settings.timeout + BLOCK),
        )
        .map_err(unavailable)
    }

    fn give_back(&self, conn: ConnectionManager) {
        self.blocking
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(conn);
    }

    async fn deadline<T>(
        &self,
        limit: Duration,
        work: impl Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, QueueError> {
        match tokio::time::timeout(limit, work).await {
            Ok(result) => result.map_err(failed),
            Err(_) => Err(QueueError::Unavailable(format!(
                "Redis gave no answer within {limit:?}"
            ))),
        }
    }

    /// Moves tasks whose worker stopped renewing their lease back to the queue, every half
    /// lease, for as long as the queue lives. Runs in every worker process; the moves are
    /// atomic, so several reapers do not collide.
    pub(crate) fn start_reaper(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let queue = Arc::downgrade(self);
        let every = self.settings.lease / 2;
        tokio::spawn(async move {
            // Tokens seen in processing without a lease, and since when: a worker sets its lease
            // just after taking a task, so only a lease missing for a whole lease period counts.
            let mut orphans: HashMap<String, Instant> = HashMap::new();
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                let Some(queue) = queue.upgrade() else { return };
                if let Err(err) = queue.reap(&mut orphans).await {
                    tracing::warn!(error = %err, "checking running tasks failed");
                }
            }
        })
    }

    async fn reap(&self, orphans: &mut HashMap<String, Instant>) -> Result<(), QueueError> {
        let mut conn = self.connection();
        let timeout = self.settings.timeout;
        let running: Vec<String> = self
            .deadline(
                timeout,
                redis::cmd("LRANGE")
                    .arg(PROCESSING)
                    .arg(0)
                    .arg(-1)
                    .query_async(&mut conn),
            )
            .await?;
        orphans.retain(|token, _| running.contains(token));
        for token in running {
            let Some(id) = TaskId::parse(&token) else {
                continue;
            };
            let leased: bool = self
                .deadline(
                    timeout,
                    redis::cmd("EXISTS")
                        .arg(lease_key(id))
                        .query_async(&mut conn),
                )
                .await?;
            if leased {
                orphans.remove(&token);
                continue;
            }
            let since = *orphans.entry(token.clone()).or_insert_with(Instant::now);
            if since.elapsed() < self.settings.lease {
                continue;
            }
            let outcome: i64 = self
                .deadline(
                    timeout,
                    REQUEUE_SCRIPT
                        .key(PROCESSING)
                        .key(PENDING)
                        .key(lease_key(id))
                        .key(task_key(id))
                        .key(ERRORED)
                        .key(WAITING)
                        .arg(&token)
                        .arg(self.settings.max_attempts)
                        .arg(now_ms())
                        .invoke_async(&mut conn),
                )
                .await?;
            orphans.remove(&token);
            match outcome {
                1 => {
                    tracing::warn!(token = %crate::telemetry::redact::capability(&token), "a worker stopped during a task; queued it again");
                }
                2 => tracing::error!(
                    token = %crate::telemetry::redact::capability(&token),
                    attempts = self.settings.max_attempts,
                    "a task outlived its workers too often; marked errored"
                ),
                _ => {}
            }
        }
        Ok(())
    }

    /// Removes tasks that ended more than the TTL ago, and their files.
    pub(crate) async fn remove_expired(&self) -> Result<usize, QueueError> {
        let cutoff = now_ms()
            .saturating_sub(u64::try_from(self.settings.ttl.as_millis()).unwrap_or(u64::MAX));
        let mut conn = self.connection();
        let mut removed = 0;
        for set in [FINISHED, ERRORED] {
            let expired: Vec<String> = self
                .deadline(
                    self.settings.timeout,
                    redis::cmd("ZRANGEBYSCORE")
                        .arg(set)
                        .arg("-inf")
                        .arg(cutoff)
                        .arg("LIMIT")
                        .arg(0)
                        .arg(1000)
                        .query_async(&mut conn),
                )
                .await?;
            for token in expired {
                let Some(id) = TaskId::parse(&token) else {
                    continue;
                };
                let _: () = self
                    .deadline(
                        self.settings.timeout,
                        redis::pipe()
                            .atomic()
                            .del(task_key(id))
                            .zrem(set, &token)
                            .query_async(&mut conn),
                    )
                    .await?;
                self.files.remove(id).await;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

fn manager_config(timeout: Duration) -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout))
        .set_number_of_retries(2)
        .set_min_delay(Duration::from_millis(50))
        .set_max_delay(timeout)
}

/// Records a task and queues it (1), unless the queue is full (0) or the client's address
/// has its share of the places waiting (2).
static SUBMIT_SCRIPT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        if redis.call('LLEN', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
        if tonumber(redis.call('HGET', KEYS[3], ARGV[4]) or '0') >= tonumber(ARGV[5]) then
            return 2
        end
        redis.call('SET', KEYS[2], ARGV[2])
        redis.call('LPUSH', KEYS[1], ARGV[3])
        redis.call('HINCRBY', KEYS[3], ARGV[4], 1)
        return 1
        ",
    )
});

/// Writes the record of a task a worker has just taken; a task that was waiting no longer is,
/// so its address's count goes down (once: a record already received was counted down when
/// it was).
static TAKEN_SCRIPT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        local old = redis.call('GET', KEYS[1])
        if old and cjson.decode(old).state == 'requested' then
            if redis.call('HINCRBY', KEYS[2], ARGV[2], -1) <= 0 then
                redis.call('HDEL', KEYS[2], ARGV[2])
            end
        end
        redis.call('SET', KEYS[1], ARGV[1])
        return 1
        ",
    )
});

/// Records the end of a task and lets go of it.
static COMPLETE_SCRIPT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        redis.call('SET', KEYS[1], ARGV[1])
        redis.call('LREM', KEYS[2], 0, ARGV[2])
        redis.call('DEL', KEYS[3])
        redis.call('ZADD', KEYS[4], ARGV[3], ARGV[2])
        return 1
        ",
    )
});

/// Writes a running task's record while its lease is held.
static PROGRESS_SCRIPT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
        redis.call('SET', KEYS[2], ARGV[1])
        return 1
        ",
    )
});

/// Puts an orphaned task back in the queue (1), or marks it errored once it has had all its
/// attempts (2); 0 when its worker came back or someone else moved it first. A task its
/// worker took but never marked received is still counted as waiting at its address.
static REQUEUE_SCRIPT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        if redis.call('EXISTS', KEYS[3]) == 1 then return 0 end
        if redis.call('LREM', KEYS[1], 0, ARGV[1]) == 0 then return 0 end
        local text = redis.call('GET', KEYS[4])
        if not text then return 0 end
        local task = cjson.decode(text)
        local address = task.client or 'anonymous'
        local at = string.find(address, ' id:', 1, true)
        if at then address = string.sub(address, 1, at - 1) end
        local counted = task.state == 'requested'
        if (task.attempts or 0) >= tonumber(ARGV[2]) then
            if counted and redis.call('HINCRBY', KEYS[6], address, -1) <= 0 then
                redis.call('HDEL', KEYS[6], address)
            end
            task.state = 'errored'
            task.error = 'gave up after ' .. ARGV[2] .. ' attempts: the workers running it stopped'
            task.finished_ms = tonumber(ARGV[3])
            redis.call('SET', KEYS[4], cjson.encode(task))
            redis.call('ZADD', KEYS[5], ARGV[3], ARGV[1])
            return 2
        end
        task.state = 'requested'
        redis.call('SET', KEYS[4], cjson.encode(task))
        redis.call('RPUSH', KEYS[2], ARGV[1])
        if not counted then redis.call('HINCRBY', KEYS[6], address, 1) end
        return 1
        ",
    )
});

impl TaskQueue for RedisQueue {
    fn set_paused(&self, paused: bool) -> BoxFuture<'_, Result<(), QueueError>> {
        Box::pin(async move {
            let mut conn = self.connection();
            let ttl = PAUSED_TTL.as_millis() as u64;
            match paused {
                true => {
                    self.deadline(
                        self.settings.timeout,
                        redis::cmd("SET")
                            .arg(PAUSED_KEY)
                            .arg(1)
                            .arg("PX")
                            .arg(ttl)
                            .query_async::<()>(&mut conn),
                    )
                    .await
                }
                false => {
                    self.deadline(
                        self.settings.timeout,
                        redis::cmd("DEL")
                            .arg(PAUSED_KEY)
                            .query_async::<()>(&mut conn),
                    )
                    .await
                }
            }
        })
    }

    fn backend(&self) -> &'static str {
        "redis"
    }

    fn location(&self) -> String {
        self.location.clone()
    }

    fn places(&self) -> Places {
        self.settings.places
    }

    fn submit(&self, task: TaskRecord) -> BoxFuture<'_, Result<(), QueueError>> {
        Box::pin(async move {
            let mut conn = self.connection();
            let text = serde_json::to_string(&task).map_err(unavailable)?;
            let added: i64 = self
                .deadline(
                    self.settings.timeout,
                    SUBMIT_SCRIPT
                        .key(PENDING)
                        .key(task_key(task.id))
                        .key(WAITING)
                        .arg(self.settings.places.total)
                        .arg(text)
                        .arg(task.id.to_string())
                        .arg(turns::address(task.client_name()))
                        .arg(self.settings.places.per_client)
                        .invoke_async(&mut conn),
                )
                .await?;
            match added {
                1 => Ok(()),
                2 => Err(QueueError::ClientShare),
                _ => Err(QueueError::Full),
            }
        })
    }

    fn room_for<'a>(&'a self, client: &'a str) -> BoxFuture<'a, Result<(), QueueError>> {
        Box::pin(async move {
            let mut conn = self.connection();
            let (waiting, at_address): (usize, Option<usize>) = self
                .deadline(
                    self.settings.timeout,
                    redis::pipe()
                        .llen(PENDING)
                        .hget(WAITING, turns::address(client))
                        .query_async(&mut conn),
                )
                .await?;
            self.settings.places.admit(waiting, at_address.unwrap_or(0))
        })
    }

    fn get(&self, id: TaskId) -> BoxFuture<'_, Result<Option<TaskRecord>, QueueError>> {
        Box::pin(async move {
            let mut conn = self.connection();
            let text: Option<String> = self
                .deadline(
                    self.settings.timeout,
                    redis::cmd("GET").arg(task_key(id)).query_async(&mut conn),
                )
                .await?;
            text.map(|t| serde_json::from_str(&t).map_err(unavailable))
                .transpose()
        })
    }

    fn sweep(&self) -> BoxFuture<'_, Result<usize, QueueError>> {
        Box::pin(self.remove_expired())
    }

    /// A key that expires by itself: refused when Redis refuses writes (out of memory under
    /// `noeviction`, or `MISCONF` after a failed save on a full disk).
    fn probe(&self) -> BoxFuture<'_, Result<(), QueueError>> {
        Box::pin(async move {
            let mut conn = self.connection();
            self.deadline(
                self.settings.timeout,
                redis::cmd("SET")
                    .arg(PROBE_KEY)
                    .arg(now_ms())
                    .arg("PX")
                    .arg(60_000)
                    .query_async::<()>(&mut conn),
            )
            .await
        })
    }

    fn counts(&self) -> BoxFuture<'_, Result<QueueCounts, QueueError>> {
        Box::pin(async move {
            let mut conn = self.connection();
            let (pending, processing, finished, errored): (u64, u64, u64, u64) = self
                .deadline(
                    self.settings.timeout,
                    redis::pipe()
                        .llen(PENDING)
                        .llen(PROCESSING)
                        .zcard(FINISHED)
                        .zcard(ERRORED)
                        .query_async(&mut conn),
                )
                .await?;
            Ok(QueueCounts {
                depth: pending,
                requested: pending,
                received: processing,
                finished,
                errored,
            })
        })
    }
}

impl TaskSource for RedisQueue {
    fn paused(&self) -> BoxFuture<'_, bool> {
        Box::pin(async move {
            let mut conn = self.connection();
            // A Redis that does not answer pauses nothing: taking a task fails on its own.
            self.deadline(
                self.settings.timeout,
                redis::cmd("EXISTS")
                    .arg(PAUSED_KEY)
                    .query_async::<u64>(&mut conn),
            )
            .await
            .is_ok_and(|n| n > 0)
        })
    }

    fn take(&self) -> BoxFuture<'_, Result<Option<TaskRecord>, QueueError>> {
        Box::pin(async move {
            let mut blocking = self.blocking_connection()?;
            let moved: Result<Option<String>, QueueError> = self
                .deadline(
                    self.settings.timeout + BLOCK * 2,
                    redis::cmd("BLMOVE")
                        .arg(PENDING)
                        .arg(PROCESSING)
                        .arg("RIGHT")
                        .arg("LEFT")
                        .arg(BLOCK.as_secs_f64())
                        .query_async(&mut blocking),
                )
                .await;
            self.give_back(blocking);
            let Some(token) = moved? else { return Ok(None) };
            let Some(id) = TaskId::parse(&token) else {
                return Ok(None);
            };
            // The lease first, so the reaper sees the task claimed.
            self.renew(id).await?;
            let mut conn = self.connection();
            let Some(mut task) = self.get(id).await? else {
                // Expired meanwhile: nothing to run.
                let _: () = self
                    .deadline(
                        self.settings.timeout,
                        redis::pipe()
                            .lrem(PROCESSING, 0, &token)
                            .del(lease_key(id))
                            .query_async(&mut conn),
                    )
                    .await?;
                return Ok(None);
            };
            task.state = TaskState::Received;
            task.received_ms = Some(now_ms());
            task.attempts += 1;
            let text = serde_json::to_string(&task).map_err(unavailable)?;
            let _: i64 = self
                .deadline(
                    self.settings.timeout,
                    TAKEN_SCRIPT
                        .key(task_key(id))
                        .key(WAITING)
                        .arg(text)
                        .arg(turns::address(task.client_name()))
                        .invoke_async(&mut conn),
                )
                .await?;
            Ok(Some(task))
        })
    }

    fn renew(&self, id: TaskId) -> BoxFuture<'_, Result<(), QueueError>> {
        Box::pin(async move {
            let mut conn = self.connection();
            let lease_ms = u64::try_from(self.settings.lease.as_millis()).unwrap_or(u64::MAX);
            self.deadline(
                self.settings.timeout,
                redis::cmd("SET")
                    .arg(lease_key(id))
                    .arg(1)
                    .arg("PX")
                    .arg(lease_ms)
                    .query_async(&mut conn),
            )
            .await
        })
    }

    fn progress(&self, task: &TaskRecord) -> BoxFuture<'_, Result<(), QueueError>> {
        let task = task.clone();
        Box::pin(async move {
            let mut conn = self.connection();
            let text = serde_json::to_string(&task).map_err(unavailable)?;
            // Only while this worker still holds the task: a late write must not undo its end.
            let _: i64 = self
                .deadline(
                    self.settings.timeout,
                    PROGRESS_SCRIPT
                        .key(lease_key(task.id))
                        .key(task_key(task.id))
                        .arg(text)
                        .invoke_async(&mut conn),
                )
                .await?;
            Ok(())
        })
    }

    fn complete(&self, task: TaskRecord) -> BoxFuture<'_, Result<(), QueueError>> {
        Box::pin(async move {
            let mut conn = self.connection();
            let text = serde_json::to_string(&task).map_err(unavailable)?;
            let ended = if task.state == TaskState::Finished {
                FINISHED
            } else {
                ERRORED
            };
            let _: i64 = self
                .deadline(
                    self.settings.timeout,
                    COMPLETE_SCRIPT
                        .key(task_key(task.id))
                        .key(PROCESSING)
                        .key(lease_key(task.id))
                        .key(ended)
                        .arg(text)
                        .arg(task.id.to_string())
                        .arg(task.finished_ms.unwrap_or_else(now_ms))
                        .invoke_async(&mut conn),
                )
                .await?;
            Ok(())
        })
    }
}
