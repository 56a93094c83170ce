//! Running `gene-api` processes and looking at their jobs through Redis.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::{free_port, test_env, RedisServer, SAMPLE};

pub const BIN: &str = env!("CARGO_BIN_EXE_gene-api");

/// One `gene-api` process, killed on drop. Its log (stderr) is kept in
/// `log`, and echoed with TEST_LOG=1.
pub struct Proc {
    pub child: Child,
    pub port: u16,
    pub log: Arc<Mutex<String>>,
}

impl Proc {
    pub fn start(mode: &str, redis: &RedisServer, extra: &[(&str, &str)]) -> Self {
        let port = free_port();
        let mut env: HashMap<String, String> = test_env(redis.port, std::path::Path::new(SAMPLE));
        env.insert("GENE_API__HTTP__PORT".into(), port.to_string());
        env.insert("GENE_API__WORKERS__HEALTH_PORT".into(), port.to_string());
        for (k, v) in extra {
            env.insert(k.to_string(), v.to_string());
        }
        let p = Self::spawn(mode, &env, port);
        p.wait_ready();
        p
    }

    /// A process against a Redis that may not answer: waits for /health only.
    pub fn start_without_redis(mode: &str, redis_port: u16, extra: &[(&str, &str)]) -> Self {
        let port = free_port();
        let mut env: HashMap<String, String> = test_env(redis_port, std::path::Path::new(SAMPLE));
        env.insert("GENE_API__HTTP__PORT".into(), port.to_string());
        env.insert("GENE_API__WORKERS__HEALTH_PORT".into(), port.to_string());
        for (k, v) in extra {
            env.insert(k.to_string(), v.to_string());
        }
        let p = Self::spawn(mode, &env, port);
        let deadline = Instant::now() + Duration::from_secs(20);
        while http_status::get(&p.url("/health")).ok() != Some(200) {
            assert!(Instant::now() < deadline, "gene-api never answered /health");
            std::thread::sleep(Duration::from_millis(20));
        }
        p
    }

    /// A worker with the default probe settings (no host or port given): it
    /// tries 5001 and falls back to a free port; the port it took is read
    /// from its log.
    pub fn start_worker_with_default_probe_port(redis: &RedisServer) -> Self {
        let mut env: HashMap<String, String> = test_env(redis.port, std::path::Path::new(SAMPLE));
        env.remove("GENE_API__WORKERS__HEALTH_PORT");
        env.remove("GENE_API__WORKERS__HEALTH_HOST");
        let mut p = Self::spawn("worker", &env, 0);
        let deadline = Instant::now() + Duration::from_secs(20);
        p.port = loop {
            if let Some(port) = listening_port(&p.log.lock().unwrap()) {
                break port;
            }
            if let Ok(Some(status)) = p.child.try_wait() {
                panic!("worker exited with {status}: {}", p.log.lock().unwrap());
            }
            assert!(
                Instant::now() < deadline,
                "worker never said where it listens"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        p.wait_ready();
        p
    }

    /// A process with exactly this environment (plus its HTTP port), once ready.
    pub fn start_env(mode: &str, env: &HashMap<String, String>) -> Self {
        let port = free_port();
        let mut env = env.clone();
        env.insert("GENE_API__HTTP__PORT".into(), port.to_string());
        env.insert("GENE_API__WORKERS__HEALTH_PORT".into(), port.to_string());
        let p = Self::spawn(mode, &env, port);
        p.wait_ready();
        p
    }

    fn spawn(mode: &str, env: &HashMap<String, String>, port: u16) -> Self {
        let mut child = Command::new(BIN)
            .arg(mode)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RUST_LOG", "info")
            .envs(env)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn gene-api");
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().expect("stderr");
        let sink = log.clone();
        let echo = std::env::var("TEST_LOG").is_ok();
        // Drained continuously, so a chatty process never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if echo {
                    eprintln!("{line}");
                }
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        Proc { child, port, log }
    }

    /// How many log lines contain `needle`.
    pub fn log_count(&self, needle: &str) -> usize {
        self.log
            .lock()
            .unwrap()
            .lines()
            .filter(|l| l.contains(needle))
            .count()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn wait_ready(&self) {
        self.wait_ready_within(Duration::from_secs(20));
    }

    /// Waits until /ready answers 200; returns how long that took.
    pub fn wait_ready_within(&self, limit: Duration) -> Duration {
        let t = Instant::now();
        let deadline = t + limit;
        while Instant::now() < deadline {
            if let Ok(r) = http_status::get(&self.url("/ready")) {
                if r == 200 {
                    return t.elapsed();
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("gene-api process never became ready");
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.pid().to_string()])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "kill {sig} failed");
    }

    /// Waits for the process to exit; returns its status and how long that took.
    pub fn wait_exit(&mut self, limit: Duration) -> (std::process::ExitStatus, Duration) {
        let t = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return (status, t.elapsed());
            }
            assert!(t.elapsed() < limit, "process did not exit within {limit:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The port in the process's "listening addr=<ip>:<port>" log line.
fn listening_port(log: &str) -> Option<u16> {
    let line = log.lines().find(|l| l.contains("listening"))?;
    let addr = line.split("addr=").nth(1)?.split_whitespace().next()?;
    addr.rsplit(':').next()?.parse().ok()
}

/// A tiny blocking HTTP GET status, so readiness polling needs no runtime.
pub mod http_status {
    pub fn get(url: &str) -> std::io::Result<u16> {
        use std::io::{Read, Write};
        let rest = url.trim_start_matches("http://");
        let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
        let mut s = std::net::TcpStream::connect(host)?;
        s.set_read_timeout(Some(std::time::Duration::from_secs(2)))?;
        write!(
            s,
            "GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
        )?;
        let mut head = [0u8; 12];
        s.read_exact(&mut head)?;
        let code = std::str::from_utf8(&head[9..12]).unwrap_or("0");
        Ok(code.parse().unwrap_or(0))
    }
}

/// Every job record in Redis, by id.
pub fn job_records(redis: &RedisServer) -> HashMap<String, Value> {
    job_records_at(redis.port)
}

/// Every job record in the Redis on `port`, by id. A Redis that answers
/// `LOADING` (a replica just promoted may still be reading the data set a
/// full sync sent it) or refuses the connection is asked again for up to
/// 30 s: the tests that read it have just restarted or moved the primary.
pub fn job_records_at(port: u16) -> HashMap<String, Value> {
    let t = Instant::now();
    loop {
        match try_job_records_at(port) {
            Ok(records) => return records,
            Err(e) if t.elapsed() < Duration::from_secs(30) => {
                eprintln!("job records on port {port}: {e}; asking again");
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(e) => panic!("job records on port {port}: {e}"),
        }
    }
}

fn try_job_records_at(port: u16) -> redis::RedisResult<HashMap<String, Value>> {
    let mut conn = redis::Client::open(format!("redis://127.0.0.1:{port}/"))?.get_connection()?;
    let keys: Vec<String> = redis::cmd("KEYS").arg("gene-api:job:*").query(&mut conn)?;
    if keys.is_empty() {
        return Ok(HashMap::new());
    }
    let raws: Vec<Option<String>> = redis::cmd("MGET").arg(&keys).query(&mut conn)?;
    Ok(raws
        .into_iter()
        .flatten()
        .map(|r| {
            let v: Value = serde_json::from_str(&r).unwrap();
            (v["id"].as_str().unwrap().to_string(), v)
        })
        .collect())
}

/// How many entries the group has delivered but not acknowledged, per consumer.
pub fn pending_by_consumer(redis: &RedisServer) -> HashMap<String, u64> {
    pending_by_consumer_at(redis.port)
}

/// [`pending_by_consumer`] of the Redis on `port`.
pub fn pending_by_consumer_at(port: u16) -> HashMap<String, u64> {
    let mut conn = redis::Client::open(format!("redis://127.0.0.1:{port}/"))
        .and_then(|c| c.get_connection())
        .expect("redis connection");
    let reply: redis::Value = redis::cmd("XPENDING")
        .arg("gene-api:jobs:stream")
        .arg("gene-api:workers")
        .query(&mut conn)
        .unwrap();
    let mut out = HashMap::new();
    if let redis::Value::Array(parts) = reply {
        if let Some(redis::Value::Array(consumers)) = parts.get(3) {
            for c in consumers {
                let (name, n): (String, String) = redis::from_redis_value(c.clone()).unwrap();
                out.insert(name, n.parse().unwrap());
            }
        }
    }
    out
}

/// Three consumers take the stream's first undelivered entry and vanish
/// without finishing it (one read, two claims), as a job that crashes its
/// worker every time would leave it. Returns the entry's id.
pub fn abandon_next_entry(redis: &RedisServer) -> String {
    let mut conn = redis.conn(0);
    let _: redis::Value = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg("gene-api:jobs:stream")
        .arg("gene-api:workers")
        .arg("0")
        .arg("MKSTREAM")
        .query(&mut conn)
        .or_else(|e| {
            if e.code() == Some("BUSYGROUP") {
                Ok(redis::Value::Nil)
            } else {
                Err(e)
            }
        })
        .unwrap();
    let read: redis::Value = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg("gene-api:workers")
        .arg("ghost-1")
        .arg("COUNT")
        .arg(1)
        .arg("STREAMS")
        .arg("gene-api:jobs:stream")
        .arg(">")
        .query(&mut conn)
        .unwrap();
    let entry_id = match read {
        redis::Value::Array(streams) => {
            let (_, entries): (String, Vec<(String, Vec<String>)>) =
                redis::from_redis_value(streams[0].clone()).unwrap();
            entries[0].0.clone()
        }
        other => panic!("unexpected {other:?}"),
    };
    for ghost in ["ghost-2", "ghost-3"] {
        let _: redis::Value = redis::cmd("XCLAIM")
            .arg("gene-api:jobs:stream")
            .arg("gene-api:workers")
            .arg(ghost)
            .arg(0)
            .arg(&entry_id)
            .query(&mut conn)
            .unwrap();
    }
    entry_id
}

/// Waits until every given job is finished; returns their records.
pub fn wait_all_finished(
    redis: &RedisServer,
    ids: &[String],
    limit: Duration,
) -> HashMap<String, Value> {
    wait_all_finished_at(redis.port, ids, limit)
}

/// [`wait_all_finished`] on the Redis on `port`.
pub fn wait_all_finished_at(port: u16, ids: &[String], limit: Duration) -> HashMap<String, Value> {
    let t = Instant::now();
    loop {
        let records = job_records_at(port);
        let finished = ids
            .iter()
            .filter(|id| {
                records
                    .get(*id)
                    .and_then(|j| j["status"].as_str())
                    .is_some_and(|s| ["done", "failed", "cancelled"].contains(&s))
            })
            .count();
        if finished == ids.len() {
            return records;
        }
        if t.elapsed() >= limit {
            let stuck: Vec<String> = ids
                .iter()
                .filter(|id| {
                    records
                        .get(*id)
                        .and_then(|j| j["status"].as_str())
                        .is_none_or(|s| !["done", "failed", "cancelled"].contains(&s))
                })
                .map(|id| {
                    format!(
                        "{id}: {}",
                        records
                            .get(id)
                            .map(|j| j.to_string())
                            .unwrap_or("no record".into())
                    )
                })
                .collect();
            panic!(
                "only {finished} of {} jobs finished within {limit:?}; unfinished: {stuck:?}; pending: {:?}",
                ids.len(),
                pending_by_consumer_at(port)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Submits `n` plot jobs through the API, `size + i` pixels wide and `size`
/// high; returns their ids.
pub async fn submit_plots(api: &Proc, n: usize, size: u32) -> Vec<String> {
    let client = reqwest::Client::new();
    let kinds = ["locus_group", "chromosome", "approval_year"];
    let mut ids = Vec::with_capacity(n);
    for chunk in (0..n).collect::<Vec<_>>().chunks(16) {
        let futs = chunk.iter().map(|i| {
            // Each plot a width of its own, so that every job draws its chart
            // (a worker's render cache would copy a repeated one).
            let width = size + *i as u32;
            let url = api.url(&format!(
                "/image?kind={}&width={width}&height={size}",
                kinds[i % 3]
            ));
            let c = client.clone();
            async move { c.post(url).send().await.unwrap() }
        });
        for r in futures_util::future::join_all(futs).await {
            assert_eq!(r.status(), 202);
            let v: Value = r.json().await.unwrap();
            ids.push(v["id"].as_str().unwrap().to_string());
        }
    }
    ids
}

/// Loads the sample through the API and waits for it.
pub async fn load(api: &Proc) {
    let r = reqwest::Client::new()
        .post(api.url("/data"))
        .header("Prefer", "wait=30")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "load did not finish");
}
