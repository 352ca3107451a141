//! The announcer: one thread owns the renderer and the sink. Calls queue in the order
//! they arrive (call order, since the core fans committed events out in commit order),
//! ahead of any kiosk prompt still waiting; prompts queue behind them in their order;
//! the thread takes one, renders it, plays it to the end, then takes the next, so two
//! announcements can never overlap. When the queue grows past a setting the oldest
//! waiting ones are dropped: in a burst the LED boards already show every call, and a
//! hall that hears calls from a minute ago is worse off than one that skips them.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use chrono::NaiveTime;

use crate::phrase::{Message, Style, compose};
use crate::render::{Missing, Renderer};
use crate::sink::{Playback, Played, Sink, SinkError};

/// The hall's local time of day, asked when each announcement is about to play.
pub type Clock = Arc<dyn Fn() -> NaiveTime + Send + Sync>;

/// The wall clock at a fixed offset from UTC (the hall's `utc_offset_minutes`).
pub fn wall_clock(utc_offset_minutes: i32) -> Clock {
    Arc::new(move || {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0)
            + utc_offset_minutes as i64 * 60;
        let of_day = secs.rem_euclid(86_400) as u32;
        NaiveTime::from_num_seconds_from_midnight_opt(of_day, 0).unwrap_or(NaiveTime::MIN)
    })
}

/// What quiet hours do to an announcement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum QuietMode {
    /// Nothing is played; the LED boards carry the call.
    Silent,
    /// Only the chime, so that people look up at the boards.
    Chime,
}

/// A daily span during which calls are not spoken (a lunch break when only the green
/// channel window works, a meeting in the hall).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuietHours {
    /// Start, local time, inclusive.
    pub from: NaiveTime,
    /// End, local time, exclusive; earlier than `from` means the span crosses midnight.
    pub to: NaiveTime,
    /// What happens inside it.
    pub mode: QuietMode,
}

impl QuietHours {
    /// Whether `t` lies inside the span.
    pub fn contains(&self, t: NaiveTime) -> bool {
        if self.from <= self.to {
            self.from <= t && t < self.to
        } else {
            t >= self.from || t < self.to
        }
    }
}

/// How the announcer behaves.
#[derive(Clone)]
pub struct Settings {
    /// Chime, repetitions, English.
    pub style: Style,
    /// Most announcements waiting (not counting the one playing); older ones beyond
    /// this are dropped.
    pub max_queue: usize,
    /// A kiosk prompt not started within this is dropped: it would answer a citizen
    /// who has moved on.
    pub prompt_max_wait: Duration,
    /// Quiet hours, if any.
    pub quiet: Option<QuietHours>,
    /// The hall's local time.
    pub clock: Clock,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("style", &self.style)
            .field("max_queue", &self.max_queue)
            .field("prompt_max_wait", &self.prompt_max_wait)
            .field("quiet", &self.quiet)
            .finish_non_exhaustive()
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            style: Style::default(),
            max_queue: 5,
            prompt_max_wait: Duration::from_secs(10),
            quiet: None,
            clock: wall_clock(480),
        }
    }
}

/// Why an announcement was not played.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// The queue was longer than `max_queue`; this was the oldest.
    QueueFull,
    /// A kiosk prompt waited longer than `prompt_max_wait`.
    Expired,
    /// Quiet hours in silent mode.
    Quiet,
    /// The announcer stopped before playing it.
    Shutdown,
}

/// What happened to one request; the daemon turns these into logs and device health.
#[derive(Debug)]
pub enum Report {
    /// It was played (or the sink failed trying).
    Played {
        /// Announcement number, in play order.
        seq: u64,
        /// What was said.
        message: Message,
        /// Tokens in order.
        tokens: Vec<String>,
        /// Tokens spoken by espeak-ng.
        fallbacks: Vec<String>,
        /// Words that could not be said.
        missing: Vec<Missing>,
        /// Only the chime played.
        chime_only: bool,
        /// Quiet hours reduced it to the chime.
        quiet: bool,
        /// When the request arrived.
        received: Instant,
        /// The sink's times, or its failure.
        result: Result<Played, SinkError>,
    },
    /// It was dropped unplayed.
    Dropped {
        /// What would have been said.
        message: Message,
        /// Why.
        reason: DropReason,
    },
}

/// A request accepted into the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accepted {
    /// Announcements ahead of it (including the one playing).
    pub ahead: usize,
    /// It joined an identical call already waiting instead of adding another.
    pub merged: bool,
    /// False when the queue was full of calls and this prompt gave way at once.
    pub queued: bool,
}

struct Waiting {
    message: Message,
    received: Instant,
}

#[derive(Default)]
struct Queue {
    waiting: VecDeque<Waiting>,
    playing: bool,
    stopping: bool,
}

type Observer = Box<dyn FnMut(Report) + Send>;

struct Shared {
    queue: Mutex<Queue>,
    wake: Condvar,
    settings: Settings,
}

/// The handle: cheap to share behind an `Arc`; dropping it stops the thread after the
/// announcement that is playing.
pub struct Announcer {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    observer_drops: Arc<Mutex<Observer>>,
}

impl Announcer {
    /// Starts the thread that owns `renderer` and `sink`. `observer` hears every outcome.
    pub fn start(
        renderer: Renderer,
        sink: Box<dyn Sink>,
        settings: Settings,
        observer: impl FnMut(Report) + Send + 'static,
    ) -> std::io::Result<Announcer> {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
            settings,
        });
        let observer: Arc<Mutex<Observer>> = Arc::new(Mutex::new(Box::new(observer)));
        let thread = {
            let shared = shared.clone();
            let observer = observer.clone();
            std::thread::Builder::new()
                .name("voice".into())
                .spawn(move || run(shared, renderer, sink, observer))?
        };
        Ok(Announcer {
            shared,
            thread: Some(thread),
            observer_drops: observer,
        })
    }

    /// Queues an announcement; never blocks on playback. `received` is when the cause
    /// happened (the committed event's arrival), for the latency figure.
    pub fn announce(&self, message: Message, received: Instant) -> Accepted {
        let mut dropped = Vec::new();
        let accepted = {
            let mut q = lock(&self.shared.queue);
            let same = |w: &Waiting| match (&w.message, &message) {
                (
                    Message::Call {
                        number: a,
                        window: wa,
                        ..
                    },
                    Message::Call {
                        number: b,
                        window: wb,
                        ..
                    },
                ) => a == b && wa == wb,
                _ => false,
            };
            let playing = q.playing as usize;
            let merged_at = q.waiting.iter().position(same);
            if let Some(i) = merged_at {
                // A recall while its call still waits: one announcement says both.
                Accepted {
                    ahead: playing + i,
                    merged: true,
                    queued: true,
                }
            } else {
                // A call goes ahead of every prompt still waiting (a prompt never
                // delays a call); prompts keep their order behind the calls.
                let at = if message.is_prompt() {
                    q.waiting.len()
                } else {
                    q.waiting
                        .iter()
                        .position(|w| w.message.is_prompt())
                        .unwrap_or(q.waiting.len())
                };
                q.waiting.insert(at, Waiting { message, received });
                let mut mine = Some(at);
                while q.waiting.len() > self.shared.settings.max_queue.max(1) {
                    // Calls before prompts: the oldest prompt goes first (even the one
                    // just asked for), else the oldest call.
                    let i = q
                        .waiting
                        .iter()
                        .position(|w| w.message.is_prompt())
                        .unwrap_or(0);
                    mine = match mine {
                        Some(m) if m == i => None,
                        Some(m) if i < m => Some(m - 1),
                        other => other,
                    };
                    if let Some(w) = q.waiting.remove(i) {
                        dropped.push(w.message);
                    }
                }
                Accepted {
                    ahead: playing + mine.unwrap_or(q.waiting.len()),
                    merged: false,
                    queued: mine.is_some(),
                }
            }
        };
        self.shared.wake.notify_one();
        if !dropped.is_empty() {
            let mut obs = lock(&self.observer_drops);
            for message in dropped {
                obs(Report::Dropped {
                    message,
                    reason: DropReason::QueueFull,
                });
            }
        }
        accepted
    }

    /// Announcements waiting, plus the one playing.
    pub fn backlog(&self) -> usize {
        let q = lock(&self.shared.queue);
        q.waiting.len() + q.playing as usize
    }

    /// Announcements waiting, not counting the one playing.
    pub fn waiting(&self) -> usize {
        lock(&self.shared.queue).waiting.len()
    }

    /// Blocks until nothing waits or plays, or `timeout` passes; true when idle.
    pub fn wait_idle(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut q = lock(&self.shared.queue);
        while !q.waiting.is_empty() || q.playing {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            q = self
                .shared
                .wake
                .wait_timeout(q, left.min(Duration::from_millis(50)))
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        }
        true
    }
}

impl Drop for Announcer {
    fn drop(&mut self) {
        lock(&self.shared.queue).stopping = true;
        self.shared.wake.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn run(
    shared: Arc<Shared>,
    mut renderer: Renderer,
    mut sink: Box<dyn Sink>,
    observer: Arc<Mutex<Observer>>,
) {
    let settings = &shared.settings;
    let mut seq = 0u64;
    loop {
        let next = {
            let mut q = lock(&shared.queue);
            q.playing = false;
            shared.wake.notify_all();
            loop {
                if q.stopping {
                    let left: Vec<Waiting> = q.waiting.drain(..).collect();
                    drop(q);
                    let mut obs = lock(&observer);
                    for w in left {
                        obs(Report::Dropped {
                            message: w.message,
                            reason: DropReason::Shutdown,
                        });
                    }
                    return;
                }
                if let Some(w) = q.waiting.pop_front() {
                    q.playing = true;
                    break w;
                }
                q = shared.wake.wait(q).unwrap_or_else(|p| p.into_inner());
            }
        };
        let report = play_one(&mut renderer, sink.as_mut(), settings, next, &mut seq);
        lock(&observer)(report);
    }
}

fn play_one(
    renderer: &mut Renderer,
    sink: &mut dyn Sink,
    settings: &Settings,
    w: Waiting,
    seq: &mut u64,
) -> Report {
    let is_prompt = w.message.is_prompt();
    if is_prompt && w.received.elapsed() > settings.prompt_max_wait {
        return Report::Dropped {
            message: w.message,
            reason: DropReason::Expired,
        };
    }
    let quiet = settings
        .quiet
        .filter(|q| q.contains((settings.clock)()))
        .map(|q| q.mode);
    let rendered = match quiet {
        Some(QuietMode::Silent) => {
            return Report::Dropped {
                message: w.message,
                reason: DropReason::Quiet,
            };
        }
        // A prompt is for one citizen at the kiosk; a chime would sound like a call.
        Some(QuietMode::Chime) if is_prompt => {
            return Report::Dropped {
                message: w.message,
                reason: DropReason::Quiet,
            };
        }
        Some(QuietMode::Chime) => renderer.chime_alone(),
        None => renderer.render(&compose(&w.message, &settings.style)),
    };
    *seq += 1;
    let result = sink.play(&Playback {
        seq: *seq,
        message: &w.message,
        rendered: &rendered,
        quiet: quiet.is_some(),
        received: w.received,
    });
    Report::Played {
        seq: *seq,
        tokens: rendered.tokens().iter().map(|s| s.to_string()).collect(),
        fallbacks: rendered.fallbacks().iter().map(|s| s.to_string()).collect(),
        missing: rendered.missing,
        chime_only: rendered.chime_only,
        quiet: quiet.is_some(),
        received: w.received,
        message: w.message,
        result,
    }
}
