//! The job system as users steer it, across real processes: one `api`, two
//! `worker`s, one Redis. States, cancel, retry, dead letters, and live events
//! read over HTTP from the api while the workers do the work.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{RedisServer, SAMPLE};
use crate::procs::*;
use crate::sse::{SourceMode, SourceServer, SseClient};

const FAST: &[(&str, &str)] = &[
    ("GENE_API__PIPELINE__RECLAIM_AFTER_MS", "1000"),
    ("GENE_API__PIPELINE__RECLAIM_INTERVAL_MS", "200"),
    ("GENE_API__PIPELINE__RETRY_BACKOFF_MS", "100"),
    ("GENE_API__WORKERS__CONCURRENCY", "2"),
];

const T: Duration = Duration::from_secs(20);

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

async fn send(req: reqwest::RequestBuilder) -> (u16, Value) {
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn submit(api: &Proc, body: Value) -> String {
    let (status, job) = send(client().post(api.url("/jobs")).json(&body)).await;
    assert_eq!(status, 202, "{job}");
    assert_eq!(job["status"], "queued");
    job["id"].as_str().unwrap().to_string()
}

async fn job(api: &Proc, id: &str) -> Value {
    send(client().get(api.url(&format!("/jobs/{id}")))).await.1
}

fn with(extra: &[(&'static str, String)]) -> Vec<(&'static str, String)> {
    FAST.iter()
        .map(|(k, v)| (*k, v.to_string()))
        .chain(extra.iter().cloned())
        .collect()
}

fn env<'a>(v: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    v.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// Waits until the workers have taken every entry and acknowledged it.
fn drained(redis: &RedisServer) {
    let deadline = std::time::Instant::now() + T;
    loop {
        let groups: redis::streams::StreamInfoGroupsReply = redis::cmd("XINFO")
            .arg("GROUPS")
            .arg("gene-api:jobs:stream")
            .query(&mut redis.conn(0))
            .unwrap();
        let lag = groups.groups.first().and_then(|g| g.lag).unwrap_or(0);
        let pending: u64 = pending_by_consumer(redis).values().sum();
        if lag == 0 && pending == 0 {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "entries left: lag {lag}, pending {pending}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_load_retries_visibly_fails_after_max_attempts_and_retry_after_the_fix_succeeds()
{
    let redis = RedisServer::start();
    let source = SourceServer::start(std::fs::read(SAMPLE).unwrap(), SourceMode::Unavailable).await;
    let settings = with(&[("GENE_API__DATA__SOURCE", source.url.clone())]);
    let api = Proc::start("api", &redis, &env(&settings));
    let _w1 = Proc::start("worker", &redis, &env(&settings));
    let _w2 = Proc::start("worker", &redis, &env(&settings));

    // Watch the job from the api process while the workers run it.
    let id = submit(&api, json!({"kind": "load"})).await;
    let mut sse = SseClient::connect(&api.url(&format!("/jobs/{id}/events")), None).await;
    assert_eq!(sse.status, 200);
    assert!(sse.content_type.starts_with("text/event-stream"));
    let events = sse.until_final(&id, T).await;
    assert!(
        sse.next(T).await.is_none(),
        "the stream ends after a final state"
    );
    let names: Vec<&str> = events.iter().map(|e| e.event.as_str()).collect();
    // The first event is the state when the client connected (under load,
    // possibly past `queued`); from there on, every change is there.
    let all = [
        "queued", "running", "retrying", "running", "retrying", "running", "failed",
    ];
    assert!(all.ends_with(&names), "{names:?}");
    assert!(names.len() >= 4, "{names:?}");
    let retrying: Vec<&Value> = events
        .iter()
        .filter(|e| e.event == "retrying")
        .map(|e| &e.data)
        .collect();
    let attempts: Vec<u64> = retrying
        .iter()
        .map(|r| r["attempts"].as_u64().unwrap())
        .collect();
    assert!(
        [1, 2].ends_with(&attempts) && !attempts.is_empty(),
        "{attempts:?}"
    );
    for r in retrying {
        assert_eq!(r["max_attempts"], 3);
        assert!(r["error"].as_str().unwrap().contains("503"), "{r}");
        assert!(r["next_attempt_at"].as_str().unwrap() > r["updated_at"].as_str().unwrap());
    }
    let failed = &events.last().unwrap().data;
    assert_eq!(failed["attempts"], 3);
    assert_eq!(failed["retries"], 0, "never queued again yet: {failed}");
    let error = failed["error"].as_str().unwrap();
    assert!(
        error.contains("gave up after 3 attempts") && error.contains("503"),
        "{error}"
    );
    // A failed job has nothing to cancel.
    let (status, body) = send(client().delete(api.url(&format!("/jobs/{id}")))).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (409, Some("job_finished"))
    );

    // The source is fixed, but slow: the retried job shows its progress.
    source.set(SourceMode::Slow);
    let (status, again) = send(client().post(api.url(&format!("/jobs/{id}/retry")))).await;
    assert_eq!(status, 202, "{again}");
    assert_eq!(
        (again["id"].as_str(), again["status"].as_str()),
        (Some(id.as_str()), Some("queued"))
    );
    assert_eq!(again["attempts"], 0, "attempts start over");
    assert_eq!(again["retries"], 1, "the rounds are counted: {again}");
    assert!(again.get("error").is_none());
    let mut sse = SseClient::connect(&api.url(&format!("/jobs/{id}/events")), None).await;
    let mut fetched = vec![];
    loop {
        let e = sse.next(T).await.expect("events until done");
        if e.event == "running" {
            if let Some(bytes) = e.data["progress"]["bytes"].as_u64() {
                fetched.push(bytes);
            }
        }
        if e.event == "done" {
            assert_eq!(e.data["attempts"], 1);
            assert_eq!(e.data["result"]["records"], 1659);
            break;
        }
        assert!(e.event == "queued" || e.event == "running", "{e:?}");
    }
    // The record the worker wrote when it finished still counts the round.
    let done = job(&api, &id).await;
    assert_eq!(
        (done["status"].as_str(), done["retries"].as_u64()),
        (Some("done"), Some(1)),
        "{done}"
    );
    assert!(fetched.len() >= 3, "progress moved: {fetched:?}");
    assert!(fetched.windows(2).all(|w| w[0] <= w[1]), "{fetched:?}");
    // Only failed and cancelled jobs can be retried.
    let (status, body) = send(client().post(api.url(&format!("/jobs/{id}/retry")))).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (409, Some("job_not_retryable"))
    );
    assert_eq!(body["job"]["status"], "done");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_stops_queued_jobs_for_good_and_races_with_workers_cleanly() {
    let redis = RedisServer::start();
    let api = Proc::start("api", &redis, FAST);
    let mut loader = Proc::start("worker", &redis, FAST);
    let r = client()
        .post(api.url("/jobs"))
        .header("prefer", "wait=20")
        .json(&json!({"kind": "load"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "Prefer: wait works on POST /jobs");
    loader.signal("-TERM");
    loader.wait_exit(Duration::from_secs(10));

    // No worker runs: these stay queued.
    let plot = json!({"kind": "plot", "plot": "chromosome", "width": 300, "height": 200});
    let a = submit(&api, plot.clone()).await;
    let b = submit(&api, plot.clone()).await;
    for _ in 0..2 {
        // Cancelling is idempotent.
        let (status, body) = send(client().delete(api.url(&format!("/jobs/{a}")))).await;
        assert_eq!(
            (status, body["status"].as_str()),
            (200, Some("cancelled")),
            "{body}"
        );
    }
    let listed: Vec<Value> = send(client().get(api.url("/jobs?status=cancelled")))
        .await
        .1
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["id"], a.as_str());

    // Workers come: b runs, a never does.
    let _w1 = Proc::start("worker", &redis, FAST);
    let _w2 = Proc::start("worker", &redis, FAST);
    let records = wait_all_finished(&redis, std::slice::from_ref(&b), T);
    assert_eq!(records[&b]["status"], "done");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let ja = job(&api, &a).await;
    assert_eq!(
        (ja["status"].as_str(), ja["attempts"].as_u64()),
        (Some("cancelled"), Some(0))
    );
    let r = client()
        .get(api.url(&format!("/image/{a}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    drained(&redis);
    // Retried, it runs under the same id.
    let (status, _) = send(client().post(api.url(&format!("/jobs/{a}/retry")))).await;
    assert_eq!(status, 202);
    let records = wait_all_finished(&redis, std::slice::from_ref(&a), T);
    assert_eq!(
        (
            records[&a]["status"].as_str(),
            records[&a]["attempts"].as_u64()
        ),
        (Some("done"), Some(1))
    );
    let r = client()
        .get(api.url(&format!("/image/{a}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // Cancel racing the workers: 60 clients at once each submit a large plot
    // and cancel it straight away, while the workers take the jobs. Each
    // cancel either wins before the job runs (200), stops it running (202:
    // it ends `cancelled` with no image), or is refused because the job has
    // passed its point of no return or finished (409: it ends `done`).
    let big = json!({"kind": "plot", "plot": "chromosome", "width": 1500, "height": 1500});
    let api = &api;
    let answers = futures_util::future::join_all((0..60).map(|_| {
        let big = big.clone();
        async move {
            let id = submit(api, big).await;
            let (status, body) = send(client().delete(api.url(&format!("/jobs/{id}")))).await;
            (id, status, body)
        }
    }))
    .await;
    let ids: Vec<String> = answers.iter().map(|(id, _, _)| id.clone()).collect();
    let records = wait_all_finished(&redis, &ids, Duration::from_secs(60));
    let mut tally: HashMap<String, usize> = HashMap::new();
    for (id, status, body) in &answers {
        let rec = &records[id];
        match (status, body["error"].as_str()) {
            (200, None) => {
                assert_eq!(
                    (rec["status"].as_str(), rec["attempts"].as_u64()),
                    (Some("cancelled"), Some(0)),
                    "{rec}"
                );
                *tally.entry("cancelled".into()).or_default() += 1;
            }
            (202, None) => {
                assert_eq!(body["status"], "running", "{body}");
                assert_eq!(
                    (rec["status"].as_str(), rec["attempts"].as_u64()),
                    (Some("cancelled"), Some(1)),
                    "{rec}"
                );
                assert_eq!(rec["cancel_requested_at"], body["cancel_requested_at"]);
                assert!(rec.get("result").is_none(), "{rec}");
                *tally.entry("stopped running".into()).or_default() += 1;
            }
            (409, Some(code @ ("past_point_of_no_return" | "job_finished"))) => {
                assert_eq!(rec["status"], "done", "{rec}");
                *tally.entry(code.into()).or_default() += 1;
            }
            other => panic!("unexpected answer {other:?}: {body}"),
        }
    }
    eprintln!("cancel race: {tally:?}");
    // A cancelled job is final at once; its entry is acknowledged, unrun,
    // when a worker gets to it.
    drained(&redis);
    assert!(
        tally.get("cancelled").copied().unwrap_or(0) > 0,
        "no cancel won the race: {tally:?}"
    );
    assert!(pending_by_consumer(&redis).values().all(|n| *n == 0));
    let stop_keys: Vec<String> = redis::cmd("KEYS")
        .arg("gene-api:job-stop:*")
        .query(&mut redis.conn(0))
        .unwrap();
    assert!(
        stop_keys.is_empty(),
        "finished jobs leave no stop key: {stop_keys:?}"
    );
    // Only the jobs that ended `done` left an image.
    let stored: Vec<String> = redis::cmd("KEYS")
        .arg("gene-api:image:*")
        .query(&mut redis.conn(1))
        .unwrap();
    for (id, _, _) in &answers {
        let has = stored.iter().any(|k| k.ends_with(id.as_str()));
        assert_eq!(
            has,
            records[id]["status"] == "done",
            "{id}: {}",
            records[id]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_listed_requeued_as_fresh_deliveries_and_dropped() {
    let redis = RedisServer::start();
    let api = Proc::start("api", &redis, FAST);
    let id = submit(&api, json!({"kind": "load"})).await;
    // Three consumers take the load's entry and vanish; a stranger's entry too.
    abandon_next_entry(&redis);
    let _: redis::Value = redis::cmd("XADD")
        .arg("gene-api:jobs:stream")
        .arg("*")
        .arg("something")
        .arg("else")
        .query(&mut redis.conn(0))
        .unwrap();
    let _w1 = Proc::start("worker", &redis, FAST);
    let _w2 = Proc::start("worker", &redis, FAST);
    let records = wait_all_finished(&redis, std::slice::from_ref(&id), T);
    assert_eq!(records[&id]["status"], "failed");

    let dead: Vec<Value> = {
        let deadline = std::time::Instant::now() + T;
        loop {
            let list = send(client().get(api.url("/jobs/dead"))).await.1;
            let list = list.as_array().unwrap().clone();
            if list.len() == 2 {
                break list;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "dead letters: {list:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let ours = dead
        .iter()
        .find(|d| d["job_id"] == id.as_str())
        .expect("the job's entry");
    let stranger = dead
        .iter()
        .find(|d| d["job_id"].is_null())
        .expect("the stranger's entry");
    assert_eq!(ours["deliveries"], 4);
    assert!(ours["reason"]
        .as_str()
        .unwrap()
        .contains("gave up after 3 attempts"));
    assert!(stranger["reason"]
        .as_str()
        .unwrap()
        .contains("not a gene-api command"));
    let stats = send(client().get(api.url("/jobs/stats"))).await.1;
    assert_eq!(stats["dead_letters"], 2, "{stats}");

    // Requeued: a fresh delivery, and the job runs to done.
    let entry = ours["entry_id"].as_str().unwrap();
    let (status, body) = send(client().post(api.url(&format!("/jobs/dead/{entry}/requeue")))).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["job"]["status"], "queued");
    let records = wait_all_finished(&redis, std::slice::from_ref(&id), T);
    assert_eq!(
        (
            records[&id]["status"].as_str(),
            records[&id]["attempts"].as_u64()
        ),
        (Some("done"), Some(1))
    );
    let (status, _) = send(client().post(api.url(&format!("/jobs/dead/{entry}/requeue")))).await;
    assert_eq!(status, 404, "it left the dead letters");

    let entry = stranger["entry_id"].as_str().unwrap();
    let (status, _) = send(client().delete(api.url(&format!("/jobs/dead/{entry}")))).await;
    assert_eq!(status, 200);
    let (status, body) = send(client().delete(api.url(&format!("/jobs/dead/{entry}")))).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (404, Some("dead_letter_not_found"))
    );
    let (status, body) = send(client().delete(api.url("/jobs/dead/not-an-id"))).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("bad_entry_id"))
    );
    assert_eq!(send(client().get(api.url("/jobs/dead"))).await.1, json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_events_stream_carries_every_process_s_changes_and_resumes_with_last_event_id() {
    let redis = RedisServer::start();
    let api = Proc::start("api", &redis, FAST);
    let _worker = Proc::start("worker", &redis, FAST);
    let mut all = SseClient::connect(&api.url("/events"), None).await;
    let mut loads = SseClient::connect(&api.url("/events?kind=load"), None).await;
    assert_eq!(all.status, 200);

    let load = submit(&api, json!({"kind": "load"})).await;
    let events = all.until_final(&load, T).await;
    let mut names: Vec<&str> = events.iter().map(|e| e.event.as_str()).collect();
    // A load that runs long enough announces its progress as more `running`
    // events (at most a few a second): the states, in order, are these.
    names.dedup();
    assert_eq!(names, ["queued", "running", "done"]);
    assert!(events.iter().all(|e| e.id.is_some()));
    let last_id = events.last().unwrap().id.clone().unwrap();
    drop(all);

    // While no client listens, a plot runs (in the worker process).
    let plot = submit(
        &api,
        json!({"kind": "plot", "plot": "locus_group", "width": 200, "height": 200}),
    )
    .await;
    let records = wait_all_finished(&redis, std::slice::from_ref(&plot), T);
    assert_eq!(records[&plot]["status"], "done");

    // Resumed after the last event seen: exactly what was missed, in order.
    let mut resumed = SseClient::connect(&api.url("/events"), Some(&last_id)).await;
    let missed = resumed.until_final(&plot, T).await;
    let seen: Vec<(&str, &str)> = missed
        .iter()
        .map(|e| (e.data["id"].as_str().unwrap(), e.event.as_str()))
        .collect();
    assert_eq!(
        seen,
        [
            (plot.as_str(), "queued"),
            (plot.as_str(), "running"),
            (plot.as_str(), "done")
        ]
    );
    assert_eq!(missed[2].data["result"]["image"], format!("/image/{plot}"));

    // The kind filter saw the load and nothing of the plot.
    let only = loads.until_final(&load, T).await;
    assert!(only.iter().all(|e| e.data["kind"] == "load"));
    let other = tokio::time::timeout(Duration::from_millis(500), loads.next(T)).await;
    assert!(other.is_err(), "no plot events on ?kind=load: {other:?}");

    // Bad input is a JSON error, not an empty stream.
    let r = client()
        .get(api.url("/events?kind=pie"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = client()
        .get(api.url("/events"))
        .header("last-event-id", "yesterday")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = client()
        .get(api.url(&format!("/jobs/{}/events", uuid::Uuid::new_v4())))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "job_not_found");
}

/// `gene_api_queue_paused` as the api's `/metrics` says it.
async fn queue_paused(api: &Proc) -> Option<f64> {
    let r = client().get(api.url("/metrics")).send().await.unwrap();
    crate::helpers::metric_sample(&r.text().await.unwrap(), "gene_api_queue_paused")
}

/// `POST /jobs/pause`: a running job finishes, new ones queue up and wait
/// (none starts, on either worker), the state and the metric say paused;
/// `POST /jobs/resume` runs them. Two workers and the api, real processes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_queue_finishes_what_runs_takes_nothing_new_and_resumes() {
    let redis = RedisServer::start();
    let source = SourceServer::start(std::fs::read(SAMPLE).unwrap(), SourceMode::Fast).await;
    let settings = with(&[
        ("GENE_API__DATA__SOURCE", source.url.clone()),
        // Reads block for 3 s: the idle consumers are in a read when the
        // pause comes, and the plots below are delivered to them anyway; they
        // must hold them unrun, longer than RECLAIM_AFTER_MS (1 s), without
        // the reclaimer taking them for a dead consumer's.
        ("GENE_API__PIPELINE__BLOCK_MS", "3000".into()),
    ]);
    let api = Proc::start("api", &redis, &env(&settings));
    let _w1 = Proc::start("worker", &redis, &env(&settings));
    let _w2 = Proc::start("worker", &redis, &env(&settings));
    let r = client()
        .post(api.url("/data"))
        .header("prefer", "wait=20")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        200,
        "the first load, so that plots can be queued"
    );

    // Not a job id: these are POST routes of their own.
    for (method, path) in [("GET", "/jobs/pause"), ("DELETE", "/jobs/resume")] {
        let r = client()
            .request(method.parse().unwrap(), api.url(path))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 405, "{method} {path}");
        assert_eq!(r.headers()["allow"], "POST", "{method} {path}");
    }

    // A slow load (about 2 s) is running when the queue is paused.
    source.set(SourceMode::Slow);
    let load = submit(&api, json!({"kind": "load"})).await;
    let deadline = std::time::Instant::now() + T;
    while job(&api, &load).await["status"] != "running" {
        assert!(std::time::Instant::now() < deadline, "the load never ran");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, paused) = send(client().post(api.url("/jobs/pause"))).await;
    assert_eq!(status, 200, "{paused}");
    assert_eq!(paused["paused"], true, "{paused}");
    let since = paused["since"].as_str().unwrap().to_string();
    assert!(paused["by"].is_null(), "no keys, no name: {paused}");
    // Pausing again keeps when it was first paused.
    let (_, again) = send(client().post(api.url("/jobs/pause"))).await;
    assert_eq!(again["since"], since.as_str(), "{again}");

    // Submissions are still accepted, and wait.
    let plot = json!({"kind": "plot", "plot": "chromosome", "width": 300, "height": 200});
    let queued = [
        submit(&api, plot.clone()).await,
        submit(&api, plot.clone()).await,
        submit(&api, plot).await,
    ];
    let done = wait_all_finished(&redis, std::slice::from_ref(&load), T);
    assert_eq!(done[&load]["status"], "done", "the running job finishes");
    // Longer than a worker's block time and pause poll: a worker that was
    // blocked in its read when the pause came holds what it got, unrun.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    for id in &queued {
        let j = job(&api, id).await;
        assert_eq!(
            (j["status"].as_str(), j["attempts"].as_u64()),
            (Some("queued"), Some(0)),
            "nothing starts while paused: {j}"
        );
    }
    // Held, and kept their holder's: idle for less than RECLAIM_AFTER_MS
    // (1 s) although the pause has lasted longer, each delivered once.
    let held: redis::streams::StreamPendingCountReply = redis::cmd("XPENDING")
        .arg("gene-api:jobs:stream")
        .arg("gene-api:workers")
        .arg("-")
        .arg("+")
        .arg(100)
        .query(&mut redis.conn(0))
        .unwrap();
    assert!(
        !held.ids.is_empty(),
        "the blocked reads took some of the plots, and hold them"
    );
    for p in &held.ids {
        assert!(
            p.last_delivered_ms < 1000 && p.times_delivered == 1,
            "a held entry goes idle, or was delivered again: {p:?}"
        );
    }
    let (_, stats) = send(client().get(api.url("/jobs/stats"))).await;
    assert_eq!(stats["queue"]["paused"], true, "{stats}");
    assert_eq!(stats["queue"]["since"], since.as_str(), "{stats}");
    assert_eq!(stats["jobs"]["queued"], 3, "{stats}");
    assert_eq!(queue_paused(&api).await, Some(1.0));

    let (status, resumed) = send(client().post(api.url("/jobs/resume"))).await;
    assert_eq!(
        (status, &resumed["paused"]),
        (200, &json!(false)),
        "{resumed}"
    );
    let records = wait_all_finished(&redis, &queued, T);
    for id in &queued {
        assert_eq!(records[id]["status"], "done", "{}", records[id]);
        assert_eq!(records[id]["attempts"], 1, "run once: {}", records[id]);
    }
    let (_, stats) = send(client().get(api.url("/jobs/stats"))).await;
    assert_eq!(
        stats["queue"],
        json!({"paused": false, "since": null, "by": null})
    );
    assert_eq!(queue_paused(&api).await, Some(0.0));
    drained(&redis);
}

/// `Idempotency-Key` across two api processes: a burst of the same request
/// under one key, sent to both at once, makes one job, and every answer
/// names it; another request under that key is a 422; the key is per API
/// key, and forgotten after `http.idempotency_ttl_secs`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_idempotency_key_makes_one_job_across_two_api_processes() {
    use gene_api::auth::{generate, Scope};
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let (alice, a_line) = generate("alice", Scope::Write).unwrap();
    let (bob, b_line) = generate("bob", Scope::Write).unwrap();
    let keys = dir.path().join("keys");
    std::fs::write(&keys, format!("{a_line}\n{b_line}\n")).unwrap();
    let settings = with(&[
        ("GENE_API__AUTH__KEYS_FILE", keys.display().to_string()),
        ("GENE_API__HTTP__IDEMPOTENCY_TTL_SECS", "3".into()),
    ]);
    let apis = [
        Proc::start("api", &redis, &env(&settings)),
        Proc::start("api", &redis, &env(&settings)),
    ];
    let _worker = Proc::start("worker", &redis, &env(&settings));
    let r = client()
        .post(apis[0].url("/data"))
        .bearer_auth(&alice)
        .header("prefer", "wait=20")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let post = |api: usize, key: &'static str, token: &str, kind: &str| {
        client()
            .post(apis[api].url("/image"))
            .bearer_auth(token)
            .header("idempotency-key", key)
            .json(&json!({"kind": kind, "width": 300, "height": 200}))
            .send()
    };
    // 20 at once, half to each api process.
    let burst = (0..20).map(|i| post(i % 2, "\"burst-1\"", &alice, "chromosome"));
    let answers = futures_util::future::join_all(burst).await;
    let mut ids = std::collections::BTreeSet::new();
    let mut replayed = 0;
    for r in answers {
        let r = r.unwrap();
        assert_eq!(r.status(), 202);
        replayed += r.headers().contains_key("idempotent-replayed") as usize;
        let job: Value = r.json().await.unwrap();
        ids.insert(job["id"].as_str().unwrap().to_string());
    }
    assert_eq!(ids.len(), 1, "one job for the burst: {ids:?}");
    assert_eq!(replayed, 19, "every answer but the first is a replay");
    let id = ids.into_iter().next().unwrap();
    let plots: Vec<Value> = send(
        client()
            .get(apis[1].url("/jobs?kind=plot"))
            .bearer_auth(&alice),
    )
    .await
    .1
    .as_array()
    .unwrap()
    .clone();
    assert_eq!(plots.len(), 1, "{plots:?}");
    let done = wait_all_finished(&redis, std::slice::from_ref(&id), T);
    assert_eq!(done[&id]["attempts"], 1);

    // The same key with another request, on either process: 422, nothing queued.
    for api in 0..2 {
        let r = post(api, "burst-1", &alice, "locus_group").await.unwrap();
        assert_eq!(r.status(), 422);
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"], "idempotency_key_reused", "{body}");
        assert!(body["message"].as_str().unwrap().contains(&id), "{body}");
    }
    // The same request again once the job is done: still that job, 202.
    let r = post(1, "burst-1", &alice, "chromosome").await.unwrap();
    assert_eq!(r.status(), 202);
    let again: Value = r.json().await.unwrap();
    assert_eq!(
        (again["id"].as_str(), again["status"].as_str()),
        (Some(id.as_str()), Some("done"))
    );
    // Keys are per API key: bob's "burst-1" is his own.
    let r = post(0, "burst-1", &bob, "chromosome").await.unwrap();
    assert_eq!(r.status(), 202);
    assert!(!r.headers().contains_key("idempotent-replayed"));
    let bobs: Value = r.json().await.unwrap();
    assert_ne!(bobs["id"].as_str(), Some(id.as_str()));
    // A malformed key is refused before anything is queued.
    let r = post(0, "\"two\"words\"", &alice, "chromosome")
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // After the TTL (3 s), the key is forgotten: a new job.
    tokio::time::sleep(Duration::from_millis(3200)).await;
    let r = post(0, "burst-1", &alice, "locus_group").await.unwrap();
    assert_eq!(r.status(), 202, "the key has expired");
    let later: Value = r.json().await.unwrap();
    assert_ne!(later["id"].as_str(), Some(id.as_str()));
}

const RELEASES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/data/releases");

/// `POST /data` with `body`, waiting for the load to finish.
async fn load_done(api: &Proc, body: Value) -> Value {
    let (status, job) = send(
        client()
            .post(api.url("/data"))
            .header("prefer", "wait=30")
            .json(&body),
    )
    .await;
    assert_eq!(
        (status, job["status"].as_str()),
        (200, Some("done")),
        "{job}"
    );
    job
}

async fn live_release(api: &Proc) -> String {
    let (status, body) = send(client().get(api.url("/releases"))).await;
    assert_eq!(status, 200, "{body}");
    body["live"].as_str().unwrap().to_string()
}

fn records_stored(redis: &RedisServer) -> u64 {
    redis::cmd("HLEN")
        .arg("gene-api:records")
        .query(&mut redis.conn(0))
        .unwrap()
}

/// Follows `id`'s events until a `running` one whose progress is at `stage`.
async fn until_stage(sse: &mut SseClient, stage: &str) {
    loop {
        let e = sse.next(T).await.expect("events until the stage");
        assert!(["queued", "running"].contains(&e.event.as_str()), "{e:?}");
        if e.event == "running" && e.data["progress"]["stage"] == stage {
            return;
        }
    }
}

/// `DELETE /jobs/<id>` of a running job: 202, the job still `running`,
/// naming when it was asked; returns that time.
async fn ask_to_stop(api: &Proc, id: &str) -> String {
    let r = client()
        .delete(api.url(&format!("/jobs/{id}")))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let location = r
        .headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_string());
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        (status, body["status"].as_str()),
        (202, Some("running")),
        "{body}"
    );
    assert_eq!(location, Some(format!("/jobs/{id}")));
    body["cancel_requested_at"]
        .as_str()
        .expect("the answer says when it was asked")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_load_asked_to_stop_ends_cancelled_and_leaves_nothing_behind() {
    let redis = RedisServer::start();
    let newer = std::fs::read(format!("{RELEASES}/hgnc_complete_set_2024-07-23.json")).unwrap();
    let source = SourceServer::start(newer, SourceMode::Fast).await;
    let settings = with(&[
        ("GENE_API__DATA__SOURCE", source.url.clone()),
        ("GENE_API__DATA__WITHDRAWN", String::new()),
        (
            "GENE_API__DATA__ARCHIVE_SOURCE",
            format!("{RELEASES}/hgnc_complete_set_{{date}}.json"),
        ),
        (
            "GENE_API__DATA__ARCHIVE_WITHDRAWN",
            format!("{RELEASES}/withdrawn_{{date}}.txt"),
        ),
        // One release kept: a load's records that nothing else uses are
        // in the hash only while it runs, or if it leaves them behind.
        ("GENE_API__DATA__KEEP_RELEASES", "1".into()),
    ]);
    let api = Proc::start("api", &redis, &env(&settings));
    let worker = Proc::start("worker", &redis, &env(&settings));
    let old = load_done(&api, json!({"release": "2021-04-27"})).await;
    let r1 = old["result"]["release"].as_str().unwrap().to_string();

    // Asked to stop while it fetches: it stops at the next safe point, and
    // the live release stays.
    source.set(SourceMode::Slow);
    let (status, job) = send(client().post(api.url("/data")).json(&json!({}))).await;
    assert_eq!(status, 202, "{job}");
    let id = job["id"].as_str().unwrap().to_string();
    let mut sse = SseClient::connect(&api.url(&format!("/jobs/{id}/events")), None).await;
    until_stage(&mut sse, "fetching").await;
    let asked = ask_to_stop(&api, &id).await;
    // Asking again changes nothing.
    assert_eq!(ask_to_stop(&api, &id).await, asked);
    let events = sse.until_final(&id, T).await;
    assert!(
        events
            .iter()
            .any(|e| e.event == "running" && e.data["cancel_requested_at"] == asked.as_str()),
        "followers see the request: {events:?}"
    );
    let end = &events.last().unwrap().data;
    assert_eq!(
        (end["status"].as_str(), end["attempts"].as_u64()),
        (Some("cancelled"), Some(1)),
        "{end}"
    );
    assert_eq!(end["cancel_requested_at"], asked.as_str());
    assert!(end.get("result").is_none(), "{end}");
    assert_eq!(live_release(&api).await, r1);
    let (status, again) = send(client().delete(api.url(&format!("/jobs/{id}")))).await;
    assert_eq!((status, again["status"].as_str()), (200, Some("cancelled")));

    // Retried, it runs to the end: the request belonged to the earlier round.
    source.set(SourceMode::Fast);
    let (status, _) = send(client().post(api.url(&format!("/jobs/{id}/retry")))).await;
    assert_eq!(status, 202);
    let records = wait_all_finished(&redis, std::slice::from_ref(&id), T);
    let done = &records[&id];
    assert_eq!(done["status"], "done", "{done}");
    assert!(done.get("cancel_requested_at").is_none(), "{done}");
    let r2 = done["result"]["release"].as_str().unwrap().to_string();
    assert_ne!(r1, r2);
    assert_eq!(live_release(&api).await, r2);

    // Asked to stop while it waits for another load to finish: it stages
    // its release once it may, stops at the swap, and removes what it staged.
    let before = records_stored(&redis);
    let _: () = redis::cmd("SET")
        .arg("gene-api:data:lock")
        .arg("another load")
        .arg("PX")
        .arg(60_000)
        .query(&mut redis.conn(0))
        .unwrap();
    let (status, job) = send(
        client()
            .post(api.url("/data"))
            .json(&json!({"release": "2021-04-27"})),
    )
    .await;
    assert_eq!(status, 202, "{job}");
    let id = job["id"].as_str().unwrap().to_string();
    let mut sse = SseClient::connect(&api.url(&format!("/jobs/{id}/events")), None).await;
    until_stage(&mut sse, "waiting").await;
    ask_to_stop(&api, &id).await;
    let _: () = redis::cmd("DEL")
        .arg("gene-api:data:lock")
        .query(&mut redis.conn(0))
        .unwrap();
    let events = sse.until_final(&id, T).await;
    assert_eq!(events.last().unwrap().event, "cancelled", "{events:?}");
    assert_eq!(
        worker.log_count("stopped before the swap: removing what this load staged"),
        1,
        "it got as far as the swap"
    );
    let staged: Vec<String> = redis::cmd("KEYS")
        .arg("gene-api:staging:*")
        .query(&mut redis.conn(0))
        .unwrap();
    assert!(staged.is_empty(), "{staged:?}");
    assert_eq!(
        records_stored(&redis),
        before,
        "the 2021 records went again"
    );
    assert_eq!(live_release(&api).await, r2);
    let stop_keys: Vec<String> = redis::cmd("KEYS")
        .arg("gene-api:job-stop:*")
        .query(&mut redis.conn(0))
        .unwrap();
    assert!(
        stop_keys.is_empty(),
        "finished jobs leave no stop key: {stop_keys:?}"
    );
}
