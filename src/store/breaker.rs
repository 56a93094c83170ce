//! Calm reconnects: while Redis is away, one connection attempt per growing,
//! jittered pause for the whole process, and every other request fails at
//! once (the API answers 503, workers back off).
//!
//! Without it, every request that found the connection broken started a new
//! attempt (and a DNS lookup of `REDIS_IP`): a crash-looping Redis on a
//! cluster saw thousands of lookups a minute from a handful of pods.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use redis::{RedisError, RedisResult};

/// The first pause after a failed attempt; it doubles per failure.
const FIRST_PAUSE: Duration = Duration::from_millis(100);

/// How a request got through [`Breaker::admit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admitted {
    /// Redis is believed reachable.
    Open,
    /// Redis was away: this request is the one attempt of this pause.
    Attempt,
}

/// Shared by every connection of a process.
#[derive(Debug)]
pub struct Breaker {
    max_pause: Duration,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Connection failures in a row.
    failures: u32,
    /// No attempt before this.
    closed_until: Option<Instant>,
    /// Why the last attempt failed, told to the callers turned away meanwhile
    /// (a TLS failure looks like any lost connection otherwise).
    cause: Option<String>,
}

impl Breaker {
    /// Pauses grow from 100 ms to `max_pause`.
    pub fn new(max_pause: Duration) -> Self {
        Self {
            max_pause: max_pause.max(FIRST_PAUSE),
            state: Mutex::new(State::default()),
        }
    }

    /// Ok when a request may go to Redis. While Redis is known to be away,
    /// one caller per pause is let through (the attempt; the pause is pushed
    /// on at once, so a caller that gives up cannot leave the gate shut) and
    /// the rest get a connection error straight away.
    /// Returns whether this request is that attempt (the gate was shut).
    pub fn admit(&self) -> RedisResult<Admitted> {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let Some(until) = s.closed_until else {
            return Ok(Admitted::Open);
        };
        let now = Instant::now();
        if now < until {
            return Err(unreachable(until - now, s.cause.as_deref()));
        }
        s.closed_until = Some(now + self.pause(s.failures));
        Ok(Admitted::Attempt)
    }

    /// Records how a request went: a connection failure closes the gate for
    /// a longer pause; anything Redis answered opens it.
    pub fn observe<T>(&self, result: &RedisResult<T>) {
        let lost = match result {
            Err(e) if is_connection_error(e) => Some(e),
            _ => None,
        };
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(e) = lost {
            s.failures = s.failures.saturating_add(1);
            let pause = self.pause(s.failures);
            if s.failures == 1 || s.failures.is_power_of_two() {
                tracing::warn!(
                    failures = s.failures,
                    ?pause,
                    error = %super::Explained(e),
                    "Redis unreachable; next attempt after a pause"
                );
            }
            s.cause = Some(e.to_string());
            s.closed_until = Some(Instant::now() + pause);
        } else {
            // Redis answered (even if with an error of its own).
            if s.failures > 0 {
                tracing::info!(after_failures = s.failures, "Redis reachable again");
            }
            *s = State::default();
        }
    }

    /// Forgets the failures: the process now talks to another Redis.
    pub fn reset(&self) {
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) = State::default();
    }

    /// FIRST_PAUSE x 2^(failures-1), capped, then jittered down by up to a
    /// half, so that many processes do not retry in step.
    fn pause(&self, failures: u32) -> Duration {
        let full = FIRST_PAUSE
            .saturating_mul(1 << failures.saturating_sub(1).min(20))
            .min(self.max_pause);
        full.mul_f64(1.0 - jitter() / 2.0)
    }
}

/// A failure to reach Redis at all (as opposed to an answer we did not like).
pub fn is_connection_error(e: &RedisError) -> bool {
    e.is_io_error() || e.is_connection_refusal() || e.is_connection_dropped()
}

fn unreachable(wait: Duration, cause: Option<&str>) -> RedisError {
    let cause = cause.map(|c| format!(" ({c})")).unwrap_or_default();
    std::io::Error::new(
        std::io::ErrorKind::ConnectionRefused,
        format!(
            "Redis is unreachable{cause}; the next connection attempt is in {} ms",
            wait.as_millis()
        ),
    )
    .into()
}

/// A number in [0, 1) that differs per call and per process: enough for
/// spreading retries, with no random-number crate.
fn jitter() -> f64 {
    (uuid::Uuid::new_v4().as_u128() % 1_000_000) as f64 / 1_000_000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lost() -> RedisResult<()> {
        Err(std::io::Error::from(std::io::ErrorKind::ConnectionRefused).into())
    }

    #[test]
    fn after_a_failure_only_one_caller_per_pause_gets_through() {
        let b = Breaker::new(Duration::from_secs(2));
        assert_eq!(b.admit().unwrap(), Admitted::Open);
        b.observe(&lost());
        // Inside the pause: everyone fails fast, with a connection error.
        let e = b.admit().unwrap_err();
        assert!(is_connection_error(&e) && crate::store::redis_is_transient(&e));
        std::thread::sleep(Duration::from_millis(110));
        assert_eq!(
            b.admit().unwrap(),
            Admitted::Attempt,
            "one attempt after the pause"
        );
        assert!(b.admit().is_err(), "and only one");
        b.observe(&Ok(()));
        assert!(
            b.admit().is_ok() && b.admit().is_ok(),
            "open again once Redis answers"
        );
    }

    #[test]
    fn pauses_double_with_jitter_up_to_the_cap() {
        let b = Breaker::new(Duration::from_millis(1000));
        for (failures, full) in [
            (1, 100),
            (2, 200),
            (3, 400),
            (4, 800),
            (5, 1000),
            (30, 1000),
        ] {
            for _ in 0..20 {
                let p = b.pause(failures).as_millis() as u64;
                assert!(
                    p <= full && p >= full / 2,
                    "{failures}: {p} not in {}..={full}",
                    full / 2
                );
            }
        }
    }
}
