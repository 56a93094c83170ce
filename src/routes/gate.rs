//! The gate every API request passes first: who the client is, whether its
//! key allows the route, whether its budget allows another request, and
//! whether the queue takes another job. One place, before any route parses
//! its input, so a refused request costs next to nothing.

use std::convert::Infallible;
use std::sync::Arc;

use warp::filters::path::FullPath;
use warp::http::Method;
use warp::{Filter, Rejection};

use super::{route_template, AppState};
use crate::auth::{self, KeyRing, Verdict};
use crate::error::ApiError;
use crate::limits::{Client, Limits, Refusal};
use crate::server::Peer;

/// Passes a request the keys and limits allow; rejects the others with 401,
/// 403, 429 or 503 `busy`.
pub fn gate(state: &AppState) -> impl Filter<Extract = (), Error = Rejection> + Clone {
    let keys = state.keys.clone();
    let limits = state.limits.clone();
    let (header, trusted) = client_header(state);
    warp::method()
        .and(warp::path::full())
        .and(warp::header::optional::<String>("authorization"))
        .and(warp::header::optional::<String>(header))
        .and(warp::ext::optional::<Peer>())
        .and_then(
            move |method: Method,
                  path: FullPath,
                  authorization: Option<String>,
                  forwarded: Option<String>,
                  peer: Option<Peer>| {
                // Decided here, synchronously: nothing to clone into a future.
                std::future::ready(decide(
                    &keys,
                    &limits,
                    &method,
                    path.as_str(),
                    authorization.as_deref(),
                    forwarded.as_deref().filter(|_| trusted),
                    peer.map(|Peer(a)| a.ip()),
                ))
            },
        )
        .untuple_one()
}

/// Whether a request may pass: its key, its budget, the backlog.
fn decide(
    keys: &KeyRing,
    limits: &Limits,
    method: &Method,
    path: &str,
    authorization: Option<&str>,
    forwarded: Option<&str>,
    peer: Option<std::net::IpAddr>,
) -> Result<(), Rejection> {
    let template = route_template(path);
    let needed = auth::required_scope(method.as_str(), template);
    let verdict = keys.check(needed, authorization);
    let name = match &verdict {
        Verdict::Allowed(name) => name.clone(),
        Verdict::Forbidden { name, .. } => Some(name.clone()),
        Verdict::Unauthorized => None,
    };
    let client = Client::of(name, forwarded, peer);
    // Probes are the orchestrator's, not a client's: never limited.
    if !matches!(template, "/health" | "/ready") {
        let submission = is_submission(method.as_str(), template);
        limits
            .admit(&client, submission)
            .map_err(|r| warp::reject::custom(refused(r)))?;
    }
    match verdict {
        Verdict::Allowed(_) => Ok(()),
        Verdict::Unauthorized => Err(warp::reject::custom(ApiError::Unauthorized)),
        Verdict::Forbidden { name, needed } => {
            Err(warp::reject::custom(ApiError::Forbidden(format!(
                "the key {name:?} may not do this: it needs the {} scope",
                needed.as_str()
            ))))
        }
    }
}

/// The client a request is from, for handlers that hold something per client
/// (event streams).
pub fn client(state: &AppState) -> impl Filter<Extract = (Client,), Error = Infallible> + Clone {
    let keys = state.keys.clone();
    let (header, trusted) = client_header(state);
    warp::header::optional::<String>("authorization")
        .and(warp::header::optional::<String>(header))
        .and(warp::ext::optional::<Peer>())
        .map(
            move |authorization: Option<String>, forwarded: Option<String>, peer: Option<Peer>| {
                let name = key_name(&keys, authorization.as_deref());
                Client::of(
                    name,
                    forwarded.as_deref().filter(|_| trusted),
                    peer.map(|Peer(a)| a.ip()),
                )
            },
        )
        .or_else(|_| async { Ok::<_, Infallible>((Client::Unknown,)) })
}

fn key_name(keys: &Arc<KeyRing>, authorization: Option<&str>) -> Option<String> {
    match keys.check(None, authorization) {
        Verdict::Allowed(name) => name,
        _ => None,
    }
}

/// The configured client header, and whether to trust it. warp wants a
/// `'static` name; the setting is read once per server, so it is leaked once.
fn client_header(state: &AppState) -> (&'static str, bool) {
    match &state.pipeline.settings.limits.client_ip_header {
        Some(h) if !h.trim().is_empty() => (
            Box::leak(h.trim().to_ascii_lowercase().into_boxed_str()),
            true,
        ),
        _ => ("x-forwarded-for", false),
    }
}

/// Routes that queue a job.
pub(super) fn is_submission(method: &str, template: &str) -> bool {
    method == "POST"
        && matches!(
            template,
            "/data" | "/image" | "/jobs" | "/jobs/{job_id}/retry" | "/jobs/dead/{entry_id}/requeue"
        )
}

fn refused(r: Refusal) -> ApiError {
    match r {
        Refusal::RateLimited {
            retry_after,
            submissions,
        } => {
            let secs = retry_after.as_secs_f64().ceil().max(1.0) as u64;
            let what = if submissions {
                "job submissions"
            } else {
                "requests"
            };
            ApiError::TooManyRequests {
                message: format!(
                    "too many {what} from this client; retry in {secs} s (limits are per key, else per address)"
                ),
                retry_after: secs,
            }
        }
        Refusal::Busy { backlog, max } => ApiError::busy(backlog, max),
    }
}

/// The answer when a client has all its event streams open.
pub fn too_many_streams(limits: &Limits) -> ApiError {
    ApiError::TooManyRequests {
        message: format!(
            "this client has {} event streams open already; close one first",
            limits.max_streams()
        ),
        retry_after: 5,
    }
}

#[cfg(test)]
mod tests {
    use super::is_submission;

    #[test]
    fn submissions_are_the_routes_that_queue_jobs() {
        assert!(is_submission("POST", "/image"));
        assert!(is_submission("POST", "/jobs/{job_id}/retry"));
        assert!(!is_submission("DELETE", "/jobs/{job_id}"));
        assert!(!is_submission("GET", "/jobs"));
    }
}
