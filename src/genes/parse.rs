//! Parsing `hgnc_complete_set.json` into a [`DataSet`]: one pass that checks
//! every record, no record copied. (The records' index is built from the
//! same bytes beside it: [`GeneIndex::of_source`](super::GeneIndex::of_source).)

use std::borrow::Cow;
use std::ops::Range;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::{HgncId, LoadError};
use crate::plot::{PlotStats, StatsBuilder};

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
    /// Each record's [`Digest`], in source order: the name it is stored under.
    pub digests: Vec<Digest>,
    pub stats: PlotStats,
    /// The newest `date_modified` of any record (`YYYY-MM-DD`).
    pub newest_date_modified: Option<String>,
}

/// A record's name in the store: the first 16 bytes of its SHA-256. The
/// same record in two releases is stored once.
pub type Digest = [u8; 16];

pub fn digest(record: &[u8]) -> Digest {
    use sha2::{Digest as _, Sha256};
    let full = Sha256::digest(record);
    let mut d = [0u8; 16];
    d.copy_from_slice(&full[..16]);
    d
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
    /// Length of `[record,record,...]`, the body GET /data sends.
    pub fn data_bytes(&self) -> u64 {
        let records: usize = self.records.iter().map(|(_, r)| r.len()).sum();
        (records + self.records.len().saturating_sub(1) + 2) as u64
    }
    /// The complete set's bytes as fetched.
    pub fn body(&self) -> &[u8] {
        &self.body
    }
}

#[derive(Deserialize)]
pub(super) struct SourceFile<'a> {
    #[serde(borrow)]
    pub response: SourceResponse<'a>,
}

#[derive(Deserialize)]
pub(super) struct SourceResponse<'a> {
    #[serde(borrow)]
    pub docs: &'a RawValue,
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
    #[serde(default, borrow)]
    date_modified: Option<Cow<'a, str>>,
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
    let mut digests = Vec::with_capacity(docs.len());
    let mut newest: Option<String> = None;
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
        if let Some(m) = fields.date_modified.as_deref() {
            if newest.as_deref().is_none_or(|n| m > n) {
                newest = Some(m.to_string());
            }
        }
        digests.push(digest(doc.get().as_bytes()));
        records.push((id.0, span(&body, doc.get())));
    }
    ids.push(b']');
    let docs = span(&body, docs_raw.get());
    Ok(DataSet {
        body,
        docs,
        records,
        ids,
        digests,
        stats: stats.finish(),
        newest_date_modified: newest,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
