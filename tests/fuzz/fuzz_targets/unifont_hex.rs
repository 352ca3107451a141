//! The LED bitmap font parser (`BitmapFont::parse_hex`, GNU Unifont `.hex`, also read
//! from `$HALLQ_BITMAP_FONT`): any text is a font or an error naming a line within the
//! text, never a panic; a parsed font lays out any text or names the missing character.
#![no_main]

use hallq_hardware::window::font::{BitmapFont, FontError};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match BitmapFont::parse_hex(text) {
        Ok(font) => {
            let sample: String = text.chars().filter(|c| !c.is_control()).take(64).collect();
            match font.columns(&sample) {
                Ok(cols) => assert!(cols.len() <= sample.chars().count() * 16),
                Err(FontError::Missing(c)) => assert!(sample.contains(c)),
                Err(e) => panic!("unexpected {e}"),
            }
        }
        Err(FontError::Syntax { line }) => {
            assert!(line >= 1 && line <= text.lines().count(), "line {line}");
        }
        Err(e) => panic!("unexpected {e}"),
    }
});
