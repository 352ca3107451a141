//! A simulated window bus: N hall-profile devices (screens, hall board, caller and
//! rating keypads) answering as real Modbus RTU servers (`tokio-modbus`'s server side)
//! on a pseudo-terminal, exactly as `docs/protocol.md` says a device must.
//!
//! Tests and `hallq --simulate` open the PTY's path like a USB-RS485 adaptor. A script
//! presses keys ([`SimBus::press`]), takes a device off the bus or back
//! ([`SimBus::set_online`]), power-cycles it ([`SimBus::power_cycle`]), or pulls the
//! whole adaptor out and plugs it back ([`SimBus::unplug`], [`SimBus::plug`]). What each
//! screen holds is readable as text ([`SimBus::texts`]) and as a PNG of its LED matrix
//! ([`SimBus::render_png`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use thiserror::Error;
use tokio::sync::{oneshot, watch};
use tokio_modbus::{ExceptionCode, Request, Response, SlaveRequest};

use super::font::{BitmapFont, FontError};
use super::keys::Key;
use super::regmap::{self, DeviceKeyQueue, DeviceKind, Identity, capability, fault};
use super::text::{Align, Colour, DisplayLine, Effect};

/// What a simulated device is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SimSpec {
    /// Unit id 1–247.
    pub unit: u8,
    /// Kind.
    pub kind: DeviceKind,
    /// Display lines (0 for a keypad).
    pub lines: u16,
    /// Full-width characters per line.
    pub columns: u16,
    /// Main keys.
    pub keys: u16,
    /// Reason keys.
    pub reason_keys: u16,
}

impl SimSpec {
    /// A window screen: 2 lines of 8 characters (128 × 32 dots), red/green/amber.
    pub fn window_screen(unit: u8) -> SimSpec {
        SimSpec {
            unit,
            kind: DeviceKind::WindowScreen,
            lines: 2,
            columns: 8,
            keys: 0,
            reason_keys: 0,
        }
    }
    /// A hall board: 6 lines of 16 characters.
    pub fn hall_board(unit: u8) -> SimSpec {
        SimSpec {
            unit,
            kind: DeviceKind::HallBoard,
            lines: 6,
            columns: 16,
            keys: 0,
            reason_keys: 0,
        }
    }
    /// A caller keypad with function, digit and letter keys.
    pub fn caller_keypad(unit: u8) -> SimSpec {
        SimSpec {
            unit,
            kind: DeviceKind::CallerKeypad,
            lines: 0,
            columns: 0,
            keys: 10,
            reason_keys: 0,
        }
    }
    /// A rating keypad with 5 (or 3) level keys and 5 reason keys.
    pub fn rating_keypad(unit: u8, keys: u16) -> SimSpec {
        SimSpec {
            unit,
            kind: DeviceKind::RatingKeypad,
            lines: 0,
            columns: 0,
            keys,
            reason_keys: 5,
        }
    }

    fn identity(&self) -> Identity {
        let mut caps = 0;
        if self.kind.has_display() {
            caps |= capability::DISPLAY
                | capability::COLOUR
                | capability::BLINK
                | capability::SCROLL
                | capability::BRIGHTNESS;
        }
        if self.kind.has_keys() {
            caps |= capability::KEYS;
        }
        if matches!(
            self.kind,
            DeviceKind::CallerKeypad | DeviceKind::WindowTerminal
        ) {
            caps |= capability::DIGITS;
        }
        if self.reason_keys > 0 {
            caps |= capability::REASONS;
        }
        Identity {
            kind: self.kind,
            capabilities: caps,
            lines: self.lines,
            columns: self.columns,
            matrix_width: self.columns * 16,
            matrix_height: self.lines * 16,
            keys: self.keys,
            reason_keys: self.reason_keys,
            firmware: 0x0100,
            vendor: 0,
        }
    }
}

/// One simulated device's registers and state.
#[derive(Debug, Clone)]
struct SimDevice {
    spec: SimSpec,
    online: bool,
    faults: u16,
    boot_id: u16,
    keys: DeviceKeyQueue,
    ack: u16,
    brightness: u16,
    /// Line blocks as written (59 registers each).
    blocks: Vec<Vec<u16>>,
    /// Accepted line writes, for tests that check redraws.
    line_writes: u64,
    /// When the last line write was accepted (its last byte had arrived).
    last_write: Option<std::time::Instant>,
    /// Refuse every line write (a screen whose font lacks the characters).
    refuse_writes: bool,
}

impl SimDevice {
    fn new(spec: SimSpec, boot_id: u16) -> SimDevice {
        SimDevice {
            spec,
            online: true,
            faults: fault::RESTARTED,
            boot_id,
            keys: DeviceKeyQueue::default(),
            ack: 0,
            brightness: 8,
            blocks: vec![vec![0; regmap::LINE_BLOCK_LEN as usize]; spec.lines as usize],
            line_writes: 0,
            last_write: None,
            refuse_writes: false,
        }
    }

    fn input_image(&self) -> Vec<u16> {
        let mut img = vec![0u16; (regmap::STATUS_START + regmap::STATUS_LEN) as usize];
        img[..regmap::IDENTITY_LEN as usize].copy_from_slice(&self.spec.identity().encode());
        let faults = self.faults
            | if self.keys.overflowed {
                fault::KEY_OVERFLOW
            } else {
                0
            };
        img[regmap::FAULTS as usize] = faults;
        img[regmap::BOOT_ID as usize] = self.boot_id;
        img[regmap::KEY_LAST_SEQ as usize..].copy_from_slice(&self.keys.registers());
        img
    }

    fn read_holding(&self, addr: u16, cnt: u16) -> Result<Vec<u16>, ExceptionCode> {
        let end = addr as u32 + cnt as u32;
        if (regmap::KEY_ACK..regmap::KEY_ACK + regmap::SETTINGS_LEN).contains(&addr)
            && end <= (regmap::KEY_ACK + regmap::SETTINGS_LEN) as u32
        {
            let s = [self.ack, 0, self.brightness];
            let from = (addr - regmap::KEY_ACK) as usize;
            return Ok(s[from..from + cnt as usize].to_vec());
        }
        let (line, off) = self
            .line_of(addr)
            .ok_or(ExceptionCode::IllegalDataAddress)?;
        if off as u32 + cnt as u32 > regmap::LINE_BLOCK_LEN as u32 {
            return Err(ExceptionCode::IllegalDataAddress);
        }
        Ok(self.blocks[line][off as usize..(off + cnt) as usize].to_vec())
    }

    fn line_of(&self, addr: u16) -> Option<(usize, u16)> {
        if addr < regmap::LINE_BASE {
            return None;
        }
        let n = (addr - regmap::LINE_BASE) / regmap::LINE_STRIDE;
        let off = (addr - regmap::LINE_BASE) % regmap::LINE_STRIDE;
        ((n as usize) < self.blocks.len() && off < regmap::LINE_BLOCK_LEN)
            .then_some((n as usize, off))
    }

    fn write_setting(&mut self, addr: u16, value: u16) -> Result<(), ExceptionCode> {
        match addr {
            regmap::KEY_ACK => {
                self.ack = value;
                self.keys.ack(value);
            }
            regmap::FAULT_CLEAR => {
                self.faults &= !value;
                if value & fault::KEY_OVERFLOW != 0 {
                    self.keys.overflowed = false;
                }
            }
            regmap::BRIGHTNESS if value <= 15 => self.brightness = value,
            regmap::BRIGHTNESS => return Err(ExceptionCode::IllegalDataValue),
            _ => return Err(ExceptionCode::IllegalDataAddress),
        }
        Ok(())
    }

    fn write_multiple(&mut self, addr: u16, values: &[u16]) -> Result<(), ExceptionCode> {
        if let Some((line, off)) = self.line_of(addr) {
            if off != 0 || values.len() > regmap::LINE_BLOCK_LEN as usize {
                return Err(ExceptionCode::IllegalDataAddress);
            }
            // Check the whole write before showing any of it.
            match regmap::decode_line(values) {
                Ok(_) if !self.refuse_writes => {
                    let block = &mut self.blocks[line];
                    block.iter_mut().for_each(|r| *r = 0);
                    block[..values.len()].copy_from_slice(values);
                    self.line_writes += 1;
                    self.last_write = Some(std::time::Instant::now());
                    Ok(())
                }
                _ => {
                    self.faults |= fault::TEXT_REJECTED;
                    Err(ExceptionCode::IllegalDataValue)
                }
            }
        } else {
            // Settings may be written as a run too.
            for (i, v) in values.iter().enumerate() {
                self.write_setting(addr.wrapping_add(i as u16), *v)?;
            }
            Ok(())
        }
    }

    fn handle(&mut self, req: Request<'_>) -> Result<Response, ExceptionCode> {
        match req {
            Request::ReadInputRegisters(addr, cnt) => {
                if cnt == 0 || cnt > 125 {
                    return Err(ExceptionCode::IllegalDataValue);
                }
                let img = self.input_image();
                let end = addr as usize + cnt as usize;
                if end > img.len() {
                    return Err(ExceptionCode::IllegalDataAddress);
                }
                Ok(Response::ReadInputRegisters(
                    img[addr as usize..end].to_vec(),
                ))
            }
            Request::ReadHoldingRegisters(addr, cnt) => {
                if cnt == 0 || cnt > 125 {
                    return Err(ExceptionCode::IllegalDataValue);
                }
                Ok(Response::ReadHoldingRegisters(
                    self.read_holding(addr, cnt)?,
                ))
            }
            Request::WriteSingleRegister(addr, value) => {
                if self.line_of(addr).is_some() {
                    // A line is written whole, in one FC 0x10.
                    return Err(ExceptionCode::IllegalDataAddress);
                }
                self.write_setting(addr, value)?;
                Ok(Response::WriteSingleRegister(addr, value))
            }
            Request::WriteMultipleRegisters(addr, values) => {
                // Modbus: 1 to 123 registers a write, anything else is exception 0x03.
                if values.is_empty() || values.len() > 123 {
                    return Err(ExceptionCode::IllegalDataValue);
                }
                self.write_multiple(addr, &values)?;
                Ok(Response::WriteMultipleRegisters(addr, values.len() as u16))
            }
            _ => Err(ExceptionCode::IllegalFunction),
        }
    }

    fn lines(&self) -> Vec<DisplayLine> {
        self.blocks
            .iter()
            .map(|b| regmap::decode_line(b).unwrap_or_default())
            .collect()
    }
}

#[derive(Debug, Default)]
struct State {
    devices: BTreeMap<u8, SimDevice>,
    boots: u16,
    requests: u64,
}

struct Plug {
    link: PathBuf,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
    // Held so the PTY stays usable while the client closes and reopens its end.
    _slave: std::fs::File,
}

struct Shared {
    state: Mutex<State>,
    changed: watch::Sender<u64>,
    plug: Mutex<Option<Plug>>,
}

/// Errors of the simulator.
#[derive(Debug, Error)]
pub enum SimError {
    /// No device with that unit id.
    #[error("no simulated device at unit {0}")]
    NoDevice(u8),
    /// Creating the pseudo-terminal or its link failed.
    #[error("pseudo-terminal: {0}")]
    Pty(#[from] std::io::Error),
    /// tokio-serial failed.
    #[error("serial: {0}")]
    Serial(#[from] tokio_serial::Error),
    /// Rendering failed.
    #[error(transparent)]
    Font(#[from] FontError),
    /// PNG encoding failed.
    #[error("PNG: {0}")]
    Png(#[from] png::EncodingError),
}

/// The simulated bus. Cheap to clone; all clones see the same devices.
#[derive(Clone)]
pub struct SimBus {
    shared: Arc<Shared>,
}

/// The Modbus service the RTU server runs: every unit on the bus in one.
#[derive(Clone)]
struct SimService(Weak<Shared>);

impl tokio_modbus::server::Service for SimService {
    type Request = SlaveRequest<'static>;
    type Response = Option<Response>;
    type Exception = ExceptionCode;
    type Future = std::future::Ready<Result<Option<Response>, ExceptionCode>>;

    fn call(&self, req: SlaveRequest<'static>) -> Self::Future {
        let Some(shared) = self.0.upgrade() else {
            return std::future::ready(Ok(None));
        };
        let bus = SimBus { shared };
        std::future::ready(bus.answer(req.slave, req.request).transpose())
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl SimBus {
    /// A bus with these devices, not yet on a port.
    pub fn new(specs: &[SimSpec]) -> SimBus {
        let mut state = State::default();
        for s in specs {
            state.boots += 1;
            state
                .devices
                .insert(s.unit, SimDevice::new(*s, 0x1000 + state.boots));
        }
        SimBus {
            shared: Arc::new(Shared {
                state: Mutex::new(state),
                changed: watch::channel(0).0,
                plug: Mutex::new(None),
            }),
        }
    }

    /// Plug the bus in: make a pseudo-terminal, link `link` to its device path, and
    /// answer Modbus RTU on it. Must run inside a tokio runtime.
    pub fn plug(&self, link: &Path) -> Result<(), SimError> {
        self.unplug();
        let (master, holder, name) = super::pty::plug_at(link)?;
        let (stop, stopped) = oneshot::channel::<()>();
        let service = SimService(Arc::downgrade(&self.shared));
        let task = tokio::spawn(async move {
            let server = tokio_modbus::server::rtu::Server::new(master);
            let stop = async {
                let _ = stopped.await;
            };
            if let Err(e) = server.serve_until(service, stop).await {
                tracing::warn!("simulated bus stopped: {e}");
            }
        });
        *lock(&self.shared.plug) = Some(Plug {
            link: link.to_path_buf(),
            stop,
            task,
            _slave: holder,
        });
        tracing::debug!("simulated bus on {name} as {}", link.display());
        Ok(())
    }

    /// Pull the adaptor out: the PTY closes and its link disappears.
    pub fn unplug(&self) {
        if let Some(p) = lock(&self.shared.plug).take() {
            let _ = p.stop.send(());
            p.task.abort();
            let _ = std::fs::remove_file(&p.link);
        }
    }

    /// Answer one request as the devices on the bus do: `None` when no device at
    /// `unit` answers (none there, or switched off: silence, as RS-485 has it), else its
    /// response or Modbus exception. The RTU server on the PTY calls this for every
    /// frame it decodes; the fuzz targets call it without a port.
    pub fn answer(
        &self,
        unit: u8,
        request: Request<'_>,
    ) -> Option<Result<Response, ExceptionCode>> {
        let mut st = lock(&self.shared.state);
        st.requests += 1;
        let result = match st.devices.get_mut(&unit) {
            None => None,
            Some(d) if !d.online => None,
            Some(d) => Some(d.handle(request)),
        };
        drop(st);
        self.shared.changed.send_modify(|g| *g += 1);
        result
    }

    /// Whether the bus is plugged in.
    pub fn is_plugged(&self) -> bool {
        lock(&self.shared.plug).is_some()
    }

    fn with<R>(&self, unit: u8, f: impl FnOnce(&mut SimDevice) -> R) -> Result<R, SimError> {
        let mut st = lock(&self.shared.state);
        let d = st.devices.get_mut(&unit).ok_or(SimError::NoDevice(unit))?;
        let r = f(d);
        drop(st);
        self.shared.changed.send_modify(|g| *g += 1);
        Ok(r)
    }

    /// Press a key on a keypad; the sequence number it got, or `None` if the device's
    /// queue was full and dropped it.
    pub fn press(&self, unit: u8, key: Key) -> Result<Option<u16>, SimError> {
        self.with(unit, |d| d.keys.press(key.code()))
    }

    /// Presses the device still holds (not acknowledged).
    pub fn pending_keys(&self, unit: u8) -> Result<usize, SimError> {
        self.with(unit, |d| d.keys.pending())
    }

    /// Take a device off the bus (it stops answering) or put it back.
    pub fn set_online(&self, unit: u8, online: bool) -> Result<(), SimError> {
        self.with(unit, |d| d.online = online)
    }

    /// Power-cycle a device: blank screen, empty key queue, new BOOT_ID, RESTARTED.
    pub fn power_cycle(&self, unit: u8) -> Result<(), SimError> {
        let mut st = lock(&self.shared.state);
        st.boots += 1;
        let boot = 0x1000 + st.boots;
        let d = st.devices.get_mut(&unit).ok_or(SimError::NoDevice(unit))?;
        *d = SimDevice::new(d.spec, boot);
        drop(st);
        self.shared.changed.send_modify(|g| *g += 1);
        Ok(())
    }

    /// Make a screen refuse (exception 0x03) or accept line writes.
    pub fn set_refuse_writes(&self, unit: u8, refuse: bool) -> Result<(), SimError> {
        self.with(unit, |d| d.refuse_writes = refuse)
    }

    /// Raise fault bits as the device's firmware would.
    pub fn raise_fault(&self, unit: u8, bits: u16) -> Result<(), SimError> {
        self.with(unit, |d| d.faults |= bits)
    }

    /// Latched fault bits.
    pub fn faults(&self, unit: u8) -> Result<u16, SimError> {
        self.with(unit, |d| d.faults)
    }

    /// The lines a screen shows.
    pub fn lines(&self, unit: u8) -> Result<Vec<DisplayLine>, SimError> {
        self.with(unit, |d| d.lines())
    }

    /// The lines as text.
    pub fn texts(&self, unit: u8) -> Result<Vec<String>, SimError> {
        Ok(self
            .lines(unit)?
            .into_iter()
            .map(|l| l.text.as_str().to_string())
            .collect())
    }

    /// Line writes a screen accepted since power-up.
    pub fn line_writes(&self, unit: u8) -> Result<u64, SimError> {
        self.with(unit, |d| d.line_writes)
    }

    /// When the screen last accepted a line write, and what it then showed: lets a
    /// benchmark time a call from the controller to the device.
    pub fn last_line_write(
        &self,
        unit: u8,
    ) -> Result<Option<(std::time::Instant, Vec<String>)>, SimError> {
        self.with(unit, |d| {
            d.last_write.map(|t| {
                (
                    t,
                    d.lines()
                        .into_iter()
                        .map(|l| l.text.as_str().to_string())
                        .collect(),
                )
            })
        })
    }

    /// Brightness register.
    pub fn brightness(&self, unit: u8) -> Result<u16, SimError> {
        self.with(unit, |d| d.brightness)
    }

    /// Requests seen on the bus (all units).
    pub fn requests(&self) -> u64 {
        lock(&self.shared.state).requests
    }

    /// Wait until `pred` holds for the bus (checked after every change), or `timeout`.
    pub async fn wait_for(&self, timeout: Duration, mut pred: impl FnMut(&SimBus) -> bool) -> bool {
        let mut rx = self.shared.changed.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if pred(self) {
                return true;
            }
            if tokio::time::timeout_at(deadline, rx.changed())
                .await
                .is_err()
            {
                return pred(self);
            }
        }
    }

    /// Draw a screen's LED matrix as a PNG: each dot a lit or dark LED in its line's
    /// colour, steady text as placed, scrolling text at its start. Missing glyphs are an
    /// error, never blank cells.
    pub fn render_png(&self, unit: u8, font: &BitmapFont) -> Result<Vec<u8>, SimError> {
        let (spec, lines) = self.with(unit, |d| (d.spec, d.lines()))?;
        render_matrix(&lines, spec.columns as usize * 16, font)
    }
}

impl Drop for Shared {
    /// The last handle to the bus gone: stop serving and remove the link.
    fn drop(&mut self) {
        if let Some(p) = lock(&self.plug).take() {
            p.task.abort();
            let _ = std::fs::remove_file(&p.link);
        }
    }
}

/// Pixels per LED dot in rendered PNGs.
pub const DOT_PX: usize = 6;

fn rgb(c: Colour) -> [u8; 3] {
    match c {
        Colour::Default | Colour::Red => [255, 40, 30],
        Colour::Green => [40, 230, 60],
        Colour::Amber => [255, 190, 0],
        Colour::White => [240, 240, 240],
    }
}

/// Render lines onto a `width`-dot-wide LED matrix, 16 dots per line, as a PNG.
pub fn render_matrix(
    lines: &[DisplayLine],
    width: usize,
    font: &BitmapFont,
) -> Result<Vec<u8>, SimError> {
    let height = lines.len().max(1) * 16;
    let (w, h) = (width * DOT_PX, height * DOT_PX);
    let mut px = vec![0u8; w * h * 3];
    for (i, p) in px.chunks_mut(3).enumerate() {
        let (x, y) = (i % w, i / w);
        // Unlit LEDs: dark grey discs on black.
        let (dx, dy) = (x % DOT_PX, y % DOT_PX);
        if (1..DOT_PX - 1).contains(&dx) && (1..DOT_PX - 1).contains(&dy) {
            p.copy_from_slice(&[38, 30, 30]);
        }
    }
    for (li, line) in lines.iter().enumerate() {
        let cols = font.columns(line.text.as_str())?;
        let start = if line.effect == Effect::Scroll || cols.len() >= width {
            0
        } else {
            match line.align {
                Align::Left => 0,
                Align::Centre => (width - cols.len()) / 2,
                Align::Right => width - cols.len(),
            }
        };
        let colour = rgb(line.colour);
        for (i, col) in cols.iter().enumerate() {
            let x = start + i;
            if x >= width {
                break;
            }
            for y in 0..16 {
                if col >> y & 1 == 1 {
                    let (x0, y0) = (x * DOT_PX, (li * 16 + y) * DOT_PX);
                    for yy in y0 + 1..y0 + DOT_PX - 1 {
                        for xx in x0 + 1..x0 + DOT_PX - 1 {
                            let o = (yy * w + xx) * 3;
                            px[o..o + 3].copy_from_slice(&colour);
                        }
                    }
                }
            }
        }
    }
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, w as u32, h as u32);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut wr = enc.write_header()?;
        wr.write_image_data(&px)?;
    }
    Ok(out)
}

/// Decode a PNG from [`render_matrix`] and count lit dots in a dot rectangle: lets
/// tests prove by pixels that text was drawn, not blank.
pub fn lit_dots(png_bytes: &[u8], x: usize, y: usize, w: usize, h: usize) -> usize {
    let decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
    let Ok(mut reader) = decoder.read_info() else {
        return 0;
    };
    let Some(size) = reader.output_buffer_size() else {
        return 0;
    };
    let mut buf = vec![0; size];
    let Ok(info) = reader.next_frame(&mut buf) else {
        return 0;
    };
    let width = info.width as usize;
    let mut n = 0;
    for dy in y..y + h {
        for dx in x..x + w {
            let o = ((dy * DOT_PX + DOT_PX / 2) * width + dx * DOT_PX + DOT_PX / 2) * 3;
            if buf
                .get(o..o + 3)
                .is_some_and(|p| p.iter().any(|&c| c > 100))
            {
                n += 1;
            }
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::window::rtu::{RtuMaster, display_requests};
    use crate::window::text::DisplayContent;

    #[test]
    fn a_device_answers_the_register_map() {
        let mut d = SimDevice::new(SimSpec::window_screen(3), 77);
        let id = match d.handle(Request::ReadInputRegisters(0, 12)).unwrap() {
            Response::ReadInputRegisters(r) => Identity::decode(&r).unwrap(),
            r => panic!("{r:?}"),
        };
        assert_eq!(id.kind, DeviceKind::WindowScreen);
        assert_eq!(id.lines, 2);
        let content = DisplayContent::from_lines(&["A001", "请到3号窗口"]).unwrap();
        for req in display_requests(&content, 2) {
            let r = match req {
                crate::window::rtu::Request::WriteMultiple { addr, values } => {
                    Request::WriteMultipleRegisters(addr, values.into())
                }
                crate::window::rtu::Request::WriteSingle { addr, value } => {
                    Request::WriteSingleRegister(addr, value)
                }
                _ => unreachable!(),
            };
            d.handle(r).unwrap();
        }
        assert_eq!(d.lines()[1].text.as_str(), "请到3号窗口");
        // Bad text: refused, old text kept, fault latched.
        let bad = Request::WriteMultipleRegisters(0x1000, vec![0, 0, 2, 0x8140].into());
        assert_eq!(d.handle(bad), Err(ExceptionCode::IllegalDataValue));
        assert_eq!(d.lines()[0].text.as_str(), "A001");
        assert_ne!(d.faults & fault::TEXT_REJECTED, 0);
        assert_eq!(
            d.handle(Request::ReadInputRegisters(0x30, 3)),
            Err(ExceptionCode::IllegalDataAddress)
        );
        // Found by the modbus_device fuzz target: a write of no registers was
        // accepted anywhere outside the line blocks.
        assert_eq!(
            d.handle(Request::WriteMultipleRegisters(0x5000, vec![].into())),
            Err(ExceptionCode::IllegalDataValue)
        );
        assert_eq!(
            d.handle(Request::ReadCoils(0, 1)),
            Err(ExceptionCode::IllegalFunction)
        );
        assert_eq!(
            d.handle(Request::WriteSingleRegister(0x1000, 1)),
            Err(ExceptionCode::IllegalDataAddress)
        );
        assert_eq!(
            d.handle(Request::ReadHoldingRegisters(0x1080, 1)),
            Err(ExceptionCode::IllegalDataAddress)
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn our_sync_master_drives_a_simulated_screen_over_a_pty() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("bus0");
        let bus = SimBus::new(&[SimSpec::window_screen(3), SimSpec::rating_keypad(4, 5)]);
        bus.plug(&link).unwrap();
        let link2 = link.clone();
        let content = DisplayContent::from_lines(&["A001", "请到3号窗口"]).unwrap();
        let c2 = content.clone();
        let status = tokio::task::spawn_blocking(move || {
            let port = serialport::new(link2.to_string_lossy(), 9600)
                .timeout(Duration::from_millis(500))
                .open()
                .unwrap();
            let mut m = crate::window::rtu::ModbusDisplay::new(RtuMaster::new(port), 3, 2);
            crate::window::CounterDisplay::show(&mut m, &c2).unwrap();
            let mut master = m.release();
            // Unit 9 is not on the bus: silence, then a timeout.
            assert!(master.read_input(9, 0, 1).is_err());
            master
                .read_input(4, regmap::STATUS_START, regmap::STATUS_LEN)
                .unwrap()
        })
        .await
        .unwrap();
        assert_eq!(bus.texts(3).unwrap(), vec!["A001", "请到3号窗口"]);
        let st = regmap::Status::decode(&status).unwrap();
        assert_ne!(st.faults & fault::RESTARTED, 0);
        assert!(st.presses.is_empty());
        let font = BitmapFont::find().unwrap();
        let png = bus.render_png(3, &font).unwrap();
        assert!(lit_dots(&png, 0, 0, 32, 16) > 40, "A001 drawn");
        assert!(lit_dots(&png, 0, 16, 96, 16) > 150, "请到3号窗口 drawn");
        assert_eq!(lit_dots(&png, 100, 16, 28, 16), 0, "nothing past the text");
        bus.unplug();
        assert!(!link.exists());
    }
}
