//! A 16-dot bitmap font for LED matrices: GNU Unifont's `.hex` format, which Debian's
//! `unifont` package installs at `/usr/share/unifont/unifont.hex` (every BMP character,
//! CJK 16×16, ASCII 8×16). A bitmap font, not a scaled outline, because an LED matrix
//! has exactly 16 dots per character row and needs every dot placed by a designer.
//!
//! A character the font lacks is an error naming it: a blank cell on the wall is a bug.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use thiserror::Error;

/// Where [`BitmapFont::find`] looks, in order.
pub const HEX_CANDIDATES: [&str; 2] = [
    "/usr/share/unifont/unifont.hex",
    "/usr/share/unifont/unifont_jp.hex",
];

/// Environment variable naming a `.hex` font that overrides [`HEX_CANDIDATES`].
pub const HEX_FONT_ENV: &str = "HALLQ_BITMAP_FONT";

/// Glyph height in dots.
pub const GLYPH_H: usize = 16;

/// Why the font cannot be used.
#[derive(Debug, Error)]
pub enum FontError {
    /// The file cannot be read.
    #[error("bitmap font {path}: {source}")]
    Read {
        /// File.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// A line is not `CODEPOINT:HEX` with 32 or 64 hex digits.
    #[error("bitmap font line {line}: not a Unifont .hex glyph")]
    Syntax {
        /// 1-based line.
        line: usize,
    },
    /// No font file found.
    #[error(
        "no 16×16 bitmap font: set {HEX_FONT_ENV} or install the Debian package unifont (looked at {0:?})"
    )]
    NotFound(Vec<String>),
    /// A character is missing from the font.
    #[error("the bitmap font has no glyph for {0:?}")]
    Missing(char),
}

/// One glyph: 8 or 16 dots wide, 16 rows, bit 15 (or 7) is the leftmost dot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Glyph {
    /// 8 or 16.
    pub width: u8,
    /// Rows, top first; for 8-wide glyphs only the low 8 bits are used.
    pub rows: [u16; GLYPH_H],
}

impl Glyph {
    /// Dot at (x, y).
    pub fn dot(&self, x: usize, y: usize) -> bool {
        x < self.width as usize
            && y < GLYPH_H
            && (self.rows[y] >> (self.width as usize - 1 - x)) & 1 == 1
    }
}

/// A bitmap font: character → glyph.
#[derive(Debug, Clone, Default)]
pub struct BitmapFont {
    glyphs: HashMap<char, Glyph>,
}

impl BitmapFont {
    /// Parse `.hex` text. Lines that are empty or start with `#` are skipped.
    pub fn parse_hex(text: &str) -> Result<BitmapFont, FontError> {
        let mut glyphs = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = || FontError::Syntax { line: i + 1 };
            let (cp, hex) = line.split_once(':').ok_or_else(bad)?;
            let cp = u32::from_str_radix(cp, 16).map_err(|_| bad())?;
            let Some(ch) = char::from_u32(cp) else {
                continue;
            };
            let width = match hex.len() {
                32 => 8,
                64 => 16,
                _ => return Err(bad()),
            };
            let digits = hex.len() / GLYPH_H;
            let mut rows = [0u16; GLYPH_H];
            for (r, row) in rows.iter_mut().enumerate() {
                let s = hex.get(r * digits..(r + 1) * digits).ok_or_else(bad)?;
                *row = u16::from_str_radix(s, 16).map_err(|_| bad())?;
            }
            glyphs.insert(ch, Glyph { width, rows });
        }
        Ok(BitmapFont { glyphs })
    }

    /// Load a `.hex` file.
    pub fn load(path: impl AsRef<Path>) -> Result<BitmapFont, FontError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| FontError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        BitmapFont::parse_hex(&text)
    }

    /// `$HALLQ_BITMAP_FONT`, else the first of [`HEX_CANDIDATES`] present.
    pub fn find() -> Result<BitmapFont, FontError> {
        if let Some(p) = std::env::var_os(HEX_FONT_ENV) {
            return BitmapFont::load(p);
        }
        for c in HEX_CANDIDATES {
            if Path::new(c).exists() {
                return BitmapFont::load(c);
            }
        }
        Err(FontError::NotFound(
            HEX_CANDIDATES.map(String::from).to_vec(),
        ))
    }

    /// The glyph of `ch`.
    pub fn glyph(&self, ch: char) -> Result<&Glyph, FontError> {
        self.glyphs.get(&ch).ok_or(FontError::Missing(ch))
    }

    /// Number of glyphs.
    pub fn len(&self) -> usize {
        self.glyphs.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.glyphs.is_empty()
    }

    /// Draw `text` as columns of 16 dots (bit 0 = top row), the natural unit for
    /// scrolling and for column-addressed LED drivers.
    pub fn columns(&self, text: &str) -> Result<Vec<u16>, FontError> {
        let mut cols = Vec::new();
        for ch in text.chars() {
            let g = self.glyph(ch)?;
            for x in 0..g.width as usize {
                let mut col = 0u16;
                for y in 0..GLYPH_H {
                    if g.dot(x, y) {
                        col |= 1 << y;
                    }
                }
                cols.push(col);
            }
        }
        Ok(cols)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Three glyphs copied from GNU Unifont 15.0.01 (GPL-2+ with font exception).
    pub(crate) const SAMPLE_HEX: &str = "\
0041:0000000018242442427E424242420000
53F7:00001FF01010101010101FF00000FFFE080010001FF000100010001000A00040
8BF7:0040404027FC204003F80040E7FE200023F8220823F822082BF8320822280210
";

    #[test]
    fn hex_glyphs_parse_with_their_widths_and_dots() {
        let f = BitmapFont::parse_hex(SAMPLE_HEX).unwrap();
        assert_eq!(f.len(), 3);
        let a = f.glyph('A').unwrap();
        assert_eq!(a.width, 8);
        assert!(a.dot(3, 4) && a.dot(4, 4) && !a.dot(0, 4));
        let hao = f.glyph('号').unwrap();
        assert_eq!(hao.width, 16);
        assert_eq!(hao.rows[7], 0xFFFE);
        assert_eq!(f.columns("A号").unwrap().len(), 24);
        assert!(matches!(f.glyph('窗'), Err(FontError::Missing('窗'))));
    }

    #[test]
    fn malformed_lines_are_errors_with_their_line_number() {
        assert!(matches!(
            BitmapFont::parse_hex("0041:00\n"),
            Err(FontError::Syntax { line: 1 })
        ));
        assert!(matches!(
            BitmapFont::parse_hex("\nzz:0000000018242442427E424242420000"),
            Err(FontError::Syntax { line: 2 })
        ));
    }

    #[test]
    fn the_installed_font_has_every_character_a_call_needs() {
        // Debian's unifont package is installed by scripts/test.
        let f = BitmapFont::find().expect("install the Debian package unifont");
        let cols = f.columns("请 A001 号到 3 号窗口办理暂停服务").unwrap();
        assert!(cols.iter().filter(|c| **c != 0).count() > 100);
    }

    proptest::proptest! {
        #[test]
        fn no_text_makes_the_hex_parser_panic(s in "[0-9A-Fa-f:#\\n]{0,200}") {
            let _ = BitmapFont::parse_hex(&s);
        }
    }
}
