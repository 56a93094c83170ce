//! The HGNC data set: identifiers, fetching and parsing the source, and the
//! Redis layout that makes a load atomic for readers.
//!
//! A load stages a complete new version and then swaps it in with one Lua
//! script, so a reader sees the old set or the new one, never a mix:
//! - `<p>:genes` (hash `hgnc_id -> record`) is RENAMEd into place;
//! - `<p>:data:<version>:{blob,ids,stats,meta}` are published by pointing
//!   `<p>:data:current` at the new version. The old version lives on for
//!   [`OLD_VERSION_GRACE_SECS`] so a GET /data that is streaming it can finish.

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;
use std::str::FromStr;
use std::sync::LazyLock;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use redis::aio::ConnectionManager;
use redis::{AsyncCommands, Script};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::config::DataSettings;
use crate::plot::{PlotStats, StatsBuilder};
use crate::store::Keys;

/// How long a replaced data-set version stays readable.
pub const OLD_VERSION_GRACE_SECS: u64 = 120;
/// Staged keys of a load that died before its swap expire after this.
const STAGING_TTL_SECS: u64 = 3600;
/// Records per HSET command while staging.
const HSET_BATCH: usize = 1000;
/// Payload bytes per pipeline while staging.
const BATCH_BYTES: usize = 4 << 20;

/// An HGNC identifier, `HGNC:<digits>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HgncId(String);

impl HgncId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for HgncId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.strip_prefix("HGNC:") {
            Some(n) if !n.is_empty() && n.len() <= 10 && n.bytes().all(|b| b.is_ascii_digit()) => {
                Ok(Self(s.to_string()))
            }
            _ => Err(format!(
                "{s:?} is not an HGNC id: expected HGNC:<digits>, e.g. HGNC:5"
            )),
        }
    }
}

impl fmt::Display for HgncId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a load failed. `is_transient` tells the worker whether trying again could help.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("could not fetch {source_name}: {reason}")]
    Fetch {
        source_name: String,
        reason: String,
        transient: bool,
    },
    #[error("{source_name} is larger than the {limit}-byte limit (GENE_API__DATA__MAX_BYTES)")]
    TooLarge { source_name: String, limit: u64 },
    #[error("{0}")]
    Invalid(String),
    #[error("Redis error while storing the data set: {0}")]
    Redis(#[from] redis::RedisError),
}

impl LoadError {
    pub fn is_transient(&self) -> bool {
        match self {
            LoadError::Fetch { transient, .. } => *transient,
            LoadError::Redis(e) => crate::pipeline::redis_is_transient(e),
            LoadError::TooLarge { .. } | LoadError::Invalid(_) => false,
        }
    }
}

/// Reads the configured source: an `http(s)://` URL or a local path (`file://` allowed).
pub async fn fetch_source(settings: &DataSettings) -> Result<Bytes, LoadError> {
    let source = settings.source.trim();
    if source.starts_with("http://") || source.starts_with("https://") {
        fetch_url(source, settings).await
    } else {
        let path = source.strip_prefix("file://").unwrap_or(source);
        let fail = |reason: String| LoadError::Fetch {
            source_name: path.to_string(),
            reason,
            transient: false,
        };
        let meta = tokio::fs::metadata(path)
            .await
            .map_err(|e| fail(e.to_string()))?;
        if !meta.is_file() {
            return Err(fail("not a regular file".into()));
        }
        if meta.len() > settings.max_bytes {
            return Err(LoadError::TooLarge {
                source_name: path.to_string(),
                limit: settings.max_bytes,
            });
        }
        tokio::fs::read(path)
            .await
            .map(Bytes::from)
            .map_err(|e| fail(e.to_string()))
    }
}

async fn fetch_url(url: &str, settings: &DataSettings) -> Result<Bytes, LoadError> {
    let fail = |reason: String, transient: bool| LoadError::Fetch {
        source_name: url.to_string(),
        reason,
        transient,
    };
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(settings.connect_timeout_secs))
        .timeout(Duration::from_secs(settings.fetch_timeout_secs))
        .user_agent(concat!("gene-api/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| fail(e.to_string(), false))?;
    let resp = client
        .get(url)
        .send()
        .await
        .map_err(|e| fail(error_chain(&e), true))?;
    let status = resp.status();
    if !status.is_success() {
        // 5xx and 429 may pass; a 404 will not.
        let transient = status.is_server_error() || status.as_u16() == 429;
        return Err(fail(format!("the server answered {status}"), transient));
    }
    if resp
        .content_length()
        .is_some_and(|n| n > settings.max_bytes)
    {
        return Err(LoadError::TooLarge {
            source_name: url.to_string(),
            limit: settings.max_bytes,
        });
    }
    let mut body = Vec::with_capacity(resp.content_length().unwrap_or(1 << 20) as usize);
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| fail(error_chain(&e), true))?;
        if (body.len() + chunk.len()) as u64 > settings.max_bytes {
            return Err(LoadError::TooLarge {
                source_name: url.to_string(),
                limit: settings.max_bytes,
            });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(body))
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(inner) = cur {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        cur = inner.source();
    }
    s
}

/// A parsed source, ready to be written. Nothing is copied: records are
/// ranges of the source body, so a GET returns every field exactly as HGNC
/// wrote it (same types, same order, same bytes).
#[derive(Debug)]
pub struct DataSet {
    body: Bytes,
    /// Where the `response.docs` array lies in `body`: the body of GET /data.
    docs: Range<usize>,
    /// `(hgnc_id, where the record lies in body)` in source order.
    pub records: Vec<(String, Range<usize>)>,
    /// `["HGNC:5", ...]`: the body of GET /genes.
    pub ids: Vec<u8>,
    pub stats: PlotStats,
}

impl DataSet {
    /// The JSON array of every record, as it stands in the source.
    pub fn blob(&self) -> &[u8] {
        &self.body[self.docs.clone()]
    }
    /// One record's JSON.
    pub fn record(&self, range: &Range<usize>) -> &[u8] {
        &self.body[range.clone()]
    }
    pub fn source_bytes(&self) -> u64 {
        self.body.len() as u64
    }
}

#[derive(Deserialize)]
struct SourceFile<'a> {
    #[serde(borrow)]
    response: SourceResponse<'a>,
}

#[derive(Deserialize)]
struct SourceResponse<'a> {
    #[serde(borrow)]
    docs: &'a RawValue,
}

/// The few fields the service itself looks at; everything else passes through untouched.
#[derive(Deserialize)]
struct DocFields<'a> {
    #[serde(default, borrow)]
    hgnc_id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    locus_group: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    location: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    date_approved_reserved: Option<Cow<'a, str>>,
}

/// Where `inner` (a slice borrowed from `outer`) lies in `outer`.
fn span(outer: &[u8], inner: &str) -> Range<usize> {
    let start = inner.as_ptr() as usize - outer.as_ptr() as usize;
    start..start + inner.len()
}

/// Parses an `hgnc_complete_set.json` body. CPU-bound: call it from a blocking thread.
pub fn parse_source(body: Bytes) -> Result<DataSet, LoadError> {
    let not_hgnc = |e: serde_json::Error| {
        LoadError::Invalid(format!(
            "the source is not HGNC JSON ({{\"response\": {{\"docs\": [...]}}}}): {e}"
        ))
    };
    let file: SourceFile = serde_json::from_slice(&body).map_err(not_hgnc)?;
    let docs_raw = file.response.docs;
    let docs: Vec<&RawValue> = serde_json::from_str(docs_raw.get()).map_err(not_hgnc)?;
    if docs.is_empty() {
        return Err(LoadError::Invalid(
            "the source has no gene records (response.docs is empty)".into(),
        ));
    }
    let mut records = Vec::with_capacity(docs.len());
    let mut seen = std::collections::HashSet::with_capacity(docs.len());
    let mut stats = StatsBuilder::new();
    let mut ids = Vec::with_capacity(docs.len() * 14);
    ids.push(b'[');
    for (i, doc) in docs.iter().enumerate() {
        let fields: DocFields = serde_json::from_str(doc.get()).map_err(|e| {
            LoadError::Invalid(format!(
                "record {i} is not a JSON object with string fields: {e}"
            ))
        })?;
        let id = fields.hgnc_id.ok_or_else(|| {
            LoadError::Invalid(format!("record {i} has no hgnc_id; every record needs one"))
        })?;
        let id: HgncId = id
            .as_ref()
            .parse()
            .map_err(|e| LoadError::Invalid(format!("record {i}: {e}")))?;
        if !seen.insert(id.as_str().to_string()) {
            return Err(LoadError::Invalid(format!(
                "record {i} repeats hgnc_id {id}; ids must be unique"
            )));
        }
        stats.add(
            fields.locus_group.as_deref(),
            fields.location.as_deref(),
            fields.date_approved_reserved.as_deref(),
        );
        if i > 0 {
            ids.push(b',');
        }
        serde_json::to_writer(&mut ids, id.as_str())
            .map_err(|e| LoadError::Invalid(e.to_string()))?;
        records.push((id.0, span(&body, doc.get())));
    }
    ids.push(b']');
    let docs = span(&body, docs_raw.get());
    Ok(DataSet {
        body,
        docs,
        records,
        ids,
        stats: stats.finish(),
    })
}

/// What a finished load reports, stored as the version's `meta`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LoadSummary {
    pub records: u64,
    pub source_bytes: u64,
    pub source: String,
    pub version: String,
}

/// Sends commands in pipelines of about [`BATCH_BYTES`] of payload each: no
/// per-record round trips, and no single 30 MB request buffer either.
struct BatchWriter<'c> {
    conn: &'c mut ConnectionManager,
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

/// Writes `set` as version `version` (staged; idempotent) and swaps it in.
pub async fn store_and_swap(
    conn: &mut ConnectionManager,
    keys: &Keys,
    version: &str,
    set: &DataSet,
    source: &str,
) -> Result<LoadSummary, LoadError> {
    let summary = LoadSummary {
        records: set.records.len() as u64,
        source_bytes: set.source_bytes(),
        source: source.to_string(),
        version: version.to_string(),
    };
    let staging = keys.staging_genes(version);
    let [blob, ids, stats, meta] =
        ["blob", "ids", "stats", "meta"].map(|p| keys.version_part(version, p));
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
        .arg(&meta);
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
    }
    for piece in set.blob().chunks(BATCH_BYTES) {
        let mut c = redis::cmd("APPEND");
        c.arg(&blob).arg(piece);
        w.add(c, piece.len());
        w.flush_if_full().await?;
    }
    w.flush().await?;

    swap_script()
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

const PARTS_LUA: &str = "local parts = {'blob', 'ids', 'stats', 'meta'}\n";

/// KEYS: current, genes, staging genes. ARGV: version, version prefix, grace seconds.
fn swap_script() -> Script {
    Script::new(&format!(
        "{PARTS_LUA}
        local old = redis.call('GET', KEYS[1])
        if redis.call('EXISTS', KEYS[3]) == 1 then
          redis.call('RENAME', KEYS[3], KEYS[2])
          redis.call('PERSIST', KEYS[2])
        end
        for _, p in ipairs(parts) do
          redis.call('PERSIST', ARGV[2] .. ARGV[1] .. ':' .. p)
        end
        redis.call('SET', KEYS[1], ARGV[1])
        if old and old ~= ARGV[1] then
          for _, p in ipairs(parts) do
            redis.call('EXPIRE', ARGV[2] .. old .. ':' .. p, ARGV[3])
          end
        end
        return 1"
    ))
}

/// Removes the live data set. Returns how many records it had (0 when none).
pub async fn delete_all(conn: &mut ConnectionManager, keys: &Keys) -> redis::RedisResult<u64> {
    Script::new(&format!(
        "{PARTS_LUA}
        local n = redis.call('HLEN', KEYS[2])
        local v = redis.call('GET', KEYS[1])
        redis.call('UNLINK', KEYS[1], KEYS[2])
        if v then
          for _, p in ipairs(parts) do redis.call('UNLINK', ARGV[1] .. v .. ':' .. p) end
        end
        return n"
    ))
    .key(keys.current())
    .key(keys.genes())
    .arg(keys.version_prefix())
    .invoke_async(conn)
    .await
}

/// The live version's `part` (`ids`, `stats`, `meta`), or None when no data is loaded.
pub async fn current_part(
    conn: &mut ConnectionManager,
    keys: &Keys,
    part: &str,
) -> redis::RedisResult<Option<Vec<u8>>> {
    // Built once: every GET /genes and every plot job runs it.
    static SCRIPT: LazyLock<Script> = LazyLock::new(|| {
        Script::new(
            "local v = redis.call('GET', KEYS[1])
             if not v then return false end
             return redis.call('GET', ARGV[1] .. v .. ':' .. ARGV[2])",
        )
    });
    SCRIPT
        .key(keys.current())
        .arg(keys.version_prefix())
        .arg(part)
        .invoke_async(conn)
        .await
}

/// The live version's name and the length of its `blob`, or None when no data is loaded.
pub async fn current_blob(
    conn: &mut ConnectionManager,
    keys: &Keys,
) -> redis::RedisResult<Option<(String, u64)>> {
    static SCRIPT: LazyLock<Script> = LazyLock::new(|| {
        Script::new(
            "local v = redis.call('GET', KEYS[1])
             if not v then return false end
             return {v, redis.call('STRLEN', ARGV[1] .. v .. ':blob')}",
        )
    });
    let reply: Option<(String, u64)> = SCRIPT
        .key(keys.current())
        .arg(keys.version_prefix())
        .invoke_async(conn)
        .await?;
    Ok(reply)
}

/// True when a data set is loaded.
pub async fn is_loaded(conn: &mut ConnectionManager, keys: &Keys) -> redis::RedisResult<bool> {
    conn.exists(keys.current()).await
}

/// One record as stored, or None.
pub async fn get_gene(
    conn: &mut ConnectionManager,
    keys: &Keys,
    id: &HgncId,
) -> redis::RedisResult<Option<Bytes>> {
    let v: Option<Vec<u8>> = conn.hget(keys.genes(), id.as_str()).await?;
    Ok(v.map(Bytes::from))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hgnc_ids_parse_only_in_canonical_form() {
        assert_eq!("HGNC:5".parse::<HgncId>().unwrap().as_str(), "HGNC:5");
        assert!("HGNC:0012345".parse::<HgncId>().is_ok());
        for bad in [
            "",
            "HGNC:",
            "hgnc:5",
            "HGNC:5a",
            "5",
            "HGNC: 5",
            "HGNC:-1",
            "HGNC:12345678901",
        ] {
            let err = bad.parse::<HgncId>().unwrap_err();
            assert!(err.contains("HGNC:<digits>"), "{bad}: {err}");
        }
    }

    #[test]
    fn parse_keeps_records_byte_for_byte_and_in_order() {
        let body = br#"{"response":{"docs":[
            {"hgnc_id":"HGNC:5","symbol":"A1BG","pubmed_id":[2591067],"orphanet":1,"locus_group":"protein-coding gene"},
            {"symbol":"A2M","hgnc_id":"HGNC:7","location":"12p13.31","date_approved_reserved":"1986-01-01"}
        ]}}"#;
        let set = parse_source(Bytes::from_static(body)).unwrap();
        assert_eq!(set.records.len(), 2);
        assert_eq!(set.records[0].0, "HGNC:5");
        assert_eq!(
            std::str::from_utf8(set.record(&set.records[0].1)).unwrap(),
            r#"{"hgnc_id":"HGNC:5","symbol":"A1BG","pubmed_id":[2591067],"orphanet":1,"locus_group":"protein-coding gene"}"#
        );
        let all: serde_json::Value = serde_json::from_slice(set.blob()).unwrap();
        assert_eq!(all.as_array().unwrap().len(), 2);
        assert_eq!(all[1]["symbol"], "A2M");
        assert_eq!(all[0]["pubmed_id"][0], 2591067);
        let ids: Vec<String> = serde_json::from_slice(&set.ids).unwrap();
        assert_eq!(ids, ["HGNC:5", "HGNC:7"]);
        assert_eq!(set.stats.total, 2);
        assert_eq!(set.source_bytes(), body.len() as u64);
    }

    #[test]
    fn parse_rejects_bad_sources_with_a_reason() {
        let cases: [(&[u8], &str); 7] = [
            (b"not json", "not HGNC JSON"),
            (br#"{"docs":[]}"#, "not HGNC JSON"),
            (br#"{"response":{"docs":[]}}"#, "no gene records"),
            (br#"{"response":{"docs":[{"symbol":"X"}]}}"#, "no hgnc_id"),
            (
                br#"{"response":{"docs":[{"hgnc_id":"X:1"}]}}"#,
                "not an HGNC id",
            ),
            (
                br#"{"response":{"docs":[{"hgnc_id":"HGNC:1"},{"hgnc_id":"HGNC:1"}]}}"#,
                "repeats hgnc_id",
            ),
            (br#"{"response":{"docs":[7]}}"#, "record 0"),
        ];
        for (body, want) in cases {
            let err = parse_source(Bytes::from_static(body)).unwrap_err();
            assert!(!err.is_transient());
            assert!(err.to_string().contains(want), "{want}: {err}");
        }
    }

    #[test]
    fn parse_reads_the_shipped_sample() {
        let body = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/data/hgnc_sample.json"
        ))
        .unwrap();
        let set = parse_source(Bytes::from(body.clone())).unwrap();
        assert_eq!(set.records.len(), 1659);
        assert_eq!(set.stats.total, 1659);
        let original: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let blob: serde_json::Value = serde_json::from_slice(set.blob()).unwrap();
        assert_eq!(original["response"]["docs"], blob);
    }
}
