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

use rustc_hash::FxHashMap;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

/// Bumped when the serialized layout changes: an index of another format is
/// rebuilt from the version's records instead of being read.
pub const INDEX_FORMAT: u32 = 2;

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

/// No record, in [`GeneIndex`]'s table by HGNC number.
const NO_DOC: DocId = DocId::MAX;

/// The number of an id written `HGNC:<n>` (any case), with no leading zero
/// (the terms hold `hgnc:5`, never `hgnc:05`) and below ten million (HGNC
/// is at 130,000; a table by number must stay small whatever a record says).
fn hgnc_number(id: &str) -> Option<usize> {
    let digits = id
        .get(..5)?
        .eq_ignore_ascii_case("hgnc:")
        .then(|| &id[5..])?;
    if digits.is_empty() || digits.len() > 7 || digits.starts_with('0') {
        return None;
    }
    digits
        .bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| digits.parse().ok())?
}

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
    /// [`DocId`] by HGNC number (`HGNC:5` is 5), made on the first read by
    /// id: a point read's lookup is then one load, where the binary search
    /// over every id (with a lowercase copy of the asked one) was the largest
    /// piece of gene-api's own CPU in a profile of point reads.
    #[serde(skip)]
    by_number: std::sync::OnceLock<Vec<DocId>>,
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
/// (ascending, so in source order). Kept flat, a few vectors a field, not a
/// string and a vector per term: a third of the memory, and read back from
/// Redis in a few allocations.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Terms {
    /// Every term, one after the other.
    text: String,
    /// Where term `i` ends in `text` (it starts where term `i - 1` ends).
    ends: Vec<u32>,
    /// Every term's records, one list after the other.
    postings: Vec<DocId>,
    /// Where term `i`'s records end in `postings`.
    posting_ends: Vec<u32>,
}

impl Terms {
    fn term(&self, i: usize) -> &str {
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        &self.text[start..self.ends[i] as usize]
    }
    fn records(&self, i: usize) -> &[DocId] {
        let start = if i == 0 {
            0
        } else {
            self.posting_ends[i - 1] as usize
        };
        &self.postings[start..self.posting_ends[i] as usize]
    }
    /// The first term not less than `term`.
    fn lower_bound(&self, term: &str) -> usize {
        let (mut lo, mut hi) = (0, self.ends.len());
        while lo < hi {
            let mid = (lo + hi) / 2;
            if self.term(mid) < term {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }
    /// The records whose value is `term` (already lowercased).
    pub fn exact(&self, term: &str) -> &[DocId] {
        let i = self.lower_bound(term);
        if i < self.len() && self.term(i) == term {
            self.records(i)
        } else {
            &[]
        }
    }
    /// Every `(term, records)` whose term starts with `prefix`.
    pub fn with_prefix<'s>(
        &'s self,
        prefix: &'s str,
    ) -> impl Iterator<Item = (&'s str, &'s [DocId])> + 's {
        (self.lower_bound(prefix)..self.len())
            .map(move |i| (self.term(i), self.records(i)))
            .take_while(move |(t, _)| t.starts_with(prefix))
    }
    pub fn len(&self) -> usize {
        self.ends.len()
    }
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }
    /// From every `(term, record)` met. Sorting a vector, rather than
    /// filling a hash map, keeps memory access sequential; most comparisons
    /// are settled by the terms' first 16 bytes, kept beside each pair.
    fn from_list(list: TermList) -> Self {
        let TermList { arena, mut pairs } = list;
        let term = |off: u32, len: u32| &arena[off as usize..(off + len) as usize];
        pairs.sort_unstable_by(|a, b| {
            a.0.cmp(&b.0)
                .then_with(|| term(a.1, a.2).cmp(term(b.1, b.2)))
                .then(a.3.cmp(&b.3))
        });
        let mut t = Terms {
            text: String::new(),
            ends: Vec::new(),
            postings: Vec::with_capacity(pairs.len()),
            posting_ends: Vec::new(),
        };
        let mut last: Option<&str> = None;
        for &(_, off, len, doc) in &pairs {
            let this = term(off, len);
            if last != Some(this) {
                if last.is_some() {
                    t.posting_ends.push(t.postings.len() as u32);
                }
                t.text.push_str(this);
                t.ends.push(t.text.len() as u32);
                last = Some(this);
            } else if t.postings.last() == Some(&doc) {
                // A list that repeats a value: one posting per record.
                continue;
            }
            t.postings.push(doc);
        }
        if last.is_some() {
            t.posting_ends.push(t.postings.len() as u32);
        }
        t
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
    /// The record whose `hgnc_id` is `id` (as written: `HGNC:5`).
    pub fn doc_of_id(&self, id: &str) -> Option<DocId> {
        if let Some(n) = hgnc_number(id) {
            let table = self.by_number.get_or_init(|| {
                let mut t = Vec::new();
                for (doc, d) in self.docs.iter().enumerate() {
                    if let Some(n) = hgnc_number(&d.hgnc_id) {
                        if t.len() <= n {
                            t.resize(n + 1, NO_DOC);
                        }
                        // The first of two records with one id, as the terms give.
                        if t[n] == NO_DOC {
                            t[n] = doc as DocId;
                        }
                    }
                }
                t
            });
            return table.get(n).copied().filter(|&d| d != NO_DOC);
        }
        // Not of the usual form: the terms say, as for any other field.
        self.field("hgnc_id")?
            .exact(&id.to_lowercase())
            .first()
            .copied()
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
        let mut index = Self::build(blob, &[], &|| false)?;
        index.version = version.to_string();
        Ok(index)
    }

    /// Builds the index of a source file (`{"response": {"docs": [...]}}`),
    /// as a load does beside its check of the records. Gives up (with an
    /// error) as soon as `abandoned` says the load has failed anyway.
    pub fn of_source(body: &[u8], abandoned: &dyn Fn() -> bool) -> Result<Self, String> {
        Self::build(body, &["response", "docs"], abandoned)
    }

    /// Reads the records at `path` (object keys; none: the bytes are the
    /// array itself) into a builder, one at a time.
    fn build(bytes: &[u8], path: &[&str], abandoned: &dyn Fn() -> bool) -> Result<Self, String> {
        let mut builder = IndexBuilder::default();
        let docs = DocsSeed {
            builder: &mut builder,
            abandoned,
        };
        let mut de = serde_json::Deserializer::from_slice(bytes);
        match path {
            [] => de::DeserializeSeed::deserialize(docs, &mut de),
            path => de::DeserializeSeed::deserialize(Nested { path, docs }, &mut de),
        }
        .map_err(|e| e.to_string())?;
        Ok(builder.finish())
    }
}

// Reading the records straight from the source into the builder: one scan
// of the bytes, one record in memory at a time.

/// The array of records: each is parsed and added as it is read.
struct DocsSeed<'b> {
    builder: &'b mut IndexBuilder,
    abandoned: &'b dyn Fn() -> bool,
}

impl<'de> de::DeserializeSeed<'de> for DocsSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for DocsSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of gene records")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut i = 0usize;
        while let Some(record) = seq.next_element::<Record<'de>>()? {
            if i.is_multiple_of(1024) && (self.abandoned)() {
                return Err(de::Error::custom("abandoned"));
            }
            self.builder.add(&record);
            i += 1;
        }
        Ok(())
    }
}

/// The object path (`response`, then `docs`) down to the records; every
/// other member is skipped.
struct Nested<'b, 'p> {
    path: &'p [&'p str],
    docs: DocsSeed<'b>,
}

impl<'de> de::DeserializeSeed<'de> for Nested<'_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Nested<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "an object with {:?}", self.path[0])
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut docs = Some(self.docs);
        while let Some(key) = map.next_key::<Key<'de>>()? {
            match docs.take() {
                Some(seed) if key.0 == self.path[0] => {
                    if self.path.len() == 1 {
                        map.next_value_seed(seed)?;
                    } else {
                        map.next_value_seed(Nested {
                            path: &self.path[1..],
                            docs: seed,
                        })?;
                    }
                }
                other => {
                    docs = other;
                    map.next_value::<de::IgnoredAny>()?;
                }
            }
        }
        match docs {
            None => Ok(()),
            Some(_) => Err(de::Error::missing_field("docs")),
        }
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

/// Collects the index of records, one at a time.
#[derive(Default)]
pub struct IndexBuilder {
    docs: Vec<Doc>,
    fields: Vec<FieldBuild>,
    positions: FxHashMap<String, usize>,
    chromosome: TermList,
    facets: HashMap<&'static str, HashMap<String, u64>>,
}

struct FieldBuild {
    name: String,
    types: [bool; TYPE_NAMES.len()],
    records: u64,
    terms: TermList,
}

/// Every `(term, record)` of one field met so far: the terms, lowercased,
/// one after the other in one string (no allocation per term), and for each
/// `(first 16 bytes as a number, offset, length, record)`.
#[derive(Default)]
struct TermList {
    arena: String,
    pairs: Vec<(u128, u32, u32, DocId)>,
}

impl TermList {
    /// Adds the term written at `arena[start..]`.
    fn close(&mut self, start: usize, doc: DocId) {
        let term = &self.arena.as_bytes()[start..];
        let mut key = [0u8; 16];
        let n = term.len().min(16);
        key[..n].copy_from_slice(&term[..n]);
        let len = (self.arena.len() - start) as u32;
        self.pairs
            .push((u128::from_be_bytes(key), start as u32, len, doc));
    }
    fn push_lowercase(&mut self, s: &str, doc: DocId) {
        let start = self.arena.len();
        if s.is_ascii() {
            self.arena.push_str(s);
            self.arena[start..].make_ascii_lowercase();
        } else {
            self.arena.push_str(&s.to_lowercase());
        }
        self.close(start, doc);
    }
    fn push_as_is(&mut self, s: &str, doc: DocId) {
        let start = self.arena.len();
        self.arena.push_str(s);
        self.close(start, doc);
    }
    fn len(&self) -> usize {
        self.pairs.len()
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
                        terms: TermList::default(),
                    });
                    self.positions
                        .insert(name.to_string(), self.fields.len() - 1);
                    self.fields.len() - 1
                }
            };
            let field = &mut self.fields[i];
            field.types[value.json_type() as usize] = true;
            field.records += 1;
            let mut add_term = |v: &Value<'_>| match v {
                Value::Str(s) => field.terms.push_lowercase(s, doc),
                Value::Num(n) => field.terms.push_as_is(n, doc),
                Value::Bool(b) => field
                    .terms
                    .push_as_is(if *b { "true" } else { "false" }, doc),
                _ => {}
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
            self.chromosome.push_lowercase(chr, doc);
        }
    }

    pub fn finish(self) -> GeneIndex {
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
        let mut all_pairs = Vec::with_capacity(fields.len() + 1);
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
            all_pairs.push(f.terms);
        }
        all_pairs.push(self.chromosome);
        // Sorting the fields' terms is most of the work: two threads share it.
        let mut sorted: Vec<Option<Terms>> = (0..all_pairs.len()).map(|_| None).collect();
        let mut jobs: Vec<(usize, TermList)> = all_pairs.into_iter().enumerate().collect();
        jobs.sort_by_key(|(_, p)| std::cmp::Reverse(p.len()));
        let (mut mine, mut theirs) = (Vec::new(), Vec::new());
        let (mut my_load, mut their_load) = (0, 0);
        for job in jobs {
            if my_load <= their_load {
                my_load += job.1.len();
                mine.push(job);
            } else {
                their_load += job.1.len();
                theirs.push(job);
            }
        }
        let done_there = std::thread::scope(|scope| {
            let there = scope.spawn(move || {
                theirs
                    .into_iter()
                    .map(|(i, p)| (i, Terms::from_list(p)))
                    .collect::<Vec<_>>()
            });
            for (i, p) in mine {
                sorted[i] = Some(Terms::from_list(p));
            }
            there.join()
        });
        match done_there {
            Ok(list) => {
                for (i, t) in list {
                    sorted[i] = Some(t);
                }
            }
            Err(panic) => std::panic::resume_unwind(panic),
        }
        let chromosome = sorted.pop().flatten().unwrap_or_default();
        terms.extend(sorted.into_iter().map(Option::unwrap_or_default));
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
            chromosome,
            facets,
            by_number: Default::default(),
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
    fn an_id_is_found_by_its_number_as_the_terms_find_it() {
        let index = index_of(
            r#"[{"hgnc_id":"HGNC:5","symbol":"A"},{"hgnc_id":"HGNC:130000","symbol":"B"},
                {"hgnc_id":"HGNC:5","symbol":"C"},{"hgnc_id":"HGNC:007","symbol":"D"},
                {"hgnc_id":"custom-1","symbol":"E"}]"#,
        );
        let by_terms = |id: &str| {
            index
                .field("hgnc_id")
                .unwrap()
                .exact(&id.to_lowercase())
                .first()
                .copied()
        };
        for id in [
            "HGNC:5",
            "hgnc:5",
            "HGNC:130000",
            "HGNC:007",
            "HGNC:7",
            "custom-1",
            "HGNC:6",
            "HGNC:",
            "HGNC:05",
            "HGNC:99999999",
            "HGNC:5x",
            "hgnc",
            "",
            "HGNC:-5",
        ] {
            assert_eq!(index.doc_of_id(id), by_terms(id), "{id}");
        }
        // The first of two records with one id, a written leading zero only as written.
        assert_eq!(index.doc_of_id("HGNC:5"), Some(0));
        assert_eq!(index.doc_of_id("HGNC:130000"), Some(1));
        assert_eq!(index.doc_of_id("HGNC:007"), Some(3));
        assert_eq!(index.doc_of_id("HGNC:7"), None);
        assert_eq!(index.doc_of_id("custom-1"), Some(4));
    }

    #[test]
    fn a_source_is_indexed_in_one_scan_and_a_failed_load_stops_it() {
        let source = br#"{"responseHeader": {"status": 0}, "response": {"numFound": 2, "docs": [
            {"hgnc_id": "HGNC:5", "symbol": "A1BG", "alias_symbol": ["ABG"]},
            {"hgnc_id": "HGNC:7", "symbol": "A2M"}], "start": 0}}"#;
        let index = GeneIndex::of_source(source, &|| false).unwrap();
        assert_eq!(index.len(), 2);
        assert_eq!(index.field("symbol").unwrap().exact("a2m"), [1]);
        assert_eq!(index.field("alias_symbol").unwrap().exact("abg"), [0]);
        // The same records as a stored blob give the same index.
        let blob = br#"[{"hgnc_id": "HGNC:5", "symbol": "A1BG", "alias_symbol": ["ABG"]},
            {"hgnc_id": "HGNC:7", "symbol": "A2M"}]"#;
        assert_eq!(
            GeneIndex::from_blob(blob, "v").unwrap().to_bytes(),
            index.to_bytes()
        );
        // Told that the load failed, it stops.
        let e = GeneIndex::of_source(source, &|| true).unwrap_err();
        assert!(e.contains("abandoned"), "{e}");
        for bad in [
            &b"{\"response\": {}}"[..],
            b"[1]",
            b"{\"response\": {\"docs\": [7]}}",
        ] {
            assert!(GeneIndex::of_source(bad, &|| false).is_err());
        }
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
