//! `hallq receive`: the reference receiver. It subscribes to controllers' event topics,
//! stores each event in SQLite once (keyed by event id, so resends are counted and
//! dropped), acknowledges a message only after it is stored, and reports gaps in each
//! controller's sequence. The test suite checks deliveries with it; a hall IT team can
//! run it beside a broker to see what arrives.
//!
//! With an SMS webhook it also takes the controllers' near-turn text messages (topic
//! `…/sms`), stores each once by id, and posts each to the webhook (as a hall server
//! hands them to its SMS provider) until one post is answered 2xx; then the mobile
//! number is erased from its row. A message sent again (same id) is never posted twice.
//!
//! With `repair_after` it repairs gaps as a hall server would: a gap in a controller's
//! sequence that stays open that long makes it publish a `resend` command from the
//! first missing seq on the controller's `cmd` topic (at most [`RESEND_TRIES`] times
//! for one gap, [`RESEND_AGAIN`] apart).

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, Incoming, MqttOptions, QoS, TlsConfiguration, Transport};
use rusqlite::{Connection, params};
use serde::Serialize;

use super::settings::TlsFiles;
use super::wire::{Envelope, SmsMessage};

/// Where and how to listen.
#[derive(Debug, Clone)]
pub struct ReceiveOptions {
    /// Broker host.
    pub host: String,
    /// Broker port.
    pub port: u16,
    /// Topic filter, e.g. `hallq/+/+/events`.
    pub topic: String,
    /// Client id; with a persistent session the broker keeps events while we are away.
    pub client_id: String,
    /// TLS files (CA, optional client certificate).
    pub tls: Option<TlsFiles>,
    /// Broker user name and password.
    pub credentials: Option<(String, String)>,
    /// Where near-turn text messages go, if anywhere.
    pub sms: Option<SmsWebhook>,
    /// Ask a controller to send again when a gap stays open this long (`None`: never).
    pub repair_after: Option<Duration>,
}

/// Times a receiver asks for one gap before it leaves it to a person (events the
/// controller archived cannot come again).
pub const RESEND_TRIES: u32 = 3;
/// How long a `resend` gets to fill a gap before it is asked again.
pub const RESEND_AGAIN: Duration = Duration::from_secs(30);

/// A gap in one controller's sequence, waiting to be filled.
#[derive(Debug, Clone)]
struct OpenGap {
    /// Its first missing seq.
    from: i64,
    /// The controller's topics (`<prefix>/<hall>/<controller>`).
    base: String,
    /// Since when `from` has been missing.
    since: Instant,
    /// Resends asked for this `from`, and when the last was.
    asked: u32,
    asked_at: Option<Instant>,
}

impl OpenGap {
    fn new(from: i64, base: &str) -> OpenGap {
        OpenGap {
            from,
            base: base.into(),
            since: Instant::now(),
            asked: 0,
            asked_at: None,
        }
    }
}

/// The first seq of `controller` missing at or after `from` and below its newest stored
/// event, or `None` when nothing is missing there.
pub fn first_missing(
    conn: &Connection,
    controller: &str,
    from: i64,
) -> rusqlite::Result<Option<i64>> {
    conn.query_row(
        "SELECT MIN(r.seq) + 1 FROM received r WHERE r.controller_id = ?1 AND r.seq >= ?2 - 1 \
         AND r.seq < (SELECT MAX(seq) FROM received WHERE controller_id = ?1) \
         AND NOT EXISTS (SELECT 1 FROM received n WHERE n.controller_id = ?1 AND n.seq = r.seq + 1)",
        params![controller, from],
        |r| r.get(0),
    )
}

/// What the receiver knows of each controller's sequence while it runs.
#[derive(Default)]
struct Sequences {
    /// The newest seq stored, per controller.
    last: HashMap<String, i64>,
    /// Gaps waiting to be filled (with repair on), per controller.
    open: HashMap<String, OpenGap>,
}

impl Sequences {
    /// Notes a newly stored event `e` that came on `topic`: a gap it reveals is logged,
    /// and kept for repair when `repair` is on.
    fn stored(
        &mut self,
        conn: &Connection,
        topic: &str,
        e: &Envelope,
        repair: bool,
    ) -> rusqlite::Result<()> {
        if !self.last.contains_key(&e.controller_id) {
            // What an earlier run stored counts: a gap may span a restart.
            let before = stored_before(conn, &e.controller_id, e.seq)?;
            self.last
                .insert(e.controller_id.clone(), before.unwrap_or(e.seq - 1));
        }
        let last = self
            .last
            .entry(e.controller_id.clone())
            .or_insert(e.seq - 1);
        if e.seq > *last + 1 {
            tracing::warn!(controller = %e.controller_id, from = *last + 1, to = e.seq - 1, "gap in sequence");
            if repair && let Some(base) = topic.strip_suffix("/events") {
                self.open
                    .entry(e.controller_id.clone())
                    .or_insert_with(|| OpenGap::new(*last + 1, base));
            }
        }
        *last = (*last).max(e.seq);
        Ok(())
    }
}

/// The newest seq of `controller` stored below `seq`.
fn stored_before(conn: &Connection, controller: &str, seq: i64) -> rusqlite::Result<Option<i64>> {
    conn.query_row(
        "SELECT MAX(seq) FROM received WHERE controller_id = ?1 AND seq < ?2",
        params![controller, seq],
        |r| r.get(0),
    )
}

/// Looks at every open gap: forgets the filled ones, and asks for the ones open longer
/// than `after` (again after [`RESEND_AGAIN`], at most [`RESEND_TRIES`] times).
fn repair(
    conn: &Connection,
    client: &AsyncClient,
    gaps: &mut HashMap<String, OpenGap>,
    after: Duration,
) -> rusqlite::Result<()> {
    let mut filled = Vec::new();
    for (controller, g) in gaps.iter_mut() {
        let Some(first) = first_missing(conn, controller, g.from)? else {
            filled.push(controller.clone());
            continue;
        };
        if first != g.from {
            // Part of it came (or it moved on): give the rest time again.
            *g = OpenGap::new(first, &g.base);
        }
        let due = match g.asked_at {
            None => g.since.elapsed() >= after,
            Some(t) => t.elapsed() >= RESEND_AGAIN && g.asked < RESEND_TRIES,
        };
        if !due {
            continue;
        }
        let id = format!(
            "receive-{controller}-{}-{}",
            g.from,
            crate::core::wall_now().0
        );
        let body = serde_json::json!({"id": id, "command": "resend", "from_seq": g.from});
        let topic = format!("{}/cmd", g.base);
        if let Err(e) = client.try_publish(topic, QoS::AtLeastOnce, false, body.to_string()) {
            tracing::warn!(controller = %controller, error = %e, "resend not asked; next second");
            continue;
        }
        g.asked += 1;
        g.asked_at = Some(Instant::now());
        if g.asked == RESEND_TRIES {
            tracing::warn!(controller = %controller, from_seq = g.from, tries = g.asked, "gap asked for the last time; see the cmd/ack answer (archived events cannot come again)");
        } else {
            tracing::info!(controller = %controller, from_seq = g.from, "gap still open: asked the controller to send again");
        }
    }
    for controller in filled {
        if let Some(g) = gaps.remove(&controller) {
            tracing::info!(controller = %controller, from_seq = g.from, "gap filled");
        }
    }
    Ok(())
}

/// Near-turn text messages: the topic they come on and the HTTP endpoint they go to.
#[derive(Debug, Clone)]
pub struct SmsWebhook {
    /// Topic filter, e.g. `hallq/+/+/sms`.
    pub topic: String,
    /// `http://host[:port]/path`: each message is POSTed there as JSON.
    pub url: String,
    /// The receiver's database (the poster has a connection of its own).
    pub db: std::path::PathBuf,
}

impl SmsWebhook {
    /// The SMS topic beside an events topic filter (`…/events` → `…/sms`).
    pub fn topic_beside(events: &str) -> String {
        match events.strip_suffix("/events") {
            Some(base) => format!("{base}/sms"),
            None => "hallq/+/+/sms".into(),
        }
    }
}

/// What can stop the receiver.
#[derive(Debug, thiserror::Error)]
pub enum ReceiveError {
    /// The database failed.
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// TLS files are unusable.
    #[error(transparent)]
    Tls(#[from] super::tls::TlsError),
    /// The MQTT client failed.
    #[error("mqtt: {0}")]
    Client(#[from] rumqttc::ClientError),
}

/// One controller's deliveries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ControllerSummary {
    /// The controller.
    pub controller_id: String,
    /// Distinct events stored.
    pub events: i64,
    /// Lowest sequence number seen.
    pub first_seq: i64,
    /// Highest sequence number seen.
    pub last_seq: i64,
    /// Missing ranges between first and last, inclusive.
    pub gaps: Vec<(i64, i64)>,
}

/// Everything stored so far.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Per controller.
    pub controllers: Vec<ControllerSummary>,
    /// Messages whose event id was already stored.
    pub duplicates: i64,
    /// Messages that were not event JSON.
    pub malformed: i64,
    /// Distinct near-turn text messages received.
    pub sms: i64,
    /// … of which posted to the webhook.
    pub sms_posted: i64,
    /// Text messages whose id was already stored.
    pub sms_duplicates: i64,
}

/// Opens (creating) the receiver's database.
pub fn open_db(path: &Path) -> Result<Connection, rusqlite::Error> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS received (
            id TEXT PRIMARY KEY,
            controller_id TEXT NOT NULL,
            hall_id TEXT NOT NULL,
            seq INTEGER NOT NULL,
            type TEXT NOT NULL,
            at INTEGER NOT NULL,
            body TEXT NOT NULL,
            received_at INTEGER NOT NULL
        );
        CREATE INDEX IF NOT EXISTS received_by_seq ON received (controller_id, seq);
        CREATE TABLE IF NOT EXISTS sms (
            id TEXT PRIMARY KEY,
            controller_id TEXT NOT NULL,
            body TEXT NOT NULL,
            received_at INTEGER NOT NULL,
            posted_at INTEGER,
            attempts INTEGER NOT NULL DEFAULT 0,
            last_error TEXT
        );
        CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);",
    )?;
    Ok(conn)
}

fn bump(conn: &Connection, name: &str) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO counters (name, value) VALUES (?1, 1) ON CONFLICT (name) DO UPDATE SET value = value + 1",
        [name],
    )?;
    Ok(())
}

/// What [`store`] did with a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// A new event.
    New,
    /// Its id was already stored.
    Duplicate,
    /// Not an event.
    Malformed,
}

/// Stores one message; durable once it returns.
pub fn store(conn: &Connection, bytes: &[u8]) -> rusqlite::Result<Stored> {
    let Ok(e) = serde_json::from_slice::<Envelope>(bytes) else {
        bump(conn, "malformed")?;
        return Ok(Stored::Malformed);
    };
    let now = crate::core::wall_now().0;
    let mut put = conn.prepare_cached(
        "INSERT OR IGNORE INTO received (id, controller_id, hall_id, seq, type, at, body, received_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?;
    let body = String::from_utf8_lossy(bytes);
    let n = put.execute(params![
        e.id,
        e.controller_id,
        e.hall_id,
        e.seq,
        e.kind,
        e.at,
        body,
        now
    ])?;
    if n == 0 {
        bump(conn, "duplicates")?;
        Ok(Stored::Duplicate)
    } else {
        Ok(Stored::New)
    }
}

/// Stores one text message (durable once it returns); `Duplicate` for an id already
/// stored, `Malformed` for anything else that is not one.
pub fn store_sms(conn: &Connection, bytes: &[u8]) -> rusqlite::Result<Stored> {
    let Ok(m) = serde_json::from_slice::<SmsMessage>(bytes) else {
        bump(conn, "malformed")?;
        return Ok(Stored::Malformed);
    };
    let body = serde_json::to_string(&m).unwrap_or_default();
    let n = conn
        .prepare_cached(
            "INSERT OR IGNORE INTO sms (id, controller_id, body, received_at) VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![m.id, m.controller_id, body, crate::core::wall_now().0])?;
    if n == 0 {
        bump(conn, "sms_duplicates")?;
        Ok(Stored::Duplicate)
    } else {
        Ok(Stored::New)
    }
}

/// The text of a near-turn message, for a gateway that takes plain text.
pub fn sms_text(m: &SmsMessage) -> String {
    let field = |k: &str| {
        m.near_turn
            .get(k)
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
            .unwrap_or_default()
    };
    format!(
        "您的{}号前面还有{}人，预计约{}分钟后叫号，请回到大厅留意叫号。",
        field("number"),
        field("ahead"),
        field("minutes")
    )
}

/// Posts one message; `Err` with why it did not take.
fn post(agent: &ureq::Agent, url: &str, m: &SmsMessage) -> Result<(), String> {
    let mut body = serde_json::to_value(m).map_err(|e| e.to_string())?;
    body["text"] = serde_json::Value::String(sms_text(m));
    match agent.post(url).send_json(&body) {
        Ok(r) if r.status().is_success() => Ok(()),
        Ok(r) => Err(format!("HTTP {}", r.status())),
        Err(e) => Err(e.to_string()),
    }
}

/// Posts every stored, unposted text message; returns how many went. A message that
/// was posted has its number erased; one that failed keeps it for the next round.
pub fn post_waiting(conn: &Connection, agent: &ureq::Agent, url: &str) -> rusqlite::Result<usize> {
    let waiting: Vec<(String, String)> = conn
        .prepare_cached(
            "SELECT id, body FROM sms WHERE posted_at IS NULL ORDER BY received_at, id",
        )?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let mut posted = 0;
    for (id, body) in waiting {
        let Ok(m) = serde_json::from_str::<SmsMessage>(&body) else {
            continue;
        };
        match post(agent, url, &m) {
            Ok(()) => {
                conn.execute(
                    "UPDATE sms SET posted_at = ?2, attempts = attempts + 1, last_error = NULL,                      body = json_set(body, '$.mobile', '') WHERE id = ?1",
                    params![id, crate::core::wall_now().0],
                )?;
                posted += 1;
            }
            Err(e) => {
                tracing::warn!(sms = %id, error = %e, "SMS webhook refused; will retry");
                conn.execute(
                    "UPDATE sms SET attempts = attempts + 1, last_error = ?2 WHERE id = ?1",
                    params![id, e],
                )?;
                break;
            }
        }
    }
    Ok(posted)
}

/// Posts text messages as they are stored (woken by `wake`, and every two seconds to
/// retry a webhook that was down), on a database connection of its own, until the
/// receiver aborts it.
async fn poster(hook: SmsWebhook, wake: std::sync::Arc<tokio::sync::Notify>) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(10)))
        .http_status_as_error(false)
        .build()
        .into();
    let conn = match open_db(&hook.db) {
        Ok(c) => std::sync::Arc::new(std::sync::Mutex::new(c)),
        Err(e) => {
            tracing::error!(error = %e, "SMS webhook: the database cannot be opened; nothing is posted");
            return;
        }
    };
    loop {
        let (c, a, url) = (conn.clone(), agent.clone(), hook.url.clone());
        let done = tokio::task::spawn_blocking(move || {
            let conn = c.lock().unwrap_or_else(|p| p.into_inner());
            post_waiting(&conn, &a, &url)
        })
        .await;
        match done {
            Ok(Ok(n)) if n > 0 => tracing::info!(posted = n, "near-turn text messages posted"),
            Ok(Err(e)) => tracing::warn!(error = %e, "SMS webhook: database"),
            _ => {}
        }
        tokio::select! {
            _ = wake.notified() => {}
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
    }
}

/// Per-controller counts and the gaps in each sequence.
pub fn summarize(conn: &Connection) -> rusqlite::Result<Summary> {
    let mut stmt = conn.prepare(
        "SELECT controller_id, COUNT(*), MIN(seq), MAX(seq) FROM received GROUP BY controller_id ORDER BY controller_id",
    )?;
    let mut controllers = stmt
        .query_map([], |r| {
            Ok(ControllerSummary {
                controller_id: r.get(0)?,
                events: r.get(1)?,
                first_seq: r.get(2)?,
                last_seq: r.get(3)?,
                gaps: Vec::new(),
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let mut gaps = conn.prepare(
        "SELECT seq + 1, next - 1 FROM (SELECT seq, LEAD(seq) OVER (ORDER BY seq) AS next FROM received WHERE controller_id = ?1) WHERE next > seq + 1",
    )?;
    for c in &mut controllers {
        c.gaps = gaps
            .query_map([&c.controller_id], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<Vec<_>, _>>()?;
    }
    let counter = |name: &str| -> rusqlite::Result<i64> {
        conn.query_row(
            "SELECT COALESCE((SELECT value FROM counters WHERE name = ?1), 0)",
            [name],
            |r| r.get(0),
        )
    };
    let (sms, sms_posted): (i64, i64) =
        conn.query_row("SELECT COUNT(*), COUNT(posted_at) FROM sms", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
    Ok(Summary {
        controllers,
        duplicates: counter("duplicates")?,
        malformed: counter("malformed")?,
        sms,
        sms_posted,
        sms_duplicates: counter("sms_duplicates")?,
    })
}

impl Summary {
    /// Lines for a person.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for c in &self.controllers {
            out.push_str(&format!(
                "{}: {} events, seq {}..{}, {}\n",
                c.controller_id,
                c.events,
                c.first_seq,
                c.last_seq,
                if c.gaps.is_empty() {
                    "no gaps".to_string()
                } else {
                    let g: Vec<String> = c
                        .gaps
                        .iter()
                        .map(|(a, b)| {
                            if a == b {
                                a.to_string()
                            } else {
                                format!("{a}-{b}")
                            }
                        })
                        .collect();
                    format!("MISSING {}", g.join(", "))
                }
            ));
        }
        out.push_str(&format!(
            "duplicates dropped: {}, malformed: {}\n",
            self.duplicates, self.malformed
        ));
        if self.sms > 0 || self.sms_duplicates > 0 {
            out.push_str(&format!(
                "text messages: {} received, {} posted, {} duplicates dropped\n",
                self.sms, self.sms_posted, self.sms_duplicates
            ));
        }
        out
    }
}

/// Receives until `shutdown` resolves; calls `ready` once subscribed.
pub async fn run(
    opts: ReceiveOptions,
    conn: Connection,
    ready: impl FnOnce(),
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), ReceiveError> {
    let mut o = MqttOptions::new(opts.client_id.clone(), opts.host.clone(), opts.port);
    o.set_keep_alive(Duration::from_secs(30));
    o.set_clean_session(false);
    o.set_manual_acks(true);
    o.set_max_packet_size(1 << 20, 1 << 20);
    if let Some((u, p)) = &opts.credentials {
        o.set_credentials(u.clone(), p.clone());
    }
    if let Some(files) = &opts.tls {
        o.set_transport(Transport::Tls(TlsConfiguration::Rustls(
            super::tls::client_config(files)?,
        )));
    }
    let (client, mut events) = AsyncClient::new(o, 1024);
    let mut ready = Some(ready);
    let wake = std::sync::Arc::new(tokio::sync::Notify::new());
    let posting = opts
        .sms
        .clone()
        .map(|hook| tokio::spawn(poster(hook, wake.clone())));
    let mut subscriptions = 1 + usize::from(opts.sms.is_some());
    let mut seqs = Sequences::default();
    let mut repair_tick = tokio::time::interval(Duration::from_secs(1));
    // Acks wait here while rumqttc's request queue is full; the event loop drains it.
    let mut acks: std::collections::VecDeque<rumqttc::Publish> = Default::default();
    tokio::pin!(shutdown);
    loop {
        while let Some(p) = acks.front() {
            if client.try_ack(p).is_err() {
                break;
            }
            acks.pop_front();
        }
        tokio::select! {
            _ = &mut shutdown => break,
            _ = repair_tick.tick(), if !seqs.open.is_empty() => {
                if let Some(after) = opts.repair_after {
                    repair(&conn, &client, &mut seqs.open, after)?;
                }
            }
            ev = events.poll() => match ev {
                Ok(Event::Incoming(Incoming::ConnAck(ack))) => {
                    tracing::info!(session_present = ack.session_present, "receiver connected");
                    client.try_subscribe(opts.topic.clone(), QoS::AtLeastOnce)?;
                    if let Some(hook) = &opts.sms {
                        client.try_subscribe(hook.topic.clone(), QoS::AtLeastOnce)?;
                    }
                }
                Ok(Event::Incoming(Incoming::SubAck(_))) => {
                    subscriptions = subscriptions.saturating_sub(1);
                    if subscriptions == 0 && let Some(f) = ready.take() {
                        f();
                    }
                }
                Ok(Event::Incoming(Incoming::Publish(p))) if p.topic.ends_with("/sms") => {
                    if opts.sms.is_some() && store_sms(&conn, &p.payload)? == Stored::New {
                        wake.notify_one();
                    }
                    acks.push_back(p);
                }
                Ok(Event::Incoming(Incoming::Publish(p))) => {
                    if store(&conn, &p.payload)? == Stored::New
                        && let Ok(e) = serde_json::from_slice::<Envelope>(&p.payload)
                    {
                        seqs.stored(&conn, &p.topic, &e, opts.repair_after.is_some())?;
                    }
                    acks.push_back(p);
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "receiver disconnected; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    }
    if let Some(p) = posting {
        p.abort();
    }
    let _ = client.try_disconnect();
    let _ = tokio::time::timeout(Duration::from_millis(300), events.poll()).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(id: &str, seq: i64) -> Vec<u8> {
        serde_json::json!({
            "id": id, "controller_id": "c1", "hall_id": "h", "seq": seq, "schema": 1,
            "at": 1, "time": "t", "type": "x", "payload": {"type": "x"}
        })
        .to_string()
        .into_bytes()
    }

    #[test]
    fn duplicates_are_dropped_by_id_and_gaps_reported() {
        let dir = tempfile::tempdir().unwrap();
        let conn = open_db(&dir.path().join("r.db")).unwrap();
        assert_eq!(store(&conn, &msg("a", 1)).unwrap(), Stored::New);
        assert_eq!(store(&conn, &msg("a", 1)).unwrap(), Stored::Duplicate);
        assert_eq!(store(&conn, &msg("b", 2)).unwrap(), Stored::New);
        assert_eq!(store(&conn, &msg("e", 5)).unwrap(), Stored::New);
        assert_eq!(store(&conn, &msg("g", 7)).unwrap(), Stored::New);
        assert_eq!(store(&conn, b"nonsense").unwrap(), Stored::Malformed);
        let s = summarize(&conn).unwrap();
        assert_eq!(s.duplicates, 1);
        assert_eq!(s.malformed, 1);
        assert_eq!(s.controllers[0].events, 4);
        assert_eq!(s.controllers[0].gaps, vec![(3, 4), (6, 6)]);
        assert!(s.to_text().contains("MISSING 3-4, 6"), "{}", s.to_text());
        // Gap repair asks from the first missing seq on, and stops when it is filled.
        assert_eq!(first_missing(&conn, "c1", 3).unwrap(), Some(3));
        assert_eq!(first_missing(&conn, "c1", 5).unwrap(), Some(6));
        store(&conn, &msg("c", 3)).unwrap();
        store(&conn, &msg("d", 4)).unwrap();
        assert_eq!(first_missing(&conn, "c1", 3).unwrap(), Some(6));
        store(&conn, &msg("f", 6)).unwrap();
        assert_eq!(first_missing(&conn, "c1", 3).unwrap(), None);
        assert_eq!(first_missing(&conn, "other", 1).unwrap(), None);
    }
}
