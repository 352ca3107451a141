//! Device drivers, protocol codecs and device simulators for hallq's ticket printer,
//! window devices (LED screens, hall board, caller and rating keypads) and the kiosk's
//! ID card reader.
//!
//! Everything here is synchronous `std` code: the daemon runs the printer in the one
//! task or thread that owns it, and the encoders are pure functions to bytes so they
//! test without any device.
//!
//! # Layout
//! - [`escpos`]: the ESC/POS encoder — opcodes as named constants, one [`escpos::Command`]
//!   enum with one encoder, GBK text that refuses what the printer cannot print, and a
//!   writer generic over `std::io::Write`.
//! - [`layout`]: column-aware text wrapping (a CJK character is two columns) and the two
//!   printed documents: the queue ticket (shaped by a validated [`layout::TicketTemplate`])
//!   and the 一次性告知 material checklist.
//! - [`status`]: `DLE EOT` real-time status requests, a strict parser of the replies into a
//!   [`status::PrinterStatus`], and a status query with a timeout over any `Read + Write`.
//! - [`transport`]: serial, USB printer class (`/dev/usb/lp0`) and raw TCP (port 9100)
//!   transports, and a reconnect helper whose backoff computes delays without sleeping.
//! - [`virtual_printer`]: a simulator that decodes our ESC/POS into a document model, answers
//!   status queries from a configurable state, serves over TCP or a pseudo-terminal, and
//!   renders the paper as text or as a PNG drawn with a real CJK font.
//! - [`window`]: the window devices: the hall-device Modbus RTU register map
//!   (`docs/protocol.md`), the `CounterDisplay` trait with Modbus, vendor-frame and
//!   MAX7219 implementations, keypads (Modbus, GPIO, USB HID), the async task that owns
//!   an RS-485 bus, and a simulated bus on a pseudo-terminal. Unlike the rest of this
//!   crate, the bus task and the simulator run on tokio.
//!
//! - [`idcard`]: the resident ID card reader: the SAM module's frames, the card's text
//!   block, the GB 11643 citizen number with its check character and masks, a driver
//!   over any `Read + Write` port, and a simulated reader on a pseudo-terminal.
//!
//! # A ticket, end to end
//! ```
//! use hallq_hardware::escpos::PaperWidth;
//! use hallq_hardware::layout::{TicketPrint, TicketTemplate};
//! use hallq_hardware::virtual_printer::VirtualPrinter;
//!
//! let template = TicketTemplate::default().validate(PaperWidth::Mm58)?;
//! let ticket = TicketPrint {
//!     hall_name: "某某县政务服务中心".into(),
//!     number: "A012".into(),
//!     service_name: "不动产登记".into(),
//!     waiting_ahead: 5,
//!     windows: vec!["3号窗口".into()],
//!     issued_at: "2026-11-23 09:30".into(),
//!     ticket_id: "T-A012".into(),
//!     page_url: None,
//!     priority: None,
//! };
//! let bytes = template.render(&ticket)?;
//! let (paper, _stats) = VirtualPrinter::decode(&bytes);
//! assert!(paper.runs().any(|r| r.text == "A012"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod escpos;
pub mod idcard;
pub mod layout;
pub mod status;
pub mod transport;
pub mod virtual_printer;
pub mod window;
