//! Daily, weekly and monthly figures per window and per service (日考核、周汇总、月通报),
//! computed from the tickets table; the period view (`period`) from the period figures
//! the store keeps (`store::figures`).

pub mod period;

use chrono::{Datelike, Duration, NaiveDate};
use rusqlite::{Connection, params};
use serde::Serialize;

/// A span of service days, inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    /// First day.
    pub from: NaiveDate,
    /// Last day.
    pub to: NaiveDate,
}

impl Period {
    /// One day.
    pub fn day(d: NaiveDate) -> Period {
        Period { from: d, to: d }
    }

    /// An ISO week written `2026-W48`.
    pub fn week(text: &str) -> Option<Period> {
        let (y, w) = text.split_once("-W")?;
        let from =
            NaiveDate::from_isoywd_opt(y.parse().ok()?, w.parse().ok()?, chrono::Weekday::Mon)?;
        // Checked: the last ISO week chrono knows ends past the last day it can hold.
        let to = from.checked_add_signed(Duration::days(6))?;
        Some(Period { from, to })
    }

    /// A month written `2026-11`.
    pub fn month(text: &str) -> Option<Period> {
        let from = NaiveDate::parse_from_str(&format!("{text}-01"), "%Y-%m-%d").ok()?;
        let next = if from.month() == 12 {
            NaiveDate::from_ymd_opt(from.year() + 1, 1, 1)?
        } else {
            NaiveDate::from_ymd_opt(from.year(), from.month() + 1, 1)?
        };
        Some(Period {
            from,
            to: next - Duration::days(1),
        })
    }
}

/// One row of the report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Line {
    /// Window number or service code.
    pub key: String,
    /// Tickets issued (for services) or called (for windows).
    pub tickets: i64,
    /// Finished.
    pub served: i64,
    /// Ended as no-show.
    pub no_shows: i64,
    /// Average seconds from issue to first call.
    pub avg_wait_secs: i64,
    /// Longest seconds from issue to first call.
    pub max_wait_secs: i64,
    /// Average seconds at the window for finished tickets.
    pub avg_service_secs: i64,
}

/// The report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// First day.
    pub from: String,
    /// Last day.
    pub to: String,
    /// Per window.
    pub windows: Vec<Line>,
    /// Per service.
    pub services: Vec<Line>,
}

fn lines(conn: &Connection, key: &str, p: Period) -> rusqlite::Result<Vec<Line>> {
    let sql = format!(
        "SELECT CAST({key} AS TEXT), COUNT(*),
                SUM(state = 'finished'), SUM(state = 'no_show'),
                COALESCE(CAST(AVG(called_at - issued_at) / 1000 AS INTEGER), 0),
                COALESCE(MAX(called_at - issued_at) / 1000, 0),
                COALESCE(CAST(AVG(CASE WHEN state = 'finished' THEN closed_at - COALESCE(serving_at, called_at) END) / 1000 AS INTEGER), 0)
         FROM tickets WHERE day BETWEEN ?1 AND ?2 AND {key} IS NOT NULL GROUP BY {key} ORDER BY {key}"
    );
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map(params![p.from.to_string(), p.to.to_string()], |r| {
        Ok(Line {
            key: r.get(0)?,
            tickets: r.get(1)?,
            served: r.get::<_, Option<i64>>(2)?.unwrap_or(0),
            no_shows: r.get::<_, Option<i64>>(3)?.unwrap_or(0),
            avg_wait_secs: r.get(4)?,
            max_wait_secs: r.get(5)?,
            avg_service_secs: r.get(6)?,
        })
    })?;
    rows.collect()
}

/// Builds the report for a period.
pub fn build(conn: &Connection, p: Period) -> rusqlite::Result<Report> {
    Ok(Report {
        from: p.from.to_string(),
        to: p.to.to_string(),
        windows: lines(conn, "window", p)?,
        services: lines(conn, "origin_service", p)?,
    })
}

impl Report {
    /// CSV with a `scope` column (window or service), for spreadsheets.
    pub fn to_csv(&self) -> String {
        let mut out = String::from(
            "scope,key,tickets,served,no_shows,avg_wait_secs,max_wait_secs,avg_service_secs\n",
        );
        for (scope, rows) in [("window", &self.windows), ("service", &self.services)] {
            for l in rows {
                out.push_str(&format!(
                    "{scope},{},{},{},{},{},{},{}\n",
                    l.key,
                    l.tickets,
                    l.served,
                    l.no_shows,
                    l.avg_wait_secs,
                    l.max_wait_secs,
                    l.avg_service_secs
                ));
            }
        }
        out
    }

    /// An aligned text table for the terminal.
    pub fn to_table(&self) -> String {
        let mut out = format!("Report {} .. {}\n", self.from, self.to);
        for (title, rows) in [("Window", &self.windows), ("Service", &self.services)] {
            out.push_str(&format!(
                "\n{title:<8} {:>8} {:>8} {:>8} {:>10} {:>10} {:>12}\n",
                "tickets", "served", "no-show", "avg wait", "max wait", "avg service"
            ));
            for l in rows {
                out.push_str(&format!(
                    "{:<8} {:>8} {:>8} {:>8} {:>9}s {:>9}s {:>11}s\n",
                    l.key,
                    l.tickets,
                    l.served,
                    l.no_shows,
                    l.avg_wait_secs,
                    l.max_wait_secs,
                    l.avg_service_secs
                ));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_week_at_the_end_of_the_calendar_is_refused_not_a_panic() {
        // Found with the mqtt_command fuzz target: `request_report` for 262143-W01 made
        // the uplink worker panic adding six days past the last date chrono holds.
        assert_eq!(Period::week("262143-W01"), None);
        assert!(Period::week("262142-W01").is_some());
        assert_eq!(Period::month("262143-01"), None);
    }

    #[test]
    fn weeks_and_months_cover_the_right_days() {
        let w = Period::week("2026-W48").unwrap();
        assert_eq!(
            (w.from.to_string(), w.to.to_string()),
            ("2026-11-23".into(), "2026-11-29".into())
        );
        let m = Period::month("2026-12").unwrap();
        assert_eq!(
            (m.from.to_string(), m.to.to_string()),
            ("2026-12-01".into(), "2026-12-31".into())
        );
        assert!(Period::week("2026-48").is_none());
    }
}
