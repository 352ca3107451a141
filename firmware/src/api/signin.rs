//! Sign-in under a flood: the PIN hashing runs on a small fixed pool with a bounded
//! queue (beyond it the answer is 503 with `Retry-After`, never more memory or threads),
//! sign-in attempts are throttled per client address and per staff id with a doubling
//! back-off (an unknown id is counted exactly like a known one), and failures are
//! counted and summarised into one `sign_in_failures` event per source per minute.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use serde_json::json;

use crate::core::{HallCore, wall_now};
use crate::store::NewEvent;

/// Hashes that run at once (each Argon2 check takes 7 MiB and one core).
pub const HASH_WORKERS: usize = 2;
/// Sign-ins that may wait for a hashing worker; more get 503.
pub const HASH_QUEUE: usize = 8;
/// Failures from one address, or for one id, before the back-off starts.
pub const FREE_FAILURES: u32 = 5;
/// The longest back-off for a client address.
pub const MAX_ADDRESS_BACKOFF: Duration = Duration::from_secs(300);
/// The longest back-off for a staff id (short: an id can be attacked from anywhere,
/// so its back-off only slows guessing and never keeps its owner out for long).
pub const MAX_ID_BACKOFF: Duration = Duration::from_secs(30);
/// Summaries of failures per source are at most this often.
pub const SUMMARY_EVERY: Duration = Duration::from_secs(60);
/// Entries kept per throttle table; beyond it the stalest are forgotten.
const TABLE_CAP: usize = 4096;

type Job = Box<dyn FnOnce() + Send>;

/// A fixed pool of hashing threads with a bounded queue.
pub struct HashPool {
    tx: SyncSender<Job>,
}

/// The pool is full: come back after this many seconds.
#[derive(Debug)]
pub struct Busy;

impl HashPool {
    /// Starts `workers` threads taking jobs from a queue of `queue`.
    pub fn new(workers: usize, queue: usize) -> HashPool {
        let (tx, rx) = sync_channel::<Job>(queue);
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..workers {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("pin-hash-{i}"))
                .spawn(move || {
                    loop {
                        let job = {
                            let guard = rx.lock().unwrap_or_else(|p| p.into_inner());
                            guard.recv()
                        };
                        match job {
                            Ok(job) => job(),
                            Err(_) => return,
                        }
                    }
                });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "could not start a PIN hashing thread");
            }
        }
        HashPool { tx }
    }

    /// Runs `f` on the pool, or says it is busy without queueing it.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Busy> {
        let (done, wait) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = done.send(f());
        });
        match self.tx.try_send(job) {
            Ok(()) => wait.await.map_err(|_| Busy),
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => Err(Busy),
        }
    }
}

#[derive(Clone, Copy)]
struct Backoff {
    failures: u32,
    until: Instant,
    last: Instant,
}

/// Failures per key with a doubling back-off after [`FREE_FAILURES`].
struct Table<K> {
    map: HashMap<K, Backoff>,
    max: Duration,
}

impl<K: std::hash::Hash + Eq + Clone> Table<K> {
    fn new(max: Duration) -> Table<K> {
        Table {
            map: HashMap::new(),
            max,
        }
    }

    /// How long `k` must still wait, if at all.
    fn wait(&self, k: &K, now: Instant) -> Option<Duration> {
        self.map
            .get(k)
            .and_then(|b| b.until.checked_duration_since(now))
            .filter(|d| !d.is_zero())
    }

    fn fail(&mut self, k: &K, now: Instant) {
        if self.map.len() >= TABLE_CAP && !self.map.contains_key(k) {
            let max = self.max;
            self.map
                .retain(|_, b| now.duration_since(b.last) < max * 4 || b.until > now);
            if self.map.len() >= TABLE_CAP
                && let Some(oldest) = self
                    .map
                    .iter()
                    .min_by_key(|(_, b)| b.last)
                    .map(|(k, _)| k.clone())
            {
                self.map.remove(&oldest);
            }
        }
        let b = self.map.entry(k.clone()).or_insert(Backoff {
            failures: 0,
            until: now,
            last: now,
        });
        // A quiet spell as long as the longest back-off starts the count afresh.
        if now.duration_since(b.last) > self.max * 4 {
            b.failures = 0;
        }
        b.failures = b.failures.saturating_add(1);
        b.last = now;
        if b.failures > FREE_FAILURES {
            let exp = (b.failures - FREE_FAILURES - 1).min(16);
            let wait = Duration::from_secs(1u64 << exp).min(self.max);
            b.until = now + wait;
        }
    }

    fn forget(&mut self, k: &K) {
        self.map.remove(k);
    }
}

#[derive(Default)]
struct Pending {
    failures: u64,
    throttled: u64,
    since: i64,
    last_sent: Option<Instant>,
}

struct Inner {
    addresses: Table<IpAddr>,
    ids: Table<String>,
    pending: HashMap<String, Pending>,
}

/// Everything sign-in shares: the hashing pool, the throttles, the failure summaries.
pub struct Guard {
    /// The hashing pool.
    pub pool: HashPool,
    inner: Mutex<Inner>,
    failed: std::sync::atomic::AtomicU64,
    throttled: std::sync::atomic::AtomicU64,
    busy: std::sync::atomic::AtomicU64,
}

impl Default for Guard {
    fn default() -> Self {
        Guard::new()
    }
}

/// Why a sign-in was not even tried.
pub enum Refusal {
    /// Too many failures lately from this address or for this id.
    Throttled(Duration),
}

impl Guard {
    /// A guard with the default pool and limits.
    pub fn new() -> Guard {
        Guard {
            pool: HashPool::new(HASH_WORKERS, HASH_QUEUE),
            inner: Mutex::new(Inner {
                addresses: Table::new(MAX_ADDRESS_BACKOFF),
                ids: Table::new(MAX_ID_BACKOFF),
                pending: HashMap::new(),
            }),
            failed: Default::default(),
            throttled: Default::default(),
            busy: Default::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether `source` may try `id` now (the same answer for known and unknown ids).
    pub fn admit(&self, source: Option<IpAddr>, id: &str) -> Result<(), Refusal> {
        let now = Instant::now();
        let inner = self.lock();
        let by_address = source.and_then(|a| inner.addresses.wait(&a, now));
        let by_id = inner.ids.wait(&id.to_string(), now);
        match by_address.max(by_id) {
            Some(d) => Err(Refusal::Throttled(d)),
            None => Ok(()),
        }
    }

    /// Counts a failed attempt (wrong PIN, unknown id, locked, wrong window alike).
    pub fn failed(&self, source: Option<IpAddr>, id: &str) {
        self.failed
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let now = Instant::now();
        let mut inner = self.lock();
        if let Some(a) = source {
            inner.addresses.fail(&a, now);
        }
        inner.ids.fail(&id.to_string(), now);
        Self::pend(&mut inner, source, |p| p.failures += 1);
    }

    /// Counts an attempt refused by the throttle.
    pub fn throttled(&self, source: Option<IpAddr>) {
        self.throttled
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Self::pend(&mut self.lock(), source, |p| p.throttled += 1);
    }

    /// Counts an attempt refused because the hashing pool was full.
    pub fn busy(&self, source: Option<IpAddr>) {
        self.busy.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Self::pend(&mut self.lock(), source, |p| p.throttled += 1);
    }

    /// A right PIN: the address and id start afresh.
    pub fn succeeded(&self, source: Option<IpAddr>, id: &str) {
        let mut inner = self.lock();
        if let Some(a) = source {
            inner.addresses.forget(&a);
        }
        inner.ids.forget(&id.to_string());
    }

    fn pend(inner: &mut Inner, source: Option<IpAddr>, f: impl FnOnce(&mut Pending)) {
        let key = source.map_or_else(|| "unknown".to_string(), |a| a.to_string());
        if inner.pending.len() >= TABLE_CAP && !inner.pending.contains_key(&key) {
            // Too many sources at once: they share one summary.
            return Self::pend_key(inner, "many".to_string(), f);
        }
        Self::pend_key(inner, key, f)
    }

    fn pend_key(inner: &mut Inner, key: String, f: impl FnOnce(&mut Pending)) {
        let p = inner.pending.entry(key).or_default();
        if p.failures == 0 && p.throttled == 0 {
            p.since = wall_now().0;
        }
        f(p);
    }

    /// The summaries due now: a source with something pending and no summary in the
    /// last [`SUMMARY_EVERY`].
    pub fn due(&self) -> Vec<NewEvent> {
        let now = Instant::now();
        let at = wall_now();
        let mut inner = self.lock();
        let mut out = Vec::new();
        inner.pending.retain(|source, p| {
            let quiet = p
                .last_sent
                .is_none_or(|t| now.duration_since(t) >= SUMMARY_EVERY);
            if p.failures + p.throttled > 0 && quiet {
                let payload = json!({
                    "type": "sign_in_failures",
                    "source": source,
                    "failures": p.failures,
                    "throttled": p.throttled,
                    "since": p.since,
                });
                if let Ok(ev) = NewEvent::encode(at, "sign_in_failures", &payload) {
                    out.push(ev);
                }
                p.failures = 0;
                p.throttled = 0;
                p.last_sent = Some(now);
            }
            // A source quiet for a whole period is forgotten.
            p.failures + p.throttled > 0
                || p.last_sent
                    .is_some_and(|t| now.duration_since(t) < SUMMARY_EVERY)
        });
        out
    }

    /// Commits the summaries that are due.
    pub async fn flush(&self, hall: &HallCore) {
        let due = self.due();
        if !due.is_empty()
            && let Err(e) = hall.append(due).await
        {
            tracing::warn!(error = %e, "could not store the sign-in failure summary");
        }
    }

    /// The counters for `/metrics`.
    pub fn gauges(&self) -> String {
        use std::sync::atomic::Ordering::Relaxed;
        format!(
            "# HELP hallq_sign_in_failures_total Sign-ins refused for a wrong PIN, an unknown or locked id or a wrong window.\n\
             # TYPE hallq_sign_in_failures_total counter\n\
             hallq_sign_in_failures_total {}\n\
             # HELP hallq_sign_in_throttled_total Sign-ins refused unheard by the per-address or per-id back-off.\n\
             # TYPE hallq_sign_in_throttled_total counter\n\
             hallq_sign_in_throttled_total {}\n\
             # HELP hallq_sign_in_busy_total Sign-ins refused because the PIN hashing queue was full.\n\
             # TYPE hallq_sign_in_busy_total counter\n\
             hallq_sign_in_busy_total {}\n",
            self.failed.load(Relaxed),
            self.throttled.load(Relaxed),
            self.busy.load(Relaxed),
        )
    }
}

/// Every second: commits the failure summaries that are due (each source at most once
/// per [`SUMMARY_EVERY`]).
pub async fn summarise(guard: Arc<Guard>, hall: HallCore) {
    let mut every = tokio::time::interval(Duration::from_secs(1));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        guard.flush(&hall).await;
    }
}

/// The client address of a request (IPv4-mapped IPv6 as IPv4), when known.
pub struct Source(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for Source {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Source(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip().to_canonical()),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_back_off_starts_after_the_free_failures_and_doubles() {
        let mut t: Table<String> = Table::new(Duration::from_secs(30));
        let now = Instant::now();
        let k = "S001".to_string();
        for _ in 0..FREE_FAILURES {
            t.fail(&k, now);
        }
        assert!(t.wait(&k, now).is_none());
        t.fail(&k, now);
        assert_eq!(t.wait(&k, now), Some(Duration::from_secs(1)));
        t.fail(&k, now);
        assert_eq!(t.wait(&k, now), Some(Duration::from_secs(2)));
        for _ in 0..20 {
            t.fail(&k, now);
        }
        assert_eq!(t.wait(&k, now), Some(Duration::from_secs(30)));
        t.forget(&k);
        assert!(t.wait(&k, now).is_none());
    }

    #[test]
    fn a_table_stays_bounded() {
        let mut t: Table<String> = Table::new(Duration::from_secs(30));
        let now = Instant::now();
        for i in 0..(TABLE_CAP + 100) {
            t.fail(&format!("id{i}"), now);
        }
        assert!(t.map.len() <= TABLE_CAP);
    }

    #[tokio::test]
    async fn a_full_pool_says_busy_instead_of_queueing() {
        let pool = Arc::new(HashPool::new(1, 1));
        let (hold, held) = std::sync::mpsc::channel::<()>();
        let held = Arc::new(Mutex::new(held));
        let blocker = |h: Arc<Mutex<std::sync::mpsc::Receiver<()>>>| {
            move || {
                let _ = h.lock().map(|r| r.recv());
            }
        };
        let (p, h) = (pool.clone(), held.clone());
        let running = tokio::spawn(async move { p.run(blocker(h)).await.is_ok() });
        tokio::time::sleep(Duration::from_millis(100)).await;
        let (p, h) = (pool.clone(), held.clone());
        let queued = tokio::spawn(async move { p.run(blocker(h)).await.is_ok() });
        tokio::time::sleep(Duration::from_millis(100)).await;
        // One running, one queued: the third is refused at once.
        assert!(pool.run(|| ()).await.is_err());
        hold.send(()).unwrap();
        hold.send(()).unwrap();
        assert!(running.await.unwrap());
        assert!(queued.await.unwrap());
    }
}
