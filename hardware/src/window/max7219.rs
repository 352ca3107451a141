//! A DIY LED screen: MAX7219 8×8 modules chained on SPI, driven through an
//! `embedded-hal` 1.0 [`SpiDevice`], drawing 16×16 glyphs from a [`BitmapFont`] and
//! scrolling lines that do not fit.
//!
//! Geometry: `modules_wide × modules_high` modules; a text line is two module rows
//! (16 dots). Chain position 0 is the top-left module (nearest the microcontroller's
//! DIN), positions run left to right, then the next module row from the left. Within a
//! module, digit register 1 is the top row and bit 7 the leftmost dot (the common
//! FC-16 4-in-1 boards).
//!
//! The driver never sleeps: the owner calls [`Max7219Display::tick`] at the scroll rate
//! (about every 33 ms for 30 dots a second) and it redraws only when something moved.

use embedded_hal::spi::SpiDevice;
use thiserror::Error;

use super::CounterDisplay;
use super::font::{BitmapFont, FontError};
use super::text::{Align, DisplayContent, Effect};

/// No-op register (pads a chain write).
pub const REG_NOOP: u8 = 0x00;
/// First digit (row) register; rows are 0x01–0x08.
pub const REG_DIGIT0: u8 = 0x01;
/// Decode mode (0 = raw dots).
pub const REG_DECODE_MODE: u8 = 0x09;
/// Intensity 0–15.
pub const REG_INTENSITY: u8 = 0x0A;
/// Scan limit (7 = all 8 rows).
pub const REG_SCAN_LIMIT: u8 = 0x0B;
/// Shutdown (1 = normal operation).
pub const REG_SHUTDOWN: u8 = 0x0C;
/// Display test (0 = off).
pub const REG_DISPLAY_TEST: u8 = 0x0F;

/// Blank columns between the end of a scrolling line and its start coming round again.
pub const SCROLL_GAP: usize = 16;
/// Ticks per blink phase (at 33 ms a tick, about 1 Hz).
pub const BLINK_TICKS: u32 = 15;

/// How the modules are arranged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Geometry {
    /// Modules across.
    pub modules_wide: u8,
    /// Modules down (2 per text line).
    pub modules_high: u8,
}

impl Geometry {
    fn modules(self) -> usize {
        self.modules_wide as usize * self.modules_high as usize
    }
    /// Width in dots.
    pub fn width(self) -> usize {
        self.modules_wide as usize * 8
    }
    /// Text lines.
    pub fn lines(self) -> usize {
        self.modules_high as usize / 2
    }
}

/// Driver errors, generic over the SPI error.
#[derive(Debug, Error)]
pub enum Max7219Error<E: std::fmt::Debug> {
    /// The SPI bus failed.
    #[error("SPI: {0:?}")]
    Spi(E),
    /// Text the font cannot draw.
    #[error(transparent)]
    Font(#[from] FontError),
}

#[derive(Debug, Clone, Default)]
struct LineState {
    cols: Vec<u16>,
    scroll: bool,
    blink: bool,
    offset: usize,
    align: Align,
}

/// A MAX7219 chain showing text.
pub struct Max7219Display<SPI> {
    spi: SPI,
    geometry: Geometry,
    font: BitmapFont,
    lines: Vec<LineState>,
    ticks: u32,
    brightness: u8,
    /// fb[module][row]: bit 7 = leftmost dot.
    fb: Vec<[u8; 8]>,
}

impl<SPI: SpiDevice> Max7219Display<SPI> {
    /// A chain of `geometry` on `spi`, drawing with `font`. Call [`Self::init`] next.
    pub fn new(spi: SPI, geometry: Geometry, font: BitmapFont) -> Self {
        Max7219Display {
            spi,
            geometry,
            font,
            lines: vec![LineState::default(); geometry.lines()],
            ticks: 0,
            brightness: 8,
            fb: vec![[0; 8]; geometry.modules()],
        }
    }

    /// Give the SPI device back.
    pub fn release(self) -> SPI {
        self.spi
    }

    /// Write `reg = value` to every module in one chain transaction.
    fn all(&mut self, reg: u8, value: u8) -> Result<(), Max7219Error<SPI::Error>> {
        let buf: Vec<u8> = (0..self.geometry.modules())
            .flat_map(|_| [reg, value])
            .collect();
        self.spi.write(&buf).map_err(Max7219Error::Spi)
    }

    /// Wake the chain: raw dots, all rows, test off, brightness, then blank.
    pub fn init(&mut self) -> Result<(), Max7219Error<SPI::Error>> {
        self.all(REG_DISPLAY_TEST, 0)?;
        self.all(REG_SCAN_LIMIT, 7)?;
        self.all(REG_DECODE_MODE, 0)?;
        self.all(REG_INTENSITY, self.brightness)?;
        self.all(REG_SHUTDOWN, 1)?;
        self.redraw()
    }

    /// What the framebuffer holds: dot at (x, y).
    pub fn dot(&self, x: usize, y: usize) -> bool {
        let (mx, my) = (x / 8, y / 8);
        if mx >= self.geometry.modules_wide as usize || my >= self.geometry.modules_high as usize {
            return false;
        }
        let m = my * self.geometry.modules_wide as usize + mx;
        self.fb[m][y % 8] >> (7 - x % 8) & 1 == 1
    }

    fn render(&mut self) {
        let width = self.geometry.width();
        let visible =
            !self.lines.iter().any(|l| l.blink) || (self.ticks / BLINK_TICKS).is_multiple_of(2);
        for m in self.fb.iter_mut() {
            *m = [0; 8];
        }
        for (li, line) in self.lines.iter().enumerate() {
            if line.blink && !visible {
                continue;
            }
            let len = line.cols.len();
            for x in 0..width {
                let col = if line.scroll {
                    let period = len + SCROLL_GAP;
                    let i = (x + line.offset) % period;
                    line.cols.get(i).copied().unwrap_or(0)
                } else {
                    let start = match line.align {
                        Align::Left => 0,
                        Align::Centre => (width - len.min(width)) / 2,
                        Align::Right => width - len.min(width),
                    };
                    x.checked_sub(start)
                        .and_then(|i| line.cols.get(i))
                        .copied()
                        .unwrap_or(0)
                };
                for y in 0..16 {
                    if col >> y & 1 == 1 {
                        let yy = li * 16 + y;
                        let m = (yy / 8) * self.geometry.modules_wide as usize + x / 8;
                        self.fb[m][yy % 8] |= 0x80 >> (x % 8);
                    }
                }
            }
        }
    }

    /// Send the framebuffer: one chain transaction per row register. The first word
    /// shifted in ends in the last module, so words go from the chain's end to its start.
    fn redraw(&mut self) -> Result<(), Max7219Error<SPI::Error>> {
        self.render();
        let n = self.geometry.modules();
        for row in 0..8 {
            let mut buf = Vec::with_capacity(2 * n);
            for k in (0..n).rev() {
                buf.push(REG_DIGIT0 + row as u8);
                buf.push(self.fb[k][row]);
            }
            self.spi.write(&buf).map_err(Max7219Error::Spi)?;
        }
        Ok(())
    }

    /// Advance scrolling and blinking one step; redraws (and returns true) only when
    /// something on the matrix moves.
    pub fn tick(&mut self) -> Result<bool, Max7219Error<SPI::Error>> {
        self.ticks = self.ticks.wrapping_add(1);
        let mut moved = false;
        for l in &mut self.lines {
            if l.scroll {
                l.offset = (l.offset + 1) % (l.cols.len() + SCROLL_GAP);
                moved = true;
            }
            if l.blink && self.ticks.is_multiple_of(BLINK_TICKS) {
                moved = true;
            }
        }
        if moved {
            self.redraw()?;
        }
        Ok(moved)
    }
}

impl<SPI: SpiDevice> CounterDisplay for Max7219Display<SPI> {
    type Error = Max7219Error<SPI::Error>;

    fn show(&mut self, content: &DisplayContent) -> Result<(), Self::Error> {
        let width = self.geometry.width();
        let mut lines = vec![LineState::default(); self.geometry.lines()];
        for (state, line) in lines.iter_mut().zip(&content.lines) {
            let cols = self.font.columns(line.text.as_str())?;
            state.scroll = line.effect == Effect::Scroll || cols.len() > width;
            state.blink = line.effect == Effect::Blink;
            state.align = line.align;
            state.cols = cols;
        }
        self.lines = lines;
        self.ticks = 0;
        if content.brightness != self.brightness {
            self.brightness = content.brightness.min(15);
            self.all(REG_INTENSITY, self.brightness)?;
        }
        self.redraw()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::window::font::tests::SAMPLE_HEX;
    use embedded_hal_mock::eh1::spi::{Mock, Transaction};

    fn write(bytes: Vec<u8>) -> Vec<Transaction<u8>> {
        vec![
            Transaction::transaction_start(),
            Transaction::write_vec(bytes),
            Transaction::transaction_end(),
        ]
    }

    const ONE_CHAR: Geometry = Geometry {
        modules_wide: 2,
        modules_high: 2,
    };

    #[test]
    fn init_then_one_glyph_is_these_exact_spi_words() {
        let mut expect = Vec::new();
        for (reg, val) in [(0x0F, 0), (0x0B, 7), (0x09, 0), (0x0A, 8), (0x0C, 1)] {
            expect.extend(write([reg, val].repeat(4)));
        }
        for row in 1..=8u8 {
            expect.extend(write([row, 0].repeat(4)));
        }
        // 号 split over the four modules (top-left, top-right, bottom-left, bottom-right).
        let tl = [0x00, 0x1F, 0x10, 0x10, 0x10, 0x1F, 0x00, 0xFF];
        let tr = [0x00, 0xF0, 0x10, 0x10, 0x10, 0xF0, 0x00, 0xFE];
        let bl = [0x08, 0x10, 0x1F, 0x00, 0x00, 0x00, 0x00, 0x00];
        let br = [0x00, 0x00, 0xF0, 0x10, 0x10, 0x10, 0xA0, 0x40];
        for r in 0..8 {
            let reg = r as u8 + 1;
            expect.extend(write(vec![reg, br[r], reg, bl[r], reg, tr[r], reg, tl[r]]));
        }
        let spi = Mock::new(&expect);
        let font = BitmapFont::parse_hex(SAMPLE_HEX).unwrap();
        let mut d = Max7219Display::new(spi, ONE_CHAR, font);
        d.init().unwrap();
        d.show(&DisplayContent::from_lines(&["号"]).unwrap())
            .unwrap();
        assert!(d.dot(0, 7) && d.dot(14, 7) && !d.dot(15, 7));
        d.release().done();
    }

    #[test]
    fn a_line_wider_than_the_matrix_scrolls_and_comes_round() {
        let font = BitmapFont::parse_hex(SAMPLE_HEX).unwrap();
        // Count instead of expecting: a permissive SPI device.
        struct Sink(usize);
        impl embedded_hal::spi::ErrorType for Sink {
            type Error = core::convert::Infallible;
        }
        impl SpiDevice for Sink {
            fn transaction(
                &mut self,
                ops: &mut [embedded_hal::spi::Operation<'_, u8>],
            ) -> Result<(), Self::Error> {
                self.0 += ops.len();
                Ok(())
            }
        }
        let mut d = Max7219Display::new(Sink(0), ONE_CHAR, font);
        d.show(&DisplayContent::from_lines(&["A号请"]).unwrap())
            .unwrap();
        let first: Vec<bool> = (0..16).map(|x| d.dot(x, 7)).collect();
        assert!(d.tick().unwrap());
        let second: Vec<bool> = (0..16).map(|x| d.dot(x, 7)).collect();
        assert_ne!(first, second);
        assert_eq!(&first[1..], &second[..15]);
        for _ in 1..(8 + 16 + 16 + SCROLL_GAP) {
            d.tick().unwrap();
        }
        let round: Vec<bool> = (0..16).map(|x| d.dot(x, 7)).collect();
        assert_eq!(first, round);
        // A line that fits stays still: no redraw on tick.
        d.show(&DisplayContent::from_lines(&["A"]).unwrap())
            .unwrap();
        assert!(!d.tick().unwrap());
    }

    #[test]
    fn a_character_missing_from_the_font_is_an_error_not_a_blank() {
        let font = BitmapFont::parse_hex(SAMPLE_HEX).unwrap();
        let mut d = Max7219Display::new(Mock::<u8>::new(&[]), ONE_CHAR, font);
        assert!(matches!(
            d.show(&DisplayContent::from_lines(&["窗"]).unwrap()),
            Err(Max7219Error::Font(FontError::Missing('窗')))
        ));
        d.release().done();
    }
}
