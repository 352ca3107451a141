//! Keys: the codes of the register map, the rating pad's mapping from key positions to
//! the five national levels (a setting, because pads and provinces differ), reason keys,
//! and the caller keypad's digit entry.
//!
//! Every backend (Modbus profile, GPIO buttons, USB keypad) produces [`Key`]s; the
//! mapping to what a key *means* lives here, once.

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// A key as the hardware reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "key", content = "n")]
pub enum Key {
    /// Rating key at position 1.. counted from the left.
    Rating(u8),
    /// Reason key 1..
    Reason(u8),
    /// A caller function key.
    Function(CallerKey),
    /// Digit 0–9.
    Digit(u8),
    /// Letter A–Z (service prefix).
    Letter(char),
}

/// Function keys of a caller keypad.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallerKey {
    /// 呼叫.
    CallNext,
    /// 重呼.
    Recall,
    /// 弃号.
    NoShow,
    /// 转移.
    Transfer,
    /// 暂停.
    Pause,
    /// 恢复.
    Resume,
    /// 完成.
    Finish,
    /// 指呼: call the typed number.
    CallTyped,
    /// 清除.
    Clear,
    /// One key toggling pause.
    PauseToggle,
}

impl CallerKey {
    const ALL: [CallerKey; 10] = [
        CallerKey::CallNext,
        CallerKey::Recall,
        CallerKey::NoShow,
        CallerKey::Transfer,
        CallerKey::Pause,
        CallerKey::Resume,
        CallerKey::Finish,
        CallerKey::CallTyped,
        CallerKey::Clear,
        CallerKey::PauseToggle,
    ];
}

impl Key {
    /// The register map's key code.
    pub fn code(self) -> u16 {
        match self {
            Key::Rating(n) => 0x0100 | n as u16,
            Key::Reason(n) => 0x0200 | n as u16,
            Key::Function(f) => {
                0x0300 | (CallerKey::ALL.iter().position(|k| *k == f).unwrap_or(0) as u16 + 1)
            }
            Key::Digit(d) => 0x0400 | d as u16,
            Key::Letter(c) => 0x0500 | (c as u32 as u16 & 0xFF),
        }
    }

    /// Decode a key code; `None` for codes the profile does not define.
    pub fn from_code(code: u16) -> Option<Key> {
        let (group, index) = ((code >> 8) as u8, (code & 0xFF) as u8);
        match (group, index) {
            (1, 1..=5) => Some(Key::Rating(index)),
            (2, 1..=8) => Some(Key::Reason(index)),
            (3, 1..=10) => Some(Key::Function(CallerKey::ALL[index as usize - 1])),
            (4, 0..=9) => Some(Key::Digit(index)),
            (5, b'A'..=b'Z') => Some(Key::Letter(index as char)),
            _ => None,
        }
    }
}

/// The five national rating levels (GB/T 39734-2020), stored by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RatingLevel {
    /// 非常满意.
    #[serde(rename = "非常满意")]
    VerySatisfied,
    /// 满意.
    #[serde(rename = "满意")]
    Satisfied,
    /// 基本满意.
    #[serde(rename = "基本满意")]
    Basic,
    /// 不满意.
    #[serde(rename = "不满意")]
    Dissatisfied,
    /// 非常不满意.
    #[serde(rename = "非常不满意")]
    VeryDissatisfied,
}

impl RatingLevel {
    /// The level's Chinese name, as stored and reported.
    pub fn name(self) -> &'static str {
        match self {
            RatingLevel::VerySatisfied => "非常满意",
            RatingLevel::Satisfied => "满意",
            RatingLevel::Basic => "基本满意",
            RatingLevel::Dissatisfied => "不满意",
            RatingLevel::VeryDissatisfied => "非常不满意",
        }
    }

    /// 不满意 and 非常不满意 need a reason and a follow-up.
    pub fn is_bad(self) -> bool {
        matches!(
            self,
            RatingLevel::Dissatisfied | RatingLevel::VeryDissatisfied
        )
    }
}

/// Why a rating pad setting is unusable.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum KeyMapError {
    /// A pad has 3 or 5 rating keys.
    #[error("a rating pad has 3 or 5 keys, the setting lists {0}")]
    KeyCount(usize),
    /// The same level on two keys.
    #[error("rating level {0} is on two keys")]
    Duplicate(&'static str),
}

/// What a rating pad press means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RatingInput {
    /// A level.
    Level(RatingLevel),
    /// A reason (text from the hall's list), for the bad rating just given.
    Reason(String),
}

/// A rating pad's setting: which level each key position means, and the reason list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RatingKeyMap {
    /// Level of key 1, 2, ... (left to right).
    pub levels: Vec<RatingLevel>,
    /// Reason of reason key 1, 2, ...
    #[serde(default = "default_reasons")]
    pub reasons: Vec<String>,
}

fn default_reasons() -> Vec<String> {
    [
        "服务态度差",
        "办事效率低",
        "材料要求不清",
        "多次跑腿",
        "其他",
    ]
    .map(String::from)
    .to_vec()
}

impl RatingKeyMap {
    /// Five keys, 非常满意 on the left.
    pub fn five() -> RatingKeyMap {
        RatingKeyMap {
            levels: vec![
                RatingLevel::VerySatisfied,
                RatingLevel::Satisfied,
                RatingLevel::Basic,
                RatingLevel::Dissatisfied,
                RatingLevel::VeryDissatisfied,
            ],
            reasons: default_reasons(),
        }
    }

    /// Three keys: 满意, 基本满意, 不满意.
    pub fn three() -> RatingKeyMap {
        RatingKeyMap {
            levels: vec![
                RatingLevel::Satisfied,
                RatingLevel::Basic,
                RatingLevel::Dissatisfied,
            ],
            reasons: default_reasons(),
        }
    }

    /// Check a setting read from config.
    pub fn validate(self) -> Result<RatingKeyMap, KeyMapError> {
        if !matches!(self.levels.len(), 3 | 5) {
            return Err(KeyMapError::KeyCount(self.levels.len()));
        }
        for (i, l) in self.levels.iter().enumerate() {
            if self.levels[..i].contains(l) {
                return Err(KeyMapError::Duplicate(l.name()));
            }
        }
        Ok(self)
    }

    /// Meaning of a key; `None` for keys this pad does not have (never a guess).
    pub fn decode(&self, key: Key) -> Option<RatingInput> {
        match key {
            Key::Rating(n) if n >= 1 => self
                .levels
                .get(n as usize - 1)
                .map(|l| RatingInput::Level(*l)),
            Key::Reason(n) if n >= 1 => self
                .reasons
                .get(n as usize - 1)
                .map(|r| RatingInput::Reason(r.clone())),
            _ => None,
        }
    }
}

/// A window action from the caller keypad, the same set the API offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallerAction {
    /// Call the next citizen.
    CallNext,
    /// Call the current one again.
    Recall,
    /// The called citizen did not come.
    NoShow,
    /// Transfer the current ticket, to the typed window if any.
    Transfer {
        /// Window number typed before 转移.
        to_window: Option<u32>,
    },
    /// Pause the window.
    Pause,
    /// Resume.
    Resume,
    /// Toggle pause.
    PauseToggle,
    /// Finish the current ticket.
    Finish,
    /// Call a given number, e.g. "A012" or "12" (the daemon adds the prefix).
    CallNumber(String),
}

/// Digit entry on a caller keypad: digits and letters build a number, 指呼 calls it,
/// 转移 takes it as a window number, 清除 clears; other keys act at once.
#[derive(Debug, Clone, Default)]
pub struct CallerInput {
    typed: String,
}

/// Longest number a caller may type; more keys are ignored until cleared.
pub const MAX_TYPED: usize = 8;

impl CallerInput {
    /// What is typed so far (for a keypad with a small display).
    pub fn typed(&self) -> &str {
        &self.typed
    }

    /// Feed one key; returns the action it completes, if any.
    pub fn key(&mut self, key: Key) -> Option<CallerAction> {
        match key {
            Key::Digit(d) if d <= 9 => {
                if self.typed.len() < MAX_TYPED {
                    self.typed.push((b'0' + d) as char);
                }
                None
            }
            Key::Letter(c) if c.is_ascii_uppercase() => {
                // A prefix comes first: a letter after digits starts a new number.
                if self.typed.chars().any(|c| c.is_ascii_digit()) {
                    self.typed.clear();
                }
                if self.typed.len() < MAX_TYPED {
                    self.typed.push(c);
                }
                None
            }
            Key::Function(f) => {
                let typed = std::mem::take(&mut self.typed);
                match f {
                    CallerKey::CallNext => Some(CallerAction::CallNext),
                    CallerKey::Recall => Some(CallerAction::Recall),
                    CallerKey::NoShow => Some(CallerAction::NoShow),
                    CallerKey::Transfer => Some(CallerAction::Transfer {
                        to_window: typed.parse().ok(),
                    }),
                    CallerKey::Pause => Some(CallerAction::Pause),
                    CallerKey::Resume => Some(CallerAction::Resume),
                    CallerKey::PauseToggle => Some(CallerAction::PauseToggle),
                    CallerKey::Finish => Some(CallerAction::Finish),
                    CallerKey::CallTyped if typed.chars().any(|c| c.is_ascii_digit()) => {
                        Some(CallerAction::CallNumber(typed))
                    }
                    CallerKey::CallTyped | CallerKey::Clear => None,
                }
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_codes_match_the_protocol_page() {
        assert_eq!(Key::Rating(1).code(), 0x0101);
        assert_eq!(Key::Reason(5).code(), 0x0205);
        assert_eq!(Key::Function(CallerKey::CallNext).code(), 0x0301);
        assert_eq!(Key::Function(CallerKey::Finish).code(), 0x0307);
        assert_eq!(Key::Function(CallerKey::PauseToggle).code(), 0x030A);
        assert_eq!(Key::Digit(7).code(), 0x0407);
        assert_eq!(Key::Letter('A').code(), 0x0541);
        for code in 0..=u16::MAX {
            if let Some(k) = Key::from_code(code) {
                assert_eq!(k.code(), code);
            }
        }
        assert_eq!(Key::from_code(0x0106), None);
        assert_eq!(Key::from_code(0), None);
    }

    #[test]
    fn five_and_three_key_pads_map_by_setting_and_reasons_by_list() {
        let five = RatingKeyMap::five().validate().unwrap();
        assert_eq!(
            five.decode(Key::Rating(1)),
            Some(RatingInput::Level(RatingLevel::VerySatisfied))
        );
        assert_eq!(
            five.decode(Key::Rating(5)),
            Some(RatingInput::Level(RatingLevel::VeryDissatisfied))
        );
        let three = RatingKeyMap::three();
        assert_eq!(three.decode(Key::Rating(4)), None);
        assert_eq!(
            three.decode(Key::Rating(3)),
            Some(RatingInput::Level(RatingLevel::Dissatisfied))
        );
        assert_eq!(
            five.decode(Key::Reason(2)),
            Some(RatingInput::Reason("办事效率低".into()))
        );
        assert_eq!(five.decode(Key::Reason(9)), None);
        assert_eq!(five.decode(Key::Function(CallerKey::CallNext)), None);
        let reversed: RatingKeyMap = toml::from_str(
            "levels = [\"非常不满意\", \"不满意\", \"基本满意\", \"满意\", \"非常满意\"]",
        )
        .unwrap();
        assert_eq!(
            reversed.validate().unwrap().decode(Key::Rating(1)),
            Some(RatingInput::Level(RatingLevel::VeryDissatisfied))
        );
        let bad = RatingKeyMap {
            levels: vec![RatingLevel::Satisfied; 3],
            reasons: vec![],
        };
        assert_eq!(bad.validate(), Err(KeyMapError::Duplicate("满意")));
    }

    #[test]
    fn the_caller_types_a_number_and_calls_it() {
        let mut c = CallerInput::default();
        for k in [
            Key::Letter('A'),
            Key::Digit(0),
            Key::Digit(1),
            Key::Digit(2),
        ] {
            assert_eq!(c.key(k), None);
        }
        assert_eq!(c.typed(), "A012");
        assert_eq!(
            c.key(Key::Function(CallerKey::CallTyped)),
            Some(CallerAction::CallNumber("A012".into()))
        );
        assert_eq!(c.typed(), "");
        // 指呼 with nothing typed does nothing; clear forgets digits.
        assert_eq!(c.key(Key::Function(CallerKey::CallTyped)), None);
        c.key(Key::Digit(5));
        assert_eq!(c.key(Key::Function(CallerKey::Clear)), None);
        assert_eq!(c.key(Key::Function(CallerKey::CallTyped)), None);
        c.key(Key::Digit(4));
        assert_eq!(
            c.key(Key::Function(CallerKey::Transfer)),
            Some(CallerAction::Transfer { to_window: Some(4) })
        );
        assert_eq!(
            c.key(Key::Function(CallerKey::CallNext)),
            Some(CallerAction::CallNext)
        );
        assert_eq!(c.key(Key::Rating(1)), None);
    }

    proptest::proptest! {
        #[test]
        fn caller_input_never_panics_and_stays_short(codes in proptest::collection::vec(proptest::prelude::any::<u16>(), 0..100)) {
            let mut c = CallerInput::default();
            let map = RatingKeyMap::five();
            for code in codes {
                if let Some(k) = Key::from_code(code) {
                    let _ = c.key(k);
                    let _ = map.decode(k);
                }
                proptest::prop_assert!(c.typed().len() <= MAX_TYPED);
            }
        }
    }
}
