//! MAX7219 LED matrices on SPI (`[[led_matrix]]`): one thread per chain, which also
//! advances scrolling and blinking every [`TICK`]. SPI calls block, so the thread is
//! its own, never the tokio runtime's; it is generic over [`Panel`], so the daemon's
//! code is tested with an in-memory chain.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};

use embedded_hal::spi::SpiDevice;
use hallq_hardware::window::font::BitmapFont;
use hallq_hardware::window::max7219::{Geometry, Max7219Display};
use hallq_hardware::window::regmap::DeviceKind;
use hallq_hardware::window::{CounterDisplay, DisplayContent};
use tokio::sync::mpsc;

use super::config::{LedMatrixConfig, default_armed};
use super::link::{DeviceLink, LinkSetup, Placement, Reopen};

/// How often a LED matrix advances its scrolling and blinking (30 dots a second).
pub const TICK: Duration = Duration::from_millis(33);

/// Start the thread of every `[[led_matrix]]`.
pub fn start(matrices: &[LedMatrixConfig]) -> Vec<LinkSetup> {
    let mut out = Vec::new();
    for (i, m) in matrices.iter().enumerate() {
        let name = m.name(i);
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
    out
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
            let mut reopen = Reopen::default();
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
        link: DeviceLink::new(
            name,
            false,
            move |_, c| tx.send(c).is_ok(),
            move || stop.store(true, Ordering::Relaxed),
        ),
        events: erx,
        devices: vec![place],
    }
}
