//! Prometheus metrics: the names, the process-wide recorder, and what is read
//! from Redis only when `/metrics` is scraped.
//!
//! The counters and histograms are recorded where things happen (requests in
//! the access log, submissions in [`Pipeline::submit`], runs in the delivery
//! code) through the `metrics` facade; with metrics off no recorder is
//! installed and those calls cost next to nothing. The queue and data gauges
//! are read from Redis when scraped, never on every request
//! (`routes/metrics.rs`).

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::jobs::{JobKind, JobStatus};

pub const HTTP_REQUESTS: &str = "gene_api_http_requests_total";
pub const HTTP_DURATION: &str = "gene_api_http_request_duration_seconds";
pub const JOBS_SUBMITTED: &str = "gene_api_jobs_submitted_total";
pub const JOBS_FINISHED: &str = "gene_api_jobs_finished_total";
pub const JOB_RETRIES: &str = "gene_api_job_retries_total";
pub const JOBS_DEAD_LETTERED: &str = "gene_api_jobs_dead_lettered_total";
pub const JOB_DURATION: &str = "gene_api_job_duration_seconds";
pub const JOBS_IN_PROGRESS: &str = "gene_api_jobs_in_progress";
pub const STREAM_LENGTH: &str = "gene_api_stream_length";
pub const STREAM_LAG: &str = "gene_api_stream_lag";
pub const STREAM_PENDING: &str = "gene_api_stream_pending";
pub const DEAD_LETTERS: &str = "gene_api_dead_letters";
pub const SCHEDULED_RETRIES: &str = "gene_api_scheduled_retries";
pub const QUEUE_PAUSED: &str = "gene_api_queue_paused";
pub const DATA_RECORDS: &str = "gene_api_data_records";
pub const DATA_AGE: &str = "gene_api_data_age_seconds";
pub const DATA_LOADED: &str = "gene_api_data_loaded";
pub const BUILD_INFO: &str = "gene_api_build_info";
pub const IMAGES: &str = "gene_api_images";
pub const IMAGE_BYTES: &str = "gene_api_image_bytes";

/// Request latency buckets: point reads take well under a millisecond, a
/// `Prefer: wait` up to a minute.
const HTTP_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];
/// Job run time buckets: a small plot takes milliseconds, a load of the full
/// set seconds.
const JOB_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide recorder (once; later calls return the same
/// handle) and describes every metric. The recorder is global because the
/// `metrics` facade is: several servers in one test process share it.
pub fn install(mode: &'static str) -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Full(HTTP_DURATION.into()), HTTP_BUCKETS)
                .and_then(|b| {
                    b.set_buckets_for_metric(Matcher::Full(JOB_DURATION.into()), JOB_BUCKETS)
                })
                .expect("the bucket lists are not empty")
                .build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("another metrics recorder is installed; /metrics stays empty");
            }
            describe();
            zero_series();
            metrics::gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION"), "mode" => mode)
                .set(1.0);
            handle
        })
        .clone()
}

/// Whether [`install`] ran in this process.
pub fn installed() -> bool {
    HANDLE.get().is_some()
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(
        HTTP_REQUESTS,
        "HTTP requests answered, by route template, method and status"
    );
    describe_histogram!(
        HTTP_DURATION,
        Unit::Seconds,
        "Time to answer an HTTP request (to the first byte of a streamed body)"
    );
    describe_counter!(JOBS_SUBMITTED, "Jobs queued, by kind");
    describe_counter!(
        JOBS_FINISHED,
        "Jobs that reached a final state in this process, by kind and state (done, failed, cancelled)"
    );
    describe_counter!(
        JOB_RETRIES,
        "Runs that failed transiently and were scheduled again, by kind"
    );
    describe_counter!(
        JOBS_DEAD_LETTERED,
        "Stream entries moved to the dead-letter stream"
    );
    describe_histogram!(
        JOB_DURATION,
        Unit::Seconds,
        "Run time of one job run, by kind"
    );
    describe_gauge!(JOBS_IN_PROGRESS, "Jobs this process is running, by kind");
    describe_gauge!(
        STREAM_LENGTH,
        "Entries in the jobs stream (read from Redis when scraped)"
    );
    describe_gauge!(
        STREAM_LAG,
        "Entries not yet delivered to any worker (read when scraped)"
    );
    describe_gauge!(
        STREAM_PENDING,
        "Entries delivered and not yet acknowledged (read when scraped)"
    );
    describe_gauge!(
        DEAD_LETTERS,
        "Entries in the dead-letter stream (read when scraped)"
    );
    describe_gauge!(
        SCHEDULED_RETRIES,
        "Jobs waiting for their next run (read when scraped)"
    );
    describe_gauge!(
        QUEUE_PAUSED,
        "1 while the queue is paused (POST /jobs/pause): workers take no new entries (read when scraped)"
    );
    describe_gauge!(
        DATA_RECORDS,
        "Gene records in the live data set (read when scraped)"
    );
    describe_gauge!(
        DATA_AGE,
        Unit::Seconds,
        "Seconds since the live data set was loaded (read when scraped)"
    );
    describe_gauge!(DATA_LOADED, "1 when a data set is loaded, else 0");
    describe_gauge!(IMAGES, "Images kept in db 1 (read when scraped)");
    describe_gauge!(
        IMAGE_BYTES,
        Unit::Bytes,
        "Bytes of the images kept (read when scraped; bounded by images.max_bytes)"
    );
    describe_gauge!(BUILD_INFO, "Always 1; the labels say the version and mode");
}

/// Keeps histogram memory bounded between scrapes (the exporter's upkeep).
pub async fn upkeep(handle: PrometheusHandle, stop: tokio_util::sync::CancellationToken) {
    let mut every = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = every.tick() => handle.run_upkeep(),
        }
    }
}

/// One answered request. The counter and histogram handles are kept per
/// thread by (route, method, status): the recorder's own lookup (a label
/// vector built, hashed and found under a lock) would otherwise run twice
/// per request, and point reads are a few tens of microseconds.
pub fn http_request(route: &'static str, method: &str, status: u16, elapsed: Duration) {
    use std::cell::RefCell;
    use std::collections::HashMap;
    type Handles = (metrics::Counter, metrics::Histogram);
    thread_local! {
        static HANDLES: RefCell<HashMap<(&'static str, &'static str, u16), Handles>> =
            RefCell::new(HashMap::new());
    }
    if !installed() {
        return;
    }
    let method = method_label(method);
    HANDLES.with(|h| {
        let mut h = h.borrow_mut();
        let (counter, histogram) = h.entry((route, method, status)).or_insert_with(|| {
            (
                metrics::counter!(HTTP_REQUESTS, "route" => route, "method" => method, "status" => status.to_string()),
                metrics::histogram!(HTTP_DURATION, "route" => route, "method" => method),
            )
        });
        counter.increment(1);
        histogram.record(elapsed.as_secs_f64());
    });
}

/// Methods outside the usual set are one label, so a client cannot grow the label set.
fn method_label(method: &str) -> &'static str {
    match method {
        "GET" => "GET",
        "POST" => "POST",
        "DELETE" => "DELETE",
        "HEAD" => "HEAD",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "OPTIONS" => "OPTIONS",
        _ => "other",
    }
}

/// Every job series that can exist, at 0 from the first scrape: a series
/// that appears only with its first job makes `rate()` and `increase()` miss
/// that job and leaves an alert on failures with nothing to look at until one
/// fails (Prometheus' own advice is to export such series as 0 up front).
/// Kinds and final states are few and fixed, so the label sets stay bounded.
fn zero_series() {
    for kind in JobKind::ALL {
        let k = kind.as_str();
        metrics::counter!(JOBS_SUBMITTED, "kind" => k).absolute(0);
        metrics::counter!(JOB_RETRIES, "kind" => k).absolute(0);
        for state in JobStatus::ALL.into_iter().filter(|s| s.is_finished()) {
            metrics::counter!(JOBS_FINISHED, "kind" => k, "state" => state.as_str()).absolute(0);
        }
        metrics::gauge!(JOBS_IN_PROGRESS, "kind" => k).set(0.0);
        // Registered, so the histogram is rendered (count 0) before a run.
        let _ = metrics::histogram!(JOB_DURATION, "kind" => k);
    }
    metrics::counter!(JOBS_DEAD_LETTERED).absolute(0);
}

pub fn job_submitted(kind: JobKind) {
    metrics::counter!(JOBS_SUBMITTED, "kind" => kind.as_str()).increment(1);
}

/// A job this process moved to `state`: done, failed or cancelled (final),
/// or retrying (counted as a retry).
pub fn job_finished(kind: JobKind, state: JobStatus) {
    if state == JobStatus::Retrying {
        metrics::counter!(JOB_RETRIES, "kind" => kind.as_str()).increment(1);
    } else {
        metrics::counter!(JOBS_FINISHED, "kind" => kind.as_str(), "state" => state.as_str())
            .increment(1);
    }
}

pub fn job_dead_lettered() {
    metrics::counter!(JOBS_DEAD_LETTERED).increment(1);
}

/// Counts a job as in progress until dropped, then records its run time.
pub struct RunTimer {
    kind: JobKind,
    started: std::time::Instant,
}

impl RunTimer {
    pub fn start(kind: JobKind) -> Self {
        metrics::gauge!(JOBS_IN_PROGRESS, "kind" => kind.as_str()).increment(1.0);
        Self {
            kind,
            started: std::time::Instant::now(),
        }
    }
}

impl Drop for RunTimer {
    fn drop(&mut self) {
        let kind = self.kind.as_str();
        metrics::gauge!(JOBS_IN_PROGRESS, "kind" => kind).decrement(1.0);
        metrics::histogram!(JOB_DURATION, "kind" => kind)
            .record(self.started.elapsed().as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odd_methods_share_one_label() {
        assert_eq!(method_label("GET"), "GET");
        assert_eq!(method_label("BREW"), "other");
    }
}
