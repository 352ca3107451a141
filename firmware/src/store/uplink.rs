//! The store's side of the uplink: the events table read as an outbox (first
//! undelivered event, pages of undelivered rows, delivered marks), and the
//! configurations pushed from the hall server. Retention is in [`super::archive`].
//!
//! The outbox functions take a plain [`Connection`] so the uplink can use a connection
//! of its own beside the core's (see `uplink::outbox` for why).

use rusqlite::{Connection, OptionalExtension, params};

use super::{NewEvent, Store, StoreError, StoredEvent, append_counted};

/// One undelivered row, as the uplink sends it (the payload stays JSON text).
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxRow {
    /// Sequence number.
    pub seq: i64,
    /// Event id (UUID), stable across resends.
    pub id: String,
    /// When it happened (ms since the epoch).
    pub at: i64,
    /// Type name.
    pub kind: String,
    /// Layout version.
    pub schema: i64,
    /// The body, JSON text as stored.
    pub payload: String,
}

/// What the outbox holds right now.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct Backlog {
    /// Events not yet acknowledged by the broker.
    pub undelivered: i64,
    /// The oldest undelivered event: sequence number and time (ms).
    pub oldest_seq: Option<i64>,
    /// Its time, ms since the epoch.
    pub oldest_at: Option<i64>,
    /// The newest event's sequence number (0 for an empty log).
    pub last_seq: i64,
}

/// The sequence number before the first undelivered event: sending resumes after it.
pub fn delivered_watermark(conn: &Connection) -> Result<i64, StoreError> {
    let first: Option<i64> = conn.query_row(
        "SELECT MIN(seq) FROM events WHERE delivered_at IS NULL",
        [],
        |r| r.get(0),
    )?;
    match first {
        Some(seq) => Ok(seq - 1),
        None => Ok(conn.query_row("SELECT COALESCE(MAX(seq), 0) FROM events", [], |r| r.get(0))?),
    }
}

/// An outbox row from `SELECT seq, id, at, type, schema, payload`.
fn outbox_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<OutboxRow> {
    Ok(OutboxRow {
        seq: r.get(0)?,
        id: r.get(1)?,
        at: r.get(2)?,
        kind: r.get(3)?,
        schema: r.get(4)?,
        payload: r.get(5)?,
    })
}

/// Every event after `seq`, delivered or not, oldest first, at most `limit`: what the
/// link sends from its cursor. The cursor starts at the delivered watermark (delivered
/// events are always a prefix of the log), so normally these are the undelivered
/// events; after a `resend` the cursor is lower and delivered events go again.
pub fn events_after(
    conn: &Connection,
    seq: i64,
    limit: usize,
) -> Result<Vec<OutboxRow>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT seq, id, at, type, schema, payload FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![seq, limit as i64], outbox_row)?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// The newest sequence number ever committed (0 for an empty log), even when retention
/// has removed that event: `events_high_water` in `meta` remembers the highest deleted.
pub fn newest_seq(conn: &Connection) -> Result<i64, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT MAX(COALESCE((SELECT MAX(seq) FROM events), 0), \
         COALESCE((SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'events_high_water'), 0))",
    )?;
    Ok(stmt.query_row([], |r| r.get(0))?)
}

/// What a `resend` from a sequence number can send, from the database alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct ResendRange {
    /// The first event that will be sent again (past `last_seq`: nothing to send).
    pub from_seq: i64,
    /// The newest event now.
    pub last_seq: i64,
    /// Events asked for below this seq left the database for the audit archive; they
    /// are not sent. `None` when every event asked for is still here.
    pub archived_before: Option<i64>,
}

/// Where a resend asked to start at `from` (≥ 1) really starts: at `from`, or just
/// after the newest event at or after it that retention removed, so that what is sent
/// is every event from there on, without holes (retention keeps a few old control
/// events, which alone would make a hole-ridden resend).
pub fn resend_range(conn: &Connection, from: i64) -> Result<ResendRange, StoreError> {
    let last = newest_seq(conn)?;
    if from > last {
        return Ok(ResendRange {
            from_seq: from,
            last_seq: last,
            archived_before: None,
        });
    }
    // An event whose predecessor (at or after `from`) is missing marks a removed run.
    let after_hole: Option<i64> = conn.query_row(
        "SELECT MAX(e.seq) FROM events e WHERE e.seq > ?1 \
         AND NOT EXISTS (SELECT 1 FROM events p WHERE p.seq = e.seq - 1)",
        [from],
        |r| r.get(0),
    )?;
    let newest_kept = conn
        .query_row("SELECT 1 FROM events WHERE seq = ?1", [last], |_| Ok(()))
        .optional()?
        .is_some();
    // A missing `from` is caught too: the first event kept after it follows a hole.
    let archived_before = if newest_kept {
        after_hole
    } else {
        Some(last + 1)
    };
    Ok(ResendRange {
        from_seq: archived_before.unwrap_or(from),
        last_seq: last,
        archived_before,
    })
}

/// Marks every undelivered event up to and including `upto` as delivered at `at`.
/// Returns how many rows changed.
pub fn mark_delivered(conn: &Connection, upto: i64, at: i64) -> Result<usize, StoreError> {
    let mut stmt = conn.prepare_cached(
        "UPDATE events SET delivered_at = ?1 WHERE delivered_at IS NULL AND seq <= ?2",
    )?;
    Ok(stmt.execute(params![at, upto])?)
}

/// Size and age of the backlog.
pub fn backlog(conn: &Connection) -> Result<Backlog, StoreError> {
    let (undelivered, oldest_seq): (i64, Option<i64>) = conn.query_row(
        "SELECT COUNT(*), MIN(seq) FROM events WHERE delivered_at IS NULL",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let oldest_at = match oldest_seq {
        Some(s) => conn
            .query_row("SELECT at FROM events WHERE seq = ?1", [s], |r| r.get(0))
            .optional()?,
        None => None,
    };
    let last_seq = conn.query_row("SELECT COALESCE(MAX(seq), 0) FROM events", [], |r| r.get(0))?;
    Ok(Backlog {
        undelivered,
        oldest_seq,
        oldest_at,
        last_seq,
    })
}

/// The newest event of one of `kinds` (they must be covered by the `events_controls`
/// index), for state that commands from above leave behind (kiosk lock, notice).
///
/// The kinds are written into the statement as literals, beside the index's own
/// condition: SQLite uses a partial index only when the query's condition visibly
/// contains the index's, which bound parameters (or a narrower list) hide. With `?` marks the lookup scanned every event (0.15 s at start-up
/// for a month of history, seconds for years).
pub fn latest_of(
    conn: &Connection,
    kinds: &[&'static str],
) -> Result<Option<StoredEvent>, StoreError> {
    conn.query_row(&latest_of_sql(kinds)?, [], super::event_from_row)
        .optional()?
        .transpose()
}

fn latest_of_sql(kinds: &[&'static str]) -> Result<String, StoreError> {
    if kinds.is_empty()
        || kinds
            .iter()
            .any(|k| k.is_empty() || !k.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
    {
        return Err(StoreError::Damaged(format!("not event kinds: {kinds:?}")));
    }
    let list = kinds
        .iter()
        .map(|k| format!("'{k}'"))
        .collect::<Vec<_>>()
        .join(", ");
    // The index's own condition, word for word, is what lets SQLite pick it.
    Ok(format!(
        "SELECT seq, id, at, type, schema, payload FROM events \
         WHERE type IN ('kiosk_locked', 'kiosk_unlocked', 'notice_shown', 'notice_cleared') \
         AND type IN ({list}) ORDER BY seq DESC LIMIT 1"
    ))
}

/// The newest configuration pushed from the hall server: version and document.
pub fn pushed_config(conn: &Connection) -> Result<Option<(i64, String)>, StoreError> {
    Ok(conn
        .query_row(
            "SELECT version, document FROM pushed_config ORDER BY version DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?)
}

impl Store {
    /// Records a pushed configuration and its audit events in one durable transaction.
    pub fn save_config(
        &mut self,
        version: i64,
        document: &str,
        events: &[NewEvent],
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let at = events.first().map_or(0, |e| e.at.0);
        tx.execute(
            "INSERT OR REPLACE INTO pushed_config (version, document, applied_at) VALUES (?1, ?2, ?3)",
            params![version, document, at],
        )?;
        let stored = append_counted(&tx, events, &self.figure_rules)?;
        tx.commit()?;
        Ok(stored)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hallq_engine::Timestamp;

    fn events(store: &mut Store, n: usize) {
        let batch: Vec<NewEvent> = (0..n)
            .map(|i| NewEvent {
                at: Timestamp(1_000 + i as i64),
                kind: "test".into(),
                payload: format!("{{\"type\":\"test\",\"i\":{i}}}"),
            })
            .collect();
        store.append(&batch).unwrap();
    }

    #[test]
    fn sending_resumes_after_the_last_contiguous_delivered_event() {
        let mut store = Store::in_memory().unwrap();
        assert_eq!(delivered_watermark(store.conn()).unwrap(), 0);
        events(&mut store, 10);
        assert_eq!(delivered_watermark(store.conn()).unwrap(), 0);
        assert_eq!(mark_delivered(store.conn(), 4, 5_000).unwrap(), 4);
        assert_eq!(delivered_watermark(store.conn()).unwrap(), 4);
        let rows = events_after(store.conn(), 4, 3).unwrap();
        assert_eq!(
            rows.iter().map(|r| r.seq).collect::<Vec<_>>(),
            vec![5, 6, 7]
        );
        let b = backlog(store.conn()).unwrap();
        assert_eq!((b.undelivered, b.oldest_seq, b.last_seq), (6, Some(5), 10));
        mark_delivered(store.conn(), 10, 6_000).unwrap();
        assert_eq!(delivered_watermark(store.conn()).unwrap(), 10);
    }

    #[test]
    fn a_delivered_mark_is_never_changed_and_content_never_edited() {
        let mut store = Store::in_memory().unwrap();
        events(&mut store, 2);
        mark_delivered(store.conn(), 1, 5_000).unwrap();
        assert!(
            store
                .conn()
                .execute("UPDATE events SET delivered_at = 9 WHERE seq = 1", [])
                .is_err()
        );
        assert!(
            store
                .conn()
                .execute("UPDATE events SET payload = '{}' WHERE seq = 2", [])
                .is_err()
        );
        // Marking again leaves the first mark alone.
        assert_eq!(mark_delivered(store.conn(), 1, 7_000).unwrap(), 0);
    }

    #[test]
    fn only_delivered_events_can_be_removed() {
        let mut store = Store::in_memory().unwrap();
        events(&mut store, 5);
        mark_delivered(store.conn(), 2, 1_000).unwrap();
        mark_delivered(store.conn(), 3, 9_000).unwrap();
        assert_eq!(
            store
                .conn()
                .execute("DELETE FROM events WHERE delivered_at < 5000", [])
                .unwrap(),
            2
        );
        assert!(
            store
                .conn()
                .execute("DELETE FROM events WHERE seq = 5", [])
                .is_err(),
            "an undelivered event must not be deletable"
        );
        let b = backlog(store.conn()).unwrap();
        assert_eq!((b.undelivered, b.oldest_seq, b.last_seq), (2, Some(4), 5));
        // Sequence numbers are never reused after a deletion.
        events(&mut store, 1);
        assert_eq!(store.last_seq().unwrap(), 6);
    }

    #[test]
    fn a_resend_reads_delivered_events_again_and_starts_after_what_retention_removed() {
        let mut store = Store::in_memory().unwrap();
        events(&mut store, 10);
        mark_delivered(store.conn(), 10, 5_000).unwrap();
        assert_eq!(backlog(store.conn()).unwrap().undelivered, 0);
        let again = events_after(store.conn(), 3, 100).unwrap();
        assert_eq!(
            again.iter().map(|r| r.seq).collect::<Vec<_>>(),
            (4..=10).collect::<Vec<_>>()
        );
        // Sending again changes no delivered mark.
        assert_eq!(delivered_watermark(store.conn()).unwrap(), 10);
        let whole = |from| resend_range(store.conn(), from).unwrap();
        assert_eq!(
            whole(4),
            ResendRange {
                from_seq: 4,
                last_seq: 10,
                archived_before: None
            }
        );
        // Past the newest event: nothing to send, not an error.
        assert_eq!(whole(11).from_seq, 11);
        assert_eq!(whole(11).archived_before, None);
        // Retention removed 1–3 and 5–6 but kept 4 (say, a kiosk lock).
        store
            .conn()
            .execute("DELETE FROM events WHERE seq IN (1, 2, 3, 5, 6)", [])
            .unwrap();
        for from in [1, 2, 4, 5, 7] {
            let r = whole(from);
            let expected = if from < 7 { Some(7) } else { None };
            assert_eq!(r.archived_before, expected, "from {from}");
            assert_eq!(r.from_seq, 7, "from {from}");
            assert_eq!(r.last_seq, 10);
        }
        // Everything removed: the newest seq is still known, nothing can be sent.
        store.conn().execute("DELETE FROM events", []).unwrap();
        assert_eq!(newest_seq(store.conn()).unwrap(), 10);
        assert_eq!(
            whole(8),
            ResendRange {
                from_seq: 11,
                last_seq: 10,
                archived_before: Some(11)
            }
        );
    }

    #[test]
    fn the_latest_control_event_is_found_through_its_index_not_a_scan() {
        let store = Store::in_memory().unwrap();
        for kinds in [
            &["kiosk_locked", "kiosk_unlocked"][..],
            &["notice_shown", "notice_cleared"][..],
        ] {
            let sql = super::latest_of_sql(kinds).unwrap();
            let plan: Vec<String> = store
                .conn()
                .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                .unwrap()
                .query_map([], |r| r.get::<_, String>(3))
                .unwrap()
                .map(Result::unwrap)
                .collect();
            assert!(
                plan.iter().any(|l| l.contains("events_controls")),
                "{kinds:?}: {plan:?}"
            );
        }
        assert!(super::latest_of_sql(&["x'); DROP TABLE events; --"]).is_err());
    }
}
