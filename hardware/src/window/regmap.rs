//! The hall-device register map of `docs/protocol.md`, as code: addresses and bits as
//! named constants, display lines to registers and back, the status block decoder, the
//! device-side key queue, and the host-side [`KeyTracker`] that turns repeated reads of
//! the queue into each press exactly once.
//!
//! Pure functions on `u16` slices: the async bus, the synchronous RTU master and the
//! simulator all share them, so they cannot disagree about the map.

use thiserror::Error;

use super::text::{Align, Colour, DisplayLine, Effect, Gb2312Text};

/// Input register: "HQ", proves the profile.
pub const MAGIC: u16 = 0x0000;
/// The value of [`MAGIC`].
pub const MAGIC_VALUE: u16 = 0x4851;
/// Input register: profile version.
pub const PROFILE_VERSION: u16 = 0x0001;
/// The profile version this code speaks.
pub const PROFILE_VERSION_VALUE: u16 = 1;
/// Input register: device kind.
pub const KIND: u16 = 0x0002;
/// Number of identity registers (0x0000–0x000B).
pub const IDENTITY_LEN: u16 = 12;

/// Input register: latched fault flags (first of the status block).
pub const FAULTS: u16 = 0x0010;
/// Input register: changes at every power-up.
pub const BOOT_ID: u16 = 0x0011;
/// Input register: newest press sequence number.
pub const KEY_LAST_SEQ: u16 = 0x0020;
/// Input register: presses held.
pub const KEY_PENDING: u16 = 0x0021;
/// Input register: first key slot (seq, code pairs).
pub const KEY_SLOTS: u16 = 0x0022;
/// Presses a device holds at most.
pub const KEY_QUEUE_LEN: usize = 8;
/// Start of the status block read in one request.
pub const STATUS_START: u16 = FAULTS;
/// Length of the status block (0x0010–0x0031).
pub const STATUS_LEN: u16 = 0x22;

/// Holding register: key acknowledgement.
pub const KEY_ACK: u16 = 0x0100;
/// Holding register: write 1 bits to clear faults.
pub const FAULT_CLEAR: u16 = 0x0101;
/// Holding register: brightness 0–15.
pub const BRIGHTNESS: u16 = 0x0102;
/// Number of settings registers.
pub const SETTINGS_LEN: u16 = 3;

/// Holding register: start of line 0's block.
pub const LINE_BASE: u16 = 0x1000;
/// Distance between line blocks.
pub const LINE_STRIDE: u16 = 0x40;
/// Registers in one line block (colour, mode, length, 56 text).
pub const LINE_BLOCK_LEN: u16 = 59;
/// Most text bytes in one line.
pub const LINE_MAX_BYTES: usize = 112;
/// Most lines a device may have.
pub const MAX_LINES: u16 = 8;

/// Fault bits of [`FAULTS`].
pub mod fault {
    /// LED module or driver failure.
    pub const DISPLAY: u16 = 1 << 0;
    /// A key held for more than 10 s.
    pub const KEY_STUCK: u16 = 1 << 1;
    /// A press was dropped because the queue was full.
    pub const KEY_OVERFLOW: u16 = 1 << 2;
    /// The last line write was refused.
    pub const TEXT_REJECTED: u16 = 1 << 3;
    /// Brown-out.
    pub const SUPPLY: u16 = 1 << 4;
    /// Too hot.
    pub const OVER_TEMP: u16 = 1 << 5;
    /// Powered up or reset.
    pub const RESTARTED: u16 = 1 << 15;
    /// Bits that are faults worth reporting (RESTARTED is information, not a fault).
    pub const REPORTABLE: u16 =
        DISPLAY | KEY_STUCK | KEY_OVERFLOW | TEXT_REJECTED | SUPPLY | OVER_TEMP;

    /// Short names of the set bits, for fault events and logs.
    pub fn names(bits: u16) -> Vec<&'static str> {
        [
            (DISPLAY, "display"),
            (KEY_STUCK, "key_stuck"),
            (KEY_OVERFLOW, "key_overflow"),
            (TEXT_REJECTED, "text_rejected"),
            (SUPPLY, "supply"),
            (OVER_TEMP, "over_temp"),
            (RESTARTED, "restarted"),
        ]
        .into_iter()
        .filter(|(b, _)| bits & b != 0)
        .map(|(_, n)| n)
        .collect()
    }
}

/// Capability bits of the identity block.
pub mod capability {
    /// Has a screen.
    pub const DISPLAY: u16 = 1 << 0;
    /// Has keys.
    pub const KEYS: u16 = 1 << 1;
    /// More than one colour.
    pub const COLOUR: u16 = 1 << 2;
    /// Can blink.
    pub const BLINK: u16 = 1 << 3;
    /// Can scroll.
    pub const SCROLL: u16 = 1 << 4;
    /// Brightness control.
    pub const BRIGHTNESS: u16 = 1 << 5;
    /// Digit keys.
    pub const DIGITS: u16 = 1 << 6;
    /// Reason keys.
    pub const REASONS: u16 = 1 << 7;
}

/// What a device on the window bus is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceKind {
    /// Small screen over a window.
    WindowScreen,
    /// Large hall board.
    HallBoard,
    /// Staff caller keypad.
    CallerKeypad,
    /// Citizen rating keypad.
    RatingKeypad,
    /// Screen and caller keys in one box.
    WindowTerminal,
}

impl DeviceKind {
    /// The KIND register value.
    pub fn code(self) -> u16 {
        match self {
            DeviceKind::WindowScreen => 1,
            DeviceKind::HallBoard => 2,
            DeviceKind::CallerKeypad => 3,
            DeviceKind::RatingKeypad => 4,
            DeviceKind::WindowTerminal => 5,
        }
    }

    /// From the KIND register.
    pub fn from_code(code: u16) -> Option<DeviceKind> {
        Some(match code {
            1 => DeviceKind::WindowScreen,
            2 => DeviceKind::HallBoard,
            3 => DeviceKind::CallerKeypad,
            4 => DeviceKind::RatingKeypad,
            5 => DeviceKind::WindowTerminal,
            _ => return None,
        })
    }

    /// Whether it shows text.
    pub fn has_display(self) -> bool {
        matches!(
            self,
            DeviceKind::WindowScreen | DeviceKind::HallBoard | DeviceKind::WindowTerminal
        )
    }

    /// Whether it has keys.
    pub fn has_keys(self) -> bool {
        matches!(
            self,
            DeviceKind::CallerKeypad | DeviceKind::RatingKeypad | DeviceKind::WindowTerminal
        )
    }
}

/// A device's identity block (input registers 0x0000–0x000B).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    /// Kind.
    pub kind: DeviceKind,
    /// Capability bits.
    pub capabilities: u16,
    /// Display lines.
    pub lines: u16,
    /// Full-width characters per line.
    pub columns: u16,
    /// Matrix width in dots.
    pub matrix_width: u16,
    /// Matrix height in dots.
    pub matrix_height: u16,
    /// Main keys.
    pub keys: u16,
    /// Reason keys.
    pub reason_keys: u16,
    /// Firmware version.
    pub firmware: u16,
    /// Maker id.
    pub vendor: u16,
}

/// Why registers read from a device do not make sense.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MapError {
    /// Fewer registers than the block needs.
    #[error("expected {expected} registers, got {got}")]
    Short {
        /// Needed.
        expected: usize,
        /// Got.
        got: usize,
    },
    /// MAGIC is not "HQ": not a hallq-profile device.
    #[error("not a hallq hall device (magic {0:#06x})")]
    Magic(u16),
    /// A newer profile.
    #[error("profile version {0} not supported")]
    Version(u16),
    /// Unknown KIND.
    #[error("unknown device kind {0}")]
    Kind(u16),
    /// Line LENGTH out of range.
    #[error("line length {0} exceeds {LINE_MAX_BYTES}")]
    LineLength(u16),
    /// Text bytes are not GB2312.
    #[error("line text is not GB2312")]
    LineText,
    /// MODE or COLOUR value outside the map.
    #[error("line attribute {name} = {value} is not defined")]
    LineAttribute {
        /// Register name.
        name: &'static str,
        /// Value.
        value: u16,
    },
}

fn need(regs: &[u16], n: usize) -> Result<(), MapError> {
    if regs.len() < n {
        Err(MapError::Short {
            expected: n,
            got: regs.len(),
        })
    } else {
        Ok(())
    }
}

impl Identity {
    /// Registers 0x0000–0x000B for this identity.
    pub fn encode(&self) -> [u16; IDENTITY_LEN as usize] {
        [
            MAGIC_VALUE,
            PROFILE_VERSION_VALUE,
            self.kind.code(),
            self.capabilities,
            self.lines,
            self.columns,
            self.matrix_width,
            self.matrix_height,
            self.keys,
            self.reason_keys,
            self.firmware,
            self.vendor,
        ]
    }

    /// Parse registers 0x0000–0x000B.
    pub fn decode(regs: &[u16]) -> Result<Identity, MapError> {
        need(regs, IDENTITY_LEN as usize)?;
        if regs[0] != MAGIC_VALUE {
            return Err(MapError::Magic(regs[0]));
        }
        if regs[1] != PROFILE_VERSION_VALUE {
            return Err(MapError::Version(regs[1]));
        }
        let kind = DeviceKind::from_code(regs[2]).ok_or(MapError::Kind(regs[2]))?;
        Ok(Identity {
            kind,
            capabilities: regs[3],
            lines: regs[4],
            columns: regs[5],
            matrix_width: regs[6],
            matrix_height: regs[7],
            keys: regs[8],
            reason_keys: regs[9],
            firmware: regs[10],
            vendor: regs[11],
        })
    }
}

/// First register of line `n`'s block.
pub fn line_address(n: u16) -> u16 {
    LINE_BASE + LINE_STRIDE * n
}

/// COLOUR register value.
pub fn colour_code(c: Colour) -> u16 {
    match c {
        Colour::Default => 0,
        Colour::Red => 1,
        Colour::Green => 2,
        Colour::Amber => 3,
        Colour::White => 7,
    }
}

/// MODE register value.
pub fn mode_code(effect: Effect, align: Align) -> u16 {
    let e = match effect {
        Effect::Steady => 0,
        Effect::Blink => 1,
        Effect::Scroll => 2,
    };
    let a = match align {
        Align::Left => 0,
        Align::Centre => 1,
        Align::Right => 2,
    };
    (a << 8) | e
}

/// Registers of one line write: COLOUR, MODE, LENGTH and just the text registers the
/// text needs (so one FC 0x10 request carries the line). Text longer than
/// [`LINE_MAX_BYTES`] is cut at a character boundary.
pub fn encode_line(line: &DisplayLine) -> Vec<u16> {
    let mut bytes = line.text.bytes();
    if bytes.len() > LINE_MAX_BYTES {
        // Cut at a character boundary: walk characters until the limit.
        let mut end = 0;
        while end < bytes.len() {
            let w = if bytes[end] < 0x80 { 1 } else { 2 };
            if end + w > LINE_MAX_BYTES {
                break;
            }
            end += w;
        }
        bytes = &bytes[..end];
    }
    let mut regs = Vec::with_capacity(3 + bytes.len().div_ceil(2));
    regs.push(colour_code(line.colour));
    regs.push(mode_code(line.effect, line.align));
    regs.push(bytes.len() as u16);
    for pair in bytes.chunks(2) {
        let hi = pair[0] as u16;
        let lo = pair.get(1).copied().unwrap_or(0) as u16;
        regs.push((hi << 8) | lo);
    }
    regs
}

/// The blank line write (LENGTH 0).
pub fn blank_line() -> Vec<u16> {
    vec![0, 0, 0]
}

/// Parse a line write or a line block read back: what a screen would show.
pub fn decode_line(regs: &[u16]) -> Result<DisplayLine, MapError> {
    need(regs, 3)?;
    let colour = match regs[0] {
        0 => Colour::Default,
        1 => Colour::Red,
        2 => Colour::Green,
        3 => Colour::Amber,
        7 => Colour::White,
        // Other RGB mixes are legal on the wire; we show them in white.
        4..=6 => Colour::White,
        v => {
            return Err(MapError::LineAttribute {
                name: "COLOUR",
                value: v,
            });
        }
    };
    let effect = match regs[1] & 0xFF {
        0 => Effect::Steady,
        1 => Effect::Blink,
        2 => Effect::Scroll,
        v => {
            return Err(MapError::LineAttribute {
                name: "MODE",
                value: v,
            });
        }
    };
    let align = match regs[1] >> 8 {
        0 => Align::Left,
        1 => Align::Centre,
        2 => Align::Right,
        v => {
            return Err(MapError::LineAttribute {
                name: "MODE",
                value: v << 8,
            });
        }
    };
    let len = regs[2];
    if len as usize > LINE_MAX_BYTES {
        return Err(MapError::LineLength(len));
    }
    let text_regs = (len as usize).div_ceil(2);
    need(regs, 3 + text_regs)?;
    let mut bytes = Vec::with_capacity(len as usize);
    for r in &regs[3..3 + text_regs] {
        bytes.push((r >> 8) as u8);
        bytes.push((r & 0xFF) as u8);
    }
    bytes.truncate(len as usize);
    let text = Gb2312Text::from_bytes(&bytes).ok_or(MapError::LineText)?;
    Ok(DisplayLine {
        text,
        colour,
        effect,
        align,
    })
}

/// One press as the device queues it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Press {
    /// Sequence number (1–65535, never 0).
    pub seq: u16,
    /// Key code (see [`super::keys::Key`]).
    pub code: u16,
}

/// The status block (input registers 0x0010–0x0031), read in one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// Latched faults.
    pub faults: u16,
    /// Changes at every power-up.
    pub boot_id: u16,
    /// Newest press.
    pub last_seq: u16,
    /// Pending presses, oldest first.
    pub presses: Vec<Press>,
}

impl Status {
    /// Parse the 34 registers of the status block. Slots past KEY_PENDING are ignored,
    /// and a KEY_PENDING above 8 is read as 8 (a confused device must not crash us).
    pub fn decode(regs: &[u16]) -> Result<Status, MapError> {
        need(regs, STATUS_LEN as usize)?;
        let pending = (regs[(KEY_PENDING - STATUS_START) as usize] as usize).min(KEY_QUEUE_LEN);
        let slots = &regs[(KEY_SLOTS - STATUS_START) as usize..];
        let presses = (0..pending)
            .map(|i| Press {
                seq: slots[2 * i],
                code: slots[2 * i + 1],
            })
            .filter(|p| p.seq != 0)
            .collect();
        Ok(Status {
            faults: regs[0],
            boot_id: regs[1],
            last_seq: regs[(KEY_LAST_SEQ - STATUS_START) as usize],
            presses,
        })
    }
}

/// `a` is newer than `b` in 16-bit serial-number arithmetic.
pub fn seq_newer(a: u16, b: u16) -> bool {
    (a.wrapping_sub(b) as i16) > 0
}

/// The device side of the key queue: what a keypad's firmware keeps. The simulator
/// runs it, and it is the reference a maker can port.
#[derive(Debug, Clone, Default)]
pub struct DeviceKeyQueue {
    last_seq: u16,
    pending: std::collections::VecDeque<Press>,
    /// A press was dropped since the host last cleared faults.
    pub overflowed: bool,
}

impl DeviceKeyQueue {
    /// Record a press; `None` if the queue was full and the press was dropped.
    pub fn press(&mut self, code: u16) -> Option<u16> {
        if self.pending.len() >= KEY_QUEUE_LEN {
            self.overflowed = true;
            return None;
        }
        self.last_seq = if self.last_seq == u16::MAX {
            1
        } else {
            self.last_seq + 1
        };
        self.pending.push_back(Press {
            seq: self.last_seq,
            code,
        });
        Some(self.last_seq)
    }

    /// Host wrote KEY_ACK = `seq`: drop every press not newer than it.
    pub fn ack(&mut self, seq: u16) {
        self.pending.retain(|p| seq_newer(p.seq, seq));
    }

    /// Presses held.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Registers 0x0020–0x0031.
    pub fn registers(&self) -> [u16; 2 + 2 * KEY_QUEUE_LEN] {
        let mut r = [0u16; 2 + 2 * KEY_QUEUE_LEN];
        r[0] = self.last_seq;
        r[1] = self.pending.len() as u16;
        for (i, p) in self.pending.iter().enumerate() {
            r[2 + 2 * i] = p.seq;
            r[3 + 2 * i] = p.code;
        }
        r
    }
}

/// How far past the last delivered press a new one can be numbered.
const QUEUE_SPAN: u16 = KEY_QUEUE_LEN as u16;

/// The host side of the key queue for one device: delivers each press once, whatever
/// reads or acknowledgements were lost, and starts over when the device restarts.
#[derive(Debug, Clone, Default)]
pub struct KeyTracker {
    boot_id: Option<u16>,
    delivered: u16,
}

/// What to do after reading a device's status block.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KeyStep {
    /// Presses to deliver, oldest first.
    pub new: Vec<Press>,
    /// Value to write to KEY_ACK, if any press is pending on the device.
    pub ack: Option<u16>,
    /// The device restarted since the last read (redraw its screen).
    pub restarted: bool,
}

impl KeyTracker {
    /// Take one status read.
    pub fn step(&mut self, status: &Status) -> KeyStep {
        let restarted = self.boot_id.is_some_and(|b| b != status.boot_id);
        if self.boot_id != Some(status.boot_id) {
            self.boot_id = Some(status.boot_id);
            self.delivered = 0;
        }
        let mut new = Vec::new();
        for p in &status.presses {
            // A press not yet delivered is at most a queue's length ahead of the last
            // one that was (numbers go up by one a press, and the device holds only
            // KEY_QUEUE_LEN unacknowledged). Anything else is a confused device: taking
            // it would let numbers that wrap around the 16-bit circle be delivered
            // again at the next read.
            let ahead = p.seq.wrapping_sub(self.delivered);
            if self.delivered == 0 || (seq_newer(p.seq, self.delivered) && ahead <= QUEUE_SPAN) {
                self.delivered = p.seq;
                new.push(*p);
            }
        }
        KeyStep {
            new,
            ack: status.presses.last().map(|p| p.seq),
            restarted,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_line_of_the_protocol_page_encodes_to_its_registers() {
        let line = DisplayLine::new("请 A001 号")
            .unwrap()
            .colour(Colour::Red)
            .align(Align::Centre);
        assert_eq!(
            encode_line(&line),
            vec![
                0x0001, 0x0100, 0x000A, 0xC7EB, 0x2041, 0x3030, 0x3120, 0xBAC5
            ]
        );
        assert_eq!(decode_line(&encode_line(&line)).unwrap(), line);
        assert_eq!(line_address(1), 0x1040);
    }

    #[test]
    fn an_odd_length_line_pads_its_last_register() {
        let line = DisplayLine::new("A1号").unwrap();
        assert_eq!(encode_line(&line), vec![0, 0, 4, 0x4131, 0xBAC5]);
        let line = DisplayLine::new("号A").unwrap();
        assert_eq!(encode_line(&line), vec![0, 0, 3, 0xBAC5, 0x4100]);
        assert_eq!(
            decode_line(&[0, 0, 3, 0xBAC5, 0x4100])
                .unwrap()
                .text
                .as_str(),
            "号A"
        );
    }

    #[test]
    fn a_too_long_line_is_cut_between_characters() {
        let long = "号".repeat(60);
        let regs = encode_line(&DisplayLine::new(&long).unwrap());
        assert_eq!(regs[2] as usize, LINE_MAX_BYTES);
        let long = format!("A{}", "号".repeat(60));
        let regs = encode_line(&DisplayLine::new(&long).unwrap());
        assert_eq!(regs[2] as usize, LINE_MAX_BYTES - 1);
        assert!(decode_line(&regs).is_ok());
    }

    #[test]
    fn identity_round_trips_and_refuses_strangers() {
        let id = Identity {
            kind: DeviceKind::RatingKeypad,
            capabilities: capability::KEYS | capability::REASONS,
            lines: 0,
            columns: 0,
            matrix_width: 0,
            matrix_height: 0,
            keys: 5,
            reason_keys: 5,
            firmware: 0x0102,
            vendor: 0,
        };
        assert_eq!(Identity::decode(&id.encode()).unwrap(), id);
        let mut r = id.encode();
        r[0] = 0x1234;
        assert_eq!(Identity::decode(&r), Err(MapError::Magic(0x1234)));
        assert!(matches!(
            Identity::decode(&r[..3]),
            Err(MapError::Short { .. })
        ));
    }

    fn status_of(q: &DeviceKeyQueue, boot: u16) -> Status {
        let mut regs = vec![0u16; STATUS_LEN as usize];
        regs[1] = boot;
        regs[0x10..].copy_from_slice(&q.registers());
        Status::decode(&regs).unwrap()
    }

    #[test]
    fn a_press_read_twice_is_delivered_once_and_a_lost_ack_loses_nothing() {
        let mut dev = DeviceKeyQueue::default();
        let mut host = KeyTracker::default();
        dev.press(0x0101);
        let s = host.step(&status_of(&dev, 7));
        assert_eq!(
            s.new,
            vec![Press {
                seq: 1,
                code: 0x0101
            }]
        );
        assert_eq!(s.ack, Some(1));
        // The ack was lost: the device still holds press 1 and gets another.
        dev.press(0x0102);
        let s = host.step(&status_of(&dev, 7));
        assert_eq!(
            s.new,
            vec![Press {
                seq: 2,
                code: 0x0102
            }]
        );
        dev.ack(s.ack.unwrap());
        assert_eq!(dev.pending(), 0);
        assert!(host.step(&status_of(&dev, 7)).new.is_empty());
    }

    #[test]
    fn a_restarted_device_numbers_from_one_again_and_is_heard() {
        let mut dev = DeviceKeyQueue::default();
        let mut host = KeyTracker::default();
        for _ in 0..5 {
            dev.press(0x0301);
        }
        let s = host.step(&status_of(&dev, 1));
        assert_eq!(s.new.len(), 5);
        let mut dev = DeviceKeyQueue::default();
        dev.press(0x0302);
        let s = host.step(&status_of(&dev, 2));
        assert!(s.restarted);
        assert_eq!(
            s.new,
            vec![Press {
                seq: 1,
                code: 0x0302
            }]
        );
    }

    #[test]
    fn the_queue_holds_eight_then_flags_overflow_and_wraps_past_zero() {
        let mut dev = DeviceKeyQueue::default();
        for i in 0..8 {
            assert_eq!(dev.press(0x0400 + i), Some(i + 1));
        }
        assert_eq!(dev.press(0x0409), None);
        assert!(dev.overflowed);
        dev.ack(8);
        dev.last_seq = u16::MAX;
        assert_eq!(dev.press(1), Some(1));
        assert!(seq_newer(1, u16::MAX));
        let mut host = KeyTracker {
            boot_id: Some(3),
            delivered: u16::MAX - 1,
        };
        let mut d2 = DeviceKeyQueue {
            last_seq: u16::MAX - 1,
            ..Default::default()
        };
        d2.press(9);
        d2.press(10);
        let s = host.step(&status_of(&d2, 3));
        assert_eq!(
            s.new.iter().map(|p| p.seq).collect::<Vec<_>>(),
            vec![u16::MAX, 1]
        );
    }

    #[test]
    fn a_device_reporting_numbers_out_of_order_never_gets_a_press_delivered_twice() {
        // Found by the window_regmap fuzz target: 63993, 10146, 41634 are each "newer"
        // than the one before in 16-bit serial arithmetic, so the next read of the same
        // block found 63993 newer than 41634 and delivered it again.
        let mut regs = vec![0u16; STATUS_LEN as usize];
        regs[1] = 5;
        regs[0x11] = 3;
        regs[0x12..0x18].copy_from_slice(&[63993, 0x0101, 10146, 0x0102, 41634, 0x0103]);
        let status = Status::decode(&regs).unwrap();
        let mut host = KeyTracker::default();
        let first = host.step(&status);
        assert!(!first.new.is_empty());
        assert!(host.step(&status).new.is_empty());
        assert_eq!(
            first.new.iter().map(|p| p.seq).collect::<Vec<_>>(),
            vec![63993],
            "numbers far from the last delivered press are not taken"
        );
    }

    proptest::proptest! {
        #[test]
        fn decoders_never_panic(regs in proptest::collection::vec(proptest::prelude::any::<u16>(), 0..80)) {
            let _ = Status::decode(&regs);
            let _ = Identity::decode(&regs);
            let _ = decode_line(&regs);
        }

        #[test]
        fn every_press_is_delivered_exactly_once_whatever_is_lost(
            ops in proptest::collection::vec(0u8..4, 0..200)
        ) {
            // 0 press, 1 read+ack delivered, 2 read with ack lost, 3 read lost.
            let mut dev = DeviceKeyQueue::default();
            let mut host = KeyTracker::default();
            let mut pressed = Vec::new();
            let mut got = Vec::new();
            let mut code = 0u16;
            for op in ops {
                match op {
                    0 => { code += 1; if dev.press(code).is_some() { pressed.push(code); } }
                    1 | 2 => {
                        let s = host.step(&status_of(&dev, 9));
                        got.extend(s.new.iter().map(|p| p.code));
                        if op == 1 && let Some(a) = s.ack { dev.ack(a); }
                    }
                    _ => {}
                }
            }
            let s = host.step(&status_of(&dev, 9));
            got.extend(s.new.iter().map(|p| p.code));
            proptest::prop_assert_eq!(got, pressed);
        }
    }
}
