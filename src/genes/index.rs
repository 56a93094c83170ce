//! The gene index: what every lookup, filter and search reads.
//!
//! A load builds it in the same pass that checks the records (see
//! [`parse`](super::parse)) and stores it, serialized, as one more part of
//! the data-set version (`<p>:data:<version>:index`), so the swap that
//! publishes the records publishes their index with them, and a failed load
//! leaves the old records and the old index. Each api process keeps the
//! current version's index in memory ([`Catalog`](super::Catalog)).
//!
//! Every stored field is indexed: its distinct values, lowercased (all
//! matching is case-insensitive), sorted, each with the records that have
//! it. Sorted terms answer exact terms and prefix wildcards by binary
//! search; other wildcards scan one field's terms.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

/// Bumped when the serialized layout changes: an index of another format is
/// rebuilt from the version's records instead of being read.
pub const INDEX_FORMAT: u32 = 1;

/// The columns of HGNC's own `hgnc_complete_set.txt`, in its order. A data
/// set's fields are listed (and its TSV written) in this order, then any
/// other field in the order first met.
pub const HGNC_COLUMNS: &[&str] = &[
    "hgnc_id",
    "symbol",
    "name",
    "locus_group",
    "locus_type",
    "status",
    "location",
    "location_sortable",
    "alias_symbol",
    "alias_name",
    "prev_symbol",
    "prev_name",
    "gene_group",
    "gene_group_id",
    "date_approved_reserved",
    "date_symbol_changed",
    "date_name_changed",
    "date_modified",
    "entrez_id",
    "ensembl_gene_id",
    "vega_id",
    "ucsc_id",
    "ena",
    "refseq_accession",
    "ccds_id",
    "uniprot_ids",
    "pubmed_id",
    "mgd_id",
    "rgd_id",
    "lsdb",
    "cosmic",
    "omim_id",
    "mirbase",
    "homeodb",
    "snornabase",
    "bioparadigms_slc",
    "orphanet",
    "pseudogene.org",
    "horde_id",
    "merops",
    "imgt",
    "iuphar",
    "kznf_gene_catalog",
    "mamit-trnadb",
    "cd",
    "lncrnadb",
    "enzyme_id",
    "intermediate_filament_db",
    "rna_central_ids",
    "lncipedia",
    "gtrnadb",
    "agr",
    "mane_select",
    "gencc",
];

/// The derived field: the chromosome a record's `location` names, read as
/// the chromosome plot reads it.
pub const CHROMOSOME: &str = "chromosome";

/// Fields whose value counts `GET /info` reports.
const FACETS: [&str; 3] = ["locus_group", "locus_type", "status"];

/// One record's number in the data set: its position in the source.
pub type DocId = u32;

/// The index of one data-set version.
#[derive(Debug, Serialize, Deserialize)]
pub struct GeneIndex {
    format: u32,
    /// The version it indexes (set when read, not stored: the key says it).
    #[serde(skip)]
    pub version: String,
    /// `(hgnc_id, symbol)` of each record, by [`DocId`].
    pub docs: Vec<Doc>,
    /// Every field some record has, in TSV column order.
    pub fields: Vec<FieldInfo>,
    /// The terms of `fields[i]`, at the same position.
    terms: Vec<Terms>,
    /// The derived `chromosome` field.
    chromosome: Terms,
    /// Counts of each value of `locus_group`, `locus_type`, `status`, as written.
    pub facets: BTreeMap<String, Vec<(String, u64)>>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Doc {
    pub hgnc_id: String,
    pub symbol: String,
}

/// A stored field, the JSON types its values have, how many records have it.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FieldInfo {
    pub name: String,
    /// `string`, `number`, `array`, ... (more than one when records differ).
    pub types: Vec<String>,
    pub records: u64,
}

/// One field's distinct values (lowercased, sorted), each with its records
/// (ascending, so in source order).
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Terms {
    terms: Vec<String>,
    postings: Vec<Vec<DocId>>,
}

impl Terms {
    /// The records whose value is `term` (already lowercased).
    pub fn exact(&self, term: &str) -> &[DocId] {
        match self.terms.binary_search_by(|t| t.as_str().cmp(term)) {
            Ok(i) => &self.postings[i],
            Err(_) => &[],
        }
    }
    /// Every `(term, records)` whose term starts with `prefix`.
    pub fn with_prefix<'s>(
        &'s self,
        prefix: &'s str,
    ) -> impl Iterator<Item = (&'s str, &'s [DocId])> + 's {
        let start = self.terms.partition_point(|t| t.as_str() < prefix);
        self.terms[start..]
            .iter()
            .zip(&self.postings[start..])
            .take_while(move |(t, _)| t.starts_with(prefix))
            .map(|(t, p)| (t.as_str(), p.as_slice()))
    }
    pub fn len(&self) -> usize {
        self.terms.len()
    }
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }
}

impl GeneIndex {
    /// The terms of a field (a stored one, or `chromosome`), or None when no
    /// record has it.
    pub fn field(&self, name: &str) -> Option<&Terms> {
        if name == CHROMOSOME {
            return Some(&self.chromosome);
        }
        self.fields
            .iter()
            .position(|f| f.name == name)
            .map(|i| &self.terms[i])
    }
    /// Every field a filter or a `field:term` may name.
    pub fn searchable(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.fields.iter().map(|f| f.name.as_str()).collect();
        names.push(CHROMOSOME);
        names
    }
    pub fn len(&self) -> usize {
        self.docs.len()
    }
    pub fn is_empty(&self) -> bool {
        self.docs.is_empty()
    }
    pub fn to_bytes(&self) -> Vec<u8> {
        // Serializing plain vectors and strings to memory cannot fail.
        postcard::to_allocvec(self).expect("the index serializes")
    }
    /// Reads a stored index; None when it is of another format (or damaged).
    pub fn from_bytes(bytes: &[u8], version: &str) -> Option<Self> {
        let mut index: Self = postcard::from_bytes(bytes).ok()?;
        if index.format != INDEX_FORMAT {
            return None;
        }
        index.version = version.to_string();
        Some(index)
    }
    /// Builds the index of a stored version's records (`[...]`, the blob):
    /// for a version stored before indexes existed, or of an older format.
    pub fn from_blob(blob: &[u8], version: &str) -> Result<Self, String> {
        let docs: Vec<Record> = serde_json::from_slice(blob).map_err(|e| e.to_string())?;
        let mut builder = IndexBuilder::default();
        for doc in &docs {
            builder.add(doc);
        }
        let mut index = builder.finish();
        index.version = version.to_string();
        Ok(index)
    }
}

/// One value of a record, borrowed from the source where it can be.
#[derive(Debug)]
pub enum Value<'a> {
    Str(Cow<'a, str>),
    /// A number, as its JSON text.
    Num(String),
    Bool(bool),
    Null,
    List(Vec<Value<'a>>),
    Object,
}

impl Value<'_> {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
    fn json_type(&self) -> u8 {
        match self {
            Value::Str(_) => 0,
            Value::Num(_) => 1,
            Value::List(_) => 2,
            Value::Bool(_) => 3,
            Value::Null => 4,
            Value::Object => 5,
        }
    }
}

const TYPE_NAMES: [&str; 6] = ["string", "number", "array", "boolean", "null", "object"];

/// One record: its fields in source order.
#[derive(Debug, Default)]
pub struct Record<'a>(pub Vec<(Cow<'a, str>, Value<'a>)>);

impl<'a> Record<'a> {
    pub fn get(&self, name: &str) -> Option<&Value<'a>> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v)
    }
    pub fn get_str(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(Value::as_str)
    }
}

/// Collects the index while the load checks each record.
#[derive(Default)]
pub struct IndexBuilder {
    docs: Vec<Doc>,
    fields: Vec<FieldBuild>,
    positions: HashMap<String, usize>,
    chromosome: HashMap<String, Vec<DocId>>,
    facets: HashMap<&'static str, HashMap<String, u64>>,
}

struct FieldBuild {
    name: String,
    types: [bool; TYPE_NAMES.len()],
    records: u64,
    terms: HashMap<String, Vec<DocId>>,
}

fn post(postings: &mut Vec<DocId>, doc: DocId) {
    // A list may repeat a value: one posting per record.
    if postings.last() != Some(&doc) {
        postings.push(doc);
    }
}

impl IndexBuilder {
    pub fn add(&mut self, record: &Record<'_>) {
        let doc = self.docs.len() as DocId;
        self.docs.push(Doc {
            hgnc_id: record.get_str("hgnc_id").unwrap_or_default().to_string(),
            symbol: record.get_str("symbol").unwrap_or_default().to_string(),
        });
        for (name, value) in &record.0 {
            let i = match self.positions.get(name.as_ref()) {
                Some(&i) => i,
                None => {
                    self.fields.push(FieldBuild {
                        name: name.to_string(),
                        types: Default::default(),
                        records: 0,
                        terms: HashMap::new(),
                    });
                    self.positions
                        .insert(name.to_string(), self.fields.len() - 1);
                    self.fields.len() - 1
                }
            };
            let field = &mut self.fields[i];
            field.types[value.json_type() as usize] = true;
            field.records += 1;
            let mut add_term = |v: &Value<'_>| {
                let term = match v {
                    Value::Str(s) => s.to_lowercase(),
                    Value::Num(n) => n.clone(),
                    Value::Bool(b) => b.to_string(),
                    _ => return,
                };
                post(field.terms.entry(term).or_default(), doc);
            };
            match value {
                Value::List(items) => items.iter().for_each(&mut add_term),
                v => add_term(v),
            }
            if let Some(f) = FACETS.iter().find(|f| **f == name.as_ref()) {
                if let Some(s) = value.as_str() {
                    *self
                        .facets
                        .entry(f)
                        .or_default()
                        .entry(s.to_string())
                        .or_default() += 1;
                }
            }
        }
        if let Some(chr) = record
            .get_str("location")
            .and_then(crate::plot::chromosome_of)
        {
            post(self.chromosome.entry(chr.to_lowercase()).or_default(), doc);
        }
    }

    pub fn finish(self) -> GeneIndex {
        fn sorted(map: HashMap<String, Vec<DocId>>) -> Terms {
            let mut pairs: Vec<(String, Vec<DocId>)> = map.into_iter().collect();
            pairs.sort_unstable_by(|a, b| a.0.cmp(&b.0));
            let (terms, postings) = pairs.into_iter().unzip();
            Terms { terms, postings }
        }
        let column = |name: &str| {
            HGNC_COLUMNS
                .iter()
                .position(|c| *c == name)
                .unwrap_or(HGNC_COLUMNS.len())
        };
        let mut fields: Vec<(usize, FieldBuild)> = self.fields.into_iter().enumerate().collect();
        // HGNC's columns first, in its order; others as first met.
        fields.sort_by_key(|(seen, f)| (column(&f.name), *seen));
        let mut infos = Vec::with_capacity(fields.len());
        let mut terms = Vec::with_capacity(fields.len());
        for (_, f) in fields {
            infos.push(FieldInfo {
                types: TYPE_NAMES
                    .iter()
                    .zip(f.types)
                    .filter(|(_, on)| *on)
                    .map(|(t, _)| t.to_string())
                    .collect(),
                name: f.name,
                records: f.records,
            });
            terms.push(sorted(f.terms));
        }
        let facets = self
            .facets
            .into_iter()
            .map(|(f, counts)| {
                let mut counts: Vec<(String, u64)> = counts.into_iter().collect();
                counts.sort_by(|(a, na), (b, nb)| nb.cmp(na).then_with(|| a.cmp(b)));
                (f.to_string(), counts)
            })
            .collect();
        GeneIndex {
            format: INDEX_FORMAT,
            version: String::new(),
            docs: self.docs,
            fields: infos,
            terms,
            chromosome: sorted(self.chromosome),
            facets,
        }
    }
}

// Deserializing a record field by field, borrowing strings from the source
// (HGNC's strings rarely hold escapes): one pass, few allocations.

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Value::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Value::Str(Cow::Owned(v.to_string())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Value::Str(Cow::Owned(v)))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Value::Num(v.to_string()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Value::Num(v.to_string()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Value::Num(v.to_string()))
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(2));
        while let Some(v) = seq.next_element()? {
            items.push(v);
        }
        Ok(Value::List(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map
            .next_entry::<de::IgnoredAny, de::IgnoredAny>()?
            .is_some()
        {}
        Ok(Value::Object)
    }
}

impl<'de> Deserialize<'de> for Value<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
}

/// A key, borrowed when it holds no escape.
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(v.to_string())))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

impl<'de> Deserialize<'de> for Record<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct RecordVisitor;
        impl<'de> Visitor<'de> for RecordVisitor {
            type Value = Record<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(24));
                while let Some((k, v)) = map.next_entry::<Key<'de>, Value<'de>>()? {
                    fields.push((k.0, v));
                }
                Ok(Record(fields))
            }
        }
        d.deserialize_map(RecordVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index_of(json: &str) -> GeneIndex {
        GeneIndex::from_blob(json.as_bytes(), "v1").unwrap()
    }

    #[test]
    fn every_field_is_indexed_case_insensitively_with_its_types() {
        let index = index_of(
            r#"[{"hgnc_id":"HGNC:5","symbol":"A1BG","alias_symbol":["ABG","GAB","ABG"],"pubmed_id":[2591067],"location":"19q13.43","locus_group":"protein-coding gene"},
                {"hgnc_id":"HGNC:7","symbol":"A2M","prev_symbol":["CPAMD5"],"pubmed_id":"x","location":"12p13.31","locus_group":"protein-coding gene"}]"#,
        );
        assert_eq!(index.len(), 2);
        assert_eq!(index.docs[1].symbol, "A2M");
        assert_eq!(index.field("symbol").unwrap().exact("a1bg"), [0]);
        assert_eq!(index.field("alias_symbol").unwrap().exact("abg"), [0]);
        assert_eq!(index.field("pubmed_id").unwrap().exact("2591067"), [0]);
        assert_eq!(index.field("chromosome").unwrap().exact("12"), [1]);
        assert_eq!(
            index
                .field("locus_group")
                .unwrap()
                .exact("protein-coding gene"),
            [0, 1]
        );
        assert!(index.field("symbol").unwrap().exact("A1BG").is_empty());
        assert!(index.field("nope").is_none());
        let names: Vec<&str> = index.fields.iter().map(|f| f.name.as_str()).collect();
        // HGNC's column order, not the records' order.
        assert_eq!(
            names,
            [
                "hgnc_id",
                "symbol",
                "locus_group",
                "location",
                "alias_symbol",
                "prev_symbol",
                "pubmed_id"
            ]
        );
        let pubmed = index.fields.iter().find(|f| f.name == "pubmed_id").unwrap();
        assert_eq!(pubmed.types, ["string", "array"]);
        assert_eq!(pubmed.records, 2);
        assert_eq!(
            index.facets["locus_group"],
            [("protein-coding gene".to_string(), 2)]
        );
        let prefixed: Vec<&str> = index
            .field("symbol")
            .unwrap()
            .with_prefix("a")
            .map(|(t, _)| t)
            .collect();
        assert_eq!(prefixed, ["a1bg", "a2m"]);
    }

    #[test]
    fn the_index_round_trips_and_refuses_other_formats() {
        let index = index_of(r#"[{"hgnc_id":"HGNC:5","symbol":"A1BG"}]"#);
        let bytes = index.to_bytes();
        let back = GeneIndex::from_bytes(&bytes, "v2").unwrap();
        assert_eq!(back.version, "v2");
        assert_eq!(back.field("symbol").unwrap().exact("a1bg"), [0]);
        assert!(GeneIndex::from_bytes(b"\x07junk", "v2").is_none());
        let mut other = index_of(r#"[{"hgnc_id":"HGNC:5"}]"#);
        other.format = INDEX_FORMAT + 1;
        assert!(GeneIndex::from_bytes(&other.to_bytes(), "v").is_none());
    }
}
