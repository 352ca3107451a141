//! The vendor window-screen frame parser (`hallq_hardware::window::vendor_frame`), what a
//! simulated vendor screen runs on its byte stream: noise is counted and skipped, never
//! a panic; frames re-encode to bytes that parse to the same frames; and the stream cut
//! anywhere (two reads) gives the same frames as read whole.
#![no_main]

use hallq_hardware::window::vendor_frame::{VendorProfile, parse_frames};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&cut, bytes)) = data.split_first() else {
        return;
    };
    for p in [
        VendorProfile::default(),
        VendorProfile {
            header: 0xAA,
            end: 0x03,
        },
    ] {
        let (frames, used, stats) = parse_frames(p, bytes);
        assert!(used <= bytes.len());
        assert!(stats.skipped <= used);

        let encoded: Vec<u8> = frames.iter().flat_map(|f| f.encode(p)).collect();
        let (again, used2, stats2) = parse_frames(p, &encoded);
        assert_eq!(again, frames);
        assert_eq!(used2, encoded.len());
        assert_eq!(stats2.skipped + stats2.bad_frames, 0);

        // Two reads: the first leaves its incomplete tail for the second.
        let at = (cut as usize * bytes.len()) / 255;
        let (mut first, used_a, _) = parse_frames(p, &bytes[..at]);
        let (second, used_b, _) = parse_frames(p, &bytes[used_a..]);
        first.extend(second);
        assert_eq!(first, frames, "cut at {at}");
        assert_eq!(used_a + used_b, used);
    }
});
