//! Staff sign-in under attack: what stands between a flood of PIN guesses and the
//! controller's memory, its staff requests and its event log.
//!
//! - **The PIN work is bounded.** Argon2 (7 MiB, on purpose slow) runs on a fixed pool
//!   of [`PIN_WORKERS`] threads of low priority with at most [`PIN_QUEUE`] checks
//!   waiting; beyond that a sign-in is answered `503 busy` with `Retry-After` at once,
//!   never with more memory. The auth connection's lock is held only for the short
//!   reads and writes around the check, so a token lookup never waits behind a hash.
//! - **Guesses are slowed down** per client address and per staff id (known or not):
//!   after some free failures each further attempt must wait for a back-off that
//!   doubles up to a ceiling, answered `429 too_many_attempts` with `Retry-After`
//!   without any PIN work. The lockout itself (`auth.max_failures`) is counted per staff
//!   id *and* source address in the database (`store::staff`), so guesses from one
//!   machine never lock the clerk at the window out; `/admin` (Unlock) or
//!   `hallq staff unlock` lifts every lock of an account in one action.
//! - **Refusals are counted** (`hallq_sign_in_refused_total` by reason on `/metrics`)
//!   and summed up into one `sign_in_failures` event per source address: the first
//!   refusal after a quiet minute at once, the rest at most once a minute.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use hallq_engine::Timestamp;
use tokio::sync::oneshot;

use crate::core::{HallCore, wall_now};
use crate::events::HallEvent;
use crate::store::NewEvent;

/// Argon2 checks running at once (each holds 7 MiB while it runs).
pub const PIN_WORKERS: usize = 2;
/// Checks that may wait for a worker; one more is answered `503 busy`.
pub const PIN_QUEUE: usize = 8;
/// Failures from one address before its attempts are slowed down: above the default
/// `auth.max_failures` (5), so a clerk who mistypes is locked, not throttled, and an
/// Unlock lets them in at once.
const FREE_PER_ADDRESS: u32 = 10;
/// Failures for one staff id (from anywhere) before its attempts are slowed down.
const FREE_PER_STAFF: u32 = 10;
/// The longest back-off for an address.
const MAX_ADDRESS_DELAY: Duration = Duration::from_secs(60);
/// The longest back-off for a staff id: short, since anyone can cause it.
const MAX_STAFF_DELAY: Duration = Duration::from_secs(15);
/// Failures are forgotten after this long without another.
const FORGET_AFTER: Duration = Duration::from_secs(15 * 60);
/// Entries kept per back-off table before the stale ones are swept.
const SWEEP_ABOVE: usize = 4096;
/// At most one `sign_in_failures` event per source in this time.
pub const SUMMARY_EVERY: Duration = Duration::from_secs(60);
/// Staff ids named in one summary.
const SUMMARY_IDS: usize = 10;

/// The client address of a request (`None` only when the router is driven without a
/// socket, as in unit tests).
pub struct Source(pub Option<IpAddr>);

impl Source {
    /// The address as stored and summarised (`local` without a socket).
    pub fn label(&self) -> String {
        self.0
            .map_or_else(|| "local".to_string(), |ip| ip.to_string())
    }
}

/// The client's address as the socket gave it, IPv4-mapped addresses as IPv4
/// (`--listen [::]:PORT` sees a local IPv4 client as `::ffff:127.0.0.1`).
pub(crate) fn peer_ip(parts: &Parts) -> Option<IpAddr> {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_canonical())
}

impl<S: Send + Sync> FromRequestParts<S> for Source {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Source(peer_ip(parts)))
    }
}

/// Why a sign-in was turned away before its PIN was checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Turned {
    /// Too many failures lately: try again after this long.
    Throttled(Duration),
    /// The PIN checkers are all busy and their queue is full.
    Busy,
}

/// The sign-in guard: the PIN pool, the back-offs and the refusal summaries. Cheap to
/// clone; one per daemon.
#[derive(Clone)]
pub struct SignInGuard {
    pool: PinPool,
    inner: Arc<Mutex<Inner>>,
}

#[derive(Default)]
struct Inner {
    by_address: Backoff<IpAddr>,
    by_staff: Backoff<String>,
    summaries: HashMap<String, Summary>,
    refused: BTreeMap<&'static str, u64>,
}

impl Default for SignInGuard {
    fn default() -> Self {
        SignInGuard::new()
    }
}

impl SignInGuard {
    /// Starts the PIN workers.
    pub fn new() -> SignInGuard {
        SignInGuard {
            pool: PinPool::start(PIN_WORKERS, PIN_QUEUE),
            inner: Arc::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether an attempt for `staff` from `source` may go ahead now.
    pub fn admit(&self, source: &Source, staff: &str, now: Instant) -> Result<(), Turned> {
        let m = self.lock();
        let address = source.0.and_then(|ip| {
            m.by_address
                .wait(&ip, now, FREE_PER_ADDRESS, MAX_ADDRESS_DELAY)
        });
        let id = m
            .by_staff
            .wait(&staff.to_string(), now, FREE_PER_STAFF, MAX_STAFF_DELAY);
        match address.max(id) {
            Some(d) => Err(Turned::Throttled(d)),
            None => Ok(()),
        }
    }

    /// Checks `pin` against the PHC `hash` on the PIN pool.
    pub async fn pin_matches(&self, hash: String, pin: String) -> Result<bool, Turned> {
        self.pool.check(hash, pin).await
    }

    /// A sign-in that went through: its address starts afresh.
    pub fn succeeded(&self, source: &Source) {
        if let Some(ip) = source.0 {
            self.lock().by_address.forget(&ip);
        }
    }

    /// Counts a refusal. A wrong PIN (the refusal that cost PIN work) also feeds the
    /// back-offs; a lock is answered from the database at no cost. Returns the
    /// summary event to record now, if this source has had none for a minute.
    pub fn refused(
        &self,
        source: &Source,
        staff: &str,
        reason: &'static str,
        now: Instant,
    ) -> Option<NewEvent> {
        let mut m = self.lock();
        *m.refused.entry(reason).or_default() += 1;
        if reason == "invalid_credentials" {
            if let Some(ip) = source.0 {
                m.by_address.failed(ip, now);
            }
            m.by_staff.failed(staff.to_string(), now);
        }
        let summary = m.summaries.entry(source.label()).or_default();
        summary.add(staff, reason, wall_now());
        let quiet = summary
            .last_sent
            .is_none_or(|t| now.duration_since(t) >= SUMMARY_EVERY);
        quiet.then(|| summary.take(&source.label(), now)).flatten()
    }

    /// The summaries whose minute is up (for the flush task).
    pub fn due(&self, now: Instant) -> Vec<NewEvent> {
        let mut m = self.lock();
        let mut out = Vec::new();
        m.summaries.retain(|source, s| {
            if s.last_sent
                .is_none_or(|t| now.duration_since(t) >= SUMMARY_EVERY)
            {
                match s.take(source, now) {
                    Some(e) => out.push(e),
                    // Nothing new for a minute since the last one: forget the source.
                    None => return false,
                }
            }
            true
        });
        out
    }

    /// Records the due summaries every few seconds, for as long as the core runs.
    pub async fn flush(self, hall: HallCore) {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tick.tick().await;
            let due = self.due(Instant::now());
            if !due.is_empty() && hall.append(due).await.is_err() {
                return;
            }
        }
    }

    /// The refusal counters in Prometheus's text format.
    pub fn render_metrics(&self, out: &mut String) {
        use std::fmt::Write as _;
        let m = self.lock();
        out.push_str("# HELP hallq_sign_in_refused_total Staff sign-ins refused since start, by reason.\n# TYPE hallq_sign_in_refused_total counter\n");
        for (reason, n) in &m.refused {
            let _ = writeln!(
                out,
                "hallq_sign_in_refused_total{{reason=\"{reason}\"}} {n}"
            );
        }
        out.push_str("# HELP hallq_sign_in_pin_checks_waiting PIN checks waiting for a worker.\n# TYPE hallq_sign_in_pin_checks_waiting gauge\n");
        let _ = writeln!(
            out,
            "hallq_sign_in_pin_checks_waiting {}",
            self.pool.waiting()
        );
    }
}

/// Failures per key with a back-off that doubles after `free` of them.
struct Backoff<K> {
    entries: HashMap<K, (u32, Instant)>,
}

impl<K> Default for Backoff<K> {
    fn default() -> Self {
        Backoff {
            entries: HashMap::new(),
        }
    }
}

impl<K: std::hash::Hash + Eq> Backoff<K> {
    /// How long `key` must still wait, if at all.
    fn wait(&self, key: &K, now: Instant, free: u32, max: Duration) -> Option<Duration> {
        let (failures, last) = *self.entries.get(key)?;
        if failures < free || now.duration_since(last) >= FORGET_AFTER {
            return None;
        }
        let doublings = (failures - free).min(16);
        let delay = Duration::from_secs(1u64 << doublings).min(max);
        let waited = now.duration_since(last);
        (waited < delay).then(|| delay - waited)
    }

    fn failed(&mut self, key: K, now: Instant) {
        if self.entries.len() >= SWEEP_ABOVE {
            self.entries
                .retain(|_, (_, last)| now.duration_since(*last) < FORGET_AFTER);
        }
        let e = self.entries.entry(key).or_insert((0, now));
        if now.duration_since(e.1) >= FORGET_AFTER {
            e.0 = 0;
        }
        e.0 = e.0.saturating_add(1);
        e.1 = now;
    }

    fn forget(&mut self, key: &K) {
        self.entries.remove(key);
    }
}

/// Refusals from one source since its last summary.
#[derive(Default)]
struct Summary {
    last_sent: Option<Instant>,
    count: u64,
    reasons: BTreeMap<String, u64>,
    staff: BTreeSet<String>,
    more_staff: u64,
    first_at: i64,
    last_at: i64,
}

impl Summary {
    fn add(&mut self, staff: &str, reason: &str, at: Timestamp) {
        if self.count == 0 {
            self.first_at = at.0;
        }
        self.count += 1;
        self.last_at = at.0;
        *self.reasons.entry(reason.to_string()).or_default() += 1;
        if !self.staff.contains(staff) {
            if self.staff.len() < SUMMARY_IDS {
                self.staff.insert(staff.to_string());
            } else {
                self.more_staff += 1;
            }
        }
    }

    /// The event for what was gathered, if anything, and a fresh start.
    fn take(&mut self, source: &str, now: Instant) -> Option<NewEvent> {
        if self.count == 0 {
            return None;
        }
        let e = HallEvent::SignInFailures {
            source: source.to_string(),
            count: self.count,
            reasons: std::mem::take(&mut self.reasons),
            staff: std::mem::take(&mut self.staff).into_iter().collect(),
            more_staff: self.more_staff,
            first_at: self.first_at,
            last_at: self.last_at,
        };
        let at = Timestamp(self.last_at);
        *self = Summary {
            last_sent: Some(now),
            ..Summary::default()
        };
        match NewEvent::encode(at, e.kind(), &e) {
            Ok(ev) => Some(ev),
            Err(err) => {
                tracing::error!(%err, "cannot encode a sign-in summary");
                None
            }
        }
    }
}

type Job = Box<dyn FnOnce() + Send>;

/// A fixed pool of PIN checkers with a bounded queue.
#[derive(Clone)]
struct PinPool {
    tx: SyncSender<Job>,
    waiting: Arc<std::sync::atomic::AtomicUsize>,
}

impl PinPool {
    fn start(workers: usize, queue: usize) -> PinPool {
        let (tx, rx) = sync_channel::<Job>(queue);
        let rx = Arc::new(Mutex::new(rx));
        for n in 0..workers {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("hallq-pin-{n}"))
                .spawn(move || pin_worker(&rx));
            if let Err(e) = spawned {
                tracing::error!(%e, "cannot start a PIN checker thread");
            }
        }
        PinPool {
            tx,
            waiting: Arc::default(),
        }
    }

    fn waiting(&self) -> usize {
        self.waiting.load(std::sync::atomic::Ordering::Relaxed)
    }

    async fn check(&self, hash: String, pin: String) -> Result<bool, Turned> {
        use std::sync::atomic::Ordering::Relaxed;
        let (tx, rx) = oneshot::channel();
        let waiting = self.waiting.clone();
        waiting.fetch_add(1, Relaxed);
        let job: Job = Box::new(move || {
            waiting.fetch_sub(1, Relaxed);
            let _ = tx.send(crate::store::staff::pin_matches(&hash, &pin));
        });
        match self.tx.try_send(job) {
            Ok(()) => rx.await.map_err(|_| Turned::Busy),
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.waiting.fetch_sub(1, Relaxed);
                Err(Turned::Busy)
            }
        }
    }
}

fn pin_worker(rx: &Mutex<Receiver<Job>>) {
    // Below the tokio workers and the core: a flood of guesses must not take the CPU
    // from the staff requests and tickets. On Linux a thread's nice value is its own.
    // SAFETY: plain system calls on this thread's own id.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, 10);
    }
    loop {
        let job = match rx.lock() {
            Ok(rx) => rx.recv(),
            Err(p) => p.into_inner().recv(),
        };
        match job {
            Ok(job) => job(),
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(ip: &str) -> Source {
        Source(Some(ip.parse().unwrap()))
    }

    #[test]
    fn an_address_is_slowed_down_after_its_free_failures_and_the_delay_doubles() {
        let g = SignInGuard::new();
        let t0 = Instant::now();
        let a = from("10.0.0.66");
        for i in 0..FREE_PER_ADDRESS {
            assert_eq!(g.admit(&a, &format!("X{i}"), t0), Ok(()));
            g.refused(&a, &format!("X{i}"), "invalid_credentials", t0);
        }
        assert_eq!(
            g.admit(&a, "Y", t0),
            Err(Turned::Throttled(Duration::from_secs(1)))
        );
        // Another address is not slowed down by it.
        assert_eq!(g.admit(&from("10.0.0.5"), "Y", t0), Ok(()));
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(g.admit(&a, "Y", t1), Ok(()));
        g.refused(&a, "Y", "invalid_credentials", t1);
        assert_eq!(
            g.admit(&a, "Y", t1),
            Err(Turned::Throttled(Duration::from_secs(2)))
        );
        // The ceiling holds however long the flood goes on.
        let mut t = t1;
        for _ in 0..20 {
            t += MAX_ADDRESS_DELAY;
            g.refused(&a, "Y", "invalid_credentials", t);
        }
        assert_eq!(
            g.admit(&a, "Y", t),
            Err(Turned::Throttled(MAX_ADDRESS_DELAY))
        );
        // Quiet for the forget time: a fresh start.
        assert_eq!(g.admit(&a, "Y", t + FORGET_AFTER), Ok(()));
    }

    #[test]
    fn a_staff_id_known_or_not_is_slowed_down_whichever_addresses_guess() {
        let g = SignInGuard::new();
        let t0 = Instant::now();
        for i in 0..FREE_PER_STAFF {
            let a = from(&format!("10.0.1.{i}"));
            g.refused(&a, "NOBODY", "invalid_credentials", t0);
        }
        assert_eq!(
            g.admit(&from("10.0.2.1"), "NOBODY", t0),
            Err(Turned::Throttled(Duration::from_secs(1)))
        );
        assert_eq!(g.admit(&from("10.0.2.1"), "S001", t0), Ok(()));
    }

    #[test]
    fn refusals_are_summed_up_once_a_minute_per_source() {
        let g = SignInGuard::new();
        let t0 = Instant::now();
        let a = from("10.0.0.66");
        let first = g.refused(&a, "S001", "invalid_credentials", t0);
        assert!(first.is_some(), "the first refusal is recorded at once");
        for i in 0..30 {
            let e = g.refused(&a, &format!("S{i:03}"), "invalid_credentials", t0);
            assert!(e.is_none(), "nothing more within the minute");
        }
        assert!(g.refused(&from("10.0.0.67"), "S001", "busy", t0).is_some());
        assert!(g.due(t0 + Duration::from_secs(30)).is_empty());
        let due = g.due(t0 + SUMMARY_EVERY);
        assert_eq!(due.len(), 1);
        let payload: serde_json::Value = serde_json::from_str(&due[0].payload).unwrap();
        assert_eq!(payload["type"], "sign_in_failures");
        assert_eq!(payload["source"], "10.0.0.66");
        assert_eq!(payload["count"], 30);
        assert_eq!(payload["staff"].as_array().unwrap().len(), SUMMARY_IDS);
        assert_eq!(payload["more_staff"], 30 - SUMMARY_IDS as u64);
        assert_eq!(payload["reasons"]["invalid_credentials"], 30);
        // A quiet minute later the sources are forgotten.
        assert!(g.due(t0 + 3 * SUMMARY_EVERY).is_empty());
        assert!(g.lock().summaries.is_empty());
    }

    #[tokio::test]
    async fn pin_checks_beyond_the_queue_are_turned_away_at_once() {
        let pool = PinPool::start(1, 1);
        let hash = crate::store::staff::DUMMY_HASH.to_string();
        let checks: Vec<_> = (0..6)
            .map(|_| {
                let (p, h) = (pool.clone(), hash.clone());
                tokio::spawn(async move { p.check(h, "000000".into()).await })
            })
            .collect();
        let mut busy = 0;
        let mut checked = 0;
        for c in checks {
            match c.await.unwrap() {
                Ok(matched) => {
                    assert!(!matched);
                    checked += 1;
                }
                Err(Turned::Busy) => busy += 1,
                Err(other) => panic!("{other:?}"),
            }
        }
        assert!(checked >= 1 && busy >= 1, "checked {checked}, busy {busy}");
        assert_eq!(pool.waiting(), 0);
    }
}
