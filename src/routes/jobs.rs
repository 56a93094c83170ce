//! `/jobs`: the newest jobs, and one job by id.

use std::collections::HashMap;

use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection};

use super::{job_not_found, json_with, parse_job_id, respond, with, AppState};
use crate::error::ApiError;
use crate::jobs;
use crate::store::Store;

/// `GET /jobs?limit=N`, `GET /jobs/<id>`.
pub fn routes(state: &AppState) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let store = state.pipeline.store.clone();
    let max = state.pipeline.settings.http.jobs_list_limit;
    let list = warp::path!("jobs")
        .and(warp::get())
        .and(warp::query::<HashMap<String, String>>())
        .and(with(store.clone()))
        .and(with(max))
        .then(list_jobs)
        .map(respond);
    let one = warp::path!("jobs" / String)
        .and(warp::get())
        .and(with(store))
        .then(get_job)
        .map(respond);
    list.or(one).unify()
}

async fn list_jobs(
    query: HashMap<String, String>,
    store: Store,
    max: usize,
) -> Result<Response, ApiError> {
    let limit = match query.get("limit") {
        None => max,
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| {
                ApiError::bad_request(
                    "bad_limit",
                    format!("limit must be a number from 1 to {max}"),
                )
            })?,
    };
    let list = jobs::recent(&mut store.data.clone(), &store.keys, limit).await?;
    Ok(json_with(StatusCode::OK, &list))
}

async fn get_job(raw_id: String, store: Store) -> Result<Response, ApiError> {
    let id = parse_job_id(&raw_id)?;
    let job = jobs::get(&mut store.data.clone(), &store.keys, &id)
        .await?
        .ok_or_else(|| job_not_found(&id))?;
    Ok(json_with(StatusCode::OK, &job))
}
