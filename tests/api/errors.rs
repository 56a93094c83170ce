use crate::helpers::*;

#[tokio::test]
async fn unknown_routes_are_json_404() {
    let app = spawn_app().await;
    // `/` is the dashboard.
    for path in ["/nope", "/genes/HGNC:5/extra", "/data/1", "/docs/a/b"] {
        assert_error(app.get(path).await, 404, "not_found", "/genes").await;
    }
}

#[tokio::test]
async fn wrong_methods_are_json_405() {
    let app = spawn_app().await;
    let c = &app.client;
    for req in [
        c.put(app.url("/data")),
        c.post(app.url("/genes")),
        c.delete(app.url("/genes/HGNC:5")),
        c.put(app.url("/jobs")), // POST /jobs submits a job
        c.put(app.url("/image")),
        c.post(app.url("/image/0b7e5a8e-7c1f-4f5e-9d55-3e8f6a1c2b4d")),
        c.post(app.url("/health")),
    ] {
        let r = req.send().await.unwrap();
        assert_error(r, 405, "method_not_allowed", "method").await;
    }
}

#[tokio::test]
async fn oversized_bodies_are_json_413() {
    let app = spawn_app().await;
    let big = vec![b' '; 64 * 1024];
    for path in ["/data", "/image"] {
        let r = app
            .client
            .post(app.url(path))
            .body(big.clone())
            .send()
            .await
            .unwrap();
        assert_error(r, 413, "payload_too_large", "too large").await;
    }
}

#[tokio::test]
async fn malformed_json_is_400_and_creates_no_job() {
    let app = spawn_app().await;
    app.load().await;
    for path in ["/data", "/image"] {
        let r = app
            .client
            .post(app.url(path))
            .header("content-type", "application/json")
            .body("{\"kind\": ")
            .send()
            .await
            .unwrap();
        assert_error(r, 400, "malformed_json", "malformed").await;
    }
    let jobs: Vec<serde_json::Value> = app.get("/jobs").await.json().await.unwrap();
    assert_eq!(jobs.len(), 1, "only the load job exists");
}

#[tokio::test]
async fn clients_cannot_choose_the_load_source() {
    let app = spawn_app().await;
    let r = app
        .client
        .post(app.url("/data"))
        .body(r#"{"source": "file:///etc/passwd"}"#)
        .send()
        .await
        .unwrap();
    assert_error(r, 400, "source_not_allowed", "GENE_API__DATA__SOURCE").await;
}
