//! Redis 6+ ACL users and TLS: the real application against a real
//! redis-server that takes clients over TLS only, whose `default` user is off,
//! and whose gene-api user has the ACL line of docs/security.md and nothing more.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use gene_api::app::{Application, Mode};
use serde_json::Value;

use crate::helpers::*;

/// gene-api's rights, as docs/security.md gives them after `user gene-api on >PASSWORD`:
/// keys and Pub/Sub channels under the default prefix only, and no command but
/// those gene-api sends (scripts' commands included: Redis checks those too).
const ACL_RULES: &str = "resetkeys ~gene-api:* resetchannels &gene-api:* -@all \
     +select +exists +evalsha +script|load +multi +exec \
     +get +set +setex +mget +incr +incrby +decrby \
     +del +unlink +pexpire +persist +rename \
     +hset +hget +hmget +hdel +hkeys +sadd +sismember \
     +zadd +zrem +zcard +zscore +zrange +zrangebyscore +zrevrange +zremrangebyrank \
     +xadd +xack +xdel +xlen +xrange +xrevrange +xtrim +xread +xreadgroup +xautoclaim \
     +xclaim +xpending +xinfo|groups +xinfo|consumers +xgroup|create +xgroup|delconsumer \
     +wait +role +publish +subscribe";

/// Commands of [`ACL_RULES`] on paths that the service test does not take,
/// and where gene-api sends them. Every other allowed command must run there,
/// so that the line allows nothing gene-api does not use.
const SENT_ELSEWHERE: &[&str] = &[
    "setex",              // job records written outside a script (pipeline/mod.rs)
    "xdel",               // dropping and requeueing dead letters
    "xrange",             // /events resuming from Last-Event-ID; requeueing dead letters
    "xtrim",              // the reclaimer, once the stream is long
    "xclaim",             // the heartbeat of a job that runs for long
    "xgroup|delconsumer", // the reclaimer, for consumers idle for an hour
    "multi",              // dead-lettering an entry (pipeline/delivery.rs), atomically
    "exec",               // the same
    "pexpire",            // renewing the data lock of a load that runs over 10 s
    "sismember",          // telling an unknown release from one no longer kept
    "zscore",             // reads of a release named by ?release=<id>
    "wait",               // writes a client is told succeeded, with redis.min_replicas
    "role",               // with Sentinel: a named primary must say it is one
];

const USER: &str = "gene-api";
const PASSWORD: &str = "gene-api-test-password";
/// A user with gene-api's commands on someone else's keys.
const OUTSIDER: &str = "outsider";
/// The test's own user, to look behind the application.
const ADMIN: &str = "admin";

#[test]
fn the_security_page_gives_this_acl_line() {
    let page = include_str!("../../docs/security.md");
    let line = format!("user gene-api on >PASSWORD {ACL_RULES}");
    assert!(
        page.contains(&line),
        "docs/security.md should give the ACL line the tests use:\n{line}"
    );
}

/// A CA, a server certificate for 127.0.0.1 and localhost, a client
/// certificate, and a second CA that signed none of them: made by the
/// `openssl` command for each test, never committed.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("openssl.cnf"),
            "[req]\ndistinguished_name = dn\n[dn]\n\
             [ca]\nbasicConstraints = critical, CA:true\nkeyUsage = critical, keyCertSign, cRLSign\n\
             [server]\nsubjectAltName = IP:127.0.0.1, DNS:localhost\nextendedKeyUsage = serverAuth\n\
             [client]\nextendedKeyUsage = clientAuth\n",
        )
        .unwrap();
        let pki = Pki { dir };
        // A new P-256 key (fast to make), without a passphrase.
        let new_key = "-config openssl.cnf -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
                       -nodes -days 2";
        for ca in ["ca", "other-ca"] {
            pki.openssl(&format!(
                "req -x509 {new_key} -extensions ca -subj /CN=gene-api-test-{ca} \
                 -keyout {ca}.key -out {ca}.crt"
            ));
        }
        for (name, serial) in [("server", 2), ("client", 3)] {
            pki.openssl(&format!(
                "req {new_key} -subj /CN={name} -keyout {name}.key -out {name}.csr"
            ));
            pki.openssl(&format!(
                "x509 -req -in {name}.csr -CA ca.crt -CAkey ca.key -set_serial {serial} \
                 -days 2 -extfile openssl.cnf -extensions {name} -out {name}.crt"
            ));
        }
        pki
    }

    /// Runs `openssl` with `args` (split at spaces) in the folder.
    fn openssl(&self, args: &str) {
        let out = Command::new("openssl")
            .args(args.split_whitespace())
            .current_dir(self.dir.path())
            .output()
            .expect("the openssl command (scripts/test installs it)");
        assert!(
            out.status.success(),
            "openssl {args}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.path(name)).unwrap()
    }
}

/// A redis-server that listens on a TLS port only, with an ACL file:
/// `default` off, gene-api's user, the outsider, and the test's admin.
struct SecureRedis {
    port: u16,
    child: Child,
    admin: redis::Client,
    _dir: tempfile::TempDir,
}

impl SecureRedis {
    /// `auth_clients`: `optional` (a client certificate is checked when one is
    /// sent) or `yes` (one is required).
    fn start(pki: &Pki, auth_clients: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let acl = dir.path().join("users.acl");
        let outsider_rules = ACL_RULES.replace("~gene-api:*", "~someone-else:*");
        std::fs::write(
            &acl,
            format!(
                "user default off\n\
                 user {ADMIN} on >admin-password ~* &* +@all\n\
                 user {USER} on >{PASSWORD} {ACL_RULES}\n\
                 user {OUTSIDER} on >{PASSWORD} {outsider_rules}\n"
            ),
        )
        .unwrap();
        for _ in 0..5 {
            let port = free_port();
            let mut child = Command::new("redis-server")
                .args(["--port", "0", "--tls-port", &port.to_string()])
                .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
                .arg("--tls-cert-file")
                .arg(pki.path("server.crt"))
                .arg("--tls-key-file")
                .arg(pki.path("server.key"))
                .arg("--tls-ca-cert-file")
                .arg(pki.path("ca.crt"))
                .args(["--tls-auth-clients", auth_clients])
                .arg("--aclfile")
                .arg(&acl)
                .arg("--dir")
                .arg(dir.path())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("redis-server (scripts/test installs it)");
            let admin = redis::Client::build_with_tls(
                format!("rediss://{ADMIN}:admin-password@127.0.0.1:{port}/"),
                redis::TlsCertificates {
                    client_tls: Some(redis::ClientTlsConfig {
                        client_cert: pki.read("client.crt"),
                        client_key: pki.read("client.key"),
                    }),
                    root_cert: Some(pki.read("ca.crt")),
                },
            )
            .unwrap();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if admin
                    .get_connection_with_timeout(Duration::from_millis(500))
                    .is_ok()
                {
                    return SecureRedis {
                        port,
                        child,
                        admin,
                        _dir: dir,
                    };
                }
                if let Ok(Some(_)) = child.try_wait() {
                    break; // the port was taken meanwhile: another one
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("could not start redis-server with TLS (does it support --tls-port?)");
    }

    fn admin(&self) -> redis::RedisResult<redis::Connection> {
        self.admin
            .get_connection_with_timeout(Duration::from_millis(500))
    }

    /// Commands that the ACL refused since the server started (`ACL LOG`),
    /// as "<user> <command>" lines.
    fn refusals(&self) -> Vec<String> {
        let entries: Vec<HashMap<String, redis::Value>> = redis::cmd("ACL")
            .arg("LOG")
            .query(&mut self.admin().unwrap())
            .unwrap();
        let text = |v: Option<&redis::Value>| match v {
            Some(redis::Value::BulkString(b)) => String::from_utf8_lossy(b).into_owned(),
            other => format!("{other:?}"),
        };
        entries
            .iter()
            .map(|e| {
                format!(
                    "{} {} ({})",
                    text(e.get("username")),
                    text(e.get("object")),
                    text(e.get("reason"))
                )
            })
            .collect()
    }

    /// The commands the server ran, from `INFO commandstats` (`xinfo|groups` style).
    fn commands_run(&self) -> BTreeSet<String> {
        let info: String = redis::cmd("INFO")
            .arg("commandstats")
            .query(&mut self.admin().unwrap())
            .unwrap();
        info.lines()
            .filter_map(|l| l.strip_prefix("cmdstat_"))
            .filter_map(|l| l.split(':').next())
            .map(str::to_string)
            .collect()
    }
}

impl Drop for SecureRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The application in this process, as `gene-api serve` runs it, on the
/// test's own TLS Redis (which the test keeps).
type App = TestApp<()>;

async fn start_app(redis_port: u16, extra: &[(&str, String)]) -> App {
    start((), Mode::Serve, app_env(redis_port, extra)).await
}

impl TestApp<()> {
    async fn send(&self, method: reqwest::Method, path: &str) -> reqwest::Response {
        self.client
            .request(method, self.url(path))
            .send()
            .await
            .expect("request")
    }

    /// Waits (10 s at most) for /ready to answer `status` and returns its body.
    async fn ready(&self, status: u16) -> Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let r = self.get("/ready").await;
            let got = r.status().as_u16();
            let body: Value = r.json().await.unwrap();
            if got == status {
                return body;
            }
            assert!(
                Instant::now() < deadline,
                "/ready never answered {status}; last: {got} {body}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Submits a job (`POST path`) and waits for its end.
    async fn run_job(&self, path: &str) -> Value {
        let r = self.send(reqwest::Method::POST, path).await;
        assert_eq!(r.status(), 202, "POST {path}");
        let job: Value = r.json().await.unwrap();
        self.wait_job(job["id"].as_str().unwrap()).await
    }
}

fn app_env(redis_port: u16, extra: &[(&str, String)]) -> HashMap<String, String> {
    let mut env = test_env(redis_port, Path::new(SAMPLE));
    for (k, v) in extra {
        env.insert(k.to_string(), v.clone());
    }
    env
}

/// What the deployment sets for gene-api's ACL user over TLS.
fn secure_env(pki: &Pki, user: &str, password: &str) -> Vec<(&'static str, String)> {
    vec![
        ("REDIS_USERNAME", user.to_string()),
        ("REDIS_PASSWORD", password.to_string()),
        ("REDIS_TLS", "true".into()),
        ("REDIS_CA_FILE", pki.path("ca.crt").display().to_string()),
    ]
}

fn client_cert_env(pki: &Pki) -> Vec<(&'static str, String)> {
    vec![
        (
            "REDIS_CLIENT_CERT_FILE",
            pki.path("client.crt").display().to_string(),
        ),
        (
            "REDIS_CLIENT_KEY_FILE",
            pki.path("client.key").display().to_string(),
        ),
    ]
}

/// Every part of the service, over TLS, as the ACL user: if one command gene-api
/// sends were missing from the ACL line, Redis would refuse it and `ACL LOG`
/// would say which (also for commands whose failure the service tolerates).
#[tokio::test]
async fn the_documented_acl_user_over_tls_runs_every_part_of_the_service() {
    let pki = Pki::new();
    let redis = SecureRedis::start(&pki, "optional");
    let mut env = secure_env(&pki, USER, PASSWORD);
    // Two images kept: the third plot evicts the first, whose job record (in
    // the other database) the eviction script marks.
    env.push(("GENE_API__IMAGES__MAX_COUNT", "2".to_string()));
    let mut app = start_app(redis.port, &env).await;
    app.ready(200).await;

    let load = app.run_job("/data").await;
    assert_eq!(load["status"], "done", "{load}");
    for path in [
        "/genes/HGNC:5",
        "/genes",
        "/data",
        "/data/info",
        "/genes/symbol/a1bg",
        "/genes?locus_group=pseudogene",
        "/search?q=A*",
        "/info",
        "/data?format=tsv",
    ] {
        assert_eq!(app.get(path).await.status(), 200, "GET {path}");
    }
    let lookup = app
        .client
        .post(app.url("/genes/lookup"))
        .json(&serde_json::json!({"terms": ["A1BG", "HGNC:5"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(lookup.status(), 200);
    let plot = app.run_job("/image?kind=chromosome").await;
    assert_eq!(plot["status"], "done", "{plot}");
    let image = app
        .get(&format!("/image/{}", plot["id"].as_str().unwrap()))
        .await;
    assert_eq!(image.status(), 200);
    assert_eq!(image.headers()["content-type"], "image/png");
    assert!(image.bytes().await.unwrap().starts_with(b"\x89PNG"));
    for path in ["/image", "/jobs", "/jobs/stats", "/jobs/dead", "/metrics"] {
        assert_eq!(app.get(path).await.status(), 200, "GET {path}");
    }
    // The reclaimer and the scheduler run every 200 ms here: let them.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let events = app
        .get(&format!("/jobs/{}/events", plot["id"].as_str().unwrap()))
        .await;
    assert!(events.text().await.unwrap().contains("done"));
    let second = app.run_job("/image?kind=locus_group").await;
    assert_eq!(second["status"], "done", "{second}");
    let third = app.run_job("/image?kind=approval_year").await;
    assert_eq!(third["status"], "done", "{third}");
    let first: serde_json::Value = app
        .get(&format!("/jobs/{}", plot["id"].as_str().unwrap()))
        .await
        .json()
        .await
        .unwrap();
    assert!(
        first["result"]["image_evicted_at"].is_string(),
        "the evicted image's record says so: {first}"
    );
    let one = format!("/image/{}", second["id"].as_str().unwrap());
    for path in [one.as_str(), "/image", "/data"] {
        let r = app.send(reqwest::Method::DELETE, path).await;
        assert!(r.status().is_success(), "DELETE {path}: {}", r.status());
    }
    app.stop().await;

    let refused = redis.refusals();
    assert!(refused.is_empty(), "the ACL refused gene-api: {refused:#?}");
    let ran = redis.commands_run();
    let unused: Vec<&str> = ACL_RULES
        .split_whitespace()
        .filter_map(|r| r.strip_prefix('+'))
        .filter(|c| !ran.contains(*c) && !SENT_ELSEWHERE.contains(c))
        .collect();
    assert!(
        unused.is_empty(),
        "the ACL line allows commands that gene-api did not send: {unused:?} (ran: {ran:?})"
    );
}

/// With `tls-auth-clients yes`, only a client with a certificate of the CA gets in.
#[tokio::test]
async fn a_server_that_requires_a_client_certificate_gets_one() {
    let pki = Pki::new();
    let redis = SecureRedis::start(&pki, "yes");

    let mut without = start_app(redis.port, &secure_env(&pki, USER, PASSWORD)).await;
    let body = without.ready(503).await;
    let msg = body["message"].as_str().unwrap();
    assert!(
        msg.contains("CertificateRequired") && msg.contains("REDIS_CLIENT_CERT_FILE"),
        "{msg}"
    );
    without.stop().await;

    let mut env = secure_env(&pki, USER, PASSWORD);
    env.extend(client_cert_env(&pki));
    let mut with = start_app(redis.port, &env).await;
    with.ready(200).await;
    let load = with.run_job("/data").await;
    assert_eq!(load["status"], "done", "{load}");
    with.stop().await;
}

#[tokio::test]
async fn a_wrong_password_is_not_ready_and_says_which_setting_to_check() {
    let pki = Pki::new();
    let redis = SecureRedis::start(&pki, "optional");
    let mut app = start_app(redis.port, &secure_env(&pki, USER, "not-the-password")).await;
    let body = app.ready(503).await;
    let msg = body["message"].as_str().unwrap();
    assert!(
        msg.contains("refused the credentials") && msg.contains("REDIS_PASSWORD"),
        "{msg}"
    );
    assert!(
        !msg.contains("not-the-password"),
        "the password leaked: {msg}"
    );
    // Requests fail at once, as for any Redis that cannot be used.
    let t = Instant::now();
    let r = app.send(reqwest::Method::POST, "/data").await;
    assert_eq!(r.status(), 503);
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "took {:?}",
        t.elapsed()
    );
    app.stop().await;
}

/// The operator reads why in the log of the real binary, too.
#[test]
fn a_wrong_password_is_logged_as_such() {
    let pki = Pki::new();
    let redis = SecureRedis::start(&pki, "optional");
    let mut env = app_env(redis.port, &secure_env(&pki, USER, "not-the-password"));
    env.insert("GENE_API__HTTP__PORT".into(), free_port().to_string());
    let mut child = Command::new(env!("CARGO_BIN_EXE_gene-api"))
        .env_clear()
        .env("RUST_LOG", "info")
        .envs(&env)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn gene-api");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut log = String::new();
    let found = loop {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) if line.contains("Password authentication failed") => break Some(line),
            Ok(line) => log.push_str(&line),
            Err(_) => break None,
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    let line = found.unwrap_or_else(|| panic!("no such log line in:\n{log}"));
    assert!(
        !line.contains("not-the-password"),
        "the password leaked: {line}"
    );
    // With the hint /ready gives: which settings to check.
    assert!(
        line.contains("check REDIS_USERNAME and REDIS_PASSWORD"),
        "the log line does not say what to check: {line}"
    );
}

#[tokio::test]
async fn a_server_certificate_of_another_ca_is_refused() {
    let pki = Pki::new();
    let redis = SecureRedis::start(&pki, "optional");
    let mut env = secure_env(&pki, USER, PASSWORD);
    env.retain(|(k, _)| *k != "REDIS_CA_FILE");
    env.push((
        "REDIS_CA_FILE",
        pki.path("other-ca.crt").display().to_string(),
    ));
    let mut app = start_app(redis.port, &env).await;
    let body = app.ready(503).await;
    let msg = body["message"].as_str().unwrap();
    assert!(
        msg.contains("UnknownIssuer") && msg.contains("REDIS_CA_FILE"),
        "{msg}"
    );
    app.stop().await;
}

#[tokio::test]
async fn tls_to_a_port_without_tls_is_not_ready_and_does_not_hang() {
    let pki = Pki::new();
    let plain = tokio::task::spawn_blocking(RedisServer::start)
        .await
        .unwrap();
    let mut app = start_app(plain.port, &secure_env(&pki, USER, PASSWORD)).await;
    let t = Instant::now();
    let body = app.ready(503).await;
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "took {:?}",
        t.elapsed()
    );
    let msg = body["message"].as_str().unwrap();
    assert!(msg.contains("TLS port"), "{msg}");
    app.stop().await;
}

/// A user without rights on gene-api's keys: not ready, and a request fails
/// at once with a server error instead of hanging or being retried.
#[tokio::test]
async fn a_user_without_rights_on_the_prefix_is_not_ready_and_says_noperm() {
    let pki = Pki::new();
    let redis = SecureRedis::start(&pki, "optional");
    let mut app = start_app(redis.port, &secure_env(&pki, OUTSIDER, PASSWORD)).await;
    let body = app.ready(503).await;
    let msg = body["message"].as_str().unwrap();
    assert!(msg.contains("NOPERM") && msg.contains("ACL line"), "{msg}");
    let t = Instant::now();
    let r = app.send(reqwest::Method::POST, "/data").await;
    assert_eq!(r.status(), 500);
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "took {:?}",
        t.elapsed()
    );
    app.stop().await;
    assert!(
        redis.refusals().iter().all(|r| r.starts_with(OUTSIDER)),
        "{:?}",
        redis.refusals()
    );
}

/// A TLS file that cannot be used stops the start, naming the variable and the file.
#[tokio::test]
async fn unusable_tls_files_stop_the_start_naming_the_file() {
    let pki = Pki::new();
    std::fs::write(pki.path("garbage.pem"), "not a certificate\n").unwrap();
    let path = |name: &str| pki.path(name).display().to_string();
    // The files set, the one the error must name, and what it must say of it.
    let cases = [
        (
            vec![("REDIS_CA_FILE", "missing.crt")],
            "missing.crt",
            "cannot read it",
        ),
        (
            vec![("REDIS_CA_FILE", "garbage.pem")],
            "garbage.pem",
            "no PEM certificate",
        ),
        (
            vec![
                ("REDIS_CLIENT_CERT_FILE", "client.crt"),
                ("REDIS_CLIENT_KEY_FILE", "server.key"),
            ],
            "server.key",
            "does not go with REDIS_CLIENT_CERT_FILE",
        ),
    ];
    for (files, bad, needle) in cases {
        let mut env = vec![("REDIS_TLS", "true".to_string())];
        env.extend(files.iter().map(|(var, file)| (*var, path(file))));
        let err = match Application::build(settings(&app_env(1, &env)), Mode::Serve).await {
            Ok(_) => panic!("{env:?} started"),
            Err(e) => format!("{e:#}"),
        };
        assert!(
            err.contains(&format!("={}: ", path(bad))) && err.contains(needle),
            "{err}"
        );
    }

    // The binary says so on stderr and exits non-zero.
    let out = Command::new(env!("CARGO_BIN_EXE_gene-api"))
        .env_clear()
        .envs(app_env(
            1,
            &[
                ("REDIS_TLS", "true".into()),
                ("REDIS_CA_FILE", path("missing.crt")),
            ],
        ))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains(&format!(
            "invalid Redis settings: REDIS_CA_FILE={}: cannot read it",
            path("missing.crt")
        )),
        "{stderr}"
    );
}

/// A sentinel on a TLS port only, asking for a password of its own, that
/// monitors `redis` (over TLS, as the test's admin) under the name `gene-api`.
struct SecureSentinel {
    port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

const SENTINEL_PASSWORD: &str = "sentinel-test-password";

impl SecureSentinel {
    fn start(pki: &Pki, redis: &SecureRedis) -> Self {
        for _ in 0..5 {
            let dir = tempfile::tempdir().expect("tempdir");
            let port = free_port();
            let conf = dir.path().join("sentinel.conf");
            let p = |name: &str| pki.path(name).display().to_string();
            std::fs::write(
                &conf,
                format!(
                    "port 0\ntls-port {port}\nbind 127.0.0.1\ndir {}\n\
                     tls-cert-file {}\ntls-key-file {}\ntls-ca-cert-file {}\n\
                     tls-client-cert-file {}\ntls-client-key-file {}\n\
                     tls-auth-clients optional\ntls-replication yes\n\
                     requirepass {SENTINEL_PASSWORD}\n\
                     sentinel monitor gene-api 127.0.0.1 {} 1\n\
                     sentinel auth-user gene-api {ADMIN}\nsentinel auth-pass gene-api admin-password\n",
                    dir.path().display(),
                    p("server.crt"),
                    p("server.key"),
                    p("ca.crt"),
                    p("client.crt"),
                    p("client.key"),
                    redis.port
                ),
            )
            .unwrap();
            let mut child = Command::new("redis-server")
                .arg(&conf)
                .arg("--sentinel")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("redis-server --sentinel");
            let client = redis::Client::build_with_tls(
                format!("rediss://:{SENTINEL_PASSWORD}@127.0.0.1:{port}/"),
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pki.read("ca.crt")),
                },
            )
            .unwrap();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                let asked = client
                    .get_connection_with_timeout(Duration::from_millis(500))
                    .and_then(|mut c| {
                        redis::cmd("SENTINEL")
                            .arg("GET-MASTER-ADDR-BY-NAME")
                            .arg("gene-api")
                            .query::<(String, u16)>(&mut c)
                    });
                if asked.is_ok() {
                    return Self {
                        port,
                        child,
                        _dir: dir,
                    };
                }
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("could not start a TLS sentinel");
    }
}

impl Drop for SecureSentinel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// With Sentinel, TLS and the credentials follow the same settings: the
/// sentinel is asked over TLS with its own password, and the primary it
/// names is used as the ACL user over TLS. A wrong sentinel password is not
/// ready, and says which sentinel refused.
#[tokio::test]
async fn through_a_tls_sentinel_with_a_password_the_acl_user_runs_the_service() {
    let pki = Pki::new();
    let redis = SecureRedis::start(&pki, "optional");
    let sentinel = SecureSentinel::start(&pki, &redis);
    let env = |password: &str| {
        let mut env = secure_env(&pki, USER, PASSWORD);
        env.extend([
            ("REDIS_SENTINELS", format!("127.0.0.1:{}", sentinel.port)),
            ("REDIS_SENTINEL_MASTER", "gene-api".to_string()),
            ("REDIS_SENTINEL_PASSWORD", password.to_string()),
            ("REDIS_IP", String::new()),
            ("REDIS_PORT", String::new()),
        ]);
        env
    };
    let mut app = start_app(0, &env(SENTINEL_PASSWORD)).await;
    app.ready(200).await;
    let load = app.run_job("/data").await;
    assert_eq!(load["status"], "done", "{load}");
    let plot = app.run_job("/image?kind=locus_group").await;
    assert_eq!(plot["status"], "done", "{plot}");
    app.stop().await;
    let refused: Vec<String> = redis
        .refusals()
        .into_iter()
        .filter(|r| r.contains(USER))
        .collect();
    assert!(refused.is_empty(), "ACL refusals: {refused:?}");

    let mut wrong = start_app(0, &env("not-the-sentinel-password")).await;
    // Not ready from the start; once the sentinel was asked, it says why.
    let deadline = Instant::now() + Duration::from_secs(10);
    let msg = loop {
        let body = wrong.ready(503).await;
        let msg = body["message"].as_str().unwrap().to_string();
        if msg.contains("no sentinel answers") || Instant::now() > deadline {
            break msg;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        msg.contains("no sentinel answers")
            && msg.contains(&format!("127.0.0.1:{}", sentinel.port))
            && msg.contains("REDIS_SENTINEL_PASSWORD"),
        "{msg}"
    );
    assert!(!msg.contains("not-the-sentinel-password"), "{msg}");
    wrong.stop().await;
}
