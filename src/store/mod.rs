//! Redis connections and the key layout.
//!
//! db 0 holds gene data, the job stream and job records; db 1 holds images.
//! Every key starts with the configured prefix (default `gene-api`).

use std::sync::Arc;
use std::time::Duration;

mod breaker;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::RedisFuture;

pub use breaker::{Admitted, Breaker};
use redis::{AsyncConnectionConfig, Client, IntoConnectionInfo, RedisError, RedisResult};

use crate::config::RedisSettings;

/// The logical database for gene data, the stream and job records.
pub const DATA_DB: i64 = 0;
/// The logical database for PNG images.
pub const IMAGE_DB: i64 = 1;

/// Names of every key the service uses, derived from one prefix and built
/// once: request handlers read them on every call.
#[derive(Debug, Clone)]
pub struct Keys {
    genes: String,
    current: String,
    version_prefix: String,
    staging_prefix: String,
    job_prefix: String,
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
}

impl Keys {
    pub fn new(prefix: &str) -> Self {
        Self {
            genes: format!("{prefix}:genes"),
            current: format!("{prefix}:data:current"),
            version_prefix: format!("{prefix}:data:"),
            staging_prefix: format!("{prefix}:staging:"),
            job_prefix: format!("{prefix}:job:"),
            jobs_index: format!("{prefix}:jobs"),
            stream: format!("{prefix}:jobs:stream"),
            delayed: format!("{prefix}:jobs:delayed"),
            events: format!("{prefix}:jobs:events"),
            dead_letter: format!("{prefix}:jobs:dead"),
            group: format!("{prefix}:workers"),
            image_prefix: format!("{prefix}:image:"),
            images_index: format!("{prefix}:images"),
            image_sizes: format!("{prefix}:images:sizes"),
            image_bytes: format!("{prefix}:images:bytes"),
        }
    }
    /// Hash `hgnc_id -> record JSON` of the live data set (db 0).
    pub fn genes(&self) -> &str {
        &self.genes
    }
    /// String naming the live data-set version (db 0).
    pub fn current(&self) -> &str {
        &self.current
    }
    /// Prefix of the versioned data-set keys: `<this><version>:<part>`.
    pub fn version_prefix(&self) -> &str {
        &self.version_prefix
    }
    /// One part (`blob`, `ids`, `stats`, `meta`) of one data-set version.
    pub fn version_part(&self, version: &str, part: &str) -> String {
        format!("{}{version}:{part}", self.version_prefix)
    }
    /// Where a load job stages its records before the swap.
    pub fn staging_genes(&self, version: &str) -> String {
        format!("{}{version}:genes", self.staging_prefix)
    }
    /// One job record (db 0).
    pub fn job(&self, id: &uuid::Uuid) -> String {
        format!("{}{id}", self.job_prefix)
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
}

/// A connection to one database: a multiplexed, self-reconnecting manager
/// behind the process's [`Breaker`], so that while Redis is away requests
/// fail at once instead of each starting a connection attempt. Cheap to clone.
#[derive(Clone)]
pub struct Conn {
    inner: ConnectionManager,
    breaker: Arc<Breaker>,
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a redis::Cmd) -> RedisFuture<'a, redis::Value> {
        Box::pin(async move {
            let admitted = self.breaker.admit()?;
            let mut r = self.inner.req_packed_command(cmd).await;
            if stale_failure(admitted, &r) {
                r = self.inner.req_packed_command(cmd).await;
            }
            self.breaker.observe(&r);
            r
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<redis::Value>> {
        Box::pin(async move {
            let admitted = self.breaker.admit()?;
            let mut r = self.inner.req_packed_commands(cmd, offset, count).await;
            if stale_failure(admitted, &r) {
                r = self.inner.req_packed_commands(cmd, offset, count).await;
            }
            self.breaker.observe(&r);
            r
        })
    }

    fn get_db(&self) -> i64 {
        self.inner.get_db()
    }
}

/// The attempt of a pause may first get back the failure the manager kept
/// from before Redis went away: the manager starts its reconnect only then.
/// Asking once more waits for that reconnect, so the attempt is a real one,
/// and a Redis that is back is used at once instead of a pause later.
fn stale_failure<T>(admitted: Admitted, r: &RedisResult<T>) -> bool {
    admitted == Admitted::Attempt && matches!(r, Err(e) if breaker::is_connection_error(e))
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
    breaker: Arc<Breaker>,
    data_client: Client,
    response_timeout: Duration,
    connect_timeout: Duration,
}

impl Store {
    /// Connections for both databases. They connect lazily, so the service starts
    /// (and reports not-ready) while Redis is still down.
    pub fn new(settings: &RedisSettings) -> RedisResult<Self> {
        let data_client = client(settings, DATA_DB)?;
        let image_client = client(settings, IMAGE_DB)?;
        let response_timeout = settings.response_timeout;
        let connect_timeout = settings.connect_timeout;
        // One attempt per reconnect: the breaker paces the attempts.
        let cfg = ConnectionManagerConfig::new()
            .set_response_timeout(Some(response_timeout))
            .set_connection_timeout(Some(connect_timeout))
            .set_number_of_retries(0);
        let breaker = Arc::new(Breaker::new(settings.reconnect_max_pause));
        let conn = |client: Client| -> RedisResult<Conn> {
            Ok(Conn {
                inner: ConnectionManager::new_lazy_with_config(client, cfg.clone())?,
                breaker: breaker.clone(),
            })
        };
        Ok(Self(Arc::new(StoreInner {
            data: conn(data_client.clone())?,
            images: conn(image_client)?,
            keys: Keys::new(&settings.key_prefix),
            breaker,
            data_client,
            response_timeout,
            connect_timeout,
        })))
    }

    /// A connection of its own to db 0 for a blocking stream read, whose reply may
    /// take `block` longer than an ordinary command's.
    pub async fn blocking_connection(
        &self,
        block: Duration,
    ) -> RedisResult<redis::aio::MultiplexedConnection> {
        self.breaker.admit()?;
        let cfg = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.connect_timeout))
            .set_response_timeout(Some(self.response_timeout + block));
        let r = self
            .data_client
            .get_multiplexed_async_connection_with_config(&cfg)
            .await;
        self.breaker.observe(&r);
        r
    }

    /// True when both databases answer PING.
    pub async fn ping(&self) -> bool {
        let mut d = self.data.clone();
        let mut i = self.images.clone();
        let ping = redis::cmd("PING");
        let (a, b) = tokio::join!(
            ping.query_async::<String>(&mut d),
            ping.query_async::<String>(&mut i)
        );
        a.is_ok() && b.is_ok()
    }
}

/// Stream ids `<ms>-<seq>` as numbers, for ordering (text order is wrong:
/// "9-0" > "10-0"). Malformed parts count as 0.
pub fn stream_id_key(id: &str) -> (u64, u64) {
    let (ms, seq) = id.split_once('-').unwrap_or((id, "0"));
    (ms.parse().unwrap_or(0), seq.parse().unwrap_or(0))
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
            ErrorKind::Server(ServerErrorKind::BusyLoading)
                | ErrorKind::Server(ServerErrorKind::TryAgain)
                | ErrorKind::Server(ServerErrorKind::MasterDown)
        )
}

fn client(settings: &RedisSettings, db: i64) -> RedisResult<Client> {
    let mut info = (settings.host.as_str(), settings.port).into_connection_info()?;
    let mut redis = info.redis_settings().clone().set_db(db);
    if let Some(pw) = &settings.password {
        redis = redis.set_password(pw.expose());
    }
    info = info.set_redis_settings(redis);
    Client::open(info)
}
