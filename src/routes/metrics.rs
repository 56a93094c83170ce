//! `GET /metrics`: the Prometheus text format, on the API port and on the
//! worker's probe port.

use std::time::SystemTime;

use metrics_exporter_prometheus::PrometheusHandle;
use warp::http::{header, HeaderValue};
use warp::reply::Response;
use warp::{Filter, Rejection};

use super::{respond, with};
use crate::error::ApiError;
use crate::monitoring as m;
use crate::pipeline::Pipeline;

/// `GET /metrics`. `queue` says whether this process reads the queue and data
/// gauges from Redis when scraped: the API does, worker processes do not (so
/// that a Prometheus summing over pods counts each gauge once).
pub fn route(
    handle: Option<PrometheusHandle>,
    pipeline: Pipeline,
    queue: bool,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("metrics")
        .and(warp::get())
        .and(with(handle))
        .and(with(pipeline))
        .and(with(queue))
        .then(scrape)
        .map(respond)
}

/// The metrics of this process, in the Prometheus text format.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses(
        (status = 200, description = "The metrics in the Prometheus text format (version 0.0.4)",
            content_type = "text/plain", body = String),
        (status = 404, description = "Metrics are off (`GENE_API__METRICS__ENABLED=false`)",
            body = crate::error::ErrorBody),
    )
)]
pub(super) async fn scrape(
    handle: Option<PrometheusHandle>,
    pipeline: Pipeline,
    queue: bool,
) -> Result<Response, ApiError> {
    let handle = handle.ok_or_else(|| {
        ApiError::not_found(
            "metrics_disabled",
            "metrics are off on this server (GENE_API__METRICS__ENABLED=false)",
        )
    })?;
    if queue {
        refresh_from_redis(&pipeline).await;
    }
    let mut resp = Response::new(handle.render().into());
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    Ok(resp)
}

/// Reads the queue and data gauges from Redis. A failed read leaves the
/// previous values and is logged: the scrape still answers, with what the
/// process recorded itself.
async fn refresh_from_redis(pipeline: &Pipeline) {
    match pipeline.backlog().await {
        Ok(b) => {
            metrics::gauge!(m::STREAM_LENGTH).set(b.length as f64);
            metrics::gauge!(m::STREAM_LAG).set(b.lag.unwrap_or(0) as f64);
            metrics::gauge!(m::STREAM_PENDING).set(b.pending as f64);
            metrics::gauge!(m::DEAD_LETTERS).set(b.dead_letters as f64);
            metrics::gauge!(m::SCHEDULED_RETRIES).set(b.scheduled_retries as f64);
            metrics::gauge!(m::QUEUE_PAUSED).set(if b.queue.paused { 1.0 } else { 0.0 });
        }
        Err(e) => tracing::warn!(error = %e, "metrics: could not read the stream's state"),
    }
    let store = &pipeline.store;
    match crate::images::usage(&mut store.images.clone(), &store.keys).await {
        Ok((count, bytes)) => {
            metrics::gauge!(m::IMAGES).set(count as f64);
            metrics::gauge!(m::IMAGE_BYTES).set(bytes as f64);
        }
        Err(e) => tracing::warn!(error = %e, "metrics: could not read the images' usage"),
    }
    match crate::genes::summary(&mut store.data.clone(), &store.keys).await {
        Ok(Some(s)) => {
            metrics::gauge!(m::DATA_LOADED).set(1.0);
            metrics::gauge!(m::DATA_RECORDS).set(s.records as f64);
            if let Some(age) = humantime::parse_rfc3339(&s.loaded_at)
                .ok()
                .and_then(|t| SystemTime::now().duration_since(t).ok())
            {
                metrics::gauge!(m::DATA_AGE).set(age.as_secs_f64());
            }
        }
        Ok(None) => {
            metrics::gauge!(m::DATA_LOADED).set(0.0);
            metrics::gauge!(m::DATA_RECORDS).set(0.0);
        }
        Err(e) => tracing::warn!(error = %e, "metrics: could not read the data set's summary"),
    }
}
