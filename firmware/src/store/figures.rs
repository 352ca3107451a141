//! Period figures (日考核、周汇总、月通报): running totals per service day for the hall,
//! each window, service, department, staff member and hour of the day, kept in the
//! `figures` table by the transaction that appends the events they count. A period
//! view sums a few hundred rows per day, however many events the days hold, and the
//! totals outlive the events retention prunes.
//!
//! What counts where (the day is the service day of the event's time):
//! - `ticket_issued`: `issued` for the hall, the service, its department and the hour
//!   of issue.
//! - `ticket_called`: `called` for the window and its staff; the ticket's first call
//!   also counts its wait (`waits`, `wait_sum`, `wait_max`) for the hall, the service,
//!   its department, the window, the staff member and the hour the ticket was taken.
//! - `ticket_finished`: `served` and the service time; `ticket_no_show` that ends the
//!   ticket: `no_shows`; `ticket_transferred`: `transfers` — for the hall, the window,
//!   the staff member, the service and its department.
//! - `window_paused` / `window_resumed`: `pauses` and `pause_secs`; a staff session's
//!   time (`signed_in_secs`) when it ends, split at day starts.
//! - `rating_recorded`: the level's count and the reasons (`figure_reasons`); a replaced
//!   rating is taken off where it was counted.
//! - the warnings (`store::warnings::RAISED`): `warnings`, and `warnings_handled` when
//!   a supervisor follows one up, for the hall, the window and whoever was signed in
//!   there, the service and its department; `service_over_time` also `over_limit`.

use std::collections::{BTreeMap, HashMap};

use chrono::{NaiveDate, NaiveTime, Timelike};
use hallq_engine::{Event, Level, LocalClock, Rating, Setup, Timestamp};
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use super::{NewEvent, StoreError};
use crate::events::{Committed, HallEvent};

/// The scopes figures are kept for.
pub const SCOPES: &[&str] = &["hall", "window", "service", "department", "staff", "hour"];

/// How events are placed: the hall's clock and day start, and each service's
/// department. Set by the core from the setup in force.
#[derive(Debug, Clone)]
pub struct Rules {
    clock: LocalClock,
    day_starts_at: NaiveTime,
    departments: HashMap<String, String>,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            clock: LocalClock::new(0),
            day_starts_at: NaiveTime::MIN,
            departments: HashMap::new(),
        }
    }
}

impl Rules {
    /// The rules of a setup.
    pub fn of(setup: &Setup) -> Rules {
        Rules {
            clock: LocalClock::new(setup.utc_offset_minutes),
            day_starts_at: setup.day_starts_at,
            departments: setup
                .services
                .iter()
                .map(|s| (s.code.clone(), s.department.clone()))
                .collect(),
        }
    }

    /// The service day an instant (ms) belongs to.
    pub fn day(&self, at: i64) -> NaiveDate {
        self.clock.service_day(Timestamp(at), self.day_starts_at)
    }

    /// When a service day starts (ms).
    pub fn day_start(&self, day: NaiveDate) -> i64 {
        self.clock.instant(day.and_time(self.day_starts_at)).0
    }

    /// An instant as the hall's local time, `2026-11-03 10:15:00`.
    pub fn local_text(&self, at: i64) -> String {
        self.clock
            .local(Timestamp(at))
            .format("%Y-%m-%d %H:%M:%S")
            .to_string()
    }

    fn hour(&self, at: i64) -> String {
        format!("{:02}", self.clock.local(Timestamp(at)).hour())
    }

    fn department(&self, service: &str) -> Option<&str> {
        self.departments
            .get(service)
            .map(String::as_str)
            .filter(|d| !d.is_empty())
    }
}

/// Amounts added to a row; negative to take a replaced rating off.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Add {
    issued: i64,
    called: i64,
    served: i64,
    no_shows: i64,
    transfers: i64,
    waits: i64,
    wait_sum: i64,
    wait_max: i64,
    services: i64,
    service_sum: i64,
    service_max: i64,
    over_limit: i64,
    pauses: i64,
    pause_secs: i64,
    signed_in_secs: i64,
    levels: [i64; 5],
    warnings: i64,
    warnings_handled: i64,
}

impl Add {
    /// Both amounts in one, as adding them one after the other would leave the row.
    fn merge(&mut self, o: &Add) {
        self.issued += o.issued;
        self.called += o.called;
        self.served += o.served;
        self.no_shows += o.no_shows;
        self.transfers += o.transfers;
        self.waits += o.waits;
        self.wait_sum += o.wait_sum;
        self.wait_max = self.wait_max.max(o.wait_max);
        self.services += o.services;
        self.service_sum += o.service_sum;
        self.service_max = self.service_max.max(o.service_max);
        self.over_limit += o.over_limit;
        self.pauses += o.pauses;
        self.pause_secs += o.pause_secs;
        self.signed_in_secs += o.signed_in_secs;
        for (a, b) in self.levels.iter_mut().zip(o.levels) {
            *a += b;
        }
        self.warnings += o.warnings;
        self.warnings_handled += o.warnings_handled;
    }
}

/// The amounts a transaction's events add, per `(day, scope, key)` row, until
/// [`flush`] writes them into that transaction: a batch of tickets for one service
/// updates each of its rows once, not once a ticket. Nothing reads `figures` inside a
/// writing transaction, so holding them until its commit changes no answer.
#[derive(Debug, Default)]
pub struct Pending(std::cell::RefCell<BTreeMap<(String, &'static str, String), Add>>);

impl Pending {
    fn add(&self, day: &str, scope: &'static str, key: &str, a: &Add) {
        self.0
            .borrow_mut()
            .entry((day.to_string(), scope, key.to_string()))
            .or_default()
            .merge(a);
    }

    /// Forgets what was gathered (its transaction was rolled back).
    pub fn clear(&self) {
        self.0.borrow_mut().clear();
    }
}

/// Writes what `pending` gathered into the open transaction `tx`, and empties it.
pub fn flush(tx: &Connection, pending: &Pending) -> Result<(), StoreError> {
    let rows = std::mem::take(&mut *pending.0.borrow_mut());
    if rows.is_empty() {
        return Ok(());
    }
    let mut put = tx.prepare_cached(
        "INSERT INTO figures (day, scope, key, issued, called, served, no_shows, \
         transfers, waits, wait_sum, wait_max, services, service_sum, service_max, \
         over_limit, pauses, pause_secs, signed_in_secs, very_satisfied, satisfied, \
         basically_satisfied, dissatisfied, very_dissatisfied, warnings, \
         warnings_handled) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, \
         ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25) \
         ON CONFLICT (day, scope, key) DO UPDATE SET issued = issued + excluded.issued, \
         called = called + excluded.called, served = served + excluded.served, \
         no_shows = no_shows + excluded.no_shows, \
         transfers = transfers + excluded.transfers, waits = waits + excluded.waits, \
         wait_sum = wait_sum + excluded.wait_sum, \
         wait_max = MAX(wait_max, excluded.wait_max), \
         services = services + excluded.services, \
         service_sum = service_sum + excluded.service_sum, \
         service_max = MAX(service_max, excluded.service_max), \
         over_limit = over_limit + excluded.over_limit, \
         pauses = pauses + excluded.pauses, \
         pause_secs = pause_secs + excluded.pause_secs, \
         signed_in_secs = signed_in_secs + excluded.signed_in_secs, \
         very_satisfied = very_satisfied + excluded.very_satisfied, \
         satisfied = satisfied + excluded.satisfied, \
         basically_satisfied = basically_satisfied + excluded.basically_satisfied, \
         dissatisfied = dissatisfied + excluded.dissatisfied, \
         very_dissatisfied = very_dissatisfied + excluded.very_dissatisfied, \
         warnings = warnings + excluded.warnings, \
         warnings_handled = warnings_handled + excluded.warnings_handled",
    )?;
    for ((day, scope, key), a) in rows {
        let l = &a.levels;
        put.execute(params![
            day,
            scope,
            key,
            a.issued,
            a.called,
            a.served,
            a.no_shows,
            a.transfers,
            a.waits,
            a.wait_sum,
            a.wait_max,
            a.services,
            a.service_sum,
            a.service_max,
            a.over_limit,
            a.pauses,
            a.pause_secs,
            a.signed_in_secs,
            l[0],
            l[1],
            l[2],
            l[3],
            l[4],
            a.warnings,
            a.warnings_handled
        ])?;
    }
    Ok(())
}

fn level_index(l: Level) -> usize {
    Level::ALL.iter().position(|x| *x == l).unwrap_or(0)
}

/// Where one event's amounts go: `(scope, key)` pairs on one day.
struct Place<'a> {
    tx: &'a Connection,
    rules: &'a Rules,
    day: String,
    sums: &'a Pending,
}

impl Place<'_> {
    /// The same place on another day.
    fn on(&self, day: NaiveDate) -> Place<'_> {
        Place {
            tx: self.tx,
            rules: self.rules,
            day: day.to_string(),
            sums: self.sums,
        }
    }

    fn add(&self, scope: &'static str, key: &str, a: &Add) {
        self.sums.add(&self.day, scope, key, a);
    }

    /// Adds to the hall and to each of the given window, staff member and service (with
    /// its department).
    fn spread(&self, window: Option<u32>, staff: Option<&str>, service: Option<&str>, a: &Add) {
        for (scope, key) in self.places(window, staff, service) {
            self.add(scope, &key, a);
        }
    }

    /// The `(scope, key)` rows an event counts in: the hall, and each of the given
    /// window, staff member and service (with its department).
    fn places(
        &self,
        window: Option<u32>,
        staff: Option<&str>,
        service: Option<&str>,
    ) -> Vec<(&'static str, String)> {
        let mut places = vec![("hall", String::new())];
        if let Some(w) = window {
            places.push(("window", w.to_string()));
        }
        if let Some(s) = staff {
            places.push(("staff", s.to_string()));
        }
        if let Some(s) = service {
            places.push(("service", s.to_string()));
            if let Some(d) = self.rules.department(s) {
                places.push(("department", d.to_string()));
            }
        }
        places
    }

    fn reasons(
        &self,
        places: &[(&str, String)],
        reasons: &[String],
        n: i64,
    ) -> Result<(), StoreError> {
        let mut put = self.tx.prepare_cached(
            "INSERT INTO figure_reasons (day, scope, key, reason, n) VALUES (?1, ?2, ?3, ?4, ?5) \
             ON CONFLICT (day, scope, key, reason) DO UPDATE SET n = n + excluded.n",
        )?;
        for (scope, key) in places {
            for r in reasons {
                put.execute(params![self.day, scope, key, r, n])?;
            }
        }
        Ok(())
    }
}

/// A row of `figure_open`.
struct Open {
    staff: Option<String>,
    service: Option<String>,
    window: Option<u32>,
    since: i64,
}

fn open_get(tx: &Connection, kind: &str, id: &str) -> Result<Option<Open>, StoreError> {
    Ok(tx
        .prepare_cached(
            "SELECT staff, service, window, since FROM figure_open WHERE kind = ?1 AND id = ?2",
        )?
        .query_row(params![kind, id], |r| {
            Ok(Open {
                staff: r.get(0)?,
                service: r.get(1)?,
                window: r.get(2)?,
                since: r.get(3)?,
            })
        })
        .optional()?)
}

fn open_put(tx: &Connection, kind: &str, id: &str, o: &Open) -> Result<(), StoreError> {
    tx.prepare_cached(
        "INSERT OR REPLACE INTO figure_open (kind, id, staff, service, window, since) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![kind, id, o.staff, o.service, o.window, o.since])?;
    Ok(())
}

fn open_end(tx: &Connection, kind: &str, id: &str) -> Result<Option<Open>, StoreError> {
    let found = open_get(tx, kind, id)?;
    if found.is_some() {
        tx.prepare_cached("DELETE FROM figure_open WHERE kind = ?1 AND id = ?2")?
            .execute(params![kind, id])?;
    }
    Ok(found)
}

/// Who is signed in at a window, as the figures know it.
fn staff_at(tx: &Connection, window: u32) -> Result<Option<String>, StoreError> {
    Ok(open_get(tx, "session", &window.to_string())?.and_then(|o| o.staff))
}

/// Counts an event being appended (`seq` is its row). Called inside the transaction
/// that appends it, before the rows its request changes are written; the amounts go
/// to `sums` until [`flush`].
pub(super) fn apply(
    tx: &Connection,
    rules: &Rules,
    sums: &Pending,
    e: &NewEvent,
    seq: i64,
) -> Result<(), StoreError> {
    if !COUNTED.contains(&e.kind.as_str()) {
        return Ok(());
    }
    apply_parsed(tx, rules, sums, e, &serde_json::from_str(&e.payload)?, seq)
}

/// [`apply`] with the event's payload already parsed (the append parses it once for
/// the stored event and the figures).
pub(super) fn apply_parsed(
    tx: &Connection,
    rules: &Rules,
    sums: &Pending,
    e: &NewEvent,
    payload: &serde_json::Value,
    seq: i64,
) -> Result<(), StoreError> {
    if !COUNTED.contains(&e.kind.as_str()) {
        return Ok(());
    }
    let event = Committed::of(&e.kind, payload);
    let place = Place {
        tx,
        rules,
        day: rules.day(e.at.0).to_string(),
        sums,
    };
    match event {
        Committed::Engine(ev) => engine_event(&place, e.at.0, seq, payload, ev),
        Committed::Hall(HallEvent::WarningHandled { warning, .. }) => {
            handled(&place, &warning.to_string())
        }
        Committed::Hall(HallEvent::DeviceFault { .. }) => {
            warning(&place, e.at.0, seq, payload, None).map(drop)
        }
        _ => Ok(()),
    }
}

/// The event types that count somewhere (the hall server folds the same ones).
pub const COUNTED: &[&str] = &[
    "ticket_issued",
    "ticket_called",
    "ticket_no_show",
    "ticket_transferred",
    "ticket_finished",
    "ticket_cancelled",
    "staff_signed_in",
    "staff_signed_out",
    "window_paused",
    "window_resumed",
    "rating_recorded",
    "wait_alarm",
    "service_over_time",
    "queue_alarm",
    "pause_alarm",
    "unmanned_alarm",
    "device_fault",
    "warning_handled",
];

// Over 100 lines: one arm per counted engine event, each a few lines.
fn engine_event(
    p: &Place<'_>,
    at: i64,
    seq: i64,
    payload: &serde_json::Value,
    ev: Event,
) -> Result<(), StoreError> {
    let tx = p.tx;
    match ev {
        Event::TicketIssued { ticket, .. } => {
            let a = Add {
                issued: 1,
                ..Add::default()
            };
            p.spread(None, None, Some(&ticket.service), &a);
            p.add("hour", &p.rules.hour(at), &a);
        }
        Event::TicketCalled {
            ticket,
            service,
            window,
            staff,
            waited_secs,
            ..
        } => {
            let id = ticket.0.to_string();
            let first = open_get(tx, "called", &id)?.is_none();
            let called = Add {
                called: 1,
                ..Add::default()
            };
            p.add("window", &window.to_string(), &called);
            p.add("staff", &staff, &called);
            if first {
                let issued_at = at - waited_secs * 1000;
                open_put(
                    tx,
                    "called",
                    &id,
                    &Open {
                        staff: None,
                        service: Some(service.clone()),
                        window: None,
                        since: issued_at,
                    },
                )?;
                let w = Add {
                    waits: 1,
                    wait_sum: waited_secs,
                    wait_max: waited_secs,
                    ..Add::default()
                };
                p.spread(Some(window), Some(&staff), Some(&service), &w);
                p.add("hour", &p.rules.hour(issued_at), &w);
            }
        }
        Event::TicketNoShow {
            ticket,
            window,
            staff,
            requeued: false,
            ..
        } => {
            let o = open_end(tx, "called", &ticket.0.to_string())?;
            let a = Add {
                no_shows: 1,
                ..Add::default()
            };
            p.spread(
                Some(window),
                Some(&staff),
                o.as_ref().and_then(|o| o.service.as_deref()),
                &a,
            );
        }
        Event::TicketTransferred {
            from_service,
            window,
            staff,
            ..
        } => {
            let a = Add {
                transfers: 1,
                ..Add::default()
            };
            p.spread(Some(window), Some(&staff), Some(&from_service), &a);
        }
        Event::TicketFinished {
            ticket,
            service,
            window,
            staff,
            served_secs,
            ..
        } => {
            open_end(tx, "called", &ticket.0.to_string())?;
            let a = Add {
                served: 1,
                services: 1,
                service_sum: served_secs,
                service_max: served_secs,
                ..Add::default()
            };
            p.spread(Some(window), Some(&staff), Some(&service), &a);
        }
        Event::TicketCancelled { ticket, .. } => {
            open_end(tx, "called", &ticket.0.to_string())?;
        }
        Event::StaffSignedIn { window, staff, .. } => {
            let id = window.to_string();
            if let Some(before) = open_end(tx, "session", &id)? {
                session_time(p, window, &before, at);
            }
            open_put(
                tx,
                "session",
                &id,
                &Open {
                    staff: Some(staff),
                    service: None,
                    window: Some(window),
                    since: at,
                },
            )?;
        }
        Event::StaffSignedOut { window, .. } => {
            if let Some(o) = open_end(tx, "session", &window.to_string())? {
                session_time(p, window, &o, at);
            }
        }
        Event::WindowPaused { window, staff, .. } => {
            let a = Add {
                pauses: 1,
                ..Add::default()
            };
            p.spread(Some(window), Some(&staff), None, &a);
        }
        Event::WindowResumed {
            window,
            staff,
            paused_secs,
        } => {
            let a = Add {
                pause_secs: paused_secs,
                ..Add::default()
            };
            p.spread(Some(window), Some(&staff), None, &a);
        }
        Event::RatingRecorded { rating, replaced } => {
            let old = if replaced {
                stored_rating(tx, rating.ticket.0)?
            } else {
                None
            };
            rerated(p, old.as_ref(), &rating)?;
        }
        Event::ServiceOverTime { ticket, window, .. } => {
            let service = open_get(tx, "called", &ticket.0.to_string())?.and_then(|o| o.service);
            let staff = warning(p, at, seq, payload, service)?;
            let a = Add {
                over_limit: 1,
                ..Add::default()
            };
            p.spread(Some(window), staff.as_deref(), None, &a);
        }
        Event::WaitAlarm { .. }
        | Event::QueueAlarm { .. }
        | Event::PauseAlarm { .. }
        | Event::UnmannedAlarm { .. } => {
            warning(p, at, seq, payload, None)?;
        }
        _ => {}
    }
    Ok(())
}

/// Adds a session's time to its window and staff member (and the hall), split at the
/// starts of the service days it spans.
fn session_time(p: &Place<'_>, window: u32, o: &Open, until: i64) {
    let mut from = o.since;
    while from < until {
        let day = p.rules.day(from);
        let next = day
            .succ_opt()
            .map(|d| p.rules.clock.instant(d.and_time(p.rules.day_starts_at)).0)
            .unwrap_or(until);
        let end = until.min(next.max(from + 1));
        let part = p.on(day);
        let a = Add {
            signed_in_secs: (end - from) / 1000,
            ..Add::default()
        };
        part.spread(Some(window), o.staff.as_deref(), None, &a);
        from = end;
    }
}

/// The rating stored for a ticket (before this request's rows are written).
fn stored_rating(tx: &Connection, ticket: u64) -> Result<Option<Rating>, StoreError> {
    let record: Option<String> = tx
        .prepare_cached("SELECT record FROM ratings WHERE ticket = ?1")?
        .query_row(params![ticket as i64], |r| r.get(0))
        .optional()?;
    Ok(record.and_then(|r| serde_json::from_str(&r).ok()))
}

/// Counts a rating, taking off the one it replaces (counted on its own day).
fn rerated(p: &Place<'_>, old: Option<&Rating>, new: &Rating) -> Result<(), StoreError> {
    if let Some(old) = old {
        let before = p.on(p.rules.day(old.at.0));
        rated(&before, old, -1)?;
    }
    rated(p, new, 1)
}

fn rated(p: &Place<'_>, r: &Rating, n: i64) -> Result<(), StoreError> {
    let mut a = Add::default();
    a.levels[level_index(r.level)] = n;
    p.spread(r.window, r.staff.as_deref(), Some(&r.service), &a);
    if r.level.is_bad() && !r.reasons.is_empty() {
        let places = p.places(r.window, r.staff.as_deref(), Some(&r.service));
        p.reasons(&places, &r.reasons, n)?;
    }
    Ok(())
}

/// Counts a raised warning where it belongs, and remembers where for its handling.
/// `service` overrides the payload's (a service over time names the ticket's). Returns
/// who was signed in at the warning's window.
fn warning(
    p: &Place<'_>,
    at: i64,
    seq: i64,
    payload: &serde_json::Value,
    service: Option<String>,
) -> Result<Option<String>, StoreError> {
    let window = payload["window"]
        .as_u64()
        .and_then(|w| u32::try_from(w).ok());
    let service = service
        .or_else(|| payload["service"].as_str().map(str::to_string))
        .filter(|s| !s.is_empty());
    let staff = match window {
        Some(w) => staff_at(p.tx, w)?,
        None => None,
    };
    let a = Add {
        warnings: 1,
        ..Add::default()
    };
    p.spread(window, staff.as_deref(), service.as_deref(), &a);
    open_put(
        p.tx,
        "warning",
        &seq.to_string(),
        &Open {
            staff: staff.clone(),
            service,
            window,
            since: at,
        },
    )?;
    Ok(staff)
}

/// Counts a warning's follow-up where the warning was counted, on its day.
fn handled(p: &Place<'_>, warning: &str) -> Result<(), StoreError> {
    let Some(o) = open_end(p.tx, "warning", warning)? else {
        return Ok(());
    };
    let at = p.on(p.rules.day(o.since));
    let a = Add {
        warnings_handled: 1,
        ..Add::default()
    };
    at.spread(o.window, o.staff.as_deref(), o.service.as_deref(), &a);
    Ok(())
}

/// Builds the figures of every stored event once, for a database that had events before
/// the figures existed (`figures_built` in `meta` says it is done). Returns the events
/// counted, or `None` when there was nothing to do.
pub fn build_once(conn: &mut Connection, rules: &Rules) -> Result<Option<u64>, StoreError> {
    let done: Option<String> = conn
        .query_row(
            "SELECT value FROM meta WHERE key = 'figures_built'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    if done.is_some() {
        return Ok(None);
    }
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    tx.execute_batch("DELETE FROM figures; DELETE FROM figure_reasons; DELETE FROM figure_open;")?;
    let mut n = 0u64;
    let sums = Pending::default();
    {
        // Ratings replaced later are read back from `ratings`, which holds only the
        // last: replay each ticket's ratings from the events instead.
        let mut last_rating: HashMap<u64, Rating> = HashMap::new();
        let mut stmt = tx.prepare("SELECT seq, at, type, payload FROM events ORDER BY seq")?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let (seq, at, kind, payload): (i64, i64, String, String) =
                (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?);
            let e = NewEvent {
                at: Timestamp(at),
                kind,
                payload,
            };
            if e.kind == "rating_recorded"
                && let Ok(Event::RatingRecorded { rating, .. }) =
                    serde_json::from_str::<Event>(&e.payload)
            {
                let place = Place {
                    tx: &tx,
                    rules,
                    day: rules.day(at).to_string(),
                    sums: &sums,
                };
                let old = last_rating.insert(rating.ticket.0, rating.clone());
                rerated(&place, old.as_ref(), &rating)?;
            } else {
                apply(&tx, rules, &sums, &e, seq)?;
            }
            n += 1;
        }
    }
    flush(&tx, &sums)?;
    tx.execute(
        "INSERT OR REPLACE INTO meta (key, value) VALUES ('figures_built', ?1)",
        params![n.to_string()],
    )?;
    tx.commit()?;
    Ok(Some(n))
}

/// Marks a new, empty database as having its figures built (nothing to replay).
pub(super) fn mark_built(conn: &Connection) -> Result<(), StoreError> {
    conn.execute(
        "INSERT OR IGNORE INTO meta (key, value) SELECT 'figures_built', '0' \
         WHERE NOT EXISTS (SELECT 1 FROM events)",
        [],
    )?;
    Ok(())
}

/// One row of a period's figures: sums over its days.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Figures {
    /// Tickets taken (hall, services, departments, hours, days).
    pub issued: i64,
    /// Calls made (windows, staff).
    pub called: i64,
    /// Tickets finished.
    pub served: i64,
    /// Tickets ended because the citizen did not come.
    pub no_shows: i64,
    /// Tickets sent to another service or window.
    pub transfers: i64,
    /// Average seconds from taking the ticket to its first call.
    pub avg_wait_secs: i64,
    /// Longest such wait.
    pub max_wait_secs: i64,
    /// Average seconds at the window of finished tickets.
    pub avg_service_secs: i64,
    /// Longest such service.
    pub max_service_secs: i64,
    /// Services over the time limit (`service_over_time`).
    pub over_limit: i64,
    /// Pauses started.
    pub pauses: i64,
    /// Seconds paused (counted when the pause ends).
    pub pause_secs: i64,
    /// Seconds staff were signed in (counted when the session ends; a period that
    /// includes today adds the sessions still open).
    pub signed_in_secs: i64,
    /// Ratings per level, by key (`very_satisfied` …).
    pub ratings: BTreeMap<&'static str, i64>,
    /// Ratings in all.
    pub rated: i64,
    /// Share of 非常满意 + 满意 among the ratings, when there are any.
    pub satisfaction: Option<f64>,
    /// Bad ratings (不满意 + 非常不满意).
    pub bad: i64,
    /// Reasons given with bad ratings.
    pub bad_reasons: BTreeMap<String, i64>,
    /// Warnings raised.
    pub warnings: i64,
    /// Of those, followed up by a supervisor.
    pub warnings_handled: i64,
}

impl Figures {
    /// Nothing counted.
    pub fn zero() -> Figures {
        Sums::default().figures()
    }
}

/// Sums of one scope and key.
#[derive(Debug, Clone, Default)]
struct Sums {
    v: [i64; 23],
}

impl Sums {
    fn figures(&self) -> Figures {
        let v = &self.v;
        let avg = |sum: i64, n: i64| if n > 0 { sum / n } else { 0 };
        let levels = [v[17], v[18], v[19], v[20], v[21]];
        let rated: i64 = levels.iter().sum();
        Figures {
            issued: v[0],
            called: v[1],
            served: v[2],
            no_shows: v[3],
            transfers: v[4],
            avg_wait_secs: avg(v[6], v[5]),
            max_wait_secs: v[7],
            avg_service_secs: avg(v[9], v[8]),
            max_service_secs: v[10],
            over_limit: v[11],
            pauses: v[12],
            pause_secs: v[13],
            signed_in_secs: v[14],
            ratings: Level::ALL
                .iter()
                .zip(levels)
                .map(|(l, n)| (l.key(), n))
                .collect(),
            rated,
            satisfaction: (rated > 0).then(|| (levels[0] + levels[1]) as f64 / rated as f64),
            bad: levels[3] + levels[4],
            bad_reasons: BTreeMap::new(),
            warnings: v[15],
            warnings_handled: v[16],
        }
    }
}

const SUMS: &str = "SUM(issued), SUM(called), SUM(served), SUM(no_shows), SUM(transfers), \
    SUM(waits), SUM(wait_sum), MAX(wait_max), SUM(services), SUM(service_sum), MAX(service_max), \
    SUM(over_limit), SUM(pauses), SUM(pause_secs), SUM(signed_in_secs), SUM(warnings), \
    SUM(warnings_handled), SUM(very_satisfied), SUM(satisfied), SUM(basically_satisfied), \
    SUM(dissatisfied), SUM(very_dissatisfied)";

fn sums_of(r: &rusqlite::Row<'_>, from: usize) -> rusqlite::Result<Sums> {
    let mut s = Sums::default();
    for i in 0..22 {
        s.v[i] = r.get::<_, Option<i64>>(from + i)?.unwrap_or(0);
    }
    Ok(s)
}

/// A period's figures: per scope, per key.
#[derive(Debug, Clone, Default)]
pub struct PeriodFigures {
    /// `scope → key → figures`; the hall's key is ''.
    pub by_scope: BTreeMap<String, BTreeMap<String, Figures>>,
    /// The hall's figures per day, ascending.
    pub days: Vec<(String, Figures)>,
}

impl PeriodFigures {
    /// The figures of one scope and key (zeros when nothing was counted).
    pub fn get(&self, scope: &str, key: &str) -> Figures {
        self.by_scope
            .get(scope)
            .and_then(|m| m.get(key))
            .cloned()
            .unwrap_or_else(Figures::zero)
    }
}

/// Sums the figures of the days `from..=to`.
pub fn period(
    conn: &Connection,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<PeriodFigures, StoreError> {
    let (from, to) = (from.to_string(), to.to_string());
    let mut out = PeriodFigures::default();
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT scope, key, {SUMS} FROM figures WHERE day BETWEEN ?1 AND ?2 GROUP BY scope, key"
    ))?;
    let mut rows = stmt.query(params![from, to])?;
    while let Some(r) = rows.next()? {
        let (scope, key): (String, String) = (r.get(0)?, r.get(1)?);
        let f = sums_of(r, 2)?.figures();
        out.by_scope.entry(scope).or_default().insert(key, f);
    }
    let mut stmt = conn.prepare_cached(
        "SELECT scope, key, reason, SUM(n) FROM figure_reasons WHERE day BETWEEN ?1 AND ?2 \
         GROUP BY scope, key, reason",
    )?;
    let mut rows = stmt.query(params![from, to])?;
    while let Some(r) = rows.next()? {
        let (scope, key, reason, n): (String, String, String, i64) =
            (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?);
        if n > 0
            && let Some(f) = out.by_scope.get_mut(&scope).and_then(|m| m.get_mut(&key))
        {
            f.bad_reasons.insert(reason, n);
        }
    }
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT day, {SUMS} FROM figures WHERE day BETWEEN ?1 AND ?2 AND scope = 'hall' \
         GROUP BY day ORDER BY day"
    ))?;
    let mut rows = stmt.query(params![from, to])?;
    while let Some(r) = rows.next()? {
        let day: String = r.get(0)?;
        out.days.push((day, sums_of(r, 1)?.figures()));
    }
    Ok(out)
}

/// Staff sessions still open: `(window, staff, since ms)`.
pub fn open_sessions(conn: &Connection) -> Result<Vec<(u32, String, i64)>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT window, staff, since FROM figure_open WHERE kind = 'session' ORDER BY window",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, Option<u32>>(0)?.unwrap_or(0),
            r.get::<_, Option<String>>(1)?.unwrap_or_default(),
            r.get::<_, i64>(2)?,
        ))
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// A period's bad ratings, newest first, at most `limit`.
pub fn bad_ratings(
    conn: &Connection,
    from: NaiveDate,
    to: NaiveDate,
    limit: usize,
) -> Result<Vec<(String, Rating)>, StoreError> {
    // The latest days first, and in a day the latest tickets: the index gives them in
    // that order, so a month of a large hall reads only the rows it lists.
    let mut stmt = conn.prepare_cached(
        "SELECT day, record FROM ratings WHERE day BETWEEN ?1 AND ?2 \
         AND json_extract(record, '$.level') IN ('不满意', '非常不满意') \
         ORDER BY day DESC, ticket DESC LIMIT ?3",
    )?;
    let rows = stmt.query_map(
        params![from.to_string(), to.to_string(), limit as i64],
        |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)),
    )?;
    let mut out = Vec::new();
    for row in rows {
        let (day, record) = row?;
        if let Ok(r) = serde_json::from_str::<Rating>(&record) {
            out.push((day, r));
        }
    }
    out.sort_by_key(|(_, r)| std::cmp::Reverse(r.at));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use hallq_engine::Engine;

    use super::*;
    use crate::store::Store;

    fn issue(engine: &mut Engine, at: Timestamp) -> Vec<NewEvent> {
        let events = engine.handle(crate::testing::issue("SB"), at).unwrap();
        events
            .iter()
            .map(|e| NewEvent::encode(engine.now(), e.kind(), e).unwrap())
            .collect()
    }

    /// The figures a transaction's events add are held until it commits: a rolled-back
    /// transaction leaves none behind for the next one, and a batch of requests in one
    /// transaction counts each of them once, as separate commits would.
    #[test]
    fn a_batch_counts_each_ticket_once_and_a_rollback_counts_none() {
        let dir = tempfile::tempdir().unwrap();
        let setup = crate::history::unlimited_setup();
        let mut store = Store::open(&dir.path().join("hallq.db")).unwrap();
        store.set_figure_rules(Rules::of(&setup)).unwrap();
        let at = Timestamp(1_795_395_600_000);
        let mut engine = Engine::new(setup, at).unwrap();
        let hall = |store: &Store| -> (i64, i64) {
            store
                .conn()
                .query_row(
                    "SELECT COALESCE(SUM(issued), 0), COUNT(*) FROM figures WHERE scope = 'hall'",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .unwrap()
        };

        store.begin().unwrap();
        let events = issue(&mut engine, at);
        store.write(&events, &engine.take_changes(), &[]).unwrap();
        store.abandon();
        assert_eq!(hall(&store), (0, 0), "a rolled-back ticket counts nowhere");

        store.begin().unwrap();
        for _ in 0..3 {
            let events = issue(&mut engine, at);
            store.write(&events, &engine.take_changes(), &[]).unwrap();
        }
        store.end().unwrap();
        assert_eq!(hall(&store), (3, 1), "three tickets in one row of the day");

        store
            .commit(&issue(&mut engine, at), &engine.take_changes())
            .unwrap();
        assert_eq!(hall(&store), (4, 1));
        let service: i64 = store
            .conn()
            .query_row(
                "SELECT issued FROM figures WHERE scope = 'service' AND key = 'SB'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(service, 4);
    }
}
