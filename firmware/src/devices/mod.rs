//! Devices the controller drives, each owned by one task or thread, and the health
//! registry they all report to. A device failing never undoes what the store
//! committed; it raises a `device_fault` event and the kiosk or page says so.
//!
//! - [`health`]: the registry and the `device_fault` / `device_recovered` events.
//! - [`printer`]: a thread per ticket printer, its queue and status polling, and which
//!   printer serves which kiosk.
//! - [`tickets`]: turning a committed ticket into the printer's ticket layout.
//! - [`window`]: LED screens, hall board, caller and rating keypads: their settings,
//!   the pure screen, rating and caller logic, the one controller that drives every kind
//!   of window device, and one task per kind of wiring (Modbus and vendor-frame buses,
//!   MAX7219 matrices on SPI, GPIO and USB keypads).
//! - [`id_reader`]: the resident ID card readers at the kiosks: one thread per reader,
//!   and the card on each kiosk's reader, hashed and masked, in memory only.
//! - [`voice`]: call announcements and kiosk prompts through the `hallq-voice` announcer.

pub mod health;
pub mod id_reader;
pub mod printer;
pub mod tickets;
pub mod voice;
pub mod window;
