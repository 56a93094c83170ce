//! Running one delivered stream entry to its end: done, failed, `retrying`
//! (scheduled for a later run), skipped (cancelled or stale), or
//! dead-lettered. Every write for the entry is made only while this consumer
//! still owns it (see `src/lua/owner_check.lua`), and every state change is
//! announced on the events stream in the same script.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redis::streams::StreamId;
use redis::{RedisResult, Value};
use tokio::sync::watch;
use tracing::Instrument;
use uuid::Uuid;

use super::Pipeline;
use crate::jobs::{self, Command, Job, JobError, JobStatus, Progress, Stop};
use crate::lua;
use crate::store::Conn;

/// How often a running job's progress may be written (and announced).
const PROGRESS_EVERY: Duration = Duration::from_millis(250);

/// The fields of a gene-api stream entry.
struct Entry<'a> {
    raw: &'a StreamId,
    job_id: Option<Uuid>,
    command: Option<Command>,
    /// Which round of runs the entry belongs to (see `reset_job.lua`).
    retry: String,
    /// The W3C `traceparent` of the request that submitted it, when traces
    /// were on there.
    trace: Option<String>,
}

impl<'a> Entry<'a> {
    fn parse(raw: &'a StreamId) -> Self {
        let field = |name: &str| -> Option<String> {
            match raw.map.get(name) {
                Some(Value::BulkString(b)) => String::from_utf8(b.clone()).ok(),
                Some(Value::SimpleString(s)) => Some(s.clone()),
                _ => None,
            }
        };
        Self {
            raw,
            job_id: field("job").and_then(|s| s.parse().ok()),
            command: field("cmd").and_then(|s| serde_json::from_str(&s).ok()),
            retry: field("retry").unwrap_or_else(|| "0".into()),
            trace: field("trace"),
        }
    }
}

/// What `start_job.lua` said.
enum Start {
    NotOurs,
    Missing,
    Skip(Option<Job>),
    /// A client asked to stop the job while an earlier run was under way
    /// (a run that then died): it ended `cancelled`, unrun.
    Cancelled(Job),
    Started(Job),
}

impl Pipeline {
    /// Runs one delivered entry to its end. `deliveries` is how many times
    /// Redis has handed it out, this time included. Returns Err only when
    /// Redis itself failed; the entry then stays pending and is reclaimed later.
    pub async fn handle_entry(
        &self,
        consumer: &str,
        raw: &StreamId,
        deliveries: usize,
    ) -> RedisResult<()> {
        let mut conn = self.store.data.clone();
        let entry = Entry::parse(raw);
        let (Some(job_id), Some(command)) = (entry.job_id, entry.command.clone()) else {
            let reason = "stream entry is not a gene-api command (fields job, cmd)";
            return self
                .dead_letter(&mut conn, raw, entry.job_id, reason, deliveries)
                .await;
        };
        let span = tracing::info_span!(
            "job",
            job_id = %job_id,
            entry = %raw.id,
            consumer,
            otel.name = tracing::field::Empty,
            otel.kind = tracing::field::Empty,
        );
        // Filled in only for traces, so that log lines stay as they were.
        if crate::telemetry::otel::on() {
            span.record("otel.name", format!("run {}", command.kind().as_str()));
            span.record("otel.kind", "consumer");
            if let Some(traceparent) = &entry.trace {
                crate::telemetry::otel::continue_from(&span, traceparent);
            }
        }
        async move {
            let max = self.settings.pipeline.max_attempts as usize;
            if deliveries > max {
                // Taken and never finished `max` times: it kills its workers.
                let job = jobs::get(&mut conn, &self.store.keys, &job_id).await?;
                let last = job
                    .and_then(|j| j.error)
                    .map(|e| format!("; last error: {e}"))
                    .unwrap_or_else(|| {
                        "; every worker that took it stopped before finishing (crash, kill or timeout)"
                            .into()
                    });
                let reason = format!(
                    "gave up after {} attempts{last} (entry moved to the dead-letter stream {})",
                    deliveries - 1,
                    self.store.keys.dead_letter()
                );
                return self
                    .dead_letter(&mut conn, raw, Some(job_id), &reason, deliveries)
                    .await;
            }
            let mut job = match self.start(&mut conn, consumer, &entry, &job_id).await? {
                Start::NotOurs => return Ok(()),
                Start::Started(job) => job,
                Start::Cancelled(job) => {
                    tracing::info!("asked to stop before this run: cancelled unrun");
                    crate::monitoring::job_finished(job.kind, JobStatus::Cancelled);
                    return self.ack(&mut conn, raw).await;
                }
                Start::Skip(job) => {
                    // Cancelled, finished (only the XACK was lost), or queued
                    // again under a newer entry: acknowledge it unrun.
                    let status = job.map(|j| j.status);
                    tracing::info!(?status, "not running it: acknowledging");
                    return self.ack(&mut conn, raw).await;
                }
                Start::Missing => {
                    // The record expired while the entry waited (7 days):
                    // rebuild it from the command.
                    let mut job = Job::new(command.clone(), self.settings.pipeline.max_attempts);
                    job.id = job_id;
                    job.mark_running();
                    if !self.write_if_owner(&mut conn, consumer, raw, &job, Finish::Keep).await? {
                        return Ok(());
                    }
                    job
                }
            };

            let stop = Stop::new(
                self.store.clone(),
                &job_id,
                job.retries,
                jobs::UNFINISHED_TTL_SECS,
            );
            let timer = crate::monitoring::RunTimer::start(job.kind);
            let outcome = self
                .run_with_upkeep(consumer, raw, &mut job, &command, stop.clone())
                .await;
            drop(timer);
            // A run that failed after a client asked to stop it ends as asked:
            // `cancelled`, not `retrying` (its next safe point would stop it)
            // nor `failed`.
            let outcome = match outcome {
                Err(e) if e.cancelled.is_none() => match stop.asked().await {
                    Some(at) => {
                        tracing::info!(error = %e.message, "the run failed after a cancel was asked for");
                        Err(JobError::cancelled(at))
                    }
                    None => Err(e),
                },
                other => other,
            };
            let finish = match outcome {
                Ok(result) => {
                    job.mark_done(result);
                    tracing::info!(attempts = job.attempts, "job done");
                    Finish::Ack
                }
                Err(JobError {
                    cancelled: Some(asked_at),
                    ..
                }) => {
                    tracing::info!("stopped at a safe point: cancelled, as a client asked");
                    job.mark_cancelled(asked_at);
                    Finish::Ack
                }
                Err(e) if e.transient && job.attempts < self.max_attempts(&job) => {
                    let backoff = self.backoff(job.attempts);
                    let due = SystemTime::now() + backoff;
                    tracing::warn!(error = %e.message, attempts = job.attempts, ?backoff, "transient failure; retrying");
                    job.mark_retrying(e.message, due);
                    Finish::Retry(due)
                }
                Err(e) => {
                    let message = if e.transient {
                        format!("gave up after {} attempts: {}", job.attempts, e.message)
                    } else {
                        e.message
                    };
                    tracing::warn!(error = %message, "job failed");
                    job.mark_failed(message);
                    Finish::Ack
                }
            };
            if self.write_if_owner(&mut conn, consumer, raw, &job, finish).await? {
                crate::monitoring::job_finished(job.kind, job.status);
            }
            Ok(())
        }
        .instrument(span)
        .await
    }

    fn max_attempts(&self, job: &Job) -> u32 {
        match job.max_attempts {
            0 => self.settings.pipeline.max_attempts,
            n => n,
        }
    }

    /// The pause before run `attempts + 1`: `retry_backoff`, doubling per run.
    fn backoff(&self, attempts: u32) -> Duration {
        self.settings.pipeline.retry_backoff * (1u32 << attempts.saturating_sub(1).min(16))
    }

    /// Turns the job `running` for this consumer, in one script with the checks.
    async fn start(
        &self,
        conn: &mut Conn,
        consumer: &str,
        entry: &Entry<'_>,
        job_id: &Uuid,
    ) -> RedisResult<Start> {
        let keys = &self.store.keys;
        let reply: Value = lua::START_JOB
            .key(keys.stream())
            .key(keys.job(job_id))
            .key(keys.events())
            .key(keys.job_stop(job_id))
            .arg(keys.group())
            .arg(&entry.raw.id)
            .arg(consumer)
            .arg(jobs::now())
            .arg(jobs::UNFINISHED_TTL_SECS)
            .arg(self.settings.pipeline.events_max_len)
            .arg(&entry.retry)
            .arg(self.settings.pipeline.job_ttl.as_secs())
            .invoke_async(conn)
            .await?;
        let (tag, record): (String, Option<String>) = match reply {
            Value::Int(0) => {
                tracing::warn!("another consumer has taken this entry over; leaving the job to it");
                return Ok(Start::NotOurs);
            }
            other => redis::from_redis_value(other).map_err(redis::RedisError::from)?,
        };
        let job = record.as_deref().and_then(jobs::parse_record);
        Ok(match (tag.as_str(), job) {
            ("started", Some(job)) => Start::Started(job),
            ("cancelled", Some(job)) => Start::Cancelled(job),
            ("skip", job) => Start::Skip(job),
            _ => Start::Missing,
        })
    }

    /// Stores `job`'s record and announces it, only while `consumer` still
    /// owns the entry; `finish` says what else happens in the same script. A
    /// worker that was cut off (Redis restarted under it, a long pause) may
    /// find that the reclaimer has given its entry to another consumer, which
    /// may even have finished the job: its late write must not turn "done"
    /// back into "running". Returns false when the entry is no longer ours.
    async fn write_if_owner(
        &self,
        conn: &mut Conn,
        consumer: &str,
        entry: &StreamId,
        job: &Job,
        finish: Finish,
    ) -> RedisResult<bool> {
        let keys = &self.store.keys;
        let (ack, due) = match finish {
            Finish::Keep => ("0", String::new()),
            Finish::Ack => ("1", String::new()),
            Finish::Retry(at) => ("1", unix_ms(at).to_string()),
        };
        let owned: bool = lua::STORE_IF_OWNER
            .key(keys.stream())
            .key(keys.job(&job.id))
            .key(keys.events())
            .key(keys.delayed())
            .key(keys.job_stop(&job.id))
            .arg(keys.group())
            .arg(&entry.id)
            .arg(consumer)
            .arg(job.to_json())
            .arg(job.ttl_secs(self.settings.pipeline.job_ttl.as_secs()))
            .arg(ack)
            .arg(self.settings.pipeline.events_max_len)
            .arg(job.id.to_string())
            .arg(job.kind.as_str())
            .arg(job.status.as_str())
            .arg(due)
            .arg(job.retries)
            .invoke_async(conn)
            .await?;
        if !owned {
            tracing::warn!("another consumer has taken this entry over; leaving the job to it");
        }
        Ok(owned)
    }

    async fn ack(&self, conn: &mut Conn, entry: &StreamId) -> RedisResult<()> {
        let keys = &self.store.keys;
        redis::cmd("XACK")
            .arg(keys.stream())
            .arg(keys.group())
            .arg(&entry.id)
            .query_async(conn)
            .await
    }

    /// Moves an entry to the dead-letter stream, fails its job, and acknowledges it.
    async fn dead_letter(
        &self,
        conn: &mut Conn,
        entry: &StreamId,
        job_id: Option<Uuid>,
        reason: &str,
        deliveries: usize,
    ) -> RedisResult<()> {
        let keys = &self.store.keys;
        tracing::error!(entry = %entry.id, ?job_id, deliveries, reason, "dead-lettering entry");
        crate::monitoring::job_dead_lettered();
        let mut fields: Vec<(String, Vec<u8>)> = vec![
            ("entry".into(), entry.id.clone().into_bytes()),
            ("reason".into(), reason.as_bytes().to_vec()),
            ("deliveries".into(), deliveries.to_string().into_bytes()),
        ];
        for (k, v) in &entry.map {
            if let Value::BulkString(b) = v {
                fields.push((format!("orig_{k}"), b.clone()));
            }
        }
        let mut pipe = redis::pipe();
        pipe.atomic();
        pipe.xadd_maxlen(
            keys.dead_letter(),
            redis::streams::StreamMaxlen::Approx(10_000),
            "*",
            &fields,
        )
        .ignore();
        if let Some(id) = job_id {
            if let Some(mut job) = jobs::get(conn, keys, &id).await? {
                if !job.status.is_finished() {
                    job.mark_failed(reason);
                    self.queue_record_and_event(&mut pipe, &job);
                    pipe.del(keys.job_stop(&id)).ignore();
                }
            }
        }
        pipe.xack(keys.stream(), keys.group(), &[&entry.id])
            .ignore();
        pipe.query_async(conn).await
    }

    /// Runs the job in a task of its own (a panic fails this run instead of
    /// taking the worker down) while keeping this consumer's claim on the
    /// entry fresh and writing the job's progress as it reports it.
    async fn run_with_upkeep(
        &self,
        consumer: &str,
        entry: &StreamId,
        job: &mut Job,
        command: &Command,
        stop: Stop,
    ) -> Result<serde_json::Value, JobError> {
        let (tx, mut progress) = watch::channel(None);
        let mut ctx = self.job_context();
        ctx.progress = Progress::new(tx);
        ctx.stop = stop;
        let (id, cmd) = (job.id, command.clone());
        // In the job's span, so that what the job logs names it.
        let run = tokio::spawn(async move { cmd.run(&ctx, &id).await }.in_current_span());
        let mut run = std::pin::pin!(run);

        let every = self.settings.pipeline.reclaim_after / 3;
        let mut heartbeat = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        let mut progress_tick =
            tokio::time::interval_at(tokio::time::Instant::now() + PROGRESS_EVERY, PROGRESS_EVERY);
        let mut conn = self.store.data.clone();
        loop {
            tokio::select! {
                out = &mut run => {
                    return out.unwrap_or_else(|e| {
                        Err(JobError::transient(format!("the job crashed its worker task: {e}")))
                    });
                }
                _ = heartbeat.tick() => {
                    let keys = &self.store.keys;
                    // Only while the entry is still ours, so a cut-off worker never takes it back.
                    let r: RedisResult<Value> = lua::HEARTBEAT
                        .key(keys.stream()).arg(keys.group()).arg(&entry.id).arg(consumer)
                        .invoke_async(&mut conn).await;
                    if let Err(e) = r {
                        tracing::warn!(error = %e, "heartbeat failed");
                    }
                }
                _ = progress_tick.tick(), if progress.has_changed().unwrap_or(false) => {
                    job.progress = progress.borrow_and_update().clone();
                    job.updated_at = jobs::now();
                    if let Err(e) = self.write_if_owner(&mut conn, consumer, entry, job, Finish::Keep).await {
                        tracing::debug!(error = %e, "progress not written");
                    }
                }
            }
        }
    }
}

/// What the final record write does besides storing the record.
#[derive(Debug, Clone, Copy)]
enum Finish {
    /// Nothing: the job goes on (progress, or a rebuilt `running` record).
    Keep,
    /// Acknowledge the entry: the job is finished.
    Ack,
    /// Acknowledge the entry and schedule the next run at this time.
    Retry(SystemTime),
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
