//! From a script to one block of audio: each token's clip from the pack, or from
//! espeak-ng when the pack lacks it, joined with the pack's gaps and pauses, at the
//! configured volume. If some word cannot be produced at all, the announcement becomes
//! the chime alone: a call with a digit left out would send a citizen to the wrong place,
//! whereas a chime makes people look at the LED board, which always shows the call.

use std::sync::Arc;

use serde::Serialize;

use crate::audio::Audio;
use crate::espeak::Espeak;
use crate::lexicon::{self, CHIME};
use crate::pack::Pack;
use crate::phrase::Script;

/// Where a segment's audio came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The pack's recording.
    Pack,
    /// Spoken by espeak-ng because the pack lacks the clip.
    Espeak,
    /// The chime synthesized here because the pack has none.
    Synth,
}

/// One token's place in the rendered audio.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Segment {
    /// The token.
    pub token: String,
    /// Where its audio came from.
    pub source: Source,
    /// First sample.
    pub offset: usize,
    /// Number of samples.
    pub len: usize,
}

/// A token that could not be said, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Missing {
    /// The token.
    pub token: String,
    /// Why neither the pack nor espeak-ng could say it.
    pub reason: String,
}

/// An announcement ready to play.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rendered {
    /// The audio.
    #[serde(skip)]
    pub audio: Audio,
    /// Every token in order with its place in `audio`; silence fills the rest.
    pub segments: Vec<Segment>,
    /// Words that could not be said (the announcement is then the chime alone).
    pub missing: Vec<Missing>,
    /// The words were dropped and only the chime plays.
    pub chime_only: bool,
}

impl Rendered {
    /// The tokens in order.
    pub fn tokens(&self) -> Vec<&str> {
        self.segments.iter().map(|s| s.token.as_str()).collect()
    }

    /// Tokens spoken by espeak-ng rather than the pack.
    pub fn fallbacks(&self) -> Vec<&str> {
        self.segments
            .iter()
            .filter(|s| s.source == Source::Espeak)
            .map(|s| s.token.as_str())
            .collect()
    }
}

/// Pack plus fallback voice plus volume.
#[derive(Debug)]
pub struct Renderer {
    pack: Pack,
    espeak: Espeak,
    volume: u32,
}

impl Renderer {
    /// `volume` in percent of the recordings' level.
    pub fn new(pack: Pack, espeak: Espeak, volume: u32) -> Renderer {
        Renderer {
            pack,
            espeak,
            volume,
        }
    }

    /// The pack in use.
    pub fn pack(&self) -> &Pack {
        &self.pack
    }

    fn chime(&self) -> (Arc<Audio>, Source) {
        match self.pack.clip(CHIME) {
            Some(c) => (c.clone(), Source::Pack),
            None => (Arc::new(Audio::synth_chime(self.pack.rate)), Source::Synth),
        }
    }

    fn resolve(&mut self, token: &str) -> Result<(Arc<Audio>, Source), String> {
        if token == CHIME {
            return Ok(self.chime());
        }
        if let Some(c) = self.pack.clip(token) {
            return Ok((c.clone(), Source::Pack));
        }
        let Some(entry) = lexicon::lookup(token) else {
            return Err("not in the pack, and no text to speak it from".into());
        };
        self.espeak
            .speak(entry.voice, entry.text, self.pack.rate)
            .map(|a| (a, Source::Espeak))
            .map_err(|e| format!("not in the pack; {e}"))
    }

    /// Renders a script. Never fails: the worst case is the chime alone.
    pub fn render(&mut self, script: &Script) -> Rendered {
        let mut resolved: Vec<Vec<(String, Arc<Audio>, Source)>> = Vec::new();
        let mut missing = Vec::new();
        for sentence in script {
            let mut out = Vec::new();
            for token in sentence {
                match self.resolve(token) {
                    Ok((a, s)) => out.push((token.clone(), a, s)),
                    Err(reason) => missing.push(Missing {
                        token: token.clone(),
                        reason,
                    }),
                }
            }
            resolved.push(out);
        }
        if !missing.is_empty() {
            let mut r = self.chime_alone();
            r.missing = missing;
            return r;
        }
        self.assemble(resolved, false)
    }

    /// The chime and nothing else (quiet hours in chime mode, or words that cannot be said).
    pub fn chime_alone(&mut self) -> Rendered {
        let (a, s) = self.chime();
        self.assemble(vec![vec![(CHIME.to_string(), a, s)]], true)
    }

    fn assemble(
        &self,
        sentences: Vec<Vec<(String, Arc<Audio>, Source)>>,
        chime_only: bool,
    ) -> Rendered {
        let rate = self.pack.rate;
        let gap = Audio::silence(rate, self.pack.gap_ms);
        let pause = Audio::silence(rate, self.pack.pause_ms);
        let mut audio = Audio {
            rate,
            samples: Vec::new(),
        };
        let mut segments = Vec::new();
        for (i, sentence) in sentences.into_iter().enumerate() {
            if i > 0 {
                audio.append(&pause);
            }
            for (j, (token, clip, source)) in sentence.into_iter().enumerate() {
                if j > 0 {
                    audio.append(&gap);
                }
                segments.push(Segment {
                    token,
                    source,
                    offset: audio.samples.len(),
                    len: clip.samples.len(),
                });
                audio.append(&clip);
            }
        }
        audio.apply_volume(self.volume);
        Rendered {
            audio,
            segments,
            missing: Vec::new(),
            chime_only,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pack::source_tree_pack_dir;
    use crate::phrase::{Message, Style, compose};

    fn call(number: &str, window: u32) -> Script {
        compose(
            &Message::Call {
                number: number.into(),
                window,
                recall: false,
            },
            &Style {
                chime: true,
                repeat: 1,
                english: false,
            },
        )
    }

    #[test]
    fn every_segment_is_the_packs_clip_and_silence_lies_between() {
        let pack = Pack::load(&source_tree_pack_dir()).unwrap();
        let mut r = Renderer::new(pack.clone(), Espeak::new(None), 100);
        let out = r.render(&call("A001", 3));
        assert!(out.missing.is_empty() && !out.chime_only);
        assert_eq!(
            out.tokens(),
            [
                "chime",
                "zh.qing",
                "letter.A",
                "zh.0",
                "zh.0",
                "zh.1",
                "zh.hao",
                "zh.dao",
                "zh.3",
                "zh.hao",
                "zh.chuangkou",
                "zh.banli"
            ]
        );
        let mut end = 0;
        for s in &out.segments {
            assert!(out.audio.samples[end..s.offset].iter().all(|&x| x == 0));
            let clip = &pack.clip(&s.token).unwrap().samples;
            assert_eq!(&out.audio.samples[s.offset..s.offset + s.len], &clip[..]);
            end = s.offset + s.len;
        }
        assert_eq!(end, out.audio.samples.len());
        // gap between words, pause after the chime
        let rate = pack.rate as usize;
        assert_eq!(
            out.segments[2].offset - (out.segments[1].offset + out.segments[1].len),
            rate * pack.gap_ms as usize / 1000
        );
        assert_eq!(
            out.segments[1].offset - out.segments[0].len,
            rate * pack.pause_ms as usize / 1000
        );
    }

    #[test]
    fn volume_scales_every_sample() {
        let pack = Pack::load(&source_tree_pack_dir()).unwrap();
        let full = Renderer::new(pack.clone(), Espeak::new(None), 100).render(&call("B2", 1));
        let half = Renderer::new(pack, Espeak::new(None), 50).render(&call("B2", 1));
        assert_eq!(full.audio.samples.len(), half.audio.samples.len());
        for (a, b) in full.audio.samples.iter().zip(&half.audio.samples) {
            assert_eq!(*b, crate::audio::scale(*a, 50));
        }
    }

    #[test]
    fn a_missing_clip_is_spoken_by_espeak_when_it_is_installed() {
        let pack = Pack::load(&source_tree_pack_dir())
            .unwrap()
            .without("zh.chuangkou");
        let mut r = Renderer::new(pack, Espeak::new(Some("espeak-ng".into())), 100);
        let out = r.render(&call("A001", 3));
        assert!(
            out.missing.is_empty(),
            "{:?} (is espeak-ng installed?)",
            out.missing
        );
        assert!(!out.chime_only);
        assert_eq!(out.fallbacks(), ["zh.chuangkou"]);
        let seg = out
            .segments
            .iter()
            .find(|s| s.token == "zh.chuangkou")
            .unwrap();
        let spoken = Audio {
            rate: 16_000,
            samples: out.audio.samples[seg.offset..seg.offset + seg.len].to_vec(),
        };
        assert!(spoken.rms() > 0.02, "espeak's words are audible");
    }

    #[test]
    fn a_missing_clip_without_espeak_leaves_the_chime_alone_and_says_why() {
        let pack = Pack::load(&source_tree_pack_dir())
            .unwrap()
            .without("zh.chuangkou");
        let chime = pack.clip("chime").unwrap().clone();
        let mut r = Renderer::new(
            pack,
            Espeak::new(Some("/nonexistent/espeak-ng".into())),
            100,
        );
        let out = r.render(&call("A001", 3));
        assert!(out.chime_only);
        assert_eq!(out.tokens(), ["chime"]);
        assert_eq!(out.audio.samples, chime.samples);
        assert_eq!(out.missing.len(), 1);
        assert_eq!(out.missing[0].token, "zh.chuangkou");
        assert!(
            out.missing[0]
                .reason
                .contains("cannot run /nonexistent/espeak-ng"),
            "{}",
            out.missing[0].reason
        );
    }

    #[test]
    fn with_no_pack_and_no_espeak_the_synthesized_chime_still_sounds() {
        let mut r = Renderer::new(Pack::empty(16_000), Espeak::new(None), 100);
        let out = r.render(&call("A001", 3));
        assert!(out.chime_only);
        assert_eq!(out.segments[0].source, Source::Synth);
        assert!(out.audio.rms() > 0.05);
    }
}
