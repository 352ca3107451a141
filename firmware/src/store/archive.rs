//! Retention without losing the audit trail: delivered events past retention leave the
//! database only after they are in a compressed, checksummed archive file, one per
//! calendar month (the hall's local time), in the data directory's `archive/` folder.
//!
//! # The file
//! `events-YYYY-MM.jsonl.gz`: gzip of one JSON object per line, in sequence order,
//! each the stored event (`seq`, `id`, `at`, `type`, `schema`, `delivered_at`,
//! `payload`), then one trailer line
//! `{"archive":"hallq-events","month":…,"events":N,"first_seq":…,"last_seq":…,"sha256":…}`
//! whose `sha256` is over every byte before it (the uncompressed lines). Readable with
//! `zcat`; `hallq archive verify` checks every file.
//!
//! # When
//! A month is archived once retention has passed its end: an event leaves the database
//! when it was delivered before the cut-off *and* its month ended before the cut-off's
//! month began, so each month's file is normally written once, complete. An event of an
//! archived month delivered late (after an outage) is merged into the existing file,
//! which is rewritten. Every write goes to a temporary file, is fsynced, renamed over
//! the old one and the directory fsynced, and is read back and verified before a row is
//! deleted; a crash at any point leaves either the old file or the new one, and the
//! rows still in the database are simply archived again (duplicates are dropped by
//! sequence number).
//!
//! # Never pruned
//! The events start-up reads to restore state ([`KEPT_KINDS`]: kiosk lock, board
//! notice, device faults and recoveries) stay in the database whatever their age.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use chrono::{Datelike, NaiveDate};
use flate2::Compression;
use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use hallq_engine::{LocalClock, Timestamp};
use rusqlite::{Connection, params};
use sha2::{Digest, Sha256};

use super::StoreError;

/// Event types that start-up reads to restore state: never removed by retention.
pub const KEPT_KINDS: &[&str] = &[
    "kiosk_locked",
    "kiosk_unlocked",
    "notice_shown",
    "notice_cleared",
    "device_fault",
    "device_recovered",
];

/// Rows deleted per transaction, so the core's writer never waits long.
const DELETE_CHUNK: i64 = 5000;

/// Where and how retention archives.
#[derive(Debug, Clone)]
pub struct Retention {
    /// Days after delivery before an event may leave the database (0: never).
    pub days: u32,
    /// The archive folder (`<data_dir>/archive`).
    pub dir: PathBuf,
    /// The hall's offset from UTC, for its calendar months.
    pub utc_offset_minutes: i32,
}

/// One verified archive file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MonthFile {
    /// `YYYY-MM`.
    pub month: String,
    /// The file.
    pub path: PathBuf,
    /// Events in it.
    pub events: u64,
    /// Its first and last sequence numbers.
    pub first_seq: Option<i64>,
    /// See `first_seq`.
    pub last_seq: Option<i64>,
}

/// What one retention pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Events removed from the database (all of them are in the archive).
    pub removed: u64,
    /// Months whose file was written.
    pub months: Vec<String>,
}

/// The archive folder inside a data directory.
pub fn dir_in(data_dir: &Path) -> PathBuf {
    data_dir.join("archive")
}

fn file_name(month: &str) -> String {
    format!("events-{month}.jsonl.gz")
}

fn damaged(path: &Path, what: impl std::fmt::Display) -> StoreError {
    StoreError::Damaged(format!("archive {}: {what}", path.display()))
}

/// The first day of the month `d` is in, and of the next.
fn month_bounds(d: NaiveDate) -> (NaiveDate, NaiveDate) {
    let first = d.with_day(1).unwrap_or(d);
    let next = if first.month() == 12 {
        NaiveDate::from_ymd_opt(first.year() + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(first.year(), first.month() + 1, 1)
    };
    (first, next.unwrap_or(first))
}

fn kept_list() -> String {
    KEPT_KINDS
        .iter()
        .map(|k| format!("'{k}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The rows retention may remove, as a condition on `events` (parameters ?1 cut-off,
/// ?2 and ?3 the month's bounds in ms).
fn prunable() -> String {
    format!(
        "delivered_at IS NOT NULL AND delivered_at < ?1 AND at >= ?2 AND at < ?3 \
         AND type NOT IN ({})",
        kept_list()
    )
}

/// One archive line for a stored row; the payload goes in as stored (it is JSON).
fn line(
    seq: i64,
    id: &str,
    at: i64,
    kind: &str,
    schema: i64,
    delivered_at: Option<i64>,
    payload: &str,
) -> Result<String, StoreError> {
    // A payload that is not JSON would make the file unreadable: store it as a string.
    let payload = match serde_json::from_str::<serde::de::IgnoredAny>(payload) {
        Ok(_) => payload.to_string(),
        Err(_) => serde_json::to_string(payload)?,
    };
    Ok(format!(
        "{{\"seq\":{seq},\"id\":{},\"at\":{at},\"type\":{},\"schema\":{schema},\"delivered_at\":{},\"payload\":{payload}}}\n",
        serde_json::to_string(id)?,
        serde_json::to_string(kind)?,
        delivered_at.map_or("null".to_string(), |d| d.to_string()),
    ))
}

/// Reads an archive file: calls `each(seq, line)` for every event line in order (the
/// line with its newline), checks the trailer's count and checksum, and returns it.
pub fn read(
    path: &Path,
    mut each: impl FnMut(i64, &str) -> Result<(), StoreError>,
) -> Result<MonthFile, StoreError> {
    let file = File::open(path).map_err(|e| damaged(path, e))?;
    let mut reader = BufReader::new(MultiGzDecoder::new(BufReader::new(file)));
    let mut hash = Sha256::new();
    let mut events = 0u64;
    let mut first = None;
    let mut last: Option<i64> = None;
    let mut buf = String::new();
    loop {
        buf.clear();
        let n = reader.read_line(&mut buf).map_err(|e| damaged(path, e))?;
        if n == 0 {
            return Err(damaged(path, "ends without its trailer (truncated?)"));
        }
        let v: serde_json::Value = serde_json::from_str(&buf)
            .map_err(|e| damaged(path, format!("line {}: {e}", events + 1)))?;
        if v.get("archive").is_some() {
            let sum = hex::encode(hash.finalize());
            let month = v["month"].as_str().unwrap_or_default().to_string();
            if v["archive"] != "hallq-events" {
                return Err(damaged(path, "not a hallq event archive"));
            }
            if v["sha256"].as_str() != Some(sum.as_str()) {
                return Err(damaged(path, "checksum does not match its contents"));
            }
            if v["events"].as_u64() != Some(events) {
                return Err(damaged(
                    path,
                    format!("trailer says {} events, file holds {events}", v["events"]),
                ));
            }
            if reader.read_line(&mut buf).map_err(|e| damaged(path, e))? != 0 {
                return Err(damaged(path, "data after the trailer"));
            }
            return Ok(MonthFile {
                month,
                path: path.to_path_buf(),
                events,
                first_seq: first,
                last_seq: last,
            });
        }
        let seq = v["seq"]
            .as_i64()
            .ok_or_else(|| damaged(path, format!("line {} has no seq", events + 1)))?;
        if last.is_some_and(|l| seq <= l) {
            return Err(damaged(path, format!("seq {seq} out of order")));
        }
        hash.update(buf.as_bytes());
        first.get_or_insert(seq);
        last = Some(seq);
        events += 1;
        each(seq, &buf)?;
    }
}

/// Verifies every archive file in `dir`, oldest month first.
pub fn verify_dir(dir: &Path) -> Result<Vec<Result<MonthFile, StoreError>>, StoreError> {
    let mut paths: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("events-") && n.ends_with(".jsonl.gz"))
            })
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(damaged(dir, e)),
    };
    paths.sort();
    Ok(paths.iter().map(|p| read(p, |_, _| Ok(()))).collect())
}

/// Writes the month's file: what an existing file holds merged with `rows` (sorted by
/// seq; duplicates dropped), through a temporary file, fsync, rename, directory fsync;
/// then reads the result back. Returns the verified file.
fn write_month(
    dir: &Path,
    month: &str,
    rows: &mut dyn Iterator<Item = Result<(i64, String), StoreError>>,
) -> Result<MonthFile, StoreError> {
    std::fs::create_dir_all(dir).map_err(|e| damaged(dir, e))?;
    let path = dir.join(file_name(month));
    let tmp = dir.join(format!(".{}.tmp", file_name(month)));
    // What the file already holds is read whole only in the rare case of a merge.
    let mut old: Vec<(i64, String)> = Vec::new();
    if path.exists() {
        read(&path, |seq, l| {
            old.push((seq, l.to_string()));
            Ok(())
        })?;
    }
    let file = File::create(&tmp).map_err(|e| damaged(&tmp, e))?;
    let mut gz = GzEncoder::new(BufWriter::new(file), Compression::default());
    let mut hash = Sha256::new();
    let (mut events, mut first, mut last) = (0u64, None, None::<i64>);
    let mut put = |seq: i64, l: &str| -> Result<(), StoreError> {
        if last.is_some_and(|x| seq <= x) {
            return Ok(()); // already written (from the old file)
        }
        gz.write_all(l.as_bytes()).map_err(|e| damaged(&tmp, e))?;
        hash.update(l.as_bytes());
        first.get_or_insert(seq);
        last = Some(seq);
        events += 1;
        Ok(())
    };
    let mut old = old.into_iter().peekable();
    for row in rows {
        let (seq, l) = row?;
        while let Some((s, _)) = old.peek() {
            if *s > seq {
                break;
            }
            if let Some((s, ol)) = old.next() {
                put(s, &ol)?;
            }
        }
        put(seq, &l)?;
    }
    for (s, ol) in old {
        put(s, &ol)?;
    }
    let trailer = serde_json::json!({
        "archive": "hallq-events",
        "month": month,
        "events": events,
        "first_seq": first,
        "last_seq": last,
        "sha256": hex::encode(hash.finalize()),
    });
    gz.write_all(format!("{trailer}\n").as_bytes())
        .map_err(|e| damaged(&tmp, e))?;
    let file = gz
        .finish()
        .and_then(|w| w.into_inner().map_err(|e| e.into_error()))
        .map_err(|e| damaged(&tmp, e))?;
    file.sync_all().map_err(|e| damaged(&tmp, e))?;
    drop(file);
    std::fs::rename(&tmp, &path).map_err(|e| damaged(&path, e))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| damaged(dir, e))?;
    let written = read(&path, |_, _| Ok(()))?;
    if written.events != events {
        return Err(damaged(&path, "read back a different number of events"));
    }
    Ok(written)
}

/// One retention pass at `now`: archives and then removes every prunable event of
/// every month that ended before the cut-off's month began.
pub fn prune(conn: &Connection, r: &Retention, now: Timestamp) -> Result<Pruned, StoreError> {
    let mut done = Pruned::default();
    if r.days == 0 {
        return Ok(done);
    }
    let clock = LocalClock::new(r.utc_offset_minutes);
    let cutoff = now.0 - i64::from(r.days) * 86_400_000;
    let (cutoff_month, _) = month_bounds(clock.local(Timestamp(cutoff)).date());
    let before = clock
        .instant(cutoff_month.and_hms_opt(0, 0, 0).unwrap_or_default())
        .0;
    let oldest: Option<i64> = conn.query_row(
        &format!(
            "SELECT MIN(at) FROM events WHERE delivered_at IS NOT NULL AND delivered_at < ?1 \
             AND at < ?2 AND type NOT IN ({})",
            kept_list()
        ),
        params![cutoff, before],
        |row| row.get(0),
    )?;
    let Some(oldest) = oldest else {
        return Ok(done);
    };
    let mut month = month_bounds(clock.local(Timestamp(oldest)).date()).0;
    while month < cutoff_month {
        let (start, next) = month_bounds(month);
        let lo = clock
            .instant(start.and_hms_opt(0, 0, 0).unwrap_or_default())
            .0;
        let hi = clock
            .instant(next.and_hms_opt(0, 0, 0).unwrap_or_default())
            .0;
        let name = format!("{:04}-{:02}", start.year(), start.month());
        let count: i64 = conn.query_row(
            &format!("SELECT COUNT(*) FROM events WHERE {}", prunable()),
            params![cutoff, lo, hi],
            |row| row.get(0),
        )?;
        if count > 0 {
            let mut stmt = conn.prepare(&format!(
                "SELECT seq, id, at, type, schema, delivered_at, payload FROM events \
                 WHERE {} ORDER BY seq",
                prunable()
            ))?;
            let mut max_seq = 0i64;
            let mut rows = stmt.query_map(params![cutoff, lo, hi], |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, i64>(2)?,
                    row.get::<_, String>(3)?,
                    row.get::<_, i64>(4)?,
                    row.get::<_, Option<i64>>(5)?,
                    row.get::<_, String>(6)?,
                ))
            })?;
            let mut lines = std::iter::from_fn(|| {
                rows.next().map(|row| {
                    let (seq, id, at, kind, schema, delivered, payload) = row?;
                    max_seq = max_seq.max(seq);
                    Ok((seq, line(seq, &id, at, &kind, schema, delivered, &payload)?))
                })
            });
            let file = write_month(&r.dir, &name, &mut lines)?;
            drop(rows);
            drop(stmt);
            // Only now, with the file on disk and read back, do the rows go; in
            // chunks, so the core's writer never waits long behind this connection.
            let mut removed = 0u64;
            loop {
                let n = conn.execute(
                    &format!(
                        "DELETE FROM events WHERE seq IN (SELECT seq FROM events WHERE {} \
                         AND seq <= ?4 ORDER BY seq LIMIT {DELETE_CHUNK})",
                        prunable()
                    ),
                    params![cutoff, lo, hi, max_seq],
                )?;
                removed += n as u64;
                if (n as i64) < DELETE_CHUNK {
                    break;
                }
            }
            tracing::info!(
                month = %name,
                removed,
                archived = file.events,
                file = %file.path.display(),
                "events past retention archived and removed"
            );
            done.removed += removed;
            done.months.push(name);
        }
        month = next;
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{NewEvent, Store};

    const DAY: i64 = 86_400_000;
    // 2026-01-15 12:00 UTC.
    const JAN_15: i64 = 1_768_478_400_000;

    fn event(at: i64, kind: &str, i: usize) -> NewEvent {
        NewEvent {
            at: Timestamp(at),
            kind: kind.into(),
            payload: format!(r#"{{"type":"{kind}","i":{i},"message":"暂停取号"}}"#),
        }
    }

    fn retention(dir: &Path) -> Retention {
        Retention {
            days: 180,
            dir: dir.join("archive"),
            utc_offset_minutes: 480,
        }
    }

    #[test]
    fn pruned_events_are_archived_first_and_start_up_state_is_never_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("hallq.db")).unwrap();
        // January: a kiosk lock, a device fault and 100 tickets' worth of events;
        // February: 10 more. Everything delivered at once.
        let mut events = vec![
            event(JAN_15, "kiosk_locked", 0),
            NewEvent {
                at: Timestamp(JAN_15 + 1),
                kind: "device_fault".into(),
                payload: r#"{"type":"device_fault","device":"printer","severity":"fault","code":"paper_out","detail":"缺纸"}"#.into(),
            },
        ];
        events.extend((0..100).map(|i| event(JAN_15 + 2 + i as i64 * 1000, "ticket_issued", i)));
        events.extend((0..10).map(|i| event(JAN_15 + 31 * DAY + i as i64, "ticket_issued", i)));
        store.append(&events).unwrap();
        crate::store::uplink::mark_delivered(store.conn(), i64::MAX, JAN_15 + 40 * DAY).unwrap();
        let r = retention(dir.path());

        // 240 days on, the cut-off (180 days back) falls in mid-March, after delivery:
        // January and February ended before March began, so both go.
        let now = Timestamp(JAN_15 + 240 * DAY);
        let pruned = prune(store.conn(), &r, now).unwrap();
        assert_eq!(pruned.months, vec!["2026-01", "2026-02"]);
        assert_eq!(pruned.removed, 110);

        // The kiosk lock and the device fault stay, and start-up still reads them.
        let controls = crate::uplink::Controls::load(store.conn()).unwrap();
        assert!(controls.lock().is_some(), "the kiosk lock was lost");
        assert_eq!(store.device_events().unwrap().len(), 1);
        let left: i64 = store
            .conn()
            .query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0))
            .unwrap();
        assert_eq!(left, 2);

        // The archive holds every removed event, verifiably.
        let files: Vec<MonthFile> = verify_dir(&r.dir)
            .unwrap()
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert_eq!(
            files
                .iter()
                .map(|f| (f.month.as_str(), f.events))
                .collect::<Vec<_>>(),
            vec![("2026-01", 100), ("2026-02", 10)]
        );
        let mut seqs = Vec::new();
        read(&files[0].path, |seq, l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            assert_eq!(v["type"], "ticket_issued");
            assert_eq!(v["payload"]["message"], "暂停取号");
            seqs.push(seq);
            Ok(())
        })
        .unwrap();
        assert_eq!(seqs, (3..=102).collect::<Vec<i64>>());
        // Nothing is left to do the next hour.
        let again = prune(store.conn(), &r, Timestamp(now.0 + 3_600_000)).unwrap();
        assert_eq!(again, Pruned::default());
    }

    #[test]
    fn a_month_is_archived_only_after_it_has_ended_past_retention() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("hallq.db")).unwrap();
        store
            .append(
                &(0..5)
                    .map(|i| event(JAN_15 + i, "ticket_issued", i as usize))
                    .collect::<Vec<_>>(),
            )
            .unwrap();
        crate::store::uplink::mark_delivered(store.conn(), i64::MAX, JAN_15).unwrap();
        let r = retention(dir.path());
        // The cut-off is in January itself: January has not ended before its month.
        let pruned = prune(store.conn(), &r, Timestamp(JAN_15 + 185 * DAY)).unwrap();
        assert_eq!(pruned.removed, 0);
        assert!(verify_dir(&r.dir).unwrap().is_empty());
        // Undelivered events are never archived nor removed.
        store
            .append(&[event(JAN_15 + 10, "ticket_called", 9)])
            .unwrap();
        let pruned = prune(store.conn(), &r, Timestamp(JAN_15 + 240 * DAY)).unwrap();
        assert_eq!(pruned.removed, 5);
        let left: i64 = store
            .conn()
            .query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0))
            .unwrap();
        assert_eq!(left, 1);
        // ...until delivered: then it joins the month's file, which keeps the rest.
        crate::store::uplink::mark_delivered(store.conn(), i64::MAX, JAN_15 + 240 * DAY).unwrap();
        let pruned = prune(store.conn(), &r, Timestamp(JAN_15 + 480 * DAY)).unwrap();
        assert_eq!(pruned.removed, 1);
        let files = verify_dir(&r.dir).unwrap();
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].as_ref().unwrap().events, 6);
    }

    #[test]
    fn a_damaged_archive_is_reported_and_stops_retention() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("hallq.db")).unwrap();
        store
            .append(
                &(0..50)
                    .map(|i| event(JAN_15 + i, "ticket_issued", i as usize))
                    .collect::<Vec<_>>(),
            )
            .unwrap();
        crate::store::uplink::mark_delivered(store.conn(), 40, JAN_15).unwrap();
        let r = retention(dir.path());
        prune(store.conn(), &r, Timestamp(JAN_15 + 240 * DAY)).unwrap();
        let path = r.dir.join("events-2026-01.jsonl.gz");
        // One flipped byte in the middle of the compressed data.
        let mut bytes = std::fs::read(&path).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0x55;
        std::fs::write(&path, &bytes).unwrap();
        assert!(verify_dir(&r.dir).unwrap()[0].is_err());
        // A truncated file too.
        std::fs::write(&path, &bytes[..bytes.len() / 3]).unwrap();
        assert!(verify_dir(&r.dir).unwrap()[0].is_err());
        // The late events of that month are not removed over a damaged file.
        crate::store::uplink::mark_delivered(store.conn(), i64::MAX, JAN_15 + 1).unwrap();
        assert!(prune(store.conn(), &r, Timestamp(JAN_15 + 240 * DAY)).is_err());
        let left: i64 = store
            .conn()
            .query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0))
            .unwrap();
        assert_eq!(left, 10);
    }
}
