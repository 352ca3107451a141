//! What a screen shows: lines of text already checked to be GB2312, the encoding every
//! LED screen in the trade takes, with colour, effect and alignment.
//!
//! Text is checked once, when the daemon builds the content, so a character a screen
//! cannot draw is an error at the source (naming the character), not a `?` on the wall.

use encoding_rs::GB18030;
use thiserror::Error;

/// Why text cannot go to a screen.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TextError {
    /// The character has no GB2312 code (GBK-only, emoji, control character...).
    #[error("character {ch:?} at position {position} is not in GB2312")]
    NotGb2312 {
        /// The character.
        ch: char,
        /// Its index (in characters) in the text.
        position: usize,
    },
    /// The encoded text is longer than the device accepts.
    #[error("text is {len} bytes in GB2312, at most {max} fit")]
    TooLong {
        /// Encoded length.
        len: usize,
        /// Limit.
        max: usize,
    },
}

/// Text known to be expressible in GB2312, with its encoding.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Gb2312Text {
    text: String,
    bytes: Vec<u8>,
}

/// True for the bytes of a character GB2312 assigns. The EUC-CN byte area (rows
/// 0xA1–0xF7 × cells 0xA1–0xFE) is larger than the standard: GB2312 leaves rows 10–15
/// empty, most of rows 2 and 4–9 part empty, and row 55 ends at 0xD7F9. GB18030 gives
/// those empty cells private-use or later characters (small roman numerals, vertical
/// punctuation, €), which a screen's GB2312 font does not have; worse, a private-use
/// character can encode to a cell that decodes as another character. So the cells
/// are checked against GB2312's own table, row by row.
fn is_gb2312_pair(hi: u8, lo: u8) -> bool {
    let cells: &[(u8, u8)] = match hi {
        0xA1 | 0xA3 => &[(0xA1, 0xFE)], // symbols; full-width ASCII
        0xA2 => &[(0xB1, 0xE2), (0xE5, 0xEE), (0xF1, 0xFC)], // 1.–20., (1)–(20), ①–⑩, ㈠–㈩, Ⅰ–Ⅻ
        0xA4 => &[(0xA1, 0xF3)],        // hiragana
        0xA5 => &[(0xA1, 0xF6)],        // katakana
        0xA6 => &[(0xA1, 0xB8), (0xC1, 0xD8)], // Greek
        0xA7 => &[(0xA1, 0xC1), (0xD1, 0xF1)], // Cyrillic
        0xA8 => &[(0xA1, 0xBA), (0xC5, 0xE9)], // pinyin vowels, bopomofo
        0xA9 => &[(0xA4, 0xEF)],        // box drawing
        0xD7 => &[(0xA1, 0xF9)],        // hanzi level 1 ends here
        0xB0..=0xF7 => &[(0xA1, 0xFE)], // hanzi
        _ => &[],
    };
    cells.iter().any(|&(a, b)| (a..=b).contains(&lo))
}

impl Gb2312Text {
    /// Encode `text`, refusing any character outside GB2312 (ASCII 0x20–0x7E and the
    /// two-byte EUC-CN range). GB18030 is used as the codec and its extra (GBK and
    /// four-byte) codes are rejected, since LED screens carry GB2312 fonts only.
    pub fn new(text: &str) -> Result<Gb2312Text, TextError> {
        let mut bytes = Vec::with_capacity(text.len());
        for (position, ch) in text.chars().enumerate() {
            if (' '..='~').contains(&ch) {
                bytes.push(ch as u8);
                continue;
            }
            let mut buf = [0u8; 4];
            let s = ch.encode_utf8(&mut buf);
            let (enc, _, bad) = GB18030.encode(s);
            match (&*enc, bad) {
                (&[hi, lo], false) if is_gb2312_pair(hi, lo) => bytes.extend_from_slice(&[hi, lo]),
                _ => return Err(TextError::NotGb2312 { ch, position }),
            }
        }
        Ok(Gb2312Text {
            text: text.to_string(),
            bytes,
        })
    }

    /// Decode GB2312 bytes from a device; `None` if any byte is outside the profile's
    /// text rules (so a screen can refuse it).
    pub fn from_bytes(bytes: &[u8]) -> Option<Gb2312Text> {
        let mut text = String::new();
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            if (0x20..=0x7E).contains(&b) {
                text.push(b as char);
                i += 1;
            } else if i + 1 < bytes.len() && is_gb2312_pair(b, bytes[i + 1]) {
                let (dec, bad) = GB18030.decode_without_bom_handling(&bytes[i..i + 2]);
                if bad {
                    return None;
                }
                text.push_str(&dec);
                i += 2;
            } else {
                return None;
            }
        }
        Some(Gb2312Text {
            text,
            bytes: bytes.to_vec(),
        })
    }

    /// The text as Rust sees it.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The GB2312 bytes a screen receives.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Width in half-width cells (ASCII 1, Chinese 2): what a screen needs to fit it.
    pub fn cells(&self) -> usize {
        self.bytes.len()
    }
}

/// Line colour. One-colour screens ignore it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Colour {
    /// The device's own default.
    #[default]
    Default,
    /// Red.
    Red,
    /// Green.
    Green,
    /// Amber / yellow (red + green).
    Amber,
    /// White.
    White,
}

/// How a line moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    /// Shown still.
    #[default]
    Steady,
    /// Blinks at 1 Hz (a fresh call, to catch the eye).
    Blink,
    /// Scrolls right to left (notices longer than the line).
    Scroll,
}

/// Where a still line sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Align {
    /// Flush left.
    #[default]
    Left,
    /// Centred.
    Centre,
    /// Flush right.
    Right,
}

/// One line of a screen.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DisplayLine {
    /// The text, checked.
    pub text: Gb2312Text,
    /// Colour.
    pub colour: Colour,
    /// Steady, blink or scroll.
    pub effect: Effect,
    /// Alignment when not scrolling.
    pub align: Align,
}

impl DisplayLine {
    /// A steady, left-aligned line in the default colour.
    pub fn new(text: &str) -> Result<DisplayLine, TextError> {
        Ok(DisplayLine {
            text: Gb2312Text::new(text)?,
            ..DisplayLine::default()
        })
    }

    /// Same line, another colour.
    pub fn colour(mut self, colour: Colour) -> DisplayLine {
        self.colour = colour;
        self
    }

    /// Same line, another effect.
    pub fn effect(mut self, effect: Effect) -> DisplayLine {
        self.effect = effect;
        self
    }

    /// Same line, another alignment.
    pub fn align(mut self, align: Align) -> DisplayLine {
        self.align = align;
        self
    }
}

/// Everything a screen shows: its lines, top first, and a brightness 0–15.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplayContent {
    /// Lines from the top; a screen with more lines blanks the rest.
    pub lines: Vec<DisplayLine>,
    /// Brightness 0 (dimmest visible) – 15.
    pub brightness: u8,
}

impl Default for DisplayContent {
    fn default() -> Self {
        DisplayContent {
            lines: Vec::new(),
            brightness: 8,
        }
    }
}

impl DisplayContent {
    /// Steady left-aligned lines from plain strings.
    pub fn from_lines(lines: &[&str]) -> Result<DisplayContent, TextError> {
        Ok(DisplayContent {
            lines: lines
                .iter()
                .map(|l| DisplayLine::new(l))
                .collect::<Result<_, _>>()?,
            ..DisplayContent::default()
        })
    }

    /// The lines as plain text, for logs and tests.
    pub fn texts(&self) -> Vec<&str> {
        self.lines.iter().map(|l| l.text.as_str()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_line_encodes_to_the_bytes_in_the_protocol_page() {
        let t = Gb2312Text::new("请 A001 号").unwrap();
        assert_eq!(
            t.bytes(),
            &[0xC7, 0xEB, 0x20, 0x41, 0x30, 0x30, 0x31, 0x20, 0xBA, 0xC5]
        );
        assert_eq!(
            Gb2312Text::from_bytes(t.bytes()).unwrap().as_str(),
            "请 A001 号"
        );
    }

    #[test]
    fn characters_outside_gb2312_are_refused_by_name() {
        // 镕 is GBK only; the emoji and the tab have no GB2312 code.
        for (s, ch) in [("朱镕基", '镕'), ("A😀", '😀'), ("a\tb", '\t')] {
            match Gb2312Text::new(s) {
                Err(TextError::NotGb2312 { ch: c, .. }) => assert_eq!(c, ch),
                other => panic!("{s}: {other:?}"),
            }
        }
    }

    #[test]
    fn every_gb2312_cell_decodes_to_a_real_character_and_encodes_back_to_itself() {
        let mut assigned = 0;
        for hi in 0xA1..=0xF7u8 {
            for lo in 0xA1..=0xFEu8 {
                let Some(t) = Gb2312Text::from_bytes(&[hi, lo]) else {
                    continue;
                };
                assigned += 1;
                let ch = t.as_str().chars().next().unwrap();
                assert!(
                    !('\u{E000}'..='\u{F8FF}').contains(&ch),
                    "{hi:02X}{lo:02X} decodes to private use {ch:?}"
                );
                assert_eq!(Gb2312Text::new(t.as_str()).unwrap().bytes(), &[hi, lo]);
            }
        }
        // 682 symbols and 6,763 hanzi.
        assert_eq!(assigned, 7445);
    }

    #[test]
    fn characters_in_the_empty_cells_of_the_euc_area_are_refused() {
        // Found by fuzzing: U+E793 (private use) encodes in GB18030 to 0xA6DF, which
        // GB18030 (2022 mapping) decodes as U+FE16, so a screen would show another
        // character. The others are GBK/GB18030 additions in cells GB2312 leaves
        // empty: ⅰ (0xA2A1), € (0xA2E3), ︐ (0xA6D9 in the 2022 mapping), ɑ (0xA8BB).
        for ch in ['\u{E793}', 'ⅰ', '€', '︐', 'ɑ'] {
            assert!(
                matches!(
                    Gb2312Text::new(&ch.to_string()),
                    Err(TextError::NotGb2312 { .. })
                ),
                "{ch:?} was accepted"
            );
        }
        for cell in [[0xA6, 0xDF], [0xA2, 0xA1], [0xAA, 0xA1], [0xD7, 0xFA]] {
            assert!(Gb2312Text::from_bytes(&cell).is_none(), "{cell:02X?}");
        }
        // The edges of what is assigned stay in.
        for s in ["Ω", "ω", "ㄩ", "╋", "ü", "ā", "㈩", "Ⅻ", "亍", "齄"] {
            Gb2312Text::new(s).unwrap_or_else(|e| panic!("{s}: {e}"));
        }
    }

    #[test]
    fn device_bytes_outside_the_rules_are_refused() {
        assert!(Gb2312Text::from_bytes(&[0xC7]).is_none());
        assert!(Gb2312Text::from_bytes(&[0x81, 0x40]).is_none());
        assert!(Gb2312Text::from_bytes(&[0x0A]).is_none());
        assert_eq!(Gb2312Text::from_bytes(b"").unwrap().as_str(), "");
    }
}
