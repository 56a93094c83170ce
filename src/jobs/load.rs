//! The load job: fetch the configured source, parse it, swap it in as the
//! live data set (db 0). A failed load leaves the previous data set untouched.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use serde_json::json;
use uuid::Uuid;

use super::{spawn_blocking_traced, JobContext, JobError};
use crate::genes::{self, LoadError};

/// Tells the index builder to stop when the load ends before using it.
struct AbandonOnDrop(Arc<AtomicBool>);

impl Drop for AbandonOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Runs one load; the result reports what was loaded.
pub async fn run(
    ctx: &JobContext,
    job_id: &Uuid,
    source: &str,
    _withdrawn: Option<&str>,
) -> Result<serde_json::Value, JobError> {
    let _slot = ctx.heavy_slot().await;
    let mut data = ctx.settings.data.clone();
    data.source = source.to_string();
    let progress = &ctx.progress;
    let body = genes::fetch_source(&data, |bytes| {
        progress.report(json!({"stage": "fetching", "bytes": bytes}));
    })
    .await?;
    let bytes = body.len();
    progress.report(json!({"stage": "parsing", "bytes": bytes}));
    // The index is built from the same bytes on a thread of its own while
    // the records are checked and written; it is stored last, just before
    // the swap. If the load fails first, the builder is told to stop.
    let abandoned = Arc::new(AtomicBool::new(false));
    let _abandon_on_exit = AbandonOnDrop(abandoned.clone());
    let index_body = body.clone();
    let index_task = spawn_blocking_traced(move || {
        genes::GeneIndex::of_source(&index_body, &|| abandoned.load(Ordering::Relaxed))
            .map(|index| index.to_bytes())
    });
    let index = async move {
        match index_task.await {
            Ok(Ok(bytes)) => Ok(bytes),
            Ok(Err(e)) => Err(LoadError::Invalid(format!(
                "indexing the source failed: {e}"
            ))),
            Err(e) => Err(LoadError::Invalid(format!(
                "indexing the source crashed: {e}"
            ))),
        }
    };
    let set = spawn_blocking_traced(move || genes::parse_source(body))
        .await
        .map_err(|e| JobError::permanent(format!("parsing the source crashed: {e}")))??;
    let records = set.records.len();
    progress.report(json!({"stage": "storing", "bytes": bytes, "records": records, "stored": 0}));
    let mut conn = ctx.store.data.clone();
    let summary = genes::store_and_swap(
        &mut conn,
        &ctx.store.keys,
        &job_id.to_string(),
        &set,
        index,
        source,
        |stored| {
            progress.report(json!({
                "stage": "storing", "bytes": bytes, "records": records, "stored": stored,
            }));
        },
    )
    .await?;
    Ok(json!({
        "records": summary.records,
        "source_bytes": summary.source_bytes,
        "source": summary.source,
    }))
}
