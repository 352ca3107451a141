//! Period figures kept by the ingest: per hall, per service day, per scope (`hall`,
//! `window`, `service`, `staff`, `hour`) the running totals the controller's own
//! period figures use (`hallq::store::figures`), updated in the transaction that
//! inserts a batch's events and only for the events that transaction inserted, so an
//! event sent twice never counts twice.
//!
//! The batch is folded in Rust: the state the figures need between events (which
//! tickets have had their first call and for which service, who is signed in at which
//! window, each ticket's last rating, each open warning) is read once per batch for
//! the keys the batch touches, changed in memory event by event in seq order, and
//! written back; the sums go in as one upsert per `(hall, day, scope, key)`, sorted,
//! so two instances never deadlock. The caller has already locked the batch's
//! controllers' rows (`controllers`, in controller order), so two batches of the same
//! controller fold one after the other.
//!
//! Placed like the controller places them: the service day of the event's time in
//! `[server] utc_offset_minutes` and `day_starts_at` (set them as the halls' `[queue]`
//! has them), the hour of the day in local time. What the server cannot know is left
//! out: departments (the halls' setups are not on the server).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{NaiveDate, NaiveTime, Timelike};
// The event types that count somewhere: those the controller counts.
use hallq::store::figures::COUNTED;
use serde_json::Value;
use tokio_postgres::Transaction;
use tokio_postgres::types::ToSql;

use crate::db::Row;

/// The summed columns of `period_figures`, in order.
pub const COLUMNS: [&str; 22] = [
    "issued",
    "called",
    "served",
    "no_shows",
    "transfers",
    "waits",
    "wait_sum",
    "wait_max",
    "services",
    "service_sum",
    "service_max",
    "over_limit",
    "pauses",
    "pause_secs",
    "signed_in_secs",
    "very_satisfied",
    "satisfied",
    "basically_satisfied",
    "dissatisfied",
    "very_dissatisfied",
    "warnings",
    "warnings_handled",
];

const ISSUED: usize = 0;
const CALLED: usize = 1;
const SERVED: usize = 2;
const NO_SHOWS: usize = 3;
const TRANSFERS: usize = 4;
const WAITS: usize = 5;
const WAIT_SUM: usize = 6;
const WAIT_MAX: usize = 7;
const SERVICES: usize = 8;
const SERVICE_SUM: usize = 9;
const SERVICE_MAX: usize = 10;
const OVER_LIMIT: usize = 11;
const PAUSES: usize = 12;
const PAUSE_SECS: usize = 13;
const SIGNED_IN_SECS: usize = 14;
const LEVELS: usize = 15;
const WARNINGS: usize = 20;
const WARNINGS_HANDLED: usize = 21;

/// Whether a column keeps the largest value rather than the sum.
pub fn is_max(column: usize) -> bool {
    column == WAIT_MAX || column == SERVICE_MAX
}

/// The totals of one row (or of many added up).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sums(pub [i64; 22]);

impl Sums {
    /// Adds another row: sums, except the longest wait and service, which keep the
    /// larger.
    pub fn add(&mut self, o: &Sums) {
        for (i, v) in o.0.iter().enumerate() {
            if is_max(i) {
                self.0[i] = self.0[i].max(*v);
            } else {
                self.0[i] += v;
            }
        }
    }

    fn one(column: usize, n: i64) -> Sums {
        let mut s = Sums::default();
        s.0[column] = n;
        s
    }
}

/// The level keys in the order of the level columns, best first.
pub const LEVEL_KEYS: [&str; 5] = [
    "very_satisfied",
    "satisfied",
    "basically_satisfied",
    "dissatisfied",
    "very_dissatisfied",
];

/// A level's column offset from its name (非常满意 …) or key.
fn level_index(name: &str) -> Option<usize> {
    const NAMES: [&str; 5] = ["非常满意", "满意", "基本满意", "不满意", "非常不满意"];
    NAMES
        .iter()
        .position(|n| *n == name)
        .or_else(|| LEVEL_KEYS.iter().position(|n| *n == name))
}

const DAY_MS: i64 = 86_400_000;
const HOUR_MS: i64 = 3_600_000;

/// The halls' clock: their UTC offset and the time their service day starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DayClock {
    offset_ms: i64,
    day_start_ms: i64,
}

impl Default for DayClock {
    fn default() -> Self {
        DayClock::new(
            480,
            NaiveTime::from_hms_opt(3, 0, 0).unwrap_or(NaiveTime::MIN),
        )
    }
}

impl DayClock {
    /// A clock `offset_minutes` east of UTC whose days start at `day_starts_at`.
    pub fn new(offset_minutes: i32, day_starts_at: NaiveTime) -> DayClock {
        DayClock {
            offset_ms: i64::from(offset_minutes) * 60_000,
            day_start_ms: i64::from(day_starts_at.num_seconds_from_midnight()) * 1000,
        }
    }

    /// The service day of an instant (ms); `None` past what a date holds.
    pub fn day(&self, at: i64) -> Option<NaiveDate> {
        let days = at
            .checked_add(self.offset_ms - self.day_start_ms)?
            .div_euclid(DAY_MS);
        chrono::DateTime::UNIX_EPOCH
            .date_naive()
            .checked_add_signed(chrono::Duration::try_days(days)?)
    }

    /// When a service day starts (ms).
    pub fn day_start(&self, day: NaiveDate) -> i64 {
        let days = (day - chrono::DateTime::UNIX_EPOCH.date_naive()).num_days();
        days * DAY_MS - self.offset_ms + self.day_start_ms
    }

    /// The local time of an instant, `09:05`.
    pub fn local_hm(&self, at: i64) -> String {
        let mins = at.saturating_add(self.offset_ms).rem_euclid(DAY_MS) / 60_000;
        format!("{:02}:{:02}", mins / 60, mins % 60)
    }

    /// The local hour of an instant, `09`.
    pub fn hour(&self, at: i64) -> String {
        format!(
            "{:02}",
            at.saturating_add(self.offset_ms).rem_euclid(DAY_MS) / HOUR_MS
        )
    }
}

/// A ticket's last rating, as counted.
#[derive(Debug, Clone)]
struct Rated {
    hall: String,
    at: i64,
    level: usize,
    service: Option<String>,
    window: Option<i64>,
    staff: Option<String>,
    reasons: Vec<String>,
}

/// A raised warning, where it was counted.
#[derive(Debug, Clone)]
struct Raised {
    hall: String,
    at: i64,
    service: Option<String>,
    window: Option<i64>,
    staff: Option<String>,
}

/// What the figures remember between events, for the keys of one batch; `changed`
/// keys are written back (or deleted when no longer in the map).
#[derive(Default)]
struct Memory {
    calls: HashMap<(String, i64), Option<String>>,
    calls_changed: BTreeSet<(String, i64)>,
    sessions: HashMap<(String, i64), (String, i64)>,
    sessions_changed: BTreeSet<(String, i64)>,
    ratings: HashMap<(String, i64), Rated>,
    ratings_changed: BTreeSet<(String, i64)>,
    warnings: HashMap<(String, i64), Raised>,
    warnings_changed: BTreeSet<(String, i64)>,
}

/// The batch's additions: figures and bad-rating reasons.
#[derive(Default)]
struct Fold {
    figures: BTreeMap<(String, NaiveDate, &'static str, String), Sums>,
    reasons: BTreeMap<(String, NaiveDate, &'static str, String, String), i64>,
}

/// The `(scope, key)` rows an event counts in.
fn places(
    window: Option<i64>,
    staff: Option<&str>,
    service: Option<&str>,
) -> Vec<(&'static str, String)> {
    let mut p = vec![("hall", String::new())];
    if let Some(w) = window {
        p.push(("window", w.to_string()));
    }
    if let Some(s) = staff {
        p.push(("staff", s.to_string()));
    }
    if let Some(s) = service.filter(|s| !s.is_empty()) {
        p.push(("service", s.to_string()));
    }
    p
}

impl Fold {
    fn add(&mut self, hall: &str, day: NaiveDate, scope: &'static str, key: String, s: &Sums) {
        self.figures
            .entry((hall.to_string(), day, scope, key))
            .or_default()
            .add(s);
    }

    fn spread(
        &mut self,
        hall: &str,
        day: NaiveDate,
        at: (Option<i64>, Option<&str>, Option<&str>),
        s: &Sums,
    ) {
        for (scope, key) in places(at.0, at.1, at.2) {
            self.add(hall, day, scope, key, s);
        }
    }

    /// Counts a rating (`n` = 1) or takes one off (`n` = -1), on its own day.
    fn rated(&mut self, clock: &DayClock, r: &Rated, n: i64) {
        let Some(day) = clock.day(r.at) else { return };
        let at = (r.window, r.staff.as_deref(), r.service.as_deref());
        self.spread(&r.hall, day, at, &Sums::one(LEVELS + r.level, n));
        if r.level >= 3 {
            for (scope, key) in places(at.0, at.1, at.2) {
                for reason in &r.reasons {
                    *self
                        .reasons
                        .entry((r.hall.clone(), day, scope, key.clone(), reason.clone()))
                        .or_default() += n;
                }
            }
        }
    }
}

fn int(p: &Value, key: &str) -> Option<i64> {
    p.get(key).and_then(Value::as_i64)
}

fn text<'a>(p: &'a Value, key: &str) -> Option<&'a str> {
    p.get(key).and_then(Value::as_str)
}

/// Counts the batch's newly inserted events (`rows`, any order) in the figures,
/// inside the batch's transaction.
pub async fn apply(
    tx: &Transaction<'_>,
    clock: &DayClock,
    rows: &[&Row],
) -> Result<(), tokio_postgres::Error> {
    let mut counted: Vec<&Row> = rows
        .iter()
        .copied()
        .filter(|r| COUNTED.contains(&r.kind.as_str()))
        .collect();
    if counted.is_empty() {
        return Ok(());
    }
    counted.sort_by(|a, b| (&a.controller_id, a.seq).cmp(&(&b.controller_id, b.seq)));
    let mut memory = recall(tx, &counted).await?;
    let mut fold = Fold::default();
    for r in &counted {
        count(&mut fold, &mut memory, clock, r);
    }
    // Pipelined on the one connection: the server still runs them in this order.
    tokio::try_join!(write_figures(tx, &fold), write_memory(tx, &memory))?;
    Ok(())
}

/// Reads what the batch's events need to know from earlier batches.
async fn recall(tx: &Transaction<'_>, rows: &[&Row]) -> Result<Memory, tokio_postgres::Error> {
    let mut m = Memory::default();
    let (mut call_c, mut call_t, mut rate_c, mut rate_t, mut warn_c, mut warn_s) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    // Sessions matter to sign-ins, sign-outs and warnings only.
    let mut controllers: BTreeSet<&str> = BTreeSet::new();
    for r in rows {
        let p = &r.payload;
        if r.kind.starts_with("staff_signed")
            || r.kind.ends_with("_alarm")
            || matches!(r.kind.as_str(), "service_over_time" | "device_fault")
        {
            controllers.insert(&r.controller_id);
        }
        match r.kind.as_str() {
            "ticket_called" | "ticket_no_show" | "ticket_finished" | "ticket_cancelled"
            | "service_over_time" => {
                if let Some(t) = int(p, "ticket") {
                    call_c.push(r.controller_id.as_str());
                    call_t.push(t);
                }
            }
            // The rating a replacing one takes off (only those: a first rating needs
            // nothing earlier).
            "rating_recorded" if p.get("replaced").and_then(Value::as_bool) == Some(true) => {
                if let Some(t) = p.pointer("/rating/ticket").and_then(Value::as_i64) {
                    rate_c.push(r.controller_id.as_str());
                    rate_t.push(t);
                }
            }
            "warning_handled" => {
                if let Some(s) = int(p, "warning") {
                    warn_c.push(r.controller_id.as_str());
                    warn_s.push(s);
                }
            }
            _ => {}
        }
    }
    if !call_c.is_empty() {
        for row in tx
            .query(
                "SELECT c.controller_id, c.ticket, c.service FROM rollup_calls c
                 JOIN unnest($1::text[], $2::int8[]) AS u(c, t)
                   ON c.controller_id = u.c AND c.ticket = u.t",
                &[&call_c, &call_t],
            )
            .await?
        {
            m.calls.insert((row.get(0), row.get(1)), row.get(2));
        }
    }
    let controllers: Vec<&str> = controllers.into_iter().collect();
    let sessions = if controllers.is_empty() {
        Vec::new()
    } else {
        tx.query(
            "SELECT controller_id, window_no, staff, since FROM rollup_sessions
             WHERE controller_id = ANY($1)",
            &[&controllers],
        )
        .await?
    };
    for row in sessions {
        m.sessions
            .insert((row.get(0), row.get(1)), (row.get(2), row.get(3)));
    }
    if !rate_c.is_empty() {
        for row in tx
            .query(
                "SELECT r.controller_id, r.ticket, r.hall_id, r.at, r.level, r.service,
                        r.window_no, r.staff, r.reasons
                 FROM rollup_ratings r JOIN unnest($1::text[], $2::int8[]) AS u(c, t)
                   ON r.controller_id = u.c AND r.ticket = u.t",
                &[&rate_c, &rate_t],
            )
            .await?
        {
            let level: i32 = row.get(4);
            let rated = Rated {
                hall: row.get(2),
                at: row.get(3),
                level: usize::try_from(level).unwrap_or(0).min(4),
                service: row.get(5),
                window: row.get(6),
                staff: row.get(7),
                reasons: row.get(8),
            };
            m.ratings.insert((row.get(0), row.get(1)), rated);
        }
    }
    if !warn_c.is_empty() {
        for row in tx
            .query(
                "SELECT w.controller_id, w.seq, w.hall_id, w.at, w.service, w.window_no, w.staff
                 FROM rollup_warnings w JOIN unnest($1::text[], $2::int8[]) AS u(c, s)
                   ON w.controller_id = u.c AND w.seq = u.s",
                &[&warn_c, &warn_s],
            )
            .await?
        {
            let raised = Raised {
                hall: row.get(2),
                at: row.get(3),
                service: row.get(4),
                window: row.get(5),
                staff: row.get(6),
            };
            m.warnings.insert((row.get(0), row.get(1)), raised);
        }
    }
    Ok(m)
}

// Over 100 lines: one arm per counted event type, each a few lines, as
// `hallq::store::figures::engine_event` has them.
/// Counts one event.
fn count(f: &mut Fold, m: &mut Memory, clock: &DayClock, r: &Row) {
    let Some(day) = clock.day(r.at) else { return };
    let (c, hall, p) = (r.controller_id.as_str(), r.hall_id.as_str(), &r.payload);
    let window = int(p, "window");
    let staff = text(p, "staff");
    let ticket = |key: &str| (c.to_string(), int(p, key).unwrap_or(-1));
    match r.kind.as_str() {
        "ticket_issued" => {
            let s = Sums::one(ISSUED, 1);
            let service = p.pointer("/ticket/service").and_then(Value::as_str);
            f.spread(hall, day, (None, None, service), &s);
            f.add(hall, day, "hour", clock.hour(r.at), &s);
        }
        "ticket_called" => {
            let called = Sums::one(CALLED, 1);
            if let Some(w) = window {
                f.add(hall, day, "window", w.to_string(), &called);
            }
            if let Some(s) = staff {
                f.add(hall, day, "staff", s.to_string(), &called);
            }
            let key = ticket("ticket");
            if !m.calls.contains_key(&key) {
                let service = text(p, "service");
                m.calls.insert(key.clone(), service.map(str::to_string));
                m.calls_changed.insert(key);
                let waited = int(p, "waited_secs").unwrap_or(0);
                let mut w = Sums::default();
                w.0[WAITS] = 1;
                w.0[WAIT_SUM] = waited;
                w.0[WAIT_MAX] = waited;
                f.spread(hall, day, (window, staff, service), &w);
                f.add(hall, day, "hour", clock.hour(r.at - waited * 1000), &w);
            }
        }
        "ticket_no_show" => {
            if p.get("requeued").and_then(Value::as_bool) == Some(true) {
                return;
            }
            let key = ticket("ticket");
            let service = m.calls.remove(&key).flatten();
            m.calls_changed.insert(key);
            let s = Sums::one(NO_SHOWS, 1);
            f.spread(hall, day, (window, staff, service.as_deref()), &s);
        }
        "ticket_transferred" => {
            let s = Sums::one(TRANSFERS, 1);
            f.spread(hall, day, (window, staff, text(p, "from_service")), &s);
        }
        "ticket_finished" => {
            let key = ticket("ticket");
            m.calls.remove(&key);
            m.calls_changed.insert(key);
            let secs = int(p, "served_secs").unwrap_or(0);
            let mut s = Sums::default();
            s.0[SERVED] = 1;
            s.0[SERVICES] = 1;
            s.0[SERVICE_SUM] = secs;
            s.0[SERVICE_MAX] = secs;
            f.spread(hall, day, (window, staff, text(p, "service")), &s);
        }
        "ticket_cancelled" => {
            let key = ticket("ticket");
            m.calls.remove(&key);
            m.calls_changed.insert(key);
        }
        "staff_signed_in" | "staff_signed_out" => {
            let Some(w) = window else { return };
            let key = (c.to_string(), w);
            if let Some((who, since)) = m.sessions.remove(&key) {
                session_time(f, clock, hall, w, &who, since, r.at);
            }
            if r.kind == "staff_signed_in"
                && let Some(s) = staff
            {
                m.sessions.insert(key.clone(), (s.to_string(), r.at));
            }
            m.sessions_changed.insert(key);
        }
        "window_paused" => f.spread(hall, day, (window, staff, None), &Sums::one(PAUSES, 1)),
        "window_resumed" => {
            let secs = int(p, "paused_secs").unwrap_or(0);
            f.spread(
                hall,
                day,
                (window, staff, None),
                &Sums::one(PAUSE_SECS, secs),
            );
        }
        "rating_recorded" => {
            let Some(rating) = p.get("rating") else {
                return;
            };
            let Some(level) = text(rating, "level").and_then(level_index) else {
                return;
            };
            let new = Rated {
                hall: hall.to_string(),
                at: int(rating, "at").unwrap_or(r.at),
                level,
                service: text(rating, "service").map(str::to_string),
                window: int(rating, "window"),
                staff: text(rating, "staff").map(str::to_string),
                reasons: rating
                    .get("reasons")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect(),
            };
            let key = (c.to_string(), int(rating, "ticket").unwrap_or(-1));
            let old = m.ratings.insert(key.clone(), new.clone());
            if p.get("replaced").and_then(Value::as_bool) == Some(true)
                && let Some(old) = old
            {
                f.rated(clock, &old, -1);
            }
            // Counted on the day of the event, as the controller counts it.
            f.rated(clock, &Rated { at: r.at, ..new }, 1);
            m.ratings_changed.insert(key);
        }
        "service_over_time" => {
            let service = m.calls.get(&ticket("ticket")).cloned().flatten();
            let who = raise(f, m, r, day, window, service);
            let s = Sums::one(OVER_LIMIT, 1);
            f.spread(hall, day, (window, who.as_deref(), None), &s);
        }
        "wait_alarm" | "queue_alarm" | "pause_alarm" | "unmanned_alarm" | "device_fault" => {
            let service = text(p, "service").map(str::to_string);
            raise(f, m, r, day, window, service);
        }
        "warning_handled" => {
            let Some(seq) = int(p, "warning") else { return };
            let key = (c.to_string(), seq);
            let Some(w) = m.warnings.remove(&key) else {
                return;
            };
            m.warnings_changed.insert(key);
            if let Some(day) = clock.day(w.at) {
                let at = (w.window, w.staff.as_deref(), w.service.as_deref());
                f.spread(&w.hall, day, at, &Sums::one(WARNINGS_HANDLED, 1));
            }
        }
        _ => {}
    }
}

/// Counts a raised warning and remembers where; returns who was signed in at its
/// window.
fn raise(
    f: &mut Fold,
    m: &mut Memory,
    r: &Row,
    day: NaiveDate,
    window: Option<i64>,
    service: Option<String>,
) -> Option<String> {
    let service = service.filter(|s| !s.is_empty());
    let staff = window.and_then(|w| {
        m.sessions
            .get(&(r.controller_id.clone(), w))
            .map(|s| s.0.clone())
    });
    let at = (window, staff.as_deref(), service.as_deref());
    f.spread(&r.hall_id, day, at, &Sums::one(WARNINGS, 1));
    let key = (r.controller_id.clone(), r.seq);
    m.warnings.insert(
        key.clone(),
        Raised {
            hall: r.hall_id.clone(),
            at: r.at,
            service,
            window,
            staff: staff.clone(),
        },
    );
    m.warnings_changed.insert(key);
    staff
}

/// Adds a session's time to its window, staff member and the hall, split at the
/// starts of the service days it spans.
fn session_time(
    f: &mut Fold,
    clock: &DayClock,
    hall: &str,
    window: i64,
    staff: &str,
    since: i64,
    until: i64,
) {
    let mut from = since;
    while from < until {
        let Some(day) = clock.day(from) else { return };
        let next = day.succ_opt().map_or(until, |d| clock.day_start(d));
        let end = until.min(next.max(from + 1));
        let s = Sums::one(SIGNED_IN_SECS, (end - from) / 1000);
        f.spread(hall, day, (Some(window), Some(staff), None), &s);
        from = end;
    }
}

/// The upsert of `period_figures` rows.
fn figures_upsert() -> String {
    let cols = COLUMNS.join(", ");
    let arrays: Vec<String> = (0..COLUMNS.len())
        .map(|i| format!("${}::int8[]", i + 5))
        .collect();
    let names: Vec<String> = (0..COLUMNS.len()).map(|i| format!("c{i}")).collect();
    let sets: Vec<String> = COLUMNS
        .iter()
        .enumerate()
        .map(|(i, c)| {
            if is_max(i) {
                format!("{c} = greatest(f.{c}, excluded.{c})")
            } else {
                format!("{c} = f.{c} + excluded.{c}")
            }
        })
        .collect();
    format!(
        "INSERT INTO period_figures AS f (hall_id, day, scope, key, {cols})
         SELECT u.h, u.d::date, u.s, u.k, {uc}
         FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], {arrays})
              AS u(h, d, s, k, {names})
         ORDER BY u.h COLLATE \"C\", u.d, u.s COLLATE \"C\", u.k COLLATE \"C\"
         ON CONFLICT (hall_id, day, scope, key) DO UPDATE SET {sets}",
        uc = names
            .iter()
            .map(|n| format!("u.{n}"))
            .collect::<Vec<_>>()
            .join(", "),
        arrays = arrays.join(", "),
        names = names.join(", "),
        sets = sets.join(", "),
    )
}

async fn write_figures(tx: &Transaction<'_>, f: &Fold) -> Result<(), tokio_postgres::Error> {
    if !f.figures.is_empty() {
        let halls: Vec<&str> = f.figures.keys().map(|k| k.0.as_str()).collect();
        let days: Vec<String> = f.figures.keys().map(|k| k.1.to_string()).collect();
        let scopes: Vec<&str> = f.figures.keys().map(|k| k.2).collect();
        let keys: Vec<&str> = f.figures.keys().map(|k| k.3.as_str()).collect();
        let columns: Vec<Vec<i64>> = (0..COLUMNS.len())
            .map(|i| f.figures.values().map(|s| s.0[i]).collect())
            .collect();
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&halls, &days, &scopes, &keys];
        params.extend(columns.iter().map(|c| c as &(dyn ToSql + Sync)));
        tx.execute(&figures_upsert(), &params).await?;
    }
    let reasons: Vec<_> = f.reasons.iter().filter(|(_, n)| **n != 0).collect();
    if !reasons.is_empty() {
        let halls: Vec<&str> = reasons.iter().map(|(k, _)| k.0.as_str()).collect();
        let days: Vec<String> = reasons.iter().map(|(k, _)| k.1.to_string()).collect();
        let scopes: Vec<&str> = reasons.iter().map(|(k, _)| k.2).collect();
        let keys: Vec<&str> = reasons.iter().map(|(k, _)| k.3.as_str()).collect();
        let why: Vec<&str> = reasons.iter().map(|(k, _)| k.4.as_str()).collect();
        let n: Vec<i64> = reasons.iter().map(|(_, n)| **n).collect();
        tx.execute(
            "INSERT INTO period_reasons AS r (hall_id, day, scope, key, reason, n)
             SELECT u.h, u.d::date, u.s, u.k, u.r, u.n
             FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int8[])
                  AS u(h, d, s, k, r, n)
             ORDER BY u.h COLLATE \"C\", u.d, u.s COLLATE \"C\", u.k COLLATE \"C\", u.r COLLATE \"C\"
             ON CONFLICT (hall_id, day, scope, key, reason) DO UPDATE SET n = r.n + excluded.n",
            &[&halls, &days, &scopes, &keys, &why, &n],
        )
        .await?;
    }
    Ok(())
}

/// Writes back what changed: upserts for keys still held, deletes for the others.
async fn write_memory(tx: &Transaction<'_>, m: &Memory) -> Result<(), tokio_postgres::Error> {
    let (mut put, mut gone) = (Vec::new(), Vec::new());
    for k in &m.calls_changed {
        match m.calls.get(k) {
            Some(service) => put.push((k, service.as_deref())),
            None => gone.push(k),
        }
    }
    if !put.is_empty() {
        let c: Vec<&str> = put.iter().map(|(k, _)| k.0.as_str()).collect();
        let t: Vec<i64> = put.iter().map(|(k, _)| k.1).collect();
        let s: Vec<Option<&str>> = put.iter().map(|(_, s)| *s).collect();
        tx.execute(
            "INSERT INTO rollup_calls (controller_id, ticket, service)
             SELECT * FROM unnest($1::text[], $2::int8[], $3::text[]) ORDER BY 1, 2
             ON CONFLICT (controller_id, ticket) DO UPDATE SET service = excluded.service",
            &[&c, &t, &s],
        )
        .await?;
    }
    delete(tx, "rollup_calls", "ticket", &gone).await?;
    let (mut put, mut gone) = (Vec::new(), Vec::new());
    for k in &m.sessions_changed {
        match m.sessions.get(k) {
            Some(s) => put.push((k, s)),
            None => gone.push(k),
        }
    }
    delete(tx, "rollup_sessions", "window_no", &gone).await?;
    if !put.is_empty() {
        let c: Vec<&str> = put.iter().map(|(k, _)| k.0.as_str()).collect();
        let w: Vec<i64> = put.iter().map(|(k, _)| k.1).collect();
        let s: Vec<&str> = put.iter().map(|(_, s)| s.0.as_str()).collect();
        let since: Vec<i64> = put.iter().map(|(_, s)| s.1).collect();
        tx.execute(
            "INSERT INTO rollup_sessions (controller_id, window_no, staff, since)
             SELECT * FROM unnest($1::text[], $2::int8[], $3::text[], $4::int8[]) ORDER BY 1, 2
             ON CONFLICT (controller_id, window_no) DO UPDATE
               SET staff = excluded.staff, since = excluded.since",
            &[&c, &w, &s, &since],
        )
        .await?;
    }
    write_ratings(tx, m).await?;
    let (mut put, mut gone) = (Vec::new(), Vec::new());
    for k in &m.warnings_changed {
        match m.warnings.get(k) {
            Some(w) => put.push((k, w)),
            None => gone.push(k),
        }
    }
    delete(tx, "rollup_warnings", "seq", &gone).await?;
    if !put.is_empty() {
        let c: Vec<&str> = put.iter().map(|(k, _)| k.0.as_str()).collect();
        let seq: Vec<i64> = put.iter().map(|(k, _)| k.1).collect();
        let h: Vec<&str> = put.iter().map(|(_, w)| w.hall.as_str()).collect();
        let at: Vec<i64> = put.iter().map(|(_, w)| w.at).collect();
        let s: Vec<Option<&str>> = put.iter().map(|(_, w)| w.service.as_deref()).collect();
        let win: Vec<Option<i64>> = put.iter().map(|(_, w)| w.window).collect();
        let st: Vec<Option<&str>> = put.iter().map(|(_, w)| w.staff.as_deref()).collect();
        tx.execute(
            "INSERT INTO rollup_warnings (controller_id, seq, hall_id, at, service, window_no, staff)
             SELECT * FROM unnest($1::text[], $2::int8[], $3::text[], $4::int8[], $5::text[],
                                  $6::int8[], $7::text[]) ORDER BY 1, 2
             ON CONFLICT (controller_id, seq) DO NOTHING",
            &[&c, &seq, &h, &at, &s, &win, &st],
        )
        .await?;
    }
    Ok(())
}

async fn write_ratings(tx: &Transaction<'_>, m: &Memory) -> Result<(), tokio_postgres::Error> {
    let put: Vec<(&(String, i64), &Rated)> = m
        .ratings_changed
        .iter()
        .filter_map(|k| m.ratings.get(k).map(|r| (k, r)))
        .collect();
    if put.is_empty() {
        return Ok(());
    }
    let c: Vec<&str> = put.iter().map(|(k, _)| k.0.as_str()).collect();
    let t: Vec<i64> = put.iter().map(|(k, _)| k.1).collect();
    let h: Vec<&str> = put.iter().map(|(_, r)| r.hall.as_str()).collect();
    let at: Vec<i64> = put.iter().map(|(_, r)| r.at).collect();
    let level: Vec<i32> = put.iter().map(|(_, r)| r.level as i32).collect();
    let s: Vec<Option<&str>> = put.iter().map(|(_, r)| r.service.as_deref()).collect();
    let w: Vec<Option<i64>> = put.iter().map(|(_, r)| r.window).collect();
    let st: Vec<Option<&str>> = put.iter().map(|(_, r)| r.staff.as_deref()).collect();
    // One text per rating (arrays of arrays must be rectangular in PostgreSQL).
    let reasons: Vec<String> = put
        .iter()
        .map(|(_, r)| serde_json::to_string(&r.reasons).unwrap_or_else(|_| "[]".into()))
        .collect();
    tx.execute(
        "INSERT INTO rollup_ratings (controller_id, ticket, hall_id, at, level, service,
                                     window_no, staff, reasons)
         SELECT u.c, u.t, u.h, u.a, u.l, u.s, u.w, u.st,
                ARRAY(SELECT jsonb_array_elements_text(u.r::jsonb))
         FROM unnest($1::text[], $2::int8[], $3::text[], $4::int8[], $5::int4[], $6::text[],
                     $7::int8[], $8::text[], $9::text[]) AS u(c, t, h, a, l, s, w, st, r)
         ORDER BY 1, 2
         ON CONFLICT (controller_id, ticket) DO UPDATE SET
           hall_id = excluded.hall_id, at = excluded.at, level = excluded.level,
           service = excluded.service, window_no = excluded.window_no,
           staff = excluded.staff, reasons = excluded.reasons",
        &[&c, &t, &h, &at, &level, &s, &w, &st, &reasons],
    )
    .await?;
    Ok(())
}

/// Deletes `(controller_id, <second>)` keys from a state table.
async fn delete(
    tx: &Transaction<'_>,
    table: &str,
    second: &str,
    keys: &[&(String, i64)],
) -> Result<(), tokio_postgres::Error> {
    if keys.is_empty() {
        return Ok(());
    }
    let c: Vec<&str> = keys.iter().map(|k| k.0.as_str()).collect();
    let n: Vec<i64> = keys.iter().map(|k| k.1).collect();
    tx.execute(
        &format!(
            "DELETE FROM {table} t USING unnest($1::text[], $2::int8[]) AS u(c, n)
             WHERE t.controller_id = u.c AND t.{second} = u.n"
        ),
        &[&c, &n],
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_start_at_three_in_china() {
        let clock = DayClock::default();
        // 2026-12-07 02:59:59 +08:00 is still the 6th; 03:00 is the 7th.
        let at = chrono::NaiveDate::from_ymd_opt(2026, 12, 6)
            .and_then(|d| d.and_hms_opt(18, 59, 59))
            .map(|t| t.and_utc().timestamp_millis())
            .expect("time");
        assert_eq!(
            clock.day(at).map(|d| d.to_string()).as_deref(),
            Some("2026-12-06")
        );
        assert_eq!(
            clock.day(at + 1000).map(|d| d.to_string()).as_deref(),
            Some("2026-12-07")
        );
        assert_eq!(clock.hour(at), "02");
        let seventh = NaiveDate::from_ymd_opt(2026, 12, 7).expect("date");
        assert_eq!(clock.day_start(seventh), at + 1000);
        assert_eq!(clock.day(i64::MAX), None);
    }

    #[test]
    fn sums_add_and_keep_the_longest() {
        let mut a = Sums::default();
        a.0[WAIT_MAX] = 30;
        a.0[ISSUED] = 2;
        let mut b = Sums::default();
        b.0[WAIT_MAX] = 20;
        b.0[ISSUED] = 3;
        a.add(&b);
        assert_eq!((a.0[ISSUED], a.0[WAIT_MAX]), (5, 30));
        assert_eq!(level_index("不满意"), Some(3));
        assert_eq!(level_index("very_satisfied"), Some(0));
        assert_eq!(level_index("好"), None);
    }

    #[test]
    fn a_session_over_a_day_start_is_split() {
        let clock = DayClock::default();
        let seventh = NaiveDate::from_ymd_opt(2026, 12, 7).expect("date");
        let start = clock.day_start(seventh);
        let mut f = Fold::default();
        session_time(
            &mut f,
            &clock,
            "h",
            1,
            "S1",
            start - 600_000,
            start + 1_200_000,
        );
        let hall = |d: NaiveDate| {
            f.figures
                .get(&("h".to_string(), d, "hall", String::new()))
                .map(|s| s.0[SIGNED_IN_SECS])
        };
        assert_eq!(hall(seventh), Some(1200));
        assert_eq!(hall(seventh.pred_opt().expect("date")), Some(600));
    }
}
