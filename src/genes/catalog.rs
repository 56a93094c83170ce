//! This process's copy of the live data set's [`GeneIndex`].
//!
//! Every api replica answers from the index of the version that is live in
//! Redis *now*: a search first reads the live version's name (one GET), and
//! a read of records gets, in the same HMGET, the name of the version they
//! belong to ([`records_at`](dataset::records_at)), so records chosen from
//! an older index are never served as if they were current. A replica that
//! learns of a new version fetches its index once (other requests wait for
//! that one fetch) and chooses again from it.

use std::sync::{Arc, RwLock};

use super::dataset::{self, IndexSource, RecordsAt};
use super::index::GeneIndex;
use crate::store::{Conn, Keys};

/// How often a reader retries when the data set is replaced under it. Each
/// try takes the newest version, so only loads swapping faster than a read
/// (a fuzzer's burst of them, a few ms apart on the sample) exhaust it; 3 was
/// exhausted once in the live test's fuzzing, answering 503.
const ATTEMPTS: usize = 10;

#[derive(Clone, Default)]
pub struct Catalog {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    current: RwLock<Option<Arc<GeneIndex>>>,
    /// One fetch of a new version's index at a time.
    loading: tokio::sync::Mutex<()>,
}

/// Why the index could not be had.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error(transparent)]
    Redis(#[from] redis::RedisError),
    #[error("the data set's index is unreadable: {0}")]
    Corrupt(String),
    #[error("the data set was replaced {ATTEMPTS} times while it was read")]
    Changing,
}

impl Catalog {
    /// The index of the live version; None when no data is loaded.
    pub async fn live(
        &self,
        conn: &mut Conn,
        keys: &Keys,
    ) -> Result<Option<Arc<GeneIndex>>, CatalogError> {
        for _ in 0..ATTEMPTS {
            let Some(version) = dataset::current_version(conn, keys).await? else {
                return Ok(None);
            };
            if let Some(index) = self.of_version(conn, keys, &version).await? {
                return Ok(Some(index));
            }
        }
        Err(CatalogError::Changing)
    }

    /// The index last used, without asking Redis: for reads that check the
    /// version themselves ([`Catalog::records`]).
    fn cached(&self) -> Option<Arc<GeneIndex>> {
        self.inner
            .current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The index of `version`, fetched if this process has another one;
    /// None when that version is no longer stored.
    async fn of_version(
        &self,
        conn: &mut Conn,
        keys: &Keys,
        version: &str,
    ) -> Result<Option<Arc<GeneIndex>>, CatalogError> {
        if let Some(index) = self.cached().filter(|i| i.version == version) {
            return Ok(Some(index));
        }
        let _one_fetch = self.inner.loading.lock().await;
        if let Some(index) = self.cached().filter(|i| i.version == version) {
            return Ok(Some(index));
        }
        let Some(source) = dataset::version_index(conn, keys, version).await? else {
            return Ok(None);
        };
        let version_name = version.to_string();
        // Decoding takes tens of milliseconds for the full set: off the async threads.
        let index = tokio::task::spawn_blocking(move || match source {
            IndexSource::Index(bytes) => GeneIndex::from_bytes(&bytes, &version_name)
                .ok_or_else(|| "of another format".to_string()),
            IndexSource::Blob(blob) => GeneIndex::from_blob(&blob, &version_name),
        })
        .await
        .map_err(|e| CatalogError::Corrupt(e.to_string()))?;
        let index = match index {
            Ok(index) => index,
            // An index of another format (written by another release):
            // rebuild it from the version's records.
            Err(_) => {
                let blob: Option<Vec<u8>> =
                    redis::AsyncCommands::get(conn, keys.version_part(version, "blob")).await?;
                let Some(blob) = blob else { return Ok(None) };
                let version_name = version.to_string();
                tokio::task::spawn_blocking(move || GeneIndex::from_blob(&blob, &version_name))
                    .await
                    .map_err(|e| CatalogError::Corrupt(e.to_string()))?
                    .map_err(CatalogError::Corrupt)?
            }
        };
        let index = Arc::new(index);
        tracing::info!(version, records = index.len(), "gene index loaded");
        *self
            .inner
            .current
            .write()
            .unwrap_or_else(|e| e.into_inner()) = Some(index.clone());
        Ok(Some(index))
    }

    /// Chooses records with `choose` from the live index and reads them, as
    /// one version: if the data set is replaced in between, it chooses again
    /// from the new index. None when no data is loaded.
    pub async fn records<T, E>(
        &self,
        conn: &mut Conn,
        keys: &Keys,
        mut choose: impl FnMut(&GeneIndex) -> Result<(T, Vec<String>), E>,
    ) -> Result<Option<Chosen<T>>, RecordsError<E>> {
        let mut index = match self.cached() {
            Some(index) => index,
            None => match self.live(conn, keys).await? {
                Some(index) => index,
                None => return Ok(None),
            },
        };
        for _ in 0..ATTEMPTS {
            let (extra, ids) = match choose(&index) {
                Ok(chosen) => chosen,
                Err(e) => {
                    // Refused by this process's index: only if that is still the live one.
                    let live = dataset::current_version(conn, keys)
                        .await
                        .map_err(CatalogError::from)?;
                    match live {
                        None => return Ok(None),
                        Some(v) if v == index.version => return Err(RecordsError::Choose(e)),
                        Some(v) => {
                            index = match self.of_version(conn, keys, &v).await? {
                                Some(newer) => newer,
                                None => continue,
                            };
                            continue;
                        }
                    }
                }
            };
            let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
            match dataset::records_at(conn, keys, &index.version, &refs)
                .await
                .map_err(CatalogError::from)?
            {
                RecordsAt::Records(records) => {
                    return Ok(Some(Chosen {
                        index,
                        extra,
                        records,
                    }))
                }
                RecordsAt::Stale(None) => return Ok(None),
                RecordsAt::Stale(Some(live)) => match self.of_version(conn, keys, &live).await? {
                    Some(newer) => index = newer,
                    None => match self.live(conn, keys).await? {
                        Some(newer) => index = newer,
                        None => return Ok(None),
                    },
                },
            }
        }
        Err(CatalogError::Changing.into())
    }
}

/// Records read as one version, with what chose them.
pub struct Chosen<T> {
    pub index: Arc<GeneIndex>,
    pub extra: T,
    pub records: Vec<Option<bytes::Bytes>>,
}

#[derive(Debug, thiserror::Error)]
pub enum RecordsError<E> {
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error("the request does not fit the data set")]
    Choose(E),
}
