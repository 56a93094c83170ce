//! This process's copies of the releases it reads: each release's index,
//! the digest of each of its records, and its withdrawn list.
//!
//! A read names a release ([`Pick`]): the live one, or a kept one by id.
//! Releases are immutable and their records are named by content, so a
//! copy never goes stale; what can change is only *which* release is live
//! and which are kept. Every read of records therefore checks that in the
//! same round trip ([`records_checked`](dataset::records_checked)), and
//! chooses again from the newer release when the live one was replaced.
//! A replica that meets a release it has no copy of fetches it once (other
//! requests wait for that one fetch); only the live release has its index
//! stored, so an older one's is built here from its records.
//!
//! With `cache.records` (the default), a release this process reads also
//! has its records held here, and while the announcements of
//! [`super::pushed`] are trusted, a read asks Redis nothing at all: which
//! release is live (or kept) is known the moment it changes. Releases nobody
//! read for `cache.idle_secs` are dropped from memory (they stay in Redis).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::dataset::{self, Check, Checked, ReleaseParts};
use super::index::{DocId, GeneIndex};
use super::parse::Digest;
use super::pushed::Pushed;
use super::release::ReleaseInfo;
use super::withdrawn::Withdrawn;
use crate::store::{Conn, Keys};

/// How often a reader retries when the data set is replaced under it. Each
/// try takes the newest release, so only loads swapping faster than a read
/// (a fuzzer's burst of them, a few ms apart on the sample) exhaust it.
const ATTEMPTS: usize = 10;

/// Which release a read is of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pick {
    /// Whatever is live when the read runs.
    Live,
    /// One release by id (`?release=<id>`).
    Release(String),
}

impl Pick {
    /// From `?release=`: absent, empty or `live` mean the live one.
    pub fn from_param(value: Option<&str>) -> Result<Self, String> {
        match value {
            None | Some("") | Some("live") => Ok(Pick::Live),
            Some(id)
                if id.len() <= 64
                    && id
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') =>
            {
                Ok(Pick::Release(id.to_string()))
            }
            Some(id) => Err(format!(
                "release {id:?} is not a release id (e.g. 2024-07-23-5f0c2a9e; GET /releases lists them)"
            )),
        }
    }
}

/// A release as this process reads it.
pub struct Release {
    pub info: ReleaseInfo,
    pub index: GeneIndex,
    /// Each record's digest, by [`DocId`].
    pub digests: Arc<Vec<Digest>>,
    pub withdrawn: Withdrawn,
    /// Every record, by [`DocId`], once fetched (with `cache.records`).
    held: OnceLock<Arc<Vec<Bytes>>>,
    /// Set while (or once) the records are being fetched.
    filling: AtomicBool,
    /// When a request last read this release, in ms since the catalog began.
    last_read: AtomicU64,
    /// `GET /genes`'s answer (every id, in source order), made once.
    ids: OnceLock<Bytes>,
}

impl Release {
    pub fn id(&self) -> &str {
        &self.info.id
    }
    pub fn digest(&self, doc: DocId) -> &[u8] {
        &self.digests[doc as usize]
    }
    /// The records, when this process holds them.
    pub fn held(&self) -> Option<&Arc<Vec<Bytes>>> {
        self.held.get()
    }
    /// Every HGNC id as a JSON array, in source order (what the release's
    /// stored `ids` part holds), made on first use.
    pub fn ids_json(&self) -> Bytes {
        self.ids
            .get_or_init(|| {
                let ids: Vec<&str> = self.index.docs.iter().map(|d| d.hgnc_id.as_str()).collect();
                Bytes::from(serde_json::to_vec(&ids).expect("strings serialize"))
            })
            .clone()
    }
    /// Records `docs` from memory, when held.
    pub fn held_records(&self, docs: &[DocId]) -> Option<Vec<Option<Bytes>>> {
        let held = self.held.get()?;
        Some(
            docs.iter()
                .map(|d| held.get(*d as usize).cloned())
                .collect(),
        )
    }
}

#[derive(Clone)]
pub struct Catalog {
    inner: Arc<Inner>,
}

struct Inner {
    /// The releases last read, most recent last; at most `capacity`.
    cache: Mutex<Vec<Arc<Release>>>,
    capacity: usize,
    /// The release last seen live.
    live: RwLock<Option<Arc<Release>>>,
    /// One fetch of a release at a time.
    loading: tokio::sync::Mutex<()>,
    /// Diffs computed, most recent last.
    diffs: Mutex<Vec<DiffEntry>>,
    /// Reads from memory (`cache.records`); None: every read asks Redis.
    memory: Option<Memory>,
    epoch: Instant,
}

/// What reading from memory needs.
struct Memory {
    pushed: Pushed,
    /// Releases (but the live one) nobody read for this long are dropped.
    idle: Duration,
}

type DiffEntry = ((String, String), Arc<super::diff::Diff>);

/// Diffs a process keeps (a full diff of HGNC's releases is a few MB).
const DIFFS_KEPT: usize = 4;

impl Default for Catalog {
    fn default() -> Self {
        Self::new(4)
    }
}

/// Why a release could not be had.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error(transparent)]
    Redis(#[from] redis::RedisError),
    #[error("the release's stored parts are unreadable: {0}")]
    Corrupt(String),
    #[error("the data set was replaced {ATTEMPTS} times while it was read")]
    Changing,
    #[error("no gene data is loaded")]
    NoData,
    #[error("release {id} is not kept")]
    NotKept { id: String, kept: Vec<String> },
    #[error("there is no release {id}")]
    Unknown { id: String, kept: Vec<String> },
}

impl Catalog {
    /// A catalog that holds copies of up to `capacity` releases (the kept
    /// ones and one more, so a swap does not evict what readers use).
    pub fn new(capacity: usize) -> Self {
        Self::build_with(capacity, None)
    }

    /// A catalog that also holds the records of the releases read, and
    /// answers from them while `pushed` is trusted.
    pub fn in_memory(capacity: usize, pushed: Pushed, idle: Duration) -> Self {
        Self::build_with(capacity, Some(Memory { pushed, idle }))
    }

    fn build_with(capacity: usize, memory: Option<Memory>) -> Self {
        Self {
            inner: Arc::new(Inner {
                cache: Mutex::new(Vec::new()),
                capacity: capacity.max(1),
                live: RwLock::new(None),
                loading: tokio::sync::Mutex::new(()),
                diffs: Mutex::new(Vec::new()),
                memory,
                epoch: Instant::now(),
            }),
        }
    }

    /// Whether reads are answered from memory now (the view is trusted).
    pub fn from_memory(&self) -> bool {
        self.view().is_some()
    }

    /// The announced state, when reads may trust it.
    fn view(&self) -> Option<Arc<super::pushed::View>> {
        self.inner.memory.as_ref()?.pushed.view()
    }

    /// The release a trusted view names for `pick`: Some(None) when it
    /// names none (nothing loaded); None when the view is not trusted or
    /// does not keep the release asked for (Redis then says why).
    fn named(&self, pick: &Pick) -> Option<Option<String>> {
        let view = self.view()?;
        match pick {
            Pick::Live => Some(view.live.clone()),
            Pick::Release(id) => view.keeps(id).then(|| Some(id.clone())),
        }
    }

    fn now_ms(&self) -> u64 {
        self.inner.epoch.elapsed().as_millis() as u64
    }

    /// Marks `r` read now, and starts fetching its records if this process
    /// holds records and does not have them yet.
    fn touch(&self, r: &Arc<Release>, conn: &Conn, keys: &Keys) {
        r.last_read.store(self.now_ms(), Ordering::Relaxed);
        if self.inner.memory.is_some() && r.held.get().is_none() {
            fill(r.clone(), conn.clone(), keys.clone());
        }
    }

    /// Fetches release `id` and its records ahead of the first read (it
    /// just went live).
    pub fn warm(&self, conn: Conn, keys: Keys, id: String) {
        let this = self.clone();
        tokio::spawn(async move {
            let mut c = conn.clone();
            match this.of_release(&mut c, &keys, &id).await {
                Ok(Some(r)) => this.touch(&r, &conn, &keys),
                Ok(None) => {}
                Err(e) => {
                    tracing::debug!(release = %id, error = %e, "could not fetch the new live release ahead")
                }
            }
        });
    }

    /// Drops the releases (but `live`) nobody read for `cache.idle_secs`.
    pub fn drop_idle(&self, live: Option<&str>) {
        let Some(memory) = &self.inner.memory else {
            return;
        };
        let now = self.now_ms();
        let idle = memory.idle.as_millis() as u64;
        let mut cache = self.inner.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache.retain(|r| {
            let keep = Some(r.id()) == live
                || now.saturating_sub(r.last_read.load(Ordering::Relaxed)) < idle;
            if !keep {
                tracing::info!(
                    release = r.id(),
                    "release dropped from memory (not read lately; it stays in Redis)"
                );
            }
            keep
        });
        let held: usize = cache
            .iter()
            .filter_map(|r| r.held.get())
            .map(|h| h.iter().map(Bytes::len).sum::<usize>())
            .sum();
        metrics::gauge!("gene_api_records_held_bytes").set(held as f64);
        metrics::gauge!("gene_api_releases_held").set(cache.len() as f64);
    }

    /// The release `pick` names, as it is now.
    pub async fn release(
        &self,
        conn: &mut Conn,
        keys: &Keys,
        pick: &Pick,
    ) -> Result<Arc<Release>, CatalogError> {
        match self.named(pick) {
            Some(None) => return Err(CatalogError::NoData),
            Some(Some(id)) => {
                if let Some(r) = self.of_release(conn, keys, &id).await? {
                    self.touch(&r, conn, keys);
                    return Ok(r);
                }
            }
            None => {}
        }
        match pick {
            Pick::Live => {
                for _ in 0..ATTEMPTS {
                    let Some(id) = dataset::current_release(conn, keys).await? else {
                        return Err(CatalogError::NoData);
                    };
                    if let Some(r) = self.of_release(conn, keys, &id).await? {
                        self.set_live(&r);
                        return Ok(r);
                    }
                    // Still named live but not there: a data set stored by a
                    // version before releases (its parts had other names).
                    // It reads as nothing loaded until the next load.
                    if dataset::current_release(conn, keys).await?.as_deref() == Some(&id) {
                        tracing::warn!(
                            version = %id,
                            "the live data set is of a layout before releases: POST /data to load it again"
                        );
                        return Err(CatalogError::NoData);
                    }
                }
                Err(CatalogError::Changing)
            }
            Pick::Release(id) => {
                for _ in 0..ATTEMPTS {
                    if dataset::is_kept(conn, keys, id).await? {
                        if let Some(r) = self.of_release(conn, keys, id).await? {
                            return Ok(r);
                        }
                    }
                    match self.not_kept(conn, keys, id).await {
                        // Loaded again between the two looks (a DELETE
                        // /data, then the same release): look again, never
                        // "not kept; the kept ones are <it>".
                        CatalogError::NotKept { kept, .. } | CatalogError::Unknown { kept, .. }
                            if kept.iter().any(|k| k == id) => {}
                        e => return Err(e),
                    }
                }
                Err(CatalogError::Changing)
            }
        }
    }

    async fn not_kept(&self, conn: &mut Conn, keys: &Keys, id: &str) -> CatalogError {
        let seen = match dataset::was_seen(conn, keys, id).await {
            Ok(seen) => seen,
            Err(e) => return e.into(),
        };
        match dataset::kept_releases(conn, keys).await {
            Ok(kept) if kept.is_empty() => CatalogError::NoData,
            Ok(kept) if seen => CatalogError::NotKept {
                id: id.to_string(),
                kept,
            },
            Ok(kept) => CatalogError::Unknown {
                id: id.to_string(),
                kept,
            },
            Err(e) => e.into(),
        }
    }

    /// Every kept release, oldest first (fetched as needed).
    pub async fn kept(
        &self,
        conn: &mut Conn,
        keys: &Keys,
    ) -> Result<Vec<Arc<Release>>, CatalogError> {
        if let Some(view) = self.view() {
            if view.kept.is_empty() {
                return Err(CatalogError::NoData);
            }
            let mut out = Vec::with_capacity(view.kept.len());
            for id in &view.kept {
                match self.of_release(conn, keys, id).await? {
                    Some(r) => out.push(r),
                    None => break,
                }
            }
            if out.len() == view.kept.len() {
                return Ok(out);
            }
        }
        for _ in 0..ATTEMPTS {
            let ids = dataset::kept_releases(conn, keys).await?;
            if ids.is_empty() {
                return Err(CatalogError::NoData);
            }
            let mut out = Vec::with_capacity(ids.len());
            for id in &ids {
                match self.of_release(conn, keys, id).await? {
                    Some(r) => out.push(r),
                    None => break,
                }
            }
            if out.len() == ids.len() {
                return Ok(out);
            }
        }
        Err(CatalogError::Changing)
    }

    /// The diff from `a` to `b`, computed once per process and then kept
    /// (releases never change, so neither does their diff).
    pub async fn diff(
        &self,
        conn: &mut Conn,
        keys: &Keys,
        a: &str,
        b: &str,
    ) -> Result<Arc<super::diff::Diff>, CatalogError> {
        let key = (a.to_string(), b.to_string());
        if let Some(d) = self.cached_diff(&key) {
            // Still both kept? A dropped release's diff is not served.
            let (ka, kb) = (
                dataset::is_kept(conn, keys, a).await?,
                dataset::is_kept(conn, keys, b).await?,
            );
            if ka && kb {
                return Ok(d);
            }
        }
        let rb = self
            .release(conn, keys, &Pick::Release(b.to_string()))
            .await?;
        // The earlier side needs only its ids and digests: a release this
        // process does not hold is not built whole (its index would be
        // built from its records, about half of a cold diff's time).
        let side = match self.cached(a) {
            Some(ra) => super::diff::Side::of(&ra),
            None => match dataset::release_ids_and_digests(conn, keys, a).await? {
                Some((ids, digests)) => {
                    let ids: Vec<String> = serde_json::from_slice(&ids)
                        .map_err(|e| CatalogError::Corrupt(format!("ids: {e}")))?;
                    if digests.len() != ids.len() * 16 {
                        return Err(CatalogError::Corrupt(
                            "digests: not one 16-byte name per id".into(),
                        ));
                    }
                    super::diff::Side {
                        id: a.to_string(),
                        ids,
                        digests: Arc::new(
                            digests
                                .chunks_exact(16)
                                .map(|c| c.try_into().expect("16 bytes"))
                                .collect(),
                        ),
                    }
                }
                None => return Err(self.not_kept(conn, keys, a).await),
            },
        };
        let Some(d) = super::diff::diff(conn, keys, side, rb).await? else {
            return Err(CatalogError::Changing);
        };
        let d = Arc::new(d);
        let mut diffs = self.inner.diffs.lock().unwrap_or_else(|e| e.into_inner());
        diffs.retain(|(k, _)| *k != key);
        diffs.push((key, d.clone()));
        let over = diffs.len().saturating_sub(DIFFS_KEPT);
        diffs.drain(..over);
        Ok(d)
    }

    fn cached_diff(&self, key: &(String, String)) -> Option<Arc<super::diff::Diff>> {
        let diffs = self.inner.diffs.lock().unwrap_or_else(|e| e.into_inner());
        diffs.iter().find(|(k, _)| k == key).map(|(_, d)| d.clone())
    }

    fn set_live(&self, r: &Arc<Release>) {
        // Most reads find it noted already: a read lock, not a write lock
        // that every read on every thread would queue for.
        let noted = self.inner.live.read().unwrap_or_else(|e| e.into_inner());
        if noted.as_ref().is_some_and(|l| Arc::ptr_eq(l, r)) {
            return;
        }
        drop(noted);
        *self.inner.live.write().unwrap_or_else(|e| e.into_inner()) = Some(r.clone());
    }

    fn cached(&self, id: &str) -> Option<Arc<Release>> {
        let mut cache = self.inner.cache.lock().unwrap_or_else(|e| e.into_inner());
        let at = cache.iter().position(|r| r.id() == id)?;
        let r = cache.remove(at);
        cache.push(r.clone());
        Some(r)
    }

    /// The copy this process would answer `pick` from without asking Redis
    /// (checked by the read itself).
    fn optimistic(&self, pick: &Pick) -> Option<Arc<Release>> {
        match pick {
            Pick::Live => self
                .inner
                .live
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
            Pick::Release(id) => self.cached(id),
        }
    }

    /// Release `id`, fetched if this process has no copy; None when it is
    /// no longer kept.
    async fn of_release(
        &self,
        conn: &mut Conn,
        keys: &Keys,
        id: &str,
    ) -> Result<Option<Arc<Release>>, CatalogError> {
        if let Some(r) = self.cached(id) {
            return Ok(Some(r));
        }
        let _one_fetch = self.inner.loading.lock().await;
        if let Some(r) = self.cached(id) {
            return Ok(Some(r));
        }
        let Some(parts) = dataset::release_parts(conn, keys, id).await? else {
            return Ok(None);
        };
        let Some(release) = self.build(conn, keys, id, parts).await? else {
            return Ok(None);
        };
        let release = Arc::new(release);
        tracing::info!(
            release = id,
            records = release.index.len(),
            "release loaded into this process"
        );
        let mut cache = self.inner.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache.push(release.clone());
        let over = cache.len().saturating_sub(self.inner.capacity);
        cache.drain(..over);
        Ok(Some(release))
    }

    async fn build(
        &self,
        conn: &mut Conn,
        keys: &Keys,
        id: &str,
        parts: ReleaseParts,
    ) -> Result<Option<Release>, CatalogError> {
        let info: ReleaseInfo = serde_json::from_slice(&parts.meta)
            .map_err(|e| CatalogError::Corrupt(format!("meta: {e}")))?;
        if !parts.digests.len().is_multiple_of(16) {
            return Err(CatalogError::Corrupt("digests: not 16-byte names".into()));
        }
        let digests: Vec<Digest> = parts
            .digests
            .chunks_exact(16)
            .map(|c| c.try_into().expect("16 bytes"))
            .collect();
        let stored_index = parts.index;
        let id_owned = id.to_string();
        // Decoding takes tens of milliseconds for the full set, building
        // hundreds: off the async threads.
        let decoded = match stored_index {
            Some(bytes) => {
                let id = id_owned.clone();
                tokio::task::spawn_blocking(move || GeneIndex::from_bytes(&bytes, &id))
                    .await
                    .map_err(|e| CatalogError::Corrupt(e.to_string()))?
            }
            None => None,
        };
        let index = match decoded {
            Some(index) => index,
            None => {
                // Not stored (not live any more) or of another format:
                // built from the release's records.
                let Some(blob) = read_all(conn, keys, id, &digests).await? else {
                    return Ok(None);
                };
                let id = id_owned.clone();
                tokio::task::spawn_blocking(move || GeneIndex::from_blob(&blob, &id))
                    .await
                    .map_err(|e| CatalogError::Corrupt(e.to_string()))?
                    .map_err(CatalogError::Corrupt)?
            }
        };
        if index.len() != digests.len() {
            return Err(CatalogError::Corrupt(format!(
                "the index has {} records, the release {}",
                index.len(),
                digests.len()
            )));
        }
        let withdrawn = if parts.withdrawn.is_empty() {
            Withdrawn::default()
        } else {
            Withdrawn::parse(&parts.withdrawn)
                .map_err(|e| CatalogError::Corrupt(format!("withdrawn: {e}")))?
        };
        Ok(Some(Release {
            info,
            index,
            digests: Arc::new(digests),
            withdrawn,
            held: OnceLock::new(),
            filling: AtomicBool::new(false),
            last_read: AtomicU64::new(self.now_ms()),
            ids: OnceLock::new(),
        }))
    }

    /// Chooses records with `choose` from the release `pick` names and
    /// reads them, as one release: if the live release is replaced in
    /// between, it chooses again from the new one.
    pub async fn records<T, E>(
        &self,
        conn: &mut Conn,
        keys: &Keys,
        pick: &Pick,
        mut choose: impl FnMut(&Release) -> Result<(T, Vec<DocId>), E>,
    ) -> Result<Chosen<T>, RecordsError<E>> {
        // From memory: the view names the release, and its records are held.
        match self.named(pick) {
            Some(None) => return Err(CatalogError::NoData.into()),
            Some(Some(id)) => {
                if let Some(release) = self.of_release(conn, keys, &id).await? {
                    self.touch(&release, conn, keys);
                    if release.held.get().is_some() {
                        let (extra, docs) = choose(&release).map_err(RecordsError::Choose)?;
                        if let Some(records) = release.held_records(&docs) {
                            return Ok(self.chosen(pick, release, extra, docs, records));
                        }
                    }
                }
            }
            None => {}
        }
        let mut release = match self.optimistic(pick) {
            Some(r) => r,
            None => self.release(conn, keys, pick).await?,
        };
        for _ in 0..ATTEMPTS {
            let check = match pick {
                Pick::Live => Check::Live(release.id()),
                Pick::Release(id) => Check::Kept(id),
            };
            let (extra, docs) = match choose(&release) {
                Ok(chosen) => chosen,
                Err(e) => {
                    // Refused by this copy: only if it is still the one meant.
                    match dataset::records_checked(conn, keys, check, &[])
                        .await
                        .map_err(CatalogError::from)?
                    {
                        Checked::Records(_) => return Err(RecordsError::Choose(e)),
                        Checked::Moved(_) => {
                            release = self.release(conn, keys, pick).await?;
                            continue;
                        }
                    }
                }
            };
            let digests: Vec<&[u8]> = docs.iter().map(|d| release.digest(*d)).collect();
            match dataset::records_checked(conn, keys, check, &digests)
                .await
                .map_err(CatalogError::from)?
            {
                Checked::Records(records) if records.iter().all(Option::is_some) => {
                    return Ok(self.chosen(pick, release, extra, docs, records));
                }
                // Moved on, or its records went with a DELETE: ask again.
                _ => release = self.release(conn, keys, pick).await?,
            }
        }
        Err(CatalogError::Changing.into())
    }

    /// What a read chose, with the live release noted when it was read as live.
    fn chosen<T>(
        &self,
        pick: &Pick,
        release: Arc<Release>,
        extra: T,
        docs: Vec<DocId>,
        records: Vec<Option<Bytes>>,
    ) -> Chosen<T> {
        if matches!(pick, Pick::Live) {
            self.set_live(&release);
        }
        Chosen {
            release,
            extra,
            docs,
            records,
        }
    }
}

/// Fetches `release`'s records into memory, once, in the background (reads
/// go to Redis meanwhile). Given up when the release stops being kept or
/// Redis fails; the next read of it tries again.
fn fill(release: Arc<Release>, mut conn: Conn, keys: Keys) {
    if release.filling.swap(true, Ordering::AcqRel) {
        return;
    }
    tokio::spawn(async move {
        let started = Instant::now();
        let mut held = Vec::with_capacity(release.digests.len());
        for batch in release.digests.chunks(dataset::READ_BATCH) {
            let refs: Vec<&[u8]> = batch.iter().map(|d| &d[..]).collect();
            match dataset::records_checked(&mut conn, &keys, Check::Kept(release.id()), &refs).await
            {
                Ok(Checked::Records(records)) if records.iter().all(Option::is_some) => {
                    held.extend(records.into_iter().flatten());
                }
                // No longer kept (a DELETE /data, or dropped): nothing to
                // hold now. The same release loaded again is the same
                // object here, so the next read of it must try again.
                Ok(_) => {
                    release.filling.store(false, Ordering::Release);
                    return;
                }
                Err(e) => {
                    tracing::warn!(release = release.id(), error = %e, "could not fetch the release's records into memory; reads go to Redis");
                    release.filling.store(false, Ordering::Release);
                    return;
                }
            }
        }
        let bytes: usize = held.iter().map(Bytes::len).sum();
        let _ = release.held.set(Arc::new(held));
        tracing::info!(
            release = release.id(),
            records = release.digests.len(),
            bytes,
            ms = started.elapsed().as_millis() as u64,
            "release records held in memory"
        );
    });
}

/// Every record of release `id` as `[r1,r2,...]`; None when it stopped being kept.
async fn read_all(
    conn: &mut Conn,
    keys: &Keys,
    id: &str,
    digests: &[Digest],
) -> Result<Option<Vec<u8>>, CatalogError> {
    let mut blob = Vec::with_capacity(digests.len() * 400);
    blob.push(b'[');
    for (n, batch) in digests.chunks(dataset::READ_BATCH).enumerate() {
        let refs: Vec<&[u8]> = batch.iter().map(|d| &d[..]).collect();
        match dataset::records_checked(conn, keys, Check::Kept(id), &refs).await? {
            Checked::Records(records) => {
                for (i, r) in records.into_iter().enumerate() {
                    let Some(r) = r else { return Ok(None) };
                    if n > 0 || i > 0 {
                        blob.push(b',');
                    }
                    blob.extend_from_slice(&r);
                }
            }
            Checked::Moved(_) => return Ok(None),
        }
    }
    blob.push(b']');
    Ok(Some(blob))
}

/// Records read as one release, with what chose them.
pub struct Chosen<T> {
    pub release: Arc<Release>,
    pub extra: T,
    /// The records' numbers in the release, in the order read.
    pub docs: Vec<DocId>,
    pub records: Vec<Option<bytes::Bytes>>,
}

#[derive(Debug, thiserror::Error)]
pub enum RecordsError<E> {
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error("the request does not fit the data set")]
    Choose(E),
}
