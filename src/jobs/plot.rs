//! The plot job: render a chart of the live data set's statistics as a PNG
//! and store it in db 1 under the job's id. A chart this process has drawn
//! before from the same statistics, kind and size is copied from its render
//! cache instead (see `src/plot/cache.rs`).
//!
//! A client may stop it (`DELETE /jobs/<id>`) before it renders and up to
//! storing the image, its point of no return.

use bytes::Bytes;
use uuid::Uuid;

use super::{spawn_blocking_traced, JobContext, JobError};
use crate::plot::{ImageSize, PlotKind, PlotStats, RenderKey};
use crate::{genes, images};

/// Renders and stores one chart; the result says where the image is.
pub async fn run(
    ctx: &JobContext,
    job_id: &Uuid,
    kind: PlotKind,
    size: ImageSize,
) -> Result<serde_json::Value, JobError> {
    let keys = &ctx.store.keys;
    let stats = genes::current_part_plain(&mut ctx.store.data.clone(), keys, "stats")
        .await?
        .ok_or_else(|| {
            JobError::permanent(
                "no gene data is loaded (it was deleted after this plot was submitted): \
                 POST /data, then submit the plot again",
            )
        })?;
    let key = RenderKey::new(&stats, kind, size);
    let png = match ctx.renders.get(&key) {
        Some(png) => png,
        None => {
            let _slot = ctx.heavy_slot().await;
            // Waiting for a slot may have taken a while.
            ctx.stop.checkpoint().await?;
            let png = render(stats, kind, size).await?;
            ctx.renders.insert(key, png.clone());
            png
        }
    };
    let bytes = png.len();
    ctx.stop.commit("the image is being stored").await?;
    let evicted = images::store(
        &mut ctx.store.images.clone(),
        keys,
        job_id,
        &png,
        &ctx.settings.images,
    )
    .await?;
    if !evicted.is_empty() {
        tracing::debug!(
            evicted = evicted.len(),
            "older images evicted (images.max_count / max_bytes)"
        );
        // Best effort: the images are gone either way; their records say so
        // for GET /image/<id>. A failure here must not fail this plot.
        if let Err(e) =
            super::record::mark_image_evicted(&mut ctx.store.data.clone(), keys, &evicted).await
        {
            tracing::warn!(error = %e, "could not mark evicted images in their job records");
        }
    }
    Ok(serde_json::json!({
        "image": format!("/image/{job_id}"),
        "bytes": bytes,
        "width": size.width(),
        "height": size.height(),
        "plot": kind,
    }))
}

/// Draws the chart off the async threads.
async fn render(stats: Vec<u8>, kind: PlotKind, size: ImageSize) -> Result<Bytes, JobError> {
    let png = spawn_blocking_traced(move || {
        let stats: PlotStats = serde_json::from_slice(&stats)
            .map_err(|e| JobError::permanent(format!("stored plot statistics unreadable: {e}")))?;
        crate::plot::render_png(kind, &stats, size)
            .map_err(|e| JobError::permanent(format!("rendering failed: {e}")))
    })
    .await
    .map_err(|e| JobError::permanent(format!("rendering crashed: {e}")))??;
    Ok(Bytes::from(png))
}
