//! `hallq receive`: the reference receiver. It subscribes to controllers' event topics,
//! stores each event in SQLite once (keyed by event id, so resends are counted and
//! dropped), acknowledges a message only after it is stored, and reports gaps in each
//! controller's sequence. The test suite checks deliveries with it; a hall IT team can
//! run it beside a broker to see what arrives.

use std::path::Path;
use std::time::Duration;

use rumqttc::{AsyncClient, Event, Incoming, MqttOptions, QoS, TlsConfiguration, Transport};
use rusqlite::{Connection, params};
use serde::Serialize;

use super::settings::TlsFiles;
use super::wire::Envelope;

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
    Ok(Summary {
        controllers,
        duplicates: counter("duplicates")?,
        malformed: counter("malformed")?,
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
    let mut last_seq: std::collections::HashMap<String, i64> = Default::default();
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
            ev = events.poll() => match ev {
                Ok(Event::Incoming(Incoming::ConnAck(ack))) => {
                    tracing::info!(session_present = ack.session_present, "receiver connected");
                    client.try_subscribe(opts.topic.clone(), QoS::AtLeastOnce)?;
                }
                Ok(Event::Incoming(Incoming::SubAck(_))) => {
                    if let Some(f) = ready.take() {
                        f();
                    }
                }
                Ok(Event::Incoming(Incoming::Publish(p))) => {
                    if store(&conn, &p.payload)? == Stored::New
                        && let Ok(e) = serde_json::from_slice::<Envelope>(&p.payload)
                    {
                        let last = last_seq.entry(e.controller_id.clone()).or_insert(e.seq - 1);
                        if e.seq > *last + 1 {
                            tracing::warn!(controller = %e.controller_id, from = *last + 1, to = e.seq - 1, "gap in sequence");
                        }
                        *last = (*last).max(e.seq);
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
    }
}
