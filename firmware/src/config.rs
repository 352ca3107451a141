//! The daemon's TOML configuration. Every problem is reported with the key path and the
//! line it is on, at start, so that a hall technician fixes it before the doors open
//! rather than discovering it at the first ticket.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use hallq_engine::Setup;

use crate::devices::printer::PrintersConfig;
use crate::devices::voice::VoiceConfig;
use serde::Deserialize;

/// The example county hall shipped with hallq; `run --simulate` uses it.
pub const EXAMPLE_HALL: &str = include_str!("../examples/county-hall.toml");

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Who this hall and controller are.
    pub hall: Hall,
    /// The local HTTP API.
    #[serde(default)]
    pub server: Server,
    /// Where the database lives.
    #[serde(default)]
    pub storage: Storage,
    /// Staff sign-in rules.
    #[serde(default)]
    pub auth: Auth,
    /// The queue: services, windows, calendar and rules (the engine's setup).
    pub queue: Setup,
    /// The MQTT uplink to the hall server; absent means the events wait in the outbox.
    #[serde(default)]
    pub uplink: Option<crate::uplink::settings::UplinkConfig>,
    /// The service guide (办事指南) of each service, keyed by service code.
    #[serde(default)]
    pub guide: std::collections::BTreeMap<String, crate::guide::Guide>,
    /// The hall call board page (`/board`).
    #[serde(default)]
    pub board: Board,
    /// The ticket printers: one `[printer]`, or `[[printer]]` tables each serving its
    /// kiosks and desks; without them tickets are not printed.
    #[serde(default)]
    pub printer: PrintersConfig,
    /// RS-485 window buses (`[[bus]]`): LED screens, hall board, keypads.
    #[serde(default, rename = "bus")]
    pub buses: Vec<crate::devices::window::WindowBusConfig>,
    /// MAX7219 LED matrices on SPI (`[[led_matrix]]`): window screens or a hall board.
    #[serde(default, rename = "led_matrix")]
    pub led_matrices: Vec<crate::devices::window::config::LedMatrixConfig>,
    /// Caller or rating keypads of GPIO push buttons (`[[gpio_keypad]]`).
    #[serde(default, rename = "gpio_keypad")]
    pub gpio_keypads: Vec<crate::devices::window::config::GpioKeypadConfig>,
    /// Caller or rating keypads on USB (`[[usb_keypad]]`), read through evdev.
    #[serde(default, rename = "usb_keypad")]
    pub usb_keypads: Vec<crate::devices::window::config::UsbKeypadConfig>,
    /// Spoken calls; without this section (or with `enabled = false`) the hall is silent.
    #[serde(default)]
    pub voice: Option<VoiceConfig>,
    /// The citizen's phone: the address the ticket's QR code opens (`[phone] base_url`).
    #[serde(default)]
    pub phone: crate::phone::PhoneConfig,
    /// Resident ID card readers at the kiosks (`[[id_reader]]`).
    #[serde(default, rename = "id_reader")]
    pub id_readers: Vec<crate::devices::id_reader::IdReaderConfig>,
    /// What a card at the kiosk enables (`[id_card]`).
    #[serde(default)]
    pub id_card: crate::devices::id_reader::IdCardConfig,
    /// The guide desk (`/desk`): the reasons a ticket may be green.
    #[serde(default)]
    pub desk: crate::desk::DeskConfig,
    /// How 好差评 records are coded for the hall's platform, and the follow-up of a bad
    /// rating (`[evaluation]`).
    #[serde(default)]
    pub evaluation: crate::evaluation::EvaluationConfig,
    /// Electronic supervision (电子监察): when an unhandled warning goes up.
    #[serde(default)]
    pub supervision: Supervision,
    /// What the windows' screens and the board say about the window (亮身份).
    #[serde(default)]
    pub windows: Windows,
}

/// `[supervision]`: warnings followed up (预警纠错).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Supervision {
    /// Minutes a warning may stay unhandled before it is escalated to the hall server
    /// (a `warning_escalated` event, once per warning); 0 escalates at the next check.
    #[serde(default = "default_escalate")]
    pub escalate_after_minutes: u32,
}

/// Most minutes `escalate_after_minutes` takes: a warning left a whole day goes up.
pub const ESCALATE_MAX_MINUTES: u32 = 1440;

fn default_escalate() -> u32 {
    30
}

impl Default for Supervision {
    fn default() -> Self {
        Supervision {
            escalate_after_minutes: default_escalate(),
        }
    }
}

/// `[windows]`: what a window shows about who serves there.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Windows {
    /// 亮身份: the window's LED status line and its column on `/board` show the name and
    /// staff number (工号) of whoever is signed in there.
    #[serde(default = "default_show_staff")]
    pub show_staff: bool,
}

fn default_show_staff() -> bool {
    true
}

impl Default for Windows {
    fn default() -> Self {
        Windows {
            show_staff: default_show_staff(),
        }
    }
}

/// The hall call board shown on a TV (`/board`): which layout the hall chose and the
/// notices (通知公告) that scroll along its foot.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Board {
    /// `list` (the latest calls) or `windows` (a column per window showing whom it serves).
    #[serde(default = "default_layout")]
    pub layout: String,
    /// How many recent calls the board lists.
    #[serde(default = "default_recent")]
    pub recent_calls: usize,
    /// Notices scrolled along the foot of the board, in the order given.
    #[serde(default)]
    pub notices: Vec<String>,
    /// Play the call chime.
    #[serde(default = "default_chime")]
    pub chime: bool,
}

fn default_layout() -> String {
    "list".into()
}
fn default_recent() -> usize {
    8
}
fn default_chime() -> bool {
    true
}

impl Default for Board {
    fn default() -> Self {
        Board {
            layout: default_layout(),
            recent_calls: default_recent(),
            notices: Vec::new(),
            chime: default_chime(),
        }
    }
}

/// Identity of the hall.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hall {
    /// Printed on tickets and shown on the kiosk.
    pub name: String,
    /// Identifies this controller to the hall server; part of every event.
    pub controller_id: String,
}

/// The local API.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Server {
    /// Address to bind; loopback unless the hall puts kiosks on the LAN.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Keys that let a kiosk on another machine issue tickets (header `X-Kiosk-Key`).
    #[serde(default)]
    pub kiosk_keys: Vec<String>,
    /// The rating pages (`/rate/{window}`) on other machines, one key per window: the key
    /// is what tells the controller which window's pad is rating.
    #[serde(default)]
    pub rating_pads: Vec<RatingPad>,
    /// `[server.limits]`: connection and stream caps, timeouts, reserve descriptors.
    #[serde(default)]
    pub limits: crate::connections::Limits,
    /// Host names and addresses the controller answers to besides loopback and the
    /// `listen` IP (`Host` header): the names kiosks and browsers on the LAN use.
    #[serde(default)]
    pub hosts: Vec<String>,
}

/// A rating page on another machine, known by its key (sent as `X-Kiosk-Key`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RatingPad {
    /// The window it stands at.
    pub window: u32,
    /// Its key, 16 characters or more, different from every other key.
    pub key: String,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}

impl Default for Server {
    fn default() -> Self {
        Server {
            listen: default_listen(),
            kiosk_keys: Vec::new(),
            rating_pads: Vec::new(),
            limits: Default::default(),
            hosts: Vec::new(),
        }
    }
}

/// Storage.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Storage {
    /// Directory of `hallq.db`.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("/var/lib/hallq")
}

impl Default for Storage {
    fn default() -> Self {
        Storage {
            data_dir: default_data_dir(),
        }
    }
}

/// Staff sign-in rules.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Auth {
    /// Wrong PINs in a row before the account locks.
    #[serde(default = "default_failures")]
    pub max_failures: u32,
    /// How long a locked account stays locked.
    #[serde(default = "default_lockout")]
    pub lockout_minutes: u32,
    /// How long a sign-in lasts.
    #[serde(default = "default_session")]
    pub session_hours: u32,
}

fn default_failures() -> u32 {
    5
}
fn default_lockout() -> u32 {
    15
}
fn default_session() -> u32 {
    12
}

impl Default for Auth {
    fn default() -> Self {
        Auth {
            max_failures: default_failures(),
            lockout_minutes: default_lockout(),
            session_hours: default_session(),
        }
    }
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A key is wrong, missing or has a bad value.
    #[error("{file}:{line}: {key}: {message}")]
    Invalid {
        /// The file (or "<example>").
        file: String,
        /// 1-based line, 0 when unknown.
        line: usize,
        /// Dotted key path.
        key: String,
        /// What is wrong.
        message: String,
    },
}

impl Config {
    /// Reads and validates a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::parse(&text, &path.display().to_string())
    }

    /// The example hall.
    pub fn example() -> Config {
        Config::parse(EXAMPLE_HALL, "<example>").expect("the shipped example hall is valid")
    }

    /// Parses and validates configuration text; `file` names it in errors.
    // Over 100 lines: one check per key, in the order the file reads; split, the order would hide.
    pub fn parse(text: &str, file: &str) -> Result<Config, ConfigError> {
        let invalid = |key: String, line: usize, message: String| ConfigError::Invalid {
            file: file.to_string(),
            line,
            key,
            message,
        };
        let config: Config = read_toml(text, file)?;
        let check = |key: &str, ok: bool, message: &str| {
            if ok {
                Ok(())
            } else {
                Err(invalid(key.into(), key_line(text, key), message.into()))
            }
        };
        check(
            "hall.name",
            !config.hall.name.trim().is_empty(),
            "the hall needs a name",
        )?;
        check(
            "hall.controller_id",
            !config.hall.controller_id.is_empty()
                && config
                    .hall
                    .controller_id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
            "use letters, digits, - and _ only",
        )?;
        check(
            "auth.max_failures",
            config.auth.max_failures > 0,
            "must be at least 1",
        )?;
        check(
            "auth.session_hours",
            config.auth.session_hours > 0,
            "must be at least 1",
        )?;
        check(
            "server.kiosk_keys",
            config.server.kiosk_keys.iter().all(|k| k.len() >= 16),
            "each kiosk key must be at least 16 characters",
        )?;
        check(
            "server.hosts",
            config.server.hosts.iter().all(|h| {
                !h.is_empty()
                    && h.len() <= 253
                    && h.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-.:[]".contains(c))
            }),
            "each host is a name or an address without port or scheme (hall.example, 192.0.2.10)",
        )?;
        for (i, pad) in config.server.rating_pads.iter().enumerate() {
            let key = format!("server.rating_pads[{i}]");
            check(
                &format!("{key}.window"),
                config.queue.windows.iter().any(|w| w.number == pad.window),
                "there is no such window in [[queue.windows]]",
            )?;
            check(
                &format!("{key}.key"),
                pad.key.len() >= 16,
                "a rating pad key must be at least 16 characters",
            )?;
            let others = config.server.kiosk_keys.iter().chain(
                config
                    .server
                    .rating_pads
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| *j != i)
                    .map(|(_, p)| &p.key),
            );
            check(
                &format!("{key}.key"),
                !others.into_iter().any(|k| *k == pad.key),
                "each rating pad needs a key of its own (not a kiosk key, not another pad's)",
            )?;
        }
        config
            .server
            .limits
            .check()
            .map_err(|(key, message)| invalid(key.into(), key_line(text, key), message))?;
        if let Some(u) = &config.uplink {
            u.validate()
                .map_err(|(key, message)| invalid(key.into(), key_line(text, key), message))?;
        }
        check(
            "board.layout",
            matches!(config.board.layout.as_str(), "list" | "windows"),
            "use \"list\" (latest calls) or \"windows\" (a column per window)",
        )?;
        check(
            "board.recent_calls",
            (1..=30).contains(&config.board.recent_calls),
            "must be between 1 and 30",
        )?;
        check(
            "supervision.escalate_after_minutes",
            config.supervision.escalate_after_minutes <= ESCALATE_MAX_MINUTES,
            "at most 1440 (a day); 0 escalates at the next check",
        )?;
        config
            .desk
            .check()
            .map_err(|(key, message)| invalid(key.clone(), key_line(text, &key), message))?;
        config
            .phone
            .check()
            .map_err(|(key, message)| invalid(key.into(), key_line(text, key), message))?;
        check(
            "phone.notify",
            config.phone.notify != Some(true) || config.uplink.is_some(),
            "the near-turn text message goes through the hall server: configure [uplink], or set notify = false",
        )?;
        // No section declares the hall's kiosks and desks yet; when one does, its ids
        // go here and a printer may serve only those.
        config
            .printer
            .check(None)
            .map_err(|(key, message)| invalid(key.clone(), key_line(text, &key), message))?;
        for (key, p) in config.printer.keyed() {
            let key = format!("{key}.ticket");
            let prepared = p
                .prepare()
                .map_err(|e| invalid(key.clone(), key_line(text, &key), e.to_string()))?;
            // A token is 32 hex digits.
            if let Some(page) = config.phone.page_url(&"0".repeat(32)) {
                prepared.check_page_url(&page).map_err(|e| {
                    invalid(
                        "phone.base_url".into(),
                        key_line(text, "phone.base_url"),
                        format!("too long for the ticket's QR code of {}: {e}", p.name()),
                    )
                })?;
            }
        }
        // With an uplink the hall server may push windows the file does not have yet:
        // then a device's window is not held against the file's `[queue]`.
        let windows: Vec<u32> = config.queue.windows.iter().map(|w| w.number).collect();
        let known = config.uplink.is_none().then_some(windows.as_slice());
        config
            .window_devices()
            .check(known)
            .map_err(|(key, m)| invalid(key.clone(), key_line(text, &key), m))?;
        if let Some(v) = &config.voice {
            v.check()
                .map_err(|(key, message)| invalid(key.into(), key_line(text, key), message))?;
        }
        for (i, r) in config.id_readers.iter().enumerate() {
            r.check().map_err(|(field, message)| {
                let key = format!("id_reader[{i}].{field}");
                invalid(key.clone(), key_line(text, &key), message)
            })?;
            let before = &config.id_readers[..i];
            check(
                &format!("id_reader[{i}].id"),
                !before.iter().any(|o| o.id == r.id),
                "another [[id_reader]] has this id",
            )?;
            check(
                &format!("id_reader[{i}].kiosk"),
                !before.iter().any(|o| o.kiosk == r.kiosk),
                "another [[id_reader]] sits at this kiosk: one reader per kiosk",
            )?;
        }
        config
            .id_card
            .check()
            .map_err(|(key, message)| invalid(key.into(), key_line(text, key), message))?;
        check(
            "id_card.green_reason",
            config.id_card.green_age == 0
                || config.desk.reason(&config.id_card.green_reason).is_some(),
            "a code of [desk] green_reasons (the reason an older card holder's ticket records)",
        )?;
        config.queue.validate().map_err(|e| {
            let key = format!("queue.{}", e.key);
            invalid(key.clone(), key_line(text, &key), e.message)
        })?;
        let departments: Vec<&str> = config
            .queue
            .services
            .iter()
            .map(|s| s.department.as_str())
            .collect();
        config
            .evaluation
            .check(&departments)
            .map_err(|(key, message)| invalid(key.clone(), key_line(text, &key), message))?;
        for (code, guide) in &config.guide {
            let key = format!("guide.{code}");
            check(
                &key,
                config.queue.services.iter().any(|s| &s.code == code),
                "no service has this code",
            )?;
            guide.validate().map_err(|e| {
                let key = format!("{key}.{}", e.key);
                invalid(key.clone(), key_line(text, &key), e.message)
            })?;
        }
        Ok(config)
    }

    /// The window device sections, for [`crate::devices::window::start`].
    pub fn window_devices(&self) -> crate::devices::window::WindowDevicesConfig {
        crate::devices::window::WindowDevicesConfig {
            buses: self.buses.clone(),
            led_matrices: self.led_matrices.clone(),
            gpio_keypads: self.gpio_keypads.clone(),
            usb_keypads: self.usb_keypads.clone(),
            board_notices: self.board.notices.clone(),
            show_staff: self.windows.show_staff,
        }
    }

    /// The database file.
    pub fn database(&self) -> PathBuf {
        self.storage.data_dir.join("hallq.db")
    }
}

/// Reads a TOML document into `T`, refusing unknown keys where `T` does; an error names
/// the file, the line and the dotted key. The hall server reads its file the same way.
pub fn read_toml<T: serde::de::DeserializeOwned>(text: &str, file: &str) -> Result<T, ConfigError> {
    let invalid = |key: String, line: usize, message: String| ConfigError::Invalid {
        file: file.to_string(),
        line,
        key,
        message,
    };
    let de = toml::Deserializer::parse(text).map_err(|e| {
        invalid(
            String::new(),
            line_of(text, e.span()),
            e.message().to_string(),
        )
    })?;
    serde_path_to_error::deserialize(de).map_err(|e| {
        let key = e.path().to_string();
        let inner = e.into_inner();
        let line = match inner.span() {
            Some(span) => line_of(text, Some(span)),
            None => key_line(text, &key),
        };
        invalid(
            if key == "." { String::new() } else { key },
            line,
            inner.message().to_string(),
        )
    })
}

fn line_of(text: &str, span: Option<std::ops::Range<usize>>) -> usize {
    span.map_or(0, |s| {
        text[..s.start.min(text.len())].matches('\n').count() + 1
    })
}

/// The line of a dotted key path like `queue.services[2].prefix`, found by walking the
/// document; falls back to the nearest parent that exists.
pub fn key_line(text: &str, key: &str) -> usize {
    let Ok(doc) = toml_edit::Document::parse(text) else {
        return 0;
    };
    let mut item: &toml_edit::Item = doc.as_item();
    let mut best = 0;
    for part in key.split('.') {
        let (name, index) = match part.split_once('[') {
            Some((n, rest)) => (n, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (part, None),
        };
        let Some(next) = item.get(name) else { break };
        item = next;
        if let Some(i) = index {
            let Some(next) = item.get(i) else { break };
            item = next;
        }
        if let Some(span) = item.span() {
            best = line_of(text, Some(span));
        } else if let Some(t) = item.as_table()
            && let Some(span) = t.span()
        {
            best = line_of(text, Some(span));
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::window::BusProtocol;
    use crate::devices::window::keypad_config::parse_key;
    use hallq_hardware::window::keys::{CallerKey, Key};
    use std::path::Path;

    const EXAMPLE_DEVICES: &str = include_str!("../examples/window-devices.toml");

    fn with_devices(extra: &str) -> Result<Config, String> {
        Config::parse(&format!("{EXAMPLE_HALL}\n{extra}"), "hall.toml").map_err(|e| e.to_string())
    }

    #[test]
    fn the_example_of_every_device_kind_is_valid() {
        let c = with_devices(EXAMPLE_DEVICES).unwrap();
        assert_eq!(c.buses.len(), 2);
        assert_eq!(c.buses[1].protocol, BusProtocol::Vendor);
        assert_eq!(c.led_matrices[0].geometry().lines(), 2);
        assert_eq!(
            c.gpio_keypads[1].pins(),
            vec![
                (5, Key::Function(CallerKey::CallNext)),
                (6, Key::Function(CallerKey::Recall)),
                (13, Key::Function(CallerKey::Finish)),
                (19, Key::Function(CallerKey::PauseToggle)),
            ]
        );
        assert_eq!(
            c.usb_keypads[0].path(),
            Path::new("/dev/input/by-id/usb-Genius_Numeric_Keypad-event-kbd")
        );
        assert!(
            c.usb_keypads[0]
                .overrides()
                .contains(&(88, Key::Function(CallerKey::Finish))),
            "KEY_F12 is code 88"
        );
    }

    #[test]
    fn a_mistake_in_a_device_section_names_its_key_and_line() {
        let cases = [
            (
                "rating1 = 17",
                "rating1 = 71\nrating9 = 18",
                "gpio_keypad[0].buttons.rating9",
            ),
            (
                "call_next = 5",
                "call_next = 5\nrating1 = 7",
                "gpio_keypad[1].buttons.rating1",
            ),
            (
                "modules_high = 4",
                "modules_high = 3",
                "led_matrix[0].modules_high",
            ),
            (
                "KEY_F12 = \"finish\"",
                "KEY_F99 = \"finish\"",
                "usb_keypad[0].keymap.KEY_F99",
            ),
            (
                "kind = \"hall_board\"\nlines = 6",
                "kind = \"caller_keypad\"\nwindow = 1",
                "bus[1].device[2].kind",
            ),
            ("frame_end = 0x0D", "frame_end = 0x41", "bus[1].frame_end"),
            (
                "name = \"rate-w5\"",
                "name = \"caller-w5\"",
                "usb_keypad[1].name",
            ),
            (
                "window = 4\nmodules_wide",
                "window = 40\nmodules_wide",
                "led_matrix[0].window",
            ),
        ];
        for (from, to, key) in cases {
            let text = EXAMPLE_DEVICES.replacen(from, to, 1);
            assert_ne!(text, EXAMPLE_DEVICES, "{from}");
            let err = with_devices(&text).unwrap_err();
            assert!(err.contains(&format!(": {key}:")), "{key}: {err}");
            let line: usize = err.split(':').nth(1).unwrap().parse().unwrap();
            assert!(line > EXAMPLE_HALL.lines().count(), "{err}");
        }
    }

    #[test]
    fn keys_have_english_and_chinese_names() {
        assert_eq!(parse_key("rating5"), Some(Key::Rating(5)));
        assert_eq!(parse_key("rating6"), None);
        assert_eq!(parse_key("reason2"), Some(Key::Reason(2)));
        assert_eq!(parse_key("呼叫"), Some(Key::Function(CallerKey::CallNext)));
        assert_eq!(parse_key("no_show"), parse_key("弃号"));
        assert_eq!(parse_key("digit7"), Some(Key::Digit(7)));
        assert_eq!(parse_key("0"), Some(Key::Digit(0)));
        assert_eq!(parse_key("B"), Some(Key::Letter('B')));
        assert_eq!(parse_key("b"), None);
        assert_eq!(parse_key("finnish"), None);
    }

    #[test]
    fn a_bad_phone_base_url_names_the_key_and_its_line() {
        let text = format!("{EXAMPLE_HALL}\n[phone]\nbase_url = \"hall.example/q\"\n");
        let err = Config::parse(&text, "hall.toml").unwrap_err().to_string();
        let line = text
            .lines()
            .position(|l| l.starts_with("base_url"))
            .unwrap()
            + 1;
        assert!(
            err.starts_with(&format!("hall.toml:{line}: phone.base_url:")),
            "{err}"
        );
        let ok = format!("{EXAMPLE_HALL}\n[phone]\nbase_url = \"http://192.0.2.10:8080\"\n");
        let c = Config::parse(&ok, "hall.toml").unwrap();
        assert_eq!(
            c.phone.page_url("ab").as_deref(),
            Some("http://192.0.2.10:8080/t/ab")
        );
    }

    #[test]
    fn the_example_hall_is_valid() {
        let c = Config::example();
        assert!(c.queue.services.len() >= 6);
        assert!(c.queue.windows.iter().any(|w| w.green_channel));
    }

    /// The commented block of the example that starts with the line `first`, uncommented.
    fn commented(first: &str) -> String {
        let start = EXAMPLE_HALL
            .find(&format!("\n{first}\n"))
            .unwrap_or_else(|| panic!("{first} in the example"))
            + 1;
        EXAMPLE_HALL[start..]
            .lines()
            .take_while(|l| !l.is_empty())
            .map(|l| l.strip_prefix("# ").unwrap_or(l))
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn the_commented_printer_section_of_the_example_is_valid() {
        let section = commented("# [printer]");
        let c = Config::parse(&format!("{EXAMPLE_HALL}\n{section}"), "<example>").unwrap();
        let PrintersConfig::Single(p) = &c.printer else {
            panic!("one [printer]: {:?}", c.printer)
        };
        assert_eq!(p.ticket.fields.len(), 6);
        assert!(p.prints("kiosk-2"));
        assert_eq!(p.device(), "printer");
    }

    #[test]
    fn the_commented_several_printers_of_the_example_are_valid() {
        let section = commented("# [[printer]]");
        let c = Config::parse(&format!("{EXAMPLE_HALL}\n{section}"), "<example>").unwrap();
        let PrintersConfig::Several(list) = &c.printer else {
            panic!("[[printer]] tables: {:?}", c.printer)
        };
        let ids: Vec<_> = list.iter().map(|p| (p.name(), p.device())).collect();
        assert_eq!(
            ids,
            [
                ("k1", "printer-k1".to_string()),
                ("k2", "printer-k2".to_string()),
                ("desk", "printer-desk".to_string())
            ]
        );
        assert!(list[1].prints("kiosk-2") && !list[0].prints("kiosk-2"));
        assert!(list[2].prints("desk"));
        assert_eq!(list[2].paper, hallq_hardware::escpos::PaperWidth::Mm58);
    }

    /// Two `[[printer]]` tables on loopback TCP, `first` and `second` the lines that make
    /// each one's id and serves.
    fn two_printers(first: &str, second: &str) -> String {
        format!(
            "{EXAMPLE_HALL}\n[[printer]]\n{first}\n[printer.transport]\nkind = \"tcp\"\naddr = \"127.0.0.1:9100\"\n\
             [[printer]]\n{second}\n[printer.transport]\nkind = \"tcp\"\naddr = \"127.0.0.1:9101\"\n"
        )
    }

    /// Parses `text`, which must be refused naming `key` on the line holding `on`.
    fn refused_at(text: &str, key: &str, on: &str) -> String {
        let err = Config::parse(text, "hall.toml").unwrap_err();
        let ConfigError::Invalid { key: k, line, .. } = &err else {
            panic!("{err}")
        };
        assert_eq!(k, key, "{err}");
        let expected = text
            .lines()
            .enumerate()
            .filter(|(_, l)| l.starts_with(on))
            .last()
            .unwrap_or_else(|| panic!("{on}"))
            .0
            + 1;
        assert_eq!(*line, expected, "{err}");
        err.to_string()
    }

    #[test]
    fn several_printers_each_serve_their_kiosks() {
        let c = Config::parse(
            &two_printers(
                "id = \"p1\"\nserves = [\"kiosk-1\"]",
                "id = \"p2\"\nserves = [\"kiosk-2\", \"desk\"]\npaper = \"58mm\"",
            ),
            "hall.toml",
        )
        .unwrap();
        let by_channel = |ch: &str| -> Vec<String> {
            c.printer
                .iter()
                .filter(|p| p.prints(ch))
                .map(|p| p.name().to_string())
                .collect()
        };
        assert_eq!(by_channel("kiosk-1"), ["p1"]);
        assert_eq!(by_channel("kiosk-2"), ["p2"]);
        assert_eq!(by_channel("desk"), ["p2"]);
        assert!(by_channel("kiosk-3").is_empty());
        assert_eq!(c.printer.iter().count(), 2);
    }

    #[test]
    fn a_kiosk_mapped_to_two_printers_is_refused_at_its_line() {
        let text = two_printers(
            "id = \"p1\"\nserves = [\"kiosk-1\"]",
            "id = \"p2\"\nserves = [\"kiosk-2\", \"kiosk-1\"]",
        );
        let err = refused_at(&text, "printer[1].serves", "serves = [\"kiosk-2\"");
        assert!(
            err.contains("\"kiosk-1\" is already served by printer \"p1\""),
            "{err}"
        );
    }

    #[test]
    fn a_duplicate_printer_id_is_refused_at_its_line() {
        let text = two_printers(
            "id = \"p1\"\nserves = [\"kiosk-1\"]",
            "id = \"p1\"\nserves = [\"kiosk-2\"]",
        );
        let err = refused_at(&text, "printer[1].id", "id = \"p1\"");
        assert!(err.contains("already called \"p1\""), "{err}");
    }

    #[test]
    fn a_printer_without_an_id_or_with_channels_is_refused() {
        let text = two_printers(
            "id = \"p1\"\nserves = [\"kiosk-1\"]",
            "serves = [\"kiosk-2\"]",
        );
        let err = Config::parse(&text, "hall.toml").unwrap_err().to_string();
        assert!(err.contains(": printer[1].id: "), "{err}");
        let text = two_printers(
            "id = \"p1\"\nserves = [\"kiosk-1\"]",
            "id = \"p2\"\nchannels = [\"kiosk\"]\nserves = [\"kiosk-2\"]",
        );
        refused_at(&text, "printer[1].channels", "channels = ");
        // A mistake inside a table is named by its index, on its line.
        let text = two_printers(
            "id = \"p1\"\nserves = [\"kiosk-1\"]",
            "id = \"p2\"\nserves = [\"kiosk-2\"]\npaper = \"76mm\"",
        );
        let err = refused_at(&text, "printer[1].paper", "paper = \"76mm\"");
        assert!(err.contains("76mm"), "{err}");
    }

    #[test]
    fn the_single_printer_keeps_its_channels_and_refuses_the_keys_of_several() {
        let single = |extra: &str| {
            format!(
                "{EXAMPLE_HALL}\n[printer]\n{extra}\n[printer.transport]\nkind = \"tcp\"\naddr = \"127.0.0.1:9100\"\n"
            )
        };
        let c = Config::parse(&single("channels = [\"kiosk\", \"desk\"]"), "hall.toml").unwrap();
        let PrintersConfig::Single(p) = &c.printer else {
            panic!("{:?}", c.printer)
        };
        assert!(p.prints("kiosk-5") && p.prints("desk-2") && !p.prints("phone"));
        refused_at(&single("id = \"p1\""), "printer.id", "id = \"p1\"");
        refused_at(
            &single("serves = [\"kiosk-1\"]"),
            "printer.serves",
            "serves = ",
        );
        refused_at(
            &single("channels = []"),
            "printer.channels",
            "channels = []",
        );
    }

    #[test]
    fn the_commented_voice_section_of_the_example_is_valid() {
        let start = EXAMPLE_HALL.find("# [voice]").expect("voice example");
        let section: String = EXAMPLE_HALL[start..]
            .lines()
            .take_while(|l| !l.is_empty())
            .map(|l| l.strip_prefix("# ").unwrap_or(l))
            .collect::<Vec<_>>()
            .join("\n");
        let c = Config::parse(&format!("{EXAMPLE_HALL}\n{section}"), "<example>").unwrap();
        let v = c.voice.expect("voice section");
        assert_eq!((v.repeat, v.volume, v.max_queue), (2, 100, 5));
        assert!(v.quiet_hours.is_some());
        let bad = format!(
            "{EXAMPLE_HALL}\n{}",
            section.replace("repeat = 2", "repeat = 9")
        );
        let err = Config::parse(&bad, "hall.toml").unwrap_err().to_string();
        let line = bad
            .lines()
            .position(|l| l.starts_with("repeat = 9"))
            .unwrap()
            + 1;
        assert!(
            err.starts_with(&format!("hall.toml:{line}: voice.repeat:")),
            "{err}"
        );
    }

    #[test]
    fn the_commented_id_reader_section_of_the_example_is_valid_and_checked() {
        let start = EXAMPLE_HALL
            .find("# [[id_reader]]")
            .expect("id reader example");
        let section: String = EXAMPLE_HALL[start..]
            .lines()
            .take_while(|l| !l.is_empty())
            .map(|l| l.strip_prefix("# ").unwrap_or(l))
            .collect::<Vec<_>>()
            .join("\n");
        let c = Config::parse(&format!("{EXAMPLE_HALL}\n{section}"), "<example>").unwrap();
        assert_eq!(c.id_readers.len(), 1);
        assert_eq!(c.id_readers[0].kiosk, "kiosk-1");
        assert_eq!((c.id_card.green_age, c.id_card.hold_secs), (70, 60));
        assert!(c.id_card.green(70) && !c.id_card.green(69));
        let bad = format!(
            "{EXAMPLE_HALL}\n{}",
            section.replace("baud = 115200", "baud = 115201")
        );
        let err = Config::parse(&bad, "hall.toml").unwrap_err().to_string();
        let line = bad
            .lines()
            .position(|l| l.starts_with("baud = 115201"))
            .unwrap()
            + 1;
        assert!(
            err.starts_with(&format!("hall.toml:{line}: id_reader[0].baud:")),
            "{err}"
        );
        let off = format!(
            "{EXAMPLE_HALL}\n{}",
            section.replace("green_age = 70", "green_age = 0")
        );
        let c = Config::parse(&off, "hall.toml").unwrap();
        assert!(!c.id_card.green(99));
    }

    #[test]
    fn the_cards_green_reason_is_one_of_the_desks() {
        let text = format!("{EXAMPLE_HALL}\n[id_card]\ngreen_reason = \"elder\"\n");
        let err = Config::parse(&text, "hall.toml").unwrap_err().to_string();
        let line = text
            .lines()
            .position(|l| l.starts_with("green_reason = \"elder\""))
            .unwrap()
            + 1;
        assert!(
            err.starts_with(&format!("hall.toml:{line}: id_card.green_reason:")),
            "{err}"
        );
        // Only the appended section: the example's commented [id_card] block names the
        // key too, and a replace over the whole text would uncomment half of it.
        let off = format!("{EXAMPLE_HALL}\n[id_card]\ngreen_age = 0\ngreen_reason = \"elder\"\n");
        assert!(Config::parse(&off, "hall.toml").is_ok());
        let c = Config::parse(EXAMPLE_HALL, "hall.toml").unwrap();
        assert_eq!(c.id_card.green_reason, "elderly");
    }

    #[test]
    fn a_bad_green_reason_names_its_key_and_line() {
        let text = format!(
            "{EXAMPLE_HALL}\n[[desk.green_reasons]]\ncode = \"elderly\"\nname = {{ \"zh-CN\" = \"老人\" }}\n\n[[desk.green_reasons]]\ncode = \"elderly\"\nname = {{ \"zh-CN\" = \"又一个\" }}\n"
        );
        let err = Config::parse(&text, "hall.toml").unwrap_err().to_string();
        let line = text
            .lines()
            .enumerate()
            .filter(|(_, l)| l.starts_with("code = \"elderly\""))
            .nth(1)
            .unwrap()
            .0
            + 1;
        assert!(
            err.starts_with(&format!("hall.toml:{line}: desk.green_reasons[1].code:")),
            "{err}"
        );
        let c = Config::parse(EXAMPLE_HALL, "hall.toml").unwrap();
        assert_eq!(c.desk.green_reasons.len(), 5);
    }

    #[test]
    fn an_unknown_key_is_named_with_its_line() {
        let text = EXAMPLE_HALL.replacen("[server]", "[server]\nlisten_port = 80", 1);
        let err = Config::parse(&text, "hall.toml").unwrap_err().to_string();
        let line = text
            .lines()
            .position(|l| l.starts_with("listen_port"))
            .unwrap()
            + 1;
        assert!(err.starts_with(&format!("hall.toml:{line}: ")), "{err}");
        assert!(err.contains("listen_port"), "{err}");
    }

    #[test]
    fn a_duplicate_prefix_names_the_key_and_its_line() {
        let text = EXAMPLE_HALL.replacen("prefix = \"B\"", "prefix = \"A\"", 1);
        let err = Config::parse(&text, "hall.toml").unwrap_err();
        let ConfigError::Invalid { key, line, .. } = &err else {
            panic!("{err}")
        };
        assert_eq!(key, "queue.services[1].prefix");
        let expected = text
            .lines()
            .enumerate()
            .filter(|(_, l)| l.starts_with("prefix = \"A\""))
            .nth(1)
            .unwrap()
            .0
            + 1;
        assert_eq!(*line, expected, "{err}");
    }

    #[test]
    fn every_example_service_has_a_valid_guide() {
        let c = Config::example();
        for s in &c.queue.services {
            let g = c.guide.get(&s.code).expect("a guide for every service");
            assert!(g.materials.len() >= 2, "{}", s.code);
        }
    }

    #[test]
    fn a_guide_error_names_the_key_and_its_line() {
        let text = EXAMPLE_HALL.replacen("count = 2", "count = 0", 1);
        let err = Config::parse(&text, "hall.toml").unwrap_err();
        let ConfigError::Invalid { key, line, .. } = &err else {
            panic!("{err}")
        };
        assert!(
            key.starts_with("guide.") && key.ends_with(".count"),
            "{err}"
        );
        let expected = text.lines().position(|l| l.contains("count = 0")).unwrap() + 1;
        assert_eq!(*line, expected, "{err}");
    }

    #[test]
    fn a_guide_for_an_unknown_service_is_refused() {
        let text = format!("{EXAMPLE_HALL}\n[guide.XX]\nitem_code = \"1\"\n");
        let err = Config::parse(&text, "hall.toml").unwrap_err().to_string();
        assert!(err.contains("guide.XX"), "{err}");
    }

    #[test]
    fn a_bad_value_type_names_the_key() {
        let text = EXAMPLE_HALL.replacen("recall_limit = 3", "recall_limit = \"three\"", 1);
        let err = Config::parse(&text, "hall.toml").unwrap_err().to_string();
        assert!(err.contains("queue.recall_limit"), "{err}");
        let line = text.lines().position(|l| l.contains("\"three\"")).unwrap() + 1;
        assert!(err.starts_with(&format!("hall.toml:{line}:")), "{err}");
    }
}
