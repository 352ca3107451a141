//! `hallq-server.toml`: the broker, PostgreSQL, the ingest's batching, the web listener,
//! and the county's regions and halls. Read with the controller's rules: unknown keys are
//! refused, and every error names the file, the line and the key.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;

use hallq::config::{ConfigError, key_line, read_toml};
use hallq::uplink::settings::TlsFiles;
use serde::Deserialize;

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// This instance.
    pub server: Instance,
    /// The MQTT broker the controllers publish to.
    pub broker: Broker,
    /// PostgreSQL.
    pub database: Database,
    /// Batching and gap repair.
    #[serde(default)]
    pub ingest: Ingest,
    /// The web listener (dashboard, API, metrics).
    #[serde(default)]
    pub http: Http,
    /// Sign-in: lockout and sessions.
    #[serde(default)]
    pub auth: Auth,
    /// The region tree, by statistical code.
    #[serde(default, rename = "region")]
    pub regions: Vec<Region>,
    /// The halls.
    #[serde(default, rename = "hall")]
    pub halls: Vec<Hall>,
    /// The near-turn text messages' webhook (none: the `sms` topic is not taken).
    pub sms: Option<Sms>,
    /// The 好差评 export in the provincial platform's shape.
    #[serde(default)]
    pub export: Export,
}

/// `[sms]`: where the controllers' near-turn text messages go (an SMS provider's or a
/// relay's HTTP endpoint).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sms {
    /// `http://host[:port]/path`: each message is POSTed there as JSON.
    pub webhook_url: String,
    /// Sent as `Authorization: Bearer <token>` when set.
    pub token: Option<String>,
    /// How long one POST may take, in milliseconds.
    #[serde(default = "default_sms_timeout")]
    pub timeout_ms: u64,
    /// The first retry's wait after a refused or failed POST, in milliseconds; it
    /// doubles at every further failure …
    #[serde(default = "default_retry_min")]
    pub retry_min_ms: u64,
    /// … up to this.
    #[serde(default = "default_retry_max")]
    pub retry_max_ms: u64,
    /// A message not posted this long after its `near_turn` is dropped with its number
    /// (the citizen's turn has passed) and counted as expired.
    #[serde(default = "default_sms_age")]
    pub max_age_minutes: u64,
}

/// `[export]`: the daily 好差评 files.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Export {
    /// Where `hallq-server run` writes the previous day's files every day; without it,
    /// no daily run (`export-ratings` and the API still work).
    pub dir: Option<std::path::PathBuf>,
    /// The local time of the daily run, `HH:MM`.
    pub at: String,
    /// The halls' offset from UTC, `+08:00` (Beijing time): the days and `at` are in it.
    pub utc_offset: String,
    /// Output name → the record's field it takes (see [`crate::export::known_paths`]);
    /// without it, the record's own fields under their own names.
    pub fields: Option<crate::export::FieldMap>,
}

impl Default for Export {
    fn default() -> Export {
        Export {
            dir: None,
            at: "01:30".into(),
            utc_offset: "+08:00".into(),
            fields: None,
        }
    }
}

/// One running instance; several share the load.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Instance {
    /// Unique per instance: the MQTT client id is `hallq-server-<name>`.
    pub name: String,
    /// The halls' offset from UTC in minutes (their `[queue] utc_offset_minutes`):
    /// places events on service days for the period figures.
    #[serde(default = "default_offset")]
    pub utc_offset_minutes: i32,
    /// The local time the halls' service day starts (their `[queue] day_starts_at`),
    /// `HH:MM`.
    #[serde(default = "default_day_start")]
    pub day_starts_at: String,
}

impl Instance {
    /// The clock that places events on service days (checked by
    /// [`ServerConfig::parse`]; an unreadable `day_starts_at` counts as 03:00).
    pub fn clock(&self) -> crate::rollup::DayClock {
        let start = chrono::NaiveTime::parse_from_str(&self.day_starts_at, "%H:%M")
            .unwrap_or_else(|_| chrono::NaiveTime::from_hms_opt(3, 0, 0).unwrap_or_default());
        crate::rollup::DayClock::new(self.utc_offset_minutes, start)
    }
}

/// The broker.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Broker {
    /// Host name or address.
    pub host: String,
    /// Port (1883, or 8883 with TLS).
    #[serde(default = "default_port")]
    pub port: u16,
    /// The controllers' `uplink.topic_prefix`.
    #[serde(default = "default_prefix")]
    pub topic_prefix: String,
    /// The shared subscription's group: every instance of one platform uses the same.
    #[serde(default = "default_group")]
    pub share_group: String,
    /// Credentials, when the broker wants them.
    pub username: Option<String>,
    /// Password for `username`.
    pub password: Option<String>,
    /// TLS with a client certificate, as the controllers have.
    pub tls: Option<TlsFiles>,
}

/// PostgreSQL.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Database {
    /// A libpq-style connection string, e.g.
    /// `host=127.0.0.1 port=5432 user=hallq dbname=hallq`.
    pub url: String,
    /// The months of `events` made ahead, after the current one (UTC months): the
    /// server makes them at start and every day ([`crate::partitions`]).
    #[serde(default = "default_months_ahead")]
    pub months_ahead: u32,
}

/// The most months `[database] months_ahead` may make ahead.
pub const MAX_MONTHS_AHEAD: u32 = 60;

/// Batching and gap repair.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Ingest {
    /// Events written in one transaction at most.
    pub batch_max: usize,
    /// How long a batch waits to fill, in milliseconds.
    pub batch_ms: u64,
    /// Messages the broker may have in flight to this instance (MQTT receive maximum).
    pub receive_maximum: u16,
    /// A gap older than this is asked for again from its controller (`resend`).
    pub repair_after_secs: u64,
    /// How often gaps are looked for.
    pub repair_every_secs: u64,
}

impl Default for Ingest {
    fn default() -> Ingest {
        Ingest {
            batch_max: 8000,
            batch_ms: 20,
            receive_maximum: 16000,
            repair_after_secs: 10,
            repair_every_secs: 2,
        }
    }
}

/// The web listener.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Http {
    /// Address and port.
    pub listen: SocketAddr,
}

impl Default for Http {
    fn default() -> Http {
        Http {
            listen: SocketAddr::from(([127, 0, 0, 1], 8090)),
        }
    }
}

/// Sign-in to the dashboard and the API.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Auth {
    /// Wrong passwords in a row before the account is locked.
    pub max_failures: u32,
    /// How long a lockout lasts.
    pub lockout_minutes: u32,
    /// A session unused this long ends.
    pub session_idle_minutes: u32,
    /// A session ends this long after sign-in, used or not.
    pub session_max_hours: u32,
}

impl Default for Auth {
    fn default() -> Auth {
        Auth {
            max_failures: 5,
            lockout_minutes: 15,
            session_idle_minutes: 30,
            session_max_hours: 12,
        }
    }
}

/// A region of the statistical code tree (统计用区划代码): 12 digits, province (2),
/// city (2), county (2), township (3), village (3); a level's unused digits are zeros.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Region {
    /// The 12-digit code.
    pub code: String,
    /// Its name, e.g. 青山县.
    pub name: String,
}

/// A hall and where it sits.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Hall {
    /// The controllers' `uplink.hall_id`.
    pub id: String,
    /// Its name.
    pub name: String,
    /// The code of the region it serves (a township for a 便民服务中心, a village for a
    /// 便民服务点, the county for the county's hall).
    pub region: String,
}

fn default_offset() -> i32 {
    480
}
fn default_day_start() -> String {
    "03:00".into()
}
fn default_months_ahead() -> u32 {
    2
}
fn default_port() -> u16 {
    1883
}
fn default_prefix() -> String {
    "hallq".into()
}
fn default_group() -> String {
    "hallq-server".into()
}
fn default_sms_timeout() -> u64 {
    10_000
}
fn default_retry_min() -> u64 {
    1_000
}
fn default_retry_max() -> u64 {
    60_000
}
fn default_sms_age() -> u64 {
    30
}

/// The level of a 12-digit code: 1 province … 5 village.
pub fn region_level(code: &str) -> Option<u8> {
    if code.len() != 12 || !code.bytes().all(|b| b.is_ascii_digit()) || code.starts_with("00") {
        return None;
    }
    let zero = |r: std::ops::Range<usize>| code[r].bytes().all(|b| b == b'0');
    Some(if zero(2..12) {
        1
    } else if zero(4..12) {
        2
    } else if zero(6..12) {
        3
    } else if zero(9..12) {
        4
    } else {
        5
    })
}

/// The code of the region one level up, or `None` for a province.
pub fn region_parent(code: &str) -> Option<String> {
    let cut = match region_level(code)? {
        1 => return None,
        2 => 2,
        3 => 4,
        4 => 6,
        _ => 9,
    };
    Some(format!("{}{}", &code[..cut], "0".repeat(12 - cut)))
}

impl ServerConfig {
    /// Reads and checks a file.
    pub fn load(path: &Path) -> Result<ServerConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        ServerConfig::parse(&text, &path.display().to_string())
    }

    /// Parses and checks text; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<ServerConfig, ConfigError> {
        let mut config: ServerConfig = read_toml(text, file)?;
        if let Some(fields) = &mut config.export.fields {
            fields.in_file_order(text);
        }
        let fail = |key: String, message: String| ConfigError::Invalid {
            file: file.into(),
            line: key_line(text, &key),
            key,
            message,
        };
        let name = &config.server.name;
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(fail(
                "server.name".into(),
                "use letters, digits, - and _ only".into(),
            ));
        }
        if !(-720..=840).contains(&config.server.utc_offset_minutes) {
            return Err(fail(
                "server.utc_offset_minutes".into(),
                "must be between -720 and 840".into(),
            ));
        }
        if chrono::NaiveTime::parse_from_str(&config.server.day_starts_at, "%H:%M").is_err() {
            return Err(fail(
                "server.day_starts_at".into(),
                format!("{:?} is not a time HH:MM", config.server.day_starts_at),
            ));
        }
        if !(1..=MAX_MONTHS_AHEAD).contains(&config.database.months_ahead) {
            return Err(fail(
                "database.months_ahead".into(),
                format!(
                    "must be between 1 and {MAX_MONTHS_AHEAD} (the next month's partition is \
                     made before it starts)"
                ),
            ));
        }
        if config.ingest.batch_max == 0 || config.ingest.receive_maximum == 0 {
            return Err(fail(
                "ingest.batch_max".into(),
                "batch_max and receive_maximum must be at least 1".into(),
            ));
        }
        let a = &config.auth;
        for (key, v) in [
            ("auth.max_failures", a.max_failures),
            ("auth.lockout_minutes", a.lockout_minutes),
            ("auth.session_idle_minutes", a.session_idle_minutes),
            ("auth.session_max_hours", a.session_max_hours),
        ] {
            if v == 0 {
                return Err(fail(key.into(), "must be at least 1".into()));
            }
        }
        let mut codes = BTreeMap::new();
        for (i, r) in config.regions.iter().enumerate() {
            if region_level(&r.code).is_none() {
                return Err(fail(
                    format!("region[{i}].code"),
                    format!("{:?} is not a 12-digit region code", r.code),
                ));
            }
            if codes.insert(r.code.clone(), i).is_some() {
                return Err(fail(
                    format!("region[{i}].code"),
                    format!("{} is listed twice", r.code),
                ));
            }
        }
        // The tree's top is the highest level listed (a county's server lists its
        // county, or its city above it); below it, every region's parent is listed.
        let top = config
            .regions
            .iter()
            .filter_map(|r| region_level(&r.code))
            .min();
        for (i, r) in config.regions.iter().enumerate() {
            if region_level(&r.code) == top {
                continue;
            }
            if let Some(parent) = region_parent(&r.code)
                && !codes.contains_key(&parent)
            {
                return Err(fail(
                    format!("region[{i}].code"),
                    format!("its parent region {parent} is not listed"),
                ));
            }
        }
        let mut halls = BTreeMap::new();
        for (i, h) in config.halls.iter().enumerate() {
            if !codes.contains_key(&h.region) {
                return Err(fail(
                    format!("hall[{i}].region"),
                    format!("region {} is not listed under [[region]]", h.region),
                ));
            }
            if halls.insert(h.id.clone(), i).is_some() {
                return Err(fail(
                    format!("hall[{i}].id"),
                    format!("hall {} is listed twice", h.id),
                ));
            }
        }
        config.check_out(&fail)?;
        Ok(config)
    }

    /// Checks `[sms]` and `[export]`.
    fn check_out(&self, fail: &dyn Fn(String, String) -> ConfigError) -> Result<(), ConfigError> {
        if let Some(sms) = &self.sms {
            if sms.webhook_url.starts_with("https://") {
                return Err(fail(
                    "sms.webhook_url".into(),
                    "https is not built into hallq-server: post to a relay on the local \
                     network or loopback (http://…) that forwards to the provider"
                        .into(),
                ));
            }
            let host = sms
                .webhook_url
                .strip_prefix("http://")
                .map(|rest| rest.split(['/', '?']).next().unwrap_or(""));
            if host.is_none_or(str::is_empty) || sms.webhook_url.parse::<ureq::http::Uri>().is_err()
            {
                return Err(fail(
                    "sms.webhook_url".into(),
                    "must be a URL like http://host:port/path".into(),
                ));
            }
            if sms.timeout_ms < 100 {
                return Err(fail("sms.timeout_ms".into(), "must be at least 100".into()));
            }
            if sms.retry_min_ms < 10 || sms.retry_max_ms < sms.retry_min_ms {
                return Err(fail(
                    "sms.retry_min_ms".into(),
                    "retry_min_ms must be at least 10 and at most retry_max_ms".into(),
                ));
            }
            if sms.max_age_minutes == 0 {
                return Err(fail(
                    "sms.max_age_minutes".into(),
                    "must be at least 1".into(),
                ));
            }
        }
        let e = &self.export;
        if crate::export::parse_hhmm(&e.at).is_none() {
            return Err(fail(
                "export.at".into(),
                format!("{:?} is not a time of day HH:MM", e.at),
            ));
        }
        if crate::export::parse_offset(&e.utc_offset).is_none() {
            return Err(fail(
                "export.utc_offset".into(),
                format!("{:?} is not an offset like +08:00", e.utc_offset),
            ));
        }
        if let Some(fields) = &e.fields {
            let known = crate::export::known_paths();
            if fields.0.is_empty() {
                return Err(fail(
                    "export.fields".into(),
                    "map at least one output name to a field of the record".into(),
                ));
            }
            for (name, path) in &fields.0 {
                if !known.iter().any(|k| k == path) {
                    return Err(fail(
                        format!("export.fields.{name}"),
                        format!(
                            "{path:?} is not a field of the 好差评 record (known: {})",
                            known.join(", ")
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// The export's settings, checked.
    pub fn export_settings(&self) -> crate::export::Settings {
        crate::export::Settings::new(&self.export)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_packaged_example_reads() {
        let c = ServerConfig::parse(include_str!("../examples/hallq-server.toml"), "example")
            .expect("the shipped example is valid");
        assert_eq!((c.regions.len(), c.halls.len()), (2, 2));
    }

    const BASE: &str = r#"
[server]
name = "a"
[broker]
host = "127.0.0.1"
[database]
url = "host=127.0.0.1 user=hallq dbname=hallq"
[[region]]
code = "330100000000"
name = "杭州市"
[[region]]
code = "330122000000"
name = "青山县"
[[region]]
code = "330122100000"
name = "青山镇"
[[hall]]
id = "qingshan"
name = "青山县政务服务中心"
region = "330122000000"
"#;

    #[test]
    fn reads_the_tree() {
        let c = ServerConfig::parse(BASE, "s.toml").expect("valid");
        assert_eq!(c.halls[0].region, "330122000000");
        assert_eq!(region_level("330122100000"), Some(4));
        assert_eq!(
            region_parent("330122100000").as_deref(),
            Some("330122000000")
        );
        assert_eq!(
            region_parent("330122000000").as_deref(),
            Some("330100000000")
        );
        assert_eq!(
            region_parent("330100000000").as_deref(),
            Some("330000000000")
        );
        assert_eq!(region_parent("330000000000"), None);
        assert_eq!(region_level("33012210000"), None);
    }

    #[test]
    fn errors_name_key_and_line() {
        let bad = BASE.replace("region = \"330122000000\"", "region = \"330122999000\"");
        let e = ServerConfig::parse(&bad, "s.toml")
            .expect_err("unknown region")
            .to_string();
        assert!(
            e.contains("hall[0].region") && e.contains("s.toml:20"),
            "{e}"
        );
        let bad = BASE.replace("[broker]\n", "[broker]\nport = \"x\"\n");
        let e = ServerConfig::parse(&bad, "s.toml")
            .expect_err("bad port")
            .to_string();
        assert!(e.contains("broker.port") && e.contains("s.toml:5:"), "{e}");
        let bad = BASE.replace("code = \"330122100000\"", "code = \"3301221\"");
        let e = ServerConfig::parse(&bad, "s.toml")
            .expect_err("bad code")
            .to_string();
        assert!(e.contains("region[2].code"), "{e}");
        let bad = BASE.replace("name = \"a\"\n", "name = \"a\"\nday_starts_at = \"3 am\"\n");
        let e = ServerConfig::parse(&bad, "s.toml")
            .expect_err("bad time")
            .to_string();
        assert!(
            e.contains("server.day_starts_at") && e.contains("s.toml:4"),
            "{e}"
        );
        let bad = BASE.replace("dbname=hallq\"\n", "dbname=hallq\"\nmonths_ahead = 0\n");
        let e = ServerConfig::parse(&bad, "s.toml")
            .expect_err("no month ahead")
            .to_string();
        assert!(
            e.contains("database.months_ahead") && e.contains("s.toml:8:"),
            "{e}"
        );
        let c = ServerConfig::parse(BASE, "s.toml").expect("valid");
        assert_eq!(c.server.clock(), crate::rollup::DayClock::default());
        assert_eq!(c.database.months_ahead, 2);
    }

    #[test]
    fn the_field_map_keeps_its_order_and_refuses_unknown_fields() {
        let good = format!(
            "{BASE}[export]\nat = \"02:00\"\n[export.fields]\nzz = \"level\"\nevaluate_id = \"id\"\n"
        );
        let c = ServerConfig::parse(&good, "s.toml").expect("valid");
        let s = c.export_settings();
        assert_eq!(
            s.fields,
            vec![
                ("zz".to_string(), "level".to_string()),
                ("evaluate_id".to_string(), "id".to_string())
            ]
        );
        assert_eq!(s.at_minutes, 120);
        let bad = good.replace("\"id\"", "\"evaluation_id\"");
        let e = ServerConfig::parse(&bad, "s.toml")
            .expect_err("unknown field")
            .to_string();
        assert!(
            e.contains("export.fields.evaluate_id") && e.contains("s.toml:25:"),
            "{e}"
        );
        let bad = format!("{BASE}[sms]\nwebhook_url = \"https://sms.example/x\"\n");
        let e = ServerConfig::parse(&bad, "s.toml")
            .expect_err("https")
            .to_string();
        assert!(
            e.contains("sms.webhook_url") && e.contains("s.toml:22:"),
            "{e}"
        );
        let bad = format!("{BASE}[export]\nat = \"1:30pm\"\n");
        let e = ServerConfig::parse(&bad, "s.toml")
            .expect_err("at")
            .to_string();
        assert!(e.contains("export.at"), "{e}");
    }
}
