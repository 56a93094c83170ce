//! CORS: which web pages of other origins may call the API
//! (`GENE_API__HTTP__CORS_ORIGINS`), with warp's own CORS filter.
//!
//! A request without `Origin` (curl, scripts, probes, Prometheus) or from the
//! API's own origin (the dashboard) goes straight to the API, as it did
//! before CORS: warp's filter would otherwise refuse the dashboard's own
//! POSTs (browsers send `Origin` on them) unless its origin were listed too.
//! Only a request from another origin meets the CORS layer: a listed origin
//! gets its answer with `Access-Control-Allow-Origin`, and its preflights are
//! answered without reaching the gate; any other is refused with a JSON 403
//! before the API runs it, so a page cannot make a form-style POST on a
//! user's behalf either.

use std::convert::Infallible;

use warp::filters::BoxedFilter;
use warp::http::Method;
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use crate::config::CorsOrigins;
use crate::error::{recover, ApiError};

/// What a page may send beyond the CORS-safelisted headers.
const ALLOW_HEADERS: [&str; 5] = [
    "authorization",
    "prefer",
    "idempotency-key",
    "last-event-id",
    "content-type",
];
/// What a page's script may read of an answer beyond the safelisted headers.
const EXPOSE_HEADERS: [&str; 8] = [
    "location",
    "link",
    "retry-after",
    "x-total-count",
    "x-job-id",
    super::RELEASE_HEADER,
    "preference-applied",
    "allow",
];
/// How long a browser may reuse a preflight's answer (seconds).
const MAX_AGE: u32 = 600;

/// `api`, answering pages of the `origins` that may call it.
pub fn wrap<F>(
    api: F,
    origins: &CorsOrigins,
) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone
where
    F: Filter<Extract = (Response,), Error = Infallible> + Clone + Send + Sync + 'static,
{
    // Boxed: taken by browser requests only (they carry `Origin`), never by
    // one without (the point reads of scripts stay as they were).
    let cors: BoxedFilter<(Response,)> = match origins {
        CorsOrigins::Off => api.clone().boxed(),
        CorsOrigins::AnyReads => answered(
            reads_only().and(api.clone()).recover(recover).unify(),
            warp::cors()
                .allow_any_origin()
                .allow_methods([Method::GET, Method::HEAD])
                // No `authorization`: a page of any origin reads without a key.
                .allow_headers(["last-event-id", "prefer"]),
        ),
        CorsOrigins::Listed(list) => answered(
            api.clone(),
            warp::cors()
                .allow_origins(list.iter().map(String::as_str))
                .allow_methods([Method::GET, Method::HEAD, Method::POST, Method::DELETE])
                .allow_headers(ALLOW_HEADERS),
        ),
    };
    let with_origin = own_origin().and(api.clone()).or(cors).unify().boxed();
    // (Every branch answers; the recover only gives the boxed ones'
    // `Rejection` error type back its `Infallible`.)
    no_origin()
        .and(api)
        .or(with_origin)
        .unify()
        .recover(recover)
        .unify()
}

/// `inner` behind warp's CORS filter `cors` (what every mode exposes and
/// how long a preflight holds added): refusals are JSON 403s.
fn answered<F>(inner: F, cors: warp::cors::Builder) -> BoxedFilter<(Response,)>
where
    F: Filter<Extract = (Response,), Error = Infallible> + Clone + Send + Sync + 'static,
{
    inner
        .with(cors.expose_headers(EXPOSE_HEADERS).max_age(MAX_AGE))
        .map(vary_on_origin)
        .recover(refused)
        .unify()
        .boxed()
}

/// `Vary: Origin`: the answer names the origin it was for (warp echoes it,
/// `*` included), so a shared cache must not give it to another.
fn vary_on_origin(reply: impl Reply) -> Response {
    let mut r = reply.into_response();
    r.headers_mut().append(
        warp::http::header::VARY,
        warp::http::HeaderValue::from_static("origin"),
    );
    r
}

/// Passes a request without `Origin`: not a browser's cross-origin call.
fn no_origin() -> impl Filter<Extract = (), Error = Rejection> + Clone {
    warp::header::optional::<String>("origin")
        .and_then(|origin: Option<String>| {
            std::future::ready(match origin {
                None => Ok(()),
                Some(_) => Err(warp::reject()),
            })
        })
        .untuple_one()
}

/// Passes a request whose `Origin` is the host it was sent to: the page the
/// API serves itself (the dashboard).
fn own_origin() -> impl Filter<Extract = (), Error = Rejection> + Clone {
    warp::header::<String>("origin")
        .and(warp::header::optional::<String>("host"))
        .and_then(|origin: String, host: Option<String>| {
            // `scheme://host[:port]`: the authority is what `Host` names.
            let own = host.is_some_and(|h| origin.split_once("://").is_some_and(|(_, a)| a == h));
            std::future::ready(if own { Ok(()) } else { Err(warp::reject()) })
        })
        .untuple_one()
}

/// With `*`, pages of other origins read and never write: their writes are
/// refused before the API runs them (a form-style POST needs no preflight).
fn reads_only() -> impl Filter<Extract = (), Error = Rejection> + Clone {
    warp::method()
        .and_then(|m: Method| {
            std::future::ready(if matches!(m, Method::GET | Method::HEAD | Method::OPTIONS) {
                Ok(())
            } else {
                Err(warp::reject::custom(ApiError::Forbidden(format!(
                    "a page of another origin may only read here (GENE_API__HTTP__CORS_ORIGINS is `*`); \
                     {m} needs its origin listed"
                ))))
            })
        })
        .untuple_one()
}

/// A request warp's CORS filter refused (an origin, method or header not
/// allowed): a JSON 403 saying which setting decides.
async fn refused(rejection: Rejection) -> Result<Response, Infallible> {
    if let Some(e) = rejection.find::<warp::cors::CorsForbidden>() {
        return Ok(ApiError::Forbidden(format!(
            "CORS: {e}; GENE_API__HTTP__CORS_ORIGINS lists the origins whose pages may call this API, \
             and they may send Authorization, Prefer, Idempotency-Key, Last-Event-ID and Content-Type"
        ))
        .into_response());
    }
    recover(rejection).await
}
