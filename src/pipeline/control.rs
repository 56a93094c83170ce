//! What clients steer: cancelling and retrying jobs, the dead letters, and
//! the numbers behind GET /jobs/stats. Each state change is one Lua script
//! that checks the job's state and changes it in the same step, so a cancel
//! racing a worker either wins (the worker skips the job) or answers that the
//! job is running; it is never both.

use std::collections::BTreeMap;

use redis::streams::{StreamInfoConsumersReply, StreamInfoGroupsReply, StreamRangeReply};
use redis::{RedisError, RedisResult, Value};
use serde::Serialize;
use uuid::Uuid;

use super::{now_ms, Pipeline};
use crate::jobs::{self, Job, JobStatus, UNFINISHED_TTL_SECS};
use crate::lua;
use crate::store::{stream_id_key, Durability};

/// Why a control action did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("not found")]
    NotFound,
    /// The job is in a state the action does not apply to.
    #[error("the job is {}", .0.status.as_str())]
    WrongState(Box<Job>),
    /// The running job has passed its point of no return, for `reason`.
    #[error("the job can no longer be stopped: {reason}")]
    PastPointOfNoReturn { job: Box<Job>, reason: String },
    /// The queue's backlog is at `limits.max_backlog`: nothing was queued.
    #[error("the job queue is full ({backlog} jobs waiting, limit {max})")]
    Busy { backlog: u64, max: u64 },
    /// Done on the primary, but confirmed by only `acked` of the `wanted`
    /// replicas in time (`redis.min_replicas`); `job` as it now is.
    #[error("only {acked} of {wanted} replicas confirmed the change in time")]
    NotReplicated {
        acked: u32,
        wanted: u32,
        job: Option<Box<Job>>,
    },
    #[error(transparent)]
    Redis(#[from] RedisError),
}

/// What `DELETE /jobs/<id>` did.
#[derive(Debug)]
pub enum Cancel {
    /// The job was `queued` or `retrying`: it is `cancelled` and never runs
    /// (or it was `cancelled` already).
    Cancelled(Job),
    /// The job is `running`: it was asked to stop, and ends `cancelled` at
    /// its next safe point.
    Requested(Job),
}

/// `Err(NotReplicated)` unless `d` says the replicas have the change.
fn replicated(d: Durability, job: Option<&Job>) -> Result<(), ControlError> {
    match d {
        Durability::Replicated => Ok(()),
        Durability::Short { acked, wanted } => Err(ControlError::NotReplicated {
            acked,
            wanted,
            job: job.cloned().map(Box::new),
        }),
    }
}

/// One dead-lettered entry, as GET /jobs/dead lists it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DeadEntry {
    /// The entry's id in the dead-letter stream (what requeue and drop take).
    pub entry_id: String,
    pub job_id: Option<String>,
    pub reason: String,
    /// How many times the entry had been delivered when it was given up.
    pub deliveries: u64,
    /// When it was dead-lettered.
    pub at: String,
}

/// GET /jobs/stats.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Stats {
    /// Jobs in the index (the newest `jobs_index_max`) by state; every state is listed.
    pub jobs: BTreeMap<&'static str, u64>,
    pub stream: StreamStats,
    pub consumers: Vec<ConsumerStats>,
    /// Entries in the dead-letter stream.
    pub dead_letters: u64,
    /// `retrying` jobs waiting for their next run.
    pub scheduled_retries: u64,
    /// Whether workers take new entries (`POST /jobs/pause`, `/jobs/resume`).
    pub queue: QueueState,
}

/// Whether the queue is paused: while it is, workers take no new entries
/// (the ones running finish) and submissions still queue up.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct QueueState {
    pub paused: bool,
    /// When it was paused (RFC 3339); null while it runs.
    #[serde(default)]
    pub since: Option<String>,
    /// The name of the key that paused it; null without keys.
    #[serde(default)]
    pub by: Option<String>,
}

impl QueueState {
    /// The state the pause key holds (`None`: not paused).
    fn from_key(value: Option<String>) -> Self {
        match value {
            None => Self::default(),
            Some(v) => Self {
                paused: true,
                // A value this version did not write still means paused.
                ..serde_json::from_str(&v).unwrap_or_default()
            },
        }
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct StreamStats {
    /// Entries in the stream (acknowledged ones included, until trimmed).
    pub length: u64,
    /// Entries not yet delivered to any consumer.
    pub lag: Option<u64>,
    /// Entries delivered and not yet acknowledged.
    pub pending: u64,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ConsumerStats {
    pub name: String,
    pub pending: u64,
    /// Milliseconds since the consumer last read or claimed.
    pub idle_ms: u64,
}

/// The queue's state, as [`Pipeline::backlog`] reads it.
#[derive(Debug, Clone)]
pub struct Backlog {
    pub length: u64,
    pub lag: Option<u64>,
    pub pending: u64,
    pub group_exists: bool,
    pub dead_letters: u64,
    pub scheduled_retries: u64,
    pub queue: QueueState,
}

/// A script's `{tag, record}` reply.
/// `{'missing'}` has one element (Lua ends a table at its first nil), so the
/// reply is read as a list, not a pair.
fn tagged(reply: Value) -> RedisResult<(String, Option<Job>)> {
    let parts: Vec<String> = redis::from_redis_value(reply).map_err(RedisError::from)?;
    let mut parts = parts.into_iter();
    let tag = parts.next().unwrap_or_default();
    Ok((tag, parts.next().as_deref().and_then(jobs::parse_record)))
}

impl Pipeline {
    /// `Err(Busy)` for a script's `{'busy', backlog}` reply (the queue is at
    /// its limit, see `lua/backlog.lua`).
    fn busy(&self, reply: &Value) -> Result<(), ControlError> {
        let Value::Array(parts) = reply else {
            return Ok(());
        };
        match parts.as_slice() {
            [Value::BulkString(tag), backlog, ..] if tag == b"busy" => {
                let max = self.settings.limits.max_backlog;
                let backlog = redis::from_redis_value::<String>(backlog.clone())
                    .ok()
                    .and_then(|b| b.parse().ok())
                    .unwrap_or(max);
                Err(ControlError::Busy { backlog, max })
            }
            _ => Ok(()),
        }
    }

    /// Cancels a `queued` or `retrying` job, or asks a `running` one to
    /// stop at its next safe point (see `src/jobs/stop.rs`). Asking again
    /// answers the job as it is (idempotent).
    pub async fn cancel(&self, id: &Uuid) -> Result<Cancel, ControlError> {
        let keys = &self.store.keys;
        let mut cancel = lua::CANCEL_JOB.prepare_invoke();
        cancel
            .key(keys.job(id))
            .key(keys.delayed())
            .key(keys.events())
            .key(keys.job_stop(id))
            .arg(jobs::now())
            .arg(self.settings.pipeline.job_ttl.as_secs())
            .arg(self.settings.pipeline.events_max_len)
            .arg(jobs::UNFINISHED_TTL_SECS);
        let (reply, durability): (Vec<String>, _) = self
            .store
            .invoke_acknowledged(&lua::CANCEL_JOB, &cancel)
            .await?;
        let mut parts = reply.into_iter();
        let tag = parts.next().unwrap_or_default();
        let Some(job) = parts.next().as_deref().and_then(jobs::parse_record) else {
            return Err(ControlError::NotFound);
        };
        match tag.as_str() {
            "committed" => Err(ControlError::PastPointOfNoReturn {
                job: Box::new(job),
                reason: parts.next().unwrap_or_default(),
            }),
            "requested" => {
                tracing::info!(job_id = %id, "a running job was asked to stop");
                replicated(durability, Some(&job))?;
                Ok(Cancel::Requested(job))
            }
            _ if tag == "cancelled_now" || job.status == JobStatus::Cancelled => {
                if tag == "cancelled_now" {
                    tracing::info!(job_id = %id, "job cancelled");
                    crate::monitoring::job_finished(job.kind, JobStatus::Cancelled);
                }
                replicated(durability, Some(&job))?;
                Ok(Cancel::Cancelled(job))
            }
            _ => Err(ControlError::WrongState(Box::new(job))),
        }
    }

    /// Queues a `failed` or `cancelled` job again under the same id, with
    /// its attempts starting over.
    pub async fn retry(&self, id: &Uuid) -> Result<Job, ControlError> {
        let keys = &self.store.keys;
        let p = &self.settings.pipeline;
        let mut retry = lua::RETRY_JOB.prepare_invoke();
        retry
            .key(keys.job(id))
            .key(keys.stream())
            .key(keys.jobs_index())
            .key(keys.events())
            .arg(jobs::now())
            .arg(now_ms())
            .arg(UNFINISHED_TTL_SECS)
            .arg(p.events_max_len)
            .arg(p.jobs_index_max)
            .arg(self.settings.limits.max_backlog)
            .arg(keys.group());
        let (reply, durability): (Value, _) = self
            .store
            .invoke_acknowledged(&lua::RETRY_JOB, &retry)
            .await?;
        self.busy(&reply)?;
        match tagged(reply)? {
            (_, None) => Err(ControlError::NotFound),
            (tag, Some(job)) if tag == "queued_now" => {
                tracing::info!(job_id = %id, "job queued again");
                replicated(durability, Some(&job))?;
                Ok(job)
            }
            (_, Some(job)) => Err(ControlError::WrongState(Box::new(job))),
        }
    }

    /// The newest `limit` dead-lettered entries, newest first.
    pub async fn dead_letters(&self, limit: usize) -> RedisResult<Vec<DeadEntry>> {
        let reply: StreamRangeReply = redis::cmd("XREVRANGE")
            .arg(self.store.keys.dead_letter())
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(limit)
            .query_async(&mut self.store.data.clone())
            .await?;
        Ok(reply
            .ids
            .iter()
            .map(|e| {
                let field = |name: &str| e.get::<String>(name);
                let (ms, _) = stream_id_key(&e.id);
                DeadEntry {
                    entry_id: e.id.clone(),
                    job_id: field("orig_job"),
                    reason: field("reason").unwrap_or_default(),
                    deliveries: field("deliveries")
                        .and_then(|d| d.parse().ok())
                        .unwrap_or(0),
                    at: jobs::rfc3339(std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms)),
                }
            })
            .collect())
    }

    /// Puts a dead-lettered entry back on the stream as a fresh delivery;
    /// returns the new stream entry's id and the job, queued again if it had
    /// failed.
    pub async fn requeue_dead(
        &self,
        entry_id: &str,
    ) -> Result<(String, Option<Job>), ControlError> {
        let keys = &self.store.keys;
        let mut requeue = lua::REQUEUE_DEAD.prepare_invoke();
        requeue
            .key(keys.dead_letter())
            .key(keys.stream())
            .key(keys.events())
            .arg(entry_id)
            .arg(keys.job_prefix())
            .arg(jobs::now())
            .arg(UNFINISHED_TTL_SECS)
            .arg(self.settings.pipeline.events_max_len)
            .arg(self.settings.limits.max_backlog)
            .arg(keys.group());
        let (reply, durability): (Value, _) = self
            .store
            .invoke_acknowledged(&lua::REQUEUE_DEAD, &requeue)
            .await?;
        self.busy(&reply)?;
        let parts: Vec<String> = redis::from_redis_value(reply).map_err(RedisError::from)?;
        match parts.first().map(String::as_str) {
            Some("requeued") => {
                let new_id = parts.get(1).cloned().unwrap_or_default();
                let job = parts.get(2).and_then(|r| jobs::parse_record(r));
                tracing::info!(entry = entry_id, new_entry = %new_id, "dead letter requeued");
                replicated(durability, job.as_ref())?;
                Ok((new_id, job))
            }
            _ => Err(ControlError::NotFound),
        }
    }

    /// Deletes a dead-lettered entry; false when there was none.
    pub async fn drop_dead(&self, entry_id: &str) -> RedisResult<bool> {
        let n: u64 = redis::cmd("XDEL")
            .arg(self.store.keys.dead_letter())
            .arg(entry_id)
            .query_async(&mut self.store.data.clone())
            .await?;
        Ok(n > 0)
    }

    /// Counts by state, the stream's backlog, the consumers, the dead letters.
    pub async fn stats(&self) -> RedisResult<Stats> {
        let keys = &self.store.keys;
        let mut conn = self.store.data.clone();
        let mut counts: BTreeMap<&'static str, u64> =
            JobStatus::ALL.iter().map(|s| (s.as_str(), 0)).collect();
        for job in jobs::all_indexed(&mut conn, keys).await? {
            *counts.entry(job.status.as_str()).or_default() += 1;
        }
        let backlog = self.backlog().await?;
        let consumers: StreamInfoConsumersReply = if backlog.group_exists {
            redis::cmd("XINFO")
                .arg("CONSUMERS")
                .arg(keys.stream())
                .arg(keys.group())
                .query_async(&mut conn)
                .await?
        } else {
            StreamInfoConsumersReply::default()
        };
        Ok(Stats {
            jobs: counts,
            stream: StreamStats {
                length: backlog.length,
                lag: backlog.lag,
                pending: backlog.pending,
            },
            consumers: consumers
                .consumers
                .into_iter()
                .map(|c| ConsumerStats {
                    name: c.name,
                    pending: c.pending as u64,
                    idle_ms: c.idle as u64,
                })
                .collect(),
            dead_letters: backlog.dead_letters,
            scheduled_retries: backlog.scheduled_retries,
            queue: backlog.queue,
        })
    }

    /// The stream's length, lag and pending count, the dead letters and the
    /// scheduled retries: a few O(1) reads (what `/metrics` reads per scrape).
    pub async fn backlog(&self) -> RedisResult<Backlog> {
        let keys = &self.store.keys;
        let mut conn = self.store.data.clone();
        let (length, dead_letters, scheduled_retries, paused): (u64, u64, u64, Option<String>) =
            redis::pipe()
                .cmd("XLEN")
                .arg(keys.stream())
                .cmd("XLEN")
                .arg(keys.dead_letter())
                .cmd("ZCARD")
                .arg(keys.delayed())
                .cmd("GET")
                .arg(keys.paused())
                .query_async(&mut conn)
                .await?;
        // XINFO fails while the stream does not exist yet: that is zero of everything.
        let groups: StreamInfoGroupsReply = redis::cmd("XINFO")
            .arg("GROUPS")
            .arg(keys.stream())
            .query_async(&mut conn)
            .await
            .unwrap_or_default();
        let group = groups.groups.into_iter().find(|g| g.name == keys.group());
        Ok(Backlog {
            length,
            lag: group.as_ref().and_then(|g| g.lag).map(|n| n as u64),
            pending: group.as_ref().map(|g| g.pending as u64).unwrap_or(0),
            group_exists: group.is_some(),
            dead_letters,
            scheduled_retries,
            queue: QueueState::from_key(paused),
        })
    }

    /// Pauses the queue: workers take no new entries until [`Self::resume`].
    /// Pausing a paused queue keeps who paused it first, and when.
    pub async fn pause(&self, by: Option<String>) -> RedisResult<QueueState> {
        let mut conn = self.store.data.clone();
        let state = QueueState {
            paused: true,
            since: Some(jobs::now()),
            by,
        };
        let value = serde_json::to_string(&state).unwrap_or_default();
        let (_, now): ((), Option<String>) = redis::pipe()
            .cmd("SET")
            .arg(self.store.keys.paused())
            .arg(value)
            .arg("NX")
            .cmd("GET")
            .arg(self.store.keys.paused())
            .query_async(&mut conn)
            .await?;
        let state = QueueState::from_key(now);
        if state.since.is_some() {
            tracing::info!(by = ?state.by, "queue paused");
        }
        Ok(state)
    }

    /// Lets workers take entries again.
    pub async fn resume(&self) -> RedisResult<QueueState> {
        let mut conn = self.store.data.clone();
        let removed: u64 = redis::cmd("DEL")
            .arg(self.store.keys.paused())
            .query_async(&mut conn)
            .await?;
        if removed > 0 {
            tracing::info!("queue resumed");
        }
        Ok(QueueState::default())
    }

    /// Whether the queue is paused (one EXISTS): what the reclaimer asks
    /// before it claims. Workers ask on their own connection instead (see
    /// `Worker::paused`).
    pub async fn is_paused(&self) -> RedisResult<bool> {
        let mut conn = self.store.data.clone();
        redis::cmd("EXISTS")
            .arg(self.store.keys.paused())
            .query_async(&mut conn)
            .await
    }
}
