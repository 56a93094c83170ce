//! Typed settings, layered: `config/default.toml` (compiled in) -> optional
//! `config/$APP_ENV.toml` -> `GENE_API__SECTION__KEY` environment variables,
//! plus the deployment-facing `REDIS_IP`, `REDIS_PORT`, `REDIS_USERNAME`,
//! `REDIS_PASSWORD`, `REDIS_TLS`, `REDIS_CA_FILE`, `REDIS_CLIENT_CERT_FILE`
//! and `REDIS_CLIENT_KEY_FILE`, or instead of `REDIS_IP`/`REDIS_PORT` the
//! Sentinel ones: `REDIS_SENTINELS`, `REDIS_SENTINEL_MASTER`,
//! `REDIS_SENTINEL_USERNAME` and `REDIS_SENTINEL_PASSWORD`.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::schedule::Schedule;

/// The defaults, compiled in so the binary runs from any directory.
const DEFAULTS: &str = include_str!("../config/default.toml");

/// Everything the service can be told.
#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    pub redis: RedisSettings,
    pub http: HttpSettings,
    pub data: DataSettings,
    pub workers: WorkerSettings,
    pub pipeline: PipelineSettings,
    pub shutdown: ShutdownSettings,
    #[serde(default)]
    pub log: LogSettings,
    pub metrics: MetricsSettings,
    pub auth: AuthSettings,
    pub limits: LimitSettings,
    pub images: ImageSettings,
    pub cache: CacheSettings,
}

#[derive(Debug, Clone, Deserialize)]
pub struct CacheSettings {
    /// Api processes hold the records of the releases they read and answer
    /// from memory while Redis's announcements are trusted
    /// (`GENE_API__CACHE__RECORDS`); false: every read asks Redis.
    pub records: bool,
    /// How often the announcements are confirmed against Redis; a view not
    /// confirmed for two of these is not trusted.
    #[serde(deserialize_with = "millis", rename = "verify_ms")]
    pub verify: Duration,
    /// Releases (but the live one) nobody read for this long are dropped
    /// from memory; they stay in Redis.
    #[serde(deserialize_with = "secs", rename = "idle_secs")]
    pub idle: Duration,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AuthSettings {
    /// The keys file (`GENE_API__AUTH__KEYS_FILE`); unset: the service runs open.
    #[serde(default)]
    pub keys_file: Option<std::path::PathBuf>,
    /// Reads need a key too (any scope).
    pub protect_reads: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct LimitSettings {
    /// Requests a client may make per second (0: no limit), and in a burst.
    pub requests_per_second: u32,
    pub burst: u32,
    /// Job submissions a client may make per second (0: no limit), and in a burst.
    pub submissions_per_second: u32,
    pub submission_burst: u32,
    /// Behind a proxy: the header whose last address is the client's.
    #[serde(default)]
    pub client_ip_header: Option<String>,
    /// Submissions are refused (503 busy) while lag + pending exceeds this (0: never).
    pub max_backlog: u64,
    /// Concurrent event streams per client (0: no limit).
    pub streams_per_client: usize,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ImageSettings {
    /// At most this many images are kept; the oldest go first (0: no limit).
    pub max_count: u64,
    /// At most this many bytes of PNG are kept (0: no limit).
    pub max_bytes: u64,
    /// Images expire after this long (0: never).
    #[serde(deserialize_with = "secs", rename = "ttl_secs")]
    pub ttl: Duration,
    /// Bytes of rendered charts a worker process keeps for reuse (0: none).
    pub render_cache_bytes: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct MetricsSettings {
    /// `GET /metrics` on the API and probe ports (`GENE_API__METRICS__ENABLED`).
    pub enabled: bool,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct LogSettings {
    /// `text` (default) or `json` (`GENE_API__LOG__FORMAT`).
    #[serde(default)]
    pub format: crate::telemetry::LogFormat,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RedisSettings {
    /// From `REDIS_IP`; required unless `sentinel` is set (then empty).
    pub host: String,
    /// Where the primary is asked for, instead of `host` (`REDIS_SENTINELS`).
    #[serde(default)]
    pub sentinel: Option<SentinelSettings>,
    /// A submission (and the other writes a client is told succeeded) is
    /// answered only once this many replicas have it (`WAIT`); 0: at once.
    pub min_replicas: u32,
    /// How long a write waits for those replicas before the client is told
    /// it is not yet safe.
    #[serde(rename = "wait_timeout_ms", deserialize_with = "millis")]
    pub wait_timeout: Duration,
    /// With Sentinel: how often the sentinels are asked even when nothing
    /// failed, in case a `+switch-master` announcement was missed.
    #[serde(rename = "sentinel_poll_ms", deserialize_with = "millis")]
    pub sentinel_poll: Duration,
    pub port: u16,
    /// A Redis 6+ ACL user (`REDIS_USERNAME`); unset means the `default` user.
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<Secret>,
    /// TLS to Redis (`REDIS_TLS`). The server's certificate must name `host`.
    #[serde(default)]
    pub tls: bool,
    /// PEM file of the CA(s) that signed the server's certificate (`REDIS_CA_FILE`);
    /// unset means the public web roots, compiled in.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Client certificate chain and its key, both PEM, for servers that ask for
    /// one (`tls-auth-clients yes`): `REDIS_CLIENT_CERT_FILE`, `REDIS_CLIENT_KEY_FILE`.
    #[serde(default)]
    pub client_cert_file: Option<PathBuf>,
    #[serde(default)]
    pub client_key_file: Option<PathBuf>,
    pub key_prefix: String,
    /// Per-command reply deadline.
    #[serde(rename = "response_timeout_ms", deserialize_with = "millis")]
    pub response_timeout: Duration,
    #[serde(rename = "connect_timeout_ms", deserialize_with = "millis")]
    pub connect_timeout: Duration,
    /// Longest pause between connection attempts while Redis is away.
    #[serde(rename = "reconnect_max_pause_ms", deserialize_with = "millis")]
    pub reconnect_max_pause: Duration,
}

/// Redis Sentinel: the processes that know which Redis is the primary now.
#[derive(Debug, Clone, Deserialize)]
pub struct SentinelSettings {
    /// `host:port` of each sentinel (`REDIS_SENTINELS`, comma-separated).
    pub nodes: Vec<SentinelNode>,
    /// The name the sentinels monitor the primary under (`REDIS_SENTINEL_MASTER`).
    pub master: String,
    /// The sentinels' own credentials, when they ask for any
    /// (`REDIS_SENTINEL_USERNAME`, `REDIS_SENTINEL_PASSWORD`).
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<Secret>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SentinelNode {
    pub host: String,
    pub port: u16,
}

impl fmt::Display for SentinelNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

/// `REDIS_SENTINELS`: `host:port,host:port,...` (the port defaults to 26379).
fn sentinel_nodes(list: &str) -> Result<Vec<(String, u16)>, ConfigError> {
    let bad = |why: &str| {
        ConfigError::BadSentinels(format!(
            "{why}; expected host:port[,host:port...], got {list:?}"
        ))
    };
    let mut nodes = Vec::new();
    for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (host, port) = match item.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') || h.starts_with('[') => {
                let port = p
                    .parse::<u16>()
                    .ok()
                    .filter(|p| *p != 0)
                    .ok_or_else(|| bad(&format!("{p:?} is not a port")))?;
                (h.trim_matches(|c| c == '[' || c == ']'), port)
            }
            _ => (item, 26379),
        };
        if host.is_empty() {
            return Err(bad("a sentinel has no host"));
        }
        nodes.push((host.to_string(), port));
    }
    if nodes.is_empty() {
        return Err(bad("no sentinel given"));
    }
    Ok(nodes)
}

#[derive(Debug, Clone, Deserialize)]
pub struct HttpSettings {
    pub host: IpAddr,
    pub port: u16,
    /// Longest `Prefer: wait` honoured.
    #[serde(rename = "max_wait_secs", deserialize_with = "secs")]
    pub max_wait: Duration,
    pub jobs_list_limit: usize,
    /// Time a client has to send a request's headers (also bounds idle keep-alive).
    #[serde(deserialize_with = "secs", rename = "header_timeout_secs")]
    pub header_timeout: Duration,
    /// Larger request heads are refused.
    pub max_header_bytes: usize,
    /// How long an Idempotency-Key is remembered (at most as long as a
    /// finished job is kept, `pipeline.job_ttl_secs`).
    #[serde(rename = "idempotency_ttl_secs", deserialize_with = "secs")]
    pub idempotency_ttl: Duration,
    /// The origins whose pages may call the API (`GENE_API__HTTP__CORS_ORIGINS`):
    /// a comma-separated list, `*`, or empty for none.
    #[serde(default)]
    pub cors_origins: String,
    /// `cors_origins`, parsed when the settings are checked.
    #[serde(skip)]
    pub cors: CorsOrigins,
}

/// Which other origins' pages may call the API (CORS).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum CorsOrigins {
    /// None: no CORS headers, as before there were any.
    #[default]
    Off,
    /// `*`: any page may read (GET, HEAD), without a key; writes from other
    /// origins are refused.
    AnyReads,
    /// These origins (`scheme://host[:port]`) may do what their keys allow.
    Listed(Vec<String>),
}

#[derive(Debug, Clone, Deserialize)]
pub struct DataSettings {
    pub source: String,
    pub max_bytes: u64,
    #[serde(rename = "fetch_timeout_secs", deserialize_with = "secs")]
    pub fetch_timeout: Duration,
    #[serde(rename = "connect_timeout_secs", deserialize_with = "secs")]
    pub connect_timeout: Duration,
    /// HGNC's `withdrawn.txt` of the same release: a URL or a path.
    pub withdrawn: String,
    /// Releases kept, the live one included.
    pub keep_releases: usize,
    /// Templates (`{date}`) of an archived release and its withdrawn file.
    pub archive_source: String,
    pub archive_withdrawn: String,
    /// A cron expression for scheduled loads; empty: none.
    #[serde(default)]
    pub refresh: String,
    /// `refresh`, parsed when the settings are checked; None when it is empty.
    #[serde(skip)]
    pub refresh_schedule: Option<Schedule>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct WorkerSettings {
    /// Consumers per process, and loads or renders at once per process.
    pub concurrency: usize,
    /// Entries one consumer takes per XREADGROUP and runs side by side.
    pub batch: usize,
    /// Where `gene-api worker`'s probe server listens. Its own setting, not
    /// `http.host`: the orchestrator must reach a worker's probes whatever
    /// narrows the API's address.
    pub health_host: IpAddr,
    /// The probe server's port of `gene-api worker`. When unset, the worker
    /// tries [`DEFAULT_HEALTH_PORT`] and, if another process on the host has it,
    /// a free port (logged), so several workers can share a host with default
    /// settings. When set, that port is used or the worker stops.
    #[serde(default)]
    pub health_port: Option<u16>,
}

/// The worker probe port tried first when `workers.health_port` is unset.
pub const DEFAULT_HEALTH_PORT: u16 = 5001;

#[derive(Debug, Clone, Deserialize)]
pub struct PipelineSettings {
    /// How long one XREADGROUP blocks before the consumer checks for shutdown.
    #[serde(rename = "block_ms", deserialize_with = "millis")]
    pub block: Duration,
    /// Idle time after which a pending entry is taken from its consumer.
    #[serde(rename = "reclaim_after_ms", deserialize_with = "millis")]
    pub reclaim_after: Duration,
    #[serde(rename = "reclaim_interval_ms", deserialize_with = "millis")]
    pub reclaim_interval: Duration,
    pub max_attempts: u32,
    #[serde(rename = "retry_backoff_ms", deserialize_with = "millis")]
    pub retry_backoff: Duration,
    /// How long finished job records are kept.
    #[serde(rename = "job_ttl_secs", deserialize_with = "secs")]
    pub job_ttl: Duration,
    pub stream_max_len: u64,
    /// Roughly how many job state changes the events stream keeps (what
    /// `Last-Event-ID` can resume from).
    pub events_max_len: usize,
    pub jobs_index_max: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ShutdownSettings {
    /// Time to finish jobs in hand after SIGTERM / Ctrl-C.
    #[serde(rename = "grace_secs", deserialize_with = "secs")]
    pub grace: Duration,
}

// The files and variables keep their unit in the name (`_ms`, `_secs`), which
// operators read; the code gets a `Duration` and never converts again.
fn millis<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    u64::deserialize(d).map(Duration::from_millis)
}

fn secs<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    u64::deserialize(d).map(Duration::from_secs)
}

/// A value that must never reach a log line.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Why the settings could not be built. Each message tells the operator what to change.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "REDIS_IP is not set: gene-api needs the Redis host. Set it in the environment, \
         e.g. `REDIS_IP=127.0.0.1 gene-api` (docker-compose: `REDIS_IP=redis`, \
         Kubernetes: the Redis Service name), or find the primary through Redis \
         Sentinel with REDIS_SENTINELS=host:port,... and REDIS_SENTINEL_MASTER=<name>"
    )]
    MissingRedisIp,
    #[error("REDIS_SENTINELS: {0}")]
    BadSentinels(String),
    #[error(
        "REDIS_SENTINELS and REDIS_SENTINEL_MASTER go together: set both (the sentinels, \
         and the name they monitor the primary under) or neither"
    )]
    SentinelHalf,
    #[error(
        "REDIS_IP and REDIS_SENTINELS are both set: with Sentinel the primary's address \
         comes from the sentinels; unset REDIS_IP (and REDIS_PORT)"
    )]
    SentinelAndIp,
    #[error("REDIS_PORT must be a port number (1-65535), got {0:?}")]
    BadRedisPort(String),
    #[error("REDIS_TLS must be true or false, got {0:?}")]
    BadRedisTls(String),
    #[error("invalid configuration: {0}")]
    Invalid(#[from] config::ConfigError),
    #[error("invalid configuration: {0}")]
    Rule(String),
}

impl Settings {
    /// Settings from this process's environment and `./config` (or `$GENE_API_CONFIG_DIR`).
    pub fn from_env() -> Result<Self, ConfigError> {
        let env: HashMap<String, String> = std::env::vars().collect();
        let dir = env
            .get("GENE_API_CONFIG_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("config"));
        Self::load(&env, &dir)
    }

    /// Settings from an explicit environment map and config folder (what tests call).
    pub fn load(env: &HashMap<String, String>, config_dir: &Path) -> Result<Self, ConfigError> {
        let var = |name: &str| env.get(name).map(|s| s.trim()).filter(|s| !s.is_empty());
        let redis_ip = var("REDIS_IP");
        let sentinels = match (var("REDIS_SENTINELS"), var("REDIS_SENTINEL_MASTER")) {
            (Some(list), Some(master)) => Some((sentinel_nodes(list)?, master)),
            (None, None) => None,
            _ => return Err(ConfigError::SentinelHalf),
        };
        let redis_ip = match (redis_ip, &sentinels) {
            (Some(_), Some(_)) => return Err(ConfigError::SentinelAndIp),
            (Some(ip), None) => ip,
            (None, Some(_)) => "",
            (None, None) => return Err(ConfigError::MissingRedisIp),
        };

        let mut builder = config::Config::builder()
            .add_source(config::File::from_str(DEFAULTS, config::FileFormat::Toml));
        if let Some(app_env) = env.get("APP_ENV").filter(|s| !s.is_empty()) {
            builder = builder.add_source(
                config::File::from(config_dir.join(format!("{app_env}.toml"))).required(false),
            );
        }
        let env_source: config::Map<String, String> = env
            .iter()
            .filter(|(k, _)| k.starts_with("GENE_API__"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        builder = builder
            .add_source(
                config::Environment::with_prefix("GENE_API")
                    .prefix_separator("__")
                    .separator("__")
                    .try_parsing(true)
                    .source(Some(env_source)),
            )
            .set_override("redis.host", redis_ip)?;
        if let Some((nodes, master)) = sentinels {
            let nodes: Vec<config::Value> = nodes
                .into_iter()
                .map(|(host, port)| {
                    let mut node = config::Map::new();
                    node.insert("host".to_string(), config::Value::from(host));
                    node.insert("port".to_string(), config::Value::from(port as i64));
                    config::Value::from(node)
                })
                .collect();
            builder = builder
                .set_override("redis.sentinel.nodes", nodes)?
                .set_override("redis.sentinel.master", master)?;
            for (var, key) in [
                ("REDIS_SENTINEL_USERNAME", "redis.sentinel.username"),
                ("REDIS_SENTINEL_PASSWORD", "redis.sentinel.password"),
            ] {
                if let Some(value) = env.get(var).filter(|s| !s.is_empty()) {
                    builder = builder.set_override(key, value.as_str())?;
                }
            }
        }
        if let Some(port) = env.get("REDIS_PORT").filter(|s| !s.is_empty()) {
            let port: u16 = port
                .trim()
                .parse()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| ConfigError::BadRedisPort(port.clone()))?;
            builder = builder.set_override("redis.port", port)?;
        }
        if let Some(tls) = env.get("REDIS_TLS").filter(|s| !s.is_empty()) {
            let tls = match tls.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" => true,
                "false" | "0" | "no" => false,
                _ => return Err(ConfigError::BadRedisTls(tls.clone())),
            };
            builder = builder.set_override("redis.tls", tls)?;
        }
        for (var, key) in [
            ("REDIS_USERNAME", "redis.username"),
            ("REDIS_PASSWORD", "redis.password"),
            ("REDIS_CA_FILE", "redis.ca_file"),
            ("REDIS_CLIENT_CERT_FILE", "redis.client_cert_file"),
            ("REDIS_CLIENT_KEY_FILE", "redis.client_key_file"),
        ] {
            if let Some(value) = env.get(var).filter(|s| !s.is_empty()) {
                builder = builder.set_override(key, value.as_str())?;
            }
        }
        let mut settings: Settings = builder.build()?.try_deserialize()?;
        settings.check()?;
        Ok(settings)
    }

    /// Enforces what the types do not, and parses the values that have a
    /// type of their own (`data.refresh` into a [`Schedule`]).
    fn check(&mut self) -> Result<(), ConfigError> {
        self.data.refresh_schedule = refresh_schedule(&self.data.refresh)?;
        self.http.cors = cors_origins(&self.http.cors_origins, self.auth.protect_reads)?;
        let rule = |ok: bool, msg: &str| {
            if ok {
                Ok(())
            } else {
                Err(ConfigError::Rule(msg.to_string()))
            }
        };
        rule(
            (1..=100).contains(&self.data.keep_releases),
            "data.keep_releases (GENE_API__DATA__KEEP_RELEASES) must be between 1 and 100",
        )?;
        for (name, t) in [
            ("data.archive_source", &self.data.archive_source),
            ("data.archive_withdrawn", &self.data.archive_withdrawn),
        ] {
            if !t.contains("{date}") {
                return Err(ConfigError::Rule(format!(
                    "{name} must contain {{date}}, where the release date goes; got {t:?}"
                )));
            }
        }
        rule(
            self.workers.concurrency >= 1,
            "workers.concurrency must be at least 1",
        )?;
        rule(
            (1..=1000).contains(&self.workers.batch),
            "workers.batch must be between 1 and 1000",
        )?;
        rule(
            self.pipeline.max_attempts >= 1,
            "pipeline.max_attempts must be at least 1",
        )?;
        rule(
            !self.pipeline.block.is_zero(),
            "pipeline.block_ms must be at least 1",
        )?;
        rule(
            self.pipeline.reclaim_after >= Duration::from_millis(100),
            "pipeline.reclaim_after_ms must be at least 100",
        )?;
        rule(
            !self.redis.key_prefix.is_empty() && !self.redis.key_prefix.contains(' '),
            "redis.key_prefix must be a non-empty word",
        )?;
        let r = &self.redis;
        rule(
            r.username
                .as_deref()
                .is_none_or(|u| !u.is_empty() && !u.contains(char::is_whitespace)),
            "redis.username (REDIS_USERNAME) must be one word",
        )?;
        // Without a password redis-rs sends no AUTH at all, so the username
        // would be ignored and the connection would silently be `default`'s.
        rule(
            r.username.is_none() || r.password.is_some(),
            "REDIS_USERNAME is set but REDIS_PASSWORD is not: an ACL user needs its password",
        )?;
        rule(
            r.client_cert_file.is_some() == r.client_key_file.is_some(),
            "REDIS_CLIENT_CERT_FILE and REDIS_CLIENT_KEY_FILE go together: set both or neither",
        )?;
        // A CA or client certificate with TLS off is a deployment that believes
        // it is encrypted and is not.
        rule(
            r.tls || (r.ca_file.is_none() && r.client_cert_file.is_none()),
            "REDIS_CA_FILE / REDIS_CLIENT_CERT_FILE are set but TLS is off: set REDIS_TLS=true",
        )?;
        rule(
            !self.data.source.trim().is_empty(),
            "data.source (GENE_API__DATA__SOURCE) must name a URL or a file",
        )?;
        Ok(())
    }

    /// Where the HTTP ingress listens.
    pub fn http_addr(&self) -> SocketAddr {
        SocketAddr::new(self.http.host, self.http.port)
    }

    /// Where `gene-api worker` answers health probes, and whether that port
    /// was asked for explicitly (then a busy port is an error, not a fallback).
    pub fn worker_health_addr(&self) -> (SocketAddr, bool) {
        let port = self.workers.health_port;
        (
            SocketAddr::new(
                self.workers.health_host,
                port.unwrap_or(DEFAULT_HEALTH_PORT),
            ),
            port.is_some(),
        )
    }
}

/// `http.cors_origins` parsed. `*` only while reads are open: a page of any
/// origin could otherwise read with the key of whoever opens it, and the
/// keys are what protects the reads. Each other entry is an origin as a
/// browser sends it (`scheme://host[:port]`, no path), compared exactly.
fn cors_origins(list: &str, protect_reads: bool) -> Result<CorsOrigins, ConfigError> {
    let items: Vec<&str> = list
        .split([',', ' '])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    let rule = |msg: String| Err(ConfigError::Rule(msg));
    if items.is_empty() {
        return Ok(CorsOrigins::Off);
    }
    if items.contains(&"*") {
        if items.len() > 1 {
            return rule(format!(
                "http.cors_origins (GENE_API__HTTP__CORS_ORIGINS) is `*` or a list of origins, not both: {list:?}"
            ));
        }
        if protect_reads {
            return rule(
                "http.cors_origins = `*` needs open reads: with auth.protect_reads on, list the \
                 origins that may call the API instead"
                    .into(),
            );
        }
        return Ok(CorsOrigins::AnyReads);
    }
    for o in &items {
        let rest = o
            .strip_prefix("https://")
            .or_else(|| o.strip_prefix("http://"));
        let well_formed = rest.is_some_and(|r| {
            !r.is_empty()
                && !r.contains(['/', '?', '#', '@'])
                && r.parse::<warp::http::uri::Authority>().is_ok()
        });
        if !well_formed {
            return rule(format!(
                "http.cors_origins (GENE_API__HTTP__CORS_ORIGINS): {o:?} is not an origin; \
                 write it as a browser sends it, scheme://host[:port] with no path, e.g. https://lab.example.org"
            ));
        }
    }
    Ok(CorsOrigins::Listed(
        items.into_iter().map(String::from).collect(),
    ))
}

/// `data.refresh` parsed: None when empty (no scheduled loads).
fn refresh_schedule(expr: &str) -> Result<Option<Schedule>, ConfigError> {
    if expr.trim().is_empty() {
        return Ok(None);
    }
    Schedule::parse(expr).map(Some).map_err(|why| {
        ConfigError::Rule(format!(
            "data.refresh (GENE_API__DATA__REFRESH) must be a cron expression of 5 fields \
             (minute hour day-of-month month day-of-week, UTC), or 6 with seconds first, \
             e.g. \"0 0 3 * * *\" for 03:00 daily; got {expr:?}: {why}"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn cors_origins_are_parsed_and_checked() {
        assert_eq!(cors_origins("", false).unwrap(), CorsOrigins::Off);
        assert_eq!(cors_origins(" * ", false).unwrap(), CorsOrigins::AnyReads);
        assert_eq!(
            cors_origins("https://lab.example.org, http://localhost:8888", true).unwrap(),
            CorsOrigins::Listed(vec![
                "https://lab.example.org".into(),
                "http://localhost:8888".into()
            ])
        );
        for (bad, protect_reads, says) in [
            ("*", true, "open reads"),
            ("*, https://a.org", false, "not both"),
            ("https://lab.example.org/", false, "no path"),
            ("lab.example.org", false, "scheme://host"),
            ("ftp://lab.example.org", false, "scheme://host"),
            ("https://", false, "scheme://host"),
        ] {
            let e = cors_origins(bad, protect_reads).unwrap_err().to_string();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    fn no_dir() -> PathBuf {
        PathBuf::from("/nonexistent-gene-api-config")
    }

    #[test]
    fn missing_redis_ip_names_the_variable_and_how_to_set_it() {
        for e in [env(&[]), env(&[("REDIS_IP", "  ")])] {
            let err = Settings::load(&e, &no_dir()).unwrap_err();
            assert!(matches!(err, ConfigError::MissingRedisIp));
            let msg = err.to_string();
            assert!(msg.contains("REDIS_IP") && msg.contains("REDIS_IP=127.0.0.1"));
            assert!(
                msg.contains("REDIS_SENTINELS"),
                "names the other way: {msg}"
            );
        }
    }

    #[test]
    fn sentinels_replace_redis_ip() {
        let s = Settings::load(
            &env(&[
                ("REDIS_SENTINELS", "s1:26379, s2:26380,s3"),
                ("REDIS_SENTINEL_MASTER", "gene-api"),
                ("REDIS_SENTINEL_PASSWORD", "pw"),
            ]),
            &no_dir(),
        )
        .unwrap();
        let sentinel = s.redis.sentinel.expect("sentinel settings");
        let nodes: Vec<String> = sentinel.nodes.iter().map(|n| n.to_string()).collect();
        assert_eq!(nodes, ["s1:26379", "s2:26380", "s3:26379"]);
        assert_eq!(sentinel.master, "gene-api");
        assert_eq!(sentinel.password.unwrap().expose(), "pw");
        assert!(sentinel.username.is_none());
        assert_eq!(s.redis.min_replicas, 0);
        assert_eq!(s.redis.wait_timeout, Duration::from_millis(1000));
        // Plain REDIS_IP has none.
        let plain = Settings::load(&env(&[("REDIS_IP", "h")]), &no_dir()).unwrap();
        assert!(plain.redis.sentinel.is_none());
    }

    #[test]
    fn sentinel_settings_that_cannot_work_are_refused_by_name() {
        for (pairs, want) in [
            (
                vec![("REDIS_SENTINELS", "s1:26379")],
                "REDIS_SENTINEL_MASTER",
            ),
            (
                vec![("REDIS_SENTINEL_MASTER", "m")],
                "REDIS_SENTINELS and REDIS_SENTINEL_MASTER",
            ),
            (
                vec![
                    ("REDIS_IP", "h"),
                    ("REDIS_SENTINELS", "s1"),
                    ("REDIS_SENTINEL_MASTER", "m"),
                ],
                "unset REDIS_IP",
            ),
            (
                vec![("REDIS_SENTINELS", "s1:0"), ("REDIS_SENTINEL_MASTER", "m")],
                "not a port",
            ),
            (
                vec![("REDIS_SENTINELS", " , "), ("REDIS_SENTINEL_MASTER", "m")],
                "no sentinel given",
            ),
        ] {
            let msg = Settings::load(&env(&pairs), &no_dir())
                .unwrap_err()
                .to_string();
            assert!(msg.contains(want), "{pairs:?}: {msg}");
        }
    }

    #[test]
    fn defaults_come_from_default_toml() {
        let s = Settings::load(&env(&[("REDIS_IP", "10.1.2.3")]), &no_dir()).unwrap();
        assert_eq!(s.redis.host, "10.1.2.3");
        assert_eq!(s.redis.port, 6379);
        assert!(s.redis.password.is_none());
        assert_eq!(s.http.port, 5000);
        assert_eq!(s.http_addr().to_string(), "0.0.0.0:5000");
        assert!(s.data.source.starts_with("https://"));
        assert_eq!(s.pipeline.max_attempts, 3);
        assert_eq!(s.shutdown.grace, Duration::from_secs(25));
        assert_eq!(s.workers.health_port, None);
        assert_eq!(s.worker_health_addr().0.port(), DEFAULT_HEALTH_PORT);
    }

    #[test]
    fn environment_overrides_nested_keys() {
        let s = Settings::load(
            &env(&[
                ("REDIS_IP", "redis"),
                ("REDIS_PORT", "6380"),
                ("REDIS_PASSWORD", "hunter2"),
                ("GENE_API__HTTP__PORT", "8080"),
                ("GENE_API__DATA__SOURCE", "/data/hgnc.json"),
                ("GENE_API__WORKERS__CONCURRENCY", "7"),
                ("GENE_API__PIPELINE__RECLAIM_AFTER_MS", "1500"),
            ]),
            &no_dir(),
        )
        .unwrap();
        assert_eq!(s.redis.port, 6380);
        assert_eq!(s.redis.password.as_ref().unwrap().expose(), "hunter2");
        assert_eq!(s.http.port, 8080);
        assert_eq!(s.data.source, "/data/hgnc.json");
        assert_eq!(s.workers.concurrency, 7);
        assert_eq!(s.pipeline.reclaim_after, Duration::from_millis(1500));
        assert!(!format!("{s:?}").contains("hunter2"), "password leaked");
    }

    #[test]
    fn acl_user_and_tls_come_from_the_plain_or_the_prefixed_variables() {
        let s = Settings::load(&env(&[("REDIS_IP", "r")]), &no_dir()).unwrap();
        let r = &s.redis;
        assert!(r.username.is_none() && !r.tls && r.ca_file.is_none());
        assert!(r.client_cert_file.is_none() && r.client_key_file.is_none());

        let s = Settings::load(
            &env(&[
                ("REDIS_IP", "r"),
                ("REDIS_USERNAME", "gene-api"),
                ("REDIS_PASSWORD", "hunter2"),
                ("REDIS_TLS", "true"),
                ("REDIS_CA_FILE", "/run/secrets/ca.pem"),
                ("REDIS_CLIENT_CERT_FILE", "/run/secrets/client.pem"),
                ("REDIS_CLIENT_KEY_FILE", "/run/secrets/client.key"),
            ]),
            &no_dir(),
        )
        .unwrap();
        let r = &s.redis;
        assert_eq!(r.username.as_deref(), Some("gene-api"));
        assert!(r.tls);
        assert_eq!(r.ca_file.as_deref(), Some(Path::new("/run/secrets/ca.pem")));
        assert_eq!(
            r.client_cert_file.as_deref(),
            Some(Path::new("/run/secrets/client.pem"))
        );
        assert_eq!(
            r.client_key_file.as_deref(),
            Some(Path::new("/run/secrets/client.key"))
        );
        assert!(!format!("{s:?}").contains("hunter2"), "password leaked");

        let s = Settings::load(
            &env(&[
                ("REDIS_IP", "r"),
                ("GENE_API__REDIS__USERNAME", "u"),
                ("GENE_API__REDIS__PASSWORD", "p"),
                ("GENE_API__REDIS__TLS", "true"),
                ("GENE_API__REDIS__CA_FILE", "/ca.pem"),
            ]),
            &no_dir(),
        )
        .unwrap();
        assert_eq!(s.redis.username.as_deref(), Some("u"));
        assert!(s.redis.tls);
        assert_eq!(s.redis.ca_file.as_deref(), Some(Path::new("/ca.pem")));
    }

    #[test]
    fn inconsistent_acl_or_tls_settings_are_refused_with_the_fix() {
        let load = |pairs: &[(&str, &str)]| {
            let mut all = vec![("REDIS_IP", "r")];
            all.extend_from_slice(pairs);
            Settings::load(&env(&all), &no_dir())
                .unwrap_err()
                .to_string()
        };
        let msg = load(&[("REDIS_TLS", "maybe")]);
        assert!(msg.contains("REDIS_TLS") && msg.contains("maybe"), "{msg}");
        let msg = load(&[("REDIS_USERNAME", "gene")]);
        assert!(msg.contains("REDIS_PASSWORD"), "{msg}");
        let msg = load(&[("REDIS_USERNAME", "two words"), ("REDIS_PASSWORD", "p")]);
        assert!(msg.contains("REDIS_USERNAME"), "{msg}");
        let msg = load(&[("REDIS_TLS", "true"), ("REDIS_CLIENT_CERT_FILE", "/c.pem")]);
        assert!(msg.contains("REDIS_CLIENT_KEY_FILE"), "{msg}");
        let msg = load(&[("REDIS_CA_FILE", "/ca.pem")]);
        assert!(msg.contains("REDIS_TLS=true"), "{msg}");
        let msg = load(&[("REDIS_TLS", "false"), ("REDIS_CA_FILE", "/ca.pem")]);
        assert!(msg.contains("REDIS_TLS=true"), "{msg}");
    }

    #[test]
    fn app_env_file_layers_between_defaults_and_environment() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("staging.toml"),
            "[http]\nport = 7000\njobs_list_limit = 5\n",
        )
        .unwrap();
        let s = Settings::load(
            &env(&[
                ("REDIS_IP", "r"),
                ("APP_ENV", "staging"),
                ("GENE_API__HTTP__PORT", "7001"),
            ]),
            dir.path(),
        )
        .unwrap();
        assert_eq!(s.http.jobs_list_limit, 5);
        assert_eq!(s.http.port, 7001);
    }

    #[test]
    fn bad_values_are_clear_errors() {
        let err = Settings::load(
            &env(&[("REDIS_IP", "r"), ("REDIS_PORT", "sixty")]),
            &no_dir(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("REDIS_PORT"), "{err}");
        let err = Settings::load(
            &env(&[("REDIS_IP", "r"), ("GENE_API__HTTP__PORT", "99999")]),
            &no_dir(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("port"), "{err}");
        let err = Settings::load(
            &env(&[("REDIS_IP", "r"), ("GENE_API__WORKERS__CONCURRENCY", "0")]),
            &no_dir(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("concurrency"), "{err}");
    }

    #[test]
    fn refresh_is_off_by_default_and_parsed_when_set() {
        let s = Settings::load(&env(&[("REDIS_IP", "r")]), &no_dir()).unwrap();
        assert_eq!(s.data.refresh, "");
        assert!(s.data.refresh_schedule.is_none());
        for expr in ["0 3 * * *", "0 0 3 * * *", "*/5 * * * * *", "  ", "@daily"] {
            let s = Settings::load(
                &env(&[("REDIS_IP", "r"), ("GENE_API__DATA__REFRESH", expr)]),
                &no_dir(),
            )
            .unwrap_or_else(|e| panic!("{expr:?}: {e}"));
            assert_eq!(
                s.data.refresh_schedule.as_ref().map(|c| c.expr()),
                Some(expr.trim()).filter(|e| !e.is_empty()),
            );
        }
    }

    #[test]
    fn a_bad_refresh_names_the_setting_the_value_and_the_reason() {
        for (expr, why) in [
            ("61 * * * *", "out of bounds"),
            ("every day", "5 or 6 fields"),
            ("0 0 3 * * * 2030", "5 or 6 fields"),
            ("0 0 31 2 *", "no time"),
        ] {
            let err = Settings::load(
                &env(&[("REDIS_IP", "r"), ("GENE_API__DATA__REFRESH", expr)]),
                &no_dir(),
            )
            .unwrap_err();
            let msg = err.to_string();
            assert!(matches!(err, ConfigError::Rule(_)), "{msg}");
            assert!(
                msg.contains("data.refresh (GENE_API__DATA__REFRESH)"),
                "{msg}"
            );
            assert!(msg.contains(&format!("{expr:?}")), "{msg}");
            assert!(msg.to_lowercase().contains(why), "{msg} lacks {why:?}");
        }
    }
}
