//! Printer status replies: any bytes a printer (or line noise) sends back to `DLE EOT`
//! give a status or an error, never a panic or a hang.
#![no_main]

use std::io::{Cursor, Read, Write};
use std::time::Duration;

use hallq_hardware::status::query_status;
use libfuzzer_sys::fuzz_target;

/// A printer whose replies are the fuzz input.
struct Replies(Cursor<Vec<u8>>);

impl Read for Replies {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.read(buf)
    }
}

impl Write for Replies {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(replies) = <[u8; 4]>::try_from(data.get(..4).unwrap_or(&[])) {
        let _ = hallq_hardware::status::PrinterStatus::from_replies(replies);
    }
    let _ = query_status(&mut Replies(Cursor::new(data.to_vec())), Duration::ZERO);
});
