//! `GET /search` (genes by a query) and `GET /info` (what the data set holds).

use std::collections::HashMap;

use serde::Serialize;
use utoipa::ToSchema;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection};

use super::{json_with, only_params, respond, with, AppState};
use crate::error::{ApiError, ErrorBody};
use crate::genes::index::FieldInfo;
use crate::genes::Catalog;
use crate::search::{self, SearchAnswer};
use crate::store::Store;

/// Most results one page of a search may hold.
const MAX_SEARCH_LIMIT: usize = 1000;
/// Results per page when `limit` is not given.
const DEFAULT_SEARCH_LIMIT: usize = 20;
/// Most withdrawn entries one search lists.
const MAX_WITHDRAWN_HITS: usize = 100;
/// Furthest a page of results may start.
const MAX_SEARCH_OFFSET: usize = 100_000;

/// `GET /search`, `GET /info`.
pub fn routes(state: &AppState) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let store = state.pipeline.store.clone();
    let catalog = state.catalog.clone();
    let search = warp::path!("search")
        .and(warp::get())
        .and(warp::query::<HashMap<String, String>>())
        .and(with(store.clone()))
        .and(with(catalog.clone()))
        .then(search)
        .map(respond);
    let info = warp::path!("info")
        .and(warp::get())
        .and(super::release_query())
        .and(with(store))
        .and(with(catalog))
        .then(info)
        .map(respond);
    search.or(info).unify()
}

#[utoipa::path(
    get, path = "/search", tag = "genes",
    params(
        ("q" = String, Query, description = "A query: `BRCA1`, `BRCA*`, `*kinase*`, `symbol:TP53`, `locus_group:\"protein-coding gene\" AND chromosome:17`, `(a OR b) NOT c`. A bare term searches symbol, alias_symbol and prev_symbol", min_length = 1, max_length = 512),
        ("limit" = Option<usize>, Query, description = "Results per page (1 to 1000, default 20)", minimum = 1, maximum = 1000),
        ("offset" = Option<usize>, Query, description = "Skip this many results first (at most 100,000)", minimum = 0, maximum = 100000),
        ("withdrawn" = Option<bool>, Query, description = "`true`: also list, under `withdrawn`, the withdrawn ids whose withdrawn symbol matches a bare-term query (wildcards allowed), each with where it points now"),
        ("release" = Option<String>, Query, description = "Answer from this kept release (`GET /releases` lists them; `live`: the live one); the default is the live one (so is an empty value)", max_length = 64, pattern = "^[A-Za-z0-9_-]{0,64}$"),
    ),
    responses((status = 200, description = "The matching genes, best first: exact approved symbol, then exact previous symbol or alias, then wildcard matches by symbol", body = SearchAnswer,
            headers(("X-HGNC-Release" = String, description = "The release answered from"))),
        (status = 410, description = "The release asked for is no longer kept (`release_not_kept`, `kept` lists the kept ones)", body = ErrorBody),
        (status = 400, description = "A malformed query (`bad_query`, saying at which character) or parameter", body = ErrorBody),
        (status = 404, description = "No data set is loaded (`no_data`)", body = ErrorBody),
        (status = 503, description = "Redis is unavailable; retry after the Retry-After seconds", body = ErrorBody, headers(("Retry-After" = String, description = "Seconds to wait"))))
)]
async fn search(
    query: HashMap<String, String>,
    store: Store,
    catalog: Catalog,
) -> Result<Response, ApiError> {
    only_params(
        &query,
        &["q", "limit", "offset", "withdrawn", "release"],
        "/search",
    )?;
    let pick = crate::genes::Pick::from_param(query.get("release").map(String::as_str))
        .map_err(|m| ApiError::bad_request("bad_release", m))?;
    let with_withdrawn = match query.get("withdrawn").map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(ApiError::bad_request(
                "bad_parameter",
                format!("withdrawn is true or false, got {other:?}"),
            ))
        }
    };
    let q = query.get("q").ok_or_else(|| {
        ApiError::bad_request(
            "bad_query",
            "q is required, e.g. /search?q=BRCA1 or q=BRCA*",
        )
    })?;
    let parsed = search::parse(q).map_err(|e| ApiError::bad_request("bad_query", e.to_string()))?;
    let limit = super::limit_param(&query, DEFAULT_SEARCH_LIMIT, MAX_SEARCH_LIMIT)?;
    let offset = match query.get("offset") {
        None => 0,
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| *n <= MAX_SEARCH_OFFSET)
            .ok_or_else(|| {
                ApiError::bad_request(
                    "bad_offset",
                    format!("offset must be a number from 0 to {MAX_SEARCH_OFFSET}"),
                )
            })?,
    };
    let release = catalog
        .release(&mut store.data.clone(), &store.keys, &pick)
        .await?;
    let id = release.id().to_string();
    // A bare term (wildcards allowed) is what a withdrawn symbol can match.
    let bare = q.trim().to_lowercase();
    let bare = (with_withdrawn && !bare.is_empty() && !bare.contains([':', ' ', '(', ')', '"']))
        .then_some(bare);
    // A wildcard inside terms scans a field's terms: milliseconds, off the async threads.
    let answer = tokio::task::spawn_blocking(move || {
        let mut answer = search::search(&release.index, &parsed, offset, limit)?;
        if with_withdrawn {
            answer.withdrawn = Some(
                bare.iter()
                    .flat_map(|b| {
                        release
                            .withdrawn
                            .symbols_matching(move |s| search::glob(b, s))
                    })
                    .take(MAX_WITHDRAWN_HITS)
                    .map(|e| release.withdrawn.resolve(e, &release.index))
                    .collect(),
            );
        }
        Ok::<_, search::UnknownField>(answer)
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))?
    .map_err(|e| ApiError::bad_request("bad_query", e.to_string()))?;
    Ok(super::of_release(json_with(StatusCode::OK, &answer), &id))
}

/// One value of a field and how many genes have it.
#[derive(Serialize, ToSchema)]
pub struct ValueCount {
    value: String,
    count: u64,
}

/// What the live data set holds.
#[derive(Serialize, ToSchema)]
pub struct Info {
    /// Gene records in the set.
    records: u64,
    /// Where it was loaded from.
    source: String,
    /// Size of the source, in bytes.
    source_bytes: u64,
    /// When it was loaded (RFC 3339, UTC).
    #[serde(skip_serializing_if = "Option::is_none")]
    loaded_at: Option<String>,
    /// The release's id (also under `release.id`).
    version: String,
    /// The release answered from: its id, source, sha256, as-of date, withdrawn file.
    release: crate::genes::ReleaseInfo,
    /// Every stored field, in HGNC's column order, with its JSON types.
    fields: Vec<FieldInfo>,
    /// What filters and `field:term` may name (the stored fields and `chromosome`).
    searchable: Vec<String>,
    /// Gene counts by `locus_group`, `locus_type` and `status`, commonest first.
    counts: HashMap<String, Vec<ValueCount>>,
}

#[utoipa::path(
    get, path = "/info", tag = "data",
    params(("release" = Option<String>, Query, description = "Answer from this kept release (`GET /releases` lists them; `live`: the live one); the default is the live one (so is an empty value)", max_length = 64, pattern = "^[A-Za-z0-9_-]{0,64}$")),
    responses((status = 200, description = "Records, source, load time, version, fields and their types, the searchable fields, counts by locus group, locus type and status", body = Info),
        (status = 400, description = "Not a release id (`bad_release`)", body = ErrorBody),
        (status = 410, description = "The release asked for is no longer kept (`release_not_kept`, `kept` lists the kept ones)", body = ErrorBody),
        (status = 404, description = "No data set is loaded (`no_data`)", body = ErrorBody),
        (status = 503, description = "Redis is unavailable; retry after the Retry-After seconds", body = ErrorBody, headers(("Retry-After" = String, description = "Seconds to wait"))))
)]
async fn info(
    pick: crate::genes::Pick,
    store: Store,
    catalog: Catalog,
) -> Result<Response, ApiError> {
    // The release's own copy describes it whole: meta and index are one release.
    let release = catalog
        .release(&mut store.data.clone(), &store.keys, &pick)
        .await?;
    let index = &release.index;
    let summary = &release.info;
    let info = Info {
        records: summary.records,
        source: summary.source.clone(),
        source_bytes: summary.source_bytes,
        loaded_at: Some(summary.loaded_at.clone()),
        version: summary.id.clone(),
        release: summary.clone(),
        fields: index.fields.clone(),
        searchable: index.searchable().iter().map(|s| s.to_string()).collect(),
        counts: index
            .facets
            .iter()
            .map(|(f, counts)| {
                let counts = counts
                    .iter()
                    .map(|(value, count)| ValueCount {
                        value: value.clone(),
                        count: *count,
                    })
                    .collect();
                (f.clone(), counts)
            })
            .collect(),
    };
    Ok(super::of_release(
        json_with(StatusCode::OK, &info),
        release.id(),
    ))
}
