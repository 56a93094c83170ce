//! Cron schedules: an expression parsed once (by croner), and the tick
//! arithmetic the refresh actor and `GET /schedules` need, all in UTC and in
//! milliseconds since the Unix epoch (the unit of [`crate::pipeline::now_ms`]
//! and of the claims in Redis).

use chrono::{DateTime, Utc};
use croner::parser::{CronParser, Seconds, Year};
use croner::Cron;

/// A parsed cron expression: 5 fields (minute first), or 6 with seconds first.
#[derive(Debug, Clone)]
pub struct Schedule {
    expr: String,
    cron: Cron,
}

impl Schedule {
    /// Parses `expr`; the error is croner's reason. A year field is refused:
    /// the settings document 5 or 6 fields, and a 7th would read as a year
    /// by croner and as a typo by everyone else.
    pub fn parse(expr: &str) -> Result<Self, String> {
        let cron = CronParser::builder()
            .seconds(Seconds::Optional)
            .year(Year::Disallowed)
            .build()
            .parse(expr)
            .map_err(|e| e.to_string())?;
        let schedule = Self {
            expr: expr.trim().to_string(),
            cron,
        };
        // An expression that names no real time ("0 0 30 2 *") parses, but
        // would leave the schedule silently off.
        if schedule.next_after(0).is_none() {
            return Err("it matches no time (e.g. a day the month does not have)".into());
        }
        Ok(schedule)
    }

    /// The expression as it was given (trimmed).
    pub fn expr(&self) -> &str {
        &self.expr
    }

    /// The most recent tick at or before `ms`, if there was one.
    pub fn latest_at_or_before(&self, ms: u64) -> Option<u64> {
        // croner counts in whole seconds: the second `ms` falls in is the
        // last one that may match.
        let t = utc(ms - ms % 1000)?;
        let tick = self.cron.find_previous_occurrence(&t, true).ok()?;
        u64::try_from(tick.timestamp_millis()).ok()
    }

    /// The first tick after `ms`, if there is one.
    pub fn next_after(&self, ms: u64) -> Option<u64> {
        // Strictly after the second `ms` falls in: that is after `ms` too.
        let t = utc(ms - ms % 1000)?;
        let tick = self.cron.find_next_occurrence(&t, false).ok()?;
        u64::try_from(tick.timestamp_millis()).ok()
    }
}

fn utc(ms: u64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_millis(i64::try_from(ms).ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-12-07T03:00:00Z, a Monday.
    const MON_0300: u64 = 1_796_612_400_000;

    #[test]
    fn five_fields_tick_on_the_minute_and_six_on_the_second() {
        let daily = Schedule::parse("0 3 * * *").unwrap();
        assert_eq!(daily.latest_at_or_before(MON_0300), Some(MON_0300));
        assert_eq!(daily.latest_at_or_before(MON_0300 + 1), Some(MON_0300));
        assert_eq!(
            daily.latest_at_or_before(MON_0300 - 1),
            Some(MON_0300 - 86_400_000)
        );
        assert_eq!(daily.next_after(MON_0300), Some(MON_0300 + 86_400_000));
        assert_eq!(daily.next_after(MON_0300 - 1), Some(MON_0300));

        let with_seconds = Schedule::parse(" 0 0 3 * * * ").unwrap();
        assert_eq!(with_seconds.expr(), "0 0 3 * * *");
        assert_eq!(with_seconds.next_after(MON_0300 - 1), Some(MON_0300));

        let every_second = Schedule::parse("* * * * * *").unwrap();
        assert_eq!(
            every_second.latest_at_or_before(MON_0300 + 1_999),
            Some(MON_0300 + 1_000)
        );
        assert_eq!(
            every_second.next_after(MON_0300 + 1_999),
            Some(MON_0300 + 2_000)
        );
        let weekdays = Schedule::parse("30 2 * * MON-FRI").unwrap();
        // Saturday 02:30 is skipped: Friday's is the latest before Monday's.
        assert_eq!(
            weekdays.latest_at_or_before(MON_0300 - 86_400_000),
            Some(MON_0300 - 3 * 86_400_000 - 1_800_000)
        );
    }

    #[test]
    fn bad_expressions_say_why() {
        for (expr, why) in [
            ("", "empty"),
            ("daily", "5 or 6 fields"),
            ("61 * * * *", "out of bounds"),
            ("* * * *", "5 or 6 fields"),
            ("0 0 3 * * * 2027", "5 or 6 fields"),
            ("0 25 * * *", "out of bounds"),
            ("0 0 30 2 *", "no time"),
        ] {
            let err = Schedule::parse(expr).unwrap_err();
            assert!(
                err.to_lowercase().contains(why),
                "{expr:?}: {err:?} lacks {why:?}"
            );
        }
    }
}
