//! The uplink to the hall server over MQTT: every event the controller records goes up,
//! in sequence order, exactly once by event id; configuration and commands come down.
//!
//! The outbox is the events table itself. An event is marked delivered only after the
//! broker's PUBACK; after a crash or a broker outage sending resumes from the first
//! undelivered event, so the hall server may see an event twice (same id) but never
//! misses one. A backlog drains with a window of publishes in flight, on a database
//! connection of its own, without touching the core thread that issues tickets.
//!
//! # Layout
//! - [`settings`]: the `[uplink]` section of the configuration file.
//! - [`wire`]: topics and the JSON documents on them (event envelope, state, acks).
//! - [`outbox`]: the uplink's own connection to the events table, with batched marks.
//! - [`link`]: the MQTT session: connect, publish the backlog, read downstream.
//! - [`downstream`]: configuration and commands from the hall server.
//! - [`apply`]: reads a pushed queue setup and its guides into what is put in force.
//! - [`controls`]: kiosk lock and board notice, the state commands leave behind.
//! - [`tls`]: rustls client configuration from PEM files.
//! - [`receive`]: `hallq receive`, the reference receiver.
//! - [`bench`]: `hallq uplink bench`.
//! - [`broker`]: a local mosquitto for the benchmark and the end-to-end tests.

pub mod apply;
pub mod bench;
pub mod broker;
pub mod controls;
pub mod downstream;
pub mod link;
pub mod outbox;
pub mod receive;
pub mod settings;
pub mod tls;
pub mod wire;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use crate::guide::Guide;
use crate::in_force::InForce;

pub use controls::Controls;
pub use settings::UplinkConfig;

/// Where the link stands, for `GET /api/v1/uplink` and `hallq uplink status`.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct LinkStatus {
    /// An uplink is configured.
    pub enabled: bool,
    /// `disabled`, `connecting`, `connected` or `disconnected`.
    pub state: String,
    /// The broker, `host:port`.
    pub broker: Option<String>,
    /// When the current state began (ms since the epoch).
    pub since: Option<i64>,
    /// The last connection error, for the technician.
    pub last_error: Option<String>,
    /// The newest event the broker has acknowledged.
    pub acked_seq: i64,
    /// Events published whose PUBACK has not come yet.
    pub in_flight: usize,
    /// The configuration version in force (pushed from the hall server).
    pub config_version: Option<i64>,
}

/// A snapshot of device health for the state topic (from the device layer).
pub type DeviceHealth = Arc<dyn Fn() -> serde_json::Value + Send + Sync>;

/// The device registry as the state topic's `devices` field.
pub fn device_health(devices: crate::devices::health::Devices) -> DeviceHealth {
    Arc::new(move || serde_json::json!(devices.snapshot()))
}

/// What the API, the uplink and the CLI share: link status and the controls.
#[derive(Clone, Default)]
pub struct Shared {
    /// Connection state.
    pub status: Arc<Mutex<LinkStatus>>,
    /// Kiosk lock and board notice.
    pub controls: Controls,
    /// Device health for the state document, when the device layer provides it.
    pub device_health: Option<DeviceHealth>,
}

impl Shared {
    /// Reads the controls left by earlier commands and the pushed configuration version.
    pub fn load(conn: &rusqlite::Connection) -> Result<Shared, crate::store::StoreError> {
        let shared = Shared {
            controls: Controls::load(conn)?,
            ..Shared::default()
        };
        let version = crate::store::uplink::pushed_config(conn)?.map(|(v, _)| v);
        shared.update(|s| {
            s.state = "disabled".into();
            s.config_version = version;
        });
        Ok(shared)
    }

    /// Device health for the state document (null until the device layer reports).
    pub fn devices(&self) -> serde_json::Value {
        self.device_health
            .as_ref()
            .map_or(serde_json::Value::Null, |f| f())
    }

    /// Changes the status under its lock.
    pub fn update(&self, f: impl FnOnce(&mut LinkStatus)) {
        let mut s = self.status.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut s);
    }

    /// A copy of the status.
    pub fn status(&self) -> LinkStatus {
        self.status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// The setup in force at start: the one last pushed from the hall server, if any, since
/// it is what the hall server was told is in force; else `file` (the file's `[queue]`
/// and guides). A stored document that no longer reads is skipped with a warning.
pub fn in_force_at_start(
    conn: &rusqlite::Connection,
    file: InForce,
) -> Result<InForce, crate::store::StoreError> {
    let Some((version, document)) = crate::store::uplink::pushed_config(conn)? else {
        return Ok(file);
    };
    let parsed = serde_json::from_str::<wire::ConfigSet>(&document)
        .map_err(|e| e.to_string())
        .and_then(|set| apply::in_force(&set, &file.guides).map_err(|e| e.to_string()));
    match parsed {
        Ok(in_force) => {
            tracing::info!(version, "using the queue setup pushed by the hall server");
            Ok(in_force)
        }
        Err(e) => {
            tracing::warn!(version, error = %e, "stored configuration unreadable; using the file");
            Ok(file)
        }
    }
}

/// [`in_force_at_start`] for the command line: the database read-only if it exists,
/// else the file's.
pub fn in_force_offline(
    database: &std::path::Path,
    setup: hallq_engine::Setup,
    guides: BTreeMap<String, Guide>,
) -> Result<InForce, crate::store::StoreError> {
    let file = InForce::file(setup, guides);
    if !database.exists() {
        return Ok(file);
    }
    let conn = rusqlite::Connection::open_with_flags(
        database,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    let has_table: bool = conn
        .query_row(
            "SELECT count(*) > 0 FROM sqlite_master WHERE name = 'pushed_config'",
            [],
            |r| r.get(0),
        )
        .unwrap_or(false);
    if !has_table {
        return Ok(file);
    }
    in_force_at_start(&conn, file)
}

/// What `hallq uplink status` shows: the daemon's view of the link (if it answers)
/// and the outbox as the database holds it.
pub fn status_report(
    config: &crate::config::Config,
    api: Option<&str>,
) -> Result<serde_json::Value, crate::store::StoreError> {
    let conn = rusqlite::Connection::open_with_flags(
        config.database(),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    let backlog = crate::store::uplink::backlog(&conn)?;
    let pushed = crate::store::uplink::pushed_config(&conn)?.map(|(v, _)| v);
    let generated = crate::store::generated_history(&conn)?;
    let url = match api {
        Some(u) => Some(u.trim_end_matches('/').to_string()),
        None if config.server.listen.port() != 0 => {
            Some(format!("http://{}", config.server.listen))
        }
        None => None,
    };
    let link = url.as_ref().and_then(|u| {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(std::time::Duration::from_secs(3)))
            .build()
            .into();
        let mut resp = agent.get(format!("{u}/api/v1/uplink")).call().ok()?;
        let v: serde_json::Value = resp.body_mut().read_json().ok()?;
        Some(v["uplink"].clone())
    });
    let file = InForce::file(config.queue.clone(), BTreeMap::new());
    let offset = in_force_at_start(&conn, file)?.setup.utc_offset_minutes;
    let clock = hallq_engine::LocalClock::new(offset);
    let now = crate::core::wall_now().0;
    Ok(serde_json::json!({
        "configured": config.uplink.as_ref().map(|u| serde_json::json!({
            "broker": format!("{}:{}", u.host, u.port),
            "topics": wire::Topics::new(&u.topic_prefix, &u.hall_id, &config.hall.controller_id).events.trim_end_matches("/events").to_string() + "/…",
            "tls": u.tls.is_some(),
            "retention_days": u.retention_days,
        })),
        "daemon": url,
        "link": link,
        "backlog": backlog,
        "oldest_local": backlog.oldest_at.map(|at| clock.local(hallq_engine::Timestamp(at)).format("%Y-%m-%d %H:%M:%S").to_string()),
        "oldest_age_secs": backlog.oldest_at.map(|at| (now - at) / 1000),
        "config_version": pushed,
        "generated_history": generated,
    }))
}

/// The status as lines for a technician.
pub fn status_text(v: &serde_json::Value) -> String {
    let mut out = String::new();
    match v["configured"].as_object() {
        Some(c) => out.push_str(&format!(
            "uplink:     broker {} ({}), topics {}\n",
            c["broker"].as_str().unwrap_or("?"),
            if c["tls"].as_bool() == Some(true) {
                "TLS"
            } else {
                "plain TCP"
            },
            c["topics"].as_str().unwrap_or("?"),
        )),
        None => out.push_str(
            "uplink:     not configured (no [uplink] section); events wait in the outbox\n",
        ),
    }
    match v["link"].as_object() {
        Some(l) => {
            out.push_str(&format!(
                "connection: {}{}\n",
                l["state"].as_str().unwrap_or("?"),
                l["last_error"]
                    .as_str()
                    .map(|e| format!(" (last error: {e})"))
                    .unwrap_or_default()
            ));
            out.push_str(&format!(
                "            acknowledged up to seq {}, {} in flight\n",
                l["acked_seq"], l["in_flight"]
            ));
        }
        None => out.push_str(&format!(
            "connection: unknown, the daemon did not answer{}\n",
            v["daemon"]
                .as_str()
                .map(|u| format!(" at {u}"))
                .unwrap_or_else(|| " (use --api URL)".into())
        )),
    }
    if let Some(note) = v["generated_history"].as_str() {
        out.push_str(&format!(
            "database:   generated history ({note}); never published\n"
        ));
    }
    let b = &v["backlog"];
    match b["oldest_seq"].as_i64() {
        Some(seq) => out.push_str(&format!(
            "backlog:    {} events undelivered; oldest seq {} at {} ({} s ago)\n",
            b["undelivered"],
            seq,
            v["oldest_local"].as_str().unwrap_or("?"),
            v["oldest_age_secs"]
        )),
        None => out.push_str(&format!("backlog:    empty (last seq {})\n", b["last_seq"])),
    }
    match v["config_version"].as_i64() {
        Some(n) => out.push_str(&format!(
            "config:     version {n} pushed by the hall server\n"
        )),
        None => out.push_str("config:     the file's [queue] (nothing pushed yet)\n"),
    }
    out
}
