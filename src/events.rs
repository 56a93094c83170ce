//! Job state changes, live, from every process.
//!
//! Every change of a job's record is announced in the same Lua script (or
//! MULTI) on one capped Redis stream, `<p>:events`, by whichever process made
//! it. Each api process runs one [`Hub`]: a single reader of that stream, on a
//! connection of its own, that fans each event out to every SSE client and
//! `Prefer: wait` request of the process through a broadcast channel. A
//! thousand idle clients cost a thousand channel receivers, not a thousand
//! Redis connections. A client that falls behind the channel, or resumes with
//! `Last-Event-ID`, reads what it missed from the stream itself, so nothing
//! the stream still holds is lost.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use redis::streams::{StreamId, StreamRangeReply, StreamReadOptions, StreamReadReply};
use redis::{AsyncCommands, RedisResult, Value};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::jobs::{self, Job, JobKind, JobStatus};
use crate::store::{stream_id_key, Store};

/// Events a slow receiver may fall behind before it reads from Redis instead.
const CHANNEL: usize = 4096;
/// Events read from Redis per call, live or catching up.
const BATCH: usize = 1000;

/// One job state change.
#[derive(Debug, Clone)]
pub struct Event {
    /// The entry id in the events stream: SSE's `id:`, what `Last-Event-ID` resumes from.
    pub id: String,
    pub job: Uuid,
    pub kind: JobKind,
    pub status: JobStatus,
    /// The job's record after the change, as JSON.
    pub data: Bytes,
    /// `id` parsed, for ordering without parsing it again per client.
    key: (u64, u64),
    /// The event as one SSE frame (`id:`, `event:`, `data:`), encoded once
    /// and shared by every client it goes to: with thousands of clients,
    /// encoding it per client was most of a delivery's cost.
    frame: Bytes,
}

impl Event {
    fn from_entry(e: &StreamId) -> Option<Self> {
        let text = |name: &str| -> Option<&[u8]> {
            match e.map.get(name) {
                Some(Value::BulkString(b)) => Some(b.as_slice()),
                _ => None,
            }
        };
        let s = |name: &str| text(name).and_then(|b| std::str::from_utf8(b).ok());
        let status: JobStatus = s("status")?.parse().ok()?;
        let data = text("data")?;
        Some(Self {
            id: e.id.clone(),
            job: s("job")?.parse().ok()?,
            kind: s("kind")?.parse().ok()?,
            status,
            data: Bytes::copy_from_slice(data),
            key: stream_id_key(&e.id),
            frame: sse_frame(Some(&e.id), status.as_str(), data),
        })
    }

    /// The event as an SSE frame: `id:` the stream entry, `event:` the
    /// state, `data:` the job.
    pub fn frame(&self) -> Bytes {
        self.frame.clone()
    }

    /// The job as the event carries it.
    pub fn parse_job(&self) -> Option<Job> {
        std::str::from_utf8(&self.data)
            .ok()
            .and_then(jobs::parse_record)
    }

    fn is_after(&self, key: (u64, u64)) -> bool {
        self.key > key
    }
}

/// One SSE frame, in the order warp's encoder wrote it (`event:`, `data:`,
/// `id:`), which clients that count events by their `id:` line rely on. A
/// line break inside `data` starts another `data:` line, as the format
/// requires (job JSON has none, but a frame must never be cut by one).
pub fn sse_frame(id: Option<&str>, event: &str, data: &[u8]) -> Bytes {
    let mut f = Vec::with_capacity(data.len() + 64);
    f.extend_from_slice(b"event:");
    f.extend_from_slice(event.as_bytes());
    f.push(b'\n');
    for line in data.split(|&b| b == b'\n') {
        f.extend_from_slice(b"data:");
        f.extend_from_slice(line.strip_suffix(b"\r").unwrap_or(line));
        f.push(b'\n');
    }
    if let Some(id) = id {
        f.extend_from_slice(b"id:");
        f.extend_from_slice(id.as_bytes());
        f.push(b'\n');
    }
    f.push(b'\n');
    Bytes::from(f)
}

/// Sleeps `pause` (then doubles it, up to 5 s); false when the process stops meanwhile.
async fn backoff(shutdown: &CancellationToken, pause: &mut Duration) -> bool {
    tokio::select! {
        _ = shutdown.cancelled() => return false,
        _ = tokio::time::sleep(*pause) => {}
    }
    *pause = (*pause * 2).min(Duration::from_secs(5));
    true
}

/// The process's one reader of the events stream, and its fan-out.
#[derive(Clone)]
pub struct Hub {
    store: Store,
    tx: broadcast::Sender<Arc<Event>>,
    shutdown: CancellationToken,
}

impl Hub {
    /// A hub whose reader and client streams end when `shutdown` is cancelled.
    pub fn new(store: Store, shutdown: CancellationToken) -> Self {
        let (tx, _) = broadcast::channel(CHANNEL);
        Self {
            store,
            tx,
            shutdown,
        }
    }

    /// Cancelled when the process stops: open event streams end then, so a
    /// graceful shutdown does not wait for clients that never hang up.
    pub fn shutdown(&self) -> &CancellationToken {
        &self.shutdown
    }

    /// Reads the events stream until shutdown and broadcasts each event.
    /// After a Redis outage it resumes where it stopped.
    pub async fn run(self) {
        let shutdown = self.shutdown.clone();
        let block = Duration::from_secs(5);
        // Only what is announced from now on (clients catch up from Redis
        // themselves when they ask for older events). Not "$" itself: each
        // XREAD with "$" would miss what came between two reads.
        let mut last: Option<String> = None;
        let mut conn = None;
        let mut pause = Duration::from_millis(100);
        loop {
            if conn.is_none() {
                match self.store.blocking_connection(block).await {
                    Ok(c) => conn = Some(c),
                    Err(e) => {
                        tracing::debug!(error = %e, "events reader: no connection yet");
                        if !backoff(&shutdown, &mut pause).await {
                            return;
                        }
                        continue;
                    }
                }
            }
            let Some(c) = conn.as_mut() else { continue };
            if last.is_none() {
                let newest: RedisResult<StreamRangeReply> = redis::cmd("XREVRANGE")
                    .arg(self.store.keys.events())
                    .arg("+")
                    .arg("-")
                    .arg("COUNT")
                    .arg(1)
                    .query_async(c)
                    .await;
                match newest {
                    Ok(r) => {
                        last = Some(r.ids.first().map_or_else(|| "0-0".into(), |e| e.id.clone()))
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "events reader: cannot read the stream yet");
                        conn = None;
                        if !backoff(&shutdown, &mut pause).await {
                            return;
                        }
                        continue;
                    }
                }
            }
            let from = last.clone().unwrap_or_default();
            let opts = StreamReadOptions::default()
                .count(BATCH)
                .block(block.as_millis() as usize);
            let keys = [self.store.keys.events()];
            let ids = [from.as_str()];
            let read = tokio::select! {
                _ = shutdown.cancelled() => return,
                r = c.xread_options::<_, _, Option<StreamReadReply>>(&keys, &ids, &opts) => r,
            };
            match read {
                Ok(reply) => {
                    pause = Duration::from_millis(100);
                    // With nobody listening, only the position matters.
                    let listened = self.tx.receiver_count() > 0;
                    for e in reply.into_iter().flat_map(|r| r.keys).flat_map(|k| k.ids) {
                        if listened {
                            if let Some(ev) = Event::from_entry(&e) {
                                // A receiver that left meanwhile is not an error.
                                let _ = self.tx.send(Arc::new(ev));
                            }
                        }
                        last = Some(e.id);
                    }
                }
                Err(e) => {
                    tracing::debug!(error = %e, "events reader: read failed; reconnecting");
                    conn = None;
                    if !backoff(&shutdown, &mut pause).await {
                        return;
                    }
                }
            }
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.tx.subscribe()
    }

    /// How many receivers (SSE clients and waiting requests) the process has.
    pub fn receivers(&self) -> usize {
        self.tx.receiver_count()
    }

    /// Events after `after`, oldest first, at most `count`, read from Redis.
    pub async fn since(&self, after: &str, count: usize) -> RedisResult<Vec<Arc<Event>>> {
        let reply: StreamRangeReply = redis::cmd("XRANGE")
            .arg(self.store.keys.events())
            .arg(format!("({after}"))
            .arg("+")
            .arg("COUNT")
            .arg(count)
            .query_async(&mut self.store.data.clone())
            .await?;
        Ok(reply
            .ids
            .iter()
            .filter_map(Event::from_entry)
            .map(Arc::new)
            .collect())
    }

    /// Every event from now on (and, with `after`, every event the stream
    /// still holds after that id first), in stream order, without gaps or
    /// repeats: a receiver that lags behind the channel reads the gap from
    /// Redis. Ends only when the hub does.
    pub async fn stream(
        &self,
        after: Option<String>,
    ) -> RedisResult<impl Stream<Item = Arc<Event>> + Send + 'static> {
        // Subscribe before reading the backlog, so nothing falls between them.
        let rx = self.subscribe();
        let mut backlog = VecDeque::new();
        let mut last = after.as_deref().map(stream_id_key);
        if let Some(after) = &after {
            let mut from = after.clone();
            loop {
                let page = self.since(&from, BATCH).await?;
                let full = page.len() == BATCH;
                if let Some(e) = page.last() {
                    from = e.id.clone();
                }
                backlog.extend(page);
                if !full {
                    break;
                }
            }
            if let Some(e) = backlog.back() {
                last = Some(e.key);
            }
        }
        let state = (self.clone(), rx, backlog, last);
        Ok(futures_util::stream::unfold(
            state,
            |(hub, mut rx, mut backlog, mut last)| async move {
                loop {
                    if let Some(e) = backlog.pop_front() {
                        last = Some(e.key);
                        return Some((e, (hub, rx, backlog, last)));
                    }
                    match rx.recv().await {
                        Ok(e) => {
                            if last.is_none_or(|l| e.is_after(l)) {
                                last = Some(e.key);
                                return Some((e, (hub, rx, backlog, last)));
                            }
                        }
                        Err(broadcast::error::RecvError::Lagged(n)) => {
                            tracing::debug!(
                                missed = n,
                                "event client fell behind; reading from Redis"
                            );
                            if let Some((ms, seq)) = last {
                                match hub.since(&format!("{ms}-{seq}"), BATCH).await {
                                    Ok(page) => backlog.extend(page),
                                    Err(e) => tracing::warn!(error = %e, "events catch-up failed"),
                                }
                            }
                        }
                        Err(broadcast::error::RecvError::Closed) => return None,
                    }
                }
            },
        ))
    }

    /// Waits until job `id` is finished or `timeout` passes, and returns its
    /// last state (None when there is no such job). Woken by the job's own
    /// events: no polling, so a finished job is answered as soon as it is done.
    pub async fn wait_for(&self, id: &Uuid, timeout: Duration) -> RedisResult<Option<Job>> {
        let mut rx = self.subscribe();
        let mut conn = self.store.data.clone();
        let current = jobs::get(&mut conn, &self.store.keys, id).await?;
        if current.as_ref().is_none_or(|j| j.status.is_finished()) {
            return Ok(current);
        }
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Err(_) => break,
                Ok(Ok(e)) if e.job == *id && e.status.is_finished() => {
                    if let Some(job) = e.parse_job() {
                        return Ok(Some(job));
                    }
                    break;
                }
                Ok(Ok(_)) => {}
                // Missed events: the record itself tells.
                Ok(Err(broadcast::error::RecvError::Lagged(_))) => {
                    let job = jobs::get(&mut conn, &self.store.keys, id).await?;
                    if job.as_ref().is_none_or(|j| j.status.is_finished()) {
                        return Ok(job);
                    }
                }
                Ok(Err(broadcast::error::RecvError::Closed)) => break,
            }
        }
        jobs::get(&mut conn, &self.store.keys, id).await
    }
}
