//! The period view of supervision (日考核、周汇总、月通报): the hall's figures for any
//! span of days, per window, service, department, staff member, hour of the day and
//! day, with the period's bad ratings — what `/supervision`'s period section, the
//! monthly report page, `GET /api/v1/supervision/period` (and its CSV) and
//! `hallq report --staff` show. Built from the period figures the store keeps in the
//! events' transactions (`store::figures`), so a month of a large hall answers in
//! milliseconds.

use std::collections::BTreeMap;

use hallq_engine::Setup;
use rusqlite::Connection;
use serde::Serialize;
use serde_json::{Value, json};

use super::Period;
use crate::store::StoreError;
use crate::store::figures::{self, Figures, Rules};

/// Bad ratings listed at most.
pub const MAX_BAD_RATINGS: usize = 500;

/// The longest period asked for at once, in days.
pub const MAX_DAYS: i64 = 366;

/// One row of a table: a window, service, department, staff member, hour or day.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// Window number, service code, department, staff id, hour (`09`) or day.
    pub key: String,
    /// The window's or staff member's name; a service's names by language.
    #[serde(skip_serializing_if = "Value::is_null")]
    pub name: Value,
    /// A service's department.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub department: Option<String>,
    /// The figures.
    #[serde(flatten)]
    pub figures: Figures,
}

/// A bad rating of the period.
#[derive(Debug, Clone, Serialize)]
pub struct BadRating {
    /// When (ms).
    pub at: i64,
    /// The service day.
    pub day: String,
    /// Ticket id and number.
    pub ticket: u64,
    /// Its number.
    pub number: String,
    /// Service code.
    pub service: String,
    /// Window.
    pub window: Option<u32>,
    /// Staff id and name.
    pub staff: Option<String>,
    /// The staff member's name.
    pub staff_name: Option<String>,
    /// Level key (`dissatisfied`, `very_dissatisfied`).
    pub level: &'static str,
    /// Reasons given.
    pub reasons: Vec<String>,
    /// Comment.
    pub comment: Option<String>,
}

/// The period view.
#[derive(Debug, Clone, Serialize)]
pub struct PeriodView {
    /// First day.
    pub from: String,
    /// Last day.
    pub to: String,
    /// The hall's service day now.
    pub today: String,
    /// The whole hall.
    pub hall: Figures,
    /// Per window (every window of the setup, and any other that counted).
    pub windows: Vec<Row>,
    /// Per service.
    pub services: Vec<Row>,
    /// Per department.
    pub departments: Vec<Row>,
    /// Per staff member who counted.
    pub staff: Vec<Row>,
    /// Per hour of the day (by the hour tickets were taken), hours with data.
    pub hours: Vec<Row>,
    /// Per day with data.
    pub days: Vec<Row>,
    /// Bad ratings, newest first.
    pub bad_ratings: Vec<BadRating>,
    /// Milliseconds it took to build.
    pub elapsed_ms: u64,
}

/// The tables a period view has, as CSV files are named.
pub const TABLES: &[&str] = &[
    "hall",
    "windows",
    "services",
    "departments",
    "staff",
    "hours",
    "days",
    "bad_ratings",
];

impl Period {
    /// Days `from..=to`, refused when reversed or longer than [`MAX_DAYS`].
    pub fn range(from: chrono::NaiveDate, to: chrono::NaiveDate) -> Option<Period> {
        let days = (to - from).num_days() + 1;
        (1..=MAX_DAYS)
            .contains(&days)
            .then_some(Period { from, to })
    }
}

/// A service's names by language, as the API and the pages read them.
pub(crate) fn names(n: &hallq_engine::Names) -> Value {
    json!({ "zh-CN": n.zh_cn, "zh-TW": n.get(hallq_engine::Lang::ZhTw), "en": n.get(hallq_engine::Lang::En) })
}

/// Builds the view of `p` at `now` (ms) under `setup`, reading `conn`.
// Over 100 lines: one pass from the summed figures to every table of the view, each a
// few lines, sharing the figures and the staff names.
pub fn build(
    conn: &Connection,
    setup: &Setup,
    p: Period,
    now: i64,
) -> Result<PeriodView, StoreError> {
    let started = std::time::Instant::now();
    let rules = Rules::of(setup);
    let mut figs = figures::period(conn, p.from, p.to)?;
    let today = rules.day(now);
    // Sessions still open count up to now, from the period's start at the earliest.
    if (p.from..=p.to).contains(&today) {
        let start = rules.day_start(p.from);
        for (window, staff, since) in figures::open_sessions(conn)? {
            let secs = (now - since.max(start)).max(0) / 1000;
            for (scope, key) in [
                ("hall", String::new()),
                ("window", window.to_string()),
                ("staff", staff),
            ] {
                let mut f = figs.get(scope, &key);
                f.signed_in_secs += secs;
                figs.by_scope
                    .entry(scope.to_string())
                    .or_default()
                    .insert(key, f);
            }
        }
    }
    let staff_names = staff_names(conn)?;
    let scope = |name: &str| -> BTreeMap<String, Figures> {
        figs.by_scope.get(name).cloned().unwrap_or_default()
    };
    let row = |key: String, name: Value, department: Option<String>, figures: Figures| Row {
        key,
        name,
        department,
        figures,
    };
    // Every window and service of the setup, in its order, then any other that counted.
    let mut counted = scope("window");
    let mut windows: Vec<Row> = setup
        .windows
        .iter()
        .map(|w| {
            let key = w.number.to_string();
            let f = counted.remove(&key).unwrap_or_else(Figures::zero);
            row(key, json!(w.name), None, f)
        })
        .collect();
    windows.extend(
        counted
            .into_iter()
            .map(|(k, f)| row(k, Value::Null, None, f)),
    );
    let mut counted = scope("service");
    let mut services: Vec<Row> = setup
        .services
        .iter()
        .map(|s| {
            let f = counted.remove(&s.code).unwrap_or_else(Figures::zero);
            let dept = Some(s.department.clone()).filter(|d| !d.is_empty());
            row(s.code.clone(), names(&s.name), dept, f)
        })
        .collect();
    services.extend(
        counted
            .into_iter()
            .map(|(k, f)| row(k, Value::Null, None, f)),
    );
    let plain = |name: &str| -> Vec<Row> {
        scope(name)
            .into_iter()
            .map(|(k, f)| row(k, Value::Null, None, f))
            .collect()
    };
    let staff: Vec<Row> = scope("staff")
        .into_iter()
        .map(|(k, f)| {
            let name = staff_names.get(&k).map_or(Value::Null, |n| json!(n));
            row(k, name, None, f)
        })
        .collect();
    let bad_ratings = figures::bad_ratings(conn, p.from, p.to, MAX_BAD_RATINGS)?
        .into_iter()
        .map(|(day, r)| BadRating {
            at: r.at.0,
            day,
            ticket: r.ticket.0,
            number: r.number,
            service: r.service,
            window: r.window,
            staff_name: r.staff.as_ref().and_then(|s| staff_names.get(s).cloned()),
            staff: r.staff,
            level: r.level.key(),
            reasons: r.reasons,
            comment: r.comment,
        })
        .collect();
    Ok(PeriodView {
        from: p.from.to_string(),
        to: p.to.to_string(),
        today: today.to_string(),
        hall: figs.get("hall", ""),
        windows,
        services,
        departments: plain("department"),
        staff,
        hours: plain("hour"),
        days: figs
            .days
            .iter()
            .map(|(d, f)| row(d.clone(), Value::Null, None, f.clone()))
            .collect(),
        bad_ratings,
        elapsed_ms: started.elapsed().as_millis() as u64,
    })
}

/// Every account's name by staff id (removed accounts keep theirs).
fn staff_names(conn: &Connection) -> Result<BTreeMap<String, String>, StoreError> {
    let mut stmt = conn.prepare_cached("SELECT id, name FROM staff")?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// A CSV field, quoted when it needs to be.
fn field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

const FIGURE_COLUMNS: &str = "issued,called,served,no_shows,transfers,avg_wait_secs,\
max_wait_secs,avg_service_secs,max_service_secs,over_limit,pauses,pause_secs,signed_in_secs,\
very_satisfied,satisfied,basically_satisfied,dissatisfied,very_dissatisfied,rated,\
satisfaction,bad,bad_reasons,warnings,warnings_handled";

fn figure_fields(f: &Figures) -> String {
    let level = |k: &str| f.ratings.get(k).copied().unwrap_or(0);
    let reasons: Vec<String> = f
        .bad_reasons
        .iter()
        .map(|(r, n)| format!("{r}:{n}"))
        .collect();
    [
        f.issued.to_string(),
        f.called.to_string(),
        f.served.to_string(),
        f.no_shows.to_string(),
        f.transfers.to_string(),
        f.avg_wait_secs.to_string(),
        f.max_wait_secs.to_string(),
        f.avg_service_secs.to_string(),
        f.max_service_secs.to_string(),
        f.over_limit.to_string(),
        f.pauses.to_string(),
        f.pause_secs.to_string(),
        f.signed_in_secs.to_string(),
        level("very_satisfied").to_string(),
        level("satisfied").to_string(),
        level("basically_satisfied").to_string(),
        level("dissatisfied").to_string(),
        level("very_dissatisfied").to_string(),
        f.rated.to_string(),
        f.satisfaction.map_or(String::new(), |s| format!("{s:.4}")),
        f.bad.to_string(),
        field(&reasons.join("; ")),
        f.warnings.to_string(),
        f.warnings_handled.to_string(),
    ]
    .join(",")
}

/// `text` padded with spaces to `width` terminal columns (a Chinese character takes
/// two).
fn pad(text: &str, width: usize) -> String {
    let used: usize = text
        .chars()
        .map(|c| if c.len_utf8() >= 3 { 2 } else { 1 })
        .sum();
    format!("{text}{}", " ".repeat(width.saturating_sub(used)))
}

/// A row's name as one line of text (a service's in 简体).
fn name_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Object(m) => m
            .get("zh-CN")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        _ => String::new(),
    }
}

impl PeriodView {
    /// One table as CSV (UTF-8, a header line, one line per row); `None` for a table
    /// the view does not have (see [`TABLES`]).
    pub fn csv(&self, table: &str, rules: &Rules) -> Option<String> {
        let rows: &[Row] = match table {
            "hall" => {
                return Some(format!(
                    "from,to,{FIGURE_COLUMNS}\n{},{},{}\n",
                    self.from,
                    self.to,
                    figure_fields(&self.hall)
                ));
            }
            "bad_ratings" => return Some(self.bad_csv(rules)),
            "windows" => &self.windows,
            "services" => &self.services,
            "departments" => &self.departments,
            "staff" => &self.staff,
            "hours" => &self.hours,
            "days" => &self.days,
            _ => return None,
        };
        let mut out = format!("key,name,department,{FIGURE_COLUMNS}\n");
        for r in rows {
            out.push_str(&format!(
                "{},{},{},{}\n",
                field(&r.key),
                field(&name_text(&r.name)),
                field(r.department.as_deref().unwrap_or_default()),
                figure_fields(&r.figures)
            ));
        }
        Some(out)
    }

    fn bad_csv(&self, rules: &Rules) -> String {
        let mut out = String::from(
            "day,time,ticket,number,service,window,staff,staff_name,level,reasons,comment\n",
        );
        for b in &self.bad_ratings {
            out.push_str(&format!(
                "{},{},{},{},{},{},{},{},{},{},{}\n",
                b.day,
                rules.local_text(b.at),
                b.ticket,
                field(&b.number),
                field(&b.service),
                b.window.map_or(String::new(), |w| w.to_string()),
                field(b.staff.as_deref().unwrap_or_default()),
                field(b.staff_name.as_deref().unwrap_or_default()),
                b.level,
                field(&b.reasons.join("; ")),
                field(b.comment.as_deref().unwrap_or_default()),
            ));
        }
        out
    }

    /// The staff appraisal as an aligned text table (`hallq report --staff`).
    pub fn staff_table(&self) -> String {
        let mut out = format!(
            "Staff appraisal {} .. {}\n\n{:<10} {:<10} {:>7} {:>7} {:>9} {:>11} {:>7} {:>6} {:>5} {:>9} {:>9}\n",
            self.from,
            self.to,
            "staff",
            "name",
            "called",
            "served",
            "avg wait",
            "avg service",
            "no-show",
            "rated",
            "bad",
            "satisfied",
            "signed in"
        );
        for r in &self.staff {
            let f = &r.figures;
            out.push_str(&format!(
                "{:<10} {} {:>7} {:>7} {:>8}s {:>10}s {:>7} {:>6} {:>5} {:>9} {:>8}m\n",
                r.key,
                pad(&name_text(&r.name), 10),
                f.called,
                f.served,
                f.avg_wait_secs,
                f.avg_service_secs,
                f.no_shows,
                f.rated,
                f.bad,
                f.satisfaction
                    .map_or("-".to_string(), |s| format!("{:.1}%", s * 100.0)),
                f.signed_in_secs / 60
            ));
        }
        out
    }
}
