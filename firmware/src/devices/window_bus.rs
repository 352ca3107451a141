//! The window devices in the daemon: LED screens over the windows, the hall board,
//! caller keypads and rating keypads — on RS-485 buses (the hall-device Modbus profile of
//! `docs/protocol.md`, or write-only vendor-frame screens), on SPI (MAX7219 module
//! chains), on GPIO buttons and on USB keypads.
//!
//! Every device, whatever its wiring, is reached through a [`Link`]: the one task (or
//! thread) that owns its port or device file, takes "show this" and reports
//! [`LinkEvent`]s (keys, online, offline, faults). This module holds the `[[bus]]`
//! configuration and the one controller that drives all links the same way; the tasks
//! for each kind of wiring are in [`super::window_links`].
//!
//! The controller follows the committed events and the links' key presses:
//!
//! - a call shows the number on the window's screen and "请 A001 号到 3 号窗口办理" on
//!   the hall board, above the latest calls and a scrolling notice; a pause shows
//!   "暂停服务";
//! - finish arms the window's rating keypad for `rating_armed_secs`: a press records a
//!   rating for that ticket through the engine's `Rate` command (a bad rating from a pad
//!   without reason keys is stored with its reason pending; a reason key, or a second
//!   press within the engine's replace window, replaces it); an unarmed pad records
//!   nothing, so no rating is ever invented. The armed state is derived from the engine's
//!   state at start (the window's latest finish, if nothing was called there since and it
//!   is still within the armed time), so a restart between finish and the press loses
//!   nothing;
//! - caller keypad presses become the same window commands as the API's, as the staff
//!   member signed in at that window;
//! - devices going offline or raising faults are reported to the health registry, which
//!   turns changes into `device_fault` / `device_recovered` events.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hallq_engine::{Command, Level, TicketId, TicketState, TransferTarget};
use hallq_hardware::window::bus::{self, BusConfig, BusDevice, BusEvent};
use hallq_hardware::window::keys::{
    CallerAction, CallerInput, Key, RatingInput, RatingKeyMap, RatingLevel,
};
use hallq_hardware::window::regmap::{DeviceKind, fault};
use hallq_hardware::window::vendor_frame::VendorProfile;
use hallq_hardware::window::{Colour, DisplayContent, DisplayLine, Effect};
use serde::Deserialize;
use tokio::sync::{mpsc, watch};

use super::health::{Devices, Health};
use crate::core::{Hall, wall_now};
use crate::store::StoredEvent;

/// What an RS-485 bus speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BusProtocol {
    /// The hall-device Modbus RTU profile: screens and keypads that answer.
    #[default]
    Modbus,
    /// The common write-only vendor screen frame (`HEADER addr cmd line attr text END`).
    Vendor,
}

/// One `[[bus]]` section: an RS-485 port and the devices on it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowBusConfig {
    /// Name in logs and device ids (`bus0/unit3`); defaults to `bus<N>`.
    #[serde(default)]
    pub name: Option<String>,
    /// Serial device, e.g. `/dev/ttyUSB0` or `/dev/serial/by-id/...`.
    pub port: String,
    /// `modbus` (the hall-device profile, the default) or `vendor` (write-only screens).
    #[serde(default)]
    pub protocol: BusProtocol,
    /// Baud rate (8N1).
    #[serde(default = "default_baud")]
    pub baud: u32,
    /// How long to wait for a device's answer, milliseconds (Modbus).
    #[serde(default = "default_timeout")]
    pub response_timeout_ms: u64,
    /// How often keypads are polled, milliseconds (Modbus).
    #[serde(default = "default_key_poll")]
    pub key_poll_ms: u64,
    /// How long finish arms the window's rating keypad, seconds.
    #[serde(default = "default_armed")]
    pub rating_armed_secs: u64,
    /// Scrolling notice on the hall board's last line (通知公告); when empty, the
    /// `[board]` notices are used.
    #[serde(default)]
    pub notice: String,
    /// Vendor screens: the first byte of every frame (default 0x02).
    #[serde(default)]
    pub frame_header: Option<u8>,
    /// Vendor screens: the last byte of every frame (default 0x0D).
    #[serde(default)]
    pub frame_end: Option<u8>,
    /// Vendor screens: redraw every screen this often, seconds, since a screen that
    /// never answers cannot tell us it lost power (0 = only on changes).
    #[serde(default)]
    pub refresh_secs: Option<u64>,
    /// The devices.
    #[serde(default, rename = "device")]
    pub devices: Vec<WindowDeviceConfig>,
}

impl Default for WindowBusConfig {
    fn default() -> Self {
        WindowBusConfig {
            name: None,
            port: String::new(),
            protocol: BusProtocol::Modbus,
            baud: default_baud(),
            response_timeout_ms: default_timeout(),
            key_poll_ms: default_key_poll(),
            rating_armed_secs: default_armed(),
            notice: String::new(),
            frame_header: None,
            frame_end: None,
            refresh_secs: None,
            devices: Vec::new(),
        }
    }
}

fn default_baud() -> u32 {
    9600
}
fn default_timeout() -> u64 {
    100
}
fn default_key_poll() -> u64 {
    100
}
/// Default seconds a finish arms the rating pad.
pub fn default_armed() -> u64 {
    60
}
/// Default seconds between full redraws of write-only vendor screens.
pub const DEFAULT_VENDOR_REFRESH_SECS: u64 = 30;

/// One `[[bus.device]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowDeviceConfig {
    /// Modbus unit id 1–247, or a vendor screen's address 0–255.
    pub unit: u8,
    /// `window_screen`, `hall_board`, `caller_keypad`, `rating_keypad` or `window_terminal`
    /// (a vendor bus carries screens only).
    pub kind: DeviceKind,
    /// The window it belongs to (not for a hall board).
    #[serde(default)]
    pub window: Option<u32>,
    /// A rating pad's levels, key 1 first (default: the five levels, 非常满意 first; a
    /// 3-key pad: 满意, 基本满意, 不满意).
    #[serde(default)]
    pub levels: Option<Vec<RatingLevel>>,
    /// Number of rating keys when `levels` is not given (5 or 3).
    #[serde(default)]
    pub keys: Option<u8>,
    /// Vendor screens: how many text lines it has (default 2; a hall board 6). A Modbus
    /// device says so itself.
    #[serde(default)]
    pub lines: Option<u16>,
}

/// A rating pad's key map from its `levels` / `keys` settings and the hall's reasons.
pub fn rating_key_map(
    levels: &Option<Vec<RatingLevel>>,
    keys: Option<u8>,
    reasons: &[String],
) -> Result<RatingKeyMap, String> {
    let mut map = match (levels, keys) {
        (Some(levels), _) => RatingKeyMap {
            levels: levels.clone(),
            reasons: Vec::new(),
        },
        (None, Some(3)) => RatingKeyMap::three(),
        (None, None | Some(5)) => RatingKeyMap::five(),
        (None, Some(n)) => return Err(format!("a rating pad has 3 or 5 keys, not {n}")),
    };
    map.reasons = reasons.to_vec();
    map.validate().map_err(|e| e.to_string())
}

/// Checks a device's `window` against the hall's windows; hall boards have none.
pub fn check_window(
    kind: DeviceKind,
    window: Option<u32>,
    windows: &[u32],
) -> Result<(), (String, String)> {
    match (kind, window) {
        (DeviceKind::HallBoard, Some(_)) => Err((
            "window".into(),
            "a hall board serves the whole hall: remove `window`".into(),
        )),
        (DeviceKind::HallBoard, None) => Ok(()),
        (_, None) => Err(("window".into(), "which window is this device at".into())),
        (_, Some(w)) if !windows.contains(&w) => {
            Err(("window".into(), format!("there is no window {w}")))
        }
        _ => Ok(()),
    }
}

impl WindowBusConfig {
    /// The bus's name.
    pub fn name(&self, index: usize) -> String {
        self.name.clone().unwrap_or_else(|| format!("bus{index}"))
    }

    /// The vendor frame settings.
    pub fn vendor_profile(&self) -> VendorProfile {
        let d = VendorProfile::default();
        VendorProfile {
            header: self.frame_header.unwrap_or(d.header),
            end: self.frame_end.unwrap_or(d.end),
        }
    }

    /// Checks against the hall's windows; `(key suffix, message)` on error.
    pub fn check(&self, windows: &[u32]) -> Result<(), (String, String)> {
        if self.port.trim().is_empty() {
            return Err(("port".into(), "name the serial device".into()));
        }
        if !(1200..=115_200).contains(&self.baud) {
            return Err(("baud".into(), "use 1200 to 115200 (9600 is usual)".into()));
        }
        let vendor = self.protocol == BusProtocol::Vendor;
        if !vendor {
            for (key, set) in [
                ("frame_header", self.frame_header.is_some()),
                ("frame_end", self.frame_end.is_some()),
                ("refresh_secs", self.refresh_secs.is_some()),
            ] {
                if set {
                    return Err((
                        key.into(),
                        "only for protocol = \"vendor\" (write-only screens)".into(),
                    ));
                }
            }
        }
        if vendor {
            if let Err(e) = self.vendor_profile().validate() {
                return Err(("frame_end".into(), e.to_string()));
            }
            if self.frame_header == self.frame_end && self.frame_header.is_some() {
                return Err((
                    "frame_header".into(),
                    "the header and end bytes must differ".into(),
                ));
            }
        }
        let mut seen = Vec::new();
        for (i, d) in self.devices.iter().enumerate() {
            let key = |k: &str| format!("device[{i}].{k}");
            if !vendor && !(1..=247).contains(&d.unit) {
                return Err((key("unit"), "Modbus unit ids are 1 to 247".into()));
            }
            if seen.contains(&d.unit) {
                return Err((
                    key("unit"),
                    format!("unit {} is used twice on this bus", d.unit),
                ));
            }
            seen.push(d.unit);
            check_window(d.kind, d.window, windows).map_err(|(k, m)| (key(&k), m))?;
            if vendor && !matches!(d.kind, DeviceKind::WindowScreen | DeviceKind::HallBoard) {
                return Err((
                    key("kind"),
                    "a vendor-frame bus carries screens only (window_screen or hall_board); \
                     put keypads on a Modbus bus, GPIO or USB"
                        .into(),
                ));
            }
            match (vendor, d.lines) {
                (false, Some(_)) => {
                    return Err((
                        key("lines"),
                        "a Modbus device reports its own lines; only vendor screens need this"
                            .into(),
                    ));
                }
                (true, Some(n)) if !(1..=8).contains(&n) => {
                    return Err((key("lines"), "a screen has 1 to 8 lines".into()));
                }
                _ => {}
            }
            if d.kind == DeviceKind::RatingKeypad {
                rating_key_map(&d.levels, d.keys, &[]).map_err(|m| (key("levels"), m))?;
            } else if d.levels.is_some() || d.keys.is_some() {
                let k = if d.levels.is_some() { "levels" } else { "keys" };
                return Err((key(k), "only a rating_keypad has rating keys".into()));
            }
        }
        Ok(())
    }
}

/// What a device task tells the controller, whatever the wiring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkEvent {
    /// A key press, delivered once.
    Key {
        /// Device on the link (unit, address; 0 for a link with one device).
        unit: u8,
        /// The key.
        key: Key,
        /// The press's number on a device that keeps presses until they are confirmed
        /// stored ([`Link::with_confirm`]).
        seq: Option<u16>,
    },
    /// The device can be reached (first contact, or back).
    Online {
        /// Device.
        unit: u8,
        /// Text lines it shows, if it is a screen that says.
        lines: Option<u16>,
    },
    /// The device (or its port) cannot be reached.
    Offline {
        /// Device.
        unit: u8,
        /// Why, for the supervisor.
        reason: String,
    },
    /// The device reports its own health (latched fault bits and the like).
    Health {
        /// Device.
        unit: u8,
        /// Its state.
        health: Health,
    },
}

type ShowFn = Box<dyn Fn(u8, DisplayContent) -> bool + Send + Sync>;
type StopFn = Box<dyn Fn() + Send + Sync>;
type ConfirmFn = Box<dyn Fn(u8, u16) + Send + Sync>;

/// The controller's handle to the task or thread owning one port or device.
pub struct Link {
    name: String,
    shared: bool,
    show: ShowFn,
    stop: StopFn,
    confirm: Option<ConfirmFn>,
}

impl Link {
    /// A link named `name`; `shared` when several devices sit on it (device ids are then
    /// `name/unitN`, else just `name`). `show` hands content to the owner and returns
    /// false once the owner has stopped; `stop` stops it.
    pub fn new(
        name: &str,
        shared: bool,
        show: impl Fn(u8, DisplayContent) -> bool + Send + Sync + 'static,
        stop: impl Fn() + Send + Sync + 'static,
    ) -> Link {
        Link {
            name: name.to_string(),
            shared,
            show: Box::new(show),
            stop: Box::new(stop),
            confirm: None,
        }
    }

    /// For a link whose devices keep a key press until told it is stored (the Modbus
    /// profile's rating pads): `confirm(unit, seq)` says so.
    pub fn with_confirm(mut self, confirm: impl Fn(u8, u16) + Send + Sync + 'static) -> Link {
        self.confirm = Some(Box::new(confirm));
        self
    }

    /// The device id used in health and fault events.
    pub fn device_id(&self, unit: u8) -> String {
        if self.shared {
            format!("{}/unit{unit}", self.name)
        } else {
            self.name.clone()
        }
    }
}

/// Where a device sits in the hall and what its keys mean.
#[derive(Debug, Clone)]
pub struct Placement {
    /// Device on its link.
    pub unit: u8,
    /// What it is.
    pub kind: DeviceKind,
    /// Its window (none for a hall board).
    pub window: Option<u32>,
    /// A rating pad's key map.
    pub keymap: Option<RatingKeyMap>,
    /// How long finish arms this rating pad.
    pub armed_for: Duration,
    /// Text lines, when known before the device says (vendor screens, LED matrices).
    pub lines: Option<u16>,
}

/// A started link with its events and the devices on it: what the controller drives.
pub struct LinkSetup {
    /// The handle.
    pub link: Link,
    /// Its events.
    pub events: mpsc::UnboundedReceiver<LinkEvent>,
    /// The devices behind it.
    pub devices: Vec<Placement>,
}

/// Start the task owning a Modbus `[[bus]]` (`hallq_hardware::window::bus`).
pub fn modbus_link(name: &str, b: &WindowBusConfig, reasons: &[String]) -> LinkSetup {
    let mut bc = BusConfig::new(
        name,
        &b.port,
        b.devices
            .iter()
            .map(|d| BusDevice {
                unit: d.unit,
                kind: d.kind,
            })
            .collect(),
    );
    bc.baud = b.baud;
    bc.response_timeout = Duration::from_millis(b.response_timeout_ms.max(10));
    bc.key_poll = Duration::from_millis(b.key_poll_ms.max(10));
    let (handle, mut events) = bus::spawn(bc);
    let (tx, rx) = mpsc::unbounded_channel();
    let bus_name = name.to_string();
    tokio::spawn(async move {
        while let Some(e) = events.recv().await {
            let ev = match e {
                BusEvent::Key { unit, key, seq } => LinkEvent::Key {
                    unit,
                    key,
                    seq: Some(seq),
                },
                BusEvent::Online { unit, identity } => LinkEvent::Online {
                    unit,
                    lines: Some(identity.lines),
                },
                BusEvent::Offline { unit, reason } => LinkEvent::Offline { unit, reason },
                BusEvent::Faults { unit, bits } => LinkEvent::Health {
                    unit,
                    health: if bits == 0 {
                        Health::Ok
                    } else if bits & fault::DISPLAY != 0 {
                        Health::fault("display_fault", fault::names(bits).join(","))
                    } else {
                        Health::warning("device_warning", fault::names(bits).join(","))
                    },
                },
                BusEvent::PortDown { reason } => {
                    tracing::warn!(bus = %bus_name, "window bus port down: {reason}");
                    continue;
                }
                BusEvent::PortUp | BusEvent::Shown { .. } => continue,
            };
            if tx.send(ev).is_err() {
                break;
            }
        }
    });
    let (show, confirm) = (handle.clone(), handle.clone());
    LinkSetup {
        link: Link::new(
            name,
            true,
            move |unit, c| show.show(unit, c).is_ok(),
            move || handle.shutdown(),
        )
        .with_confirm(move |unit, seq| {
            let _ = confirm.confirm(unit, seq);
        }),
        events: rx,
        devices: b
            .devices
            .iter()
            .map(|d| Placement {
                unit: d.unit,
                kind: d.kind,
                window: d.window,
                keymap: (d.kind == DeviceKind::RatingKeypad)
                    .then(|| rating_key_map(&d.levels, d.keys, reasons).ok())
                    .flatten(),
                armed_for: Duration::from_secs(b.rating_armed_secs.max(1)),
                lines: None,
            })
            .collect(),
    }
}

/// Handles to the running links. [`WindowBuses::shutdown`] stops the controller and
/// the device tasks, which lets go of the hall core so the daemon can stop.
#[derive(Clone, Default)]
pub struct WindowBuses {
    links: Vec<Arc<Link>>,
    stop: Option<watch::Sender<bool>>,
}

impl WindowBuses {
    /// Names of the links (buses, LED matrices, keypads).
    pub fn names(&self) -> Vec<String> {
        self.links.iter().map(|l| l.name.clone()).collect()
    }

    /// Stop the controller and every device task.
    pub fn shutdown(&self) {
        if let Some(s) = &self.stop {
            let _ = s.send(true);
        }
        for l in &self.links {
            (l.stop)();
        }
    }
}

/// Where a device sits.
#[derive(Debug, Clone)]
struct Placed {
    link: usize,
    place: Placement,
}

/// Lines a hall board is drawn for until it says how many it has.
const BOARD_ROWS: u16 = 6;

#[derive(Debug, Clone, PartialEq, Eq)]
struct Armed {
    ticket: TicketId,
    until: Instant,
    last: Option<Level>,
}

struct Controller {
    hall: Hall,
    devices: Devices,
    links: Vec<Arc<Link>>,
    placed: Vec<Placed>,
    notice: String,
    board_lines: VecDeque<String>,
    armed: HashMap<u32, Armed>,
    armed_for: HashMap<u32, Duration>,
    callers: HashMap<(usize, u8), CallerInput>,
    prefixes: BTreeMap<u32, Vec<String>>,
    number_width: usize,
}

fn line(text: &str) -> Option<DisplayLine> {
    match DisplayLine::new(text) {
        Ok(l) => Some(l),
        Err(e) => {
            tracing::warn!("cannot show {text:?} on an LED screen: {e}");
            None
        }
    }
}

fn content(lines: Vec<Option<DisplayLine>>) -> DisplayContent {
    DisplayContent {
        lines: lines.into_iter().map(Option::unwrap_or_default).collect(),
        brightness: 8,
    }
}

/// What a window's screen shows when a number is called there.
pub fn call_screen(number: &str, window: u32) -> DisplayContent {
    content(vec![
        line(number).map(|l| l.colour(Colour::Red).effect(Effect::Blink)),
        line(&format!("请到{window}号窗口")).map(|l| l.colour(Colour::Green)),
    ])
}

/// What a window's screen shows while paused.
pub fn paused_screen(window: u32) -> DisplayContent {
    content(vec![
        line("暂停服务").map(|l| l.colour(Colour::Amber)),
        line(&format!("{window}号窗口")),
    ])
}

/// What a window's screen shows with nobody called.
pub fn idle_screen(window: u32) -> DisplayContent {
    content(vec![
        line(&format!("{window}号窗口")).map(|l| l.colour(Colour::Green)),
        line("欢迎办理"),
    ])
}

/// What a window's screen shows after finish, while the rating pad is armed.
pub fn rate_screen(window: u32) -> DisplayContent {
    content(vec![
        line(&format!("{window}号窗口")).map(|l| l.colour(Colour::Green)),
        line("请您评价"),
    ])
}

/// The hall board line for a call.
pub fn board_call(number: &str, window: u32) -> String {
    format!("请 {number} 号到 {window} 号窗口办理")
}

/// What a hall board of `rows` lines shows: the latest calls first (the newest red and
/// blinking) and, when there is a notice, the notice scrolling on the last line.
pub fn board_screen(calls: &VecDeque<String>, notice: &str, rows: usize) -> DisplayContent {
    let rows = rows.max(1);
    let call_rows = if notice.is_empty() || rows == 1 {
        rows
    } else {
        rows - 1
    };
    let mut lines: Vec<Option<DisplayLine>> = calls
        .iter()
        .take(call_rows)
        .enumerate()
        .map(|(i, t)| {
            line(t).map(|l| {
                if i == 0 {
                    l.colour(Colour::Red).effect(Effect::Blink)
                } else {
                    l.colour(Colour::Amber)
                }
            })
        })
        .collect();
    if call_rows < rows {
        lines.resize(call_rows, None);
        lines.push(line(notice).map(|l| l.colour(Colour::Green).effect(Effect::Scroll)));
    }
    content(lines)
}

/// Whether a screen of `kind` shows a window's content.
fn shows_window(kind: DeviceKind) -> bool {
    matches!(kind, DeviceKind::WindowScreen | DeviceKind::WindowTerminal)
}

impl Controller {
    fn send(&self, p: &Placed, c: DisplayContent) {
        let link = &self.links[p.link];
        if !(link.show)(p.place.unit, c) {
            tracing::error!(link = %link.name, "window device task stopped");
        }
    }

    fn show_window(&self, window: u32, c: &DisplayContent) {
        for p in self
            .placed
            .iter()
            .filter(|p| shows_window(p.place.kind) && p.place.window == Some(window))
        {
            self.send(p, c.clone());
        }
    }

    fn draw_board(&self) {
        for p in self
            .placed
            .iter()
            .filter(|p| p.place.kind == DeviceKind::HallBoard)
        {
            let rows = p.place.lines.unwrap_or(BOARD_ROWS) as usize;
            self.send(p, board_screen(&self.board_lines, &self.notice, rows));
        }
    }

    fn on_event(&mut self, ev: &StoredEvent) {
        let p = &ev.payload;
        let window = p.get("window").and_then(|w| w.as_u64()).map(|w| w as u32);
        let number = p
            .get("number")
            .and_then(|n| n.as_str())
            .unwrap_or_default()
            .to_string();
        match (ev.kind.as_str(), window) {
            ("ticket_called" | "ticket_recalled", Some(w)) => {
                // The window's own screen first: it is what the citizen looks at.
                self.show_window(w, &call_screen(&number, w));
                let text = board_call(&number, w);
                self.board_lines.retain(|l| *l != text);
                self.board_lines.push_front(text);
                self.board_lines
                    .truncate(hallq_hardware::window::regmap::MAX_LINES as usize);
                self.draw_board();
                self.armed.remove(&w);
            }
            ("window_paused", Some(w)) => self.show_window(w, &paused_screen(w)),
            ("window_resumed" | "ticket_no_show" | "ticket_transferred", Some(w)) => {
                self.show_window(w, &idle_screen(w))
            }
            ("ticket_finished", Some(w)) => {
                if let Some(t) = p.get("ticket").and_then(|t| t.as_u64()) {
                    self.armed.insert(
                        w,
                        Armed {
                            ticket: TicketId(t),
                            until: Instant::now() + self.armed_time(w),
                            last: None,
                        },
                    );
                }
                self.show_window(w, &rate_screen(w));
            }
            _ => {}
        }
    }

    fn armed_time(&self, window: u32) -> Duration {
        self.armed_for
            .get(&window)
            .copied()
            .unwrap_or(Duration::from_secs(default_armed()))
    }

    async fn on_link(&mut self, link: usize, ev: LinkEvent) {
        let id = |unit| self.links[link].device_id(unit);
        match ev {
            LinkEvent::Online { unit, lines } => {
                let mut redraw = false;
                for p in self
                    .placed
                    .iter_mut()
                    .filter(|p| p.link == link && p.place.unit == unit)
                {
                    if let Some(n) = lines.filter(|n| *n > 0)
                        && p.place.lines != Some(n)
                    {
                        p.place.lines = Some(n);
                        redraw |= p.place.kind == DeviceKind::HallBoard;
                    }
                }
                if redraw {
                    // The board's own line count decides how many calls it lists.
                    self.draw_board();
                }
                self.devices.report(&id(unit), Health::Ok).await
            }
            LinkEvent::Offline { unit, reason } => {
                self.devices
                    .report(
                        &id(unit),
                        Health::fault("offline", format!("设备离线 / not answering: {reason}")),
                    )
                    .await
            }
            LinkEvent::Health { unit, health } => self.devices.report(&id(unit), health).await,
            LinkEvent::Key { unit, key, seq } => {
                self.on_key(link, unit, key).await;
                // Handled (stored, or knowingly ignored): the pad may forget the press.
                if let (Some(seq), Some(confirm)) = (seq, &self.links[link].confirm) {
                    confirm(unit, seq);
                }
            }
        }
    }

    async fn on_key(&mut self, link: usize, unit: u8, key: Key) {
        let Some(p) = self
            .placed
            .iter()
            .find(|p| p.link == link && p.place.unit == unit && p.place.kind.has_keys())
            .map(|p| p.place.clone())
        else {
            return;
        };
        let Some(window) = p.window else { return };
        match (p.kind, &p.keymap) {
            (DeviceKind::RatingKeypad, Some(map)) => {
                self.on_rating_key(window, map.decode(key)).await
            }
            (DeviceKind::CallerKeypad | DeviceKind::WindowTerminal, _) => {
                let action = self.callers.entry((link, unit)).or_default().key(key);
                if let Some(a) = action {
                    self.on_caller(window, a).await;
                }
            }
            _ => {}
        }
    }

    async fn on_rating_key(&mut self, window: u32, input: Option<RatingInput>) {
        let Some(armed) = self.armed.get_mut(&window) else {
            tracing::info!(
                window,
                "rating key pressed with no finished service to rate; ignored"
            );
            return;
        };
        if Instant::now() > armed.until {
            self.armed.remove(&window);
            tracing::info!(window, "rating key pressed after the rating time; ignored");
            return;
        }
        let (level, reasons) = match input {
            Some(RatingInput::Level(l)) => match Level::parse(l.name()) {
                Some(level) => (level, Vec::new()),
                None => return,
            },
            // A reason qualifies the bad rating just given; alone it means nothing.
            Some(RatingInput::Reason(r)) => match armed.last {
                Some(level) if level.is_bad() => (level, vec![r]),
                _ => return,
            },
            None => return,
        };
        armed.last = Some(level);
        let cmd = Command::Rate {
            ticket: armed.ticket,
            level,
            reasons,
            comment: None,
            channel: format!("window-pad-{window}"),
            window: Some(window),
        };
        if let Err(e) = self.hall.execute(cmd).await {
            tracing::warn!(window, "rating not recorded: {e}");
        }
    }

    async fn on_caller(&mut self, window: u32, action: CallerAction) {
        let staff = self
            .hall
            .query(move |e, _| {
                e.windows()
                    .get(&window)
                    .and_then(|w| w.staff.as_ref().map(|s| (s.0.clone(), w.paused.is_some())))
            })
            .await;
        let Ok(Some((staff, paused))) = staff else {
            tracing::warn!(
                window,
                ?action,
                "caller key pressed but nobody is signed in at the window"
            );
            return;
        };
        let cmd = match action {
            CallerAction::CallNext => Command::CallNext { window, staff },
            CallerAction::Recall => Command::Recall { window, staff },
            CallerAction::NoShow => Command::NoShow { window, staff },
            CallerAction::Finish => Command::Finish {
                window,
                staff,
                case_no: None,
            },
            CallerAction::Pause => Command::Pause {
                window,
                staff,
                reason: "caller keypad".into(),
            },
            CallerAction::Resume => Command::Resume { window, staff },
            CallerAction::PauseToggle if paused => Command::Resume { window, staff },
            CallerAction::PauseToggle => Command::Pause {
                window,
                staff,
                reason: "caller keypad".into(),
            },
            CallerAction::Transfer {
                to_window: Some(to),
            } => Command::Transfer {
                window,
                staff,
                to: TransferTarget::Window(to),
            },
            CallerAction::Transfer { to_window: None } => {
                tracing::warn!(window, "transfer needs the target window typed first");
                return;
            }
            CallerAction::CallNumber(typed) => {
                let number = if typed.starts_with(|c: char| c.is_ascii_digit()) {
                    // Digits only: the window's first service prefix, zero-padded.
                    let prefix = self
                        .prefixes
                        .get(&window)
                        .and_then(|p| p.first())
                        .cloned()
                        .unwrap_or_default();
                    let digits = typed.trim_start_matches('0');
                    format!("{prefix}{digits:0>width$}", width = self.number_width)
                } else {
                    typed
                };
                Command::CallNumber {
                    window,
                    staff,
                    number,
                }
            }
        };
        if let Err(e) = self.hall.execute(cmd).await {
            tracing::info!(window, "caller keypad action refused: {e}");
        }
    }
}

/// Start every configured window device (`[[bus]]`, `[[led_matrix]]`, `[[gpio_keypad]]`,
/// `[[usb_keypad]]`) and the controller that drives them. The hall board's scrolling
/// line is the first bus `notice`, else the `[board]` notices joined.
pub async fn start(config: &crate::config::Config, hall: Hall, devices: Devices) -> WindowBuses {
    let reasons = &config.queue.rating.reasons;
    let mut links = Vec::new();
    for (i, b) in config.buses.iter().enumerate() {
        let name = b.name(i);
        links.push(match b.protocol {
            BusProtocol::Modbus => modbus_link(&name, b, reasons),
            BusProtocol::Vendor => super::window_links::vendor_link(&name, b),
        });
    }
    links.extend(super::window_links::start_all(config));
    let notice = config
        .buses
        .iter()
        .map(|b| b.notice.clone())
        .find(|n| !n.is_empty())
        .unwrap_or_else(|| config.board.notices.join("　"));
    drive(links, &config.queue, notice, hall, devices).await
}

/// The armed rating pads a restart must not forget: for each window with a rating pad,
/// its latest finished ticket, if nothing was called there since and the armed time
/// (measured from the stored finish time) has not run out.
async fn restore_armed(hall: &Hall, armed_for: &HashMap<u32, Duration>) -> HashMap<u32, Armed> {
    let armed_for = armed_for.clone();
    let now_wall = wall_now().0;
    let now = Instant::now();
    hall.query(move |e, _| {
        let mut out = HashMap::new();
        for (&w, &armed) in &armed_for {
            if e.windows().get(&w).is_some_and(|s| s.current.is_some()) {
                continue;
            }
            let at_window = || e.tickets().filter(move |t| t.window == Some(w));
            let Some((ticket, closed)) = at_window()
                .filter(|t| t.state == TicketState::Finished)
                .filter_map(|t| t.closed_at.map(|c| (t.id, c.0)))
                .max_by_key(|(_, c)| *c)
            else {
                continue;
            };
            if at_window().any(|t| t.called_at.is_some_and(|c| c.0 > closed)) {
                continue;
            }
            let age = Duration::from_millis(now_wall.saturating_sub(closed).max(0) as u64);
            let Some(left) = armed.checked_sub(age) else {
                continue;
            };
            out.insert(
                w,
                Armed {
                    ticket,
                    until: now + left,
                    last: e.rating(ticket).map(|r| r.level),
                },
            );
        }
        out
    })
    .await
    .unwrap_or_default()
}

/// Drive started links: show the queue on their screens, act on their keys, report
/// their health. Returns the handles that stop it all.
pub async fn drive(
    setups: Vec<LinkSetup>,
    setup: &hallq_engine::Setup,
    notice: String,
    hall: Hall,
    devices: Devices,
) -> WindowBuses {
    if setups.is_empty() {
        return WindowBuses::default();
    }
    let (tx, mut rx) = mpsc::unbounded_channel::<(usize, LinkEvent)>();
    let mut links = Vec::new();
    let mut placed = Vec::new();
    let mut armed_for: HashMap<u32, Duration> = HashMap::new();
    for (i, s) in setups.into_iter().enumerate() {
        let LinkSetup {
            link,
            mut events,
            devices,
        } = s;
        let tx = tx.clone();
        tokio::spawn(async move {
            while let Some(e) = events.recv().await {
                if tx.send((i, e)).is_err() {
                    break;
                }
            }
        });
        links.push(Arc::new(link));
        for place in devices {
            if place.kind == DeviceKind::RatingKeypad
                && let Some(w) = place.window
            {
                let t = armed_for.entry(w).or_insert(place.armed_for);
                *t = (*t).max(place.armed_for);
            }
            placed.push(Placed { link: i, place });
        }
    }
    let prefixes = setup
        .windows
        .iter()
        .map(|w| {
            (
                w.number,
                w.services
                    .iter()
                    .filter_map(|s| {
                        setup
                            .services
                            .iter()
                            .find(|d| d.code == s.code)
                            .map(|d| d.prefix.clone())
                    })
                    .collect(),
            )
        })
        .collect();
    // Subscribe before reading the state, so no call falls between the two.
    let mut committed = hall.subscribe();
    let armed = restore_armed(&hall, &armed_for).await;
    for (w, a) in &armed {
        tracing::info!(window = w, ticket = ?a.ticket, "rating pad still armed from before the restart");
    }
    let mut c = Controller {
        hall: hall.clone(),
        devices,
        links: links.clone(),
        placed,
        notice,
        board_lines: VecDeque::new(),
        armed,
        armed_for,
        callers: HashMap::new(),
        prefixes,
        number_width: setup.number_width as usize,
    };
    let state = hall
        .query(|e, _| {
            e.windows()
                .values()
                .map(|w| {
                    (
                        w.number,
                        w.paused.is_some(),
                        w.current
                            .and_then(|t| e.ticket(t))
                            .map(|t| t.number.clone()),
                    )
                })
                .collect::<Vec<_>>()
        })
        .await
        .unwrap_or_default();
    for w in setup.windows.iter().map(|w| w.number) {
        let s = state.iter().find(|s| s.0 == w);
        let screen = match s {
            Some((_, true, _)) => paused_screen(w),
            Some((_, false, Some(n))) => call_screen(n, w),
            _ if c.armed.contains_key(&w) => rate_screen(w),
            _ => idle_screen(w),
        };
        c.show_window(w, &screen);
    }
    c.draw_board();
    let (stop, mut stopped) = watch::channel(false);
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = stopped.changed() => break,
                ev = committed.recv() => match ev {
                    Ok(ev) => c.on_event(&ev),
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!("window displays missed {n} events");
                    }
                    Err(_) => break,
                },
                Some((link, ev)) = rx.recv() => c.on_link(link, ev).await,
            }
        }
        c.links.iter().for_each(|l| (l.stop)());
    });
    WindowBuses {
        links,
        stop: Some(stop),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn screens_say_what_the_hall_expects() {
        assert_eq!(board_call("A001", 3), "请 A001 号到 3 号窗口办理");
        assert_eq!(call_screen("A001", 3).texts(), ["A001", "请到3号窗口"]);
        assert_eq!(paused_screen(3).texts()[0], "暂停服务");
        assert_eq!(rate_screen(3).texts()[1], "请您评价");
    }

    #[test]
    fn a_board_lists_the_latest_calls_above_its_notice_whatever_its_size() {
        let calls: VecDeque<String> = (1..=8).map(|i| board_call(&format!("A00{i}"), i)).collect();
        let six = board_screen(&calls, "请带身份证", 6);
        assert_eq!(six.lines.len(), 6);
        assert_eq!(six.texts()[0], calls[0]);
        assert_eq!(six.texts()[4], calls[4]);
        assert_eq!(six.texts()[5], "请带身份证");
        assert_eq!(six.lines[5].effect, Effect::Scroll);
        assert_eq!(six.lines[0].effect, Effect::Blink);
        let one_call: VecDeque<String> = calls.iter().take(1).cloned().collect();
        let two = board_screen(&one_call, "请带身份证", 2);
        assert_eq!(two.texts(), [calls[0].as_str(), "请带身份证"]);
        let no_notice = board_screen(&one_call, "", 4);
        assert_eq!(no_notice.texts(), [calls[0].as_str()]);
    }

    fn bus(text: &str) -> WindowBusConfig {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn a_bus_section_is_checked_against_the_windows() {
        let b = bus(
            "port = \"/dev/ttyUSB0\"\n[[device]]\nunit = 3\nkind = \"window_screen\"\nwindow = 9\n",
        );
        assert_eq!(b.check(&[1, 2, 3]).unwrap_err().0, "device[0].window");
        let b = bus(
            "port = \"/dev/ttyUSB0\"\n[[device]]\nunit = 33\nkind = \"rating_keypad\"\nwindow = 1\nkeys = 4\n",
        );
        assert_eq!(b.check(&[1]).unwrap_err().0, "device[0].levels");
        let b = bus(
            "port = \"/dev/ttyUSB0\"\n[[device]]\nunit = 10\nkind = \"hall_board\"\n[[device]]\nunit = 10\nkind = \"hall_board\"\n",
        );
        assert_eq!(b.check(&[1]).unwrap_err().0, "device[1].unit");
    }

    #[test]
    fn a_vendor_bus_carries_screens_with_their_line_counts_and_a_safe_end_byte() {
        let ok = "port = \"/dev/ttyUSB1\"\nprotocol = \"vendor\"\nframe_header = 0xAA\nframe_end = 0x03\n\
                  [[device]]\nunit = 0\nkind = \"window_screen\"\nwindow = 1\nlines = 1\n\
                  [[device]]\nunit = 200\nkind = \"hall_board\"\n";
        let b = bus(ok);
        b.check(&[1]).unwrap();
        assert_eq!(
            b.vendor_profile(),
            VendorProfile {
                header: 0xAA,
                end: 0x03
            }
        );
        let cases = [
            ("frame_end = 0x03", "frame_end = 0xB0", "frame_end"),
            ("frame_end = 0x03", "frame_end = 0xAA", "frame_end"),
            ("lines = 1", "lines = 9", "device[0].lines"),
            (
                "kind = \"hall_board\"",
                "kind = \"rating_keypad\"\nwindow = 1",
                "device[1].kind",
            ),
        ];
        for (from, to, key) in cases {
            let b = bus(&ok.replacen(from, to, 1));
            assert_eq!(b.check(&[1]).unwrap_err().0, key, "{to}");
        }
        // Modbus devices report their own lines; vendor settings on a Modbus bus are refused.
        let m = bus("port = \"/dev/ttyUSB0\"\nframe_end = 0x0D\n");
        assert_eq!(m.check(&[1]).unwrap_err().0, "frame_end");
        let m = bus(
            "port = \"/dev/ttyUSB0\"\n[[device]]\nunit = 3\nkind = \"window_screen\"\nwindow = 1\nlines = 2\n",
        );
        assert_eq!(m.check(&[1]).unwrap_err().0, "device[0].lines");
    }
}
