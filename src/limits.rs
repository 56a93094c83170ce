//! Per-client rate limits, the queue's backpressure, and the cap on
//! concurrent event streams per client: what keeps one client's flood from
//! hurting the others.
//!
//! A client is its API key's name when it sent a valid one, else its IP (or,
//! behind a proxy, the configured header's last address: the one the trusted
//! proxy appended, which the client cannot forge).

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tokio_util::sync::CancellationToken;

use crate::config::LimitSettings;
use crate::pipeline::Pipeline;

/// Who a request is from, for the budgets.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Client {
    Key(String),
    Ip(IpAddr),
    /// Neither (a test's in-memory request): shares one budget.
    Unknown,
}

impl std::fmt::Display for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Client::Key(name) => write!(f, "key:{name}"),
            Client::Ip(ip) => write!(f, "ip:{ip}"),
            Client::Unknown => f.write_str("unknown"),
        }
    }
}

impl Client {
    /// The client of a request: its key's name, else the trusted header's
    /// last address, else the peer's address.
    pub fn of(key: Option<String>, header: Option<&str>, peer: Option<IpAddr>) -> Self {
        if let Some(name) = key {
            return Client::Key(name);
        }
        let from_header = header.and_then(|h| {
            h.rsplit(',')
                .map(str::trim)
                .find(|s| !s.is_empty())
                .and_then(|s| s.parse::<IpAddr>().ok())
        });
        match from_header.or(peer) {
            Some(ip) => Client::Ip(ip),
            None => Client::Unknown,
        }
    }
}

/// Why a request was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The client's budget is spent; try again after this long.
    RateLimited {
        retry_after: Duration,
        submissions: bool,
    },
    /// The queue's backlog is at `max_backlog`.
    Busy { backlog: u64, max: u64 },
}

/// The limits of one api process (budgets are per process: with N api
/// replicas a client may get up to N times the budget).
#[derive(Clone)]
pub struct Limits {
    general: Option<Arc<DefaultKeyedRateLimiter<Client>>>,
    submissions: Option<Arc<DefaultKeyedRateLimiter<Client>>>,
    /// lag + pending, as last read (0 until the first read). A cheap first
    /// refusal under a flood; the exact count is the submission script's.
    backlog: Arc<AtomicU64>,
    max_backlog: u64,
    streams: Arc<Mutex<HashMap<Client, usize>>>,
    max_streams: usize,
}

fn limiter(per_second: u32, burst: u32) -> Option<Arc<DefaultKeyedRateLimiter<Client>>> {
    let rate = NonZeroU32::new(per_second)?;
    let burst = NonZeroU32::new(burst).unwrap_or(rate);
    Some(Arc::new(RateLimiter::keyed(
        Quota::per_second(rate).allow_burst(burst),
    )))
}

impl Limits {
    pub fn new(s: &LimitSettings) -> Self {
        Self {
            general: limiter(s.requests_per_second, s.burst),
            submissions: limiter(s.submissions_per_second, s.submission_burst),
            backlog: Arc::new(AtomicU64::new(0)),
            max_backlog: s.max_backlog,
            streams: Arc::new(Mutex::new(HashMap::new())),
            max_streams: s.streams_per_client,
        }
    }

    /// Spends one request of `client`'s budget (and one submission, for
    /// job submissions); refuses submissions while the backlog is too long.
    pub fn admit(&self, client: &Client, submission: bool) -> Result<(), Refusal> {
        let wait = |l: &DefaultKeyedRateLimiter<Client>| {
            l.check_key(client)
                .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
        };
        if let Some(l) = &self.general {
            wait(l).map_err(|retry_after| Refusal::RateLimited {
                retry_after,
                submissions: false,
            })?;
        }
        if submission {
            if let Some(l) = &self.submissions {
                wait(l).map_err(|retry_after| Refusal::RateLimited {
                    retry_after,
                    submissions: true,
                })?;
            }
            let backlog = self.backlog.load(Ordering::Relaxed);
            // At the limit already: one more would be over it (the
            // submission script refuses the same way).
            if self.max_backlog > 0 && backlog >= self.max_backlog {
                return Err(Refusal::Busy {
                    backlog,
                    max: self.max_backlog,
                });
            }
        }
        Ok(())
    }

    /// Takes one of `client`'s event-stream slots; None when all are in use.
    /// The slot is given back when the guard is dropped (the stream ended).
    pub fn open_stream(&self, client: Client) -> Option<StreamSlot> {
        let mut open = self.streams.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.entry(client.clone()).or_default();
        if self.max_streams > 0 && *n >= self.max_streams {
            return None;
        }
        *n += 1;
        Some(StreamSlot {
            streams: self.streams.clone(),
            client,
        })
    }

    pub fn max_streams(&self) -> usize {
        self.max_streams
    }

    /// Reads the backlog every 250 ms (what [`Limits::admit`] compares), and
    /// forgets idle clients' budgets every minute so the tables stay small.
    pub async fn run(self, pipeline: Pipeline, stop: CancellationToken) {
        let mut every = tokio::time::interval(Duration::from_millis(250));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut ticks = 0u64;
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = every.tick() => {}
            }
            if self.max_backlog > 0 {
                // Unknown while Redis is away: the last value stands.
                if let Ok(b) = pipeline.backlog().await {
                    self.backlog
                        .store(b.lag.unwrap_or(b.length) + b.pending, Ordering::Relaxed);
                }
            }
            ticks += 1;
            if ticks.is_multiple_of(240) {
                for l in [&self.general, &self.submissions].into_iter().flatten() {
                    l.retain_recent();
                    l.shrink_to_fit();
                }
            }
        }
    }
}

/// An open event stream of one client; gives its slot back when dropped.
pub struct StreamSlot {
    streams: Arc<Mutex<HashMap<Client, usize>>>,
    client: Client,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut open = self.streams.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.client) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.client);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(per_second: u32, burst: u32) -> LimitSettings {
        LimitSettings {
            requests_per_second: per_second,
            burst,
            submissions_per_second: 1,
            submission_burst: 2,
            client_ip_header: None,
            max_backlog: 10,
            streams_per_client: 2,
        }
    }

    #[test]
    fn budgets_are_per_client() {
        let l = Limits::new(&settings(1, 3));
        let a = Client::Key("a".into());
        let b = Client::Ip("10.0.0.2".parse().unwrap());
        for _ in 0..3 {
            assert_eq!(l.admit(&a, false), Ok(()));
        }
        match l.admit(&a, false) {
            Err(Refusal::RateLimited {
                retry_after,
                submissions: false,
            }) => {
                assert!(retry_after <= Duration::from_secs(1), "{retry_after:?}")
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(l.admit(&b, false), Ok(()), "another client is not affected");
    }

    #[test]
    fn submissions_have_their_own_budget_and_the_backlog_a_ceiling() {
        let l = Limits::new(&settings(100, 100));
        let a = Client::Unknown;
        assert_eq!(l.admit(&a, true), Ok(()));
        assert_eq!(l.admit(&a, true), Ok(()));
        assert!(matches!(
            l.admit(&a, true),
            Err(Refusal::RateLimited {
                submissions: true,
                ..
            })
        ));
        assert_eq!(l.admit(&a, false), Ok(()), "reads still pass");
        let l = Limits::new(&settings(100, 100));
        l.backlog.store(9, Ordering::Relaxed);
        assert_eq!(l.admit(&a, true), Ok(()), "one below the limit");
        l.backlog.store(10, Ordering::Relaxed);
        assert_eq!(
            l.admit(&a, true),
            Err(Refusal::Busy {
                backlog: 10,
                max: 10
            })
        );
        assert_eq!(l.admit(&a, false), Ok(()), "reads keep working");
    }

    #[test]
    fn stream_slots_come_back() {
        let l = Limits::new(&settings(1, 1));
        let c = Client::Ip("10.0.0.1".parse().unwrap());
        let s1 = l.open_stream(c.clone()).unwrap();
        let _s2 = l.open_stream(c.clone()).unwrap();
        assert!(l.open_stream(c.clone()).is_none());
        assert!(l.open_stream(Client::Unknown).is_some());
        drop(s1);
        assert!(l.open_stream(c).is_some());
    }

    #[test]
    fn the_client_behind_a_proxy_is_the_last_address() {
        let peer: IpAddr = "10.1.1.1".parse().unwrap();
        assert_eq!(
            Client::of(None, Some("6.6.6.6, 203.0.113.7"), Some(peer)),
            Client::Ip("203.0.113.7".parse().unwrap())
        );
        assert_eq!(Client::of(None, Some("junk"), Some(peer)), Client::Ip(peer));
        assert_eq!(
            Client::of(Some("ci".into()), Some("1.2.3.4"), Some(peer)),
            Client::Key("ci".into())
        );
    }
}
