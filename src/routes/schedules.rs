//! `GET /schedules`: the loads this deployment runs on its own (the refresh
//! schedule, `data.refresh`), with the next tick and what came of the last.

use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection};

use super::{json_with, respond, with, AppState};
use crate::error::{ApiError, ErrorBody};
use crate::jobs::{self, Job};
use crate::pipeline::{last_tick, now_ms, rfc3339_ms, LastOutcome, LastTick, Pipeline};
use crate::store::Store;

/// One schedule.
#[derive(Serialize, ToSchema)]
pub struct ScheduleView {
    /// `refresh`: loads of the configured source.
    name: &'static str,
    /// The cron expression (`data.refresh`): 5 fields, or 6 with seconds first.
    cron: String,
    /// The time zone the expression is read in: always `UTC`.
    timezone: &'static str,
    /// What each tick loads (`data.source`).
    source: String,
    /// The next tick; null if the expression matches no later time.
    #[schema(format = DateTime)]
    next_run: Option<String>,
    /// The last tick claimed (by any replica) and what came of it; null
    /// before the first.
    last: Option<LastRun>,
}

/// A tick that was claimed, and its load.
#[derive(Serialize, ToSchema)]
pub struct LastRun {
    /// The tick's time (not when the load ran: see `job`).
    #[schema(format = DateTime)]
    tick: String,
    outcome: RunOutcome,
    /// The load's job; null when the queue was full.
    job_id: Option<Uuid>,
    /// The job as `GET /jobs/{job_id}` answers it (its status, result or
    /// error), while it is kept (`pipeline.job_ttl_secs` after it ends);
    /// null otherwise.
    job: Option<Job>,
    /// Why no load was queued, when none was.
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<String>,
}

/// What a claimed tick came to.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunOutcome {
    /// Its load was queued (`job_id`).
    Queued,
    /// The job queue was full (`limits.max_backlog`): no load for this tick.
    Busy,
}

/// `GET /schedules`.
pub fn routes(state: &AppState) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("schedules")
        .and(warp::get())
        .and(with(state.pipeline.clone()))
        .then(list_schedules)
        .map(respond)
}

#[utoipa::path(
    get, path = "/schedules", tag = "data",
    responses((status = 200, description = "The schedules: the refresh of the data set (`data.refresh`), \
            or none (`[]`) when it is off. Each tick queues one load, whatever the number of replicas", body = [ScheduleView]),
        (status = 503, description = "Redis is unavailable; retry after the Retry-After seconds", body = ErrorBody, headers(("Retry-After" = String, description = "Seconds to wait"))))
)]
pub(super) async fn list_schedules(pipeline: Pipeline) -> Result<Response, ApiError> {
    let data = &pipeline.settings.data;
    let Some(schedule) = &data.refresh_schedule else {
        return Ok(json_with(StatusCode::OK, &Vec::<ScheduleView>::new()));
    };
    let store = &pipeline.store;
    let last = match last_tick(store).await? {
        Some(tick) => Some(last_run(store, tick).await?),
        None => None,
    };
    let refresh = ScheduleView {
        name: "refresh",
        cron: schedule.expr().to_string(),
        timezone: "UTC",
        source: data.source.clone(),
        next_run: schedule.next_after(now_ms()).map(rfc3339_ms),
        last,
    };
    Ok(json_with(StatusCode::OK, &[refresh]))
}

async fn last_run(store: &Store, last: LastTick) -> Result<LastRun, ApiError> {
    let tick = rfc3339_ms(last.tick);
    Ok(match last.outcome {
        LastOutcome::Queued(id) => LastRun {
            tick,
            outcome: RunOutcome::Queued,
            job_id: Some(id),
            job: jobs::get(&mut store.data.clone(), &store.keys, &id).await?,
            message: None,
        },
        LastOutcome::Busy { backlog, max } => LastRun {
            tick,
            outcome: RunOutcome::Busy,
            job_id: None,
            job: None,
            message: Some(format!(
                "the job queue was full ({backlog} jobs waiting, limit {max}): no load was queued for this tick"
            )),
        },
    })
}
