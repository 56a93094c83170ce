//! The connections to the Redis primary, replaced whole when the primary
//! moves (a Sentinel failover), so that no command is ever sent to a Redis
//! that is no longer the primary by a connection that was made to it before.
//!
//! With `REDIS_IP` the primary never moves: one route, made at start. With
//! Sentinel the follower ([`super::sentinel`]) installs a new route each time
//! the sentinels name a new primary, and every connection made from the old
//! one (shared managers, blocking readers) fails at once with a "moved"
//! error, which callers treat as a lost connection: they answer 503 or
//! reconnect, and the reconnect reaches the new primary.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use redis::aio::{
    ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection,
};
use redis::{AsyncConnectionConfig, Client, RedisError, RedisFuture, RedisResult};
use tokio::sync::{watch, Notify};

use super::breaker::{self, Admitted, Breaker};

/// Connections that WAIT for replicas: a WAIT holds its connection until the
/// replicas answer, so these are apart from the one that serves reads, and
/// several, so that concurrent submissions do not wait in one line (figure
/// 17 of scripts/bench: 4 gave 0.63 of the submissions without WAIT, 16 gave
/// 0.81). They connect on first use: without MIN_REPLICAS, never.
const ACK_CONNECTIONS: usize = 16;

/// How a primary's clients are made (the settings, read once).
pub(super) trait Dial: Send + Sync {
    /// A client of db `db` at `host:port`.
    fn client(&self, host: &str, port: u16, db: i64) -> RedisResult<Client>;
}

/// The connections to one primary.
pub(super) struct Route {
    pub generation: u64,
    pub host: String,
    pub port: u16,
    data: ConnectionManager,
    images: ConnectionManager,
    acks: Vec<ConnectionManager>,
    data_client: Client,
}

/// What every connection of a process shares.
pub(super) struct Shared {
    route: RwLock<Option<Arc<Route>>>,
    /// The generation of the route in place; bumped by each move.
    moved: watch::Sender<u64>,
    pub breaker: Arc<Breaker>,
    dial: Box<dyn Dial>,
    manager_config: ConnectionManagerConfig,
    pub connect_timeout: Duration,
    pub response_timeout: Duration,
    next_ack: AtomicUsize,
    /// Set when the primary can move: errors that a failover causes then
    /// wake the follower, which asks the sentinels at once.
    pub nudge: Option<Arc<Notify>>,
    /// Why the primary cannot be found (no sentinel answers, or none names a
    /// primary that says it is one); `/ready` reports it.
    pub unlocated: Mutex<Option<String>>,
}

impl Shared {
    pub fn new(
        dial: Box<dyn Dial>,
        breaker: Arc<Breaker>,
        connect_timeout: Duration,
        response_timeout: Duration,
        follows: bool,
    ) -> Self {
        // One attempt per reconnect: the breaker paces the attempts.
        let manager_config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(response_timeout))
            .set_connection_timeout(Some(connect_timeout))
            .set_number_of_retries(0);
        Self {
            route: RwLock::new(None),
            moved: watch::Sender::new(0),
            breaker,
            dial,
            manager_config,
            connect_timeout,
            response_timeout,
            next_ack: AtomicUsize::new(0),
            nudge: follows.then(|| Arc::new(Notify::new())),
            unlocated: Mutex::new(follows.then(|| "the sentinels have not been asked yet".into())),
        }
    }

    /// A client of db 0 at `host:port`, with the settings of every other.
    pub fn dial_client(&self, host: &str, port: u16) -> RedisResult<Client> {
        self.dial.client(host, port, super::DATA_DB)
    }

    pub fn current(&self) -> Option<Arc<Route>> {
        self.route.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Puts the connections to `host:port` in place of the old ones, which
    /// every request still on them gives up. Lazy: nothing connects here.
    pub fn install(&self, host: &str, port: u16) -> RedisResult<()> {
        let generation = *self.moved.borrow() + 1;
        let lazy = |db| -> RedisResult<(Client, ConnectionManager)> {
            let client = self.dial.client(host, port, db)?;
            let manager = ConnectionManager::new_lazy_with_config(
                client.clone(),
                self.manager_config.clone(),
            )?;
            Ok((client, manager))
        };
        let (data_client, data) = lazy(super::DATA_DB)?;
        let (_, images) = lazy(super::IMAGE_DB)?;
        let acks = (0..ACK_CONNECTIONS)
            .map(|_| lazy(super::DATA_DB).map(|(_, m)| m))
            .collect::<RedisResult<_>>()?;
        let route = Arc::new(Route {
            generation,
            host: host.to_string(),
            port,
            data,
            images,
            acks,
            data_client,
        });
        *self.route.write().unwrap_or_else(|e| e.into_inner()) = Some(route);
        // The old primary's failures must not pace the attempts on the new one.
        self.breaker.reset();
        self.moved.send_replace(generation);
        Ok(())
    }

    /// Runs `request`, made on the route of `generation`, unless that route is
    /// replaced first: a request to a primary that froze would otherwise wait
    /// out its whole response timeout.
    async fn on_route<T>(
        &self,
        generation: u64,
        request: impl std::future::Future<Output = RedisResult<T>>,
    ) -> RedisResult<T> {
        if self.nudge.is_none() {
            return request.await;
        }
        let mut moves = self.moved.subscribe();
        tokio::select! {
            r = request => r,
            _ = moves.wait_for(|g| *g != generation) => Err(moved()),
        }
    }

    /// [`Self::on_route`], then [`Self::saw`] its outcome.
    async fn watched<T>(
        &self,
        generation: u64,
        request: impl std::future::Future<Output = RedisResult<T>>,
    ) -> RedisResult<T> {
        let r = self.on_route(generation, request).await;
        self.saw(&r);
        r
    }

    /// Wakes the follower for the errors a failover causes.
    fn saw<T>(&self, r: &RedisResult<T>) {
        if let (Some(nudge), Err(e)) = (&self.nudge, r) {
            if is_failover_sign(e) {
                nudge.notify_one();
            }
        }
    }

    fn no_route(&self) -> RedisError {
        let why = self
            .unlocated
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .unwrap_or_else(|| "not yet known".into());
        std::io::Error::new(
            std::io::ErrorKind::NotConnected,
            format!("no Redis primary to write to: {why}"),
        )
        .into()
    }
}

/// The answers that mean the primary may have moved: it is gone, it froze,
/// it is a replica now, or it unblocked our reader because its role changed.
fn is_failover_sign(e: &RedisError) -> bool {
    breaker::is_connection_error(e)
        || e.is_timeout()
        || e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::ReadOnly)
        || e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::MasterDown)
        || super::error_code(e).as_deref() == Some("UNBLOCKED")
}

/// What a request gets when the primary moved under it: a dropped connection,
/// which every caller already treats as "retry later" (503, or reconnect).
fn moved() -> RedisError {
    std::io::Error::new(
        std::io::ErrorKind::ConnectionAborted,
        "the Redis primary moved (a Sentinel failover); the next request goes to the new one",
    )
    .into()
}

#[derive(Clone, Copy)]
enum Pick {
    Data,
    Images,
    Ack(usize),
}

/// A connection to one database of the primary: a multiplexed,
/// self-reconnecting manager behind the process's [`Breaker`], so that while
/// Redis is away requests fail at once instead of each starting a connection
/// attempt. Cheap to clone.
#[derive(Clone)]
pub struct Conn {
    shared: Arc<Shared>,
    pick: Pick,
}

impl Conn {
    pub(super) fn data(shared: Arc<Shared>) -> Self {
        Self {
            shared,
            pick: Pick::Data,
        }
    }

    pub(super) fn images(shared: Arc<Shared>) -> Self {
        Self {
            shared,
            pick: Pick::Images,
        }
    }

    /// One of the connections for writes that WAIT, in turn.
    pub(super) fn ack(shared: Arc<Shared>) -> Self {
        let i = shared.next_ack.fetch_add(1, Ordering::Relaxed) % ACK_CONNECTIONS;
        Self {
            shared,
            pick: Pick::Ack(i),
        }
    }

    fn manager(&self) -> RedisResult<(ConnectionManager, u64)> {
        let route = self
            .shared
            .current()
            .ok_or_else(|| self.shared.no_route())?;
        let m = match self.pick {
            Pick::Data => route.data.clone(),
            Pick::Images => route.images.clone(),
            Pick::Ack(i) => route.acks[i].clone(),
        };
        Ok((m, route.generation))
    }

    async fn run<'a, T>(
        &'a self,
        send: impl Fn(ConnectionManager) -> RedisFuture<'a, T>,
    ) -> RedisResult<T> {
        let admitted = self.shared.breaker.admit()?;
        let (m, generation) = self.manager()?;
        let mut r = self.shared.on_route(generation, send(m.clone())).await;
        if stale_failure(admitted, &r) {
            r = self.shared.on_route(generation, send(m)).await;
        }
        if self.shared.current().map(|c| c.generation) == Some(generation) {
            self.shared.breaker.observe(&r);
        }
        self.shared.saw(&r);
        r
    }
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a redis::Cmd) -> RedisFuture<'a, redis::Value> {
        Box::pin(async move {
            self.run(|mut m| Box::pin(async move { m.req_packed_command(cmd).await }))
                .await
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<redis::Value>> {
        Box::pin(async move {
            self.run(|mut m| {
                Box::pin(async move { m.req_packed_commands(cmd, offset, count).await })
            })
            .await
        })
    }

    fn get_db(&self) -> i64 {
        match self.pick {
            Pick::Images => super::IMAGE_DB,
            Pick::Data | Pick::Ack(_) => super::DATA_DB,
        }
    }
}

/// The attempt of a pause may first get back the failure the manager kept
/// from before Redis went away: the manager starts its reconnect only then.
/// Asking once more waits for that reconnect, so the attempt is a real one,
/// and a Redis that is back is used at once instead of a pause later.
///
/// The same holds for any request that meets a closed or reset connection
/// (redis-rs says "broken pipe" when the connection's reader saw it end)
/// once Redis is back: each of a process's connections learns of the restart only when it
/// is next used, and without this, that first use failed a job's run even
/// though Redis answered everything else (the Redis crash test lost 1 job
/// in about 15 runs to it, dead-lettered after three such runs). A request
/// in flight when Redis died may have run there; asking again is what a
/// client does anyway, and every write gene-api sends is keyed to be
/// idempotent (job ids, owner checks).
fn stale_failure<T>(admitted: Admitted, r: &RedisResult<T>) -> bool {
    match r {
        Err(e) if closed_under_us(e) => true,
        Err(e) => admitted == Admitted::Attempt && breaker::is_connection_error(e),
        Ok(_) => false,
    }
}

/// A connection that was there and is gone (closed or reset), as opposed
/// to one refused: Redis may well be back, and the manager reconnects.
fn closed_under_us(e: &redis::RedisError) -> bool {
    e.is_connection_dropped() && !e.is_connection_refusal()
}

/// A connection of its own to db 0 of the primary, for blocking stream reads.
/// Once the primary moves, every command on it fails as a lost connection,
/// so its owner makes a new one, to the new primary.
pub struct BlockingConn {
    inner: MultiplexedConnection,
    generation: u64,
    shared: Arc<Shared>,
}

impl BlockingConn {
    pub(super) async fn open(shared: Arc<Shared>, block: Duration) -> RedisResult<Self> {
        shared.breaker.admit()?;
        let route = shared.current().ok_or_else(|| shared.no_route())?;
        let cfg = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(shared.connect_timeout))
            .set_response_timeout(Some(shared.response_timeout + block));
        let r = shared
            .on_route(
                route.generation,
                route
                    .data_client
                    .get_multiplexed_async_connection_with_config(&cfg),
            )
            .await;
        shared.breaker.observe(&r);
        shared.saw(&r);
        Ok(Self {
            inner: r?,
            generation: route.generation,
            shared,
        })
    }
}

impl ConnectionLike for BlockingConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a redis::Cmd) -> RedisFuture<'a, redis::Value> {
        Box::pin(
            self.shared
                .watched(self.generation, self.inner.req_packed_command(cmd)),
        )
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<redis::Value>> {
        Box::pin(self.shared.watched(
            self.generation,
            self.inner.req_packed_commands(cmd, offset, count),
        ))
    }

    fn get_db(&self) -> i64 {
        super::DATA_DB
    }
}

/// A subscription to a channel on the primary, on a connection of its own.
/// [`Subscription::next`] ends (None) when that connection is lost or the
/// primary moves, so its owner subscribes again, on the new primary.
pub struct Subscription {
    messages: redis::aio::PubSubStream,
    moves: watch::Receiver<u64>,
    generation: u64,
}

impl Subscription {
    pub(super) async fn open(shared: Arc<Shared>, channel: &str) -> RedisResult<Self> {
        shared.breaker.admit()?;
        let route = shared.current().ok_or_else(|| shared.no_route())?;
        let client = route.data_client.clone();
        let subscribe = async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(channel).await?;
            Ok(pubsub.into_on_message())
        };
        // A pub/sub connection has no response timeout of its own: the whole
        // subscribe gets the connect timeout and the usual response time.
        let r = match tokio::time::timeout(
            shared.connect_timeout + shared.response_timeout,
            shared.on_route(route.generation, subscribe),
        )
        .await
        {
            Ok(r) => r,
            Err(_) => Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "subscribing took longer than the connect and response timeouts",
            )
            .into()),
        };
        shared.breaker.observe(&r);
        shared.saw(&r);
        Ok(Self {
            messages: r?,
            moves: shared.moved.subscribe(),
            generation: route.generation,
        })
    }

    /// The next message's payload; None once the subscription is over.
    pub async fn next(&mut self) -> Option<Vec<u8>> {
        use futures_util::StreamExt;
        let generation = self.generation;
        tokio::select! {
            m = self.messages.next() => m.map(|m| m.get_payload_bytes().to_vec()),
            _ = self.moves.wait_for(|g| *g != generation) => None,
        }
    }
}

#[cfg(test)]
mod closed_tests {
    use super::*;

    #[test]
    fn only_a_closed_connection_is_asked_again_when_redis_is_believed_up() {
        let io = |k| redis::RedisError::from(std::io::Error::from(k));
        let closed: RedisResult<()> = Err(io(std::io::ErrorKind::BrokenPipe));
        assert!(stale_failure(Admitted::Open, &closed));
        let reset: RedisResult<()> = Err(io(std::io::ErrorKind::ConnectionReset));
        assert!(stale_failure(Admitted::Open, &reset));
        // Refused: Redis is away; the breaker's one attempt alone asks again.
        let refused: RedisResult<()> = Err(io(std::io::ErrorKind::ConnectionRefused));
        assert!(!stale_failure(Admitted::Open, &refused));
        assert!(stale_failure(Admitted::Attempt, &refused));
        assert!(!stale_failure(Admitted::Open, &Ok(())));
    }
}
