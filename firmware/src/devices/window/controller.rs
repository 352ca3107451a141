//! The one controller that drives every window device link the same way: it follows the
//! committed events and the links' key presses, and reads the setup in force from the
//! hall core at each use (windows, prefixes, number width, rating reasons), so a
//! `config_applied` takes effect on the screens and keypads at once.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hallq_engine::{Command, Event};
use hallq_hardware::window::DisplayContent;
use hallq_hardware::window::keys::{CallerInput, Key, RatingInput};
use hallq_hardware::window::regmap::DeviceKind;
use tokio::sync::{mpsc, watch};

use super::config::default_armed;
use super::link::{DeviceLink, LinkEvent, LinkSetup, Placement};
use super::rating::{self, Armed, Press};
use super::screens::{self, BOARD_ROWS, WindowView};
use crate::core::{HallCore, wall_now};
use crate::devices::health::{Devices, Health};
use crate::events::{Committed, HallEvent};
use crate::store::StoredEvent;

/// Handles to the running links. [`WindowBuses::shutdown`] stops the controller and
/// the device tasks, which lets go of the hall core so the daemon can stop.
#[derive(Clone, Default)]
pub struct WindowBuses {
    links: Vec<Arc<DeviceLink>>,
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
            l.stop();
        }
    }
}

/// Where a device sits.
#[derive(Debug, Clone)]
struct Placed {
    link: usize,
    place: Placement,
}

struct Controller {
    hall: HallCore,
    devices: Devices,
    links: Vec<Arc<DeviceLink>>,
    placed: Vec<Placed>,
    notice: String,
    board_lines: VecDeque<String>,
    armed: HashMap<u32, Armed>,
    armed_for: HashMap<u32, Duration>,
    callers: HashMap<(usize, u8), CallerInput>,
    /// 亮身份: whether the status line names who serves.
    show_staff: bool,
    /// The status line naming who is signed in at each window (when `show_staff`).
    staff_lines: HashMap<u32, String>,
}

/// The status line for staff `id` (亮身份): the account's name and number, or the number
/// alone when the name cannot be shown or there is no account (a simulation's id).
fn status_line(conn: &rusqlite::Connection, id: &str) -> Option<String> {
    let name = crate::store::staff::get(conn, id).ok().map(|r| r.name);
    screens::staff_line(name.as_deref(), id)
}

/// Whether a screen of `kind` shows a window's content.
fn shows_window(kind: DeviceKind) -> bool {
    matches!(kind, DeviceKind::WindowScreen | DeviceKind::WindowTerminal)
}

/// Drive started links: show the queue on their screens, act on their keys, report
/// their health. Returns the handles that stop it all.
pub async fn drive(
    setups: Vec<LinkSetup>,
    notice: String,
    show_staff: bool,
    hall: HallCore,
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
    // Subscribe before reading the state, so no call falls between the two.
    let mut committed = hall.subscribe();
    let restoring = armed_for.clone();
    let (now_wall, now) = (wall_now().0, Instant::now());
    let armed = hall
        .query(move |e, _| rating::restore(e, &restoring, now_wall, now))
        .await
        .unwrap_or_default();
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
        show_staff,
        staff_lines: HashMap::new(),
    };
    c.warn_unknown_windows();
    c.redraw_windows().await;
    c.draw_board();
    let (stop, mut stopped) = watch::channel(false);
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = stopped.changed() => break,
                ev = committed.recv() => match ev {
                    Ok(ev) => c.on_event(&ev).await,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!("window displays missed {n} events");
                        c.redraw_windows().await;
                    }
                    Err(_) => break,
                },
                Some((link, ev)) = rx.recv() => c.on_link(link, ev).await,
            }
        }
        c.links.iter().for_each(|l| l.stop());
    });
    WindowBuses {
        links,
        stop: Some(stop),
    }
}

impl Controller {
    fn send(&self, p: &Placed, c: DisplayContent) {
        let link = &self.links[p.link];
        if !link.show(p.place.unit, c) {
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
            self.send(
                p,
                screens::board_screen(&self.board_lines, &self.notice, rows),
            );
        }
    }

    /// Devices at a window the setup in force does not have stay dark until it has.
    fn warn_unknown_windows(&self) {
        let in_force = self.hall.in_force();
        for p in &self.placed {
            if let Some(w) = p.place.window.filter(|w| !in_force.has_window(*w)) {
                let link = &self.links[p.link];
                tracing::warn!(device = %link.device_id(p.place.unit), window = w,
                    "the setup in force has no such window; the device waits until it has");
            }
        }
    }

    /// Every window screen from the queue's state, for the windows in force.
    async fn redraw_windows(&mut self) {
        let windows = self.hall.in_force().windows();
        let show_staff = self.show_staff;
        let views = self
            .hall
            .query(move |e, store| {
                windows
                    .iter()
                    .map(|&w| {
                        let s = e.windows().get(&w);
                        let staff = s
                            .and_then(|s| s.staff.as_ref())
                            .filter(|_| show_staff)
                            .and_then(|(id, _, _)| status_line(store.conn(), id));
                        WindowView {
                            window: w,
                            staffed: s.is_some_and(|s| s.staff.is_some()),
                            paused: s.is_some_and(|s| s.paused.is_some()),
                            current: s
                                .and_then(|s| s.current)
                                .and_then(|t| e.ticket(t))
                                .map(|t| t.number.clone()),
                            rating: false,
                            staff,
                        }
                    })
                    .collect::<Vec<_>>()
            })
            .await
            .unwrap_or_default();
        self.staff_lines.clear();
        for mut v in views {
            if let Some(line) = &v.staff {
                self.staff_lines.insert(v.window, line.clone());
            }
            v.rating = self.armed.contains_key(&v.window);
            self.show_window(v.window, &screens::window_screen(&v));
        }
    }

    async fn on_event(&mut self, ev: &StoredEvent) {
        let event = match ev.typed() {
            Committed::Engine(e) => e,
            Committed::Hall(HallEvent::ConfigApplied { .. }) => {
                // The core switched before this event fanned out: windows may have come
                // or gone, and prefixes and reasons are read afresh at the next key.
                self.warn_unknown_windows();
                self.redraw_windows().await;
                return;
            }
            _ => return,
        };
        match event {
            Event::TicketCalled { number, window, .. }
            | Event::TicketRecalled { number, window, .. } => {
                // The window's own screen first: it is what the citizen looks at.
                self.show_window(window, &screens::call_screen(&number, window));
                let text = screens::board_call(&number, window);
                self.board_lines.retain(|l| *l != text);
                self.board_lines.push_front(text);
                self.board_lines
                    .truncate(hallq_hardware::window::regmap::MAX_LINES as usize);
                self.draw_board();
                self.armed.remove(&window);
            }
            Event::WindowPaused { window, .. } => {
                self.show_window(window, &screens::paused_screen(window))
            }
            Event::StaffSignedOut { window, .. } => {
                self.staff_lines.remove(&window);
                self.show_window(window, &screens::unstaffed_screen(window))
            }
            Event::StaffSignedIn { window, staff, .. } => {
                self.staff_lines.remove(&window);
                if self.show_staff {
                    let line = self
                        .hall
                        .query(move |_, store| status_line(store.conn(), &staff))
                        .await
                        .ok()
                        .flatten();
                    if let Some(line) = line {
                        self.staff_lines.insert(window, line);
                    }
                }
                self.show_idle(window)
            }
            Event::WindowResumed { window, .. }
            | Event::TicketNoShow { window, .. }
            | Event::TicketTransferred { window, .. } => self.show_idle(window),
            Event::TicketFinished { ticket, window, .. } => {
                let armed_for = self.armed_time(window);
                self.armed
                    .insert(window, Armed::new(ticket, Instant::now(), armed_for));
                self.show_window(window, &screens::rate_screen(window));
            }
            _ => {}
        }
    }

    fn show_idle(&self, window: u32) {
        let staff = self.staff_lines.get(&window).map(String::as_str);
        self.show_window(window, &screens::idle_screen(window, staff))
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
                if let Some(seq) = seq {
                    self.links[link].confirm(unit, seq);
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
        match (p.kind, p.keymap) {
            (DeviceKind::RatingKeypad, Some(mut map)) => {
                // The reason keys mean the reasons in force now.
                map.reasons = self.hall.in_force().setup.rating.reasons.clone();
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
        let (ticket, level, reasons) =
            match rating::press(&mut self.armed, window, input, Instant::now()) {
                Press::Rate {
                    ticket,
                    level,
                    reasons,
                } => (ticket, level, reasons),
                Press::Ignored(why) => {
                    tracing::info!(window, "{why}; ignored");
                    return;
                }
            };
        let cmd = Command::Rate {
            ticket,
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

    async fn on_caller(&mut self, window: u32, action: hallq_hardware::window::keys::CallerAction) {
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
        let in_force = self.hall.in_force();
        match super::caller::command(action, window, staff, paused, &in_force) {
            Ok(cmd) => {
                if let Err(e) = self.hall.execute(cmd).await {
                    tracing::info!(window, "caller keypad action refused: {e}");
                }
            }
            Err(why) => tracing::warn!(window, "{why}"),
        }
    }
}
