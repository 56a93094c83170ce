//! Losing the Redis primary: a primary, two replicas and three sentinels of
//! Debian's redis-server on loopback, gene-api processes pointed at the
//! sentinels, and the primary killed (SIGKILL) or frozen (SIGSTOP) while
//! clients submit jobs.

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::{free_port, test_env, SAMPLE};
use crate::procs::*;

const MASTER: &str = "gene-api";

/// One redis-server process (a data node or a sentinel), killed on drop.
struct Node {
    port: u16,
    child: Child,
}

impl Node {
    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill {sig} failed");
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        // A stopped process must be continued to die of SIGKILL at once.
        let _ = Command::new("kill")
            .args(["-CONT", &self.child.id().to_string()])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn conn(port: u16) -> redis::Connection {
    redis::Client::open(format!("redis://127.0.0.1:{port}/"))
        .and_then(|c| c.get_connection_with_timeout(Duration::from_millis(500)))
        .expect("redis connection")
}

fn try_conn(port: u16) -> Option<redis::Connection> {
    let c = redis::Client::open(format!("redis://127.0.0.1:{port}/")).ok()?;
    let c = c
        .get_connection_with_timeout(Duration::from_millis(300))
        .ok()?;
    c.set_read_timeout(Some(Duration::from_millis(500))).ok()?;
    Some(c)
}

fn wait_until(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) -> Duration {
    let t = Instant::now();
    while !ok() {
        assert!(t.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    t.elapsed()
}

/// A redis-server on a free port, with its own directory under `dir`.
fn data_node(dir: &std::path::Path, extra: &[String]) -> Node {
    std::fs::create_dir_all(dir).unwrap();
    let port = free_port();
    let child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--repl-diskless-sync",
            "yes",
            "--repl-diskless-sync-delay",
            "0",
            "--dir",
            dir.to_str().unwrap(),
        ])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server (scripts/test installs it)");
    wait_until("a data node answers", Duration::from_secs(10), || {
        try_conn(port).is_some()
    });
    Node { port, child }
}

/// A primary, two replicas and three sentinels (quorum 2, down after 1 s).
struct Ha {
    _dir: tempfile::TempDir,
    nodes: Vec<Node>,
    sentinels: Vec<Node>,
}

impl Ha {
    /// With `guard`, every data node runs with `min-replicas-to-write 1`, as
    /// the shipped HA configuration does.
    fn start(guard: bool) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut nodes = Vec::new();
        for i in 0..3 {
            let mut extra: Vec<String> = Vec::new();
            if guard {
                extra.extend(
                    [
                        "--min-replicas-to-write",
                        "1",
                        "--min-replicas-max-lag",
                        "5",
                    ]
                    .map(String::from),
                );
            }
            if let Some(primary) = nodes.first().map(|n: &Node| n.port) {
                extra.extend([
                    "--replicaof".into(),
                    "127.0.0.1".into(),
                    primary.to_string(),
                ]);
            }
            nodes.push(data_node(&dir.path().join(format!("node{i}")), &extra));
        }
        for n in &nodes[1..] {
            wait_until("a replica is in sync", Duration::from_secs(20), || {
                let info: String = redis::cmd("INFO")
                    .arg("replication")
                    .query(&mut conn(n.port))
                    .unwrap_or_default();
                info.contains("master_link_status:up")
            });
        }
        let mut sentinels = Vec::new();
        for i in 0..3 {
            let port = free_port();
            // A sentinel rewrites its own config file: each has one.
            let conf = dir.path().join(format!("sentinel{i}.conf"));
            std::fs::write(
                &conf,
                format!(
                    "port {port}\nbind 127.0.0.1\ndir {}\n\
                     sentinel monitor {MASTER} 127.0.0.1 {} 2\n\
                     sentinel down-after-milliseconds {MASTER} 1000\n\
                     sentinel failover-timeout {MASTER} 5000\n\
                     sentinel parallel-syncs {MASTER} 2\n",
                    dir.path().display(),
                    nodes[0].port
                ),
            )
            .unwrap();
            let child = Command::new("redis-server")
                .arg(&conf)
                .arg("--sentinel")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("redis-server --sentinel");
            sentinels.push(Node { port, child });
        }
        let ha = Self {
            _dir: dir,
            nodes,
            sentinels,
        };
        // Each sentinel must know the replicas and the other sentinels before
        // a failover can be agreed on (they meet through hello messages).
        for s in &ha.sentinels {
            wait_until(
                "the sentinels know each other",
                Duration::from_secs(30),
                || {
                    let Some(mut c) = try_conn(s.port) else {
                        return false;
                    };
                    let m: HashMap<String, String> = redis::cmd("SENTINEL")
                        .arg("MASTER")
                        .arg(MASTER)
                        .query(&mut c)
                        .unwrap_or_default();
                    m.get("num-slaves").map(String::as_str) == Some("2")
                        && m.get("num-other-sentinels").map(String::as_str) == Some("2")
                },
            );
        }
        ha
    }

    /// gene-api's settings: through the sentinels, no REDIS_IP.
    fn env(&self, min_replicas: u32) -> HashMap<String, String> {
        let mut env = test_env(0, std::path::Path::new(SAMPLE));
        env.remove("REDIS_IP");
        env.remove("REDIS_PORT");
        let list: Vec<String> = self
            .sentinels
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.port))
            .collect();
        env.insert("REDIS_SENTINELS".into(), list.join(","));
        env.insert("REDIS_SENTINEL_MASTER".into(), MASTER.into());
        env.insert(
            "GENE_API__REDIS__MIN_REPLICAS".into(),
            min_replicas.to_string(),
        );
        env.insert("GENE_API__REDIS__WAIT_TIMEOUT_MS".into(), "500".into());
        env.insert("GENE_API__REDIS__SENTINEL_POLL_MS".into(), "500".into());
        env
    }

    /// The primary's port as a live sentinel names it.
    fn primary(&self) -> Option<u16> {
        self.sentinels.iter().find_map(|s| {
            let mut c = try_conn(s.port)?;
            let (_, port): (String, u16) = redis::cmd("SENTINEL")
                .arg("GET-MASTER-ADDR-BY-NAME")
                .arg(MASTER)
                .query(&mut c)
                .ok()?;
            Some(port)
        })
    }

    fn node(&self, port: u16) -> &Node {
        self.nodes
            .iter()
            .find(|n| n.port == port)
            .expect("a data node")
    }

    fn role(port: u16) -> Option<String> {
        let mut c = try_conn(port)?;
        let role: Vec<Value> = redis::cmd("ROLE")
            .query::<Vec<redis::Value>>(&mut c)
            .ok()?
            .into_iter()
            .take(1)
            .map(|v| Value::String(redis::from_redis_value(v).unwrap_or_default()))
            .collect();
        role.first().and_then(|v| v.as_str()).map(String::from)
    }

    /// Waits until the sentinels name a primary other than `old` that says
    /// it is one; returns its port.
    fn wait_new_primary(&self, old: u16, limit: Duration) -> u16 {
        let mut new = 0;
        wait_until("a replica is promoted", limit, || match self.primary() {
            Some(p) if p != old && Self::role(p).as_deref() == Some("master") => {
                new = p;
                true
            }
            _ => false,
        });
        new
    }
}

/// One submission's outcome.
#[derive(Debug, Clone)]
struct Answer {
    /// When the request was sent.
    at: Instant,
    status: u16,
    body: Value,
    retry_after: bool,
}

/// A client submitting a plot every 20 ms (each in its own task, so a slow
/// answer does not hold the next) until stopped.
struct Submitter {
    answers: Arc<Mutex<Vec<Answer>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Submitter {
    fn start(api: &Proc) -> Self {
        let answers = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let base = api.url("/image");
        let (a, s) = (answers.clone(), stop.clone());
        let task = tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(15))
                .build()
                .unwrap();
            let mut sent = Vec::new();
            let mut i = 0u32;
            while !s.load(std::sync::atomic::Ordering::Relaxed) {
                let url = format!("{base}?kind=locus_group&width={}&height=200", 300 + i % 500);
                let (c, a) = (client.clone(), a.clone());
                sent.push(tokio::spawn(async move {
                    let at = Instant::now();
                    let (status, retry_after, body) = match c.post(url).send().await {
                        Ok(r) => {
                            let status = r.status().as_u16();
                            let retry_after = r.headers().contains_key("retry-after");
                            (status, retry_after, r.json().await.unwrap_or(Value::Null))
                        }
                        Err(_) => (0, false, Value::Null),
                    };
                    a.lock().unwrap().push(Answer {
                        at,
                        status,
                        body,
                        retry_after,
                    });
                }));
                i += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            for t in sent {
                let _ = t.await;
            }
        });
        Self {
            answers,
            stop,
            task,
        }
    }

    /// When the first submission sent after `t` and answered 202 was sent.
    fn accepted_after(&self, t: Instant) -> Option<Instant> {
        self.answers
            .lock()
            .unwrap()
            .iter()
            .filter(|a| a.status == 202 && a.at > t)
            .map(|a| a.at)
            .min()
    }

    async fn finish(self) -> Vec<Answer> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.task.await.unwrap();
        let answers = self.answers.lock().unwrap().clone();
        answers
    }
}

fn accepted_ids(answers: &[Answer]) -> Vec<String> {
    answers
        .iter()
        .filter(|a| a.status == 202)
        .map(|a| a.body["id"].as_str().unwrap().to_string())
        .collect()
}

/// What was answered, by status, for the failure messages and the log.
fn tally(answers: &[Answer]) -> std::collections::BTreeMap<u16, usize> {
    let mut t = std::collections::BTreeMap::new();
    for a in answers {
        *t.entry(a.status).or_default() += 1;
    }
    t
}

/// Anything but a 202 must be a 503 with Retry-After (the failover passing),
/// never a 500 or a dropped request.
fn assert_only_202_or_503(answers: &[Answer]) {
    let wrong: Vec<&Answer> = answers
        .iter()
        .filter(|a| a.status != 202 && !(a.status == 503 && a.retry_after))
        .collect();
    assert!(
        wrong.is_empty(),
        "answers other than 202 or 503 with Retry-After: {:?}",
        wrong
            .iter()
            .map(|a| (a.status, &a.body))
            .collect::<Vec<_>>()
    );
}

async fn wait_job_through(api: &Proc) -> Value {
    let r = reqwest::Client::new()
        .post(api.url("/image?kind=chromosome"))
        .header("Prefer", "wait=30")
        .send()
        .await
        .unwrap();
    let status = r.status();
    let body: Value = r.json().await.unwrap();
    assert_eq!(status, 200, "a plot after the failover: {body}");
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_primary_loses_no_job_that_was_answered_202() {
    let ha = Ha::start(true);
    let mut env = ha.env(1);
    // The reclaimer out of the way: the jobs a worker had in hand when the
    // primary died are taken back by the worker itself once it reconnects,
    // not a reclaim time later.
    env.insert(
        "GENE_API__PIPELINE__RECLAIM_AFTER_MS".into(),
        "120000".into(),
    );
    let api = Proc::start_env("api", &env);
    let worker = Proc::start_env("worker", &env);
    load(&api).await;
    let old = ha.primary().unwrap();
    assert_eq!(old, ha.nodes[0].port);

    let submitter = Submitter::start(&api);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let killed = Instant::now();
    ha.node(old).signal("-KILL");
    let new = ha.wait_new_primary(old, Duration::from_secs(40));
    let promoted = killed.elapsed();
    let deadline = Instant::now() + Duration::from_secs(40);
    let first_202 = loop {
        if let Some(t) = submitter.accepted_after(killed) {
            break t - killed;
        }
        assert!(Instant::now() < deadline, "no 202 within 40 s of the kill");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let api_ready = api.wait_ready_within(Duration::from_secs(30));
    let worker_ready = worker.wait_ready_within(Duration::from_secs(30));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let answers = submitter.finish().await;
    assert_only_202_or_503(&answers);
    let ids = accepted_ids(&answers);
    let before = answers
        .iter()
        .filter(|a| a.status == 202 && a.at < killed)
        .count();
    assert!(before > 10 && ids.len() > before, "{:?}", tally(&answers));

    // Every job answered 202, before the kill or after, is on the new
    // primary and finishes there, well inside the reclaim time: the workers
    // followed it by themselves.
    let records = wait_all_finished_at(new, &ids, Duration::from_secs(40));
    let not_done: Vec<&Value> = ids
        .iter()
        .map(|id| &records[id])
        .filter(|j| j["status"] != "done")
        .collect();
    assert!(not_done.is_empty(), "{not_done:?}");
    // The events reader followed too: a wait on a new job ends with it.
    wait_job_through(&api).await;
    assert!(api.log_count("the Redis primary moved; following it") >= 1);
    eprintln!(
        "failover (kill -9): replica promoted after {promoted:?}, first 202 after {first_202:?}, \
         /ready again after {:?} (api) and {:?} (worker) from then; answers {:?}; {} jobs, none lost; \
         the worker took back its unfinished entries {} times",
        api_ready,
        worker_ready,
        tally(&answers),
        ids.len(),
        worker.log_count("taking back this consumer's unfinished entries")
    );
}

/// The replicas are frozen and cut off, so the primary's last writes cannot reach them,
/// then the primary dies and a replica is promoted. Without MIN_REPLICAS the
/// jobs answered 202 meanwhile are lost (the test shows it can fail); with
/// MIN_REPLICAS=1 none of them was answered 202: each was answered 503
/// `not_replicated` naming the job, to look at later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_jobs_survive_a_failover_only_with_min_replicas() {
    for min_replicas in [0, 1] {
        let ha = Ha::start(false);
        let api = Proc::start_env("serve", &ha.env(min_replicas));
        load(&api).await;
        let old = ha.nodes[0].port;
        for r in &ha.nodes[1..] {
            r.signal("-STOP");
        }
        // A stopped process's kernel still takes in what is sent to it, so
        // the primary also drops its links to them: the frozen replicas cannot
        // connect again, and nothing written from now on reaches them.
        let cut: u32 = redis::cmd("CLIENT")
            .arg("KILL")
            .arg("TYPE")
            .arg("replica")
            .query(&mut conn(old))
            .unwrap();
        assert_eq!(cut, 2);
        let client = reqwest::Client::new();
        let posts = (0..10).map(|i| {
            let url = api.url(&format!("/image?kind=locus_group&width={}", 300 + i));
            let c = client.clone();
            async move {
                let r = c.post(url).send().await.unwrap();
                let status = r.status().as_u16();
                let location = r.headers().get("location").cloned();
                (status, location, r.json::<Value>().await.unwrap())
            }
        });
        let answers = futures_util::future::join_all(posts).await;
        ha.node(old).signal("-KILL");
        for r in &ha.nodes[1..] {
            r.signal("-CONT");
        }
        let new = ha.wait_new_primary(old, Duration::from_secs(40));
        let on_new = job_records_at(new);
        let accepted: Vec<&str> = answers
            .iter()
            .filter(|(s, _, _)| *s == 202)
            .map(|(_, _, b)| b["id"].as_str().unwrap())
            .collect();
        let lost = accepted
            .iter()
            .filter(|id| !on_new.contains_key(**id))
            .count();
        if min_replicas == 0 {
            assert_eq!(accepted.len(), 10, "{answers:?}");
            assert!(lost > 0, "the test must be able to show a loss");
            eprintln!("MIN_REPLICAS=0: {lost} of 10 jobs answered 202 were lost in the failover");
        } else {
            assert!(accepted.is_empty(), "{answers:?}");
            for (status, location, body) in &answers {
                assert_eq!(*status, 503);
                assert_eq!(body["error"], "not_replicated", "{body}");
                let id = body["job"]["id"].as_str().expect("the job is named");
                assert_eq!(
                    location.as_ref().and_then(|l| l.to_str().ok()),
                    Some(format!("/jobs/{id}").as_str())
                );
            }
            eprintln!(
                "MIN_REPLICAS=1: none of 10 was answered 202 while no replica could confirm it"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_primary_comes_back_as_a_replica_and_what_it_took_alone_is_not_acknowledged() {
    let ha = Ha::start(true);
    let env = ha.env(1);
    let api = Proc::start_env("api", &env);
    let _worker = Proc::start_env("worker", &env);
    load(&api).await;
    let old = ha.nodes[0].port;
    let submitter = Submitter::start(&api);
    tokio::time::sleep(Duration::from_secs(1)).await;
    ha.node(old).signal("-STOP");
    let new = ha.wait_new_primary(old, Duration::from_secs(40));
    let promoted = Instant::now();
    let deadline = promoted + Duration::from_secs(40);
    while submitter.accepted_after(promoted).is_none() {
        assert!(Instant::now() < deadline, "no 202 after the failover");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Thawed, it learns from the sentinels that it is a replica now.
    ha.node(old).signal("-CONT");
    wait_until(
        "the old primary becomes a replica",
        Duration::from_secs(40),
        || Ha::role(old).as_deref() == Some("slave"),
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let answers = submitter.finish().await;
    assert_only_202_or_503(&answers);
    let ids = accepted_ids(&answers);
    let records = wait_all_finished_at(new, &ids, Duration::from_secs(90));
    assert!(ids.iter().all(|id| records[id]["status"] == "done"));
    eprintln!(
        "frozen primary: {:?}; {} jobs answered 202, all done on the new primary",
        tally(&answers),
        ids.len()
    );
}

/// Two conditions a client can wait out, met with plain `REDIS_IP`: gene-api
/// pointed at a replica (what a name still pointing at the old primary gives
/// right after a failover), and a primary that refuses writes while it has
/// fewer good replicas than its `min-replicas-to-write`. Both were `500
/// internal` with `/ready` 200; now both are 503 with Retry-After and
/// `/ready` says why, until the condition passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_or_a_primary_short_of_replicas_is_a_503_to_wait_out() {
    let dir = tempfile::tempdir().unwrap();
    let primary = data_node(&dir.path().join("p"), &[]);
    let replica = data_node(
        &dir.path().join("r"),
        &[
            "--replicaof".into(),
            "127.0.0.1".into(),
            primary.port.to_string(),
        ],
    );
    let guarded = data_node(
        &dir.path().join("g"),
        &["--min-replicas-to-write".into(), "1".into()],
    );
    let client = reqwest::Client::new();
    for (node, why) in [(&replica, "replica"), (&guarded, "min-replicas-to-write")] {
        let api = Proc::start_without_redis("api", node.port, &[]);
        let ready = client.get(api.url("/ready")).send().await.unwrap();
        assert_eq!(ready.status(), 503);
        let body: Value = ready.json().await.unwrap();
        assert!(body["message"].as_str().unwrap().contains(why), "{body}");
        let r = client.post(api.url("/data")).send().await.unwrap();
        assert_eq!(r.status(), 503, "{why}");
        assert!(r.headers().contains_key("retry-after"));
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"], "unavailable", "{body}");
        // The condition passes: the replica is promoted, the guard lifted.
        let mut c = conn(node.port);
        if node.port == replica.port {
            let _: () = redis::cmd("REPLICAOF")
                .arg("NO")
                .arg("ONE")
                .query(&mut c)
                .unwrap();
        } else {
            let _: () = redis::cmd("CONFIG")
                .arg("SET")
                .arg("min-replicas-to-write")
                .arg(0)
                .query(&mut c)
                .unwrap();
        }
        api.wait_ready_within(Duration::from_secs(10));
        let r = client.post(api.url("/data")).send().await.unwrap();
        assert_eq!(r.status(), 202, "{why}, passed");
    }
}

/// With no sentinel to ask, a process starts (so that it can say why), is
/// not ready, and answers 503 with Retry-After: it cannot know the primary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_sentinel_to_ask_a_process_is_not_ready_and_says_why() {
    let mut env = test_env(0, std::path::Path::new(SAMPLE));
    env.remove("REDIS_IP");
    env.remove("REDIS_PORT");
    let nobody = free_port();
    env.insert("REDIS_SENTINELS".into(), format!("127.0.0.1:{nobody}"));
    env.insert("REDIS_SENTINEL_MASTER".into(), MASTER.into());
    env.insert("GENE_API__REDIS__SENTINEL_POLL_MS".into(), "200".into());
    let extra: Vec<(&str, &str)> = env
        .iter()
        .filter(|(k, _)| k.starts_with("REDIS_SENTINEL") || k.ends_with("SENTINEL_POLL_MS"))
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let mut extra = extra;
    extra.extend([("REDIS_IP", ""), ("REDIS_PORT", "")]);
    let api = Proc::start_without_redis("api", 0, &extra);
    let client = reqwest::Client::new();
    let ready = client.get(api.url("/ready")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    let body: Value = ready.json().await.unwrap();
    let msg = body["message"].as_str().unwrap();
    assert!(
        msg.contains("no sentinel answers") && msg.contains(&format!("127.0.0.1:{nobody}")),
        "{msg}"
    );
    let r = client.post(api.url("/data")).send().await.unwrap();
    assert_eq!(r.status(), 503);
    assert!(r.headers().contains_key("retry-after"));
    assert_eq!(
        client.get(api.url("/genes")).send().await.unwrap().status(),
        503
    );
}

/// A job past its point of no return is not stopped: a load whose swap is
/// in, and which is waiting for the replicas (frozen here) to confirm it,
/// refuses a cancel with 409 and the reason, then ends on its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_past_its_point_of_no_return_refuses_a_cancel_and_says_why() {
    const RELEASES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/data/releases");
    let ha = Ha::start(false);
    let mut env = ha.env(1);
    // A longer wait for the replicas (the window the cancel arrives in),
    // still inside the 2 s reply deadline of the tests' settings.
    env.insert("GENE_API__REDIS__WAIT_TIMEOUT_MS".into(), "1500".into());
    env.insert(
        "GENE_API__DATA__ARCHIVE_SOURCE".into(),
        format!("{RELEASES}/hgnc_complete_set_{{date}}.json"),
    );
    env.insert(
        "GENE_API__DATA__ARCHIVE_WITHDRAWN".into(),
        format!("{RELEASES}/withdrawn_{{date}}.txt"),
    );
    let api = Proc::start_env("api", &env);
    let _worker = Proc::start_env("worker", &env);
    load(&api).await;
    let primary = ha.nodes[0].port;
    let stop_keys = |c: &mut redis::Connection| -> Vec<String> {
        redis::cmd("KEYS")
            .arg("gene-api:job-stop:*")
            .query(c)
            .unwrap()
    };
    let mut c = conn(primary);
    let earlier = stop_keys(&mut c);
    for r in &ha.nodes[1..] {
        r.signal("-STOP");
    }
    // Queued on the primary (the answer is a 503 not_replicated, as the
    // replicas cannot confirm it; the job runs all the same).
    let submit = tokio::spawn({
        let url = api.url("/data");
        async move {
            reqwest::Client::new()
                .post(url)
                .json(&serde_json::json!({"release": "2021-04-27"}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    });
    let mut id = String::new();
    wait_until(
        "the load passes its point of no return",
        Duration::from_secs(20),
        || {
            stop_keys(&mut c)
                .into_iter()
                .filter(|k| !earlier.contains(k))
                .any(|k| {
                    let v: Option<String> = redis::cmd("GET").arg(&k).query(&mut c).unwrap();
                    let committed = v.is_some_and(|v| v.starts_with("committed "));
                    if committed {
                        id = k.trim_start_matches("gene-api:job-stop:").to_string();
                    }
                    committed
                })
        },
    );
    let r = reqwest::Client::new()
        .delete(api.url(&format!("/jobs/{id}")))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        (status, body["error"].as_str()),
        (409, Some("past_point_of_no_return")),
        "{body}"
    );
    // Running (its swap waiting for the replicas), or `retrying` if the
    // wait has timed out already: past the point either way.
    let state = body["job"]["status"].as_str().unwrap();
    assert!(["running", "retrying"].contains(&state), "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("the new release is being swapped in"),
        "{message}"
    );
    for r in &ha.nodes[1..] {
        r.signal("-CONT");
    }
    assert_eq!(submit.await.unwrap(), 503);
    // Not stopped: it ends `done` (its swap stayed in; a later run finds it live).
    let records = wait_all_finished_at(primary, std::slice::from_ref(&id), Duration::from_secs(40));
    assert_eq!(records[&id]["status"], "done", "{}", records[&id]);
    assert!(records[&id].get("cancel_requested_at").is_none());
    assert!(
        stop_keys(&mut conn(primary)).is_empty(),
        "the finished load's stop key went"
    );
}
