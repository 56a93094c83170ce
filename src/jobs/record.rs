//! Job records as clients see them: kind, state, times, outcome.
//!
//! A record is a JSON string at `<p>:job:<id>` (db 0); `<p>:jobs` is a sorted
//! set of ids by submission time for GET /jobs.

use std::time::SystemTime;

use redis::aio::ConnectionManager;
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::Command;
use crate::store::Keys;

/// Unfinished records expire after this long, so even a lost job cannot leak a key.
pub const UNFINISHED_TTL_SECS: u64 = 7 * 24 * 3600;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    Load,
    Plot,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    Queued,
    Running,
    Done,
    Failed,
}

impl JobStatus {
    pub fn is_finished(self) -> bool {
        matches!(self, JobStatus::Done | JobStatus::Failed)
    }
}

/// A job as clients see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub id: Uuid,
    pub kind: JobKind,
    pub status: JobStatus,
    /// What the job was asked to do.
    pub params: Command,
    /// How many times a worker has started it.
    pub attempts: u32,
    pub created_at: String,
    pub updated_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    /// Why it failed, in words a user can act on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What it produced (load: counts; plot: the image's path).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<serde_json::Value>,
}

/// Now as RFC 3339 with milliseconds, UTC.
pub fn now() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

impl Job {
    pub fn new(command: Command) -> Self {
        let t = now();
        Self {
            id: Uuid::new_v4(),
            kind: command.kind(),
            status: JobStatus::Queued,
            params: command,
            attempts: 0,
            created_at: t.clone(),
            updated_at: t,
            started_at: None,
            finished_at: None,
            error: None,
            result: None,
        }
    }

    /// Path clients poll.
    pub fn location(&self) -> String {
        format!("/jobs/{}", self.id)
    }

    pub fn mark_running(&mut self) {
        let t = now();
        self.status = JobStatus::Running;
        self.attempts += 1;
        self.started_at = Some(t.clone());
        self.updated_at = t;
        self.error = None;
    }

    pub fn mark_done(&mut self, result: serde_json::Value) {
        let t = now();
        self.status = JobStatus::Done;
        self.finished_at = Some(t.clone());
        self.updated_at = t;
        self.error = None;
        self.result = Some(result);
    }

    pub fn mark_failed(&mut self, error: impl Into<String>) {
        let t = now();
        self.status = JobStatus::Failed;
        self.finished_at = Some(t.clone());
        self.updated_at = t;
        self.error = Some(error.into());
    }

    pub fn to_json(&self) -> String {
        // A Job is plain data: serialising it cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// TTL for the record in its current state.
    pub fn ttl_secs(&self, finished_ttl: u64) -> u64 {
        if self.status.is_finished() {
            finished_ttl
        } else {
            UNFINISHED_TTL_SECS
        }
    }
}

/// Reads job records.
pub async fn get(
    conn: &mut ConnectionManager,
    keys: &Keys,
    id: &Uuid,
) -> redis::RedisResult<Option<Job>> {
    let raw: Option<String> = conn.get(keys.job(id)).await?;
    Ok(raw.and_then(|r| parse_record(&r)))
}

fn parse_record(raw: &str) -> Option<Job> {
    match serde_json::from_str(raw) {
        Ok(job) => Some(job),
        Err(e) => {
            tracing::warn!(error = %e, "unreadable job record ignored");
            None
        }
    }
}

/// The newest `limit` jobs, newest first. Ids whose record has expired are skipped.
pub async fn recent(
    conn: &mut ConnectionManager,
    keys: &Keys,
    limit: usize,
) -> redis::RedisResult<Vec<Job>> {
    if limit == 0 {
        return Ok(vec![]);
    }
    let ids: Vec<String> = conn
        .zrevrange(keys.jobs_index(), 0, limit as isize - 1)
        .await?;
    if ids.is_empty() {
        return Ok(vec![]);
    }
    let record_keys: Vec<String> = ids
        .iter()
        .filter_map(|i| i.parse::<Uuid>().ok())
        .map(|id| keys.job(&id))
        .collect();
    let raws: Vec<Option<String>> = redis::cmd("MGET")
        .arg(&record_keys)
        .query_async(conn)
        .await?;
    Ok(raws
        .iter()
        .flatten()
        .filter_map(|r| parse_record(r))
        .collect())
}

/// Adds the write of `job`'s record, with the TTL its state calls for, to
/// `pipe`: the record goes out with whatever else the pipeline carries.
pub fn queue_record_write(pipe: &mut redis::Pipeline, keys: &Keys, job: &Job, finished_ttl: u64) {
    pipe.set_ex(keys.job(&job.id), job.to_json(), job.ttl_secs(finished_ttl))
        .ignore();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifecycle_sets_status_times_and_attempts() {
        let mut job = Job::new(Command::Load { source: "s".into() });
        assert_eq!(job.status, JobStatus::Queued);
        assert_eq!(job.ttl_secs(10), UNFINISHED_TTL_SECS);
        job.mark_running();
        assert_eq!((job.status, job.attempts), (JobStatus::Running, 1));
        assert!(job.started_at.is_some() && job.finished_at.is_none());
        job.mark_failed("boom");
        assert_eq!(job.error.as_deref(), Some("boom"));
        assert_eq!(job.ttl_secs(10), 10);
        job.mark_running();
        job.mark_done(serde_json::json!({"records": 1}));
        assert_eq!((job.status, job.attempts), (JobStatus::Done, 2));
        assert!(job.error.is_none() && job.finished_at.is_some());
        let back: Job = serde_json::from_str(&job.to_json()).unwrap();
        assert_eq!(back, job);
        assert!(job.created_at.ends_with('Z'));
    }
}
