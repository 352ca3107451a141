//! The months of `events`: the table is partitioned by range of `at` (the event's time
//! at the hall, ms), one partition per calendar month in UTC, `events_YYYY_MM`, and a
//! DEFAULT partition `events_default` for the rows of a month that has none (a hall's
//! clock years off, an event of a month already dropped). The exactly-once keys are in
//! `event_keys`, not partitioned ([`crate::db::store`]).
//!
//! - [`ensure`] makes the current month and `[database] months_ahead` more; `run` calls
//!   it at start and every day, so a month's partition is there before its first event.
//!   A month's rows already in `events_default` move into it as it is made (the table is
//!   made, the rows moved, then it is attached), so nothing is ever lost or left behind.
//! - [`list`] the partitions with their rows; [`drop_before`] detaches and drops whole
//!   months older than a given one, deletes their keys, and moves each controller's
//!   `contiguous_seq` past the highest seq it dropped, so the gap repair never asks a
//!   controller for a dropped event again. An event of a dropped month that still came
//!   again would be new to the keys and be stored (into `events_default`) and counted
//!   once more: nothing in the server asks for it, and a controller sends old events
//!   again only when asked (see `docs/hall-server.md`, "For a province").
//!
//! Locks: attaching a month takes SHARE UPDATE EXCLUSIVE on `events` (the ingest goes
//! on) and ACCESS EXCLUSIVE on `events_default` for its check; detaching takes ACCESS
//! EXCLUSIVE on `events` for a moment (so with `lock_timeout`); deleting a dropped
//! month's keys holds no lock on `events` at all.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use thiserror::Error;
use tokio::sync::{Notify, watch};
use tokio_postgres::{Client, Transaction};

/// The DEFAULT partition of `events`.
pub const DEFAULT_PARTITION: &str = "events_default";

/// How long a step waits for a lock on `events` before it gives up (and is tried again
/// later): the ingest's batches wait behind a waiting ACCESS EXCLUSIVE lock.
const LOCK_TIMEOUT: &str = "10s";

/// Taken while a month is made or detached: instances and the command line take turns.
const MONTHS_LOCK: i64 = 4852;

/// Held by a running `partitions drop` for its session.
const DROP_LOCK: i64 = 4853;

/// A failure to make, list or drop months.
#[derive(Debug, Error)]
pub enum PartitionError {
    /// From the server or the connection.
    #[error("postgresql: {0}")]
    Pg(#[from] tokio_postgres::Error),
    /// A step on a partition failed.
    #[error("{step}: {source}")]
    Step {
        /// What was being done.
        step: String,
        /// Why it failed.
        source: tokio_postgres::Error,
    },
    /// The request would drop what must stay.
    #[error("{0}")]
    Refused(String),
}

/// A calendar month (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Month {
    /// Its number from year 0: `year * 12 + month - 1`.
    index: i64,
}

impl Month {
    /// The month of `year`-`month` (1 … 12), years 1970 … 9999.
    pub fn new(year: i32, month: u32) -> Option<Month> {
        ((1970..=9999).contains(&year) && (1..=12).contains(&month)).then_some(Month {
            index: i64::from(year) * 12 + i64::from(month) - 1,
        })
    }

    /// The month an instant (ms since the epoch) falls in, in UTC.
    pub fn of(at_ms: i64) -> Option<Month> {
        use chrono::Datelike;
        let t = chrono::DateTime::from_timestamp_millis(at_ms)?;
        Month::new(t.year(), t.month())
    }

    /// Reads `YYYY-MM`.
    pub fn parse(text: &str) -> Option<Month> {
        let (y, m) = text.split_once('-')?;
        if y.len() != 4 || m.len() != 2 {
            return None;
        }
        Month::new(y.parse().ok()?, m.parse().ok()?)
    }

    /// The month of a partition named `events_YYYY_MM`.
    pub fn of_table(name: &str) -> Option<Month> {
        let rest = name.strip_prefix("events_")?;
        if rest.len() != 7 || rest.as_bytes()[4] != b'_' {
            return None;
        }
        Month::parse(&rest.replacen('_', "-", 1))
    }

    fn year(self) -> i32 {
        (self.index.div_euclid(12)) as i32
    }

    fn month(self) -> u32 {
        (self.index.rem_euclid(12) + 1) as u32
    }

    /// `n` months later (earlier if negative).
    pub fn plus(self, n: i64) -> Month {
        Month {
            index: self.index + n,
        }
    }

    /// Its first instant, ms since the epoch (UTC).
    pub fn start_ms(self) -> i64 {
        chrono::NaiveDate::from_ymd_opt(self.year(), self.month(), 1)
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map_or(0, |t| t.and_utc().timestamp_millis())
    }

    /// Its partition's name, `events_YYYY_MM`.
    pub fn table(self) -> String {
        format!("events_{:04}_{:02}", self.year(), self.month())
    }
}

impl std::fmt::Display for Month {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04}-{:02}", self.year(), self.month())
    }
}

/// One partition of `events` (or a month detached by a `drop` that did not finish).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Partition {
    /// The table.
    pub name: String,
    /// `YYYY-MM` for a month's partition.
    pub month: Option<String>,
    /// The first `at` it holds (ms), none for the default.
    pub from: Option<i64>,
    /// The first `at` past it (ms), none for the default.
    pub to: Option<i64>,
    /// The DEFAULT partition: rows of the months that have none.
    pub default: bool,
    /// Still a partition of `events` (false: detached by a `drop` that stopped half way;
    /// the next `drop` finishes it).
    pub attached: bool,
    /// Its rows (counted, or PostgreSQL's estimate; none when it has no estimate yet).
    pub rows: Option<i64>,
}

/// Reads `FOR VALUES FROM ('a') TO ('b')`; MINVALUE and MAXVALUE as the ends of i64.
fn bounds(expr: &str) -> Option<(i64, i64)> {
    let value = |v: &str| -> Option<i64> {
        let v = v.trim().trim_matches('\'');
        match v {
            "MINVALUE" => Some(i64::MIN),
            "MAXVALUE" => Some(i64::MAX),
            _ => v.parse().ok(),
        }
    };
    let from = expr.split("FROM (").nth(1)?.split(')').next()?;
    let to = expr.split("TO (").nth(1)?.split(')').next()?;
    Some((value(from)?, value(to)?))
}

/// Every partition of `events` in time order (the default last), and the months
/// detached but not dropped; `exact` counts each one's rows (it reads them all),
/// otherwise PostgreSQL's estimate.
pub async fn list(db: &Client, exact: bool) -> Result<Vec<Partition>, PartitionError> {
    let mut out = Vec::new();
    for r in db
        .query(
            "SELECT c.relname::text, pg_get_expr(c.relpartbound, c.oid), c.reltuples::int8, true
             FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
             WHERE i.inhparent = 'events'::regclass
             UNION ALL
             SELECT c.relname::text, NULL, c.reltuples::int8, false
             FROM pg_class c
             WHERE c.relkind = 'r' AND NOT c.relispartition
               AND c.relnamespace = (SELECT relnamespace FROM pg_class WHERE oid = 'events'::regclass)
               AND c.relname ~ '^events_[0-9]{4}_[0-9]{2}$'",
            &[],
        )
        .await?
    {
        let name: String = r.get(0);
        let bound: Option<String> = r.get(1);
        let estimate: i64 = r.get(2);
        let attached: bool = r.get(3);
        let default = bound.as_deref() == Some("DEFAULT");
        let span = match &bound {
            Some(b) => bounds(b),
            None => Month::of_table(&name).map(|m| (m.start_ms(), m.plus(1).start_ms())),
        };
        let month = Month::of_table(&name)
            .filter(|m| span == Some((m.start_ms(), m.plus(1).start_ms())))
            .map(|m| m.to_string());
        out.push(Partition {
            name,
            month,
            from: span.map(|s| s.0),
            to: span.map(|s| s.1),
            default,
            attached,
            rows: (estimate >= 0).then_some(estimate),
        });
    }
    if exact {
        for p in &mut out {
            let n: i64 = db
                .query_one(&format!("SELECT count(*) FROM \"{}\"", p.name), &[])
                .await?
                .get(0);
            p.rows = Some(n);
        }
    }
    out.sort_by_key(|p| (p.default, p.from, p.name.clone()));
    Ok(out)
}

/// Makes the partitions of the month of `now` and the `ahead` months after it that are
/// missing; returns each one made with the rows it took over from `events_default`.
pub async fn ensure(
    db: &mut Client,
    now: i64,
    ahead: u32,
) -> Result<Vec<(String, u64)>, PartitionError> {
    let Some(first) = Month::of(now) else {
        return Ok(Vec::new());
    };
    let mut made = Vec::new();
    for k in 0..=i64::from(ahead) {
        let month = first.plus(k);
        if let Some(moved) = make(db, month).await? {
            made.push((month.table(), moved));
        }
    }
    Ok(made)
}

/// Makes one month's partition unless a table of its name is there; `Some(rows moved
/// from the default)` when it made it.
async fn make(db: &mut Client, month: Month) -> Result<Option<u64>, PartitionError> {
    let name = month.table();
    let (from, to) = (month.start_ms(), month.plus(1).start_ms());
    let step = |source| PartitionError::Step {
        step: format!("making {name}"),
        source,
    };
    let tx = db.transaction().await?;
    tx.batch_execute(&format!(
        "SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'; SELECT pg_advisory_xact_lock({MONTHS_LOCK})"
    ))
    .await
    .map_err(step)?;
    let there: bool = tx
        .query_one("SELECT to_regclass($1::text) IS NOT NULL", &[&name])
        .await?
        .get(0);
    if there {
        return Ok(None);
    }
    // Made apart, filled with the month's rows from the default, then attached: a
    // partition made straight under `events` would be refused while the default holds
    // rows of its range.
    tx.batch_execute(&format!(
        "CREATE TABLE \"{name}\" (LIKE events INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
    ))
    .await
    .map_err(step)?;
    let moved = tx
        .execute(
            &format!(
                "WITH moved AS (DELETE FROM {DEFAULT_PARTITION} WHERE at >= $1 AND at < $2 RETURNING *)
                 INSERT INTO \"{name}\" SELECT * FROM moved"
            ),
            &[&from, &to],
        )
        .await
        .map_err(step)?;
    tx.batch_execute(&format!(
        "ALTER TABLE events ATTACH PARTITION \"{name}\" FOR VALUES FROM ({from}) TO ({to})"
    ))
    .await
    .map_err(step)?;
    tx.commit().await.map_err(step)?;
    Ok(Some(moved))
}

/// The months the ingest may ask [`keep`] for: a row of a month in `[floor, ceiling)`
/// that no partition covers is stored in `events_default` and wakes the keeper, which
/// makes its month and moves it there. Below the floor (months dropped, or before 2000)
/// and past the ceiling (further ahead than `months_ahead`) rows stay in the default.
#[derive(Debug, Default)]
pub struct Months {
    /// The ranges of `at` with a partition, `[from, to)`.
    covered: std::sync::RwLock<Vec<(i64, i64)>>,
    /// Rows from here may have a month made for them …
    floor: AtomicI64,
    /// … up to here.
    ceiling: AtomicI64,
    wake: Notify,
}

impl Months {
    /// Whether a row at `at` goes to `events_default` although its month could be made.
    pub fn wants(&self, at: i64) -> bool {
        if at < self.floor.load(Ordering::Relaxed) || at >= self.ceiling.load(Ordering::Relaxed) {
            return false;
        }
        let covered = self.covered.read().unwrap_or_else(|e| e.into_inner());
        !covered.iter().any(|(from, to)| (*from..*to).contains(&at))
    }

    /// Asks the keeper to make the months of the rows it [`wants`](Months::wants).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    fn set(&self, covered: Vec<(i64, i64)>, floor: i64, ceiling: i64) {
        *self.covered.write().unwrap_or_else(|e| e.into_inner()) = covered;
        self.floor.store(floor, Ordering::Relaxed);
        self.ceiling.store(ceiling, Ordering::Relaxed);
    }
}

/// The first month a partition is made for: 2000-01 (a controller's clock before it is
/// wrong), or the end of the latest drop (those months stay dropped).
async fn floor(db: &Client) -> Result<i64, PartitionError> {
    let dropped: i64 = db
        .query_one("SELECT coalesce(max(to_at), 0) FROM events_dropped", &[])
        .await?
        .get(0);
    Ok(dropped.max(FIRST_MONTH_MS))
}

/// 2000-01-01T00:00:00Z.
const FIRST_MONTH_MS: i64 = 946_684_800_000;

/// Makes the partitions of the months that have rows in `events_default` between the
/// floor and `ceiling`, moving the rows into them.
async fn make_for_default(
    db: &mut Client,
    ceiling: i64,
) -> Result<Vec<(String, u64)>, PartitionError> {
    let floor = floor(db).await?;
    let months: Vec<Month> = db
        .query(
            &format!(
                "SELECT DISTINCT to_char(to_timestamp(at / 1000.0) AT TIME ZONE 'UTC', 'YYYY-MM')
                 FROM {DEFAULT_PARTITION} WHERE at >= $1 AND at < $2"
            ),
            &[&floor, &ceiling],
        )
        .await?
        .iter()
        .filter_map(|r| Month::parse(r.get(0)))
        .collect();
    let mut made = Vec::new();
    for month in months {
        if let Some(moved) = make(db, month).await? {
            made.push((month.table(), moved));
        }
    }
    Ok(made)
}

/// Makes the current month and `ahead` more, and the months of the rows waiting in
/// `events_default` (from the floor up to those), logging what it did; tells `months`
/// what is covered now, and says when `events_default` holds rows. Failures are logged:
/// the default partition keeps the rows meanwhile.
pub async fn keep(db: &mut Client, ahead: u32, months: &Months) {
    let now = crate::now_ms();
    let ceiling = Month::of(now).map_or(0, |m| m.plus(i64::from(ahead) + 1).start_ms());
    let made = match ensure(db, now, ahead).await {
        Ok(mut made) => match make_for_default(db, ceiling).await {
            Ok(more) => {
                made.extend(more);
                made
            }
            Err(e) => {
                tracing::warn!("events: making the months of the rows in {DEFAULT_PARTITION}: {e}");
                made
            }
        },
        Err(e) => {
            tracing::warn!("events: making the months ahead: {e}");
            Vec::new()
        }
    };
    for (name, moved) in made {
        tracing::info!(
            "events: partition {name} made ({moved} rows moved into it from {DEFAULT_PARTITION})"
        );
    }
    match (list(db, false).await, floor(db).await) {
        (Ok(parts), Ok(floor)) => {
            let covered = parts
                .iter()
                .filter(|p| p.attached && !p.default)
                .filter_map(|p| Some((p.from?, p.to?)))
                .collect();
            months.set(covered, floor, ceiling);
        }
        (Err(e), _) | (_, Err(e)) => tracing::warn!("events: reading the partitions: {e}"),
    }
    match db
        .query_one(&format!("SELECT count(*) FROM {DEFAULT_PARTITION}"), &[])
        .await
    {
        Ok(r) if r.get::<_, i64>(0) > 0 => tracing::warn!(
            "events: {} rows are in {DEFAULT_PARTITION}, outside every month's partition (a hall's \
             clock far off, or events of a dropped month sent again): see `hallq-server partitions list`",
            r.get::<_, i64>(0)
        ),
        Ok(_) => {}
        Err(e) => tracing::warn!("events: counting {DEFAULT_PARTITION}: {e}"),
    }
}

/// Runs until `shutdown`: [`keep`] every day, and soon after the ingest stored a row
/// whose month could be made (`run` calls it once at start itself).
pub async fn keeper(
    url: String,
    ahead: u32,
    months: std::sync::Arc<Months>,
    mut shutdown: watch::Receiver<bool>,
) {
    const DAY: Duration = Duration::from_secs(86_400);
    /// Rows for a month to be made come in runs (a controller's history sent again):
    /// one look for a run, and not more often than this.
    const SETTLE: Duration = Duration::from_secs(1);
    let mut next_day = tokio::time::Instant::now() + DAY;
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(next_day) => next_day += DAY,
            _ = months.wake.notified() => {
                tokio::select! {
                    _ = tokio::time::sleep(SETTLE) => {}
                    _ = shutdown.changed() => return,
                }
            }
            _ = shutdown.changed() => return,
        }
        match crate::db::connect(&url, Duration::ZERO).await {
            Ok(mut db) => keep(&mut db, ahead, &months).await,
            Err(e) => tracing::warn!("events: making the months: {e}"),
        }
    }
}

/// What a drop took away (or would, with `dry_run`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Dropped {
    /// The partition, or `events_default` for its rows of those months.
    pub name: String,
    /// `YYYY-MM` for a month's partition.
    pub month: Option<String>,
    /// Its rows.
    pub rows: u64,
    /// The keys deleted with them (none with `dry_run`).
    pub keys: u64,
}

/// Detaches and drops every month's partition that ends at or before the start of
/// `before`, deleting their rows' keys, and the rows of those months in `events_default`
/// with theirs; with `dry_run` only counts them. Refused when `before` is later than the
/// month of `now` (it would drop the current month) or another drop is running.
pub async fn drop_before(
    db: &mut Client,
    before: Month,
    now: i64,
    dry_run: bool,
) -> Result<Vec<Dropped>, PartitionError> {
    let current = Month::of(now)
        .ok_or_else(|| PartitionError::Refused("the clock is outside 1970 … 9999".into()))?;
    if before > current {
        return Err(PartitionError::Refused(format!(
            "dropping the months before {before} would drop the current month {current}: the \
             latest allowed is {current} (every month before the current one)"
        )));
    }
    let locked: bool = db
        .query_one("SELECT pg_try_advisory_lock($1)", &[&DROP_LOCK])
        .await?
        .get(0);
    if !locked {
        return Err(PartitionError::Refused(
            "another `partitions drop` is running on this database".into(),
        ));
    }
    let done = drop_locked(db, before, now, dry_run).await;
    db.execute("SELECT pg_advisory_unlock($1)", &[&DROP_LOCK])
        .await?;
    done
}

async fn drop_locked(
    db: &mut Client,
    before: Month,
    now: i64,
    dry_run: bool,
) -> Result<Vec<Dropped>, PartitionError> {
    let cut = before.start_ms();
    let old: Vec<Partition> = list(db, false)
        .await?
        .into_iter()
        .filter(|p| !p.default && p.to.is_some_and(|to| to <= cut))
        .collect();
    let mut out = Vec::new();
    for p in old {
        let name = p.name.clone();
        let step = |what: &str| {
            let name = name.clone();
            let what = what.to_string();
            move |source| PartitionError::Step {
                step: format!("{what} {name}"),
                source,
            }
        };
        if dry_run {
            let rows: i64 = db
                .query_one(&format!("SELECT count(*) FROM \"{name}\""), &[])
                .await?
                .get(0);
            out.push(Dropped {
                name,
                month: p.month,
                rows: rows as u64,
                keys: 0,
            });
            continue;
        }
        if p.attached {
            let tx = db.transaction().await?;
            tx.batch_execute(&format!(
                "SET LOCAL lock_timeout = '{LOCK_TIMEOUT}';
                 SELECT pg_advisory_xact_lock({MONTHS_LOCK});
                 ALTER TABLE events DETACH PARTITION \"{name}\""
            ))
            .await
            .map_err(step("detaching"))?;
            tx.commit().await.map_err(step("detaching"))?;
            tracing::info!("events: {name} detached");
        }
        // Detached: nothing writes to it any more, and its keys still turn away a copy
        // of its events until they go with it, in one transaction.
        let tx = db.transaction().await?;
        let (rows, keys) = forget(&tx, &format!("\"{name}\""))
            .await
            .map_err(step("deleting the keys of"))?;
        tx.batch_execute(&format!("DROP TABLE \"{name}\""))
            .await
            .map_err(step("dropping"))?;
        tx.execute(
            "INSERT INTO events_dropped (name, from_at, to_at, rows, keys, dropped_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                &name,
                &p.from,
                &p.to.unwrap_or(cut),
                &(rows as i64),
                &(keys as i64),
                &now,
            ],
        )
        .await
        .map_err(step("dropping"))?;
        tx.commit().await.map_err(step("dropping"))?;
        tracing::info!("events: {name} dropped ({rows} rows, {keys} keys)");
        out.push(Dropped {
            name,
            month: p.month,
            rows,
            keys,
        });
    }
    // The rows of those months that came while they had no partition.
    let default_step = |source| PartitionError::Step {
        step: format!("deleting the rows before {before} from {DEFAULT_PARTITION}"),
        source,
    };
    if dry_run {
        let rows: i64 = db
            .query_one(
                &format!("SELECT count(*) FROM {DEFAULT_PARTITION} WHERE at < $1"),
                &[&cut],
            )
            .await?
            .get(0);
        out.push(Dropped {
            name: DEFAULT_PARTITION.into(),
            month: None,
            rows: rows as u64,
            keys: 0,
        });
        return Ok(out);
    }
    let tx = db.transaction().await?;
    tx.batch_execute(&format!(
        "CREATE TEMP TABLE hallq_dropped (id uuid, controller_id text, seq bigint) ON COMMIT DROP;
         WITH gone AS (DELETE FROM {DEFAULT_PARTITION} WHERE at < {cut} RETURNING id, controller_id, seq)
         INSERT INTO hallq_dropped SELECT * FROM gone"
    ))
    .await
    .map_err(default_step)?;
    let (rows, keys) = forget(&tx, "hallq_dropped").await.map_err(default_step)?;
    // The floor: no month before `before` is made again (a late copy of one of its
    // events stays in the default).
    tx.execute(
        "INSERT INTO events_dropped (name, from_at, to_at, rows, keys, dropped_at)
         VALUES ($1, NULL, $2, $3, $4, $5)",
        &[
            &DEFAULT_PARTITION,
            &cut,
            &(rows as i64),
            &(keys as i64),
            &now,
        ],
    )
    .await
    .map_err(default_step)?;
    tx.commit().await.map_err(default_step)?;
    if rows > 0 {
        tracing::info!("events: {rows} rows before {before} deleted from {DEFAULT_PARTITION}");
    }
    out.push(Dropped {
        name: DEFAULT_PARTITION.into(),
        month: None,
        rows,
        keys,
    });
    Ok(out)
}

/// Deletes the keys of the rows in `src` (a table of `id`, `controller_id`, `seq`) and
/// moves each controller's `contiguous_seq` up to the highest seq among them, so the gap
/// repair never asks for those again; returns (rows, keys deleted). The controllers' rows
/// are locked last and in controller order, as the ingest locks them.
async fn forget(tx: &Transaction<'_>, src: &str) -> Result<(u64, u64), tokio_postgres::Error> {
    let rows: i64 = tx
        .query_one(&format!("SELECT count(*) FROM {src}"), &[])
        .await?
        .get(0);
    let tops = tx
        .query(
            &format!(
                "SELECT controller_id, max(seq) FROM {src} GROUP BY controller_id ORDER BY controller_id"
            ),
            &[],
        )
        .await?;
    let keys = tx
        .execute(
            &format!("DELETE FROM event_keys k USING {src} e WHERE k.id = e.id"),
            &[],
        )
        .await?;
    let controllers: Vec<String> = tops.iter().map(|r| r.get(0)).collect();
    let top: Vec<i64> = tops.iter().map(|r| r.get(1)).collect();
    tx.execute(
        "SELECT 1 FROM controllers WHERE controller_id = ANY($1) ORDER BY controller_id FOR UPDATE",
        &[&controllers],
    )
    .await?;
    tx.execute(
        "UPDATE controllers c SET
           contiguous_seq = t.top,
           gap_since = CASE WHEN t.top >= greatest(c.max_seq, coalesce(c.reported_seq, 0))
                            THEN NULL ELSE c.gap_since END
         FROM unnest($1::text[], $2::int8[]) AS t(c, top)
         WHERE c.controller_id = t.c AND c.contiguous_seq < t.top",
        &[&controllers, &top],
    )
    .await?;
    Ok((rows as u64, keys))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_in_utc() {
        // 2026-12-01T00:00:00Z and a millisecond before it.
        let dec = Month::of(1_796_083_200_000).expect("month");
        assert_eq!(dec.to_string(), "2026-12");
        assert_eq!(dec.start_ms(), 1_796_083_200_000);
        assert_eq!(
            Month::of(1_796_083_199_999).map(|m| m.to_string()),
            Some("2026-11".into())
        );
        assert_eq!(dec.plus(1).to_string(), "2027-01");
        assert_eq!(dec.plus(-12).to_string(), "2025-12");
        assert_eq!(dec.table(), "events_2026_12");
        assert_eq!(Month::of_table("events_2026_12"), Some(dec));
        assert_eq!(Month::parse("2026-12"), Some(dec));
        assert_eq!(Month::of_table("events_default"), None);
        assert_eq!(Month::parse("2026-13"), None);
        assert_eq!(Month::parse("26-12"), None);
        assert!(Month::parse("2026-01") < Month::parse("2026-02"));
        assert_eq!(Month::of(-1), None, "before 1970");
    }

    #[test]
    fn partition_bounds_are_read() {
        assert_eq!(
            bounds("FOR VALUES FROM ('1796083200000') TO ('1798761600000')"),
            Some((1_796_083_200_000, 1_798_761_600_000))
        );
        assert_eq!(
            bounds("FOR VALUES FROM (MINVALUE) TO ('5')"),
            Some((i64::MIN, 5))
        );
        assert_eq!(bounds("DEFAULT"), None);
    }
}
