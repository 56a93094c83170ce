//! Reads from memory: api processes answer from their own copy of a release
//! while Redis's announcements of which release is live are trusted, and
//! check Redis per request while they are not. Two processes on one Redis,
//! the two derived HGNC releases of data/releases (557 records differ), and
//! Redis's own command counts to tell a read from memory from one that asked.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gene_api::app::Mode;
use serde_json::{json, Value};

use crate::helpers::{spawn_app_with, start, test_env, TestApp};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/data/releases");
const OLD: &str = "2021-04-27";
const NEW: &str = "2024-07-23";
/// The bound docs/guarantees.md gives ("Reads from memory"): a swap reported
/// done (or DELETE /data answered) by one process is seen by a request that
/// starts later on any other within this.
const FRESH_WITHIN: Duration = Duration::from_millis(50);

fn docs(date: &str) -> HashMap<String, Value> {
    let text = std::fs::read(format!("{DIR}/hgnc_complete_set_{date}.json")).unwrap();
    let v: Value = serde_json::from_slice(&text).unwrap();
    v["response"]["docs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["hgnc_id"].as_str().unwrap().to_string(), d.clone()))
        .collect()
}

/// The two releases, and the ids whose records differ between them.
struct Pair {
    old: HashMap<String, Value>,
    new: HashMap<String, Value>,
    differing: Vec<String>,
}

impl Pair {
    fn new() -> Self {
        let (old, new) = (docs(OLD), docs(NEW));
        let mut differing: Vec<String> = old
            .iter()
            .filter(|(id, d)| new.get(*id).is_some_and(|n| n != *d))
            .map(|(id, _)| id.clone())
            .collect();
        differing.sort();
        assert!(differing.len() > 500, "the fixtures changed");
        Self {
            old,
            new,
            differing,
        }
    }

    /// Which release a record of a differing id is from.
    fn which(&self, record: &Value) -> Option<&'static str> {
        let id = record["hgnc_id"].as_str()?;
        if self.old.get(id) == Some(record) {
            Some(OLD)
        } else if self.new.get(id) == Some(record) {
            Some(NEW)
        } else {
            None
        }
    }
}

/// An app on `redis_port` with the pair's archive configured.
fn env(redis_port: u16, extra: &[(&str, &str)]) -> HashMap<String, String> {
    let source = format!("{DIR}/hgnc_complete_set_{NEW}.json");
    let mut env = test_env(redis_port, Path::new(&source));
    for (k, v) in [
        (
            "GENE_API__DATA__WITHDRAWN",
            format!("{DIR}/withdrawn_{NEW}.txt"),
        ),
        (
            "GENE_API__DATA__ARCHIVE_SOURCE",
            format!("{DIR}/hgnc_complete_set_{{date}}.json"),
        ),
        (
            "GENE_API__DATA__ARCHIVE_WITHDRAWN",
            format!("{DIR}/withdrawn_{{date}}.txt"),
        ),
        ("GENE_API__CACHE__VERIFY_MS", "200".to_string()),
    ] {
        env.insert(k.to_string(), v);
    }
    for (k, v) in extra {
        env.insert(k.to_string(), v.to_string());
    }
    env
}

async fn primary(extra: &[(&str, &str)]) -> TestApp {
    let source = format!("{DIR}/hgnc_complete_set_{NEW}.json");
    let e = env(0, extra);
    let pairs: Vec<(&str, &str)> = e
        .iter()
        .filter(|(k, _)| k.starts_with("GENE_API__DATA__") || k.starts_with("GENE_API__CACHE__"))
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    spawn_app_with(Mode::Serve, Path::new(&source), &pairs).await
}

/// POST /data with `body` on `app`, polled tightly: the instant the job is
/// seen done, and its release id.
async fn load(app: &TestApp, body: Value) -> (Instant, String) {
    let r = app
        .client
        .post(app.url("/data"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let id = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let job: Value = app.get(&format!("/jobs/{id}")).await.json().await.unwrap();
        match job["status"].as_str().unwrap() {
            "done" => {
                return (
                    Instant::now(),
                    job["result"]["release"].as_str().unwrap().to_string(),
                )
            }
            "failed" | "cancelled" => panic!("load failed: {job}"),
            _ => {}
        }
        assert!(Instant::now() < deadline, "load stuck: {job}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Calls of `command` Redis has run so far.
fn calls(app: &TestApp, command: &str) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(&mut app.redis.conn(0))
        .unwrap();
    let needle = format!("cmdstat_{command}:calls=");
    info.lines()
        .find_map(|l| l.strip_prefix(&needle))
        .map(|rest| rest.split(',').next().unwrap().parse().unwrap())
        .unwrap_or(0)
}

async fn gene<R>(app: &TestApp<R>, id: &str, query: &str) -> (u16, Option<String>, Value) {
    let r = app.get(&format!("/genes/{id}{query}")).await;
    let status = r.status().as_u16();
    let release = r
        .headers()
        .get("x-hgnc-release")
        .map(|v| v.to_str().unwrap().to_string());
    (status, release, r.json().await.unwrap())
}

/// Reads `id` on `app` until a read of it asks Redis (`redis`'s) for no
/// record: the process holds the release. Within 10 s.
async fn until_held<R>(redis: &TestApp, app: &TestApp<R>, id: &str, query: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let before = calls(redis, "hmget");
        assert_eq!(gene(app, id, query).await.0, 200);
        if calls(redis, "hmget") == before {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{id}{query} never read from memory"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Reads `id` on `app` from `from` on until it is `want`'s record. The
/// staleness: how long after `from` the last read that still got the old
/// record *started* (zero when the first read got the new one). A read's
/// own time does not count: the bound is on what a request that starts
/// later sees.
async fn stale_for<R>(
    pair: &Pair,
    app: &TestApp<R>,
    id: &str,
    want: &str,
    from: Instant,
) -> Duration {
    let mut stale = Duration::ZERO;
    loop {
        let started = from.elapsed();
        let (status, release, body) = gene(app, id, "").await;
        assert_eq!(status, 200, "{body}");
        assert!(release.is_some(), "no release header");
        let which = pair.which(&body).expect("a record of neither release");
        if which == want {
            return stale;
        }
        stale = started;
        assert!(
            from.elapsed() < Duration::from_secs(5),
            "{id} still of the old release 5 s after the load was done"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_come_from_memory_and_a_swap_reaches_the_other_process_within_milliseconds() {
    let pair = Pair::new();
    let a = primary(&[]).await;
    let (_, old_id) = load(&a, json!({"release": OLD})).await;
    let b = start((), Mode::Api, env(a.redis.port, &[])).await;
    let off = start(
        (),
        Mode::Api,
        env(a.redis.port, &[("GENE_API__CACHE__RECORDS", "false")]),
    )
    .await;
    // `b` and `off` share a's Redis: the counts are a's.
    let ask = |app: &TestApp<()>, path: String| {
        let c = app.client.clone();
        let url = app.url(&path);
        async move { c.get(url).send().await.unwrap() }
    };
    let id = &pair.differing[0];
    let symbol = pair.old[id]["symbol"].as_str().unwrap().to_string();

    // Warm: then every kind of read on `b` asks Redis for nothing.
    until_held(&a, &b, id, "").await;
    until_held(&a, &b, id, &format!("?release={old_id}")).await;
    // The GETs Redis runs with nobody reading: the processes' checks
    // (every 200 ms) and a's own work. Reads must add none.
    let idle_from = (calls(&a, "get"), calls(&a, "evalsha"), Instant::now());
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let idle_secs = idle_from.2.elapsed().as_secs_f64();
    let idle_rate = (calls(&a, "get") - idle_from.0) as f64 / idle_secs;
    let idle_scripts = (calls(&a, "evalsha") - idle_from.1) as f64 / idle_secs;
    let (hmget, zscore, get) = (calls(&a, "hmget"), calls(&a, "zscore"), calls(&a, "get"));
    let reading = Instant::now();
    let reads = 40;
    for n in 0..reads {
        let other = &pair.differing[n % pair.differing.len()];
        for path in [
            format!("/genes/{other}"),
            format!("/genes/symbol/{symbol}"),
            format!("/search?q={symbol}"),
            "/genes?limit=50".to_string(),
            "/data?limit=20&fields=symbol".to_string(),
            format!("/genes/{other}?release={old_id}"),
        ] {
            let r = ask(&b, path.clone()).await;
            assert_eq!(r.status(), 200, "{path}");
            assert_eq!(
                r.headers()["x-hgnc-release"].to_str().unwrap(),
                old_id,
                "{path}"
            );
        }
        let whole = ask(&b, "/data".to_string()).await;
        assert_eq!(whole.status(), 200);
        let all: Vec<Value> = whole.json().await.unwrap();
        assert_eq!(all.len(), pair.old.len());
    }
    assert_eq!(
        calls(&a, "hmget"),
        hmget,
        "a read from memory asked Redis for records"
    );
    assert_eq!(
        calls(&a, "zscore"),
        zscore,
        "a pinned read asked Redis whether its release is kept"
    );
    let secs = reading.elapsed().as_secs_f64();
    let gets = calls(&a, "get") - get;
    assert!(
        (gets as f64) <= idle_rate * secs * 2.0 + 5.0,
        "{gets} GETs during {} reads (idle: {idle_rate:.1}/s)",
        reads * 7
    );
    // GET /genes read the ids with a script: from memory, it runs none.
    let (scripts, listing) = (calls(&a, "evalsha"), Instant::now());
    let lists = 300;
    for _ in 0..lists {
        let r = ask(&b, "/genes".to_string()).await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.json::<Vec<String>>().await.unwrap().len(), pair.old.len());
    }
    let ran = calls(&a, "evalsha") - scripts;
    assert!(
        (ran as f64) <= idle_scripts * listing.elapsed().as_secs_f64() * 2.0 + 5.0,
        "{ran} scripts during {lists} GET /genes (idle: {idle_scripts:.1}/s)"
    );

    // The switch: the same read with CACHE__RECORDS=false asks every time.
    let before = calls(&a, "hmget");
    for _ in 0..20 {
        assert_eq!(ask(&off, format!("/genes/{id}")).await.status(), 200);
    }
    assert!(
        calls(&a, "hmget") - before >= 20,
        "CACHE__RECORDS=false still reads from memory"
    );

    // Freshness: a load reported done by `a` is on `b` within the bound.
    let mut worst = Duration::ZERO;
    for (body, want) in [
        (json!({}), NEW),
        (json!({"release": OLD}), OLD),
        (json!({}), NEW),
        (json!({"release": OLD}), OLD),
    ] {
        let (done, _) = load(&a, body).await;
        let late = stale_for(&pair, &b, id, want, done).await;
        worst = worst.max(late);
    }
    eprintln!(
        "memory: worst time from `done` on one process to the new release on another: {worst:?}"
    );
    assert!(worst <= FRESH_WITHIN, "the other process lagged {worst:?}");
}

/// Kills every pub/sub connection (the announcements' subscriptions).
fn kill_subscriptions(app: &TestApp) -> u64 {
    redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("pubsub")
        .query(&mut app.redis.conn(0))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_the_announcements_are_lost_reads_check_redis_and_stay_right() {
    let pair = Pair::new();
    let a = primary(&[]).await;
    load(&a, json!({"release": OLD})).await;
    let b = start((), Mode::Api, env(a.redis.port, &[])).await;
    let id = &pair.differing[1];
    until_held(&a, &b, id, "").await;

    // Lost, and known lost: b is between subscriptions (it waits 100 ms
    // before the next), so a DELETE now is not announced to it. It must
    // answer from Redis, not from its copy.
    assert!(kill_subscriptions(&a) >= 1, "b had no subscription to kill");
    tokio::time::sleep(Duration::from_millis(20)).await;
    let r = a.delete("/data").await;
    assert_eq!(r.status(), 200);
    let (status, _, body) = gene(&b, id, "").await;
    assert_eq!(
        status, 404,
        "b answered from its copy after DELETE /data: {body}"
    );
    assert_eq!(body["error"], "no_data");

    // Lost again and again while releases are swapped: never stale past
    // the bound (a message lost in the instant before b sees its connection
    // close is caught by the next loss, or by the check every 200 ms).
    let stop = Arc::new(AtomicBool::new(false));
    let killed = Arc::new(AtomicUsize::new(0));
    let killer = {
        let (stop, killed) = (stop.clone(), killed.clone());
        let port = a.redis.port;
        tokio::task::spawn_blocking(move || {
            let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).unwrap();
            let mut conn = client.get_connection().unwrap();
            while !stop.load(Ordering::Relaxed) {
                let n: u64 = redis::cmd("CLIENT")
                    .arg("KILL")
                    .arg("TYPE")
                    .arg("pubsub")
                    .query(&mut conn)
                    .unwrap();
                killed.fetch_add(n as usize, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(30));
            }
        })
    };
    let mut worst = Duration::ZERO;
    // Three swaps at least, and on until the subscriptions were lost three
    // times while swapping (a fast machine swaps three times in a few kills).
    let mut swaps = 0;
    while swaps < 3 || (killed.load(Ordering::Relaxed) < 3 && swaps < 40) {
        let (body, want) = if swaps % 2 == 0 {
            (json!({}), NEW)
        } else {
            (json!({"release": OLD}), OLD)
        };
        let (done, _) = load(&a, body).await;
        worst = worst.max(stale_for(&pair, &b, id, want, done).await);
        swaps += 1;
    }
    stop.store(true, Ordering::Relaxed);
    killer.await.unwrap();
    assert!(
        killed.load(Ordering::Relaxed) >= 3,
        "the subscriptions were not lost"
    );
    eprintln!("memory: worst staleness with the subscription lost every 30 ms: {worst:?}");
    assert!(
        worst <= FRESH_WITHIN,
        "b lagged {worst:?} while its subscription was lost"
    );

    // Back to memory once it is subscribed again.
    until_held(&a, &b, id, "").await;
}

/// Every record of a differing id in `records`, by release; panics on a
/// record of neither.
fn releases_of(pair: &Pair, records: &[Value]) -> Vec<&'static str> {
    records
        .iter()
        .filter(|r| {
            pair.differing
                .binary_search(&r["hgnc_id"].as_str().unwrap().to_string())
                .is_ok()
        })
        .map(|r| {
            pair.which(r)
                .unwrap_or_else(|| panic!("a record of neither release: {r}"))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loads_and_deletes_racing_reads_never_mix_releases_and_a_pinned_one_stays_put() {
    let pair = Arc::new(Pair::new());
    let a = Arc::new(primary(&[]).await);
    let (_, old_id) = load(&a, json!({"release": OLD})).await;
    let (_, new_id) = load(&a, json!({})).await;
    let b = Arc::new(start((), Mode::Api, env(a.redis.port, &[])).await);
    let stop = Arc::new(AtomicBool::new(false));

    // Readers on both processes: whole releases (GET /data), pages, single
    // genes, and reads pinned to the old release.
    let mut readers = Vec::new();
    for (n, base) in [a.addr.clone(), b.addr.clone(), b.addr.clone()]
        .into_iter()
        .enumerate()
    {
        let (pair, stop, old_id, new_id) =
            (pair.clone(), stop.clone(), old_id.clone(), new_id.clone());
        let client = reqwest::Client::new();
        readers.push(tokio::spawn(async move {
            let mut seen: HashMap<String, usize> = HashMap::new();
            let mut round = 0usize;
            while !stop.load(Ordering::Relaxed) {
                round += 1;
                let pinned = n == 2 && round.is_multiple_of(2);
                let path = match (pinned, round % 3) {
                    (true, _) => format!("/data?release={old_id}"),
                    (false, 0) => "/data".to_string(),
                    (false, 1) => "/data?limit=400&offset=100".to_string(),
                    (false, _) => {
                        format!("/genes/{}", pair.differing[round % pair.differing.len()])
                    }
                };
                let r = client.get(format!("{base}{path}")).send().await.unwrap();
                let status = r.status().as_u16();
                let header = r
                    .headers()
                    .get("x-hgnc-release")
                    .map(|v| v.to_str().unwrap().to_string());
                let body: Value = r.json().await.unwrap();
                if status == 404 || (pinned && status == 410) {
                    // Between a DELETE and the next load; a pinned read
                    // finds its release not kept then (never while naming
                    // it among the kept).
                    if pinned {
                        assert!(
                            !body["kept"]
                                .as_array()
                                .is_some_and(|k| k.contains(&json!(old_id))),
                            "{path}: {body}"
                        );
                    } else {
                        assert_eq!(body["error"], "no_data", "{path}: {body}");
                    }
                    *seen.entry("none".into()).or_default() += 1;
                    continue;
                }
                assert_eq!(status, 200, "{path}: {body}");
                let records = match &body {
                    Value::Array(v) => v.clone(),
                    one => vec![one.clone()],
                };
                let of = releases_of(&pair, &records);
                let header = header.expect("no release header");
                let want = if header == old_id {
                    OLD
                } else {
                    assert_eq!(header, new_id, "{path}");
                    NEW
                };
                assert!(
                    of.iter().all(|w| *w == want),
                    "{path}: release {header} answered with records of both releases"
                );
                if pinned {
                    assert_eq!(
                        want, OLD,
                        "a read pinned to the old release got the new one"
                    );
                    assert_eq!(records.len(), pair.old.len());
                }
                *seen.entry(want.into()).or_default() += 1;
            }
            seen
        }));
    }

    // Swaps under them: each release live in turn, and a DELETE between.
    for round in 0..3 {
        load(&a, json!({"release": OLD})).await;
        tokio::time::sleep(Duration::from_millis(60)).await;
        load(&a, json!({})).await;
        tokio::time::sleep(Duration::from_millis(60)).await;
        if round == 1 {
            assert_eq!(a.delete("/data").await.status(), 200);
            tokio::time::sleep(Duration::from_millis(60)).await;
            load(&a, json!({"release": OLD})).await;
            load(&a, json!({})).await;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let mut total: HashMap<String, usize> = HashMap::new();
    for r in readers {
        for (k, v) in r.await.unwrap() {
            *total.entry(k).or_default() += v;
        }
    }
    eprintln!("memory: answers by release while racing: {total:?}");
    assert!(
        total.get(OLD).copied().unwrap_or(0) > 0 && total.get(NEW).copied().unwrap_or(0) > 0,
        "{total:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_nobody_reads_leaves_memory_and_the_live_one_stays() {
    let pair = Pair::new();
    let a = primary(&[]).await;
    let (_, old_id) = load(&a, json!({"release": OLD})).await;
    load(&a, json!({})).await;
    let b = start(
        (),
        Mode::Api,
        env(a.redis.port, &[("GENE_API__CACHE__IDLE_SECS", "1")]),
    )
    .await;
    let id = &pair.differing[2];
    let pinned = format!("?release={old_id}");
    until_held(&a, &b, id, &pinned).await;
    until_held(&a, &b, id, "").await;
    // The live one is read on; the old one is not, for over a second.
    let until = Instant::now() + Duration::from_millis(1800);
    while Instant::now() < until {
        assert_eq!(gene(&b, id, "").await.0, 200);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let before = calls(&a, "hmget");
    assert_eq!(gene(&b, id, "").await.0, 200);
    assert_eq!(calls(&a, "hmget"), before, "the live release left memory");
    let (status, release, body) = gene(&b, id, &pinned).await;
    assert_eq!(status, 200);
    assert_eq!(release.as_deref(), Some(old_id.as_str()));
    assert_eq!(pair.which(&body), Some(OLD));
    assert!(
        calls(&a, "hmget") > before,
        "the old release was still in memory after 1 s idle"
    );
}
