//! `/genes`: the ids of the loaded genes (all, or those a filter picks), one
//! gene by id or by approved symbol, and many genes by any of their names.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use warp::http::{HeaderValue, StatusCode};
use warp::reply::Response;
use warp::{Filter, Rejection};

use super::docs::Gene;
use super::listing::{query_pairs, Listing};
use super::{
    body_up_to, json_with, of_release, raw_json, release_query, respond, take_release, with,
    AppState,
};
use crate::error::{ApiError, ErrorBody};
use crate::genes::{self, Catalog, HgncId, Pick, RecordsError, Release, WithdrawnGene};
use crate::search::{self, Candidate, Found};
use crate::store::Store;

/// Most terms one `POST /genes/lookup` may hold.
pub const MAX_LOOKUP_TERMS: usize = 10_000;
/// Longest lookup term or symbol, in bytes.
const MAX_TERM_BYTES: usize = 256;
/// The lookup's own body limit: 10,000 terms of typical length fit well.
const LOOKUP_BODY_LIMIT: usize = 1 << 20;

/// `GET /genes`, `GET /genes/<hgnc_id>`, `GET /genes/symbol/<symbol>`,
/// `POST /genes/lookup`.
pub fn routes(state: &AppState) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let store = state.pipeline.store.clone();
    let catalog = state.catalog.clone();
    let lookup = warp::path!("genes" / "lookup")
        .and(warp::post())
        .and(query_pairs())
        .and(warp::header::optional::<String>("accept"))
        .and(with(store.clone()))
        .and(with(catalog.clone()))
        .and(body_up_to(LOOKUP_BODY_LIMIT))
        .then(lookup)
        .map(respond);
    let symbol = warp::path!("genes" / "symbol" / String)
        .and(warp::get())
        .and(release_query())
        .and(with(store.clone()))
        .and(with(catalog.clone()))
        .then(get_by_symbol)
        .map(respond);
    let all = warp::path!("genes")
        .and(warp::get())
        .and(query_pairs())
        .and(with(store.clone()))
        .and(with(catalog.clone()))
        .then(get_genes)
        .map(respond);
    let one = warp::path!("genes" / String)
        .and(warp::get())
        .and(release_query())
        .and(with(store))
        .and(with(catalog))
        .then(get_gene)
        .map(respond);
    lookup.or(symbol).unify().or(all).unify().or(one).unify()
}

/// The header that gives a filtered listing's total.
pub(super) fn with_total(mut resp: Response, total: usize) -> Response {
    resp.headers_mut()
        .insert("x-total-count", HeaderValue::from(total as u64));
    resp
}

#[utoipa::path(
    get, path = "/genes", tag = "genes",
    params(
        ("release" = Option<String>, Query, description = "Answer from this kept release (`GET /releases` lists them; `live`: the live one); the default is the live one (so is an empty value)", max_length = 64, pattern = "^[A-Za-z0-9_-]{0,64}$"),
        ("limit" = Option<usize>, Query, description = "At most this many ids (1 to 50,000); with any parameter the answer has `X-Total-Count`", minimum = 1, maximum = 50000),
        ("offset" = Option<usize>, Query, description = "Skip this many matching ids first", minimum = 0, maximum = 1000000),
        ("symbol" = Option<String>, Query, description = "Filter: the approved symbol (case-insensitive). Any stored field filters the same way (`GET /info` lists them); several filters are AND-ed", pattern = "^.*\\S.*$"),
        ("alias_symbol" = Option<String>, Query, description = "Filter: one of the gene's aliases (a list field matches any element)", pattern = "^.*\\S.*$"),
        ("prev_symbol" = Option<String>, Query, description = "Filter: one of the gene's previous symbols", pattern = "^.*\\S.*$"),
        ("locus_group" = Option<String>, Query, description = "Filter: e.g. `protein-coding gene`", pattern = "^.*\\S.*$"),
        ("status" = Option<String>, Query, description = "Filter: e.g. `Approved`", pattern = "^.*\\S.*$"),
        ("chromosome" = Option<String>, Query, description = "Filter: the chromosome `location` names (`1`..`22`, `X`, `Y`, `MT`)", pattern = "^.*\\S.*$"),
    ),
    responses((status = 200, description = "The HGNC ids of every loaded gene, or of those the filters pick, in source order", body = [String],
            headers(("X-Total-Count" = String, description = "How many ids match in all (with any parameter)"))),
        (status = 400, description = "An unknown parameter or field (the message lists the allowed ones), a malformed value, or not a release id (`bad_release`)", body = ErrorBody),
        (status = 410, description = "The release asked for is no longer kept (`release_not_kept`, `kept` lists the kept ones)", body = ErrorBody),
        (status = 404, description = "No data set is loaded (`no_data`), or no such release (`release_not_found`)", body = ErrorBody), (status = 503, description = "Redis is unavailable; retry after the Retry-After seconds", body = ErrorBody, headers(("Retry-After" = String, description = "Seconds to wait"))))
)]
async fn get_genes(
    mut pairs: Vec<(String, String)>,
    store: Store,
    catalog: Catalog,
) -> Result<Response, ApiError> {
    let pick = take_release(&mut pairs)?;
    let listing = Listing::parse(pairs, &[])?;
    let mut conn = store.data.clone();
    if listing.is_plain() && catalog.from_memory() {
        let release = catalog.release(&mut conn, &store.keys, &pick).await?;
        return Ok(of_release(raw_json(release.ids_json()), release.id()));
    }
    if listing.is_plain() {
        let (id, ids) = match &pick {
            Pick::Live => genes::current_part(&mut conn, &store.keys, "ids")
                .await?
                .ok_or_else(ApiError::no_data)?,
            Pick::Release(id) => {
                match genes::release_part(&mut conn, &store.keys, id, "ids").await? {
                    Some(ids) => (id.clone(), ids),
                    // Not kept: the catalog names the kept ones.
                    None => {
                        return Err(
                            super::missing_release(&catalog, &mut conn, &store.keys, &pick).await,
                        )
                    }
                }
            }
        };
        return Ok(of_release(raw_json(Bytes::from(ids)), &id));
    }
    let release = catalog.release(&mut conn, &store.keys, &pick).await?;
    let index = &release.index;
    let (page, total) = listing.select(index, "/genes", &[])?;
    let ids: Vec<&str> = page
        .iter()
        .map(|d| index.docs[*d as usize].hgnc_id.as_str())
        .collect();
    Ok(of_release(
        with_total(json_with(StatusCode::OK, &ids), total),
        release.id(),
    ))
}

/// The one record a read by id or symbol chose, named by its release.
fn the_record(c: genes::Chosen<()>, asked: &dyn std::fmt::Display) -> Result<Response, ApiError> {
    match c.records.into_iter().next().flatten() {
        Some(record) => Ok(of_release(raw_json(record), c.release.id())),
        None => Err(ApiError::Internal(format!(
            "{asked} is in the index of release {} but not among its records",
            c.release.id()
        ))),
    }
}

/// The 410 of a withdrawn id or symbol.
fn withdrawn_error(w: WithdrawnGene, release: &str) -> ApiError {
    let now: Vec<String> = w
        .current
        .iter()
        .map(|t| format!("{} ({}, {})", t.symbol, t.hgnc_id, t.status))
        .collect();
    let message = match w.kind {
        genes::withdrawn::WithdrawnKind::Withdrawn => format!(
            "{} ({}) was withdrawn by HGNC (Entry Withdrawn); it points to no gene",
            w.hgnc_id, w.withdrawn_symbol
        ),
        genes::withdrawn::WithdrawnKind::Merged => format!(
            "{} ({}) was merged into {}",
            w.hgnc_id,
            w.withdrawn_symbol,
            now.join(", ")
        ),
        genes::withdrawn::WithdrawnKind::Split => format!(
            "{} ({}) was split into {}",
            w.hgnc_id,
            w.withdrawn_symbol,
            now.join(", ")
        ),
    };
    ApiError::Gone {
        code: "gene_withdrawn",
        message,
        kept: None,
        withdrawn: Some(Box::new(w)),
        release: Some(release.to_string()),
    }
}

/// The withdrawn entry whose symbol is `symbol` in `release`, resolved.
fn withdrawn_symbol(release: &Release, symbol: &str) -> Option<WithdrawnGene> {
    // A symbol withdrawn twice: the entry with the highest id is HGNC's latest.
    release
        .withdrawn
        .by_symbol(symbol)
        .max_by_key(|e| e.hgnc_id[5..].parse::<u64>().unwrap_or(0))
        .map(|e| release.withdrawn.resolve(e, &release.index))
}

#[utoipa::path(
    get, path = "/genes/symbol/{symbol}", tag = "genes",
    params(("symbol" = String, Path, description = "An approved symbol, any case: `TP53`, `brca1`", min_length = 1, max_length = 256, pattern = "^.*\\S.*$"), ("release" = Option<String>, Query, description = "Answer from this kept release (`GET /releases` lists them; `live`: the live one); the default is the live one (so is an empty value)", max_length = 64, pattern = "^[A-Za-z0-9_-]{0,64}$")),
    responses((status = 200, description = "The record of the gene whose approved symbol this is", body = Gene),
        (status = 400, description = "An empty or over-long symbol (`bad_symbol`), or not a release id (`bad_release`)", body = ErrorBody),
        (status = 410, description = "A withdrawn symbol that no gene carries now (`gene_withdrawn`, `withdrawn` says where it went), or a release no longer kept (`release_not_kept`)", body = ErrorBody),
        (status = 404, description = "No gene has this approved symbol (`gene_not_found`; `candidates` names the genes that carry it as a previous symbol or alias), or no data loaded (`no_data`)", body = ErrorBody),
        (status = 503, description = "Redis is unavailable; retry after the Retry-After seconds", body = ErrorBody, headers(("Retry-After" = String, description = "Seconds to wait"))))
)]
async fn get_by_symbol(
    raw: String,
    pick: Pick,
    store: Store,
    catalog: Catalog,
) -> Result<Response, ApiError> {
    let symbol = parse_symbol(&raw)?;
    let chosen = catalog
        .records(
            &mut store.data.clone(),
            &store.keys,
            &pick,
            |release: &Release| {
                let index = &release.index;
                match search::by_symbol(index, &symbol) {
                    Some(d) => Ok(((), vec![d])),
                    None => {
                        let former = search::former_names(index, &symbol.to_lowercase());
                        let withdrawn = match former {
                            Found::NotFound => withdrawn_symbol(release, &symbol),
                            _ => None,
                        };
                        Err(Box::new((former, withdrawn, release.id().to_string())))
                    }
                }
            },
        )
        .await;
    match chosen {
        Ok(c) => the_record(c, &symbol),
        Err(RecordsError::Catalog(e)) => Err(e.into()),
        Err(RecordsError::Choose(refused)) => match *refused {
            (_, Some(w), release) => Err(withdrawn_error(w, &release)),
            (found, None, _) => {
                let candidates = match found {
                    Found::One(c) => vec![c],
                    Found::Ambiguous(c) => c,
                    Found::NotFound => vec![],
                };
                let message = if candidates.is_empty() {
                    format!("no gene has the approved symbol {symbol:?}, nor has it as a previous symbol or alias")
                } else {
                    let names: Vec<String> = candidates
                        .iter()
                        .map(|c| format!("{} ({})", c.symbol, c.hgnc_id))
                        .collect();
                    format!(
                    "no gene has the approved symbol {symbol:?}; it is a previous symbol or alias of {}",
                    names.join(", ")
                )
                };
                Err(ApiError::GeneNotFound {
                    message,
                    candidates,
                })
            }
        },
    }
}

/// `POST /genes/lookup`'s body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LookupRequest {
    /// HGNC ids, symbols, previous symbols, aliases, Ensembl, Entrez or UniProt ids (at most 10,000).
    #[schema(max_items = 10000)]
    terms: Vec<String>,
}

/// How a lookup term matched, as HGNC's multi-symbol checker names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MatchType {
    /// The approved symbol or the HGNC id of a gene.
    Approved,
    /// A previous symbol.
    Previous,
    /// An alias symbol.
    Alias,
    /// An Ensembl, Entrez or UniProt id.
    CrossReference,
    /// A withdrawn symbol or id that points to no gene (`Entry Withdrawn`).
    Withdrawn,
    /// A withdrawn symbol or id merged into one gene.
    Merged,
    /// A withdrawn symbol or id split into several genes.
    Split,
    /// Nothing in the release.
    NotFound,
}

impl MatchType {
    fn label(self) -> &'static str {
        match self {
            MatchType::Approved => "Approved symbol",
            MatchType::Previous => "Previous symbol",
            MatchType::Alias => "Alias symbol",
            MatchType::CrossReference => "Cross reference",
            MatchType::Withdrawn => "Entry withdrawn",
            MatchType::Merged => "Merged",
            MatchType::Split => "Split",
            MatchType::NotFound => "Unmatched",
        }
    }

    fn of_fields(fields: &[String]) -> Self {
        let has = |f: &str| fields.iter().any(|x| x == f);
        if has("symbol") || has("hgnc_id") {
            MatchType::Approved
        } else if has("prev_symbol") {
            MatchType::Previous
        } else if has("alias_symbol") {
            MatchType::Alias
        } else {
            MatchType::CrossReference
        }
    }
}

/// What one term of a lookup means.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum LookupAnswer {
    /// One gene.
    Found {
        term: String,
        match_type: MatchType,
        hgnc_id: String,
        symbol: String,
        matched_by: Vec<String>,
    },
    /// A previous symbol, alias or cross-reference that several genes carry.
    Ambiguous {
        term: String,
        match_type: MatchType,
        candidates: Vec<Candidate>,
    },
    /// A withdrawn id or symbol, and the genes it points to now.
    Withdrawn {
        term: String,
        match_type: MatchType,
        withdrawn: WithdrawnGene,
    },
    /// No gene has it.
    NotFound {
        term: String,
        match_type: MatchType,
        not_found: bool,
    },
}

impl LookupAnswer {
    /// HGNC's multi-symbol checker columns: one row per gene a term maps to.
    fn tsv_rows(&self, out: &mut String) {
        let mut row = |term: &str, m: MatchType, symbol: &str, id: &str| {
            for cell in [term, m.label(), symbol, id] {
                out.push_str(&cell.replace(['\t', '\n', '\r'], " "));
                out.push('\t');
            }
            out.pop();
            out.push('\n');
        };
        match self {
            LookupAnswer::Found {
                term,
                match_type,
                hgnc_id,
                symbol,
                ..
            } => row(term, *match_type, symbol, hgnc_id),
            LookupAnswer::Ambiguous {
                term,
                match_type,
                candidates,
            } => {
                for c in candidates {
                    row(term, *match_type, &c.symbol, &c.hgnc_id);
                }
            }
            LookupAnswer::Withdrawn {
                term,
                match_type,
                withdrawn,
            } => {
                if withdrawn.current.is_empty() {
                    row(term, *match_type, "", "");
                }
                for t in &withdrawn.current {
                    row(term, *match_type, &t.symbol, &t.hgnc_id);
                }
            }
            LookupAnswer::NotFound {
                term, match_type, ..
            } => row(term, *match_type, "", ""),
        }
    }
}

/// Classifies one term in `release`.
fn classify(release: &Release, term: String) -> LookupAnswer {
    match search::lookup(&release.index, &term) {
        Found::One(c) => LookupAnswer::Found {
            term,
            match_type: MatchType::of_fields(&c.matched_by),
            hgnc_id: c.hgnc_id,
            symbol: c.symbol,
            matched_by: c.matched_by,
        },
        Found::Ambiguous(candidates) => LookupAnswer::Ambiguous {
            match_type: MatchType::of_fields(
                &candidates
                    .iter()
                    .flat_map(|c| c.matched_by.iter().cloned())
                    .collect::<Vec<_>>(),
            ),
            term,
            candidates,
        },
        Found::NotFound => {
            let t = term.trim();
            let withdrawn = match t.to_uppercase().parse::<HgncId>() {
                Ok(id) => release
                    .withdrawn
                    .get(id.as_str())
                    .map(|e| release.withdrawn.resolve(e, &release.index)),
                Err(_) => withdrawn_symbol(release, t),
            };
            match withdrawn {
                Some(w) => LookupAnswer::Withdrawn {
                    term,
                    match_type: match w.kind {
                        genes::withdrawn::WithdrawnKind::Withdrawn => MatchType::Withdrawn,
                        genes::withdrawn::WithdrawnKind::Merged => MatchType::Merged,
                        genes::withdrawn::WithdrawnKind::Split => MatchType::Split,
                    },
                    withdrawn: w,
                },
                None => LookupAnswer::NotFound {
                    term,
                    match_type: MatchType::NotFound,
                    not_found: true,
                },
            }
        }
    }
}

#[utoipa::path(
    post, path = "/genes/lookup", tag = "genes",
    params(
        ("release" = Option<String>, Query, description = "Answer from this kept release (`GET /releases` lists them; `live`: the live one); the default is the live one (so is an empty value)", max_length = 64, pattern = "^[A-Za-z0-9_-]{0,64}$"),
        ("format" = Option<String>, Query, description = "`json` (the default) or `tsv`: HGNC's multi-symbol checker columns (Input, Match type, Approved symbol, HGNC ID), one row per gene a term maps to; also chosen by `Accept: text/tab-separated-values`", pattern = "^(json|tsv)$"),
    ),
    request_body(content = LookupRequest, content_type = "application/json"),
    responses((status = 200, description = "One answer per term, in order, each with its `match_type`", content(
            (Vec<LookupAnswer> = "application/json"),
            (String = "text/tab-separated-values")),
            headers(("X-HGNC-Release" = String, description = "The release answered from"))),
        (status = 400, description = "Not `{\"terms\": [strings]}`, more than 10,000 terms, a term over 256 bytes, or a bad `release`/`format`", body = ErrorBody),
        (status = 404, description = "No data set is loaded (`no_data`)", body = ErrorBody),
        (status = 410, description = "The release asked for is no longer kept (`release_not_kept`, `kept` lists the kept ones)", body = ErrorBody),
        (status = 413, description = "The body is over 1 MiB", body = ErrorBody),
        (status = 503, description = "Redis is unavailable; retry after the Retry-After seconds", body = ErrorBody, headers(("Retry-After" = String, description = "Seconds to wait"))))
)]
async fn lookup(
    mut pairs: Vec<(String, String)>,
    accept: Option<String>,
    store: Store,
    catalog: Catalog,
    body: Bytes,
) -> Result<Response, ApiError> {
    let pick = take_release(&mut pairs)?;
    let mut tsv = accept.is_some_and(|a| a.contains("text/tab-separated-values"));
    for (k, v) in pairs {
        match (k.as_str(), v.as_str()) {
            ("format", "tsv") => tsv = true,
            ("format", "json") => tsv = false,
            ("format", other) => {
                return Err(ApiError::bad_request(
                    "bad_parameter",
                    format!("format is json or tsv, got {other:?}"),
                ))
            }
            (other, _) => {
                return Err(ApiError::bad_request(
                    "bad_parameter",
                    format!(
                        "unknown parameter {other:?}; POST /genes/lookup takes release and format"
                    ),
                ))
            }
        }
    }
    let req: LookupRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(
            "bad_lookup",
            format!("send {{\"terms\": [\"TP53\", \"ENSG00000141510\", ...]}}: {e}"),
        )
    })?;
    if req.terms.len() > MAX_LOOKUP_TERMS {
        return Err(ApiError::bad_request(
            "too_many_terms",
            format!(
                "{} terms; a lookup takes at most {MAX_LOOKUP_TERMS}",
                req.terms.len()
            ),
        ));
    }
    if let Some(i) = req.terms.iter().position(|t| t.len() > MAX_TERM_BYTES) {
        return Err(ApiError::bad_request(
            "bad_lookup",
            format!("term {i} is over {MAX_TERM_BYTES} bytes"),
        ));
    }
    let release = catalog
        .release(&mut store.data.clone(), &store.keys, &pick)
        .await?;
    let id = release.id().to_string();
    // 10,000 terms take milliseconds of CPU: off the async threads.
    let body = tokio::task::spawn_blocking(move || {
        let answers = req.terms.into_iter().map(|term| classify(&release, term));
        if tsv {
            let mut out = String::from("Input\tMatch type\tApproved symbol\tHGNC ID\n");
            answers.for_each(|a| a.tsv_rows(&mut out));
            Ok(out.into_bytes())
        } else {
            serde_json::to_vec(&answers.collect::<Vec<_>>())
        }
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))?
    .map_err(|e| ApiError::Internal(e.to_string()))?;
    let mut resp = raw_json(Bytes::from(body));
    if tsv {
        resp.headers_mut().insert(
            warp::http::header::CONTENT_TYPE,
            HeaderValue::from_static("text/tab-separated-values; charset=utf-8"),
        );
    }
    Ok(of_release(resp, &id))
}

#[utoipa::path(
    get, path = "/genes/{hgnc_id}", tag = "genes",
    params(("hgnc_id" = String, Path, description = "An HGNC id: `HGNC:5` (or `HGNC%3A5`)", pattern = "^HGNC:[0-9]{1,9}$"), ("release" = Option<String>, Query, description = "Answer from this kept release (`GET /releases` lists them; `live`: the live one); the default is the live one (so is an empty value)", max_length = 64, pattern = "^[A-Za-z0-9_-]{0,64}$")),
    responses((status = 200, description = "The gene's record as HGNC publishes it", body = Gene),
        (status = 400, description = "Not an HGNC id (`bad_hgnc_id`), or not a release id (`bad_release`)", body = ErrorBody),
        (status = 404, description = "No such gene (`gene_not_found`), no such release (`release_not_found`), or no data loaded (`no_data`)", body = ErrorBody),
        (status = 410, description = "A withdrawn, merged or split id (`gene_withdrawn`: `withdrawn` has its status, withdrawn symbol and the approved genes it points to, chains followed), or a release no longer kept (`release_not_kept`)", body = ErrorBody),
        (status = 503, description = "Redis is unavailable; retry after the Retry-After seconds", body = ErrorBody, headers(("Retry-After" = String, description = "Seconds to wait"))))
)]
async fn get_gene(
    raw_id: String,
    pick: Pick,
    store: Store,
    catalog: Catalog,
) -> Result<Response, ApiError> {
    if raw_id == "lookup" {
        return Err(ApiError::MethodNotAllowed);
    }
    let id = parse_hgnc_id(&raw_id)?;
    let chosen = catalog
        .records(
            &mut store.data.clone(),
            &store.keys,
            &pick,
            |release: &Release| match release.index.doc_of_id(id.as_str()) {
                Some(d) => Ok(((), vec![d])),
                None => Err((
                    release
                        .withdrawn
                        .get(id.as_str())
                        .map(|e| release.withdrawn.resolve(e, &release.index)),
                    release.id().to_string(),
                )),
            },
        )
        .await;
    match chosen {
        Ok(c) => the_record(c, &id),
        Err(RecordsError::Catalog(e)) => Err(e.into()),
        Err(RecordsError::Choose((Some(w), release))) => Err(withdrawn_error(w, &release)),
        Err(RecordsError::Choose((None, release))) => Err(ApiError::not_found(
            "gene_not_found",
            format!("no gene {id} in release {release}"),
        )),
    }
}

/// An HGNC id from a path segment: `HGNC%3A5` and `HGNC:5` are the same id.
pub(super) fn parse_hgnc_id(raw: &str) -> Result<HgncId, ApiError> {
    raw.replace("%3A", ":")
        .replace("%3a", ":")
        .parse::<HgncId>()
        .map_err(|m| ApiError::bad_request("bad_hgnc_id", m))
}

/// A symbol from a path segment: percent-decoded, trimmed, 1 to
/// [`MAX_TERM_BYTES`] bytes.
pub(super) fn parse_symbol(raw: &str) -> Result<String, ApiError> {
    let symbol = percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .map_err(|_| ApiError::bad_request("bad_symbol", "the symbol is not UTF-8"))?
        .trim()
        .to_string();
    if symbol.is_empty() || symbol.len() > MAX_TERM_BYTES {
        return Err(ApiError::bad_request(
            "bad_symbol",
            format!("a symbol is 1 to {MAX_TERM_BYTES} bytes long"),
        ));
    }
    Ok(symbol)
}
