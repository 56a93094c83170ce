use std::time::Duration;

use gene_api::app::Mode;
use serde_json::Value;

use crate::helpers::*;

#[tokio::test]
async fn health_is_ok_and_ready_when_redis_answers() {
    let app = spawn_app().await;
    let r = app.get("/health").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["status"], "ok");
    let r = app.get("/ready").await;
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn reads_before_any_load_say_to_post_data_first() {
    let app = spawn_app().await;
    for path in ["/data", "/genes", "/genes/HGNC:5"] {
        assert_error(app.get(path).await, 404, "no_data", "POST /data").await;
    }
}

#[tokio::test]
async fn load_then_read_returns_every_record_exactly_as_in_the_source() {
    let app = spawn_app().await;
    let r = app.post("/data").await;
    assert_eq!(r.status(), 202);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    let job: Value = r.json().await.unwrap();
    assert_eq!(job["kind"], "load");
    assert_eq!(job["status"], "queued");
    assert_eq!(location, format!("/jobs/{}", job["id"].as_str().unwrap()));

    let done = app.wait_job(job["id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "done", "{done}");
    assert_eq!(done["result"]["records"], 1659);
    assert_eq!(done["attempts"], 1);

    let docs = sample_docs();
    let r = app.get("/data").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");
    let all: Vec<Value> = r.json().await.unwrap();
    assert_eq!(all, docs, "GET /data must equal response.docs, in order");

    let ids: Vec<String> = app.get("/genes").await.json().await.unwrap();
    let want: Vec<&str> = docs
        .iter()
        .map(|d| d["hgnc_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, want);

    // Every field, same types, for records with lists, integers and strings.
    for doc in [&docs[0], &docs[docs.len() / 2], &docs[docs.len() - 1]] {
        let id = doc["hgnc_id"].as_str().unwrap();
        let r = app.get(&format!("/genes/{id}")).await;
        assert_eq!(r.status(), 200);
        assert_eq!(&r.json::<Value>().await.unwrap(), doc);
    }
    let a1bg: Value = app.get("/genes/HGNC:5").await.json().await.unwrap();
    assert_eq!(a1bg["symbol"], "A1BG");
    assert!(a1bg["gene_group_id"][0].is_u64());
}

#[tokio::test]
async fn gene_lookup_errors() {
    let app = spawn_app().await;
    app.load().await;
    assert_error(
        app.get("/genes/HGNC:999999999").await,
        404,
        "gene_not_found",
        "HGNC:999999999",
    )
    .await;
    for bad in ["5", "HGNC:abc", "hgnc:5", "HGNC:"] {
        assert_error(
            app.get(&format!("/genes/{bad}")).await,
            400,
            "bad_hgnc_id",
            "HGNC:<digits>",
        )
        .await;
    }
    // Percent-encoded colon is the same id.
    assert_eq!(app.get("/genes/HGNC%3A5").await.status(), 200);
}

#[tokio::test]
async fn delete_data_removes_everything_and_is_idempotent() {
    let app = spawn_app().await;
    app.load().await;
    let r = app.delete("/data").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["deleted"], 1659);
    assert_error(app.get("/genes/HGNC:5").await, 404, "no_data", "POST /data").await;
    assert_error(app.get("/data").await, 404, "no_data", "POST /data").await;
    let r = app.delete("/data").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["deleted"], 0);
    // Nothing of the data set is left behind in db 0 except job bookkeeping.
    let mut conn = app.redis.conn(0);
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("gene-api:*")
        .query(&mut conn)
        .unwrap();
    assert!(
        keys.iter().all(|k| k.starts_with("gene-api:job")),
        "leftover keys: {keys:?}"
    );
}

#[tokio::test]
async fn a_failed_load_keeps_the_previous_data_intact() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("hgnc.json");
    std::fs::copy(SAMPLE, &source).unwrap();
    let app = spawn_app_with(Mode::Serve, &source, &[]).await;
    assert_eq!(app.load().await["status"], "done");
    let before = app.get("/data").await.bytes().await.unwrap();

    let bad_sources: [(&[u8], &str); 4] = [
        (b"{\"response\": {\"docs\": [", "not HGNC JSON"),
        (b"{\"response\": {\"docs\": []}}", "no gene records"),
        (
            b"{\"response\": {\"docs\": [{\"hgnc_id\": \"HGNC:1\"}, {\"symbol\": \"X\"}]}}",
            "no hgnc_id",
        ),
        (b"<html>502 Bad Gateway</html>", "not HGNC JSON"),
    ];
    for (content, why) in bad_sources {
        std::fs::write(&source, content).unwrap();
        let job = app.load().await;
        assert_eq!(job["status"], "failed", "{job}");
        assert!(job["error"].as_str().unwrap().contains(why), "{job}");
        assert_eq!(app.get("/data").await.bytes().await.unwrap(), before);
        assert_eq!(app.get("/genes/HGNC:5").await.status(), 200);
    }
    std::fs::remove_file(&source).unwrap();
    let job = app.load().await;
    assert_eq!(job["status"], "failed");
    assert!(
        job["error"].as_str().unwrap().contains("could not fetch"),
        "{job}"
    );
    assert_eq!(app.get("/data").await.bytes().await.unwrap(), before);
}

#[tokio::test]
async fn an_unreachable_url_fails_the_job_with_the_reason() {
    // A port nothing listens on: connection refused, retried, then failed.
    let url = format!("http://127.0.0.1:{}/hgnc.json", free_port());
    let app = spawn_app_with(Mode::Serve, std::path::Path::new(&url), &[]).await;
    let job = app.load().await;
    assert_eq!(job["status"], "failed");
    let err = job["error"].as_str().unwrap();
    assert!(
        err.contains("could not fetch") && err.contains(&url),
        "{err}"
    );
    assert_error(app.get("/data").await, 404, "no_data", "POST /data").await;
}

#[tokio::test]
async fn a_load_over_http_works_and_a_404_is_not_retried() {
    // A tiny real HTTP server on the loopback serving the sample.
    let body = std::fs::read(SAMPLE).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let body = body.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let n = s.read(&mut buf).await.unwrap_or(0);
                let req = String::from_utf8_lossy(&buf[..n]).to_string();
                let resp = if req.starts_with("GET /hgnc.json ") {
                    let mut r = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n", body.len()).into_bytes();
                    r.extend_from_slice(&body);
                    r
                } else {
                    b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                        .to_vec()
                };
                let _ = s.write_all(&resp).await;
            });
        }
    });
    let url = format!("http://127.0.0.1:{port}/hgnc.json");
    let app = spawn_app_with(Mode::Serve, std::path::Path::new(&url), &[]).await;
    let job = app.load().await;
    assert_eq!(job["status"], "done", "{job}");
    assert_eq!(job["result"]["source"], url.as_str());
    assert_eq!(
        app.get("/genes")
            .await
            .json::<Vec<String>>()
            .await
            .unwrap()
            .len(),
        1659
    );

    let missing = format!("http://127.0.0.1:{port}/nope.json");
    let app2 = spawn_app_with(Mode::Serve, std::path::Path::new(&missing), &[]).await;
    let t = std::time::Instant::now();
    let job = app2.load().await;
    assert_eq!(job["status"], "failed");
    assert!(job["error"].as_str().unwrap().contains("404"), "{job}");
    // Permanent: no backoff retries happened (each would sleep >= 50 ms).
    assert!(t.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn a_source_over_the_size_cap_is_refused() {
    let app = spawn_app_with(
        Mode::Serve,
        std::path::Path::new(SAMPLE),
        &[("GENE_API__DATA__MAX_BYTES", "1000")],
    )
    .await;
    let job = app.load().await;
    assert_eq!(job["status"], "failed");
    assert!(job["error"].as_str().unwrap().contains("limit"), "{job}");
}

#[tokio::test]
async fn two_racing_loads_both_finish_and_leave_one_consistent_data_set() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("hgnc.json");
    std::fs::copy(SAMPLE, &source).unwrap();
    let app = spawn_app_with(
        Mode::Serve,
        &source,
        &[("GENE_API__WORKERS__CONCURRENCY", "2")],
    )
    .await;
    let (a, b) = tokio::join!(app.post("/data"), app.post("/data"));
    let a: Value = a.json().await.unwrap();
    let b: Value = b.json().await.unwrap();
    assert_ne!(a["id"], b["id"]);
    // Meanwhile readers only ever see a complete set (or none yet).
    for _ in 0..20 {
        let r = app.get("/genes").await;
        if r.status() == 200 {
            assert_eq!(r.json::<Vec<String>>().await.unwrap().len(), 1659);
        }
    }
    let (ja, jb) = tokio::join!(
        app.wait_job(a["id"].as_str().unwrap()),
        app.wait_job(b["id"].as_str().unwrap())
    );
    assert_eq!(
        (ja["status"].as_str(), jb["status"].as_str()),
        (Some("done"), Some("done"))
    );
    let all: Vec<Value> = app.get("/data").await.json().await.unwrap();
    assert_eq!(all, sample_docs());
    let mut conn = app.redis.conn(0);
    let n: u64 = redis::cmd("HLEN")
        .arg("gene-api:genes")
        .query(&mut conn)
        .unwrap();
    // 1,659 records and the field that names their version.
    assert_eq!(n, 1660);
    // The loser's version is scheduled to expire, not leaked.
    let versions: Vec<String> = redis::cmd("KEYS")
        .arg("gene-api:data:*:blob")
        .query(&mut conn)
        .unwrap();
    let live: String = redis::cmd("GET")
        .arg("gene-api:data:current")
        .query(&mut conn)
        .unwrap();
    for v in versions {
        let ttl: i64 = redis::cmd("TTL").arg(&v).query(&mut conn).unwrap();
        if v.contains(&live) {
            assert_eq!(ttl, -1, "live version must not expire");
        } else {
            assert!(ttl > 0, "old version {v} must expire");
        }
    }
}

#[tokio::test]
async fn prefer_wait_answers_with_the_finished_job() {
    let app = spawn_app().await;
    let r = app
        .client
        .post(app.url("/data"))
        .header("Prefer", "respond-async, wait=15")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["preference-applied"], "wait=15");
    let job: Value = r.json().await.unwrap();
    assert_eq!(job["status"], "done");
}

#[tokio::test]
async fn prefer_wait_on_a_failing_job_returns_its_error() {
    let missing = std::path::Path::new("/nonexistent/hgnc.json");
    let app = spawn_app_with(Mode::Serve, missing, &[]).await;
    let r = app
        .client
        .post(app.url("/data"))
        .header("Prefer", "wait=10")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "job_failed");
    assert!(body["message"]
        .as_str()
        .unwrap()
        .contains("/nonexistent/hgnc.json"));
    assert_eq!(body["job"]["status"], "failed");
}

#[tokio::test]
async fn prefer_wait_times_out_to_202_when_no_worker_runs() {
    let app = spawn_app_with(Mode::Api, std::path::Path::new(SAMPLE), &[]).await;
    let r = app
        .client
        .post(app.url("/data"))
        .header("Prefer", "wait=1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    assert_eq!(r.json::<Value>().await.unwrap()["status"], "queued");
}
