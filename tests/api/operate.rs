//! What operators use: /metrics (on the API and the worker's probe port),
//! /data/info, the OpenAPI contract and Swagger UI, the dashboard page.
//!
//! The metrics recorder is one per process (the `metrics` facade is global),
//! and these tests share a process with others: counters are checked as at
//! least what this test caused, never as exact totals (the live test,
//! scripts/live-test, checks exact totals through a real Prometheus).

use std::path::Path;

use gene_api::app::Mode;
use serde_json::Value;

use crate::helpers::{
    assert_error, metric_sample as sample, sample_docs, spawn_app, spawn_app_with, SAMPLE,
};

/// The gauges read at scrape time are process-wide too: one scrape at a
/// time, so that no other test's scrape sets them between this one's read
/// and render.
static ONE_SCRAPE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn scrape(app: &crate::helpers::TestApp) -> String {
    let _turn = ONE_SCRAPE.lock().await;
    let r = app.get("/metrics").await;
    assert_eq!(r.status(), 200);
    let ct = r.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    r.text().await.unwrap()
}

#[tokio::test]
async fn metrics_count_requests_by_route_template_and_jobs_by_kind() {
    let app = spawn_app().await;
    app.load().await;
    for _ in 0..3 {
        assert_eq!(app.get("/genes/HGNC:5").await.status(), 200);
    }
    assert_eq!(app.get("/genes/HGNC:424242424").await.status(), 404);
    let text = scrape(&app).await;

    let ok = sample(
        &text,
        r#"gene_api_http_requests_total{route="/genes/{hgnc_id}",method="GET",status="200"}"#,
    );
    assert!(ok.is_some_and(|n| n >= 3.0), "{ok:?}\n{text}");
    let missing = sample(
        &text,
        r#"gene_api_http_requests_total{route="/genes/{hgnc_id}",method="GET",status="404"}"#,
    );
    assert!(missing.is_some_and(|n| n >= 1.0), "{missing:?}");
    assert!(
        text.contains(r#"gene_api_http_request_duration_seconds_bucket{route="/genes/{hgnc_id}",method="GET",le="0.001"}"#),
        "latency is a histogram by route"
    );
    // Label sets stay bounded: no raw id is ever a label value.
    assert!(!text.contains("HGNC:5"), "a raw path leaked into a label");
    for (series, at_least) in [
        (r#"gene_api_jobs_submitted_total{kind="load"}"#, 1.0),
        (
            r#"gene_api_jobs_finished_total{kind="load",state="done"}"#,
            1.0,
        ),
        (r#"gene_api_job_duration_seconds_count{kind="load"}"#, 1.0),
    ] {
        let v = sample(&text, series);
        assert!(v.is_some_and(|n| n >= at_least), "{series}: {v:?}");
    }
    // Read from Redis when scraped: this app's data set and queue.
    assert_eq!(sample(&text, "gene_api_data_records"), Some(1659.0));
    assert_eq!(sample(&text, "gene_api_data_loaded"), Some(1.0));
    assert_eq!(sample(&text, "gene_api_stream_pending"), Some(0.0));
    let age = sample(&text, "gene_api_data_age_seconds").expect("data age");
    assert!((0.0..60.0).contains(&age), "{age}");
    assert!(
        text.contains(r#"gene_api_build_info{version=""#),
        "build info"
    );
    assert!(text.contains("# HELP gene_api_jobs_finished_total"));
}

#[tokio::test]
async fn scraping_before_any_load_says_no_data() {
    let app = spawn_app().await;
    let text = scrape(&app).await;
    assert_eq!(sample(&text, "gene_api_data_loaded"), Some(0.0));
    assert_eq!(sample(&text, "gene_api_dead_letters"), Some(0.0));
}

#[tokio::test]
async fn metrics_off_answers_404() {
    let app = spawn_app_with(
        Mode::Serve,
        Path::new(SAMPLE),
        &[("GENE_API__METRICS__ENABLED", "false")],
    )
    .await;
    assert_error(
        app.get("/metrics").await,
        404,
        "metrics_disabled",
        "GENE_API__METRICS__ENABLED",
    )
    .await;
    assert_eq!(
        app.get("/genes").await.status(),
        404,
        "the API works without them"
    );
}

#[tokio::test]
async fn the_worker_probe_port_serves_metrics_and_nothing_else_of_the_api() {
    let app = spawn_app_with(Mode::Worker, Path::new(SAMPLE), &[]).await;
    let text = scrape(&app).await;
    assert!(text.contains("gene_api_build_info"), "{text}");
    assert_eq!(app.get("/health").await.status(), 200);
    assert_eq!(app.get("/genes").await.status(), 404);
    assert_eq!(app.get("/openapi.json").await.status(), 404);
}

#[tokio::test]
async fn data_info_says_what_is_loaded() {
    let app = spawn_app().await;
    assert_error(app.get("/data/info").await, 404, "no_data", "POST /data").await;
    let job = app.load().await;
    let r = app.get("/data/info").await;
    assert_eq!(r.status(), 200);
    let info: Value = r.json().await.unwrap();
    assert_eq!(info["records"], 1659);
    assert!(info["source"]
        .as_str()
        .unwrap()
        .ends_with("hgnc_sample.json"));
    assert_eq!(info["job_id"], job["id"], "the release names its load job");
    assert_eq!(info["id"], job["result"]["release"]);
    assert_eq!(info["version"], info["id"]);
    let sha = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(std::fs::read(SAMPLE).unwrap()))
    };
    assert_eq!(info["sha256"], sha);
    // The sample's file name has no date: the newest date_modified in it says.
    let newest = sample_docs()
        .iter()
        .filter_map(|d| d["date_modified"].as_str().map(str::to_string))
        .max()
        .unwrap();
    assert_eq!(info["as_of"], newest.as_str());
    assert_eq!(info["as_of_from"], "date_modified");
    assert!(info["id"].as_str().unwrap().starts_with(&newest));
    let loaded = humantime::parse_rfc3339(info["loaded_at"].as_str().unwrap()).unwrap();
    let age = std::time::SystemTime::now().duration_since(loaded).unwrap();
    assert!(age.as_secs() < 60, "{age:?}");
    assert_eq!(app.delete("/data").await.status(), 200);
    assert_error(app.get("/data/info").await, 404, "no_data", "POST /data").await;
}

#[tokio::test]
async fn the_contract_and_its_ui_are_served_from_the_binary() {
    let app = spawn_app().await;
    let r = app.get("/openapi.json").await;
    assert_eq!(r.status(), 200);
    let spec: Value = r.json().await.unwrap();
    assert_eq!(spec["openapi"], "3.1.0");
    // Generated from the code's types: the job states are the enum's.
    let states = &spec["components"]["schemas"]["JobStatus"]["enum"];
    assert_eq!(
        states,
        &serde_json::json!([
            "queued",
            "running",
            "retrying",
            "done",
            "failed",
            "cancelled"
        ])
    );

    let r = app.get("/docs").await;
    assert_eq!(r.status(), 200);
    let page = r.text().await.unwrap();
    assert!(page.contains("swagger-ui"), "{page}");
    let r = app.get("/docs/swagger-initializer.js").await;
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("/openapi.json"));
    let r = app.get("/docs/swagger-ui.css").await;
    assert_eq!(r.headers()["content-type"], "text/css");
    assert_error(app.get("/docs/nope.js").await, 404, "not_found", "nope.js").await;
}

#[tokio::test]
async fn the_dashboard_is_one_page_with_nothing_from_elsewhere() {
    let app = spawn_app().await;
    let r = app.get("/").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/html; charset=utf-8");
    let page = r.text().await.unwrap();
    assert!(page.contains("id=\"plot-form\""));
    for external in [
        "src=\"http",
        "href=\"http",
        "url(http",
        "@import",
        "src=\"//",
        "href=\"//",
    ] {
        assert!(!page.contains(external), "the page loads {external}...");
    }
    // Only the SVG namespace names another host.
    let hosts: Vec<&str> = page
        .match_indices("://")
        .map(|(i, _)| &page[i.saturating_sub(5)..(i + 20).min(page.len())])
        .filter(|s| !s.contains("www.w3.org"))
        .collect();
    assert!(hosts.is_empty(), "{hosts:?}");
}
