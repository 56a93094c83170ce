//! The load job: fetch the configured source, parse it, swap it in as the
//! live data set (db 0). A failed load leaves the previous data set untouched.
//!
//! A client may stop it (`DELETE /jobs/<id>`) between its stages: before
//! the fetch, before parsing, before storing, and after storing right up to
//! the swap, which is its point of no return. Stopped after storing, it
//! removes what it staged; the live release never changed.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use serde_json::json;
use uuid::Uuid;

use super::{spawn_blocking_traced, JobContext, JobError};
use crate::genes::{self, release, LoadError};

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
    withdrawn: Option<&str>,
) -> Result<serde_json::Value, JobError> {
    let _slot = ctx.heavy_slot().await;
    let stop = &ctx.stop;
    stop.checkpoint().await?;
    let settings = &ctx.settings.data;
    let keys = &ctx.store.keys;
    let mut conn = ctx.store.data.clone();
    let progress = &ctx.progress;
    let live = genes::summary(&mut conn, keys).await?;
    // The same source as the live release: ask the server whether it changed.
    let since = live
        .as_ref()
        .filter(|l| l.source == source)
        .map(|l| genes::Validators {
            etag: l.etag.clone(),
            last_modified: l.last_modified.clone(),
        });
    let fetched = genes::fetch_source(source, settings, since.as_ref(), |bytes| {
        progress.report(json!({"stage": "fetching", "bytes": bytes}));
    })
    .await?;
    let (body, etag, last_modified) = match fetched {
        genes::Fetched::NotModified => {
            let live = live.expect("a conditional fetch only with a live release");
            stop.commit(FINISHING_UNCHANGED).await?;
            return Ok(unchanged(&live, "the source answered 304 Not Modified"));
        }
        genes::Fetched::Body {
            body,
            etag,
            last_modified,
        } => (body, etag, last_modified),
    };
    stop.checkpoint().await?;
    let sha256 = release::sha256_hex(&body);
    // The withdrawn file is part of the release: a missing or bad one fails the load.
    let withdrawn_file = match withdrawn.map(str::trim).filter(|w| !w.is_empty()) {
        None => None,
        Some(w) => {
            progress.report(json!({"stage": "fetching withdrawn", "source": w}));
            match genes::fetch_source(w, settings, None, |_| {}).await? {
                genes::Fetched::Body {
                    body,
                    etag,
                    last_modified,
                } => Some((w.to_string(), body, etag, last_modified)),
                genes::Fetched::NotModified => None,
            }
        }
    };
    let withdrawn_sha = withdrawn_file
        .as_ref()
        .map(|(_, b, _, _)| release::sha256_hex(b));
    if let Some(live) = &live {
        if live.sha256 == sha256
            && live.withdrawn.as_ref().map(|w| &w.sha256) == withdrawn_sha.as_ref()
        {
            stop.commit(FINISHING_UNCHANGED).await?;
            return Ok(unchanged(live, "the same bytes as the live release"));
        }
    }
    let withdrawn_info = match &withdrawn_file {
        None => None,
        Some((w, body, etag, last_modified)) => {
            let parsed = {
                let body = body.clone();
                spawn_blocking_traced(move || genes::Withdrawn::parse(&body))
                    .await
                    .map_err(|e| {
                        JobError::permanent(format!("parsing the withdrawn file crashed: {e}"))
                    })??
            };
            let counts = parsed.counts();
            Some(release::WithdrawnFile {
                source: w.clone(),
                bytes: body.len() as u64,
                sha256: withdrawn_sha.clone().unwrap_or_default(),
                etag: etag.clone(),
                last_modified: last_modified.clone(),
                records: counts.records,
                entry_withdrawn: counts.entry_withdrawn,
                merged_split: counts.merged_split,
            })
        }
    };

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
    stop.checkpoint().await?;
    let loaded_at = crate::jobs::now();
    let (as_of, as_of_from) = release::as_of(
        source,
        last_modified.as_deref(),
        set.newest_date_modified.as_deref(),
        &loaded_at,
    );
    let id = release::release_id(&as_of, &sha256, withdrawn_sha.as_deref());
    let info = genes::ReleaseInfo {
        id: id.clone(),
        as_of,
        as_of_from,
        records: records as u64,
        source: source.to_string(),
        source_bytes: set.source_bytes(),
        sha256,
        etag,
        last_modified,
        loaded_at,
        job_id: job_id.to_string(),
        withdrawn: withdrawn_info,
        data_bytes: set.data_bytes(),
        version: id,
    };

    let lock = genes::DataLock::take(&conn, keys, &info.job_id, || {
        progress.report(json!({"stage": "waiting", "for": "another load to finish"}));
    })
    .await?;
    // Whatever happens under the lock, it is given back (a load that died
    // instead would leave it to lapse after 30 s).
    // No safe point after the wait for the lock: staging is quick next to
    // the fetch and the parse, and the commit right after it stops a load
    // that was asked to stop meanwhile, staged parts and all.
    let outcome = async {
        // Another load may have swapped in these very files while this one
        // waited for the lock (two scheduled ticks close together): check again.
        if let Some(now) = genes::summary(&mut conn, keys).await? {
            if now.sha256 == info.sha256
                && now.withdrawn.as_ref().map(|w| &w.sha256) == withdrawn_sha.as_ref()
            {
                stop.commit(FINISHING_UNCHANGED).await?;
                return Ok(unchanged(&now, "the same bytes as the live release"));
            }
        }
        let generation = genes::generation(&mut conn, keys).await?;
        progress.report(json!({"stage": "storing", "bytes": bytes, "records": records, "stored": 0}));
        let withdrawn_bytes = withdrawn_file
            .as_ref()
            .map(|(_, b, _, _)| b.clone())
            .unwrap_or_default();
        genes::stage(&ctx.store, &set, &withdrawn_bytes, &info, index, |stored| {
            progress.report(json!({
                "stage": "storing", "bytes": bytes, "records": records, "stored": stored,
            }));
        })
        .await?;
        if let Err(e) = stop.commit("the new release is being swapped in").await {
            // Stopped (or Redis failed) with everything staged: nothing of it
            // stays behind. The staged parts would expire and the records
            // go with the next load's sweep; this is just sooner.
            if e.cancelled.is_some() {
                tracing::info!("stopped before the swap: removing what this load staged");
            }
            if let Err(r) = genes::discard_staged(&ctx.store, &info.job_id).await {
                tracing::warn!(error = %r, "could not remove the staged parts; they expire");
            }
            genes::collect_garbage(&mut conn, keys).await?;
            return Err(e);
        }
        let swapped = genes::swap(&ctx.store, &lock, generation, &info, settings.keep_releases)
            .await?;
        // Unused records go now, while the lock keeps other loads from staging.
        let removed = genes::collect_garbage(&mut conn, keys).await?;
        Ok::<_, JobError>(json!({
            "release": info.id,
            "as_of": info.as_of,
            "records": info.records,
            "source_bytes": info.source_bytes,
            "source": info.source,
            "sha256": info.sha256,
            "withdrawn": info.withdrawn.as_ref().map(|w| json!({
                "records": w.records, "entry_withdrawn": w.entry_withdrawn, "merged_split": w.merged_split,
            })),
            "unchanged": false,
            "dropped": swapped.dropped,
            "records_removed": removed,
        }))
    }
    .await;
    lock.release().await;
    outcome
}

/// The point of no return of a load that found nothing new (it changes
/// nothing, so there is nothing left to stop).
const FINISHING_UNCHANGED: &str =
    "the load found the source unchanged and is finishing without changing anything";

/// The result of a load that found nothing new: nothing was swapped.
fn unchanged(live: &genes::ReleaseInfo, why: &str) -> serde_json::Value {
    json!({
        "release": live.id,
        "as_of": live.as_of,
        "records": live.records,
        "source_bytes": live.source_bytes,
        "source": live.source,
        "sha256": live.sha256,
        "unchanged": true,
        "reason": why,
    })
}
