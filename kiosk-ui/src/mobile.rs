//! The mobile number a citizen types for the near-turn notice (issue 20): a mainland
//! number, 11 digits, `1` then `3`–`9`.
//!
//! It is personal data. It lives in a [`MobileInput`] while the citizen types, whose
//! `Debug` shows only how many digits there are, and whose digits are overwritten when
//! it is cleared or dropped; the kiosk sends it once to the controller and afterwards
//! shows only the masked form (`138****5678`). Nothing here logs.

/// How many digits a mainland mobile number has.
pub const DIGITS: usize = 11;

/// Why the typed digits are not a mainland mobile number, as the screen explains it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    /// Nothing typed yet.
    Empty,
    /// Fewer than 11 digits (how many).
    Short(usize),
    /// 11 digits, but not `1` then `3`–`9`.
    NotMobile,
}

impl Problem {
    /// The code the screen knows it by (`Kiosk.notify-problem`).
    pub fn code(self) -> &'static str {
        match self {
            Problem::Empty => "empty",
            Problem::Short(_) => "short",
            Problem::NotMobile => "not_mobile",
        }
    }
}

/// The digits being typed on the pad.
#[derive(Default, Clone)]
pub struct MobileInput(String);

impl MobileInput {
    /// Applies a pad key: a digit appends (up to 11), `DEL` deletes the last, `CLR`
    /// clears; anything else is ignored.
    pub fn key(&mut self, key: &str) {
        match key {
            "DEL" => {
                self.0.pop();
            }
            "CLR" => self.clear(),
            k if k.len() == 1 && k.bytes().all(|b| b.is_ascii_digit()) && self.0.len() < DIGITS => {
                self.0.push_str(k)
            }
            _ => {}
        }
    }

    /// The digits typed, for the one request that sends them.
    pub fn digits(&self) -> &str {
        &self.0
    }

    /// Whether nothing is typed.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// How many digits are typed.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The digits grouped as a citizen reads a number: `138 1234 5678` (3, 4, 4).
    pub fn grouped(&self) -> String {
        grouped(&self.0)
    }

    /// Whether the digits are a mainland mobile number, and why not.
    pub fn check(&self) -> Result<(), Problem> {
        check(&self.0)
    }

    /// Forgets the digits, overwriting them first.
    pub fn clear(&mut self) {
        let n = self.0.len();
        self.0.clear();
        // The same buffer (clear keeps the capacity): the digits are gone from memory,
        // not just from the length.
        self.0.extend(std::iter::repeat_n('0', n));
        self.0.clear();
    }
}

impl Drop for MobileInput {
    fn drop(&mut self) {
        self.clear();
    }
}

impl std::fmt::Debug for MobileInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MobileInput({} digits)", self.0.len())
    }
}

/// Whether `digits` are a mainland mobile number: 11 digits, `1` then `3`–`9`.
pub fn check(digits: &str) -> Result<(), Problem> {
    let b = digits.as_bytes();
    if b.is_empty() {
        return Err(Problem::Empty);
    }
    if b.len() < DIGITS {
        return Err(Problem::Short(b.len()));
    }
    if b.len() != DIGITS
        || !b.iter().all(u8::is_ascii_digit)
        || b[0] != b'1'
        || !(b'3'..=b'9').contains(&b[1])
    {
        return Err(Problem::NotMobile);
    }
    Ok(())
}

/// Digits in groups of 3, 4 and 4, as far as typed: `138`, `138 12`, `138 1234 5678`.
pub fn grouped(digits: &str) -> String {
    let mut out = String::with_capacity(digits.len() + 2);
    for (i, c) in digits.chars().enumerate() {
        if i == 3 || i == 7 {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

/// The masked form the screen may show after sending: `138****5678`.
pub fn masked(digits: &str) -> String {
    if digits.len() == DIGITS && digits.is_ascii() {
        format!("{}****{}", &digits[..3], &digits[7..])
    } else {
        "****".to_string()
    }
}

/// Whether a number the controller answered is masked (a run of at most four digits
/// between stars), so that the screen never shows a whole number, even from a faulty
/// answer.
pub fn looks_masked(s: &str) -> bool {
    let mut run = 0;
    for c in s.chars() {
        if c.is_ascii_digit() {
            run += 1;
            if run > 4 {
                return false;
            }
        } else {
            run = 0;
        }
    }
    s.contains('*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pad_types_digits_up_to_eleven_and_deletes() {
        let mut m = MobileInput::default();
        for k in "1381234567899".chars() {
            m.key(&k.to_string());
        }
        assert_eq!(m.digits(), "13812345678");
        m.key("DEL");
        m.key("x");
        m.key("A");
        assert_eq!(m.digits(), "1381234567");
        m.key("CLR");
        assert!(m.is_empty());
    }

    #[test]
    fn numbers_are_grouped_as_typed() {
        assert_eq!(grouped(""), "");
        assert_eq!(grouped("13"), "13");
        assert_eq!(grouped("138"), "138");
        assert_eq!(grouped("1381"), "138 1");
        assert_eq!(grouped("1381234"), "138 1234");
        assert_eq!(grouped("13812345"), "138 1234 5");
        assert_eq!(grouped("13812345678"), "138 1234 5678");
    }

    #[test]
    fn only_mainland_mobile_numbers_pass() {
        assert_eq!(check(""), Err(Problem::Empty));
        assert_eq!(check("1381234"), Err(Problem::Short(7)));
        assert_eq!(check("12812345678"), Err(Problem::NotMobile));
        assert_eq!(check("23812345678"), Err(Problem::NotMobile));
        assert_eq!(check("10012345678"), Err(Problem::NotMobile));
        for ok in ["13812345678", "19912345678", "15000000000"] {
            assert_eq!(check(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn only_the_mask_is_shown_and_debug_says_no_digit() {
        assert_eq!(masked("13812345678"), "138****5678");
        assert!(looks_masked("138****5678"));
        assert!(!looks_masked("13812345678"));
        assert!(!looks_masked("138 1234 5678"));
        let mut m = MobileInput::default();
        for k in "13812345678".chars() {
            m.key(&k.to_string());
        }
        let shown = format!("{m:?}");
        assert_eq!(shown, "MobileInput(11 digits)");
        m.clear();
        assert_eq!(m.len(), 0);
    }
}
