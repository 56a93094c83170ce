//! The HGNC data set: identifiers, the source, and how a data set lives in Redis.
//!
//! - [`source`]: fetching `hgnc_complete_set.json` from a URL or a file;
//! - [`parse`]: turning it into a [`DataSet`] without copying a record;
//! - [`index`]: the index of every field, built in that same pass and
//!   stored with the records;
//! - [`release`]: what a release is (identity, as-of date, id);
//! - [`withdrawn`]: HGNC's `withdrawn.txt` and where a withdrawn id points;
//! - [`dataset`]: the Redis layout (db 0): releases whose records are
//!   stored once by content, swapped in atomically, and every read of them;
//! - [`catalog`]: each process's copies of the releases it reads;
//! - [`pushed`]: which release is live, as Redis announces it, so that reads
//!   from those copies need no round trip;
//! - [`diff`]: what changed between two releases, and one gene's history.

mod catalog;
mod dataset;
pub mod diff;
pub mod index;
mod parse;
pub mod pushed;
pub mod release;
mod source;
pub mod withdrawn;

use std::fmt;
use std::str::FromStr;

pub use catalog::{Catalog, CatalogError, Chosen, Pick, RecordsError, Release};
pub use dataset::{
    collect_garbage, current_part, current_part_plain, current_release, delete_all, discard_staged,
    generation, kept_infos, records_checked, release_info, release_part, stage, stream_records,
    summary, swap, Check, Checked, DataLock, Swapped,
};
pub use index::GeneIndex;
pub use parse::{parse_source, DataSet, Digest};
pub use pushed::Pushed;
pub use release::ReleaseInfo;
pub use source::{fetch_source, Fetched, Validators};
pub use withdrawn::{Withdrawn, WithdrawnGene};

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
    /// The release is swapped in on the primary, but fewer replicas than
    /// `redis.min_replicas` confirmed it in time.
    #[error(
        "the release is live on the Redis primary, but only {acked} of {wanted} replicas \
         confirmed it in time (a failover could undo it); the load runs again"
    )]
    NotReplicated { acked: u32, wanted: u32 },
    #[error("Redis error while storing the data set: {0}")]
    Redis(#[from] redis::RedisError),
}

impl LoadError {
    pub fn is_transient(&self) -> bool {
        match self {
            LoadError::Fetch { transient, .. } => *transient,
            LoadError::Redis(e) => crate::store::redis_is_transient(e),
            LoadError::NotReplicated { .. } => true,
            LoadError::TooLarge { .. } | LoadError::Invalid(_) => false,
        }
    }
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
}
