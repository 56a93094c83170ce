//! `/genes`: the ids of the loaded genes, and one gene by id.

use bytes::Bytes;
use warp::reply::Response;
use warp::{Filter, Rejection};

use super::docs::Gene;
use super::{raw_json, respond, with, AppState};
use crate::error::{ApiError, ErrorBody};
use crate::genes::{self, HgncId};
use crate::store::Store;

/// `GET /genes`, `GET /genes/<hgnc_id>`.
pub fn routes(state: &AppState) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let store = state.pipeline.store.clone();
    let all = warp::path!("genes")
        .and(warp::get())
        .and(with(store.clone()))
        .then(get_genes)
        .map(respond);
    let one = warp::path!("genes" / String)
        .and(warp::get())
        .and(with(store))
        .then(get_gene)
        .map(respond);
    all.or(one).unify()
}

#[utoipa::path(
    get, path = "/genes", tag = "genes",
    responses((status = 200, description = "The HGNC ids of every loaded gene", body = [String]),
        (status = 404, description = "No data set is loaded (`no_data`)", body = ErrorBody), (status = 503, description = "Redis is unavailable; retry after the Retry-After seconds", body = ErrorBody, headers(("Retry-After" = String, description = "Seconds to wait"))))
)]
async fn get_genes(store: Store) -> Result<Response, ApiError> {
    let ids = genes::current_part(&mut store.data.clone(), &store.keys, "ids")
        .await?
        .ok_or_else(ApiError::no_data)?;
    Ok(raw_json(Bytes::from(ids)))
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
