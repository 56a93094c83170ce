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
    assert_error(app.get("/jobs?limit=0").await, 400, "bad_limit", "from 1").await;
    assert_error(app.get("/jobs?limit=x").await, 400, "bad_limit", "from 1").await;
    // Over the cap (a setting): capped, not refused.
    let capped: Vec<Value> = app.get("/jobs?limit=100000").await.json().await.unwrap();
    assert_eq!(capped, list);
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
    // Cancel and retry of a job that does not exist: 404, not 500 (found by
    // schemathesis: the scripts' one-element reply did not parse).
    assert_error(
        app.delete(&format!("/jobs/{id}")).await,
        404,
        "job_not_found",
        &id.to_string(),
    )
    .await;
    assert_error(
        app.post(&format!("/jobs/{id}/retry")).await,
        404,
        "job_not_found",
        &id.to_string(),
    )
    .await;
}

async fn post_json(app: &TestApp, path: &str, body: &str) -> reqwest::Response {
    app.client
        .post(app.url(path))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn post_jobs_validates_like_the_classic_routes() {
    let app = spawn_app_with(Mode::Api, std::path::Path::new(SAMPLE), &[]).await;
    let cases: [(&str, u16, &str, &str); 8] = [
        ("{oops", 400, "malformed_json", "JSON object"),
        ("[1]", 400, "malformed_json", "JSON object"),
        ("{}", 400, "bad_job_kind", "\"load\" or \"plot\""),
        (r#"{"kind": "sing"}"#, 400, "bad_job_kind", "\"sing\""),
        (
            r#"{"kind": "load", "source": "/etc/passwd"}"#,
            400,
            "source_not_allowed",
            "GENE_API__DATA__SOURCE",
        ),
        (
            r#"{"kind": "load", "colour": 1}"#,
            400,
            "unexpected_body",
            "no body",
        ),
        (
            r#"{"kind": "plot", "plot": "pie"}"#,
            400,
            "bad_plot_kind",
            "locus_group",
        ),
        (
            r#"{"kind": "plot", "width": 9}"#,
            400,
            "bad_image_size",
            "200",
        ),
    ];
    for (body, status, code, needle) in cases {
        assert_error(post_json(&app, "/jobs", body).await, status, code, needle).await;
    }
    assert_error(
        post_json(&app, "/jobs", r#"{"kind": "plot", "size": 3}"#).await,
        400,
        "bad_plot_parameter",
        "plot, width and height",
    )
    .await;
    // No data yet: no plot job is made.
    assert_error(
        post_json(&app, "/jobs", r#"{"kind": "plot", "plot": "chromosome"}"#).await,
        409,
        "no_data",
        "POST /data",
    )
    .await;
    let listed: Vec<Value> = app.get("/jobs").await.json().await.unwrap();
    assert!(
        listed.is_empty(),
        "a rejected request makes no job: {listed:?}"
    );

    let r = post_json(&app, "/jobs", r#"{"kind": "load"}"#).await;
    assert_eq!(r.status(), 202);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    let job: Value = r.json().await.unwrap();
    assert_eq!(location, format!("/jobs/{}", job["id"].as_str().unwrap()));
    assert_eq!(
        (job["kind"].as_str(), job["max_attempts"].as_u64()),
        (Some("load"), Some(3))
    );
}

#[tokio::test]
async fn job_lists_filter_by_state_and_kind_and_page_with_a_cursor() {
    // The manual worker takes one entry a step (not a batch), so jobs stay queued.
    let one = [("GENE_API__WORKERS__BATCH", "1")];
    let app = spawn_app_with(Mode::Api, std::path::Path::new(SAMPLE), &one).await;
    let mut loads = vec![];
    for _ in 0..5 {
        let j: Value = app.post("/data").await.json().await.unwrap();
        loads.push(j["id"].as_str().unwrap().to_string());
    }
    // Run the first load so that a plot can be queued after it, and one job is done.
    let mut worker = app.manual_worker("w");
    assert_eq!(worker.step().await.unwrap(), StepOutcome::Processed(1));
    let plot: Value = app
        .post("/image?width=200&height=200")
        .await
        .json()
        .await
        .unwrap();
    let plot = plot["id"].as_str().unwrap().to_string();

    let ids = |v: Vec<Value>| -> Vec<String> {
        v.iter()
            .map(|j| j["id"].as_str().unwrap().to_string())
            .collect()
    };
    let plots: Vec<Value> = app.get("/jobs?kind=plot").await.json().await.unwrap();
    assert_eq!(ids(plots), std::slice::from_ref(&plot));
    let done: Vec<Value> = app.get("/jobs?status=done").await.json().await.unwrap();
    assert_eq!(ids(done), [loads[0].clone()]);
    let queued_loads: Vec<Value> = app
        .get("/jobs?status=queued&kind=load")
        .await
        .json()
        .await
        .unwrap();
    let want: Vec<String> = loads[1..].iter().rev().cloned().collect();
    assert_eq!(ids(queued_loads), want, "newest first");

    // Pages of 2 over all 6 jobs: 2, 2, 2, each with a Link to the next but the last.
    let mut seen = vec![];
    let mut next = Some("/jobs?limit=2".to_string());
    let mut pages = 0;
    while let Some(path) = next.take() {
        let r = app.get(&path).await;
        assert_eq!(r.status(), 200);
        next = r.headers().get("link").map(|l| {
            let l = l.to_str().unwrap();
            assert!(l.ends_with("rel=\"next\""), "{l}");
            l[l.find('<').unwrap() + 1..l.find('>').unwrap()].to_string()
        });
        let page: Vec<Value> = r.json().await.unwrap();
        assert!(page.len() <= 2);
        seen.extend(ids(page));
        pages += 1;
        assert!(pages <= 4, "paging never ends");
    }
    let mut all: Vec<String> = loads.clone();
    all.push(plot);
    all.reverse();
    assert_eq!(seen, all, "every job once, newest first");
    assert_eq!(pages, 3);

    for (path, code, needle) in [
        ("/jobs?status=sleeping", "bad_status", "retrying"),
        ("/jobs?kind=pie", "bad_kind", "load and plot"),
        ("/jobs?cursor=xyz", "bad_cursor", "Link"),
        (
            "/jobs?colour=red",
            "bad_parameter",
            "status, kind, limit, cursor",
        ),
    ] {
        assert_error(app.get(path).await, 400, code, needle).await;
    }
}

#[tokio::test]
async fn job_stats_count_states_and_show_the_stream_and_its_consumers() {
    // The manual worker takes one entry a step (not a batch), so jobs stay queued.
    let one = [("GENE_API__WORKERS__BATCH", "1")];
    let app = spawn_app_with(Mode::Api, std::path::Path::new(SAMPLE), &one).await;
    for _ in 0..3 {
        app.post("/data").await;
    }
    let mut worker = app.manual_worker("stats-worker");
    assert_eq!(worker.step().await.unwrap(), StepOutcome::Processed(1));
    let s: Value = app.get("/jobs/stats").await.json().await.unwrap();
    assert_eq!(s["jobs"]["done"], 1, "{s}");
    assert_eq!(s["jobs"]["queued"], 2);
    for state in ["running", "retrying", "failed", "cancelled"] {
        assert_eq!(s["jobs"][state], 0, "{state}: {s}");
    }
    assert_eq!(s["stream"]["length"], 3);
    assert_eq!(s["stream"]["lag"], 2);
    assert_eq!(s["stream"]["pending"], 0);
    assert_eq!(s["dead_letters"], 0);
    let consumers = s["consumers"].as_array().unwrap();
    assert!(consumers
        .iter()
        .any(|c| c["name"] == "stats-worker" && c["pending"] == 0));
}
