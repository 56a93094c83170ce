//! Redis connections and the key layout.
//!
//! db 0 holds gene data, the job stream and job records; db 1 holds images.
//! Every key starts with the configured prefix (default `gene-api`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

mod breaker;
mod primary;
mod sentinel;

pub use breaker::{Admitted, Breaker};
pub use primary::{BlockingConn, Conn, Subscription};
use primary::{Dial, Shared};
use redis::{
    Client, ClientTlsConfig, ConnectionAddr, FromRedisValue, IntoConnectionInfo, RedisError,
    RedisResult, Script, ScriptInvocation, TlsCertificates,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::{RedisSettings, Secret};

/// The logical database for gene data, the stream and job records.
pub const DATA_DB: i64 = 0;
/// The logical database for PNG images.
pub const IMAGE_DB: i64 = 1;

/// Names of every key the service uses, derived from one prefix and built
/// once: request handlers read them on every call.
#[derive(Debug, Clone)]
pub struct Keys {
    records: String,
    legacy_genes: String,
    legacy_version_prefix: String,
    current: String,
    releases: String,
    releases_seen: String,
    release_order: String,
    releases_seq: String,
    releases_channel: String,
    release_prefix: String,
    generation: String,
    data_lock: String,
    staging_prefix: String,
    job_prefix: String,
    job_stop_prefix: String,
    jobs_index: String,
    stream: String,
    delayed: String,
    events: String,
    dead_letter: String,
    group: String,
    image_prefix: String,
    images_index: String,
    image_sizes: String,
    image_bytes: String,
    refresh_schedule: String,
    paused: String,
    idempotency_prefix: String,
}

impl Keys {
    pub fn new(prefix: &str) -> Self {
        Self {
            records: format!("{prefix}:records"),
            legacy_genes: format!("{prefix}:genes"),
            legacy_version_prefix: format!("{prefix}:data:"),
            current: format!("{prefix}:data:current"),
            releases: format!("{prefix}:releases"),
            release_order: format!("{prefix}:releases:order"),
            releases_seen: format!("{prefix}:releases:seen"),
            releases_seq: format!("{prefix}:releases:seq"),
            releases_channel: format!("{prefix}:releases:changed"),
            release_prefix: format!("{prefix}:release:"),
            generation: format!("{prefix}:data:generation"),
            data_lock: format!("{prefix}:data:lock"),
            staging_prefix: format!("{prefix}:staging:"),
            job_prefix: format!("{prefix}:job:"),
            job_stop_prefix: format!("{prefix}:job-stop:"),
            jobs_index: format!("{prefix}:jobs"),
            stream: format!("{prefix}:jobs:stream"),
            paused: format!("{prefix}:jobs:paused"),
            idempotency_prefix: format!("{prefix}:idempotency:"),
            delayed: format!("{prefix}:jobs:delayed"),
            events: format!("{prefix}:jobs:events"),
            dead_letter: format!("{prefix}:jobs:dead"),
            group: format!("{prefix}:workers"),
            image_prefix: format!("{prefix}:image:"),
            images_index: format!("{prefix}:images"),
            image_sizes: format!("{prefix}:images:sizes"),
            image_bytes: format!("{prefix}:images:bytes"),
            refresh_schedule: format!("{prefix}:schedule:refresh"),
        }
    }
    /// Hash `hgnc_id -> record JSON` of the live data set (db 0).
    /// The records of every kept release, each once: digest -> record.
    pub fn records(&self) -> &str {
        &self.records
    }
    /// The live release's id.
    pub fn current(&self) -> &str {
        &self.current
    }
    /// The kept releases, by load order.
    pub fn releases(&self) -> &str {
        &self.releases
    }
    /// Every release id swapped in since the last DELETE /data.
    pub fn releases_seen(&self) -> &str {
        &self.releases_seen
    }
    pub fn release_order(&self) -> &str {
        &self.release_order
    }
    /// Counts the changes of which release is live or kept (never reset).
    pub fn releases_seq(&self) -> &str {
        &self.releases_seq
    }
    /// The pub/sub channel each such change is announced on.
    pub fn releases_channel(&self) -> &str {
        &self.releases_channel
    }
    pub fn release_prefix(&self) -> &str {
        &self.release_prefix
    }
    pub fn release_part(&self, id: &str, part: &str) -> String {
        format!("{}{id}:{part}", self.release_prefix)
    }
    /// Bumped by DELETE /data, so a load staged before it stores nothing.
    pub fn generation(&self) -> &str {
        &self.generation
    }
    pub fn data_lock(&self) -> &str {
        &self.data_lock
    }
    /// The records hash of the layout before releases (0.2), removed by the
    /// first swap that finds it.
    pub fn legacy_genes(&self) -> &str {
        &self.legacy_genes
    }
    /// The parts' prefix of the layout before releases (`<p>:data:`).
    pub fn legacy_version_prefix(&self) -> &str {
        &self.legacy_version_prefix
    }
    /// Where job `job` stages a release's parts before the swap.
    pub fn staging(&self, job: &str) -> String {
        format!("{}{job}:", self.staging_prefix)
    }
    pub fn job(&self, id: &uuid::Uuid) -> String {
        format!("{}{id}", self.job_prefix)
    }
    /// Whether a client asked running job `id` to stop, or why it can no
    /// longer be stopped (see `src/jobs/stop.rs`). Outside the records'
    /// prefix: it is not a record.
    pub fn job_stop(&self, id: &uuid::Uuid) -> String {
        format!("{}{id}", self.job_stop_prefix)
    }
    /// Prefix of the job record keys: `<this><job id>`.
    pub fn job_prefix(&self) -> &str {
        &self.job_prefix
    }
    /// Sorted set of job ids by creation time (db 0).
    pub fn jobs_index(&self) -> &str {
        &self.jobs_index
    }
    /// The command stream (db 0).
    pub fn stream(&self) -> &str {
        &self.stream
    }
    /// The record of Idempotency-Key `key_hash` of `client` (db 0).
    pub fn idempotency(&self, client: &str, key_hash: &str) -> String {
        format!("{}{client}:{key_hash}", self.idempotency_prefix)
    }
    /// Present while the queue is paused: who paused it and when (db 0).
    pub fn paused(&self) -> &str {
        &self.paused
    }
    /// Sorted set of `retrying` job ids by the time their next run is due (db 0).
    pub fn delayed(&self) -> &str {
        &self.delayed
    }
    /// The capped stream of job state changes that SSE clients read (db 0).
    pub fn events(&self) -> &str {
        &self.events
    }
    /// Entries that could not be processed after every attempt (db 0).
    pub fn dead_letter(&self) -> &str {
        &self.dead_letter
    }
    /// The consumer group every worker reads through.
    pub fn group(&self) -> &str {
        &self.group
    }
    /// One PNG (db 1).
    pub fn image(&self, id: &uuid::Uuid) -> String {
        format!("{}{id}", self.image_prefix)
    }
    /// Prefix of the image keys: `<this><job id>` (for scripts that build them).
    pub fn image_prefix(&self) -> &str {
        &self.image_prefix
    }
    /// Hash of image id -> PNG bytes (db 1), for the bounds.
    pub fn image_sizes(&self) -> &str {
        &self.image_sizes
    }
    /// The bytes of every kept image, summed (db 1).
    pub fn image_bytes(&self) -> &str {
        &self.image_bytes
    }
    /// Sorted set of image ids by creation time (db 1).
    pub fn images_index(&self) -> &str {
        &self.images_index
    }
    /// Hash of the refresh schedule's last claimed tick and its outcome (db 0).
    pub fn refresh_schedule(&self) -> &str {
        &self.refresh_schedule
    }
}

/// Why the Redis connections cannot be set up; each message names what to fix.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A TLS file of the settings is missing or unusable.
    #[error("{var}={}: {problem}", path.display())]
    TlsFile {
        var: &'static str,
        path: PathBuf,
        problem: String,
    },
    #[error(transparent)]
    Redis(#[from] RedisError),
}

/// Shared connections. Cloning is one reference count: every request clones
/// it. The managers multiplex one socket each and reconnect after Redis comes
/// back, paced by one [`Breaker`] for the whole process.
#[derive(Clone)]
pub struct Store(Arc<StoreInner>);

impl std::ops::Deref for Store {
    type Target = StoreInner;
    fn deref(&self) -> &StoreInner {
        &self.0
    }
}

pub struct StoreInner {
    pub data: Conn,
    pub images: Conn,
    pub keys: Keys,
    shared: Arc<Shared>,
    /// Replicas a write a client is told succeeded must reach (`WAIT`).
    min_replicas: u32,
    wait_timeout: Duration,
    /// The probe key `/ready` deletes: a write that changes nothing, which a
    /// replica refuses (READONLY) and so does a primary short of replicas
    /// (NOREPLICAS).
    probe_key: String,
}

/// How a write that WAITs for replicas went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Enough replicas have it (or none are asked for).
    Replicated,
    /// Only `acked` of the `wanted` replicas confirmed it in time: it is on
    /// the primary, and lost if the primary fails before they catch up.
    Short { acked: u32, wanted: u32 },
}

/// The settings a primary's clients are made with.
struct Dialer {
    username: Option<String>,
    password: Option<Secret>,
    tls: Option<TlsCertificates>,
}

impl Dial for Dialer {
    fn client(&self, host: &str, port: u16, db: i64) -> RedisResult<Client> {
        client(
            host,
            port,
            db,
            self.username.as_deref(),
            self.password.as_ref(),
            self.tls.as_ref(),
        )
    }
}

impl Store {
    /// Connections for both databases. They connect lazily, so the service starts
    /// (and reports not-ready) while Redis is still down; the TLS files, though,
    /// are read here, so that a wrong one stops the start with its name.
    /// With Sentinel, the primary is looked up by a task started here (so this
    /// must run inside the Tokio runtime); requests answer 503 until it is found.
    pub fn new(settings: &RedisSettings) -> Result<Self, StoreError> {
        let tls = settings
            .tls
            .then(|| tls_certificates(settings))
            .transpose()?;
        let dialer = Dialer {
            username: settings.username.clone(),
            password: settings.password.clone(),
            tls: tls.clone(),
        };
        let breaker = Arc::new(Breaker::new(settings.reconnect_max_pause));
        let shared = Arc::new(Shared::new(
            Box::new(dialer),
            breaker,
            settings.connect_timeout,
            settings.response_timeout,
            settings.sentinel.is_some(),
        ));
        match &settings.sentinel {
            None => shared.install(&settings.host, settings.port)?,
            Some(s) => {
                let nodes = s
                    .nodes
                    .iter()
                    .map(|n| {
                        let c = client(
                            &n.host,
                            n.port,
                            0,
                            s.username.as_deref(),
                            s.password.as_ref(),
                            tls.as_ref(),
                        )?;
                        Ok((n.to_string(), c))
                    })
                    .collect::<RedisResult<Vec<_>>>()?;
                let sentinels = sentinel::Sentinels {
                    nodes,
                    master: s.master.clone(),
                    poll: settings.sentinel_poll,
                    timeout: settings.connect_timeout,
                };
                let nudge = shared.nudge.clone().unwrap_or_default();
                tokio::spawn(sentinel::follow(Arc::downgrade(&shared), nudge, sentinels));
            }
        }
        let keys = Keys::new(&settings.key_prefix);
        Ok(Self(Arc::new(StoreInner {
            data: Conn::data(shared.clone()),
            images: Conn::images(shared.clone()),
            probe_key: format!("{}:ready-probe", settings.key_prefix),
            keys,
            shared,
            min_replicas: settings.min_replicas,
            wait_timeout: settings.wait_timeout,
        })))
    }

    /// A connection of its own to db 0 for a blocking stream read, whose reply may
    /// take `block` longer than an ordinary command's.
    pub async fn blocking_connection(&self, block: Duration) -> RedisResult<BlockingConn> {
        BlockingConn::open(self.shared.clone(), block).await
    }

    /// A subscription to `channel` on the primary (see [`Subscription`]).
    pub async fn subscribe(&self, channel: &str) -> RedisResult<Subscription> {
        Subscription::open(self.shared.clone(), channel).await
    }

    /// Whether writes a client is told succeeded WAIT for replicas.
    pub fn waits_for_replicas(&self) -> bool {
        self.min_replicas > 0
    }

    /// Runs `script` and, with `redis.min_replicas` above 0, `WAIT`s for that
    /// many replicas in the same pipeline: one round trip, and on the same
    /// connection, which WAIT needs (it waits for what its own connection
    /// wrote; after a reconnect it would wait for nothing and say yes).
    pub async fn invoke_acknowledged<T: FromRedisValue>(
        &self,
        script: &Script,
        invocation: &ScriptInvocation<'_>,
    ) -> RedisResult<(T, Durability)> {
        if self.min_replicas == 0 {
            let value = invocation.invoke_async(&mut self.data.clone()).await?;
            return Ok((value, Durability::Replicated));
        }
        let mut conn = Conn::ack(self.shared.clone());
        let mut pipe = redis::pipe();
        pipe.invoke_script(invocation)
            .cmd("WAIT")
            .arg(self.min_replicas)
            .arg(self.wait_timeout.as_millis() as u64);
        let (value, acked): (T, u32) = match pipe.query_async(&mut conn).await {
            // A primary new since the script was loaded (a failover) lacks it:
            // nothing ran, so load it and send both again.
            Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) => {
                script.load_async(&mut conn).await?;
                pipe.query_async(&mut conn).await?
            }
            r => r?,
        };
        let durability = if acked >= self.min_replicas {
            Durability::Replicated
        } else {
            Durability::Short {
                acked,
                wanted: self.min_replicas,
            }
        };
        Ok((value, durability))
    }

    /// Where the primary is (`host:port`), when known.
    pub fn primary(&self) -> Option<String> {
        self.shared
            .current()
            .map(|r| format!("{}:{}", r.host, r.port))
    }

    /// Ok when both databases answer a read of one of the service's keys and
    /// db 0 takes a write. A key command rather than PING: an ACL user without
    /// rights on the key prefix then fails here (NOPERM), so the process is
    /// not ready, instead of being ready and failing every request. The write
    /// (deleting a key that never exists, which changes nothing and is not
    /// replicated) is refused by a replica (READONLY) and by a primary short
    /// of good replicas (NOREPLICAS), so a process pointed at either is not
    /// ready either. With Sentinel, a process that cannot ask any sentinel is
    /// not ready: it could not follow a failover.
    pub async fn check(&self) -> Result<(), NotReady> {
        let unlocated = self
            .shared
            .unlocated
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if let Some(why) = unlocated {
            return Err(NotReady::Sentinel(why));
        }
        let mut d = self.data.clone();
        let mut i = self.images.clone();
        let mut data_key = redis::pipe();
        data_key
            .cmd("EXISTS")
            .arg(self.keys.current())
            .cmd("DEL")
            .arg(&self.probe_key)
            .ignore();
        let mut image_key = redis::cmd("EXISTS");
        image_key.arg(self.keys.images_index());
        let (a, b) = tokio::join!(
            data_key.query_async::<(i64,)>(&mut d),
            image_key.query_async::<i64>(&mut i)
        );
        a.and(b).map(drop).map_err(NotReady::Redis)
    }
}

/// Why `/ready` says no.
#[derive(Debug)]
pub enum NotReady {
    /// With Sentinel: the primary is not known (no sentinel answers, or
    /// none names a Redis that says it is the primary).
    Sentinel(String),
    /// Redis answered with an error, or not at all.
    Redis(RedisError),
}

/// Stream ids `<ms>-<seq>` as numbers, for ordering (text order is wrong:
/// "9-0" > "10-0"). Malformed parts count as 0.
pub fn stream_id_key(id: &str) -> (u64, u64) {
    let (ms, seq) = id.split_once('-').unwrap_or((id, "0"));
    (ms.parse().unwrap_or(0), seq.parse().unwrap_or(0))
}

/// What an operator must fix for a Redis error that a setting explains:
/// told apart because each has its own fix. `/ready` and the log both say it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedisFix {
    /// Redis refused the credentials.
    Credentials,
    /// The Redis user lacks a right gene-api needs (NOPERM).
    Rights,
    /// Redis does not answer.
    Reach,
    /// The Redis gene-api reaches is a replica, which takes no writes.
    Replica,
    /// The primary refuses writes while it has fewer good replicas than its
    /// `min-replicas-to-write`.
    NoReplicas,
}

impl RedisFix {
    /// The fix for `e`; None for errors that no setting explains.
    pub fn of(e: &RedisError) -> Option<Self> {
        use redis::{ErrorKind, ServerErrorKind};
        match e.kind() {
            ErrorKind::AuthenticationFailed => Some(Self::Credentials),
            ErrorKind::Server(ServerErrorKind::NoPerm) => Some(Self::Rights),
            ErrorKind::Server(ServerErrorKind::ReadOnly) => Some(Self::Replica),
            _ if error_code(e).as_deref() == Some("NOREPLICAS") => Some(Self::NoReplicas),
            _ if e.is_io_error()
                || e.is_connection_refusal()
                || e.is_connection_dropped()
                || e.is_timeout() =>
            {
                Some(Self::Reach)
            }
            _ => None,
        }
    }

    /// The settings to check.
    pub fn hint(self) -> &'static str {
        match self {
            Self::Credentials => "check REDIS_USERNAME and REDIS_PASSWORD, and that the ACL user is on",
            Self::Rights => {
                "give the Redis user the ACL line of docs/security.md (\"Redis with an ACL user and TLS\")"
            }
            Self::Reach => {
                "check REDIS_IP, REDIS_PORT and that Redis runs; with REDIS_TLS=true also that \
                 REDIS_PORT is its TLS port, that REDIS_CA_FILE holds the CA of its certificate, \
                 and whether it asks for a client certificate (REDIS_CLIENT_CERT_FILE); with \
                 Sentinel, REDIS_SENTINELS, REDIS_SENTINEL_MASTER and that the sentinels run"
            }
            Self::Replica => {
                "point REDIS_IP at the primary, or find it through Redis Sentinel \
                 (REDIS_SENTINELS, REDIS_SENTINEL_MASTER); after a failover this passes once \
                 the new primary is found"
            }
            Self::NoReplicas => {
                "the primary's replicas are down or lagging (its min-replicas-to-write); \
                 this passes once they catch up"
            }
        }
    }
}

/// A Redis error as the log shows it: Redis's (or the TLS library's) words,
/// then the settings to check when [`RedisFix`] has them. No secret is in
/// either.
pub struct Explained<'a>(pub &'a RedisError);

impl std::fmt::Display for Explained<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        match RedisFix::of(self.0) {
            Some(fix) => write!(f, "; {}", fix.hint()),
            None => Ok(()),
        }
    }
}

/// True for errors that a later try may not hit: lost connections, timeouts,
/// a Redis that is still loading its data after a restart.
pub fn redis_is_transient(e: &RedisError) -> bool {
    use redis::{ErrorKind, ServerErrorKind};
    e.is_io_error()
        || e.is_timeout()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || matches!(
            e.kind(),
            // Refused credentials are fixed outside (the Secret, the ACL), and
            // the next connection picks the fix up: a job should wait, not fail.
            ErrorKind::AuthenticationFailed
                | ErrorKind::Server(ServerErrorKind::BusyLoading)
                | ErrorKind::Server(ServerErrorKind::TryAgain)
                | ErrorKind::Server(ServerErrorKind::MasterDown)
                // A failover under way: the node became a replica, or the
                // primary has lost its replicas, or our blocked read was cut.
                | ErrorKind::Server(ServerErrorKind::ReadOnly)
        )
        || matches!(error_code(e).as_deref(), Some("NOREPLICAS" | "UNBLOCKED"))
}

/// The error code Redis answered (`NOREPLICAS`, ...), also for a pipeline's
/// failed command, whose codes that redis-rs does not know it keeps only
/// inside (`RedisError::code` is None for them).
pub fn error_code(e: &RedisError) -> Option<String> {
    if let Some(code) = e.code() {
        return Some(code.to_string());
    }
    let errors = e.clone().into_server_errors()?;
    errors.first().map(|(_, s)| s.code().to_string())
}

fn client(
    host: &str,
    port: u16,
    db: i64,
    username: Option<&str>,
    password: Option<&Secret>,
    tls: Option<&TlsCertificates>,
) -> RedisResult<Client> {
    let mut info = (host, port).into_connection_info()?;
    let mut redis = info.redis_settings().clone().set_db(db);
    if let Some(user) = username {
        // CLIENT SETINFO only labels the connection in CLIENT LIST. Sent by an
        // ACL user it needs a rule of its own, which Redis before 7.2 rejects
        // as unknown; without the rule every connection adds a NOPERM entry
        // to the ACL LOG. So an ACL user's connections skip it.
        redis = redis.set_username(user).set_skip_set_lib_name();
    }
    if let Some(pw) = password {
        redis = redis.set_password(pw.expose());
    }
    info = info.set_redis_settings(redis);
    match tls {
        None => Client::open(info),
        Some(certs) => {
            let info = info.set_addr(ConnectionAddr::TcpTls {
                host: host.to_string(),
                port,
                insecure: false,
                tls_params: None,
            });
            Client::build_with_tls(info, certs.clone())
        }
    }
}

/// The PEM files of the TLS settings, read and checked once: redis-rs would
/// only find a wrong one at each connection attempt, as a failure that names
/// no file, while the process looked merely not ready.
fn tls_certificates(settings: &RedisSettings) -> Result<TlsCertificates, StoreError> {
    // ring, as reqwest uses. An error means a provider is installed already,
    // which serves as well.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut roots = rustls::RootCertStore::empty();
    let root_cert = match &settings.ca_file {
        Some(path) => {
            let var = "REDIS_CA_FILE";
            let pem = read_file(var, path)?;
            for cert in certificates(var, path, &pem)? {
                roots.add(cert).map_err(|e| {
                    tls_file(var, path, format!("not a usable CA certificate: {e}"))
                })?;
            }
            Some(pem)
        }
        None => None,
    };
    let client_tls = match (&settings.client_cert_file, &settings.client_key_file) {
        (Some(cert_path), Some(key_path)) => {
            let cert_pem = read_file("REDIS_CLIENT_CERT_FILE", cert_path)?;
            let key_pem = read_file("REDIS_CLIENT_KEY_FILE", key_path)?;
            let chain = certificates("REDIS_CLIENT_CERT_FILE", cert_path, &cert_pem)?;
            let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
                tls_file(
                    "REDIS_CLIENT_KEY_FILE",
                    key_path,
                    format!("holds no usable PEM private key: {e}"),
                )
            })?;
            // The configuration redis-rs builds per connection, built once now:
            // it checks that the key belongs to the certificate.
            rustls::ClientConfig::builder()
                .with_root_certificates(roots)
                .with_client_auth_cert(chain, key)
                .map_err(|e| {
                    tls_file(
                        "REDIS_CLIENT_KEY_FILE",
                        key_path,
                        format!(
                            "does not go with REDIS_CLIENT_CERT_FILE={}: {e}",
                            cert_path.display()
                        ),
                    )
                })?;
            Some(ClientTlsConfig {
                client_cert: cert_pem,
                client_key: key_pem,
            })
        }
        // The settings allow both or neither.
        _ => None,
    };
    Ok(TlsCertificates {
        client_tls,
        root_cert,
    })
}

fn read_file(var: &'static str, path: &Path) -> Result<Vec<u8>, StoreError> {
    std::fs::read(path).map_err(|e| tls_file(var, path, format!("cannot read it: {e}")))
}

fn certificates(
    var: &'static str,
    path: &Path,
    pem: &[u8],
) -> Result<Vec<CertificateDer<'static>>, StoreError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| tls_file(var, path, format!("not a PEM certificate file: {e}")))?;
    if certs.is_empty() {
        return Err(tls_file(
            var,
            path,
            "holds no PEM certificate (-----BEGIN CERTIFICATE-----)".into(),
        ));
    }
    Ok(certs)
}

fn tls_file(var: &'static str, path: &Path, problem: String) -> StoreError {
    StoreError::TlsFile {
        var,
        path: path.to_path_buf(),
        problem,
    }
}

#[cfg(test)]
mod hint_tests {
    use super::*;

    #[test]
    fn logged_redis_errors_carry_the_settings_to_check() {
        let auth = RedisError::from((
            redis::ErrorKind::AuthenticationFailed,
            "Password authentication failed",
        ));
        let shown = Explained(&auth).to_string();
        assert!(
            shown.starts_with("Password authentication failed"),
            "{shown}"
        );
        assert!(shown.ends_with(RedisFix::Credentials.hint()), "{shown}");
        let refused = RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert!(Explained(&refused).to_string().contains("REDIS_IP"));
        let other = RedisError::from((
            redis::ErrorKind::UnexpectedReturnType,
            "an unexpected reply",
        ));
        assert_eq!(Explained(&other).to_string(), other.to_string());
    }
}
