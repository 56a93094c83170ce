//! What `GET /genes` and `GET /data` share: their query parameters (field
//! filters, paging, field selection, format), parsed at the edge, and the
//! writing of records as JSON or as HGNC's TSV.

use std::collections::HashMap;

use serde_json::value::RawValue;
use warp::{Filter, Rejection};

use crate::error::ApiError;
use crate::genes::index::{DocId, GeneIndex};
use crate::search;

/// Most records one page may hold.
pub const MAX_LIMIT: usize = 50_000;
/// Furthest a page may start.
pub const MAX_OFFSET: usize = 1_000_000;

/// The raw query string's pairs, in order; empty when there is none.
pub fn query_pairs() -> impl Filter<Extract = (Vec<(String, String)>,), Error = Rejection> + Clone {
    warp::query::raw()
        .or(warp::any().map(String::new))
        .unify()
        .and_then(|raw: String| async move {
            serde_urlencoded::from_str::<Vec<(String, String)>>(&raw).map_err(|e| {
                warp::reject::custom(ApiError::bad_request(
                    "bad_parameter",
                    format!("the query string is malformed: {e}"),
                ))
            })
        })
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Format {
    Json,
    Tsv,
}

/// A listing's parameters: filters are checked against the data set's
/// fields once its index is at hand ([`Listing::check`]).
#[derive(Debug, Default)]
pub struct Listing {
    pub filters: Vec<(String, String)>,
    pub limit: Option<usize>,
    pub offset: usize,
    pub fields: Option<Vec<String>>,
    pub format: Option<Format>,
}

fn number(name: &str, v: &str, min: usize, max: usize) -> Result<usize, ApiError> {
    v.parse::<usize>()
        .ok()
        .filter(|n| (min..=max).contains(n))
        .ok_or_else(|| {
            ApiError::bad_request(
                if name == "limit" {
                    "bad_limit"
                } else {
                    "bad_offset"
                },
                format!("{name} must be a number from {min} to {max}"),
            )
        })
}

impl Listing {
    /// `extra` are the parameters the route takes besides filters and paging.
    pub fn parse(pairs: Vec<(String, String)>, extra: &[&str]) -> Result<Self, ApiError> {
        let mut l = Listing::default();
        let mut seen: Vec<&str> = Vec::new();
        for (k, v) in &pairs {
            let once = |seen: &mut Vec<&str>, k: &'static str| {
                if seen.contains(&k) {
                    return Err(ApiError::bad_request(
                        "bad_parameter",
                        format!("{k} is given twice"),
                    ));
                }
                seen.push(k);
                Ok(())
            };
            match k.as_str() {
                "limit" => {
                    once(&mut seen, "limit")?;
                    l.limit = Some(number("limit", v, 1, MAX_LIMIT)?);
                }
                "offset" => {
                    once(&mut seen, "offset")?;
                    l.offset = number("offset", v, 0, MAX_OFFSET)?;
                }
                "fields" if extra.contains(&"fields") => {
                    once(&mut seen, "fields")?;
                    let names: Vec<String> = v
                        .split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                        .collect();
                    if names.is_empty() {
                        return Err(ApiError::bad_request(
                            "bad_fields",
                            "fields must name at least one field, e.g. fields=hgnc_id,symbol,name",
                        ));
                    }
                    l.fields = Some(names);
                }
                "format" if extra.contains(&"format") => {
                    once(&mut seen, "format")?;
                    l.format = Some(match v.as_str() {
                        "json" => Format::Json,
                        "tsv" => Format::Tsv,
                        _ => {
                            return Err(ApiError::bad_request(
                                "bad_format",
                                format!("format must be json or tsv, not {v:?}"),
                            ))
                        }
                    });
                }
                _ => {
                    if v.trim().is_empty() {
                        return Err(ApiError::bad_request(
                            "bad_filter",
                            format!("the filter {k}= needs a value, e.g. {k}=..."),
                        ));
                    }
                    l.filters.push((k.clone(), v.clone()));
                }
            }
        }
        Ok(l)
    }

    /// No parameter at all: the classic answer.
    pub fn is_plain(&self) -> bool {
        self.filters.is_empty()
            && self.limit.is_none()
            && self.offset == 0
            && self.fields.is_none()
            && self.format != Some(Format::Tsv)
    }

    /// Checks names against the data set and picks the page: the records in
    /// source order, and how many match in all.
    pub fn select(
        &self,
        index: &GeneIndex,
        route: &str,
        extra: &[&str],
    ) -> Result<(Vec<DocId>, usize), ApiError> {
        let known = index.searchable();
        if let Some((k, _)) = self
            .filters
            .iter()
            .find(|(k, _)| !known.contains(&k.as_str()))
        {
            let mut params = vec!["limit", "offset"];
            params.extend_from_slice(extra);
            return Err(ApiError::bad_request(
                "bad_parameter",
                format!(
                    "unknown parameter {k:?}; {route} takes {}, and a filter on any field of the \
                     data set: {}",
                    params.join(", "),
                    known.join(", ")
                ),
            ));
        }
        if let Some(fields) = &self.fields {
            let stored: Vec<&str> = index.fields.iter().map(|f| f.name.as_str()).collect();
            if let Some(f) = fields.iter().find(|f| !stored.contains(&f.as_str())) {
                return Err(ApiError::bad_request(
                    "bad_fields",
                    format!(
                        "no field {f:?} in the data set; fields may name {}",
                        stored.join(", ")
                    ),
                ));
            }
        }
        let all = search::filter(index, &self.filters)
            .map_err(|e| ApiError::bad_request("bad_parameter", e.0))?;
        let total = all.len();
        let page = all
            .into_iter()
            .skip(self.offset)
            .take(self.limit.unwrap_or(usize::MAX))
            .collect();
        Ok((page, total))
    }
}

/// Writes records (raw JSON as stored) as a JSON array or as TSV rows.
pub struct Writer {
    format: Format,
    /// The fields to write (TSV: the columns); None: whole records.
    fields: Option<Vec<String>>,
    first: bool,
}

impl Writer {
    pub fn new(format: Format, fields: Option<Vec<String>>, index: &GeneIndex) -> Self {
        let fields = match format {
            Format::Tsv => Some(
                fields.unwrap_or_else(|| index.fields.iter().map(|f| f.name.clone()).collect()),
            ),
            Format::Json => fields,
        };
        Self {
            format,
            fields,
            first: true,
        }
    }

    pub fn content_type(&self) -> &'static str {
        match self.format {
            Format::Json => "application/json",
            Format::Tsv => "text/tab-separated-values; charset=utf-8",
        }
    }

    /// The start of the body.
    pub fn head(&self) -> Vec<u8> {
        match self.format {
            Format::Json => b"[".to_vec(),
            Format::Tsv => {
                let mut line = self.fields.as_deref().unwrap_or_default().join("\t");
                line.push('\n');
                line.into_bytes()
            }
        }
    }

    /// The end of the body.
    pub fn tail(&self) -> &'static [u8] {
        match self.format {
            Format::Json => b"]",
            Format::Tsv => b"",
        }
    }

    /// Appends records to `out`.
    pub fn write(
        &mut self,
        records: &[Option<bytes::Bytes>],
        out: &mut Vec<u8>,
    ) -> Result<(), String> {
        for record in records.iter().flatten() {
            match (self.format, &self.fields) {
                (Format::Json, None) => {
                    if !self.first {
                        out.push(b',');
                    }
                    out.extend_from_slice(record);
                }
                (Format::Json, Some(fields)) => {
                    let map = parse_record(record)?;
                    if !self.first {
                        out.push(b',');
                    }
                    out.push(b'{');
                    let mut sep = false;
                    for f in fields {
                        if let Some(v) = map.get(f.as_str()) {
                            if sep {
                                out.push(b',');
                            }
                            sep = true;
                            serde_json::to_writer(&mut *out, f).map_err(|e| e.to_string())?;
                            out.push(b':');
                            out.extend_from_slice(v.get().as_bytes());
                        }
                    }
                    out.push(b'}');
                }
                (Format::Tsv, fields) => {
                    let map = parse_record(record)?;
                    for (i, f) in fields.as_deref().unwrap_or_default().iter().enumerate() {
                        if i > 0 {
                            out.push(b'\t');
                        }
                        if let Some(v) = map.get(f.as_str()) {
                            cell(v, out)?;
                        }
                    }
                    out.push(b'\n');
                }
            }
            self.first = false;
        }
        Ok(())
    }
}

fn parse_record(record: &[u8]) -> Result<HashMap<String, &RawValue>, String> {
    serde_json::from_slice(record).map_err(|e| format!("a stored record is not JSON: {e}"))
}

/// One TSV cell: strings as they are, numbers as written, lists joined with
/// `|`, null empty; tabs and line breaks become spaces, so every row is one line.
fn cell(v: &RawValue, out: &mut Vec<u8>) -> Result<(), String> {
    let raw = v.get();
    match raw.as_bytes().first() {
        Some(b'"') => {
            let s: String = serde_json::from_str(raw).map_err(|e| e.to_string())?;
            out.extend(s.bytes().map(|b| {
                if matches!(b, b'\t' | b'\n' | b'\r') {
                    b' '
                } else {
                    b
                }
            }));
        }
        Some(b'[') => {
            let items: Vec<&RawValue> = serde_json::from_str(raw).map_err(|e| e.to_string())?;
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b'|');
                }
                cell(item, out)?;
            }
        }
        Some(b'n') => {}
        _ => out.extend_from_slice(raw.as_bytes()),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(q: &str) -> Vec<(String, String)> {
        serde_urlencoded::from_str(q).unwrap()
    }

    #[test]
    fn parameters_parse_into_a_listing() {
        let l = Listing::parse(
            pairs("symbol=TP53&limit=5&offset=2&fields=a,b"),
            &["fields", "format"],
        )
        .unwrap();
        assert_eq!(l.filters, [("symbol".to_string(), "TP53".to_string())]);
        assert_eq!((l.limit, l.offset), (Some(5), 2));
        assert_eq!(l.fields.unwrap(), ["a", "b"]);
        assert!(Listing::parse(vec![], &[]).unwrap().is_plain());
        assert!(Listing::parse(pairs("format=json"), &["format"])
            .unwrap()
            .is_plain());
        assert!(!Listing::parse(pairs("format=tsv"), &["format"])
            .unwrap()
            .is_plain());
        for (q, code) in [
            ("limit=0", "bad_limit"),
            ("limit=x", "bad_limit"),
            ("limit=50001", "bad_limit"),
            ("offset=-1", "bad_offset"),
            ("limit=1&limit=2", "bad_parameter"),
            ("format=xml", "bad_format"),
            ("fields=,", "bad_fields"),
            ("symbol=", "bad_filter"),
        ] {
            match Listing::parse(pairs(q), &["fields", "format"]) {
                Err(ApiError::BadRequest { code: c, .. }) => assert_eq!(c, code, "{q}"),
                other => panic!("{q}: {other:?}"),
            }
        }
        // A route without `fields` takes it as a filter name (and the data set refuses it).
        assert_eq!(
            Listing::parse(pairs("fields=a"), &[])
                .unwrap()
                .filters
                .len(),
            1
        );
    }

    #[test]
    fn tsv_cells_join_lists_and_flatten_lines() {
        let index = GeneIndex::from_blob(br#"[{"hgnc_id":"HGNC:5","symbol":"A"}]"#, "v").unwrap();
        let mut w = Writer::new(
            Format::Tsv,
            Some(vec!["a".into(), "b".into(), "c".into(), "d".into()]),
            &index,
        );
        let mut out = w.head();
        let rec = bytes::Bytes::from_static(br#"{"b":["x","y\tz"],"a":"line\none","c":12,"e":1}"#);
        w.write(&[Some(rec)], &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "a\tb\tc\td\nline one\tx|y z\t12\t\n"
        );
    }

    #[test]
    fn json_fields_keep_the_requested_order_and_raw_values() {
        let index = GeneIndex::from_blob(br#"[{"hgnc_id":"HGNC:5"}]"#, "v").unwrap();
        let mut w = Writer::new(
            Format::Json,
            Some(vec!["symbol".into(), "hgnc_id".into(), "none".into()]),
            &index,
        );
        let mut out = w.head();
        let rec =
            bytes::Bytes::from_static(br#"{"hgnc_id":"HGNC:5","symbol":"A1BG","pubmed_id":[1]}"#);
        w.write(&[Some(rec.clone()), Some(rec)], &mut out).unwrap();
        out.extend_from_slice(w.tail());
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"[{"symbol":"A1BG","hgnc_id":"HGNC:5"},{"symbol":"A1BG","hgnc_id":"HGNC:5"}]"#
        );
    }
}
