//! Jobs: what a client can ask for, and each kind's work.
//!
//! [`Command`] is a closed set of job kinds (mini-redis' `Command` is the
//! model): the stream entry carries it, [`Command::run`] dispatches to the
//! kind's own file ([`load`], [`plot`]), and the delivery code in
//! [`crate::pipeline`] never looks inside. A new kind touches this folder only.
//! [`record`] holds the job records clients read.

pub mod load;
pub mod plot;
mod record;
mod stop;

use std::sync::Arc;

use redis::RedisError;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use record::{
    all_indexed, get, list, now, parse_record, rfc3339, Cursor, Job, JobFilter, JobKind, JobStatus,
    Page, UNFINISHED_TTL_SECS,
};
pub use stop::Stop;

use crate::config::Settings;
use crate::genes;
use crate::plot::{ImageSize, PlotKind, RenderCache};
use crate::store::{redis_is_transient, Store};

/// What a job does. This is also the command carried by the stream entry, so a
/// worker needs nothing but the entry to run it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Command {
    /// Fetch the source and its withdrawn file and swap them in as the
    /// live release.
    Load {
        source: String,
        /// HGNC's `withdrawn.txt` for the same release (absent in jobs
        /// queued by versions before 0.3: the load then reads none).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        withdrawn: Option<String>,
        /// What asked for the load.
        #[serde(default)]
        trigger: Trigger,
    },
    /// Render a chart of the live data set into db 1.
    Plot {
        plot: PlotKind,
        #[serde(flatten)]
        size: ImageSize,
    },
}

/// What asked for a job: a client's request, or the refresh schedule.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    #[default]
    Request,
    Schedule,
}

impl Command {
    pub fn kind(&self) -> JobKind {
        match self {
            Command::Load { .. } => JobKind::Load,
            Command::Plot { .. } => JobKind::Plot,
        }
    }

    /// True when the job can only run on a loaded data set (it is refused
    /// at submission otherwise).
    pub fn needs_data(&self) -> bool {
        matches!(self, Command::Plot { .. })
    }

    /// The job's effect. Idempotent: running it twice for the same `job_id`
    /// leaves the same state, which is what at-least-once delivery needs.
    /// Returns the job's `result`.
    pub async fn run(
        &self,
        ctx: &JobContext,
        job_id: &Uuid,
    ) -> Result<serde_json::Value, JobError> {
        match self {
            Command::Load {
                source, withdrawn, ..
            } => load::run(ctx, job_id, source, withdrawn.as_deref()).await,
            Command::Plot { plot, size } => plot::run(ctx, job_id, *plot, *size).await,
        }
    }
}

/// What a job's work may use: the connections, the settings, where to
/// report progress, and the charts this process has rendered. Cheap to clone.
#[derive(Clone)]
pub struct JobContext {
    pub store: Store,
    pub settings: Arc<Settings>,
    pub progress: Progress,
    /// Where the job asks whether a client wants it stopped.
    pub stop: Stop,
    pub renders: Arc<RenderCache>,
    /// Slots for heavy work (a load, a render): `workers.concurrency` per
    /// process, however many entries the consumers hold.
    pub heavy: Arc<tokio::sync::Semaphore>,
}

impl JobContext {
    /// A slot for heavy work, freed when dropped. When none is free, the job
    /// says so in its progress (`{"stage": "waiting"}`) while it waits, so
    /// that a `running` record never hides a queue.
    pub async fn heavy_slot(&self) -> tokio::sync::SemaphorePermit<'_> {
        if let Ok(slot) = self.heavy.try_acquire() {
            return slot;
        }
        self.progress.report(serde_json::json!({
            "stage": "waiting",
            "for": "a free slot (workers.concurrency loads and renders run at once per process)",
        }));
        self.heavy
            .acquire()
            .await
            .expect("the heavy-work semaphore is never closed")
    }
}

/// Where a running job reports how far it has got. The delivery code writes
/// the newest report into the job's record a few times a second at most, so
/// reporting is cheap enough to do per chunk; a report that is superseded
/// before it is written is simply skipped.
#[derive(Clone, Default)]
pub struct Progress(Option<Arc<tokio::sync::watch::Sender<Option<serde_json::Value>>>>);

impl Progress {
    pub fn new(tx: tokio::sync::watch::Sender<Option<serde_json::Value>>) -> Self {
        Self(Some(Arc::new(tx)))
    }

    pub fn report(&self, progress: serde_json::Value) {
        if let Some(tx) = &self.0 {
            tx.send_replace(Some(progress));
        }
    }
}

/// Why a job did not succeed, and whether trying again could help.
#[derive(Debug)]
pub struct JobError {
    pub message: String,
    pub transient: bool,
    /// Stopped at a safe point because a client asked to, at this time.
    pub cancelled: Option<String>,
}

impl JobError {
    pub fn permanent(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            transient: false,
            cancelled: None,
        }
    }

    pub fn transient(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            transient: true,
            cancelled: None,
        }
    }

    /// The job stopped at a safe point: a client asked at `asked_at`.
    pub fn cancelled(asked_at: String) -> Self {
        Self {
            message: "cancelled at a safe point, as a client asked".into(),
            transient: false,
            cancelled: Some(asked_at),
        }
    }
}

impl From<RedisError> for JobError {
    fn from(e: RedisError) -> Self {
        Self {
            transient: redis_is_transient(&e),
            message: format!("Redis error: {e}"),
            cancelled: None,
        }
    }
}

impl From<genes::LoadError> for JobError {
    fn from(e: genes::LoadError) -> Self {
        Self {
            transient: e.is_transient(),
            message: e.to_string(),
            cancelled: None,
        }
    }
}

/// `spawn_blocking` that keeps the caller's tracing span: CPU-bound work
/// (parsing a source, rendering a PNG) must not hold an async worker thread.
pub fn spawn_blocking_traced<F, R>(f: F) -> tokio::task::JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || span.in_scope(f))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_round_trip_as_tagged_json() {
        let load = Command::Load {
            source: "data/x.json".into(),
            withdrawn: Some("data/w.txt".into()),
            trigger: Trigger::Schedule,
        };
        let j = serde_json::to_value(&load).unwrap();
        assert_eq!(
            j,
            serde_json::json!({"kind": "load", "source": "data/x.json",
                "withdrawn": "data/w.txt", "trigger": "schedule"})
        );
        assert_eq!(serde_json::from_value::<Command>(j).unwrap(), load);
        // A load queued by an older version reads as a requested load with no withdrawn file.
        let old: Command =
            serde_json::from_value(serde_json::json!({"kind": "load", "source": "s"})).unwrap();
        assert!(matches!(
            old,
            Command::Load {
                withdrawn: None,
                trigger: Trigger::Request,
                ..
            }
        ));
        let plot = Command::Plot {
            plot: PlotKind::Chromosome,
            size: ImageSize::new(300, 200).unwrap(),
        };
        let j = serde_json::to_value(&plot).unwrap();
        assert_eq!(
            j,
            serde_json::json!({"kind": "plot", "plot": "chromosome", "width": 300, "height": 200})
        );
        assert_eq!(serde_json::from_value::<Command>(j).unwrap(), plot);
        // A size outside the allowed range cannot sneak in through the stream either.
        let bad =
            serde_json::json!({"kind": "plot", "plot": "chromosome", "width": 1, "height": 200});
        assert!(serde_json::from_value::<Command>(bad).is_err());
    }
}
