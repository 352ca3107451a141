//! Devices the controller drives, each owned by one task or thread, and the health
//! registry they all report to. A device failing never undoes what the store
//! committed; it raises a `device_fault` event and the kiosk or page says so.
//!
//! - [`health`]: the registry and the `device_fault` / `device_recovered` events.
//! - [`printer`]: the ticket printer thread, its queue and status polling.
//! - [`tickets`]: turning a committed ticket into the printer's ticket layout.
//! - [`window_bus`]: LED screens, hall board, caller and rating keypads: the `[[bus]]`
//!   settings and the one controller that drives every kind of window device.
//! - [`window_links`]: the tasks owning vendor-frame screen ports, MAX7219 matrices on SPI,
//!   GPIO button keypads and USB keypads.
//! - [`voice`]: call announcements and kiosk prompts through the `hallq-voice` announcer.

pub mod health;
pub mod printer;
pub mod tickets;
pub mod voice;
pub mod window_bus;
pub mod window_links;
