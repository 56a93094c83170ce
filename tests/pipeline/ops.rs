//! What a cluster operator sees: log lines fit for a collector, and a calm
//! process while Redis is away.

use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::{free_port, metric_sample, RedisServer};
use crate::procs::*;

/// Probes and one real request, then the log as the process wrote it to a pipe.
fn exercise(p: &Proc) -> String {
    for _ in 0..5 {
        assert_eq!(http_status::get(&p.url("/health")).unwrap(), 200);
        assert_eq!(http_status::get(&p.url("/ready")).unwrap(), 200);
    }
    assert_eq!(http_status::get(&p.url("/genes")).unwrap(), 404);
    // The request's line is written after the answer and read through a
    // pipe: wait for it, then a little more for any probe line behind it.
    let deadline = Instant::now() + Duration::from_secs(10);
    while p.log_count("/genes") == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    let log = p.log.lock().unwrap().clone();
    log
}

#[test]
fn logs_to_a_pipe_have_no_colour_escapes_and_probes_stay_out_of_info() {
    let redis = RedisServer::start();
    let text = Proc::start("api", &redis, &[]);
    let log = exercise(&text);
    assert!(!log.contains('\u{1b}'), "ANSI escapes in a pipe: {log:?}");
    let requests: Vec<&str> = log.lines().filter(|l| l.contains(" request ")).collect();
    assert!(
        requests
            .iter()
            .any(|l| l.contains("path=\"/genes\"") && l.contains("status=404")),
        "{log}"
    );
    assert!(
        !log.contains("/health") && !log.contains("/ready"),
        "probes logged at info: {log}"
    );
}

#[test]
fn the_json_log_format_writes_one_object_per_line_with_fields() {
    let redis = RedisServer::start();
    let json = Proc::start("api", &redis, &[("GENE_API__LOG__FORMAT", "json")]);
    let log = exercise(&json);
    let lines: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(lines.len() >= 2, "{log}");
    for l in &lines {
        assert!(
            l["timestamp"].is_string() && l["level"].is_string() && l["message"].is_string(),
            "{l}"
        );
    }
    let genes = lines
        .iter()
        .find(|l| l["path"] == "/genes")
        .expect("the request to /genes is logged");
    assert_eq!(
        (genes["message"].as_str(), genes["status"].as_u64()),
        (Some("request"), Some(404))
    );
    assert_eq!(genes["level"], "INFO");
    assert!(!lines
        .iter()
        .any(|l| l["path"] == "/health" || l["path"] == "/ready"));
    // A bad format is refused at start-up, naming the choices.
    let out = std::process::Command::new(BIN)
        .arg("api")
        .env_clear()
        .env("REDIS_IP", "127.0.0.1")
        .env("GENE_API__LOG__FORMAT", "xml")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("json") && err.contains("text"), "{err}");
}

/// A "Redis" that accepts connections and drops them at once, as a
/// crash-looping one does, counting the attempts.
struct FlakyRedis {
    port: u16,
    attempts: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FlakyRedis {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let (attempts, stop) = (
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicBool::new(false)),
        );
        let (a, s) = (attempts.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        a.fetch_add(1, Ordering::SeqCst);
                        drop(conn);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        Self {
            port,
            attempts,
            stop,
            thread: Some(thread),
        }
    }

    fn attempts(&self) -> usize {
        self.attempts.load(Ordering::SeqCst)
    }

    /// Stops listening, so a real Redis can take the port.
    fn close(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_redis_is_away_connection_attempts_back_off_and_it_recovers_in_seconds() {
    let flaky = FlakyRedis::start();
    let serve = Proc::start_without_redis("serve", flaky.port, &[]);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    // Traffic as on a cluster: probes, and clients that keep asking.
    let window = Duration::from_secs(10);
    let before = flaky.attempts();
    let t0 = Instant::now();
    let mut answers = std::collections::HashMap::<u16, usize>::new();
    while t0.elapsed() < window {
        for path in ["/ready", "/genes/HGNC:5", "/jobs"] {
            let r = client.get(serve.url(path)).send().await.unwrap();
            *answers.entry(r.status().as_u16()).or_default() += 1;
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    let attempts = flaky.attempts() - before;
    let per_minute = attempts as f64 * 60.0 / window.as_secs_f64();
    eprintln!("Redis away for {window:?}: {attempts} connection attempts ({per_minute:.0}/min); answers {answers:?}");
    assert_eq!(
        answers.keys().copied().collect::<Vec<_>>(),
        [503],
        "every request answered 503 at once"
    );
    // One attempt per pause (100 ms doubling to 2 s, jittered down by up to
    // half) for the whole process, each at most two connections (the attempt
    // and the reconnect it sets off): about 20 in 10 s, under 30 even with
    // the shortest pauses. Without the pacing it was 128.
    assert!(attempts <= 40, "{attempts} attempts in {window:?}");

    // Redis comes back on the same address: ready again within seconds.
    let port = flaky.port;
    flaky.close();
    let redis = RedisServer::start_on(port);
    let back = Instant::now();
    while http_status::get(&serve.url("/ready")).ok() != Some(200) {
        assert!(
            back.elapsed() < Duration::from_secs(10),
            "not ready 10 s after Redis returned"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let recovery = back.elapsed();
    eprintln!("ready {recovery:?} after Redis returned");
    // About two pauses (2 s at most each) plus the probe's own poll; the
    // margin is for a loaded CI machine.
    assert!(recovery < Duration::from_secs(8), "{recovery:?}");
    drop(redis);
    let _ = free_port();
}

async fn scrape(p: &Proc) -> String {
    let r = reqwest::get(p.url("/metrics")).await.unwrap();
    assert_eq!(r.status(), 200);
    r.text().await.unwrap()
}

/// Fresh processes (the recorder is process-wide, so only a process of its
/// own shows what a first scrape sees): every job series is there at 0
/// before any job, and moves from 0 once one runs.
#[tokio::test]
async fn every_job_series_is_exported_at_zero_from_the_first_scrape() {
    let redis = RedisServer::start();
    let api = Proc::start("api", &redis, &[]);
    let worker = Proc::start("worker", &redis, &[]);
    let mut series = vec!["gene_api_jobs_dead_lettered_total".to_string()];
    for kind in ["load", "plot"] {
        series.push(format!("gene_api_jobs_submitted_total{{kind=\"{kind}\"}}"));
        series.push(format!("gene_api_job_retries_total{{kind=\"{kind}\"}}"));
        series.push(format!("gene_api_jobs_in_progress{{kind=\"{kind}\"}}"));
        series.push(format!(
            "gene_api_job_duration_seconds_count{{kind=\"{kind}\"}}"
        ));
        for state in ["done", "failed", "cancelled"] {
            series.push(format!(
                "gene_api_jobs_finished_total{{kind=\"{kind}\",state=\"{state}\"}}"
            ));
        }
    }
    for p in [&api, &worker] {
        let page = scrape(p).await;
        for s in &series {
            assert_eq!(
                metric_sample(&page, s),
                Some(0.0),
                "{s} before any job\n{page}"
            );
        }
    }
    // One load through the api, run by the worker: its series leave 0, the others stay.
    load(&api).await;
    let (a, w) = (scrape(&api).await, scrape(&worker).await);
    let submitted = "gene_api_jobs_submitted_total{kind=\"load\"}";
    let done = "gene_api_jobs_finished_total{kind=\"load\",state=\"done\"}";
    assert_eq!(metric_sample(&a, submitted), Some(1.0), "{a}");
    assert_eq!(metric_sample(&w, done), Some(1.0), "{w}");
    assert_eq!(
        metric_sample(&w, "gene_api_job_duration_seconds_count{kind=\"load\"}"),
        Some(1.0)
    );
    for s in &series {
        if s != submitted && !s.starts_with("gene_api_job_duration_seconds_count{kind=\"load\"") {
            assert_eq!(metric_sample(&a, s), Some(0.0), "api {s}");
        }
        if s != done && !s.starts_with("gene_api_job_duration_seconds_count{kind=\"load\"") {
            assert_eq!(metric_sample(&w, s), Some(0.0), "worker {s}");
        }
    }
}
