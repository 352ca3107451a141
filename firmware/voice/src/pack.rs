//! A voice pack: a folder of WAV clips and a `pack.toml` manifest that maps tokens to
//! files. Every clip is read and checked when the pack loads, so a wrong recording is
//! found at start with its name and what is wrong, never in the middle of a call.
//!
//! ```toml
//! name = "青山县 hall recordings"
//! sample_rate = 16000   # every clip: mono 16-bit PCM at this rate
//! gap_ms = 40           # silence between two clips
//! pause_ms = 450        # silence between sentences and repetitions
//!
//! [clips]
//! "chime" = "chime.wav"
//! "zh.qing" = "qing.wav"
//! ```
//!
//! A token the manifest does not name is a *missing clip*: the renderer speaks it through
//! espeak-ng if it can. A token it names whose file is absent or in another format is an
//! error, because that is a mistake in the pack, not a choice.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

use crate::audio::{Audio, DEFAULT_RATE};

/// The manifest's file name inside a pack folder.
pub const MANIFEST: &str = "pack.toml";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    name: String,
    #[serde(default = "default_rate")]
    sample_rate: u32,
    #[serde(default = "default_gap")]
    gap_ms: u32,
    #[serde(default = "default_pause")]
    pause_ms: u32,
    #[serde(default)]
    clips: BTreeMap<String, String>,
}

fn default_rate() -> u32 {
    DEFAULT_RATE
}
fn default_gap() -> u32 {
    40
}
fn default_pause() -> u32 {
    450
}

/// A pack that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PackError {
    /// The manifest could not be read.
    #[error("voice pack {}: cannot read: {source}", path.display())]
    Read {
        /// The manifest.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The manifest is not valid.
    #[error("voice pack {}:{line}: {message}", path.display())]
    Manifest {
        /// The manifest.
        path: PathBuf,
        /// 1-based line, 0 when unknown.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// One or more clips cannot be used; each problem names the token and the file.
    #[error("voice pack {}: {} clip(s) cannot be used:\n  {}", path.display(), problems.len(), problems.join("\n  "))]
    Clips {
        /// The pack folder.
        path: PathBuf,
        /// One line per bad clip.
        problems: Vec<String>,
    },
}

/// A loaded pack: every clip decoded and checked, shared cheaply between renders.
#[derive(Debug, Clone)]
pub struct Pack {
    /// The pack's name, for logs.
    pub name: String,
    /// Its folder.
    pub dir: PathBuf,
    /// The rate of every clip and therefore of every announcement.
    pub rate: u32,
    /// Silence between two clips, in ms.
    pub gap_ms: u32,
    /// Silence between sentences and repetitions, in ms.
    pub pause_ms: u32,
    clips: HashMap<String, Arc<Audio>>,
}

impl Pack {
    /// Loads and checks a pack folder.
    pub fn load(dir: &Path) -> Result<Pack, PackError> {
        let path = dir.join(MANIFEST);
        let text = std::fs::read_to_string(&path).map_err(|source| PackError::Read {
            path: path.clone(),
            source,
        })?;
        let m: Manifest = toml::from_str(&text).map_err(|e| PackError::Manifest {
            path: path.clone(),
            line: e.span().map_or(0, |s| {
                text[..s.start.min(text.len())].matches('\n').count() + 1
            }),
            message: e.message().to_string(),
        })?;
        if !(8_000..=48_000).contains(&m.sample_rate) {
            return Err(PackError::Manifest {
                path,
                line: line_of(&text, "sample_rate"),
                message: format!("sample_rate {} is outside 8000–48000 Hz", m.sample_rate),
            });
        }
        let mut clips = HashMap::new();
        let mut problems = Vec::new();
        for (token, file) in &m.clips {
            let file_path = dir.join(file);
            let loaded = std::fs::File::open(&file_path)
                .map_err(|e| e.to_string())
                .and_then(|f| {
                    Audio::read_exact(std::io::BufReader::new(f), m.sample_rate)
                        .map_err(|e| e.to_string())
                });
            match loaded {
                Ok(a) if a.samples.is_empty() => {
                    problems.push(format!("{token} ({file}): has no samples"))
                }
                Ok(a) => {
                    clips.insert(token.clone(), Arc::new(a));
                }
                Err(e) => problems.push(format!("{token} ({file}): {e}")),
            }
        }
        if !problems.is_empty() {
            return Err(PackError::Clips {
                path: dir.to_path_buf(),
                problems,
            });
        }
        Ok(Pack {
            name: m.name,
            dir: dir.to_path_buf(),
            rate: m.sample_rate,
            gap_ms: m.gap_ms,
            pause_ms: m.pause_ms,
            clips,
        })
    }

    /// A pack with no clips: everything is spoken by espeak-ng or reduced to the chime.
    pub fn empty(rate: u32) -> Pack {
        Pack {
            name: "(no pack)".into(),
            dir: PathBuf::new(),
            rate,
            gap_ms: default_gap(),
            pause_ms: default_pause(),
            clips: HashMap::new(),
        }
    }

    /// The clip for a token.
    pub fn clip(&self, token: &str) -> Option<&Arc<Audio>> {
        self.clips.get(token)
    }

    /// Every token the pack has.
    pub fn tokens(&self) -> impl Iterator<Item = &str> {
        self.clips.keys().map(String::as_str)
    }

    /// Leaves a token out (tests and tools that simulate an incomplete pack).
    pub fn without(mut self, token: &str) -> Pack {
        self.clips.remove(token);
        self
    }
}

fn line_of(text: &str, key: &str) -> usize {
    text.lines()
        .position(|l| l.trim_start().starts_with(key))
        .map_or(0, |i| i + 1)
}

/// The default pack shipped in the source tree (generated by `pack/generate.sh`).
pub fn source_tree_pack_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("pack/default")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lexicon;

    #[test]
    fn the_shipped_pack_loads_and_covers_the_whole_lexicon() {
        let p = Pack::load(&source_tree_pack_dir()).unwrap();
        assert_eq!(p.rate, 16_000);
        for e in lexicon::entries() {
            let clip = p
                .clip(e.token)
                .unwrap_or_else(|| panic!("{} missing", e.token));
            assert!(clip.rms() > 0.02, "{} is nearly silent", e.token);
        }
        assert!(p.clip(lexicon::CHIME).is_some());
    }

    #[test]
    fn the_shipped_pack_stays_small() {
        let total: u64 = std::fs::read_dir(source_tree_pack_dir())
            .unwrap()
            .map(|e| e.unwrap().metadata().unwrap().len())
            .sum();
        assert!(total < 2 * 1024 * 1024, "{total} bytes");
    }

    fn pack_with(clips: &[(&str, Audio)], manifest_extra: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let mut m = format!("name = \"test\"\n{manifest_extra}\n[clips]\n");
        for (i, (token, audio)) in clips.iter().enumerate() {
            let file = format!("c{i}.wav");
            std::fs::write(dir.path().join(&file), audio.to_wav()).unwrap();
            m.push_str(&format!("{token:?} = {file:?}\n"));
        }
        std::fs::write(dir.path().join(MANIFEST), m).unwrap();
        dir
    }

    #[test]
    fn a_clip_in_the_wrong_format_is_refused_at_load_naming_token_and_file() {
        let good = Audio {
            rate: 16_000,
            samples: vec![100; 50],
        };
        let bad = Audio {
            rate: 44_100,
            samples: vec![100; 50],
        };
        let dir = pack_with(&[("zh.qing", good), ("zh.hao", bad)], "");
        let err = Pack::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("1 clip(s) cannot be used"), "{err}");
        assert!(
            err.contains("zh.hao (c1.wav): is mono 16-bit PCM at 44100 Hz"),
            "{err}"
        );
        assert!(!err.contains("zh.qing"), "{err}");
    }

    #[test]
    fn a_named_file_that_is_absent_is_an_error_not_a_missing_clip() {
        let dir = pack_with(&[], "");
        std::fs::write(
            dir.path().join(MANIFEST),
            "name = \"t\"\n[clips]\n\"zh.qing\" = \"nope.wav\"\n",
        )
        .unwrap();
        let err = Pack::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("zh.qing (nope.wav)"), "{err}");
    }

    #[test]
    fn a_manifest_error_names_the_line() {
        let dir = pack_with(&[], "sample_rate = \"fast\"");
        let err = Pack::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("pack.toml:2:"), "{err}");
        let dir = pack_with(&[], "sample_rate = 4000");
        let err = Pack::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("pack.toml:2: sample_rate 4000"), "{err}");
    }
}
