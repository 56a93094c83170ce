//! `/jobs`: one submission API for every job kind, the jobs by state, one
//! job, its control (cancel, retry) and its live events.

use std::collections::HashMap;
use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use uuid::Uuid;
use warp::http::{header, HeaderValue, StatusCode};
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use super::docs::JobRequest;
use super::docs::SseEvent;
use super::{
    data, gate, idempotency_key, image, job_not_found, json_with, only_params, parse_job_id,
    prefer_wait, respond, small_body, submit, typed_param, with, wrong_state, AppState,
    IdempotencyKey,
};
use crate::auth::{KeyRing, Verdict};
use crate::error::{ApiError, ErrorBody};
use crate::events::{sse_frame, Hub};
use crate::jobs::{self, Command, Cursor, Job, JobFilter, JobKind, JobStatus};
use crate::limits::{Client, Limits, StreamSlot};
use crate::pipeline::{Cancel, ControlError, Pipeline, QueueState, Stats};
use crate::store::Store;

/// `POST /jobs`, `GET /jobs`, `GET /jobs/stats`, `GET|DELETE /jobs/<id>`,
/// `POST /jobs/<id>/retry`, `GET /jobs/<id>/events`.
pub fn routes(state: &AppState) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let store = state.pipeline.store.clone();
    let max = state.pipeline.settings.http.jobs_list_limit;
    let collection = warp::path!("jobs").and(
        warp::get()
            .and(warp::query::<HashMap<String, String>>())
            .and(with(store.clone()))
            .and(with(max))
            .then(list_jobs)
            .map(respond)
            .or(warp::post()
                .and(with(state.clone()))
                .and(prefer_wait())
                .and(idempotency_key(state))
                .and(small_body())
                .then(post_job)
                .map(respond))
            .unify(),
    );
    let stats = warp::path!("jobs" / "stats")
        .and(warp::get())
        .and(with(state.pipeline.clone()))
        .then(stats)
        .map(respond);
    let one = warp::path!("jobs" / String);
    let get_one = one
        .and(warp::get())
        .and(with(store.clone()))
        .then(get_job)
        .map(respond);
    let cancel = one
        .and(warp::delete())
        .and(with(state.pipeline.clone()))
        .then(cancel_job)
        .map(respond);
    let retry = warp::path!("jobs" / String / "retry")
        .and(warp::post())
        .and(with(state.pipeline.clone()))
        .then(retry_job)
        .map(respond);
    let events = warp::path!("jobs" / String / "events")
        .and(warp::get())
        .and(with(store))
        .and(with(state.hub.clone()))
        .and(gate::client(state))
        .and(with(state.limits.clone()))
        .then(job_events)
        .map(respond);
    let pause = warp::path!("jobs" / "pause")
        .and(warp::post())
        .and(with(state.pipeline.clone()))
        .and(with(state.keys.clone()))
        .and(warp::header::optional::<String>("authorization"))
        .then(pause)
        .map(respond);
    let resume = warp::path!("jobs" / "resume")
        .and(warp::post())
        .and(with(state.pipeline.clone()))
        .then(resume)
        .map(respond);
    collection
        .or(stats)
        .unify()
        .or(pause)
        .unify()
        .or(resume)
        .unify()
        .or(get_one)
        .unify()
        .or(cancel)
        .unify()
        .or(retry)
        .unify()
        .or(events)
        .unify()
}

/// `POST /jobs` `{"kind": "load"}` or `{"kind": "plot", "plot": ..., "width": ..., "height": ...}`:
/// the same checks and answers as POST /data and POST /image.
#[utoipa::path(
    post, path = "/jobs", tag = "jobs",
    params(("Prefer" = Option<String>, Header, description = "`wait=<seconds>` (RFC 7240): answer when the job ends, or after that many seconds (at most `http.max_wait_secs`); any other preference is ignored, as RFC 7240 asks"),
        ("Idempotency-Key" = Option<String>, Header, description = "Submit once (IETF Idempotency-Key draft): the same request again with the same key (per API key or client, for `http.idempotency_ttl_secs`) answers the first job (`Idempotent-Replayed: true`), another request with it is a 422 `idempotency_key_reused`. 1 to 255 visible ASCII characters without `\"` or `\\`, as a quoted string or bare", pattern = "^(\"[ !#-\\[\\]-~]{1,255}\"|[!#-\\[\\]-~]{1,255})$")),
    request_body(content = JobRequest, content_type = "application/json"),
    responses((status = 202, description = "A job of that kind: the job, queued (follow `Location`)", body = Job, headers(("Location" = String, description = "/jobs/<id>"))),
        (status = 200, description = "With `Prefer: wait`: the job ended `done` in time", body = Job, headers(("Location" = String, description = "/jobs/<id>"))),
        (status = 400, description = "Malformed body, unknown kind or bad plot parameters", body = ErrorBody),
        (status = 409, description = "A plot while no data set is loaded (`no_data`)", body = ErrorBody),
        (status = 413, description = "The body is over 16 KiB", body = ErrorBody), (status = 422, description = "With `Prefer: wait`: the job failed in that time (`job_failed`, the job in `job`); or the Idempotency-Key came first with another request (`idempotency_key_reused`)", body = ErrorBody), (status = 503, description = "Redis is unavailable; retry after the Retry-After seconds", body = ErrorBody, headers(("Retry-After" = String, description = "Seconds to wait"))))
)]
async fn post_job(
    state: AppState,
    wait: Option<u64>,
    key: Option<IdempotencyKey>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let command = parse_job_request(&state, &body).await?;
    submit(&state, "POST /jobs", command, key, wait).await
}

async fn parse_job_request(state: &AppState, body: &[u8]) -> Result<Command, ApiError> {
    let mut fields: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(body)
        .map_err(|e| {
            ApiError::bad_request(
                "malformed_json",
                format!(
                    "the body must be a JSON object such as {{\"kind\": \"load\"}} or \
                     {{\"kind\": \"plot\", \"plot\": \"chromosome\"}}: {e}"
                ),
            )
        })?;
    let kind = fields.remove("kind");
    match kind.as_ref().and_then(|k| k.as_str()) {
        Some("load") => {
            let rest = serde_json::to_vec(&fields).unwrap_or_default();
            let archived = data::parse_load_body(&rest)?;
            Ok(data::load_command(&state.pipeline, archived.as_deref()))
        }
        Some("plot") => {
            let params: HashMap<String, String> =
                image::as_strings(fields, &["plot", "width", "height"]).collect();
            let (plot, size) = image::parse_plot(&params, "plot", "a plot job")?;
            Ok(Command::Plot { plot, size })
        }
        _ => Err(ApiError::bad_request(
            "bad_job_kind",
            format!(
                "\"kind\" must be \"load\" or \"plot\", got {}",
                kind.map_or_else(|| "nothing".into(), |k| k.to_string())
            ),
        )),
    }
}

/// What GET /jobs takes.
const LIST_PARAMS: [&str; 4] = ["status", "kind", "limit", "cursor"];

#[utoipa::path(
    get, path = "/jobs", tag = "jobs",
    params(("status" = Option<JobStatus>, Query, description = "Only jobs in this state"),
        ("kind" = Option<JobKind>, Query, description = "Only jobs of this kind"),
        ("limit" = Option<usize>, Query, description = "At most this many (default and cap `http.jobs_list_limit`; a larger value is capped)", minimum = 1),
        ("cursor" = Option<String>, Query, description = "Where the previous page ended: the `cursor` of its `Link` header (`<score>.<job id>`)", pattern = "^[0-9]{1,19}[.][0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")),
    responses((status = 200, description = "Jobs, newest first", body = [Job], headers(("Link" = String, description = "`</jobs?...&cursor=...>; rel=\"next\"` when there are more"))),
        (status = 400, description = "A malformed parameter; the message says what is allowed", body = ErrorBody), (status = 503, description = "Redis is unavailable; retry after the Retry-After seconds", body = ErrorBody, headers(("Retry-After" = String, description = "Seconds to wait"))))
)]
async fn list_jobs(
    query: HashMap<String, String>,
    store: Store,
    max: usize,
) -> Result<Response, ApiError> {
    only_params(&query, &LIST_PARAMS, "GET /jobs")?;
    // Capped, not refused: the cap is a setting, which a static contract cannot state.
    let limit = match query.get("limit") {
        None => max,
        // Any whole number from 1, however long (a number past u64 is past the cap too).
        Some(v) => (!v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
            .then(|| v.parse::<usize>().unwrap_or(usize::MAX))
            .filter(|n| *n >= 1)
            .map(|n| n.min(max))
            .ok_or_else(|| {
                ApiError::bad_request(
                    "bad_limit",
                    format!("limit must be a whole number from 1 (above {max}, it is {max})"),
                )
            })?,
    };
    let filter = JobFilter {
        status: typed_param(&query, "status", "bad_status")?,
        kind: typed_param(&query, "kind", "bad_kind")?,
    };
    let cursor: Option<Cursor> = typed_param(&query, "cursor", "bad_cursor")?;
    let page = jobs::list(
        &mut store.data.clone(),
        &store.keys,
        filter,
        limit,
        cursor.as_ref(),
    )
    .await?;
    let mut resp = json_with(StatusCode::OK, &page.jobs);
    if let Some(next) = page.next {
        let mut q: Vec<String> = ["status", "kind"]
            .iter()
            .filter_map(|k| query.get(*k).map(|v| format!("{k}={v}")))
            .collect();
        q.push(format!("limit={limit}"));
        q.push(format!("cursor={next}"));
        let link = format!("</jobs?{}>; rel=\"next\"", q.join("&"));
        if let Ok(v) = HeaderValue::from_str(&link) {
            resp.headers_mut().insert(header::LINK, v);
        }
    }
    Ok(resp)
}

#[utoipa::path(
    get, path = "/jobs/stats", tag = "jobs",
    responses((status = 200, description = "Counts by state, the stream's backlog, the consumers, the dead letters", body = Stats),
        (status = 503, description = "Redis is unavailable; retry after the Retry-After seconds", body = ErrorBody, headers(("Retry-After" = String, description = "Seconds to wait"))))
)]
async fn stats(pipeline: Pipeline) -> Result<Response, ApiError> {
    Ok(json_with(StatusCode::OK, &pipeline.stats().await?))
}

/// `POST /jobs/pause`: workers take no new entries until `/jobs/resume`.
#[utoipa::path(
    post, path = "/jobs/pause", tag = "jobs",
    responses((status = 200, description = "The queue is paused (also when it already was: then since when, and by whom, as first paused). Workers finish what they run and take nothing new; submissions still queue up", body = QueueState),
        (status = 503, description = "Redis is unavailable; retry after the Retry-After seconds", body = ErrorBody, headers(("Retry-After" = String, description = "Seconds to wait"))))
)]
async fn pause(
    pipeline: Pipeline,
    keys: std::sync::Arc<KeyRing>,
    authorization: Option<String>,
) -> Result<Response, ApiError> {
    // The gate let the request through, so a key that is named is valid.
    let by = match keys.check(None, authorization.as_deref()) {
        Verdict::Allowed(name) => name,
        _ => None,
    };
    Ok(json_with(StatusCode::OK, &pipeline.pause(by).await?))
}

/// `POST /jobs/resume`: workers take entries again.
#[utoipa::path(
    post, path = "/jobs/resume", tag = "jobs",
    responses((status = 200, description = "The queue runs (also when it was not paused)", body = QueueState),
        (status = 503, description = "Redis is unavailable; retry after the Retry-After seconds", body = ErrorBody, headers(("Retry-After" = String, description = "Seconds to wait"))))
)]
async fn resume(pipeline: Pipeline) -> Result<Response, ApiError> {
    Ok(json_with(StatusCode::OK, &pipeline.resume().await?))
}

#[utoipa::path(
    get, path = "/jobs/{job_id}", tag = "jobs",
    params(("job_id" = uuid::Uuid, Path, description = "A job id (UUID), as `POST /jobs` answered")),
    responses((status = 200, description = "The job", body = Job),
        (status = 400, description = "Not a job id (`bad_job_id`)", body = ErrorBody),
        (status = 404, description = "No such job (`job_not_found`)", body = ErrorBody),
        (status = 503, description = "Redis is unavailable; retry after the Retry-After seconds", body = ErrorBody, headers(("Retry-After" = String, description = "Seconds to wait"))))
)]
async fn get_job(raw_id: String, store: Store) -> Result<Response, ApiError> {
    // POST-only routes of their own, not job ids.
    if matches!(raw_id.as_str(), "pause" | "resume") {
        return Err(ApiError::MethodNotAllowed);
    }
    let id = parse_job_id(&raw_id)?;
    let job = jobs::get(&mut store.data.clone(), &store.keys, &id)
        .await?
        .ok_or_else(|| job_not_found(&id))?;
    Ok(json_with(StatusCode::OK, &job))
}

/// `DELETE /jobs/<id>`: cancels a `queued` or `retrying` job; asks a
/// `running` one to stop at its next safe point.
#[utoipa::path(
    delete, path = "/jobs/{job_id}", tag = "jobs",
    params(("job_id" = uuid::Uuid, Path, description = "A job id (UUID), as `POST /jobs` answered")),
    responses((status = 200, description = "The job, `cancelled` (also when it already was)", body = Job),
        (status = 202, description = "The job is running and was asked to stop (`cancel_requested_at`): it ends `cancelled` at its next safe point, with nothing of it left behind; follow it at `Location`", body = Job, headers(("Location" = String, description = "/jobs/<id>"))),
        (status = 400, description = "Not a job id (`bad_job_id`)", body = ErrorBody),
        (status = 404, description = "No such job (`job_not_found`)", body = ErrorBody),
        (status = 409, description = "The running job is past its point of no return (`past_point_of_no_return`, the reason in `message`) or finished (`job_finished`); the job in `job`", body = ErrorBody),
        (status = 503, description = "Redis is unavailable; retry after the Retry-After seconds", body = ErrorBody, headers(("Retry-After" = String, description = "Seconds to wait"))))
)]
async fn cancel_job(raw_id: String, pipeline: Pipeline) -> Result<Response, ApiError> {
    // `/jobs/dead`, `/jobs/stats`, `/jobs/pause` and `/jobs/resume` are
    // routes of their own, not job ids: a DELETE of them is a wrong method,
    // as its `Allow` says.
    if matches!(raw_id.as_str(), "dead" | "stats" | "pause" | "resume") {
        return Err(ApiError::MethodNotAllowed);
    }
    let id = parse_job_id(&raw_id)?;
    match pipeline.cancel(&id).await {
        Ok(Cancel::Cancelled(job)) => Ok(json_with(StatusCode::OK, &job)),
        Ok(Cancel::Requested(job)) => {
            let mut resp = json_with(StatusCode::ACCEPTED, &job);
            if let Ok(v) = HeaderValue::from_str(&job.location()) {
                resp.headers_mut().insert(header::LOCATION, v);
            }
            Ok(resp)
        }
        Err(ControlError::PastPointOfNoReturn { job, reason }) => Err(wrong_state(
            "past_point_of_no_return",
            format!("job {id} can no longer be stopped: {reason}; it ends on its own"),
            *job,
        )),
        Err(ControlError::WrongState(job)) => Err(wrong_state(
            "job_finished",
            format!(
                "job {id} is {} already; only queued, retrying or running jobs can be cancelled",
                job.status.as_str()
            ),
            *job,
        )),
        Err(e) => Err(control_error(e, &id)),
    }
}

/// `POST /jobs/<id>/retry`: queues a `failed` or `cancelled` job again.
#[utoipa::path(
    post, path = "/jobs/{job_id}/retry", tag = "jobs",
    params(("job_id" = uuid::Uuid, Path, description = "A job id (UUID), as `POST /jobs` answered")),
    responses((status = 202, description = "The job, queued again under the same id, attempts from 0", body = Job, headers(("Location" = String, description = "/jobs/<id>"))),
        (status = 400, description = "Not a job id (`bad_job_id`)", body = ErrorBody),
        (status = 404, description = "No such job (`job_not_found`)", body = ErrorBody),
        (status = 409, description = "Only failed or cancelled jobs can be retried (`job_not_retryable`)", body = ErrorBody),
        (status = 503, description = "Redis is unavailable; retry after the Retry-After seconds", body = ErrorBody, headers(("Retry-After" = String, description = "Seconds to wait"))))
)]
async fn retry_job(raw_id: String, pipeline: Pipeline) -> Result<Response, ApiError> {
    let id = parse_job_id(&raw_id)?;
    match pipeline.retry(&id).await {
        Ok(job) => {
            let mut resp = json_with(StatusCode::ACCEPTED, &job);
            if let Ok(v) = HeaderValue::from_str(&job.location()) {
                resp.headers_mut().insert(header::LOCATION, v);
            }
            Ok(resp)
        }
        Err(ControlError::WrongState(job)) => Err(wrong_state(
            "job_not_retryable",
            format!(
                "job {id} is {}; only failed or cancelled jobs can be retried",
                job.status.as_str()
            ),
            *job,
        )),
        Err(e) => Err(control_error(e, &id)),
    }
}

fn control_error(e: ControlError, id: &Uuid) -> ApiError {
    match e {
        ControlError::NotFound => job_not_found(id),
        ControlError::WrongState(job) => ApiError::Conflict {
            code: "wrong_state",
            message: format!("job {id} is {}", job.status.as_str()),
            job: Some(job),
        },
        other => other.into(),
    }
}

/// `GET /jobs/<id>/events`: the job's current state, then each change, as
/// server-sent events; the stream ends after a final state.
#[utoipa::path(
    get, path = "/jobs/{job_id}/events", tag = "jobs",
    params(("job_id" = uuid::Uuid, Path, description = "A job id (UUID), as `POST /jobs` answered")),
    responses((status = 200, description = "Server-sent events: the job's state now, then each change; ends after a final state. `event:` is the state, `data:` the job", content_type = "text/event-stream", body = SseEvent),
        (status = 400, description = "Not a job id (`bad_job_id`)", body = ErrorBody),
        (status = 404, description = "No such job (`job_not_found`)", body = ErrorBody),
        (status = 503, description = "Redis is unavailable; retry after the Retry-After seconds", body = ErrorBody, headers(("Retry-After" = String, description = "Seconds to wait"))))
)]
async fn job_events(
    raw_id: String,
    store: Store,
    hub: Hub,
    client: Client,
    limits: Limits,
) -> Result<Response, ApiError> {
    let id = parse_job_id(&raw_id)?;
    let slot = limits
        .open_stream(client)
        .ok_or_else(|| gate::too_many_streams(&limits))?;
    // Subscribe before reading the record, so no change falls in between.
    let live = hub.stream(None).await?;
    let job = jobs::get(&mut store.data.clone(), &store.keys, &id)
        .await?
        .ok_or_else(|| job_not_found(&id))?;
    let first = sse_frame(None, job.status.as_str(), job.to_json().as_bytes());
    let finished = job.status.is_finished();
    let seen = (job.status, job.updated_at);
    let changes = live
        .filter(move |e| {
            // Changes older than the snapshot, or the snapshot itself, are not news.
            let news = e.job == id
                && e.parse_job().is_some_and(|j| {
                    j.updated_at > seen.1 || (j.updated_at == seen.1 && j.status != seen.0)
                });
            std::future::ready(news)
        })
        .boxed();
    // Ends right after a final state, without waiting for another event.
    let changes = futures_util::stream::unfold((changes, finished), |(mut s, done)| async move {
        if done {
            return None;
        }
        let e = s.next().await?;
        let done = e.status.is_finished();
        Some((e.frame(), (s, done)))
    });
    let events = futures_util::stream::once(std::future::ready(first)).chain(changes);
    Ok(sse_reply(&hub, events, slot))
}

/// How long an event stream may stay silent before a keep-alive comment.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// An SSE response of ready-encoded frames, with a keep-alive comment in
/// every 15 s that carried no event, so proxies and clients can tell an idle
/// stream from a dead one. The body is the stream itself, polled by the
/// connection's own task: no task or channel per client, and no per-client
/// encoding (each event's frame is shared), which is what makes an event
/// cheap to deliver to thousands of clients. It ends when the events do,
/// the client goes away, or the process stops.
pub(super) fn sse_reply(
    hub: &Hub,
    events: impl Stream<Item = Bytes> + Send + 'static,
    slot: StreamSlot,
) -> Response {
    let frames = with_keep_alive(events, KEEP_ALIVE, slot)
        .take_until(hub.shutdown().clone().cancelled_owned())
        .map(Ok::<_, Infallible>);
    // warp asks for a `Sync` body stream; the connection polls it from one task.
    let mut resp = warp::reply::stream(sync_wrapper::SyncStream::new(frames)).into_response();
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

/// `events`, with a comment (`:`) after each `every` in which none came.
/// The timer is not reset per event (a timer-wheel update per delivery): it
/// fires every `every` and speaks only if nothing was sent since it last
/// fired. `held` (the client's stream slot) lives as long as the stream.
fn with_keep_alive<H: Send + 'static>(
    events: impl Stream<Item = Bytes> + Send + 'static,
    every: Duration,
    held: H,
) -> impl Stream<Item = Bytes> + Send + 'static {
    let tick = move || Box::pin(tokio::time::sleep(every));
    let state = (Box::pin(events), tick(), false, held);
    futures_util::stream::unfold(
        state,
        move |(mut events, mut idle, mut sent, held)| async move {
            loop {
                tokio::select! {
                    biased;
                    next = events.next() => {
                        sent = true;
                        return Some((next?, (events, idle, sent, held)));
                    }
                    _ = &mut idle => {
                        idle = tick();
                        if !std::mem::take(&mut sent) {
                            return Some((Bytes::from_static(b":\n\n"), (events, idle, sent, held)));
                        }
                    }
                }
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[tokio::test]
    async fn an_idle_stream_gets_comments_and_a_busy_one_none() {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Bytes>();
        let events =
            futures_util::stream::unfold(
                rx,
                |mut rx| async move { rx.recv().await.map(|b| (b, rx)) },
            );
        let held = Arc::new(());
        let mut s = Box::pin(with_keep_alive(
            events,
            Duration::from_millis(500),
            held.clone(),
        ));
        // Idle: a comment within about one period.
        let first = tokio::time::timeout(Duration::from_secs(2), s.next()).await;
        assert_eq!(first.unwrap().unwrap(), Bytes::from_static(b":\n\n"));
        // An event goes out at once, unchanged.
        tx.send(Bytes::from_static(b"event:done\ndata:{}\n\n"))
            .unwrap();
        let next = tokio::time::timeout(Duration::from_secs(1), s.next()).await;
        assert_eq!(
            next.unwrap().unwrap(),
            Bytes::from_static(b"event:done\ndata:{}\n\n")
        );
        // Events every 20 ms keep the comments away.
        let feeder = tokio::spawn(async move {
            for _ in 0..15 {
                tokio::time::sleep(Duration::from_millis(20)).await;
                tx.send(Bytes::from_static(b"data:x\n\n")).unwrap();
            }
        });
        for _ in 0..15 {
            let got = tokio::time::timeout(Duration::from_secs(2), s.next()).await;
            assert_eq!(got.unwrap().unwrap(), Bytes::from_static(b"data:x\n\n"));
        }
        feeder.await.unwrap();
        // The events ended: so does the stream, and what it held is let go.
        assert!(s.next().await.is_none());
        drop(s);
        assert_eq!(Arc::strong_count(&held), 1);
    }

    #[test]
    fn a_frame_is_warp_s_order_and_splits_lines() {
        assert_eq!(
            &sse_frame(Some("1-2"), "done", b"{\"a\":1}")[..],
            b"event:done\ndata:{\"a\":1}\nid:1-2\n\n"
        );
        assert_eq!(
            &sse_frame(None, "queued", b"a\r\nb")[..],
            b"event:queued\ndata:a\ndata:b\n\n"
        );
    }
}
