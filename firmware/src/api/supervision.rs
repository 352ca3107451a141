//! What the web pages read beyond the queue endpoints: the supervision dashboard's
//! picture of the hall (电子监察: every window, every queue, open warnings, today's
//! figures and ratings), the daily report as CSV, and the hall board's starting state
//! (recent calls, notices, layout).
//!
//! Warnings are events the engine (or a device task) stored; this module only reads
//! them back for the day and decides from the current state whether each is still
//! open, so that a supervisor sees at a glance what needs attention now.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::Query;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use hallq_engine::{Engine, Event, Level, TicketState};
use rusqlite::{Connection, params};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, AppState, Language, StaffAuth};
use crate::events::{Committed, HallEvent};
use crate::report::period::names;
use crate::store::staff::{self, Permission};
use crate::store::warnings;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/supervision", get(supervision))
        .route("/api/v1/reports/daily.csv", get(daily_csv))
        .route("/api/v1/board", get(board))
}

/// Event types that are warnings (预警) or end one.
pub const WARNING_TYPES: &[&str] = &[
    "wait_alarm",
    "service_over_time",
    "queue_alarm",
    "pause_alarm",
    "unmanned_alarm",
    "device_fault",
    "device_recovered",
];

/// Closed warnings listed after the open ones, newest first.
const MAX_CLOSED: usize = 200;

/// The facts of the present that decide whether a stored warning is still open.
#[derive(Default)]
struct Present {
    queued: HashSet<u64>,
    serving: HashSet<u64>,
    over_alarm: HashSet<String>,
    paused_since: HashMap<u32, i64>,
    vacant_since: HashMap<u32, i64>,
}

impl Present {
    fn of(e: &Engine) -> Present {
        let mut p = Present::default();
        for t in e.tickets() {
            if t.state.is_queued() {
                p.queued.insert(t.id.0);
            } else if t.state == TicketState::Serving {
                p.serving.insert(t.id.0);
            }
        }
        for (def, load) in e.setup().services.iter().zip(e.loads()) {
            if def.queue_alarm.is_some_and(|a| load.waiting > a) {
                p.over_alarm.insert(def.code.clone());
            }
        }
        for w in e.windows().values() {
            if let Some((since, _)) = &w.paused {
                p.paused_since.insert(w.number, since.0);
            }
            if w.staff.is_none() {
                p.vacant_since
                    .insert(w.number, w.vacant_since.map_or(i64::MIN, |t| t.0));
            }
        }
        p
    }

    /// Whether the warning `kind` stored at `at` still holds; device faults are decided
    /// by the caller from later `device_recovered` events.
    fn holds(&self, event: &Committed, at: i64) -> bool {
        let Committed::Engine(e) = event else {
            return false;
        };
        match e {
            Event::WaitAlarm { ticket, .. } => self.queued.contains(&ticket.0),
            Event::ServiceOverTime { ticket, .. } => self.serving.contains(&ticket.0),
            Event::QueueAlarm { service, .. } => self.over_alarm.contains(service),
            Event::PauseAlarm { window, .. } => {
                self.paused_since.get(window).is_some_and(|s| *s <= at)
            }
            Event::UnmannedAlarm { window, .. } => {
                self.vacant_since.get(window).is_some_and(|s| *s <= at)
            }
            _ => false,
        }
    }
}

/// A stored event, as read back for the dashboard.
struct Row {
    seq: i64,
    at: i64,
    kind: String,
    payload: Value,
}

/// The first sequence number stored at or after `at`. Events are appended in time
/// order, so a binary search over the primary key finds the day's start without an
/// index on `at` and without reading earlier days.
pub(super) fn first_seq_since(conn: &Connection, at: i64) -> rusqlite::Result<i64> {
    let max: i64 = conn.query_row("SELECT COALESCE(MAX(seq), 0) FROM events", [], |r| r.get(0))?;
    let mut stmt =
        conn.prepare_cached("SELECT at FROM events WHERE seq >= ?1 ORDER BY seq LIMIT 1")?;
    let (mut lo, mut hi) = (0i64, max + 1);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let found: Option<i64> = stmt
            .query_row(params![mid], |r| r.get(0))
            .map(Some)
            .or_else(|e| match e {
                rusqlite::Error::QueryReturnedNoRows => Ok(None),
                e => Err(e),
            })?;
        if found.is_none_or(|t| t >= at) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    Ok(lo)
}

/// Today's warning events, oldest first.
fn warning_rows(conn: &Connection, since: i64) -> rusqlite::Result<Vec<Row>> {
    let first = first_seq_since(conn, since)?;
    let list = WARNING_TYPES
        .iter()
        .map(|t| format!("'{t}'"))
        .collect::<Vec<_>>()
        .join(",");
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT seq, at, type, payload FROM events WHERE seq >= ?1 AND type IN ({list}) ORDER BY seq"
    ))?;
    let rows = stmt.query_map(params![first], |r| {
        Ok(Row {
            seq: r.get(0)?,
            at: r.get(1)?,
            kind: r.get(2)?,
            payload: serde_json::from_str(&r.get::<_, String>(3)?).unwrap_or(Value::Null),
        })
    })?;
    rows.collect()
}

/// Decides which warnings are open: open ones first (newest first), then up to
/// [`MAX_CLOSED`] closed ones. `device_recovered` closes the device's earlier fault
/// and is not listed itself.
fn classify(rows: Vec<Row>, present: &Present) -> Vec<Value> {
    let typed: Vec<Committed> = rows
        .iter()
        .map(|r| Committed::of(&r.kind, &r.payload))
        .collect();
    let mut recovered_after: HashMap<String, i64> = HashMap::new();
    for (r, t) in rows.iter().zip(&typed) {
        if let Committed::Hall(HallEvent::DeviceRecovered { device, .. }) = t {
            recovered_after.insert(device.clone(), r.seq);
        }
    }
    let mut open = Vec::new();
    let mut closed = Vec::new();
    for (r, t) in rows.into_iter().zip(typed).rev() {
        let is_open = match &t {
            Committed::Hall(HallEvent::DeviceRecovered { .. }) => continue,
            Committed::Hall(HallEvent::DeviceFault { device, .. }) => {
                recovered_after.get(device).is_none_or(|s| *s < r.seq)
            }
            other => present.holds(other, r.at),
        };
        let mut w = json!({ "seq": r.seq, "at": r.at, "type": r.kind, "open": is_open });
        if let (Some(obj), Some(p)) = (w.as_object_mut(), r.payload.as_object()) {
            for (k, v) in p {
                if k != "type" {
                    obj.entry(k.clone()).or_insert(v.clone());
                }
            }
        }
        if is_open {
            open.push(w);
        } else if closed.len() < MAX_CLOSED {
            closed.push(w);
        }
    }
    // A device that failed twice without recovering is one open problem, not two.
    let mut seen_devices = HashSet::new();
    open.retain(|w| {
        w["type"] != "device_fault"
            || w["device"]
                .as_str()
                .is_none_or(|d| seen_devices.insert(d.to_string()))
    });
    open.extend(closed);
    open
}

/// Adds to each listed warning what was done about it: `handled` (by whom, their name,
/// when, outcome, note) or null, and `escalated_at` (ms) or null.
fn with_actions(list: &mut [Value], actions: &HashMap<i64, warnings::Action>) {
    for w in list {
        let action = w["seq"].as_i64().and_then(|seq| actions.get(&seq));
        w["handled"] = json!(action.and_then(|a| a.handled.as_ref()));
        w["escalated_at"] = json!(action.and_then(|a| a.escalated_at));
    }
}

/// The hall as the engine holds it now, for the dashboard.
// Over 100 lines: one pass over the engine's state builds every part of the picture.
fn picture(e: &Engine) -> (Value, Present, i64) {
    let day = e.day();
    let now = e.now();
    let day_start = e.clock().instant(day.and_time(e.setup().day_starts_at)).0;
    let today: Vec<_> = e.tickets().filter(|t| t.day == day).collect();

    let mut served_at: HashMap<u32, u32> = HashMap::new();
    let (mut issued, mut served, mut no_shows, mut cancelled, mut waiting) = (0, 0, 0, 0, 0);
    let (mut waits, mut max_wait, mut service_secs, mut service_n) = (Vec::new(), 0i64, 0i64, 0);
    let mut levels: BTreeMap<&'static str, u32> =
        Level::ALL.iter().map(|l| (l.name(), 0)).collect();
    let mut reasons: BTreeMap<String, u32> = BTreeMap::new();
    // 绿色通道 per reason (an unexplained green ticket, from the API of old, counts
    // under `unspecified`), and 代办 tickets.
    let (mut green, mut proxy) = (0u32, 0u32);
    let mut green_reasons: BTreeMap<String, u32> = BTreeMap::new();
    for t in &today {
        issued += 1;
        if t.class == hallq_engine::Class::Green {
            green += 1;
            let code = t
                .green_reason
                .as_deref()
                .map_or("unspecified", crate::desk::reason_code);
            *green_reasons.entry(code.to_string()).or_insert(0) += 1;
        }
        if t.proxy {
            proxy += 1;
        }
        match t.state {
            TicketState::Finished => {
                served += 1;
                if let Some(w) = t.window {
                    *served_at.entry(w).or_insert(0) += 1;
                }
                if let (Some(s), Some(c)) = (t.serving_at.or(t.called_at), t.closed_at) {
                    service_secs += c.secs_since(s);
                    service_n += 1;
                }
            }
            TicketState::NoShow => no_shows += 1,
            TicketState::Cancelled => cancelled += 1,
            s if s.is_queued() => waiting += 1,
            _ => {}
        }
        if let Some(c) = t.called_at {
            let w = c.secs_since(t.issued_at);
            waits.push(w);
            max_wait = max_wait.max(w);
        }
        if let Some(r) = e.rating(t.id) {
            *levels.entry(r.level.name()).or_insert(0) += 1;
            for reason in &r.reasons {
                *reasons.entry(reason.clone()).or_insert(0) += 1;
            }
        }
    }
    let avg = |sum: i64, n: usize| if n == 0 { 0 } else { sum / n as i64 };
    let rated: u32 = levels.values().sum();
    let bad = Level::ALL
        .iter()
        .filter(|l| l.is_bad())
        .map(|l| levels[l.name()])
        .sum::<u32>();

    let windows: Vec<Value> = e
        .setup()
        .windows
        .iter()
        .filter_map(|d| e.windows().get(&d.number).map(|w| (d, w)))
        .map(|(d, w)| {
            let mut row = crate::window_view::window_row(e, d, w);
            row["served"] = json!(served_at.get(&d.number).copied().unwrap_or(0));
            row
        })
        .collect();
    let services: Vec<Value> = e
        .setup()
        .services
        .iter()
        .zip(e.loads())
        .map(|(d, l)| {
            json!({
                "code": d.code, "name": names(&d.name), "waiting": l.waiting, "issued": l.issued,
                "open_windows": l.open_windows, "longest_wait_secs": l.longest_wait_secs,
                "estimated_wait_minutes": l.estimated_wait_minutes,
                "wait_alarm_minutes": d.wait_alarm_minutes, "queue_alarm": d.queue_alarm,
            })
        })
        .collect();
    let body = json!({
        "day": day.to_string(), "now": now.0,
        "windows": windows, "services": services,
        "figures": {
            "issued": issued, "served": served, "no_shows": no_shows, "cancelled": cancelled,
            "waiting": waiting, "avg_wait_secs": avg(waits.iter().sum(), waits.len()),
            "max_wait_secs": max_wait, "avg_service_secs": avg(service_secs, service_n),
        },
        "ratings": { "levels": levels, "total": rated, "bad": bad, "reasons": reasons },
        "green": { "total": green, "reasons": green_reasons, "proxy": proxy },
    });
    (body, Present::of(e), day_start)
}

async fn supervision(
    State(s): State<AppState>,
    Language(lang): Language,
    auth: StaffAuth,
) -> Result<Json<Value>, ApiError> {
    auth.require(Permission::Supervisor)?;
    let (mut body, present, day_start) = s
        .hall
        .query(|e, _| picture(e))
        .await
        .map_err(|e| ApiError::from_core(e, lang))?;
    let (rows, actions) = s
        .with_auth_db(move |c| -> Result<_, crate::store::StoreError> {
            let first = first_seq_since(c, day_start)?;
            Ok((
                warning_rows(c, day_start)?,
                warnings::actions_since(c, first)?,
            ))
        })
        .await?
        .map_err(|e| {
            tracing::error!(error = %e, "warnings could not be read");
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "try again")
        })?;
    body["hall"] = json!(s.config.hall.name);
    let mut list = classify(rows, &present);
    with_actions(&mut list, &actions);
    body["warnings"] = Value::Array(list);
    body["escalate_after_minutes"] = json!(s.config.supervision.escalate_after_minutes);
    body["devices"] = json!(s.devices.snapshot());
    body["help"] = super::help::open_json(&s).await?;
    body["green_reasons"] = super::desk::green_reasons(&s);
    body["follow_ups"] = follow_ups_json(&s, day_start).await?;
    Ok(Json(body))
}

/// Follow-ups (回访整改) of bad ratings: every one not closed, the earliest due first,
/// each saying whether it is overdue (its due time passed), and those closed today.
async fn follow_ups_json(s: &AppState, day_start: i64) -> Result<Value, ApiError> {
    use crate::store::follow_ups;
    let (open, closed) = s
        .with_auth_db(move |c| {
            Ok::<_, crate::store::StoreError>((
                follow_ups::open(c)?,
                follow_ups::closed_since(c, day_start, 50)?,
            ))
        })
        .await?
        .map_err(|e| {
            tracing::error!(error = %e, "follow-ups could not be read");
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "try again")
        })?;
    let now = crate::core::wall_now().0;
    let overdue = open.iter().filter(|f| f.due_at <= now).count();
    let open: Vec<Value> = open
        .into_iter()
        .map(|f| {
            let late = f.due_at <= now;
            let mut v = json!(f);
            v["overdue"] = json!(late);
            v
        })
        .collect();
    Ok(json!({ "open": open, "overdue": overdue, "closed_today": closed }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CsvQuery {
    day: Option<String>,
    scope: Option<String>,
}

/// The daily report as CSV (`scope=window` or `scope=service`, both when absent), as a
/// download named for the day.
async fn daily_csv(
    State(s): State<AppState>,
    auth: StaffAuth,
    Query(q): Query<CsvQuery>,
) -> Result<Response, ApiError> {
    auth.require(Permission::Supervisor)?;
    let scope = match q.scope.as_deref() {
        None | Some("all") => None,
        Some(sc @ ("window" | "service")) => Some(sc.to_string()),
        Some(_) => {
            return Err(ApiError::field("scope", "use window, service or all"));
        }
    };
    let report = super::windows::day_report(&s, q.day.clone()).await?;
    let csv = report.to_csv();
    let text = match &scope {
        None => csv,
        Some(sc) => csv
            .lines()
            .enumerate()
            .filter(|(i, l)| *i == 0 || l.starts_with(&format!("{sc},")))
            .map(|(_, l)| format!("{l}\n"))
            .collect(),
    };
    let file = format!(
        "hallq-{}-{}.csv",
        report.from,
        scope.as_deref().unwrap_or("all")
    );
    Ok(csv_download(text, &file))
}

/// CSV text as a UTF-8 download named `file`.
pub(super) fn csv_download(text: String, file: &str) -> Response {
    let mut resp = text.into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{file}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    resp
}

/// Today's office hours as a notice line, e.g. "今日办公时间 09:00-12:00 13:30-17:30".
fn hours_notice(e: &Engine) -> Option<String> {
    let cal = &e.setup().calendar;
    if cal.always_open {
        return None;
    }
    let spans = hallq_engine::calendar::spans_on(cal, e.clock().local(e.now()));
    if spans.is_empty() {
        return Some("今日休息，不办理业务".into());
    }
    let list: Vec<String> = spans
        .iter()
        .map(|s| format!("{}-{}", s.open.format("%H:%M"), s.close.format("%H:%M")))
        .collect();
    Some(format!("今日办公时间 {}", list.join(" ")))
}

/// What the board and the rating pad need to start: hall, layout, notices, the
/// windows with whom they serve, waiting counts, the latest calls and rating reasons.
/// `last_seq` lets a page start its live stream exactly after this picture.
async fn board(
    State(s): State<AppState>,
    Language(lang): Language,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(board_picture(&s, lang).await?))
}

/// The body of `GET /api/v1/board`; also what a stream's `resync` event carries.
pub(super) async fn board_picture(
    s: &AppState,
    lang: hallq_engine::Lang,
) -> Result<Value, ApiError> {
    let recent = s.config.board.recent_calls;
    let show_staff = s.config.windows.show_staff;
    let mut body = s
        .hall
        .query(move |e, store| {
            let last_seq = store.last_seq().unwrap_or(0);
            let win_name = |n: u32| {
                e.setup()
                    .windows
                    .iter()
                    .find(|d| d.number == n)
                    .map(|d| d.name.clone())
            };
            let mut calls: Vec<_> = e
                .tickets()
                .filter(|t| t.day == e.day())
                .filter_map(|t| Some((t.called_at?, t.window?, t)))
                .collect();
            calls.sort_by_key(|(at, _, t)| (std::cmp::Reverse(*at), std::cmp::Reverse(t.id)));
            let calls: Vec<Value> = calls
                .into_iter()
                .take(recent)
                .map(|(at, w, t)| json!({ "number": t.number, "window": w, "window_name": win_name(w), "service": t.service, "class": t.class, "at": at.0 }))
                .collect();
            let windows: Vec<Value> = e
                .setup()
                .windows
                .iter()
                .filter_map(|d| e.windows().get(&d.number).map(|w| (d, w)))
                .map(|(d, w)| {
                    let current = w.current.and_then(|id| e.ticket(id)).map(|t| json!({ "number": t.number, "state": t.state, "class": t.class }));
                    // 亮身份: who serves there, when the hall shows it.
                    let staff = w.staff.as_ref().filter(|_| show_staff).map(|(id, _, _)| {
                        let name = staff::get(store.conn(), id).ok().map(|r| r.name);
                        json!({ "id": id, "name": name })
                    });
                    json!({
                        "number": d.number, "name": d.name, "location": d.location, "staffed": w.staff.is_some(),
                        "staff": staff,
                        "paused": w.paused.is_some(), "current": current,
                        "services": d.services.iter().map(|s| s.code.clone()).collect::<Vec<_>>(),
                    })
                })
                .collect();
            let services: Vec<Value> = e
                .setup()
                .services
                .iter()
                .zip(e.loads())
                .map(|(d, l)| json!({ "code": d.code, "prefix": d.prefix, "name": names(&d.name), "waiting": l.waiting }))
                .collect();
            json!({
                "day": e.day().to_string(), "now": e.now().0, "last_seq": last_seq,
                "recent_calls": calls, "windows": windows, "services": services,
                "rating_reasons": e.setup().rating.reasons, "hours": hours_notice(e),
            })
        })
        .await
        .map_err(|e| ApiError::from_core(e, lang))?;
    let b = &s.config.board;
    // A notice pushed by the hall server (`show_notice`) scrolls first.
    let pushed = s.uplink.controls.notice(crate::core::wall_now().0);
    let mut notices: Vec<Value> = pushed
        .map(|n| json!(n.text))
        .into_iter()
        .chain(b.notices.iter().map(|n| json!(n)))
        .collect();
    if let Some(h) = body["hours"].as_str() {
        notices.push(json!(h));
    }
    body["hall"] = json!(s.config.hall.name);
    body["layout"] = json!(b.layout);
    body["chime"] = json!(b.chime);
    body["notices"] = Value::Array(notices);
    // The staff line: kiosks whose citizen pressed the help button, until acknowledged.
    body["help"] = super::help::open_json(s).await?;
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db(ats: &[(i64, &str, &str)]) -> Connection {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch(
            "CREATE TABLE events (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT, at INTEGER, type TEXT, schema INTEGER, payload TEXT)",
        )
        .unwrap();
        for (i, (at, kind, payload)) in ats.iter().enumerate() {
            c.execute(
                "INSERT INTO events (id, at, type, schema, payload) VALUES (?1, ?2, ?3, 1, ?4)",
                params![i.to_string(), at, kind, payload],
            )
            .unwrap();
        }
        c
    }

    #[test]
    fn the_days_first_event_is_found_by_bisection() {
        let c = db(&[
            (10, "a", "{}"),
            (20, "b", "{}"),
            (20, "c", "{}"),
            (30, "d", "{}"),
        ]);
        assert_eq!(first_seq_since(&c, 0).unwrap(), 0);
        assert_eq!(first_seq_since(&c, 20).unwrap(), 2);
        assert_eq!(first_seq_since(&c, 25).unwrap(), 4);
        assert_eq!(first_seq_since(&c, 31).unwrap(), 5);
    }

    #[test]
    fn a_recovered_device_closes_its_fault_and_present_state_decides_the_rest() {
        let c = db(&[
            (
                5,
                "wait_alarm",
                r#"{"type": "wait_alarm", "ticket": 1, "number": "A001", "service": "SB", "waited_secs": 3000}"#,
            ),
            (
                10,
                "device_fault",
                r#"{"type": "device_fault", "device": "printer", "severity": "fault", "code": "paper_out", "detail": "缺纸"}"#,
            ),
            (
                11,
                "wait_alarm",
                r#"{"type": "wait_alarm", "ticket": 2, "number": "A002", "service": "SB", "waited_secs": 3000}"#,
            ),
            (
                12,
                "device_recovered",
                r#"{"type": "device_recovered", "device": "printer", "code": "paper_out", "down_ms": 2}"#,
            ),
            (
                13,
                "device_fault",
                r#"{"type": "device_fault", "device": "led-1", "severity": "fault", "code": "offline", "detail": "x"}"#,
            ),
            (
                14,
                "pause_alarm",
                r#"{"type": "pause_alarm", "window": 3, "paused_secs": 600}"#,
            ),
            (15, "ticket_called", r#"{"ticket": 2}"#),
        ]);
        let rows = warning_rows(&c, 6).unwrap();
        let mut present = Present::default();
        present.queued.insert(2);
        present.paused_since.insert(3, 1);
        let list = classify(rows, &present);
        let summary: Vec<(String, bool)> = list
            .iter()
            .map(|w| (w["type"].as_str().unwrap().to_string(), w["open"] == true))
            .collect();
        assert_eq!(
            summary,
            vec![
                ("pause_alarm".into(), true),
                ("device_fault".into(), true),
                ("wait_alarm".into(), true),
                ("device_fault".into(), false),
            ],
            "{list:?}"
        );
        assert_eq!(list[1]["device"], "led-1");
        assert_eq!(list[0]["paused_secs"], 600);
    }
}
