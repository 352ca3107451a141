//! The event envelope on `…/events` and `hallq receive`, the reference receiver: any
//! message is stored once or counted as malformed or duplicate, never a panic or a
//! database error; the summary (counts and gaps per controller) reads whatever was
//! stored. Round trip: an envelope the receiver reads, encoded again by the controller's
//! `encode_event`, reads back equal.
#![no_main]

use hallq::store::uplink::OutboxRow;
use hallq::uplink::receive::{Stored, open_db, store, summarize};
use hallq::uplink::wire::{Envelope, Origin, encode_event};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let conn = open_db(std::path::Path::new(":memory:")).expect("receiver db");
    // The message, then a resend of it, then its halves as two messages.
    let first = store(&conn, data).expect("store never fails on content");
    let second = store(&conn, data).expect("store never fails on content");
    match first {
        Stored::New => assert_eq!(second, Stored::Duplicate),
        Stored::Malformed => assert_eq!(second, Stored::Malformed),
        Stored::Duplicate => panic!("first message counted as duplicate"),
    }
    let mid = data.len() / 2;
    store(&conn, &data[..mid]).expect("store");
    store(&conn, &data[mid..]).expect("store");
    let summary = summarize(&conn).expect("summary never fails on content");
    for c in &summary.controllers {
        assert!(c.first_seq <= c.last_seq);
        for (a, b) in &c.gaps {
            assert!(a <= b && *a > c.first_seq && *b < c.last_seq, "{c:?}");
        }
    }
    let _ = summary.to_text();

    if let Ok(e) = serde_json::from_slice::<Envelope>(data) {
        let row = OutboxRow {
            seq: e.seq,
            id: e.id.clone(),
            at: e.at,
            kind: e.kind.clone(),
            schema: e.schema,
            payload: e.payload.to_string(),
        };
        let origin = Origin::new(&e.controller_id, &e.hall_id, 480);
        let bytes = encode_event(&origin, &row);
        let back: Envelope = serde_json::from_slice(&bytes)
            .unwrap_or_else(|err| panic!("{}: {err}", String::from_utf8_lossy(&bytes)));
        assert_eq!(back.id, e.id);
        assert_eq!(back.seq, e.seq);
        assert_eq!(back.kind, e.kind);
        assert_eq!(back.controller_id, e.controller_id);
        assert_eq!(back.payload, e.payload);
    }
});
