//! Draw a [`Paper`] as a receipt image, the way a 203 dpi thermal head would.
//!
//! Geometry follows ESC/POS Font A: an ASCII cell is 12×24 dots, a CJK cell 24×24,
//! both scaled by the `GS !` multipliers; a line is as tall as its tallest cell plus
//! 6 dots of spacing. Glyphs come from a real CJK font loaded from a file
//! ([`CjkFont`]), because a simulator that draws tofu boxes would hide exactly the
//! encoding mistakes it is there to show. Every drawn character's cell is recorded
//! in [`Rendered::glyphs`] so tests can check that ink landed where text should be.

use std::path::{Path, PathBuf};

use ab_glyph::{Font, FontVec, GlyphId, PxScale, ScaleFont, point};
use thiserror::Error;

use super::{Block, Paper};
use crate::escpos::{Align, CharSize, PaperWidth, QrErrorLevel};

/// Fonts looked for by [`CjkFont::find`], in order (Debian package in brackets):
/// Noto Sans CJK [fonts-noto-cjk], WenQuanYi Micro Hei [fonts-wqy-microhei],
/// WenQuanYi Zen Hei [fonts-wqy-zenhei].
pub const FONT_CANDIDATES: [&str; 4] = [
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc",
];

/// Environment variable naming a font file that overrides [`FONT_CANDIDATES`].
pub const FONT_ENV: &str = "HALLQ_CJK_FONT";

/// Base cell height in dots (Font A).
pub const CELL_H: u32 = 24;
/// Base half-width cell width in dots (Font A).
pub const CELL_W: u32 = 12;
/// Extra dots between lines.
pub const LINE_GAP: u32 = 6;
/// Height of an empty line / one `ESC d` line.
pub const LINE_PITCH: u32 = CELL_H + LINE_GAP;

/// Why a font could not be loaded.
#[derive(Debug, Error)]
pub enum FontError {
    /// File unreadable.
    #[error("font {path}: {source}")]
    Read {
        /// File.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// Not a font ab_glyph can use.
    #[error("font {path} (face {index}) is not a usable TrueType/OpenType font")]
    Invalid {
        /// File.
        path: PathBuf,
        /// Face index in a collection.
        index: u32,
    },
    /// None of the candidates exist.
    #[error(
        "no CJK font found: set {FONT_ENV} or install the Debian package fonts-wqy-microhei \
         (or fonts-noto-cjk); looked at {0:?}"
    )]
    NotFound(Vec<String>),
}

/// Why rendering failed.
#[derive(Debug, Error)]
pub enum RenderError {
    /// PNG encoding failed.
    #[error("PNG encoding failed: {0}")]
    Png(#[from] png::EncodingError),
    /// Writing the file failed.
    #[error("writing {path}: {source}")]
    Write {
        /// File.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
}

/// A CJK font loaded from a file (face 0 of a `.ttc` collection unless told).
pub struct CjkFont {
    font: FontVec,
    path: PathBuf,
}

impl std::fmt::Debug for CjkFont {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CjkFont").field("path", &self.path).finish()
    }
}

impl CjkFont {
    /// Load face 0 of `path`.
    pub fn load(path: impl AsRef<Path>) -> Result<CjkFont, FontError> {
        CjkFont::load_index(path, 0)
    }

    /// Load face `index` of a font collection.
    pub fn load_index(path: impl AsRef<Path>, index: u32) -> Result<CjkFont, FontError> {
        let path = path.as_ref().to_path_buf();
        let data = std::fs::read(&path).map_err(|source| FontError::Read {
            path: path.clone(),
            source,
        })?;
        let font =
            FontVec::try_from_vec_and_index(data, index).map_err(|_| FontError::Invalid {
                path: path.clone(),
                index,
            })?;
        Ok(CjkFont { font, path })
    }

    /// Load `$HALLQ_CJK_FONT` if set, else the first of [`FONT_CANDIDATES`] present.
    pub fn find() -> Result<CjkFont, FontError> {
        if let Some(p) = std::env::var_os(FONT_ENV) {
            return CjkFont::load(PathBuf::from(p));
        }
        for c in FONT_CANDIDATES {
            if Path::new(c).exists() {
                return CjkFont::load(c);
            }
        }
        Err(FontError::NotFound(
            FONT_CANDIDATES.iter().map(|s| s.to_string()).collect(),
        ))
    }

    /// The file it came from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the font has a real glyph (not `.notdef`) for `c`.
    pub fn has_glyph(&self, c: char) -> bool {
        self.font.glyph_id(c) != GlyphId(0)
    }
}

/// Where one character was drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GlyphBox {
    /// The character.
    pub ch: char,
    /// Left edge in image pixels.
    pub x: u32,
    /// Top edge.
    pub y: u32,
    /// Cell width.
    pub w: u32,
    /// Cell height.
    pub h: u32,
}

/// A rendered receipt: 8-bit grey pixels (0 black, 255 white).
#[derive(Debug, Clone)]
pub struct Rendered {
    /// Image width (paper dots plus margins).
    pub width: u32,
    /// Image height.
    pub height: u32,
    /// Row-major grey pixels.
    pub pixels: Vec<u8>,
    /// Every character cell drawn (spaces excluded).
    pub glyphs: Vec<GlyphBox>,
    /// Characters the font had no glyph for (drawn as the font's `.notdef`).
    pub missing_glyphs: Vec<char>,
    /// QR codes that could not be drawn (payload too long for any QR version).
    pub bad_qr: usize,
}

impl Rendered {
    /// Grey value at (x, y); white outside.
    pub fn pixel(&self, x: u32, y: u32) -> u8 {
        if x >= self.width || y >= self.height {
            return 255;
        }
        self.pixels[(y * self.width + x) as usize]
    }

    /// Pixels darker than mid-grey inside a box.
    pub fn dark_pixels_in(&self, x: u32, y: u32, w: u32, h: u32) -> usize {
        let mut n = 0;
        for yy in y..y.saturating_add(h).min(self.height) {
            for xx in x..x.saturating_add(w).min(self.width) {
                if self.pixel(xx, yy) < 128 {
                    n += 1;
                }
            }
        }
        n
    }

    /// Encode as a greyscale PNG.
    pub fn to_png(&self) -> Result<Vec<u8>, RenderError> {
        let mut out = Vec::new();
        {
            let mut enc = png::Encoder::new(&mut out, self.width, self.height);
            enc.set_color(png::ColorType::Grayscale);
            enc.set_depth(png::BitDepth::Eight);
            let mut w = enc.write_header()?;
            w.write_image_data(&self.pixels)?;
            w.finish()?;
        }
        Ok(out)
    }

    /// Write the PNG to a file.
    pub fn write_png(&self, path: impl AsRef<Path>) -> Result<(), RenderError> {
        let path = path.as_ref();
        let bytes = self.to_png()?;
        std::fs::write(path, bytes).map_err(|source| RenderError::Write {
            path: path.to_path_buf(),
            source,
        })
    }
}

/// Margin of white around the printable width, like the unprinted edge of the roll.
pub const MARGIN: u32 = 24;

struct Canvas {
    width: u32,
    pixels: Vec<u8>,
}

impl Canvas {
    fn height(&self) -> u32 {
        (self.pixels.len() / self.width as usize) as u32
    }

    fn ensure(&mut self, h: u32) {
        let need = self.width as usize * h as usize;
        if self.pixels.len() < need {
            self.pixels.resize(need, 255);
        }
    }

    fn ink(&mut self, x: i64, y: i64, coverage: f32) {
        if x < 0 || y < 0 || x >= self.width as i64 {
            return;
        }
        self.ensure(y as u32 + 1);
        let i = y as usize * self.width as usize + x as usize;
        let v = (255.0 * (1.0 - coverage.clamp(0.0, 1.0))) as u8;
        if let Some(p) = self.pixels.get_mut(i) {
            *p = (*p).min(v);
        }
    }

    fn fill(&mut self, x: u32, y: u32, w: u32, h: u32) {
        for yy in y..y + h {
            for xx in x..x + w {
                self.ink(xx as i64, yy as i64, 1.0);
            }
        }
    }
}

struct Cell {
    ch: char,
    w: u32,
    h: u32,
    size: CharSize,
    bold: bool,
}

fn align_offset(align: Align, used: u32, dots: u32) -> u32 {
    match align {
        Align::Left => 0,
        Align::Center => dots.saturating_sub(used) / 2,
        Align::Right => dots.saturating_sub(used),
    }
}

impl Paper {
    /// Draw the paper for a roll of `paper` width with `font`.
    pub fn render(&self, font: &CjkFont, paper: PaperWidth) -> Rendered {
        let dots = paper.dots();
        let mut c = Canvas {
            width: dots + 2 * MARGIN,
            pixels: Vec::new(),
        };
        let mut y = MARGIN;
        let mut glyphs = Vec::new();
        let mut missing = Vec::new();
        let mut bad_qr = 0;
        for block in &self.blocks {
            match block {
                Block::Line(line) => {
                    // Break into rows the way the printer wraps a full line buffer.
                    let mut rows: Vec<Vec<Cell>> = vec![Vec::new()];
                    let mut used = 0;
                    for run in &line.runs {
                        for ch in run.text.chars() {
                            let base = if ch.is_ascii() { CELL_W } else { 2 * CELL_W };
                            let w = base * run.size.width() as u32;
                            let h = CELL_H * run.size.height() as u32;
                            if used + w > dots && used > 0 {
                                rows.push(Vec::new());
                                used = 0;
                            }
                            used += w;
                            if let Some(r) = rows.last_mut() {
                                r.push(Cell {
                                    ch,
                                    w,
                                    h,
                                    size: run.size,
                                    bold: run.bold,
                                });
                            }
                        }
                    }
                    for row in rows {
                        let used: u32 = row.iter().map(|c| c.w).sum();
                        let line_h = row.iter().map(|c| c.h).max().unwrap_or(CELL_H);
                        let mut x = MARGIN + align_offset(line.align, used, dots);
                        for cell in &row {
                            // Cells sit on a common bottom line, as on the printer.
                            let top = y + line_h - cell.h;
                            if cell.ch != ' ' {
                                if !font.has_glyph(cell.ch) {
                                    missing.push(cell.ch);
                                }
                                draw_glyph(&mut c, font, cell, x, top);
                                glyphs.push(GlyphBox {
                                    ch: cell.ch,
                                    x,
                                    y: top,
                                    w: cell.w,
                                    h: cell.h,
                                });
                            }
                            x += cell.w;
                        }
                        y += line_h + LINE_GAP;
                    }
                }
                Block::Qr(q) => {
                    let level = match q.level {
                        QrErrorLevel::L => qrcode::EcLevel::L,
                        QrErrorLevel::M => qrcode::EcLevel::M,
                        QrErrorLevel::Q => qrcode::EcLevel::Q,
                        QrErrorLevel::H => qrcode::EcLevel::H,
                    };
                    match qrcode::QrCode::with_error_correction_level(&q.payload, level) {
                        Ok(code) => {
                            let n = code.width() as u32;
                            let m = q.module as u32;
                            let x0 = MARGIN + align_offset(q.align, n * m, dots);
                            let colors = code.to_colors();
                            for (i, col) in colors.iter().enumerate() {
                                if *col == qrcode::Color::Dark {
                                    let (mx, my) = (i as u32 % n, i as u32 / n);
                                    c.fill(x0 + mx * m, y + my * m, m, m);
                                }
                            }
                            y += n * m;
                        }
                        Err(_) => bad_qr += 1,
                    }
                }
                Block::Image { align, raster } => {
                    let x0 = MARGIN + align_offset(*align, raster.width(), dots);
                    // Dots beyond the head's width fall off the paper, as on the printer.
                    let visible = raster.width().min(dots);
                    for ry in 0..raster.height() {
                        for rx in 0..visible {
                            if raster.dot(rx, ry) {
                                c.ink((x0 + rx) as i64, (y + ry) as i64, 1.0);
                            }
                        }
                    }
                    y += raster.height();
                }
                Block::FeedLines(n) => y += *n as u32 * LINE_PITCH,
                Block::FeedDots(n) => y += *n as u32,
                Block::Cut { .. } => {
                    y += 8;
                    let mut x = 0;
                    while x < c.width {
                        for dx in 0..6 {
                            c.ink((x + dx) as i64, y as i64, 0.6);
                        }
                        x += 12;
                    }
                    y += 8 + MARGIN;
                }
            }
        }
        c.ensure(y + MARGIN);
        let height = c.height();
        Rendered {
            width: c.width,
            height,
            pixels: c.pixels,
            glyphs,
            missing_glyphs: missing,
            bad_qr,
        }
    }
}

fn draw_glyph(c: &mut Canvas, font: &CjkFont, cell: &Cell, x: u32, top: u32) {
    let f = &font.font;
    let id = f.glyph_id(cell.ch);
    // ab_glyph's scale.y is ascent - descent in pixels: the glyph fills the cell height.
    let sy = (CELL_H * cell.size.height() as u32) as f32;
    let mut sx = (CELL_H * cell.size.width() as u32) as f32;
    let advance = f.as_scaled(PxScale { x: sx, y: sy }).h_advance(id);
    if advance > cell.w as f32 && advance > 0.0 {
        sx *= cell.w as f32 / advance;
    }
    let scaled = f.as_scaled(PxScale { x: sx, y: sy });
    let advance = scaled.h_advance(id);
    let ox = x as f32 + ((cell.w as f32 - advance) / 2.0).max(0.0);
    let baseline = top as f32 + scaled.ascent();
    // Emphasis as the head does it: the dots struck again, shifted right; the shift
    // grows with the width multiplier so a bold quad-size number looks bold.
    let strikes = if cell.bold {
        cell.size.width() as u32
    } else {
        0
    };
    for dx in 0..=strikes {
        let glyph =
            id.with_scale_and_position(PxScale { x: sx, y: sy }, point(ox + dx as f32, baseline));
        if let Some(og) = f.outline_glyph(glyph) {
            let b = og.px_bounds();
            og.draw(|gx, gy, cov| {
                c.ink(b.min.x as i64 + gx as i64, b.min.y as i64 + gy as i64, cov);
            });
        }
    }
}
