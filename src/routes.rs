//! HTTP routes: filters that parse input into types, and plain async handlers.
//!
//! Each route matches its path before its method, so a known path with the
//! wrong method is a 405 and an unknown path a 404. Handlers return
//! `Result<Response, ApiError>`; [`respond`] is the one place that turns an
//! error into its JSON answer.

use std::collections::HashMap;
use std::convert::Infallible;
use std::str::FromStr;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use serde::Serialize;
use uuid::Uuid;
use warp::http::{header, HeaderValue, StatusCode};
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use crate::error::{recover, ApiError};
use crate::genes::{self, HgncId};
use crate::images;
use crate::jobs::{self, Command, Job, JobKind, JobStatus};
use crate::pipeline::Pipeline;
use crate::plot::{ImageSize, PlotKind};

/// Largest request body any route reads.
const BODY_LIMIT: usize = 16 * 1024;
/// GET /data streams the data set in pieces of this size.
const DATA_CHUNK: usize = 512 * 1024;

/// Everything a handler needs.
#[derive(Clone)]
pub struct AppState {
    pub pipeline: Pipeline,
}

/// The whole API, with request tracing and JSON errors.
pub fn api(state: AppState) -> impl Filter<Extract = (impl Reply,), Error = Infallible> + Clone {
    let s = warp::any().map(move || state.clone());

    let data = warp::path!("data").and(
        warp::get()
            .and(s.clone())
            .then(get_data)
            .map(respond)
            .or(warp::post()
                .and(s.clone())
                .and(prefer_wait())
                .and(small_body())
                .then(post_data)
                .map(respond))
            .unify()
            .or(warp::delete().and(s.clone()).then(delete_data).map(respond))
            .unify(),
    );
    let genes = warp::path!("genes")
        .and(warp::get())
        .and(s.clone())
        .then(get_genes)
        .map(respond);
    let gene = warp::path!("genes" / String)
        .and(warp::get())
        .and(s.clone())
        .then(get_gene)
        .map(respond);
    let jobs = warp::path!("jobs")
        .and(warp::get())
        .and(warp::query::<HashMap<String, String>>())
        .and(s.clone())
        .then(list_jobs)
        .map(respond);
    let job = warp::path!("jobs" / String)
        .and(warp::get())
        .and(s.clone())
        .then(get_job)
        .map(respond);
    let image = warp::path!("image").and(
        warp::get()
            .and(s.clone())
            .then(get_latest_image)
            .map(respond)
            .or(warp::post()
                .and(warp::query::<HashMap<String, String>>())
                .and(s.clone())
                .and(prefer_wait())
                .and(small_body())
                .then(post_image)
                .map(respond))
            .unify()
            .or(warp::delete()
                .and(s.clone())
                .then(delete_images)
                .map(respond))
            .unify(),
    );
    let image_by_id = warp::path!("image" / String)
        .and(warp::get())
        .and(s.clone())
        .then(get_image)
        .map(respond)
        .or(warp::path!("image" / String)
            .and(warp::delete())
            .and(s.clone())
            .then(delete_image)
            .map(respond))
        .unify();

    health_and_ready(s.clone())
        .or(data)
        .unify()
        .or(genes)
        .unify()
        .or(gene)
        .unify()
        .or(jobs)
        .unify()
        .or(job)
        .unify()
        .or(image)
        .unify()
        .or(image_by_id)
        .unify()
        .recover(recover)
        .unify()
        .with(warp::trace::request())
}

/// Only /health and /ready: what `gene-api worker` serves for probes.
pub fn probes(state: AppState) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone {
    health_and_ready(warp::any().map(move || state.clone()))
        .recover(recover)
        .unify()
}

/// `GET /health` (the process runs) and `GET /ready` (both Redis databases answer).
fn health_and_ready(
    s: impl Filter<Extract = (AppState,), Error = Infallible> + Clone + Send + Sync + 'static,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let health = warp::path!("health")
        .and(warp::get())
        .map(|| warp::reply::json(&serde_json::json!({"status": "ok"})).into_response());
    let ready = warp::path!("ready").and(warp::get()).and(s).then(ready);
    health.or(ready).unify()
}

fn respond(r: Result<Response, ApiError>) -> Response {
    r.unwrap_or_else(Reply::into_response)
}

fn json_with<T: Serialize>(status: StatusCode, body: &T) -> Response {
    warp::reply::with_status(warp::reply::json(body), status).into_response()
}

fn raw_json(bytes: Bytes) -> Response {
    let mut r = Response::new(bytes.into());
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

fn png(bytes: Bytes, job_id: &str) -> Response {
    let mut r = Response::new(bytes.into());
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("image/png"));
    if let Ok(v) = HeaderValue::from_str(job_id) {
        h.insert("x-job-id", v);
    }
    r
}

/// Reads a body of at most [`BODY_LIMIT`] bytes, with or without Content-Length.
fn small_body() -> impl Filter<Extract = (Bytes,), Error = Rejection> + Clone {
    warp::body::stream().and_then(collect_limited)
}

async fn collect_limited<S, B>(body: S) -> Result<Bytes, Rejection>
where
    S: Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    let mut body = std::pin::pin!(body);
    let mut buf = BytesMut::new();
    while let Some(chunk) = body.next().await {
        let mut chunk = chunk
            .map_err(|e| warp::reject::custom(ApiError::bad_request("bad_body", e.to_string())))?;
        if buf.len() + chunk.remaining() > BODY_LIMIT {
            return Err(warp::reject::custom(ApiError::PayloadTooLarge));
        }
        while chunk.has_remaining() {
            let n = chunk.chunk().len();
            buf.extend_from_slice(chunk.chunk());
            chunk.advance(n);
        }
    }
    Ok(buf.freeze())
}

/// `Prefer: wait=<seconds>` (RFC 7240); other preferences are ignored, as the RFC says.
fn prefer_wait() -> impl Filter<Extract = (Option<u64>,), Error = Rejection> + Clone {
    warp::header::optional::<String>("prefer").map(|h: Option<String>| {
        h.and_then(|v| {
            v.split([',', ';'])
                .filter_map(|p| p.trim().strip_prefix("wait="))
                .find_map(|n| n.trim().parse::<u64>().ok())
        })
    })
}

async fn ready(state: AppState) -> Response {
    if state.pipeline.store.ping().await {
        json_with(StatusCode::OK, &serde_json::json!({"status": "ready"}))
    } else {
        json_with(
            StatusCode::SERVICE_UNAVAILABLE,
            &serde_json::json!({
                "error": "not_ready",
                "message": "Redis (db 0 or db 1) does not answer; check REDIS_IP and that Redis runs",
            }),
        )
    }
}

/// 202 + Location for a queued job; with `Prefer: wait`, its final state when it ends in time.
async fn accepted(state: &AppState, job: Job, wait: Option<u64>) -> Result<Response, ApiError> {
    let mut job = job;
    let mut applied = None;
    if let Some(secs) = wait {
        let secs = secs.min(state.pipeline.settings.http.max_wait_secs);
        applied = Some(secs);
        if let Some(latest) = state
            .pipeline
            .wait_for(&job.id, Duration::from_secs(secs))
            .await?
        {
            job = latest;
        }
    }
    let mut resp = match job.status {
        JobStatus::Done => json_with(StatusCode::OK, &job),
        JobStatus::Failed => {
            return Err(ApiError::JobFailed {
                message: job.error.clone().unwrap_or_else(|| "the job failed".into()),
                job: Box::new(job),
            })
        }
        _ => json_with(StatusCode::ACCEPTED, &job),
    };
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&job.location()) {
        h.insert(header::LOCATION, v);
    }
    if let Some(secs) = applied {
        if let Ok(v) = HeaderValue::from_str(&format!("wait={secs}")) {
            h.insert("preference-applied", v);
        }
    }
    Ok(resp)
}

/// POST /data takes no parameters: the source is the server's to choose.
fn check_load_body(body: &[u8]) -> Result<(), ApiError> {
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
    let source = state.pipeline.settings.data.source.clone();
    let job = state.pipeline.submit(Command::Load { source }).await?;
    accepted(&state, job, wait).await
}

async fn get_data(state: AppState) -> Result<Response, ApiError> {
    let store = &state.pipeline.store;
    let mut conn = store.data.clone();
    let (version, len) = genes::current_blob(&mut conn, &store.keys)
        .await?
        .ok_or_else(ApiError::no_data)?;
    let key = store.keys.version_part(&version, "blob");
    // A small bounded channel: the body is read from Redis only as fast as the
    // client takes it, so memory stays at a few chunks whatever the data size.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(2);
    tokio::spawn(async move {
        let mut offset = 0u64;
        while offset < len {
            let end = (offset + DATA_CHUNK as u64).min(len) - 1;
            let r: redis::RedisResult<Vec<u8>> = redis::cmd("GETRANGE")
                .arg(&key)
                .arg(offset)
                .arg(end)
                .query_async(&mut conn)
                .await;
            let item = match r {
                Ok(chunk) if chunk.len() as u64 == end - offset + 1 => {
                    offset = end + 1;
                    Ok(Bytes::from(chunk))
                }
                // The version vanished (deleted, or replaced long ago): cut the
                // response rather than send a truncated body that parses.
                Ok(_) => Err(std::io::Error::other(
                    "the data set changed while streaming",
                )),
                Err(e) => Err(std::io::Error::other(e)),
            };
            let failed = item.is_err();
            if tx.send(item).await.is_err() || failed {
                return;
            }
        }
    });
    let stream = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
    let mut resp = warp::reply::stream(stream).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    Ok(resp)
}

async fn delete_data(state: AppState) -> Result<Response, ApiError> {
    let store = &state.pipeline.store;
    let n = genes::delete_all(&mut store.data.clone(), &store.keys).await?;
    Ok(json_with(
        StatusCode::OK,
        &serde_json::json!({"deleted": n, "message": format!("removed {n} gene records")}),
    ))
}

async fn get_genes(state: AppState) -> Result<Response, ApiError> {
    let store = &state.pipeline.store;
    let ids = genes::current_part(&mut store.data.clone(), &store.keys, "ids")
        .await?
        .ok_or_else(ApiError::no_data)?;
    Ok(raw_json(Bytes::from(ids)))
}

async fn get_gene(raw_id: String, state: AppState) -> Result<Response, ApiError> {
    let id = decode_segment(&raw_id)
        .parse::<HgncId>()
        .map_err(|m| ApiError::bad_request("bad_hgnc_id", m))?;
    let store = &state.pipeline.store;
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

fn parse_job_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| {
        ApiError::bad_request(
            "bad_job_id",
            format!("{raw:?} is not a job id: expected a UUID such as 0b7e5a8e-7c1f-4f5e-9d55-3e8f6a1c2b4d"),
        )
    })
}

async fn list_jobs(query: HashMap<String, String>, state: AppState) -> Result<Response, ApiError> {
    let max = state.pipeline.settings.http.jobs_list_limit;
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
    let store = &state.pipeline.store;
    let list = jobs::recent(&mut store.data.clone(), &store.keys, limit).await?;
    Ok(json_with(StatusCode::OK, &list))
}

async fn get_job(raw_id: String, state: AppState) -> Result<Response, ApiError> {
    let id = parse_job_id(&raw_id)?;
    let store = &state.pipeline.store;
    let job = jobs::get(&mut store.data.clone(), &store.keys, &id)
        .await?
        .ok_or_else(|| job_not_found(&id))?;
    Ok(json_with(StatusCode::OK, &job))
}

fn job_not_found(id: &Uuid) -> ApiError {
    ApiError::not_found(
        "job_not_found",
        format!("no job {id} (finished jobs are kept for a limited time)"),
    )
}

/// Plot parameters from the query string, or from a JSON body with the same names.
fn plot_params(
    query: &HashMap<String, String>,
    body: &[u8],
) -> Result<(PlotKind, ImageSize), ApiError> {
    let mut params: HashMap<String, String> = HashMap::new();
    if !body.iter().all(u8::is_ascii_whitespace) {
        let v: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(body).map_err(|e| {
                ApiError::bad_request("malformed_json", format!("the JSON body is malformed: {e}"))
            })?;
        for (k, v) in v {
            let s = match v {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            };
            params.insert(k, s);
        }
    }
    params.extend(query.iter().map(|(k, v)| (k.clone(), v.clone())));
    if let Some(k) = params
        .keys()
        .find(|k| !["kind", "width", "height"].contains(&k.as_str()))
    {
        return Err(ApiError::bad_request(
            "bad_plot_parameter",
            format!("unknown parameter {k:?}; POST /image takes kind, width and height"),
        ));
    }
    let kind = match params.get("kind") {
        Some(k) => PlotKind::from_str(k)
            .map_err(|e| ApiError::bad_request("bad_plot_kind", e.to_string()))?,
        None => PlotKind::default(),
    };
    let default = ImageSize::default();
    let dim = |name: &str, fallback: u32| -> Result<u32, ApiError> {
        match params.get(name) {
            None => Ok(fallback),
            Some(v) => v.trim().parse::<u32>().map_err(|_| {
                ApiError::bad_request(
                    "bad_image_size",
                    format!(
                        "{name} must be a whole number of pixels from {} to {}, got {v:?}",
                        ImageSize::MIN,
                        ImageSize::MAX
                    ),
                )
            }),
        }
    };
    let size = ImageSize::new(
        dim("width", default.width())?,
        dim("height", default.height())?,
    )
    .map_err(|e| ApiError::bad_request("bad_image_size", e.to_string()))?;
    Ok((kind, size))
}

async fn post_image(
    query: HashMap<String, String>,
    state: AppState,
    wait: Option<u64>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (plot, size) = plot_params(&query, &body)?;
    let store = &state.pipeline.store;
    if !genes::is_loaded(&mut store.data.clone(), &store.keys).await? {
        return Err(ApiError::conflict(
            "no_data",
            "no gene data is loaded, so there is nothing to plot: POST /data first",
        ));
    }
    let job = state.pipeline.submit(Command::Plot { plot, size }).await?;
    accepted(&state, job, wait).await
}

async fn get_latest_image(state: AppState) -> Result<Response, ApiError> {
    let store = &state.pipeline.store;
    let (id, bytes) = images::latest(&mut store.images.clone(), &store.keys)
        .await?
        .ok_or_else(no_image)?;
    Ok(png(bytes, &id))
}

fn no_image() -> ApiError {
    ApiError::not_found(
        "no_image",
        "there is no image: POST /image to make one, then poll the job",
    )
}

async fn get_image(raw_id: String, state: AppState) -> Result<Response, ApiError> {
    let id = parse_job_id(&raw_id)?;
    let store = &state.pipeline.store;
    if let Some(bytes) = images::get(&mut store.images.clone(), &store.keys, &id).await? {
        return Ok(png(bytes, &id.to_string()));
    }
    // No image: say why, from the job's point of view.
    let job = jobs::get(&mut store.data.clone(), &store.keys, &id)
        .await?
        .ok_or_else(|| job_not_found(&id))?;
    Err(match (job.kind, job.status) {
        (JobKind::Load, _) => ApiError::not_found(
            "not_a_plot_job",
            format!("job {id} is a load job; only plot jobs have images"),
        ),
        (_, JobStatus::Queued | JobStatus::Running) => ApiError::conflict(
            "job_not_done",
            format!(
                "job {id} is still {}; poll /jobs/{id} until it is done",
                if job.status == JobStatus::Queued {
                    "queued"
                } else {
                    "running"
                }
            ),
        ),
        (_, JobStatus::Failed) => ApiError::conflict(
            "job_failed",
            format!(
                "job {id} failed, so it has no image: {}",
                job.error.as_deref().unwrap_or("no reason recorded")
            ),
        ),
        (_, JobStatus::Done) => ApiError::not_found(
            "image_deleted",
            format!("the image of job {id} has been deleted"),
        ),
    })
}

async fn delete_images(state: AppState) -> Result<Response, ApiError> {
    let store = &state.pipeline.store;
    let n = images::delete_all(&mut store.images.clone(), &store.keys).await?;
    if n == 0 {
        return Err(no_image());
    }
    Ok(json_with(
        StatusCode::OK,
        &serde_json::json!({"deleted": n, "message": format!("removed {n} images")}),
    ))
}

async fn delete_image(raw_id: String, state: AppState) -> Result<Response, ApiError> {
    let id = parse_job_id(&raw_id)?;
    let store = &state.pipeline.store;
    if !images::delete(&mut store.images.clone(), &store.keys, &id).await? {
        return Err(ApiError::not_found(
            "image_not_found",
            format!("there is no image for job {id}"),
        ));
    }
    Ok(json_with(
        StatusCode::OK,
        &serde_json::json!({"deleted": 1, "message": format!("removed the image of job {id}")}),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn plot_params_default_and_parse() {
        let (k, s) = plot_params(&q(&[]), b"").unwrap();
        assert_eq!((k, s), (PlotKind::default(), ImageSize::default()));
        let (k, s) = plot_params(
            &q(&[("kind", "chromosome"), ("width", "300"), ("height", "4000")]),
            b"",
        )
        .unwrap();
        assert_eq!(k, PlotKind::Chromosome);
        assert_eq!((s.width(), s.height()), (300, 4000));
        let (k, _) = plot_params(&q(&[]), br#"{"kind": "approval_year", "width": 640}"#).unwrap();
        assert_eq!(k, PlotKind::ApprovalYear);
    }

    #[test]
    fn plot_params_errors_say_what_is_allowed() {
        type Case<'a> = (&'a [(&'a str, &'a str)], &'a [u8], &'a str);
        let cases: [Case; 6] = [
            (&[("kind", "pie")], b"", "locus_group"),
            (&[("width", "wide")], b"", "200 to 4000"),
            (&[("height", "199")], b"", "4000"),
            (&[("width", "-5")], b"", "whole number"),
            (&[("colour", "red")], b"", "kind, width and height"),
            (&[], b"{not json", "malformed"),
        ];
        for (query, body, want) in cases {
            let e = plot_params(&q(query), body).unwrap_err();
            assert_eq!(e.status(), StatusCode::BAD_REQUEST);
            assert!(e.to_string().contains(want), "{want}: {e}");
        }
    }

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
