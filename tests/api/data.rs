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
    // Nothing of the data set is left behind in db 0 except job bookkeeping,
    // the generation that tells a load in flight that DELETE ran, the
    // counter that orders releases, and the number of the announcements of
    // which release is live (it must only grow: a process compares it).
    let mut conn = app.redis.conn(0);
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("gene-api:*")
        .query(&mut conn)
        .unwrap();
    assert!(
        keys.iter().all(|k| k.starts_with("gene-api:job")
            || k == "gene-api:data:generation"
            || k == "gene-api:releases:order"
            || k == "gene-api:releases:seq"),
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

    let bad_sources: [(&[u8], &str); 5] = [
        (b"{\"response\": {\"docs\": [", "not HGNC JSON"),
        (b"{\"response\": {\"docs\": []}}", "no gene records"),
        (
            b"{\"response\": {\"docs\": [{\"hgnc_id\": \"HGNC:1\"}, {\"symbol\": \"X\"}]}}",
            "no hgnc_id",
        ),
        (
            b"{\"response\": {\"docs\": [{\"hgnc_id\": \"HGNC:1\"}, {\"hgnc_id\": \"HGNC:1\"}]}}",
            "repeats hgnc_id HGNC:1",
        ),
        (b"<html>502 Bad Gateway</html>", "not HGNC JSON"),
    ];
    for (content, why) in bad_sources {
        std::fs::write(&source, content).unwrap();
        let job = app.load().await;
        assert_failed_at_once(&job, why);
        assert_eq!(app.get("/data").await.bytes().await.unwrap(), before);
        assert_eq!(app.get("/genes/HGNC:5").await.status(), 200);
    }
    std::fs::remove_file(&source).unwrap();
    let job = app.load().await;
    assert_failed_at_once(&job, "could not fetch");
    assert_eq!(app.get("/data").await.bytes().await.unwrap(), before);
}

/// A permanent failure fails on its first run: the job record says one
/// attempt, and its error is the failure itself, not "gave up after N
/// attempts" (which a retried one would say). Timing cannot tell: with the
/// tests' 50 ms backoff, three runs take well under a second.
fn assert_failed_at_once(job: &Value, why: &str) {
    assert_eq!(job["status"], "failed", "{job}");
    assert_eq!(
        job["attempts"], 1,
        "a permanent failure ({why}) was run again: {job}"
    );
    let error = job["error"].as_str().unwrap();
    assert!(error.contains(why), "{job}");
    assert!(!error.contains("gave up after"), "{job}");
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
    // Transient: every run was made (the counter the permanent failures'
    // checks read does count).
    assert_eq!(job["attempts"], job["max_attempts"], "{job}");
    assert_eq!(job["attempts"], 3, "{job}");
    assert!(err.starts_with("gave up after 3 attempts"), "{err}");
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
    let job = app2.load().await;
    assert_failed_at_once(&job, "404");

    // Over the size cap by its Content-Length: permanent too.
    let app3 = spawn_app_with(
        Mode::Serve,
        std::path::Path::new(&url),
        &[("GENE_API__DATA__MAX_BYTES", "1000")],
    )
    .await;
    let job = app3.load().await;
    assert_failed_at_once(&job, "limit");
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
    assert_failed_at_once(&job, "limit");
}

/// An app whose source answers the sample to one fetch and another data set
/// to the next (two workers, so two loads run at once); and that other set's
/// records.
async fn app_loading_two_sets() -> (TestApp, Vec<Value>) {
    let (other, other_docs) = other_data_set();
    let url = serve_in_turn(vec![std::fs::read(SAMPLE).unwrap(), other]).await;
    let app = spawn_app_with(
        Mode::Serve,
        std::path::Path::new(&url),
        &[("GENE_API__WORKERS__CONCURRENCY", "2")],
    )
    .await;
    (app, other_docs)
}

#[tokio::test]
async fn two_racing_loads_both_finish_and_leave_one_consistent_data_set() {
    // Two loads at once of two different data sets: the source answers the
    // sample to one fetch and the other set to the next.
    let (app, other_docs) = app_loading_two_sets().await;
    let (a, b) = tokio::join!(app.post("/data"), app.post("/data"));
    assert_eq!((a.status().as_u16(), b.status().as_u16()), (202, 202));
    let a: Value = a.json().await.unwrap();
    let b: Value = b.json().await.unwrap();
    assert_ne!(a["id"], b["id"]);
    let (ja, jb) = tokio::join!(
        app.wait_job(a["id"].as_str().unwrap()),
        app.wait_job(b["id"].as_str().unwrap())
    );
    assert_eq!(
        (ja["status"].as_str(), jb["status"].as_str()),
        (Some("done"), Some("done")),
        "{ja}\n{jb}"
    );
    // They raced: each started before the other finished (RFC 3339 times
    // with milliseconds sort as text), and they loaded different sets.
    let t = |j: &Value, f: &str| j[f].as_str().unwrap().to_string();
    assert!(
        t(&ja, "started_at") < t(&jb, "finished_at")
            && t(&jb, "started_at") < t(&ja, "finished_at"),
        "the loads did not overlap:\n{ja}\n{jb}"
    );
    let mut counts = [&ja, &jb].map(|j| j["result"]["records"].as_u64().unwrap());
    counts.sort();
    assert_eq!(counts, [1500, 1659]);

    // The live set is one of the two, whole, in every way it is read.
    let sample = sample_docs();
    let all: Vec<Value> = ok_json(app.get("/data").await).await;
    let docs = if all == sample {
        &sample
    } else {
        assert!(all == other_docs, "GET /data is neither data set whole");
        &other_docs
    };
    let ids: Vec<String> = docs
        .iter()
        .map(|d| d["hgnc_id"].as_str().unwrap().to_string())
        .collect();
    let genes: Vec<String> = ok_json(app.get("/genes").await).await;
    assert!(genes == ids, "GET /genes is of another set than GET /data");
    // Through the live version's index (the filtered route reads it).
    let indexed: Vec<String> = ok_json(app.get("/genes?limit=50000").await).await;
    assert!(
        indexed == ids,
        "the index is of another set than the records"
    );
    let some: Vec<Value> = ok_json(app.get("/data?limit=1000&fields=hgnc_id,name").await).await;
    assert!(
        some == first_names(docs),
        "filtered GET /data is of another set"
    );
    let info: Value = ok_json(app.get("/data/info").await).await;
    assert_eq!(info["records"], docs.len(), "{info}");
    let mut conn = app.redis.conn(0);
    let live: String = redis::cmd("GET")
        .arg("gene-api:data:current")
        .query(&mut conn)
        .unwrap();
    assert_eq!(info["id"], live.as_str(), "{info}");
    // Both loads are kept releases; the records hash holds each distinct
    // record once (the two sets share most of theirs), and nothing staged
    // is left behind.
    let kept: Vec<String> = redis::cmd("ZRANGE")
        .arg("gene-api:releases")
        .arg(0)
        .arg(-1)
        .query(&mut conn)
        .unwrap();
    assert_eq!(kept.len(), 2, "{kept:?}");
    let distinct: std::collections::HashSet<String> = sample
        .iter()
        .chain(other_docs.iter())
        .map(|d| d.to_string())
        .collect();
    let n: usize = redis::cmd("HLEN")
        .arg("gene-api:records")
        .query(&mut conn)
        .unwrap();
    assert_eq!(n, distinct.len());
    let staged: Vec<String> = redis::cmd("KEYS")
        .arg("gene-api:staging:*")
        .query(&mut conn)
        .unwrap();
    assert!(staged.is_empty(), "{staged:?}");
    // Only the live release keeps a stored index; the other is still read whole.
    let indexes: Vec<String> = redis::cmd("KEYS")
        .arg("gene-api:release:*:index")
        .query(&mut conn)
        .unwrap();
    assert_eq!(indexes, [format!("gene-api:release:{live}:index")]);
    let other_release = kept.iter().find(|k| **k != live).unwrap();
    let older: Vec<Value> = ok_json(app.get(&format!("/data?release={other_release}")).await).await;
    assert!(older == sample || older == other_docs);
    assert!(older != *docs, "?release= answered the live release");
}

/// A 200 answer's JSON body; any other status fails with the body.
async fn ok_json<T: serde::de::DeserializeOwned>(r: reqwest::Response) -> T {
    let status = r.status();
    let url = r.url().to_string();
    let body = r.bytes().await.unwrap();
    assert_eq!(
        status,
        200,
        "{url}: {}",
        String::from_utf8_lossy(&body[..body.len().min(500)])
    );
    serde_json::from_slice(&body).unwrap_or_else(|e| panic!("{url}: not whole JSON: {e}"))
}

/// `GET /data?limit=1000&fields=hgnc_id,name` of `docs`.
fn first_names(docs: &[Value]) -> Vec<Value> {
    docs.iter()
        .take(1000)
        .map(|d| serde_json::json!({"hgnc_id": d["hgnc_id"], "name": d["name"]}))
        .collect()
}

#[tokio::test]
async fn reads_while_loads_swap_the_data_set_all_answer_200_with_one_whole_set() {
    // Loads back to back, each swapping in the other of two data sets,
    // while readers ask GET /data and GET /genes, plain (the stored blob and
    // id list of one version) and filtered (through the index, with the
    // records' version checked and the read retried when a swap got in
    // between): every answer 200 and exactly one of the two sets.
    let (app, other_docs) = app_loading_two_sets().await;
    assert_eq!(app.load().await["result"]["records"], 1659);
    let sets = std::sync::Arc::new([sample_docs(), other_docs]);
    let loading = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    const LOADS: usize = 12;
    let loader = {
        let (client, url, loading) = (app.client.clone(), app.url("/data"), loading.clone());
        tokio::spawn(async move {
            for _ in 0..LOADS {
                let r = client
                    .post(&url)
                    .header("Prefer", "wait=30")
                    .send()
                    .await
                    .unwrap();
                let job: Value = ok_json(r).await;
                assert_eq!(job["status"], "done", "{job}");
            }
            loading.store(false, std::sync::atomic::Ordering::SeqCst);
        })
    };
    let routes = [
        "/data",
        "/genes",
        "/data?limit=1000&fields=hgnc_id,name",
        "/genes?limit=1000",
    ];
    let readers: Vec<_> = (0..4)
        .map(|n| {
            let (client, sets, loading) = (app.client.clone(), sets.clone(), loading.clone());
            let urls: Vec<String> = routes.iter().map(|r| app.url(r)).collect();
            tokio::spawn(async move {
                // How often each route answered each set.
                let mut seen = [[0usize; 2]; 4];
                let mut i = n;
                while loading.load(std::sync::atomic::Ordering::SeqCst) {
                    let route = i % routes.len();
                    i += 1;
                    let r = client.get(&urls[route]).send().await.unwrap();
                    let which = match route {
                        0 => {
                            let all: Vec<Value> = ok_json(r).await;
                            sets.iter().position(|s| *s == all)
                        }
                        1 | 3 => {
                            let ids: Vec<String> = ok_json(r).await;
                            sets.iter().position(|s| {
                                let want = if route == 1 { s.len() } else { 1000 };
                                ids.len() == want
                                    && s.iter()
                                        .zip(&ids)
                                        .all(|(d, id)| d["hgnc_id"] == id.as_str())
                            })
                        }
                        _ => {
                            let some: Vec<Value> = ok_json(r).await;
                            sets.iter().position(|s| first_names(s) == some)
                        }
                    };
                    let which = which
                        .unwrap_or_else(|| panic!("{}: neither data set whole", routes[route]));
                    seen[route][which] += 1;
                }
                seen
            })
        })
        .collect();
    loader.await.unwrap();
    let mut seen = [[0usize; 2]; 4];
    for r in readers {
        for (total, got) in seen.iter_mut().zip(r.await.unwrap()) {
            total[0] += got[0];
            total[1] += got[1];
        }
    }
    eprintln!("reads during {LOADS} swaps, by route and set: {seen:?}");
    // The reads spanned the swaps: each route answered both sets.
    for (route, counts) in routes.iter().zip(seen) {
        assert!(counts[0] > 0 && counts[1] > 0, "{route}: {counts:?}");
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
