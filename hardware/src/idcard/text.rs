//! The card's text block: 256 bytes of UCS-2 little-endian text in fixed fields, each
//! padded with spaces (`20 00`).
//!
//! ```text
//! offset  bytes  field
//!      0     30  name (姓名), 15 characters
//!     30      2  sex (性别): 1 male, 2 female (GB/T 2261.1; 0 unknown, 9 unstated)
//!     32      4  ethnicity (民族): two digits, 01–56 (GB 3304), 97 other, 98 foreign origin
//!     36     16  birth date (出生), YYYYMMDD
//!     52     70  address (住址), 35 characters
//!    122     36  citizen number (公民身份号码), 18 characters
//!    158     30  issuing authority (签发机关)
//!    188     16  valid from, YYYYMMDD
//!    204     16  valid until, YYYYMMDD or 长期 (no end)
//!    220     36  reserved
//! ```
//!
//! The answer to "read base information" carries it after two big-endian lengths (text,
//! photo): [`split_base`] takes them apart. The photo (a WLT image of 1,024 bytes) is
//! never decoded or kept.

use thiserror::Error;

use super::number::{self, Date};

/// Length of the text block.
pub const TEXT_LEN: usize = 256;

/// Byte offset and length of each field.
const FIELDS: [(&str, usize, usize); 10] = [
    ("name", 0, 30),
    ("sex", 30, 2),
    ("ethnicity", 32, 4),
    ("birth", 36, 16),
    ("address", 52, 70),
    ("id_number", 122, 36),
    ("authority", 158, 30),
    ("valid_from", 188, 16),
    ("valid_until", 204, 16),
    ("reserved", 220, 36),
];

/// "No end date" in the validity field.
pub const NO_END: &str = "长期";

/// Why a text block is not a card's.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TextError {
    /// Fewer bytes than a text block.
    #[error("a text block is {TEXT_LEN} bytes, not {0}")]
    Short(usize),
    /// A field is not UCS-2 text (an unpaired surrogate).
    #[error("field {0} is not UCS-2 text")]
    NotText(&'static str),
    /// A field's value is not what the card standard allows.
    #[error("field {0} has a value a card cannot hold")]
    BadValue(&'static str),
    /// A value does not fit its field (encoding).
    #[error("field {0} is too long for the card")]
    TooLong(&'static str),
    /// The answer's declared lengths do not fit its data.
    #[error("the answer's text and photo lengths do not fit its {0} data bytes")]
    BadLengths(usize),
}

/// Sex as the card codes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sex {
    /// 0.
    Unknown,
    /// 1.
    Male,
    /// 2.
    Female,
    /// 9.
    Unstated,
}

impl Sex {
    fn code(self) -> char {
        match self {
            Sex::Unknown => '0',
            Sex::Male => '1',
            Sex::Female => '2',
            Sex::Unstated => '9',
        }
    }

    fn from_code(c: &str) -> Option<Sex> {
        Some(match c {
            "0" => Sex::Unknown,
            "1" => Sex::Male,
            "2" => Sex::Female,
            "9" => Sex::Unstated,
            _ => return None,
        })
    }
}

/// What the card's text block says. Personal data: the daemon hashes the number and
/// masks the name at once, and keeps neither.
#[derive(Clone, PartialEq, Eq)]
pub struct CardText {
    /// 姓名.
    pub name: String,
    /// 性别.
    pub sex: Sex,
    /// 民族 code, 1–56, 97 or 98.
    pub ethnicity: u8,
    /// 出生.
    pub birth: Date,
    /// 住址.
    pub address: String,
    /// 公民身份号码 (18 characters, as printed; not validated here).
    pub id_number: String,
    /// 签发机关.
    pub authority: String,
    /// Valid from.
    pub valid_from: Date,
    /// Valid until; `None` for 长期.
    pub valid_until: Option<Date>,
}

impl std::fmt::Debug for CardText {
    /// Masked: a card must not reach a log through a `{:?}`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CardText")
            .field("name", &number::mask_name(&self.name))
            .field("id_number", &number::mask_id(&self.id_number))
            .finish_non_exhaustive()
    }
}

fn field_text(
    block: &[u8],
    name: &'static str,
    at: usize,
    len: usize,
) -> Result<String, TextError> {
    let units = block[at..at + len]
        .chunks_exact(2)
        .map(|p| u16::from_le_bytes([p[0], p[1]]));
    let text: String = char::decode_utf16(units)
        .collect::<Result<_, _>>()
        .map_err(|_| TextError::NotText(name))?;
    Ok(text.trim_end_matches([' ', '\0', '\u{3000}']).to_string())
}

fn date_field(text: &str, name: &'static str) -> Result<Date, TextError> {
    Date::parse_compact(text).ok_or(TextError::BadValue(name))
}

impl CardText {
    /// Decodes the first [`TEXT_LEN`] bytes of `block`.
    pub fn decode(block: &[u8]) -> Result<CardText, TextError> {
        if block.len() < TEXT_LEN {
            return Err(TextError::Short(block.len()));
        }
        let mut f = FIELDS
            .iter()
            .map(|&(name, at, len)| field_text(block, name, at, len));
        let mut next = || f.next().unwrap_or(Err(TextError::Short(0)));
        let name = next()?;
        let sex = next()?;
        let ethnicity = next()?;
        let birth = next()?;
        let address = next()?;
        let id_number = next()?;
        let authority = next()?;
        let valid_from = next()?;
        let valid_until = next()?;
        let sex = Sex::from_code(&sex).ok_or(TextError::BadValue("sex"))?;
        let ethnicity = match ethnicity.as_bytes() {
            [a @ b'0'..=b'9', b @ b'0'..=b'9'] => (a - b'0') * 10 + (b - b'0'),
            _ => return Err(TextError::BadValue("ethnicity")),
        };
        if !(1..=56).contains(&ethnicity) && !matches!(ethnicity, 97 | 98) {
            return Err(TextError::BadValue("ethnicity"));
        }
        if name.is_empty() {
            return Err(TextError::BadValue("name"));
        }
        if id_number.is_empty() || !id_number.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(TextError::BadValue("id_number"));
        }
        Ok(CardText {
            name,
            sex,
            ethnicity,
            birth: date_field(&birth, "birth")?,
            address,
            id_number,
            authority,
            valid_from: date_field(&valid_from, "valid_from")?,
            valid_until: if valid_until == NO_END {
                None
            } else {
                Some(date_field(&valid_until, "valid_until")?)
            },
        })
    }

    /// The 256-byte block a card with this text holds.
    pub fn encode(&self) -> Result<[u8; TEXT_LEN], TextError> {
        let mut block = [0u8; TEXT_LEN];
        for pair in block.chunks_exact_mut(2) {
            pair.copy_from_slice(&[0x20, 0x00]);
        }
        let values = [
            self.name.clone(),
            self.sex.code().to_string(),
            format!("{:02}", self.ethnicity),
            self.birth.compact(),
            self.address.clone(),
            self.id_number.clone(),
            self.authority.clone(),
            self.valid_from.compact(),
            self.valid_until
                .map_or_else(|| NO_END.to_string(), |d| d.compact()),
        ];
        for ((name, at, len), value) in FIELDS.iter().copied().zip(values) {
            let units: Vec<u16> = value.encode_utf16().collect();
            if units.len() * 2 > len {
                return Err(TextError::TooLong(name));
            }
            for (i, u) in units.iter().enumerate() {
                block[at + 2 * i..at + 2 * i + 2].copy_from_slice(&u.to_le_bytes());
            }
        }
        Ok(block)
    }

    /// A specimen card for `name` and `id_number`: sex and birth date from the number
    /// (when it has them), the other fields made up. For the simulator and tests.
    pub fn specimen(name: &str, id_number: &str) -> CardText {
        let birth = number::birth_date(id_number).unwrap_or(Date {
            year: 1980,
            month: 1,
            day: 1,
        });
        let sex = match id_number.as_bytes().get(16) {
            Some(d) if d.is_ascii_digit() && (d - b'0') % 2 == 1 => Sex::Male,
            Some(d) if d.is_ascii_digit() => Sex::Female,
            _ => Sex::Unknown,
        };
        CardText {
            name: name.to_string(),
            sex,
            ethnicity: 1,
            birth,
            address: "北京市东城区东长安街1号".into(),
            id_number: id_number.to_string(),
            authority: "北京市公安局东城分局".into(),
            valid_from: Date {
                year: 2020,
                month: 1,
                day: 1,
            },
            valid_until: None,
        }
    }
}

/// Splits the data of a "read base information" answer into the text block and the
/// photo, by the two big-endian lengths in front.
pub fn split_base(data: &[u8]) -> Result<(&[u8], &[u8]), TextError> {
    let bad = || TextError::BadLengths(data.len());
    let [t0, t1, p0, p1, rest @ ..] = data else {
        return Err(bad());
    };
    let text = usize::from(u16::from_be_bytes([*t0, *t1]));
    let photo = usize::from(u16::from_be_bytes([*p0, *p1]));
    if text < TEXT_LEN || text + photo > rest.len() {
        return Err(bad());
    }
    Ok((&rest[..text], &rest[text..text + photo]))
}

/// The data of a "read base information" answer: lengths, text, photo.
pub fn join_base(text: &[u8], photo: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + text.len() + photo.len());
    out.extend_from_slice(&(text.len() as u16).to_be_bytes());
    out.extend_from_slice(&(photo.len() as u16).to_be_bytes());
    out.extend_from_slice(text);
    out.extend_from_slice(photo);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ucs2(s: &str, len: usize) -> Vec<u8> {
        let mut v: Vec<u8> = s.encode_utf16().flat_map(u16::to_le_bytes).collect();
        while v.len() < len {
            v.extend_from_slice(&[0x20, 0x00]);
        }
        v
    }

    /// A block laid out by hand, field by field, as a card holds it.
    fn block() -> Vec<u8> {
        let mut b = Vec::new();
        b.extend(ucs2("王小明", 30));
        b.extend(ucs2("1", 2));
        b.extend(ucs2("01", 4));
        b.extend(ucs2("19500101", 16));
        b.extend(ucs2("北京市东城区东长安街1号", 70));
        b.extend(ucs2("11010119500101123X", 36));
        b.extend(ucs2("北京市公安局东城分局", 30));
        b.extend(ucs2("20200101", 16));
        b.extend(ucs2("长期", 16));
        b.extend(ucs2("", 36));
        b
    }

    #[test]
    fn a_block_decodes_field_by_field() {
        let b = block();
        assert_eq!(b.len(), TEXT_LEN);
        // The name's first character, 王 U+738B, little-endian.
        assert_eq!(&b[..2], &[0x8B, 0x73]);
        assert_eq!(&b[30..32], &[0x31, 0x00]);
        let c = CardText::decode(&b).unwrap();
        assert_eq!(c.name, "王小明");
        assert_eq!(c.sex, Sex::Male);
        assert_eq!(c.ethnicity, 1);
        assert_eq!(
            c.birth,
            Date {
                year: 1950,
                month: 1,
                day: 1
            }
        );
        assert_eq!(c.address, "北京市东城区东长安街1号");
        assert_eq!(c.id_number, "11010119500101123X");
        assert_eq!(c.authority, "北京市公安局东城分局");
        assert_eq!(c.valid_until, None);
        assert_eq!(c.encode().unwrap().as_slice(), b.as_slice());
    }

    #[test]
    fn debug_output_masks_the_person() {
        let c = CardText::decode(&block()).unwrap();
        let shown = format!("{c:?}");
        assert!(
            shown.contains("王*明") && shown.contains("110***********123X"),
            "{shown}"
        );
        assert!(!shown.contains("王小明") && !shown.contains("11010119500101123X"));
    }

    #[test]
    fn bad_fields_are_named() {
        let mut b = block();
        b[30..32].copy_from_slice(&[0x35, 0x00]);
        assert_eq!(CardText::decode(&b), Err(TextError::BadValue("sex")));
        let mut b = block();
        b[0..2].copy_from_slice(&[0x00, 0xD8]);
        assert_eq!(CardText::decode(&b), Err(TextError::NotText("name")));
        let mut b = block();
        b[36..38].copy_from_slice(&[0x41, 0x00]);
        assert_eq!(CardText::decode(&b), Err(TextError::BadValue("birth")));
        let mut b = block();
        b[32..36].copy_from_slice(&[0x39, 0x00, 0x39, 0x00]);
        assert_eq!(CardText::decode(&b), Err(TextError::BadValue("ethnicity")));
        assert_eq!(CardText::decode(&[0; 10]), Err(TextError::Short(10)));
        let mut long = CardText::decode(&block()).unwrap();
        long.name = "很".repeat(16);
        assert_eq!(long.encode(), Err(TextError::TooLong("name")));
    }

    #[test]
    fn the_base_answer_splits_into_text_and_photo() {
        let text = block();
        let data = join_base(&text, &[7; 1024]);
        assert_eq!(&data[..4], &[0x01, 0x00, 0x04, 0x00]);
        let (t, p) = split_base(&data).unwrap();
        assert_eq!((t, p.len()), (text.as_slice(), 1024));
        assert!(split_base(&data[..100]).is_err());
        assert!(split_base(&[0, 1, 0, 0, 9]).is_err());
    }
}
