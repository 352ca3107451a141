//! ESC/POS encoder: the bytes hallq sends to a thermal ticket printer.
//!
//! Every command we use is a variant of [`Command`], encoded by one function,
//! [`Command::encode`], so the byte layout of each opcode lives in exactly one
//! place and the golden-byte tests below pin it down. [`Encoder`] collects
//! commands into a `Vec<u8>` (pure, no I/O); [`EscPosWriter`] sends them to any
//! `std::io::Write` (a serial port, `/dev/usb/lp0`, a TCP socket, a `Vec<u8>`)
//! and gives the writer back with [`EscPosWriter::release`].
//!
//! Text is sent as GBK two-byte codes inside Chinese mode (`FS &`). A character
//! that GBK cannot express is an [`EncodeError::Unencodable`] naming it — the
//! printer must never print a silent `?`, and a queue ticket with a wrong
//! character is worse than a refused template.

use std::io::Write;

use thiserror::Error;

/// `ESC` (0x1B): prefix of most formatting commands.
pub const ESC: u8 = 0x1B;
/// `GS` (0x1D): prefix of size, QR, raster and cut commands.
pub const GS: u8 = 0x1D;
/// `FS` (0x1C): prefix of the Chinese (Kanji) mode commands.
pub const FS: u8 = 0x1C;
/// `DLE` (0x10): prefix of the real-time commands (status).
pub const DLE: u8 = 0x10;
/// `EOT` (0x04): second byte of the real-time status request.
pub const EOT: u8 = 0x04;
/// `LF` (0x0A): print the buffer and feed one line.
pub const LF: u8 = 0x0A;

/// `ESC @` second byte: initialise printer.
pub const OP_INIT: u8 = b'@';
/// `ESC a` second byte: justification.
pub const OP_ALIGN: u8 = b'a';
/// `ESC E` second byte: emphasised (bold) mode.
pub const OP_BOLD: u8 = b'E';
/// `ESC d` second byte: print and feed n lines.
pub const OP_FEED_LINES: u8 = b'd';
/// `GS !` second byte: character size.
pub const OP_CHAR_SIZE: u8 = b'!';
/// `FS &` second byte: enter Chinese mode.
pub const OP_CHINESE_ON: u8 = b'&';
/// `FS .` second byte: leave Chinese mode.
pub const OP_CHINESE_OFF: u8 = b'.';
/// `GS V` second byte: cut paper.
pub const OP_CUT: u8 = b'V';
/// `GS v` second byte (followed by `0`): print raster bit image.
pub const OP_RASTER: u8 = b'v';
/// `GS (` second byte: extended function family (`GS ( k` is QR).
pub const OP_EXTENDED: u8 = b'(';
/// `GS ( k` third byte: 2D symbol functions.
pub const OP_SYMBOL: u8 = b'k';
/// `cn` of `GS ( k` selecting the QR code symbology.
pub const QR_CN: u8 = 0x31;
/// `fn` 65 of QR: select model.
pub const QR_FN_MODEL: u8 = 0x41;
/// `fn` 67 of QR: module size.
pub const QR_FN_MODULE_SIZE: u8 = 0x43;
/// `fn` 69 of QR: error correction level.
pub const QR_FN_ERROR_LEVEL: u8 = 0x45;
/// `fn` 80 of QR: store data in the symbol storage area.
pub const QR_FN_STORE: u8 = 0x50;
/// `fn` 81 of QR: print the stored symbol.
pub const QR_FN_PRINT: u8 = 0x51;
/// `m` of QR store/print (always `0`, i.e. 0x30).
pub const QR_M: u8 = 0x30;
/// QR model 2 parameter (`n1` of function 65).
pub const QR_MODEL_2: u8 = 0x32;

/// Largest QR payload the store function can carry: the length field is 16 bits and
/// includes the three `cn fn m` bytes; QR version 40 itself holds at most 7089 digits.
pub const QR_MAX_DATA: usize = 7089;

/// Errors of the encoder. They name what is wrong so a refused template or ticket
/// can tell the hall staff which character or value to change.
#[derive(Debug, Error, PartialEq, Eq, Clone)]
pub enum EncodeError {
    /// A character GBK cannot express as one or two bytes.
    #[error("character {ch:?} (U+{code:04X}) cannot be printed: GBK has no two-byte code for it")]
    Unencodable {
        /// The offending character.
        ch: char,
        /// Its code point, for the message.
        code: u32,
    },
    /// An ASCII control character inside text would be read by the printer as a command.
    #[error("control character U+{0:04X} is not allowed inside printed text")]
    ControlChar(u32),
    /// Character size multipliers are 1..=8 on every ESC/POS printer.
    #[error("character size {width}x{height} is out of range 1..=8")]
    BadSize {
        /// Width multiplier asked for.
        width: u8,
        /// Height multiplier asked for.
        height: u8,
    },
    /// QR module size is 1..=16 dots.
    #[error("QR module size {0} is out of range 1..=16")]
    BadQrModule(u8),
    /// QR payload empty or longer than a QR symbol can hold.
    #[error("QR payload of {0} bytes is empty or too long (max {QR_MAX_DATA})")]
    BadQrData(usize),
    /// A raster image whose data does not match its declared size, or is too large.
    #[error("raster image {width}x{height} with {len} data bytes is inconsistent or too large")]
    BadRaster {
        /// Width in dots.
        width: u32,
        /// Height in dots.
        height: u32,
        /// Data length.
        len: usize,
    },
}

/// Error of [`EscPosWriter`]: either the encoding or the transport failed.
#[derive(Debug, Error)]
pub enum WriteError {
    /// The command could not be encoded.
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// The transport refused the bytes.
    #[error("printer write failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Paper roll width. Decides how many dots an image may have and how many
/// half-width columns a text line holds (Font A, 12×24 dots).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize, serde::Serialize)]
pub enum PaperWidth {
    /// 58 mm roll: 384 printable dots, 32 columns.
    #[serde(rename = "58mm")]
    Mm58,
    /// 80 mm roll: 576 printable dots, 48 columns.
    #[serde(rename = "80mm")]
    Mm80,
}

impl PaperWidth {
    /// Printable width in dots (203 dpi heads).
    pub const fn dots(self) -> u32 {
        match self {
            PaperWidth::Mm58 => 384,
            PaperWidth::Mm80 => 576,
        }
    }

    /// Text columns at size 1×1; a CJK character takes two of them.
    pub const fn columns(self) -> usize {
        match self {
            PaperWidth::Mm58 => 32,
            PaperWidth::Mm80 => 48,
        }
    }
}

/// Horizontal justification (`ESC a n`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Deserialize, serde::Serialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Align {
    /// n = 0.
    #[default]
    Left,
    /// n = 1.
    Center,
    /// n = 2.
    Right,
}

impl Align {
    /// The `n` byte of `ESC a n`.
    pub const fn code(self) -> u8 {
        match self {
            Align::Left => 0,
            Align::Center => 1,
            Align::Right => 2,
        }
    }

    /// Inverse of [`Align::code`]; printers also accept ASCII '0'..'2'.
    pub const fn from_code(n: u8) -> Option<Align> {
        match n {
            0 | b'0' => Some(Align::Left),
            1 | b'1' => Some(Align::Center),
            2 | b'2' => Some(Align::Right),
            _ => None,
        }
    }
}

/// Character size multipliers for `GS ! n` (1..=8 each way). The layout uses the
/// width multiplier to know how many columns a line holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CharSize {
    width: u8,
    height: u8,
}

impl Default for CharSize {
    fn default() -> Self {
        CharSize::NORMAL
    }
}

impl CharSize {
    /// 1×1, the default after `ESC @`.
    pub const NORMAL: CharSize = CharSize {
        width: 1,
        height: 1,
    };

    /// Build a size; `None` outside 1..=8 so a bad template is caught at load time.
    pub const fn new(width: u8, height: u8) -> Option<CharSize> {
        if width >= 1 && width <= 8 && height >= 1 && height <= 8 {
            Some(CharSize { width, height })
        } else {
            None
        }
    }

    /// Same multiplier both ways (2 = double, 4 = quad).
    pub const fn uniform(n: u8) -> Option<CharSize> {
        CharSize::new(n, n)
    }

    /// Width multiplier.
    pub const fn width(self) -> u8 {
        self.width
    }

    /// Height multiplier.
    pub const fn height(self) -> u8 {
        self.height
    }

    /// The `n` byte of `GS ! n`: width-1 in the high nibble, height-1 in the low.
    pub const fn code(self) -> u8 {
        ((self.width - 1) << 4) | (self.height - 1)
    }

    /// Decode `GS ! n`; printers ignore the out-of-range nibble values we reject here.
    pub const fn from_code(n: u8) -> Option<CharSize> {
        CharSize::new((n >> 4) + 1, (n & 0x0F) + 1)
    }
}

/// QR error correction level (`GS ( k … 31 45 n`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Deserialize, serde::Serialize,
)]
pub enum QrErrorLevel {
    /// 7 %: n = 48.
    L,
    /// 15 %: n = 49. Our default: tickets are read off a clean fresh print.
    #[default]
    M,
    /// 25 %: n = 50.
    Q,
    /// 30 %: n = 51.
    H,
}

impl QrErrorLevel {
    /// The `n` byte.
    pub const fn code(self) -> u8 {
        match self {
            QrErrorLevel::L => 48,
            QrErrorLevel::M => 49,
            QrErrorLevel::Q => 50,
            QrErrorLevel::H => 51,
        }
    }

    /// Inverse of [`QrErrorLevel::code`].
    pub const fn from_code(n: u8) -> Option<QrErrorLevel> {
        match n {
            48 => Some(QrErrorLevel::L),
            49 => Some(QrErrorLevel::M),
            50 => Some(QrErrorLevel::Q),
            51 => Some(QrErrorLevel::H),
            _ => None,
        }
    }
}

/// Paper cut (`GS V`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cut {
    /// `GS V 0`: full cut where the paper is.
    Full,
    /// `GS V 1`: partial cut (one point left), the ticket hangs until pulled.
    Partial,
    /// `GS V 65 n`: feed n dots past the cutter, then full cut — the usual end of a ticket.
    FeedFull(u8),
    /// `GS V 66 n`: feed n dots, then partial cut.
    FeedPartial(u8),
}

/// A 1-bit raster image (`GS v 0`): rows of `ceil(width/8)` bytes, most significant
/// bit leftmost, 1 = black dot. Used for the hall's logo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Raster {
    width: u32,
    height: u32,
    data: Vec<u8>,
}

impl Raster {
    /// Largest raster we accept: 65535 bytes per row and 65535 rows is the wire
    /// limit, far beyond paper; we cap at 4096 dots high to keep memory small.
    pub const MAX_HEIGHT: u32 = 4096;

    /// Wrap packed rows; fails if `data` does not match `width × height`.
    pub fn new(width: u32, height: u32, data: Vec<u8>) -> Result<Raster, EncodeError> {
        let bytes_per_row = width.div_ceil(8) as usize;
        if width == 0
            || height == 0
            || height > Raster::MAX_HEIGHT
            || bytes_per_row > u16::MAX as usize
            || data.len() != bytes_per_row * height as usize
        {
            return Err(EncodeError::BadRaster {
                width,
                height,
                len: data.len(),
            });
        }
        Ok(Raster {
            width,
            height,
            data,
        })
    }

    /// Threshold an 8-bit grey image (0 = black) to a raster: a grey below 128 prints.
    pub fn from_luma(width: u32, height: u32, luma: &[u8]) -> Result<Raster, EncodeError> {
        let bpr = width.div_ceil(8) as usize;
        if luma.len() != width as usize * height as usize {
            return Err(EncodeError::BadRaster {
                width,
                height,
                len: luma.len(),
            });
        }
        let mut data = vec![0u8; bpr * height as usize];
        for y in 0..height as usize {
            for x in 0..width as usize {
                if luma[y * width as usize + x] < 128 {
                    data[y * bpr + x / 8] |= 0x80 >> (x % 8);
                }
            }
        }
        Raster::new(width, height, data)
    }

    /// Width in dots.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Height in dots.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// Bytes per row on the wire (`xL + xH·256`).
    pub fn bytes_per_row(&self) -> usize {
        self.width.div_ceil(8) as usize
    }

    /// Packed rows.
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// Whether dot (x, y) is black; false outside the image.
    pub fn dot(&self, x: u32, y: u32) -> bool {
        if x >= self.width || y >= self.height {
            return false;
        }
        let i = y as usize * self.bytes_per_row() + x as usize / 8;
        self.data.get(i).is_some_and(|b| b & (0x80 >> (x % 8)) != 0)
    }
}

/// The real-time status a `DLE EOT n` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatusKind {
    /// n = 1: printer status (online/offline).
    Printer,
    /// n = 2: offline cause (cover, feed button, paper-end stop, error).
    Offline,
    /// n = 3: error cause (cutter, unrecoverable, auto-recoverable).
    Error,
    /// n = 4: roll paper sensor (near end, paper out).
    PaperSensor,
}

impl StatusKind {
    /// All four, in the order a full status query asks them.
    pub const ALL: [StatusKind; 4] = [
        StatusKind::Printer,
        StatusKind::Offline,
        StatusKind::Error,
        StatusKind::PaperSensor,
    ];

    /// The `n` byte.
    pub const fn code(self) -> u8 {
        match self {
            StatusKind::Printer => 1,
            StatusKind::Offline => 2,
            StatusKind::Error => 3,
            StatusKind::PaperSensor => 4,
        }
    }

    /// Inverse of [`StatusKind::code`].
    pub const fn from_code(n: u8) -> Option<StatusKind> {
        match n {
            1 => Some(StatusKind::Printer),
            2 => Some(StatusKind::Offline),
            3 => Some(StatusKind::Error),
            4 => Some(StatusKind::PaperSensor),
            _ => None,
        }
    }
}

/// One ESC/POS command of the subset hallq emits. One enum and one encoder keep
/// the wire format in one place (the ssd1306 `Command` pattern).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `ESC @`: reset modes; sent at the start of every job so a previous job's
    /// leftover size or bold never leaks into a ticket.
    Init,
    /// `ESC a n`.
    Align(Align),
    /// `ESC E n`.
    Bold(bool),
    /// `GS ! n`.
    Size(CharSize),
    /// `FS &`: following non-ASCII bytes are two-byte GBK codes.
    ChineseOn,
    /// `FS .`.
    ChineseOff,
    /// Text, GBK-encoded; fails on characters GBK cannot express or on control chars.
    Text(String),
    /// `LF`.
    LineFeed,
    /// `ESC d n`: print and feed n lines.
    FeedLines(u8),
    /// `GS ( k … 31 41 32 00`: select QR model 2.
    QrModel2,
    /// `GS ( k … 31 43 n`: module size in dots (1..=16).
    QrModuleSize(u8),
    /// `GS ( k … 31 45 n`.
    QrErrorLevel(QrErrorLevel),
    /// `GS ( k pL pH 31 50 30 data`: store the payload.
    QrStore(Vec<u8>),
    /// `GS ( k 03 00 31 51 30`: print the stored symbol.
    QrPrint,
    /// `GS v 0 m xL xH yL yH data`, m = 0 (normal density).
    Raster(Raster),
    /// `GS V …`.
    Cut(Cut),
    /// `DLE EOT n`.
    Status(StatusKind),
}

/// Encode text for a printer in Chinese mode: ASCII as one byte, everything else as
/// a two-byte GBK code. encoding_rs's GB18030 would fall back to four-byte codes
/// and its `encode` to `&#…;` references; neither prints, so both are errors here.
pub fn encode_gbk(text: &str, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let mut encoder = encoding_rs::GBK.new_encoder();
    let mut buf = [0u8; 8];
    let mut utf8 = [0u8; 4];
    for ch in text.chars() {
        if ch.is_ascii() {
            if ch.is_ascii_control() {
                return Err(EncodeError::ControlChar(ch as u32));
            }
            out.push(ch as u8);
            continue;
        }
        let unencodable = EncodeError::Unencodable {
            ch,
            code: ch as u32,
        };
        let (result, _read, written) = encoder.encode_from_utf8_without_replacement(
            ch.encode_utf8(&mut utf8),
            &mut buf,
            false,
        );
        match result {
            encoding_rs::EncoderResult::InputEmpty
                if written == 2 && (0x81..=0xFE).contains(&buf[0]) && buf[1] >= 0x40 =>
            {
                out.extend_from_slice(&buf[..2]);
            }
            // Unmappable, a one-byte non-ASCII code (€ → 0x80) or anything else.
            _ => return Err(unencodable),
        }
    }
    Ok(())
}

/// Check that `text` is printable without producing bytes (for template validation).
pub fn check_printable(text: &str) -> Result<(), EncodeError> {
    encode_gbk(text, &mut Vec::with_capacity(text.len() * 2))
}

fn push_qr_function(out: &mut Vec<u8>, fn_code: u8, params: &[u8]) {
    // pL pH count cn + fn + params.
    let len = params.len() + 2;
    out.extend_from_slice(&[
        GS,
        OP_EXTENDED,
        OP_SYMBOL,
        (len & 0xFF) as u8,
        (len >> 8) as u8,
    ]);
    out.push(QR_CN);
    out.push(fn_code);
    out.extend_from_slice(params);
}

fn push_raster(out: &mut Vec<u8>, r: &Raster) {
    let x = r.bytes_per_row();
    let y = r.height as usize;
    out.extend_from_slice(&[
        GS,
        OP_RASTER,
        b'0',
        0,
        (x & 0xFF) as u8,
        (x >> 8) as u8,
        (y & 0xFF) as u8,
        (y >> 8) as u8,
    ]);
    out.extend_from_slice(&r.data);
}

impl Command {
    /// Append this command's bytes to `out`. On error nothing is appended.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        match self {
            Command::Init => out.extend_from_slice(&[ESC, OP_INIT]),
            Command::Align(a) => out.extend_from_slice(&[ESC, OP_ALIGN, a.code()]),
            Command::Bold(on) => out.extend_from_slice(&[ESC, OP_BOLD, u8::from(*on)]),
            Command::Size(s) => out.extend_from_slice(&[GS, OP_CHAR_SIZE, s.code()]),
            Command::ChineseOn => out.extend_from_slice(&[FS, OP_CHINESE_ON]),
            Command::ChineseOff => out.extend_from_slice(&[FS, OP_CHINESE_OFF]),
            Command::Text(t) => {
                let start = out.len();
                if let Err(e) = encode_gbk(t, out) {
                    out.truncate(start);
                    return Err(e);
                }
            }
            Command::LineFeed => out.push(LF),
            Command::FeedLines(n) => out.extend_from_slice(&[ESC, OP_FEED_LINES, *n]),
            Command::QrModel2 => push_qr_function(out, QR_FN_MODEL, &[QR_MODEL_2, 0x00]),
            Command::QrModuleSize(n) => {
                if !(1..=16).contains(n) {
                    return Err(EncodeError::BadQrModule(*n));
                }
                push_qr_function(out, QR_FN_MODULE_SIZE, &[*n]);
            }
            Command::QrErrorLevel(l) => push_qr_function(out, QR_FN_ERROR_LEVEL, &[l.code()]),
            Command::QrStore(data) => {
                if data.is_empty() || data.len() > QR_MAX_DATA {
                    return Err(EncodeError::BadQrData(data.len()));
                }
                let len = data.len() + 3;
                out.extend_from_slice(&[
                    GS,
                    OP_EXTENDED,
                    OP_SYMBOL,
                    (len & 0xFF) as u8,
                    (len >> 8) as u8,
                    QR_CN,
                    QR_FN_STORE,
                    QR_M,
                ]);
                out.extend_from_slice(data);
            }
            Command::QrPrint => push_qr_function(out, QR_FN_PRINT, &[QR_M]),
            Command::Raster(r) => push_raster(out, r),
            Command::Cut(c) => match c {
                Cut::Full => out.extend_from_slice(&[GS, OP_CUT, 0]),
                Cut::Partial => out.extend_from_slice(&[GS, OP_CUT, 1]),
                Cut::FeedFull(n) => out.extend_from_slice(&[GS, OP_CUT, 65, *n]),
                Cut::FeedPartial(n) => out.extend_from_slice(&[GS, OP_CUT, 66, *n]),
            },
            Command::Status(k) => out.extend_from_slice(&[DLE, EOT, k.code()]),
        }
        Ok(())
    }

    /// Convenience: this command alone as bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>, EncodeError> {
        let mut v = Vec::new();
        self.encode(&mut v)?;
        Ok(v)
    }
}

/// Pure builder of a print job: chain commands, get bytes. Layouts use it so a
/// ticket is a `Vec<u8>` that tests can compare and a transport can send whole.
#[derive(Debug, Default, Clone)]
pub struct Encoder {
    buf: Vec<u8>,
}

impl Encoder {
    /// Empty job.
    pub fn new() -> Encoder {
        Encoder::default()
    }

    /// Append any command.
    pub fn push(&mut self, cmd: &Command) -> Result<&mut Self, EncodeError> {
        cmd.encode(&mut self.buf)?;
        Ok(self)
    }

    /// `ESC @`.
    pub fn init(&mut self) -> &mut Self {
        self.buf.extend_from_slice(&[ESC, OP_INIT]);
        self
    }

    /// `ESC a n`.
    pub fn align(&mut self, a: Align) -> &mut Self {
        self.buf.extend_from_slice(&[ESC, OP_ALIGN, a.code()]);
        self
    }

    /// `ESC E n`.
    pub fn bold(&mut self, on: bool) -> &mut Self {
        self.buf.extend_from_slice(&[ESC, OP_BOLD, u8::from(on)]);
        self
    }

    /// `GS ! n`.
    pub fn size(&mut self, s: CharSize) -> &mut Self {
        self.buf.extend_from_slice(&[GS, OP_CHAR_SIZE, s.code()]);
        self
    }

    /// `FS &`.
    pub fn chinese_on(&mut self) -> &mut Self {
        self.buf.extend_from_slice(&[FS, OP_CHINESE_ON]);
        self
    }

    /// `FS .`.
    pub fn chinese_off(&mut self) -> &mut Self {
        self.buf.extend_from_slice(&[FS, OP_CHINESE_OFF]);
        self
    }

    /// GBK text without a line feed.
    pub fn text(&mut self, t: &str) -> Result<&mut Self, EncodeError> {
        let start = self.buf.len();
        if let Err(e) = encode_gbk(t, &mut self.buf) {
            self.buf.truncate(start);
            return Err(e);
        }
        Ok(self)
    }

    /// GBK text followed by `LF`.
    pub fn line(&mut self, t: &str) -> Result<&mut Self, EncodeError> {
        self.text(t)?;
        self.buf.push(LF);
        Ok(self)
    }

    /// `LF`.
    pub fn lf(&mut self) -> &mut Self {
        self.buf.push(LF);
        self
    }

    /// `ESC d n`.
    pub fn feed_lines(&mut self, n: u8) -> &mut Self {
        self.buf.extend_from_slice(&[ESC, OP_FEED_LINES, n]);
        self
    }

    /// A whole QR symbol: model 2, module size, error level, store, print.
    pub fn qr(
        &mut self,
        data: &[u8],
        module: u8,
        level: QrErrorLevel,
    ) -> Result<&mut Self, EncodeError> {
        let start = self.buf.len();
        let r = (|| {
            Command::QrModel2.encode(&mut self.buf)?;
            Command::QrModuleSize(module).encode(&mut self.buf)?;
            Command::QrErrorLevel(level).encode(&mut self.buf)?;
            Command::QrStore(data.to_vec()).encode(&mut self.buf)?;
            Command::QrPrint.encode(&mut self.buf)
        })();
        if let Err(e) = r {
            self.buf.truncate(start);
            return Err(e);
        }
        Ok(self)
    }

    /// `GS v 0`.
    pub fn raster(&mut self, r: &Raster) -> &mut Self {
        // Cannot fail: a Raster is validated when built.
        push_raster(&mut self.buf, r);
        self
    }

    /// `GS V …`.
    pub fn cut(&mut self, c: Cut) -> &mut Self {
        let _ = Command::Cut(c).encode(&mut self.buf);
        self
    }

    /// Bytes so far.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }

    /// Finish the job.
    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }
}

/// Sends commands to a transport. Generic over `Write` so the daemon's printer task
/// owns the port and tests use a `Vec<u8>`; [`EscPosWriter::release`] hands it back.
#[derive(Debug)]
pub struct EscPosWriter<W: Write> {
    inner: W,
    scratch: Vec<u8>,
}

impl<W: Write> EscPosWriter<W> {
    /// Wrap a transport.
    pub fn new(inner: W) -> Self {
        EscPosWriter {
            inner,
            scratch: Vec::with_capacity(256),
        }
    }

    /// Encode and write one command whole (nothing is written if encoding fails).
    pub fn send(&mut self, cmd: &Command) -> Result<(), WriteError> {
        self.scratch.clear();
        cmd.encode(&mut self.scratch)?;
        self.inner.write_all(&self.scratch)?;
        Ok(())
    }

    /// Write an already encoded job (e.g. a ticket from [`crate::layout`]).
    pub fn send_bytes(&mut self, bytes: &[u8]) -> Result<(), WriteError> {
        self.inner.write_all(bytes)?;
        Ok(())
    }

    /// Flush the transport.
    pub fn flush(&mut self) -> Result<(), WriteError> {
        self.inner.flush()?;
        Ok(())
    }

    /// Borrow the transport (e.g. to read a status reply).
    pub fn inner_mut(&mut self) -> &mut W {
        &mut self.inner
    }

    /// Give the transport back.
    pub fn release(self) -> W {
        self.inner
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(c: Command) -> Vec<u8> {
        c.to_bytes().unwrap()
    }

    #[test]
    fn init_is_esc_at() {
        assert_eq!(bytes(Command::Init), [0x1B, 0x40]);
    }

    #[test]
    fn align_center_is_esc_a_1() {
        assert_eq!(bytes(Command::Align(Align::Left)), [0x1B, 0x61, 0x00]);
        assert_eq!(bytes(Command::Align(Align::Center)), [0x1B, 0x61, 0x01]);
        assert_eq!(bytes(Command::Align(Align::Right)), [0x1B, 0x61, 0x02]);
    }

    #[test]
    fn bold_on_and_off() {
        assert_eq!(bytes(Command::Bold(true)), [0x1B, 0x45, 0x01]);
        assert_eq!(bytes(Command::Bold(false)), [0x1B, 0x45, 0x00]);
    }

    #[test]
    fn char_size_packs_width_high_height_low() {
        assert_eq!(bytes(Command::Size(CharSize::NORMAL)), [0x1D, 0x21, 0x00]);
        let double = CharSize::uniform(2).unwrap();
        assert_eq!(bytes(Command::Size(double)), [0x1D, 0x21, 0x11]);
        let quad = CharSize::uniform(4).unwrap();
        assert_eq!(bytes(Command::Size(quad)), [0x1D, 0x21, 0x33]);
        let tall = CharSize::new(1, 2).unwrap();
        assert_eq!(bytes(Command::Size(tall)), [0x1D, 0x21, 0x01]);
        assert_eq!(CharSize::new(9, 1), None);
        assert_eq!(CharSize::new(0, 1), None);
        assert_eq!(CharSize::from_code(0x33), Some(quad));
    }

    #[test]
    fn chinese_mode_on_and_off() {
        assert_eq!(bytes(Command::ChineseOn), [0x1C, 0x26]);
        assert_eq!(bytes(Command::ChineseOff), [0x1C, 0x2E]);
    }

    #[test]
    fn chinese_text_is_two_byte_gbk() {
        // 过号 in GBK: B9 FD BA C5.
        assert_eq!(
            bytes(Command::Text("过号A1".into())),
            [0xB9, 0xFD, 0xBA, 0xC5, b'A', b'1']
        );
        // 政务 : D5 FE CE F1.
        assert_eq!(
            bytes(Command::Text("政务".into())),
            [0xD5, 0xFE, 0xCE, 0xF1]
        );
        // Full-width colon ： A3 BA.
        assert_eq!(bytes(Command::Text("：".into())), [0xA3, 0xBA]);
    }

    #[test]
    fn unencodable_character_is_an_error_naming_it() {
        let err = Command::Text("取号😀".into()).to_bytes().unwrap_err();
        assert_eq!(
            err,
            EncodeError::Unencodable {
                ch: '😀',
                code: 0x1F600
            }
        );
        assert!(err.to_string().contains('😀'));
        // Needs a four-byte GB18030 sequence: not printable on a GBK printer.
        assert!(matches!(
            check_printable("𠀀"),
            Err(EncodeError::Unencodable { ch: '𠀀', .. })
        ));
        // € is one byte 0x80 in GBK: not a two-byte code, refused.
        assert!(check_printable("€").is_err());
        // Korean Hangul is not in GBK's two-byte range either.
        assert!(check_printable("가").is_err());
    }

    #[test]
    fn failed_text_leaves_no_partial_bytes() {
        let mut e = Encoder::new();
        e.init();
        assert!(e.line("好😀").is_err());
        assert_eq!(e.as_bytes(), [0x1B, 0x40]);
    }

    #[test]
    fn control_characters_inside_text_are_refused() {
        assert_eq!(
            check_printable("A\x1B@"),
            Err(EncodeError::ControlChar(0x1B))
        );
        assert_eq!(check_printable("a\nb"), Err(EncodeError::ControlChar(0x0A)));
    }

    #[test]
    fn line_feed_and_feed_lines() {
        assert_eq!(bytes(Command::LineFeed), [0x0A]);
        assert_eq!(bytes(Command::FeedLines(3)), [0x1B, 0x64, 0x03]);
    }

    #[test]
    fn qr_setup_commands() {
        assert_eq!(
            bytes(Command::QrModel2),
            [0x1D, 0x28, 0x6B, 0x04, 0x00, 0x31, 0x41, 0x32, 0x00]
        );
        assert_eq!(
            bytes(Command::QrModuleSize(6)),
            [0x1D, 0x28, 0x6B, 0x03, 0x00, 0x31, 0x43, 0x06]
        );
        assert_eq!(
            bytes(Command::QrErrorLevel(QrErrorLevel::M)),
            [0x1D, 0x28, 0x6B, 0x03, 0x00, 0x31, 0x45, 0x31]
        );
        assert_eq!(
            bytes(Command::QrPrint),
            [0x1D, 0x28, 0x6B, 0x03, 0x00, 0x31, 0x51, 0x30]
        );
    }

    #[test]
    fn qr_store_length_counts_the_three_header_bytes() {
        assert_eq!(
            bytes(Command::QrStore(b"A012".to_vec())),
            [
                0x1D, 0x28, 0x6B, 0x07, 0x00, 0x31, 0x50, 0x30, b'A', b'0', b'1', b'2'
            ]
        );
        let long = vec![b'x'; 300];
        let b = bytes(Command::QrStore(long));
        assert_eq!(&b[..8], [0x1D, 0x28, 0x6B, 0x2F, 0x01, 0x31, 0x50, 0x30]);
        assert_eq!(b.len(), 308);
    }

    #[test]
    fn qr_bad_parameters_are_errors() {
        assert_eq!(
            Command::QrModuleSize(0).to_bytes(),
            Err(EncodeError::BadQrModule(0))
        );
        assert_eq!(
            Command::QrModuleSize(17).to_bytes(),
            Err(EncodeError::BadQrModule(17))
        );
        assert_eq!(
            Command::QrStore(vec![]).to_bytes(),
            Err(EncodeError::BadQrData(0))
        );
    }

    #[test]
    fn raster_header_is_bytes_per_row_then_rows() {
        // 10 dots wide → 2 bytes per row; 2 rows.
        let r = Raster::new(10, 2, vec![0xFF, 0xC0, 0x80, 0x40]).unwrap();
        assert_eq!(
            bytes(Command::Raster(r)),
            [
                0x1D, 0x76, 0x30, 0x00, 0x02, 0x00, 0x02, 0x00, 0xFF, 0xC0, 0x80, 0x40
            ]
        );
        assert!(Raster::new(10, 2, vec![0; 3]).is_err());
    }

    #[test]
    fn raster_from_luma_thresholds_at_half_grey() {
        let luma = [0, 255, 127, 128, 0, 0, 0, 0, 0];
        let r = Raster::from_luma(9, 1, &luma).unwrap();
        assert_eq!(r.data(), [0b1010_1111, 0b1000_0000]);
        assert!(r.dot(0, 0));
        assert!(!r.dot(1, 0));
        assert!(!r.dot(9, 0));
    }

    #[test]
    fn cuts() {
        assert_eq!(bytes(Command::Cut(Cut::Full)), [0x1D, 0x56, 0x00]);
        assert_eq!(bytes(Command::Cut(Cut::Partial)), [0x1D, 0x56, 0x01]);
        assert_eq!(
            bytes(Command::Cut(Cut::FeedFull(80))),
            [0x1D, 0x56, 0x41, 0x50]
        );
        assert_eq!(
            bytes(Command::Cut(Cut::FeedPartial(3))),
            [0x1D, 0x56, 0x42, 0x03]
        );
    }

    #[test]
    fn status_requests_are_dle_eot_n() {
        let all: Vec<Vec<u8>> = StatusKind::ALL
            .iter()
            .map(|k| bytes(Command::Status(*k)))
            .collect();
        assert_eq!(
            all,
            [
                [0x10, 0x04, 0x01],
                [0x10, 0x04, 0x02],
                [0x10, 0x04, 0x03],
                [0x10, 0x04, 0x04]
            ]
        );
    }

    #[test]
    fn paper_widths() {
        assert_eq!(PaperWidth::Mm58.dots(), 384);
        assert_eq!(PaperWidth::Mm58.columns(), 32);
        assert_eq!(PaperWidth::Mm80.dots(), 576);
        assert_eq!(PaperWidth::Mm80.columns(), 48);
    }

    #[test]
    fn builder_chains_a_small_job() {
        let mut e = Encoder::new();
        e.init()
            .chinese_on()
            .align(Align::Center)
            .size(CharSize::uniform(2).unwrap())
            .bold(true);
        e.line("号").unwrap();
        e.cut(Cut::FeedFull(0));
        assert_eq!(
            e.into_bytes(),
            [
                0x1B, 0x40, 0x1C, 0x26, 0x1B, 0x61, 0x01, 0x1D, 0x21, 0x11, 0x1B, 0x45, 0x01, 0xBA,
                0xC5, 0x0A, 0x1D, 0x56, 0x41, 0x00
            ]
        );
    }

    #[test]
    fn writer_sends_to_any_write_and_gives_it_back() {
        let mut w = EscPosWriter::new(Vec::new());
        w.send(&Command::Init).unwrap();
        w.send(&Command::Text("A012".into())).unwrap();
        assert!(w.send(&Command::Text("😀".into())).is_err());
        w.send(&Command::LineFeed).unwrap();
        w.flush().unwrap();
        assert_eq!(w.release(), [0x1B, 0x40, b'A', b'0', b'1', b'2', 0x0A]);
    }
}
