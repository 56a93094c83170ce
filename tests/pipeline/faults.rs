use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::RedisServer;
use crate::procs::*;

const FAST: &[(&str, &str)] = &[
    ("GENE_API__PIPELINE__RECLAIM_AFTER_MS", "1000"),
    ("GENE_API__PIPELINE__RECLAIM_INTERVAL_MS", "200"),
    ("GENE_API__WORKERS__CONCURRENCY", "2"),
];

fn finished_ms(job: &Value) -> u128 {
    let t = job["finished_at"].as_str().unwrap();
    humantime::parse_rfc3339(t)
        .unwrap()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_a_busy_worker_loses_no_job() {
    let redis = RedisServer::start();
    let api = Proc::start("api", &redis, FAST);
    let w1 = Proc::start("worker", &redis, FAST);
    let mut w2 = Proc::start("worker", &redis, FAST);
    load(&api).await;

    let ids = submit_plots(&api, 300, 400).await;
    // Catch w2 holding at least one entry (delivered, not acknowledged): freeze
    // it, look, and kill it only if it does; otherwise let it go on and retry.
    let victim = format!("-{}-worker-", w2.pid());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        assert!(Instant::now() < deadline, "victim never held a job");
        w2.signal("-STOP");
        let held = pending_by_consumer(&redis)
            .iter()
            .filter(|(c, _)| c.contains(&victim))
            .map(|(_, n)| *n)
            .sum::<u64>();
        if held > 0 {
            break;
        }
        w2.signal("-CONT");
        std::thread::sleep(Duration::from_millis(3));
    }
    w2.signal("-KILL");
    let killed_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    w2.wait_exit(Duration::from_secs(5));

    let records = wait_all_finished(&redis, &ids, Duration::from_secs(120));
    let statuses: Vec<&str> = ids
        .iter()
        .map(|i| records[i]["status"].as_str().unwrap())
        .collect();
    assert!(statuses.iter().all(|s| *s == "done"), "{statuses:?}");
    let reclaimed: Vec<&Value> = ids
        .iter()
        .map(|i| &records[i])
        .filter(|j| j["attempts"].as_u64().unwrap() >= 2)
        .collect();
    assert!(!reclaimed.is_empty(), "the victim's job was not run again");
    let last = reclaimed.iter().map(|j| finished_ms(j)).max().unwrap();
    eprintln!(
        "kill -9 -> {} reclaimed job(s) done in {} ms (reclaim_after 1000 ms)",
        reclaimed.len(),
        last.saturating_sub(killed_at)
    );
    assert!(
        pending_by_consumer(&redis).values().all(|n| *n == 0),
        "entries left pending"
    );
    drop(w1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_job_is_dead_lettered_after_max_attempts() {
    let redis = RedisServer::start();
    let api = Proc::start("api", &redis, FAST);
    let r = reqwest::Client::new()
        .post(api.url("/data"))
        .send()
        .await
        .unwrap();
    let job: Value = r.json().await.unwrap();
    let id = job["id"].as_str().unwrap().to_string();

    // Three consumers take the entry and die before finishing it (as a job that
    // crashes its worker every time would): one read and two claims.
    let entry_id = abandon_next_entry(&redis);
    let mut conn = redis.conn(0);

    // A real worker now finds it idle, claims it a 4th time, and gives up on it.
    let _worker = Proc::start("worker", &redis, FAST);
    let records = wait_all_finished(&redis, std::slice::from_ref(&id), Duration::from_secs(20));
    let job = &records[&id];
    assert_eq!(job["status"], "failed");
    let err = job["error"].as_str().unwrap();
    assert!(
        err.contains("gave up after 3 attempts") && err.contains("dead-letter"),
        "{err}"
    );

    let dead: Vec<(String, Vec<String>)> = redis::cmd("XRANGE")
        .arg("gene-api:jobs:dead")
        .arg("-")
        .arg("+")
        .query(&mut conn)
        .unwrap();
    assert_eq!(dead.len(), 1);
    let fields = &dead[0].1;
    let field = |name: &str| {
        fields
            .iter()
            .position(|f| f == name)
            .map(|i| fields[i + 1].clone())
    };
    assert_eq!(field("entry").as_deref(), Some(entry_id.as_str()));
    assert_eq!(field("orig_job").as_deref(), Some(id.as_str()));
    assert_eq!(field("deliveries").as_deref(), Some("4"));
    assert!(pending_by_consumer(&redis).values().all(|n| *n == 0));
    // And the data was never loaded by it.
    let loaded: bool = redis::cmd("EXISTS")
        .arg("gene-api:data:current")
        .query(&mut conn)
        .unwrap();
    assert!(!loaded);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_work_exits_0_in_the_grace_period_and_loses_nothing() {
    let redis = RedisServer::start();
    let grace = [("GENE_API__SHUTDOWN__GRACE_SECS", "5")];
    let env: Vec<(&str, &str)> = FAST.iter().chain(grace.iter()).copied().collect();
    let mut serve = Proc::start("serve", &redis, &env);
    load(&serve).await;
    let ids = submit_plots(&serve, 150, 1200).await;
    // Let it get going, then stop it while jobs are in hand.
    let deadline = Instant::now() + Duration::from_secs(30);
    while pending_by_consumer(&redis).values().sum::<u64>() == 0 {
        assert!(Instant::now() < deadline, "never busy");
        std::thread::sleep(Duration::from_millis(2));
    }
    serve.signal("-TERM");
    let (status, took) = serve.wait_exit(Duration::from_secs(15));
    assert!(status.success(), "exit status {status} after {took:?}");
    assert!(took < Duration::from_secs(5 + 2), "took {took:?}");
    let done_before = job_records(&redis)
        .values()
        .filter(|j| j["status"] == "done")
        .count();
    assert!(done_before < ids.len(), "the test should stop it mid-work");
    eprintln!(
        "SIGTERM: exited in {took:?} with {done_before} of {} jobs done",
        ids.len()
    );

    // Another worker finishes the rest: nothing was lost.
    let _w = Proc::start("worker", &redis, FAST);
    let records = wait_all_finished(&redis, &ids, Duration::from_secs(120));
    assert!(ids.iter().all(|i| records[i]["status"] == "done"));
    assert!(pending_by_consumer(&redis).values().all(|n| *n == 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_crash_and_restart_with_its_data_mid_run_loses_nothing() {
    let mut redis = RedisServer::start();
    // Restart with persistence so the crash below keeps every write.
    redis.kill();
    assert!(redis.spawn(true));
    let api = Proc::start("api", &redis, FAST);
    let _w1 = Proc::start("worker", &redis, FAST);
    let _w2 = Proc::start("worker", &redis, FAST);
    load(&api).await;
    let ids = submit_plots(&api, 120, 1000).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while pending_by_consumer(&redis).values().sum::<u64>() == 0 {
        assert!(Instant::now() < deadline, "never busy");
        std::thread::sleep(Duration::from_millis(2));
    }
    redis.kill();
    // While it is down the API says so, in JSON.
    let r = reqwest::Client::new()
        .get(api.url("/ready"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    std::thread::sleep(Duration::from_secs(2));
    assert!(redis.spawn(true), "redis restart");

    let records = wait_all_finished(&redis, &ids, Duration::from_secs(120));
    let not_done: Vec<&Value> = ids
        .iter()
        .map(|i| &records[i])
        .filter(|j| j["status"] != "done")
        .collect();
    assert!(not_done.is_empty(), "{not_done:?}");
    assert!(pending_by_consumer(&redis).values().all(|n| *n == 0));
    // The API's own connections come back too (at the latest on the next request).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = reqwest::Client::new()
            .get(api.url("/ready"))
            .send()
            .await
            .unwrap();
        if r.status() == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "API never became ready again");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthcheck_passes_against_a_running_api_and_worker() {
    let redis = RedisServer::start();
    for mode in ["api", "worker"] {
        let p = Proc::start(mode, &redis, FAST);
        let port = p.port.to_string();
        let status = std::process::Command::new(BIN)
            .arg("healthcheck")
            .env_clear()
            .env("GENE_API__HTTP__PORT", &port)
            .env("GENE_API__WORKERS__HEALTH_PORT", "1")
            .status()
            .unwrap();
        assert!(status.success(), "{mode}");
    }
}

/// The entries pending under consumers whose name contains `name`, with
/// their jobs: (entry id, job id).
fn held_by(redis: &RedisServer, name: &str) -> Vec<(String, String)> {
    let mut conn = redis.conn(0);
    let pending: Vec<(String, String, u64, u64)> = redis::cmd("XPENDING")
        .arg("gene-api:jobs:stream")
        .arg("gene-api:workers")
        .arg("-")
        .arg("+")
        .arg(10_000)
        .query(&mut conn)
        .unwrap();
    pending
        .into_iter()
        .filter(|(_, consumer, _, _)| consumer.contains(name))
        .map(|(entry, ..)| {
            let found: Vec<(String, HashMap<String, String>)> = redis::cmd("XRANGE")
                .arg("gene-api:jobs:stream")
                .arg(&entry)
                .arg(&entry)
                .query(&mut conn)
                .unwrap();
            let job = found[0].1["job"].clone();
            (entry, job)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_stopped_by_sigterm_finishes_the_jobs_it_holds_itself() {
    let redis = RedisServer::start();
    // The api process runs no consumer, so while the worker stops nobody
    // else can take its entries; a worker that left them behind would show
    // them pending under its name (and, a second later, reclaimable).
    let api = Proc::start("api", &redis, FAST);
    let grace = [("GENE_API__SHUTDOWN__GRACE_SECS", "25")];
    let env: Vec<(&str, &str)> = FAST.iter().chain(grace.iter()).copied().collect();
    let mut worker = Proc::start("worker", &redis, &env);
    load(&api).await;
    let ids = submit_plots(&api, 120, 1200).await;

    // Catch it holding entries: freeze it, look, and send SIGTERM while it
    // is frozen (delivered when it goes on), so that what it holds is known.
    let name = format!("-{}-worker-", worker.pid());
    let deadline = Instant::now() + Duration::from_secs(30);
    let held = loop {
        assert!(Instant::now() < deadline, "the worker never held a job");
        worker.signal("-STOP");
        let held = held_by(&redis, &name);
        if !held.is_empty() {
            break held;
        }
        worker.signal("-CONT");
        std::thread::sleep(Duration::from_millis(3));
    };
    worker.signal("-TERM");
    worker.signal("-CONT");
    let (status, took) = worker.wait_exit(Duration::from_secs(40));
    assert!(status.success(), "exit status {status} after {took:?}");

    // It finished what it held before it exited: nothing is pending under
    // its name, and each job it held is done, on its first run, by it.
    let left = held_by(&redis, &name);
    assert!(
        left.is_empty(),
        "the stopped worker left {} of the {} entries it held pending: {left:?}",
        left.len(),
        held.len()
    );
    let records = job_records(&redis);
    let log = worker.log.lock().unwrap().clone();
    for (_, job) in &held {
        let record = &records[job];
        assert_eq!(record["status"], "done", "{record}");
        assert_eq!(record["attempts"], 1, "{record}");
        assert!(
            log.lines()
                .any(|l| l.contains(&format!("job_id={job}")) && l.contains("job done")),
            "job {job} is not done in the stopped worker's log"
        );
    }
    // And it took no new work once told to stop: the queue was not run dry.
    let queued = ids
        .iter()
        .filter(|i| records[*i]["status"] == "queued")
        .count();
    assert!(queued > 0, "the test should stop it mid-queue");
    eprintln!(
        "SIGTERM: the worker finished the {} entries it held and exited in {took:?}; {queued} jobs left queued",
        held.len()
    );

    // Another worker runs the rest; what the first one finished is not run again.
    let _w = Proc::start("worker", &redis, FAST);
    let records = wait_all_finished(&redis, &ids, Duration::from_secs(120));
    assert!(ids.iter().all(|i| records[i]["status"] == "done"));
    for (_, job) in &held {
        assert_eq!(records[job]["attempts"], 1, "{}", records[job]);
    }
    assert!(pending_by_consumer(&redis).values().all(|n| *n == 0));
}
