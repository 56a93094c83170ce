use gene_api::app::Mode;
use gene_api::pipeline::StepOutcome;
use serde_json::Value;

use crate::helpers::*;

#[tokio::test]
async fn a_job_goes_queued_running_done_with_times_and_attempts() {
    // API only: the test drives a worker by hand to see each state.
    let app = spawn_app_with(Mode::Api, std::path::Path::new(SAMPLE), &[]).await;
    let job: Value = app.post("/data").await.json().await.unwrap();
    let id = job["id"].as_str().unwrap().to_string();
    let queued: Value = app.get(&format!("/jobs/{id}")).await.json().await.unwrap();
    assert_eq!(queued["status"], "queued");
    assert_eq!(queued["attempts"], 0);
    assert!(queued.get("started_at").is_none());
    assert_eq!(queued["params"]["source"], SAMPLE);

    let mut worker = app.manual_worker("test-worker");
    assert_eq!(worker.step().await.unwrap(), StepOutcome::Processed(1));
    let done: Value = app.get(&format!("/jobs/{id}")).await.json().await.unwrap();
    assert_eq!(done["status"], "done");
    assert_eq!(done["attempts"], 1);
    for field in ["created_at", "started_at", "finished_at", "updated_at"] {
        assert!(
            done[field].as_str().unwrap().ends_with('Z'),
            "{field}: {done}"
        );
    }
    assert!(done["finished_at"].as_str() >= done["started_at"].as_str());
    assert_eq!(worker.step().await.unwrap(), StepOutcome::Idle);

    // Acknowledged: nothing pending in the group.
    let mut conn = app.redis.conn(0);
    type Summary = (
        u64,
        Option<String>,
        Option<String>,
        Option<Vec<Vec<String>>>,
    );
    let pending: Summary = redis::cmd("XPENDING")
        .arg("gene-api:jobs:stream")
        .arg("gene-api:workers")
        .query(&mut conn)
        .unwrap();
    assert_eq!(pending.0, 0);
    // Finished records expire (24 h by default).
    let ttl: i64 = redis::cmd("TTL")
        .arg(format!("gene-api:job:{id}"))
        .query(&mut conn)
        .unwrap();
    assert!(ttl > 0 && ttl <= 86_400, "ttl {ttl}");
}

#[tokio::test]
async fn job_list_is_newest_first_and_bounded() {
    let app = spawn_app_with(Mode::Api, std::path::Path::new(SAMPLE), &[]).await;
    let mut ids = vec![];
    for _ in 0..5 {
        let j: Value = app.post("/data").await.json().await.unwrap();
        ids.push(j["id"].as_str().unwrap().to_string());
        tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    }
    let list: Vec<Value> = app.get("/jobs").await.json().await.unwrap();
    let got: Vec<&str> = list.iter().map(|j| j["id"].as_str().unwrap()).collect();
    let want: Vec<&str> = ids.iter().rev().map(String::as_str).collect();
    assert_eq!(got, want);
    let two: Vec<Value> = app.get("/jobs?limit=2").await.json().await.unwrap();
    assert_eq!(two.len(), 2);
    assert_error(
        app.get("/jobs?limit=0").await,
        400,
        "bad_limit",
        "from 1 to",
    )
    .await;
    assert_error(
        app.get("/jobs?limit=100000").await,
        400,
        "bad_limit",
        "from 1 to",
    )
    .await;
}

#[tokio::test]
async fn job_lookup_errors() {
    let app = spawn_app().await;
    assert_error(app.get("/jobs/not-a-uuid").await, 400, "bad_job_id", "UUID").await;
    let id = uuid::Uuid::new_v4();
    assert_error(
        app.get(&format!("/jobs/{id}")).await,
        404,
        "job_not_found",
        &id.to_string(),
    )
    .await;
}
