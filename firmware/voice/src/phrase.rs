//! From what is to be said to the tokens that say it. "请 A001 号 到 3 号窗口 办理" becomes
//! `zh.qing letter.A zh.0 zh.0 zh.1 zh.hao zh.dao zh.3 zh.hao zh.chuangkou zh.banli`:
//! ticket numbers are read letter by letter and digit by digit (零零一, as halls do, so a
//! citizen matches what is printed), window numbers as numbers (十二号窗口).

use serde::Serialize;

use crate::lexicon::{CHIME, PROMPT_PREFIX};

/// Something to be said in the hall.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Message {
    /// A ticket called to a window (or called again: a recall says the same words).
    Call {
        /// The ticket number as printed, e.g. `A001`.
        number: String,
        /// The window number.
        window: u32,
        /// This is a recall (重呼).
        recall: bool,
    },
    /// One of the kiosk's spoken prompts (elder mode), by id: `welcome` → `prompt.welcome`.
    Prompt {
        /// The prompt id.
        id: String,
    },
    /// A prompt followed by a ticket number read as printed: `your_number` + `A001`
    /// says 您的号码是 A 零零一 (`your_number_en`: "Your number is A 0 0 1").
    NumberPrompt {
        /// The prompt id (`your_number`, `your_number_en`).
        id: String,
        /// The ticket number.
        number: String,
    },
}

impl Message {
    /// A kiosk prompt (either kind): queued behind calls, dropped first when full.
    pub fn is_prompt(&self) -> bool {
        matches!(self, Message::Prompt { .. } | Message::NumberPrompt { .. })
    }
}

/// How calls are spoken, from the hall's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Style {
    /// A chime before each call.
    pub chime: bool,
    /// Times the words are said (1–5).
    pub repeat: u8,
    /// English after the Mandarin.
    pub english: bool,
}

impl Default for Style {
    fn default() -> Self {
        Style {
            chime: true,
            repeat: 2,
            english: false,
        }
    }
}

/// Tokens grouped in sentences: the renderer puts a short gap between tokens and a pause
/// between sentences.
pub type Script = Vec<Vec<String>>;

/// The script for a message.
pub fn compose(message: &Message, style: &Style) -> Script {
    match message {
        Message::Call { number, window, .. } => {
            let mut script = Vec::new();
            if style.chime {
                script.push(vec![CHIME.to_string()]);
            }
            for _ in 0..style.repeat.max(1) {
                script.push(mandarin_call(number, *window));
                if style.english {
                    script.push(english_call(number, *window));
                }
            }
            script
        }
        Message::Prompt { id } => vec![vec![format!("{PROMPT_PREFIX}{id}")]],
        Message::NumberPrompt { id, number } => {
            let lang = if id.ends_with("_en") { "en" } else { "zh" };
            let mut t = vec![format!("{PROMPT_PREFIX}{id}")];
            t.extend(spell(number, lang));
            vec![t]
        }
    }
}

/// 请 {number} 号 到 {window} 号 窗口 办理.
pub fn mandarin_call(number: &str, window: u32) -> Vec<String> {
    let mut t = vec!["zh.qing".to_string()];
    t.extend(spell(number, "zh"));
    t.push("zh.hao".into());
    t.push("zh.dao".into());
    t.extend(zh_cardinal(window));
    t.push("zh.hao".into());
    t.push("zh.chuangkou".into());
    t.push("zh.banli".into());
    t
}

/// Number {number}, please go to window {window}.
pub fn english_call(number: &str, window: u32) -> Vec<String> {
    let mut t = vec!["en.number".to_string()];
    t.extend(spell(number, "en"));
    t.push("en.please_go_to_window".into());
    t.extend(en_cardinal(window));
    t
}

/// A ticket number letter by letter and digit by digit. A character no pack can say
/// becomes a token no pack has (`char.X`), so the renderer treats it as a missing clip
/// rather than silently leaving part of the number out.
pub fn spell(number: &str, lang: &str) -> Vec<String> {
    number
        .chars()
        .filter(|c| !c.is_whitespace())
        .map(|c| {
            if c.is_ascii_alphabetic() {
                format!("letter.{}", c.to_ascii_uppercase())
            } else if c.is_ascii_digit() {
                format!("{lang}.{c}")
            } else {
                format!("char.{c}")
            }
        })
        .collect()
}

/// A number in Mandarin: 3 → 三, 10 → 十, 12 → 十二, 20 → 二十, 101 → 一百零一,
/// 1010 → 一千零一十. From 10 000 up, digit by digit.
pub fn zh_cardinal(n: u32) -> Vec<String> {
    if n == 0 {
        return vec!["zh.0".into()];
    }
    if n >= 10_000 {
        return spell(&n.to_string(), "zh");
    }
    let mut out = Vec::new();
    let mut started = false;
    let mut zero = false;
    for (place, unit) in [
        (1000, Some("zh.qian")),
        (100, Some("zh.bai")),
        (10, Some("zh.shi")),
        (1, None),
    ] {
        let d = n / place % 10;
        if d == 0 {
            zero |= started;
            continue;
        }
        if zero {
            out.push("zh.0".to_string());
            zero = false;
        }
        if !(place == 10 && d == 1 && !started) {
            out.push(format!("zh.{d}"));
        }
        if let Some(u) = unit {
            out.push(u.to_string());
        }
        started = true;
    }
    out
}

/// A number in English: words up to 99, digit by digit above.
pub fn en_cardinal(n: u32) -> Vec<String> {
    match n {
        0..=19 => vec![format!("en.{n}")],
        20..=99 if n.is_multiple_of(10) => vec![format!("en.{n}")],
        20..=99 => vec![format!("en.{}", n / 10 * 10), format!("en.{}", n % 10)],
        _ => spell(&n.to_string(), "en"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(tokens: &[String]) -> String {
        tokens.join(" ")
    }

    #[test]
    fn a_call_reads_the_number_digit_by_digit_and_the_window_as_a_number() {
        assert_eq!(
            s(&mandarin_call("A001", 3)),
            "zh.qing letter.A zh.0 zh.0 zh.1 zh.hao zh.dao zh.3 zh.hao zh.chuangkou zh.banli"
        );
        assert_eq!(
            s(&english_call("b023", 12)),
            "en.number letter.B en.0 en.2 en.3 en.please_go_to_window en.12"
        );
    }

    #[test]
    fn mandarin_numbers_follow_the_spoken_rules() {
        let cases = [
            (1, "zh.1"),
            (10, "zh.shi"),
            (12, "zh.shi zh.2"),
            (20, "zh.2 zh.shi"),
            (35, "zh.3 zh.shi zh.5"),
            (100, "zh.1 zh.bai"),
            (101, "zh.1 zh.bai zh.0 zh.1"),
            (110, "zh.1 zh.bai zh.1 zh.shi"),
            (1001, "zh.1 zh.qian zh.0 zh.1"),
            (1010, "zh.1 zh.qian zh.0 zh.1 zh.shi"),
            (12345, "zh.1 zh.2 zh.3 zh.4 zh.5"),
        ];
        for (n, want) in cases {
            assert_eq!(s(&zh_cardinal(n)), want, "{n}");
        }
    }

    #[test]
    fn english_numbers_are_words_up_to_ninety_nine() {
        assert_eq!(s(&en_cardinal(7)), "en.7");
        assert_eq!(s(&en_cardinal(40)), "en.40");
        assert_eq!(s(&en_cardinal(42)), "en.40 en.2");
        assert_eq!(s(&en_cardinal(105)), "en.1 en.0 en.5");
    }

    #[test]
    fn a_call_has_the_chime_once_then_the_words_repeated() {
        let m = Message::Call {
            number: "A1".into(),
            window: 2,
            recall: false,
        };
        let script = compose(
            &m,
            &Style {
                chime: true,
                repeat: 2,
                english: true,
            },
        );
        assert_eq!(script.len(), 5);
        assert_eq!(script[0], vec!["chime"]);
        assert_eq!(script[1], script[3]);
        assert_eq!(script[2][0], "en.number");
        let quiet = compose(
            &m,
            &Style {
                chime: false,
                repeat: 1,
                english: false,
            },
        );
        assert_eq!(quiet.len(), 1);
    }

    #[test]
    fn a_character_no_pack_can_say_stays_visible_as_a_token() {
        assert_eq!(s(&spell("甲01", "zh")), "char.甲 zh.0 zh.1");
    }

    #[test]
    fn a_prompt_is_its_one_clip() {
        let script = compose(
            &Message::Prompt {
                id: "welcome".into(),
            },
            &Style::default(),
        );
        assert_eq!(script, vec![vec!["prompt.welcome".to_string()]]);
    }

    #[test]
    fn your_number_reads_the_number_as_printed_in_its_language() {
        let zh = compose(
            &Message::NumberPrompt {
                id: "your_number".into(),
                number: "A012".into(),
            },
            &Style::default(),
        );
        assert_eq!(s(&zh[0]), "prompt.your_number letter.A zh.0 zh.1 zh.2");
        let en = compose(
            &Message::NumberPrompt {
                id: "your_number_en".into(),
                number: "B7".into(),
            },
            &Style::default(),
        );
        assert_eq!(s(&en[0]), "prompt.your_number_en letter.B en.7");
    }
}
