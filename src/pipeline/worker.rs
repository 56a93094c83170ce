//! A consumer of the group: reads new entries and runs them.

use std::time::Duration;

use redis::streams::{StreamId, StreamReadOptions, StreamReadReply};
use redis::{AsyncCommands, RedisResult};
use tokio_util::sync::CancellationToken;

use super::Pipeline;

/// How often a paused worker asks whether the queue runs again.
const PAUSE_POLL: Duration = Duration::from_millis(250);

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
    conn: Option<crate::store::BlockingConn>,
    /// Entries of this consumer may be pending unfinished: Redis failed while
    /// a batch ran (a failover, a restart). The next read takes them back
    /// (XREADGROUP from id 0) before any new one, so they finish as soon as
    /// Redis is back instead of waiting `RECLAIM_AFTER_MS` for the reclaimer.
    /// Safe because a consumer runs one batch at a time: when it reads,
    /// nothing of its own is running.
    unfinished: bool,
}

impl Worker {
    pub fn new(pipeline: Pipeline, name: String) -> Self {
        Self {
            pipeline,
            name,
            conn: None,
            unfinished: false,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Waits up to the block time for new entries. Cancel-safe: an entry that
    /// was delivered but not returned stays pending and is reclaimed.
    pub async fn read(&mut self) -> RedisResult<Vec<StreamId>> {
        let p = &self.pipeline;
        let block = p.settings.pipeline.block;
        if self.conn.is_none() {
            self.conn = Some(p.store.blocking_connection(block).await?);
        }
        let Some(conn) = self.conn.as_mut() else {
            return Ok(vec![]);
        };
        let keys = &p.store.keys;
        let mut opts = StreamReadOptions::default()
            .group(keys.group(), &self.name)
            .count(p.settings.workers.batch);
        // New entries wait up to the block time; this consumer's own pending
        // ones are there or not.
        let from = if self.unfinished {
            "0"
        } else {
            opts = opts.block(block.as_millis() as usize);
            ">"
        };
        let r: RedisResult<Option<StreamReadReply>> =
            conn.xread_options(&[keys.stream()], &[from], &opts).await;
        match r {
            Ok(reply) => {
                let entries: Vec<StreamId> = reply
                    .map(|r| r.keys.into_iter().flat_map(|k| k.ids).collect())
                    .unwrap_or_default();
                if std::mem::take(&mut self.unfinished) && !entries.is_empty() {
                    // Once: what fails again is left to the reclaimer, so
                    // an entry can never hold its consumer in a loop.
                    tracing::info!(consumer = %self.name, entries = entries.len(), "taking back this consumer's unfinished entries");
                }
                Ok(entries)
            }
            Err(e) => {
                if e.code() == Some("NOGROUP") {
                    // Redis lost the group (restarted without its data): recreate it.
                    p.ensure_group().await?;
                } else {
                    self.conn = None;
                }
                // The read may have gone through with its reply lost.
                self.unfinished = true;
                Err(e)
            }
        }
    }

    /// Reads and runs what arrives within one block time (what tests
    /// drive); takes nothing while the queue is paused.
    pub async fn step(&mut self) -> RedisResult<StepOutcome> {
        if !self.unfinished && self.paused().await {
            return Ok(StepOutcome::Idle);
        }
        let entries = self.read().await?;
        self.process(entries).await
    }

    /// Waits while the queue is paused (`POST /jobs/pause`). Returns false
    /// when `shutdown` came first.
    /// Entries in `held` (read, not yet run) are kept this consumer's the
    /// while: their idle time is reset at every poll, as a running job's
    /// heartbeat does, so that the reclaimer does not take them for a dead
    /// consumer's and run them a second time at the resume.
    async fn wait_while_paused(&mut self, shutdown: &CancellationToken, held: &[StreamId]) -> bool {
        let mut logged = false;
        while self.paused().await {
            if !logged {
                tracing::info!(consumer = %self.name, held = held.len(), "queue paused: taking no new entries");
                logged = true;
            }
            self.keep_held(held).await;
            tokio::select! {
                _ = shutdown.cancelled() => return false,
                _ = tokio::time::sleep(PAUSE_POLL) => {}
            }
        }
        if logged {
            tracing::info!(consumer = %self.name, "queue resumed");
        }
        true
    }

    /// Resets the idle time of `held` entries (see `lua/heartbeat.lua`). A
    /// failure is left to the next poll.
    async fn keep_held(&mut self, held: &[StreamId]) {
        let keys = &self.pipeline.store.keys;
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        for entry in held {
            let r: RedisResult<redis::Value> = crate::lua::HEARTBEAT
                .key(keys.stream())
                .arg(keys.group())
                .arg(&entry.id)
                .arg(&self.name)
                .invoke_async(conn)
                .await;
            if let Err(e) = r {
                tracing::debug!(error = %e, entry = %entry.id, "a held entry's heartbeat failed");
                return;
            }
        }
    }

    /// Whether the queue is paused, asked on this consumer's own connection,
    /// as its reads are: the check and the read see the same Redis, and the
    /// check never takes the shared connection's one attempt while Redis is
    /// away (see `store::Breaker`), which would leave the entries the read
    /// then brings to fail at once, a delivery counted against each for
    /// nothing. An error drops the connection, as a failed read does, and
    /// counts as not paused: the read that follows meets it too.
    async fn paused(&mut self) -> bool {
        let p = &self.pipeline;
        if self.conn.is_none() {
            match p.store.blocking_connection(p.settings.pipeline.block).await {
                Ok(c) => self.conn = Some(c),
                Err(_) => return false,
            }
        }
        let Some(conn) = self.conn.as_mut() else {
            return false;
        };
        let r: RedisResult<bool> = redis::cmd("EXISTS")
            .arg(p.store.keys.paused())
            .query_async(conn)
            .await;
        r.unwrap_or_else(|_| {
            self.conn = None;
            false
        })
    }

    async fn process(&mut self, entries: Vec<StreamId>) -> RedisResult<StepOutcome> {
        if entries.is_empty() {
            return Ok(StepOutcome::Idle);
        }
        let n = entries.len();
        // Side by side: a batch of small jobs shares its round trips to Redis
        // (the multiplexed connection sends what is queued together). Heavy
        // work waits for a slot of its own (`JobContext::heavy`).
        // A fresh read is the entry's first delivery (or a redelivery that the
        // reclaimer counted); its count matters only when reclaimed.
        let runs = entries
            .iter()
            .map(|entry| self.pipeline.handle_entry(&self.name, entry, 1));
        let failed = futures_util::future::join_all(runs)
            .await
            .into_iter()
            .find_map(Result::err);
        if let Some(e) = failed {
            self.unfinished = true;
            return Err(e);
        }
        Ok(StepOutcome::Processed(n))
    }

    /// Runs until `shutdown`; the job in hand is always finished first
    /// (the caller bounds that with the shutdown grace time).
    pub async fn run(mut self, shutdown: CancellationToken) {
        tracing::info!(consumer = %self.name, "worker started");
        let mut backoff = Backoff::default();
        loop {
            // Entries this consumer takes back (`unfinished`) were in hand
            // when Redis failed: they run, paused or not, as running jobs do.
            let new_entries = !self.unfinished;
            if new_entries && !self.wait_while_paused(&shutdown, &[]).await {
                break;
            }
            let entries = tokio::select! {
                _ = shutdown.cancelled() => break,
                r = self.read() => r,
            };
            // A read blocks up to the block time: the queue may have been
            // paused while it waited. What it brought is held (pending to
            // this consumer, so not lost) and runs once the queue resumes;
            // on shutdown meanwhile, another worker reclaims it.
            if let Ok(held) = &entries {
                if new_entries && !held.is_empty() && !self.wait_while_paused(&shutdown, held).await
                {
                    break;
                }
            }
            let r = match entries {
                Ok(entries) => self.process(entries).await,
                Err(e) => Err(e),
            };
            match r {
                Ok(_) => backoff.reset(),
                Err(e) => {
                    let pause = backoff.next();
                    tracing::warn!(consumer = %self.name, error = %crate::store::Explained(&e), ?pause, "stream read failed; backing off");
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_caps() {
        let mut b = Backoff::default();
        let seq: Vec<_> = (0..9).map(|_| b.next().as_millis()).collect();
        assert_eq!(seq, [100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000]);
        b.reset();
        assert_eq!(b.next().as_millis(), 100);
    }
}
