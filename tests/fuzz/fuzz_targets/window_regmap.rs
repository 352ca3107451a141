//! The register map decoders (`hallq_hardware::window::regmap`) on registers read from
//! a device: identity, status block and key queue, and line blocks (GB2312 text packed
//! two bytes a register). Never a panic; what decodes encodes back to the same
//! registers (round trip); and the key tracker delivers each pending press at most once
//! whatever a confused device reports.
#![no_main]

use hallq_hardware::window::regmap::{
    self, Identity, KeyTracker, LINE_MAX_BYTES, STATUS_LEN, Status, decode_line, encode_line,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let regs: Vec<u16> = data
        .chunks(2)
        .map(|c| u16::from_be_bytes([c[0], c.get(1).copied().unwrap_or(0)]))
        .collect();

    if let Ok(id) = Identity::decode(&regs) {
        assert_eq!(&id.encode()[..], &regs[..12]);
        let _ = (id.kind.has_display(), id.kind.has_keys());
    }

    if let Ok(line) = decode_line(&regs) {
        let again = encode_line(&line);
        // Same text bytes and length; the padding byte of an odd length is zero on the
        // way out, whatever it was on the way in.
        assert_eq!(again[2], regs[2]);
        assert!(again[2] as usize <= LINE_MAX_BYTES);
        assert_eq!(decode_line(&again).as_ref(), Ok(&line));
        assert_eq!(line.text.bytes().len(), regs[2] as usize);
    }

    // Status blocks, one after another, through one tracker.
    let mut tracker = KeyTracker::default();
    for block in regs.chunks(STATUS_LEN as usize) {
        let Ok(status) = Status::decode(block) else {
            assert!(block.len() < STATUS_LEN as usize);
            continue;
        };
        assert!(status.presses.len() <= regmap::KEY_QUEUE_LEN);
        let step = tracker.step(&status);
        assert!(step.new.len() <= status.presses.len());
        for p in &step.new {
            assert!(status.presses.contains(p));
            assert_ne!(p.seq, 0);
        }
        assert_eq!(step.ack, status.presses.last().map(|p| p.seq));
        // Read again unchanged (the ack was lost): no press is delivered twice, even
        // from a device whose numbers are out of order.
        let mut delivered: Vec<u16> = step.new.iter().map(|p| p.seq).collect();
        for _ in 0..3 {
            let again = tracker.step(&status);
            assert!(!again.restarted);
            for p in again.new {
                assert!(
                    !delivered.contains(&p.seq),
                    "{status:?}: {} delivered twice",
                    p.seq
                );
                delivered.push(p.seq);
            }
        }
        let _ = regmap::fault::names(status.faults);
    }
});
