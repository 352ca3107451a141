//! Time as a value. The engine never reads a clock: every command arrives with the
//! instant it happened, and local dates come from the hall's fixed UTC offset (China
//! keeps no daylight saving, so an offset is exact and needs no tz database).

use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, NaiveTime};
use serde::{Deserialize, Serialize};

/// An instant as milliseconds since the Unix epoch (UTC). Plain integers keep events,
/// SQLite rows and JSON identical and make arithmetic in property tests trivial.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// The instant `secs` seconds later (earlier when negative).
    pub fn plus_secs(self, secs: i64) -> Timestamp {
        Timestamp(self.0.saturating_add(secs.saturating_mul(1000)))
    }

    /// The instant `minutes` minutes later.
    pub fn plus_minutes(self, minutes: i64) -> Timestamp {
        self.plus_secs(minutes.saturating_mul(60))
    }

    /// Whole seconds from `earlier` to `self`, never negative: durations shown to people
    /// and stored in reports must not go below zero after a clock step.
    pub fn secs_since(self, earlier: Timestamp) -> i64 {
        ((self.0 - earlier.0) / 1000).max(0)
    }
}

/// Converts instants to the hall's wall-clock time and back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LocalClock {
    offset_secs: i64,
}

impl LocalClock {
    /// A clock `offset_minutes` east of UTC (480 for China Standard Time).
    pub fn new(offset_minutes: i32) -> Self {
        LocalClock {
            offset_secs: i64::from(offset_minutes) * 60,
        }
    }

    /// The hall's wall-clock reading at `ts`.
    pub fn local(&self, ts: Timestamp) -> NaiveDateTime {
        let shifted = ts.0.saturating_add(self.offset_secs * 1000);
        DateTime::from_timestamp_millis(shifted)
            .map(|dt| dt.naive_utc())
            .unwrap_or_default()
    }

    /// The instant at which the hall's clocks read `local`.
    pub fn instant(&self, local: NaiveDateTime) -> Timestamp {
        Timestamp(local.and_utc().timestamp_millis() - self.offset_secs * 1000)
    }

    /// The service day `ts` belongs to, when days start at `day_start` local time
    /// (a ticket taken at 02:00 with a 03:00 start belongs to the day before).
    pub fn service_day(&self, ts: Timestamp, day_start: NaiveTime) -> NaiveDate {
        let since_start =
            self.local(ts) - Duration::seconds(i64::from(day_start.num_seconds_from_midnight()));
        since_start.date()
    }

    /// The first instant of the service day after `day`.
    pub fn next_day_start(&self, day: NaiveDate, day_start: NaiveTime) -> Timestamp {
        let next = day.succ_opt().unwrap_or(day);
        self.instant(next.and_time(day_start))
    }
}

use chrono::Timelike as _;

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").unwrap()
    }

    #[test]
    fn local_time_round_trips_through_the_offset() {
        let clock = LocalClock::new(480);
        let t = clock.instant(at("2026-11-23 09:30"));
        assert_eq!(t.0, 1_795_397_400_000);
        assert_eq!(clock.local(t), at("2026-11-23 09:30"));
    }

    #[test]
    fn a_ticket_before_the_day_start_belongs_to_the_previous_day() {
        let clock = LocalClock::new(480);
        let start = NaiveTime::from_hms_opt(3, 0, 0).unwrap();
        let early = clock.instant(at("2026-11-24 02:59"));
        let later = clock.instant(at("2026-11-24 03:00"));
        assert_eq!(clock.service_day(early, start).to_string(), "2026-11-23");
        assert_eq!(clock.service_day(later, start).to_string(), "2026-11-24");
        assert_eq!(
            clock.next_day_start(NaiveDate::from_ymd_opt(2026, 11, 23).unwrap(), start),
            later
        );
    }
}
