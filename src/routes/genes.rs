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
use super::{body_up_to, json_with, raw_json, respond, with, AppState};
use crate::error::{ApiError, ErrorBody};
use crate::genes::{self, Catalog, HgncId, RecordsError};
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
        .and(with(store.clone()))
        .and(with(catalog.clone()))
        .and(body_up_to(LOOKUP_BODY_LIMIT))
        .then(lookup)
        .map(respond);
    let symbol = warp::path!("genes" / "symbol" / String)
        .and(warp::get())
        .and(with(store.clone()))
        .and(with(catalog.clone()))
        .then(get_by_symbol)
        .map(respond);
    let all = warp::path!("genes")
        .and(warp::get())
        .and(query_pairs())
        .and(with(store.clone()))
        .and(with(catalog))
        .then(get_genes)
        .map(respond);
    let one = warp::path!("genes" / String)
        .and(warp::get())
        .and(with(store))
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
        ("limit" = Option<usize>, Query, description = "At most this many ids (1 to 50,000); with any parameter the answer has `X-Total-Count`", minimum = 1, maximum = 50000),
        ("offset" = Option<usize>, Query, description = "Skip this many matching ids first", minimum = 0, maximum = 1000000),
        ("symbol" = Option<String>, Query, description = "Filter: the approved symbol (case-insensitive). Any stored field filters the same way (`GET /info` lists them); several filters are AND-ed"),
        ("alias_symbol" = Option<String>, Query, description = "Filter: one of the gene's aliases (a list field matches any element)"),
        ("prev_symbol" = Option<String>, Query, description = "Filter: one of the gene's previous symbols"),
        ("locus_group" = Option<String>, Query, description = "Filter: e.g. `protein-coding gene`"),
        ("status" = Option<String>, Query, description = "Filter: e.g. `Approved`"),
        ("chromosome" = Option<String>, Query, description = "Filter: the chromosome `location` names (`1`..`22`, `X`, `Y`, `MT`)"),
    ),
    responses((status = 200, description = "The HGNC ids of every loaded gene, or of those the filters pick, in source order", body = [String],
            headers(("X-Total-Count" = String, description = "How many ids match in all (with any parameter)"))),
        (status = 400, description = "An unknown parameter or field (the message lists the allowed ones), or a malformed value", body = ErrorBody),
        (status = 404, description = "No data set is loaded (`no_data`)", body = ErrorBody), (status = 503, description = "Redis is unavailable; retry after the Retry-After seconds", body = ErrorBody, headers(("Retry-After" = String, description = "Seconds to wait"))))
)]
async fn get_genes(
    pairs: Vec<(String, String)>,
    store: Store,
    catalog: Catalog,
) -> Result<Response, ApiError> {
    let listing = Listing::parse(pairs, &[])?;
    let mut conn = store.data.clone();
    if listing.is_plain() {
        let ids = genes::current_part(&mut conn, &store.keys, "ids")
            .await?
            .ok_or_else(ApiError::no_data)?;
        return Ok(raw_json(Bytes::from(ids)));
    }
    let index = catalog
        .live(&mut conn, &store.keys)
        .await?
        .ok_or_else(ApiError::no_data)?;
    let (page, total) = listing.select(&index, "/genes", &[])?;
    let ids: Vec<&str> = page
        .iter()
        .map(|d| index.docs[*d as usize].hgnc_id.as_str())
        .collect();
    Ok(with_total(json_with(StatusCode::OK, &ids), total))
}

#[utoipa::path(
    get, path = "/genes/symbol/{symbol}", tag = "genes",
    params(("symbol" = String, Path, description = "An approved symbol, any case: `TP53`, `brca1`", min_length = 1, max_length = 256)),
    responses((status = 200, description = "The record of the gene whose approved symbol this is", body = Gene),
        (status = 400, description = "An empty or over-long symbol (`bad_symbol`)", body = ErrorBody),
        (status = 404, description = "No gene has this approved symbol (`gene_not_found`; `candidates` names the genes that carry it as a previous symbol or alias), or no data loaded (`no_data`)", body = ErrorBody),
        (status = 503, description = "Redis is unavailable; retry after the Retry-After seconds", body = ErrorBody, headers(("Retry-After" = String, description = "Seconds to wait"))))
)]
async fn get_by_symbol(raw: String, store: Store, catalog: Catalog) -> Result<Response, ApiError> {
    let symbol = percent_encoding::percent_decode_str(&raw)
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
    let chosen = catalog
        .records(
            &mut store.data.clone(),
            &store.keys,
            |index| match search::by_symbol(index, &symbol) {
                Some(d) => Ok(((), vec![index.docs[d as usize].hgnc_id.clone()])),
                None => Err(search::former_names(index, &symbol.to_lowercase())),
            },
        )
        .await;
    match chosen {
        Ok(Some(c)) => match c.records.into_iter().next().flatten() {
            Some(record) => Ok(raw_json(record)),
            None => Err(ApiError::Internal(format!(
                "{symbol} is in the index of version {} but not among its records",
                c.index.version
            ))),
        },
        Ok(None) => Err(ApiError::no_data()),
        Err(RecordsError::Catalog(e)) => Err(e.into()),
        Err(RecordsError::Choose(found)) => {
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

/// What one term of a lookup means.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum LookupAnswer {
    /// One gene.
    Found {
        term: String,
        hgnc_id: String,
        symbol: String,
        matched_by: Vec<String>,
    },
    /// A previous symbol, alias or cross-reference that several genes carry.
    Ambiguous {
        term: String,
        candidates: Vec<Candidate>,
    },
    /// No gene has it.
    NotFound { term: String, not_found: bool },
}

#[utoipa::path(
    post, path = "/genes/lookup", tag = "genes",
    request_body(content = LookupRequest, content_type = "application/json"),
    responses((status = 200, description = "One answer per term, in order", body = [LookupAnswer]),
        (status = 400, description = "Not `{\"terms\": [strings]}`, more than 10,000 terms, or a term over 256 bytes", body = ErrorBody),
        (status = 404, description = "No data set is loaded (`no_data`)", body = ErrorBody),
        (status = 413, description = "The body is over 1 MiB", body = ErrorBody),
        (status = 503, description = "Redis is unavailable; retry after the Retry-After seconds", body = ErrorBody, headers(("Retry-After" = String, description = "Seconds to wait"))))
)]
async fn lookup(store: Store, catalog: Catalog, body: Bytes) -> Result<Response, ApiError> {
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
    let index = catalog
        .live(&mut store.data.clone(), &store.keys)
        .await?
        .ok_or_else(ApiError::no_data)?;
    // 10,000 terms take milliseconds of CPU: off the async threads.
    let body = tokio::task::spawn_blocking(move || {
        let answers: Vec<LookupAnswer> = req
            .terms
            .into_iter()
            .map(|term| match search::lookup(&index, &term) {
                Found::One(c) => LookupAnswer::Found {
                    term,
                    hgnc_id: c.hgnc_id,
                    symbol: c.symbol,
                    matched_by: c.matched_by,
                },
                Found::Ambiguous(candidates) => LookupAnswer::Ambiguous { term, candidates },
                Found::NotFound => LookupAnswer::NotFound {
                    term,
                    not_found: true,
                },
            })
            .collect();
        serde_json::to_vec(&answers)
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))?
    .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(raw_json(Bytes::from(body)))
}

#[utoipa::path(
    get, path = "/genes/{hgnc_id}", tag = "genes",
    params(("hgnc_id" = String, Path, description = "An HGNC id: `HGNC:5` (or `HGNC%3A5`)", pattern = "^HGNC:[0-9]{1,9}$")),
    responses((status = 200, description = "The gene's record as HGNC publishes it", body = Gene),
        (status = 400, description = "Not an HGNC id (`bad_hgnc_id`)", body = ErrorBody),
        (status = 404, description = "No such gene (`gene_not_found`), or no data loaded (`no_data`)", body = ErrorBody),
        (status = 503, description = "Redis is unavailable; retry after the Retry-After seconds", body = ErrorBody, headers(("Retry-After" = String, description = "Seconds to wait"))))
)]
async fn get_gene(raw_id: String, store: Store) -> Result<Response, ApiError> {
    if raw_id == "lookup" {
        return Err(ApiError::MethodNotAllowed);
    }
    let id = decode_segment(&raw_id)
        .parse::<HgncId>()
        .map_err(|m| ApiError::bad_request("bad_hgnc_id", m))?;
    let mut conn = store.data.clone();
    match genes::get_gene(&mut conn, &store.keys, &id).await? {
        Some(record) => Ok(raw_json(record)),
        None if genes::is_loaded(&mut conn, &store.keys).await? => Err(ApiError::not_found(
            "gene_not_found",
            format!("no gene {id} in the loaded data set"),
        )),
        None => Err(ApiError::no_data()),
    }
}

/// `HGNC%3A5` and `HGNC:5` are the same id.
fn decode_segment(s: &str) -> String {
    s.replace("%3A", ":").replace("%3a", ":")
}
