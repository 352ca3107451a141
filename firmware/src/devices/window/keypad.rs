//! Keypads that are not on a bus: GPIO push buttons (`[[gpio_keypad]]`), one thread per
//! keypad sampling its lines every [`GPIO_SAMPLE`] through the kernel GPIO character
//! device, debounced; and USB HID keypads (`[[usb_keypad]]`), one thread per keypad
//! blocked on evdev. The threads are generic over [`KeySource`], so the daemon's code is
//! tested with in-memory buttons.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use embedded_hal::digital::InputPin;
use hallq_hardware::window::gpio::GpioKeypad;
use hallq_hardware::window::keys::{Key, RatingLevel};
use hallq_hardware::window::regmap::DeviceKind;
use tokio::sync::mpsc;

use super::config::rating_key_map;
use super::keypad_config::{Active, GpioKeypadConfig, UsbKeypadConfig};
use super::link::{DeviceLink, LinkEvent, LinkSetup, Placement, Reopen};

/// How often GPIO buttons are sampled.
pub const GPIO_SAMPLE: Duration = Duration::from_millis(5);

/// Start the thread of every `[[gpio_keypad]]` and `[[usb_keypad]]`.
pub fn start(gpio: &[GpioKeypadConfig], usb: &[UsbKeypadConfig]) -> Vec<LinkSetup> {
    let mut out = Vec::new();
    for (i, g) in gpio.iter().enumerate() {
        let name = g.name(i);
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
            key_place(g.kind, g.window, &g.levels, g.keys, g.rating_armed_secs),
            open,
        ));
    }
    for (i, u) in usb.iter().enumerate() {
        let name = u.name(i);
        let place = key_place(u.kind, u.window, &u.levels, u.keys, u.rating_armed_secs);
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

/// Where a keypad sits and what its keys mean.
pub fn key_place(
    kind: DeviceKind,
    window: Option<u32>,
    levels: &Option<Vec<RatingLevel>>,
    keys: Option<u8>,
    armed_secs: u64,
) -> Placement {
    Placement {
        unit: 0,
        kind,
        window,
        keymap: (kind == DeviceKind::RatingKeypad)
            .then(|| rating_key_map(levels, keys, &[]).ok())
            .flatten(),
        armed_for: Duration::from_secs(armed_secs.max(1)),
        lines: None,
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
            let mut reopen = Reopen::default();
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
        link: DeviceLink::new(
            name,
            false,
            |_, _| true,
            move || stop.store(true, Ordering::Relaxed),
        ),
        events: erx,
        devices: vec![place],
    }
}
