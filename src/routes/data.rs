//! `/data`: the whole data set. POST queues a load, GET streams every
//! record, DELETE removes them.

use bytes::Bytes;
use warp::http::{header, HeaderValue, StatusCode};
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use super::{accepted, json_with, prefer_wait, respond, small_body, with, AppState};
use crate::error::ApiError;
use crate::genes;
use crate::jobs::Command;
use crate::pipeline::Pipeline;
use crate::store::Store;

/// `GET /data`, `POST /data`, `DELETE /data`.
pub fn routes(state: &AppState) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let store = state.pipeline.store.clone();
    warp::path!("data").and(
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
    )
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
