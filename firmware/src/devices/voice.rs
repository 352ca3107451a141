//! The hall's voice in the daemon: follows the core's committed events and speaks every
//! `ticket_called` and `ticket_recalled` ("请 A001 号到 3 号窗口办理"), and speaks the
//! kiosk's elder-mode prompts on request. The announcer itself (queue, pack, espeak-ng
//! fallback, sinks) lives in the `hallq-voice` crate and runs on its own thread; this
//! module reads the `[voice]` section, wires the events in and turns outcomes into
//! device health: `voice` for the audio output, `voice/pack` for words the pack cannot
//! say. A call that cannot be spoken is still called: the voice only follows commits.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use chrono::NaiveTime;
use hallq_voice::{
    Accepted, AlsaSink, Announcer, DropReason, Espeak, FileSink, Message, Pack, PackError,
    QuietHours, QuietMode, Renderer, Report, Settings, Sink, SinkError, Style, lexicon,
};
use serde::Deserialize;
use tokio::sync::broadcast::error::RecvError;

use super::health::{Devices, Health};
use crate::core::HallCore;
use crate::events::Committed;
use hallq_engine::Event;

/// Device id of the audio output.
pub const DEVICE: &str = "voice";
/// Device id of the voice pack's coverage (words it cannot say).
pub const PACK_DEVICE: &str = "voice/pack";

/// Where announcements go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SinkKind {
    /// ALSA playback through `aplay`.
    #[default]
    Alsa,
    /// One WAV (and JSON sidecar) per announcement in `dir`.
    Files,
}

/// `[voice.quiet_hours]`: a daily span in local time when calls are not spoken.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuietHoursConfig {
    /// Start, "HH:MM" local time.
    pub from: String,
    /// End, "HH:MM" (earlier than `from` crosses midnight).
    pub to: String,
    /// `chime` (default: the chime alone, so people look at the boards) or `silent`.
    #[serde(default = "default_quiet_mode")]
    pub mode: QuietMode,
}

fn default_quiet_mode() -> QuietMode {
    QuietMode::Chime
}

/// The `[voice]` section of the configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VoiceConfig {
    /// Off without deleting the section.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// The voice pack folder (with `pack.toml`).
    #[serde(default = "default_pack")]
    pub pack: PathBuf,
    /// `alsa` or `files`.
    #[serde(default)]
    pub sink: SinkKind,
    /// ALSA device for `aplay -D` (e.g. `plughw:1,0`); the system default when absent.
    #[serde(default)]
    pub device: Option<String>,
    /// The `aplay` program.
    #[serde(default = "default_aplay")]
    pub aplay: PathBuf,
    /// Folder for the `files` sink.
    #[serde(default)]
    pub dir: Option<PathBuf>,
    /// `files` sink: hold each file for its playing time, so a program playing the
    /// files as they appear never overlaps two calls.
    #[serde(default = "yes")]
    pub pace: bool,
    /// A chime before each call.
    #[serde(default = "yes")]
    pub chime: bool,
    /// Times the words are said (1–5).
    #[serde(default = "default_repeat")]
    pub repeat: u8,
    /// Percent of the recordings' level (0–200; above 100 may clip).
    #[serde(default = "default_volume")]
    pub volume: u32,
    /// English after the Mandarin.
    #[serde(default)]
    pub english: bool,
    /// Most calls waiting; beyond it the oldest waiting are dropped.
    #[serde(default = "default_max_queue")]
    pub max_queue: usize,
    /// espeak-ng program for clips the pack lacks; "" turns the fallback off.
    #[serde(default = "default_espeak")]
    pub espeak: String,
    /// Quiet hours, if any.
    #[serde(default)]
    pub quiet_hours: Option<QuietHoursConfig>,
    /// A kiosk prompt not started within this many seconds is dropped.
    #[serde(default = "default_prompt_wait")]
    pub prompt_max_wait_secs: u64,
}

fn yes() -> bool {
    true
}
fn default_pack() -> PathBuf {
    PathBuf::from("/usr/share/hallq/voice/default")
}
fn default_aplay() -> PathBuf {
    PathBuf::from("aplay")
}
fn default_repeat() -> u8 {
    2
}
fn default_volume() -> u32 {
    100
}
fn default_max_queue() -> usize {
    5
}
fn default_espeak() -> String {
    "espeak-ng".into()
}
fn default_prompt_wait() -> u64 {
    10
}

fn parse_time(s: &str) -> Option<NaiveTime> {
    NaiveTime::parse_from_str(s, "%H:%M").ok()
}

impl VoiceConfig {
    /// Checks values; the error names the key under `voice.`.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if !(1..=5).contains(&self.repeat) {
            return Err(("voice.repeat", "must be 1 to 5".into()));
        }
        if self.volume > 200 {
            return Err((
                "voice.volume",
                "percent of the recordings' level, 0 to 200".into(),
            ));
        }
        if self.max_queue == 0 {
            return Err(("voice.max_queue", "must be at least 1".into()));
        }
        if self.sink == SinkKind::Files && self.dir.is_none() {
            return Err((
                "voice.dir",
                "the files sink needs a folder: dir = \"/var/lib/hallq/announcements\"".into(),
            ));
        }
        if let Some(q) = &self.quiet_hours {
            let from = parse_time(&q.from)
                .ok_or(("voice.quiet_hours.from", "use HH:MM, e.g. \"12:00\"".into()))?;
            let to = parse_time(&q.to)
                .ok_or(("voice.quiet_hours.to", "use HH:MM, e.g. \"13:30\"".into()))?;
            if from == to {
                return Err((
                    "voice.quiet_hours.to",
                    "must differ from `from`".to_string(),
                ));
            }
        }
        Ok(())
    }

    /// Loads and checks the pack (at start, and for `hallq check-config`).
    pub fn load_pack(&self) -> Result<Pack, PackError> {
        Pack::load(&self.pack)
    }

    fn settings(&self, utc_offset_minutes: i32) -> Settings {
        Settings {
            style: Style {
                chime: self.chime,
                repeat: self.repeat,
                english: self.english,
            },
            max_queue: self.max_queue,
            prompt_max_wait: Duration::from_secs(self.prompt_max_wait_secs),
            quiet: self.quiet_hours.as_ref().and_then(|q| {
                Some(QuietHours {
                    from: parse_time(&q.from)?,
                    to: parse_time(&q.to)?,
                    mode: q.mode,
                })
            }),
            clock: hallq_voice::wall_clock(utc_offset_minutes),
        }
    }
}

/// Why the voice could not start.
#[derive(Debug, thiserror::Error)]
pub enum VoiceError {
    /// The pack is unusable (the message names each bad clip).
    #[error(transparent)]
    Pack(#[from] PackError),
    /// The files sink's folder is unusable.
    #[error("voice.dir: {0}")]
    Sink(#[from] SinkError),
    /// The thread could not start.
    #[error("cannot start the voice thread: {0}")]
    Thread(std::io::Error),
}

/// A prompt id that neither the pack nor the lexicon knows.
#[derive(Debug, thiserror::Error)]
#[error("unknown prompt {id:?}; this hall has: {}", known.join(", "))]
pub struct UnknownPrompt {
    /// What was asked for.
    pub id: String,
    /// What exists.
    pub known: Vec<String>,
}

struct Inner {
    announcer: Announcer,
    prompts: BTreeSet<String>,
    pack_name: String,
    sink_name: String,
}

/// The running voice; cheap to clone. The last clone dropped stops the thread after
/// the announcement that is playing.
#[derive(Clone)]
pub struct Voice {
    inner: Arc<Inner>,
}

impl Voice {
    /// Starts the voice, reporting health to `devices`. Also returns the pack's health
    /// as found at start (the caller reports it): a warning when words are missing from
    /// the pack and espeak-ng cannot speak them either.
    pub fn start(
        config: &VoiceConfig,
        utc_offset_minutes: i32,
        devices: Devices,
    ) -> Result<(Voice, Health), VoiceError> {
        let pack = config.load_pack()?;
        let espeak = espeak_program(config);
        let uncovered: Vec<&str> = lexicon::entries()
            .map(|e| e.token)
            .filter(|t| pack.clip(t).is_none())
            .collect();
        let espeak_works = espeak.as_ref().is_some_and(|p| {
            std::process::Command::new(p)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        });
        let pack_health = if uncovered.is_empty() || espeak_works {
            if !uncovered.is_empty() {
                tracing::info!(tokens = ?uncovered, "voice pack lacks clips; espeak-ng speaks them");
            }
            Health::Ok
        } else {
            tracing::warn!(tokens = ?uncovered, "voice pack lacks clips and espeak-ng is unavailable");
            Health::warning(
                "voice_clips_missing",
                "words missing from the voice pack cannot be spoken by espeak-ng either; \
                 calls needing them get the chime alone (the log names the words)",
            )
        };
        let voice = Voice::start_observed(config, utc_offset_minutes, pack, espeak, move |r| {
            observe(&devices, r)
        })?;
        tracing::info!(pack = %voice.pack_name(), sink = %voice.sink_name(), "voice ready");
        Ok((voice, pack_health))
    }

    /// Starts the voice with a pack already loaded and a caller's observer (the latency
    /// example uses this to time each announcement).
    pub fn start_observed(
        config: &VoiceConfig,
        utc_offset_minutes: i32,
        pack: Pack,
        espeak: Option<PathBuf>,
        observer: impl FnMut(Report) + Send + 'static,
    ) -> Result<Voice, VoiceError> {
        let sink: Box<dyn Sink> = match config.sink {
            SinkKind::Alsa => Box::new(AlsaSink::new(config.aplay.clone(), config.device.clone())),
            SinkKind::Files => Box::new(FileSink::new(
                config.dir.as_deref().unwrap_or(std::path::Path::new(".")),
                config.pace,
            )?),
        };
        let sink_name = sink.name();
        let mut prompts: BTreeSet<String> = pack
            .tokens()
            .filter_map(|t| t.strip_prefix(lexicon::PROMPT_PREFIX))
            .map(String::from)
            .collect();
        if espeak.is_some() {
            prompts.extend(
                lexicon::entries()
                    .filter_map(|e| e.token.strip_prefix(lexicon::PROMPT_PREFIX))
                    .map(String::from),
            );
        }
        let pack_name = pack.name.clone();
        let renderer = Renderer::new(pack, Espeak::new(espeak), config.volume);
        let announcer = Announcer::start(
            renderer,
            sink,
            config.settings(utc_offset_minutes),
            observer,
        )
        .map_err(VoiceError::Thread)?;
        Ok(Voice {
            inner: Arc::new(Inner {
                announcer,
                prompts,
                pack_name,
                sink_name,
            }),
        })
    }

    /// Speaks every call and recall committed from now on. Subscribes before returning,
    /// so nothing committed after this call is missed; the task holds the voice weakly
    /// and ends when the voice is dropped or the core stops.
    pub fn follow(&self, hall: &HallCore) {
        let mut rx = hall.subscribe();
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            loop {
                let event = match rx.recv().await {
                    Ok(e) => e,
                    Err(RecvError::Lagged(n)) => {
                        tracing::warn!(
                            missed = n,
                            "voice fell behind the event stream; some calls were not spoken"
                        );
                        continue;
                    }
                    Err(RecvError::Closed) => break,
                };
                let received = Instant::now();
                let (number, window, recall) = match event.typed() {
                    Committed::Engine(Event::TicketCalled { number, window, .. }) => {
                        (number, window, false)
                    }
                    Committed::Engine(Event::TicketRecalled { number, window, .. }) => {
                        (number, window, true)
                    }
                    _ => continue,
                };
                let Some(inner) = weak.upgrade() else { break };
                inner.announcer.announce(
                    Message::Call {
                        number,
                        window,
                        recall,
                    },
                    received,
                );
            }
        });
    }

    /// Queues a kiosk prompt by id (`welcome` → `prompt.welcome`).
    pub fn prompt(&self, id: &str) -> Result<Accepted, UnknownPrompt> {
        if !self.inner.prompts.contains(id) {
            return Err(UnknownPrompt {
                id: id.to_string(),
                known: self.prompts(),
            });
        }
        Ok(self
            .inner
            .announcer
            .announce(Message::Prompt { id: id.to_string() }, Instant::now()))
    }

    /// Queues a kiosk prompt followed by a ticket number (`your_number` + `A001`).
    pub fn prompt_number(&self, id: &str, number: &str) -> Result<Accepted, UnknownPrompt> {
        if !self.inner.prompts.contains(id) {
            return Err(UnknownPrompt {
                id: id.to_string(),
                known: self.prompts(),
            });
        }
        Ok(self.inner.announcer.announce(
            Message::NumberPrompt {
                id: id.to_string(),
                number: number.to_string(),
            },
            Instant::now(),
        ))
    }

    /// Queues any message (tools and tests).
    pub fn announce(&self, message: Message) -> Accepted {
        self.inner.announcer.announce(message, Instant::now())
    }

    /// The prompt ids this hall can speak.
    pub fn prompts(&self) -> Vec<String> {
        self.inner.prompts.iter().cloned().collect()
    }

    /// Announcements waiting or playing.
    pub fn backlog(&self) -> usize {
        self.inner.announcer.backlog()
    }

    /// The pack's name.
    pub fn pack_name(&self) -> &str {
        &self.inner.pack_name
    }

    /// Where audio goes, e.g. `alsa:default`.
    pub fn sink_name(&self) -> &str {
        &self.inner.sink_name
    }
}

fn espeak_program(config: &VoiceConfig) -> Option<PathBuf> {
    let p = config.espeak.trim();
    (!p.is_empty()).then(|| PathBuf::from(p))
}

/// Logs an outcome and reports device health. Runs on the voice thread for played
/// announcements (so `report_blocking` is allowed) and on the caller's thread for drops
/// (which only log).
fn observe(devices: &Devices, r: Report) {
    match r {
        Report::Played {
            seq,
            message,
            tokens,
            fallbacks,
            missing,
            quiet,
            received,
            result,
            ..
        } => {
            if !fallbacks.is_empty() {
                tracing::info!(
                    ?fallbacks,
                    "spoken by espeak-ng: the pack lacks these clips"
                );
            }
            if !missing.is_empty() {
                let detail = missing
                    .iter()
                    .map(|m| format!("{}: {}", m.token, m.reason))
                    .collect::<Vec<_>>()
                    .join("; ");
                tracing::warn!(?message, %detail, "words cannot be said; played the chime alone");
                // A fixed detail, so that a pack missing several words raises one event.
                devices.report_blocking(
                    PACK_DEVICE,
                    Health::warning(
                        "voice_clips_missing",
                        "words missing from the voice pack cannot be spoken by espeak-ng either; \
                         calls needing them get the chime alone (the log names the words)",
                    ),
                );
            }
            match result {
                Ok(played) => {
                    tracing::debug!(
                        seq,
                        ?message,
                        tokens = tokens.len(),
                        quiet,
                        latency_ms =
                            played.first_sample.duration_since(received).as_secs_f64() * 1e3,
                        "announced"
                    );
                    devices.report_blocking(DEVICE, Health::Ok);
                }
                Err(e) => {
                    tracing::warn!(seq, ?message, error = %e, "announcement could not be played");
                    let code = match e {
                        SinkError::Spawn { .. } => "voice_player_missing",
                        SinkError::Player { .. } => "voice_output_failed",
                        SinkError::File { .. } => "voice_files_unwritable",
                    };
                    devices.report_blocking(DEVICE, Health::fault(code, e.to_string()));
                }
            }
        }
        Report::Dropped { message, reason } => match reason {
            DropReason::QueueFull => {
                tracing::warn!(
                    ?message,
                    "too many announcements waiting; dropped the oldest"
                )
            }
            DropReason::Expired => {
                tracing::info!(?message, "kiosk prompt waited too long; dropped")
            }
            DropReason::Quiet => tracing::debug!(?message, "quiet hours: not spoken"),
            DropReason::Shutdown => tracing::debug!(?message, "not spoken: shutting down"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> VoiceConfig {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn an_empty_section_means_aplay_on_the_default_device_with_the_shipped_pack() {
        let c = parse("");
        assert!(c.enabled && c.chime && !c.english);
        assert_eq!(
            (c.sink, c.repeat, c.volume, c.max_queue),
            (SinkKind::Alsa, 2, 100, 5)
        );
        assert_eq!(c.espeak, "espeak-ng");
        assert!(c.check().is_ok());
    }

    #[test]
    fn bad_values_name_their_key() {
        assert_eq!(parse("repeat = 0").check().unwrap_err().0, "voice.repeat");
        assert_eq!(parse("volume = 500").check().unwrap_err().0, "voice.volume");
        assert_eq!(
            parse("sink = \"files\"").check().unwrap_err().0,
            "voice.dir"
        );
        assert_eq!(
            parse("quiet_hours = { from = \"12\", to = \"13:30\" }")
                .check()
                .unwrap_err()
                .0,
            "voice.quiet_hours.from"
        );
        let q = parse("quiet_hours = { from = \"22:00\", to = \"07:00\", mode = \"silent\" }");
        assert!(q.check().is_ok());
        let s = q.settings(480).quiet.unwrap();
        assert_eq!(s.mode, QuietMode::Silent);
        assert!(toml::from_str::<VoiceConfig>("sink = \"pulse\"").is_err());
    }
}
