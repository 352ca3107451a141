//! The durable store: SQLite in WAL mode with `synchronous=FULL`. A batch of commands
//! commits its events and the rows they changed in one transaction, so after a power
//! cut the database holds either all of a command or none of it. The events table is
//! the audit log and the outbox at once: append-only, ordered by `seq`.

pub mod archive;
pub mod checkpoint;
pub mod figures;
pub mod follow_ups;
pub mod help;
pub mod notices;
mod schema;
pub mod staff;
pub mod uplink;
pub mod warnings;

use std::path::Path;

use chrono::NaiveDate;
use hallq_engine::{
    Appointment, Changes, Class, Rating, Snapshot, Ticket, TicketId, TicketState, Timestamp,
    WindowState,
};
use rusqlite::{Connection, OptionalExtension, Row, params};
use serde::Serialize;

/// Version of the event JSON layout, carried by every event row.
pub const EVENT_SCHEMA: i64 = 1;

/// What can go wrong with the database.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite said no (disk full, corrupt file, locked, …).
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A stored row could not be read back.
    #[error("stored row is damaged: {0}")]
    Damaged(String),
    /// The database is newer than this program.
    #[error("database version {found} is newer than this hallq ({supported}); upgrade hallq")]
    TooNew {
        /// The database's version.
        found: i64,
        /// The newest this build knows.
        supported: i64,
    },
    /// JSON encoding failed.
    #[error("encoding error: {0}")]
    Json(#[from] serde_json::Error),
    /// The database holds history written by `hallq gen-history`: invented tickets and
    /// events that must never reach the hall server.
    #[error(
        "this database holds generated history (written by `hallq gen-history` {0}); \
         the uplink never publishes from it: use a real hall's database or remove [uplink]"
    )]
    Generated(String),
    /// [`Store::write`] without [`Store::begin`] first.
    #[error("a write outside a transaction (begin first)")]
    NotBegun,
}

impl StoreError {
    /// The disk (or the database's size limit) is full: a condition staff can fix by
    /// freeing space, unlike a damaged file.
    pub fn is_disk_full(&self) -> bool {
        matches!(self, StoreError::Sqlite(e) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull))
    }
}

/// The `meta` key that marks a database written by `hallq gen-history`.
pub const GENERATED_HISTORY: &str = "generated_history";

/// What `hallq gen-history` recorded when it wrote into this database (`None` for a
/// real hall's database, and for one too old to have the `meta` table).
pub fn generated_history(conn: &Connection) -> Result<Option<String>, StoreError> {
    let has_meta: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta')",
        [],
        |r| r.get(0),
    )?;
    if !has_meta {
        return Ok(None);
    }
    Ok(conn
        .query_row(
            "SELECT value FROM meta WHERE key = ?1",
            [GENERATED_HISTORY],
            |r| r.get(0),
        )
        .optional()?)
}

/// An event ready to be appended.
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// When it happened.
    pub at: Timestamp,
    /// Its type name.
    pub kind: String,
    /// Its JSON body (including `type`).
    pub payload: String,
}

impl NewEvent {
    /// Encodes any serialisable event that carries a `type` tag.
    pub fn encode<E: Serialize>(
        at: Timestamp,
        kind: &str,
        event: &E,
    ) -> Result<NewEvent, StoreError> {
        Ok(NewEvent {
            at,
            kind: kind.to_string(),
            payload: serde_json::to_string(event)?,
        })
    }
}

/// An event as stored: the envelope the outbox and the live stream send.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredEvent {
    /// Monotonic sequence per controller.
    pub seq: i64,
    /// Stable id, the same on every resend.
    pub id: String,
    /// When it happened (ms since the epoch).
    pub at: i64,
    /// Type name.
    #[serde(rename = "type")]
    pub kind: String,
    /// Layout version.
    pub schema: i64,
    /// The event body.
    pub payload: serde_json::Value,
}

impl StoredEvent {
    /// The event as a type ([`crate::events::Committed`]).
    pub fn typed(&self) -> crate::events::Committed {
        crate::events::Committed::of(&self.kind, &self.payload)
    }
}

/// An open database.
pub struct Store {
    conn: Connection,
    path: Option<std::path::PathBuf>,
    /// How the period figures place events (the setup in force's clock, day start and
    /// departments).
    figure_rules: figures::Rules,
    /// The figures the open transaction's events add, written just before it commits.
    figures_pending: figures::Pending,
    /// Set by the checkpoint thread when the log has grown long: the writer then lets
    /// it start over (see [`checkpoint`]).
    log_restart: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

/// The durability settings every connection that writes hall data runs with (and the
/// benchmark's bare baseline with it, so that the two compare like with like): WAL,
/// and `synchronous=FULL` so that a commit is on disk before it is acknowledged.
///
/// `HALLQ_TEST_DURABILITY=off` in the environment turns this down to
/// `synchronous=OFF` (no fsync at all). It exists for one test only: the power-cut suite
/// runs a few cycles with it on a filesystem that forgets unsynced writes and asserts that
/// it *detects* the loss, proving the suite can fail. It is never set by the package or
/// the service unit, and any other value, or none, keeps `FULL`.
pub fn durable(conn: &Connection) -> Result<(), StoreError> {
    conn.pragma_update(None, "journal_mode", "WAL")?;
    if std::env::var("HALLQ_TEST_DURABILITY").is_ok_and(|v| v == "off") {
        tracing::warn!(
            "HALLQ_TEST_DURABILITY=off: synchronous=OFF, commits are NOT durable (test only)"
        );
        conn.pragma_update(None, "synchronous", "OFF")?;
    } else {
        conn.pragma_update(None, "synchronous", "FULL")?;
    }
    Ok(())
}

/// Makes the names in `dir` durable (fsync of the directory): after creating or renaming
/// a file in it, without this a power cut may lose the file's name with its data.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

impl Store {
    /// Opens (creating if needed) the database and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let conn = Connection::open(path)?;
        let mut store = Store::prepare(conn)?;
        // SQLite makes the WAL's name durable itself, never the database file's: a
        // database created just now (or its first schema) could vanish with a power cut.
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            sync_dir(dir)
                .map_err(|e| StoreError::Damaged(format!("fsync of {}: {e}", dir.display())))?;
        }
        store.path = Some(path.to_path_buf());
        Ok(store)
    }

    /// The database file (none for an in-memory store).
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// When the checkpoint thread has asked for it, copies the few pages committed since
    /// its last pass, so that the next commit starts the log over (see [`checkpoint`]).
    /// The core calls it between batches, after the answers are out. True when it ran.
    pub fn restart_log_if_due(&mut self) -> bool {
        if !self
            .log_restart
            .swap(false, std::sync::atomic::Ordering::Relaxed)
        {
            return false;
        }
        if let Err(e) = checkpoint::checkpoint(&self.conn) {
            tracing::debug!(error = %e, "the writer's catch-up checkpoint did not run");
        }
        true
    }

    /// An in-memory database, for tests.
    pub fn in_memory() -> Result<Store, StoreError> {
        Store::prepare(Connection::open_in_memory()?)
    }

    fn prepare(mut conn: Connection) -> Result<Store, StoreError> {
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        durable(&conn)?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.set_prepared_statement_cache_capacity(64);
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        let supported = schema::MIGRATIONS.len() as i64;
        if version > supported {
            return Err(StoreError::TooNew {
                found: version,
                supported,
            });
        }
        for (i, sql) in schema::MIGRATIONS.iter().enumerate().skip(version as usize) {
            let tx = conn.transaction()?;
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)?;
            tx.commit()?;
            tracing::info!(version = i + 1, "database migrated");
        }
        figures::mark_built(&conn)?;
        Ok(Store {
            conn,
            path: None,
            figure_rules: figures::Rules::default(),
            figures_pending: Default::default(),
            log_restart: Default::default(),
        })
    }

    /// Places the period figures by `rules` from now on, and builds the figures of
    /// events stored before the figures existed (once). The core calls it with each
    /// setup it puts in force.
    pub fn set_figure_rules(&mut self, rules: figures::Rules) -> Result<(), StoreError> {
        if let Some(n) = figures::build_once(&mut self.conn, &rules)? {
            tracing::info!(events = n, "period figures built from the stored events");
        }
        self.figure_rules = rules;
        Ok(())
    }

    /// The raw connection, for reports and the staff registry.
    pub fn conn(&self) -> &Connection {
        &self.conn
    }

    /// Reads what the engine needs to resume: the current day's tickets, open tickets
    /// from any day, windows, live appointments and today's ratings. Work done at start
    /// depends on one day's traffic, never on the length of the history.
    pub fn load(
        &self,
        clock: hallq_engine::LocalClock,
        day_start: chrono::NaiveTime,
        fallback_now: Timestamp,
    ) -> Result<Snapshot, StoreError> {
        let last: Option<i64> = self
            .conn
            .query_row("SELECT at FROM events ORDER BY seq DESC LIMIT 1", [], |r| {
                r.get(0)
            })
            .optional()?;
        let now = Timestamp(last.unwrap_or(fallback_now.0));
        let day = clock.service_day(now, day_start).to_string();
        let next_id: i64 =
            self.conn
                .query_row("SELECT COALESCE(MAX(id), 0) + 1 FROM tickets", [], |r| {
                    r.get(0)
                })?;
        let mut stmt = self.conn.prepare(
            // Today's tickets, and the open ones: those exist only on the newest day
            // with tickets (the engine cancels every open ticket when the day turns),
            // which the (day, …) index finds without reading older days.
            "SELECT * FROM tickets WHERE day = ?1 UNION SELECT * FROM tickets \
             WHERE day = (SELECT MAX(day) FROM tickets) \
             AND state IN ('waiting', 'called', 'serving', 'transferred') ORDER BY id",
        )?;
        let tickets = stmt
            .query_map([&day], ticket_from_row)?
            .collect::<Result<Result<Vec<_>, _>, _>>()??;
        let mut stmt = self
            .conn
            .prepare("SELECT state FROM windows ORDER BY number")?;
        let windows = stmt
            .query_map([], |r| r.get::<_, String>(0))?
            .map(|s| Ok(serde_json::from_str::<WindowState>(&s?)?))
            .collect::<Result<Vec<_>, StoreError>>()?;
        let mut stmt = self.conn.prepare(
            "SELECT code, service, slot_at, citizen, ticket, missed, mobile, mobile_masked FROM appointments WHERE missed = 0 AND (ticket IS NULL OR ticket IN (SELECT id FROM tickets WHERE day = ?1))",
        )?;
        let appointments = stmt
            .query_map([&day], |r| {
                Ok(Appointment {
                    code: r.get(0)?,
                    service: r.get(1)?,
                    slot_at: Timestamp(r.get(2)?),
                    citizen: r.get(3)?,
                    ticket: r.get::<_, Option<i64>>(4)?.map(|t| TicketId(t as u64)),
                    missed: r.get(5)?,
                    mobile: r.get(6)?,
                    mobile_masked: r.get(7)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        let mut stmt = self
            .conn
            .prepare("SELECT record FROM ratings WHERE day = ?1")?;
        let ratings = stmt
            .query_map([&day], |r| r.get::<_, String>(0))?
            .map(|s| Ok(serde_json::from_str::<Rating>(&s?)?))
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(Snapshot {
            now,
            next_id: next_id as u64,
            tickets,
            windows,
            appointments,
            ratings,
        })
    }

    /// Appends events and persists changed rows in one durable transaction; returns the
    /// stored events (with their sequence numbers) once the commit is on disk.
    pub fn commit(
        &mut self,
        events: &[NewEvent],
        changes: &Changes,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        self.commit_with(events, changes, &[])
    }

    /// [`Store::commit`] with the mobile numbers of near-turn notices asked for in the
    /// batch, written before its events (whose `near_turn` may already need them).
    pub fn commit_with(
        &mut self,
        events: &[NewEvent],
        changes: &Changes,
        notices: &[notices::NewNotice],
    ) -> Result<Vec<StoredEvent>, StoreError> {
        self.begin()?;
        let written = self.write(events, changes, notices);
        match written {
            Ok(stored) => {
                self.end()?;
                Ok(stored)
            }
            Err(e) => {
                self.abandon();
                Err(e)
            }
        }
    }

    /// Opens a write transaction that [`Store::write`] adds to and [`Store::end`] makes
    /// durable (the core's group commit writes each request as it comes in, while it
    /// waits for the rest of the batch). Nothing written before `end` returns is
    /// committed; [`Store::abandon`] undoes it.
    pub fn begin(&mut self) -> Result<(), StoreError> {
        self.conn.execute_batch("BEGIN IMMEDIATE")?;
        Ok(())
    }

    /// Writes notices, events and changed rows into the transaction [`Store::begin`]
    /// opened; returns the events with the sequence numbers they will have once it ends.
    pub fn write(
        &mut self,
        events: &[NewEvent],
        changes: &Changes,
        notices: &[notices::NewNotice],
    ) -> Result<Vec<StoredEvent>, StoreError> {
        if self.conn.is_autocommit() {
            return Err(StoreError::NotBegun);
        }
        notices::put(&self.conn, notices)?;
        let stored = append(
            &self.conn,
            events,
            &self.figure_rules,
            &self.figures_pending,
        )?;
        persist(&self.conn, changes)?;
        Ok(stored)
    }

    /// Commits the open transaction: once this returns, what it holds is on disk. On an
    /// error nothing of it is stored (the transaction is rolled back).
    pub fn end(&mut self) -> Result<(), StoreError> {
        let committed = figures::flush(&self.conn, &self.figures_pending)
            .and_then(|()| Ok(self.conn.execute_batch("COMMIT")?));
        if let Err(e) = committed {
            self.abandon();
            return Err(e);
        }
        Ok(())
    }

    /// Rolls back the open transaction, if one is open.
    pub fn abandon(&mut self) {
        self.figures_pending.clear();
        if !self.conn.is_autocommit()
            && let Err(e) = self.conn.execute_batch("ROLLBACK")
        {
            tracing::error!(error = %e, "rollback failed");
        }
    }

    /// Changes a staff account and appends its audit event in one durable transaction,
    /// with whatever `then` adds to it (the core's sign-outs from windows the account no
    /// longer allows, and the window rows they change). An error anywhere, `then`'s
    /// included, commits nothing: never an account change without its audit event.
    /// Returns the stored events (the audit event first) and the account as it is now.
    pub fn change_account(
        &mut self,
        change: &staff::AccountChange,
        now: Timestamp,
        then: impl FnOnce(&Connection) -> Result<(Vec<NewEvent>, Changes), StoreError>,
    ) -> Result<(Vec<StoredEvent>, staff::AccountState), staff::StaffError> {
        let storage = |e: StoreError| staff::StaffError::Storage(e.to_string());
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let (audit, state) = staff::apply(&tx, change, now)?;
        let mut events = vec![NewEvent::encode(now, audit.kind(), &audit).map_err(storage)?];
        let (more, changes) = then(&tx).map_err(storage)?;
        events.extend(more);
        let stored = append_counted(&tx, &events, &self.figure_rules).map_err(storage)?;
        persist(&tx, &changes).map_err(storage)?;
        tx.commit()?;
        Ok((stored, state))
    }

    /// Appends events that do not come from the engine (staff changes, sign-in failures).
    pub fn append(&mut self, events: &[NewEvent]) -> Result<Vec<StoredEvent>, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let stored = append_counted(&tx, events, &self.figure_rules)?;
        tx.commit()?;
        Ok(stored)
    }

    /// Marks the database as holding generated history (`note` says what wrote it), in
    /// one transaction that first checks that it holds no ticket and no event. Returns
    /// the counts found instead when it is not empty; then nothing is written.
    pub fn mark_generated(&mut self, note: &str) -> Result<Result<(), (i64, i64)>, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let tickets: i64 = tx.query_row("SELECT COUNT(*) FROM tickets", [], |r| r.get(0))?;
        let events: i64 = tx.query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0))?;
        if tickets > 0 || events > 0 {
            return Ok(Err((tickets, events)));
        }
        tx.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)",
            params![GENERATED_HISTORY, note],
        )?;
        tx.commit()?;
        Ok(Ok(()))
    }

    /// A ticket from any day by its retry key.
    pub fn ticket_by_key(&self, key: &str) -> Result<Option<Ticket>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT * FROM tickets WHERE idempotency_key = ?1")?;
        stmt.query_row([key], ticket_from_row)
            .optional()?
            .transpose()
    }

    /// A ticket from any day by id.
    pub fn ticket(&self, id: TicketId) -> Result<Option<Ticket>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT * FROM tickets WHERE id = ?1")?;
        stmt.query_row([id.0 as i64], ticket_from_row)
            .optional()?
            .transpose()
    }

    /// The ticket whose secret token hashes to `hash` (SHA-256, hex), if any: the
    /// phone's status page finds its ticket so, since the token itself is kept nowhere.
    pub fn ticket_by_token_hash(&self, hash: &str) -> Result<Option<TicketId>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT id FROM tickets WHERE token_hash = ?1")?;
        Ok(stmt
            .query_row([hash], |r| r.get::<_, i64>(0))
            .optional()?
            .map(|id| TicketId(id as u64)))
    }

    /// Events after `seq`, oldest first, at most `limit`.
    pub fn events_after(&self, seq: i64, limit: usize) -> Result<Vec<StoredEvent>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT seq, id, at, type, schema, payload FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![seq, limit as i64], event_from_row)?;
        rows.map(|row| row?).collect()
    }

    /// Writes a consistent copy of the database at `db` to `to` (`VACUUM INTO`), safe
    /// while the daemon runs: readers never block the writer in WAL mode. Returns the
    /// number of events in the copy, read back from it.
    pub fn backup(db: &Path, to: &Path) -> Result<i64, StoreError> {
        if to.exists() {
            return Err(StoreError::Damaged(format!(
                "{} already exists; choose a new file",
                to.display()
            )));
        }
        let conn = Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.execute("VACUUM INTO ?1", [to.to_string_lossy()])?;
        let copy = Connection::open_with_flags(to, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        let check: String = copy.query_row("PRAGMA quick_check", [], |r| r.get(0))?;
        if check != "ok" {
            return Err(StoreError::Damaged(format!("backup check failed: {check}")));
        }
        Ok(copy.query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0))?)
    }

    /// Every device event ever stored, oldest first, with its time; the device registry
    /// replays them to know each device's last state.
    pub fn device_events(&self) -> Result<Vec<(i64, crate::events::HallEvent)>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT at, payload FROM events WHERE type IN ('device_fault', 'device_recovered') ORDER BY seq",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))?;
        let mut out = Vec::new();
        for row in rows {
            let (at, payload) = row?;
            // An event this version cannot read is skipped, never fatal at start.
            match serde_json::from_str(&payload) {
                Ok(ev) => out.push((at, ev)),
                Err(e) => tracing::warn!(error = %e, "unreadable device event skipped"),
            }
        }
        Ok(out)
    }

    /// The newest event's sequence number (0 for an empty log).
    pub fn last_seq(&self) -> Result<i64, StoreError> {
        Ok(self
            .conn
            .query_row("SELECT COALESCE(MAX(seq), 0) FROM events", [], |r| r.get(0))?)
    }
}

/// Persists the engine's changed rows inside `tx`.
fn persist(tx: &Connection, changes: &Changes) -> Result<(), StoreError> {
    let mut put = tx.prepare_cached(
            "INSERT OR REPLACE INTO tickets VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29, ?30)",
        )?;
    for t in &changes.tickets {
        put.execute(params![
            t.id.0 as i64,
            t.number,
            t.seq,
            t.day.to_string(),
            t.service,
            t.origin_service,
            t.class.as_str(),
            t.state.as_str(),
            t.issued_at.0,
            t.queue_at.0,
            t.due_at.map(|x| x.0),
            t.reserved_window,
            t.window,
            t.staff,
            t.called_at.map(|x| x.0),
            t.serving_at.map(|x| x.0),
            t.closed_at.map(|x| x.0),
            t.recalls,
            t.no_shows,
            t.transfers,
            t.idempotency_key,
            t.citizen,
            t.appointment,
            t.case_no,
            t.channel,
            t.alarms,
            t.token_hash,
            t.green_reason,
            t.proxy,
            t.issued_by,
        ])?;
    }
    let mut put =
        tx.prepare_cached("INSERT OR REPLACE INTO windows (number, state) VALUES (?1, ?2)")?;
    for w in &changes.windows {
        put.execute(params![w.number, serde_json::to_string(w)?])?;
    }
    let mut put = tx.prepare_cached(
        "INSERT OR REPLACE INTO appointments VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?;
    for a in &changes.appointments {
        put.execute(params![
            a.code,
            a.service,
            a.slot_at.0,
            a.citizen,
            a.ticket.map(|t| t.0 as i64),
            a.missed,
            a.mobile,
            a.mobile_masked
        ])?;
    }
    let mut put = tx.prepare_cached("INSERT OR REPLACE INTO ratings (ticket, day, record) VALUES (?1, (SELECT day FROM tickets WHERE id = ?1), ?2)")?;
    for r in &changes.ratings {
        put.execute(params![r.ticket.0 as i64, serde_json::to_string(r)?])?;
    }
    Ok(())
}

/// [`append`] in a transaction of its own making: its figures are written before it
/// returns.
fn append_counted(
    tx: &Connection,
    events: &[NewEvent],
    rules: &figures::Rules,
) -> Result<Vec<StoredEvent>, StoreError> {
    let sums = figures::Pending::default();
    let stored = append(tx, events, rules, &sums)?;
    figures::flush(tx, &sums)?;
    Ok(stored)
}

/// Appends `events` inside `tx`; the figures they add go to `sums`, for
/// [`figures::flush`] before the commit.
fn append(
    tx: &Connection,
    events: &[NewEvent],
    rules: &figures::Rules,
    sums: &figures::Pending,
) -> Result<Vec<StoredEvent>, StoreError> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    let mut put = tx.prepare_cached(
        "INSERT INTO events (seq, id, at, type, schema, payload) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    // Numbered here, not by SQLite: past every number ever used, deleted ones included
    // (inside the write transaction, so no other writer can take the same).
    let mut seq = uplink::newest_seq(tx)?;
    let mut stored = Vec::with_capacity(events.len());
    for e in events {
        seq += 1;
        // Time-ordered (v7), unique without an index to enforce it.
        let id = uuid::Uuid::now_v7().to_string();
        put.execute(params![seq, id, e.at.0, e.kind, EVENT_SCHEMA, e.payload])?;
        help::apply(tx, e, seq)?;
        warnings::apply(tx, e)?;
        follow_ups::apply(tx, e, seq)?;
        notices::apply(tx, e, &id)?;
        let payload = serde_json::from_str(&e.payload)?;
        figures::apply_parsed(tx, rules, sums, e, &payload, seq)?;
        stored.push(StoredEvent {
            seq,
            id,
            at: e.at.0,
            kind: e.kind.clone(),
            schema: EVENT_SCHEMA,
            payload,
        });
    }
    Ok(stored)
}

/// Reads an event row selected as `seq, id, at, type, schema, payload`; the outer
/// error is SQLite's, the inner one a payload that is not JSON.
pub fn event_from_row(r: &Row<'_>) -> rusqlite::Result<Result<StoredEvent, StoreError>> {
    let payload: String = r.get(5)?;
    Ok(Ok(StoredEvent {
        seq: r.get(0)?,
        id: r.get(1)?,
        at: r.get(2)?,
        kind: r.get(3)?,
        schema: r.get(4)?,
        payload: match serde_json::from_str(&payload) {
            Ok(v) => v,
            Err(e) => return Ok(Err(e.into())),
        },
    }))
}

/// Reads a ticket row (`SELECT *` column order).
pub fn ticket_from_row(r: &Row<'_>) -> rusqlite::Result<Result<Ticket, StoreError>> {
    let ts = |i: usize| -> rusqlite::Result<Option<Timestamp>> {
        Ok(r.get::<_, Option<i64>>(i)?.map(Timestamp))
    };
    let day: String = r.get(3)?;
    let class: String = r.get(6)?;
    let state: String = r.get(7)?;
    let (Ok(day), Some(class), Some(state)) = (
        day.parse::<NaiveDate>(),
        Class::parse(&class),
        TicketState::parse(&state),
    ) else {
        return Ok(Err(StoreError::Damaged(format!(
            "ticket {} has day {day:?}, class {class:?}, state {state:?}",
            r.get::<_, i64>(0)?
        ))));
    };
    Ok(Ok(Ticket {
        id: TicketId(r.get::<_, i64>(0)? as u64),
        number: r.get(1)?,
        seq: r.get(2)?,
        day,
        service: r.get(4)?,
        origin_service: r.get(5)?,
        class,
        state,
        issued_at: Timestamp(r.get(8)?),
        queue_at: Timestamp(r.get(9)?),
        due_at: ts(10)?,
        reserved_window: r.get(11)?,
        window: r.get(12)?,
        staff: r.get(13)?,
        called_at: ts(14)?,
        serving_at: ts(15)?,
        closed_at: ts(16)?,
        recalls: r.get(17)?,
        no_shows: r.get(18)?,
        transfers: r.get(19)?,
        idempotency_key: r.get(20)?,
        citizen: r.get(21)?,
        appointment: r.get(22)?,
        case_no: r.get(23)?,
        channel: r.get(24)?,
        alarms: r.get(25)?,
        token_hash: r.get(26)?,
        green_reason: r.get(27)?,
        proxy: r.get(28)?,
        issued_by: r.get(29)?,
    }))
}
