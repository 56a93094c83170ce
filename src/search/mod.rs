//! Finding genes in a [`GeneIndex`]: `GET /search` queries ([`query`]),
//! the field filters of `GET /genes` and `GET /data`, and the term lookups
//! of `POST /genes/lookup`. Pure functions of the index: no I/O here.

pub mod query;

use std::collections::HashMap;

use serde::Serialize;

use crate::genes::index::{DocId, GeneIndex, Terms};
pub use query::{parse, Query, QueryError};

/// The fields a bare search term (and a lookup by name) looks in.
pub const SYMBOL_FIELDS: [&str; 3] = ["symbol", "alias_symbol", "prev_symbol"];

/// Scores of one match, by how sure it is: an exact approved symbol first,
/// then an exact previous symbol or alias, then wildcard matches by symbol.
fn weight(field: &str, wildcard: bool) -> u32 {
    match (field, wildcard) {
        ("symbol", false) => 100,
        ("alias_symbol" | "prev_symbol", false) => 50,
        (_, false) => 20,
        ("symbol", true) => 10,
        ("alias_symbol" | "prev_symbol", true) => 5,
        (_, true) => 2,
    }
}

/// One gene found.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct SearchDoc {
    pub hgnc_id: String,
    pub symbol: String,
    /// The fields in which it matched.
    pub matched_by: Vec<String>,
    pub score: u32,
}

/// A page of search results.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SearchAnswer {
    /// How many genes match in all.
    #[serde(rename = "numFound")]
    pub num_found: usize,
    pub docs: Vec<SearchDoc>,
    /// With `withdrawn=true`: the withdrawn ids whose withdrawn symbol
    /// matches a bare-term query, and where each points now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub withdrawn: Option<Vec<crate::genes::WithdrawnGene>>,
}

/// Why a query cannot run on this data set.
#[derive(Debug, PartialEq)]
pub struct UnknownField {
    pub at: usize,
    pub field: String,
    pub known: Vec<String>,
}

impl std::fmt::Display for UnknownField {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "at character {}: no field {:?} in the data set; the searchable fields are {}",
            self.at,
            self.field,
            self.known.join(", ")
        )
    }
}

/// Per record: score, and which fields matched (bit i: `fields[i]`).
type Hits = HashMap<DocId, (u32, u128)>;

struct Eval<'i> {
    index: &'i GeneIndex,
    /// Field names by bit: the data set's order, so `matched_by` follows it.
    fields: Vec<&'i str>,
}

/// `*` matches any run of characters; everything else itself.
pub fn glob(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && p[pi] != b'*' && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// The records with a term matching `pattern` (lowercased) in one field's terms.
fn wildcard<'t>(terms: &'t Terms, pattern: &'t str) -> impl Iterator<Item = &'t [DocId]> + 't {
    // The literal part before the first `*` narrows the terms by binary search.
    let prefix = &pattern[..pattern.find('*').unwrap_or(pattern.len())];
    terms
        .with_prefix(prefix)
        .filter(move |(t, _)| glob(pattern, t))
        .map(|(_, p)| p)
}

impl<'i> Eval<'i> {
    fn bit(&mut self, field: &'i str) -> u128 {
        match self.fields.iter().position(|f| *f == field) {
            Some(i) if i < 128 => 1 << i,
            _ => 0,
        }
    }

    fn run(&mut self, q: &Query) -> Hits {
        match q {
            Query::Term(t) => {
                let mut hits = Hits::new();
                let fields: Vec<&'i str> = match &t.field {
                    Some(f) => self
                        .index
                        .searchable()
                        .into_iter()
                        .filter(|s| *s == f.as_str())
                        .collect(),
                    None => SYMBOL_FIELDS.to_vec(),
                };
                for field in fields {
                    let Some(terms) = self.index.field(field) else {
                        continue;
                    };
                    let (score, bit) = (weight(field, t.wildcard), self.bit(field));
                    let mut add = |docs: &[DocId]| {
                        for d in docs {
                            let e = hits.entry(*d).or_insert((0, 0));
                            e.0 = e.0.max(score);
                            e.1 |= bit;
                        }
                    };
                    if t.wildcard {
                        wildcard(terms, &t.text).for_each(&mut add);
                    } else {
                        add(terms.exact(&t.text));
                    }
                }
                hits
            }
            Query::And(a, b) => {
                // `x AND NOT y`: a difference, not a complement of everything.
                match (a.as_ref(), b.as_ref()) {
                    (x, Query::Not(y)) | (Query::Not(y), x) if !matches!(x, Query::Not(_)) => {
                        let mut keep = self.run(x);
                        let drop = self.run(y);
                        keep.retain(|d, _| !drop.contains_key(d));
                        keep
                    }
                    _ => {
                        let (left, right) = (self.run(a), self.run(b));
                        let (small, large) = if left.len() <= right.len() {
                            (left, right)
                        } else {
                            (right, left)
                        };
                        small
                            .into_iter()
                            .filter_map(|(d, (s, m))| {
                                large.get(&d).map(|(s2, m2)| (d, (s + s2, m | m2)))
                            })
                            .collect()
                    }
                }
            }
            Query::Or(a, b) => {
                let mut left = self.run(a);
                for (d, (s, m)) in self.run(b) {
                    let e = left.entry(d).or_insert((0, 0));
                    e.0 += s;
                    e.1 |= m;
                }
                left
            }
            Query::Not(a) => {
                let drop = self.run(a);
                (0..self.index.len() as DocId)
                    .filter(|d| !drop.contains_key(d))
                    .map(|d| (d, (0, 0)))
                    .collect()
            }
        }
    }
}

/// Checks that every `field:` the query names is one the data set has.
pub fn check_fields(index: &GeneIndex, q: &Query) -> Result<(), UnknownField> {
    let known = index.searchable();
    for t in query::terms(q) {
        if let Some(f) = &t.field {
            if !known.contains(&f.as_str()) {
                return Err(UnknownField {
                    at: t.at,
                    field: f.clone(),
                    known: known.iter().map(|s| s.to_string()).collect(),
                });
            }
        }
    }
    Ok(())
}

/// Runs a query: every match ranked (score, then symbol), one page of it.
pub fn search(
    index: &GeneIndex,
    q: &Query,
    offset: usize,
    limit: usize,
) -> Result<SearchAnswer, UnknownField> {
    check_fields(index, q)?;
    let mut eval = Eval {
        index,
        fields: index.searchable(),
    };
    let hits = eval.run(q);
    let mut ranked: Vec<(DocId, u32, u128)> =
        hits.into_iter().map(|(d, (s, m))| (d, s, m)).collect();
    let symbol = |d: DocId| index.docs[d as usize].symbol.as_str();
    let num_found = ranked.len();
    let page_end = offset.saturating_add(limit).min(num_found);
    let by_rank = |a: &(DocId, u32, u128), b: &(DocId, u32, u128)| {
        b.1.cmp(&a.1)
            .then_with(|| {
                let lower = |d: DocId| symbol(d).bytes().map(|c| c.to_ascii_lowercase());
                lower(a.0).cmp(lower(b.0))
            })
            .then_with(|| a.0.cmp(&b.0))
    };
    // Only the page is needed in order: select it, then sort it.
    if page_end > 0 && page_end < ranked.len() {
        ranked.select_nth_unstable_by(page_end - 1, by_rank);
        ranked.truncate(page_end);
    }
    ranked.sort_unstable_by(by_rank);
    let docs = ranked
        .into_iter()
        .skip(offset)
        .take(limit)
        .map(|(d, score, mask)| {
            let doc = &index.docs[d as usize];
            SearchDoc {
                hgnc_id: doc.hgnc_id.clone(),
                symbol: doc.symbol.clone(),
                matched_by: eval
                    .fields
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| *i < 128 && mask & (1 << i) != 0)
                    .map(|(_, f)| f.to_string())
                    .collect(),
                score,
            }
        })
        .collect();
    Ok(SearchAnswer {
        withdrawn: None,
        num_found,
        docs,
    })
}

/// A filter that names a field the data set lacks.
#[derive(Debug, PartialEq)]
pub struct BadFilter(pub String);

/// The records (in source order) whose `field` equals `value`
/// (case-insensitive; a list matches if any element does), for every pair.
pub fn filter(index: &GeneIndex, filters: &[(String, String)]) -> Result<Vec<DocId>, BadFilter> {
    let mut result: Option<Vec<DocId>> = None;
    for (field, value) in filters {
        let terms = index.field(field).ok_or_else(|| {
            BadFilter(format!(
                "no field {field:?} in the data set; filter on one of {}",
                index.searchable().join(", ")
            ))
        })?;
        let docs = terms.exact(&value.to_lowercase());
        result = Some(match result {
            None => docs.to_vec(),
            Some(prev) => intersect(&prev, docs),
        });
    }
    Ok(result.unwrap_or_else(|| (0..index.len() as DocId).collect()))
}

fn intersect(a: &[DocId], b: &[DocId]) -> Vec<DocId> {
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out
}

/// A gene a term may mean.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct Candidate {
    pub hgnc_id: String,
    pub symbol: String,
    /// The fields that hold the term.
    pub matched_by: Vec<String>,
}

/// The fields a lookup tries, in order: the first that holds the term
/// decides, except that previous symbols and aliases are weighed together.
const LOOKUP_FIELDS: [&str; 5] = [
    "hgnc_id",
    "symbol",
    "ensembl_gene_id",
    "entrez_id",
    "uniprot_ids",
];

/// What one lookup term means.
#[derive(Debug, Clone, PartialEq)]
pub enum Found {
    One(Candidate),
    Ambiguous(Vec<Candidate>),
    NotFound,
}

fn candidates(index: &GeneIndex, hits: &[(DocId, &str)]) -> Vec<Candidate> {
    let mut by_doc: Vec<(DocId, Vec<String>)> = Vec::new();
    for (d, f) in hits {
        match by_doc.iter_mut().find(|(x, _)| x == d) {
            Some((_, fields)) => fields.push(f.to_string()),
            None => by_doc.push((*d, vec![f.to_string()])),
        }
    }
    by_doc.sort_by_key(|(d, _)| *d);
    by_doc
        .into_iter()
        .map(|(d, matched_by)| {
            let doc = &index.docs[d as usize];
            Candidate {
                hgnc_id: doc.hgnc_id.clone(),
                symbol: doc.symbol.clone(),
                matched_by,
            }
        })
        .collect()
}

/// Resolves one term: an HGNC id, an approved symbol, an Ensembl, Entrez or
/// UniProt id, else a previous symbol or an alias (ambiguous when several
/// genes carry it).
pub fn lookup(index: &GeneIndex, term: &str) -> Found {
    let term = term.trim().to_lowercase();
    if term.is_empty() {
        return Found::NotFound;
    }
    for field in LOOKUP_FIELDS {
        let docs = index.field(field).map_or(&[][..], |t| t.exact(&term));
        if !docs.is_empty() {
            let hits: Vec<(DocId, &str)> = docs.iter().map(|d| (*d, field)).collect();
            let mut found = candidates(index, &hits);
            return if found.len() == 1 {
                Found::One(found.remove(0))
            } else {
                Found::Ambiguous(found)
            };
        }
    }
    former_names(index, &term)
}

/// The genes whose previous symbols or aliases hold `term` (lowercased).
pub fn former_names(index: &GeneIndex, term: &str) -> Found {
    let mut hits = Vec::new();
    for field in ["prev_symbol", "alias_symbol"] {
        if let Some(t) = index.field(field) {
            hits.extend(t.exact(term).iter().map(|d| (*d, field)));
        }
    }
    let mut found = candidates(index, &hits);
    match found.len() {
        0 => Found::NotFound,
        1 => Found::One(found.remove(0)),
        _ => Found::Ambiguous(found),
    }
}

/// The record number of the gene whose approved symbol is `symbol`.
pub fn by_symbol(index: &GeneIndex, symbol: &str) -> Option<DocId> {
    index
        .field("symbol")?
        .exact(&symbol.to_lowercase())
        .first()
        .copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index() -> GeneIndex {
        GeneIndex::from_blob(
            br#"[
            {"hgnc_id":"HGNC:1100","symbol":"BRCA1","name":"BRCA1 DNA repair associated","alias_symbol":["RNF53"],"prev_symbol":["PSCP"],"locus_group":"protein-coding gene","location":"17q21.31","entrez_id":"672","ensembl_gene_id":"ENSG00000012048","uniprot_ids":["P38398"]},
            {"hgnc_id":"HGNC:1101","symbol":"BRCA2","name":"BRCA2 DNA repair associated","alias_symbol":["FANCD1","BRCC2"],"locus_group":"protein-coding gene","location":"13q13.1"},
            {"hgnc_id":"HGNC:11998","symbol":"TP53","name":"tumor protein p53","alias_symbol":["p53","LFS1"],"locus_group":"protein-coding gene","location":"17p13.1"},
            {"hgnc_id":"HGNC:2","symbol":"BRCA1P1","name":"BRCA1 pseudogene 1","alias_symbol":["PSCP"],"locus_group":"pseudogene","location":"17q21.31"},
            {"hgnc_id":"HGNC:3","symbol":"KIN","name":"Kin17 DNA and RNA binding protein","alias_symbol":["LFS1"],"locus_group":"protein-coding gene","location":"10p14"},
            {"hgnc_id":"HGNC:4","symbol":"PKM","name":"pyruvate kinase M1/2","prev_symbol":["PKM2"],"locus_group":"protein-coding gene","location":"15q23"}
            ]"#,
            "v",
        )
        .unwrap()
    }

    fn symbols(a: &SearchAnswer) -> Vec<&str> {
        a.docs.iter().map(|d| d.symbol.as_str()).collect()
    }

    fn run(q: &str) -> SearchAnswer {
        search(&index(), &parse(q).unwrap(), 0, 100).unwrap()
    }

    #[test]
    fn glob_matches_stars_anywhere() {
        for (p, t, want) in [
            ("brca*", "brca1", true),
            ("*kinase*", "pyruvate kinase m1/2", true),
            ("*kinase", "kinases", false),
            ("a*b*c", "axxbyyc", true),
            ("a*b*c", "axxbyy", false),
            ("*", "", true),
            ("abc", "abc", true),
            ("abc", "abcd", false),
            ("**a", "ba", true),
        ] {
            assert_eq!(glob(p, t), want, "{p} ~ {t}");
        }
    }

    #[test]
    fn ranking_exact_symbol_then_former_names_then_wildcards() {
        let a = run("BRCA1");
        assert_eq!(symbols(&a), ["BRCA1"]);
        assert_eq!(a.docs[0].matched_by, ["symbol"]);
        assert_eq!(a.docs[0].score, 100);
        // PSCP: BRCA1's previous symbol and BRCA1P1's alias, equally sure.
        let a = run("pscp");
        assert_eq!(symbols(&a), ["BRCA1", "BRCA1P1"]);
        assert_eq!(a.docs[0].matched_by, ["prev_symbol"]);
        assert_eq!(a.docs[1].matched_by, ["alias_symbol"]);
        let a = run("BRCA*");
        assert_eq!(a.num_found, 3);
        assert_eq!(symbols(&a), ["BRCA1", "BRCA1P1", "BRCA2"]);
        // An exact symbol outranks wildcard matches.
        let a = run("BRCA2 OR BRCA*");
        assert_eq!(symbols(&a)[0], "BRCA2");
        let a = run("*kinase*");
        assert_eq!(a.num_found, 0, "bare terms search symbols only");
        let a = run("name:*kinase*");
        assert_eq!(symbols(&a), ["PKM"]);
        assert_eq!(a.docs[0].matched_by, ["name"]);
    }

    #[test]
    fn fields_phrases_and_booleans() {
        assert_eq!(
            symbols(&run(
                r#"locus_group:"protein-coding gene" AND chromosome:17"#
            )),
            ["BRCA1", "TP53"]
        );
        assert_eq!(
            symbols(&run("chromosome:17 NOT locus_group:pseudogene")),
            ["BRCA1", "TP53"]
        );
        assert_eq!(
            symbols(&run("NOT locus_group:\"protein-coding gene\"")),
            ["BRCA1P1"]
        );
        assert_eq!(
            symbols(&run("(brca1 OR brca2) AND NOT chromosome:13")),
            ["BRCA1"]
        );
        assert_eq!(symbols(&run("entrez_id:672")), ["BRCA1"]);
        assert_eq!(symbols(&run("uniprot_ids:p38398")), ["BRCA1"]);
        let a = run("p53 OR tp53");
        assert_eq!(symbols(&a), ["TP53"]);
        assert_eq!(a.docs[0].score, 150);
        assert_eq!(a.docs[0].matched_by, ["symbol", "alias_symbol"]);
    }

    #[test]
    fn paging_keeps_the_ranking() {
        let idx = index();
        let q = parse("BRCA* OR TP53").unwrap();
        let all = search(&idx, &q, 0, 100).unwrap();
        assert_eq!(all.num_found, 4);
        for offset in 0..5 {
            for limit in 1..5 {
                let page = search(&idx, &q, offset, limit).unwrap();
                assert_eq!(page.num_found, 4, "{offset} {limit}");
                let want: Vec<_> = all.docs.iter().skip(offset).take(limit).cloned().collect();
                assert_eq!(page.docs, want, "{offset} {limit}");
            }
        }
    }

    #[test]
    fn unknown_fields_are_named_with_the_known_ones() {
        let e = search(&index(), &parse("a AND nosuch:b").unwrap(), 0, 10).unwrap_err();
        assert_eq!(e.at, 7);
        assert!(e.to_string().contains("\"nosuch\""));
        assert!(e.to_string().contains("chromosome"));
    }

    #[test]
    fn filters_and_over_fields_and_list_elements() {
        let idx = index();
        let f = |pairs: &[(&str, &str)]| {
            filter(
                &idx,
                &pairs
                    .iter()
                    .map(|(a, b)| (a.to_string(), b.to_string()))
                    .collect::<Vec<_>>(),
            )
        };
        assert_eq!(f(&[("symbol", "brca1")]).unwrap(), [0]);
        assert_eq!(f(&[("alias_symbol", "LFS1")]).unwrap(), [2, 4]);
        assert_eq!(f(&[("chromosome", "17")]).unwrap(), [0, 2, 3]);
        assert_eq!(
            f(&[("chromosome", "17"), ("locus_group", "pseudogene")]).unwrap(),
            [3]
        );
        assert!(f(&[("chromosome", "17"), ("symbol", "KIN")])
            .unwrap()
            .is_empty());
        assert_eq!(f(&[]).unwrap(), [0, 1, 2, 3, 4, 5]);
        assert!(f(&[("bogus", "x")])
            .unwrap_err()
            .0
            .contains("filter on one of hgnc_id"));
    }

    #[test]
    fn lookups_by_every_kind_of_name() {
        let idx = index();
        let one = |t: &str| match lookup(&idx, t) {
            Found::One(c) => (c.symbol, c.matched_by),
            other => panic!("{t}: {other:?}"),
        };
        assert_eq!(one("HGNC:1100"), ("BRCA1".into(), vec!["hgnc_id".into()]));
        assert_eq!(one("brca2"), ("BRCA2".into(), vec!["symbol".into()]));
        assert_eq!(
            one("ENSG00000012048"),
            ("BRCA1".into(), vec!["ensembl_gene_id".into()])
        );
        assert_eq!(one("672"), ("BRCA1".into(), vec!["entrez_id".into()]));
        assert_eq!(one("P38398"), ("BRCA1".into(), vec!["uniprot_ids".into()]));
        assert_eq!(one("pkm2"), ("PKM".into(), vec!["prev_symbol".into()]));
        assert_eq!(
            one(" FANCD1 "),
            ("BRCA2".into(), vec!["alias_symbol".into()])
        );
        match lookup(&idx, "LFS1") {
            Found::Ambiguous(c) => {
                let s: Vec<&str> = c.iter().map(|c| c.symbol.as_str()).collect();
                assert_eq!(s, ["TP53", "KIN"]);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(lookup(&idx, "nope"), Found::NotFound);
        assert_eq!(lookup(&idx, "  "), Found::NotFound);
        assert_eq!(by_symbol(&idx, "tp53"), Some(2));
        assert_eq!(by_symbol(&idx, "p53"), None);
    }
}
