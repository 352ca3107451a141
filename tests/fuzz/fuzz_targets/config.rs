//! The configuration parser: any text is a config or an error naming a key and a line
//! within the file, never a panic.
#![no_main]

use hallq::config::{Config, ConfigError};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(ConfigError::Invalid { line, .. }) = Config::parse(text, "fuzz.toml") {
        assert!(
            line <= text.lines().count() + 1,
            "line {line} is past the end"
        );
    }
});
