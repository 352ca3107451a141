//! Where announcements go. A sink plays one announcement at a time and returns only when it
//! has finished, so the one thread that owns it can never start a second call over the
//! first. Two sinks: ALSA through `aplay` (a child process fed the WAV on stdin), and a
//! folder of WAV files for tests and for halls that route audio elsewhere.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::phrase::Message;
use crate::render::Rendered;

/// Samples handed over before the first-sample time is taken (64 ms at 16 kHz): small, so
/// the figure is the moment audio starts, not the moment the whole file is written.
const FIRST_CHUNK: usize = 1024;

/// An announcement on its way to a sink.
#[derive(Debug)]
pub struct Playback<'a> {
    /// Announcement number since start, in play order.
    pub seq: u64,
    /// What is said.
    pub message: &'a Message,
    /// The audio and its tokens.
    pub rendered: &'a Rendered,
    /// Quiet hours reduced it to the chime.
    pub quiet: bool,
    /// When the request reached the announcer (for a call: when the committed event
    /// arrived from the core).
    pub received: Instant,
}

/// When a sink started and finished playing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Played {
    /// The first samples had been handed over.
    pub first_sample: Instant,
    /// The sink was done (aplay exited; the file was complete and in place).
    pub finished: Instant,
}

/// A sink that failed to play.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The player could not be started.
    #[error("cannot run {program}: {source} (install alsa-utils)")]
    Spawn {
        /// The program.
        program: String,
        /// Why.
        source: std::io::Error,
    },
    /// The player failed.
    #[error("{program} failed: {detail}")]
    Player {
        /// The program.
        program: String,
        /// Its exit status and message.
        detail: String,
    },
    /// Writing the file failed.
    #[error("cannot write {}: {source}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// Plays announcements one at a time.
pub trait Sink: Send {
    /// Plays to the end, then returns.
    fn play(&mut self, p: &Playback<'_>) -> Result<Played, SinkError>;
    /// A short name for logs and fault reports.
    fn name(&self) -> String;
}

/// ALSA playback through `aplay`.
#[derive(Debug, Clone)]
pub struct AlsaSink {
    program: PathBuf,
    device: Option<String>,
}

impl AlsaSink {
    /// `device` is an ALSA PCM name (`default`, `plughw:1,0`, `null`); `None` = default.
    pub fn new(program: impl Into<PathBuf>, device: Option<String>) -> AlsaSink {
        AlsaSink {
            program: program.into(),
            device,
        }
    }
}

impl Sink for AlsaSink {
    fn name(&self) -> String {
        format!(
            "alsa:{}",
            self.device.as_deref().unwrap_or("default").to_owned()
        )
    }

    fn play(&mut self, p: &Playback<'_>) -> Result<Played, SinkError> {
        let program = self.program.display().to_string();
        let mut cmd = Command::new(&self.program);
        cmd.args(["-q", "-t", "wav"]);
        if let Some(d) = &self.device {
            cmd.args(["-D", d]);
        }
        let mut child = cmd
            .arg("-")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| SinkError::Spawn {
                program: program.clone(),
                source,
            })?;
        let mut stderr = child.stderr.take().expect("stderr is piped");
        let err_reader = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stderr.read_to_string(&mut s);
            s
        });
        let wav = p.rendered.audio.to_wav();
        let split = (44 + FIRST_CHUNK * 2).min(wav.len());
        let mut stdin = child.stdin.take().expect("stdin is piped");
        // Written from a helper thread: a player stuck before reading (a card that hangs
        // on open) must not hang this thread past the deadline below.
        let writer = std::thread::spawn(move || {
            let first = stdin.write_all(&wav[..split]).map(|_| Instant::now())?;
            stdin.write_all(&wav[split..])?;
            Ok::<Instant, std::io::Error>(first)
        });
        // Real playback takes the sound's length; allow that and more.
        let deadline = Instant::now() + p.rendered.audio.duration() + Duration::from_secs(10);
        let status = loop {
            match child.try_wait() {
                Ok(Some(s)) => break Ok(s),
                Ok(None) if Instant::now() > deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break Err("did not finish in time; stopped".to_string());
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(2)),
                Err(e) => break Err(e.to_string()),
            }
        };
        let finished = Instant::now();
        let written = writer
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("writer thread panicked")));
        let said = err_reader.join().unwrap_or_default();
        let failed = |detail: String| SinkError::Player {
            program: program.clone(),
            detail,
        };
        match status {
            Ok(s) if s.success() => {}
            Ok(s) => return Err(failed(format!("{s}: {}", said.trim()))),
            Err(e) => return Err(failed(e)),
        }
        match written {
            Ok(first_sample) => Ok(Played {
                first_sample,
                finished,
            }),
            Err(e) => Err(failed(format!("audio not accepted: {e}; {}", said.trim()))),
        }
    }
}

/// One WAV per announcement in a folder (`000001.wav`), each with a JSON sidecar
/// (`000001.json`) naming its tokens, their places in the audio and the play times.
/// Files appear complete (written aside, then renamed), so a program watching the
/// folder never reads half a file; with `pace`, the sink also holds each file for its
/// playing time, so such a program playing files as they appear never overlaps two.
#[derive(Debug)]
pub struct FileSink {
    dir: PathBuf,
    pace: bool,
    next: u64,
}

/// The sidecar written beside each WAV.
#[derive(Debug, Serialize)]
struct Sidecar<'a> {
    seq: u64,
    message: &'a Message,
    quiet: bool,
    rate: u32,
    samples: usize,
    #[serde(flatten)]
    rendered: &'a Rendered,
    /// Wall clock, µs since the epoch: first samples handed over.
    started_unix_us: u128,
    /// Wall clock, µs since the epoch: file complete and in place.
    finished_unix_us: u128,
    /// From the request reaching the announcer to the first samples handed over.
    latency_us: u128,
}

impl FileSink {
    /// Creates the folder if needed; numbering continues after the files already there.
    pub fn new(dir: &Path, pace: bool) -> Result<FileSink, SinkError> {
        let err = |source| SinkError::File {
            path: dir.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(err)?;
        let last = std::fs::read_dir(dir)
            .map_err(err)?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                name.strip_suffix(".wav")?.parse::<u64>().ok()
            })
            .max()
            .unwrap_or(0);
        Ok(FileSink {
            dir: dir.to_path_buf(),
            pace,
            next: last + 1,
        })
    }

    fn write(&self, path: &Path, parts: &[&[u8]]) -> Result<Option<Instant>, SinkError> {
        let err = |source| SinkError::File {
            path: path.to_path_buf(),
            source,
        };
        // Temp file, fsync, rename, directory fsync: a cut leaves no half or lost file.
        crate::durable::replace(path, |f| {
            let mut first = None;
            for part in parts {
                f.write_all(part)?;
                first.get_or_insert_with(Instant::now);
            }
            Ok(first)
        })
        .map_err(err)
    }
}

fn unix_us(at: Instant) -> u128 {
    let now_i = Instant::now();
    let now_s = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    (now_s.saturating_sub(now_i.saturating_duration_since(at))).as_micros()
}

impl Sink for FileSink {
    fn name(&self) -> String {
        format!("files:{}", self.dir.display())
    }

    fn play(&mut self, p: &Playback<'_>) -> Result<Played, SinkError> {
        let n = self.next;
        self.next += 1;
        let wav = p.rendered.audio.to_wav();
        let split = (44 + FIRST_CHUNK * 2).min(wav.len());
        let path = self.dir.join(format!("{n:06}.wav"));
        let first_sample = self
            .write(&path, &[&wav[..split], &wav[split..]])?
            .unwrap_or_else(Instant::now);
        if self.pace {
            let until = first_sample + p.rendered.audio.duration();
            std::thread::sleep(until.saturating_duration_since(Instant::now()));
        }
        let finished = Instant::now();
        let sidecar = Sidecar {
            seq: p.seq,
            message: p.message,
            quiet: p.quiet,
            rate: p.rendered.audio.rate,
            samples: p.rendered.audio.samples.len(),
            rendered: p.rendered,
            started_unix_us: unix_us(first_sample),
            finished_unix_us: unix_us(finished),
            latency_us: first_sample
                .saturating_duration_since(p.received)
                .as_micros(),
        };
        let json = serde_json::to_vec_pretty(&sidecar).expect("sidecar serialises");
        self.write(&path.with_extension("json"), &[&json])?;
        Ok(Played {
            first_sample,
            finished,
        })
    }
}
