//! The load job: fetch the configured source, parse it, swap it in as the
//! live data set (db 0). A failed load leaves the previous data set untouched.

use serde_json::json;
use uuid::Uuid;

use super::{spawn_blocking_traced, JobContext, JobError};
use crate::genes;

/// Runs one load; the result reports what was loaded.
pub async fn run(
    ctx: &JobContext,
    job_id: &Uuid,
    source: &str,
) -> Result<serde_json::Value, JobError> {
    let mut data = ctx.settings.data.clone();
    data.source = source.to_string();
    let progress = &ctx.progress;
    let body = genes::fetch_source(&data, |bytes| {
        progress.report(json!({"stage": "fetching", "bytes": bytes}));
    })
    .await?;
    let bytes = body.len();
    progress.report(json!({"stage": "parsing", "bytes": bytes}));
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
