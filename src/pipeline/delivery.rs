//! Running one delivered stream entry to its end: done, failed, left pending
//! for a retry, or dead-lettered. Every write for the entry is made only
//! while this consumer still owns it (see `src/lua/owner_check.lua`).

use redis::aio::ConnectionManager;
use redis::streams::StreamId;
use redis::{AsyncCommands, RedisResult, Value};
use tracing::Instrument;
use uuid::Uuid;

use super::Pipeline;
use crate::jobs::{self, Command, Job, JobError};
use crate::lua;

impl Pipeline {
    /// Runs one delivered entry to its end: done, failed, or dead-lettered.
    /// `deliveries` is how many times Redis has handed it out, this time included.
    /// Returns Err only when Redis itself failed; the entry then stays pending
    /// and is reclaimed later.
    pub async fn handle_entry(
        &self,
        consumer: &str,
        entry: &StreamId,
        deliveries: usize,
    ) -> RedisResult<()> {
        let keys = &self.store.keys;
        let mut conn = self.store.data.clone();
        let field = |name: &str| -> Option<String> {
            match entry.map.get(name) {
                Some(Value::BulkString(b)) => String::from_utf8(b.clone()).ok(),
                Some(Value::SimpleString(s)) => Some(s.clone()),
                _ => None,
            }
        };
        let job_id = field("job").and_then(|s| s.parse::<Uuid>().ok());
        let command = field("cmd").and_then(|s| serde_json::from_str::<Command>(&s).ok());
        let (job_id, command) = match (job_id, command) {
            (Some(id), Some(c)) => (id, c),
            (id, _) => {
                let reason = "stream entry is not a gene-api command (fields job, cmd)";
                return self
                    .dead_letter(&mut conn, entry, id, reason, deliveries)
                    .await;
            }
        };
        let span = tracing::info_span!("job", job_id = %job_id, entry = %entry.id, consumer);
        async move {
            let mut job = match jobs::get(&mut conn, keys, &job_id).await? {
                Some(job) => job,
                // The record expired while the entry waited: rebuild it from the command.
                None => {
                    let mut job = Job::new(command.clone());
                    job.id = job_id;
                    job
                }
            };
            if job.status.is_finished() {
                // A redelivery after the final record was stored: only the XACK was lost.
                tracing::info!("already finished; acknowledging");
                return self.ack(&mut conn, entry).await;
            }
            let max = self.settings.pipeline.max_attempts as usize;
            if deliveries > max {
                let last = job
                    .error
                    .as_deref()
                    .map(|e| format!("; last error: {e}"))
                    .unwrap_or_else(|| {
                        "; every worker that took it stopped before finishing (crash, kill or timeout)"
                            .into()
                    });
                let reason = format!(
                    "gave up after {} attempts{last} (entry moved to the dead-letter stream {})",
                    deliveries - 1,
                    keys.dead_letter()
                );
                return self
                    .dead_letter(&mut conn, entry, Some(job_id), &reason, deliveries)
                    .await;
            }
            job.mark_running();
            if !self.write_if_owner(&mut conn, consumer, entry, &job, false).await? {
                return Ok(());
            }

            let outcome = self
                .with_heartbeat(
                    consumer,
                    &entry.id,
                    self.execute_with_retries(&job_id, &command),
                )
                .await;
            match outcome {
                Ok(result) => {
                    job.mark_done(result);
                    tracing::info!(attempts = job.attempts, "job done");
                }
                Err(e) if e.transient => {
                    // Leave the entry pending: the reclaimer hands it out again after
                    // `reclaim_after_ms`, up to `max_attempts` deliveries in all.
                    tracing::warn!(error = %e.message, attempts = job.attempts, "transient failure; the job will be retried");
                    // While a job waits for its retry, `error` holds the last failure.
                    job.error = Some(e.message.clone());
                    job.updated_at = jobs::now();
                    return self
                        .write_if_owner(&mut conn, consumer, entry, &job, false)
                        .await
                        .map(drop);
                }
                Err(e) => {
                    job.mark_failed(e.message.clone());
                    tracing::warn!(error = %e.message, "job failed");
                }
            }
            self.write_if_owner(&mut conn, consumer, entry, &job, true)
                .await
                .map(drop)
        }
        .instrument(span)
        .await
    }

    /// Stores `job`'s record (and with `ack`, acknowledges the entry in the same
    /// script) only while `consumer` still owns the entry. A worker that was
    /// cut off (Redis restarted under it, a long pause) may find that the
    /// reclaimer has given its entry to another consumer, which may even have
    /// finished the job: its late write must not turn "done" back into
    /// "running". Returns false when the entry is no longer ours.
    async fn write_if_owner(
        &self,
        conn: &mut ConnectionManager,
        consumer: &str,
        entry: &StreamId,
        job: &Job,
        ack: bool,
    ) -> RedisResult<bool> {
        let keys = &self.store.keys;
        let owned: bool = lua::STORE_IF_OWNER
            .key(keys.stream())
            .key(keys.job(&job.id))
            .arg(keys.group())
            .arg(&entry.id)
            .arg(consumer)
            .arg(job.to_json())
            .arg(job.ttl_secs(self.settings.pipeline.job_ttl.as_secs()))
            .arg(if ack { "1" } else { "0" })
            .invoke_async(conn)
            .await?;
        if !owned {
            tracing::warn!("another consumer has taken this entry over; leaving the job to it");
        }
        Ok(owned)
    }

    async fn ack(&self, conn: &mut ConnectionManager, entry: &StreamId) -> RedisResult<()> {
        let keys = &self.store.keys;
        conn.xack::<_, _, _, ()>(keys.stream(), keys.group(), &[&entry.id])
            .await
    }

    /// Moves an entry to the dead-letter stream, fails its job, and acknowledges it.
    async fn dead_letter(
        &self,
        conn: &mut ConnectionManager,
        entry: &StreamId,
        job_id: Option<Uuid>,
        reason: &str,
        deliveries: usize,
    ) -> RedisResult<()> {
        let keys = &self.store.keys;
        tracing::error!(entry = %entry.id, ?job_id, deliveries, reason, "dead-lettering entry");
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
                    jobs::queue_record_write(
                        &mut pipe,
                        keys,
                        &job,
                        self.settings.pipeline.job_ttl.as_secs(),
                    );
                }
            }
        }
        pipe.xack(keys.stream(), keys.group(), &[&entry.id])
            .ignore();
        pipe.query_async(conn).await
    }

    /// Runs `fut` while keeping this consumer's claim on `entry_id` fresh.
    async fn with_heartbeat<T>(
        &self,
        consumer: &str,
        entry_id: &str,
        fut: impl std::future::Future<Output = T>,
    ) -> T {
        let every = self.settings.pipeline.reclaim_after / 3;
        let mut fut = std::pin::pin!(fut);
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        loop {
            tokio::select! {
                out = &mut fut => return out,
                _ = tick.tick() => {
                    let keys = &self.store.keys;
                    let mut conn = self.store.data.clone();
                    // Only while the entry is still ours, so a cut-off worker never takes it back.
                    let r: RedisResult<Value> = lua::HEARTBEAT
                    .key(keys.stream()).arg(keys.group()).arg(entry_id).arg(consumer)
                    .invoke_async(&mut conn).await;
                    if let Err(e) = r {
                        tracing::warn!(error = %e, "heartbeat failed");
                    }
                }
            }
        }
    }

    async fn execute_with_retries(
        &self,
        job_id: &Uuid,
        command: &Command,
    ) -> Result<serde_json::Value, JobError> {
        let p = &self.settings.pipeline;
        let mut attempt = 0;
        loop {
            // A task of its own, so a panic in a handler fails this attempt
            // instead of taking the worker (and its process) down.
            let (ctx, id, cmd) = (self.job_context(), *job_id, command.clone());
            let outcome = tokio::spawn(async move { cmd.run(&ctx, &id).await })
                .await
                .unwrap_or_else(|e| {
                    Err(JobError::transient(format!(
                        "the job crashed its worker task: {e}"
                    )))
                });
            match outcome {
                Err(e) if e.transient && attempt < p.transient_retries => {
                    let backoff = p.retry_backoff * (1 << attempt);
                    tracing::warn!(error = %e.message, ?backoff, "transient failure; retrying");
                    tokio::time::sleep(backoff).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }
}
