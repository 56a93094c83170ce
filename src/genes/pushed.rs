//! Which release is live and which are kept, as Redis announces it the
//! moment it changes: the one thing an api process must ask Redis before it
//! may answer a read from its own copy of a release.
//!
//! Releases are immutable, so a process that holds a release's records needs
//! Redis only for "is it still live (or kept)?". The swap and `DELETE /data`
//! scripts publish the answer in the same atomic step that changes it
//! (`src/lua/announce.lua`), and one task per api process ([`run`]) listens.
//!
//! Pub/sub rather than RESP3 client tracking: tracking needs RESP3 on the
//! connection that reads the key (or a redirect to a second connection), it
//! says only *that* the key changed, so every change costs a read anyway,
//! and it tells nothing about the kept set. A message carries the new state
//! itself, works with RESP2 and through Sentinel, and the ACL grant is
//! narrow (`+subscribe +publish &<prefix>:*`).
//!
//! The copy is trusted only while it is known to be current:
//! - from the moment the subscription is confirmed *and* the state has been
//!   read after it (a message that raced the read is told apart by its
//!   sequence number);
//! - until the subscription ends (connection lost, the primary moved), or a
//!   check (`GET <p>:releases:seq`, every `cache.verify_ms`) fails or is
//!   more than two periods old. A message lost on a connection that looks
//!   alive is caught by that check, which then reads the state again.
//!
//! While not trusted, reads check the live pointer in Redis per request, as
//! with `GENE_API__CACHE__RECORDS=false`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use redis::RedisResult;
use tokio_util::sync::CancellationToken;

use super::catalog::Catalog;
use crate::store::{Keys, Store};

/// Which release is live and which are kept, as of change number `seq`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct View {
    pub seq: u64,
    pub live: Option<String>,
    /// Oldest first.
    pub kept: Vec<String>,
}

impl View {
    /// An announcement: `<seq>\n<live or empty>\n<kept, comma-separated>`.
    pub fn parse(message: &[u8]) -> Option<Self> {
        let text = std::str::from_utf8(message).ok()?;
        let mut lines = text.splitn(3, '\n');
        let seq = lines.next()?.parse().ok()?;
        let live = lines.next()?;
        let kept = lines.next()?;
        Some(Self {
            seq,
            live: (!live.is_empty()).then(|| live.to_string()),
            kept: kept
                .split(',')
                .filter(|k| !k.is_empty())
                .map(str::to_string)
                .collect(),
        })
    }

    pub fn keeps(&self, id: &str) -> bool {
        self.kept.iter().any(|k| k == id)
    }

    /// The state now, read in one transaction.
    async fn read(store: &Store) -> RedisResult<Self> {
        let keys: &Keys = &store.keys;
        let (seq, live, kept): (Option<u64>, Option<String>, Vec<String>) = redis::pipe()
            .atomic()
            .get(keys.releases_seq())
            .get(keys.current())
            .zrange(keys.releases(), 0, -1)
            .query_async(&mut store.data.clone())
            .await?;
        Ok(Self {
            seq: seq.unwrap_or(0),
            live,
            kept,
        })
    }
}

/// This process's view, shared by every request. Cheap to clone.
#[derive(Clone)]
pub struct Pushed {
    inner: Arc<Inner>,
}

struct Inner {
    /// None while the view cannot be trusted.
    view: ArcSwapOption<View>,
    /// When the view was last confirmed current, in ms since `epoch`.
    confirmed: AtomicU64,
    epoch: Instant,
    /// A view confirmed longer ago than this is not trusted.
    trust_for: Duration,
    /// Times the view was dropped (lost subscription, failed check).
    distrusted: AtomicU64,
}

impl Pushed {
    /// A view confirmed every `verify`; trusted for two of those.
    pub fn new(verify: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                view: ArcSwapOption::empty(),
                confirmed: AtomicU64::new(0),
                epoch: Instant::now(),
                trust_for: verify * 2,
                distrusted: AtomicU64::new(0),
            }),
        }
    }

    /// The view, when it can be trusted.
    pub fn view(&self) -> Option<Arc<View>> {
        let view = self.inner.view.load_full()?;
        let age = self.now_ms() - self.inner.confirmed.load(Ordering::Acquire);
        (age <= self.inner.trust_for.as_millis() as u64).then_some(view)
    }

    /// Times this process stopped trusting its view (for tests and metrics).
    pub fn distrusted(&self) -> u64 {
        self.inner.distrusted.load(Ordering::Relaxed)
    }

    fn now_ms(&self) -> u64 {
        self.inner.epoch.elapsed().as_millis() as u64
    }

    fn confirm(&self) {
        self.inner.confirmed.store(self.now_ms(), Ordering::Release);
    }

    fn distrust(&self) {
        if self.inner.view.swap(None).is_some() {
            self.inner.distrusted.fetch_add(1, Ordering::Relaxed);
            metrics::counter!("gene_api_release_view_lost_total").increment(1);
            metrics::gauge!("gene_api_release_view_trusted").set(0.0);
        }
    }

    /// Takes `view` unless the one held is newer; true when it was taken.
    fn apply(&self, view: View) -> bool {
        if let Some(held) = self.inner.view.load().as_ref() {
            if held.seq > view.seq {
                return false;
            }
            if **held == view {
                self.confirm();
                return false;
            }
        }
        self.confirm();
        self.inner.view.store(Some(Arc::new(view)));
        metrics::gauge!("gene_api_release_view_trusted").set(1.0);
        true
    }

    fn seq(&self) -> Option<u64> {
        self.inner.view.load().as_ref().map(|v| v.seq)
    }
}

/// Listens for announcements until `shutdown`, keeping `pushed` current and
/// `catalog` warm (the new live release's records fetched as it goes live,
/// releases nobody reads dropped). Subscribes again after every loss.
pub async fn run(
    pushed: Pushed,
    store: Store,
    catalog: Catalog,
    verify: Duration,
    shutdown: CancellationToken,
) {
    let mut pause = Duration::from_millis(100);
    loop {
        let started = Instant::now();
        let outcome = tokio::select! {
            r = session(&pushed, &store, &catalog, verify) => r,
            _ = shutdown.cancelled() => return,
        };
        pushed.distrust();
        match outcome {
            Ok(()) => {
                tracing::info!("release announcements: subscription ended; subscribing again")
            }
            Err(e) => tracing::warn!(
                error = %crate::store::Explained(&e),
                "release announcements: not subscribed; reads check Redis until it is back"
            ),
        }
        // A session that lasted resets the pause; a failing one doubles it.
        if started.elapsed() > Duration::from_secs(5) {
            pause = Duration::from_millis(100);
        }
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = shutdown.cancelled() => return,
        }
        pause = (pause * 2).min(Duration::from_secs(2));
    }
}

/// One subscription, until it is lost (Ok) or a check fails (Err).
async fn session(
    pushed: &Pushed,
    store: &Store,
    catalog: &Catalog,
    verify: Duration,
) -> RedisResult<()> {
    let mut sub = store.subscribe(store.keys.releases_channel()).await?;
    // Read only once subscribed: a change made after this read is announced
    // to us, and one made before it is in what we read.
    let view = View::read(store).await?;
    take(pushed, store, catalog, view);
    let mut tick = tokio::time::interval(verify);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            message = sub.next() => {
                let Some(payload) = message else { return Ok(()) };
                match View::parse(&payload) {
                    Some(view) => take(pushed, store, catalog, view),
                    None => tracing::warn!(
                        message = %String::from_utf8_lossy(&payload),
                        "release announcements: a message of another form (a newer gene-api?); ignored"
                    ),
                }
            }
            _ = tick.tick() => {
                check(pushed, store, catalog, verify).await?;
                catalog.drop_idle(pushed.view().and_then(|v| v.live.clone()).as_deref());
            }
        }
    }
}

/// Confirms the view against the sequence number in Redis; reads the state
/// again when an announcement was missed.
async fn check(
    pushed: &Pushed,
    store: &Store,
    catalog: &Catalog,
    verify: Duration,
) -> RedisResult<()> {
    let read = async {
        let seq: Option<u64> = redis::cmd("GET")
            .arg(store.keys.releases_seq())
            .query_async(&mut store.data.clone())
            .await?;
        RedisResult::Ok(seq.unwrap_or(0))
    };
    let seq = match tokio::time::timeout(verify, read).await {
        Ok(r) => r?,
        Err(_) => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the check of the release sequence number took longer than cache.verify_ms",
            )
            .into())
        }
    };
    match pushed.seq() {
        Some(held) if held >= seq => pushed.confirm(),
        // Behind: an announcement is still on its way, or was lost. Read
        // the state; a message that arrives later is older and ignored.
        _ => {
            let view = View::read(store).await?;
            if pushed.seq().is_some_and(|held| held < view.seq) {
                tracing::warn!(
                    seq = view.seq,
                    "release announcements: one was missed; the state was read again"
                );
            }
            take(pushed, store, catalog, view);
        }
    }
    Ok(())
}

fn take(pushed: &Pushed, store: &Store, catalog: &Catalog, view: View) {
    let live = view.live.clone();
    if pushed.apply(view) {
        if let Some(id) = live {
            catalog.warm(store.data.clone(), store.keys.clone(), id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announcements_parse() {
        let v = View::parse(b"7\nr2\nr1,r2").unwrap();
        assert_eq!(v.seq, 7);
        assert_eq!(v.live.as_deref(), Some("r2"));
        assert_eq!(v.kept, vec!["r1".to_string(), "r2".to_string()]);
        assert!(v.keeps("r1") && !v.keeps("r3"));
        let none = View::parse(b"8\n\n").unwrap();
        assert_eq!(none.live, None);
        assert!(none.kept.is_empty());
        assert!(View::parse(b"x\nr\n").is_none());
        assert!(View::parse(b"9\nr").is_none());
    }

    #[test]
    fn an_older_view_never_replaces_a_newer_one() {
        let p = Pushed::new(Duration::from_secs(1));
        assert!(
            p.view().is_none(),
            "nothing is trusted before a view is taken"
        );
        assert!(p.apply(View::parse(b"5\nb\na,b").unwrap()));
        assert!(!p.apply(View::parse(b"4\na\na").unwrap()));
        assert_eq!(p.view().unwrap().live.as_deref(), Some("b"));
        assert!(p.apply(View::parse(b"6\n\n").unwrap()));
        assert_eq!(p.view().unwrap().live, None);
        p.distrust();
        assert!(p.view().is_none());
        assert_eq!(p.distrusted(), 1);
    }

    #[test]
    fn a_view_not_confirmed_lately_is_not_trusted() {
        let p = Pushed::new(Duration::from_millis(5));
        assert!(p.apply(View::parse(b"1\na\na").unwrap()));
        assert!(p.view().is_some());
        std::thread::sleep(Duration::from_millis(30));
        assert!(
            p.view().is_none(),
            "two missed checks and the view is stale"
        );
        p.confirm();
        assert!(p.view().is_some());
    }
}
