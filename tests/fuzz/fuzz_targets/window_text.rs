//! GB2312 text for LED screens (`hallq_hardware::window::text`): bytes from a device
//! decode to text or are refused, never a panic, and decoded text encodes back to the
//! same bytes; text the daemon builds encodes to bytes that decode back to it.
#![no_main]

use hallq_hardware::window::regmap::{decode_line, encode_line};
use hallq_hardware::window::text::{DisplayLine, Gb2312Text};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(t) = Gb2312Text::from_bytes(data) {
        assert_eq!(t.bytes(), data);
        let again = Gb2312Text::new(t.as_str()).unwrap_or_else(|e| {
            panic!(
                "{:?} decoded from {data:02x?} does not encode: {e}",
                t.as_str()
            )
        });
        assert_eq!(again.bytes(), data, "{:?}", t.as_str());
        assert_eq!(t.cells(), data.len());
    }
    if let Ok(s) = std::str::from_utf8(data)
        && let Ok(t) = Gb2312Text::new(s)
    {
        let back = Gb2312Text::from_bytes(t.bytes())
            .unwrap_or_else(|| panic!("{s:?} encodes to bytes that do not decode"));
        assert_eq!(back.as_str(), s);
        // The register form of a line cuts long text between characters only.
        let line = DisplayLine {
            text: t,
            ..DisplayLine::default()
        };
        let regs = encode_line(&line);
        let shown = decode_line(&regs).expect("an encoded line decodes");
        assert!(s.starts_with(shown.text.as_str()));
    }
});
