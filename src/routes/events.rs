//! `/events`: every job's state changes, from every process, as server-sent
//! events with an `id:` each; `Last-Event-ID` resumes after a reconnect.

use std::collections::HashMap;

use futures_util::StreamExt;
use warp::reply::Response;
use warp::{Filter, Rejection};

use super::docs::SseEvent;
use super::jobs::sse_reply;
use super::{gate, only_params, respond, typed_param, with, AppState};
use crate::error::{ApiError, ErrorBody};
use crate::events::Hub;
use crate::jobs::JobKind;
use crate::limits::{Client, Limits};
use crate::store::stream_id_key;

/// `GET /events?kind=`.
pub fn routes(state: &AppState) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("events")
        .and(warp::get())
        .and(warp::query::<HashMap<String, String>>())
        .and(warp::header::optional::<String>("last-event-id"))
        .and(with(state.hub.clone()))
        .and(gate::client(state))
        .and(with(state.limits.clone()))
        .then(events)
        .map(respond)
}

#[utoipa::path(
    get, path = "/events", tag = "jobs",
    params(("kind" = Option<JobKind>, Query, description = "Only jobs of this kind"),
        ("Last-Event-ID" = Option<String>, Header, description = "Resume after this event (`<ms>-<seq>`, an `id:` line)", pattern = "^[0-9]+-[0-9]+$")),
    responses((status = 200, description = "Server-sent events, endless: every job's state changes. `event:` is the state, `data:` the job, `id:` the event id", content_type = "text/event-stream", body = SseEvent),
        (status = 400, description = "A bad `kind` or `Last-Event-ID`", body = ErrorBody),
        (status = 503, description = "Redis is unavailable; retry after the Retry-After seconds", body = ErrorBody, headers(("Retry-After" = String, description = "Seconds to wait"))))
)]
async fn events(
    query: HashMap<String, String>,
    last_event_id: Option<String>,
    hub: Hub,
    client: Client,
    limits: Limits,
) -> Result<Response, ApiError> {
    only_params(&query, &["kind"], "GET /events")?;
    let kind: Option<JobKind> = typed_param(&query, "kind", "bad_kind")?;
    let after = last_event_id
        .map(|id| {
            let id = id.trim().to_string();
            let valid = id.split_once('-').is_some_and(|(a, b)| {
                !a.is_empty()
                    && !b.is_empty()
                    && stream_id_key(&id) != (0, 0)
                    && a.bytes().chain(b.bytes()).all(|c| c.is_ascii_digit())
            });
            if valid {
                Ok(id)
            } else {
                Err(ApiError::bad_request(
                    "bad_last_event_id",
                    format!(
                        "Last-Event-ID {id:?} is not an event id (<ms>-<seq>, from an `id:` line)"
                    ),
                ))
            }
        })
        .transpose()?;
    let stream = hub
        .clone()
        .stream(after)
        .await?
        .filter(move |e| std::future::ready(kind.is_none_or(|k| k == e.kind)))
        .map(|e| e.frame());
    let slot = limits
        .open_stream(client)
        .ok_or_else(|| gate::too_many_streams(&limits))?;
    Ok(sse_reply(&hub, stream, slot))
}
