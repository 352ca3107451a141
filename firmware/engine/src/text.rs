//! Text a person typed, as the engine keeps it and as messages repeat it.

/// Whether `c` has no place in text a person typed: a control character (NUL, ESC, line
/// breaks) or a bidirectional formatting character (U+202A–U+202E, U+2066–U+2069, the
/// marks U+200E, U+200F and U+061C), which reorders what a screen or a report shows.
pub fn unsafe_in_text(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}'
        )
}

/// The most of a person's input a message repeats, in characters.
pub const ECHO_CHARS: usize = 40;

/// `text` as a message repeats it: at most [`ECHO_CHARS`] characters (then `…`), with
/// control and bidirectional formatting characters shown as `?`, so that a refusal
/// is never larger than a screen, nor reorders one.
pub fn clip(text: &str) -> String {
    clip_to(text, ECHO_CHARS)
}

/// [`clip`] to `max` characters: for a message that quotes input among its own words
/// (a JSON parser's, say).
pub fn clip_to(text: &str, max: usize) -> String {
    let mut out: String = text
        .chars()
        .take(max)
        .map(|c| if unsafe_in_text(c) { '?' } else { c })
        .collect();
    if text.chars().nth(max).is_some() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_input_is_repeated_in_forty_characters_without_controls() {
        assert_eq!(clip("SB"), "SB");
        let long = "服".repeat(100);
        assert_eq!(clip(&long), format!("{}…", "服".repeat(40)));
        assert_eq!(clip("a\u{202E}b\u{0}c\n"), "a?b?c?");
    }

    #[test]
    fn control_and_bidi_characters_are_unsafe_and_chinese_is_not() {
        for c in [
            '\u{0}', '\u{1b}', '\n', '\u{202E}', '\u{2066}', '\u{200F}', '\u{061C}',
        ] {
            assert!(unsafe_in_text(c), "{c:?}");
        }
        for c in ['a', '服', '，', '\u{3000}', 'é'] {
            assert!(!unsafe_in_text(c), "{c:?}");
        }
    }
}
