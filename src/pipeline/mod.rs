//! The job pipeline over one Redis stream and one consumer group, one actor a file:
//!
//! - here, [`Pipeline`]: [`Pipeline::submit`] writes the job record, indexes it
//!   and XADDs the command in one MULTI, so a job is never visible without its
//!   command or the reverse; [`Pipeline::wait_for`] waits for a job to finish.
//! - [`delivery`]: running one delivered entry to its end: ownership-checked
//!   record writes, the XACK in the same script as the final record (the
//!   effect is written before, so delivery is at-least-once and every job kind
//!   is idempotent), dead-lettering, the heartbeat that keeps a slow job's
//!   entry from looking dead, and in-place retries of transient failures.
//! - [`worker`]: a consumer that reads new entries with XREADGROUP on a
//!   connection of its own and hands them to delivery.
//! - [`reclaimer`]: takes over entries whose consumer died (XAUTOCLAIM after
//!   `reclaim_after` idle), and trims the stream without dropping pending entries.
//!
//! What a job does is not here: [`crate::jobs::Command::run`] owns that.

mod delivery;
mod reclaimer;
mod worker;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redis::{AsyncCommands, RedisResult};
use uuid::Uuid;

pub use reclaimer::Reclaimer;
pub use worker::{StepOutcome, Worker};

use crate::config::Settings;
use crate::jobs::{self, Command, Job, JobContext};
use crate::store::Store;

/// What the pipeline needs: connections and settings. Cheap to clone.
#[derive(Clone)]
pub struct Pipeline {
    pub store: Store,
    pub settings: Arc<Settings>,
}

fn now_ms() -> u64 {
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
        Self { store, settings }
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

    /// Records the job and queues its command. Returns the job as stored.
    #[tracing::instrument(skip_all, fields(kind = ?command.kind()))]
    pub async fn submit(&self, command: Command) -> RedisResult<Job> {
        let job = Job::new(command);
        let keys = &self.store.keys;
        let cmd_json = serde_json::to_string(&job.params).unwrap_or_default();
        let mut pipe = redis::pipe();
        pipe.atomic();
        jobs::queue_record_write(
            &mut pipe,
            keys,
            &job,
            self.settings.pipeline.job_ttl.as_secs(),
        );
        pipe.zadd(keys.jobs_index(), job.id.to_string(), now_ms())
            .ignore()
            .zremrangebyrank(
                keys.jobs_index(),
                0,
                -(self.settings.pipeline.jobs_index_max as isize) - 1,
            )
            .ignore()
            .xadd(
                keys.stream(),
                "*",
                &[("job", job.id.to_string()), ("cmd", cmd_json)],
            )
            .ignore();
        let mut conn = self.store.data.clone();
        pipe.query_async::<()>(&mut conn).await?;
        tracing::info!(job_id = %job.id, "job queued");
        Ok(job)
    }

    /// Waits until the job is finished or `timeout` passes; returns its last state.
    pub async fn wait_for(&self, id: &Uuid, timeout: Duration) -> RedisResult<Option<Job>> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut conn = self.store.data.clone();
        let mut pause = Duration::from_millis(5);
        loop {
            let job = jobs::get(&mut conn, &self.store.keys, id).await?;
            let finished = job.as_ref().is_none_or(|j| j.status.is_finished());
            if finished || tokio::time::Instant::now() >= deadline {
                return Ok(job);
            }
            tokio::time::sleep(pause.min(deadline - tokio::time::Instant::now())).await;
            pause = (pause * 2).min(Duration::from_millis(100));
        }
    }

    /// What a job's work may use.
    fn job_context(&self) -> JobContext {
        JobContext {
            store: self.store.clone(),
            settings: self.settings.clone(),
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
