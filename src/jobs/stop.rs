//! Stopping a running job: `DELETE /jobs/<id>` asks, and the job's own code
//! decides where it can stop. Each kind calls [`Stop::checkpoint`] between
//! its stages (safe points: nothing of its own is visible yet) and
//! [`Stop::commit`] once, right before its first effect that readers can see
//! (a load's swap, a plot's store). Both ask Redis in one script
//! (`src/lua/job_commit.lua`) against the job's stop key, the same key the
//! cancel script writes, so a cancel and a commit cannot both win: a cancel
//! asked for first stops the job at the commit; one asked for after is
//! refused with the commit's reason (409).
//!
//! The stop key holds `requested <round> <time>` or `committed <round>
//! <reason>`, where the round is the record's `retries`: a retried job starts
//! with a clean slate without anyone deleting the key. The write that
//! finishes a job removes it (the record answers a cancel from then on), so
//! keys do not pile up with the jobs.

use std::sync::Arc;

use uuid::Uuid;

use super::JobError;
use crate::lua;
use crate::store::Store;

/// The stop signal of one run of one job. The default one (no job) never
/// stops, for work run outside the pipeline.
#[derive(Clone, Default)]
pub struct Stop(Option<Arc<Run>>);

struct Run {
    store: Store,
    key: String,
    round: u32,
    ttl_secs: u64,
}

impl Stop {
    /// The signal of job `id`'s run in round `round` (its `retries`).
    pub fn new(store: Store, id: &Uuid, round: u32, ttl_secs: u64) -> Self {
        Self(Some(Arc::new(Run {
            key: store.keys.job_stop(id),
            store,
            round,
            ttl_secs,
        })))
    }

    /// A safe point: `Err` (the job ends `cancelled`) when a client has
    /// asked to stop it.
    pub async fn checkpoint(&self) -> Result<(), JobError> {
        self.ask("").await
    }

    /// The point of no return, named by `reason` ("the new release is being
    /// swapped in"): `Err` when a client asked to stop the job before it;
    /// after it, a client's cancel is refused with `reason`.
    pub async fn commit(&self, reason: &str) -> Result<(), JobError> {
        debug_assert!(!reason.is_empty());
        self.ask(reason).await
    }

    /// When a client asked to stop the job, if one did (read on a run's
    /// failure: a job asked to stop ends `cancelled`, not `retrying`).
    pub async fn asked(&self) -> Option<String> {
        match self.ask("").await {
            Err(JobError {
                cancelled: Some(at),
                ..
            }) => Some(at),
            _ => None,
        }
    }

    async fn ask(&self, reason: &str) -> Result<(), JobError> {
        let Some(run) = &self.0 else {
            return Ok(());
        };
        let reply: Vec<String> = lua::JOB_COMMIT
            .key(&run.key)
            .arg(run.round)
            .arg(reason)
            .arg(run.ttl_secs)
            .invoke_async(&mut run.store.data.clone())
            .await?;
        match reply.as_slice() {
            [tag, asked] if tag == "cancel" => Err(JobError::cancelled(asked.clone())),
            _ => Ok(()),
        }
    }
}
