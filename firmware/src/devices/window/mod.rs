//! The window devices in the daemon: LED screens over the windows, the hall board,
//! caller keypads and rating keypads — on RS-485 buses (the hall-device Modbus profile of
//! `docs/protocol.md`, or write-only vendor-frame screens), on SPI (MAX7219 module
//! chains), on GPIO buttons and on USB keypads.
//!
//! Every device, whatever its wiring, is reached through a [`DeviceLink`]: the one task
//! (or thread) that owns its port or device file, takes "show this" and reports
//! [`LinkEvent`]s (keys, online, offline, faults). One [`controller`] drives all links
//! the same way, reading the setup in force from the hall core:
//!
//! - a call shows the number on the window's screen and "请 A001 号到 3 号窗口办理" on
//!   the hall board, above the latest calls and a scrolling notice; a pause, or a window
//!   nobody is signed in at, shows "暂停服务";
//! - finish arms the window's rating keypad for `rating_armed_secs` ([`rating`]): a
//!   press records a rating for that ticket through the engine's `Rate` command (a bad
//!   rating from a pad without reason keys is stored with its reason pending; a reason
//!   key, or a second press within the engine's replace window, replaces it); an
//!   unarmed pad records nothing, so no rating is ever invented. The armed state is
//!   derived from the engine's state at start, so a restart between finish and the
//!   press loses nothing;
//! - caller keypad presses become the same window commands as the API's ([`caller`]),
//!   as the staff member signed in at that window;
//! - devices going offline or raising faults are reported to the health registry, which
//!   turns changes into `device_fault` / `device_recovered` events.
//!
//! # Layout
//! - [`config`], [`keypad_config`], [`checks`]: the settings sections and their checks.
//! - [`screens`]: what the screens show, pure functions of the queue's state.
//! - [`rating`]: rating pad arming, pure functions of the time.
//! - [`caller`]: caller key → window command.
//! - [`link`]: the controller's handle to a port-owning task, and the reopen loop.
//! - [`controller`]: the one controller.
//! - [`modbus`], [`vendor`], [`matrix`], [`keypad`]: one task per kind of wiring.

pub mod caller;
pub mod checks;
pub mod config;
pub mod controller;
pub mod keypad;
pub mod keypad_config;
pub mod link;
pub mod matrix;
pub mod modbus;
pub mod rating;
pub mod screens;
pub mod vendor;

#[cfg(test)]
mod tests;

pub use config::{BusProtocol, WindowBusConfig, WindowDeviceConfig, WindowDevicesConfig};
pub use controller::{WindowBuses, drive};
pub use link::{DeviceLink, LinkEvent, LinkSetup, Placement};

use crate::core::HallCore;
use crate::devices::health::Devices;

/// Start every configured window device (`[[bus]]`, `[[led_matrix]]`, `[[gpio_keypad]]`,
/// `[[usb_keypad]]`) and the controller that drives them under the setup in force.
pub async fn start(
    sections: &WindowDevicesConfig,
    hall: HallCore,
    devices: Devices,
) -> WindowBuses {
    let mut links = Vec::new();
    for (i, b) in sections.buses.iter().enumerate() {
        let name = b.name(i);
        links.push(match b.protocol {
            BusProtocol::Modbus => modbus::modbus_link(&name, b),
            BusProtocol::Vendor => vendor::vendor_link(&name, b),
        });
    }
    links.extend(matrix::start(&sections.led_matrices));
    links.extend(keypad::start(&sections.gpio_keypads, &sections.usb_keypads));
    drive(links, sections.notice(), sections.show_staff, hall, devices).await
}
