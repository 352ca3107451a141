//! Ticket and checklist layouts: plain data in, ESC/POS bytes out.
//!
//! A thermal printer's line is a number of half-width *columns* (32 on 58 mm,
//! 48 on 80 mm, Font A). In Chinese mode every two-byte GBK character prints as a
//! full-width cell of two columns and every ASCII character as one, whatever
//! Unicode's East-Asian-Width says, so [`char_columns`] follows the printer, not
//! Unicode. [`wrap`] never splits a two-column character and divides the line by
//! the width multiplier of the size in use.
//!
//! The input structs ([`TicketPrint`], [`ChecklistPrint`]) are plain data with no
//! dependency on the rest of hallq, so the printer task can be fed from anywhere.
//! The hall shapes its ticket with a [`TicketTemplate`] in config; the daemon calls
//! [`TicketTemplate::validate`] at start so a bad template is refused before the
//! first citizen presses the button.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::escpos::{
    Align, CharSize, Cut, EncodeError, Encoder, PaperWidth, QrErrorLevel, Raster, check_printable,
};

/// Columns one character takes on the printer: 1 for ASCII, 2 for anything else
/// (which, once it passes the GBK check, is a full-width two-byte code).
pub fn char_columns(c: char) -> usize {
    if c.is_ascii() { 1 } else { 2 }
}

/// Columns a string takes at size 1×1.
pub fn text_columns(s: &str) -> usize {
    s.chars().map(char_columns).sum()
}

/// Columns available per line at `size`: the paper's columns divided by the width
/// multiplier, never less than 2 so a CJK character always fits somewhere.
pub fn columns_at(columns: usize, size: CharSize) -> usize {
    (columns / size.width() as usize).max(2)
}

/// Wrap `text` into lines of at most `columns_at(columns, size)` columns.
///
/// ASCII words move to the next line whole when they fit on one line; CJK text
/// breaks between any two characters; a two-column character is never split.
/// Spaces at a wrap point are dropped. An empty text gives one empty line.
pub fn wrap(text: &str, columns: usize, size: CharSize) -> Vec<String> {
    let avail = columns_at(columns, size);
    let mut lines = Vec::new();
    let mut cur = String::new();
    let mut w = 0usize;

    let flush = |cur: &mut String, w: &mut usize, lines: &mut Vec<String>| {
        let trimmed = cur.trim_end_matches(' ').to_string();
        lines.push(trimmed);
        cur.clear();
        *w = 0;
    };

    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c == ' ' {
            chars.next();
            if w == 0 && !lines.is_empty() {
                continue; // no leading space on a wrapped line
            }
            if w < avail {
                cur.push(' ');
                w += 1;
            } else {
                flush(&mut cur, &mut w, &mut lines);
            }
        } else if c.is_ascii() {
            // An ASCII word: take it whole.
            let mut word = String::new();
            while let Some(&d) = chars.peek() {
                if d.is_ascii() && d != ' ' {
                    word.push(d);
                    chars.next();
                } else {
                    break;
                }
            }
            let ww = word.len();
            if w + ww <= avail {
                cur.push_str(&word);
                w += ww;
            } else if ww <= avail {
                flush(&mut cur, &mut w, &mut lines);
                cur.push_str(&word);
                w = ww;
            } else {
                for d in word.chars() {
                    if w + 1 > avail {
                        flush(&mut cur, &mut w, &mut lines);
                    }
                    cur.push(d);
                    w += 1;
                }
            }
        } else {
            chars.next();
            let cw = char_columns(c);
            if w + cw > avail {
                flush(&mut cur, &mut w, &mut lines);
            }
            cur.push(c);
            w += cw;
        }
    }
    if w > 0 || lines.is_empty() {
        flush(&mut cur, &mut w, &mut lines);
    }
    lines
}

/// `left` and `right` on one line of `columns`, padded apart with spaces; `None`
/// when they do not fit together (the caller then puts `right` on its own line).
pub fn spread(left: &str, right: &str, columns: usize) -> Option<String> {
    let used = text_columns(left) + text_columns(right);
    if used + 1 > columns {
        return None;
    }
    Some(format!("{left}{}{right}", " ".repeat(columns - used)))
}

/// What the daemon knows about a ticket when it prints it. Times are preformatted
/// strings so the printer code knows no time zone or calendar rules.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TicketPrint {
    /// Hall name, e.g. "某某县政务服务中心".
    pub hall_name: String,
    /// Ticket number as called, e.g. "A012".
    pub number: String,
    /// Service name, e.g. "不动产登记".
    pub service_name: String,
    /// People waiting ahead of this ticket.
    pub waiting_ahead: u32,
    /// Windows that serve it, as displayed ("3号窗口").
    pub windows: Vec<String>,
    /// Issue time as it should print ("2026-11-23 09:30").
    pub issued_at: String,
    /// Unique ticket id, used as QR payload or substituted into the QR URL.
    pub ticket_id: String,
    /// The ticket's own status page for the citizen's phone (`{base_url}/t/{token}`):
    /// when set, the QR code carries it instead of the template's `qr_url` or the id.
    pub page_url: Option<String>,
    /// A priority mark printed large under the number ("绿色通道" for a green ticket),
    /// whatever the template lists: the window and the citizen both see it at a glance.
    #[serde(default)]
    pub priority: Option<String>,
}

impl TicketPrint {
    /// A realistic ticket (A012, real-estate registration, two windows) that tests,
    /// examples and benchmarks share, so they all print the same thing.
    pub fn sample() -> TicketPrint {
        TicketPrint {
            hall_name: "某某县政务服务中心".into(),
            number: "A012".into(),
            service_name: "不动产登记".into(),
            waiting_ahead: 5,
            windows: vec!["3号窗口".into(), "5号窗口".into()],
            issued_at: "2026-11-23 09:30".into(),
            ticket_id: "T20261123-A012".into(),
            page_url: None,
            priority: None,
        }
    }
}

/// How a material is to be brought (原件/复印件).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MaterialForm {
    /// 原件.
    Original,
    /// 复印件.
    Copy,
    /// 原件及复印件.
    OriginalAndCopy,
}

impl MaterialForm {
    /// The label printed on the checklist.
    pub fn label(self) -> &'static str {
        match self {
            MaterialForm::Original => "原件",
            MaterialForm::Copy => "复印件",
            MaterialForm::OriginalAndCopy => "原件及复印件",
        }
    }
}

/// One required material of a service guide (申请材料).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaterialLine {
    /// Material name.
    pub name: String,
    /// Original, copy or both.
    pub form: MaterialForm,
    /// How many.
    pub count: u32,
    /// Optional note (e.g. "需本人签字").
    pub note: Option<String>,
}

/// The 一次性告知单: everything a citizen must bring, in writing, on the first visit.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ChecklistPrint {
    /// Hall name.
    pub hall_name: String,
    /// Service name.
    pub service_name: String,
    /// Service code, if published.
    pub service_code: Option<String>,
    /// Required materials.
    pub materials: Vec<MaterialLine>,
    /// Promised time limit in working days (承诺时限).
    pub promised_days: Option<u32>,
    /// Statutory time limit in working days (法定时限).
    pub statutory_days: Option<u32>,
    /// Fees, as published ("不收费").
    pub fees: String,
    /// Window and floor ("二楼 3号窗口").
    pub window: String,
    /// Consultation phone.
    pub phone: Option<String>,
    /// Print time, preformatted.
    pub printed_at: String,
}

/// Ticket fields a template may place, in the order it lists them.
pub const TICKET_FIELDS: [&str; 7] = [
    "hall_name",
    "number",
    "service",
    "waiting",
    "windows",
    "issued_at",
    "ticket_id",
];

fn default_label(field: &str) -> &'static str {
    match field {
        "waiting" => "您前面还有 {} 人等候",
        "windows" => "请到 {} 办理",
        "issued_at" => "取号时间：{}",
        "ticket_id" => "票号：{}",
        _ => "{}",
    }
}

fn one() -> u8 {
    1
}

fn default_align() -> Align {
    Align::Center
}

/// One field line of a ticket template.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FieldSpec {
    /// One of [`TICKET_FIELDS`].
    pub name: String,
    /// Uniform size multiplier 1..=8 (4 suits the ticket number).
    #[serde(default = "one")]
    pub size: u8,
    /// Bold.
    #[serde(default)]
    pub bold: bool,
    /// Justification (default centre).
    #[serde(default = "default_align")]
    pub align: Align,
    /// Text around the value, `{}` marks the value ("取号时间：{}").
    #[serde(default)]
    pub label: Option<String>,
}

impl FieldSpec {
    fn new(name: &str, size: u8, bold: bool) -> FieldSpec {
        FieldSpec {
            name: name.into(),
            size,
            bold,
            align: Align::Center,
            label: None,
        }
    }

    fn label(&self) -> &str {
        self.label
            .as_deref()
            .unwrap_or_else(|| default_label(&self.name))
    }
}

fn default_fields() -> Vec<FieldSpec> {
    vec![
        FieldSpec::new("hall_name", 1, true),
        FieldSpec::new("number", 4, true),
        FieldSpec::new("service", 2, false),
        FieldSpec::new("waiting", 1, false),
        FieldSpec::new("windows", 1, false),
        FieldSpec::new("issued_at", 1, false),
    ]
}

fn default_footer() -> Vec<String> {
    vec!["过号请重新取号".into()]
}

fn default_qr_module() -> u8 {
    6
}

fn default_true() -> bool {
    true
}

/// The ticket as a hall shapes it in config (TOML). Unknown keys are refused by
/// serde; semantic checks (field names, logo width, printable text) by
/// [`TicketTemplate::validate`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TicketTemplate {
    /// Lines above the fields, centred and bold ("欢迎光临").
    #[serde(default)]
    pub header: Vec<String>,
    /// Optional PNG logo, converted to a 1-bit raster; must not exceed the paper's dots.
    #[serde(default)]
    pub logo: Option<PathBuf>,
    /// Which fields show, in order, at what size.
    #[serde(default = "default_fields")]
    pub fields: Vec<FieldSpec>,
    /// Notice lines at the bottom ("过号请重新取号").
    #[serde(default = "default_footer")]
    pub footer: Vec<String>,
    /// Print a QR code.
    #[serde(default = "default_true")]
    pub qr: bool,
    /// QR content: a URL where `{id}` becomes the ticket id; default the ticket id itself.
    #[serde(default)]
    pub qr_url: Option<String>,
    /// QR module size in dots (1..=16).
    #[serde(default = "default_qr_module")]
    pub qr_module: u8,
    /// Copies per ticket (1..=5).
    #[serde(default = "one")]
    pub copies: u8,
}

impl Default for TicketTemplate {
    fn default() -> Self {
        TicketTemplate {
            header: Vec::new(),
            logo: None,
            fields: default_fields(),
            footer: default_footer(),
            qr: true,
            qr_url: None,
            qr_module: default_qr_module(),
            copies: 1,
        }
    }
}

/// Why a template was refused. Each names the place to fix in the config.
#[derive(Debug, Error)]
pub enum TemplateError {
    /// A field name not in [`TICKET_FIELDS`].
    #[error("ticket template: unknown field {name:?} (known: {})", TICKET_FIELDS.join(", "))]
    UnknownField {
        /// The name given.
        name: String,
    },
    /// Size outside 1..=8.
    #[error("ticket template: field {field:?} has size {size}, allowed 1..=8")]
    BadSize {
        /// Field name.
        field: String,
        /// Size given.
        size: u8,
    },
    /// Text the printer cannot print.
    #[error("ticket template: {place}: {source}")]
    Text {
        /// Where the text is ("footer line 1").
        place: String,
        /// Why.
        #[source]
        source: EncodeError,
    },
    /// Logo file unreadable.
    #[error("ticket template: logo {path}: {source}")]
    LogoRead {
        /// File.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// Logo not a usable PNG.
    #[error("ticket template: logo {path}: {source}")]
    LogoDecode {
        /// File.
        path: PathBuf,
        /// Cause.
        #[source]
        source: LogoError,
    },
    /// Logo wider than the paper.
    #[error("ticket template: logo {path} is {width} dots wide, the {paper:?} paper has {max}")]
    LogoTooWide {
        /// File.
        path: PathBuf,
        /// Logo width.
        width: u32,
        /// Paper width in dots.
        max: u32,
        /// Paper.
        paper: PaperWidth,
    },
    /// Copies outside 1..=5.
    #[error("ticket template: copies = {0}, allowed 1..=5")]
    Copies(u8),
    /// QR module outside 1..=16, or a QR that would not fit on the paper.
    #[error("ticket template: QR {0}")]
    Qr(String),
}

/// Why a PNG could not become a raster.
#[derive(Debug, Error)]
pub enum LogoError {
    /// The PNG decoder failed.
    #[error("not a readable PNG: {0}")]
    Png(#[from] png::DecodingError),
    /// Taller than [`Raster::MAX_HEIGHT`] or empty.
    #[error("image {width}x{height} has an unusable size")]
    Size {
        /// Width.
        width: u32,
        /// Height.
        height: u32,
    },
}

/// Decode a PNG (any colour type; transparency counts as white paper) and threshold
/// it to a 1-bit raster.
pub fn logo_from_png(bytes: &[u8]) -> Result<Raster, LogoError> {
    let mut decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder.read_info()?;
    let (w, h) = (reader.info().width, reader.info().height);
    if w == 0 || h == 0 || h > Raster::MAX_HEIGHT || w > 65535 {
        return Err(LogoError::Size {
            width: w,
            height: h,
        });
    }
    let size = reader.output_buffer_size().ok_or(LogoError::Size {
        width: w,
        height: h,
    })?;
    let mut buf = vec![0u8; size];
    let info = reader.next_frame(&mut buf)?;
    let channels = info.color_type.samples();
    let stride = info.line_size;
    let mut luma = Vec::with_capacity(w as usize * h as usize);
    for y in 0..h as usize {
        let row = &buf[y * stride..];
        for x in 0..w as usize {
            let p = &row[x * channels..x * channels + channels];
            let (l, a) = match channels {
                1 => (p[0] as u32, 255),
                2 => (p[0] as u32, p[1] as u32),
                3 => (
                    (p[0] as u32 * 299 + p[1] as u32 * 587 + p[2] as u32 * 114) / 1000,
                    255,
                ),
                _ => (
                    (p[0] as u32 * 299 + p[1] as u32 * 587 + p[2] as u32 * 114) / 1000,
                    p[3] as u32,
                ),
            };
            luma.push(((l * a + 255 * (255 - a)) / 255) as u8);
        }
    }
    Raster::from_luma(w, h, &luma).map_err(|_| LogoError::Size {
        width: w,
        height: h,
    })
}

/// A template that passed [`TicketTemplate::validate`] for one paper width, with its
/// logo already loaded: rendering a ticket reads no file.
#[derive(Debug, Clone)]
pub struct PreparedTemplate {
    template: TicketTemplate,
    paper: PaperWidth,
    logo: Option<Raster>,
}

fn text_check(place: impl Into<String>, text: &str) -> Result<(), TemplateError> {
    check_printable(text).map_err(|source| TemplateError::Text {
        place: place.into(),
        source,
    })
}

impl TicketTemplate {
    /// Check everything that can be checked before a ticket exists and load the logo.
    pub fn validate(&self, paper: PaperWidth) -> Result<PreparedTemplate, TemplateError> {
        for (i, line) in self.header.iter().enumerate() {
            text_check(format!("header line {}", i + 1), line)?;
        }
        for (i, line) in self.footer.iter().enumerate() {
            text_check(format!("footer line {}", i + 1), line)?;
        }
        for f in &self.fields {
            if !TICKET_FIELDS.contains(&f.name.as_str()) {
                return Err(TemplateError::UnknownField {
                    name: f.name.clone(),
                });
            }
            if CharSize::uniform(f.size).is_none() {
                return Err(TemplateError::BadSize {
                    field: f.name.clone(),
                    size: f.size,
                });
            }
            text_check(format!("label of field {:?}", f.name), f.label())?;
        }
        if !(1..=5).contains(&self.copies) {
            return Err(TemplateError::Copies(self.copies));
        }
        if self.qr {
            if !(1..=16).contains(&self.qr_module) {
                return Err(TemplateError::Qr(format!(
                    "module size {} out of range 1..=16",
                    self.qr_module
                )));
            }
            // A generous sample id: the QR must fit the paper with the longest ids we issue.
            let sample = qr_payload(
                self.qr_url.as_deref(),
                "00000000-0000-0000-0000-000000000000",
            );
            qr_fits(&sample, self.qr_module, paper)?;
        }
        let logo = match &self.logo {
            None => None,
            Some(path) => Some(load_logo(path, paper)?),
        };
        Ok(PreparedTemplate {
            template: self.clone(),
            paper,
            logo,
        })
    }
}

fn load_logo(path: &Path, paper: PaperWidth) -> Result<Raster, TemplateError> {
    let bytes = std::fs::read(path).map_err(|source| TemplateError::LogoRead {
        path: path.to_path_buf(),
        source,
    })?;
    let raster = logo_from_png(&bytes).map_err(|source| TemplateError::LogoDecode {
        path: path.to_path_buf(),
        source,
    })?;
    if raster.width() > paper.dots() {
        return Err(TemplateError::LogoTooWide {
            path: path.to_path_buf(),
            width: raster.width(),
            max: paper.dots(),
            paper,
        });
    }
    Ok(raster)
}

/// Whether `payload` as a QR code at `module` dots per module fits `paper`.
fn qr_fits(payload: &str, module: u8, paper: PaperWidth) -> Result<(), TemplateError> {
    let code = qrcode::QrCode::with_error_correction_level(payload.as_bytes(), qrcode::EcLevel::M)
        .map_err(|e| TemplateError::Qr(format!("cannot encode {payload:?}: {e}")))?;
    let dots = code.width() as u32 * module as u32;
    if dots > paper.dots() {
        return Err(TemplateError::Qr(format!(
            "is {dots} dots wide at module {module} for {payload:?}, the paper has {}",
            paper.dots()
        )));
    }
    Ok(())
}

fn qr_payload(url: Option<&str>, id: &str) -> String {
    match url {
        Some(u) => u.replace("{id}", id),
        None => id.to_string(),
    }
}

/// A ticket or checklist could not be laid out: some data text is unprintable.
#[derive(Debug, Error)]
pub enum LayoutError {
    /// The named part of the data holds a character the printer cannot print.
    #[error("{place}: {source}")]
    Text {
        /// Which data ("service name").
        place: String,
        /// Why.
        #[source]
        source: EncodeError,
    },
}

struct Style {
    size: CharSize,
    bold: bool,
    align: Align,
}

fn emit(
    enc: &mut Encoder,
    columns: usize,
    text: &str,
    style: &Style,
    place: &str,
) -> Result<(), LayoutError> {
    enc.align(style.align).size(style.size).bold(style.bold);
    for line in wrap(text, columns, style.size) {
        enc.line(&line).map_err(|source| LayoutError::Text {
            place: place.to_string(),
            source,
        })?;
    }
    if style.bold {
        enc.bold(false);
    }
    if style.size != CharSize::NORMAL {
        enc.size(CharSize::NORMAL);
    }
    Ok(())
}

const NORMAL_LEFT: Style = Style {
    size: CharSize::NORMAL,
    bold: false,
    align: Align::Left,
};

impl PreparedTemplate {
    /// The paper this template was validated for.
    pub fn paper(&self) -> PaperWidth {
        self.paper
    }

    /// The template as configured.
    pub fn template(&self) -> &TicketTemplate {
        &self.template
    }

    /// Whether a ticket's `page_url` as long as `sample` fits this paper as a QR code
    /// (always, when the template prints no QR code).
    pub fn check_page_url(&self, sample: &str) -> Result<(), TemplateError> {
        if self.template.qr {
            qr_fits(sample, self.template.qr_module, self.paper)
        } else {
            Ok(())
        }
    }

    /// Lay a ticket out as one print job (all copies, each ending with a cut).
    pub fn render(&self, t: &TicketPrint) -> Result<Vec<u8>, LayoutError> {
        let mut one = Encoder::new();
        self.render_one(&mut one, t)?;
        let one = one.into_bytes();
        let mut all = Vec::with_capacity(one.len() * self.template.copies as usize);
        for _ in 0..self.template.copies.max(1) {
            all.extend_from_slice(&one);
        }
        Ok(all)
    }

    /// The priority mark, double size and bold, centred.
    fn emit_priority(
        &self,
        enc: &mut Encoder,
        columns: usize,
        t: &TicketPrint,
    ) -> Result<(), LayoutError> {
        let Some(mark) = t.priority.as_deref().filter(|m| !m.is_empty()) else {
            return Ok(());
        };
        let style = Style {
            size: CharSize::uniform(2).unwrap_or(CharSize::NORMAL),
            bold: true,
            align: Align::Center,
        };
        emit(enc, columns, mark, &style, "priority")
    }

    fn render_one(&self, enc: &mut Encoder, t: &TicketPrint) -> Result<(), LayoutError> {
        let columns = self.paper.columns();
        let tpl = &self.template;
        enc.init().chinese_on();
        if let Some(logo) = &self.logo {
            enc.align(Align::Center).raster(logo);
        }
        let header = Style {
            size: CharSize::NORMAL,
            bold: true,
            align: Align::Center,
        };
        for line in &tpl.header {
            emit(enc, columns, line, &header, "template header")?;
        }
        let mut priority_done = false;
        for f in &tpl.fields {
            let value = match f.name.as_str() {
                "hall_name" => t.hall_name.clone(),
                "number" => t.number.clone(),
                "service" => t.service_name.clone(),
                "waiting" => t.waiting_ahead.to_string(),
                "windows" => t.windows.join("、"),
                "issued_at" => t.issued_at.clone(),
                "ticket_id" => t.ticket_id.clone(),
                _ => continue, // refused by validate
            };
            if value.is_empty() {
                continue;
            }
            let text = f.label().replacen("{}", &value, 1);
            let style = Style {
                size: CharSize::uniform(f.size).unwrap_or(CharSize::NORMAL),
                bold: f.bold,
                align: f.align,
            };
            emit(enc, columns, &text, &style, &f.name)?;
            if f.name == "number" && !priority_done {
                priority_done = true;
                self.emit_priority(enc, columns, t)?;
            }
        }
        if !priority_done {
            self.emit_priority(enc, columns, t)?;
        }
        if tpl.qr && !t.ticket_id.is_empty() {
            let payload = match &t.page_url {
                Some(page) => page.clone(),
                None => qr_payload(tpl.qr_url.as_deref(), &t.ticket_id),
            };
            enc.align(Align::Center);
            enc.qr(payload.as_bytes(), tpl.qr_module, QrErrorLevel::M)
                .map_err(|source| LayoutError::Text {
                    place: "QR payload".into(),
                    source,
                })?;
            enc.lf();
        }
        let footer = Style {
            size: CharSize::NORMAL,
            bold: false,
            align: Align::Center,
        };
        for line in &tpl.footer {
            emit(enc, columns, line, &footer, "template footer")?;
        }
        enc.align(Align::Left)
            .feed_lines(3)
            .cut(Cut::FeedPartial(0));
        Ok(())
    }
}

/// Lay out the 一次性告知单 (material checklist) of a service.
pub fn render_checklist(c: &ChecklistPrint, paper: PaperWidth) -> Result<Vec<u8>, LayoutError> {
    let columns = paper.columns();
    let mut enc = Encoder::new();
    enc.init().chinese_on();
    let title = Style {
        size: CharSize::uniform(2).unwrap_or(CharSize::NORMAL),
        bold: true,
        align: Align::Center,
    };
    emit(&mut enc, columns, "一次性告知单", &title, "title")?;
    let centre = Style {
        size: CharSize::NORMAL,
        bold: false,
        align: Align::Center,
    };
    emit(&mut enc, columns, &c.hall_name, &centre, "hall name")?;
    let rule = "-".repeat(columns);
    enc.align(Align::Left);
    emit(&mut enc, columns, &rule, &NORMAL_LEFT, "rule")?;
    emit(
        &mut enc,
        columns,
        &format!("办理事项：{}", c.service_name),
        &NORMAL_LEFT,
        "service name",
    )?;
    if let Some(code) = &c.service_code {
        emit(
            &mut enc,
            columns,
            &format!("事项编码：{code}"),
            &NORMAL_LEFT,
            "service code",
        )?;
    }
    let bold_left = Style {
        size: CharSize::NORMAL,
        bold: true,
        align: Align::Left,
    };
    emit(&mut enc, columns, "申请材料：", &bold_left, "heading")?;
    for (i, m) in c.materials.iter().enumerate() {
        let prefix = format!("{}. ", i + 1);
        let indent = text_columns(&prefix);
        let right = if m.form == MaterialForm::OriginalAndCopy {
            format!("{} 各{}份", m.form.label(), m.count)
        } else {
            format!("{} {}份", m.form.label(), m.count)
        };
        let mut lines = wrap(&m.name, columns - indent, CharSize::NORMAL);
        for (j, l) in lines.iter_mut().enumerate() {
            let pad = if j == 0 {
                prefix.clone()
            } else {
                " ".repeat(indent)
            };
            *l = format!("{pad}{l}");
        }
        let last = lines.pop().unwrap_or_default();
        match spread(&last, &right, columns) {
            Some(joined) => lines.push(joined),
            None => {
                lines.push(last);
                lines.push(format!(
                    "{}{right}",
                    " ".repeat(columns.saturating_sub(text_columns(&right)))
                ));
            }
        }
        for l in &lines {
            enc.line(l).map_err(|source| LayoutError::Text {
                place: format!("material {}", i + 1),
                source,
            })?;
        }
        if let Some(note) = &m.note {
            for l in wrap(&format!("备注：{note}"), columns - indent, CharSize::NORMAL) {
                enc.line(&format!("{}{l}", " ".repeat(indent)))
                    .map_err(|source| LayoutError::Text {
                        place: format!("note of material {}", i + 1),
                        source,
                    })?;
            }
        }
    }
    emit(&mut enc, columns, &rule, &NORMAL_LEFT, "rule")?;
    if let Some(d) = c.promised_days {
        emit(
            &mut enc,
            columns,
            &format!("承诺时限：{d}个工作日"),
            &NORMAL_LEFT,
            "time limit",
        )?;
    }
    if let Some(d) = c.statutory_days {
        emit(
            &mut enc,
            columns,
            &format!("法定时限：{d}个工作日"),
            &NORMAL_LEFT,
            "time limit",
        )?;
    }
    emit(
        &mut enc,
        columns,
        &format!("收费标准：{}", c.fees),
        &NORMAL_LEFT,
        "fees",
    )?;
    emit(
        &mut enc,
        columns,
        &format!("办理窗口：{}", c.window),
        &NORMAL_LEFT,
        "window",
    )?;
    if let Some(p) = &c.phone {
        emit(
            &mut enc,
            columns,
            &format!("咨询电话：{p}"),
            &NORMAL_LEFT,
            "phone",
        )?;
    }
    emit(
        &mut enc,
        columns,
        &format!("打印时间：{}", c.printed_at),
        &NORMAL_LEFT,
        "print time",
    )?;
    enc.lf();
    emit(
        &mut enc,
        columns,
        "请备齐以上材料后到窗口办理",
        &centre,
        "notice",
    )?;
    enc.align(Align::Left)
        .feed_lines(3)
        .cut(Cut::FeedPartial(0));
    Ok(enc.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quad() -> CharSize {
        CharSize::uniform(4).unwrap()
    }

    #[test]
    fn cjk_counts_two_columns_ascii_one() {
        assert_eq!(text_columns("A012"), 4);
        assert_eq!(text_columns("过号请重新取号"), 14);
        assert_eq!(text_columns("3号窗口"), 7);
    }

    #[test]
    fn wrap_never_splits_a_two_column_character() {
        // 5 columns: two CJK chars (4) then the third does not fit in 1.
        let lines = wrap("政务服务中心", 5, CharSize::NORMAL);
        assert_eq!(lines, ["政务", "服务", "中心"]);
        for l in &lines {
            assert!(text_columns(l) <= 5);
        }
    }

    #[test]
    fn wrap_divides_columns_by_the_width_multiplier() {
        // 32 columns at quad width = 8 columns = 4 CJK chars.
        assert_eq!(wrap("不动产登记中心", 32, quad()), ["不动产登", "记中心"]);
        assert_eq!(wrap("A012", 32, quad()), ["A012"]);
        let tall = CharSize::new(1, 4).unwrap();
        assert_eq!(wrap("不动产登记中心", 32, tall), ["不动产登记中心"]);
    }

    #[test]
    fn wrap_keeps_ascii_words_whole_and_drops_spaces_at_breaks() {
        assert_eq!(
            wrap("please take number A012 now", 12, CharSize::NORMAL),
            ["please take", "number A012", "now"]
        );
        assert_eq!(wrap("", 32, CharSize::NORMAL), [""]);
        assert_eq!(
            wrap("abcdefghij", 4, CharSize::NORMAL),
            ["abcd", "efgh", "ij"]
        );
        assert_eq!(
            wrap("请到3号窗口", 6, CharSize::NORMAL),
            ["请到3", "号窗口"]
        );
    }

    proptest::proptest! {
        #[test]
        fn wrapped_lines_fit_and_lose_only_spaces(
            text in "[a-zA-Z0-9 政务服务中心取号过请窗口，。]{0,80}",
            columns in 1usize..60,
            w in 1u8..=8,
        ) {
            let size = CharSize::new(w, 1).unwrap();
            let lines = wrap(&text, columns, size);
            for l in &lines {
                proptest::prop_assert!(text_columns(l) <= columns_at(columns, size), "{l:?}");
            }
            let strip = |s: &str| s.chars().filter(|c| *c != ' ').collect::<String>();
            proptest::prop_assert_eq!(strip(&lines.concat()), strip(&text));
        }
    }

    #[test]
    fn spread_pads_left_and_right() {
        assert_eq!(spread("身份证", "原件", 12).unwrap(), "身份证  原件");
        assert_eq!(spread("身份证明材料", "原件", 12), None);
    }

    fn sample_ticket() -> TicketPrint {
        TicketPrint::sample()
    }

    #[test]
    fn default_ticket_has_big_number_qr_footer_and_cut() {
        let tpl = TicketTemplate::default()
            .validate(PaperWidth::Mm58)
            .unwrap();
        let b = tpl.render(&sample_ticket()).unwrap();
        assert_eq!(&b[..4], [0x1B, 0x40, 0x1C, 0x26]);
        // The number at quad size, bold, centred.
        let needle = [
            0x1B, 0x61, 0x01, 0x1D, 0x21, 0x33, 0x1B, 0x45, 0x01, b'A', b'0', b'1', b'2', 0x0A,
        ];
        assert!(b.windows(needle.len()).any(|w| w == needle));
        let qr = b"\x1D\x28\x6B\x11\x00\x31\x50\x30T20261123-A012";
        assert!(b.windows(qr.len()).any(|w| w == qr));
        // 过号请重新取号
        let footer = [0xB9, 0xFD, 0xBA, 0xC5];
        assert!(b.windows(4).any(|w| w == footer));
        assert_eq!(&b[b.len() - 4..], [0x1D, 0x56, 0x42, 0x00]);
    }

    #[test]
    fn a_priority_mark_prints_large_right_under_the_number() {
        let tpl = TicketTemplate::default()
            .validate(PaperWidth::Mm58)
            .unwrap();
        let plain = tpl.render(&sample_ticket()).unwrap();
        let green = tpl
            .render(&TicketPrint {
                priority: Some("绿色通道".into()),
                ..sample_ticket()
            })
            .unwrap();
        let mut mark = Vec::new();
        crate::escpos::encode_gbk("绿色通道", &mut mark).unwrap();
        assert!(!plain.windows(mark.len()).any(|w| w == mark.as_slice()));
        let at = green
            .windows(mark.len())
            .position(|w| w == mark.as_slice())
            .expect("the mark is printed");
        let number = green
            .windows(4)
            .position(|w| w == b"A012")
            .expect("the number is printed");
        assert!(number < at, "the mark follows the number");
        // Double size (GS ! 0x11) and bold just before it.
        let before = &green[..at];
        assert!(
            before.ends_with(&[0x1D, 0x21, 0x11, 0x1B, 0x45, 0x01]),
            "{before:02X?}"
        );
    }

    #[test]
    fn copies_repeat_the_whole_ticket() {
        let tpl = TicketTemplate {
            copies: 2,
            ..Default::default()
        };
        let one = TicketTemplate::default()
            .validate(PaperWidth::Mm80)
            .unwrap()
            .render(&sample_ticket())
            .unwrap();
        let two = tpl
            .validate(PaperWidth::Mm80)
            .unwrap()
            .render(&sample_ticket())
            .unwrap();
        assert_eq!(two.len(), one.len() * 2);
    }

    #[test]
    fn qr_url_substitutes_the_ticket_id() {
        let tpl = TicketTemplate {
            qr_url: Some("https://hall.example/t/{id}".into()),
            ..Default::default()
        };
        let b = tpl
            .validate(PaperWidth::Mm58)
            .unwrap()
            .render(&sample_ticket())
            .unwrap();
        let s = b"https://hall.example/t/T20261123-A012";
        assert!(b.windows(s.len()).any(|w| w == s));
    }

    #[test]
    fn a_page_url_replaces_the_qr_content_and_a_long_one_is_refused() {
        let tpl = TicketTemplate {
            qr_url: Some("https://hall.example/t/{id}".into()),
            ..Default::default()
        }
        .validate(PaperWidth::Mm58)
        .unwrap();
        let mut t = sample_ticket();
        t.page_url = Some("http://192.0.2.10:8080/t/0123456789abcdef0123456789abcdef".into());
        let b = tpl.render(&t).unwrap();
        let page = t.page_url.as_deref().unwrap().as_bytes();
        assert!(b.windows(page.len()).any(|w| w == page));
        assert!(!b.windows(12).any(|w| w == b"hall.example"));
        assert!(tpl.check_page_url(t.page_url.as_deref().unwrap()).is_ok());
        let long = format!(
            "https://{}/t/0123456789abcdef0123456789abcdef",
            "h".repeat(300)
        );
        assert!(tpl.check_page_url(&long).is_err());
    }

    #[test]
    fn unprintable_data_is_a_layout_error_naming_the_field() {
        let tpl = TicketTemplate::default()
            .validate(PaperWidth::Mm58)
            .unwrap();
        let mut t = sample_ticket();
        t.service_name = "登记😀".into();
        let e = tpl.render(&t).unwrap_err();
        assert!(e.to_string().contains("service"), "{e}");
        assert!(e.to_string().contains('😀'), "{e}");
    }

    #[test]
    fn a_full_template_reads_from_toml() {
        let src = r#"
            header = ["欢迎您来办事"]
            footer = ["过号请重新取号", "请留意叫号屏幕"]
            qr = true
            qr_url = "https://hall.example/q/{id}"
            qr_module = 5
            copies = 1

            [[fields]]
            name = "number"
            size = 4
            bold = true

            [[fields]]
            name = "waiting"
            align = "left"
            label = "前面等候：{} 人"
        "#;
        let t: TicketTemplate = toml::from_str(src).unwrap();
        assert_eq!(t.fields.len(), 2);
        assert_eq!(t.fields[1].align, Align::Left);
        let b = t
            .validate(PaperWidth::Mm58)
            .unwrap()
            .render(&sample_ticket())
            .unwrap();
        let mut waiting = Vec::new();
        crate::escpos::encode_gbk("前面等候：5 人", &mut waiting).unwrap();
        assert!(b.windows(waiting.len()).any(|w| w == waiting));
        // Fields the template leaves out are not printed.
        let mut service = Vec::new();
        crate::escpos::encode_gbk("不动产登记", &mut service).unwrap();
        assert!(!b.windows(service.len()).any(|w| w == service));
    }

    #[test]
    fn template_from_toml_with_unknown_key_is_refused_by_serde() {
        let bad = "footer = [\"x\"]\ncolour = \"red\"";
        assert!(toml::from_str::<TicketTemplate>(bad).is_err());
        let bad_field = "[[fields]]\nname = \"number\"\nsize = 4\nfont = \"b\"";
        assert!(toml::from_str::<TicketTemplate>(bad_field).is_err());
    }

    #[test]
    fn template_with_unknown_field_name_is_refused() {
        let t: TicketTemplate = toml::from_str("[[fields]]\nname = \"numbr\"\nsize = 4").unwrap();
        let e = t.validate(PaperWidth::Mm58).unwrap_err();
        assert!(matches!(e, TemplateError::UnknownField { .. }));
        assert!(e.to_string().contains("numbr"));
        assert!(e.to_string().contains("number"));
    }

    #[test]
    fn template_with_unprintable_footer_is_refused() {
        let t: TicketTemplate = toml::from_str("footer = [\"谢谢 ❤\"]").unwrap();
        let e = t.validate(PaperWidth::Mm58).unwrap_err();
        assert!(e.to_string().contains("footer line 1"), "{e}");
        assert!(e.to_string().contains('❤'), "{e}");
    }

    #[test]
    fn template_bad_sizes_copies_and_qr_are_refused() {
        let t: TicketTemplate = toml::from_str("[[fields]]\nname = \"number\"\nsize = 9").unwrap();
        assert!(matches!(
            t.validate(PaperWidth::Mm58),
            Err(TemplateError::BadSize { size: 9, .. })
        ));
        let t: TicketTemplate = toml::from_str("copies = 0").unwrap();
        assert!(matches!(
            t.validate(PaperWidth::Mm58),
            Err(TemplateError::Copies(0))
        ));
        let t: TicketTemplate = toml::from_str("qr_module = 16").unwrap();
        assert!(matches!(
            t.validate(PaperWidth::Mm58),
            Err(TemplateError::Qr(_))
        ));
    }

    fn write_png(path: &Path, w: u32, h: u32) {
        let f = std::fs::File::create(path).unwrap();
        let mut enc = png::Encoder::new(std::io::BufWriter::new(f), w, h);
        enc.set_color(png::ColorType::Rgba);
        enc.set_depth(png::BitDepth::Eight);
        let mut wr = enc.write_header().unwrap();
        let mut data = vec![0u8; (w * h * 4) as usize];
        for (i, px) in data.chunks_mut(4).enumerate() {
            let x = i as u32 % w;
            // Left half opaque black, right half transparent.
            if x < w / 2 {
                px.copy_from_slice(&[0, 0, 0, 255]);
            }
        }
        wr.write_image_data(&data).unwrap();
    }

    #[test]
    fn logo_is_loaded_thresholded_and_width_checked() {
        let dir = std::env::temp_dir().join(format!("hallq-hw-logo-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ok = dir.join("ok.png");
        write_png(&ok, 64, 8);
        let t = TicketTemplate {
            logo: Some(ok.clone()),
            ..Default::default()
        };
        let p = t.validate(PaperWidth::Mm58).unwrap();
        let b = p.render(&sample_ticket()).unwrap();
        // GS v 0, 8 bytes per row, 8 rows, first row: 4 black bytes then 4 white.
        let head = [
            0x1D, 0x76, 0x30, 0x00, 0x08, 0x00, 0x08, 0x00, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0,
        ];
        assert!(b.windows(head.len()).any(|w| w == head));

        let wide = dir.join("wide.png");
        write_png(&wide, 400, 4);
        let t = TicketTemplate {
            logo: Some(wide),
            ..Default::default()
        };
        let e = t.validate(PaperWidth::Mm58).unwrap_err();
        assert!(matches!(
            e,
            TemplateError::LogoTooWide {
                width: 400,
                max: 384,
                ..
            }
        ));
        assert!(t.validate(PaperWidth::Mm80).is_ok());

        let junk = dir.join("junk.png");
        std::fs::write(&junk, b"not a png").unwrap();
        let t = TicketTemplate {
            logo: Some(junk),
            ..Default::default()
        };
        assert!(matches!(
            t.validate(PaperWidth::Mm58),
            Err(TemplateError::LogoDecode { .. })
        ));
        let t = TicketTemplate {
            logo: Some(dir.join("missing.png")),
            ..Default::default()
        };
        assert!(matches!(
            t.validate(PaperWidth::Mm58),
            Err(TemplateError::LogoRead { .. })
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn checklist_lists_materials_with_form_and_count() {
        let c = ChecklistPrint {
            hall_name: "某某县政务服务中心".into(),
            service_name: "不动产转移登记".into(),
            service_code: Some("370000-001".into()),
            materials: vec![
                MaterialLine {
                    name: "居民身份证".into(),
                    form: MaterialForm::Original,
                    count: 1,
                    note: None,
                },
                MaterialLine {
                    name: "不动产权属证书及共有人同意转让的书面材料".into(),
                    form: MaterialForm::OriginalAndCopy,
                    count: 2,
                    note: Some("需全体共有人签字".into()),
                },
            ],
            promised_days: Some(5),
            statutory_days: Some(30),
            fees: "不收费".into(),
            window: "二楼 3号窗口".into(),
            phone: Some("0531-12345678".into()),
            printed_at: "2026-11-23 09:30".into(),
        };
        let b = render_checklist(&c, PaperWidth::Mm58).unwrap();
        let mut expect = Vec::new();
        crate::escpos::encode_gbk("1. 居民身份证", &mut expect).unwrap();
        assert!(b.windows(expect.len()).any(|w| w == expect));
        let mut yuan = Vec::new();
        crate::escpos::encode_gbk("原件 1份", &mut yuan).unwrap();
        assert!(b.windows(yuan.len()).any(|w| w == yuan));
        assert_eq!(&b[b.len() - 4..], [0x1D, 0x56, 0x42, 0x00]);
    }
}
