//! Office hours: is the hall issuing tickets at a given local moment, and if not, why.

use chrono::{Datelike, NaiveDate, NaiveDateTime, NaiveTime, Weekday};

use crate::refusal::Closed;
use crate::setup::{CalendarDef, Span};

/// The spans the hall is open on the local date of `at`.
pub fn spans_on(cal: &CalendarDef, at: NaiveDateTime) -> &[Span] {
    let date = at.date();
    if cal.holidays.contains(&date) {
        return &[];
    }
    if cal.workdays.contains(&date) {
        return &cal.weekdays;
    }
    match date.weekday() {
        Weekday::Sat => &cal.saturday,
        Weekday::Sun => &cal.sunday,
        _ => &cal.weekdays,
    }
}

/// `Ok` when tickets may be issued at `at`, else the reason a citizen should read.
pub fn check_open(cal: &CalendarDef, at: NaiveDateTime) -> Result<(), Closed> {
    if cal.always_open {
        return Ok(());
    }
    if cal.holidays.contains(&at.date()) {
        return Err(Closed::Holiday);
    }
    let spans = spans_on(cal, at);
    if spans.is_empty() {
        return Err(Closed::ClosedToday);
    }
    let time = at.time();
    let margin = chrono::Duration::minutes(i64::from(cal.stop_issuing_minutes_before_close));
    let mut sorted: Vec<&Span> = spans.iter().collect();
    sorted.sort_by_key(|s| s.open);
    for (i, span) in sorted.iter().enumerate() {
        let last_issue = span.close - margin;
        if time < span.open {
            return Err(if i == 0 {
                Closed::BeforeOpening(span.open)
            } else {
                Closed::Break(span.open)
            });
        }
        if time < last_issue {
            return Ok(());
        }
    }
    Err(Closed::AfterClosing)
}

/// Whether `date` is a working day (工作日) of the hall's calendar: Monday to Friday
/// and the make-up working days (调休), never a public holiday. Weekend opening hours do
/// not make a working day: time limits in working days (five for a 回访整改) count the
/// official calendar, not the hall's extended service.
pub fn is_working_day(cal: &CalendarDef, date: NaiveDate) -> bool {
    if cal.holidays.contains(&date) {
        return false;
    }
    cal.workdays.contains(&date) || !matches!(date.weekday(), Weekday::Sat | Weekday::Sun)
}

/// The `n`th working day after `date` (`date` itself does not count, whatever it is).
/// A calendar without working days cannot be configured (a year of holidays is the
/// most a hall lists), so the walk stops after ten years and returns the date reached.
pub fn working_days_after(cal: &CalendarDef, date: NaiveDate, n: u32) -> NaiveDate {
    let mut day = date;
    let mut left = n;
    for _ in 0..3660 {
        if left == 0 {
            break;
        }
        day = day.succ_opt().unwrap_or(day);
        if is_working_day(cal, day) {
            left -= 1;
        }
    }
    day
}

/// The start of the quota slice after the one `at` falls in.
pub fn next_slice_start(minutes_into_day: u32, slice_minutes: u32) -> NaiveTime {
    let next = (minutes_into_day / slice_minutes + 1) * slice_minutes;
    NaiveTime::from_num_seconds_from_midnight_opt((next % 1440) * 60, 0).unwrap_or(NaiveTime::MIN)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn five_working_days_skip_the_weekend() {
        let cal = CalendarDef::default();
        // 2026-11-23 is a Monday: Tue..Fri are four, the next Monday the fifth.
        assert_eq!(
            working_days_after(&cal, d("2026-11-23"), 5),
            d("2026-11-30")
        );
        // From a Friday: Mon..Fri of the next week.
        assert_eq!(
            working_days_after(&cal, d("2026-11-27"), 5),
            d("2026-12-04")
        );
        // A rating on a Saturday counts from Monday.
        assert_eq!(
            working_days_after(&cal, d("2026-11-28"), 5),
            d("2026-12-04")
        );
        assert_eq!(
            working_days_after(&cal, d("2026-11-23"), 0),
            d("2026-11-23")
        );
    }

    #[test]
    fn holidays_do_not_count_and_make_up_days_do() {
        // 国庆: 2026-10-01 (Thu) to 10-07 closed, Saturday 10-10 a make-up working day.
        let cal = CalendarDef {
            holidays: (1..=7)
                .map(|day| NaiveDate::from_ymd_opt(2026, 10, day).unwrap())
                .collect(),
            workdays: vec![d("2026-10-10")],
            ..CalendarDef::default()
        };
        assert!(!is_working_day(&cal, d("2026-10-05")));
        assert!(is_working_day(&cal, d("2026-10-10")));
        assert!(!is_working_day(&cal, d("2026-10-11")));
        // Rated on 09-30 (Wed): 10-08 Thu, 10-09 Fri, 10-10 Sat (make-up), 10-12 Mon,
        // 10-13 Tue.
        assert_eq!(
            working_days_after(&cal, d("2026-09-30"), 5),
            d("2026-10-13")
        );
    }

    fn at(d: &str, t: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(&format!("{d} {t}"), "%Y-%m-%d %H:%M").unwrap()
    }
    fn hm(t: &str) -> NaiveTime {
        NaiveTime::parse_from_str(t, "%H:%M").unwrap()
    }

    #[test]
    fn weekday_hours_with_a_lunch_break() {
        let cal = CalendarDef {
            stop_issuing_minutes_before_close: 15,
            ..CalendarDef::default()
        };
        // 2026-11-23 is a Monday.
        assert_eq!(
            check_open(&cal, at("2026-11-23", "08:10")),
            Err(Closed::BeforeOpening(hm("09:00")))
        );
        assert_eq!(check_open(&cal, at("2026-11-23", "09:00")), Ok(()));
        assert_eq!(
            check_open(&cal, at("2026-11-23", "11:50")),
            Err(Closed::Break(hm("13:30")))
        );
        assert_eq!(
            check_open(&cal, at("2026-11-23", "17:20")),
            Err(Closed::AfterClosing)
        );
        assert_eq!(
            check_open(&cal, at("2026-11-28", "10:00")),
            Err(Closed::ClosedToday)
        );
    }

    #[test]
    fn holidays_close_and_make_up_days_open() {
        let cal = CalendarDef {
            holidays: vec![NaiveDate::from_ymd_opt(2026, 10, 1).unwrap()],
            workdays: vec![NaiveDate::from_ymd_opt(2026, 10, 10).unwrap()],
            ..CalendarDef::default()
        };
        assert_eq!(
            check_open(&cal, at("2026-10-01", "10:00")),
            Err(Closed::Holiday)
        );
        // 2026-10-10 is a Saturday worked in exchange (调休).
        assert_eq!(check_open(&cal, at("2026-10-10", "10:00")), Ok(()));
    }

    #[test]
    fn quota_slices_roll_on_the_boundary() {
        assert_eq!(next_slice_start(9 * 60 + 10, 30), hm("09:30"));
        assert_eq!(next_slice_start(23 * 60 + 59, 30), hm("00:00"));
    }
}
