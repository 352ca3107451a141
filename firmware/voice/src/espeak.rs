//! espeak-ng as the fallback voice for a clip the pack lacks: a child process per phrase
//! (`espeak-ng -v VOICE --stdout TEXT`), its WAV read from the pipe and resampled to the
//! pack's rate. Results are cached, so a hall with an incomplete pack pays the start-up of
//! espeak-ng once per token, not on every call.

use std::collections::HashMap;
use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::audio::{Audio, fix_streamed_header};

/// Longest we wait for espeak-ng to speak one phrase.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Why espeak-ng produced nothing.
#[derive(Debug, thiserror::Error)]
pub enum EspeakError {
    /// Disabled in the configuration.
    #[error("espeak-ng is disabled in the configuration")]
    Disabled,
    /// Not installed (or not at the configured path).
    #[error("cannot run {program}: {source} (install it: apt-get install espeak-ng)")]
    Spawn {
        /// The program tried.
        program: String,
        /// Why.
        source: std::io::Error,
    },
    /// It ran and failed, or took too long.
    #[error("{program} failed: {detail}")]
    Failed {
        /// The program.
        program: String,
        /// What it said, or what went wrong.
        detail: String,
    },
}

/// The fallback voice.
#[derive(Debug)]
pub struct Espeak {
    program: Option<PathBuf>,
    cache: HashMap<(String, String), Arc<Audio>>,
}

impl Espeak {
    /// `program` is the executable (a bare name is looked up on `PATH`); `None` disables
    /// the fallback.
    pub fn new(program: Option<PathBuf>) -> Espeak {
        Espeak {
            program,
            cache: HashMap::new(),
        }
    }

    /// Whether the fallback is configured (not whether it is installed).
    pub fn enabled(&self) -> bool {
        self.program.is_some()
    }

    /// `text` in `voice`, at `rate`.
    pub fn speak(&mut self, voice: &str, text: &str, rate: u32) -> Result<Arc<Audio>, EspeakError> {
        let key = (voice.to_string(), text.to_string());
        if let Some(a) = self.cache.get(&key)
            && a.rate == rate
        {
            return Ok(a.clone());
        }
        let program = self.program.as_ref().ok_or(EspeakError::Disabled)?;
        let audio = Arc::new(run(program, voice, text)?.resample(rate));
        self.cache.insert(key, audio.clone());
        Ok(audio)
    }
}

fn run(program: &PathBuf, voice: &str, text: &str) -> Result<Audio, EspeakError> {
    let name = program.display().to_string();
    let failed = |detail: String| EspeakError::Failed {
        program: name.clone(),
        detail,
    };
    let mut child = Command::new(program)
        .args(["-v", voice, "-s", "150", "--stdout", "--", text])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| EspeakError::Spawn {
            program: name.clone(),
            source,
        })?;
    let mut stdout = child.stdout.take().expect("stdout is piped");
    let reader = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        stdout.read_to_end(&mut bytes).map(|_| bytes)
    });
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() > TIMEOUT => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(failed(format!("no answer within {}s", TIMEOUT.as_secs())));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => return Err(failed(e.to_string())),
        }
    };
    let mut bytes = reader
        .join()
        .map_err(|_| failed("reader thread panicked".into()))?
        .map_err(|e| failed(e.to_string()))?;
    if !status.success() {
        let mut err = String::new();
        if let Some(mut e) = child.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        return Err(failed(format!("{status}: {}", err.trim())));
    }
    fix_streamed_header(&mut bytes);
    let audio = Audio::read_any(std::io::Cursor::new(bytes)).map_err(|e| failed(e.to_string()))?;
    if audio.samples.is_empty() {
        return Err(failed(format!("no audio for {text:?} in voice {voice}")));
    }
    Ok(audio)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn installed() -> bool {
        Command::new("espeak-ng")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    }

    #[test]
    fn espeak_speaks_pinyin_at_the_pack_rate() {
        if !installed() {
            panic!(
                "espeak-ng is not installed: scripts/test installs it (apt-get install espeak-ng)"
            );
        }
        let mut e = Espeak::new(Some("espeak-ng".into()));
        let a = e.speak("cmn-latn-pinyin", "chuang1 kou3", 16_000).unwrap();
        assert_eq!(a.rate, 16_000);
        assert!(a.duration() > Duration::from_millis(200));
        assert!(a.rms() > 0.02, "{}", a.rms());
        let again = e.speak("cmn-latn-pinyin", "chuang1 kou3", 16_000).unwrap();
        assert!(
            Arc::ptr_eq(&a, &again),
            "second request comes from the cache"
        );
    }

    #[test]
    fn a_missing_program_is_a_clear_error() {
        let mut e = Espeak::new(Some("/nonexistent/espeak-ng".into()));
        let err = e.speak("en-us", "hello", 16_000).unwrap_err().to_string();
        assert!(err.contains("cannot run /nonexistent/espeak-ng"), "{err}");
        assert!(err.contains("apt-get install espeak-ng"), "{err}");
        let mut off = Espeak::new(None);
        assert!(matches!(
            off.speak("en-us", "hello", 16_000),
            Err(EspeakError::Disabled)
        ));
    }
}
