//! The guide desk (导办台, issue 21): the member of staff at the hall's entrance who
//! issues tickets for citizens — green channel (绿色通道) with a reason from a configured
//! list, or as a proxy (代办) — finds today's appointments by code or mobile number and
//! checks them in. This module holds its settings (`[desk]`) and the rules for what a
//! green ticket may record: a reason's code, and for `other` a short note that must not
//! be personal data.

use hallq_engine::Names;
use serde::Deserialize;

/// The code of the reason that takes a free-text note.
pub const OTHER: &str = "other";

/// The longest note an `other` reason may carry, in characters.
pub const NOTE_MAX: usize = 30;

/// `[desk]`: the guide desk's settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeskConfig {
    /// Why a ticket may be green, in the order the desk offers them.
    #[serde(default = "default_reasons")]
    pub green_reasons: Vec<GreenReason>,
}

impl Default for DeskConfig {
    fn default() -> Self {
        DeskConfig {
            green_reasons: default_reasons(),
        }
    }
}

/// One reason for the green channel: a stable code (recorded on the ticket, counted by
/// supervision) and its label in the three languages.
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct GreenReason {
    /// Stable code: lower-case letters, digits and `_`, at most 32 (`elderly`).
    pub code: String,
    /// The label in each language.
    pub name: Names,
}

fn reason(code: &str, zh_cn: &str, zh_tw: &str, en: &str) -> GreenReason {
    GreenReason {
        code: code.into(),
        name: Names {
            zh_cn: zh_cn.into(),
            zh_tw: zh_tw.into(),
            en: en.into(),
        },
    }
}

/// The reasons the seeds name: the elderly, the disabled, soldiers and veterans,
/// pregnant women, and any other (with a note).
pub fn default_reasons() -> Vec<GreenReason> {
    vec![
        reason(
            "elderly",
            "70 岁以上老人",
            "70 歲以上老人",
            "Aged 70 or over",
        ),
        reason("disabled", "残疾人", "殘疾人", "Disabled"),
        reason(
            "military",
            "现役军人/退役军人",
            "現役軍人/退役軍人",
            "Serving soldier or veteran",
        ),
        reason("pregnant", "孕妇", "孕婦", "Pregnant"),
        reason(OTHER, "其他", "其他", "Other"),
    ]
}

impl DeskConfig {
    /// Checks the list: at least one reason, codes well-formed and unique, a zh-CN
    /// label each. The error names the key (`desk.green_reasons[2].code`).
    pub fn check(&self) -> Result<(), (String, String)> {
        if self.green_reasons.is_empty() {
            return Err((
                "desk.green_reasons".into(),
                "list at least one reason for the green channel".into(),
            ));
        }
        for (i, r) in self.green_reasons.iter().enumerate() {
            let key = format!("desk.green_reasons[{i}]");
            if r.code.is_empty()
                || r.code.len() > 32
                || !r
                    .code
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            {
                return Err((
                    format!("{key}.code"),
                    "a code is 1 to 32 lower-case letters, digits or _ (e.g. \"elderly\")".into(),
                ));
            }
            if self.green_reasons[..i].iter().any(|o| o.code == r.code) {
                return Err((
                    format!("{key}.code"),
                    format!("the code {:?} is listed twice", r.code),
                ));
            }
            for (lang, label) in [
                ("zh-CN", &r.name.zh_cn),
                ("zh-TW", &r.name.zh_tw),
                ("en", &r.name.en),
            ] {
                if (lang == "zh-CN" && label.trim().is_empty())
                    || label.chars().count() > 40
                    || label.chars().any(hallq_engine::text::unsafe_in_text)
                {
                    return Err((
                        format!("{key}.name"),
                        format!(
                            "the {lang} label is 1 to 40 characters without control characters (zh-CN is required)"
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// The reason with this code.
    pub fn reason(&self, code: &str) -> Option<&GreenReason> {
        self.green_reasons.iter().find(|r| r.code == code)
    }
}

/// Why a note for an `other` reason is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    /// Too long.
    #[error("a note is at most {NOTE_MAX} characters")]
    TooLong,
    /// Control or text-direction characters.
    #[error("a note has no control characters")]
    Unprintable,
    /// A run of digits long enough to be a phone or ID number: personal data is never
    /// recorded with a ticket.
    #[error(
        "a note must not hold a phone or ID number (no run of 6 digits or more): no personal data"
    )]
    PersonalData,
    /// A note on a reason other than `other`.
    #[error("only the reason \"other\" takes a note")]
    NotOther,
}

/// Checks the note an `other` reason carries: short text, and nothing that looks like
/// a phone or ID number.
pub fn check_note(note: &str) -> Result<(), NoteError> {
    if note.chars().count() > NOTE_MAX {
        return Err(NoteError::TooLong);
    }
    if note.chars().any(hallq_engine::text::unsafe_in_text) {
        return Err(NoteError::Unprintable);
    }
    let mut run = 0;
    for c in note.chars() {
        // Full-width digits count too: ０-９.
        if c.is_ascii_digit() || ('０'..='９').contains(&c) {
            run += 1;
            if run >= 6 {
                return Err(NoteError::PersonalData);
            }
        } else if c != ' ' && c != '-' {
            run = 0;
        }
    }
    Ok(())
}

/// What a green ticket records: the code, or `other:<note>`.
pub fn recorded_reason(code: &str, note: Option<&str>) -> Result<String, NoteError> {
    match note.map(str::trim).filter(|n| !n.is_empty()) {
        None => Ok(code.to_string()),
        Some(_) if code != OTHER => Err(NoteError::NotOther),
        Some(n) => {
            check_note(n)?;
            Ok(format!("{OTHER}:{n}"))
        }
    }
}

/// The reason code of a recorded reason (`other:…` → `other`).
pub fn reason_code(recorded: &str) -> &str {
    recorded.split_once(':').map_or(recorded, |(c, _)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_reasons_are_valid_and_have_stable_codes() {
        let d = DeskConfig::default();
        d.check().unwrap();
        let codes: Vec<&str> = d.green_reasons.iter().map(|r| r.code.as_str()).collect();
        assert_eq!(
            codes,
            ["elderly", "disabled", "military", "pregnant", "other"]
        );
    }

    #[test]
    fn a_bad_or_repeated_code_names_its_key() {
        let mut d = DeskConfig::default();
        d.green_reasons[1].code = "Elderly Care".into();
        assert_eq!(d.check().unwrap_err().0, "desk.green_reasons[1].code");
        let mut d = DeskConfig::default();
        d.green_reasons[3].code = "elderly".into();
        let (key, msg) = d.check().unwrap_err();
        assert_eq!(key, "desk.green_reasons[3].code");
        assert!(msg.contains("twice"), "{msg}");
        let d = DeskConfig {
            green_reasons: vec![],
        };
        assert_eq!(d.check().unwrap_err().0, "desk.green_reasons");
    }

    #[test]
    fn a_note_is_short_and_never_a_number_that_could_be_a_person() {
        assert_eq!(
            recorded_reason("other", Some(" 携带婴儿 ")).unwrap(),
            "other:携带婴儿"
        );
        assert_eq!(recorded_reason("elderly", None).unwrap(), "elderly");
        assert_eq!(recorded_reason("elderly", Some("  ")).unwrap(), "elderly");
        assert_eq!(
            recorded_reason("elderly", Some("x")).unwrap_err(),
            NoteError::NotOther
        );
        assert_eq!(
            check_note("电话 138 1234 5678").unwrap_err(),
            NoteError::PersonalData
        );
        assert_eq!(
            check_note("证号１１０１０１").unwrap_err(),
            NoteError::PersonalData
        );
        assert_eq!(
            check_note(&"长".repeat(31)).unwrap_err(),
            NoteError::TooLong
        );
        assert!(check_note("行动不便 2 人").is_ok());
        assert_eq!(reason_code("other:行动不便"), "other");
        assert_eq!(reason_code("elderly"), "elderly");
    }
}
