//! The job pipeline over one Redis stream and one consumer group, one actor a file:
//!
//! - here, [`Pipeline`]: [`Pipeline::submit`] writes the job record, indexes it
//!   and XADDs the command in one script (`lua/submit_job.lua`), so a job is
//!   never visible without its command or the reverse, and announces the job
//!   on the events stream.
//! - [`delivery`]: running one delivered entry to its end: ownership-checked
//!   record writes, the XACK in the same script as the final record (the
//!   effect is written before, so delivery is at-least-once and every job kind
//!   is idempotent), dead-lettering, the heartbeat that keeps a slow job's
//!   entry from looking dead, and in-place retries of transient failures.
//! - [`worker`]: a consumer that reads new entries with XREADGROUP on a
//!   connection of its own and hands them to delivery.
//! - [`reclaimer`]: takes over entries whose consumer died (XAUTOCLAIM after
//!   `reclaim_after` idle), and trims the stream without dropping pending entries.
//! - [`scheduler`]: puts `retrying` jobs back on the stream when their next
//!   run is due.
//! - [`refresh`]: queues a load at every tick of `data.refresh`, one per
//!   tick however many replicas run.
//! - [`control`]: what clients steer: cancel, retry, the dead letters, stats.
//!
//! What a job does is not here: [`crate::jobs::Command::run`] owns that.

mod control;
mod delivery;
mod reclaimer;
mod refresh;
mod scheduler;
mod worker;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use redis::streams::StreamMaxlen;
use redis::{AsyncCommands, RedisResult};
use tokio::sync::Semaphore;
use tracing::Instrument;

pub use control::{Backlog, Cancel, ControlError, DeadEntry, QueueState, Stats};
pub use reclaimer::Reclaimer;
pub use refresh::{last_tick, rfc3339_ms, LastOutcome, LastTick, Refresh, TickOutcome, CATCH_UP};
pub use scheduler::Scheduler;
pub use worker::{StepOutcome, Worker};

use crate::config::Settings;
use crate::jobs::{Command, Job, JobContext, Progress, Stop};
use crate::lua;
use crate::plot::RenderCache;
use crate::store::{Durability, Store};

/// Why a job was not queued.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// The job needs the data set and none is loaded.
    #[error("no gene data is loaded")]
    NoData,
    /// The queue's backlog (lag + pending) is at `limits.max_backlog`.
    #[error("the job queue is full ({backlog} jobs waiting, limit {max})")]
    Busy { backlog: u64, max: u64 },
    /// The job is recorded and queued on the primary, but fewer replicas
    /// than `redis.min_replicas` confirmed it in time: it will most likely
    /// run, yet a failover now would lose it. The client is told so, with the
    /// job, to check later rather than submit again.
    #[error("only {acked} of {wanted} replicas confirmed the job in time")]
    NotReplicated {
        job: Box<Job>,
        acked: u32,
        wanted: u32,
    },
    /// The request's Idempotency-Key was first used for another request,
    /// which made job `job_id`.
    #[error("this Idempotency-Key was used for another request (job {job_id})")]
    KeyReused { job_id: String },
    /// The job the key made is no longer kept.
    #[error("the job this Idempotency-Key made ({job_id}) is no longer kept")]
    KeyJobGone { job_id: String },
    #[error(transparent)]
    Redis(#[from] redis::RedisError),
}

/// A submission's Idempotency-Key, as the pipeline keeps it.
#[derive(Debug, Clone)]
pub struct Once {
    /// The key's record: per client (API key name or address), by a hash of
    /// the key (see `Keys::idempotency`).
    pub record: String,
    /// What makes two requests the same one: the route and the command.
    pub fingerprint: String,
}

/// A submission's outcome.
#[derive(Debug)]
pub enum Submitted {
    /// A new job, queued.
    New(Job),
    /// The same request again under its Idempotency-Key: the first one's job, as it is now.
    Replay(Job),
}

/// What the pipeline needs: connections, settings, and the charts this
/// process has rendered. Cheap to clone.
#[derive(Clone)]
pub struct Pipeline {
    pub store: Store,
    pub settings: Arc<Settings>,
    renders: Arc<RenderCache>,
    heavy: Arc<Semaphore>,
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A name unique to this replica: host (pod) name, process id, role and index.
pub fn consumer_name(role: &str, index: usize) -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_string())
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".into());
    format!("{host}-{}-{role}-{index}", std::process::id())
}

impl Pipeline {
    pub fn new(store: Store, settings: Arc<Settings>) -> Self {
        let cache_bytes = settings
            .images
            .render_cache_bytes
            .try_into()
            .unwrap_or(usize::MAX);
        let slots = settings.workers.concurrency.max(1);
        Self {
            store,
            settings,
            renders: Arc::new(RenderCache::new(cache_bytes)),
            heavy: Arc::new(Semaphore::new(slots)),
        }
    }

    /// Creates the stream and group if missing ("BUSYGROUP" means it exists).
    pub async fn ensure_group(&self) -> RedisResult<()> {
        let mut conn = self.store.data.clone();
        let keys = &self.store.keys;
        let r: RedisResult<()> = conn
            .xgroup_create_mkstream(keys.stream(), keys.group(), "0")
            .await;
        match r {
            Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
            other => other,
        }
    }

    /// Records the job and queues its command, in one round trip. Returns
    /// the job as stored; a job that needs the data set is refused while
    /// none is loaded, and any job while the backlog is at
    /// `limits.max_backlog` (counted in the same script, so a burst cannot
    /// overshoot it); a refused job writes nothing.
    pub async fn submit(&self, command: Command) -> Result<Job, SubmitError> {
        match self.submit_once(command, None).await? {
            Submitted::New(job) | Submitted::Replay(job) => Ok(job),
        }
    }

    /// [`Self::submit`], once per Idempotency-Key when `once` is given: the
    /// same request again answers the first one's job, another request under
    /// the same key is refused; both decided in the script that queues.
    pub async fn submit_once(
        &self,
        command: Command,
        once: Option<&Once>,
    ) -> Result<Submitted, SubmitError> {
        // Taken before this step's own span: the worker's run of the job is
        // a child of the submitting request's span.
        let trace = crate::telemetry::otel::current();
        let span = tracing::info_span!("submit_once", kind = ?command.kind());
        self.submit_in_span(command, once, trace)
            .instrument(span)
            .await
    }

    async fn submit_in_span(
        &self,
        command: Command,
        once: Option<&Once>,
        trace: Option<(String, String)>,
    ) -> Result<Submitted, SubmitError> {
        let mut job = Job::new(command, self.settings.pipeline.max_attempts);
        job.trace_id = trace.as_ref().map(|(_, id)| id.clone());
        let script_of = if once.is_some() {
            &lua::SUBMIT_ONCE
        } else {
            &lua::SUBMIT_JOB
        };
        let mut script = script_of.prepare_invoke();
        self.add_submission(&mut script, &job, trace.as_ref().map(|(tp, _)| tp.as_str()));
        match once {
            Some(once) => {
                let data = if job.params.needs_data() {
                    self.store.keys.current()
                } else {
                    ""
                };
                // Never longer than a finished job is kept: a replay finds
                // the job the key made.
                let ttl = self
                    .settings
                    .http
                    .idempotency_ttl
                    .min(self.settings.pipeline.job_ttl)
                    .as_secs()
                    .max(1);
                script
                    .key(data)
                    .key(&once.record)
                    .arg(&once.fingerprint)
                    .arg(ttl);
            }
            None if job.params.needs_data() => {
                script.key(self.store.keys.current());
            }
            None => {}
        }
        let (reply, durability): (Vec<String>, _) =
            self.store.invoke_acknowledged(script_of, &script).await?;
        match (reply.first().map(String::as_str), reply.get(1)) {
            (Some("replay"), Some(id)) => {
                let found = match id.parse() {
                    Ok(uuid) => {
                        crate::jobs::get(&mut self.store.data.clone(), &self.store.keys, &uuid)
                            .await?
                    }
                    Err(_) => None,
                };
                return found
                    .map(Submitted::Replay)
                    .ok_or_else(|| SubmitError::KeyJobGone { job_id: id.clone() });
            }
            (Some("mismatch"), Some(id)) => {
                return Err(SubmitError::KeyReused { job_id: id.clone() })
            }
            _ => {}
        }
        self.submitted(&job, &reply)?;
        match durability {
            Durability::Replicated => Ok(Submitted::New(job)),
            Durability::Short { acked, wanted } => {
                tracing::warn!(job_id = %job.id, acked, wanted, "job queued, but not on enough replicas in time");
                Err(SubmitError::NotReplicated {
                    job: Box::new(job),
                    acked,
                    wanted,
                })
            }
        }
    }

    /// Adds the keys and arguments of `submit_job` (submit_job.lua) for
    /// `job` to `script`: KEYS[1..4] and ARGV[1..11]; a script may add more
    /// after them. `traceparent` goes into the stream entry.
    fn add_submission(
        &self,
        script: &mut redis::ScriptInvocation<'_>,
        job: &Job,
        traceparent: Option<&str>,
    ) {
        let keys = &self.store.keys;
        let p = &self.settings.pipeline;
        script
            .key(keys.job(&job.id))
            .key(keys.jobs_index())
            .key(keys.stream())
            .key(keys.events())
            .arg(job.to_json())
            .arg(job.ttl_secs(p.job_ttl.as_secs()))
            .arg(now_ms())
            .arg(p.jobs_index_max)
            .arg(serde_json::to_string(&job.params).unwrap_or_default())
            .arg(p.events_max_len)
            .arg(job.id.to_string())
            .arg(job.kind.as_str())
            .arg(self.settings.limits.max_backlog)
            .arg(keys.group())
            .arg(traceparent.unwrap_or(""));
    }

    /// What `submit_job`'s `reply` means for `job`; a queued job is logged
    /// and counted.
    fn submitted(&self, job: &Job, reply: &[String]) -> Result<(), SubmitError> {
        let max = self.settings.limits.max_backlog;
        match reply.first().map(String::as_str) {
            Some("queued") => {}
            Some("no_data") => return Err(SubmitError::NoData),
            Some("busy") => {
                let backlog = reply.get(1).and_then(|b| b.parse().ok()).unwrap_or(max);
                return Err(SubmitError::Busy { backlog, max });
            }
            _ => {
                return Err(SubmitError::Redis(redis::RedisError::from((
                    redis::ErrorKind::UnexpectedReturnType,
                    "unexpected reply of the submission script",
                    format!("{reply:?}"),
                ))))
            }
        }
        tracing::info!(job_id = %job.id, "job queued");
        crate::monitoring::job_submitted(job.kind);
        Ok(())
    }

    /// Adds the write of `job`'s record and the event announcing it to `pipe`.
    fn queue_record_and_event(&self, pipe: &mut redis::Pipeline, job: &Job) {
        let keys = &self.store.keys;
        let json = job.to_json();
        pipe.set_ex(
            keys.job(&job.id),
            &json,
            job.ttl_secs(self.settings.pipeline.job_ttl.as_secs()),
        )
        .ignore();
        pipe.xadd_maxlen(
            keys.events(),
            StreamMaxlen::Approx(self.settings.pipeline.events_max_len),
            "*",
            &[
                ("job", job.id.to_string()),
                ("kind", job.kind.as_str().to_string()),
                ("status", job.status.as_str().to_string()),
                ("data", json),
            ],
        )
        .ignore();
    }

    /// The charts this process has rendered (kept for reuse).
    pub fn render_cache(&self) -> &RenderCache {
        &self.renders
    }

    /// What a job's work may use.
    fn job_context(&self) -> JobContext {
        JobContext {
            store: self.store.clone(),
            settings: self.settings.clone(),
            progress: Progress::default(),
            stop: Stop::default(),
            renders: self.renders.clone(),
            heavy: self.heavy.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consumer_names_differ_per_role_and_index() {
        let a = consumer_name("worker", 0);
        let b = consumer_name("worker", 1);
        assert_ne!(a, b);
        assert!(a.contains(&std::process::id().to_string()));
    }
}
