//! Releases in Redis (db 0), and the reads of them.
//!
//! - `<p>:records` is one hash of every kept release's records, each named
//!   by its [`Digest`]: a record that is the same in two releases is stored
//!   once, so keeping K releases costs about one plus what changed.
//! - `<p>:release:<id>:{meta,ids,digests,stats,withdrawn,index}` is one
//!   release: what it is, its ids (GET /genes), the digest of each record in
//!   source order, the plot statistics, its withdrawn file as loaded, and
//!   (for the live release only) its serialized index.
//! - `<p>:releases` orders the kept releases; `<p>:data:current` names the
//!   live one.
//!
//! A load stages the parts under its own names and swaps them in with one
//! script, so a reader sees the old release or the new one, never a mix.
//! Loads take a lock (`<p>:data:lock`) for their whole run: the sweep that
//! removes the records no kept release uses must not run beside another
//! load's staging, whose records no release names yet.
//!
//! This module is the only one that knows these keys.

use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use redis::AsyncCommands;
use rustc_hash::FxHashSet;

use super::parse::Digest;
use super::release::ReleaseInfo;
use super::{DataSet, LoadError};
use crate::lua;
use crate::store::{Conn, Durability, Keys, Store};

/// Staged keys of a load that died before its swap expire after this.
const STAGING_TTL_SECS: u64 = 3600;
/// Records per HSET command while staging.
const HSET_BATCH: usize = 1000;
/// Payload bytes per pipeline while staging.
const BATCH_BYTES: usize = 4 << 20;
/// Records per HMGET when a release is streamed or read whole.
pub const READ_BATCH: usize = 1000;
/// How long the data lock lasts unless renewed; it is renewed at a third of this.
const LOCK_MS: u64 = 30_000;

/// Sends commands in pipelines of about [`BATCH_BYTES`] of payload each: no
/// per-record round trips, and no single 30 MB request buffer either.
struct BatchWriter<'c> {
    conn: &'c mut Conn,
    pipe: redis::Pipeline,
    bytes: usize,
}

impl BatchWriter<'_> {
    fn add(&mut self, cmd: redis::Cmd, payload: usize) {
        self.pipe.add_command(cmd).ignore();
        self.bytes += payload;
    }
    async fn flush_if_full(&mut self) -> redis::RedisResult<()> {
        if self.bytes >= BATCH_BYTES {
            self.flush().await?;
        }
        Ok(())
    }
    async fn flush(&mut self) -> redis::RedisResult<()> {
        if !self.pipe.is_empty() {
            self.pipe.query_async::<()>(self.conn).await?;
            self.pipe.clear();
        }
        self.bytes = 0;
        Ok(())
    }
}

/// The one-load-at-a-time lock, held by a job. Renewed in the background
/// while held; given back by [`DataLock::release`] (or it lapses after
/// [`LOCK_MS`] when the holder dies).
pub struct DataLock {
    conn: Conn,
    key: String,
    holder: String,
    renewer: tokio::task::JoinHandle<()>,
    lost: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl DataLock {
    /// Waits for the lock; `on_wait` is told once when another load holds it.
    pub async fn take(
        conn: &Conn,
        keys: &Keys,
        holder: &str,
        on_wait: impl Fn(),
    ) -> redis::RedisResult<Self> {
        let mut conn = conn.clone();
        let key = keys.data_lock().to_string();
        let mut told = false;
        loop {
            let got: i64 = lua::DATA_LOCK
                .key(&key)
                .arg("take")
                .arg(holder)
                .arg(LOCK_MS)
                .invoke_async(&mut conn)
                .await?;
            if got == 1 {
                break;
            }
            if !told {
                on_wait();
                told = true;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let lost = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let renewer = {
            let (mut conn, key, holder, lost) =
                (conn.clone(), key.clone(), holder.to_string(), lost.clone());
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(LOCK_MS / 3)).await;
                    let kept: redis::RedisResult<i64> = lua::DATA_LOCK
                        .key(&key)
                        .arg("renew")
                        .arg(&holder)
                        .arg(LOCK_MS)
                        .invoke_async(&mut conn)
                        .await;
                    if matches!(kept, Ok(0)) {
                        lost.store(true, std::sync::atomic::Ordering::Relaxed);
                        return;
                    }
                }
            })
        };
        Ok(Self {
            conn,
            key,
            holder: holder.to_string(),
            renewer,
            lost,
        })
    }

    /// False once the lock lapsed and someone else may hold it.
    pub fn held(&self) -> bool {
        !self.lost.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub async fn release(mut self) {
        self.renewer.abort();
        let _: redis::RedisResult<i64> = lua::DATA_LOCK
            .key(&self.key)
            .arg("release")
            .arg(&self.holder)
            .arg(0)
            .invoke_async(&mut self.conn)
            .await;
    }
}

impl Drop for DataLock {
    fn drop(&mut self) {
        self.renewer.abort();
    }
}

/// What a swap did.
pub struct Swapped {
    /// Releases dropped to keep the configured number.
    pub dropped: Vec<String>,
}

/// The data-set generation now (bumped by DELETE /data).
pub async fn generation(conn: &mut Conn, keys: &Keys) -> redis::RedisResult<u64> {
    let g: Option<u64> = conn.get(keys.generation()).await?;
    Ok(g.unwrap_or(0))
}

/// The parts a load stages under its job's staging names before the swap.
const STAGED_PARTS: [&str; 6] = ["meta", "ids", "digests", "stats", "withdrawn", "index"];

/// Stages `set`: its records into the shared hash, its parts (and the index
/// `index` builds) under the job's staging names. Nothing is visible to
/// readers until [`swap`]; a load that stops here calls [`discard_staged`].
pub async fn stage(
    store: &Store,
    set: &DataSet,
    withdrawn: &[u8],
    info: &ReleaseInfo,
    index: impl std::future::Future<Output = Result<Vec<u8>, LoadError>>,
    on_stored: impl Fn(u64),
) -> Result<(), LoadError> {
    let keys = &store.keys;
    let conn = &mut store.data.clone();
    let staging = keys.staging(&info.job_id);
    let part = |p: &str| format!("{staging}{p}");
    let stats_json =
        serde_json::to_vec(&set.stats).map_err(|e| LoadError::Invalid(e.to_string()))?;
    let meta_json = serde_json::to_vec(info).map_err(|e| LoadError::Invalid(e.to_string()))?;
    let digests: Vec<u8> = set.digests.concat();

    // The staged parts are invisible to readers until the swap, so they need
    // no transaction; they expire, so a load that dies leaves nothing for
    // long. Records go straight into the shared hash: unused ones are
    // collected by the next load's sweep.
    let mut w = BatchWriter {
        conn,
        pipe: redis::pipe(),
        bytes: 0,
    };
    let ttl = STAGING_TTL_SECS;
    for (name, value) in [
        ("meta", meta_json.as_slice()),
        ("ids", set.ids.as_slice()),
        ("digests", digests.as_slice()),
        ("stats", stats_json.as_slice()),
        ("withdrawn", withdrawn),
    ] {
        let mut c = redis::cmd("SET");
        c.arg(part(name)).arg(value).arg("EX").arg(ttl);
        w.add(c, value.len());
    }
    for (n, batch) in set
        .records
        .iter()
        .zip(&set.digests)
        .collect::<Vec<_>>()
        .chunks(HSET_BATCH)
        .enumerate()
    {
        let mut cmd = redis::cmd("HSET");
        cmd.arg(keys.records());
        let mut payload = 0;
        for ((_, range), digest) in batch {
            cmd.arg(&digest[..]).arg(set.record(range));
            payload += range.len();
        }
        w.add(cmd, payload);
        w.flush_if_full().await?;
        on_stored(((n + 1) * HSET_BATCH).min(set.records.len()) as u64);
    }
    w.flush().await?;
    let index_bytes = index.await?;
    redis::cmd("SET")
        .arg(part("index"))
        .arg(&index_bytes)
        .arg("EX")
        .arg(ttl)
        .query_async::<()>(w.conn)
        .await?;
    Ok(())
}

/// Removes what [`stage`] wrote under the job's staging names. The records
/// it added to the shared hash go with the [`collect_garbage`] that follows
/// (under the same [`DataLock`]).
pub async fn discard_staged(store: &Store, job_id: &str) -> redis::RedisResult<()> {
    let staging = store.keys.staging(job_id);
    let parts: Vec<String> = STAGED_PARTS
        .iter()
        .map(|p| format!("{staging}{p}"))
        .collect();
    redis::cmd("DEL")
        .arg(&parts)
        .query_async(&mut store.data.clone())
        .await
}

/// Swaps the release [`stage`] staged in as the live one, keeping `keep`
/// releases. The caller holds the [`DataLock`] and read `generation`
/// before it fetched anything.
pub async fn swap(
    store: &Store,
    lock: &DataLock,
    generation: u64,
    info: &ReleaseInfo,
    keep: usize,
) -> Result<Swapped, LoadError> {
    let keys = &store.keys;
    let staging = keys.staging(&info.job_id);
    if !lock.held() {
        return Err(LoadError::Invalid(
            "the data lock lapsed while this load was staging (Redis unreachable for 30 s?)".into(),
        ));
    }
    let mut swap = lua::SWAP_DATA.prepare_invoke();
    swap.key(keys.current())
        .key(keys.releases())
        .key(keys.generation())
        .key(keys.data_lock())
        .key(keys.release_order())
        .key(keys.releases_seen())
        .key(keys.legacy_genes())
        .key(keys.releases_seq())
        .arg(&info.id)
        .arg(&info.job_id)
        .arg(generation)
        .arg(keep)
        .arg(&staging)
        .arg(keys.release_prefix())
        .arg(keys.legacy_version_prefix())
        .arg(keys.releases_channel());
    // A load reported `done` must survive a failover: the swap WAITs for the
    // replicas (redis.min_replicas) like a submission does.
    let (reply, durability): (Vec<String>, _) =
        store.invoke_acknowledged(&lua::SWAP_DATA, &swap).await?;
    match reply.first().map(String::as_str) {
        Some("swapped") => match durability {
            Durability::Replicated => Ok(Swapped {
                dropped: reply[1..].to_vec(),
            }),
            // Swapped on the primary only: the attempt fails as a transient
            // error, and the next one finds the release live (if the primary
            // kept it) or loads it again (if a failover lost it).
            Durability::Short { acked, wanted } => Err(LoadError::NotReplicated { acked, wanted }),
        },
        Some("deleted") => Err(LoadError::Invalid(
            "DELETE /data ran while this load was staging; nothing was stored (load again)".into(),
        )),
        Some("lost_lock") => Err(LoadError::Invalid(
            "the data lock lapsed while this load was staging; nothing was stored".into(),
        )),
        _ => Err(LoadError::Invalid(format!(
            "the swap found the staged release incomplete: {reply:?}"
        ))),
    }
}

/// Removes the records no kept release uses (those of dropped releases,
/// and of loads that failed after staging). Runs under the [`DataLock`].
/// Returns how many were removed.
pub async fn collect_garbage(conn: &mut Conn, keys: &Keys) -> redis::RedisResult<u64> {
    let kept: Vec<String> = conn.zrange(keys.releases(), 0, -1).await?;
    let mut used: FxHashSet<Digest> = FxHashSet::default();
    for id in &kept {
        let digests: Option<Vec<u8>> = conn.get(keys.release_part(id, "digests")).await?;
        for d in digests.unwrap_or_default().chunks_exact(16) {
            used.insert(d.try_into().expect("16 bytes"));
        }
    }
    // HKEYS is one pass over ~50k 16-byte names (a few ms); Redis 7.0 has
    // no HSCAN NOVALUES to page it without the values.
    let fields: Vec<Vec<u8>> = conn.hkeys(keys.records()).await?;
    let unused: Vec<&Vec<u8>> = fields
        .iter()
        .filter(|f| {
            <[u8; 16]>::try_from(f.as_slice())
                .map(|d| !used.contains(&d))
                .unwrap_or(true)
        })
        .collect();
    let mut removed = 0u64;
    for batch in unused.chunks(1000) {
        let n: u64 = redis::cmd("HDEL")
            .arg(keys.records())
            .arg(batch)
            .query_async(conn)
            .await?;
        removed += n;
    }
    Ok(removed)
}

/// Removes every release and record. Returns the live release's record
/// count (0 when none) and how many releases were removed.
/// With `redis.min_replicas`, it WAITs for them (see [`Durability`]).
pub async fn delete_all(store: &Store) -> redis::RedisResult<((u64, u64), Durability)> {
    let keys = &store.keys;
    let mut delete = lua::DELETE_DATA.prepare_invoke();
    delete
        .key(keys.current())
        .key(keys.releases())
        .key(keys.generation())
        .key(keys.records())
        .key(keys.releases_seen())
        .key(keys.releases_seq())
        .arg(keys.release_prefix())
        .arg(keys.releases_channel());
    store.invoke_acknowledged(&lua::DELETE_DATA, &delete).await
}

/// The live release's id and `part`, or None when no data is loaded.
pub async fn current_part(
    conn: &mut Conn,
    keys: &Keys,
    part: &str,
) -> redis::RedisResult<Option<(String, Vec<u8>)>> {
    lua::CURRENT_PART
        .key(keys.current())
        .arg(keys.release_prefix())
        .arg(part)
        .invoke_async(conn)
        .await
}

/// [`current_part`] as two plain GETs, for the hot path of every plot job: a
/// script costs Redis several times what two GETs do. A release replaced
/// between the two is still kept (or, with one kept, reads as None, as it
/// would a moment later).
pub async fn current_part_plain(
    conn: &mut Conn,
    keys: &Keys,
    part: &str,
) -> redis::RedisResult<Option<Vec<u8>>> {
    let Some(id) = current_release(conn, keys).await? else {
        return Ok(None);
    };
    conn.get(keys.release_part(&id, part)).await
}

/// A kept release's `part`, or None when it is not kept.
pub async fn release_part(
    conn: &mut Conn,
    keys: &Keys,
    id: &str,
    part: &str,
) -> redis::RedisResult<Option<Vec<u8>>> {
    conn.get(keys.release_part(id, part)).await
}

/// The live release's id, or None when no data is loaded.
pub async fn current_release(conn: &mut Conn, keys: &Keys) -> redis::RedisResult<Option<String>> {
    conn.get(keys.current()).await
}

/// The kept releases' ids, oldest first.
pub async fn kept_releases(conn: &mut Conn, keys: &Keys) -> redis::RedisResult<Vec<String>> {
    conn.zrange(keys.releases(), 0, -1).await
}

/// True when `id` was swapped in at some time (since the last DELETE /data).
pub async fn was_seen(conn: &mut Conn, keys: &Keys, id: &str) -> redis::RedisResult<bool> {
    conn.sismember(keys.releases_seen(), id).await
}

/// True when `id` is kept.
pub async fn is_kept(conn: &mut Conn, keys: &Keys, id: &str) -> redis::RedisResult<bool> {
    let score: Option<f64> = conn.zscore(keys.releases(), id).await?;
    Ok(score.is_some())
}

fn parse_info(meta: &[u8]) -> redis::RedisResult<ReleaseInfo> {
    serde_json::from_slice(meta).map_err(|e| {
        redis::RedisError::from((
            redis::ErrorKind::Parse,
            "a release's meta is not valid JSON",
            e.to_string(),
        ))
    })
}

/// What release `id` is, or None when it is not kept.
pub async fn release_info(
    conn: &mut Conn,
    keys: &Keys,
    id: &str,
) -> redis::RedisResult<Option<ReleaseInfo>> {
    match release_part(conn, keys, id, "meta").await? {
        Some(meta) => parse_info(&meta).map(Some),
        None => Ok(None),
    }
}

/// What the live release is, or None when no data is loaded.
pub async fn summary(conn: &mut Conn, keys: &Keys) -> redis::RedisResult<Option<ReleaseInfo>> {
    match current_part(conn, keys, "meta").await? {
        Some((_, meta)) => parse_info(&meta).map(Some),
        None => Ok(None),
    }
}

/// Every kept release, oldest first, and the live one's id.
pub async fn kept_infos(
    conn: &mut Conn,
    keys: &Keys,
) -> redis::RedisResult<(Vec<ReleaseInfo>, Option<String>)> {
    let (ids, live): (Vec<String>, Option<String>) = redis::pipe()
        .zrange(keys.releases(), 0, -1)
        .get(keys.current())
        .query_async(conn)
        .await?;
    if ids.is_empty() {
        return Ok((Vec::new(), live));
    }
    let mut pipe = redis::pipe();
    for id in &ids {
        pipe.get(keys.release_part(id, "meta"));
    }
    let metas: Vec<Option<Vec<u8>>> = pipe.query_async(conn).await?;
    let infos = metas
        .iter()
        .flatten()
        .map(|m| parse_info(m))
        .collect::<Result<_, _>>()?;
    Ok((infos, live))
}

/// The parts a reader needs to serve a release: meta, digests, withdrawn
/// file and, when still stored, the index. None when it is not kept.
pub struct ReleaseParts {
    pub meta: Vec<u8>,
    pub digests: Vec<u8>,
    pub withdrawn: Vec<u8>,
    pub index: Option<Vec<u8>>,
}

pub async fn release_parts(
    conn: &mut Conn,
    keys: &Keys,
    id: &str,
) -> redis::RedisResult<Option<ReleaseParts>> {
    type Part = Option<Vec<u8>>;
    let (meta, digests, withdrawn, index): (Part, Part, Part, Part) = redis::pipe()
        .get(keys.release_part(id, "meta"))
        .get(keys.release_part(id, "digests"))
        .get(keys.release_part(id, "withdrawn"))
        .get(keys.release_part(id, "index"))
        .query_async(conn)
        .await?;
    Ok(match (meta, digests) {
        (Some(meta), Some(digests)) => Some(ReleaseParts {
            meta,
            digests,
            withdrawn: withdrawn.unwrap_or_default(),
            index,
        }),
        _ => None,
    })
}

/// A kept release's `ids` and `digests` parts, or None when it is not kept.
pub async fn release_ids_and_digests(
    conn: &mut Conn,
    keys: &Keys,
    id: &str,
) -> redis::RedisResult<Option<(Vec<u8>, Vec<u8>)>> {
    let (ids, digests): (Option<Vec<u8>>, Option<Vec<u8>>) = redis::pipe()
        .get(keys.release_part(id, "ids"))
        .get(keys.release_part(id, "digests"))
        .query_async(conn)
        .await?;
    Ok(ids.zip(digests))
}

/// Which release a read must still find, checked in the same round trip as
/// the records it reads.
pub enum Check<'a> {
    /// The live release must (still) be this one.
    Live(&'a str),
    /// This release must (still) be kept.
    Kept(&'a str),
}

/// What [`records_checked`] found.
pub enum Checked {
    /// The records, in the order asked (None for a record no longer stored).
    Records(Vec<Option<Bytes>>),
    /// The check failed: the live release is now the one named (None: no
    /// data), or the kept one is no longer kept.
    Moved(Option<String>),
}

/// The records named by `digests`, read in one round trip with the check
/// that the release they belong to is still the one the reader means.
/// Records are immutable and named by content, so no script is needed:
/// what matters is only whether the release is still live (or kept).
pub async fn records_checked(
    conn: &mut Conn,
    keys: &Keys,
    check: Check<'_>,
    digests: &[&[u8]],
) -> redis::RedisResult<Checked> {
    let mut pipe = redis::pipe();
    match check {
        Check::Live(_) => pipe.get(keys.current()),
        Check::Kept(id) => pipe.zscore(keys.releases(), id),
    };
    if !digests.is_empty() {
        pipe.cmd("HMGET").arg(keys.records()).arg(digests);
    }
    let mut reply: Vec<redis::Value> = pipe.query_async(conn).await?;
    let records: Vec<Option<Vec<u8>>> = if digests.is_empty() {
        Vec::new()
    } else {
        redis::from_redis_value(reply.pop().unwrap_or(redis::Value::Nil))?
    };
    let first = reply.pop().unwrap_or(redis::Value::Nil);
    match check {
        Check::Live(id) => {
            let live: Option<String> = redis::from_redis_value(first)?;
            if live.as_deref() != Some(id) {
                return Ok(Checked::Moved(live));
            }
        }
        Check::Kept(_) => {
            if matches!(first, redis::Value::Nil) {
                return Ok(Checked::Moved(None));
            }
        }
    }
    Ok(Checked::Records(
        records.into_iter().map(|r| r.map(Bytes::from)).collect(),
    ))
}

/// A release's records as one JSON array (`[r1,r2,...]`, `data_bytes`
/// long), read from Redis in batches only as fast as the consumer takes
/// them, so memory stays at a few batches whatever the data size. If the
/// release stops being kept meanwhile, the body is cut (an error), never a
/// truncated array that parses.
pub fn stream_records(
    conn: &Conn,
    keys: &Keys,
    release: &str,
    digests: std::sync::Arc<Vec<Digest>>,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    let (mut conn, keys, release) = (conn.clone(), keys.clone(), release.to_string());
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(2);
    tokio::spawn(async move {
        let mut first = true;
        for batch in digests.chunks(READ_BATCH) {
            let refs: Vec<&[u8]> = batch.iter().map(|d| &d[..]).collect();
            let item = match records_checked(&mut conn, &keys, Check::Kept(&release), &refs).await {
                Ok(Checked::Records(records)) if records.iter().all(Option::is_some) => {
                    let mut out = Vec::with_capacity(records.len() * 400 + 2);
                    for r in records.into_iter().flatten() {
                        out.push(if first { b'[' } else { b',' });
                        first = false;
                        out.extend_from_slice(&r);
                    }
                    Ok(Bytes::from(out))
                }
                Ok(_) => Err(std::io::Error::other(
                    "the release stopped being kept while streaming",
                )),
                Err(e) => Err(std::io::Error::other(e)),
            };
            let failed = item.is_err();
            if tx.send(item).await.is_err() || failed {
                return;
            }
        }
        let tail: &'static [u8] = if first { b"[]" } else { b"]" };
        let _ = tx.send(Ok(Bytes::from_static(tail))).await;
    });
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}
