//! The job pipeline over one Redis stream and one consumer group.
//!
//! - [`submit`] writes the job record, indexes it and XADDs the command in one
//!   MULTI, so a job is never visible without its command or the reverse.
//! - A [`Worker`] reads new entries with XREADGROUP on a connection of its own,
//!   runs them, and XACKs in the same script that stores the final record: the
//!   effect (data set, image) is written before that, so delivery is
//!   at-least-once and every handler is idempotent (keyed by the job id).
//! - [`Reclaimer`] takes over entries whose consumer died (XAUTOCLAIM after
//!   `reclaim_after_ms` idle), dead-letters entries delivered more than
//!   `max_attempts` times, and trims the stream without dropping pending entries.
//!   A worker refreshes the idle time of the entry it is running (XCLAIM
//!   JUSTID to itself), so a slow job is never mistaken for a dead one.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redis::aio::{ConnectionManager, MultiplexedConnection};
use redis::streams::{
    StreamAutoClaimOptions, StreamAutoClaimReply, StreamId, StreamPendingCountReply,
    StreamReadOptions, StreamReadReply,
};
use redis::{AsyncCommands, RedisError, RedisResult, Script, Value};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use uuid::Uuid;

use crate::config::Settings;
use crate::genes;
use crate::jobs::{self, Command, Job};
use crate::plot;
use crate::store::Store;

/// What the pipeline needs: connections and settings. Cheap to clone.
#[derive(Clone)]
pub struct Pipeline {
    pub store: Store,
    pub settings: Arc<Settings>,
}

/// True for errors that a later try may not hit: lost connections, timeouts,
/// a Redis that is still loading its data after a restart.
pub fn redis_is_transient(e: &RedisError) -> bool {
    use redis::{ErrorKind, ServerErrorKind};
    e.is_io_error()
        || e.is_timeout()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || matches!(
            e.kind(),
            ErrorKind::Server(ServerErrorKind::BusyLoading)
                | ErrorKind::Server(ServerErrorKind::TryAgain)
                | ErrorKind::Server(ServerErrorKind::MasterDown)
        )
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
        jobs::write_cmd(&mut pipe, keys, &job, self.settings.pipeline.job_ttl_secs);
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
        static SCRIPT: LazyLock<Script> = LazyLock::new(|| {
            Script::new(
                "local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1)
                 if #p == 0 or p[1][2] ~= ARGV[3] then return 0 end
                 redis.call('SET', KEYS[2], ARGV[4], 'EX', ARGV[5])
                 if ARGV[6] == '1' then redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) end
                 return 1",
            )
        });
        let owned: bool = SCRIPT
            .key(keys.stream())
            .key(keys.job(&job.id))
            .arg(keys.group())
            .arg(&entry.id)
            .arg(consumer)
            .arg(job.to_json())
            .arg(job.ttl_secs(self.settings.pipeline.job_ttl_secs))
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
                    jobs::write_cmd(&mut pipe, keys, &job, self.settings.pipeline.job_ttl_secs);
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
        let every = self.settings.pipeline.reclaim_after() / 3;
        let mut fut = std::pin::pin!(fut);
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        loop {
            tokio::select! {
                out = &mut fut => return out,
                _ = tick.tick() => {
                    let keys = &self.store.keys;
                    let mut conn = self.store.data.clone();
                    // XCLAIM to ourselves with min-idle 0 resets the idle time
                    // without counting a delivery (JUSTID); only while the entry
                    // is still ours, so a cut-off worker never takes it back.
                    static SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(
                        "local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1)
                         if #p == 0 or p[1][2] ~= ARGV[3] then return 0 end
                         redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[3], 0, ARGV[2], 'JUSTID')
                         return 1",
                    ));
                    let r: RedisResult<Value> = SCRIPT
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
            let (this, id, cmd) = (self.clone(), *job_id, command.clone());
            let outcome = tokio::spawn(async move { this.execute(&id, &cmd).await })
                .await
                .unwrap_or_else(|e| {
                    Err(JobError {
                        message: format!("the job crashed its worker task: {e}"),
                        transient: true,
                    })
                });
            match outcome {
                Err(e) if e.transient && attempt < p.transient_retries => {
                    let backoff = Duration::from_millis(p.retry_backoff_ms << attempt);
                    tracing::warn!(error = %e.message, ?backoff, "transient failure; retrying");
                    tokio::time::sleep(backoff).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// The effect of one command. Idempotent: running it twice leaves the same state.
    async fn execute(
        &self,
        job_id: &Uuid,
        command: &Command,
    ) -> Result<serde_json::Value, JobError> {
        match command {
            Command::Load { source } => self.execute_load(job_id, source).await,
            Command::Plot { plot, size } => self.execute_plot(job_id, *plot, *size).await,
        }
    }

    async fn execute_load(
        &self,
        job_id: &Uuid,
        source: &str,
    ) -> Result<serde_json::Value, JobError> {
        let mut data = self.settings.data.clone();
        data.source = source.to_string();
        let body = genes::fetch_source(&data).await?;
        let set = spawn_blocking_traced(move || genes::parse_source(body))
            .await
            .map_err(|e| JobError::permanent(format!("parsing the source crashed: {e}")))??;
        let mut conn = self.store.data.clone();
        let summary = genes::store_and_swap(
            &mut conn,
            &self.store.keys,
            &job_id.to_string(),
            &set,
            source,
        )
        .await?;
        Ok(serde_json::json!({
            "records": summary.records,
            "source_bytes": summary.source_bytes,
            "source": summary.source,
        }))
    }

    async fn execute_plot(
        &self,
        job_id: &Uuid,
        kind: plot::PlotKind,
        size: plot::ImageSize,
    ) -> Result<serde_json::Value, JobError> {
        let keys = &self.store.keys;
        let mut conn = self.store.data.clone();
        let stats = genes::current_part(&mut conn, keys, "stats")
            .await
            .map_err(JobError::from)?
            .ok_or_else(|| {
                JobError::permanent(
                    "no gene data is loaded (it was deleted after this plot was submitted): \
                     POST /data, then submit the plot again",
                )
            })?;
        let stats: plot::PlotStats = serde_json::from_slice(&stats)
            .map_err(|e| JobError::permanent(format!("stored plot statistics unreadable: {e}")))?;
        let png = spawn_blocking_traced(move || plot::render_png(kind, &stats, size))
            .await
            .map_err(|e| JobError::permanent(format!("rendering crashed: {e}")))?
            .map_err(|e| JobError::permanent(format!("rendering failed: {e}")))?;
        let bytes = png.len();
        crate::images::store(&mut self.store.images.clone(), keys, job_id, png).await?;
        Ok(serde_json::json!({
            "image": format!("/image/{job_id}"),
            "bytes": bytes,
            "width": size.width(),
            "height": size.height(),
            "plot": kind,
        }))
    }
}

/// Why a job did not succeed, and whether trying again could help.
#[derive(Debug)]
pub struct JobError {
    pub message: String,
    pub transient: bool,
}

impl JobError {
    pub fn permanent(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            transient: false,
        }
    }
}

impl From<RedisError> for JobError {
    fn from(e: RedisError) -> Self {
        Self {
            transient: redis_is_transient(&e),
            message: format!("Redis error: {e}"),
        }
    }
}

impl From<genes::LoadError> for JobError {
    fn from(e: genes::LoadError) -> Self {
        Self {
            transient: e.is_transient(),
            message: e.to_string(),
        }
    }
}

/// `spawn_blocking` that keeps the caller's tracing span.
pub fn spawn_blocking_traced<F, R>(f: F) -> tokio::task::JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || span.in_scope(f))
}

/// What one [`Worker::step`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum StepOutcome {
    /// Nothing arrived within the block time.
    Idle,
    /// This many entries were run to their end.
    Processed(usize),
}

/// One consumer of the group: reads new entries and runs them.
pub struct Worker {
    pipeline: Pipeline,
    name: String,
    conn: Option<MultiplexedConnection>,
}

impl Worker {
    pub fn new(pipeline: Pipeline, name: String) -> Self {
        Self {
            pipeline,
            name,
            conn: None,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Waits up to the block time for new entries. Cancel-safe: an entry that
    /// was delivered but not returned stays pending and is reclaimed.
    pub async fn read(&mut self) -> RedisResult<Vec<StreamId>> {
        let p = &self.pipeline;
        let block = p.settings.pipeline.block();
        if self.conn.is_none() {
            self.conn = Some(p.store.blocking_connection(block).await?);
        }
        let Some(conn) = self.conn.as_mut() else {
            return Ok(vec![]);
        };
        let keys = &p.store.keys;
        let opts = StreamReadOptions::default()
            .group(keys.group(), &self.name)
            .count(1)
            .block(block.as_millis() as usize);
        let r: RedisResult<Option<StreamReadReply>> =
            conn.xread_options(&[keys.stream()], &[">"], &opts).await;
        match r {
            Ok(reply) => Ok(reply
                .map(|r| r.keys.into_iter().flat_map(|k| k.ids).collect())
                .unwrap_or_default()),
            Err(e) => {
                if e.code() == Some("NOGROUP") {
                    // Redis lost the group (restarted without its data): recreate it.
                    p.ensure_group().await?;
                } else {
                    self.conn = None;
                }
                Err(e)
            }
        }
    }

    /// Reads and runs what arrives within one block time (what tests drive).
    pub async fn step(&mut self) -> RedisResult<StepOutcome> {
        let entries = self.read().await?;
        self.process(entries).await
    }

    async fn process(&mut self, entries: Vec<StreamId>) -> RedisResult<StepOutcome> {
        if entries.is_empty() {
            return Ok(StepOutcome::Idle);
        }
        let n = entries.len();
        for entry in &entries {
            // A fresh read is the entry's first delivery (or a redelivery that the
            // reclaimer counted); its count matters only when reclaimed.
            self.pipeline.handle_entry(&self.name, entry, 1).await?;
        }
        Ok(StepOutcome::Processed(n))
    }

    /// Runs until `shutdown`; the job in hand is always finished first
    /// (the caller bounds that with the shutdown grace time).
    pub async fn run(mut self, shutdown: CancellationToken) {
        tracing::info!(consumer = %self.name, "worker started");
        let mut backoff = Backoff::default();
        loop {
            let entries = tokio::select! {
                _ = shutdown.cancelled() => break,
                r = self.read() => r,
            };
            let r = match entries {
                Ok(entries) => self.process(entries).await,
                Err(e) => Err(e),
            };
            match r {
                Ok(_) => backoff.reset(),
                Err(e) => {
                    let pause = backoff.next();
                    tracing::warn!(consumer = %self.name, error = %e, ?pause, "stream read failed; backing off");
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(pause) => {}
                    }
                }
            }
        }
        tracing::info!(consumer = %self.name, "worker stopped");
    }
}

/// Exponential backoff from 100 ms to 5 s for a Redis that is away.
#[derive(Default)]
struct Backoff(u32);

impl Backoff {
    fn next(&mut self) -> Duration {
        let d = Duration::from_millis(100u64 << self.0.min(6)).min(Duration::from_secs(5));
        self.0 += 1;
        d
    }
    fn reset(&mut self) {
        self.0 = 0;
    }
}

/// Takes over and finishes entries of dead consumers; trims the stream.
pub struct Reclaimer {
    pipeline: Pipeline,
    name: String,
}

impl Reclaimer {
    pub fn new(pipeline: Pipeline, name: String) -> Self {
        Self { pipeline, name }
    }

    /// Claims entries idle longer than `reclaim_after` and runs each to its end.
    /// Returns how many it handled.
    pub async fn reclaim_once(&self) -> RedisResult<usize> {
        let p = &self.pipeline;
        let keys = &p.store.keys;
        let mut conn = p.store.data.clone();
        let min_idle = p.settings.pipeline.reclaim_after_ms as usize;
        let mut start = "0-0".to_string();
        let mut handled = 0;
        // XAUTOCLAIM scans at most ten times COUNT entries per call, so a run of
        // live consumers' entries at the front of the list must not end the
        // sweep: go on until the cursor wraps (bounded, in case it never does).
        for _ in 0..10_000 {
            let opts = StreamAutoClaimOptions::default().count(16);
            let reply: StreamAutoClaimReply = conn
                .xautoclaim_options(
                    keys.stream(),
                    keys.group(),
                    &self.name,
                    min_idle,
                    &start,
                    opts,
                )
                .await?;
            if !reply.claimed.is_empty() {
                let deliveries = self.deliveries(&mut conn, &reply.claimed).await?;
                for entry in &reply.claimed {
                    let n = deliveries.get(&entry.id).copied().unwrap_or(1);
                    tracing::warn!(entry = %entry.id, deliveries = n, "reclaimed an entry from a dead consumer");
                    p.handle_entry(&self.name, entry, n).await?;
                    handled += 1;
                }
            }
            if reply.next_stream_id == "0-0" {
                return Ok(handled);
            }
            start = reply.next_stream_id;
        }
        Ok(handled)
    }

    /// Delivery counts of entries this consumer now owns.
    async fn deliveries(
        &self,
        conn: &mut ConnectionManager,
        claimed: &[StreamId],
    ) -> RedisResult<HashMap<String, usize>> {
        let keys = &self.pipeline.store.keys;
        let (first, last) = (&claimed[0].id, &claimed[claimed.len() - 1].id);
        let reply: StreamPendingCountReply = conn
            .xpending_consumer_count(
                keys.stream(),
                keys.group(),
                first,
                last,
                claimed.len(),
                &self.name,
            )
            .await?;
        Ok(reply
            .ids
            .into_iter()
            .map(|p| (p.id, p.times_delivered))
            .collect())
    }

    /// Drops acknowledged entries once the stream is longer than `stream_max_len`,
    /// never one that is pending or not yet delivered.
    pub async fn trim(&self) -> RedisResult<u64> {
        let p = &self.pipeline;
        let keys = &p.store.keys;
        let mut conn = p.store.data.clone();
        let len: u64 = conn.xlen(keys.stream()).await?;
        if len <= p.settings.pipeline.stream_max_len {
            return Ok(0);
        }
        let groups: redis::streams::StreamInfoGroupsReply =
            conn.xinfo_groups(keys.stream()).await?;
        let Some(group) = groups.groups.iter().find(|g| g.name == keys.group()) else {
            return Ok(0);
        };
        let mut keep_from = group.last_delivered_id.clone();
        let pending: redis::streams::StreamPendingReply =
            conn.xpending(keys.stream(), keys.group()).await?;
        if let redis::streams::StreamPendingReply::Data(d) = pending {
            if stream_id_lt(&d.start_id, &keep_from) {
                keep_from = d.start_id;
            }
        }
        let removed: u64 = redis::cmd("XTRIM")
            .arg(keys.stream())
            .arg("MINID")
            .arg(&keep_from)
            .query_async(&mut conn)
            .await?;
        if removed > 0 {
            tracing::debug!(removed, keep_from, "trimmed the stream");
        }
        Ok(removed)
    }

    /// Forgets consumers that own nothing and have been idle for an hour: each
    /// process start adds new names, and the group should not grow forever.
    pub async fn prune_consumers(&self) -> RedisResult<usize> {
        const IDLE_MS: usize = 3_600_000;
        let keys = &self.pipeline.store.keys;
        let mut conn = self.pipeline.store.data.clone();
        let info: redis::streams::StreamInfoConsumersReply =
            conn.xinfo_consumers(keys.stream(), keys.group()).await?;
        let mut removed = 0;
        for c in info.consumers {
            if c.pending == 0 && c.idle > IDLE_MS && c.name != self.name {
                let _: i64 = redis::cmd("XGROUP")
                    .arg("DELCONSUMER")
                    .arg(keys.stream())
                    .arg(keys.group())
                    .arg(&c.name)
                    .query_async(&mut conn)
                    .await?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Reclaims and trims every `reclaim_interval` until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        let every = self.pipeline.settings.pipeline.reclaim_interval();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(every) => {}
            }
            if let Err(e) = self.reclaim_once().await {
                tracing::warn!(error = %e, "reclaim failed; will retry");
            }
            if let Err(e) = self.trim().await {
                tracing::warn!(error = %e, "stream trim failed; will retry");
            }
            if let Err(e) = self.prune_consumers().await {
                tracing::debug!(error = %e, "consumer pruning failed; will retry");
            }
        }
    }
}

/// Orders stream ids `<ms>-<seq>` numerically.
fn stream_id_lt(a: &str, b: &str) -> bool {
    fn parts(id: &str) -> (u64, u64) {
        let (ms, seq) = id.split_once('-').unwrap_or((id, "0"));
        (ms.parse().unwrap_or(0), seq.parse().unwrap_or(0))
    }
    parts(a) < parts(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_ids_compare_numerically_not_as_text() {
        assert!(stream_id_lt("9-0", "10-0"));
        assert!(stream_id_lt("10-2", "10-10"));
        assert!(!stream_id_lt("10-10", "10-10"));
        assert!(!stream_id_lt("11-0", "10-99"));
    }

    #[test]
    fn backoff_grows_and_caps() {
        let mut b = Backoff::default();
        let seq: Vec<_> = (0..9).map(|_| b.next().as_millis()).collect();
        assert_eq!(seq, [100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000]);
        b.reset();
        assert_eq!(b.next().as_millis(), 100);
    }

    #[test]
    fn consumer_names_differ_per_role_and_index() {
        let a = consumer_name("worker", 0);
        let b = consumer_name("worker", 1);
        assert_ne!(a, b);
        assert!(a.contains(&std::process::id().to_string()));
    }
}
