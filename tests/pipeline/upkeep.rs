//! Stream upkeep the reclaimer does: trimming and finding idle entries.

use gene_api::app::Mode;
use gene_api::pipeline::{Reclaimer, StepOutcome};

use crate::helpers::*;

fn xlen(app: &TestApp) -> u64 {
    redis::cmd("XLEN")
        .arg("gene-api:jobs:stream")
        .query(&mut app.redis.conn(0))
        .unwrap()
}

#[tokio::test]
async fn trimming_keeps_pending_and_undelivered_entries_and_drops_acknowledged_ones() {
    let app = spawn_app_with(
        Mode::Api,
        std::path::Path::new(SAMPLE),
        &[
            ("GENE_API__PIPELINE__STREAM_MAX_LEN", "5"),
            // The manual worker takes one entry a step (not a batch).
            ("GENE_API__WORKERS__BATCH", "1"),
        ],
    )
    .await;
    for _ in 0..30 {
        assert_eq!(app.post("/data").await.status(), 202);
    }
    let reclaimer = Reclaimer::new(app.pipeline.clone(), "test-reclaimer".into());
    // Nothing delivered yet: nothing may go.
    assert_eq!(reclaimer.trim().await.unwrap(), 0);
    assert_eq!(xlen(&app), 30);

    // A consumer takes one entry and holds it (pending); later ones get run.
    let mut holder = redis::cmd("XREADGROUP");
    holder
        .arg("GROUP")
        .arg("gene-api:workers")
        .arg("holder")
        .arg("COUNT")
        .arg(1)
        .arg("STREAMS")
        .arg("gene-api:jobs:stream")
        .arg(">");
    let _: redis::Value = holder.query(&mut app.redis.conn(0)).unwrap();
    let mut worker = app.manual_worker("w");
    for _ in 0..10 {
        assert_eq!(worker.step().await.unwrap(), StepOutcome::Processed(1));
    }
    // Entry 1 is pending, so nothing before it and nothing after it goes.
    assert_eq!(reclaimer.trim().await.unwrap(), 0);
    assert_eq!(xlen(&app), 30);

    // Once the holder's entry is acknowledged, the 11 delivered entries can go
    // (the last delivered one is kept as the group's bookmark), the 19 undelivered stay.
    let pending: Vec<(String, String, u64, u64)> = redis::cmd("XPENDING")
        .arg("gene-api:jobs:stream")
        .arg("gene-api:workers")
        .arg("-")
        .arg("+")
        .arg(10)
        .arg("holder")
        .query(&mut app.redis.conn(0))
        .unwrap();
    let _: u64 = redis::cmd("XACK")
        .arg("gene-api:jobs:stream")
        .arg("gene-api:workers")
        .arg(&pending[0].0)
        .query(&mut app.redis.conn(0))
        .unwrap();
    assert_eq!(reclaimer.trim().await.unwrap(), 10);
    assert_eq!(xlen(&app), 20);
    while worker.step().await.unwrap() != StepOutcome::Idle {}
    // Under the limit after all are done: it stops trimming at 5 or fewer.
    reclaimer.trim().await.unwrap();
    assert!(xlen(&app) <= 5, "{}", xlen(&app));
}

#[tokio::test]
async fn reclaim_reaches_idle_entries_behind_many_live_ones() {
    // XAUTOCLAIM scans at most 10 x COUNT entries a call: an idle entry behind
    // 200 busy ones must still be found in one sweep.
    let app = spawn_app_with(
        Mode::Api,
        std::path::Path::new(SAMPLE),
        &[("GENE_API__PIPELINE__RECLAIM_AFTER_MS", "60000")],
    )
    .await;
    let mut ids = vec![];
    for _ in 0..201 {
        let job: serde_json::Value = app.post("/data").await.json().await.unwrap();
        ids.push(job["id"].as_str().unwrap().to_string());
    }
    let mut conn = app.redis.conn(0);
    let _: redis::Value = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg("gene-api:workers")
        .arg("live")
        .arg("COUNT")
        .arg(201)
        .arg("STREAMS")
        .arg("gene-api:jobs:stream")
        .arg(">")
        .query(&mut conn)
        .unwrap();
    let pending: Vec<(String, String, u64, u64)> = redis::cmd("XPENDING")
        .arg("gene-api:jobs:stream")
        .arg("gene-api:workers")
        .arg("-")
        .arg("+")
        .arg(201)
        .query(&mut conn)
        .unwrap();
    let last = &pending[200].0;
    // The last one's consumer died long ago.
    let _: redis::Value = redis::cmd("XCLAIM")
        .arg("gene-api:jobs:stream")
        .arg("gene-api:workers")
        .arg("dead")
        .arg(0)
        .arg(last)
        .arg("IDLE")
        .arg(120_000)
        .arg("JUSTID")
        .query(&mut conn)
        .unwrap();
    let reclaimer = Reclaimer::new(app.pipeline.clone(), "test-reclaimer".into());
    assert_eq!(reclaimer.reclaim_once().await.unwrap(), 1);
    let job: serde_json::Value = app
        .get(&format!("/jobs/{}", ids[200]))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(job["status"], "done", "{job}");
    let first: serde_json::Value = app
        .get(&format!("/jobs/{}", ids[0]))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        first["status"], "queued",
        "live consumers' entries are left alone"
    );
}
