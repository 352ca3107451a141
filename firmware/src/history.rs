//! Generated history (`hallq gen-history`): days of a hall's traffic written through the
//! real engine and store into a new, empty database, for measuring start-up and the
//! period views on a month of a large hall. The traffic is invented but shaped like a
//! hall's: a morning peak and a lunch dip, queues that build and drain, several
//! windows each with its own staff member (`H<window>`), no-shows, transfers, a pause
//! per window and day, and ratings of every level (bad ones with a reason).

use std::path::Path;

use chrono::{Datelike, NaiveDate, NaiveTime, Weekday};
use hallq_engine::{
    Class, Command, Engine, Event, Level, LocalClock, Role, Setup, TicketId, Timestamp,
    TransferTarget,
};
use rusqlite::Connection;

use crate::config::Config;
use crate::store::{NewEvent, Store, StoreError};

/// The example hall with limits lifted, so that benchmarks measure speed, not policy.
pub fn unlimited_setup() -> Setup {
    let mut setup = Config::example().queue;
    setup.calendar.always_open = true;
    setup.per_citizen_daily_limit = None;
    setup.unmanned_alarm_minutes = None;
    for s in &mut setup.services {
        s.daily_cap = None;
        s.quota = None;
        s.wait_alarm_minutes = None;
        s.queue_alarm = None;
    }
    setup.number_width = 6;
    setup
}

/// The benchmark's hall ([`unlimited_setup`]), or one of `windows` windows each serving
/// every service (`hallq gen-history --windows`).
pub fn hall_of(windows: Option<u32>) -> Result<Setup, StoreError> {
    let mut setup = unlimited_setup();
    let Some(n) = windows else {
        return Ok(setup);
    };
    let Some(model) = setup.windows.first().cloned() else {
        return Err(StoreError::Damaged("the example hall has no window".into()));
    };
    let services: Vec<_> = setup
        .windows
        .iter()
        .flat_map(|w| w.services.iter().cloned())
        .fold(
            Vec::new(),
            |mut all: Vec<hallq_engine::setup::WindowService>, s| {
                if !all.iter().any(|x| x.code == s.code) {
                    all.push(s);
                }
                all
            },
        );
    setup.windows = (1..=n.max(1))
        .map(|number| hallq_engine::setup::WindowDef {
            number,
            name: format!("{number}号窗口"),
            services: services.clone(),
            ..model.clone()
        })
        .collect();
    Ok(setup)
}

/// Why `hallq gen-history` wrote nothing, or stopped.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// The database already holds tickets or events: a real hall's, or an earlier run's.
    #[error(
        "{path} already holds {tickets} tickets and {events} events; gen-history writes \
         only into a new, empty database (nothing was written)"
    )]
    NotEmpty {
        /// The database.
        path: String,
        /// Tickets found.
        tickets: i64,
        /// Events found.
        events: i64,
    },
    /// The file exists but is not a hallq database.
    #[error("{path} is not a hallq database ({reason}); nothing was written")]
    NotHallq {
        /// The file.
        path: String,
        /// What SQLite said.
        reason: String,
    },
    /// The store failed while writing.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Counts tickets and events in an existing file without changing it (not even a
/// schema migration): `None` for a file that holds no tables at all.
fn existing_counts(db: &Path) -> Result<Option<(i64, i64)>, HistoryError> {
    let not_hallq = |e: rusqlite::Error| HistoryError::NotHallq {
        path: db.display().to_string(),
        reason: e.to_string(),
    };
    let conn = Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(not_hallq)?;
    let tables: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table'",
            [],
            |r| r.get(0),
        )
        .map_err(not_hallq)?;
    if tables == 0 {
        return Ok(None);
    }
    let count = |table: &str| -> Result<i64, HistoryError> {
        conn.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))
            .map_err(not_hallq)
    };
    Ok(Some((count("tickets")?, count("events")?)))
}

/// [`generate_history_for`] under the benchmark's hall (the example's services and
/// windows, without caps, quotas or alarms).
pub fn generate_history(db: &Path, days: u32, per_day: u32) -> Result<u64, HistoryError> {
    generate_history_for(db, &unlimited_setup(), days, per_day)
}

/// A small deterministic random source (xorshift), so a run can be repeated.
struct Dice(u64);

impl Dice {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// A number in `0..n`.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// True with probability `percent`/100.
    fn percent(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// Citizens arriving per hour from 09:00, relative: a morning peak, a lunch dip.
const ARRIVALS: [u64; 8] = [6, 10, 9, 5, 3, 7, 9, 6];

/// The `days` most recent working days (Monday to Friday) before `today`, oldest first.
fn working_days(today: NaiveDate, days: u32) -> Vec<NaiveDate> {
    let mut out = Vec::new();
    let mut d = today;
    while out.len() < days as usize {
        match d.pred_opt() {
            Some(p) => d = p,
            None => break,
        }
        if !matches!(d.weekday(), Weekday::Sat | Weekday::Sun) {
            out.push(d);
        }
    }
    out.reverse();
    out
}

/// One window of the generated hall.
struct Desk {
    number: u32,
    staff: String,
    /// The ticket at the window, when it will be done (ms), and whether its citizen
    /// never comes (a no-show).
    busy: Option<(TicketId, i64, bool)>,
    /// When today's pause starts and how long it lasts (ms).
    pause: (i64, i64),
    paused: bool,
}

/// Writes `days` working days of traffic ending yesterday under `setup` (its services
/// and windows; caps, quotas and the per-citizen limit are lifted, and the hall counts
/// as open all day). Returns the number of tickets written.
///
/// Only into a database that holds no ticket and no event (a new file, say): anything
/// else is refused before a byte is written, because generated tickets would replace
/// real ones. The database is marked as generated history in the same transaction
/// that checks it is empty, and the uplink refuses to publish from a marked database.
pub fn generate_history_for(
    db: &Path,
    setup: &Setup,
    days: u32,
    per_day: u32,
) -> Result<u64, HistoryError> {
    let not_empty = |(tickets, events): (i64, i64)| HistoryError::NotEmpty {
        path: db.display().to_string(),
        tickets,
        events,
    };
    if db.exists()
        && let Some(counts) = existing_counts(db)?
        && counts != (0, 0)
    {
        return Err(not_empty(counts));
    }
    let setup = open_all_day(setup);
    let mut store = Store::open(db)?;
    store.set_figure_rules(crate::store::figures::Rules::of(&setup))?;
    let note = format!(
        "hallq gen-history {}: {days} days of {per_day} tickets, written {}",
        env!("CARGO_PKG_VERSION"),
        chrono::DateTime::from_timestamp_millis(crate::core::wall_now().0)
            .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
            .unwrap_or_default()
    );
    store.mark_generated(&note)?.map_err(not_empty)?;
    let clock = LocalClock::new(setup.utc_offset_minutes);
    let today = clock.service_day(crate::core::wall_now(), setup.day_starts_at);
    let at = |d: NaiveDate, h: u32, m: u32| {
        clock
            .instant(d.and_time(NaiveTime::from_hms_opt(h, m, 0).unwrap_or(NaiveTime::MIN)))
            .0
    };
    let dates = working_days(today, days);
    let Some(first) = dates.first() else {
        return Ok(0);
    };
    let mut engine = Engine::new(setup.clone(), Timestamp(at(*first, 8, 0)))
        .map_err(|e| StoreError::Damaged(e.to_string()))?;
    let mut dice = Dice(0x9E37_79B9_7F4A_7C15);
    let mut total = 0u64;
    for day in dates {
        let mut g = DayGen {
            engine: &mut engine,
            setup: &setup,
            dice: &mut dice,
            pending: Vec::new(),
        };
        total += g.day(day, per_day, &at);
        let pending = std::mem::take(&mut g.pending);
        store.commit(&pending, &engine.take_changes())?;
    }
    Ok(total)
}

/// `setup` with nothing that would refuse a generated ticket.
fn open_all_day(setup: &Setup) -> Setup {
    let mut setup = setup.clone();
    setup.calendar.always_open = true;
    setup.per_citizen_daily_limit = None;
    for s in &mut setup.services {
        s.daily_cap = None;
        s.quota = None;
    }
    setup.number_width = setup.number_width.max(4);
    setup
}

/// One day's generation.
struct DayGen<'a> {
    engine: &'a mut Engine,
    setup: &'a Setup,
    dice: &'a mut Dice,
    pending: Vec<NewEvent>,
}

impl DayGen<'_> {
    /// Runs `cmd` at `now` and keeps its events (a refusal's too); the events, or
    /// none when it was refused.
    fn run(&mut self, cmd: Command, now: i64) -> Vec<Event> {
        let (events, ok) = match self.engine.handle(cmd, Timestamp(now)) {
            Ok(ev) => (ev, true),
            Err(refused) => (refused.events, false),
        };
        let at = self.engine.now();
        for e in &events {
            if let Ok(n) = NewEvent::encode(at, e.kind(), e) {
                self.pending.push(n);
            }
        }
        if ok { events } else { Vec::new() }
    }

    // Over 100 lines: one simulated day, step by step, each window's turn a few lines.
    fn day(
        &mut self,
        day: NaiveDate,
        per_day: u32,
        at: &dyn Fn(NaiveDate, u32, u32) -> i64,
    ) -> u64 {
        let open = at(day, 9, 0);
        let close = at(day, 17, 0);
        let codes: Vec<String> = self.setup.services.iter().map(|s| s.code.clone()).collect();
        let reasons = self.setup.rating.reasons.clone();
        let windows = self.setup.windows.len().max(1) as i64;
        // Service time that keeps the windows about 70% busy over the day.
        let mean_ms = ((close - open) * windows * 70 / 100 / i64::from(per_day.max(1)))
            .clamp(30_000, 12 * 60_000);
        let mut desks: Vec<Desk> = self
            .setup
            .windows
            .iter()
            .map(|w| Desk {
                number: w.number,
                staff: format!("H{}", w.number),
                busy: None,
                pause: (0, 0),
                paused: false,
            })
            .collect();
        let mut signed = 0i64;
        for d in &mut desks {
            let start = open + 3_600_000 + self.dice.below(5 * 3_600_000) as i64;
            d.pause = (start, 5 * 60_000 + self.dice.below(15 * 60_000) as i64);
            let cmd = Command::SignIn {
                window: d.number,
                staff: d.staff.clone(),
                role: Role::A,
            };
            signed += 1;
            self.run(cmd, (open - 15 * 60_000 + signed * 1000).min(open));
        }
        // Arrival times: per hour by ARRIVALS, exactly `per_day` in all.
        let weight: u64 = ARRIVALS.iter().sum();
        let mut arrivals: Vec<i64> = Vec::with_capacity(per_day as usize);
        for (h, w) in ARRIVALS.iter().enumerate() {
            let n = if h + 1 == ARRIVALS.len() {
                u64::from(per_day) - arrivals.len() as u64
            } else {
                u64::from(per_day) * w / weight
            };
            for _ in 0..n {
                arrivals.push(open + h as i64 * 3_600_000 + self.dice.below(3_600_000) as i64);
            }
        }
        arrivals.sort_unstable();
        let mut next = arrivals.into_iter().peekable();
        let step = 20_000i64;
        let mut now = open;
        let mut issued = 0u64;
        while now < close + 3 * 3_600_000 {
            while let Some(t) = next.next_if(|t| *t <= now) {
                let code = codes[self.dice.below(codes.len() as u64) as usize].clone();
                let cmd = Command::Issue {
                    token_hash: None,
                    service: code,
                    class: if self.dice.percent(5) {
                        Class::Green
                    } else {
                        Class::Normal
                    },
                    idempotency_key: None,
                    citizen: None,
                    channel: "history".into(),
                    green_reason: None,
                    proxy: false,
                    issued_by: None,
                };
                if !self.run(cmd, t).is_empty() {
                    issued += 1;
                }
            }
            for d in &mut desks {
                self.turn(d, now, mean_ms, &codes, &reasons);
            }
            let idle = desks.iter().all(|d| d.busy.is_none());
            if now >= close && idle && next.peek().is_none() {
                break;
            }
            now += step;
        }
        for d in &desks {
            let cmd = Command::SignOut {
                window: d.number,
                staff: d.staff.clone(),
            };
            self.run(cmd, now + 5 * 60_000);
        }
        issued
    }

    /// One window at `now`: end the ticket at the window when its time is up (served and
    /// perhaps rated, a no-show, or a transfer), pause or resume, call the next.
    fn turn(&mut self, d: &mut Desk, now: i64, mean_ms: i64, codes: &[String], reasons: &[String]) {
        let (window, staff) = (d.number, d.staff.clone());
        let finish = Command::Finish {
            window,
            staff: staff.clone(),
            case_no: None,
        };
        if let Some((ticket, done_at, absent)) = d.busy {
            if done_at > now {
                return;
            }
            d.busy = None;
            if absent {
                let cmd = Command::NoShow {
                    window,
                    staff: staff.clone(),
                };
                self.run(cmd, now);
            } else if self.dice.percent(2) && codes.len() > 1 {
                let to = codes[self.dice.below(codes.len() as u64) as usize].clone();
                let cmd = Command::Transfer {
                    window,
                    staff: staff.clone(),
                    to: TransferTarget::Service(to),
                };
                if self.run(cmd, now).is_empty() {
                    self.run(finish, now);
                }
            } else {
                self.run(finish, now);
                if self.dice.percent(40) {
                    self.rate(ticket, now, reasons);
                }
            }
        }
        let (pause_at, pause_for) = d.pause;
        if !d.paused && now >= pause_at && now < pause_at + pause_for {
            let cmd = Command::Pause {
                window,
                staff: staff.clone(),
                reason: "break".into(),
            };
            d.paused = !self.run(cmd, now).is_empty();
        }
        if d.paused {
            if now < pause_at + pause_for {
                return;
            }
            let cmd = Command::Resume {
                window,
                staff: staff.clone(),
            };
            self.run(cmd, now);
            d.paused = false;
            d.pause = (i64::MAX / 2, 0);
        }
        let call = Command::CallNext {
            window,
            staff: staff.clone(),
        };
        for e in self.run(call, now) {
            let Event::TicketCalled { ticket, .. } = e else {
                continue;
            };
            // 3 in 100 never come: the window waits two minutes, then marks a no-show.
            if self.dice.percent(3) {
                d.busy = Some((ticket, now + 120_000, true));
                continue;
            }
            let took = mean_ms / 2 + self.dice.below(mean_ms as u64) as i64;
            d.busy = Some((ticket, now + took, false));
            let cmd = Command::StartServing {
                window,
                staff: staff.clone(),
            };
            self.run(cmd, now);
        }
    }

    /// A rating of every level, by a hall's usual shares; bad ones give a reason.
    fn rate(&mut self, ticket: TicketId, now: i64, reasons: &[String]) {
        let roll = self.dice.below(100);
        let level = match roll {
            0..50 => Level::VerySatisfied,
            50..80 => Level::Satisfied,
            80..92 => Level::BasicallySatisfied,
            92..97 => Level::Dissatisfied,
            _ => Level::VeryDissatisfied,
        };
        let reasons = match (level.is_bad(), reasons.is_empty()) {
            (true, false) => vec![reasons[self.dice.below(reasons.len() as u64) as usize].clone()],
            _ => Vec::new(),
        };
        let cmd = Command::Rate {
            ticket,
            level,
            reasons,
            comment: None,
            channel: "history".into(),
            window: None,
        };
        self.run(cmd, now);
    }
}

#[cfg(test)]
mod history_tests {
    use super::*;

    fn counts(db: &Path) -> (i64, i64) {
        let c = Connection::open(db).unwrap();
        let n = |t: &str| -> i64 {
            c.query_row(&format!("SELECT COUNT(*) FROM {t}"), [], |r| r.get(0))
                .unwrap()
        };
        (n("tickets"), n("events"))
    }

    #[test]
    fn gen_history_refuses_a_database_that_holds_a_ticket_or_an_event() {
        let dir = tempfile::tempdir().unwrap();
        // A live hall's database: one audit event, no ticket yet.
        let live = dir.path().join("live.db");
        Store::open(&live)
            .unwrap()
            .append(&[NewEvent {
                at: Timestamp(1_000),
                kind: "staff_added".into(),
                payload: r#"{"type":"staff_added","staff":"S1"}"#.into(),
            }])
            .unwrap();
        let e = generate_history(&live, 1, 10).unwrap_err();
        assert!(
            matches!(
                e,
                HistoryError::NotEmpty {
                    tickets: 0,
                    events: 1,
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains("nothing was written"), "{e}");
        assert_eq!(counts(&live), (0, 1));
        assert_eq!(
            crate::store::generated_history(Store::open(&live).unwrap().conn()).unwrap(),
            None
        );

        // A database with tickets (an earlier run's): a second run changes nothing.
        let db = dir.path().join("history.db");
        assert_eq!(generate_history(&db, 1, 12).unwrap(), 12);
        let before = counts(&db);
        assert_eq!(before.0, 12);
        let e = generate_history(&db, 2, 30).unwrap_err();
        assert!(
            matches!(e, HistoryError::NotEmpty { tickets: 12, .. }),
            "{e}"
        );
        assert_eq!(counts(&db), before);

        // Something else entirely is not taken for an empty hall.
        let other = dir.path().join("other.db");
        Connection::open(&other)
            .unwrap()
            .execute_batch("CREATE TABLE notes (t TEXT); INSERT INTO notes VALUES ('x');")
            .unwrap();
        assert!(matches!(
            generate_history(&other, 1, 10),
            Err(HistoryError::NotHallq { .. })
        ));
        let text = dir.path().join("hallq.toml");
        std::fs::write(&text, "[hall]\nname = \"x\"\n").unwrap();
        assert!(matches!(
            generate_history(&text, 1, 10),
            Err(HistoryError::NotHallq { .. })
        ));
        assert_eq!(std::fs::read(&text).unwrap(), b"[hall]\nname = \"x\"\n");
    }

    #[tokio::test]
    async fn the_outbox_never_publishes_generated_history() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("history.db");
        generate_history(&db, 1, 10).unwrap();
        let marked = crate::store::generated_history(Store::open(&db).unwrap().conn()).unwrap();
        assert!(marked.is_some_and(|n| n.contains("gen-history")));
        match crate::uplink::outbox::Outbox::open(&db) {
            Err(StoreError::Generated(_)) => {}
            Err(e) => panic!("refused for the wrong reason: {e}"),
            Ok(_) => panic!("the outbox opened a database of generated history"),
        }

        // An outbox opened on an empty database before history was generated into it
        // publishes nothing of it either.
        let db = dir.path().join("late.db");
        drop(Store::open(&db).unwrap());
        let outbox = crate::uplink::outbox::Outbox::open(&db).unwrap();
        assert!(outbox.page(0, |r| r.seq).await.unwrap().is_empty());
        generate_history(&db, 1, 10).unwrap();
        assert!(matches!(
            outbox.page(0, |r| r.seq).await,
            Err(StoreError::Generated(_))
        ));
    }

    fn dump(c: &Connection, table: &str) -> Vec<String> {
        let mut stmt = c
            .prepare(&format!("SELECT * FROM {table} ORDER BY 1, 2, 3, 4"))
            .unwrap();
        let n = stmt.column_count();
        stmt.query_map([], |r| {
            (0..n)
                .map(|i| {
                    r.get::<_, rusqlite::types::Value>(i)
                        .map(|v| format!("{v:?}"))
                })
                .collect::<rusqlite::Result<Vec<_>>>()
                .map(|v| v.join("|"))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect()
    }

    #[test]
    fn figures_kept_by_the_commits_match_the_tickets_and_a_rebuild_from_the_events() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("history.db");
        let setup = unlimited_setup();
        assert_eq!(generate_history_for(&db, &setup, 3, 400).unwrap(), 1200);
        let c = Connection::open(&db).unwrap();
        let pairs = |sql: &str| -> Vec<(String, i64)> {
            let mut stmt = c.prepare(sql).unwrap();
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .unwrap()
                .map(Result::unwrap)
                .collect()
        };
        // What the tickets table says, day by day.
        assert_eq!(
            pairs("SELECT day, served FROM figures WHERE scope = 'hall' ORDER BY day"),
            pairs("SELECT day, SUM(state = 'finished') FROM tickets GROUP BY day ORDER BY day")
        );
        assert_eq!(
            pairs("SELECT day, issued FROM figures WHERE scope = 'hall' ORDER BY day"),
            pairs("SELECT day, COUNT(*) FROM tickets GROUP BY day ORDER BY day")
        );
        assert_eq!(
            pairs(
                "SELECT day, very_satisfied + satisfied + basically_satisfied + dissatisfied \
                 + very_dissatisfied FROM figures WHERE scope = 'hall' ORDER BY day"
            ),
            pairs("SELECT day, COUNT(*) FROM ratings GROUP BY day ORDER BY day")
        );
        // Every staff member's calls add up to the windows'.
        assert_eq!(
            pairs("SELECT 'calls', SUM(called) FROM figures WHERE scope = 'staff'"),
            pairs("SELECT 'calls', SUM(called) FROM figures WHERE scope = 'window'")
        );
        let bad: i64 = c
            .query_row(
                "SELECT SUM(dissatisfied + very_dissatisfied) FROM figures WHERE scope = 'hall'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert!(bad > 0, "the generated days have bad ratings");
        let before = (dump(&c, "figures"), dump(&c, "figure_reasons"));
        assert!(!before.1.is_empty(), "bad ratings carry reasons");
        c.execute_batch(
            "DELETE FROM figures; DELETE FROM figure_reasons; DELETE FROM figure_open; \
             DELETE FROM meta WHERE key = 'figures_built';",
        )
        .unwrap();
        drop(c);
        let mut store = Store::open(&db).unwrap();
        store
            .set_figure_rules(crate::store::figures::Rules::of(&setup))
            .unwrap();
        let after = (
            dump(store.conn(), "figures"),
            dump(store.conn(), "figure_reasons"),
        );
        assert_eq!(before, after);
    }
}
