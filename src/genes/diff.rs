//! What changed between two releases, and one gene across the kept ones.
//!
//! Records are named by content, so a record whose digest is the same in
//! both releases is unchanged without being read: only the changed ones
//! (about a fifth between HGNC's 2021 and 2024 releases) are fetched and
//! compared field by field.

use std::collections::BTreeMap;

use rustc_hash::FxHashMap;
use serde::Serialize;
use serde_json::{Map, Value};

use super::catalog::Release;
use super::dataset::{self, Check, Checked};
use super::index::HGNC_COLUMNS;
use super::withdrawn::{WithdrawnGene, WithdrawnKind};
use crate::store::{Conn, Keys};

/// How a gene differs between two releases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// New in the later release.
    Added,
    /// Approved in the earlier release, `Entry Withdrawn` in the later.
    Withdrawn,
    /// Merged into one gene.
    Merged,
    /// Split into several genes.
    Split,
    /// Gone without a withdrawn entry.
    Removed,
    /// The approved symbol changed (other fields may have too).
    Renamed,
    /// Some other field changed.
    Changed,
}

impl ChangeKind {
    pub const ALL: [ChangeKind; 7] = [
        ChangeKind::Added,
        ChangeKind::Withdrawn,
        ChangeKind::Merged,
        ChangeKind::Split,
        ChangeKind::Removed,
        ChangeKind::Renamed,
        ChangeKind::Changed,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Added => "added",
            ChangeKind::Withdrawn => "withdrawn",
            ChangeKind::Merged => "merged",
            ChangeKind::Split => "split",
            ChangeKind::Removed => "removed",
            ChangeKind::Renamed => "renamed",
            ChangeKind::Changed => "changed",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// One field's old and new value (null: absent).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FieldChange {
    pub field: String,
    #[schema(value_type = Object)]
    pub old: Value,
    #[schema(value_type = Object)]
    pub new: Value,
}

/// One gene's change.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Change {
    pub hgnc_id: String,
    pub kind: ChangeKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old_symbol: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_symbol: Option<String>,
    /// The gene's locus group (the later release's, or the earlier's when gone).
    pub locus_group: String,
    /// Each field that differs, in HGNC's column order.
    pub fields: Vec<FieldChange>,
    /// For a gene gone from the later release: its withdrawn entry there.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub withdrawn: Option<WithdrawnGene>,
}

/// Counts of a diff.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct Summary {
    /// Genes by kind of change.
    pub by_kind: BTreeMap<String, u64>,
    /// Genes by locus group, then by kind of change.
    pub by_locus_group: BTreeMap<String, BTreeMap<String, u64>>,
    /// Genes with any change.
    pub total: u64,
}

/// Every change between two releases, in the order of HGNC ids' numbers.
#[derive(Debug)]
pub struct Diff {
    pub from: String,
    pub to: String,
    pub summary: Summary,
    pub changes: Vec<Change>,
}

fn id_number(id: &str) -> u64 {
    id.strip_prefix("HGNC:")
        .and_then(|n| n.parse().ok())
        .unwrap_or(u64::MAX)
}

fn locus_group(record: &Map<String, Value>) -> String {
    record
        .get("locus_group")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

/// What a diff needs of a release: its id, and each record's id and
/// digest in source order. The earlier side of a diff is read as just
/// this (two GETs), without building its index.
pub struct Side {
    pub id: String,
    pub ids: Vec<String>,
    pub digests: std::sync::Arc<Vec<super::Digest>>,
}

impl Side {
    /// The side of a release this process holds whole.
    pub fn of(r: &Release) -> Self {
        Self {
            id: r.id().to_string(),
            ids: r.index.docs.iter().map(|d| d.hgnc_id.clone()).collect(),
            digests: r.digests.clone(),
        }
    }
    fn digest(&self, doc: u32) -> &[u8] {
        &self.digests[doc as usize]
    }
}

/// The records of `docs` of `release`, as stored, read in one round trip
/// (one pipeline of batched HMGETs behind the check that the release is
/// still kept); None when it is not.
async fn read_raw(
    conn: &mut Conn,
    keys: &Keys,
    release: &Side,
    docs: &[u32],
) -> redis::RedisResult<Option<Vec<bytes::Bytes>>> {
    let mut pipe = redis::pipe();
    pipe.zscore(keys.releases(), &release.id);
    for batch in docs.chunks(dataset::READ_BATCH) {
        let digests: Vec<&[u8]> = batch.iter().map(|d| release.digest(*d)).collect();
        pipe.cmd("HMGET").arg(keys.records()).arg(digests);
    }
    let reply: Vec<redis::Value> = pipe.query_async(conn).await?;
    let mut reply = reply.into_iter();
    if matches!(reply.next(), None | Some(redis::Value::Nil)) {
        return Ok(None);
    }
    let mut out = Vec::with_capacity(docs.len());
    for batch in reply {
        let records: Vec<Option<Vec<u8>>> = redis::from_redis_value(batch)?;
        for r in records {
            let Some(r) = r else { return Ok(None) };
            out.push(bytes::Bytes::from(r));
        }
    }
    Ok(Some(out))
}

fn parse_record(raw: &[u8]) -> Map<String, Value> {
    serde_json::from_slice(raw).unwrap_or_default()
}

/// The fields that differ, in HGNC's column order, then the rest by name.
fn field_changes(old: &Map<String, Value>, new: &Map<String, Value>) -> Vec<FieldChange> {
    let mut names: Vec<&String> = old.keys().chain(new.keys()).collect();
    names.sort_by_key(|n| {
        (
            HGNC_COLUMNS
                .iter()
                .position(|c| c == n)
                .unwrap_or(usize::MAX),
            n.as_str(),
        )
    });
    names.dedup();
    names
        .into_iter()
        .filter_map(|n| {
            let (o, v) = (old.get(n), new.get(n));
            (o != v).then(|| FieldChange {
                field: n.clone(),
                old: o.cloned().unwrap_or(Value::Null),
                new: v.cloned().unwrap_or(Value::Null),
            })
        })
        .collect()
}

/// Computes the diff from release `a` to release `b`. None when either
/// stopped being kept while it ran.
pub async fn diff(
    conn: &mut Conn,
    keys: &Keys,
    a: Side,
    b: std::sync::Arc<Release>,
) -> redis::RedisResult<Option<Diff>> {
    let b_side = Side::of(&b);
    let docs_of = |r: &Side| -> FxHashMap<String, u32> {
        r.ids
            .iter()
            .enumerate()
            .map(|(d, id)| (id.clone(), d as u32))
            .collect()
    };
    let (in_a, in_b) = (docs_of(&a), docs_of(&b_side));
    // Same id, different digest: read both sides.
    let mut both: Vec<(u32, u32)> = in_a
        .iter()
        .filter_map(|(id, &da)| {
            let &db = in_b.get(id)?;
            (a.digest(da) != b.digest(db)).then_some((da, db))
        })
        .collect();
    both.sort_unstable();
    let added: Vec<u32> = in_b
        .iter()
        .filter(|(id, _)| !in_a.contains_key(*id))
        .map(|(_, &d)| d)
        .collect();
    let gone: Vec<u32> = in_a
        .iter()
        .filter(|(id, _)| !in_b.contains_key(*id))
        .map(|(_, &d)| d)
        .collect();
    let a_docs: Vec<u32> = both
        .iter()
        .map(|p| p.0)
        .chain(gone.iter().copied())
        .collect();
    let b_docs: Vec<u32> = both
        .iter()
        .map(|p| p.1)
        .chain(added.iter().copied())
        .collect();
    let (Some(old), Some(new)) = (
        read_raw(conn, keys, &a, &a_docs).await?,
        read_raw(conn, keys, &b_side, &b_docs).await?,
    ) else {
        return Ok(None);
    };
    // Parsing and comparing some 18,000 records takes tens of milliseconds:
    // off the async threads.
    let diff =
        tokio::task::spawn_blocking(move || compare(&a, &b, &both, &added, &gone, &old, &new))
            .await
            .map_err(|e| {
                redis::RedisError::from((redis::ErrorKind::Io, "the diff crashed", e.to_string()))
            })?;
    Ok(Some(diff))
}

/// The diff itself, from the records read: `old` holds `both`'s earlier
/// records then `gone`'s, `new` holds `both`'s later ones then `added`'s.
fn compare(
    a: &Side,
    b: &Release,
    both: &[(u32, u32)],
    added: &[u32],
    gone: &[u32],
    old: &[bytes::Bytes],
    new: &[bytes::Bytes],
) -> Diff {
    let symbol =
        |r: &Map<String, Value>| r.get("symbol").and_then(Value::as_str).map(str::to_string);
    let mut changes = Vec::with_capacity(both.len() + added.len() + gone.len());
    for (i, (da, _)) in both.iter().enumerate() {
        let (o, n) = (&parse_record(&old[i]), &parse_record(&new[i]));
        let fields = field_changes(o, n);
        if fields.is_empty() {
            // Same fields in another order or spacing: not a change.
            continue;
        }
        let (os, ns) = (symbol(o), symbol(n));
        changes.push(Change {
            hgnc_id: a.ids[*da as usize].clone(),
            kind: if os != ns {
                ChangeKind::Renamed
            } else {
                ChangeKind::Changed
            },
            old_symbol: os,
            new_symbol: ns,
            locus_group: locus_group(n),
            fields,
            withdrawn: None,
        });
    }
    for (i, d) in added.iter().enumerate() {
        let n = &parse_record(&new[both.len() + i]);
        changes.push(Change {
            hgnc_id: b.index.docs[*d as usize].hgnc_id.clone(),
            kind: ChangeKind::Added,
            old_symbol: None,
            new_symbol: symbol(n),
            locus_group: locus_group(n),
            fields: field_changes(&Map::new(), n),
            withdrawn: None,
        });
    }
    for (i, d) in gone.iter().enumerate() {
        let o = &parse_record(&old[both.len() + i]);
        let id = &a.ids[*d as usize];
        let withdrawn = b
            .withdrawn
            .get(id)
            .map(|e| b.withdrawn.resolve(e, &b.index));
        changes.push(Change {
            hgnc_id: id.clone(),
            kind: match withdrawn.as_ref().map(|w| w.kind) {
                Some(WithdrawnKind::Withdrawn) => ChangeKind::Withdrawn,
                Some(WithdrawnKind::Merged) => ChangeKind::Merged,
                Some(WithdrawnKind::Split) => ChangeKind::Split,
                None => ChangeKind::Removed,
            },
            old_symbol: symbol(o),
            new_symbol: None,
            locus_group: locus_group(o),
            fields: field_changes(o, &Map::new()),
            withdrawn,
        });
    }
    changes.sort_by_key(|c| id_number(&c.hgnc_id));
    let mut summary = Summary::default();
    for c in &changes {
        *summary.by_kind.entry(c.kind.as_str().into()).or_default() += 1;
        *summary
            .by_locus_group
            .entry(c.locus_group.clone())
            .or_default()
            .entry(c.kind.as_str().into())
            .or_default() += 1;
    }
    summary.total = changes.len() as u64;
    Diff {
        from: a.id.clone(),
        to: b.id().to_string(),
        summary,
        changes,
    }
}

/// One gene in one kept release, as its history shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct HistoryEntry {
    pub release: String,
    pub as_of: String,
    /// `Approved`, `Entry Withdrawn`, `Merged/Split`, or `absent` (in
    /// neither the records nor the withdrawn list of that release).
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub symbol: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Where a withdrawn id pointed in that release.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub withdrawn: Option<WithdrawnGene>,
}

impl HistoryEntry {
    /// The part a history compares: a new entry only when this changes.
    fn state(&self) -> (String, Option<String>, Option<String>, Option<Vec<String>>) {
        (
            self.status.clone(),
            self.symbol.clone(),
            self.name.clone(),
            self.withdrawn
                .as_ref()
                .map(|w| w.current.iter().map(|t| t.hgnc_id.clone()).collect()),
        )
    }
}

/// `id` in each of `releases` (oldest first), keeping only the entries
/// where its symbol, name, status or withdrawn target changed. None when a
/// release stopped being kept meanwhile.
pub async fn history(
    conn: &mut Conn,
    keys: &Keys,
    releases: &[std::sync::Arc<Release>],
    id: &str,
) -> redis::RedisResult<Option<Vec<HistoryEntry>>> {
    let mut out: Vec<HistoryEntry> = Vec::new();
    for r in releases {
        let entry = match r.index.doc_of_id(id) {
            Some(d) => {
                let rec: Map<String, Value> =
                    match dataset::records_checked(conn, keys, Check::Kept(r.id()), &[r.digest(d)])
                        .await?
                    {
                        Checked::Records(mut found) => match found.pop().flatten() {
                            Some(bytes) => serde_json::from_slice(&bytes).unwrap_or_default(),
                            None => return Ok(None),
                        },
                        Checked::Moved(_) => return Ok(None),
                    };
                let s = |f: &str| rec.get(f).and_then(Value::as_str).map(str::to_string);
                HistoryEntry {
                    release: r.id().to_string(),
                    as_of: r.info.as_of.clone(),
                    status: s("status").unwrap_or_else(|| "Approved".into()),
                    symbol: s("symbol"),
                    name: s("name"),
                    withdrawn: None,
                }
            }
            None => match r.withdrawn.get(id) {
                Some(e) => {
                    let w = r.withdrawn.resolve(e, &r.index);
                    HistoryEntry {
                        release: r.id().to_string(),
                        as_of: r.info.as_of.clone(),
                        status: serde_json::to_value(w.status)
                            .ok()
                            .and_then(|v| v.as_str().map(str::to_string))
                            .unwrap_or_default(),
                        symbol: Some(w.withdrawn_symbol.clone()),
                        name: None,
                        withdrawn: Some(w),
                    }
                }
                None => HistoryEntry {
                    release: r.id().to_string(),
                    as_of: r.info.as_of.clone(),
                    status: "absent".into(),
                    symbol: None,
                    name: None,
                    withdrawn: None,
                },
            },
        };
        if out.last().is_none_or(|last| last.state() != entry.state()) {
            out.push(entry);
        }
    }
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_changes_list_differing_fields_in_hgnc_order() {
        let old: Map<String, Value> = serde_json::from_str(
            r#"{"hgnc_id":"HGNC:4463","symbol":"GPR1","name":"G protein-coupled receptor 1","alias_symbol":["x"]}"#,
        )
        .unwrap();
        let new: Map<String, Value> = serde_json::from_str(
            r#"{"name":"chemerin chemokine-like receptor 2","hgnc_id":"HGNC:4463","symbol":"CMKLR2","prev_symbol":["GPR1"]}"#,
        )
        .unwrap();
        let f = field_changes(&old, &new);
        let names: Vec<&str> = f.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(names, ["symbol", "name", "alias_symbol", "prev_symbol"]);
        assert_eq!(f[0].old, "GPR1");
        assert_eq!(f[0].new, "CMKLR2");
        assert_eq!(f[2].new, Value::Null);
        assert_eq!(f[3].old, Value::Null);
        assert!(field_changes(&old, &old).is_empty());
    }

    #[test]
    fn kinds_round_trip_by_name() {
        for k in ChangeKind::ALL {
            assert_eq!(ChangeKind::parse(k.as_str()), Some(k));
        }
        assert_eq!(ChangeKind::parse("nope"), None);
    }
}
