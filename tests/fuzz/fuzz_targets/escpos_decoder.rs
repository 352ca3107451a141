//! The virtual printer's ESC/POS decoder: any bytes decode to paper plus counted
//! errors, never a panic, and rendering that paper to text never panics either.
#![no_main]

use hallq_hardware::virtual_printer::VirtualPrinter;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (paper, _stats) = VirtualPrinter::decode(data);
    let _ = paper.to_text(32);
    // Fed in two pieces, the streaming decoder must not panic at the seam either.
    let mut p = VirtualPrinter::new();
    let mid = data.len() / 2;
    let _ = p.feed(&data[..mid]);
    let _ = p.feed(&data[mid..]);
    p.finish();
});
