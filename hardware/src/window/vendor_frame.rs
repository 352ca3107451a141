//! The common vendor window-screen frame: many off-the-shelf RS-485 screens take a
//! header byte, their address, a command, parameters, the GB2312 text and an end byte,
//! and never answer. Vendors differ in the exact bytes, so the header and end byte are
//! settings ([`VendorProfile`]); the layout below is the common one:
//!
//! ```text
//! HEADER addr cmd line attr text… END
//!   cmd 0x31 show text on `line`; attr = effect << 4 | colour
//!   cmd 0x32 clear the whole screen (line and attr 0, no text)
//!   cmd 0x33 brightness: `line` carries 0–15, attr 0, no text
//! ```
//!
//! The end byte must be one no GB2312 text byte can take (text bytes are 0x20–0x7E or
//! 0xA1–0xFE), so 0x0D or 0x03 are the usual choices; [`VendorProfile::validate`] checks.

use std::io::Write;

use thiserror::Error;

use super::CounterDisplay;
use super::text::{Colour, DisplayContent, Effect, Gb2312Text};

/// Command: show text on a line.
pub const CMD_TEXT: u8 = 0x31;
/// Command: clear the screen.
pub const CMD_CLEAR: u8 = 0x32;
/// Command: brightness.
pub const CMD_BRIGHTNESS: u8 = 0x33;
/// Most text bytes in one frame (the usual screen buffer).
pub const MAX_TEXT: usize = 128;

/// Header and end byte of a vendor's frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VendorProfile {
    /// First byte of every frame.
    pub header: u8,
    /// Last byte of every frame.
    pub end: u8,
}

impl Default for VendorProfile {
    fn default() -> Self {
        VendorProfile {
            header: 0x02,
            end: 0x0D,
        }
    }
}

/// Why a vendor setting or frame is unusable.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum VendorError {
    /// The end byte could appear inside text.
    #[error("end byte {0:#04x} can occur in GB2312 text; use a control byte such as 0x0D")]
    EndInText(u8),
    /// Text longer than a frame carries.
    #[error("text of {0} bytes exceeds the frame's {MAX_TEXT}")]
    TooLong(usize),
}

impl VendorProfile {
    /// Refuse an end byte that text could contain.
    pub fn validate(self) -> Result<VendorProfile, VendorError> {
        if (0x20..=0x7E).contains(&self.end) || self.end >= 0xA1 {
            return Err(VendorError::EndInText(self.end));
        }
        Ok(self)
    }
}

/// One frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VendorFrame {
    /// Screen address.
    pub addr: u8,
    /// Command byte.
    pub cmd: u8,
    /// Line (or brightness for [`CMD_BRIGHTNESS`]).
    pub line: u8,
    /// `effect << 4 | colour`.
    pub attr: u8,
    /// GB2312 text.
    pub text: Vec<u8>,
}

/// Attribute byte for a colour and effect.
pub fn attr(colour: Colour, effect: Effect) -> u8 {
    let c = match colour {
        Colour::Default => 0,
        Colour::Red => 1,
        Colour::Green => 2,
        Colour::Amber => 3,
        Colour::White => 7,
    };
    let e = match effect {
        Effect::Steady => 0,
        Effect::Blink => 1,
        Effect::Scroll => 2,
    };
    (e << 4) | c
}

impl VendorFrame {
    /// Show `text` on `line`.
    pub fn text(
        addr: u8,
        line: u8,
        colour: Colour,
        effect: Effect,
        text: &Gb2312Text,
    ) -> Result<VendorFrame, VendorError> {
        if text.bytes().len() > MAX_TEXT {
            return Err(VendorError::TooLong(text.bytes().len()));
        }
        Ok(VendorFrame {
            addr,
            cmd: CMD_TEXT,
            line,
            attr: attr(colour, effect),
            text: text.bytes().to_vec(),
        })
    }

    /// The bytes on the wire.
    pub fn encode(&self, p: VendorProfile) -> Vec<u8> {
        let mut f = Vec::with_capacity(6 + self.text.len());
        f.extend_from_slice(&[p.header, self.addr, self.cmd, self.line, self.attr]);
        f.extend_from_slice(&self.text);
        f.push(p.end);
        f
    }
}

/// Statistics of [`parse_frames`]: corrupt input is counted and skipped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ParseStats {
    /// Bytes skipped while looking for a header.
    pub skipped: usize,
    /// Frames dropped (text too long or not GB2312).
    pub bad_frames: usize,
}

/// Parse a byte stream into frames (what a simulated vendor screen does). Returns the
/// frames, how many bytes were consumed (an incomplete tail stays for the next read),
/// and what was skipped.
pub fn parse_frames(p: VendorProfile, bytes: &[u8]) -> (Vec<VendorFrame>, usize, ParseStats) {
    let mut frames = Vec::new();
    let mut stats = ParseStats::default();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != p.header {
            stats.skipped += 1;
            i += 1;
            continue;
        }
        if bytes.len() - i < 6 {
            break;
        }
        // The end byte can only come within the longest frame; looking further would
        // make what is parsed depend on where the reads happen to split the stream.
        let window = &bytes[i + 5..bytes.len().min(i + 6 + MAX_TEXT)];
        let Some(end_rel) = window.iter().position(|&b| b == p.end) else {
            if bytes.len() - i >= 6 + MAX_TEXT {
                // No end byte where one must be: drop this header and resync.
                stats.bad_frames += 1;
                i += 1;
                continue;
            }
            break;
        };
        let text = &bytes[i + 5..i + 5 + end_rel];
        let next = i + 6 + end_rel;
        if text.len() > MAX_TEXT || Gb2312Text::from_bytes(text).is_none() {
            stats.bad_frames += 1;
        } else {
            frames.push(VendorFrame {
                addr: bytes[i + 1],
                cmd: bytes[i + 2],
                line: bytes[i + 3],
                attr: bytes[i + 4],
                text: text.to_vec(),
            });
        }
        i = next;
    }
    (frames, i, stats)
}

/// A vendor screen on a write-only byte pipe (a serial port shared with other screens).
pub struct VendorDisplay<W> {
    out: W,
    addr: u8,
    lines: u8,
    profile: VendorProfile,
}

impl<W: Write> VendorDisplay<W> {
    /// A screen at `addr` with `lines` lines.
    pub fn new(out: W, addr: u8, lines: u8, profile: VendorProfile) -> Self {
        VendorDisplay {
            out,
            addr,
            lines,
            profile,
        }
    }

    /// Give the pipe back.
    pub fn release(self) -> W {
        self.out
    }

    /// The frames that make the screen show `content`, in order.
    pub fn frames(&self, content: &DisplayContent) -> Result<Vec<u8>, VendorError> {
        let mut out = Vec::new();
        for n in 0..self.lines {
            let frame = match content.lines.get(n as usize) {
                Some(l) => VendorFrame::text(self.addr, n, l.colour, l.effect, &l.text)?,
                None => VendorFrame::text(
                    self.addr,
                    n,
                    Colour::Default,
                    Effect::Steady,
                    &Gb2312Text::default(),
                )?,
            };
            out.extend(frame.encode(self.profile));
        }
        let b = VendorFrame {
            addr: self.addr,
            cmd: CMD_BRIGHTNESS,
            line: content.brightness.min(15),
            attr: 0,
            text: vec![],
        };
        out.extend(b.encode(self.profile));
        Ok(out)
    }
}

/// Why a vendor screen could not show content.
#[derive(Debug, Error)]
pub enum VendorDisplayError {
    /// Content does not fit the frame.
    #[error(transparent)]
    Frame(#[from] VendorError),
    /// The pipe failed.
    #[error("writing to the screen: {0}")]
    Io(#[from] std::io::Error),
}

impl<W: Write> CounterDisplay for VendorDisplay<W> {
    type Error = VendorDisplayError;

    fn show(&mut self, content: &DisplayContent) -> Result<(), VendorDisplayError> {
        let bytes = self.frames(content)?;
        self.out.write_all(&bytes)?;
        self.out.flush()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::window::text::DisplayLine;

    #[test]
    fn a_two_line_screen_gets_these_exact_bytes() {
        let mut d = VendorDisplay::new(Vec::new(), 3, 2, VendorProfile::default());
        let content = DisplayContent {
            lines: vec![
                DisplayLine::new("A001")
                    .unwrap()
                    .colour(Colour::Red)
                    .effect(Effect::Blink),
            ],
            brightness: 12,
        };
        d.show(&content).unwrap();
        assert_eq!(
            d.release(),
            vec![
                0x02, 0x03, 0x31, 0x00, 0x11, b'A', b'0', b'0', b'1', 0x0D, // line 0
                0x02, 0x03, 0x31, 0x01, 0x00, 0x0D, // line 1 blank
                0x02, 0x03, 0x33, 0x0C, 0x00, 0x0D, // brightness
            ]
        );
    }

    #[test]
    fn frames_parse_back_skipping_noise_and_keeping_a_partial_tail() {
        let p = VendorProfile::default();
        let t = Gb2312Text::new("暂停服务").unwrap();
        let f = VendorFrame::text(9, 1, Colour::Green, Effect::Steady, &t).unwrap();
        let mut bytes = vec![0xFF, 0x00];
        bytes.extend(f.encode(p));
        bytes.extend(&f.encode(p)[..4]);
        let (frames, used, stats) = parse_frames(p, &bytes);
        assert_eq!(frames, vec![f]);
        assert_eq!(stats.skipped, 2);
        assert_eq!(used, bytes.len() - 4);
    }

    #[test]
    fn an_end_byte_that_text_may_hold_is_refused() {
        assert_eq!(
            VendorProfile {
                header: 0x02,
                end: b'Z'
            }
            .validate(),
            Err(VendorError::EndInText(b'Z'))
        );
        assert!(VendorProfile::default().validate().is_ok());
    }

    #[test]
    fn a_frame_too_long_to_end_is_dropped_the_same_however_the_reads_split() {
        // Found by the vendor_frame fuzz target: a header whose end byte comes only
        // after more than MAX_TEXT bytes was one bad frame when read whole but a
        // dropped header (and a resync inside it) when read in two pieces.
        let p = VendorProfile::default();
        let mut bytes = vec![0x02, 3, 0x31, 0, 0];
        bytes.extend(std::iter::repeat_n(0xA4, MAX_TEXT + 10));
        let good = VendorFrame::text(
            3,
            0,
            Colour::Red,
            Effect::Steady,
            &Gb2312Text::new("A1").unwrap(),
        )
        .unwrap();
        bytes.extend(good.encode(p));
        let (whole, used, stats) = parse_frames(p, &bytes);
        let (mut split, used_a, _) = parse_frames(p, &bytes[..MAX_TEXT + 7]);
        let (rest, used_b, _) = parse_frames(p, &bytes[used_a..]);
        split.extend(rest);
        assert_eq!(whole, vec![good]);
        assert_eq!(split, whole);
        assert_eq!((used, used_a + used_b), (bytes.len(), bytes.len()));
        assert_eq!(stats.bad_frames, 1);
    }

    proptest::proptest! {
        #[test]
        fn no_bytes_make_the_frame_parser_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400)) {
            let (_, used, _) = parse_frames(VendorProfile::default(), &bytes);
            proptest::prop_assert!(used <= bytes.len());
        }
    }
}
