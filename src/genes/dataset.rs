//! The data set in Redis (db 0), and the reads of it.
//!
//! A load stages a complete new version and then swaps it in with one Lua
//! script, so a reader sees the old set or the new one, never a mix:
//! - `<p>:genes` (hash `hgnc_id -> record`, and its version's name under
//!   [`VERSION_FIELD`]) is RENAMEd into place;
//! - `<p>:data:<version>:{blob,ids,stats,meta,index}` are published by pointing
//!   `<p>:data:current` at the new version. The old version lives on for
//!   [`OLD_VERSION_GRACE_SECS`] so a GET /data that is streaming it can finish.
//!
//! This module is the only one that knows these keys.

use bytes::Bytes;
use futures_util::Stream;
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};

use super::{DataSet, HgncId, LoadError};
use crate::lua;
use crate::store::{Conn, Keys};

/// How long a replaced data-set version stays readable.
pub const OLD_VERSION_GRACE_SECS: u64 = 120;
/// Staged keys of a load that died before its swap expire after this.
const STAGING_TTL_SECS: u64 = 3600;
/// The field of `<p>:genes` that names the version its records belong to,
/// so that one HMGET returns records and the version they are of. (No HGNC
/// id can be this: ids are `HGNC:<digits>`.)
pub const VERSION_FIELD: &str = ":version";
/// Records per HSET command while staging.
const HSET_BATCH: usize = 1000;
/// Payload bytes per pipeline while staging.
const BATCH_BYTES: usize = 4 << 20;
/// GET /data streams the data set in pieces of this size.
const DATA_CHUNK: u64 = 512 * 1024;

/// What a finished load reports, stored as the version's `meta`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct LoadSummary {
    /// Gene records in the set.
    pub records: u64,
    /// Size of the source file, in bytes.
    pub source_bytes: u64,
    /// Where it was read from (the server's `data.source`).
    pub source: String,
    /// The stored version's name (the load job's id).
    pub version: String,
    /// When the set was stored (RFC 3339, UTC); absent in sets stored by
    /// versions before 0.2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loaded_at: Option<String>,
}

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

/// Writes `set` as version `version` (staged; idempotent) with its index,
/// serialized, which `index` yields once built (the records are written
/// meanwhile), and swaps it all in.
pub async fn store_and_swap(
    conn: &mut Conn,
    keys: &Keys,
    version: &str,
    set: &DataSet,
    index: impl std::future::Future<Output = Result<Vec<u8>, LoadError>>,
    source: &str,
    on_stored: impl Fn(u64),
) -> Result<LoadSummary, LoadError> {
    let summary = LoadSummary {
        records: set.records.len() as u64,
        source_bytes: set.source_bytes(),
        source: source.to_string(),
        version: version.to_string(),
        loaded_at: Some(crate::jobs::now()),
    };
    let staging = keys.staging_genes(version);
    let [blob, ids, stats, meta, index_key] =
        ["blob", "ids", "stats", "meta", "index"].map(|p| keys.version_part(version, p));
    let stats_json =
        serde_json::to_vec(&set.stats).map_err(|e| LoadError::Invalid(e.to_string()))?;
    let meta_json = serde_json::to_vec(&summary).map_err(|e| LoadError::Invalid(e.to_string()))?;

    // The staging keys are invisible to readers until the swap, so they need no
    // transaction. They carry a TTL from the first write on, so a load that dies
    // half-way leaves nothing behind for long.
    let mut w = BatchWriter {
        conn,
        pipe: redis::pipe(),
        bytes: 0,
    };
    let ttl = STAGING_TTL_SECS;
    let mut first = redis::cmd("DEL");
    first
        .arg(&staging)
        .arg(&blob)
        .arg(&ids)
        .arg(&stats)
        .arg(&meta)
        .arg(&index_key);
    w.add(first, 0);
    let mut c = redis::cmd("SET");
    c.arg(&blob).arg("").arg("EX").arg(ttl);
    w.add(c, 0);
    let mut c = redis::cmd("SET");
    c.arg(&ids).arg(set.ids.as_slice()).arg("EX").arg(ttl);
    w.add(c, set.ids.len());
    let mut c = redis::cmd("SET");
    c.arg(&stats).arg(stats_json).arg("EX").arg(ttl);
    w.add(c, 0);
    let mut c = redis::cmd("SET");
    c.arg(&meta).arg(meta_json).arg("EX").arg(ttl);
    w.add(c, 0);
    for (n, batch) in set.records.chunks(HSET_BATCH).enumerate() {
        let mut cmd = redis::cmd("HSET");
        cmd.arg(&staging);
        let mut payload = 0;
        if n == 0 {
            cmd.arg(VERSION_FIELD).arg(version);
        }
        for (id, range) in batch {
            cmd.arg(id.as_str()).arg(set.record(range));
            payload += range.len();
        }
        w.add(cmd, payload);
        if n == 0 {
            let mut c = redis::cmd("EXPIRE");
            c.arg(&staging).arg(ttl);
            w.add(c, 0);
        }
        w.flush_if_full().await?;
        on_stored(((n + 1) * HSET_BATCH).min(set.records.len()) as u64);
    }
    for piece in set.blob().chunks(BATCH_BYTES) {
        let mut c = redis::cmd("APPEND");
        c.arg(&blob).arg(piece);
        w.add(c, piece.len());
        w.flush_if_full().await?;
    }
    w.flush().await?;
    let index_bytes = index.await?;
    redis::cmd("SET")
        .arg(&index_key)
        .arg(&index_bytes)
        .arg("EX")
        .arg(ttl)
        .query_async::<()>(w.conn)
        .await?;

    lua::SWAP_DATA
        .key(keys.current())
        .key(keys.genes())
        .key(&staging)
        .arg(version)
        .arg(keys.version_prefix())
        .arg(OLD_VERSION_GRACE_SECS)
        .invoke_async::<()>(w.conn)
        .await?;
    Ok(summary)
}

/// Removes the live data set. Returns how many records it had (0 when none).
pub async fn delete_all(conn: &mut Conn, keys: &Keys) -> redis::RedisResult<u64> {
    lua::DELETE_DATA
        .key(keys.current())
        .key(keys.genes())
        .arg(keys.version_prefix())
        .invoke_async(conn)
        .await
}

/// The live version's `part` (`ids`, `stats`, `meta`), or None when no data is loaded.
pub async fn current_part(
    conn: &mut Conn,
    keys: &Keys,
    part: &str,
) -> redis::RedisResult<Option<Vec<u8>>> {
    lua::CURRENT_PART
        .key(keys.current())
        .arg(keys.version_prefix())
        .arg(part)
        .invoke_async(conn)
        .await
}

/// [`current_part`] as two plain GETs, for the hot path of every plot job: a
/// script costs Redis several times what two GETs do. The pair is consistent:
/// a version replaced between the two stays readable for
/// [`OLD_VERSION_GRACE_SECS`], and a data set deleted between them reads as
/// None, as it would a moment later.
pub async fn current_part_plain(
    conn: &mut Conn,
    keys: &Keys,
    part: &str,
) -> redis::RedisResult<Option<Vec<u8>>> {
    let Some(version) = current_version(conn, keys).await? else {
        return Ok(None);
    };
    conn.get(keys.version_part(&version, part)).await
}

/// What the live data set is (records, source, when loaded), or None when no data is loaded.
pub async fn summary(conn: &mut Conn, keys: &Keys) -> redis::RedisResult<Option<LoadSummary>> {
    let Some(meta) = current_part(conn, keys, "meta").await? else {
        return Ok(None);
    };
    serde_json::from_slice(&meta).map(Some).map_err(|e| {
        redis::RedisError::from((
            redis::ErrorKind::Parse,
            "the data set's summary is not valid JSON",
            e.to_string(),
        ))
    })
}

/// The live version's name and the length of its `blob`, or None when no data is loaded.
pub async fn current_blob(
    conn: &mut Conn,
    keys: &Keys,
) -> redis::RedisResult<Option<(String, u64)>> {
    let reply: Option<(String, u64)> = lua::CURRENT_BLOB
        .key(keys.current())
        .arg(keys.version_prefix())
        .invoke_async(conn)
        .await?;
    Ok(reply)
}

/// True when a data set is loaded.
pub async fn is_loaded(conn: &mut Conn, keys: &Keys) -> redis::RedisResult<bool> {
    conn.exists(keys.current()).await
}

/// The live version's name, or None when no data is loaded.
pub async fn current_version(conn: &mut Conn, keys: &Keys) -> redis::RedisResult<Option<String>> {
    conn.get(keys.current()).await
}

/// A version's `index` part and, when it has none (stored before indexes
/// existed), its `blob` to build one from. None when the version is gone.
pub async fn version_index(
    conn: &mut Conn,
    keys: &Keys,
    version: &str,
) -> redis::RedisResult<Option<IndexSource>> {
    let (index, blob_len): (Option<Vec<u8>>, u64) = redis::pipe()
        .get(keys.version_part(version, "index"))
        .strlen(keys.version_part(version, "blob"))
        .query_async(conn)
        .await?;
    if let Some(index) = index {
        return Ok(Some(IndexSource::Index(index)));
    }
    if blob_len == 0 {
        return Ok(None);
    }
    let blob: Option<Vec<u8>> = conn.get(keys.version_part(version, "blob")).await?;
    Ok(blob.map(IndexSource::Blob))
}

/// Where a version's index comes from.
pub enum IndexSource {
    Index(Vec<u8>),
    Blob(Vec<u8>),
}

/// What [`records_at`] found.
pub enum RecordsAt {
    /// The records, in the order asked (None for an id the set lacks).
    Records(Vec<Option<Bytes>>),
    /// The live version is another one (None: no data is loaded).
    Stale(Option<String>),
}

/// The records of `ids`, if `version` is still the live one: a reader that
/// chose the ids from that version's index gets that version's records, or
/// learns which version replaced it. One HMGET, no script: the hash names
/// its own version ([`VERSION_FIELD`]), and the swap replaces the hash whole.
pub async fn records_at(
    conn: &mut Conn,
    keys: &Keys,
    version: &str,
    ids: &[&str],
) -> redis::RedisResult<RecordsAt> {
    let mut cmd = redis::cmd("HMGET");
    cmd.arg(keys.genes()).arg(VERSION_FIELD).arg(ids);
    let mut reply: Vec<Option<Vec<u8>>> = cmd.query_async(conn).await?;
    let stamp = if reply.is_empty() {
        None
    } else {
        reply.remove(0)
    };
    let live = match stamp {
        Some(v) => String::from_utf8(v).ok(),
        // A set stored before versions were stamped in the hash (or none):
        // the live version's name tells.
        None => current_version(conn, keys).await?,
    };
    if live.as_deref() != Some(version) || reply.len() != ids.len() {
        return Ok(RecordsAt::Stale(live));
    }
    Ok(RecordsAt::Records(
        reply.into_iter().map(|r| r.map(Bytes::from)).collect(),
    ))
}

/// One record as stored, or None.
pub async fn get_gene(
    conn: &mut Conn,
    keys: &Keys,
    id: &HgncId,
) -> redis::RedisResult<Option<Bytes>> {
    let v: Option<Vec<u8>> = conn.hget(keys.genes(), id.as_str()).await?;
    Ok(v.map(Bytes::from))
}

/// The live data set's records as one JSON array, read from Redis in chunks
/// only as fast as the consumer takes them, so memory stays at a few chunks
/// whatever the data size. Returns the stream and its total length, or None
/// when no data is loaded.
pub async fn stream_blob(
    conn: &mut Conn,
    keys: &Keys,
) -> redis::RedisResult<
    Option<(
        impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static,
        u64,
    )>,
> {
    let Some((version, len)) = current_blob(conn, keys).await? else {
        return Ok(None);
    };
    let key = keys.version_part(&version, "blob");
    let mut conn = conn.clone();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(2);
    tokio::spawn(async move {
        let mut offset = 0u64;
        while offset < len {
            let end = (offset + DATA_CHUNK).min(len) - 1;
            let r: redis::RedisResult<Vec<u8>> = redis::cmd("GETRANGE")
                .arg(&key)
                .arg(offset)
                .arg(end)
                .query_async(&mut conn)
                .await;
            let item = match r {
                Ok(chunk) if chunk.len() as u64 == end - offset + 1 => {
                    offset = end + 1;
                    Ok(Bytes::from(chunk))
                }
                // The version vanished (deleted, or replaced long ago): cut the
                // response rather than send a truncated body that parses.
                Ok(_) => Err(std::io::Error::other(
                    "the data set changed while streaming",
                )),
                Err(e) => Err(std::io::Error::other(e)),
            };
            let failed = item.is_err();
            if tx.send(item).await.is_err() || failed {
                return;
            }
        }
    });
    Ok(Some((
        futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)),
        len,
    )))
}
