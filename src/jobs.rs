//! Jobs: what a client submitted, its state, and the records kept in Redis.
//!
//! A job record is a JSON string at `<p>:job:<id>` (db 0); `<p>:jobs` is a
//! sorted set of ids by submission time for GET /jobs.

use std::time::SystemTime;

use redis::aio::ConnectionManager;
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::plot::{ImageSize, PlotKind};
use crate::store::Keys;

/// Unfinished records expire after this long, so even a lost job cannot leak a key.
pub const UNFINISHED_TTL_SECS: u64 = 7 * 24 * 3600;

/// What a job does. This is also the command carried by the stream entry, so a
/// worker needs nothing but the entry to run it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Command {
    /// Fetch the configured source and swap it in as the live data set.
    Load { source: String },
    /// Render a chart of the live data set into db 1.
    Plot {
        plot: PlotKind,
        #[serde(flatten)]
        size: ImageSize,
    },
}

impl Command {
    pub fn kind(&self) -> JobKind {
        match self {
            Command::Load { .. } => JobKind::Load,
            Command::Plot { .. } => JobKind::Plot,
        }
    }
}

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

/// Writes a record with the TTL its state calls for.
pub fn write_cmd(pipe: &mut redis::Pipeline, keys: &Keys, job: &Job, finished_ttl: u64) {
    pipe.set_ex(keys.job(&job.id), job.to_json(), job.ttl_secs(finished_ttl))
        .ignore();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_round_trip_as_tagged_json() {
        let load = Command::Load {
            source: "data/x.json".into(),
        };
        let j = serde_json::to_value(&load).unwrap();
        assert_eq!(
            j,
            serde_json::json!({"kind": "load", "source": "data/x.json"})
        );
        let plot = Command::Plot {
            plot: PlotKind::Chromosome,
            size: ImageSize::new(300, 200).unwrap(),
        };
        let j = serde_json::to_value(&plot).unwrap();
        assert_eq!(
            j,
            serde_json::json!({"kind": "plot", "plot": "chromosome", "width": 300, "height": 200})
        );
        assert_eq!(serde_json::from_value::<Command>(j).unwrap(), plot);
        // A size outside the allowed range cannot sneak in through the stream either.
        let bad =
            serde_json::json!({"kind": "plot", "plot": "chromosome", "width": 1, "height": 200});
        assert!(serde_json::from_value::<Command>(bad).is_err());
    }

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
