//! Upkeep of the stream: taking over entries of dead consumers, trimming
//! acknowledged entries, forgetting consumers that left.

use std::collections::HashMap;

use redis::streams::{
    StreamAutoClaimOptions, StreamAutoClaimReply, StreamId, StreamPendingCountReply,
};
use redis::{AsyncCommands, RedisResult};
use tokio_util::sync::CancellationToken;

use super::Pipeline;
use crate::store::{stream_id_key, Conn};

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
    /// Returns how many it handled. Claims nothing while the queue is paused:
    /// a dead consumer's entries wait for the resume like the others.
    pub async fn reclaim_once(&self) -> RedisResult<usize> {
        let p = &self.pipeline;
        if p.is_paused().await? {
            return Ok(0);
        }
        let keys = &p.store.keys;
        let mut conn = p.store.data.clone();
        let min_idle = p.settings.pipeline.reclaim_after.as_millis() as usize;
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
                // Every claimed entry counts a delivery, so each one is run
                // even when another fails: an entry claimed and left unrun
                // would edge towards the dead letters without a real attempt.
                // They run side by side, as a worker's batch does: one after
                // another, the last would sit unstarted (and so without a
                // heartbeat) behind the others' renders, go idle past
                // `reclaim_after` and be claimed again, a delivery counted
                // against it for nothing.
                let runs = reply.claimed.iter().map(|entry| {
                    let n = deliveries.get(&entry.id).copied().unwrap_or(1);
                    tracing::warn!(entry = %entry.id, deliveries = n, "reclaimed an entry from a dead consumer");
                    p.handle_entry(&self.name, entry, n)
                });
                let mut failed = None;
                for r in futures_util::future::join_all(runs).await {
                    match r {
                        Ok(()) => handled += 1,
                        Err(e) => failed = Some(e),
                    }
                }
                if let Some(e) = failed {
                    return Err(e);
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
        conn: &mut Conn,
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
        let every = self.pipeline.settings.pipeline.reclaim_interval;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(every) => {}
            }
            if let Err(e) = self.reclaim_once().await {
                tracing::warn!(error = %crate::store::Explained(&e), "reclaim failed; will retry");
            }
            if let Err(e) = self.trim().await {
                tracing::warn!(error = %crate::store::Explained(&e), "stream trim failed; will retry");
            }
            if let Err(e) = self.prune_consumers().await {
                tracing::debug!(error = %e, "consumer pruning failed; will retry");
            }
        }
    }
}

/// Orders stream ids `<ms>-<seq>` numerically.
fn stream_id_lt(a: &str, b: &str) -> bool {
    stream_id_key(a) < stream_id_key(b)
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
}
