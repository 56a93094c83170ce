//! Job records as clients see them: kind, state, times, outcome.
//!
//! A record is a JSON string at `<p>:job:<id>` (db 0); `<p>:jobs` is a sorted
//! set of ids by submission time for GET /jobs.

use std::time::SystemTime;

use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::Command;
use crate::store::{Conn, Keys};

/// Unfinished records expire after this long, so even a lost job cannot leak a key.
pub const UNFINISHED_TTL_SECS: u64 = 7 * 24 * 3600;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    Load,
    Plot,
}

impl JobKind {
    pub const ALL: [JobKind; 2] = [JobKind::Load, JobKind::Plot];

    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Load => "load",
            JobKind::Plot => "plot",
        }
    }
}

impl std::str::FromStr for JobKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("unknown job kind {s:?}; the kinds are load and plot"))
    }
}

/// Where a job is. `queued` -> `running` -> `done` | `failed`; a transient
/// failure goes `running` -> `retrying` -> `running` (up to `max_attempts`
/// runs); `queued` and `retrying` jobs can be `cancelled`, and `running`
/// ones end `cancelled` at their next safe point when asked before their
/// point of no return; `failed` and `cancelled` ones can be queued again
/// (POST /jobs/<id>/retry).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    Queued,
    Running,
    Retrying,
    Done,
    Failed,
    Cancelled,
}

impl JobStatus {
    pub const ALL: [JobStatus; 6] = [
        JobStatus::Queued,
        JobStatus::Running,
        JobStatus::Retrying,
        JobStatus::Done,
        JobStatus::Failed,
        JobStatus::Cancelled,
    ];

    /// No worker will run it again (unless a client asks for a retry).
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            JobStatus::Done | JobStatus::Failed | JobStatus::Cancelled
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Retrying => "retrying",
            JobStatus::Done => "done",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
        }
    }
}

impl std::str::FromStr for JobStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown job status {s:?}; the states are queued, running, retrying, done, \
                 failed and cancelled"
                )
            })
    }
}

/// A job as clients see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Job {
    pub id: Uuid,
    pub kind: JobKind,
    pub status: JobStatus,
    /// What the job was asked to do.
    pub params: Command,
    /// How many times a worker has started it.
    pub attempts: u32,
    /// Runs after which a transient failure is final.
    #[serde(default)]
    pub max_attempts: u32,
    /// How many times it was queued again after it ended (`POST
    /// /jobs/<id>/retry`, or a requeue of its dead letter); each round starts
    /// `attempts` over. A stream entry of an earlier round is stale and is
    /// acknowledged unrun. Kept through every write of the record (a record
    /// rewritten without it would make an old round's entry look current).
    #[serde(default)]
    pub retries: u32,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub started_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub finished_at: Option<String>,
    /// While `retrying`: when the next run is due.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub next_attempt_at: Option<String>,
    /// Why it failed (or, while `retrying`, why the last run failed), in words
    /// a user can act on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// While `running`: how far it has got (load: stage, bytes, records).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<serde_json::Value>,
    /// What it produced (load: counts; plot: the image's path).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<serde_json::Value>,
    /// When a client asked the running job to stop (`DELETE /jobs/<id>`):
    /// it ends `cancelled` at its next safe point.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub cancel_requested_at: Option<String>,
    /// The OpenTelemetry trace the job belongs to (32 hex digits), when
    /// traces are exported: the submitting request's, continued by the worker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
}

/// Now as RFC 3339 with milliseconds, UTC.
pub fn now() -> String {
    rfc3339(SystemTime::now())
}

/// `t` as RFC 3339 with milliseconds, UTC: the records' time format, which
/// sorts as text in time order.
pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

impl Job {
    pub fn new(command: Command, max_attempts: u32) -> Self {
        let t = now();
        Self {
            id: Uuid::new_v4(),
            kind: command.kind(),
            status: JobStatus::Queued,
            params: command,
            attempts: 0,
            max_attempts,
            retries: 0,
            created_at: t.clone(),
            updated_at: t,
            started_at: None,
            finished_at: None,
            next_attempt_at: None,
            error: None,
            progress: None,
            result: None,
            cancel_requested_at: None,
            trace_id: None,
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
        self.next_attempt_at = None;
        self.progress = None;
    }

    pub fn mark_done(&mut self, result: serde_json::Value) {
        let t = now();
        self.status = JobStatus::Done;
        self.finished_at = Some(t.clone());
        self.updated_at = t;
        self.error = None;
        self.progress = None;
        self.result = Some(result);
    }

    pub fn mark_failed(&mut self, error: impl Into<String>) {
        let t = now();
        self.status = JobStatus::Failed;
        self.finished_at = Some(t.clone());
        self.updated_at = t;
        self.next_attempt_at = None;
        self.progress = None;
        self.error = Some(error.into());
    }

    /// Stopped at a safe point (or unrun) after a client asked at `asked_at`.
    pub fn mark_cancelled(&mut self, asked_at: String) {
        let t = now();
        self.status = JobStatus::Cancelled;
        self.finished_at = Some(t.clone());
        self.updated_at = t;
        self.next_attempt_at = None;
        self.progress = None;
        self.cancel_requested_at = Some(asked_at);
    }

    /// A transient failure with runs left: the next one is due at `next`.
    pub fn mark_retrying(&mut self, error: impl Into<String>, next: SystemTime) {
        self.status = JobStatus::Retrying;
        self.updated_at = now();
        self.next_attempt_at = Some(rfc3339(next));
        self.progress = None;
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
pub async fn get(conn: &mut Conn, keys: &Keys, id: &Uuid) -> redis::RedisResult<Option<Job>> {
    let raw: Option<String> = conn.get(keys.job(id)).await?;
    Ok(raw.and_then(|r| parse_record(&r)))
}

/// Notes in each job's record that its image was evicted (the bound of
/// `images.max_count` / `images.max_bytes`), in `result.image_evicted_at`.
/// Finished records are not written by anyone else, so a plain read and
/// write (keeping the record's TTL) is enough.
pub async fn mark_image_evicted(
    conn: &mut Conn,
    keys: &Keys,
    ids: &[String],
) -> redis::RedisResult<()> {
    let at = now();
    for id in ids {
        let Ok(id) = id.parse::<Uuid>() else { continue };
        let Some(mut job) = get(conn, keys, &id).await? else {
            continue;
        };
        let result = job.result.get_or_insert_with(|| serde_json::json!({}));
        if let Some(r) = result.as_object_mut() {
            r.insert(
                "image_evicted_at".into(),
                serde_json::Value::String(at.clone()),
            );
        }
        redis::cmd("SET")
            .arg(keys.job(&id))
            .arg(job.to_json())
            .arg("KEEPTTL")
            .query_async::<()>(conn)
            .await?;
    }
    Ok(())
}

pub fn parse_record(raw: &str) -> Option<Job> {
    match serde_json::from_str(raw) {
        Ok(job) => Some(job),
        Err(e) => {
            tracing::warn!(error = %e, "unreadable job record ignored");
            None
        }
    }
}

/// Which jobs a listing wants.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JobFilter {
    pub status: Option<JobStatus>,
    pub kind: Option<JobKind>,
}

impl JobFilter {
    fn matches(&self, job: &Job) -> bool {
        self.status.is_none_or(|s| s == job.status) && self.kind.is_none_or(|k| k == job.kind)
    }
}

/// Where a listing stopped: the index score and id of the last job it
/// returned. Clients get it as an opaque string (`Display` / `FromStr`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    score: u64,
    id: String,
}

impl std::fmt::Display for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.score, self.id)
    }
}

impl std::str::FromStr for Cursor {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || {
            format!("{s:?} is not a cursor: pass the `cursor` of the previous page's Link header as it is")
        };
        let (score, id) = s.split_once('.').ok_or_else(bad)?;
        let score = score.parse().map_err(|_| bad())?;
        let id = id.parse::<Uuid>().map_err(|_| bad())?;
        Ok(Self {
            score,
            id: id.to_string(),
        })
    }
}

/// One page of jobs, newest first, and the cursor of the next page (None on
/// the last one).
#[derive(Debug)]
pub struct Page {
    pub jobs: Vec<Job>,
    pub next: Option<Cursor>,
}

/// The jobs in the index, newest first, that match `filter`, after `cursor`.
/// The index holds at most `pipeline.jobs_index_max` ids, so a page reads at
/// most that many records; ids whose record has expired are skipped.
pub async fn list(
    conn: &mut Conn,
    keys: &Keys,
    filter: JobFilter,
    limit: usize,
    cursor: Option<&Cursor>,
) -> redis::RedisResult<Page> {
    let index = index_newest_first(conn, keys).await?;
    // Ties in score are listed by id, descending, as ZREVRANGE orders them.
    let start = match cursor {
        None => 0,
        Some(c) => index
            .iter()
            .position(|(id, score)| (*score, id.as_str()) < (c.score, c.id.as_str()))
            .unwrap_or(index.len()),
    };
    let mut jobs = Vec::with_capacity(limit);
    let mut more = false;
    // Unfiltered pages read exactly what they return (one more to know whether
    // a next page exists); filtered ones read in larger slices.
    let slice = if filter == JobFilter::default() {
        limit + 1
    } else {
        200
    };
    'scan: for chunk in index[start..].chunks(slice.max(1)) {
        for (entry, job) in chunk.iter().zip(records(conn, keys, chunk).await?) {
            let Some(job) = job.filter(|j| filter.matches(j)) else {
                continue;
            };
            if jobs.len() == limit {
                more = true;
                break 'scan;
            }
            jobs.push((entry.1, job));
        }
    }
    let next = match (more, jobs.last()) {
        (true, Some((score, job))) => Some(Cursor {
            score: *score,
            id: job.id.to_string(),
        }),
        _ => None,
    };
    Ok(Page {
        jobs: jobs.into_iter().map(|(_, j)| j).collect(),
        next,
    })
}

/// Every job in the index (for counts by state).
pub async fn all_indexed(conn: &mut Conn, keys: &Keys) -> redis::RedisResult<Vec<Job>> {
    let index = index_newest_first(conn, keys).await?;
    let mut out = Vec::with_capacity(index.len());
    for chunk in index.chunks(500) {
        out.extend(records(conn, keys, chunk).await?.into_iter().flatten());
    }
    Ok(out)
}

async fn index_newest_first(
    conn: &mut Conn,
    keys: &Keys,
) -> redis::RedisResult<Vec<(String, u64)>> {
    conn.zrevrange_withscores(keys.jobs_index(), 0, -1).await
}

async fn records(
    conn: &mut Conn,
    keys: &Keys,
    entries: &[(String, u64)],
) -> redis::RedisResult<Vec<Option<Job>>> {
    if entries.is_empty() {
        return Ok(vec![]);
    }
    let record_keys: Vec<String> = entries
        .iter()
        .map(|(id, _)| format!("{}{id}", keys.job_prefix()))
        .collect();
    let raws: Vec<Option<String>> = redis::cmd("MGET")
        .arg(&record_keys)
        .query_async(conn)
        .await?;
    Ok(raws
        .iter()
        .map(|r| r.as_deref().and_then(parse_record))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifecycle_sets_status_times_and_attempts() {
        let mut job = Job::new(
            Command::Load {
                source: "s".into(),
                withdrawn: None,
                trigger: Default::default(),
            },
            3,
        );
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
