//! The `[uplink]` section of `hallq.toml`. Without it the controller runs on its own
//! and the events simply wait in the outbox.

use std::path::PathBuf;

use serde::Deserialize;

/// How to reach the hall server's broker.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UplinkConfig {
    /// Broker host name or address.
    pub host: String,
    /// Broker port (1883 plain, 8883 TLS by convention).
    #[serde(default = "default_port")]
    pub port: u16,
    /// The hall's id in topics: `<topic_prefix>/<hall_id>/<controller_id>/…`.
    pub hall_id: String,
    /// First topic level.
    #[serde(default = "default_prefix")]
    pub topic_prefix: String,
    /// MQTT client id; defaults to `hallq-<controller_id>`.
    #[serde(default)]
    pub client_id: Option<String>,
    /// User name for the broker.
    #[serde(default)]
    pub username: Option<String>,
    /// Password for the broker.
    #[serde(default)]
    pub password: Option<String>,
    /// TLS; absent means plain TCP (only for a broker on a trusted network). The
    /// broker's certificate must name `host` (a DNS name or an IP address).
    #[serde(default)]
    pub tls: Option<TlsFiles>,
    /// Publishes waiting for PUBACK at once: a backlog drains at the speed of the
    /// link rather than one round trip per event.
    #[serde(default = "default_inflight")]
    pub inflight: u16,
    /// Delivered events leave the database this many days after delivery, once their
    /// calendar month is over, written first to `archive/events-YYYY-MM.jsonl.gz` in
    /// the data directory (kiosk lock, notice and device events are never removed);
    /// 0 keeps everything in the database.
    #[serde(default = "default_retention")]
    pub retention_days: u32,
    /// MQTT keep-alive, seconds.
    #[serde(default = "default_keep_alive")]
    pub keep_alive_secs: u64,
    /// Longest wait between reconnection attempts, seconds.
    #[serde(default = "default_backoff")]
    pub max_backoff_secs: u64,
}

/// PEM files for TLS.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// The CA that signed the broker's certificate.
    pub ca: PathBuf,
    /// This controller's certificate, for brokers that require client certificates.
    #[serde(default)]
    pub cert: Option<PathBuf>,
    /// Its private key (PKCS#8, PKCS#1 or SEC1 PEM).
    #[serde(default)]
    pub key: Option<PathBuf>,
}

fn default_port() -> u16 {
    1883
}
fn default_prefix() -> String {
    "hallq".into()
}
fn default_inflight() -> u16 {
    500
}
fn default_retention() -> u32 {
    180
}
fn default_keep_alive() -> u64 {
    30
}
fn default_backoff() -> u64 {
    30
}

/// A topic level: no wildcards, separators or empty names.
fn topic_level_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && !s.contains(['/', '+', '#'])
        && s.chars().all(|c| !c.is_control())
}

impl UplinkConfig {
    /// Checks the values serde cannot; returns the key (under `uplink.`) and the reason.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.host.trim().is_empty() {
            return Err(("uplink.host", "the broker host is empty".into()));
        }
        if self.port == 0 {
            return Err(("uplink.port", "must be between 1 and 65535".into()));
        }
        if !topic_level_ok(&self.hall_id) {
            return Err((
                "uplink.hall_id",
                "one topic level: no '/', '+', '#' and at most 64 characters".into(),
            ));
        }
        if !self.topic_prefix.split('/').all(topic_level_ok) {
            return Err((
                "uplink.topic_prefix",
                "topic levels without '+', '#' or empty levels".into(),
            ));
        }
        if self.inflight == 0 || self.inflight > 10_000 {
            return Err(("uplink.inflight", "must be between 1 and 10000".into()));
        }
        if self.password.is_some() && self.username.is_none() {
            return Err(("uplink.password", "a password needs a username".into()));
        }
        if self.keep_alive_secs < 5 {
            return Err(("uplink.keep_alive_secs", "must be at least 5".into()));
        }
        if self.max_backoff_secs == 0 {
            return Err(("uplink.max_backoff_secs", "must be at least 1".into()));
        }
        if let Some(t) = &self.tls
            && t.cert.is_some() != t.key.is_some()
        {
            return Err((
                "uplink.tls",
                "a client certificate needs its key, and a key its certificate".into(),
            ));
        }
        Ok(())
    }

    /// The client id sent to the broker.
    pub fn client_id(&self, controller_id: &str) -> String {
        self.client_id
            .clone()
            .unwrap_or_else(|| format!("hallq-{controller_id}"))
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, EXAMPLE_HALL};

    fn with_uplink(section: &str) -> String {
        format!("{EXAMPLE_HALL}\n[uplink]\n{section}\n")
    }

    #[test]
    fn an_uplink_section_reads_with_its_defaults() {
        let c = Config::parse(
            &with_uplink("host = \"mqtt.example\"\nhall_id = \"qs\""),
            "h.toml",
        )
        .unwrap();
        let u = c.uplink.unwrap();
        assert_eq!((u.port, u.inflight, u.retention_days), (1883, 500, 180));
        assert_eq!(u.client_id("qingshan-main"), "hallq-qingshan-main");
    }

    #[test]
    fn a_bad_uplink_value_names_its_key_and_line() {
        let text = with_uplink("host = \"mqtt.example\"\nhall_id = \"a/b\"");
        let err = Config::parse(&text, "h.toml").unwrap_err().to_string();
        let line = text.lines().position(|l| l.starts_with("hall_id")).unwrap() + 1;
        assert!(
            err.starts_with(&format!("h.toml:{line}: uplink.hall_id")),
            "{err}"
        );
        let text = with_uplink("host = \"m\"\nhall_id = \"x\"\npassword = \"p\"");
        let err = Config::parse(&text, "h.toml").unwrap_err().to_string();
        assert!(
            err.contains("uplink.password: a password needs a username"),
            "{err}"
        );
        let text = with_uplink("host = \"m\"\nhall_id = \"x\"\nport = \"mqtt\"");
        let err = Config::parse(&text, "h.toml").unwrap_err().to_string();
        assert!(err.contains("uplink.port"), "{err}");
    }
}
