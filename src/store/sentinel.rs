//! The follower: one task per process that asks Redis Sentinel which Redis is
//! the primary and moves every connection to it when that changes.
//!
//! redis-rs's own Sentinel client resolves the primary only when it connects
//! and does not follow a failover (redis-rs issue 1438); its lookups have no
//! deadline of their own either, and a frozen sentinel would hold them. So
//! the asking is done here, each sentinel in turn with a deadline, and the
//! answer is acted on only once the named Redis says `ROLE` master itself
//! (during a failover the sentinels may still name the old one).
//!
//! It asks at start, when a `+switch-master` announcement arrives (subscribed
//! on one sentinel), when a request meets an error a failover causes (a lost
//! connection, a timeout, `READONLY`, `UNBLOCKED`), and every
//! `redis.sentinel_poll_ms` in case an announcement was missed.

use std::sync::{Arc, Weak};
use std::time::Duration;

use futures_util::StreamExt;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, RedisResult};
use tokio::sync::Notify;

use super::primary::Shared;

/// The shortest time between two lookups that errors asked for: a burst of
/// failing requests makes one lookup, not hundreds.
const SETTLE: Duration = Duration::from_millis(50);

pub(super) struct Sentinels {
    /// Each sentinel's name (`host:port`, for messages) and client.
    pub nodes: Vec<(String, Client)>,
    pub master: String,
    pub poll: Duration,
    pub timeout: Duration,
}

/// The follower's own state: kept connections to the sentinels.
struct Follower {
    sentinels: Sentinels,
    conns: Vec<Option<MultiplexedConnection>>,
}

/// Runs until the store it serves is dropped.
pub(super) async fn follow(shared: Weak<Shared>, nudge: Arc<Notify>, sentinels: Sentinels) {
    let conns = sentinels.nodes.iter().map(|_| None).collect();
    let mut f = Follower { sentinels, conns };
    let mut announcements = None;
    loop {
        {
            let Some(shared) = shared.upgrade() else {
                return;
            };
            f.locate(&shared).await;
        }
        if announcements.is_none() {
            announcements = f.subscribe().await;
        }
        let announced = async {
            match announcements.as_mut() {
                Some(s) => s.next().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            m = announced => {
                if m.is_none() {
                    // That sentinel went away: subscribe on another next turn.
                    announcements = None;
                }
            }
            _ = nudge.notified() => tokio::time::sleep(SETTLE).await,
            _ = tokio::time::sleep(f.sentinels.poll) => {}
        }
    }
}

impl Follower {
    /// Asks the sentinels and installs the primary they name, if it is a new
    /// one and says it is the primary.
    async fn locate(&mut self, shared: &Shared) {
        let found = match self.ask().await {
            Ok(addr) => addr,
            Err(why) => {
                self.unlocated(shared, Some(format!("no sentinel answers ({why})")));
                return;
            }
        };
        let (host, port) = found;
        let current = shared.current();
        if current
            .as_ref()
            .is_some_and(|r| r.host == host && r.port == port)
        {
            self.unlocated(shared, None);
            return;
        }
        match self.is_primary(shared, &host, port).await {
            Ok(true) => {}
            Ok(false) => {
                // The sentinels have not finished the failover: ask again soon.
                self.unlocated(
                    shared,
                    Some(format!(
                        "the sentinels name {host}:{port} as primary of {}, but it is a replica",
                        self.sentinels.master
                    )),
                );
                return;
            }
            Err(e) => {
                self.unlocated(
                    shared,
                    Some(format!(
                        "the sentinels name {host}:{port} as primary of {}, which does not answer ({e})",
                        self.sentinels.master
                    )),
                );
                return;
            }
        }
        match shared.install(&host, port) {
            Ok(()) => {
                match current {
                    Some(old) => tracing::warn!(
                        from = %format!("{}:{}", old.host, old.port),
                        to = %format!("{host}:{port}"),
                        master = %self.sentinels.master,
                        "the Redis primary moved; following it"
                    ),
                    None => tracing::info!(
                        primary = %format!("{host}:{port}"),
                        master = %self.sentinels.master,
                        "Redis primary found through Sentinel"
                    ),
                }
                self.unlocated(shared, None);
            }
            Err(e) => self.unlocated(shared, Some(format!("{host}:{port}: {e}"))),
        }
    }

    fn unlocated(&self, shared: &Shared, why: Option<String>) {
        let mut slot = shared.unlocated.lock().unwrap_or_else(|e| e.into_inner());
        if why.is_some() && *slot != why {
            tracing::warn!(
                why = why.as_deref().unwrap_or_default(),
                "Redis primary not found"
            );
        }
        *slot = why;
    }

    /// The primary's address from the first sentinel that knows it.
    async fn ask(&mut self) -> Result<(String, u16), String> {
        let mut why = Vec::new();
        for i in 0..self.sentinels.nodes.len() {
            let name = self.sentinels.nodes[i].0.clone();
            let deadline = self.sentinels.timeout;
            let asked = tokio::time::timeout(deadline, self.ask_one(i)).await;
            match asked {
                Ok(Ok(Some((host, port)))) => match port.parse() {
                    Ok(port) => return Ok((host, port)),
                    Err(_) => why.push(format!("{name}: a port {port:?}")),
                },
                Ok(Ok(None)) => why.push(format!(
                    "{name}: does not monitor a master named {}",
                    self.sentinels.master
                )),
                Ok(Err(e)) => {
                    self.conns[i] = None;
                    why.push(format!("{name}: {e}"));
                }
                Err(_) => {
                    self.conns[i] = None;
                    why.push(format!("{name}: no answer within {deadline:?}"));
                }
            }
        }
        Err(why.join("; "))
    }

    async fn ask_one(&mut self, i: usize) -> RedisResult<Option<(String, String)>> {
        if self.conns[i].is_none() {
            let cfg = self.connection_config();
            let conn = self.sentinels.nodes[i]
                .1
                .get_multiplexed_async_connection_with_config(&cfg)
                .await?;
            self.conns[i] = Some(conn);
        }
        let Some(conn) = self.conns[i].as_mut() else {
            return Ok(None);
        };
        redis::cmd("SENTINEL")
            .arg("GET-MASTER-ADDR-BY-NAME")
            .arg(&self.sentinels.master)
            .query_async(conn)
            .await
    }

    /// Whether `host:port` says it is the primary (`ROLE`).
    async fn is_primary(&self, shared: &Shared, host: &str, port: u16) -> RedisResult<bool> {
        let client = shared.dial_client(host, port)?;
        let check = async {
            let mut conn = client
                .get_multiplexed_async_connection_with_config(&self.connection_config())
                .await?;
            let role: Vec<redis::Value> = redis::cmd("ROLE").query_async(&mut conn).await?;
            Ok(matches!(role.first(), Some(redis::Value::BulkString(b)) if b == b"master"))
        };
        match tokio::time::timeout(self.sentinels.timeout, check).await {
            Ok(r) => r,
            Err(_) => Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no answer to ROLE within {:?}", self.sentinels.timeout),
            )
            .into()),
        }
    }

    /// `+switch-master` announcements from the first sentinel that takes the
    /// subscription. Any message is only a cue to ask: the asking decides.
    async fn subscribe(&self) -> Option<redis::aio::PubSubStream> {
        for (name, client) in &self.sentinels.nodes {
            let sub = async {
                let mut pubsub = client.get_async_pubsub().await?;
                pubsub.subscribe("+switch-master").await?;
                RedisResult::Ok(pubsub.into_on_message())
            };
            match tokio::time::timeout(self.sentinels.timeout, sub).await {
                Ok(Ok(stream)) => return Some(stream),
                Ok(Err(e)) => tracing::debug!(sentinel = %name, error = %e, "cannot subscribe"),
                Err(_) => tracing::debug!(sentinel = %name, "no answer to SUBSCRIBE"),
            }
        }
        None
    }

    fn connection_config(&self) -> AsyncConnectionConfig {
        AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.sentinels.timeout))
            .set_response_timeout(Some(self.sentinels.timeout))
    }
}
