//! Scheduled loads (`GENE_API__DATA__REFRESH`) across processes: one load
//! per tick however many replicas look, a replica killed while ticking, a
//! bad expression at start-up, and `GET /schedules`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::helpers::{RedisServer, SAMPLE};
use crate::procs::*;

/// HGNC's withdrawn.txt of the shipped 2024 pair, read by every scheduled load.
const WITHDRAWN: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/data/releases/withdrawn_2024-07-23.txt"
);

const EVERY_SECOND: &[(&str, &str)] = &[
    ("GENE_API__DATA__REFRESH", "* * * * * *"),
    ("GENE_API__DATA__WITHDRAWN", WITHDRAWN),
];

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn ms_of(rfc3339: &str) -> u64 {
    humantime::parse_rfc3339(rfc3339)
        .unwrap()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// The scheduled load jobs in Redis, by the second (the tick) they were
/// created in, each checked to be the load the settings describe.
fn scheduled_loads_by_tick(redis: &RedisServer) -> BTreeMap<u64, Vec<Value>> {
    let mut by_tick: BTreeMap<u64, Vec<Value>> = BTreeMap::new();
    for job in job_records(redis).into_values() {
        assert_eq!(job["kind"], "load", "only scheduled loads run here: {job}");
        let params = &job["params"];
        assert_eq!(params["trigger"], "schedule", "{job}");
        assert_eq!(params["source"], SAMPLE, "{job}");
        assert_eq!(params["withdrawn"], WITHDRAWN, "{job}");
        let second = ms_of(job["created_at"].as_str().unwrap()) / 1000;
        by_tick.entry(second).or_default().push(job);
    }
    by_tick
}

/// Every tick has exactly one load.
fn assert_one_load_per_tick(by_tick: &BTreeMap<u64, Vec<Value>>) {
    for (tick, jobs) in by_tick {
        let ids: Vec<&str> = jobs.iter().map(|j| j["id"].as_str().unwrap()).collect();
        assert_eq!(ids.len(), 1, "tick {tick}: {} loads: {ids:?}", ids.len());
    }
}

/// Ticks keep coming from `from_s` on: at least every other second of
/// the time since had its load, and one of the last two seconds did.
fn assert_ticks_keep_coming(by_tick: &BTreeMap<u64, Vec<Value>>, from_s: u64, to_s: u64) {
    let seconds = to_s - from_s;
    let ticks: Vec<u64> = by_tick.range(from_s..=to_s).map(|(t, _)| *t).collect();
    assert!(
        ticks.len() as u64 * 2 >= seconds,
        "{} ticks in {seconds} s: {ticks:?}",
        ticks.len()
    );
    assert!(
        ticks.last().is_some_and(|t| *t + 2 >= to_s),
        "no tick in the last seconds before {to_s}: {ticks:?}"
    );
}

/// Each process logged the loads it queued: together, every load once.
fn assert_each_load_queued_by_one_process(procs: &[&Proc], loads: usize) {
    // The log lines come through pipes read by threads: give the last a moment.
    let deadline = Instant::now() + Duration::from_secs(5);
    let count = || -> usize {
        procs
            .iter()
            .map(|p| p.log_count("scheduled load queued"))
            .sum()
    };
    while count() < loads && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let per_process: Vec<usize> = procs
        .iter()
        .map(|p| p.log_count("scheduled load queued"))
        .collect();
    assert_eq!(
        per_process.iter().sum::<usize>(),
        loads,
        "loads queued per process: {per_process:?}"
    );
    eprintln!("scheduled loads queued per process: {per_process:?}");
}

/// The refresh hash's tick, outcome and job id.
fn last_claim(redis: &RedisServer) -> (u64, String, String) {
    let (tick, outcome, job): (String, String, String) = redis::cmd("HMGET")
        .arg("gene-api:schedule:refresh")
        .arg(&["tick", "outcome", "job_id"])
        .query(&mut redis.conn(0))
        .unwrap();
    (tick.parse().unwrap(), outcome, job)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_apis_and_a_worker_queue_one_load_per_tick() {
    let redis = RedisServer::start();
    let a = Proc::start("api", &redis, EVERY_SECOND);
    let b = Proc::start("api", &redis, EVERY_SECOND);
    let w = Proc::start("worker", &redis, EVERY_SECOND);
    let from_s = now_ms() / 1000;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let to_s = now_ms() / 1000;

    let (tick, outcome, job_id) = last_claim(&redis);
    let by_tick = scheduled_loads_by_tick(&redis);
    assert_one_load_per_tick(&by_tick);
    assert_ticks_keep_coming(&by_tick, from_s, to_s);
    // The hash names the last claimed tick and its job, among the records.
    assert_eq!(outcome, "queued");
    assert!(tick.is_multiple_of(1000), "a tick is a whole second");
    assert_eq!(
        by_tick[&(tick / 1000)][0]["id"],
        job_id,
        "the hash's job is its tick's load"
    );
    let loads = by_tick.values().map(Vec::len).sum::<usize>();
    assert_each_load_queued_by_one_process(&[&a, &b, &w], loads);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_while_ticking_leaves_every_later_tick_one_load() {
    let redis = RedisServer::start();
    let mut a = Proc::start("api", &redis, EVERY_SECOND);
    let b = Proc::start("api", &redis, EVERY_SECOND);
    let w = Proc::start("worker", &redis, EVERY_SECOND);
    tokio::time::sleep(Duration::from_millis(2_000)).await;
    assert!(
        !scheduled_loads_by_tick(&redis).is_empty(),
        "no tick before the kill"
    );
    // Killed just after a tick, while the replicas race for it.
    let past_second = now_ms() % 1000;
    tokio::time::sleep(Duration::from_millis(1000 - past_second + 2)).await;
    a.signal("-KILL");
    let killed_s = now_ms() / 1000;
    a.wait_exit(Duration::from_secs(5));
    tokio::time::sleep(Duration::from_secs(4)).await;
    let to_s = now_ms() / 1000;

    let by_tick = scheduled_loads_by_tick(&redis);
    assert_one_load_per_tick(&by_tick);
    assert_ticks_keep_coming(&by_tick, killed_s, to_s);
    let loads = by_tick.values().map(Vec::len).sum::<usize>();
    assert_each_load_queued_by_one_process(&[&a, &b, &w], loads);
}

#[test]
fn a_bad_cron_expression_stops_start_up_naming_the_setting() {
    // The settings are checked before Redis is asked anything: none is needed.
    for expr in ["61 * * * *", "every day"] {
        let out = std::process::Command::new(BIN)
            .arg("api")
            .env_clear()
            .env("REDIS_IP", "127.0.0.1")
            .env("GENE_API__HTTP__HOST", "127.0.0.1")
            .env("GENE_API__HTTP__PORT", "0")
            .env("GENE_API__DATA__REFRESH", expr)
            .output()
            .expect("run gene-api");
        let log = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "started with {expr:?}: {log}");
        assert!(log.contains("GENE_API__DATA__REFRESH"), "{log}");
        assert!(log.contains(&format!("{expr:?}")), "{log}");
        assert!(!log.contains("panicked"), "{log}");
    }
}

async fn get_schedules(p: &Proc) -> Vec<Value> {
    let r = reqwest::get(p.url("/schedules")).await.unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_schedules_shows_the_next_run_and_the_last_load() {
    let redis = RedisServer::start();
    let api = Proc::start("api", &redis, EVERY_SECOND);
    let _worker = Proc::start("worker", &redis, EVERY_SECOND);
    let deadline = Instant::now() + Duration::from_secs(10);
    let (schedule, asked_ms) = loop {
        let asked_ms = now_ms();
        let mut all = get_schedules(&api).await;
        assert_eq!(all.len(), 1, "{all:?}");
        let s = all.remove(0);
        if !s["last"].is_null() {
            break (s, asked_ms);
        }
        assert!(Instant::now() < deadline, "no tick claimed: {s}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(schedule["name"], "refresh");
    assert_eq!(schedule["cron"], "* * * * * *");
    assert_eq!(schedule["timezone"], "UTC");
    assert_eq!(schedule["source"], SAMPLE);
    let next = ms_of(schedule["next_run"].as_str().unwrap());
    assert!(next > asked_ms, "next_run {next} is not after {asked_ms}");
    assert!(
        next <= now_ms() + 1000,
        "every second, the next run is within a second"
    );
    let last = &schedule["last"];
    let tick = ms_of(last["tick"].as_str().unwrap());
    assert!(tick <= now_ms() && tick.is_multiple_of(1000), "{last}");
    assert_eq!(last["outcome"], "queued");
    let job = &last["job"];
    assert_eq!(job["id"], last["job_id"]);
    assert_eq!(job["kind"], "load");
    assert_eq!(job["params"]["trigger"], "schedule");
    assert_eq!(job["params"]["withdrawn"], WITHDRAWN);
    assert!(job["status"].is_string(), "{job}");
    assert_eq!(
        ms_of(job["created_at"].as_str().unwrap()) / 1000,
        tick / 1000
    );
    // The same job as GET /jobs/<id> shows it.
    let url = api.url(&format!("/jobs/{}", last["job_id"].as_str().unwrap()));
    let r: Value = reqwest::get(url).await.unwrap().json().await.unwrap();
    assert_eq!(r["id"], job["id"]);
    assert_eq!(r["params"], job["params"]);

    // A process with the schedule off has none, whatever Redis holds.
    let off = Proc::start("api", &redis, &[]);
    assert_eq!(get_schedules(&off).await, Vec::<Value>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tick_that_finds_the_queue_full_is_recorded_busy_and_queues_nothing() {
    let redis = RedisServer::start();
    // No worker: the first tick's load stays queued and fills the queue.
    let mut env = EVERY_SECOND.to_vec();
    env.push(("GENE_API__LIMITS__MAX_BACKLOG", "1"));
    let api = Proc::start("api", &redis, &env);
    let deadline = Instant::now() + Duration::from_secs(10);
    let last = loop {
        let s = get_schedules(&api).await.remove(0);
        if s["last"]["outcome"] == "busy" {
            break s["last"].clone();
        }
        assert!(Instant::now() < deadline, "no tick was refused: {s}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(last["job_id"].is_null() && last["job"].is_null(), "{last}");
    let message = last["message"].as_str().unwrap();
    assert!(
        message.contains("full") && message.contains("limit 1"),
        "{message}"
    );
    let by_tick = scheduled_loads_by_tick(&redis);
    assert_eq!(by_tick.len(), 1, "only the first tick queued a load");
    let (first, _) = by_tick.first_key_value().unwrap();
    assert!(ms_of(last["tick"].as_str().unwrap()) / 1000 > *first);
    // Logged too (the line comes through a pipe: give it a moment).
    let deadline = Instant::now() + Duration::from_secs(5);
    while api.log_count("the job queue is full: no scheduled load") == 0 {
        assert!(Instant::now() < deadline, "the refusal was not logged");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
