//! The scheduler: `retrying` jobs wait in a sorted set by due time; when
//! their next run is due, they go back on the stream as fresh entries.
//! Every worker process runs one; the Lua script makes a job move once,
//! however many schedulers look at the same moment.

use std::time::Duration;

use redis::RedisResult;
use tokio_util::sync::CancellationToken;

use super::{now_ms, Pipeline};
use crate::lua;

/// Jobs moved per script call; a larger backlog takes several calls.
const BATCH: usize = 500;

/// Moves due `retrying` jobs back onto the stream.
pub struct Scheduler {
    pipeline: Pipeline,
}

impl Scheduler {
    pub fn new(pipeline: Pipeline) -> Self {
        Self { pipeline }
    }

    /// How late a retry may start at most: half the first backoff, within
    /// 50 ms to 1 s.
    pub fn poll_interval(&self) -> Duration {
        (self.pipeline.settings.pipeline.retry_backoff / 2)
            .clamp(Duration::from_millis(50), Duration::from_secs(1))
    }

    /// Moves every job whose next run is due; returns how many left the set.
    pub async fn promote_due(&self) -> RedisResult<usize> {
        let store = &self.pipeline.store;
        let mut conn = store.data.clone();
        let mut total = 0;
        loop {
            let moved: usize = lua::PROMOTE_DUE
                .key(store.keys.delayed())
                .key(store.keys.stream())
                .arg(now_ms())
                .arg(store.keys.job_prefix())
                .arg(BATCH)
                .invoke_async(&mut conn)
                .await?;
            total += moved;
            if moved < BATCH {
                return Ok(total);
            }
        }
    }

    /// Promotes due jobs every [`Scheduler::poll_interval`] until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        let every = self.poll_interval();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(every) => {}
            }
            match self.promote_due().await {
                Ok(0) => {}
                Ok(n) => tracing::debug!(jobs = n, "retries due: queued again"),
                Err(e) => tracing::debug!(error = %e, "retry scheduling failed; will retry"),
            }
        }
    }
}
