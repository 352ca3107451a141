//! USB HID keypads (a numeric keypad as caller, a 5-button HID pad as rating device),
//! read through the kernel's evdev interface (`/dev/input/event*` or, better, a stable
//! `/dev/input/by-id/...` link). The device is grabbed so its keys never reach the
//! kiosk's UI. Reading blocks, so the owner runs [`EvdevKeypad::read_keys`] in its own
//! thread; the mapping from Linux key codes to [`Key`] is pure and configurable.

use std::collections::HashMap;
use std::path::Path;

use evdev::{Device, EventSummary, KeyCode};

use super::keys::{CallerKey, Key};

/// Linux key code → [`Key`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsbKeymap {
    map: HashMap<u16, Key>,
}

impl Default for UsbKeymap {
    /// The usual layout: numeric keypad digits type a number, Enter calls it, + calls
    /// next, * recalls, - no-show, / transfer, . clears; F1–F5 are rating keys 1–5 and
    /// F6–F10 reason keys 1–5 (what programmable 5-button HID pads send); letters type
    /// a service prefix; Pause toggles pause and End finishes.
    fn default() -> Self {
        let mut map = HashMap::new();
        let kp = [
            KeyCode::KEY_KP0,
            KeyCode::KEY_KP1,
            KeyCode::KEY_KP2,
            KeyCode::KEY_KP3,
            KeyCode::KEY_KP4,
            KeyCode::KEY_KP5,
            KeyCode::KEY_KP6,
            KeyCode::KEY_KP7,
            KeyCode::KEY_KP8,
            KeyCode::KEY_KP9,
        ];
        let top = [
            KeyCode::KEY_0,
            KeyCode::KEY_1,
            KeyCode::KEY_2,
            KeyCode::KEY_3,
            KeyCode::KEY_4,
            KeyCode::KEY_5,
            KeyCode::KEY_6,
            KeyCode::KEY_7,
            KeyCode::KEY_8,
            KeyCode::KEY_9,
        ];
        for d in 0..10 {
            map.insert(kp[d].code(), Key::Digit(d as u8));
            map.insert(top[d].code(), Key::Digit(d as u8));
        }
        let f = [
            KeyCode::KEY_F1,
            KeyCode::KEY_F2,
            KeyCode::KEY_F3,
            KeyCode::KEY_F4,
            KeyCode::KEY_F5,
            KeyCode::KEY_F6,
            KeyCode::KEY_F7,
            KeyCode::KEY_F8,
            KeyCode::KEY_F9,
            KeyCode::KEY_F10,
        ];
        for (i, k) in f.iter().enumerate() {
            let key = if i < 5 {
                Key::Rating(i as u8 + 1)
            } else {
                Key::Reason(i as u8 - 4)
            };
            map.insert(k.code(), key);
        }
        // Letter keys sit in three keyboard rows with consecutive codes.
        let rows = [(16u16, "QWERTYUIOP"), (30, "ASDFGHJKL"), (44, "ZXCVBNM")];
        for (start, row) in rows {
            for (i, c) in row.chars().enumerate() {
                map.insert(start + i as u16, Key::Letter(c));
            }
        }
        for (code, k) in [
            (KeyCode::KEY_KPENTER, CallerKey::CallTyped),
            (KeyCode::KEY_ENTER, CallerKey::CallTyped),
            (KeyCode::KEY_KPPLUS, CallerKey::CallNext),
            (KeyCode::KEY_KPASTERISK, CallerKey::Recall),
            (KeyCode::KEY_KPMINUS, CallerKey::NoShow),
            (KeyCode::KEY_KPSLASH, CallerKey::Transfer),
            (KeyCode::KEY_KPDOT, CallerKey::Clear),
            (KeyCode::KEY_BACKSPACE, CallerKey::Clear),
            (KeyCode::KEY_PAUSE, CallerKey::PauseToggle),
            (KeyCode::KEY_END, CallerKey::Finish),
        ] {
            map.insert(code.code(), Key::Function(k));
        }
        UsbKeymap { map }
    }
}

impl UsbKeymap {
    /// Replace or add one mapping (from the hall's config).
    pub fn set(&mut self, code: u16, key: Key) {
        self.map.insert(code, key);
    }

    /// The key for a Linux key code and event value: only presses (value 1) count;
    /// releases (0) and auto-repeat (2) are not presses.
    pub fn decode(&self, code: u16, value: i32) -> Option<Key> {
        (value == 1).then(|| self.map.get(&code).copied()).flatten()
    }
}

/// A grabbed evdev keyboard device.
pub struct EvdevKeypad {
    device: Device,
    map: UsbKeymap,
}

impl EvdevKeypad {
    /// Open and grab `path`.
    pub fn open(path: impl AsRef<Path>, map: UsbKeymap) -> std::io::Result<EvdevKeypad> {
        let mut device = Device::open(path)?;
        device.grab()?;
        Ok(EvdevKeypad { device, map })
    }

    /// Block until events arrive; the presses among them.
    pub fn read_keys(&mut self) -> std::io::Result<Vec<Key>> {
        let mut keys = Vec::new();
        for ev in self.device.fetch_events()? {
            if let EventSummary::Key(_, code, value) = ev.destructure()
                && let Some(k) = self.map.decode(code.code(), value)
            {
                keys.push(k);
            }
        }
        Ok(keys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_numeric_keypad_types_and_calls() {
        let m = UsbKeymap::default();
        assert_eq!(m.decode(KeyCode::KEY_KP7.code(), 1), Some(Key::Digit(7)));
        assert_eq!(m.decode(KeyCode::KEY_KP7.code(), 0), None);
        assert_eq!(m.decode(KeyCode::KEY_KP7.code(), 2), None);
        assert_eq!(
            m.decode(KeyCode::KEY_KPENTER.code(), 1),
            Some(Key::Function(CallerKey::CallTyped))
        );
        assert_eq!(m.decode(KeyCode::KEY_A.code(), 1), Some(Key::Letter('A')));
        assert_eq!(m.decode(KeyCode::KEY_M.code(), 1), Some(Key::Letter('M')));
        assert_eq!(m.decode(KeyCode::KEY_P.code(), 1), Some(Key::Letter('P')));
        assert_eq!(m.decode(KeyCode::KEY_F5.code(), 1), Some(Key::Rating(5)));
        assert_eq!(m.decode(KeyCode::KEY_F6.code(), 1), Some(Key::Reason(1)));
        assert_eq!(m.decode(KeyCode::KEY_VOLUMEUP.code(), 1), None);
    }
}
