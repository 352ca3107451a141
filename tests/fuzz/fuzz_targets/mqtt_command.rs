//! Commands from the hall server on `…/cmd` (`hallq::uplink::wire::CmdMessage`): any
//! message is a command or a refusal with a reason (and the id, when one could be
//! read), never a panic; a command's name is one the documentation lists. The report
//! periods a `request_report` carries (day, ISO week, month) read to a span of days or
//! are refused, never a panic at the ends of the calendar. What a command leaves behind
//! (`Controls::apply` on its event) never panics either.
#![no_main]

use hallq::report::Period;
use hallq::uplink::Controls;
use hallq::uplink::wire::{Cmd, CmdMessage};
use libfuzzer_sys::fuzz_target;

const NAMES: [&str; 6] = [
    "lock_kiosk",
    "unlock_kiosk",
    "show_notice",
    "clear_notice",
    "reprint_ticket",
    "request_report",
];

fn period(text: &str) {
    for p in [
        Period::week(text),
        Period::month(text),
        text.parse().ok().map(Period::day),
    ]
    .into_iter()
    .flatten()
    {
        assert!(p.from <= p.to, "{text:?}: {p:?}");
    }
}

fuzz_target!(|data: &[u8]| {
    match CmdMessage::parse(data) {
        Ok(m) => {
            assert!(!m.id.is_empty() && m.id.len() <= 128);
            assert!(NAMES.contains(&m.command.name()));
            if let Cmd::RequestReport { period: p } = &m.command {
                period(p);
            }
        }
        Err((Some(id), reason)) => {
            assert!(!id.is_empty() && id.len() <= 128);
            assert!(!reason.is_empty());
        }
        Err((None, reason)) => assert!(!reason.is_empty()),
    }
    if let Ok(text) = std::str::from_utf8(data) {
        period(text);
    }
    // The events that commands leave, read back at start whatever their payload.
    if let Ok(payload) = serde_json::from_slice::<serde_json::Value>(data) {
        let c = Controls::default();
        for kind in [
            "kiosk_locked",
            "notice_shown",
            "kiosk_unlocked",
            "notice_cleared",
        ] {
            c.apply(kind, &payload, 1_795_395_600_000);
            let _ = (c.lock(), c.notice(1_795_395_600_000));
        }
    }
});
