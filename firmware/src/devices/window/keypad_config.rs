//! The keypad settings (`[[gpio_keypad]]`, `[[usb_keypad]]`) and the names of hallq's
//! keys as the configuration writes them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use hallq_hardware::window::keys::{CallerKey, Key, RatingLevel};
use hallq_hardware::window::regmap::DeviceKind;
use serde::Deserialize;

use super::checks::{check_window, default_armed, rating_key_map};

/// Which level a GPIO button reads when pressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Active {
    /// The button pulls the line to ground (the usual wiring, with the pull-up on).
    #[default]
    Low,
    /// The button pulls the line to the supply (with a pull-down resistor).
    High,
}

/// One `[[gpio_keypad]]`: push buttons on GPIO lines of one chip.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpioKeypadConfig {
    /// Device id in fault events; defaults to `gpio<N>`.
    #[serde(default)]
    pub name: Option<String>,
    /// The GPIO character device, e.g. `/dev/gpiochip0`.
    pub chip: String,
    /// `caller_keypad` or `rating_keypad`.
    pub kind: DeviceKind,
    /// The window it serves.
    pub window: Option<u32>,
    /// Which button is on which line: key name = line offset on the chip.
    pub buttons: BTreeMap<String, u32>,
    /// `low` (button to ground, the default) or `high`.
    #[serde(default)]
    pub active: Active,
    /// How long a contact must be steady to count, milliseconds.
    #[serde(default = "default_debounce")]
    pub debounce_ms: u64,
    /// A rating pad's levels, button `rating1` first.
    #[serde(default)]
    pub levels: Option<Vec<RatingLevel>>,
    /// A rating pad's number of level keys when `levels` is not given (5 or 3).
    #[serde(default)]
    pub keys: Option<u8>,
    /// How long finish arms this rating pad, seconds.
    #[serde(default = "default_armed")]
    pub rating_armed_secs: u64,
}

fn default_debounce() -> u64 {
    20
}

/// One `[[usb_keypad]]`: a USB keypad read through evdev.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsbKeypadConfig {
    /// Device id in fault events; defaults to `usb<N>`.
    #[serde(default)]
    pub name: Option<String>,
    /// `/dev/input/event3`, a full `/dev/input/by-id/...` path, or just the by-id name
    /// (`usb-Foo_Keypad-event-kbd`), which survives replugging into another socket.
    pub device: String,
    /// `caller_keypad` or `rating_keypad`.
    pub kind: DeviceKind,
    /// The window it serves.
    pub window: Option<u32>,
    /// Changes to the standard layout: Linux key name (or code) = hallq key name.
    #[serde(default)]
    pub keymap: BTreeMap<String, String>,
    /// A rating pad's levels, key `rating1` first.
    #[serde(default)]
    pub levels: Option<Vec<RatingLevel>>,
    /// A rating pad's number of level keys when `levels` is not given (5 or 3).
    #[serde(default)]
    pub keys: Option<u8>,
    /// How long finish arms this rating pad, seconds.
    #[serde(default = "default_armed")]
    pub rating_armed_secs: u64,
}

/// A hallq key by the name the configuration uses: `rating1`–`rating5`,
/// `reason1`–`reason8`, `call_next` (呼叫), `recall` (重呼), `no_show` (弃号),
/// `transfer` (转移), `pause` (暂停), `resume` (恢复), `pause_toggle`, `finish` (完成),
/// `call_typed` (指呼), `clear` (清除), `digit0`–`digit9` (or `0`–`9`), and a letter
/// `A`–`Z` for a service prefix. The Chinese names in brackets work too.
pub fn parse_key(name: &str) -> Option<Key> {
    let n = name.trim();
    let numbered = |prefix: &str, max: u8| {
        n.strip_prefix(prefix)
            .and_then(|d| d.parse::<u8>().ok())
            .filter(|d| (1..=max).contains(d))
    };
    if let Some(d) = numbered("rating", 5) {
        return Some(Key::Rating(d));
    }
    if let Some(d) = numbered("reason", 8) {
        return Some(Key::Reason(d));
    }
    let digit = n.strip_prefix("digit").unwrap_or(n);
    if digit.len() == 1
        && let Some(d) = digit.chars().next().and_then(|c| c.to_digit(10))
    {
        return Some(Key::Digit(d as u8));
    }
    if n.len() == 1 && n.chars().all(|c| c.is_ascii_uppercase()) {
        return n.chars().next().map(Key::Letter);
    }
    let f = match n {
        "call_next" | "呼叫" => CallerKey::CallNext,
        "recall" | "重呼" => CallerKey::Recall,
        "no_show" | "弃号" | "过号" => CallerKey::NoShow,
        "transfer" | "转移" => CallerKey::Transfer,
        "pause" | "暂停" => CallerKey::Pause,
        "resume" | "恢复" => CallerKey::Resume,
        "pause_toggle" => CallerKey::PauseToggle,
        "finish" | "完成" => CallerKey::Finish,
        "call_typed" | "指呼" => CallerKey::CallTyped,
        "clear" | "清除" => CallerKey::Clear,
        _ => return None,
    };
    Some(Key::Function(f))
}

const KEY_NAMES: &str = "rating1–5, reason1–8, call_next, recall, no_show, transfer, pause, \
                         resume, pause_toggle, finish, call_typed, clear, digit0–9, A–Z";

/// Whether `key` belongs on a pad of `kind`.
fn key_fits(kind: DeviceKind, key: Key) -> bool {
    match kind {
        DeviceKind::RatingKeypad => matches!(key, Key::Rating(_) | Key::Reason(_)),
        _ => !matches!(key, Key::Rating(_) | Key::Reason(_)),
    }
}

fn check_keypad_kind(kind: DeviceKind) -> Result<(), (String, String)> {
    match kind {
        DeviceKind::CallerKeypad | DeviceKind::RatingKeypad => Ok(()),
        _ => Err((
            "kind".into(),
            "a keypad is a caller_keypad or a rating_keypad".into(),
        )),
    }
}

fn check_rating(
    kind: DeviceKind,
    levels: &Option<Vec<RatingLevel>>,
    keys: Option<u8>,
) -> Result<(), (String, String)> {
    if kind == DeviceKind::RatingKeypad {
        rating_key_map(levels, keys, &[]).map_err(|m| ("levels".to_string(), m))?;
    } else if levels.is_some() || keys.is_some() {
        let k = if levels.is_some() { "levels" } else { "keys" };
        return Err((k.into(), "only a rating_keypad has rating keys".into()));
    }
    Ok(())
}

impl GpioKeypadConfig {
    /// The device id: `name`, else `gpio<index>`.
    pub fn name(&self, index: usize) -> String {
        self.name.clone().unwrap_or_else(|| format!("gpio{index}"))
    }

    /// Checks against the hall's windows; `(key suffix, message)` on error.
    pub fn check(&self, windows: Option<&[u32]>) -> Result<(), (String, String)> {
        if self.chip.trim().is_empty() {
            return Err((
                "chip".into(),
                "name the GPIO chip, e.g. /dev/gpiochip0".into(),
            ));
        }
        check_keypad_kind(self.kind)?;
        check_window(self.kind, self.window, windows)?;
        if self.buttons.is_empty() {
            return Err((
                "buttons".into(),
                "list the buttons: key name = GPIO line, e.g. rating1 = 17".into(),
            ));
        }
        let mut lines: Vec<u32> = Vec::new();
        for (name, line) in &self.buttons {
            let key = format!("buttons.{name}");
            let Some(k) = parse_key(name) else {
                return Err((key, format!("unknown key; use one of {KEY_NAMES}")));
            };
            if !key_fits(self.kind, k) {
                return Err((key, format!("a {:?} has no such key", self.kind)));
            }
            if lines.contains(line) {
                return Err((key, format!("line {line} has two buttons")));
            }
            lines.push(*line);
        }
        if !(1..=500).contains(&self.debounce_ms) {
            return Err(("debounce_ms".into(), "1 to 500 (20 is usual)".into()));
        }
        check_rating(self.kind, &self.levels, self.keys)
    }

    /// Buttons as (line, key), in line order.
    pub fn pins(&self) -> Vec<(u32, Key)> {
        let mut v: Vec<(u32, Key)> = self
            .buttons
            .iter()
            .filter_map(|(n, l)| parse_key(n).map(|k| (*l, k)))
            .collect();
        v.sort_by_key(|(l, _)| *l);
        v
    }
}

/// A Linux key by name (`KEY_F1`) or number.
#[cfg(feature = "usb-hid")]
fn linux_key(name: &str) -> Option<u16> {
    name.parse::<u16>()
        .ok()
        .or_else(|| name.parse::<evdev::KeyCode>().ok().map(|k| k.code()))
}

#[cfg(not(feature = "usb-hid"))]
fn linux_key(name: &str) -> Option<u16> {
    name.parse::<u16>().ok()
}

impl UsbKeypadConfig {
    /// The device id: `name`, else `usb<index>`.
    pub fn name(&self, index: usize) -> String {
        self.name.clone().unwrap_or_else(|| format!("usb{index}"))
    }

    /// The device path: a bare name is looked up in `/dev/input/by-id/`.
    pub fn path(&self) -> PathBuf {
        let p = Path::new(&self.device);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            Path::new("/dev/input/by-id").join(p)
        }
    }

    /// The configured key changes as (Linux code, key).
    pub fn overrides(&self) -> Vec<(u16, Key)> {
        self.keymap
            .iter()
            .filter_map(|(l, k)| Some((linux_key(l)?, parse_key(k)?)))
            .collect()
    }

    /// Checks against the hall's windows; `(key suffix, message)` on error.
    pub fn check(&self, windows: Option<&[u32]>) -> Result<(), (String, String)> {
        if self.device.trim().is_empty() {
            return Err((
                "device".into(),
                "name the keypad: /dev/input/by-id/… or its by-id name".into(),
            ));
        }
        check_keypad_kind(self.kind)?;
        check_window(self.kind, self.window, windows)?;
        for (linux, hallq) in &self.keymap {
            let key = format!("keymap.{linux}");
            if linux_key(linux).is_none() {
                return Err((
                    key,
                    "not a Linux key name (KEY_F1, KEY_KPENTER, …) or code".into(),
                ));
            }
            let Some(k) = parse_key(hallq) else {
                return Err((
                    key,
                    format!("unknown key {hallq:?}; use one of {KEY_NAMES}"),
                ));
            };
            if !key_fits(self.kind, k) {
                return Err((key, format!("a {:?} has no key {hallq:?}", self.kind)));
            }
        }
        check_rating(self.kind, &self.levels, self.keys)
    }
}
