//! `/image`: POST queues a plot job; GET serves the newest PNG or one job's;
//! DELETE removes them.

use std::collections::HashMap;
use std::str::FromStr;

use bytes::Bytes;
use uuid::Uuid;
use warp::http::{header, HeaderValue, StatusCode};
use warp::reply::Response;
use warp::{Filter, Rejection};

use super::docs::{Deleted, PlotParams};
use super::{
    idempotency_key, job_not_found, json_with, parse_job_id, prefer_wait, respond, small_body,
    submit, with, AppState, IdempotencyKey,
};
use crate::error::{ApiError, ErrorBody};
use crate::images;
use crate::jobs::{self, Command, Job, JobKind, JobStatus};
use crate::plot::{ImageSize, PlotKind};
use crate::store::Store;

/// `POST|GET|DELETE /image`, `GET|DELETE /image/<job_id>`.
pub fn routes(state: &AppState) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let store = state.pipeline.store.clone();
    let image = warp::path!("image").and(
        warp::get()
            .and(with(store.clone()))
            .then(get_latest_image)
            .map(respond)
            .or(warp::post()
                .and(warp::query::<HashMap<String, String>>())
                .and(with(state.clone()))
                .and(prefer_wait())
                .and(idempotency_key(state))
                .and(small_body())
                .then(post_image)
                .map(respond))
            .unify()
            .or(warp::delete()
                .and(with(store.clone()))
                .then(delete_images)
                .map(respond))
            .unify(),
    );
    let by_id = warp::path!("image" / String);
    let get_one = by_id
        .and(warp::get())
        .and(with(store.clone()))
        .then(get_image)
        .map(respond);
    let delete_one = by_id
        .and(warp::delete())
        .and(with(store))
        .then(delete_image)
        .map(respond);
    image.or(get_one).unify().or(delete_one).unify()
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

/// Plot parameters from the query string, or from a JSON body with the same names.
fn plot_params(
    query: &HashMap<String, String>,
    body: &[u8],
) -> Result<(PlotKind, ImageSize), ApiError> {
    let mut params: HashMap<String, String> = HashMap::new();
    if !body.iter().all(u8::is_ascii_whitespace) {
        // `null`: no parameters, as an empty body (the contract's body is nullable).
        let v: Option<serde_json::Map<String, serde_json::Value>> = serde_json::from_slice(body)
            .map_err(|e| {
                ApiError::bad_request("malformed_json", format!("the JSON body is malformed: {e}"))
            })?;
        params.extend(as_strings(v.unwrap_or_default(), &PLOT_FIELDS));
        // The query wins, but a bad body is refused even where it does.
        parse_plot(&params, "kind", "POST /image")?;
    }
    params.extend(query.iter().map(|(k, v)| (k.clone(), v.clone())));
    parse_plot(&params, "kind", "POST /image")
}

/// JSON fields as the strings a query string would carry. A `null` field of
/// the `known` ones is an absent one (the contract's optional fields are
/// nullable); any other field is kept, `null` or not, so that it is refused
/// as unknown. A whole number written `398.0` is `398` (JSON Schema counts it
/// an integer).
pub(super) fn as_strings<'a>(
    fields: serde_json::Map<String, serde_json::Value>,
    known: &'a [&'a str],
) -> impl Iterator<Item = (String, String)> + 'a {
    use serde_json::Value;
    fields.into_iter().filter_map(move |(k, v)| {
        let s = match v {
            Value::Null if known.contains(&k.as_str()) => return None,
            Value::String(s) => s,
            Value::Number(n) => match n.as_f64() {
                Some(f) if n.is_f64() && f.fract() == 0.0 && f.abs() < 1e15 => {
                    format!("{}", f as i64)
                }
                _ => n.to_string(),
            },
            other => other.to_string(),
        };
        Some((k, s))
    })
}

/// The fields of a `POST /image` body.
const PLOT_FIELDS: [&str; 3] = ["kind", "width", "height"];

/// A plot's chart kind (in field `kind_field`) and size, validated the same
/// way for `route` (POST /image or POST /jobs).
pub(super) fn parse_plot(
    params: &HashMap<String, String>,
    kind_field: &str,
    route: &str,
) -> Result<(PlotKind, ImageSize), ApiError> {
    if let Some(k) = params
        .keys()
        .find(|k| ![kind_field, "width", "height"].contains(&k.as_str()))
    {
        return Err(ApiError::bad_request(
            "bad_plot_parameter",
            format!("unknown parameter {k:?}; {route} takes {kind_field}, width and height"),
        ));
    }
    let kind = match params.get(kind_field) {
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

#[utoipa::path(
    post, path = "/image", tag = "images",
    params(("kind" = Option<PlotKind>, Query, description = "The chart (default locus_group)"),
        ("width" = Option<u32>, Query, description = "Pixels, 200 to 4000 (default 1000)", minimum = 200, maximum = 4000),
        ("height" = Option<u32>, Query, description = "Pixels, 200 to 4000 (default 600)", minimum = 200, maximum = 4000),
        ("Prefer" = Option<String>, Header, description = "`wait=<seconds>` (RFC 7240): answer when the job ends, or after that many seconds (at most `http.max_wait_secs`); any other preference is ignored, as RFC 7240 asks"),
        ("Idempotency-Key" = Option<String>, Header, description = "Submit once (IETF Idempotency-Key draft): the same request again with the same key (per API key or client, for `http.idempotency_ttl_secs`) answers the first job (`Idempotent-Replayed: true`), another request with it is a 422 `idempotency_key_reused`. 1 to 255 visible ASCII characters without `\"` or `\\`, as a quoted string or bare", pattern = "^(\"[ !#-\\[\\]-~]{1,255}\"|[!#-\\[\\]-~]{1,255})$")),
    request_body(content = Option<PlotParams>, description = "Optional: the same parameters as JSON; the query wins", content_type = "application/json"),
    responses((status = 202, description = "A plot job: the job, queued (follow `Location`)", body = Job, headers(("Location" = String, description = "/jobs/<id>"))),
        (status = 200, description = "With `Prefer: wait`: the job ended `done` in time", body = Job, headers(("Location" = String, description = "/jobs/<id>"))),
        (status = 400, description = "A malformed parameter; the message says what is allowed", body = ErrorBody),
        (status = 409, description = "No data set is loaded, so there is nothing to plot (`no_data`)", body = ErrorBody),
        (status = 413, description = "The body is over 16 KiB", body = ErrorBody), (status = 422, description = "With `Prefer: wait`: the job failed in that time (`job_failed`, the job in `job`); or the Idempotency-Key came first with another request (`idempotency_key_reused`)", body = ErrorBody), (status = 503, description = "Redis is unavailable; retry after the Retry-After seconds", body = ErrorBody, headers(("Retry-After" = String, description = "Seconds to wait"))))
)]
async fn post_image(
    query: HashMap<String, String>,
    state: AppState,
    wait: Option<u64>,
    key: Option<IdempotencyKey>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (plot, size) = plot_params(&query, &body)?;
    // Refused with 409 no_data, and no job made, while no data is loaded.
    submit(
        &state,
        "POST /image",
        Command::Plot { plot, size },
        key,
        wait,
    )
    .await
}

#[utoipa::path(
    get, path = "/image", tag = "images",
    responses((status = 200, description = "The newest PNG", content_type = "image/png", body = Vec<u8>, headers(("X-Job-Id" = String, description = "The plot job that made it"))),
        (status = 404, description = "There is no image (`no_image`)", body = ErrorBody),
        (status = 503, description = "Redis is unavailable; retry after the Retry-After seconds", body = ErrorBody, headers(("Retry-After" = String, description = "Seconds to wait"))))
)]
async fn get_latest_image(store: Store) -> Result<Response, ApiError> {
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

#[utoipa::path(
    get, path = "/image/{job_id}", tag = "images",
    params(("job_id" = uuid::Uuid, Path, description = "A job id (UUID), as `POST /jobs` answered")),
    responses((status = 200, description = "The job's PNG", content_type = "image/png", body = Vec<u8>, headers(("X-Job-Id" = String, description = "The job id"))),
        (status = 400, description = "Not a job id (`bad_job_id`)", body = ErrorBody),
        (status = 404, description = "No such job (`job_not_found`), a load job (`not_a_plot_job`), the image was deleted or expired (`image_deleted`) or evicted (`image_evicted`, see `images.max_count`)", body = ErrorBody),
        (status = 409, description = "The job is not done (`job_not_done`), was cancelled or failed", body = ErrorBody),
        (status = 503, description = "Redis is unavailable; retry after the Retry-After seconds", body = ErrorBody, headers(("Retry-After" = String, description = "Seconds to wait"))))
)]
async fn get_image(raw_id: String, store: Store) -> Result<Response, ApiError> {
    let id = parse_job_id(&raw_id)?;
    if let Some(bytes) = images::get(&mut store.images.clone(), &store.keys, &id).await? {
        return Ok(png(bytes, &id.to_string()));
    }
    Err(why_no_image(&store, &id).await?)
}

/// Why job `id` has no image, from the job's point of view: no such job, a
/// load, not done yet (409: it will have one), cancelled, failed, evicted or
/// deleted.
async fn why_no_image(store: &Store, id: &Uuid) -> Result<ApiError, ApiError> {
    let job = jobs::get(&mut store.data.clone(), &store.keys, id)
        .await?
        .ok_or_else(|| job_not_found(id))?;
    Ok(match (job.kind, job.status) {
        (JobKind::Load, _) => ApiError::not_found(
            "not_a_plot_job",
            format!("job {id} is a load job; only plot jobs have images"),
        ),
        (_, JobStatus::Queued | JobStatus::Running | JobStatus::Retrying) => ApiError::conflict(
            "job_not_done",
            format!(
                "job {id} is still {}; poll /jobs/{id} until it is done",
                job.status.as_str()
            ),
        ),
        (_, JobStatus::Cancelled) => ApiError::conflict(
            "job_cancelled",
            format!("job {id} was cancelled, so it has no image; POST /jobs/{id}/retry to run it"),
        ),
        (_, JobStatus::Failed) => ApiError::conflict(
            "job_failed",
            format!(
                "job {id} failed, so it has no image: {}",
                job.error.as_deref().unwrap_or("no reason recorded")
            ),
        ),
        (_, JobStatus::Done) if evicted_at(&job).is_some() => ApiError::not_found(
            "image_evicted",
            format!(
                "the image of job {id} was evicted at {} to keep the images within their bounds \
                 (images.max_count, images.max_bytes); submit the plot again",
                evicted_at(&job).unwrap_or_default()
            ),
        ),
        (_, JobStatus::Done) => ApiError::not_found(
            "image_deleted",
            format!("the image of job {id} has been deleted (or expired)"),
        ),
    })
}

fn evicted_at(job: &jobs::Job) -> Option<String> {
    job.result
        .as_ref()?
        .get("image_evicted_at")?
        .as_str()
        .map(str::to_string)
}

#[utoipa::path(
    delete, path = "/image", tag = "images",
    responses((status = 200, description = "Every image is removed", body = Deleted),
        (status = 404, description = "There was no image (`no_image`)", body = ErrorBody),
        (status = 503, description = "Redis is unavailable; retry after the Retry-After seconds", body = ErrorBody, headers(("Retry-After" = String, description = "Seconds to wait"))))
)]
async fn delete_images(store: Store) -> Result<Response, ApiError> {
    let n = images::delete_all(&mut store.images.clone(), &store.keys).await?;
    if n == 0 {
        return Err(no_image());
    }
    Ok(json_with(
        StatusCode::OK,
        &serde_json::json!({"deleted": n, "message": format!("removed {n} images")}),
    ))
}

#[utoipa::path(
    delete, path = "/image/{job_id}", tag = "images",
    params(("job_id" = uuid::Uuid, Path, description = "A job id (UUID), as `POST /jobs` answered")),
    responses((status = 200, description = "The image is removed", body = Deleted),
        (status = 400, description = "Not a job id (`bad_job_id`)", body = ErrorBody),
        (status = 404, description = "No such job (`job_not_found`), a load job (`not_a_plot_job`), the image was deleted or expired (`image_deleted`) or evicted (`image_evicted`)", body = ErrorBody),
        (status = 409, description = "The job is not done (`job_not_done`: it will have an image; delete it then), was cancelled or failed", body = ErrorBody),
        (status = 503, description = "Redis is unavailable; retry after the Retry-After seconds", body = ErrorBody, headers(("Retry-After" = String, description = "Seconds to wait"))))
)]
async fn delete_image(raw_id: String, store: Store) -> Result<Response, ApiError> {
    let id = parse_job_id(&raw_id)?;
    if !images::delete(&mut store.images.clone(), &store.keys, &id).await? {
        // A job that is still running will have an image: 409, not 404.
        return Err(why_no_image(&store, &id).await?);
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
        // A null known field is an absent one; 398.0 is 398.
        let (k, s) = plot_params(&q(&[]), br#"{"kind": null, "width": 398.0}"#).unwrap();
        assert_eq!((k, s.width()), (PlotKind::default(), 398));
    }

    #[test]
    fn an_unknown_body_field_is_refused_even_when_null() {
        // The contract's body has `additionalProperties: false`; a null
        // value does not make an unknown field a known one.
        for body in [&br#"{"": null}"#[..], br#"{"colour": null, "width": 300}"#] {
            let e = plot_params(&q(&[("kind", "chromosome")]), body).unwrap_err();
            assert_eq!(e.status(), StatusCode::BAD_REQUEST);
            assert!(e.to_string().contains("kind, width and height"), "{e}");
        }
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
}
