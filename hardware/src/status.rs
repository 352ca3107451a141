//! Printer status: `DLE EOT n` requests and their one-byte replies.
//!
//! The kiosk must not hand out a ticket it cannot print, so before (and after) a
//! print job the printer task asks the four real-time statuses and folds them into
//! a [`PrinterStatus`]. Every reply carries fixed bits (bit 1 and bit 4 on, bits 0
//! and 7 off, per the Epson ESC/POS reference); a byte that breaks them is not a
//! status reply (line noise, an ASB message, a wrong baud rate) and is reported as
//! [`StatusError::BadReply`] instead of being guessed at.

use std::io::{ErrorKind, Read, Write};
use std::time::{Duration, Instant};

use thiserror::Error;

use crate::escpos::{Command, StatusKind};

/// Bits that must be 1 in every `DLE EOT` reply.
pub const FIXED_ON: u8 = 0b0001_0010;
/// Bits that must be 0 in every `DLE EOT` reply.
pub const FIXED_OFF: u8 = 0b1000_0001;

/// n=1 bit 2: drawer kick-out connector pin 3 is high.
pub const PRINTER_DRAWER_PIN3: u8 = 1 << 2;
/// n=1 bit 3: printer is offline.
pub const PRINTER_OFFLINE: u8 = 1 << 3;
/// n=1 bit 5: waiting for online recovery.
pub const PRINTER_WAITING_RECOVERY: u8 = 1 << 5;
/// n=1 bit 6: paper being fed by the feed button (some models).
pub const PRINTER_FEED_BUTTON: u8 = 1 << 6;

/// n=2 bit 2: cover open.
pub const OFFLINE_COVER_OPEN: u8 = 1 << 2;
/// n=2 bit 3: paper being fed by the feed button.
pub const OFFLINE_FEED_BUTTON: u8 = 1 << 3;
/// n=2 bit 5: printing stopped at paper end.
pub const OFFLINE_PAPER_END_STOP: u8 = 1 << 5;
/// n=2 bit 6: an error occurred.
pub const OFFLINE_ERROR: u8 = 1 << 6;

/// n=3 bit 2: recoverable (mechanical) error.
pub const ERROR_RECOVERABLE: u8 = 1 << 2;
/// n=3 bit 3: autocutter error.
pub const ERROR_CUTTER: u8 = 1 << 3;
/// n=3 bit 5: unrecoverable error.
pub const ERROR_UNRECOVERABLE: u8 = 1 << 5;
/// n=3 bit 6: automatically recoverable error (e.g. head overheated).
pub const ERROR_AUTO_RECOVERABLE: u8 = 1 << 6;

/// n=4 bits 2,3: roll paper near end.
pub const PAPER_NEAR_END: u8 = 0b0000_1100;
/// n=4 bits 5,6: roll paper not present.
pub const PAPER_OUT: u8 = 0b0110_0000;

/// Why a status could not be had.
#[derive(Debug, Error)]
pub enum StatusError {
    /// The reply byte breaks the fixed bits of a `DLE EOT` reply.
    #[error("byte 0x{byte:02X} is not a valid DLE EOT {} reply (fixed bits wrong)", kind.code())]
    BadReply {
        /// Which request it answered.
        kind: StatusKind,
        /// The byte received.
        byte: u8,
    },
    /// No reply within the deadline: the printer is off, unplugged or busy.
    #[error("printer did not answer DLE EOT {} within {timeout:?}", kind.code())]
    Timeout {
        /// Which request went unanswered.
        kind: StatusKind,
        /// The deadline used.
        timeout: Duration,
    },
    /// The transport reported end of stream.
    #[error("printer connection closed")]
    Closed,
    /// The transport failed.
    #[error("printer I/O failed: {0}")]
    Io(#[from] std::io::Error),
}

/// One decoded reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusReply {
    /// n = 1.
    Printer {
        /// Bit 3 clear.
        online: bool,
        /// Bit 2.
        drawer_pin3_high: bool,
        /// Bit 5.
        waiting_recovery: bool,
        /// Bit 6 (only some models report it here).
        feed_button: bool,
    },
    /// n = 2.
    Offline {
        /// Bit 2.
        cover_open: bool,
        /// Bit 3.
        feed_button: bool,
        /// Bit 5.
        paper_end_stop: bool,
        /// Bit 6.
        error: bool,
    },
    /// n = 3.
    Error {
        /// Bit 2.
        recoverable: bool,
        /// Bit 3.
        cutter: bool,
        /// Bit 5.
        unrecoverable: bool,
        /// Bit 6.
        auto_recoverable: bool,
    },
    /// n = 4.
    PaperSensor {
        /// Bits 2/3.
        near_end: bool,
        /// Bits 5/6.
        paper_out: bool,
    },
}

/// Decode one reply byte for request `kind`. Fails only on broken fixed bits.
pub fn parse_reply(kind: StatusKind, byte: u8) -> Result<StatusReply, StatusError> {
    if byte & FIXED_ON != FIXED_ON || byte & FIXED_OFF != 0 {
        return Err(StatusError::BadReply { kind, byte });
    }
    let bit = |m: u8| byte & m != 0;
    Ok(match kind {
        StatusKind::Printer => StatusReply::Printer {
            online: !bit(PRINTER_OFFLINE),
            drawer_pin3_high: bit(PRINTER_DRAWER_PIN3),
            waiting_recovery: bit(PRINTER_WAITING_RECOVERY),
            feed_button: bit(PRINTER_FEED_BUTTON),
        },
        StatusKind::Offline => StatusReply::Offline {
            cover_open: bit(OFFLINE_COVER_OPEN),
            feed_button: bit(OFFLINE_FEED_BUTTON),
            paper_end_stop: bit(OFFLINE_PAPER_END_STOP),
            error: bit(OFFLINE_ERROR),
        },
        StatusKind::Error => StatusReply::Error {
            recoverable: bit(ERROR_RECOVERABLE),
            cutter: bit(ERROR_CUTTER),
            unrecoverable: bit(ERROR_UNRECOVERABLE),
            auto_recoverable: bit(ERROR_AUTO_RECOVERABLE),
        },
        StatusKind::PaperSensor => StatusReply::PaperSensor {
            near_end: bit(PAPER_NEAR_END),
            paper_out: bit(PAPER_OUT),
        },
    })
}

/// The printer's condition as the daemon needs it: can a ticket be printed now,
/// and if not, what should the hall staff be told (警告: 缺纸, 纸仓盖打开, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PrinterStatus {
    /// Online (n=1 bit 3 clear).
    pub online: bool,
    /// Cover open (n=2 bit 2).
    pub cover_open: bool,
    /// Roll near its end: warn staff to change it soon (n=4 bits 2,3).
    pub paper_near_end: bool,
    /// No paper (n=4 bits 5,6, or n=2 bit 5 paper-end stop).
    pub paper_out: bool,
    /// Autocutter error (n=3 bit 3).
    pub cutter_error: bool,
    /// Recoverable error (n=3 bit 2 or bit 6).
    pub recoverable_error: bool,
    /// Unrecoverable error: needs service (n=3 bit 5).
    pub unrecoverable_error: bool,
    /// Paper being fed by the feed button (n=2 bit 3).
    pub feed_button: bool,
}

impl PrinterStatus {
    /// Fold the four replies (in [`StatusKind::ALL`] order) into one status.
    pub fn from_replies(replies: [u8; 4]) -> Result<PrinterStatus, StatusError> {
        let mut s = PrinterStatus::default();
        for (kind, byte) in StatusKind::ALL.into_iter().zip(replies) {
            s.apply(parse_reply(kind, byte)?);
        }
        Ok(s)
    }

    /// Merge one decoded reply.
    pub fn apply(&mut self, reply: StatusReply) {
        match reply {
            StatusReply::Printer {
                online,
                feed_button,
                ..
            } => {
                self.online = online;
                self.feed_button |= feed_button;
            }
            StatusReply::Offline {
                cover_open,
                feed_button,
                paper_end_stop,
                ..
            } => {
                self.cover_open = cover_open;
                self.feed_button |= feed_button;
                self.paper_out |= paper_end_stop;
            }
            StatusReply::Error {
                recoverable,
                cutter,
                unrecoverable,
                auto_recoverable,
            } => {
                self.cutter_error = cutter;
                self.recoverable_error = recoverable || auto_recoverable;
                self.unrecoverable_error = unrecoverable;
            }
            StatusReply::PaperSensor {
                near_end,
                paper_out,
            } => {
                self.paper_near_end = near_end;
                self.paper_out |= paper_out;
            }
        }
    }

    /// Whether a ticket can be printed now.
    pub fn ready(&self) -> bool {
        self.online
            && !self.cover_open
            && !self.paper_out
            && !self.cutter_error
            && !self.recoverable_error
            && !self.unrecoverable_error
    }
}

/// Ask one status and wait for its byte until `timeout` has passed.
///
/// Works over any `Read + Write`. The transport's own read timeout should be set
/// (the transports in [`crate::transport`] do); reads that time out or would block
/// are retried until the deadline, then [`StatusError::Timeout`].
pub fn query_one<T: Read + Write>(
    io: &mut T,
    kind: StatusKind,
    timeout: Duration,
) -> Result<StatusReply, StatusError> {
    let mut req = Vec::with_capacity(3);
    // Cannot fail: status commands have no parameters to check.
    let _ = Command::Status(kind).encode(&mut req);
    io.write_all(&req)?;
    io.flush()?;
    let deadline = Instant::now() + timeout;
    let mut byte = [0u8; 1];
    loop {
        match io.read(&mut byte) {
            Ok(1) => return parse_reply(kind, byte[0]),
            Ok(_) => return Err(StatusError::Closed),
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::TimedOut | ErrorKind::WouldBlock | ErrorKind::Interrupted
                ) =>
            {
                if e.kind() == ErrorKind::WouldBlock {
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
            Err(e) => return Err(StatusError::Io(e)),
        }
        if Instant::now() >= deadline {
            return Err(StatusError::Timeout { kind, timeout });
        }
    }
}

/// Ask all four statuses, each with `timeout`, and fold them.
pub fn query_status<T: Read + Write>(
    io: &mut T,
    timeout: Duration,
) -> Result<PrinterStatus, StatusError> {
    let mut s = PrinterStatus::default();
    for kind in StatusKind::ALL {
        s.apply(query_one(io, kind, timeout)?);
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    #[test]
    fn a_normal_printer_answers_0x12_four_times() {
        let s = PrinterStatus::from_replies([0x12, 0x12, 0x12, 0x12]).unwrap();
        assert!(s.online);
        assert!(s.ready());
        assert_eq!(
            s,
            PrinterStatus {
                online: true,
                ..Default::default()
            }
        );
    }

    #[test]
    fn paper_out_is_read_from_the_paper_sensor() {
        // n=1 offline (0x1A), n=2 paper-end stop (0x32), n=3 clear, n=4 near end + out (0x7E).
        let s = PrinterStatus::from_replies([0x1A, 0x32, 0x12, 0x7E]).unwrap();
        assert!(!s.online);
        assert!(s.paper_out);
        assert!(s.paper_near_end);
        assert!(!s.ready());
    }

    #[test]
    fn cover_open_and_errors() {
        let s = PrinterStatus::from_replies([0x1A, 0x16 | 0x40, 0x12 | 0x08 | 0x20, 0x12]).unwrap();
        assert!(s.cover_open);
        assert!(s.cutter_error);
        assert!(s.unrecoverable_error);
        assert!(!s.recoverable_error);
        let s = PrinterStatus::from_replies([0x12, 0x1A, 0x52, 0x12]).unwrap();
        assert!(s.feed_button);
        assert!(s.recoverable_error);
    }

    #[test]
    fn a_reply_breaking_fixed_bits_is_a_decode_error() {
        for bad in [0x00, 0x10, 0x02, 0x13, 0x92, 0xFF] {
            assert!(
                matches!(
                    parse_reply(StatusKind::Printer, bad),
                    Err(StatusError::BadReply { byte, .. }) if byte == bad
                ),
                "0x{bad:02X}"
            );
        }
    }

    /// A transport whose reads come from a script and whose writes are recorded.
    struct Script {
        read: Cursor<Vec<u8>>,
        written: Vec<u8>,
    }
    impl Read for Script {
        fn read(&mut self, b: &mut [u8]) -> std::io::Result<usize> {
            self.read.read(b)
        }
    }
    impl Write for Script {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.written.extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn query_status_sends_four_requests_and_reads_four_bytes() {
        let mut io = Script {
            read: Cursor::new(vec![0x12, 0x12, 0x12, 0x1E]),
            written: vec![],
        };
        let s = query_status(&mut io, Duration::from_millis(100)).unwrap();
        assert!(s.paper_near_end);
        assert!(!s.paper_out);
        assert_eq!(
            io.written,
            [
                0x10, 0x04, 0x01, 0x10, 0x04, 0x02, 0x10, 0x04, 0x03, 0x10, 0x04, 0x04
            ]
        );
    }

    struct Silent;
    impl Read for Silent {
        fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
            std::thread::sleep(Duration::from_millis(5));
            Err(ErrorKind::TimedOut.into())
        }
    }
    impl Write for Silent {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_silent_printer_is_a_timeout() {
        let r = query_status(&mut Silent, Duration::from_millis(20));
        assert!(matches!(
            r,
            Err(StatusError::Timeout {
                kind: StatusKind::Printer,
                ..
            })
        ));
    }

    #[test]
    fn a_closed_transport_is_reported() {
        let mut io = Script {
            read: Cursor::new(vec![]),
            written: vec![],
        };
        assert!(matches!(
            query_status(&mut io, Duration::from_millis(10)),
            Err(StatusError::Closed)
        ));
    }

    proptest::proptest! {
        #[test]
        fn parser_never_panics(b in proptest::prelude::any::<u8>(), k in 1u8..=4, r in proptest::prelude::any::<[u8; 4]>()) {
            let kind = StatusKind::from_code(k).unwrap();
            let ok = parse_reply(kind, b).is_ok();
            proptest::prop_assert_eq!(ok, b & 0x93 == 0x12);
            let _ = PrinterStatus::from_replies(r);
        }
    }
}
