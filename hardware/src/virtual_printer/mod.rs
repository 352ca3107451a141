//! A virtual ESC/POS printer for tests and the simulator mode.
//!
//! [`VirtualPrinter`] decodes the subset of ESC/POS that hallq emits (and skips the
//! common rest with the right parameter lengths) into a [`Paper`]: lines of styled
//! runs, QR payloads, raster images, feeds and cuts. It never panics on any input:
//! unknown commands are counted in [`DecodeStats::unknown`] and skipped, commands
//! cut short at the end of input in [`DecodeStats::truncated`]. It answers
//! `DLE EOT n` with the bytes of a configurable [`PrinterState`], so the daemon's
//! printer task can be exercised against paper-out, cover-open and offline.
//!
//! Layout:
//! - this file: the decoder and the document model;
//! - [`render`]: the paper as text and as a PNG drawn with a real CJK font;
//! - [`serve`]: the printer on a TCP port or a pseudo-terminal in a background thread.

pub mod render;
pub mod serve;

use crate::escpos::{Align, CharSize, DLE, EOT, ESC, FS, GS, LF, QrErrorLevel, Raster, StatusKind};
use crate::layout::text_columns;

pub use render::{CjkFont, FontError, GlyphBox, RenderError, Rendered};
pub use serve::VirtualPrinterHandle;

/// Largest raster or 2D-symbol data the decoder waits for; larger declared sizes are
/// treated as garbage so a corrupt header cannot make it buffer gigabytes.
pub const MAX_BLOCK: usize = 4 * 1024 * 1024;

/// The condition the virtual printer reports to `DLE EOT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PrinterState {
    /// Online, paper fine.
    #[default]
    Normal,
    /// Online, roll near its end.
    PaperNearEnd,
    /// Offline, no paper.
    PaperOut,
    /// Offline, cover open.
    CoverOpen,
    /// Offline for no reported cause.
    Offline,
}

impl PrinterState {
    /// The reply byte to `DLE EOT n` (as a real Epson-compatible printer sends).
    pub fn reply(self, kind: StatusKind) -> u8 {
        let [p, o, e, s] = match self {
            PrinterState::Normal => [0x12, 0x12, 0x12, 0x12],
            PrinterState::PaperNearEnd => [0x12, 0x12, 0x12, 0x1E],
            PrinterState::PaperOut => [0x1A, 0x32, 0x12, 0x7E],
            PrinterState::CoverOpen => [0x1A, 0x16, 0x12, 0x12],
            PrinterState::Offline => [0x1A, 0x12, 0x12, 0x12],
        };
        match kind {
            StatusKind::Printer => p,
            StatusKind::Offline => o,
            StatusKind::Error => e,
            StatusKind::PaperSensor => s,
        }
    }
}

/// A stretch of text printed in one style.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    /// Decoded text.
    pub text: String,
    /// `GS !` size in force.
    pub size: CharSize,
    /// Emphasis in force.
    pub bold: bool,
    /// Whether Chinese mode was on (bytes ≥ 0x81 decoded as GBK).
    pub chinese: bool,
}

/// One printed line (ended by `LF`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Line {
    /// Justification in force when the line began.
    pub align: Align,
    /// Styled runs; empty for a blank line.
    pub runs: Vec<Run>,
}

impl Line {
    /// The line's text without styling.
    pub fn text(&self) -> String {
        self.runs.iter().map(|r| r.text.as_str()).collect()
    }
}

/// A QR code the printer was told to print.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QrBlock {
    /// Stored payload.
    pub payload: Vec<u8>,
    /// Module size in dots.
    pub module: u8,
    /// Error correction level.
    pub level: QrErrorLevel,
    /// Justification.
    pub align: Align,
}

/// One thing on the paper, top to bottom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Block {
    /// A line of text.
    Line(Line),
    /// A QR code.
    Qr(QrBlock),
    /// A raster image.
    Image {
        /// Justification.
        align: Align,
        /// The image.
        raster: Raster,
    },
    /// Feed of n lines (`ESC d`).
    FeedLines(u8),
    /// Feed of n dots (`ESC J`).
    FeedDots(u8),
    /// Paper cut; `partial` for `GS V 1/66`.
    Cut {
        /// Partial cut.
        partial: bool,
    },
}

/// The printed document.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Paper {
    /// Everything printed, in order.
    pub blocks: Vec<Block>,
}

impl Paper {
    /// All text lines.
    pub fn lines(&self) -> impl Iterator<Item = &Line> {
        self.blocks.iter().filter_map(|b| match b {
            Block::Line(l) => Some(l),
            _ => None,
        })
    }

    /// All runs of all lines.
    pub fn runs(&self) -> impl Iterator<Item = &Run> {
        self.lines().flat_map(|l| l.runs.iter())
    }

    /// Payloads of all QR codes printed.
    pub fn qr_payloads(&self) -> Vec<Vec<u8>> {
        self.blocks
            .iter()
            .filter_map(|b| match b {
                Block::Qr(q) => Some(q.payload.clone()),
                _ => None,
            })
            .collect()
    }

    /// Number of cuts (tickets, usually).
    pub fn cuts(&self) -> usize {
        self.blocks
            .iter()
            .filter(|b| matches!(b, Block::Cut { .. }))
            .count()
    }

    /// The paper as plain text, `columns` wide, aligned as printed; sizes are not
    /// drawn, QR codes, images and cuts appear as bracketed markers.
    pub fn to_text(&self, columns: usize) -> String {
        let mut out = String::new();
        for b in &self.blocks {
            match b {
                Block::Line(l) => {
                    let text = l.text();
                    let w: usize = l
                        .runs
                        .iter()
                        .map(|r| text_columns(&r.text) * r.size.width() as usize)
                        .sum();
                    let pad = match l.align {
                        Align::Left => 0,
                        Align::Center => columns.saturating_sub(w) / 2,
                        Align::Right => columns.saturating_sub(w),
                    };
                    out.push_str(&" ".repeat(pad));
                    out.push_str(&text);
                    out.push('\n');
                }
                Block::Qr(q) => {
                    out.push_str(&format!("[QR {}]\n", String::from_utf8_lossy(&q.payload)));
                }
                Block::Image { raster, .. } => {
                    out.push_str(&format!("[image {}x{}]\n", raster.width(), raster.height()));
                }
                Block::FeedLines(n) => {
                    for _ in 0..*n {
                        out.push('\n');
                    }
                }
                Block::FeedDots(_) => {}
                Block::Cut { .. } => {
                    out.push_str(&"-".repeat(columns.min(8)));
                    out.push_str(" cut ");
                    out.push_str(&"-".repeat(columns.saturating_sub(13)));
                    out.push('\n');
                }
            }
        }
        out
    }
}

/// Counters of what the decoder met, for tests and the simulator's log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DecodeStats {
    /// Commands recognised (text runs not counted).
    pub commands: usize,
    /// Unknown commands or invalid parameters skipped.
    pub unknown: usize,
    /// Commands cut short at the end of input.
    pub truncated: usize,
    /// Bytes that could not be decoded as text.
    pub bad_text: usize,
    /// `DLE EOT` queries answered.
    pub status_queries: usize,
}

#[derive(Debug, Clone, Copy)]
struct Mode {
    align: Align,
    size: CharSize,
    bold: bool,
    chinese: bool,
}

impl Default for Mode {
    fn default() -> Self {
        Mode {
            align: Align::Left,
            size: CharSize::NORMAL,
            bold: false,
            chinese: false,
        }
    }
}

/// The decoder. Feed it bytes as they arrive; read the [`Paper`].
#[derive(Debug)]
pub struct VirtualPrinter {
    state: PrinterState,
    mode: Mode,
    paper: Paper,
    line: Line,
    line_started: bool,
    qr_module: u8,
    qr_level: QrErrorLevel,
    qr_data: Option<Vec<u8>>,
    pending: Vec<u8>,
    stats: DecodeStats,
}

impl Default for VirtualPrinter {
    fn default() -> Self {
        VirtualPrinter::new()
    }
}

/// Result of trying to decode one item at the front of the buffer.
enum Step {
    /// Consumed this many bytes.
    Done(usize),
    /// Need more bytes.
    Need,
}

impl VirtualPrinter {
    /// A printer in the normal state with empty paper.
    pub fn new() -> VirtualPrinter {
        VirtualPrinter {
            state: PrinterState::Normal,
            mode: Mode::default(),
            paper: Paper::default(),
            line: Line::default(),
            line_started: false,
            qr_module: 3,
            qr_level: QrErrorLevel::M,
            qr_data: None,
            pending: Vec::new(),
            stats: DecodeStats::default(),
        }
    }

    /// Decode a complete job at once (pending bytes at the end count as truncated).
    pub fn decode(bytes: &[u8]) -> (Paper, DecodeStats) {
        let mut p = VirtualPrinter::new();
        let _ = p.feed(bytes);
        p.finish();
        (p.paper.clone(), p.stats)
    }

    /// Set what `DLE EOT` replies report.
    pub fn set_state(&mut self, state: PrinterState) {
        self.state = state;
    }

    /// Current reported state.
    pub fn state(&self) -> PrinterState {
        self.state
    }

    /// What has been printed so far (lines end at `LF`).
    pub fn paper(&self) -> &Paper {
        &self.paper
    }

    /// Decoder counters.
    pub fn stats(&self) -> DecodeStats {
        self.stats
    }

    /// Take the paper, leaving a fresh roll.
    pub fn take_paper(&mut self) -> Paper {
        std::mem::take(&mut self.paper)
    }

    /// Feed bytes; returns the bytes the printer sends back (status replies).
    /// A command split across calls is kept until the rest arrives.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<u8> {
        let mut replies = Vec::new();
        self.pending.extend_from_slice(bytes);
        let buf = std::mem::take(&mut self.pending);
        let mut pos = 0;
        while pos < buf.len() {
            match self.step(&buf[pos..], &mut replies) {
                Step::Done(n) => pos += n.max(1),
                Step::Need => break,
            }
        }
        self.pending = buf.get(pos..).map(<[u8]>::to_vec).unwrap_or_default();
        replies
    }

    /// End of input: drop an incomplete command (counted) and end an open line.
    pub fn finish(&mut self) {
        if !self.pending.is_empty() {
            self.stats.truncated += 1;
            self.pending.clear();
        }
        if !self.line.runs.is_empty() {
            self.end_line();
        }
    }

    fn end_line(&mut self) {
        let mut line = std::mem::take(&mut self.line);
        if !self.line_started {
            line.align = self.mode.align;
        }
        self.paper.blocks.push(Block::Line(line));
        self.line_started = false;
    }

    fn flush_partial_line(&mut self) {
        if !self.line.runs.is_empty() {
            self.end_line();
        }
    }

    fn push_text(&mut self, text: &str) {
        if !self.line_started {
            self.line.align = self.mode.align;
            self.line_started = true;
        }
        let m = self.mode;
        match self.line.runs.last_mut() {
            Some(r) if r.size == m.size && r.bold == m.bold && r.chinese == m.chinese => {
                r.text.push_str(text)
            }
            _ => self.line.runs.push(Run {
                text: text.to_string(),
                size: m.size,
                bold: m.bold,
                chinese: m.chinese,
            }),
        }
    }

    fn known(&mut self, n: usize) -> Step {
        self.stats.commands += 1;
        Step::Done(n)
    }

    fn unknown(&mut self, n: usize) -> Step {
        self.stats.unknown += 1;
        tracing::debug!(skipped = n, "virtual printer: unknown or invalid command");
        Step::Done(n)
    }

    fn step(&mut self, b: &[u8], replies: &mut Vec<u8>) -> Step {
        let Some(&first) = b.first() else {
            return Step::Need;
        };
        match first {
            LF => {
                self.end_line();
                self.known(1)
            }
            b'\r' | 0x0C | 0x00 => self.known(1),
            b'\t' => {
                self.push_text(" ");
                self.known(1)
            }
            ESC => self.esc(b),
            GS => self.gs(b),
            FS => self.fs(b),
            DLE => self.dle(b, replies),
            c if c < 0x20 || c == 0x7F => self.unknown(1),
            _ => self.text(b),
        }
    }

    fn text(&mut self, b: &[u8]) -> Step {
        let mut s = String::new();
        let mut i = 0;
        while let Some(&c) = b.get(i) {
            if (0x20..0x7F).contains(&c) {
                s.push(c as char);
                i += 1;
            } else if c >= 0x80 {
                if self.mode.chinese && (0x81..=0xFE).contains(&c) {
                    let Some(&t) = b.get(i + 1) else {
                        if s.is_empty() {
                            return Step::Need;
                        }
                        break;
                    };
                    let pair = [c, t];
                    let (cow, had_errors) = encoding_rs::GBK.decode_without_bom_handling(&pair);
                    if had_errors || cow.chars().count() != 1 {
                        self.stats.bad_text += 1;
                        s.push('\u{FFFD}');
                        // A bad trail byte may be the start of the next thing.
                        i += if (0x40..=0xFE).contains(&t) && t != 0x7F {
                            2
                        } else {
                            1
                        };
                    } else {
                        s.push_str(&cow);
                        i += 2;
                    }
                } else {
                    self.stats.bad_text += 1;
                    s.push('\u{FFFD}');
                    i += 1;
                }
            } else {
                break;
            }
        }
        if !s.is_empty() {
            self.push_text(&s);
        }
        Step::Done(i)
    }

    fn esc(&mut self, b: &[u8]) -> Step {
        let Some(&op) = b.get(1) else {
            return Step::Need;
        };
        let arg = b.get(2).copied();
        // Commands with one parameter byte: wait for it.
        let one_param = b"aE!dJG-MtRV{3 =rU";
        if one_param.contains(&op) && arg.is_none() {
            return Step::Need;
        }
        let n = arg.unwrap_or(0);
        match op {
            b'@' => {
                self.mode = Mode::default();
                self.line = Line::default();
                self.line_started = false;
                self.qr_module = 3;
                self.qr_level = QrErrorLevel::M;
                self.qr_data = None;
                self.known(2)
            }
            b'a' => match Align::from_code(n) {
                Some(a) => {
                    self.mode.align = a;
                    self.known(3)
                }
                None => self.unknown(3),
            },
            b'E' | b'G' => {
                self.mode.bold = n & 1 == 1;
                self.known(3)
            }
            b'!' => {
                self.mode.bold = n & 0x08 != 0;
                let w = if n & 0x20 != 0 { 2 } else { 1 };
                let h = if n & 0x10 != 0 { 2 } else { 1 };
                self.mode.size = CharSize::new(w, h).unwrap_or(CharSize::NORMAL);
                self.known(3)
            }
            b'd' => {
                self.flush_partial_line();
                self.paper.blocks.push(Block::FeedLines(n));
                self.known(3)
            }
            b'J' => {
                self.flush_partial_line();
                self.paper.blocks.push(Block::FeedDots(n));
                self.known(3)
            }
            b'-' | b'M' | b't' | b'R' | b'V' | b'{' | b'3' | b' ' | b'=' | b'r' | b'U' => {
                self.known(3)
            }
            b'2' => self.known(2),
            b'$' | b'\\' => {
                if b.len() < 4 {
                    return Step::Need;
                }
                self.known(4)
            }
            b'c' => {
                if b.len() < 4 {
                    return Step::Need;
                }
                self.known(4)
            }
            b'p' => {
                if b.len() < 5 {
                    return Step::Need;
                }
                self.known(5)
            }
            _ => self.unknown(2),
        }
    }

    fn gs(&mut self, b: &[u8]) -> Step {
        let Some(&op) = b.get(1) else {
            return Step::Need;
        };
        match op {
            b'!' => {
                let Some(&n) = b.get(2) else {
                    return Step::Need;
                };
                match CharSize::from_code(n) {
                    Some(s) => {
                        self.mode.size = s;
                        self.known(3)
                    }
                    None => self.unknown(3),
                }
            }
            b'V' => {
                let Some(&m) = b.get(2) else {
                    return Step::Need;
                };
                let (len, partial) = match m {
                    0 | 48 => (3, false),
                    1 | 49 => (3, true),
                    65 | 97 | 103 => (4, false),
                    66 | 98 | 104 => (4, true),
                    _ => return self.unknown(3),
                };
                if b.len() < len {
                    return Step::Need;
                }
                self.flush_partial_line();
                self.paper.blocks.push(Block::Cut { partial });
                self.known(len)
            }
            b'v' => self.raster(b),
            b'(' => self.extended(b),
            b'B' | b'H' | b'f' | b'h' | b'w' | b'a' | b'b' | b'I' | b'r' | b'E' => {
                if b.len() < 3 {
                    return Step::Need;
                }
                self.known(3)
            }
            b'L' | b'W' | b'P' | b'\\' | b'$' => {
                if b.len() < 4 {
                    return Step::Need;
                }
                self.known(4)
            }
            b'k' => {
                // Barcodes: m 0..=6 NUL-terminated, m 65..=73 length-prefixed.
                let Some(&m) = b.get(2) else {
                    return Step::Need;
                };
                if m <= 6 {
                    match b.iter().skip(3).position(|&c| c == 0) {
                        Some(p) => self.known(3 + p + 1),
                        None if b.len() > 3 + 255 => self.unknown(3),
                        None => Step::Need,
                    }
                } else if (65..=73).contains(&m) {
                    let Some(&n) = b.get(3) else {
                        return Step::Need;
                    };
                    let total = 4 + n as usize;
                    if b.len() < total {
                        return Step::Need;
                    }
                    self.known(total)
                } else {
                    self.unknown(3)
                }
            }
            _ => self.unknown(2),
        }
    }

    fn raster(&mut self, b: &[u8]) -> Step {
        if b.len() < 8 {
            // GS v must be followed by '0' to be ours; decide as soon as we can.
            if b.get(2).is_some_and(|&c| c != b'0') {
                return self.unknown(2);
            }
            return Step::Need;
        }
        if b[2] != b'0' {
            return self.unknown(2);
        }
        let x = b[4] as usize | (b[5] as usize) << 8;
        let y = b[6] as usize | (b[7] as usize) << 8;
        let len = x.saturating_mul(y);
        if len == 0 || len > MAX_BLOCK {
            return self.unknown(8);
        }
        if b.len() < 8 + len {
            return Step::Need;
        }
        let data = b[8..8 + len].to_vec();
        match Raster::new((x * 8) as u32, y as u32, data) {
            Ok(raster) => {
                self.flush_partial_line();
                self.paper.blocks.push(Block::Image {
                    align: self.mode.align,
                    raster,
                });
                self.known(8 + len)
            }
            Err(_) => self.unknown(8 + len),
        }
    }

    fn extended(&mut self, b: &[u8]) -> Step {
        if b.len() < 5 {
            return Step::Need;
        }
        let len = b[3] as usize | (b[4] as usize) << 8;
        let total = 5 + len;
        if b.len() < total {
            return Step::Need;
        }
        let body = &b[5..total];
        if b[2] != b'k' || body.first() != Some(&0x31) {
            // Another GS ( function or another symbology: skip it whole.
            return self.known(total);
        }
        match (body.get(1), body.get(2)) {
            (Some(0x41), _) => self.known(total),
            (Some(0x43), Some(&n)) if (1..=16).contains(&n) => {
                self.qr_module = n;
                self.known(total)
            }
            (Some(0x45), Some(&n)) => match QrErrorLevel::from_code(n) {
                Some(l) => {
                    self.qr_level = l;
                    self.known(total)
                }
                None => self.unknown(total),
            },
            (Some(0x50), Some(0x30)) => {
                self.qr_data = Some(body[3..].to_vec());
                self.known(total)
            }
            (Some(0x51), Some(0x30)) => match self.qr_data.clone() {
                Some(payload) if !payload.is_empty() => {
                    self.flush_partial_line();
                    self.paper.blocks.push(Block::Qr(QrBlock {
                        payload,
                        module: self.qr_module,
                        level: self.qr_level,
                        align: self.mode.align,
                    }));
                    self.known(total)
                }
                _ => self.unknown(total),
            },
            _ => self.unknown(total),
        }
    }

    fn fs(&mut self, b: &[u8]) -> Step {
        let Some(&op) = b.get(1) else {
            return Step::Need;
        };
        match op {
            b'&' => {
                self.mode.chinese = true;
                self.known(2)
            }
            b'.' => {
                self.mode.chinese = false;
                self.known(2)
            }
            b'!' | b'-' | b'W' | b'C' => {
                if b.len() < 3 {
                    return Step::Need;
                }
                self.known(3)
            }
            b'S' | b'p' => {
                if b.len() < 4 {
                    return Step::Need;
                }
                self.known(4)
            }
            _ => self.unknown(2),
        }
    }

    fn dle(&mut self, b: &[u8], replies: &mut Vec<u8>) -> Step {
        let Some(&op) = b.get(1) else {
            return Step::Need;
        };
        match op {
            EOT => {
                let Some(&n) = b.get(2) else {
                    return Step::Need;
                };
                match StatusKind::from_code(n) {
                    Some(kind) => {
                        replies.push(self.state.reply(kind));
                        self.stats.status_queries += 1;
                        self.known(3)
                    }
                    None => self.unknown(3),
                }
            }
            0x05 => {
                if b.len() < 3 {
                    return Step::Need;
                }
                self.known(3)
            }
            0x14 => {
                if b.len() < 5 {
                    return Step::Need;
                }
                self.known(5)
            }
            _ => self.unknown(1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::escpos::PaperWidth;
    use crate::escpos::{Cut, Encoder};
    use crate::layout::{TicketPrint, TicketTemplate};

    fn ticket() -> TicketPrint {
        TicketPrint {
            hall_name: "某某县政务服务中心".into(),
            number: "A012".into(),
            service_name: "不动产登记".into(),
            waiting_ahead: 5,
            windows: vec!["3号窗口".into()],
            issued_at: "2026-11-23 09:30".into(),
            ticket_id: "T-A012".into(),
            page_url: None,
            priority: None,
        }
    }

    #[test]
    fn decodes_a_ticket_into_styled_lines_qr_and_cut() {
        let bytes = TicketTemplate::default()
            .validate(PaperWidth::Mm58)
            .unwrap()
            .render(&ticket())
            .unwrap();
        let (paper, stats) = VirtualPrinter::decode(&bytes);
        assert_eq!(stats.unknown, 0);
        assert_eq!(stats.truncated, 0);
        assert_eq!(stats.bad_text, 0);
        let number = paper.runs().find(|r| r.text == "A012").unwrap();
        assert_eq!(number.size, CharSize::uniform(4).unwrap());
        assert!(number.bold);
        assert!(number.chinese);
        let lines: Vec<String> = paper.lines().map(Line::text).collect();
        assert!(lines.contains(&"某某县政务服务中心".to_string()));
        assert!(lines.contains(&"您前面还有 5 人等候".to_string()));
        assert!(lines.contains(&"过号请重新取号".to_string()));
        assert_eq!(paper.qr_payloads(), vec![b"T-A012".to_vec()]);
        assert_eq!(paper.cuts(), 1);
        let text = paper.to_text(32);
        assert!(text.contains("[QR T-A012]"), "{text}");
    }

    #[test]
    fn a_command_split_across_feeds_is_kept_until_complete() {
        let mut e = Encoder::new();
        e.chinese_on();
        e.line("取号").unwrap();
        e.cut(Cut::Full);
        let bytes = e.into_bytes();
        let mut p = VirtualPrinter::new();
        for b in &bytes {
            p.feed(std::slice::from_ref(b));
        }
        p.finish();
        assert_eq!(p.stats().truncated, 0);
        assert_eq!(p.paper().lines().next().unwrap().text(), "取号");
        assert_eq!(p.paper().cuts(), 1);
    }

    #[test]
    fn unknown_and_truncated_commands_are_counted_and_skipped() {
        let (paper, stats) = VirtualPrinter::decode(b"\x1B\x7Ehello\n\x1D\x28\x6B\x07");
        assert_eq!(stats.unknown, 1);
        assert_eq!(stats.truncated, 1);
        assert_eq!(paper.lines().next().unwrap().text(), "hello");
    }

    #[test]
    fn answers_status_queries_with_its_state() {
        let mut p = VirtualPrinter::new();
        assert_eq!(p.feed(b"\x10\x04\x01\x10\x04\x04"), [0x12, 0x12]);
        p.set_state(PrinterState::PaperOut);
        assert_eq!(
            p.feed(b"\x10\x04\x01\x10\x04\x02\x10\x04\x03\x10\x04\x04"),
            [0x1A, 0x32, 0x12, 0x7E]
        );
        let s = crate::status::PrinterStatus::from_replies([0x1A, 0x32, 0x12, 0x7E]).unwrap();
        assert!(s.paper_out);
        for st in [
            PrinterState::Normal,
            PrinterState::PaperNearEnd,
            PrinterState::PaperOut,
            PrinterState::CoverOpen,
            PrinterState::Offline,
        ] {
            let r = StatusKind::ALL.map(|k| st.reply(k));
            let s = crate::status::PrinterStatus::from_replies(r).unwrap();
            assert_eq!(
                s.ready(),
                matches!(st, PrinterState::Normal | PrinterState::PaperNearEnd)
            );
        }
    }

    #[test]
    fn alignment_is_taken_at_the_start_of_a_line() {
        let (paper, _) = VirtualPrinter::decode(b"\x1Ba\x01ab\x1Ba\x02cd\n");
        let l = paper.lines().next().unwrap();
        assert_eq!(l.align, Align::Center);
        assert_eq!(l.text(), "abcd");
    }

    proptest::proptest! {
        #[test]
        fn decoder_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..2048)) {
            let mut p = VirtualPrinter::new();
            let mid = bytes.len() / 2;
            let _ = p.feed(&bytes[..mid]);
            let _ = p.feed(&bytes[mid..]);
            p.finish();
            let _ = p.paper().to_text(32);
        }

        #[test]
        fn decoder_never_panics_on_command_soup(parts in proptest::collection::vec(
            proptest::prop_oneof![
                proptest::collection::vec(proptest::prelude::any::<u8>(), 0..8),
                proptest::prop_oneof![
                    proptest::strategy::Just(vec![0x1Bu8]), proptest::strategy::Just(vec![0x1D]),
                    proptest::strategy::Just(vec![0x1C, 0x26]), proptest::strategy::Just(vec![0x10, 0x04]),
                    proptest::strategy::Just(vec![0x1D, 0x28, 0x6B]), proptest::strategy::Just(vec![0x1D, 0x76, 0x30, 0]),
                ],
            ], 0..64)) {
            let bytes: Vec<u8> = parts.concat();
            let (paper, _) = VirtualPrinter::decode(&bytes);
            let _ = paper.to_text(48);
        }
    }
}
