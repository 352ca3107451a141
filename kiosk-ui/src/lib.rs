//! hallq's touch kiosk (触摸屏查询机): a citizen takes a ticket, reads a service guide and
//! prints its material checklist, searches by pinyin initials or item code, and checks an
//! appointment in — in 简体中文, 繁體中文 or English, with an elder mode (关怀模式) of
//! larger, higher-contrast text and one step at a time. It is a client of the controller's
//! local API; several kiosks can share one controller.
//!
//! # Layout
//! - `ui/*.slint`: the screens. They talk to Rust only through the `Kiosk` global
//!   (properties and callbacks) and style themselves from the `Theme` global.
//! - `lang/<lang>/LC_MESSAGES/hallq-kiosk.po`: zh_CN and zh_TW catalogues, bundled into
//!   the binary at build time (the source strings are English).
//! - [`catalogue`]: the API's data and the pure logic on it (language fallback, search,
//!   guide text).
//! - [`client`]: the blocking HTTP client with timeouts, and the live event stream.
//! - [`kiosk`]: callbacks, worker threads, refresh, idle return.
//! - [`mobile`]: the mobile number typed for the near-turn text message (personal data:
//!   never logged, cleared when the citizen leaves, shown afterwards only masked).
//! - [`fonts`]: loading a CJK font so that Chinese renders on a fresh machine.
//! - [`headless`]: a display-less platform on the software renderer, for tests,
//!   screenshots and the benchmark.

slint::include_modules!();

pub mod catalogue;
pub mod client;
pub mod fonts;
pub mod headless;
pub mod kiosk;
pub mod mobile;

pub use kiosk::{KioskLogic, Settings, attach};
