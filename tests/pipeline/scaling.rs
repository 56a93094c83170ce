//! Several worker processes on one host, with default settings.

use std::time::Duration;

use crate::helpers::RedisServer;
use crate::procs::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_workers_with_default_settings_share_one_host_and_all_consume() {
    let redis = RedisServer::start();
    let api = Proc::start("api", &redis, &[]);
    // Before the fix, the second of these exited at once: "cannot listen on
    // 0.0.0.0:5001: Address already in use".
    let workers: Vec<Proc> = (0..3)
        .map(|_| Proc::start_worker_with_default_probe_port(&redis))
        .collect();
    let mut ports: Vec<u16> = workers.iter().map(|w| w.port).collect();
    ports.sort_unstable();
    ports.dedup();
    assert_eq!(ports.len(), 3, "each worker has a probe port of its own");
    // Whoever could not have the default port says where its probes went.
    let fell_back = workers
        .iter()
        .filter(|w| w.log_count("the default probe port is taken") == 1)
        .count();
    assert!(fell_back >= 2, "at most one worker holds 5001");
    for w in &workers {
        assert_eq!(http_status::get(&w.url("/health")).unwrap(), 200);
        assert_eq!(http_status::get(&w.url("/ready")).unwrap(), 200);
    }

    load(&api).await;
    let ids = submit_plots(&api, 90, 200).await;
    let records = wait_all_finished(&redis, &ids, Duration::from_secs(60));
    assert!(ids.iter().all(|i| records[i]["status"] == "done"));
    // Every worker process ran some of the jobs: the group split them.
    // The log lines come through pipes read by threads of this test: give
    // the last ones a moment to arrive.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut done: Vec<usize> = workers.iter().map(|w| w.log_count("job done")).collect();
    while done.iter().sum::<usize>() < ids.len() + 1 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        done = workers.iter().map(|w| w.log_count("job done")).collect();
    }
    assert_eq!(
        done.iter().sum::<usize>(),
        ids.len() + 1,
        "90 plots + the load: {done:?}"
    );
    assert!(
        done.iter().all(|n| *n > 0),
        "a worker consumed nothing: {done:?}"
    );
    eprintln!("jobs done per worker process: {done:?}");
}
