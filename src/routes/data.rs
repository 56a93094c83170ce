//! `/data`: the whole data set. POST queues a load, GET streams every
//! record, DELETE removes them.

use bytes::Bytes;
use warp::http::{header, HeaderValue, StatusCode};
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use super::docs::{Deleted, EmptyBody, Gene};
use super::{accepted, json_with, prefer_wait, respond, small_body, with, AppState};
use crate::error::{ApiError, ErrorBody};
use crate::genes;
use crate::genes::LoadSummary;
use crate::jobs::Command;
use crate::jobs::Job;
use crate::pipeline::Pipeline;
use crate::store::Store;

/// `GET /data`, `POST /data`, `DELETE /data`, `GET /data/info`.
pub fn routes(state: &AppState) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let store = state.pipeline.store.clone();
    let info = warp::path!("data" / "info")
        .and(warp::get())
        .and(with(store.clone()))
        .then(data_info)
        .map(respond);
    let data = warp::path!("data").and(
        warp::get()
            .and(with(store.clone()))
            .then(get_data)
            .map(respond)
            .or(warp::post()
                .and(with(state.clone()))
                .and(prefer_wait())
                .and(small_body())
                .then(post_data)
                .map(respond))
            .unify()
            .or(warp::delete()
                .and(with(store))
                .then(delete_data)
                .map(respond))
            .unify(),
    );
    info.or(data).unify()
}

/// POST /data takes no parameters: the source is the server's to choose.
pub(super) fn check_load_body(body: &[u8]) -> Result<(), ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(());
    }
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request("malformed_json", format!("the JSON body is malformed: {e}"))
    })?;
    match value.as_object() {
        Some(o) if o.is_empty() => Ok(()),
        Some(o) if o.contains_key("source") => Err(ApiError::bad_request(
            "source_not_allowed",
            "the data source is set on the server (GENE_API__DATA__SOURCE), not per request; \
             send POST /data with no body",
        )),
        _ => Err(ApiError::bad_request(
            "unexpected_body",
            "POST /data takes no body; send it empty",
        )),
    }
}

#[utoipa::path(
    post, path = "/data", tag = "data",
    params(("Prefer" = Option<String>, Header, description = "`wait=<seconds>` (RFC 7240): answer when the job ends, or after that many seconds (at most `http.max_wait_secs`)", pattern = "^wait=[0-9]{1,3}$")),
    request_body(content = Option<EmptyBody>, description = "Nothing, or `{}`: the source is the server's (`GENE_API__DATA__SOURCE`)", content_type = "application/json"),
    responses((status = 202, description = "A load of the configured source: the job, queued (follow `Location`)", body = Job, headers(("Location" = String, description = "/jobs/<id>"))),
        (status = 200, description = "With `Prefer: wait`: the job ended `done` in time", body = Job, headers(("Location" = String, description = "/jobs/<id>"))),
        (status = 400, description = "A malformed parameter; the message says what is allowed", body = ErrorBody), (status = 413, description = "The body is over 16 KiB", body = ErrorBody), (status = 422, description = "With `Prefer: wait`: the job failed in that time (`job_failed`, the job in `job`)", body = ErrorBody), (status = 503, description = "Redis is unavailable; retry after the Retry-After seconds", body = ErrorBody, headers(("Retry-After" = String, description = "Seconds to wait"))))
)]
async fn post_data(state: AppState, wait: Option<u64>, body: Bytes) -> Result<Response, ApiError> {
    check_load_body(&body)?;
    let job = state.pipeline.submit(load_command(&state.pipeline)).await?;
    accepted(&state, job, wait).await
}

/// A load of the server's configured source.
pub(super) fn load_command(pipeline: &Pipeline) -> Command {
    Command::Load {
        source: pipeline.settings.data.source.clone(),
    }
}

#[utoipa::path(
    get, path = "/data", tag = "data",
    responses((status = 200, description = "Every gene record of the live data set", body = [Gene]),
        (status = 404, description = "No data set is loaded (`no_data`)", body = ErrorBody), (status = 503, description = "Redis is unavailable; retry after the Retry-After seconds", body = ErrorBody, headers(("Retry-After" = String, description = "Seconds to wait"))))
)]
async fn get_data(store: Store) -> Result<Response, ApiError> {
    let (stream, len) = genes::stream_blob(&mut store.data.clone(), &store.keys)
        .await?
        .ok_or_else(ApiError::no_data)?;
    let mut resp = warp::reply::stream(stream).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    Ok(resp)
}

#[utoipa::path(
    get, path = "/data/info", tag = "data",
    responses((status = 200, description = "What the live data set is: records, source, when it was loaded", body = LoadSummary),
        (status = 404, description = "No data set is loaded (`no_data`)", body = ErrorBody),
        (status = 503, description = "Redis is unavailable; retry after the Retry-After seconds", body = ErrorBody, headers(("Retry-After" = String, description = "Seconds to wait"))))
)]
async fn data_info(store: Store) -> Result<Response, ApiError> {
    let summary = genes::summary(&mut store.data.clone(), &store.keys)
        .await?
        .ok_or_else(ApiError::no_data)?;
    Ok(json_with(StatusCode::OK, &summary))
}

#[utoipa::path(
    delete, path = "/data", tag = "data",
    responses((status = 200, description = "The data set is removed (`deleted` is the record count, 0 when none was loaded)", body = Deleted),
        (status = 503, description = "Redis is unavailable; retry after the Retry-After seconds", body = ErrorBody, headers(("Retry-After" = String, description = "Seconds to wait"))))
)]
async fn delete_data(store: Store) -> Result<Response, ApiError> {
    let n = genes::delete_all(&mut store.data.clone(), &store.keys).await?;
    Ok(json_with(
        StatusCode::OK,
        &serde_json::json!({"deleted": n, "message": format!("removed {n} gene records")}),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_body_must_be_empty() {
        assert!(check_load_body(b"").is_ok());
        assert!(check_load_body(b" {} ").is_ok());
        let e = check_load_body(br#"{"source": "/etc/passwd"}"#).unwrap_err();
        assert!(e.to_string().contains("GENE_API__DATA__SOURCE"));
        assert!(check_load_body(b"{oops")
            .unwrap_err()
            .to_string()
            .contains("malformed"));
        assert!(check_load_body(b"[1]").is_err());
    }
}
