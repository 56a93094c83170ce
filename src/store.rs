//! Redis connections and the key layout.
//!
//! db 0 holds gene data, the job stream and job records; db 1 holds images.
//! Every key starts with the configured prefix (default `gene-api`).

use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncConnectionConfig, Client, IntoConnectionInfo, RedisResult};

use crate::config::RedisSettings;

/// The logical database for gene data, the stream and job records.
pub const DATA_DB: i64 = 0;
/// The logical database for PNG images.
pub const IMAGE_DB: i64 = 1;

/// Names of every key the service uses, derived from one prefix.
#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
    // Read on every request, so built once.
    genes: String,
}

impl Keys {
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_string(),
            genes: format!("{prefix}:genes"),
        }
    }
    /// Hash `hgnc_id -> record JSON` of the live data set (db 0).
    pub fn genes(&self) -> &str {
        &self.genes
    }
    /// String naming the live data-set version (db 0).
    pub fn current(&self) -> String {
        format!("{}:data:current", self.prefix)
    }
    /// Prefix of the versioned data-set keys: `<this><version>:<part>`.
    pub fn version_prefix(&self) -> String {
        format!("{}:data:", self.prefix)
    }
    /// One part (`blob`, `ids`, `stats`, `meta`) of one data-set version.
    pub fn version_part(&self, version: &str, part: &str) -> String {
        format!("{}:data:{version}:{part}", self.prefix)
    }
    /// Where a load job stages its records before the swap.
    pub fn staging_genes(&self, version: &str) -> String {
        format!("{}:staging:{version}:genes", self.prefix)
    }
    /// One job record (db 0).
    pub fn job(&self, id: &uuid::Uuid) -> String {
        format!("{}:job:{id}", self.prefix)
    }
    /// Sorted set of job ids by creation time (db 0).
    pub fn jobs_index(&self) -> String {
        format!("{}:jobs", self.prefix)
    }
    /// The command stream (db 0).
    pub fn stream(&self) -> String {
        format!("{}:jobs:stream", self.prefix)
    }
    /// Entries that could not be processed after every attempt (db 0).
    pub fn dead_letter(&self) -> String {
        format!("{}:jobs:dead", self.prefix)
    }
    /// The consumer group every worker reads through.
    pub fn group(&self) -> String {
        format!("{}:workers", self.prefix)
    }
    /// One PNG (db 1).
    pub fn image(&self, id: &uuid::Uuid) -> String {
        format!("{}:image:{id}", self.prefix)
    }
    /// Sorted set of image ids by creation time (db 1).
    pub fn images_index(&self) -> String {
        format!("{}:images", self.prefix)
    }
}

/// Shared connections. Cloning is one reference count: every request clones
/// it. The managers multiplex one socket each and reconnect by themselves
/// after Redis comes back.
#[derive(Clone)]
pub struct Store(Arc<StoreInner>);

impl std::ops::Deref for Store {
    type Target = StoreInner;
    fn deref(&self) -> &StoreInner {
        &self.0
    }
}

pub struct StoreInner {
    pub data: ConnectionManager,
    pub images: ConnectionManager,
    pub keys: Keys,
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
        let response_timeout = Duration::from_millis(settings.response_timeout_ms);
        let connect_timeout = Duration::from_millis(settings.connect_timeout_ms);
        let cfg = ConnectionManagerConfig::new()
            .set_response_timeout(Some(response_timeout))
            .set_connection_timeout(Some(connect_timeout))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_secs(2));
        Ok(Self(Arc::new(StoreInner {
            data: ConnectionManager::new_lazy_with_config(data_client.clone(), cfg.clone())?,
            images: ConnectionManager::new_lazy_with_config(image_client, cfg)?,
            keys: Keys::new(&settings.key_prefix),
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
        let cfg = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.connect_timeout))
            .set_response_timeout(Some(self.response_timeout + block));
        self.data_client
            .get_multiplexed_async_connection_with_config(&cfg)
            .await
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

fn client(settings: &RedisSettings, db: i64) -> RedisResult<Client> {
    let mut info = (settings.host.as_str(), settings.port).into_connection_info()?;
    let mut redis = info.redis_settings().clone().set_db(db);
    if let Some(pw) = &settings.password {
        redis = redis.set_password(pw.expose());
    }
    info = info.set_redis_settings(redis);
    Client::open(info)
}
