//! The task that owns one RS-485 window bus.
//!
//! RS-485 is half duplex: one request, one answer, never two at once. So exactly one
//! task talks on a bus, and the rest of the daemon talks to that task through a
//! [`BusHandle`] (`show(unit, content)`) and a stream of [`BusEvent`]s (keys, devices
//! coming and going, faults). Inside the task:
//!
//! - Display writes go before polls: a call waits at most for the one transaction
//!   already on the wire. Only lines that changed are written.
//! - Keypads are polled often (default every 100 ms), screens rarely (every second);
//!   each poll reads the whole status block in one request, delivers new presses once
//!   ([`KeyTracker`]) and acknowledges them.
//! - A device that fails `offline_after` requests in a row is offline; its first good
//!   answer brings it back and its screen is redrawn. A new BOOT_ID (power cut) also
//!   redraws.
//! - If the port itself fails (adaptor pulled), the task reopens it with backoff, and
//!   once it is back redraws every screen on the bus.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use thiserror::Error;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_modbus::client::{Context as Modbus, Reader, Writer};
use tokio_modbus::slave::{Slave, SlaveContext};

use super::keys::Key;
use super::regmap::{self, DeviceKind, Identity, KeyTracker, Status, fault};
use super::rtu::{self, Request};
use super::text::DisplayContent;

/// One device on a bus, as configured.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BusDevice {
    /// Modbus unit id 1–247.
    pub unit: u8,
    /// What it is.
    pub kind: DeviceKind,
}

/// One bus: its port and its devices.
#[derive(Debug, Clone)]
pub struct BusConfig {
    /// Name for logs and fault events ("bus0").
    pub name: String,
    /// Serial device path.
    pub port: String,
    /// Baud rate (8N1).
    pub baud: u32,
    /// Devices.
    pub devices: Vec<BusDevice>,
    /// How long to wait for an answer.
    pub response_timeout: Duration,
    /// How often each keypad is polled.
    pub key_poll: Duration,
    /// How often each screen is polled (faults, power cuts).
    pub display_poll: Duration,
    /// Failed requests in a row that make a device offline.
    pub offline_after: u32,
    /// Longest wait between attempts to reopen a lost port.
    pub max_backoff: Duration,
}

impl BusConfig {
    /// A bus with the usual timings: 9600 baud, 100 ms timeout, keys every 100 ms.
    pub fn new(name: &str, port: &str, devices: Vec<BusDevice>) -> BusConfig {
        BusConfig {
            name: name.to_string(),
            port: port.to_string(),
            baud: 9600,
            devices,
            response_timeout: Duration::from_millis(100),
            key_poll: Duration::from_millis(100),
            display_poll: Duration::from_secs(1),
            offline_after: 3,
            max_backoff: Duration::from_secs(1),
        }
    }
}

/// What the bus tells the daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BusEvent {
    /// A key press, delivered once.
    Key {
        /// Device.
        unit: u8,
        /// The device's sequence number for it.
        seq: u16,
        /// The key.
        key: Key,
    },
    /// A device answers (first contact, or back after being offline).
    Online {
        /// Device.
        unit: u8,
        /// Its identity block.
        identity: Identity,
    },
    /// A device stopped answering, or the port is gone.
    Offline {
        /// Device.
        unit: u8,
        /// Why.
        reason: String,
    },
    /// A device's latched fault bits changed (0 = all clear again).
    Faults {
        /// Device.
        unit: u8,
        /// [`regmap::fault`] bits, RESTARTED excluded.
        bits: u16,
    },
    /// A screen holds new content: when it was asked for and when the last byte of the
    /// last frame was handed to the port.
    Shown {
        /// Device.
        unit: u8,
        /// When `show` was called.
        requested: Instant,
        /// When the last byte went to the port.
        written: Instant,
        /// Request bytes written for it.
        bytes: usize,
    },
    /// The port could not be opened or failed.
    PortDown {
        /// Why.
        reason: String,
    },
    /// The port is open (again).
    PortUp,
}

/// The bus task has stopped.
#[derive(Debug, Error)]
#[error("window bus task has stopped")]
pub struct BusClosed;

enum Cmd {
    Show(u8, DisplayContent, Instant),
    Confirm(u8, u16),
}

/// The daemon's handle to a bus task. Cheap to clone.
#[derive(Clone)]
pub struct BusHandle {
    tx: mpsc::UnboundedSender<Cmd>,
    task: Arc<Mutex<Option<tokio::task::JoinHandle<()>>>>,
}

impl BusHandle {
    /// Make screen `unit` show `content`; it is written as soon as the bus is free,
    /// and again after any power cut or reconnect.
    pub fn show(&self, unit: u8, content: DisplayContent) -> Result<(), BusClosed> {
        self.tx
            .send(Cmd::Show(unit, content, Instant::now()))
            .map_err(|_| BusClosed)
    }

    /// The press `seq` from rating pad `unit` is stored: the pad may now forget it
    /// (KEY_ACK at its next poll). A rating pad keeps a press until then, so a
    /// controller that dies between reading a press and storing its rating reads the
    /// press again after the restart instead of losing it. Other keypads are
    /// acknowledged as soon as they are read: a caller's "call next" must never run
    /// twice.
    pub fn confirm(&self, unit: u8, seq: u16) -> Result<(), BusClosed> {
        self.tx.send(Cmd::Confirm(unit, seq)).map_err(|_| BusClosed)
    }

    /// Stop the task (the port closes).
    pub fn shutdown(&self) {
        if let Some(t) = self.task.lock().unwrap_or_else(|p| p.into_inner()).take() {
            t.abort();
        }
    }
}

/// Start the task owning `config`'s bus. Must be called inside a tokio runtime.
pub fn spawn(config: BusConfig) -> (BusHandle, mpsc::UnboundedReceiver<BusEvent>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let (etx, erx) = mpsc::unbounded_channel();
    let task = tokio::spawn(run(config, rx, etx));
    (
        BusHandle {
            tx,
            task: Arc::new(Mutex::new(Some(task))),
        },
        erx,
    )
}

/// A transport that notes when it last handed bytes to the port, and drops whatever
/// unread bytes wait in the port before each request goes out.
///
/// tokio-modbus matches an answer to its request by function code only, so a late
/// answer to an earlier request (one that timed out, or one a previous controller sent
/// before a power cut) would be taken as the answer to the next one. On a half-duplex
/// bus nothing valid can be waiting when we start to talk, so it is discarded.
struct Clocked<T> {
    inner: T,
    fd: Option<std::os::fd::RawFd>,
    last_write: Arc<Mutex<Instant>>,
    written: Arc<Mutex<usize>>,
}

impl<T: AsyncRead + Unpin> AsyncRead for Clocked<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Clocked<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        if let Some(fd) = self.fd {
            // SAFETY: tcflush on the port's own open descriptor, no pointers.
            unsafe {
                libc::tcflush(fd, libc::TCIFLUSH);
            }
        }
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = r {
            *self.last_write.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
            *self.written.lock().unwrap_or_else(|p| p.into_inner()) += n;
        }
        r
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[derive(Debug, Default)]
struct DeviceState {
    kind: Option<DeviceKind>,
    identity: Option<Identity>,
    online: Option<bool>,
    failures: u32,
    keys: KeyTracker,
    faults: u16,
    next_poll: Option<Instant>,
    /// Registers last written per line (None = unknown, must write).
    shown: Vec<Option<Vec<u16>>>,
    brightness: Option<u8>,
    /// Content to show and when it was asked for.
    want: Option<(DisplayContent, Instant)>,
    dirty: bool,
    /// A rating pad's newest press the controller has stored; KEY_ACK goes no further.
    confirmed: Option<u16>,
}

/// How a request failed.
enum Failure {
    /// The port is gone: reopen.
    Port(String),
    /// The device did not answer properly.
    Device(String),
    /// The device answered with an exception.
    Exception(tokio_modbus::ExceptionCode),
}

struct Bus {
    config: BusConfig,
    devices: BTreeMap<u8, DeviceState>,
    events: mpsc::UnboundedSender<BusEvent>,
    order: Vec<u8>,
    cursor: usize,
}

async fn call<T, F>(timeout: Duration, fut: F) -> Result<T, Failure>
where
    F: std::future::Future<Output = tokio_modbus::Result<T>>,
{
    match tokio::time::timeout(timeout, fut).await {
        Err(_) => Err(Failure::Device("no answer".into())),
        Ok(Ok(Ok(v))) => Ok(v),
        Ok(Ok(Err(code))) => Err(Failure::Exception(code)),
        Ok(Err(tokio_modbus::Error::Protocol(e))) => Err(Failure::Device(e.to_string())),
        Ok(Err(tokio_modbus::Error::Transport(e)))
            if e.kind() == std::io::ErrorKind::InvalidData =>
        {
            Err(Failure::Device(e.to_string()))
        }
        Ok(Err(tokio_modbus::Error::Transport(e))) => Err(Failure::Port(e.to_string())),
    }
}

impl Bus {
    fn emit(&self, e: BusEvent) {
        // A daemon that dropped the receiver is shutting down; nothing to do.
        let _ = self.events.send(e);
    }

    fn take_cmd(&mut self, cmd: Cmd) {
        match cmd {
            Cmd::Show(unit, content, at) => match self.devices.get_mut(&unit) {
                Some(d) => {
                    d.want = Some((content, at));
                    d.dirty = true;
                }
                None => {
                    tracing::warn!(bus = %self.config.name, unit, "show for a unit not on this bus")
                }
            },
            Cmd::Confirm(unit, seq) => {
                if let Some(d) = self.devices.get_mut(&unit)
                    && d.confirmed.is_none_or(|c| regmap::seq_newer(seq, c))
                {
                    d.confirmed = Some(seq);
                }
            }
        }
    }

    /// Everything must be redrawn and re-identified (new port, or startup).
    fn forget_all(&mut self) {
        let now = Instant::now();
        for d in self.devices.values_mut() {
            d.shown.iter_mut().for_each(|s| *s = None);
            d.brightness = None;
            d.dirty = d.want.is_some();
            d.next_poll = Some(now);
        }
    }

    fn port_lost(&mut self, reason: &str) {
        self.emit(BusEvent::PortDown {
            reason: reason.to_string(),
        });
        let units: Vec<u8> = self.devices.keys().copied().collect();
        for unit in units {
            let d = self.devices.get_mut(&unit).expect("unit from keys");
            d.failures = 0;
            if d.online != Some(false) {
                d.online = Some(false);
                let reason = format!("port {}: {reason}", self.config.port);
                self.emit(BusEvent::Offline { unit, reason });
            }
        }
    }

    /// Count a failed request; true if the port must be reopened.
    fn failed(&mut self, unit: u8, f: Failure) -> bool {
        let offline_after = self.config.offline_after;
        let Some(d) = self.devices.get_mut(&unit) else {
            return false;
        };
        let reason = match f {
            Failure::Port(r) => {
                tracing::warn!(bus = %self.config.name, "port failed: {r}");
                self.port_lost(&r);
                return true;
            }
            Failure::Device(r) => r,
            Failure::Exception(code) => {
                // It answered: it is there, but refused (e.g. text it cannot show).
                tracing::warn!(bus = %self.config.name, unit, ?code, "device refused a request");
                d.failures = 0;
                return false;
            }
        };
        d.failures += 1;
        if d.failures >= offline_after && d.online != Some(false) {
            d.online = Some(false);
            d.identity = None;
            self.emit(BusEvent::Offline { unit, reason });
        }
        false
    }

    /// A device answered; if it was not known online, identify it and redraw it.
    async fn answered(&mut self, ctx: &mut Modbus, unit: u8) -> Result<(), Failure> {
        let timeout = self.config.response_timeout;
        let d = self.devices.get_mut(&unit).expect("configured unit");
        d.failures = 0;
        if d.online == Some(true) && d.identity.is_some() {
            return Ok(());
        }
        let regs = call(
            timeout,
            ctx.read_input_registers(regmap::MAGIC, regmap::IDENTITY_LEN),
        )
        .await?;
        let d = self.devices.get_mut(&unit).expect("configured unit");
        let identity = match Identity::decode(&regs) {
            Ok(i) if Some(i.kind) == d.kind => i,
            Ok(i) => {
                return Err(Failure::Device(format!(
                    "device at unit {unit} is a {:?}, configured as {:?}",
                    i.kind, d.kind
                )));
            }
            Err(e) => return Err(Failure::Device(e.to_string())),
        };
        d.identity = Some(identity);
        d.online = Some(true);
        d.shown = vec![None; identity.lines.min(regmap::MAX_LINES) as usize];
        d.brightness = None;
        d.dirty = d.want.is_some();
        self.emit(BusEvent::Online { unit, identity });
        Ok(())
    }

    /// Write what changed on one screen.
    async fn draw(
        &mut self,
        ctx: &mut Modbus,
        unit: u8,
        clock: &(Arc<Mutex<Instant>>, Arc<Mutex<usize>>),
    ) -> Result<(), Failure> {
        let timeout = self.config.response_timeout;
        let d = self.devices.get_mut(&unit).expect("configured unit");
        d.dirty = false;
        let Some((content, requested)) = d.want.clone() else {
            return Ok(());
        };
        let lines = d.shown.len() as u16;
        let before = *clock.1.lock().unwrap_or_else(|p| p.into_inner());
        let mut wrote_any = false;
        for req in rtu::display_requests(&content, lines) {
            match req {
                Request::WriteMultiple { addr, values } => {
                    let n = ((addr - regmap::LINE_BASE) / regmap::LINE_STRIDE) as usize;
                    let d = self.devices.get_mut(&unit).expect("configured unit");
                    if d.shown.get(n).and_then(|s| s.as_ref()) == Some(&values) {
                        continue;
                    }
                    let r = call(timeout, ctx.write_multiple_registers(addr, &values)).await;
                    let d = self.devices.get_mut(&unit).expect("configured unit");
                    match r {
                        Ok(()) => d.shown[n] = Some(values),
                        Err(e) => {
                            // Retry after a lost answer; a refusal (exception) would
                            // only be refused again, so it is reported, not repeated.
                            d.dirty = !matches!(e, Failure::Exception(_));
                            return Err(e);
                        }
                    }
                    wrote_any = true;
                }
                Request::WriteSingle { addr, value } => {
                    let d = self.devices.get_mut(&unit).expect("configured unit");
                    if d.brightness == Some(value as u8) {
                        continue;
                    }
                    call(timeout, ctx.write_single_register(addr, value)).await?;
                    let d = self.devices.get_mut(&unit).expect("configured unit");
                    d.brightness = Some(value as u8);
                    wrote_any = true;
                }
                _ => {}
            }
        }
        if wrote_any {
            let written = *clock.0.lock().unwrap_or_else(|p| p.into_inner());
            let bytes = *clock.1.lock().unwrap_or_else(|p| p.into_inner()) - before;
            self.emit(BusEvent::Shown {
                unit,
                requested,
                written,
                bytes,
            });
        }
        Ok(())
    }

    /// Read one device's status block: keys, faults, power cuts.
    ///
    /// A show that arrives while the status is read is not kept waiting for the
    /// acknowledgement and fault-clear writes: they are left to the next poll (the
    /// presses were delivered already, and [`KeyTracker`] will not deliver them twice).
    async fn poll(
        &mut self,
        ctx: &mut Modbus,
        unit: u8,
        cmds: &mut mpsc::UnboundedReceiver<Cmd>,
    ) -> Result<(), Failure> {
        let timeout = self.config.response_timeout;
        let kind = self.devices[&unit].kind;
        let has_keys = kind.is_some_and(|k| k.has_keys());
        // Screens without keys only need FAULTS and BOOT_ID: a shorter answer leaves
        // the bus free sooner for a call.
        let len = if has_keys { regmap::STATUS_LEN } else { 2 };
        let mut regs = call(timeout, ctx.read_input_registers(regmap::STATUS_START, len)).await?;
        self.answered(ctx, unit).await?;
        regs.resize(regmap::STATUS_LEN as usize, 0);
        let status = Status::decode(&regs).map_err(|e| Failure::Device(e.to_string()))?;
        let d = self.devices.get_mut(&unit).expect("configured unit");
        let step = d.keys.step(&status);
        if step.restarted {
            tracing::info!(bus = %self.config.name, unit, "device restarted; redrawing");
            d.shown.iter_mut().for_each(|s| *s = None);
            d.brightness = None;
            d.dirty = d.want.is_some();
            // Its presses are numbered from 1 again.
            d.confirmed = None;
        }
        let reportable = status.faults & fault::REPORTABLE;
        let faults_changed = reportable != d.faults;
        d.faults = reportable;
        for p in &step.new {
            match Key::from_code(p.code) {
                Some(key) => self.emit(BusEvent::Key {
                    unit,
                    seq: p.seq,
                    key,
                }),
                None => {
                    tracing::warn!(bus = %self.config.name, unit, code = p.code, "unknown key code");
                    // Nobody will store it: let the pad forget it with the next ack.
                    let d = self.devices.get_mut(&unit).expect("configured unit");
                    if d.confirmed.is_none_or(|c| regmap::seq_newer(p.seq, c)) {
                        d.confirmed = Some(p.seq);
                    }
                }
            }
        }
        if faults_changed {
            self.emit(BusEvent::Faults {
                unit,
                bits: reportable,
            });
        }
        while let Ok(cmd) = cmds.try_recv() {
            self.take_cmd(cmd);
        }
        if self
            .devices
            .values()
            .any(|d| d.dirty && d.online == Some(true))
        {
            return Ok(());
        }
        let ack = if kind == Some(DeviceKind::RatingKeypad) {
            // Only as far as the controller has stored (see `BusHandle::confirm`).
            let confirmed = self.devices[&unit].confirmed;
            confirmed.and_then(|c| {
                status
                    .presses
                    .iter()
                    .rev()
                    .find(|p| !regmap::seq_newer(p.seq, c))
                    .map(|p| p.seq)
            })
        } else {
            step.ack
        };
        if let Some(ack) = ack {
            call(timeout, ctx.write_single_register(regmap::KEY_ACK, ack)).await?;
        }
        if status.faults != 0 {
            call(
                timeout,
                ctx.write_single_register(regmap::FAULT_CLEAR, status.faults),
            )
            .await?;
        }
        Ok(())
    }

    fn poll_period(&self, unit: u8) -> Duration {
        let d = &self.devices[&unit];
        let base = if d.kind.is_some_and(|k| k.has_keys()) {
            self.config.key_poll
        } else {
            self.config.display_poll
        };
        // An offline device is looked for less often, to leave the bus to the others.
        if d.online == Some(false) {
            base.max(Duration::from_millis(500))
        } else {
            base
        }
    }

    /// Serve on an open port until it fails or the handle is dropped.
    /// Returns false when the daemon is gone.
    async fn serve(
        &mut self,
        ctx: &mut Modbus,
        cmds: &mut mpsc::UnboundedReceiver<Cmd>,
        clock: &(Arc<Mutex<Instant>>, Arc<Mutex<usize>>),
    ) -> bool {
        loop {
            while let Ok(cmd) = cmds.try_recv() {
                self.take_cmd(cmd);
            }
            // 1. Screens with new content, online ones only (others redraw on return).
            // The oldest request first: a call's window screen is asked for before the
            // hall board's longer redraw, whatever their unit ids.
            let dirty = self
                .devices
                .iter()
                .filter(|(_, d)| d.dirty && d.online == Some(true))
                .min_by_key(|(_, d)| d.want.as_ref().map(|w| w.1))
                .map(|(u, _)| *u);
            if let Some(unit) = dirty {
                ctx.set_slave(Slave(unit));
                if let Err(f) = self.draw(ctx, unit, clock).await
                    && self.failed(unit, f)
                {
                    return true;
                }
                continue;
            }
            // 2. The next poll that is due, round robin.
            let now = Instant::now();
            let n = self.order.len();
            let due = (0..n)
                .map(|i| self.order[(self.cursor + i) % n])
                .find(|u| self.devices[u].next_poll.is_none_or(|t| t <= now));
            if let Some(unit) = due {
                self.cursor =
                    (self.order.iter().position(|u| *u == unit).unwrap_or(0) + 1) % n.max(1);
                ctx.set_slave(Slave(unit));
                let r = self.poll(ctx, unit, cmds).await;
                let period = self.poll_period(unit);
                if let Some(d) = self.devices.get_mut(&unit) {
                    d.next_poll = Some(Instant::now() + period);
                }
                if let Err(f) = r
                    && self.failed(unit, f)
                {
                    return true;
                }
                continue;
            }
            // 3. Idle until a show arrives or the next poll is due.
            let next = self
                .devices
                .values()
                .filter_map(|d| d.next_poll)
                .min()
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(1));
            tokio::select! {
                cmd = cmds.recv() => match cmd {
                    Some(c) => self.take_cmd(c),
                    None => return false,
                },
                _ = tokio::time::sleep_until(next) => {}
            }
        }
    }
}

async fn run(
    config: BusConfig,
    mut cmds: mpsc::UnboundedReceiver<Cmd>,
    events: mpsc::UnboundedSender<BusEvent>,
) {
    let mut devices = BTreeMap::new();
    for d in &config.devices {
        devices.insert(
            d.unit,
            DeviceState {
                kind: Some(d.kind),
                ..DeviceState::default()
            },
        );
    }
    let order = devices.keys().copied().collect();
    let mut bus = Bus {
        config,
        devices,
        events,
        order,
        cursor: 0,
    };
    let mut backoff = Duration::from_millis(50);
    let mut port_down = false;
    loop {
        let opened =
            tokio_serial::SerialStream::open(&tokio_serial::new(&bus.config.port, bus.config.baud));
        let port = match opened {
            Ok(p) => p,
            Err(e) => {
                if !port_down {
                    tracing::warn!(bus = %bus.config.name, port = %bus.config.port, "cannot open: {e}");
                    bus.port_lost(&e.to_string());
                    port_down = true;
                }
                // Keep taking shows while waiting, so the redraw has the latest content.
                let wake = tokio::time::sleep(backoff);
                tokio::pin!(wake);
                loop {
                    tokio::select! {
                        cmd = cmds.recv() => match cmd {
                            Some(c) => bus.take_cmd(c),
                            None => return,
                        },
                        _ = &mut wake => break,
                    }
                }
                backoff = (backoff * 2).min(bus.config.max_backoff);
                continue;
            }
        };
        tracing::info!(bus = %bus.config.name, port = %bus.config.port, "port open");
        backoff = Duration::from_millis(50);
        bus.emit(BusEvent::PortUp);
        let clock = (
            Arc::new(Mutex::new(Instant::now())),
            Arc::new(Mutex::new(0usize)),
        );
        let fd = Some(std::os::fd::AsRawFd::as_raw_fd(&port));
        let transport = Clocked {
            inner: port,
            fd,
            last_write: clock.0.clone(),
            written: clock.1.clone(),
        };
        let mut ctx = tokio_modbus::client::rtu::attach(transport);
        bus.forget_all();
        // Everyone is re-identified on a new port, so screens are redrawn as they answer.
        for d in bus.devices.values_mut() {
            d.identity = None;
        }
        if !bus.serve(&mut ctx, &mut cmds, &clock).await {
            return;
        }
        port_down = true;
        tokio::time::sleep(backoff).await;
    }
}
