//! The tokens an announcement is made of and what each one says. One table,
//! `pack/lexicon.tsv`, serves both the pack generator (`pack/generate.sh` renders every row
//! with espeak-ng) and the daemon (which speaks a row's text through espeak-ng when a pack
//! lacks that clip), so the two can never disagree.

/// The lexicon shipped with hallq.
pub const LEXICON_TSV: &str = include_str!("../pack/lexicon.tsv");

/// The chime's token; it has no text, the chime is made by sox or synthesized.
pub const CHIME: &str = "chime";

/// Prefix of the kiosk's spoken prompts (`prompt.welcome`, …).
pub const PROMPT_PREFIX: &str = "prompt.";

/// One row: what a token says, for espeak-ng.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The token, e.g. `zh.qing`, `letter.A`, `en.12`, `prompt.welcome`.
    pub token: &'static str,
    /// The espeak-ng voice, e.g. `cmn-latn-pinyin` (pinyin with tone numbers in).
    pub voice: &'static str,
    /// The text for that voice.
    pub text: &'static str,
    /// What it means, for people reading the table.
    pub meaning: &'static str,
}

/// Every row of the shipped lexicon, in file order.
pub fn entries() -> impl Iterator<Item = Entry> {
    LEXICON_TSV
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let mut f = l.split('\t');
            Some(Entry {
                token: f.next()?,
                voice: f.next()?,
                text: f.next()?,
                meaning: f.next().unwrap_or(""),
            })
        })
}

/// The row for a token, if the lexicon knows it.
pub fn lookup(token: &str) -> Option<Entry> {
    entries().find(|e| e.token == token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_has_a_voice_and_text_and_tokens_are_unique() {
        let all: Vec<Entry> = entries().collect();
        assert!(all.len() > 70);
        let mut tokens: Vec<&str> = all.iter().map(|e| e.token).collect();
        tokens.sort();
        tokens.dedup();
        assert_eq!(tokens.len(), all.len());
        for e in &all {
            assert!(
                e.voice == "cmn-latn-pinyin" || e.voice.starts_with("en"),
                "{e:?}"
            );
            assert!(!e.text.trim().is_empty(), "{e:?}");
        }
    }

    #[test]
    fn mandarin_rows_are_pinyin_with_tone_numbers() {
        for e in entries().filter(|e| e.voice == "cmn-latn-pinyin") {
            for syllable in e.text.split([' ', ',']).filter(|s| !s.is_empty()) {
                assert!(
                    syllable.ends_with(['1', '2', '3', '4', '5']),
                    "{}: {syllable:?} has no tone number",
                    e.token
                );
            }
        }
    }
}
