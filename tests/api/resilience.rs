use std::time::Duration;

use serde_json::Value;

use crate::helpers::*;

#[tokio::test]
async fn redis_outage_gives_503_json_then_recovers_by_itself() {
    let mut app = spawn_app().await;
    app.load().await;
    app.redis.kill();
    let r = app.get("/ready").await;
    assert_eq!(r.status(), 503);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "not_ready");
    assert_error(app.get("/genes/HGNC:5").await, 503, "unavailable", "retry").await;
    assert_error(app.post("/data").await, 503, "unavailable", "retry").await;

    // Same port, fresh (empty) Redis: the service reconnects and works again.
    assert!(app.redis.spawn(false));
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while app.get("/ready").await.status() != 200 {
        assert!(std::time::Instant::now() < deadline, "never became ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let job = app.load().await;
    assert_eq!(job["status"], "done", "{job}");
    assert_eq!(app.get("/genes/HGNC:5").await.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn shutdown_is_clean_and_prompt() {
    let mut app = spawn_app().await;
    app.load().await;
    let t = std::time::Instant::now();
    app.stop().await;
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "took {:?}",
        t.elapsed()
    );
    assert!(
        app.client.get(app.url("/health")).send().await.is_err(),
        "still accepting connections"
    );
}
