//! The window devices in the daemon: LED screens over the windows, the hall board,
//! caller keypads and rating keypads on RS-485 buses (the hall-device Modbus profile of
//! `docs/protocol.md`).
//!
//! One task per bus owns the port (`hallq_hardware::window::bus`); one controller task
//! here follows the committed events and the buses' key presses:
//!
//! - a call shows the number on the window's screen and "请 A001 号到 3 号窗口办理" on
//!   the hall board, above the latest calls and a scrolling notice; a pause shows
//!   "暂停服务";
//! - finish arms the window's rating keypad for `rating_armed_secs`: a press records a
//!   rating for that ticket through the engine's `Rate` command (a bad rating from a pad
//!   without reason keys is stored with its reason pending; a reason key, or a second
//!   press within the engine's replace window, replaces it); an unarmed pad records
//!   nothing, so no rating is ever invented;
//! - caller keypad presses become the same window commands as the API's, as the staff
//!   member signed in at that window;
//! - devices going offline or raising faults are reported to the health registry, which
//!   turns changes into `device_fault` / `device_recovered` events.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use hallq_engine::{Command, Level, TicketId, TransferTarget};
use hallq_hardware::window::bus::{self, BusConfig, BusDevice, BusEvent, BusHandle};
use hallq_hardware::window::keys::{
    CallerAction, CallerInput, Key, RatingInput, RatingKeyMap, RatingLevel,
};
use hallq_hardware::window::regmap::{DeviceKind, fault};
use hallq_hardware::window::{Colour, DisplayContent, DisplayLine, Effect};
use serde::Deserialize;
use tokio::sync::{mpsc, watch};

use super::health::{Devices, Health};
use crate::core::Hall;
use crate::store::StoredEvent;

/// One `[[bus]]` section: an RS-485 port and the devices on it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowBusConfig {
    /// Name in logs and device ids (`bus0/unit3`); defaults to `bus<N>`.
    #[serde(default)]
    pub name: Option<String>,
    /// Serial device, e.g. `/dev/ttyUSB0` or `/dev/serial/by-id/...`.
    pub port: String,
    /// Baud rate (8N1).
    #[serde(default = "default_baud")]
    pub baud: u32,
    /// How long to wait for a device's answer, milliseconds.
    #[serde(default = "default_timeout")]
    pub response_timeout_ms: u64,
    /// How often keypads are polled, milliseconds.
    #[serde(default = "default_key_poll")]
    pub key_poll_ms: u64,
    /// How long finish arms the window's rating keypad, seconds.
    #[serde(default = "default_armed")]
    pub rating_armed_secs: u64,
    /// Scrolling notice on the hall board's last line (通知公告); when empty, the
    /// `[board]` notices are used.
    #[serde(default)]
    pub notice: String,
    /// The devices.
    #[serde(default, rename = "device")]
    pub devices: Vec<WindowDeviceConfig>,
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
fn default_armed() -> u64 {
    60
}

/// One `[[bus.device]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowDeviceConfig {
    /// Modbus unit id 1–247.
    pub unit: u8,
    /// `window_screen`, `hall_board`, `caller_keypad`, `rating_keypad` or `window_terminal`.
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
}

impl WindowBusConfig {
    /// The bus's name.
    pub fn name(&self, index: usize) -> String {
        self.name.clone().unwrap_or_else(|| format!("bus{index}"))
    }

    /// Checks against the hall's windows; `(key suffix, message)` on error.
    pub fn check(&self, windows: &[u32]) -> Result<(), (String, String)> {
        if self.port.trim().is_empty() {
            return Err(("port".into(), "name the serial device".into()));
        }
        if !(1200..=115_200).contains(&self.baud) {
            return Err(("baud".into(), "use 1200 to 115200 (9600 is usual)".into()));
        }
        let mut seen = Vec::new();
        for (i, d) in self.devices.iter().enumerate() {
            let key = |k: &str| format!("device[{i}].{k}");
            if !(1..=247).contains(&d.unit) {
                return Err((key("unit"), "Modbus unit ids are 1 to 247".into()));
            }
            if seen.contains(&d.unit) {
                return Err((
                    key("unit"),
                    format!("unit {} is used twice on this bus", d.unit),
                ));
            }
            seen.push(d.unit);
            match (d.kind, d.window) {
                (DeviceKind::HallBoard, _) => {}
                (_, None) => return Err((key("window"), "which window is this device at".into())),
                (_, Some(w)) if !windows.contains(&w) => {
                    return Err((key("window"), format!("there is no window {w}")));
                }
                _ => {}
            }
            if d.kind == DeviceKind::RatingKeypad {
                d.key_map(&[]).map_err(|m| (key("levels"), m))?;
            }
        }
        Ok(())
    }
}

impl WindowDeviceConfig {
    fn key_map(&self, reasons: &[String]) -> Result<RatingKeyMap, String> {
        let mut map = match (&self.levels, self.keys) {
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
}

/// Handles to the running buses. [`WindowBuses::shutdown`] stops the controller and
/// the bus tasks, which lets go of the hall core so the daemon can stop.
#[derive(Clone, Default)]
pub struct WindowBuses {
    buses: Vec<(String, BusHandle)>,
    stop: Option<watch::Sender<bool>>,
}

impl WindowBuses {
    /// Names of the buses.
    pub fn names(&self) -> Vec<String> {
        self.buses.iter().map(|(n, _)| n.clone()).collect()
    }

    /// Stop the controller and every bus task.
    pub fn shutdown(&self) {
        if let Some(s) = &self.stop {
            let _ = s.send(true);
        }
        for (_, b) in &self.buses {
            b.shutdown();
        }
    }
}

/// Where a device sits.
#[derive(Debug, Clone)]
struct Placed {
    bus: usize,
    unit: u8,
    kind: DeviceKind,
    window: Option<u32>,
    keymap: Option<RatingKeyMap>,
}

struct Armed {
    ticket: TicketId,
    until: Instant,
    last: Option<Level>,
}

struct Controller {
    hall: Hall,
    devices: Devices,
    buses: Vec<(String, BusHandle)>,
    placed: Vec<Placed>,
    armed_for: Duration,
    notice: String,
    board_lines: VecDeque<String>,
    armed: HashMap<u32, Armed>,
    callers: HashMap<(usize, u8), CallerInput>,
    prefixes: BTreeMap<u32, Vec<String>>,
    number_width: usize,
    board_rows: usize,
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

/// The hall board line for a call.
pub fn board_call(number: &str, window: u32) -> String {
    format!("请 {number} 号到 {window} 号窗口办理")
}

impl Controller {
    fn show(&self, kind: DeviceKind, window: Option<u32>, c: &DisplayContent) {
        for p in self.placed.iter().filter(|p| {
            (p.kind == kind
                || (kind == DeviceKind::WindowScreen && p.kind == DeviceKind::WindowTerminal))
                && (window.is_none() || p.window == window)
        }) {
            if self.buses[p.bus].1.show(p.unit, c.clone()).is_err() {
                tracing::error!(bus = %self.buses[p.bus].0, "window bus task stopped");
            }
        }
    }

    fn draw_board(&self) {
        let mut lines: Vec<Option<DisplayLine>> = self
            .board_lines
            .iter()
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
        if !self.notice.is_empty() {
            lines.truncate(self.board_rows.saturating_sub(1));
            while lines.len() < self.board_rows.saturating_sub(1) {
                lines.push(None);
            }
            lines.push(line(&self.notice).map(|l| l.colour(Colour::Green).effect(Effect::Scroll)));
        }
        self.show(DeviceKind::HallBoard, None, &content(lines));
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
                self.show(DeviceKind::WindowScreen, Some(w), &call_screen(&number, w));
                let text = board_call(&number, w);
                self.board_lines.retain(|l| *l != text);
                self.board_lines.push_front(text);
                self.board_lines.truncate(self.board_rows.max(1));
                self.draw_board();
                self.armed.remove(&w);
            }
            ("window_paused", Some(w)) => {
                self.show(DeviceKind::WindowScreen, Some(w), &paused_screen(w))
            }
            ("window_resumed" | "ticket_no_show" | "ticket_transferred", Some(w)) => {
                self.show(DeviceKind::WindowScreen, Some(w), &idle_screen(w))
            }
            ("ticket_finished", Some(w)) => {
                if let Some(t) = p.get("ticket").and_then(|t| t.as_u64()) {
                    self.armed.insert(
                        w,
                        Armed {
                            ticket: TicketId(t),
                            until: Instant::now() + self.armed_for,
                            last: None,
                        },
                    );
                }
                self.show(
                    DeviceKind::WindowScreen,
                    Some(w),
                    &content(vec![
                        line(&format!("{w}号窗口")).map(|l| l.colour(Colour::Green)),
                        line("请您评价"),
                    ]),
                );
            }
            _ => {}
        }
    }

    fn device_id(&self, bus: usize, unit: u8) -> String {
        format!("{}/unit{unit}", self.buses[bus].0)
    }

    async fn on_bus(&mut self, bus: usize, ev: BusEvent) {
        match ev {
            BusEvent::Online { unit, identity } => {
                // The board's own line count decides how many calls it lists.
                let rows = identity.lines as usize;
                if identity.kind == DeviceKind::HallBoard && rows > 0 && rows != self.board_rows {
                    self.board_rows = rows;
                    self.board_lines.truncate(rows);
                    self.draw_board();
                }
                self.devices
                    .report(&self.device_id(bus, unit), Health::Ok)
                    .await
            }
            BusEvent::Offline { unit, reason } => {
                let id = self.device_id(bus, unit);
                self.devices
                    .report(
                        &id,
                        Health::fault("offline", format!("设备离线 / not answering: {reason}")),
                    )
                    .await
            }
            BusEvent::Faults { unit, bits } => {
                let id = self.device_id(bus, unit);
                let health = if bits == 0 {
                    Health::Ok
                } else if bits & fault::DISPLAY != 0 {
                    Health::fault("display_fault", fault::names(bits).join(","))
                } else {
                    Health::warning("device_warning", fault::names(bits).join(","))
                };
                self.devices.report(&id, health).await
            }
            BusEvent::Key { unit, key, .. } => self.on_key(bus, unit, key).await,
            BusEvent::PortDown { reason } => {
                tracing::warn!(bus = %self.buses[bus].0, "window bus port down: {reason}");
            }
            BusEvent::PortUp | BusEvent::Shown { .. } => {}
        }
    }

    async fn on_key(&mut self, bus: usize, unit: u8, key: Key) {
        let Some(p) = self
            .placed
            .iter()
            .find(|p| p.bus == bus && p.unit == unit)
            .cloned()
        else {
            return;
        };
        let Some(window) = p.window else { return };
        match (p.kind, &p.keymap) {
            (DeviceKind::RatingKeypad, Some(map)) => {
                self.on_rating_key(window, map.decode(key)).await
            }
            (DeviceKind::CallerKeypad | DeviceKind::WindowTerminal, _) => {
                let action = self.callers.entry((bus, unit)).or_default().key(key);
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
                    .and_then(|w| w.staff.as_ref().map(|s| s.0.clone()))
                    .map(|s| {
                        (
                            s,
                            e.windows().get(&window).is_some_and(|w| w.paused.is_some()),
                        )
                    })
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

/// Start every configured bus and the controller task that drives them. The hall
/// board's scrolling line is the bus's `notice`, else the `[board]` notices joined.
pub async fn start(
    config: &[WindowBusConfig],
    setup: &hallq_engine::Setup,
    board_notices: &[String],
    hall: Hall,
    devices: Devices,
) -> WindowBuses {
    if config.is_empty() {
        return WindowBuses::default();
    }
    let (tx, mut rx) = mpsc::unbounded_channel::<(usize, BusEvent)>();
    let mut buses = Vec::new();
    let mut placed = Vec::new();
    let mut board_rows = 0usize;
    for (i, b) in config.iter().enumerate() {
        let name = b.name(i);
        let mut bc = BusConfig::new(
            &name,
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
        let tx = tx.clone();
        tokio::spawn(async move {
            while let Some(e) = events.recv().await {
                if tx.send((i, e)).is_err() {
                    break;
                }
            }
        });
        buses.push((name, handle));
        for d in &b.devices {
            if d.kind == DeviceKind::HallBoard {
                // Until the board says how many lines it has (its identity block).
                board_rows = board_rows.max(6);
            }
            placed.push(Placed {
                bus: i,
                unit: d.unit,
                kind: d.kind,
                window: d.window,
                keymap: (d.kind == DeviceKind::RatingKeypad)
                    .then(|| d.key_map(&setup.rating.reasons).ok())
                    .flatten(),
            });
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
    let mut c = Controller {
        hall: hall.clone(),
        devices,
        buses: buses.clone(),
        placed,
        armed_for: Duration::from_secs(config[0].rating_armed_secs.max(1)),
        notice: config
            .iter()
            .map(|b| b.notice.clone())
            .find(|n| !n.is_empty())
            .unwrap_or_else(|| board_notices.join("　")),
        board_lines: VecDeque::new(),
        armed: HashMap::new(),
        callers: HashMap::new(),
        prefixes,
        number_width: setup.number_width as usize,
        board_rows,
    };
    // Subscribe before reading the state, so no call falls between the two.
    let mut committed = hall.subscribe();
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
    let windows: Vec<u32> = setup.windows.iter().map(|w| w.number).collect();
    for w in windows {
        let s = state.iter().find(|s| s.0 == w);
        let screen = match s {
            Some((_, true, _)) => paused_screen(w),
            Some((_, false, Some(n))) => call_screen(n, w),
            _ => idle_screen(w),
        };
        c.show(DeviceKind::WindowScreen, Some(w), &screen);
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
                Some((bus, ev)) = rx.recv() => c.on_bus(bus, ev).await,
            }
        }
        c.buses.iter().for_each(|(_, b)| b.shutdown());
    });
    WindowBuses {
        buses,
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
    }

    #[test]
    fn a_bus_section_is_checked_against_the_windows() {
        let b: WindowBusConfig = toml::from_str(
            "port = \"/dev/ttyUSB0\"\n[[device]]\nunit = 3\nkind = \"window_screen\"\nwindow = 9\n",
        )
        .unwrap();
        assert_eq!(b.check(&[1, 2, 3]).unwrap_err().0, "device[0].window");
        let b: WindowBusConfig = toml::from_str(
            "port = \"/dev/ttyUSB0\"\n[[device]]\nunit = 33\nkind = \"rating_keypad\"\nwindow = 1\nkeys = 4\n",
        )
        .unwrap();
        assert_eq!(b.check(&[1]).unwrap_err().0, "device[0].levels");
        let b: WindowBusConfig = toml::from_str(
            "port = \"/dev/ttyUSB0\"\n[[device]]\nunit = 10\nkind = \"hall_board\"\n[[device]]\nunit = 10\nkind = \"hall_board\"\n",
        )
        .unwrap();
        assert_eq!(b.check(&[1]).unwrap_err().0, "device[1].unit");
    }
}
