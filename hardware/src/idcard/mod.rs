//! The resident ID card reader (居民身份证阅读器): the SAM module's serial protocol, the
//! card's text block, the GB 11643 citizen number, and a simulated reader.
//!
//! Readers sold in China (神思, 华视, 新中新 and the rest) carry the same security module
//! (SAM) and speak the same framed protocol over a UART or a USB-serial bridge, 115200
//! 8N1 by default. The controller asks, the reader answers; every frame is
//!
//! ```text
//! request: AA AA AA 96 69 | LEN(2, big-endian) | CMD PARA | data… | XOR
//! answer:  AA AA AA 96 69 | LEN(2, big-endian) | SW1 SW2 SW3 | data… | XOR
//! ```
//!
//! where LEN counts everything after itself (checksum included) and XOR is the
//! exclusive-or of every byte from LEN to the last data byte.
//!
//! # Layout
//! - [`frame`]: the frame codec: commands and status codes as named constants, one
//!   encoder for each direction, and a stream parser that resynchronises on garbage and
//!   counts what it skipped.
//! - [`text`]: the 256-byte text block of the card (UCS-2LE fixed fields) as a
//!   [`text::CardText`], decoded and encoded.
//! - [`number`]: GB 11643 (the 18-character citizen number): the check digit, the birth
//!   date, the age on a day, and the masks screens and paper show (`110***********123X`,
//!   `王*明`). Pure and dependency-free, so the kiosk validates typed numbers with it.
//! - [`reader`]: the driver: one command and its answer over any `Read + Write` port,
//!   with a timeout, and a card read as the three commands a reader wants.
//! - [`sim`]: a simulated reader that answers the protocol on a byte stream (a
//!   pseudo-terminal), with cards a test places and removes.
//!
//! Everything here is pure or plain blocking `std` I/O; the daemon runs one reader per
//! thread.

pub mod frame;
pub mod number;
pub mod reader;
pub mod sim;
pub mod text;
