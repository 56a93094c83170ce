//! HTTP routes: one file per resource ([`data`], [`genes`], [`jobs`],
//! [`image`], [`schedules`]), each a set of warp filters that parse input into types and
//! plain async handlers that take what they use (a [`Store`], the
//! [`Pipeline`], settings). This file assembles the tree and holds the
//! filters the resources share.
//!
//! Each route matches its path before its method, so a known path with the
//! wrong method is a 405 and an unknown path a 404. Handlers return
//! `Result<Response, ApiError>`; [`respond`] is the one place that turns an
//! error into its JSON answer.

mod cors;
mod dashboard;
mod data;
mod dead;
mod docs;
mod events;
mod gate;
mod genes;
mod hgnc;
mod image;
mod jobs;
mod listing;
mod metrics;
mod releases;
mod schedules;
mod search;
mod whoami;

pub use docs::ApiDoc;
pub use hgnc::HGNC_HOST;

use std::collections::HashMap;
use std::convert::Infallible;

use bytes::{Buf, Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use serde::Serialize;
use uuid::Uuid;
use warp::http::{header, HeaderValue, StatusCode};
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use crate::error::{recover, ApiError, ErrorBody};
use crate::events::Hub;
use crate::jobs::{Job, JobStatus};
use crate::pipeline::Pipeline;
use crate::store::Store;
use docs::Health;

/// Largest request body any route reads.
const BODY_LIMIT: usize = 16 * 1024;

/// Everything the routes need, behind one `Arc`: a request clones one
/// handle (one atomic increment) instead of every connection, channel and
/// token inside, which took about a sixth of the API's CPU on `POST /image`.
#[derive(Clone)]
pub struct AppState(std::sync::Arc<AppParts>);

impl AppState {
    pub fn new(parts: AppParts) -> Self {
        Self(std::sync::Arc::new(parts))
    }
}

impl std::ops::Deref for AppState {
    type Target = AppParts;

    fn deref(&self) -> &AppParts {
        &self.0
    }
}

/// What [`AppState`] holds.
pub struct AppParts {
    pub pipeline: Pipeline,
    /// This process's reader of the job events (SSE, `Prefer: wait`).
    pub hub: Hub,
    /// The metrics recorder's handle; None when metrics are off.
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    /// The API keys (empty: open).
    pub keys: std::sync::Arc<crate::auth::KeyRing>,
    /// Rate limits, backpressure, event-stream slots.
    pub limits: crate::limits::Limits,
    /// This process's copy of the live data set's index.
    pub catalog: crate::genes::Catalog,
}

/// The whole API, with request tracing and JSON errors.
pub fn api(state: AppState) -> impl Filter<Extract = (impl Reply,), Error = Infallible> + Clone {
    // Tried in this order, each a layer of the request's future: the reads
    // people make most come first (point reads were 0.7 of `/health` with
    // `/genes` ninth; the paths do not overlap, so the order changes nothing
    // else).
    let reads = genes::routes(&state)
        // Before search's `/info`: HGNC's `/info`, for requests addressed to HGNC.
        .or(hgnc::routes(&state))
        .unify()
        .or(search::routes(&state))
        .unify()
        .or(data::routes(&state))
        .unify();
    // Boxed: one type for the rest (the compiler's recursion limit otherwise).
    let rest = health_and_ready(state.pipeline.store.clone())
        .or(metrics::route(
            state.metrics.clone(),
            state.pipeline.clone(),
            true,
        ))
        .unify()
        .or(dashboard::routes())
        .unify()
        .or(docs::routes(!state.keys.is_enabled()))
        .unify()
        .or(whoami::routes(state.keys.clone()))
        .unify()
        .or(releases::routes(&state))
        .unify()
        .or(schedules::routes(&state))
        .unify()
        .or(dead::routes(&state))
        .unify()
        .or(jobs::routes(&state))
        .unify()
        .or(events::routes(&state))
        .unify()
        .or(image::routes(&state))
        .unify()
        .boxed();
    let routes = reads.or(rest).unify();
    let answered = head_within_limit()
        .and(gate::gate(&state))
        .and(routes)
        .recover(recover)
        .unify()
        .map(Reply::into_response);
    let served = cors::wrap(answered, &state.pipeline.settings.http.cors);
    warp::path::full()
        .and(served)
        .map(with_allow)
        .with(warp::log::custom(access_log))
        .with(warp::trace(request_span))
}

/// A request's span, when traces are exported (else none, at no cost): it
/// continues the W3C `traceparent` the client sent, and a job submitted
/// under it carries it to the worker (see `telemetry/otel.rs`).
fn request_span(info: warp::trace::Info<'_>) -> tracing::Span {
    if !crate::telemetry::otel::on() {
        return tracing::Span::none();
    }
    let route = route_template(info.path());
    let span = tracing::info_span!(
        "request",
        otel.name = %format_args!("{} {route}", info.method()),
        otel.kind = "server",
        http.request.method = %info.method(),
        http.route = route,
        url.path = info.path(),
    );
    crate::telemetry::otel::continue_from_headers(&span, info.request_headers());
    span
}

/// A 405 names the methods its route does answer (`Allow`, required by RFC
/// 9110), from the contract's table of routes. A rejection does not know its
/// path, so this is added on the way out.
fn with_allow(path: warp::path::FullPath, reply: impl Reply) -> Response {
    let mut resp = reply.into_response();
    if resp.status() == StatusCode::METHOD_NOT_ALLOWED {
        if let Some(allow) = docs::allowed_methods(route_template(path.as_str())) {
            if let Ok(v) = HeaderValue::from_str(allow) {
                resp.headers_mut().insert(header::ALLOW, v);
            }
        }
    }
    resp
}

/// One line per request, and its metrics. Probes and scrapes (`/health`,
/// `/ready`, `/metrics`) are asked every few seconds by every orchestrator:
/// they are logged at debug, so that they do not drown the requests people make.
fn access_log(info: warp::log::Info<'_>) {
    let (method, path, status) = (info.method().as_str(), info.path(), info.status().as_u16());
    crate::monitoring::http_request(route_template(path), method, status, info.elapsed());
    let elapsed_ms = info.elapsed().as_secs_f64() * 1000.0;
    if matches!(path, "/health" | "/ready" | "/metrics") {
        tracing::debug!(method, path, status, elapsed_ms, "request");
    } else {
        tracing::info!(method, path, status, elapsed_ms, "request");
    }
}

/// /health, /ready and /metrics: what `gene-api worker` serves for probes and scrapes.
pub fn probes(state: AppState) -> impl Filter<Extract = (impl Reply,), Error = Infallible> + Clone {
    let routes = health_and_ready(state.pipeline.store.clone())
        .or(metrics::route(
            state.metrics.clone(),
            state.pipeline.clone(),
            false,
        ))
        .unify();
    let answered = head_within_limit().and(routes).recover(recover).unify();
    warp::path::full()
        .and(answered)
        .map(with_allow)
        .with(warp::log::custom(access_log))
}

/// Refuses a request the server loop marked as having too large a head
/// (`server::HeadTooLarge`), with the JSON 431, before anything else.
fn head_within_limit() -> impl Filter<Extract = (), Error = Rejection> + Clone {
    warp::ext::optional::<crate::server::HeadTooLarge>()
        .and_then(|too_large: Option<crate::server::HeadTooLarge>| {
            std::future::ready(match too_large {
                None => Ok(()),
                Some(h) => Err(warp::reject::custom(ApiError::HeaderTooLarge {
                    bytes: h.bytes,
                    limit: h.limit,
                })),
            })
        })
        .untuple_one()
}

/// `GET /health` (the process runs) and `GET /ready` (both Redis databases answer).
fn health_and_ready(store: Store) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let health = warp::path!("health").and(warp::get()).then(health);
    let ready = warp::path!("ready")
        .and(warp::get())
        .and(with(store))
        .then(ready);
    health.or(ready).unify()
}

#[utoipa::path(
    get, path = "/ready", tag = "operations",
    responses((status = 200, description = "Both Redis databases answer", body = Health),
        (status = 503, description = "Redis does not answer (`not_ready`)", body = ErrorBody))
)]
async fn ready(store: Store) -> Response {
    let message = match store.check().await {
        Ok(()) => return json_with(StatusCode::OK, &serde_json::json!({"status": "ready"})),
        Err(crate::store::NotReady::Sentinel(why)) => format!(
            "the Redis primary is not known: {why}; check REDIS_SENTINELS, \
             REDIS_SENTINEL_MASTER (the name the sentinels monitor), REDIS_SENTINEL_USERNAME and \
             REDIS_SENTINEL_PASSWORD, and that the sentinels run"
        ),
        Err(crate::store::NotReady::Redis(e)) => not_ready_message(&e),
    };
    json_with(
        StatusCode::SERVICE_UNAVAILABLE,
        &serde_json::json!({"error": "not_ready", "message": message}),
    )
}

/// What an operator must fix, told apart because each has its own fix. The
/// details are Redis's or the TLS library's words: no secret is in them.
fn not_ready_message(e: &redis::RedisError) -> String {
    use crate::store::RedisFix;
    match RedisFix::of(e) {
        Some(fix @ RedisFix::Credentials) => {
            format!("Redis refused the credentials ({e}); {}", fix.hint())
        }
        Some(fix @ RedisFix::Rights) => format!(
            "the Redis user may not use gene-api's keys or commands (NOPERM {}); {}",
            e.detail().unwrap_or_default(),
            fix.hint()
        ),
        Some(fix @ (RedisFix::Replica | RedisFix::NoReplicas)) => {
            format!("Redis takes no writes ({e}); {}", fix.hint())
        }
        Some(RedisFix::Reach) | None => format!(
            "Redis (db 0 or db 1) does not answer ({e}); {}",
            RedisFix::Reach.hint()
        ),
    }
}

/// Every route template [`route_template`] answers (besides `unmatched`):
/// the paths the router takes. The security test walks the router through
/// them, every method on every path, to find the operations it serves.
pub const ROUTE_TEMPLATES: &[&str] = &[
    "/",
    "/health",
    "/ready",
    "/metrics",
    "/openapi.json",
    "/whoami",
    "/docs",
    "/docs/{file}",
    "/data",
    "/data/info",
    "/schedules",
    "/genes",
    "/genes/lookup",
    "/genes/symbol/{symbol}",
    "/genes/{hgnc_id}",
    "/genes/{hgnc_id}/history",
    "/genes/symbol/{symbol}/history",
    "/search",
    "/info",
    "/releases",
    "/releases/{release}",
    "/releases/{from}/diff/{to}",
    "/events",
    "/image",
    "/image/{job_id}",
    "/jobs",
    "/jobs/stats",
    "/jobs/pause",
    "/jobs/resume",
    "/jobs/dead",
    "/jobs/dead/{entry_id}",
    "/jobs/dead/{entry_id}/requeue",
    "/jobs/{job_id}",
    "/jobs/{job_id}/retry",
    "/jobs/{job_id}/events",
    "/hgnc/info",
    "/hgnc/fetch/{field}/{term}",
    "/hgnc/search/{query}",
    "/hgnc/search/{field}/{query}",
    // Only for requests addressed to rest.genenames.org (see hgnc.rs).
    "/fetch/{field}/{term}",
    "/search/{query}",
    "/search/{field}/{query}",
];

/// A path of `template` with each placeholder filled in with a well-formed
/// value (for tests that send a request to every route).
pub fn example_path(template: &str) -> String {
    template
        .replace("{job_id}", "0b7e5a8e-7c1f-4f5e-9d55-3e8f6a1c2b4d")
        .replace("{hgnc_id}", "HGNC:5")
        .replace("{symbol}", "A1BG")
        .replace("{entry_id}", "1-0")
        .replace("{file}", "swagger-ui.css")
        .replace("{release}", "live")
        .replace("{from}", "live")
        .replace("{to}", "live")
        .replace("{field}", "symbol")
        .replace("{term}", "A1BG")
        .replace("{query}", "A1BG")
}

/// The route template a path belongs to, as the metrics label it: ids become
/// `{id}`, and paths no route takes are one label, so that no client can grow
/// the label set.
fn route_template(path: &str) -> &'static str {
    // Asked twice a request (the gate, the access log): no allocation.
    let mut segments = [""; 4];
    let mut n = 0;
    for segment in path.strip_prefix('/').unwrap_or(path).split('/') {
        if n == segments.len() {
            return "unmatched";
        }
        segments[n] = segment;
        n += 1;
    }
    match &segments[..n] {
        [""] => "/",
        ["health"] => "/health",
        ["ready"] => "/ready",
        ["metrics"] => "/metrics",
        ["openapi.json"] => "/openapi.json",
        ["whoami"] => "/whoami",
        ["docs"] => "/docs",
        ["docs", ..] => "/docs/{file}",
        ["data"] => "/data",
        ["data", "info"] => "/data/info",
        ["schedules"] => "/schedules",
        ["genes"] => "/genes",
        ["genes", "lookup"] => "/genes/lookup",
        ["genes", "symbol", _] => "/genes/symbol/{symbol}",
        ["genes", "symbol", _, "history"] => "/genes/symbol/{symbol}/history",
        ["genes", _] => "/genes/{hgnc_id}",
        ["genes", _, "history"] => "/genes/{hgnc_id}/history",
        ["releases"] => "/releases",
        ["releases", _] => "/releases/{release}",
        ["releases", _, "diff", _] => "/releases/{from}/diff/{to}",
        ["search"] => "/search",
        ["hgnc", "info"] => "/hgnc/info",
        ["hgnc", "fetch", _, _] => "/hgnc/fetch/{field}/{term}",
        ["hgnc", "search", _] => "/hgnc/search/{query}",
        ["hgnc", "search", _, _] => "/hgnc/search/{field}/{query}",
        // The same, asked through gene-api as an HTTP proxy (see hgnc.rs).
        ["fetch", _, _] => "/fetch/{field}/{term}",
        ["search", _] => "/search/{query}",
        ["search", _, _] => "/search/{field}/{query}",
        ["info"] => "/info",
        ["events"] => "/events",
        ["image"] => "/image",
        ["image", _] => "/image/{job_id}",
        ["jobs"] => "/jobs",
        ["jobs", "stats"] => "/jobs/stats",
        ["jobs", "pause"] => "/jobs/pause",
        ["jobs", "resume"] => "/jobs/resume",
        ["jobs", "dead"] => "/jobs/dead",
        ["jobs", "dead", _] => "/jobs/dead/{entry_id}",
        ["jobs", "dead", _, "requeue"] => "/jobs/dead/{entry_id}/requeue",
        ["jobs", _] => "/jobs/{job_id}",
        ["jobs", _, "retry"] => "/jobs/{job_id}/retry",
        ["jobs", _, "events"] => "/jobs/{job_id}/events",
        _ => "unmatched",
    }
}

/// The process runs (liveness).
#[utoipa::path(
    get, path = "/health", tag = "operations",
    responses((status = 200, description = "The process runs", body = Health))
)]
async fn health() -> Response {
    json_with(StatusCode::OK, &serde_json::json!({"status": "ok"}))
}

/// Hands a clone of `value` to the handler (warp's `with_state` idiom).
fn with<T: Clone + Send + Sync + 'static>(
    value: T,
) -> impl Filter<Extract = (T,), Error = Infallible> + Clone {
    warp::any().map(move || value.clone())
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

/// The header that names the release an answer is of.
pub const RELEASE_HEADER: &str = "x-hgnc-release";

/// Marks `resp` as read from release `id`.
fn of_release(mut resp: Response, id: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(id) {
        resp.headers_mut().insert(RELEASE_HEADER, v);
    }
    resp
}

/// `?release=<id>` of a route that takes no other parameter it checks;
/// absent: the live release.
fn release_query() -> impl Filter<Extract = (crate::genes::Pick,), Error = Rejection> + Clone {
    listing::query_pairs().and_then(|mut pairs: Vec<(String, String)>| async move {
        take_release(&mut pairs).map_err(warp::reject::custom)
    })
}

/// The error of a release part that was not found: the release is not
/// kept, was never loaded, or nothing is loaded (the catalog tells which).
async fn missing_release(
    catalog: &crate::genes::Catalog,
    conn: &mut crate::store::Conn,
    keys: &crate::store::Keys,
    pick: &crate::genes::Pick,
) -> ApiError {
    catalog
        .release(conn, keys, pick)
        .await
        .err()
        .map_or_else(ApiError::no_data, Into::into)
}

/// Takes `release` out of a route's parameters.
fn take_release(pairs: &mut Vec<(String, String)>) -> Result<crate::genes::Pick, ApiError> {
    let mut found = None;
    pairs.retain(|(k, v)| {
        if k == "release" {
            found = Some(v.clone());
            false
        } else {
            true
        }
    });
    crate::genes::Pick::from_param(found.as_deref())
        .map_err(|m| ApiError::bad_request("bad_release", m))
}

/// Reads a body of at most [`BODY_LIMIT`] bytes, with or without Content-Length.
fn small_body() -> impl Filter<Extract = (Bytes,), Error = Rejection> + Clone {
    body_up_to(BODY_LIMIT)
}

/// Reads a body of at most `limit` bytes, with or without Content-Length.
fn body_up_to(limit: usize) -> impl Filter<Extract = (Bytes,), Error = Rejection> + Clone {
    warp::body::stream().and_then(move |body| collect_limited(body, limit))
}

async fn collect_limited<S, B>(body: S, limit: usize) -> Result<Bytes, Rejection>
where
    S: Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    let mut body = std::pin::pin!(body);
    let mut buf = BytesMut::new();
    while let Some(chunk) = body.next().await {
        let mut chunk = chunk
            .map_err(|e| warp::reject::custom(ApiError::bad_request("bad_body", e.to_string())))?;
        if buf.len() + chunk.remaining() > limit {
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

/// A submission's `Idempotency-Key` (the IETF draft's header): the key as
/// sent, and the client it belongs to (an API key's name, or an address).
pub(super) struct IdempotencyKey {
    client: String,
    key: String,
}

/// The longest Idempotency-Key taken.
const MAX_IDEMPOTENCY_KEY: usize = 255;

/// `Idempotency-Key`, parsed at the edge: a structured-field string
/// (`"..."`, as the draft writes it) or a bare token, of 1 to 255 visible
/// ASCII characters without `"` or `\` (and spaces inside quotes).
pub(super) fn idempotency_key(
    state: &AppState,
) -> impl Filter<Extract = (Option<IdempotencyKey>,), Error = Rejection> + Clone {
    warp::header::optional::<String>("idempotency-key")
        .and(gate::client(state))
        .and_then(|raw: Option<String>, client: crate::limits::Client| {
            std::future::ready(match raw {
                None => Ok(None),
                Some(raw) => parse_idempotency_key(&raw)
                    .map(|key| {
                        Some(IdempotencyKey {
                            client: client.to_string(),
                            key,
                        })
                    })
                    .map_err(warp::reject::custom),
            })
        })
}

fn parse_idempotency_key(raw: &str) -> Result<String, ApiError> {
    let raw = raw.trim();
    let (key, quoted) = match raw.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
        Some(inner) => (inner, true),
        None => (raw, false),
    };
    let allowed = |c: char| (c.is_ascii_graphic() || (quoted && c == ' ')) && c != '"' && c != '\\';
    if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY || !key.chars().all(allowed) {
        return Err(ApiError::bad_request(
            "bad_idempotency_key",
            format!(
                "Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters \
                 without '\"' or '\\', quoted or not (e.g. \"8e03978e-40d5-43e8-bc93-6894a57f9324\"); got {raw:?}"
            ),
        ));
    }
    Ok(key.to_string())
}

/// Submits `command` for `route` and answers as [`accepted`] does; with an
/// Idempotency-Key, once: the same request again answers the first job
/// (`202`, or its end with `Prefer: wait`; `Idempotent-Replayed: true`),
/// another request under the same key is a `422 idempotency_key_reused`.
async fn submit(
    state: &AppState,
    route: &str,
    command: crate::jobs::Command,
    key: Option<IdempotencyKey>,
    wait: Option<u64>,
) -> Result<Response, ApiError> {
    use crate::pipeline::{Once, Submitted};
    use sha2::{Digest, Sha256};
    let hash = |s: &str| hex::encode(Sha256::digest(s.as_bytes()));
    let once = key.map(|k| Once {
        record: state
            .pipeline
            .store
            .keys
            .idempotency(&k.client, &hash(&k.key)),
        fingerprint: hash(&format!(
            "{route}\n{}",
            serde_json::to_string(&command).unwrap_or_default()
        )),
    });
    match state.pipeline.submit_once(command, once.as_ref()).await? {
        Submitted::New(job) => accepted(state, job, wait).await,
        Submitted::Replay(job) => {
            let mut resp = match wait {
                Some(_) => accepted(state, job, wait).await?,
                None => {
                    let mut r = json_with(StatusCode::ACCEPTED, &job);
                    if let Ok(v) = HeaderValue::from_str(&job.location()) {
                        r.headers_mut().insert(header::LOCATION, v);
                    }
                    r
                }
            };
            resp.headers_mut()
                .insert("idempotent-replayed", HeaderValue::from_static("true"));
            Ok(resp)
        }
    }
}

/// 202 + Location for a queued job; with `Prefer: wait`, its final state when it ends in time.
async fn accepted(state: &AppState, job: Job, wait: Option<u64>) -> Result<Response, ApiError> {
    let mut job = job;
    let mut applied = None;
    if let Some(secs) = wait {
        let secs = secs.min(state.pipeline.settings.http.max_wait.as_secs());
        applied = Some(secs);
        if let Some(latest) = state
            .hub
            .wait_for(&job.id, std::time::Duration::from_secs(secs))
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

/// The job with an `error` for a control action that does not fit its state.
fn wrong_state(code: &'static str, message: String, job: Job) -> ApiError {
    ApiError::Conflict {
        code,
        message,
        job: Some(Box::new(job)),
    }
}

/// A 400 naming the parameters `route` takes, when the query has another.
fn only_params(
    query: &HashMap<String, String>,
    allowed: &[&str],
    route: &str,
) -> Result<(), ApiError> {
    match query.keys().find(|k| !allowed.contains(&k.as_str())) {
        None => Ok(()),
        Some(k) => Err(ApiError::bad_request(
            "bad_parameter",
            format!(
                "unknown parameter {k:?}; {route} takes {}",
                allowed.join(", ")
            ),
        )),
    }
}

/// `?limit=`: 1..=`max`, `default` when absent.
fn limit_param(
    query: &HashMap<String, String>,
    default: usize,
    max: usize,
) -> Result<usize, ApiError> {
    match query.get("limit") {
        None => Ok(default),
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| {
                ApiError::bad_request(
                    "bad_limit",
                    format!("limit must be a number from 1 to {max}"),
                )
            }),
    }
}

/// An optional parameter parsed into its type; its error message is the type's own.
fn typed_param<T: std::str::FromStr<Err = String>>(
    query: &HashMap<String, String>,
    name: &str,
    code: &'static str,
) -> Result<Option<T>, ApiError> {
    query
        .get(name)
        .map(|v| v.parse::<T>().map_err(|m| ApiError::bad_request(code, m)))
        .transpose()
}

/// A job id from a path segment.
fn parse_job_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| {
        ApiError::bad_request(
            "bad_job_id",
            format!("{raw:?} is not a job id: expected a UUID such as 0b7e5a8e-7c1f-4f5e-9d55-3e8f6a1c2b4d"),
        )
    })
}

fn job_not_found(id: &Uuid) -> ApiError {
    ApiError::not_found(
        "job_not_found",
        format!("no job {id} (finished jobs are kept for a limited time)"),
    )
}

#[cfg(test)]
mod tests {
    use super::{example_path, parse_idempotency_key, route_template, ROUTE_TEMPLATES};

    #[test]
    fn an_idempotency_key_is_a_quoted_string_or_a_bare_token() {
        for (raw, key) in [
            ("\"8e03978e-40d5\"", "8e03978e-40d5"),
            ("8e03978e-40d5", "8e03978e-40d5"),
            ("\"with spaces inside\"", "with spaces inside"),
            ("  x  ", "x"),
        ] {
            assert_eq!(parse_idempotency_key(raw).unwrap(), key, "{raw}");
        }
        let long = "k".repeat(256);
        for bad in [
            "",
            "\"\"",
            "two words",
            "\"a\\b\"",
            "a\"b",
            "é",
            long.as_str(),
        ] {
            let e = parse_idempotency_key(bad).unwrap_err();
            assert!(e.to_string().contains("1 to 255"), "{bad}: {e}");
        }
        assert!(parse_idempotency_key(&"k".repeat(255)).is_ok());
    }

    #[test]
    fn every_route_template_is_its_own_label() {
        for t in ROUTE_TEMPLATES {
            assert_eq!(route_template(&example_path(t)), *t);
        }
    }

    #[test]
    fn templates_keep_label_sets_bounded() {
        assert_eq!(route_template("/genes/HGNC:5"), "/genes/{hgnc_id}");
        assert_eq!(route_template("/genes"), "/genes");
        assert_eq!(
            route_template("/genes/symbol/TP53"),
            "/genes/symbol/{symbol}"
        );
        assert_eq!(route_template("/genes/lookup"), "/genes/lookup");
        assert_eq!(route_template("/search"), "/search");
        assert_eq!(route_template("/schedules"), "/schedules");
        assert_eq!(
            route_template("/jobs/0b7e5a8e-7c1f-4f5e-9d55-3e8f6a1c2b4d/retry"),
            "/jobs/{job_id}/retry"
        );
        assert_eq!(route_template("/jobs/stats"), "/jobs/stats");
        assert_eq!(
            route_template("/jobs/dead/1-0/requeue"),
            "/jobs/dead/{entry_id}/requeue"
        );
        assert_eq!(route_template("/"), "/");
        assert_eq!(route_template("/docs/swagger-ui.css"), "/docs/{file}");
        for junk in ["/etc/passwd", "/genes/a/b", "/jobs/x/y/z", "//", "/data/"] {
            assert_eq!(route_template(junk), "unmatched", "{junk}");
        }
    }
}
