//! The tasks that own each window device that is not a Modbus bus, one per port or
//! device file, all speaking [`LinkEvent`] to the one controller in
//! [`super::window_bus`]:
//!
//! - **vendor-frame screens** (`[[bus]]` with `protocol = "vendor"`): one async task owns
//!   the serial port and writes the frames of every screen on it, in the order the
//!   controller asked (a call's window screen before the hall board). The screens never
//!   answer, so the task watches the port itself: a write error, a hang-up or the device
//!   node changing means it is gone; it is reopened with backoff and every screen is
//!   redrawn, and all screens are redrawn every `refresh_secs` in case one lost power.
//! - **MAX7219 LED matrices on SPI** (`[[led_matrix]]`): one thread per chain, which
//!   also advances scrolling and blinking every [`TICK`].
//! - **GPIO button keypads** (`[[gpio_keypad]]`): one thread per keypad sampling its
//!   lines every [`GPIO_SAMPLE`] through the kernel GPIO character device, debounced.
//! - **USB HID keypads** (`[[usb_keypad]]`): one thread per keypad blocked on evdev.
//!
//! SPI, GPIO and evdev calls block, so they run on threads of their own, never on the
//! tokio runtime. The threads are generic over [`Panel`] and [`KeySource`], which any
//! `embedded-hal` SPI device or input pins provide, so the daemon's code is tested with
//! in-memory hardware. A device file that is missing or fails makes the device
//! `offline` (a `device_fault` event) and is retried with backoff up to
//! [`MAX_BACKOFF`]; the queue never waits for it.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};

use embedded_hal::digital::InputPin;
use embedded_hal::spi::SpiDevice;
use hallq_hardware::window::font::BitmapFont;
use hallq_hardware::window::gpio::GpioKeypad;
use hallq_hardware::window::keys::{CallerKey, Key, RatingLevel};
use hallq_hardware::window::max7219::{Geometry, Max7219Display};
use hallq_hardware::window::regmap::DeviceKind;
use hallq_hardware::window::text::Gb2312Text;
use hallq_hardware::window::vendor_frame::{MAX_TEXT, VendorDisplay, VendorProfile};
use hallq_hardware::window::{CounterDisplay, DisplayContent};
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use super::window_bus::{
    BusProtocol, DEFAULT_VENDOR_REFRESH_SECS, Link, LinkEvent, LinkSetup, Placement,
    WindowBusConfig, check_window, default_armed, rating_key_map,
};

/// How often a LED matrix advances its scrolling and blinking (30 dots a second).
pub const TICK: Duration = Duration::from_millis(33);
/// How often GPIO buttons are sampled.
pub const GPIO_SAMPLE: Duration = Duration::from_millis(5);
/// First wait before reopening a device that is missing or failed.
pub const MIN_BACKOFF: Duration = Duration::from_millis(100);
/// Longest wait between attempts to reopen a device.
pub const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Longest wait between attempts to reopen a vendor screens' serial port.
pub const VENDOR_MAX_BACKOFF: Duration = Duration::from_secs(1);

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

/// One `[[led_matrix]]`: a chain of MAX7219 8×8 modules on a Linux SPI device.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LedMatrixConfig {
    /// Device id in fault events; defaults to `led<N>`.
    #[serde(default)]
    pub name: Option<String>,
    /// The SPI device, e.g. `/dev/spidev0.0`.
    pub spi: String,
    /// `window_screen` or `hall_board`.
    pub kind: DeviceKind,
    /// The window it hangs over (not for a hall board).
    #[serde(default)]
    pub window: Option<u32>,
    /// Modules across (8 dots each; a Chinese character is 2 modules wide).
    pub modules_wide: u8,
    /// Modules down (2 per text line).
    pub modules_high: u8,
    /// SPI clock, Hz (MAX7219 takes up to 10 MHz; long wires want less).
    #[serde(default = "default_spi_hz")]
    pub speed_hz: u32,
    /// A GNU Unifont `.hex` font; default: `$HALLQ_BITMAP_FONT`, else the Debian
    /// `unifont` package's file.
    #[serde(default)]
    pub font: Option<PathBuf>,
}

fn default_spi_hz() -> u32 {
    1_000_000
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

impl LedMatrixConfig {
    /// The module arrangement.
    pub fn geometry(&self) -> Geometry {
        Geometry {
            modules_wide: self.modules_wide,
            modules_high: self.modules_high,
        }
    }

    /// Checks against the hall's windows; `(key suffix, message)` on error.
    pub fn check(&self, windows: &[u32]) -> Result<(), (String, String)> {
        if self.spi.trim().is_empty() {
            return Err((
                "spi".into(),
                "name the SPI device, e.g. /dev/spidev0.0".into(),
            ));
        }
        if !matches!(self.kind, DeviceKind::WindowScreen | DeviceKind::HallBoard) {
            return Err((
                "kind".into(),
                "an LED matrix is a window_screen or a hall_board".into(),
            ));
        }
        check_window(self.kind, self.window, windows)?;
        if !(2..=64).contains(&self.modules_wide) {
            return Err((
                "modules_wide".into(),
                "2 to 64 modules (2 per Chinese character)".into(),
            ));
        }
        if self.modules_high == 0 || !self.modules_high.is_multiple_of(2) || self.modules_high > 16
        {
            return Err((
                "modules_high".into(),
                "2, 4, … 16 modules (2 per text line)".into(),
            ));
        }
        if !(10_000..=10_000_000).contains(&self.speed_hz) {
            return Err((
                "speed_hz".into(),
                "10000 to 10000000 (the MAX7219 takes up to 10 MHz)".into(),
            ));
        }
        Ok(())
    }
}

impl GpioKeypadConfig {
    /// Checks against the hall's windows; `(key suffix, message)` on error.
    pub fn check(&self, windows: &[u32]) -> Result<(), (String, String)> {
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
    pub fn check(&self, windows: &[u32]) -> Result<(), (String, String)> {
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

/// The link names of every window device in `config`, in the order they are started:
/// `[[bus]]`, `[[led_matrix]]`, `[[gpio_keypad]]`, `[[usb_keypad]]`.
pub fn names(config: &crate::config::Config) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (i, b) in config.buses.iter().enumerate() {
        out.push((format!("bus[{i}].name"), b.name(i)));
    }
    for (i, m) in config.led_matrices.iter().enumerate() {
        let n = m.name.clone().unwrap_or_else(|| format!("led{i}"));
        out.push((format!("led_matrix[{i}].name"), n));
    }
    for (i, g) in config.gpio_keypads.iter().enumerate() {
        let n = g.name.clone().unwrap_or_else(|| format!("gpio{i}"));
        out.push((format!("gpio_keypad[{i}].name"), n));
    }
    for (i, u) in config.usb_keypads.iter().enumerate() {
        let n = u.name.clone().unwrap_or_else(|| format!("usb{i}"));
        out.push((format!("usb_keypad[{i}].name"), n));
    }
    out
}

/// Checks every window device section; `(key, message)` with the full key path.
pub fn check_all(config: &crate::config::Config) -> Result<(), (String, String)> {
    let windows: Vec<u32> = config.queue.windows.iter().map(|w| w.number).collect();
    let sections = [
        ("led_matrix", config.led_matrices.len()),
        ("gpio_keypad", config.gpio_keypads.len()),
        ("usb_keypad", config.usb_keypads.len()),
    ];
    for (section, n) in sections {
        for i in 0..n {
            let r = match section {
                "led_matrix" => config.led_matrices[i].check(&windows),
                "gpio_keypad" => config.gpio_keypads[i].check(&windows),
                _ => config.usb_keypads[i].check(&windows),
            };
            r.map_err(|(k, m)| (format!("{section}[{i}].{k}"), m))?;
        }
    }
    let mut seen: Vec<String> = Vec::new();
    for (key, name) in names(config) {
        if name.trim().is_empty() || name.contains('/') {
            return Err((key, "use a short name without /".into()));
        }
        if seen.contains(&name) {
            return Err((
                key,
                format!("{name:?} names two devices; device ids must differ"),
            ));
        }
        seen.push(name);
    }
    Ok(())
}

/// Start the non-bus window devices of `config`: LED matrices, GPIO and USB keypads.
pub fn start_all(config: &crate::config::Config) -> Vec<LinkSetup> {
    let reasons = &config.queue.rating.reasons;
    let mut out = Vec::new();
    for (i, m) in config.led_matrices.iter().enumerate() {
        let name = m.name.clone().unwrap_or_else(|| format!("led{i}"));
        let cfg = m.clone();
        let geometry = m.geometry();
        let mut font: Option<Arc<BitmapFont>> = None;
        let open = move || -> Result<Max7219Display<linux_embedded_hal::SpidevDevice>, String> {
            let f = match &font {
                Some(f) => f.clone(),
                None => {
                    let loaded = match &cfg.font {
                        Some(p) => BitmapFont::load(p),
                        None => BitmapFont::find(),
                    }
                    .map_err(|e| e.to_string())?;
                    let f = Arc::new(loaded);
                    font = Some(f.clone());
                    f
                }
            };
            let spi = open_spidev(&cfg.spi, cfg.speed_hz)?;
            let mut d = Max7219Display::new(spi, geometry, (*f).clone());
            d.init().map_err(|e| e.to_string())?;
            Ok(d)
        };
        out.push(matrix_link(
            &name,
            screen_place(m.kind, m.window, geometry),
            open,
        ));
    }
    for (i, g) in config.gpio_keypads.iter().enumerate() {
        let name = g.name.clone().unwrap_or_else(|| format!("gpio{i}"));
        let cfg = g.clone();
        let open = move || -> Result<GpioSource<PinKind>, String> {
            let mut pins = Vec::new();
            for (line, key) in cfg.pins() {
                pins.push((open_pin(&cfg.chip, line)?, key));
            }
            let mut pad = GpioKeypad::new(pins, Duration::from_millis(cfg.debounce_ms));
            if cfg.active == Active::High {
                pad = pad.active_high();
            }
            Ok(GpioSource::new(pad))
        };
        out.push(keypad_link(
            &name,
            key_place(
                g.kind,
                g.window,
                &g.levels,
                g.keys,
                g.rating_armed_secs,
                reasons,
            ),
            open,
        ));
    }
    for (i, u) in config.usb_keypads.iter().enumerate() {
        let name = u.name.clone().unwrap_or_else(|| format!("usb{i}"));
        let place = key_place(
            u.kind,
            u.window,
            &u.levels,
            u.keys,
            u.rating_armed_secs,
            reasons,
        );
        out.push(usb_link(&name, u, place));
    }
    out
}

#[cfg(feature = "usb-hid")]
fn usb_link(name: &str, u: &UsbKeypadConfig, place: Placement) -> LinkSetup {
    use hallq_hardware::window::usb_hid::{EvdevKeypad, UsbKeymap};
    let path = u.path();
    let mut map = UsbKeymap::default();
    for (code, key) in u.overrides() {
        map.set(code, key);
    }
    keypad_link(name, place, move || {
        EvdevKeypad::open(&path, map.clone()).map_err(|e| format!("{}: {e}", path.display()))
    })
}

#[cfg(not(feature = "usb-hid"))]
fn usb_link(name: &str, _u: &UsbKeypadConfig, place: Placement) -> LinkSetup {
    keypad_link(name, place, || -> Result<GpioSource<PinKind>, String> {
        Err("this build has no USB HID support (feature usb-hid)".into())
    })
}

/// Open a Linux SPI device for a MAX7219 chain: mode 0, 8 bits, `speed_hz`.
pub fn open_spidev(path: &str, speed_hz: u32) -> Result<linux_embedded_hal::SpidevDevice, String> {
    use linux_embedded_hal::spidev::{SpiModeFlags, SpidevOptions};
    let mut spi =
        linux_embedded_hal::SpidevDevice::open(path).map_err(|e| format!("{path}: {e:?}"))?;
    spi.configure(
        &SpidevOptions::new()
            .bits_per_word(8)
            .max_speed_hz(speed_hz)
            .mode(SpiModeFlags::SPI_MODE_0)
            .build(),
    )
    .map_err(|e| format!("{path}: {e}"))?;
    Ok(spi)
}

/// The pin type GPIO keypads use: the kernel character device, or `rppal` on a
/// Raspberry Pi build (feature `rpi`, where `chip` is ignored and lines are BCM numbers).
#[cfg(not(feature = "rpi"))]
pub type PinKind = hallq_hardware::window::gpio::CdevPin;
/// The pin type GPIO keypads use (feature `rpi`: `rppal`, lines are BCM numbers).
#[cfg(feature = "rpi")]
pub type PinKind = rppal::gpio::InputPin;

#[cfg(not(feature = "rpi"))]
fn open_pin(chip: &str, line: u32) -> Result<PinKind, String> {
    hallq_hardware::window::gpio::CdevPin::input(chip, line).map_err(|e| e.to_string())
}

#[cfg(feature = "rpi")]
fn open_pin(_chip: &str, line: u32) -> Result<PinKind, String> {
    let bcm = u8::try_from(line).map_err(|_| format!("no BCM pin {line}"))?;
    hallq_hardware::window::gpio::rpi_input(bcm).map_err(|e| e.to_string())
}

/// Where a screen sits; its lines come from its geometry.
pub fn screen_place(kind: DeviceKind, window: Option<u32>, geometry: Geometry) -> Placement {
    Placement {
        unit: 0,
        kind,
        window,
        keymap: None,
        armed_for: Duration::from_secs(default_armed()),
        lines: Some(geometry.lines() as u16),
    }
}

/// Where a keypad sits and what its keys mean.
pub fn key_place(
    kind: DeviceKind,
    window: Option<u32>,
    levels: &Option<Vec<RatingLevel>>,
    keys: Option<u8>,
    armed_secs: u64,
    reasons: &[String],
) -> Placement {
    Placement {
        unit: 0,
        kind,
        window,
        keymap: (kind == DeviceKind::RatingKeypad)
            .then(|| rating_key_map(levels, keys, reasons).ok())
            .flatten(),
        armed_for: Duration::from_secs(armed_secs.max(1)),
        lines: None,
    }
}

/// A screen driven from a thread: draws content and animates.
pub trait Panel {
    /// Show `content`.
    fn draw(&mut self, content: &DisplayContent) -> Result<(), String>;
    /// Advance scrolling and blinking one step.
    fn tick(&mut self) -> Result<(), String>;
}

impl<S: SpiDevice> Panel for Max7219Display<S> {
    fn draw(&mut self, content: &DisplayContent) -> Result<(), String> {
        self.show(content).map_err(|e| e.to_string())
    }
    fn tick(&mut self) -> Result<(), String> {
        Max7219Display::tick(self)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

/// Keys from a device that a thread may block on.
pub trait KeySource {
    /// The next presses (may block a while, or return none after a short sample).
    fn next_keys(&mut self) -> Result<Vec<Key>, String>;
}

/// GPIO buttons sampled every [`GPIO_SAMPLE`].
pub struct GpioSource<P> {
    pad: GpioKeypad<P>,
}

impl<P: InputPin> GpioSource<P> {
    /// Sample `pad`.
    pub fn new(pad: GpioKeypad<P>) -> Self {
        GpioSource { pad }
    }
}

impl<P: InputPin> KeySource for GpioSource<P> {
    fn next_keys(&mut self) -> Result<Vec<Key>, String> {
        std::thread::sleep(GPIO_SAMPLE);
        self.pad.poll(Instant::now()).map_err(|e| e.to_string())
    }
}

#[cfg(feature = "usb-hid")]
impl KeySource for hallq_hardware::window::usb_hid::EvdevKeypad {
    fn next_keys(&mut self) -> Result<Vec<Key>, String> {
        self.read_keys().map_err(|e| e.to_string())
    }
}

/// Opens a device with backoff, reporting offline once per outage and online when it
/// opens; false when the link is to stop.
struct Reopen {
    backoff: Duration,
    max: Duration,
    offline: bool,
}

impl Reopen {
    fn new() -> Reopen {
        Reopen {
            backoff: MIN_BACKOFF,
            max: MAX_BACKOFF,
            offline: false,
        }
    }

    fn failed(&mut self, events: &mpsc::UnboundedSender<LinkEvent>, unit: u8, reason: String) {
        if !self.offline {
            tracing::warn!("window device unit {unit}: {reason}");
            let _ = events.send(LinkEvent::Offline { unit, reason });
            self.offline = true;
        }
    }

    fn wait(&mut self) -> Duration {
        let w = self.backoff;
        self.backoff = (self.backoff * 2).min(self.max);
        w
    }

    fn opened(&mut self, events: &mpsc::UnboundedSender<LinkEvent>, unit: u8, lines: Option<u16>) {
        self.backoff = MIN_BACKOFF;
        self.offline = false;
        let _ = events.send(LinkEvent::Online { unit, lines });
    }
}

/// Start a thread owning one screen that `open` opens (and reopens after a failure).
pub fn matrix_link<P, O>(name: &str, place: Placement, mut open: O) -> LinkSetup
where
    P: Panel + 'static,
    O: FnMut() -> Result<P, String> + Send + 'static,
{
    let (tx, rx) = std_mpsc::channel::<DisplayContent>();
    let (etx, erx) = mpsc::unbounded_channel();
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = stop.clone();
    let lines = place.lines;
    let thread_name = format!("hallq-{name}");
    let spawned = std::thread::Builder::new()
        .name(thread_name)
        .spawn(move || {
            let mut want: Option<DisplayContent> = None;
            let mut panel: Option<P> = None;
            let mut reopen = Reopen::new();
            let mut next_open = Instant::now();
            while !stopped.load(Ordering::Relaxed) {
                if panel.is_none() && Instant::now() >= next_open {
                    match open().and_then(|mut p| {
                        if let Some(c) = &want {
                            p.draw(c)?;
                        }
                        Ok(p)
                    }) {
                        Ok(p) => {
                            panel = Some(p);
                            reopen.opened(&etx, 0, lines);
                        }
                        Err(e) => {
                            reopen.failed(&etx, 0, e);
                            next_open = Instant::now() + reopen.wait();
                        }
                    }
                }
                let timeout = match panel {
                    Some(_) => TICK,
                    None => next_open
                        .saturating_duration_since(Instant::now())
                        .min(TICK * 3),
                };
                let r = match rx.recv_timeout(timeout) {
                    Ok(mut c) => {
                        while let Ok(newer) = rx.try_recv() {
                            c = newer;
                        }
                        let r = panel.as_mut().map(|p| p.draw(&c));
                        want = Some(c);
                        r
                    }
                    Err(std_mpsc::RecvTimeoutError::Timeout) => panel.as_mut().map(|p| p.tick()),
                    Err(std_mpsc::RecvTimeoutError::Disconnected) => return,
                };
                if let Some(Err(e)) = r {
                    panel = None;
                    reopen.failed(&etx, 0, e);
                    next_open = Instant::now() + reopen.wait();
                }
            }
        });
    if let Err(e) = spawned {
        tracing::error!("cannot start the thread for {name}: {e}");
    }
    LinkSetup {
        link: Link::new(
            name,
            false,
            move |_, c| tx.send(c).is_ok(),
            move || stop.store(true, Ordering::Relaxed),
        ),
        events: erx,
        devices: vec![place],
    }
}

/// Start a thread owning one keypad that `open` opens (and reopens after a failure).
pub fn keypad_link<K, O>(name: &str, place: Placement, mut open: O) -> LinkSetup
where
    K: KeySource + 'static,
    O: FnMut() -> Result<K, String> + Send + 'static,
{
    let (etx, erx) = mpsc::unbounded_channel();
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = stop.clone();
    let spawned = std::thread::Builder::new()
        .name(format!("hallq-{name}"))
        .spawn(move || {
            let mut reopen = Reopen::new();
            let live = || !stopped.load(Ordering::Relaxed) && !etx.is_closed();
            while live() {
                let mut source = match open() {
                    Ok(s) => {
                        reopen.opened(&etx, 0, None);
                        s
                    }
                    Err(e) => {
                        reopen.failed(&etx, 0, e);
                        let until = Instant::now() + reopen.wait();
                        while live() && Instant::now() < until {
                            std::thread::sleep(Duration::from_millis(20));
                        }
                        continue;
                    }
                };
                while live() {
                    match source.next_keys() {
                        Ok(keys) => {
                            for key in keys {
                                if etx
                                    .send(LinkEvent::Key {
                                        unit: 0,
                                        key,
                                        seq: None,
                                    })
                                    .is_err()
                                {
                                    return;
                                }
                            }
                        }
                        Err(e) => {
                            reopen.failed(&etx, 0, e);
                            std::thread::sleep(reopen.wait());
                            break;
                        }
                    }
                }
            }
        });
    if let Err(e) = spawned {
        tracing::error!("cannot start the thread for {name}: {e}");
    }
    LinkSetup {
        link: Link::new(
            name,
            false,
            |_, _| true,
            move || stop.store(true, Ordering::Relaxed),
        ),
        events: erx,
        devices: vec![place],
    }
}

/// Start the task owning a vendor-frame `[[bus]]`: write-only screens on one port.
pub fn vendor_link(name: &str, b: &WindowBusConfig) -> LinkSetup {
    debug_assert_eq!(b.protocol, BusProtocol::Vendor);
    let (tx, rx) = mpsc::unbounded_channel::<(u8, DisplayContent)>();
    let (etx, erx) = mpsc::unbounded_channel();
    let screens: Vec<(u8, u16)> = b
        .devices
        .iter()
        .map(|d| {
            let default = if d.kind == DeviceKind::HallBoard {
                6
            } else {
                2
            };
            (d.unit, d.lines.unwrap_or(default))
        })
        .collect();
    let bus = VendorBus {
        name: name.to_string(),
        port: b.port.clone(),
        baud: b.baud,
        profile: b.vendor_profile(),
        refresh: Duration::from_secs(b.refresh_secs.unwrap_or(DEFAULT_VENDOR_REFRESH_SECS)),
        screens: screens.clone(),
    };
    let task = tokio::spawn(bus.run(rx, etx));
    LinkSetup {
        link: Link::new(
            name,
            true,
            move |unit, c| tx.send((unit, c)).is_ok(),
            move || task.abort(),
        ),
        events: erx,
        devices: b
            .devices
            .iter()
            .zip(&screens)
            .map(|(d, (_, lines))| Placement {
                unit: d.unit,
                kind: d.kind,
                window: d.window,
                keymap: None,
                armed_for: Duration::from_secs(default_armed()),
                lines: Some(*lines),
            })
            .collect(),
    }
}

struct VendorBus {
    name: String,
    port: String,
    baud: u32,
    profile: VendorProfile,
    refresh: Duration,
    screens: Vec<(u8, u16)>,
}

/// The device node a path leads to, to notice a port replaced under the same name.
fn node_of(path: &str) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.rdev(), m.ino()))
}

impl VendorBus {
    fn frames(&self, addr: u8, content: &DisplayContent) -> Option<Vec<u8>> {
        let lines = self.screens.iter().find(|s| s.0 == addr)?.1;
        let d = VendorDisplay::new(Vec::new(), addr, lines.min(255) as u8, self.profile);
        let mut content = content.clone();
        for l in &mut content.lines {
            if l.text.bytes().len() > MAX_TEXT {
                // A long notice is cut to what the screen's buffer takes rather than
                // leaving the whole screen undrawn.
                tracing::debug!(bus = %self.name, addr, "line cut to {MAX_TEXT} bytes");
                let mut cut = String::new();
                let mut used = 0;
                for ch in l.text.as_str().chars() {
                    used += if ch.is_ascii() { 1 } else { 2 };
                    if used > MAX_TEXT {
                        break;
                    }
                    cut.push(ch);
                }
                if let Ok(t) = Gb2312Text::new(&cut) {
                    l.text = t;
                }
            }
        }
        match d.frames(&content) {
            Ok(f) => Some(f),
            Err(e) => {
                tracing::warn!(bus = %self.name, addr, "cannot show content: {e}");
                None
            }
        }
    }

    async fn run(
        self,
        mut cmds: mpsc::UnboundedReceiver<(u8, DisplayContent)>,
        events: mpsc::UnboundedSender<LinkEvent>,
    ) {
        let mut want: BTreeMap<u8, DisplayContent> = BTreeMap::new();
        // A serial port is cheap to look for, and screens wait blank meanwhile.
        let mut reopen = Reopen {
            max: VENDOR_MAX_BACKOFF,
            ..Reopen::new()
        };
        let all_offline = |reopen: &mut Reopen, reason: String| {
            if !reopen.offline {
                tracing::warn!(bus = %self.name, port = %self.port, "{reason}");
                for (addr, _) in &self.screens {
                    let _ = events.send(LinkEvent::Offline {
                        unit: *addr,
                        reason: format!("port {}: {reason}", self.port),
                    });
                }
                reopen.offline = true;
            }
        };
        loop {
            let opened =
                tokio_serial::SerialStream::open(&tokio_serial::new(&self.port, self.baud));
            let port = match opened {
                Ok(p) => p,
                Err(e) => {
                    all_offline(&mut reopen, e.to_string());
                    // Keep taking content while waiting, so the redraw is the latest.
                    let wake = tokio::time::sleep(reopen.wait());
                    tokio::pin!(wake);
                    loop {
                        tokio::select! {
                            cmd = cmds.recv() => match cmd {
                                Some((a, c)) => { want.insert(a, c); }
                                None => return,
                            },
                            _ = &mut wake => break,
                        }
                    }
                    continue;
                }
            };
            let node = node_of(&self.port);
            tracing::info!(bus = %self.name, port = %self.port, "vendor screen port open");
            reopen.backoff = MIN_BACKOFF;
            reopen.offline = false;
            for (addr, lines) in &self.screens {
                let _ = events.send(LinkEvent::Online {
                    unit: *addr,
                    lines: Some(*lines),
                });
            }
            let (mut rd, mut wr) = tokio::io::split(port);
            // Everything is drawn on a new port: a screen may have lost power with it.
            let mut queue: VecDeque<u8> = want.keys().copied().collect();
            let mut next_refresh = tokio::time::Instant::now() + self.refresh;
            let mut check = tokio::time::interval(Duration::from_secs(1));
            let mut buf = [0u8; 64];
            let reason = loop {
                while let Ok((a, c)) = cmds.try_recv() {
                    want.insert(a, c);
                    if !queue.contains(&a) {
                        queue.push_back(a);
                    }
                }
                if let Some(addr) = queue.pop_front() {
                    let Some(bytes) = want.get(&addr).and_then(|c| self.frames(addr, c)) else {
                        continue;
                    };
                    let r = async {
                        wr.write_all(&bytes).await?;
                        wr.flush().await
                    }
                    .await;
                    match r {
                        Ok(()) => continue,
                        Err(e) => break format!("write failed: {e}"),
                    }
                }
                tokio::select! {
                    cmd = cmds.recv() => match cmd {
                        Some((a, c)) => {
                            want.insert(a, c);
                            queue.push_back(a);
                        }
                        None => return,
                    },
                    r = rd.read(&mut buf) => match r {
                        // Screens do not talk; whatever arrives (an echo, noise) is dropped.
                        Ok(n) if n > 0 => {}
                        Ok(_) => break "the port hung up".to_string(),
                        Err(e) => break format!("the port failed: {e}"),
                    },
                    _ = check.tick() => {
                        if node_of(&self.port) != node {
                            break "the port disappeared".to_string();
                        }
                        if !self.refresh.is_zero() && tokio::time::Instant::now() >= next_refresh {
                            next_refresh = tokio::time::Instant::now() + self.refresh;
                            let more: Vec<u8> = want.keys().copied().filter(|a| !queue.contains(a)).collect();
                            queue.extend(more);
                        }
                    }
                }
            };
            all_offline(&mut reopen, reason);
            tokio::time::sleep(reopen.wait()).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, EXAMPLE_HALL};
    use crate::devices::health::{Devices, Health};
    use crate::devices::window_bus::{WindowBuses, call_screen, drive, paused_screen};
    use embedded_hal::spi::{ErrorKind, ErrorType, Operation};
    use hallq_engine::{Class, Command, Role, TicketId};
    use std::sync::Mutex;
    use std::sync::atomic::AtomicBool;

    const EXAMPLE_DEVICES: &str = include_str!("../../examples/window-devices.toml");

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

    /// A MAX7219 chain in memory: decodes the SPI words into each module's rows, the
    /// way the chips latch them, and can be made to fail like an unplugged cable.
    #[derive(Clone)]
    struct MemChain {
        modules: usize,
        wide: usize,
        rows: Arc<Mutex<Vec<[u8; 8]>>>,
        broken: Arc<AtomicBool>,
    }

    impl MemChain {
        fn new(g: Geometry) -> MemChain {
            let modules = g.modules_wide as usize * g.modules_high as usize;
            MemChain {
                modules,
                wide: g.modules_wide as usize,
                rows: Arc::new(Mutex::new(vec![[0; 8]; modules])),
                broken: Arc::new(AtomicBool::new(false)),
            }
        }
        /// Dots of text line `n` (16 rows), as strings of '#' and '.'.
        fn line(&self, n: usize) -> Vec<String> {
            let rows = self.rows.lock().unwrap();
            (n * 16..n * 16 + 16)
                .map(|y| {
                    (0..self.wide * 8)
                        .map(|x| {
                            let m = (y / 8) * self.wide + x / 8;
                            if rows[m][y % 8] >> (7 - x % 8) & 1 == 1 {
                                '#'
                            } else {
                                '.'
                            }
                        })
                        .collect()
                })
                .collect()
        }
    }

    #[derive(Debug)]
    struct Unplugged;
    impl embedded_hal::spi::Error for Unplugged {
        fn kind(&self) -> ErrorKind {
            ErrorKind::Other
        }
    }
    impl ErrorType for MemChain {
        type Error = Unplugged;
    }
    impl SpiDevice for MemChain {
        fn transaction(&mut self, ops: &mut [Operation<'_, u8>]) -> Result<(), Unplugged> {
            if self.broken.load(Ordering::SeqCst) {
                return Err(Unplugged);
            }
            let mut rows = self.rows.lock().unwrap();
            for op in ops {
                if let Operation::Write(buf) = op {
                    // The first word shifted in ends in the last module of the chain.
                    for (i, w) in buf.chunks(2).enumerate() {
                        let m = self.modules - 1 - i;
                        if let [reg @ 1..=8, v] = *w {
                            rows[m][reg as usize - 1] = v;
                        }
                    }
                }
            }
            Ok(())
        }
    }

    /// A push button in memory, wired to ground: low while pressed.
    #[derive(Clone, Default)]
    struct MemButton(Arc<AtomicBool>);
    impl embedded_hal::digital::ErrorType for MemButton {
        type Error = core::convert::Infallible;
    }
    impl InputPin for MemButton {
        fn is_high(&mut self) -> Result<bool, Self::Error> {
            Ok(!self.0.load(Ordering::SeqCst))
        }
        fn is_low(&mut self) -> Result<bool, Self::Error> {
            Ok(self.0.load(Ordering::SeqCst))
        }
    }
    impl MemButton {
        async fn press(&self) {
            self.0.store(true, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(60)).await;
            self.0.store(false, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(60)).await;
        }
    }

    async fn until(what: &str, mut f: impl FnMut() -> bool) {
        let t = Instant::now();
        while !f() {
            assert!(t.elapsed() < Duration::from_secs(5), "timed out: {what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn reference(g: Geometry, font: &BitmapFont, c: &DisplayContent, n: usize) -> Vec<String> {
        let chain = MemChain::new(g);
        let mut d = Max7219Display::new(chain.clone(), g, font.clone());
        d.init().unwrap();
        d.show(c).unwrap();
        chain.line(n)
    }

    struct Rig {
        hall: crate::core::Hall,
        devices: Devices,
        buses: WindowBuses,
        _dir: tempfile::TempDir,
    }

    async fn hall_with(links: impl FnOnce(&Config) -> Vec<LinkSetup>) -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let config =
            Config::load(&crate::bench::write_config(dir.path(), "127.0.0.1:0", true).unwrap())
                .unwrap();
        std::fs::create_dir_all(&config.storage.data_dir).unwrap();
        let store = crate::store::Store::open(&config.database()).unwrap();
        let (hall, _core) = crate::core::Hall::start(config.queue.clone(), store).unwrap();
        let devices = Devices::load(hall.clone()).await.unwrap();
        let buses = drive(
            links(&config),
            &config.queue,
            String::new(),
            hall.clone(),
            devices.clone(),
        )
        .await;
        Rig {
            hall,
            devices,
            buses,
            _dir: dir,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn gpio_buttons_call_and_rate_and_the_spi_matrix_shows_it() {
        let font = BitmapFont::find().expect("install the Debian package unifont");
        let g = Geometry {
            modules_wide: 8,
            modules_high: 4,
        };
        let chain = MemChain::new(g);
        let (call, rate_good, rate_bad) = (
            MemButton::default(),
            MemButton::default(),
            MemButton::default(),
        );
        let opens = Arc::new(Mutex::new(0));
        let rig = hall_with(|config| {
            let (chain, font, opens) = (chain.clone(), font.clone(), opens.clone());
            let screen = matrix_link(
                "led-w3",
                screen_place(DeviceKind::WindowScreen, Some(3), g),
                move || {
                    *opens.lock().unwrap() += 1;
                    let mut d = Max7219Display::new(chain.clone(), g, font.clone());
                    d.init().map_err(|e| e.to_string())?;
                    Ok(d)
                },
            );
            let c = call.clone();
            let caller = keypad_link(
                "caller-w3",
                key_place(DeviceKind::CallerKeypad, Some(3), &None, None, 60, &[]),
                move || {
                    Ok(GpioSource::new(GpioKeypad::new(
                        vec![(c.clone(), Key::Function(CallerKey::CallNext))],
                        Duration::from_millis(20),
                    )))
                },
            );
            let (good, bad) = (rate_good.clone(), rate_bad.clone());
            let rating = keypad_link(
                "rate-w3",
                key_place(
                    DeviceKind::RatingKeypad,
                    Some(3),
                    &None,
                    Some(3),
                    60,
                    &config.queue.rating.reasons,
                ),
                move || {
                    Ok(GpioSource::new(GpioKeypad::new(
                        vec![
                            (good.clone(), Key::Rating(1)),
                            (bad.clone(), Key::Rating(3)),
                        ],
                        Duration::from_millis(20),
                    )))
                },
            );
            vec![screen, caller, rating]
        })
        .await;
        let hall = &rig.hall;
        hall.execute(Command::SignIn {
            window: 3,
            staff: "B001".into(),
            role: Role::A,
        })
        .await
        .unwrap();
        let service = Config::example().queue.windows[2].services[0].code.clone();
        hall.execute(Command::Issue {
            service,
            class: Class::Normal,
            idempotency_key: None,
            citizen: None,
            channel: "test".into(),
        })
        .await
        .unwrap();

        // The caller's button calls as the staff signed in; the matrix shows the number.
        call.press().await;
        let number = loop {
            let n = hall
                .query(|e, _| {
                    e.windows()[&3]
                        .current
                        .and_then(|t| e.ticket(t))
                        .map(|t| (t.id, t.number.clone()))
                })
                .await
                .unwrap();
            if let Some(n) = n {
                break n;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        let want = reference(g, &font, &call_screen(&number.1, 3), 0);
        assert!(want.iter().any(|r| r.contains('#')), "the number has dots");
        // Line 0 blinks: wait for its lit phase.
        until("the number on the matrix", || chain.line(0) == want).await;
        let staff = hall
            .query(move |e, _| e.ticket(number.0).and_then(|t| t.staff.clone()))
            .await
            .unwrap();
        assert_eq!(staff.as_deref(), Some("B001"));

        // Finish arms the three-key pad: its third key is 不满意, stored reason pending.
        for cmd in [
            Command::StartServing {
                window: 3,
                staff: "B001".into(),
            },
            Command::Finish {
                window: 3,
                staff: "B001".into(),
                case_no: None,
            },
        ] {
            hall.execute(cmd).await.unwrap();
        }
        rate_bad.press().await;
        let rated = |id: TicketId| {
            let hall = hall.clone();
            async move {
                hall.query(move |e, _| {
                    e.rating(id)
                        .map(|r| (r.level.name().to_string(), r.reason_pending))
                })
                .await
                .unwrap()
            }
        };
        let t = Instant::now();
        while rated(number.0).await.is_none() {
            assert!(t.elapsed() < Duration::from_secs(5), "no rating");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(rated(number.0).await, Some(("不满意".into(), true)));
        // A second press within the window replaces it.
        rate_good.press().await;
        until("the replaced rating", || {
            futures_lite(rated(number.0)) == Some(("满意".into(), false))
        })
        .await;

        // The SPI cable fails: offline; it comes back: the matrix is redrawn.
        chain.broken.store(true, Ordering::SeqCst);
        hall.execute(Command::Pause {
            window: 3,
            staff: "B001".into(),
            reason: "test".into(),
        })
        .await
        .unwrap();
        let led = |d: &Devices| {
            d.snapshot()
                .into_iter()
                .find(|s| s.device == "led-w3")
                .map(|s| s.health)
        };
        until("the offline fault", || {
            matches!(led(&rig.devices), Some(Health::Fault { ref code, .. }) if code == "offline")
        })
        .await;
        let paused = reference(g, &font, &paused_screen(3), 0);
        chain.broken.store(false, Ordering::SeqCst);
        until("the paused screen after the cable returns", || {
            chain.line(0) == paused
        })
        .await;
        until("recovered", || led(&rig.devices) == Some(Health::Ok)).await;
        assert!(*opens.lock().unwrap() >= 2, "the chain was reopened");
        rig.buses.shutdown();
    }

    /// A USB keypad in memory: Linux key events in, decoded by the same keymap (the
    /// standard layout plus the section's `keymap`) that the evdev reader uses.
    #[cfg(feature = "usb-hid")]
    struct MemUsb {
        events: std_mpsc::Receiver<(u16, i32)>,
        map: hallq_hardware::window::usb_hid::UsbKeymap,
    }

    #[cfg(feature = "usb-hid")]
    impl KeySource for MemUsb {
        fn next_keys(&mut self) -> Result<Vec<Key>, String> {
            let (code, value) = self.events.recv().map_err(|_| "unplugged".to_string())?;
            Ok(self.map.decode(code, value).into_iter().collect())
        }
    }

    #[cfg(feature = "usb-hid")]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_usb_keypad_acts_through_its_configured_keymap() {
        use evdev::KeyCode;
        let section: UsbKeypadConfig = toml::from_str(
            "device = \"usb-x-event-kbd\"\nkind = \"caller_keypad\"\nwindow = 3\n\
             [keymap]\nKEY_F12 = \"呼叫\"\nKEY_END = \"recall\"\n",
        )
        .unwrap();
        section.check(&[3]).unwrap();
        let (tx, rx) = std_mpsc::channel();
        let mut rx = Some(rx);
        let rig = hall_with(|_| {
            let mut map = hallq_hardware::window::usb_hid::UsbKeymap::default();
            for (code, key) in section.overrides() {
                map.set(code, key);
            }
            let place = key_place(DeviceKind::CallerKeypad, Some(3), &None, None, 60, &[]);
            vec![keypad_link("caller-w3", place, move || {
                let events = rx.take().ok_or("unplugged")?;
                Ok(MemUsb {
                    events,
                    map: map.clone(),
                })
            })]
        })
        .await;
        let hall = &rig.hall;
        hall.execute(Command::SignIn {
            window: 3,
            staff: "B001".into(),
            role: Role::A,
        })
        .await
        .unwrap();
        let service = Config::example().queue.windows[2].services[0].code.clone();
        for _ in 0..2 {
            hall.execute(Command::Issue {
                service: service.clone(),
                class: Class::Normal,
                idempotency_key: None,
                citizen: None,
                channel: "test".into(),
            })
            .await
            .unwrap();
        }
        let current = || {
            futures_lite(hall.query(|e, _| {
                e.windows()[&3]
                    .current
                    .and_then(|t| e.ticket(t))
                    .map(|t| (t.number.clone(), t.recalls))
            }))
            .unwrap()
        };
        // F12 was made 呼叫; auto-repeat (2) and release (0) are not presses.
        for value in [1, 2, 2, 0] {
            tx.send((KeyCode::KEY_F12.code(), value)).unwrap();
        }
        until("a call from F12", || current().is_some()).await;
        let first = current().unwrap().0;
        // End is 完成 in the standard layout, recall here.
        tx.send((KeyCode::KEY_END.code(), 1)).unwrap();
        until("the recall", || current() == Some((first.clone(), 1))).await;
        // - is 弃号; then typed digits and Enter call a given number: the second ticket.
        let second = format!("{}2", &first[..first.len() - 1]);
        for k in [KeyCode::KEY_KPMINUS, KeyCode::KEY_KP2, KeyCode::KEY_KPENTER] {
            tx.send((k.code(), 1)).unwrap();
        }
        until("the typed call", || {
            current().is_some_and(|c| c.0 == second)
        })
        .await;
        rig.buses.shutdown();
    }

    /// Run a small future to completion from a synchronous closure (the test's polls).
    fn futures_lite<F: std::future::Future>(f: F) -> F::Output {
        tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(f))
    }
}
