//! HGNC's `withdrawn.txt`: every withdrawn, merged and split id of a
//! release, and where each now points.
//!
//! The file is tab-separated with HGNC's header
//! `HGNC_ID  STATUS  WITHDRAWN_SYMBOL  MERGED_INTO_REPORT(S) (i.e HGNC_ID|SYMBOL|STATUS)`;
//! the last column is empty for `Entry Withdrawn`, and otherwise lists one
//! target (merged into) or several (split into), separated by `, `, each
//! `HGNC_ID|SYMBOL|STATUS` as of that release. A target can itself be
//! withdrawn, so answers follow the chain.

use std::collections::{HashMap, HashSet};

use serde::Serialize;

use super::{GeneIndex, HgncId, LoadError};

const HEADER: [&str; 3] = ["HGNC_ID", "STATUS", "WITHDRAWN_SYMBOL"];
/// Longest chain followed (HGNC's real chains are one or two links long).
const MAX_CHAIN: usize = 16;

/// How an id left the approved set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub enum WithdrawnStatus {
    #[serde(rename = "Entry Withdrawn")]
    EntryWithdrawn,
    #[serde(rename = "Merged/Split")]
    MergedSplit,
}

/// One row of the file.
#[derive(Debug, Clone)]
pub struct Entry {
    pub hgnc_id: String,
    pub status: WithdrawnStatus,
    pub symbol: String,
    /// `(hgnc_id, symbol, status)` of each target, as the file gives them.
    pub targets: Vec<(String, String, String)>,
}

/// A parsed withdrawn file.
#[derive(Debug, Default)]
pub struct Withdrawn {
    pub entries: Vec<Entry>,
    by_id: HashMap<String, usize>,
    /// Lowercased withdrawn symbol -> entries.
    by_symbol: HashMap<String, Vec<usize>>,
}

/// Counts a load reports of the file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WithdrawnCounts {
    pub records: u64,
    pub entry_withdrawn: u64,
    pub merged_split: u64,
}

impl Withdrawn {
    /// Parses the file; any row that is not HGNC's layout fails the whole
    /// file, naming the line, so a load never keeps half a list.
    pub fn parse(body: &[u8]) -> Result<Self, LoadError> {
        let bad = |line: usize, why: String| {
            LoadError::Invalid(format!(
                "the withdrawn file is not HGNC's withdrawn.txt: line {line}: {why}"
            ))
        };
        let text = std::str::from_utf8(body).map_err(|e| bad(0, format!("not UTF-8: {e}")))?;
        let mut lines = text.lines().enumerate();
        let header = lines.next().map(|(_, l)| l).unwrap_or("");
        let columns: Vec<&str> = header.split('\t').collect();
        if columns.len() < 4 || columns[..3] != HEADER {
            return Err(bad(
                1,
                format!(
                    "the header must start with {}, got {:?}",
                    HEADER.join("\\t"),
                    header.chars().take(80).collect::<String>()
                ),
            ));
        }
        let mut out = Withdrawn::default();
        for (n, line) in lines {
            let line_no = n + 1;
            if line.trim().is_empty() {
                continue;
            }
            let cols: Vec<&str> = line.split('\t').collect();
            if cols.len() < 3 || cols.len() > 4 {
                return Err(bad(line_no, format!("{} columns, expected 4", cols.len())));
            }
            let id: HgncId = cols[0].parse().map_err(|e| bad(line_no, e))?;
            let status = match cols[1] {
                "Entry Withdrawn" => WithdrawnStatus::EntryWithdrawn,
                "Merged/Split" => WithdrawnStatus::MergedSplit,
                other => {
                    return Err(bad(
                        line_no,
                        format!(
                            "status {other:?} is neither \"Entry Withdrawn\" nor \"Merged/Split\""
                        ),
                    ))
                }
            };
            let symbol = cols[2].trim();
            if symbol.is_empty() {
                return Err(bad(line_no, "no withdrawn symbol".into()));
            }
            let mut targets = Vec::new();
            for t in cols
                .get(3)
                .map(|c| c.trim())
                .filter(|c| !c.is_empty())
                .into_iter()
                .flat_map(|c| c.split(", "))
            {
                let parts: Vec<&str> = t.split('|').collect();
                if parts.len() != 3 {
                    return Err(bad(
                        line_no,
                        format!("target {t:?} is not HGNC_ID|SYMBOL|STATUS"),
                    ));
                }
                let tid: HgncId = parts[0].parse().map_err(|e| bad(line_no, e))?;
                targets.push((tid.to_string(), parts[1].to_string(), parts[2].to_string()));
            }
            // HGNC's own file has a Merged/Split row or two without a
            // target (HGNC:4744 H2AZ): kept, and answered as pointing nowhere.
            if out
                .by_id
                .insert(id.to_string(), out.entries.len())
                .is_some()
            {
                return Err(bad(line_no, format!("{id} is listed twice")));
            }
            out.by_symbol
                .entry(symbol.to_lowercase())
                .or_default()
                .push(out.entries.len());
            out.entries.push(Entry {
                hgnc_id: id.to_string(),
                status,
                symbol: symbol.to_string(),
                targets,
            });
        }
        Ok(out)
    }

    pub fn counts(&self) -> WithdrawnCounts {
        let merged = self
            .entries
            .iter()
            .filter(|e| e.status == WithdrawnStatus::MergedSplit)
            .count() as u64;
        WithdrawnCounts {
            records: self.entries.len() as u64,
            entry_withdrawn: self.entries.len() as u64 - merged,
            merged_split: merged,
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn get(&self, id: &str) -> Option<&Entry> {
        self.by_id.get(id).map(|&i| &self.entries[i])
    }

    /// Entries whose withdrawn symbol is `symbol` (any case).
    pub fn by_symbol(&self, symbol: &str) -> impl Iterator<Item = &Entry> {
        self.by_symbol
            .get(&symbol.to_lowercase())
            .into_iter()
            .flatten()
            .map(|&i| &self.entries[i])
    }

    /// Entries whose withdrawn symbol starts with or matches `pred`.
    pub fn symbols_matching<'s>(
        &'s self,
        pred: impl Fn(&str) -> bool + 's,
    ) -> impl Iterator<Item = &'s Entry> + 's {
        self.entries
            .iter()
            .filter(move |e| pred(&e.symbol.to_lowercase()))
    }

    /// What `entry` means now in the release whose approved genes `index`
    /// holds: its targets, each followed through withdrawn ids to an
    /// approved gene (or to where the chain ends).
    pub fn resolve(&self, entry: &Entry, index: &GeneIndex) -> WithdrawnGene {
        let mut current = Vec::new();
        for (tid, tsym, tstatus) in &entry.targets {
            let mut path = vec![entry.hgnc_id.clone(), tid.clone()];
            let mut seen: HashSet<String> = path.iter().cloned().collect();
            let (mut id, mut symbol, mut status) = (tid.clone(), tsym.clone(), tstatus.clone());
            loop {
                if let Some(d) = index.doc_of_id(&id) {
                    symbol = index.docs[d as usize].symbol.clone();
                    status = "Approved".into();
                    break;
                }
                let Some(next) = self.get(&id) else { break };
                status = match next.status {
                    WithdrawnStatus::EntryWithdrawn => "Entry Withdrawn".into(),
                    WithdrawnStatus::MergedSplit => "Merged/Split".into(),
                };
                symbol = next.symbol.clone();
                // Only a merge is followed: a split target's own split would
                // fan out, and HGNC's file has none.
                if next.targets.len() != 1 || path.len() >= MAX_CHAIN {
                    break;
                }
                let (nid, nsym, nstatus) = &next.targets[0];
                if !seen.insert(nid.clone()) {
                    break;
                }
                path.push(nid.clone());
                (id, symbol, status) = (nid.clone(), nsym.clone(), nstatus.clone());
            }
            current.push(Target {
                hgnc_id: id,
                symbol,
                status,
                path,
            });
        }
        WithdrawnGene {
            hgnc_id: entry.hgnc_id.clone(),
            status: entry.status,
            kind: match (entry.status, entry.targets.len()) {
                (WithdrawnStatus::EntryWithdrawn, _) | (_, 0) => WithdrawnKind::Withdrawn,
                (_, 1) => WithdrawnKind::Merged,
                _ => WithdrawnKind::Split,
            },
            withdrawn_symbol: entry.symbol.clone(),
            current,
        }
    }
}

/// How a withdrawn id ended: withdrawn outright, merged into one gene, or split into several.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WithdrawnKind {
    Withdrawn,
    Merged,
    Split,
}

/// A withdrawn id and where it points now.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct WithdrawnGene {
    pub hgnc_id: String,
    /// HGNC's status: `Entry Withdrawn` or `Merged/Split`.
    pub status: WithdrawnStatus,
    pub kind: WithdrawnKind,
    pub withdrawn_symbol: String,
    /// The genes it now points to (empty when withdrawn outright), chains followed.
    pub current: Vec<Target>,
}

/// Where a merged or split id leads.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Target {
    pub hgnc_id: String,
    pub symbol: String,
    /// `Approved` when the chain ends at a gene of the release; otherwise
    /// the status the chain ended on.
    pub status: String,
    /// The ids from the withdrawn one to this one, in order.
    pub path: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str =
        "HGNC_ID\tSTATUS\tWITHDRAWN_SYMBOL\tMERGED_INTO_REPORT(S) (i.e HGNC_ID|SYMBOL|STATUS)\n\
        HGNC:1\tEntry Withdrawn\tA12M1\t\n\
        HGNC:6\tMerged/Split\tGXP1\tHGNC:12469|UBA1|Approved\n\
        HGNC:9\tMerged/Split\tOLD9\tHGNC:6|GXP1|Merged/Split\n\
        HGNC:20\tMerged/Split\tSPL\tHGNC:5|A1BG|Approved, HGNC:12469|UBA1|Approved\n";

    #[test]
    fn parses_hgnc_layout_and_counts() {
        let w = Withdrawn::parse(FILE.as_bytes()).unwrap();
        assert_eq!(w.len(), 4);
        assert_eq!(
            w.counts(),
            WithdrawnCounts {
                records: 4,
                entry_withdrawn: 1,
                merged_split: 3
            }
        );
        assert_eq!(w.get("HGNC:20").unwrap().targets.len(), 2);
        assert_eq!(w.by_symbol("gxp1").next().unwrap().hgnc_id, "HGNC:6");
    }

    #[test]
    fn rejects_what_is_not_hgnc_layout() {
        for (body, want) in [
            ("", "header"),
            ("a\tb\tc\td\n", "header"),
            ("HGNC_ID\tSTATUS\tWITHDRAWN_SYMBOL\tX\nHGNC:1\tGone\tA\t\n", "status"),
            ("HGNC_ID\tSTATUS\tWITHDRAWN_SYMBOL\tX\nX:1\tEntry Withdrawn\tA\t\n", "HGNC:<digits>"),
            ("HGNC_ID\tSTATUS\tWITHDRAWN_SYMBOL\tX\nHGNC:1\tMerged/Split\tA\tHGNC:2|B\n", "HGNC_ID|SYMBOL|STATUS"),
            ("HGNC_ID\tSTATUS\tWITHDRAWN_SYMBOL\tX\nHGNC:1\tEntry Withdrawn\tA\t\nHGNC:1\tEntry Withdrawn\tA\t\n", "twice"),
        ] {
            let e = Withdrawn::parse(body.as_bytes()).unwrap_err().to_string();
            assert!(e.contains(want), "{body:?}: {e}");
        }
    }
}
