//! The resident ID card reader's parsers (`hallq_hardware::idcard`): the SAM frame
//! parser on a byte stream, the card's text block, and the simulated reader that
//! answers whatever arrives. Noise is counted and skipped, never a panic; frames
//! re-encode to bytes that parse to the same frames; the stream cut anywhere (two
//! reads) gives the frames read whole; a text block that decodes encodes back to a
//! block that decodes to the same card.
#![no_main]

use hallq_hardware::idcard::frame::{Answer, encode_frame, parse_frames};
use hallq_hardware::idcard::number;
use hallq_hardware::idcard::sim::SimReader;
use hallq_hardware::idcard::text::{CardText, split_base};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&cut, bytes)) = data.split_first() else {
        return;
    };
    let (frames, used, stats) = parse_frames(bytes);
    assert!(used <= bytes.len());
    assert!(stats.skipped <= used);

    let encoded: Vec<u8> = frames.iter().flat_map(|f| encode_frame(f)).collect();
    let (again, used2, stats2) = parse_frames(&encoded);
    assert_eq!(again, frames);
    assert_eq!(used2, encoded.len());
    assert_eq!(stats2.skipped + stats2.corrupt, 0);

    let at = (cut as usize * bytes.len()) / 255;
    let (mut first, used_a, _) = parse_frames(&bytes[..at]);
    let (second, used_b, _) = parse_frames(&bytes[used_a..]);
    first.extend(second);
    assert_eq!(first, frames, "cut at {at}");
    assert_eq!(used_a + used_b, used);

    // Every frame as an answer: a base-information answer's text, and the bytes as a
    // text block themselves.
    for f in &frames {
        if let Ok(a) = Answer::from_body(f)
            && let Ok((text, _photo)) = split_base(&a.data)
        {
            round_trip(text);
        }
    }
    round_trip(bytes);

    // The simulator takes anything and answers only with well-formed frames.
    let mut sim = SimReader::default();
    sim.place(CardText::specimen("王小明", "11010119500101101X"));
    let out = sim.feed(bytes);
    let (_, used3, stats3) = parse_frames(&out);
    assert_eq!((used3, stats3.corrupt, stats3.skipped), (out.len(), 0, 0));

    // The number's checks never panic, and a valid number masks to its ends.
    let typed = String::from_utf8_lossy(bytes);
    if let Ok(id) = number::validate(&typed) {
        let masked = number::mask_id(&id);
        assert_eq!(masked.len(), 18);
        assert_eq!(&masked[..3], &id[..3]);
    }
    let _ = number::mask_name(&typed);
});

fn round_trip(block: &[u8]) {
    if let Ok(card) = CardText::decode(block)
        && let Ok(encoded) = card.encode()
    {
        assert_eq!(CardText::decode(&encoded).as_ref(), Ok(&card));
    }
}
