//! Queue configuration pushed by the hall server on `…/config/set`: any message is a
//! setup or a refusal naming the key at fault, never a panic (the same reading as the
//! uplink worker: `ConfigSet::parse`, then `apply::parse_setup`).
//! A setup that is accepted starts an engine, fits an engine started with it, and the
//! stored document reads back to the same setup after a restart (round trip).
#![no_main]

use hallq::uplink::apply::parse_setup;
use hallq::uplink::wire::ConfigSet;
use hallq_engine::{Engine, Timestamp};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let set = match ConfigSet::parse(data) {
        Ok(s) => s,
        Err((_key, reason)) => {
            assert!(!reason.is_empty());
            return;
        }
    };
    let setup = match parse_setup(&set.queue) {
        Ok(s) => s,
        Err(e) => {
            let text = e.to_string();
            assert!(text.starts_with("queue"), "{text}");
            return;
        }
    };
    let now = Timestamp(1_795_395_600_000);
    let engine = Engine::new(setup.clone(), now)
        .unwrap_or_else(|e| panic!("a validated setup does not start an engine: {e}"));
    engine
        .fits(&setup)
        .expect("an engine's own setup fits it");
    let _ = engine.loads();

    // What `uplink::in_force_at_start` reads at the next start.
    let document = String::from_utf8_lossy(data).into_owned();
    let stored: ConfigSet = serde_json::from_str(&document).expect("stored document reads");
    assert_eq!(stored.version, set.version);
    assert_eq!(parse_setup(&stored.queue).ok(), Some(setup));
});
