//! WAV input of the voice layer (`hallq_voice::audio`): a voice pack's clips (dropped in
//! by a hall's technician) and espeak-ng's piped output (with its header repaired by
//! `fix_streamed_header`). Any bytes are audio or a clear error, never a panic or a
//! runaway allocation; what reads writes back and reads again sample for sample.
#![no_main]

use std::io::Cursor;

use hallq_voice::audio::{Audio, DEFAULT_RATE, fix_streamed_header};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(a) = Audio::read_exact(Cursor::new(data), DEFAULT_RATE) {
        assert_eq!(a.rate, DEFAULT_RATE);
        let back = Audio::read_exact(Cursor::new(a.to_wav()), DEFAULT_RATE).expect("round trip");
        assert_eq!(back, a);
        let _ = (a.duration(), a.rms());
    }
    let mut piped = data.to_vec();
    fix_streamed_header(&mut piped);
    assert_eq!(piped.len(), data.len());
    if let Ok(a) = Audio::read_any(Cursor::new(&piped)) {
        // What the renderer does with espeak-ng's output: to the pack's rate, louder.
        let mut r = a.resample(DEFAULT_RATE);
        r.apply_volume(150);
        if a.rate > 0 {
            let expected = a.samples.len() as u64 * DEFAULT_RATE as u64 / a.rate as u64;
            assert!(r.samples.len() as u64 <= expected.max(a.samples.len() as u64));
        }
    }
});
