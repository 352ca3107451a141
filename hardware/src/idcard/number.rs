//! The citizen number (公民身份号码, GB 11643-1999): 6 digits of region, 8 of birth
//! date, 3 of sequence (odd for men) and a check character, ISO 7064 MOD 11-2 over the
//! first 17 with the weights 7 9 10 5 8 4 2 1 6 3 7 9 10 5 8 4 2, the remainder 0–10
//! mapping to `1 0 X 9 8 7 6 5 4 3 2`.
//!
//! Also the masks hallq shows instead of a person's name and number: `王*明`,
//! `110***********123X`. No dependency beyond `std`: the kiosk validates a typed
//! number with the same code as the controller.

use thiserror::Error;

/// Weights of the first 17 characters.
pub const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
/// Check character for each remainder mod 11.
pub const CHECK: [u8; 11] = *b"10X98765432";

/// A calendar date (the card's birth and validity dates).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Date {
    /// Year.
    pub year: u16,
    /// 1–12.
    pub month: u8,
    /// 1–31, as the month allows.
    pub day: u8,
}

impl Date {
    /// The date, if it is one (leap years included).
    pub fn new(year: u16, month: u8, day: u8) -> Option<Date> {
        let leap =
            (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400);
        let days = match month {
            1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
            4 | 6 | 9 | 11 => 30,
            2 if leap => 29,
            2 => 28,
            _ => return None,
        };
        (1..=days)
            .contains(&day)
            .then_some(Date { year, month, day })
    }

    /// `YYYYMMDD`.
    pub fn parse_compact(s: &str) -> Option<Date> {
        if s.len() != 8 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Date::new(
            s[..4].parse().ok()?,
            s[4..6].parse().ok()?,
            s[6..].parse().ok()?,
        )
    }

    /// `YYYYMMDD`.
    pub fn compact(&self) -> String {
        format!("{:04}{:02}{:02}", self.year, self.month, self.day)
    }

    /// Whole years from this date (a birthday) to `on`; 0 before it. Someone born on
    /// 29 February turns a year older on 1 March in a common year.
    pub fn age_on(&self, on: Date) -> u32 {
        if on < *self {
            return 0;
        }
        let years = u32::from(on.year - self.year);
        if (on.month, on.day) < (self.month, self.day) {
            years.saturating_sub(1)
        } else {
            years
        }
    }
}

/// Why a typed or read number is not a valid citizen number.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum IdError {
    /// Not 18 characters.
    #[error("a citizen number has 18 characters, not {0}")]
    Length(usize),
    /// The first 17 are not all digits, or the last is not a digit or X.
    #[error("a citizen number is 17 digits and a digit or X")]
    NotDigits,
    /// Characters 7–14 are not a date.
    #[error("the birth date in the number is not a date")]
    BadDate,
    /// The check character does not match.
    #[error("the check character does not match (a digit was mistyped)")]
    CheckDigit,
}

/// The check character the first 17 digits call for.
pub fn check_char(first17: &[u8; 17]) -> u8 {
    let sum: u32 = first17
        .iter()
        .zip(WEIGHTS)
        .map(|(d, w)| u32::from(d.wrapping_sub(b'0')) * w)
        .sum();
    CHECK[(sum % 11) as usize]
}

/// Checks an 18-character number (a lower-case `x` is taken as `X`) and returns it
/// upper-cased.
pub fn validate(id: &str) -> Result<String, IdError> {
    let id = id.trim().to_ascii_uppercase();
    let bytes = id.as_bytes();
    if bytes.len() != 18 || id.chars().count() != 18 {
        return Err(IdError::Length(id.chars().count()));
    }
    let (first, last) = bytes.split_at(17);
    if !first.iter().all(u8::is_ascii_digit) || !(last[0].is_ascii_digit() || last[0] == b'X') {
        return Err(IdError::NotDigits);
    }
    birth_date(&id).ok_or(IdError::BadDate)?;
    let mut f = [0u8; 17];
    f.copy_from_slice(first);
    if check_char(&f) != last[0] {
        return Err(IdError::CheckDigit);
    }
    Ok(id)
}

/// The birth date in characters 7–14 of an 18-character number.
pub fn birth_date(id: &str) -> Option<Date> {
    Date::parse_compact(id.get(6..14)?)
}

/// `王小明` → `王*明`, `王明` → `王*`, `欧阳小明` → `欧**明`; one character → `*`.
pub fn mask_name(name: &str) -> String {
    let chars: Vec<char> = name.trim().chars().collect();
    match chars.as_slice() {
        [] => String::new(),
        [_] => "*".into(),
        [first, _] => format!("{first}*"),
        [first, middle @ .., last] => {
            format!("{first}{}{last}", "*".repeat(middle.len()))
        }
    }
}

/// The first 3 and the last 4 characters kept, the rest `*`:
/// `11010119500101123X` → `110***********123X`. Shorter than 8 characters: all `*`.
pub fn mask_id(id: &str) -> String {
    let chars: Vec<char> = id.trim().chars().collect();
    if chars.len() < 8 {
        return "*".repeat(chars.len());
    }
    let (head, rest) = chars.split_at(3);
    let (middle, tail) = rest.split_at(rest.len() - 4);
    format!(
        "{}{}{}",
        head.iter().collect::<String>(),
        "*".repeat(middle.len()),
        tail.iter().collect::<String>()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_standards_example_checks_and_a_changed_digit_does_not() {
        // GB 11643-1999's own example number.
        assert_eq!(
            validate("11010519491231002X"),
            Ok("11010519491231002X".into())
        );
        assert_eq!(
            validate("11010519491231002x"),
            Ok("11010519491231002X".into())
        );
        assert_eq!(validate("11010519491231003X"), Err(IdError::CheckDigit));
        assert_eq!(
            validate("440524188001010014"),
            Ok("440524188001010014".into())
        );
        assert_eq!(validate("440524188001010015"), Err(IdError::CheckDigit));
    }

    #[test]
    fn wrong_shapes_are_named() {
        assert_eq!(validate("1101051949123100"), Err(IdError::Length(16)));
        assert_eq!(validate("1101051949123100AX"), Err(IdError::NotDigits));
        assert_eq!(validate("110105194913310021"), Err(IdError::BadDate));
        assert_eq!(validate("11010519490229002X"), Err(IdError::BadDate));
        assert!(matches!(
            validate("一一0105194912310"),
            Err(IdError::Length(_))
        ));
    }

    #[test]
    fn the_check_table_covers_every_remainder() {
        let mut seen = std::collections::BTreeSet::new();
        for seq in 0..200u32 {
            let body = format!("11010119500101{seq:03}");
            let mut f = [0u8; 17];
            f.copy_from_slice(&body.as_bytes()[..17]);
            let c = check_char(&f);
            seen.insert(c);
            let id = format!("{body}{}", c as char);
            assert_eq!(validate(&id), Ok(id.clone()));
        }
        assert_eq!(seen.len(), 11);
    }

    #[test]
    fn age_counts_whole_years() {
        let born = Date::new(1950, 6, 15).unwrap();
        assert_eq!(born.age_on(Date::new(2026, 6, 14).unwrap()), 75);
        assert_eq!(born.age_on(Date::new(2026, 6, 15).unwrap()), 76);
        assert_eq!(born.age_on(Date::new(1949, 1, 1).unwrap()), 0);
        let leap = Date::new(2000, 2, 29).unwrap();
        assert_eq!(leap.age_on(Date::new(2001, 2, 28).unwrap()), 0);
        assert_eq!(leap.age_on(Date::new(2001, 3, 1).unwrap()), 1);
        assert_eq!(birth_date("11010519491231002X"), Date::new(1949, 12, 31));
        assert_eq!(Date::new(2026, 2, 29), None);
        assert_eq!(Date::parse_compact("2026-1-1"), None);
    }

    #[test]
    fn masks_keep_the_ends_only() {
        assert_eq!(mask_name("王小明"), "王*明");
        assert_eq!(mask_name("王明"), "王*");
        assert_eq!(mask_name("欧阳小明"), "欧**明");
        assert_eq!(mask_name("王"), "*");
        assert_eq!(mask_name(""), "");
        assert_eq!(mask_id("11010119500101123X"), "110***********123X");
        assert_eq!(mask_id("110105194912310021"), "110***********0021");
        assert_eq!(mask_id("1234567"), "*******");
    }
}
