//! Test harness: a `redis-server` of each test's own on a free port, and the real
//! application on port 0, called over the loopback.

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Once;
use std::time::{Duration, Instant};

use gene_api::app::{Application, Mode};
use gene_api::config::Settings;
use gene_api::pipeline::{Pipeline, Worker};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

pub const SAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/data/hgnc_sample.json");

/// Logs only with TEST_LOG=1.
pub fn init_logs() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if std::env::var("TEST_LOG").is_ok() {
            gene_api::telemetry::init("info,gene_api=debug");
        }
    });
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port")
}

/// A real redis-server, killed on drop.
pub struct RedisServer {
    pub port: u16,
    child: Option<Child>,
    pub dir: tempfile::TempDir,
}

impl RedisServer {
    pub fn start() -> Self {
        for _ in 0..5 {
            let mut s = RedisServer {
                port: free_port(),
                child: None,
                dir: tempfile::tempdir().expect("tempdir"),
            };
            if s.spawn(false) {
                return s;
            }
        }
        panic!("could not start redis-server (is it installed? scripts/test installs it)");
    }

    /// A server on a given port (which must be free).
    #[allow(dead_code)] // used by tests/pipeline only
    pub fn start_on(port: u16) -> Self {
        let mut s = RedisServer {
            port,
            child: None,
            dir: tempfile::tempdir().expect("tempdir"),
        };
        assert!(
            s.spawn(false),
            "could not start redis-server on port {port}"
        );
        s
    }

    /// Starts (or restarts) the server on the same port and data directory.
    /// With `persist`, appendonly is on so a restart keeps the data.
    pub fn spawn(&mut self, persist: bool) -> bool {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                if persist { "yes" } else { "no" },
                // Persisted runs simulate crashes with SIGKILL: fsync every write,
                // or the last second of writes could be lost by design.
                "--appendfsync",
                if persist { "always" } else { "everysec" },
                "--dir",
                self.dir.path().to_str().unwrap(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let Ok(child) = child else { return false };
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.ping() {
                return true;
            }
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(_)) = c.try_wait() {
                    self.child = None;
                    return false;
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    pub fn ping(&self) -> bool {
        redis::Client::open(format!("redis://127.0.0.1:{}/", self.port))
            .and_then(|c| c.get_connection_with_timeout(Duration::from_millis(200)))
            .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c))
            .is_ok()
    }

    /// Kills the server at once (SIGKILL): no clean shutdown, as in a crash.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// A plain connection to one database, for looking behind the API.
    pub fn conn(&self, db: i64) -> redis::Connection {
        redis::Client::open(format!("redis://127.0.0.1:{}/{db}", self.port))
            .and_then(|c| c.get_connection())
            .expect("redis connection")
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Settings for a test: this Redis, port 0, fast pipeline timings.
pub fn test_env(redis_port: u16, source: &Path) -> HashMap<String, String> {
    [
        ("REDIS_IP", "127.0.0.1".to_string()),
        ("REDIS_PORT", redis_port.to_string()),
        ("GENE_API__HTTP__HOST", "127.0.0.1".into()),
        ("GENE_API__HTTP__PORT", "0".into()),
        ("GENE_API__WORKERS__HEALTH_HOST", "127.0.0.1".into()),
        ("GENE_API__WORKERS__HEALTH_PORT", "0".into()),
        ("GENE_API__DATA__SOURCE", source.display().to_string()),
        // The sample has no withdrawn file of its own; the release tests set one.
        ("GENE_API__DATA__WITHDRAWN", String::new()),
        ("GENE_API__PIPELINE__BLOCK_MS", "100".into()),
        ("GENE_API__PIPELINE__RECLAIM_AFTER_MS", "1000".into()),
        ("GENE_API__PIPELINE__RECLAIM_INTERVAL_MS", "200".into()),
        ("GENE_API__PIPELINE__RETRY_BACKOFF_MS", "50".into()),
        ("GENE_API__REDIS__RESPONSE_TIMEOUT_MS", "2000".into()),
        ("GENE_API__REDIS__CONNECT_TIMEOUT_MS", "300".into()),
        ("GENE_API__SHUTDOWN__GRACE_SECS", "5".into()),
        // Tests submit hundreds of jobs from one address in a blink; the
        // tests of the limits set their own.
        ("GENE_API__LIMITS__REQUESTS_PER_SECOND", "0".into()),
        ("GENE_API__LIMITS__SUBMISSIONS_PER_SECOND", "0".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

pub fn settings(env: &HashMap<String, String>) -> Settings {
    Settings::load(env, Path::new("/nonexistent")).expect("test settings")
}

/// The running application and what a test needs to talk to it. `R` is
/// the Redis it runs on, kept alive as long as the app: the harness's own
/// [`RedisServer`] by default; a test that starts a Redis of another kind
/// (TLS, ACL users) keeps it itself and passes `()`.
pub struct TestApp<R = RedisServer> {
    pub addr: String,
    pub redis: R,
    pub pipeline: Pipeline,
    pub client: reqwest::Client,
    shutdown: CancellationToken,
    handle: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

/// Ingress and workers in one process, loading from the shipped sample.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(Mode::Serve, Path::new(SAMPLE), &[]).await
}

pub async fn spawn_app_with(mode: Mode, source: &Path, extra: &[(&str, &str)]) -> TestApp {
    init_logs();
    let redis = tokio::task::spawn_blocking(RedisServer::start)
        .await
        .expect("redis start");
    let mut env = test_env(redis.port, source);
    for (k, v) in extra {
        env.insert(k.to_string(), v.to_string());
    }
    start(redis, mode, env).await
}

/// Builds and runs the application with `env` on a Redis the caller started.
pub async fn start<R>(redis: R, mode: Mode, env: HashMap<String, String>) -> TestApp<R> {
    init_logs();
    let app = Application::build(settings(&env), mode)
        .await
        .expect("build app");
    let addr = format!("http://{}", app.addr());
    let pipeline = app.pipeline().clone();
    let shutdown = CancellationToken::new();
    let handle = tokio::spawn(app.run(shutdown.clone()));
    TestApp {
        addr,
        redis,
        pipeline,
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap(),
        shutdown,
        handle: Some(handle),
    }
}

impl<R> TestApp<R> {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.addr)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.expect("GET")
    }

    pub async fn post(&self, path: &str) -> reqwest::Response {
        self.client.post(self.url(path)).send().await.expect("POST")
    }

    pub async fn delete(&self, path: &str) -> reqwest::Response {
        self.client
            .delete(self.url(path))
            .send()
            .await
            .expect("DELETE")
    }

    /// A worker of the same group that the test drives step by step.
    pub fn manual_worker(&self, name: &str) -> Worker {
        Worker::new(self.pipeline.clone(), name.to_string())
    }

    /// Polls a job until it is done or failed (10 s at most) and returns it.
    pub async fn wait_job(&self, id: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let job: Value = self.get(&format!("/jobs/{id}")).await.json().await.unwrap();
            let status = job["status"].as_str().unwrap_or("").to_string();
            if ["done", "failed", "cancelled"].contains(&status.as_str()) {
                return job;
            }
            assert!(Instant::now() < deadline, "job {id} stuck: {job}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// POST /data and wait until the load is finished.
    pub async fn load(&self) -> Value {
        let r = self.post("/data").await;
        assert_eq!(r.status(), 202);
        let job: Value = r.json().await.unwrap();
        self.wait_job(job["id"].as_str().unwrap()).await
    }

    /// Stops the application as SIGTERM would, and waits for it.
    pub async fn stop(&mut self) {
        self.shutdown.cancel();
        if let Some(h) = self.handle.take() {
            h.await.expect("app task").expect("app run");
        }
    }
}

impl<R> Drop for TestApp<R> {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Asserts a JSON error answer: status, `error` code, and a message containing `needle`.
pub async fn assert_error(resp: reqwest::Response, status: u16, code: &str, needle: &str) {
    assert_eq!(resp.status().as_u16(), status, "status");
    assert_eq!(
        resp.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/json"),
        "errors are JSON"
    );
    let body: Value = resp.json().await.expect("JSON error body");
    assert_eq!(body["error"], code, "{body}");
    let msg = body["message"].as_str().expect("message");
    assert!(
        msg.contains(needle),
        "message {msg:?} should contain {needle:?}"
    );
}

/// The sample's docs, parsed, for comparing with what the API returns.
pub fn sample_docs() -> Vec<Value> {
    let v: Value = serde_json::from_slice(&std::fs::read(SAMPLE).unwrap()).unwrap();
    v["response"]["docs"].as_array().unwrap().clone()
}

/// A tiny real HTTP server on the loopback that answers each request with
/// the next of `bodies`, in turn (the first again after the last); returns
/// its URL. For loads that must fetch different data sets from one source.
pub async fn serve_in_turn(bodies: Vec<Vec<u8>>) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let bodies = std::sync::Arc::new(bodies);
    tokio::spawn(async move {
        let mut turn = 0usize;
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let body = bodies[turn % bodies.len()].clone();
            turn += 1;
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let mut r = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n",
                    body.len()
                )
                .into_bytes();
                r.extend_from_slice(&body);
                let _ = s.write_all(&r).await;
            });
        }
    });
    format!("http://127.0.0.1:{port}/hgnc.json")
}

/// Another data set than the sample, told apart from it in every answer:
/// 1,500 of its records, in reverse order, each `name` ending in " [B]".
/// Returns the source's bytes and its docs.
pub fn other_data_set() -> (Vec<u8>, Vec<Value>) {
    let docs: Vec<Value> = sample_docs()
        .into_iter()
        .rev()
        .take(1500)
        .map(|mut d| {
            let name = format!("{} [B]", d["name"].as_str().unwrap_or(""));
            d["name"] = Value::String(name);
            d
        })
        .collect();
    let bytes = serde_json::to_vec(&serde_json::json!({"response": {"docs": docs}})).unwrap();
    (bytes, docs)
}

/// The value of the series named exactly `series` (name and labels) in a
/// Prometheus text page.
pub fn metric_sample(page: &str, series: &str) -> Option<f64> {
    page.lines().find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}
