//! The refresh schedule (`data.refresh`): a load of `data.source` at every
//! tick of a cron expression, UTC. Every process runs one (serve, api and
//! worker alike, so the schedule holds with any mix of replicas); each tick
//! is claimed in Redis by the same script that queues its load
//! (`lua/schedule_tick.lua`), so however many replicas look, one load is
//! queued per tick, and a replica that dies mid-tick cannot leave a tick
//! claimed with nothing queued: the next replica to look claims it.
//!
//! The load is an ordinary job (states, events, metrics, retries) whose
//! `params.trigger` is `schedule`. The hash `<prefix>:schedule:refresh` keeps
//! the last claimed tick and what came of it (the job, or the full queue
//! that refused it), for `GET /schedules`.

use std::time::{Duration, UNIX_EPOCH};

use redis::RedisResult;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{now_ms, Pipeline, SubmitError};
use crate::jobs::{Command, Job, Trigger};
use crate::lua;
use crate::schedule::Schedule;
use crate::store::Store;

/// How late a tick may still be claimed. A replica started (or Redis back)
/// within this of a tick nobody claimed runs it: a restart or a failover of
/// a few minutes across the tick delays the day's load instead of skipping
/// it. A tick older than this is let go, so that a process started hours
/// after one (a fresh deployment, a replica restarted at noon) does not run
/// a load at an hour nobody chose.
pub const CATCH_UP: Duration = Duration::from_secs(300);

/// The longest sleep between two looks at the clock. Sleeps are measured on
/// the monotonic clock and ticks on the wall clock: looking at least this
/// often notices a stepped wall clock, and retries a claim that failed
/// (Redis away) well within [`CATCH_UP`].
const POLL: Duration = Duration::from_secs(1);

/// Queues a load at every tick of the refresh schedule, once per tick
/// across all replicas.
pub struct Refresh {
    pipeline: Pipeline,
    schedule: Schedule,
    /// The latest tick this replica has claimed or seen claimed: it is not
    /// asked about again.
    tried: Option<u64>,
}

/// What one look at the clock did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TickOutcome {
    /// No tick since the one looked at last, or the latest is older than
    /// [`CATCH_UP`].
    NothingDue,
    /// This replica claimed the tick (ms since the epoch) and queued the load.
    Queued { tick: u64, job: Uuid },
    /// This replica claimed the tick, but the queue was full: no load for it.
    Busy { tick: u64, backlog: u64, max: u64 },
    /// Another replica had claimed this tick (or a later one) already.
    Taken { tick: u64 },
}

impl Refresh {
    pub fn new(pipeline: Pipeline, schedule: Schedule) -> Self {
        Self {
            pipeline,
            schedule,
            tried: None,
        }
    }

    /// Claims the most recent tick, if it is due and new, and queues its load.
    pub async fn tick_once(&mut self) -> RedisResult<TickOutcome> {
        if self.due(now_ms()).is_none() {
            return Ok(TickOutcome::NothingDue);
        }
        // The tick is read at the job's own creation time, so that a
        // scheduled job's created_at always falls between its tick and the
        // next one (what a reader groups jobs by).
        let job = Job::new(self.command(), self.pipeline.settings.pipeline.max_attempts);
        let created = humantime::parse_rfc3339(&job.created_at)
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or_else(now_ms, |d| d.as_millis() as u64);
        let Some(tick) = self.due(created) else {
            return Ok(TickOutcome::NothingDue);
        };
        let mut script = lua::SCHEDULE_TICK.prepare_invoke();
        self.pipeline.add_submission(&mut script, &job, None);
        script
            .key(self.pipeline.store.keys.refresh_schedule())
            .arg(tick);
        let reply: Vec<String> = script
            .invoke_async(&mut self.pipeline.store.data.clone())
            .await?;
        // Whatever came of it, the tick is settled in Redis now. (Had the
        // reply been lost, the script may have run: asking again would then
        // hear `taken`, which is right too.)
        self.tried = Some(tick);
        if reply.first().map(String::as_str) == Some("taken") {
            return Ok(TickOutcome::Taken { tick });
        }
        match self.pipeline.submitted(&job, &reply) {
            Ok(()) => Ok(TickOutcome::Queued { tick, job: job.id }),
            Err(SubmitError::Busy { backlog, max }) => Ok(TickOutcome::Busy { tick, backlog, max }),
            Err(SubmitError::Redis(e)) => Err(e),
            // submitted() never says it: the schedule does not WAIT (no
            // client is told anything; a tick lost in a failover is taken
            // again by the next look at the schedule), and has no
            // Idempotency-Key (its tick is its key).
            Err(
                SubmitError::NoData
                | SubmitError::NotReplicated { .. }
                | SubmitError::KeyReused { .. }
                | SubmitError::KeyJobGone { .. },
            ) => Err(redis::RedisError::from((
                redis::ErrorKind::UnexpectedReturnType,
                "the schedule's script answered no_data for a load",
            ))),
        }
    }

    /// Looks at every tick until `shutdown`.
    pub async fn run(mut self, shutdown: CancellationToken) {
        tracing::info!(
            cron = self.schedule.expr(),
            source = %self.pipeline.settings.data.source,
            "refresh schedule on (UTC)"
        );
        loop {
            match self.tick_once().await {
                Ok(TickOutcome::NothingDue) => {}
                Ok(TickOutcome::Queued { tick, job }) => {
                    tracing::info!(tick = %rfc3339_ms(tick), job_id = %job, "scheduled load queued")
                }
                Ok(TickOutcome::Busy { tick, backlog, max }) => tracing::warn!(
                    tick = %rfc3339_ms(tick), backlog, max,
                    "the job queue is full: no scheduled load for this tick"
                ),
                Ok(TickOutcome::Taken { tick }) => {
                    tracing::debug!(tick = %rfc3339_ms(tick), "another replica took this tick")
                }
                Err(e) => tracing::warn!(
                    error = %crate::store::Explained(&e),
                    "could not claim the refresh tick; will retry"
                ),
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(until_next_look(&self.schedule, now_ms())) => {}
            }
        }
    }

    fn due(&self, now: u64) -> Option<u64> {
        due_tick(&self.schedule, self.tried, now)
    }

    fn command(&self) -> Command {
        let data = &self.pipeline.settings.data;
        Command::Load {
            source: data.source.clone(),
            withdrawn: Some(data.withdrawn.clone()),
            trigger: Trigger::Schedule,
        }
    }
}

/// The tick to claim at `now`: the most recent one, if it is within
/// [`CATCH_UP`] and later than `tried`.
fn due_tick(schedule: &Schedule, tried: Option<u64>, now: u64) -> Option<u64> {
    let tick = schedule.latest_at_or_before(now)?;
    let recent = now.saturating_sub(tick) <= CATCH_UP.as_millis() as u64;
    let new = tried.is_none_or(|t| tick > t);
    (recent && new).then_some(tick)
}

/// Until the next tick, and at most [`POLL`].
fn until_next_look(schedule: &Schedule, now: u64) -> Duration {
    schedule
        .next_after(now)
        .map_or(POLL, |next| Duration::from_millis(next - now).min(POLL))
}

/// The last claimed tick of the refresh schedule and what came of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastTick {
    /// Ms since the epoch.
    pub tick: u64,
    pub outcome: LastOutcome,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LastOutcome {
    /// The load was queued as this job.
    Queued(Uuid),
    /// The queue's backlog was at its limit: nothing was queued.
    Busy { backlog: u64, max: u64 },
}

/// The last claimed tick, as `lua/schedule_tick.lua` wrote it; None before
/// the first (or for a hash this version cannot read).
pub async fn last_tick(store: &Store) -> RedisResult<Option<LastTick>> {
    let fields: Vec<Option<String>> = redis::cmd("HMGET")
        .arg(store.keys.refresh_schedule())
        .arg(&["tick", "outcome", "job_id", "backlog", "max"])
        .query_async(&mut store.data.clone())
        .await?;
    let field = |i: usize| fields.get(i).cloned().flatten().filter(|v| !v.is_empty());
    let number = |i: usize| field(i).and_then(|v| v.parse::<u64>().ok());
    let Some(tick) = number(0) else {
        return Ok(None);
    };
    let outcome = match field(1).as_deref() {
        Some("queued") => field(2)
            .and_then(|id| Uuid::parse_str(&id).ok())
            .map(LastOutcome::Queued),
        Some("busy") => Some(LastOutcome::Busy {
            backlog: number(3).unwrap_or(0),
            max: number(4).unwrap_or(0),
        }),
        _ => None,
    };
    Ok(outcome.map(|outcome| LastTick { tick, outcome }))
}

/// `ms` since the epoch as the job records write times.
pub fn rfc3339_ms(ms: u64) -> String {
    crate::jobs::rfc3339(UNIX_EPOCH + Duration::from_millis(ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-12-07T03:00:00Z.
    const T0300: u64 = 1_796_612_400_000;

    #[test]
    fn a_tick_is_due_once_and_only_while_recent() {
        let daily = Schedule::parse("0 0 3 * * *").unwrap();
        let catch_up = CATCH_UP.as_millis() as u64;
        assert_eq!(due_tick(&daily, None, T0300), Some(T0300));
        assert_eq!(due_tick(&daily, None, T0300 + catch_up), Some(T0300));
        // A process started later than that lets the day's tick go.
        assert_eq!(due_tick(&daily, None, T0300 + catch_up + 1000), None);
        assert_eq!(due_tick(&daily, None, T0300 - 1), None);
        // Once tried, a tick is not asked about again; the next one is.
        assert_eq!(due_tick(&daily, Some(T0300), T0300 + 5_000), None);
        let next_day = T0300 + 86_400_000;
        assert_eq!(due_tick(&daily, Some(T0300), next_day), Some(next_day));

        let every_second = Schedule::parse("* * * * * *").unwrap();
        assert_eq!(
            due_tick(&every_second, Some(T0300), T0300 + 2_500),
            Some(T0300 + 2_000),
            "a missed tick is superseded by the latest"
        );
    }

    #[test]
    fn the_actor_wakes_at_the_next_tick_or_within_a_poll() {
        let every_second = Schedule::parse("* * * * * *").unwrap();
        assert_eq!(
            until_next_look(&every_second, T0300 + 250),
            Duration::from_millis(750)
        );
        let daily = Schedule::parse("0 3 * * *").unwrap();
        assert_eq!(until_next_look(&daily, T0300 + 1), POLL);
        assert_eq!(
            until_next_look(&daily, T0300 - 300),
            Duration::from_millis(300)
        );
    }

    #[test]
    fn times_read_as_the_job_records_write_them() {
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_ms(1_796_612_400_123), "2026-12-07T03:00:00.123Z");
    }
}
