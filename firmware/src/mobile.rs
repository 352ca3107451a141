//! Mainland mobile numbers, as a citizen types one for a near-turn notice (issue 20).
//!
//! The number is personal data: it is kept only as a [`MobileNumber`], whose `Debug`
//! and `Display` show the masked form (`138****1234`), so a log line or an event that
//! formats one by mistake never holds the whole number. [`MobileNumber::digits`] is the
//! one way to the digits, for the table that holds it and the SMS upstream.

/// Why a typed number is not a mainland mobile number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MobileError {
    /// Nothing typed.
    #[error("no number was typed")]
    Empty,
    /// Something other than digits (after an optional `+86` or `86` and spaces or dashes).
    #[error("a mobile number has digits only")]
    NotDigits,
    /// Not 11 digits.
    #[error("a mainland mobile number has 11 digits, not {0}")]
    Length(usize),
    /// 11 digits that are no mobile number (they start with 1 and then 3 to 9).
    #[error("a mainland mobile number starts with 13 to 19")]
    NotMobile,
}

/// A mainland China mobile number: 11 digits, `1` then `3`–`9`.
#[derive(Clone, PartialEq, Eq)]
pub struct MobileNumber(String);

impl MobileNumber {
    /// Reads a typed number. Spaces and dashes between digits are allowed, and a
    /// leading `+86` or `86` country code on a 13-digit entry; nothing else.
    pub fn parse(typed: &str) -> Result<MobileNumber, MobileError> {
        let compact: String = typed
            .trim()
            .chars()
            .filter(|c| *c != ' ' && *c != '-')
            .collect();
        if compact.is_empty() {
            return Err(MobileError::Empty);
        }
        let national = compact.strip_prefix('+').unwrap_or(&compact);
        if !national.bytes().all(|b| b.is_ascii_digit()) {
            return Err(MobileError::NotDigits);
        }
        if compact.starts_with('+') && !national.starts_with("86") {
            return Err(MobileError::NotMobile);
        }
        let national = match national.len() {
            13 if national.starts_with("86") => &national[2..],
            _ if compact.starts_with('+') => return Err(MobileError::Length(national.len())),
            _ => national,
        };
        if national.len() != 11 {
            return Err(MobileError::Length(national.len()));
        }
        let b = national.as_bytes();
        if b[0] != b'1' || !(b'3'..=b'9').contains(&b[1]) {
            return Err(MobileError::NotMobile);
        }
        Ok(MobileNumber(national.to_string()))
    }

    /// The 11 digits, for the table that keeps them and the SMS gateway only.
    pub fn digits(&self) -> &str {
        &self.0
    }

    /// The first three and last four digits: `138****1234`, what events and the audit
    /// log may record.
    pub fn masked(&self) -> String {
        format!("{}****{}", &self.0[..3], &self.0[7..])
    }
}

impl std::fmt::Display for MobileNumber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.masked())
    }
}

impl std::fmt::Debug for MobileNumber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MobileNumber({})", self.masked())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mainland_mobile_number_is_read_with_or_without_country_code_and_separators() {
        for typed in [
            "13812341234",
            " 138 1234 1234 ",
            "138-1234-1234",
            "+8613812341234",
            "8613812341234",
            "+86 138 1234 1234",
        ] {
            assert_eq!(
                MobileNumber::parse(typed).map(|m| m.digits().to_string()),
                Ok("13812341234".to_string()),
                "{typed:?}"
            );
        }
    }

    #[test]
    fn anything_else_is_refused_with_the_reason() {
        assert_eq!(MobileNumber::parse("  "), Err(MobileError::Empty));
        assert_eq!(
            MobileNumber::parse("1381234123a"),
            Err(MobileError::NotDigits)
        );
        assert_eq!(
            MobileNumber::parse("138+12341234"),
            Err(MobileError::NotDigits)
        );
        assert_eq!(
            MobileNumber::parse("１３８１２３４１２３４"),
            Err(MobileError::NotDigits)
        );
        assert_eq!(
            MobileNumber::parse("1381234123"),
            Err(MobileError::Length(10))
        );
        assert_eq!(
            MobileNumber::parse("138123412345"),
            Err(MobileError::Length(12))
        );
        assert_eq!(
            MobileNumber::parse("+85261234567"),
            Err(MobileError::NotMobile)
        );
        assert_eq!(
            MobileNumber::parse("+861381234123"),
            Err(MobileError::Length(12))
        );
        assert_eq!(
            MobileNumber::parse("12812341234"),
            Err(MobileError::NotMobile)
        );
        assert_eq!(
            MobileNumber::parse("01012345678"),
            Err(MobileError::NotMobile)
        );
    }

    #[test]
    fn the_number_shows_only_masked_when_formatted() {
        let m = MobileNumber::parse("13812341234").unwrap();
        assert_eq!(m.masked(), "138****1234");
        assert_eq!(m.to_string(), "138****1234");
        let debug = format!("{m:?}");
        assert!(!debug.contains("13812341234"), "{debug}");
        assert!(debug.contains("138****1234"), "{debug}");
    }
}
