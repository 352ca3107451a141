//! Keys from window devices (`hallq_hardware::window::keys`, `usb_hid`): any key code a
//! keypad reports maps to a key or to nothing, and back to the same code; any sequence
//! of presses keeps the caller's typed number short and the rating pad's answers within
//! its setting; a USB keypad's events map only presses.
#![no_main]

use hallq_hardware::window::keys::{
    CallerAction, CallerInput, Key, MAX_TYPED, RatingInput, RatingKeyMap,
};
use hallq_hardware::window::usb_hid::UsbKeymap;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut caller = CallerInput::default();
    let pads = [RatingKeyMap::five(), RatingKeyMap::three()];
    let usb = UsbKeymap::default();
    for c in data.chunks(2) {
        let code = u16::from_be_bytes([c[0], c.get(1).copied().unwrap_or(0)]);
        if let Some(key) = Key::from_code(code) {
            assert_eq!(key.code(), code, "{key:?}");
            if let Some(CallerAction::CallNumber(n)) = caller.key(key) {
                assert!(n.len() <= MAX_TYPED && n.chars().any(|c| c.is_ascii_digit()));
            }
            assert!(caller.typed().len() <= MAX_TYPED);
            for pad in &pads {
                match pad.decode(key) {
                    Some(RatingInput::Level(l)) => assert!(pad.levels.contains(&l)),
                    Some(RatingInput::Reason(r)) => assert!(pad.reasons.contains(&r)),
                    None => {}
                }
            }
        }
        // Linux key code and event value (0 release, 1 press, 2 repeat, or junk).
        let value = i32::from(c[0] >> 6);
        if let Some(k) = usb.decode(code, value) {
            assert_eq!(value, 1);
            assert_eq!(Key::from_code(k.code()), Some(k));
        }
    }
});
