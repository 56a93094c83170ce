use gene_api::app::Mode;
use gene_api::pipeline::StepOutcome;
use gene_api::plot::{ImageSize, PlotKind};
use redis::Commands;
use serde_json::Value;

use crate::helpers::*;

/// Decodes a PNG; returns (width, height, number of distinct colours).
fn decode(png_bytes: &[u8]) -> (u32, u32, usize) {
    let decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
    let mut reader = decoder.read_info().expect("a PNG");
    let mut buf = vec![0; reader.output_buffer_size().expect("size")];
    let info = reader.next_frame(&mut buf).expect("frame");
    let px = info.color_type.samples();
    let colours: std::collections::HashSet<&[u8]> = buf[..info.buffer_size()].chunks(px).collect();
    (info.width, info.height, colours.len())
}

async fn plot(app: &TestApp, query: &str) -> Value {
    let r = app.post(&format!("/image{query}")).await;
    assert_eq!(r.status(), 202, "POST /image{query}");
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    let job: Value = r.json().await.unwrap();
    assert_eq!(job["kind"], "plot");
    assert_eq!(loc, format!("/jobs/{}", job["id"].as_str().unwrap()));
    app.wait_job(job["id"].as_str().unwrap()).await
}

#[tokio::test]
async fn post_image_without_data_returns_409_and_creates_no_job() {
    let app = spawn_app().await;
    assert_error(app.post("/image").await, 409, "no_data", "POST /data").await;
    let jobs: Vec<Value> = app.get("/jobs").await.json().await.unwrap();
    assert!(jobs.is_empty());
}

#[tokio::test]
async fn every_plot_kind_renders_a_real_png_of_the_requested_size() {
    let app = spawn_app().await;
    app.load().await;
    for (kind, w, h) in [
        ("locus_group", 800, 500),
        ("chromosome", 1200, 700),
        ("approval_year", 200, 4000),
    ] {
        let job = plot(&app, &format!("?kind={kind}&width={w}&height={h}")).await;
        assert_eq!(job["status"], "done", "{job}");
        let id = job["id"].as_str().unwrap();
        assert_eq!(job["result"]["image"], format!("/image/{id}"));
        let r = app.get(&format!("/image/{id}")).await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "image/png");
        let bytes = r.bytes().await.unwrap();
        let (dw, dh, colours) = decode(&bytes);
        assert_eq!((dw, dh), (w, h), "{kind}");
        assert!(
            colours > 8,
            "{kind}: a chart has more than {colours} colours"
        );
    }
    // The default plot is the locus-group chart at the default size.
    let job = plot(&app, "").await;
    assert_eq!(job["params"]["plot"], "locus_group");
    let latest = app.get("/image").await;
    assert_eq!(latest.status(), 200);
    assert_eq!(latest.headers()["x-job-id"], job["id"].as_str().unwrap());
    let (w, h, _) = decode(&latest.bytes().await.unwrap());
    assert_eq!(
        (w, h),
        (
            job["params"]["width"].as_u64().unwrap() as u32,
            job["params"]["height"].as_u64().unwrap() as u32
        )
    );
}

#[tokio::test]
async fn bad_plot_parameters_are_400_listing_what_is_allowed() {
    let app = spawn_app().await;
    app.load().await;
    let cases = [
        ("?kind=pie", "bad_plot_kind", "chromosome"),
        ("?width=abc", "bad_image_size", "200"),
        ("?width=199", "bad_image_size", "4000"),
        ("?height=4001", "bad_image_size", "4000"),
        ("?width=1.5", "bad_image_size", "whole number"),
        (
            "?colour=red",
            "bad_plot_parameter",
            "kind, width and height",
        ),
    ];
    for (q, code, needle) in cases {
        assert_error(app.post(&format!("/image{q}")).await, 400, code, needle).await;
    }
    let jobs: Vec<Value> = app.get("/jobs").await.json().await.unwrap();
    assert_eq!(jobs.len(), 1, "no plot job was created");
}

#[tokio::test]
async fn image_reads_and_deletes_when_there_is_none_are_404() {
    let app = spawn_app().await;
    assert_error(app.get("/image").await, 404, "no_image", "POST /image").await;
    assert_error(app.delete("/image").await, 404, "no_image", "POST /image").await;
    let id = uuid::Uuid::new_v4();
    assert_error(
        app.get(&format!("/image/{id}")).await,
        404,
        "job_not_found",
        "no job",
    )
    .await;
    assert_error(
        app.delete(&format!("/image/{id}")).await,
        404,
        "job_not_found",
        "no job",
    )
    .await;
    assert_error(app.get("/image/xyz").await, 400, "bad_job_id", "UUID").await;
    // A load job has no image.
    let load = app.load().await;
    let lid = load["id"].as_str().unwrap();
    assert_error(
        app.get(&format!("/image/{lid}")).await,
        404,
        "not_a_plot_job",
        "load job",
    )
    .await;
    // A delete says why there is nothing to delete, as a read does.
    assert_error(
        app.delete(&format!("/image/{lid}")).await,
        404,
        "not_a_plot_job",
        "load job",
    )
    .await;
}

#[tokio::test]
async fn deleting_images_one_and_all() {
    let app = spawn_app().await;
    app.load().await;
    let a = plot(&app, "?kind=chromosome").await;
    let b = plot(&app, "?kind=approval_year").await;
    let c = plot(&app, "?kind=locus_group").await;
    let (a, b) = (a["id"].as_str().unwrap(), b["id"].as_str().unwrap());
    let r = app.delete(&format!("/image/{a}")).await;
    assert_eq!(r.status(), 200);
    assert_error(
        app.get(&format!("/image/{a}")).await,
        404,
        "image_deleted",
        "deleted",
    )
    .await;
    assert_eq!(app.get(&format!("/image/{b}")).await.status(), 200);
    assert_eq!(
        app.get("/image").await.headers()["x-job-id"],
        c["id"].as_str().unwrap()
    );
    let r = app.delete("/image").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["deleted"], 2);
    assert_error(app.get("/image").await, 404, "no_image", "POST /image").await;
    let mut db1 = app.redis.conn(1);
    let left: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut db1).unwrap();
    assert!(left.is_empty(), "db 1 should be empty: {left:?}");
}

#[tokio::test]
async fn images_live_in_db_1_and_genes_in_db_0() {
    let app = spawn_app().await;
    app.load().await;
    let job = plot(&app, "?kind=chromosome").await;
    let id = job["id"].as_str().unwrap();
    let mut db0 = app.redis.conn(0);
    let mut db1 = app.redis.conn(1);
    let png_len: usize = redis::cmd("STRLEN")
        .arg(format!("gene-api:image:{id}"))
        .query(&mut db1)
        .unwrap();
    assert!(png_len > 1000);
    let in_db0: bool = redis::cmd("EXISTS")
        .arg(format!("gene-api:image:{id}"))
        .query(&mut db0)
        .unwrap();
    assert!(!in_db0);
    let genes_in_db0: u64 = redis::cmd("HLEN")
        .arg("gene-api:records")
        .query(&mut db0)
        .unwrap();
    assert_eq!(genes_in_db0, 1659);
}

#[tokio::test]
async fn image_of_an_unfinished_job_is_409_until_it_is_done() {
    let app = spawn_app_with(Mode::Api, std::path::Path::new(SAMPLE), &[]).await;
    let mut worker = app.manual_worker("w");
    let _ = app.post("/data").await;
    assert_eq!(worker.step().await.unwrap(), StepOutcome::Processed(1));
    let job: Value = app
        .post("/image?kind=chromosome")
        .await
        .json()
        .await
        .unwrap();
    let id = job["id"].as_str().unwrap();
    assert_error(
        app.get(&format!("/image/{id}")).await,
        409,
        "job_not_done",
        "queued",
    )
    .await;
    assert_eq!(worker.step().await.unwrap(), StepOutcome::Processed(1));
    assert_eq!(app.get(&format!("/image/{id}")).await.status(), 200);
}

#[tokio::test]
async fn a_plot_whose_data_was_deleted_before_it_ran_fails_clearly() {
    let app = spawn_app_with(Mode::Api, std::path::Path::new(SAMPLE), &[]).await;
    let mut worker = app.manual_worker("w");
    let _ = app.post("/data").await;
    worker.step().await.unwrap();
    let job: Value = app.post("/image").await.json().await.unwrap();
    let id = job["id"].as_str().unwrap();
    assert_eq!(app.delete("/data").await.status(), 200);
    assert_eq!(worker.step().await.unwrap(), StepOutcome::Processed(1));
    let job: Value = app.get(&format!("/jobs/{id}")).await.json().await.unwrap();
    assert_eq!(job["status"], "failed");
    assert!(
        job["error"].as_str().unwrap().contains("POST /data"),
        "{job}"
    );
    assert_error(
        app.get(&format!("/image/{id}")).await,
        409,
        "job_failed",
        "no gene data",
    )
    .await;
}

#[tokio::test]
async fn plot_parameters_also_come_as_a_json_body() {
    let app = spawn_app().await;
    app.load().await;
    let r = app
        .client
        .post(app.url("/image"))
        .header("Prefer", "wait=20")
        .json(&serde_json::json!({"kind": "approval_year", "width": 640, "height": 480}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let job: Value = r.json().await.unwrap();
    assert_eq!(job["status"], "done");
    let bytes = app
        .get(&format!("/image/{}", job["id"].as_str().unwrap()))
        .await
        .bytes()
        .await
        .unwrap();
    let (w, h, _) = decode(&bytes);
    assert_eq!((w, h), (640, 480));
}

/// The chart `kind` at `w` x `h` drawn here, from the HGNC file at `source`.
fn drawn_here(source: &std::path::Path, kind: PlotKind, w: u32, h: u32) -> Vec<u8> {
    let body = bytes::Bytes::from(std::fs::read(source).unwrap());
    let set = gene_api::genes::parse_source(body).unwrap();
    gene_api::plot::render_png(kind, &set.stats, ImageSize::new(w, h).unwrap()).unwrap()
}

async fn image_bytes(app: &TestApp, id: &str) -> Vec<u8> {
    let r = app.get(&format!("/image/{id}")).await;
    assert_eq!(r.status(), 200, "GET /image/{id}");
    r.bytes().await.unwrap().to_vec()
}

/// Asserts two PNGs are the same bytes, saying only their sizes when not.
fn assert_same_png(got: &[u8], want: &[u8], what: &str) {
    assert!(
        got == want,
        "{what}: {} bytes, not the {} bytes drawn here",
        got.len(),
        want.len()
    );
}

async fn queue(app: &TestApp, query: &str) -> String {
    let r = app.post(&format!("/image{query}")).await;
    assert_eq!(r.status(), 202, "POST /image{query}");
    let job: Value = r.json().await.unwrap();
    job["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn a_chart_asked_for_again_is_copied_from_the_render_cache_and_a_new_load_draws_anew() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("hgnc.json");
    std::fs::copy(SAMPLE, &source).unwrap();
    let app = spawn_app_with(Mode::Api, &source, &[]).await;
    let mut worker = app.manual_worker("w");
    let _ = app.post("/data").await;
    assert_eq!(worker.step().await.unwrap(), StepOutcome::Processed(1));
    let chart = drawn_here(&source, PlotKind::Chromosome, 300, 200);

    // The first chart is drawn; the same chart again, twice in one batch,
    // is copied; another size is drawn.
    let first = queue(&app, "?kind=chromosome&width=300&height=200").await;
    assert_eq!(worker.step().await.unwrap(), StepOutcome::Processed(1));
    let again = [
        queue(&app, "?kind=chromosome&width=300&height=200").await,
        queue(&app, "?kind=chromosome&width=300&height=200").await,
    ];
    let other = queue(&app, "?kind=chromosome&width=301&height=200").await;
    assert_eq!(
        worker.step().await.unwrap(),
        StepOutcome::Processed(3),
        "one read takes the batch"
    );
    let usage = app.pipeline.render_cache().usage();
    assert_eq!(
        (usage.charts, usage.hits, usage.misses),
        (2, 2, 2),
        "{usage:?}"
    );
    for id in [&first, &again[0], &again[1]] {
        assert_same_png(&image_bytes(&app, id).await, &chart, id);
    }
    assert_same_png(
        &image_bytes(&app, &other).await,
        &drawn_here(&source, PlotKind::Chromosome, 301, 200),
        "the other size",
    );

    // A load with other statistics (half the genes) draws the chart anew.
    let mut doc: Value = serde_json::from_slice(&std::fs::read(SAMPLE).unwrap()).unwrap();
    let docs = doc["response"]["docs"].as_array_mut().unwrap();
    docs.truncate(docs.len() / 2);
    std::fs::write(&source, serde_json::to_vec(&doc).unwrap()).unwrap();
    let _ = app.post("/data").await;
    assert_eq!(worker.step().await.unwrap(), StepOutcome::Processed(1));
    let after = queue(&app, "?kind=chromosome&width=300&height=200").await;
    assert_eq!(worker.step().await.unwrap(), StepOutcome::Processed(1));
    let half = drawn_here(&source, PlotKind::Chromosome, 300, 200);
    assert!(half != chart, "half the genes make another chart");
    assert_same_png(&image_bytes(&app, &after).await, &half, "after the load");
    let usage = app.pipeline.render_cache().usage();
    assert_eq!(
        (usage.charts, usage.hits, usage.misses),
        (3, 2, 3),
        "{usage:?}"
    );
}

#[tokio::test]
async fn images_are_stored_and_counted_even_after_redis_lost_its_scripts() {
    let app = spawn_app().await;
    app.load().await;
    let mut ids = vec![];
    for round in 0..3 {
        // Redis forgets its scripts (as after a restart): the image's MULTI
        // finds its script missing, loads it and stores again.
        let _: () = redis::cmd("SCRIPT")
            .arg("FLUSH")
            .query(&mut app.redis.conn(1))
            .unwrap();
        let id = queue(&app, &format!("?width={}&height=200", 200 + round)).await;
        assert_eq!(app.wait_job(&id).await["status"], "done");
        ids.push(id);
    }
    let mut img = app.redis.conn(1);
    let mut stored = 0;
    for id in &ids {
        let len: u64 = img.strlen(format!("gene-api:image:{id}")).unwrap();
        let booked: u64 = img.hget("gene-api:images:sizes", id).unwrap();
        assert_eq!(len, booked, "image {id}");
        assert_eq!(image_bytes(&app, id).await.len() as u64, len);
        stored += len;
    }
    let total: u64 = img.get("gene-api:images:bytes").unwrap();
    let count: u64 = img.zcard("gene-api:images").unwrap();
    assert_eq!((count, total), (3, stored));
}
