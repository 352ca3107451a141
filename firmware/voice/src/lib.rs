//! Call announcements for the service hall, spoken offline: "请 A001 号到 3 号窗口办理",
//! optionally followed by English, from recorded clips in a voice pack, never two at once.
//!
//! No async runtime here: the announcer is one plain thread that owns the sink, so the
//! daemon (or a test, or the latency example) drives it with ordinary calls.
//!
//! # Layout
//! - [`audio`]: mono 16-bit PCM in memory, WAV in and out (`hound`), gain, resampling,
//!   the synthesized chime, RMS.
//! - [`lexicon`]: every token and the text that says it (`pack/lexicon.tsv`, shared with
//!   the pack generator `pack/generate.sh`).
//! - [`pack`]: a folder of clips with a `pack.toml` manifest, checked when it loads.
//! - [`phrase`]: message → tokens (ticket numbers digit by digit, windows as numbers).
//! - [`espeak`]: espeak-ng as the fallback voice for a clip the pack lacks.
//! - [`render`]: tokens → one block of audio; the chime alone when words are missing.
//! - [`sink`]: `aplay` and a folder of WAV files with JSON sidecars.
//! - [`announcer`]: the queue and the thread that owns the sink; quiet hours; drops.

pub mod announcer;
pub mod audio;
pub mod durable;
pub mod espeak;
pub mod lexicon;
pub mod pack;
pub mod phrase;
pub mod render;
pub mod sink;

pub use announcer::{
    Accepted, Announcer, Clock, DropReason, QuietHours, QuietMode, Report, Settings, wall_clock,
};
pub use audio::Audio;
pub use espeak::Espeak;
pub use pack::{Pack, PackError};
pub use phrase::{Message, Style};
pub use render::{Rendered, Renderer};
pub use sink::{AlsaSink, FileSink, Played, Sink, SinkError};
