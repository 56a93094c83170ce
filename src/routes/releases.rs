//! `/releases`: the kept HGNC releases, what changed between two of them,
//! and one gene's (or symbol's) history across them.

use std::collections::HashMap;
use std::sync::Arc;

use serde::Serialize;
use utoipa::ToSchema;
use warp::http::{header, HeaderValue, StatusCode};
use warp::reply::Response;
use warp::{Filter, Rejection};

use super::{json_with, limit_param, of_release, only_params, respond, with, AppState};
use crate::error::{ApiError, ErrorBody};
use crate::genes::diff::{self, Change, ChangeKind, HistoryEntry, Summary};
use crate::genes::{self, Catalog, Pick, ReleaseInfo};
use crate::store::Store;

/// Changes one diff page holds at most.
/// As far as a diff's pages go (as for the other listings).
const MAX_DIFF_OFFSET: usize = 1_000_000;
const MAX_DIFF_LIMIT: usize = 50_000;
const DEFAULT_DIFF_LIMIT: usize = 100;

/// `GET /releases`, `GET /releases/<id>`, `GET /releases/<a>/diff/<b>`,
/// `GET /genes/<id>/history`, `GET /genes/symbol/<symbol>/history`.
pub fn routes(state: &AppState) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let store = state.pipeline.store.clone();
    let catalog = state.catalog.clone();
    let keep = state.pipeline.settings.data.keep_releases;
    let list = warp::path!("releases")
        .and(warp::get())
        .and(with(store.clone()))
        .and(with(keep))
        .then(list)
        .map(respond);
    let one = warp::path!("releases" / String)
        .and(warp::get())
        .and(with(store.clone()))
        .and(with(catalog.clone()))
        .then(one)
        .map(respond);
    let diff = warp::path!("releases" / String / "diff" / String)
        .and(warp::get())
        .and(warp::query::<HashMap<String, String>>())
        .and(warp::header::optional::<String>("accept"))
        .and(with(store.clone()))
        .and(with(catalog.clone()))
        .then(get_diff)
        .map(respond);
    let gene_history = warp::path!("genes" / String / "history")
        .and(warp::get())
        .and(with(store.clone()))
        .and(with(catalog.clone()))
        .then(gene_history)
        .map(respond);
    let symbol_history = warp::path!("genes" / "symbol" / String / "history")
        .and(warp::get())
        .and(with(store))
        .and(with(catalog))
        .then(symbol_history)
        .map(respond);
    list.or(one)
        .unify()
        .or(diff)
        .unify()
        .or(symbol_history)
        .unify()
        .or(gene_history)
        .unify()
}

/// A kept release, and whether it is the live one.
#[derive(Serialize, ToSchema)]
pub struct KeptRelease {
    #[serde(flatten)]
    info: ReleaseInfo,
    /// True for the release answers come from by default.
    live: bool,
}

/// `GET /releases`' answer.
#[derive(Serialize, ToSchema)]
pub struct Releases {
    /// The live release's id (null when nothing is loaded).
    live: Option<String>,
    /// How many releases are kept (`data.keep_releases`).
    keep: usize,
    /// The kept releases, newest first.
    releases: Vec<KeptRelease>,
}

#[utoipa::path(
    get, path = "/releases", tag = "releases",
    responses((status = 200, description = "The kept releases, newest first, and which is live (empty when nothing is loaded)", body = Releases),
        (status = 503, description = "Redis is unavailable; retry after the Retry-After seconds", body = ErrorBody, headers(("Retry-After" = String, description = "Seconds to wait"))))
)]
async fn list(store: Store, keep: usize) -> Result<Response, ApiError> {
    let (infos, live) = genes::kept_infos(&mut store.data.clone(), &store.keys).await?;
    let releases = infos
        .into_iter()
        .rev()
        .map(|info| KeptRelease {
            live: live.as_deref() == Some(info.id.as_str()),
            info,
        })
        .collect();
    Ok(json_with(
        StatusCode::OK,
        &Releases {
            live,
            keep,
            releases,
        },
    ))
}

#[utoipa::path(
    get, path = "/releases/{release}", tag = "releases",
    params(("release" = String, Path, description = "A release id (`GET /releases` lists them), or `live`", max_length = 64, pattern = "^[A-Za-z0-9_-]{1,64}$")),
    responses((status = 200, description = "What the release is: source, bytes, sha256, ETag/Last-Modified, as-of date and how it was found, records, when loaded, its withdrawn file", body = KeptRelease),
        (status = 400, description = "Not a release id (`bad_release`)", body = ErrorBody),
        (status = 404, description = "No such release (`release_not_found`) or nothing loaded (`no_data`)", body = ErrorBody),
        (status = 410, description = "The release is no longer kept (`release_not_kept`, `kept` lists the kept ones)", body = ErrorBody),
        (status = 503, description = "Redis is unavailable; retry after the Retry-After seconds", body = ErrorBody, headers(("Retry-After" = String, description = "Seconds to wait"))))
)]
async fn one(id: String, store: Store, catalog: Catalog) -> Result<Response, ApiError> {
    let pick = Pick::from_param(Some(&id)).map_err(|m| ApiError::bad_request("bad_release", m))?;
    let mut conn = store.data.clone();
    let live = genes::summary(&mut conn, &store.keys).await?;
    let info = match &pick {
        Pick::Live => live.clone(),
        Pick::Release(id) => genes::release_info(&mut conn, &store.keys, id).await?,
    };
    let Some(info) = info else {
        return Err(super::missing_release(&catalog, &mut conn, &store.keys, &pick).await);
    };
    let is_live = live.is_some_and(|l| l.id == info.id);
    let id = info.id.clone();
    Ok(of_release(
        json_with(
            StatusCode::OK,
            &KeptRelease {
                info,
                live: is_live,
            },
        ),
        &id,
    ))
}

/// A page of a diff.
#[derive(Serialize, ToSchema)]
pub struct DiffPage<'a> {
    from: &'a str,
    to: &'a str,
    /// Counts over the whole diff (not only this page or filter).
    summary: &'a Summary,
    /// Changes that pass the filters, in all.
    total: usize,
    limit: usize,
    offset: usize,
    /// This page's changes, by HGNC id number.
    changes: Vec<&'a Change>,
}

#[utoipa::path(
    get, path = "/releases/{from}/diff/{to}", tag = "releases",
    params(
        ("from" = String, Path, description = "The earlier release's id (or `live`)", max_length = 64, pattern = "^[A-Za-z0-9_-]{1,64}$"),
        ("to" = String, Path, description = "The later release's id (or `live`)", max_length = 64, pattern = "^[A-Za-z0-9_-]{1,64}$"),
        ("kind" = Option<String>, Query, description = "Only these kinds, comma-separated: added, withdrawn, merged, split, removed, renamed, changed", pattern = "^(added|withdrawn|merged|split|removed|renamed|changed)(,(added|withdrawn|merged|split|removed|renamed|changed))*$"),
        ("field" = Option<String>, Query, description = "Only genes where one of these fields changed, comma-separated (e.g. `symbol,name`)", pattern = "^.*\\S.*$"),
        ("limit" = Option<usize>, Query, description = "Changes per page (1 to 50,000, default 100)", minimum = 1, maximum = 50000),
        ("offset" = Option<usize>, Query, description = "Skip this many matching changes first (at most 1,000,000)", minimum = 0, maximum = 1000000),
        ("format" = Option<String>, Query, description = "`json` (the default) or `tsv`: one row per changed field (hgnc_id, kind, old_symbol, new_symbol, field, old, new); also chosen by `Accept: text/tab-separated-values`", pattern = "^(json|tsv)$"),
    ),
    responses((status = 200, description = "The summary (by kind, by locus group) and a page of changes, one per gene: kind, old and new symbol, each changed field's old and new value", content(
            (DiffPage = "application/json"),
            (String = "text/tab-separated-values")),
            headers(("X-Total-Count" = String, description = "Changes that pass the filters, in all"))),
        (status = 400, description = "A release diffed with itself (`same_release`), a bad parameter or kind", body = ErrorBody),
        (status = 404, description = "No such release (`release_not_found`) or nothing loaded (`no_data`)", body = ErrorBody),
        (status = 410, description = "A release is no longer kept (`release_not_kept`)", body = ErrorBody),
        (status = 503, description = "Redis is unavailable; retry after the Retry-After seconds", body = ErrorBody, headers(("Retry-After" = String, description = "Seconds to wait"))))
)]
async fn get_diff(
    from: String,
    to: String,
    query: HashMap<String, String>,
    accept: Option<String>,
    store: Store,
    catalog: Catalog,
) -> Result<Response, ApiError> {
    only_params(
        &query,
        &["kind", "field", "limit", "offset", "format"],
        "/releases/<from>/diff/<to>",
    )?;
    let limit = limit_param(&query, DEFAULT_DIFF_LIMIT, MAX_DIFF_LIMIT)?;
    let offset = match query.get("offset") {
        None => 0,
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| *n <= MAX_DIFF_OFFSET)
            .ok_or_else(|| {
                ApiError::bad_request("bad_offset", "offset must be a number from 0 to 1000000")
            })?,
    };
    let tsv = match query.get("format").map(String::as_str) {
        Some("tsv") => true,
        Some("json") => false,
        None => accept.is_some_and(|a| a.contains("text/tab-separated-values")),
        Some(other) => {
            return Err(ApiError::bad_request(
                "bad_parameter",
                format!("format is json or tsv, got {other:?}"),
            ))
        }
    };
    let kinds: Option<Vec<ChangeKind>> = match query.get("kind") {
        None => None,
        Some(list) => Some(
            list.split(',')
                .map(|k| {
                    ChangeKind::parse(k.trim()).ok_or_else(|| {
                        let all: Vec<&str> = ChangeKind::ALL.iter().map(|k| k.as_str()).collect();
                        ApiError::bad_request(
                            "bad_kind",
                            format!("kind {k:?} is none of {}", all.join(", ")),
                        )
                    })
                })
                .collect::<Result<_, _>>()?,
        ),
    };
    let fields: Option<Vec<&str>> = query.get("field").map(|f| {
        f.split(',')
            .map(str::trim)
            .filter(|f| !f.is_empty())
            .collect()
    });
    let mut conn = store.data.clone();
    // `live` names the live release; a diff is always between two ids.
    let resolve =
        |s: String| Pick::from_param(Some(&s)).map_err(|m| ApiError::bad_request("bad_release", m));
    let (pa, pb) = (resolve(from)?, resolve(to)?);
    let (a, b) = (
        catalog.release(&mut conn, &store.keys, &pa).await?,
        catalog.release(&mut conn, &store.keys, &pb).await?,
    );
    if a.id() == b.id() {
        return Err(ApiError::bad_request(
            "same_release",
            format!("a diff needs two releases; both name {}", a.id()),
        ));
    }
    let d = catalog.diff(&mut conn, &store.keys, a.id(), b.id()).await?;
    let passes = |c: &&Change| {
        kinds.as_ref().is_none_or(|k| k.contains(&c.kind))
            && fields
                .as_ref()
                .is_none_or(|f| c.fields.iter().any(|fc| f.contains(&fc.field.as_str())))
    };
    let matching: Vec<&Change> = d.changes.iter().filter(passes).collect();
    let total = matching.len();
    let page: Vec<&Change> = matching.into_iter().skip(offset).take(limit).collect();
    let mut resp = if tsv {
        let mut out = String::from("hgnc_id\tkind\told_symbol\tnew_symbol\tfield\told\tnew\n");
        for c in &page {
            let cell = |v: &serde_json::Value| match v {
                serde_json::Value::Null => String::new(),
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Array(items) => items
                    .iter()
                    .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_string))
                    .collect::<Vec<_>>()
                    .join("|"),
                other => other.to_string(),
            };
            let head = format!(
                "{}\t{}\t{}\t{}",
                c.hgnc_id,
                c.kind.as_str(),
                c.old_symbol.as_deref().unwrap_or(""),
                c.new_symbol.as_deref().unwrap_or("")
            );
            let shown: Vec<&diff::FieldChange> = c
                .fields
                .iter()
                .filter(|fc| {
                    fields
                        .as_ref()
                        .is_none_or(|f| f.contains(&fc.field.as_str()))
                })
                .collect();
            if shown.is_empty() {
                out.push_str(&head);
                out.push_str("\t\t\t\n");
            }
            for fc in shown {
                let clean = |s: String| s.replace(['\t', '\n', '\r'], " ");
                out.push_str(&format!(
                    "{head}\t{}\t{}\t{}\n",
                    fc.field,
                    clean(cell(&fc.old)),
                    clean(cell(&fc.new))
                ));
            }
        }
        let mut r = Response::new(out.into());
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/tab-separated-values; charset=utf-8"),
        );
        r
    } else {
        json_with(
            StatusCode::OK,
            &DiffPage {
                from: &d.from,
                to: &d.to,
                summary: &d.summary,
                total,
                limit,
                offset,
                changes: page,
            },
        )
    };
    resp.headers_mut()
        .insert("x-total-count", HeaderValue::from(total as u64));
    Ok(resp)
}

/// A gene across the kept releases.
#[derive(Serialize, ToSchema)]
pub struct GeneHistory {
    hgnc_id: String,
    /// One entry per kept release where its symbol, name, status or
    /// withdrawn target changed, oldest first (the first kept release
    /// always has one).
    history: Vec<HistoryEntry>,
}

#[utoipa::path(
    get, path = "/genes/{hgnc_id}/history", tag = "releases",
    params(("hgnc_id" = String, Path, description = "An HGNC id: `HGNC:4463`", pattern = "^HGNC:[0-9]{1,9}$")),
    responses((status = 200, description = "The gene in every kept release where it changed (symbol, name, status, withdrawn), oldest first", body = GeneHistory),
        (status = 400, description = "Not an HGNC id (`bad_hgnc_id`)", body = ErrorBody),
        (status = 404, description = "No kept release has this id, approved or withdrawn (`gene_not_found`), or nothing loaded (`no_data`)", body = ErrorBody),
        (status = 503, description = "Redis is unavailable; retry after the Retry-After seconds", body = ErrorBody, headers(("Retry-After" = String, description = "Seconds to wait"))))
)]
async fn gene_history(
    raw_id: String,
    store: Store,
    catalog: Catalog,
) -> Result<Response, ApiError> {
    let id = super::genes::parse_hgnc_id(&raw_id)?;
    let mut conn = store.data.clone();
    let kept = catalog.kept(&mut conn, &store.keys).await?;
    let history = history_of(&mut conn, &store, &kept, id.as_str()).await?;
    if history.iter().all(|h| h.status == "absent") {
        return Err(ApiError::not_found(
            "gene_not_found",
            format!("{id} is in no kept release, approved or withdrawn"),
        ));
    }
    Ok(json_with(
        StatusCode::OK,
        &GeneHistory {
            hgnc_id: id.to_string(),
            history,
        },
    ))
}

async fn history_of(
    conn: &mut crate::store::Conn,
    store: &Store,
    kept: &[Arc<genes::Release>],
    id: &str,
) -> Result<Vec<HistoryEntry>, ApiError> {
    diff::history(conn, &store.keys, kept, id)
        .await?
        .ok_or_else(|| genes::CatalogError::Changing.into())
}

/// A symbol across the kept releases: every gene that had it.
#[derive(Serialize, ToSchema)]
pub struct SymbolHistory {
    symbol: String,
    /// Each gene that had this approved (or withdrawn) symbol in a kept
    /// release, or, when none did, that carries it as a previous symbol,
    /// with its history.
    genes: Vec<GeneHistory>,
}

#[utoipa::path(
    get, path = "/genes/symbol/{symbol}/history", tag = "releases",
    params(("symbol" = String, Path, description = "A symbol, any case: `GPR1`", min_length = 1, max_length = 256, pattern = "^.*\\S.*$")),
    responses((status = 200, description = "Every gene that had this symbol in a kept release, each with its history: so GPR1 shows HGNC:4463 becoming CMKLR2", body = SymbolHistory),
        (status = 400, description = "An empty or over-long symbol (`bad_symbol`)", body = ErrorBody),
        (status = 404, description = "No kept release knows the symbol (`gene_not_found`), or nothing loaded (`no_data`)", body = ErrorBody),
        (status = 503, description = "Redis is unavailable; retry after the Retry-After seconds", body = ErrorBody, headers(("Retry-After" = String, description = "Seconds to wait"))))
)]
async fn symbol_history(raw: String, store: Store, catalog: Catalog) -> Result<Response, ApiError> {
    let symbol = super::genes::parse_symbol(&raw)?;
    let lower = symbol.to_lowercase();
    let mut conn = store.data.clone();
    let kept = catalog.kept(&mut conn, &store.keys).await?;
    let add = |ids: &mut Vec<String>, id: &str| {
        if !ids.iter().any(|x| x == id) {
            ids.push(id.to_string());
        }
    };
    let mut ids: Vec<String> = Vec::new();
    for r in &kept {
        if let Some(d) = crate::search::by_symbol(&r.index, &symbol) {
            add(&mut ids, &r.index.docs[d as usize].hgnc_id);
        }
        for e in r.withdrawn.by_symbol(&symbol) {
            add(&mut ids, &e.hgnc_id);
        }
    }
    if ids.is_empty() {
        for r in &kept {
            if let Some(t) = r.index.field("prev_symbol") {
                for d in t.exact(&lower) {
                    add(&mut ids, &r.index.docs[*d as usize].hgnc_id);
                }
            }
        }
    }
    if ids.is_empty() {
        return Err(ApiError::not_found(
            "gene_not_found",
            format!("no kept release has {symbol:?} as an approved, withdrawn or previous symbol"),
        ));
    }
    let mut genes = Vec::with_capacity(ids.len());
    for id in ids {
        let history = history_of(&mut conn, &store, &kept, &id).await?;
        genes.push(GeneHistory {
            hgnc_id: id,
            history,
        });
    }
    Ok(json_with(StatusCode::OK, &SymbolHistory { symbol, genes }))
}
