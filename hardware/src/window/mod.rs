//! Window devices: the LED screen over each window, the hall board, the staff's caller
//! keypad and the citizen's rating keypad.
//!
//! The hall-device profile (our Modbus RTU register map, `docs/protocol.md`) is the main
//! way these devices talk; off-the-shelf vendor screens and DIY MAX7219 boards hang off
//! the same [`CounterDisplay`] trait, and keys also arrive from GPIO buttons and USB
//! keypads. Everything except [`bus`] and [`sim`] is synchronous and I/O-trait based.
//!
//! # Layout
//! - [`text`]: what a screen is asked to show — GB2312-checked lines with colour, blink
//!   or scroll, and alignment ([`DisplayContent`]).
//! - [`regmap`]: the register map as named constants, line blocks to registers and back,
//!   the status block and key queue decoder, and [`regmap::KeyTracker`] that delivers
//!   every press exactly once.
//! - [`rtu`]: a small synchronous Modbus RTU master over `Read + Write` (CRC, frames) and
//!   the Modbus implementation of [`CounterDisplay`].
//! - [`vendor_frame`]: the common write-only vendor screen frame.
//! - [`font`] and [`max7219`]: a 16×16 bitmap font (GNU Unifont, installed by Debian's
//!   `unifont` package) and a MAX7219 8×8 module chain on an `embedded-hal` SPI device,
//!   with scrolling.
//! - [`keys`]: key codes, the rating pad mapping (5 or 3 keys, reasons) and the caller
//!   keypad's digit entry.
//! - [`gpio`]: debounced buttons on any `embedded-hal` `InputPin`, with a kernel GPIO
//!   character device backend (and `rppal` behind the `rpi` feature).
//! - [`usb_hid`]: USB HID keypads through evdev (feature `usb-hid`).
//! - [`bus`]: the async task that owns one RS-485 bus (tokio-modbus over tokio-serial).
//! - [`sim`]: a simulated bus of Modbus devices on a pseudo-terminal, rendering what each
//!   screen shows.
//! - [`vendor_sim`]: a simulated line of write-only vendor screens on a pseudo-terminal.

pub mod bus;
pub mod font;
pub mod gpio;
pub mod keys;
pub mod max7219;
pub mod pty;
pub mod regmap;
pub mod rtu;
pub mod sim;
pub mod text;
#[cfg(feature = "usb-hid")]
pub mod usb_hid;
pub mod vendor_frame;
pub mod vendor_sim;

pub use text::{Align, Colour, DisplayContent, DisplayLine, Effect, Gb2312Text, TextError};

/// A screen that shows lines of GB2312 text: one implementation per kind of hardware.
///
/// The daemon decides *what* a window or the hall board shows; an implementation only
/// knows how its hardware wants it. `show` replaces the whole content, so a caller that
/// redraws after a power cut just calls it again with the same content.
pub trait CounterDisplay {
    /// Why the hardware refused or could not be reached.
    type Error: std::error::Error;

    /// Replace what the screen shows with `content`.
    fn show(&mut self, content: &DisplayContent) -> Result<(), Self::Error>;
}
