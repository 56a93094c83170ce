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
        &[("GENE_API__PIPELINE__STREAM_MAX_LEN", "5")],
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
