//! `/jobs/dead`: entries that no worker could finish, and putting them back.

use std::collections::HashMap;

use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection};

use super::docs::{Deleted, Requeued};
use super::{json_with, limit_param, only_params, respond, with, AppState};
use crate::error::{ApiError, ErrorBody};
use crate::pipeline::{ControlError, DeadEntry, Pipeline};

/// `GET /jobs/dead`, `POST /jobs/dead/<entry_id>/requeue`, `DELETE /jobs/dead/<entry_id>`.
pub fn routes(state: &AppState) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let pipeline = state.pipeline.clone();
    let list = warp::path!("jobs" / "dead")
        .and(warp::get())
        .and(warp::query::<HashMap<String, String>>())
        .and(with(pipeline.clone()))
        .then(list_dead)
        .map(respond);
    let requeue = warp::path!("jobs" / "dead" / String / "requeue")
        .and(warp::post())
        .and(with(pipeline.clone()))
        .then(requeue_dead)
        .map(respond);
    let drop = warp::path!("jobs" / "dead" / String)
        .and(warp::delete())
        .and(with(pipeline))
        .then(drop_dead)
        .map(respond);
    list.or(requeue).unify().or(drop).unify()
}

/// Most entries one listing returns.
const MAX_LIST: usize = 1000;

#[utoipa::path(
    get, path = "/jobs/dead", tag = "jobs",
    params(("limit" = Option<usize>, Query, description = "At most this many, 1 to 1000 (default 100)", minimum = 1, maximum = 1000)),
    responses((status = 200, description = "Entries no worker could finish, oldest first", body = [DeadEntry]),
        (status = 400, description = "A malformed parameter; the message says what is allowed", body = ErrorBody), (status = 503, description = "Redis is unavailable; retry after the Retry-After seconds", body = ErrorBody, headers(("Retry-After" = String, description = "Seconds to wait"))))
)]
async fn list_dead(
    query: HashMap<String, String>,
    pipeline: Pipeline,
) -> Result<Response, ApiError> {
    only_params(&query, &["limit"], "GET /jobs/dead")?;
    let limit = limit_param(&query, 100, MAX_LIST)?;
    Ok(json_with(
        StatusCode::OK,
        &pipeline.dead_letters(limit).await?,
    ))
}

/// A dead-letter entry id: `<ms>-<seq>`, as GET /jobs/dead lists them.
fn parse_entry_id(raw: &str) -> Result<String, ApiError> {
    // Both halves are 64-bit numbers in Redis; a larger one is not an id.
    let ok = raw.split_once('-').is_some_and(|(ms, seq)| {
        [ms, seq]
            .iter()
            .all(|p| p.bytes().all(|b| b.is_ascii_digit()) && p.parse::<u64>().is_ok())
    });
    if ok {
        Ok(raw.to_string())
    } else {
        Err(ApiError::bad_request(
            "bad_entry_id",
            format!("{raw:?} is not a dead-letter entry id: expected <ms>-<seq> as GET /jobs/dead lists them"),
        ))
    }
}

fn no_entry(id: &str) -> ApiError {
    ApiError::not_found(
        "dead_letter_not_found",
        format!("no dead-letter entry {id}; GET /jobs/dead lists them"),
    )
}

#[utoipa::path(
    post, path = "/jobs/dead/{entry_id}/requeue", tag = "jobs",
    params(("entry_id" = String, Path, description = "A dead-letter entry id (`<ms>-<seq>`)", pattern = "^[0-9]{1,19}-[0-9]{1,19}$")),
    responses((status = 202, description = "The entry's job is queued again", body = Requeued),
        (status = 400, description = "Not an entry id (`bad_entry_id`)", body = ErrorBody),
        (status = 404, description = "No such entry (`dead_letter_not_found`)", body = ErrorBody),
        (status = 503, description = "Redis is unavailable; retry after the Retry-After seconds", body = ErrorBody, headers(("Retry-After" = String, description = "Seconds to wait"))))
)]
async fn requeue_dead(raw_id: String, pipeline: Pipeline) -> Result<Response, ApiError> {
    let id = parse_entry_id(&raw_id)?;
    match pipeline.requeue_dead(&id).await {
        Ok((entry, job)) => Ok(json_with(
            StatusCode::ACCEPTED,
            &serde_json::json!({"requeued": id, "entry_id": entry, "job": job}),
        )),
        Err(ControlError::NotFound | ControlError::WrongState(_)) => Err(no_entry(&id)),
        Err(other) => Err(other.into()),
    }
}

#[utoipa::path(
    delete, path = "/jobs/dead/{entry_id}", tag = "jobs",
    params(("entry_id" = String, Path, description = "A dead-letter entry id (`<ms>-<seq>`)", pattern = "^[0-9]{1,19}-[0-9]{1,19}$")),
    responses((status = 200, description = "The entry is removed", body = Deleted),
        (status = 400, description = "Not an entry id (`bad_entry_id`)", body = ErrorBody),
        (status = 404, description = "No such entry (`dead_letter_not_found`)", body = ErrorBody),
        (status = 503, description = "Redis is unavailable; retry after the Retry-After seconds", body = ErrorBody, headers(("Retry-After" = String, description = "Seconds to wait"))))
)]
async fn drop_dead(raw_id: String, pipeline: Pipeline) -> Result<Response, ApiError> {
    let id = parse_entry_id(&raw_id)?;
    if !pipeline.drop_dead(&id).await? {
        return Err(no_entry(&id));
    }
    Ok(json_with(
        StatusCode::OK,
        &serde_json::json!({"deleted": 1, "message": format!("removed dead-letter entry {id}")}),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_ids_are_stream_ids() {
        assert_eq!(
            parse_entry_id("1732950000123-0").unwrap(),
            "1732950000123-0"
        );
        // The second-to-last was found by schemathesis: a 500 before.
        for bad in [
            "",
            "-",
            "12",
            "12-",
            "-3",
            "a-1",
            "1-2-3",
            "1 -2",
            "94862462703016311007-8",
            "+1-2",
        ] {
            assert!(parse_entry_id(bad).is_err(), "{bad}");
        }
    }
}
