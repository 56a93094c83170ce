//! Releases across processes: two api replicas and a worker on one Redis
//! see one release history, answer pinned reads alike, and agree on a diff;
//! a scheduled tick that finds the source unchanged swaps nothing.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::helpers::RedisServer;
use crate::procs::*;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/data/releases");

fn env() -> Vec<(&'static str, String)> {
    vec![
        (
            "GENE_API__DATA__SOURCE",
            format!("{DIR}/hgnc_complete_set_2024-07-23.json"),
        ),
        (
            "GENE_API__DATA__WITHDRAWN",
            format!("{DIR}/withdrawn_2024-07-23.txt"),
        ),
        (
            "GENE_API__DATA__ARCHIVE_SOURCE",
            format!("{DIR}/hgnc_complete_set_{{date}}.json"),
        ),
        (
            "GENE_API__DATA__ARCHIVE_WITHDRAWN",
            format!("{DIR}/withdrawn_{{date}}.txt"),
        ),
    ]
}

fn start(mode: &str, redis: &RedisServer, extra: &[(&'static str, String)]) -> Proc {
    let mut all = env();
    all.extend(extra.iter().cloned());
    let refs: Vec<(&str, &str)> = all.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Proc::start(mode, redis, &refs)
}

async fn load(api: &Proc, body: Value) -> Value {
    let r = reqwest::Client::new()
        .post(api.url("/data"))
        .header("Prefer", "wait=30")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "load did not finish");
    r.json().await.unwrap()
}

async fn get(api: &Proc, path: &str) -> (u16, Value, Option<String>) {
    let r = reqwest::get(api.url(path)).await.unwrap();
    let release = r
        .headers()
        .get("x-hgnc-release")
        .map(|v| v.to_str().unwrap().to_string());
    (r.status().as_u16(), r.json().await.unwrap(), release)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_api_replicas_see_one_release_history() {
    let redis = RedisServer::start();
    let a = start("api", &redis, &[]);
    let b = start("api", &redis, &[]);
    let _w = start("worker", &redis, &[]);
    let old = load(&a, json!({"release": "2021-04-27"})).await;
    let r1 = old["result"]["release"].as_str().unwrap().to_string();
    // b reads the first release before the second lands: it holds that copy.
    let (status, _, seen) = get(&b, "/genes/HGNC:4463").await;
    assert_eq!((status, seen.as_deref()), (200, Some(r1.as_str())));
    let new = load(&b, json!({})).await;
    let r2 = new["result"]["release"].as_str().unwrap().to_string();
    assert_ne!(r1, r2);

    let (_, la, _) = get(&a, "/releases").await;
    let (_, lb, _) = get(&b, "/releases").await;
    assert_eq!(la, lb);
    assert_eq!(la["live"], r2.as_str());
    for path in [
        "/genes/HGNC:4463".to_string(),
        format!("/genes/HGNC:4463?release={r1}"),
        format!("/genes/symbol/GPR1?release={r1}"),
        "/genes/symbol/GPR1".to_string(),
        "/genes/HGNC:6".to_string(),
        format!("/releases/{r1}/diff/{r2}?kind=renamed&limit=5"),
        "/genes/symbol/GPR1/history".to_string(),
    ] {
        let (sa, va, ha) = get(&a, &path).await;
        let (sb, vb, hb) = get(&b, &path).await;
        assert_eq!((sa, &va, &ha), (sb, &vb, &hb), "{path}");
    }
    // b, which last read r1 as live, now answers from r2 unasked.
    let (_, v, h) = get(&b, "/genes/HGNC:4463").await;
    assert_eq!(h.as_deref(), Some(r2.as_str()));
    assert_ne!(v["symbol"], "GPR1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_ticks_on_an_unchanged_source_swap_nothing() {
    let redis = RedisServer::start();
    let every_second = [("GENE_API__DATA__REFRESH", "* * * * * *".to_string())];
    let a = start("serve", &redis, &every_second);
    let _b = start("serve", &redis, &every_second);
    let deadline = Instant::now() + Duration::from_secs(20);
    let jobs = loop {
        let (_, page, _) = get(&a, "/jobs?kind=load&limit=100").await;
        let done: Vec<Value> = page
            .as_array()
            .unwrap()
            .iter()
            .filter(|j| j["status"] == "done")
            .cloned()
            .collect();
        if done.len() >= 3 {
            break done;
        }
        assert!(
            Instant::now() < deadline,
            "scheduled loads did not run: {page}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(jobs.iter().all(|j| j["params"]["trigger"] == "schedule"));
    let changed: Vec<&Value> = jobs
        .iter()
        .filter(|j| j["result"]["unchanged"] == false)
        .collect();
    assert_eq!(changed.len(), 1, "only the first tick swaps: {jobs:?}");
    let (_, list, _) = get(&a, "/releases").await;
    assert_eq!(list["releases"].as_array().unwrap().len(), 1);
}
