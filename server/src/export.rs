//! The 好差评 export in the provincial platform's shape: per day, every rating's
//! `record` (the `rating_recorded` events' 好差评 records, see `docs/events.md`) as
//! JSON lines and as CSV, each output field taken from the record through the
//! configured field map (`[export.fields]`).
//!
//! A ticket rated again within the controller's replace window (`replaced`) is exported
//! once, with its newest record: the platform takes one rating per service event.
//! The files are written to a temporary name, synced, renamed and the directory
//! synced, so a reader sees a whole file or none. `hallq-server run` writes the
//! previous day's files once a day (`[export] dir`, `at`); which days are written is
//! recorded in PostgreSQL (`exports`), so two instances or a restart do not write a day
//! twice, and a day missed while no instance ran is written at the next start.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{NaiveDate, NaiveTime};
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::watch;
use tokio_postgres::GenericClient;
use tokio_postgres::types::Json;

use crate::config::Export;
use crate::db::DbError;

/// `[export.fields]`: output name → the record's field, in the file's order.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldMap(pub Vec<(String, String)>);

impl<'de> Deserialize<'de> for FieldMap {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<FieldMap, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = FieldMap;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a table of output names to record fields (strings)")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<FieldMap, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, String>()? {
                    out.push((k, v));
                }
                Ok(FieldMap(out))
            }
        }
        d.deserialize_map(Visit)
    }
}

impl FieldMap {
    /// Puts the fields in the order `text` (the configuration file) lists them: the
    /// TOML reader may hand a table over sorted by key.
    pub fn in_file_order(&mut self, text: &str) {
        let Ok(doc) = toml_edit::Document::parse(text) else {
            return;
        };
        let order: Vec<String> = doc
            .as_item()
            .get("export")
            .and_then(|e| e.get("fields"))
            .and_then(toml_edit::Item::as_table_like)
            .map(|t| t.iter().map(|(k, _)| k.to_string()).collect())
            .unwrap_or_default();
        self.0
            .sort_by_key(|(name, _)| order.iter().position(|k| k == name).unwrap_or(usize::MAX));
    }
}

/// Besides the record's own fields, what an output field may take: the event's id
/// (the rating's unique id, stable across resends), its hall and its controller.
pub const EVENT_FIELDS: [&str; 3] = ["id", "hall_id", "controller_id"];

/// The record's own fields, from the controller's [`hallq::evaluation::Record`] (every
/// field is named here, so a field added to the record fails to compile until it is
/// known here too).
pub fn record_fields() -> Vec<String> {
    let sample = hallq::evaluation::Record {
        channel_code: String::new(),
        channel: String::new(),
        item_code: None,
        service: String::new(),
        service_name: String::new(),
        department: String::new(),
        department_code: None,
        region_code: None,
        window: None,
        window_name: None,
        staff_id: None,
        staff_name: None,
        case_no: None,
        handle_state: String::new(),
        served_from: None,
        served_to: None,
        rated_at: 0,
        level: String::new(),
        level_code: String::new(),
        bad: false,
        reasons: Vec::new(),
        comment: None,
        ticket: 0,
        number: String::new(),
    };
    match serde_json::to_value(sample) {
        Ok(Value::Object(m)) => m.keys().cloned().collect(),
        _ => Vec::new(),
    }
}

/// Every path an output field may name.
pub fn known_paths() -> Vec<String> {
    let mut k = record_fields();
    k.extend(EVENT_FIELDS.iter().map(|s| s.to_string()));
    k
}

/// `HH:MM` as minutes after midnight.
pub fn parse_hhmm(s: &str) -> Option<u32> {
    let t = NaiveTime::parse_from_str(s, "%H:%M").ok()?;
    Some(chrono::Timelike::hour(&t) * 60 + chrono::Timelike::minute(&t))
}

/// `+08:00` / `-03:30` as minutes east of UTC.
pub fn parse_offset(s: &str) -> Option<i32> {
    let (sign, rest) = match s.as_bytes().first()? {
        b'+' => (1, &s[1..]),
        b'-' => (-1, &s[1..]),
        _ => return None,
    };
    let (h, m) = rest.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (i32, i32) = (h.parse().ok()?, m.parse().ok()?);
    (h <= 14 && m < 60).then_some(sign * (h * 60 + m))
}

/// The export's settings, read from a checked `[export]`.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The daily run's directory.
    pub dir: Option<PathBuf>,
    /// The daily run's time, minutes after local midnight.
    pub at_minutes: u32,
    /// Minutes east of UTC.
    pub offset_minutes: i32,
    /// Output name → path.
    pub fields: Vec<(String, String)>,
}

impl Settings {
    /// From a section [`crate::config::ServerConfig::parse`] has checked (a value it
    /// would refuse falls back to the default).
    pub fn new(e: &Export) -> Settings {
        let fields = match &e.fields {
            Some(f) => f.0.clone(),
            None => record_fields()
                .into_iter()
                .map(|f| (f.clone(), f))
                .collect(),
        };
        Settings {
            dir: e.dir.clone(),
            at_minutes: parse_hhmm(&e.at).unwrap_or(90),
            offset_minutes: parse_offset(&e.utc_offset).unwrap_or(480),
            fields,
        }
    }

    /// The first and the last-plus-one instant (ms) of a local day.
    pub fn day_span(&self, day: NaiveDate) -> (i64, i64) {
        let start = day.and_time(NaiveTime::MIN).and_utc().timestamp_millis()
            - i64::from(self.offset_minutes) * 60_000;
        (start, start + 86_400_000)
    }

    /// The newest day whose daily export is due at `now_ms`: yesterday once the local
    /// time has reached `at`, the day before until then.
    pub fn due_day(&self, now_ms: i64) -> Option<NaiveDate> {
        let local = chrono::DateTime::from_timestamp_millis(
            now_ms + i64::from(self.offset_minutes) * 60_000,
        )?
        .naive_utc();
        let minutes = chrono::Timelike::num_seconds_from_midnight(&local.time()) / 60;
        let back = if minutes >= self.at_minutes { 1 } else { 2 };
        local.date().checked_sub_days(chrono::Days::new(back))
    }
}

/// One exported rating: the event's id, hall and controller, and its record.
#[derive(Debug, Clone, PartialEq)]
pub struct Rated {
    /// The `rating_recorded` event's id.
    pub id: String,
    /// Its hall.
    pub hall_id: String,
    /// Its controller.
    pub controller_id: String,
    /// The record.
    pub record: Value,
}

impl Rated {
    /// The value at `path` (null where this record has no such field).
    pub fn get(&self, path: &str) -> Value {
        match path {
            "id" => Value::String(self.id.clone()),
            "hall_id" => Value::String(self.hall_id.clone()),
            "controller_id" => Value::String(self.controller_id.clone()),
            p => self.record.get(p).cloned().unwrap_or(Value::Null),
        }
    }
}

/// The ratings of a local day of the halls in `halls` (`None`: every hall), the newest
/// record per ticket, ordered by hall, controller and time of rating. The caller
/// decides which halls a request may see.
pub async fn day_ratings(
    db: &impl GenericClient,
    settings: &Settings,
    day: NaiveDate,
    halls: Option<&[String]>,
) -> Result<Vec<Rated>, DbError> {
    let (from, to) = settings.day_span(day);
    let halls: Option<Vec<String>> = halls.map(<[String]>::to_vec);
    let rows = db
        .query(
            "SELECT id::text, hall_id, controller_id, record FROM (
                 SELECT DISTINCT ON (controller_id, payload->'record'->'ticket')
                        id, hall_id, controller_id, payload->'record' AS record
                 FROM events
                 WHERE type = 'rating_recorded' AND at >= $1 AND at < $2
                   AND payload->'record' IS NOT NULL
                   AND ($3::text[] IS NULL OR hall_id = ANY($3))
                 ORDER BY controller_id, payload->'record'->'ticket', seq DESC) r
             ORDER BY hall_id, controller_id, (record->>'rated_at')::int8, id",
            &[&from, &to, &halls],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| Rated {
            id: r.get(0),
            hall_id: r.get(1),
            controller_id: r.get(2),
            record: r.get::<_, Json<Value>>(3).0,
        })
        .collect())
}

/// JSON lines: one object per rating, its keys in the field map's order.
pub fn jsonl(fields: &[(String, String)], rated: &[Rated]) -> String {
    let mut out = String::new();
    for r in rated {
        out.push('{');
        for (i, (name, path)) in fields.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(&Value::String(name.clone()).to_string());
            out.push(':');
            out.push_str(&r.get(path).to_string());
        }
        out.push_str("}\n");
    }
    out
}

/// A CSV cell's text: a string as it is, null empty, anything else (numbers, true and
/// false, the reasons' list) as JSON.
pub fn cell_text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// One CSV field (RFC 4180): quoted when it holds a comma, a quote, a line break or
/// leading or trailing space, with its quotes doubled.
pub fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) || s.starts_with(' ') || s.ends_with(' ') {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// CSV (RFC 4180, UTF-8, CRLF): a header of the output names, then one row per rating.
pub fn csv(fields: &[(String, String)], rated: &[Rated]) -> String {
    let mut out = String::new();
    let line = |cells: Vec<String>, out: &mut String| {
        out.push_str(&cells.join(","));
        out.push_str("\r\n");
    };
    line(fields.iter().map(|(n, _)| csv_field(n)).collect(), &mut out);
    for r in rated {
        line(
            fields
                .iter()
                .map(|(_, p)| csv_field(&cell_text(&r.get(p))))
                .collect(),
            &mut out,
        );
    }
    out
}

/// Writes `bytes` to `dir/name` whole or not at all: a temporary file, fsync, rename,
/// then the directory's fsync.
pub fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<PathBuf> {
    use std::io::Write as _;
    std::fs::create_dir_all(dir)?;
    let path = dir.join(name);
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, &path)?;
    std::fs::File::open(dir)?.sync_all()?;
    Ok(path)
}

/// What a day's export did.
#[derive(Debug, Clone)]
pub struct Written {
    /// The files, JSON lines first.
    pub files: Vec<PathBuf>,
    /// Ratings in them.
    pub ratings: usize,
}

/// Writes `ratings-<day>.jsonl` and `.csv` into `dir`.
pub fn write_day(
    dir: &Path,
    settings: &Settings,
    day: NaiveDate,
    rated: &[Rated],
) -> std::io::Result<Written> {
    let jsonl_file = write_atomic(
        dir,
        &format!("ratings-{day}.jsonl"),
        jsonl(&settings.fields, rated).as_bytes(),
    )?;
    let csv_file = write_atomic(
        dir,
        &format!("ratings-{day}.csv"),
        csv(&settings.fields, rated).as_bytes(),
    )?;
    Ok(Written {
        files: vec![jsonl_file, csv_file],
        ratings: rated.len(),
    })
}

/// The halls of a region and every region below it (by the configured halls); `None`
/// for a code that is not 12 digits.
pub fn halls_of_region(halls: &[crate::config::Hall], region: &str) -> Option<Vec<String>> {
    crate::config::region_level(region)?;
    Some(
        halls
            .iter()
            .filter(|h| crate::auth::within(&h.region, region))
            .map(|h| h.id.clone())
            .collect(),
    )
}

/// Why a daily export did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// PostgreSQL.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The directory or a file.
    #[error("writing the export: {0}")]
    Io(#[from] std::io::Error),
}

impl From<tokio_postgres::Error> for ExportError {
    fn from(e: tokio_postgres::Error) -> ExportError {
        ExportError::Db(e.into())
    }
}

/// Writes a day's files unless an instance has already (recorded in `exports`):
/// instances take turns on an advisory lock and a day is recorded only once its files
/// are in place, so an instance dying mid-way leaves the day to the next try.
/// `Some` with what was written, `None` when it had been.
pub async fn daily_once(
    db: &mut tokio_postgres::Client,
    settings: &Settings,
    dir: &Path,
    day: NaiveDate,
    instance: &str,
) -> Result<Option<Written>, ExportError> {
    let tx = db.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock(4852)", &[])
        .await?;
    let key = day.to_string();
    if tx
        .query_opt("SELECT 1 FROM exports WHERE day = $1", &[&key])
        .await?
        .is_some()
    {
        return Ok(None);
    }
    let rated = day_ratings(&tx, settings, day, None).await?;
    let (dir, s, r) = (dir.to_path_buf(), settings.clone(), rated);
    let written = tokio::task::spawn_blocking(move || write_day(&dir, &s, day, &r))
        .await
        .map_err(std::io::Error::other)??;
    let n = written.ratings as i64;
    tx.execute(
        "INSERT INTO exports (day, written_at, instance, ratings) VALUES ($1, $2, $3, $4)",
        &[&key, &crate::now_ms(), &instance, &n],
    )
    .await?;
    tx.commit().await?;
    Ok(Some(written))
}

/// The days to write now: the due day, and after the newest day written every day
/// between (a month at most, for a platform stopped that long).
pub fn days_to_write(last: Option<NaiveDate>, due: NaiveDate) -> Vec<NaiveDate> {
    let first = match last {
        Some(l) => l.succ_opt().unwrap_or(due),
        None => due,
    };
    let first = first.max(due - chrono::Days::new(30));
    first.iter_days().take_while(|d| *d <= due).collect()
}

/// The daily run: every half minute, writes the days due that are not written yet.
pub async fn run_daily(
    settings: Settings,
    dir: PathBuf,
    db_url: String,
    instance: String,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut db: Option<tokio_postgres::Client> = None;
    loop {
        if db.as_ref().is_none_or(tokio_postgres::Client::is_closed) {
            db = match crate::db::connect(&db_url, Duration::ZERO).await {
                Ok(c) => Some(c),
                Err(e) => {
                    tracing::warn!("好差评 export: {e}; again in 30 s");
                    None
                }
            };
        }
        if let (Some(c), Some(due)) = (db.as_mut(), settings.due_day(crate::now_ms()))
            && let Err(e) = daily_round(c, &settings, &dir, due, &instance).await
        {
            tracing::warn!("好差评 export: {e}; again in 30 s");
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(30)) => {}
            _ = shutdown.changed() => return,
        }
    }
}

async fn daily_round(
    db: &mut tokio_postgres::Client,
    settings: &Settings,
    dir: &Path,
    due: NaiveDate,
    instance: &str,
) -> Result<(), ExportError> {
    let last: Option<String> = db
        .query_one("SELECT max(day) FROM exports", &[])
        .await?
        .get(0);
    let last = last.and_then(|d| NaiveDate::parse_from_str(&d, "%Y-%m-%d").ok());
    if last.is_some_and(|l| l >= due) {
        return Ok(());
    }
    for day in days_to_write(last, due) {
        if let Some(w) = daily_once(db, settings, dir, day, instance).await? {
            tracing::info!(
                "好差评 export of {day}: {} ratings in {}",
                w.ratings,
                w.files[0].display()
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Settings {
        Settings::new(&Export::default())
    }

    fn day(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date")
    }

    #[test]
    fn days_are_local_and_the_run_waits_for_its_time() {
        let s = settings();
        // 2026-12-07 00:00 at +08:00 is 2026-12-06 16:00 UTC.
        let (from, to) = s.day_span(day("2026-12-07"));
        assert_eq!(from, 1_796_572_800_000);
        assert_eq!(to - from, 86_400_000);
        // 01:29 local on the 7th: the 5th is due; 01:30: the 6th.
        let at_0129 = from + 89 * 60_000;
        assert_eq!(s.due_day(at_0129), Some(day("2026-12-05")));
        assert_eq!(s.due_day(at_0129 + 60_000), Some(day("2026-12-06")));
        assert_eq!(parse_offset("-03:30"), Some(-210));
        assert_eq!(parse_offset("08:00"), None);
        assert_eq!(parse_hhmm("24:00"), None);
        assert_eq!(parse_hhmm("23:59"), Some(1439));
    }

    #[test]
    fn missed_days_are_written_after_the_last_one_a_month_at_most() {
        let due = day("2026-12-06");
        assert_eq!(days_to_write(None, due), vec![due]);
        assert_eq!(
            days_to_write(Some(day("2026-12-03")), due),
            vec![day("2026-12-04"), day("2026-12-05"), due]
        );
        assert_eq!(days_to_write(Some(day("2026-01-01")), due).len(), 31);
    }

    #[test]
    fn csv_quotes_commas_quotes_and_line_breaks() {
        let fields = vec![
            ("evaluate_id".to_string(), "id".to_string()),
            ("comment".to_string(), "comment".to_string()),
            ("reasons".to_string(), "reasons".to_string()),
            ("window".to_string(), "window".to_string()),
        ];
        let r = Rated {
            id: "e1".into(),
            hall_id: "h".into(),
            controller_id: "c".into(),
            record: serde_json::json!({"comment": "慢,\"很\"慢\n下次", "reasons": ["a"], "window": null}),
        };
        assert_eq!(
            csv(&fields, std::slice::from_ref(&r)),
            "evaluate_id,comment,reasons,window\r\ne1,\"慢,\"\"很\"\"慢\n下次\",\"[\"\"a\"\"]\",\r\n"
        );
        assert_eq!(
            jsonl(&fields, &[r]),
            "{\"evaluate_id\":\"e1\",\"comment\":\"慢,\\\"很\\\"慢\\n下次\",\"reasons\":[\"a\"],\"window\":null}\n"
        );
    }

    #[test]
    fn the_default_map_is_the_records_own_fields() {
        let s = settings();
        assert_eq!(s.fields.len(), 24);
        assert!(s.fields.iter().all(|(a, b)| a == b));
        assert!(known_paths().contains(&"id".to_string()));
    }

    #[test]
    fn a_regions_halls_are_those_in_it_and_below() {
        let hall = |id: &str, region: &str| crate::config::Hall {
            id: id.into(),
            name: id.into(),
            region: region.into(),
        };
        let halls = [
            hall("county", "330122000000"),
            hall("town", "330122100000"),
            hall("village", "330122100201"),
            hall("other", "330123000000"),
        ];
        assert_eq!(
            halls_of_region(&halls, "330122100000"),
            Some(vec!["town".into(), "village".into()])
        );
        assert_eq!(
            halls_of_region(&halls, "330122000000").map(|h| h.len()),
            Some(3)
        );
        assert_eq!(halls_of_region(&halls, "33"), None);
    }
}
