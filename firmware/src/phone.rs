//! The citizen's phone: the `[phone]` section, the address the ticket's QR code
//! carries, and the guard in front of the status page (`/t/{token}`, served by
//! `api::phone`).
//!
//! A ticket's token is the secret its citizen holds (128 random bits from the OS, see
//! `api::queue`); the controller keeps only its SHA-256. The page finds the ticket by
//! hashing the token it is given, so neither the database nor an event ever holds a
//! usable link. The guard counts requests per client address and refuses, with a wait,
//! an address that asks too fast or tries too many unknown tokens (someone guessing).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::Deserialize;

/// `[phone]`: how citizens' phones reach the status page.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PhoneConfig {
    /// The address phones reach the controller (or the hall server relaying) at, e.g.
    /// `http://192.168.50.2:8080` on the hall's guest Wi-Fi. The QR encodes
    /// `{base_url}/t/{token}`; without it the QR keeps the printer's own content.
    #[serde(default)]
    pub base_url: Option<String>,
    /// Offer the near-turn text message at the kiosk. Unset: offered when an `[uplink]`
    /// is configured (the message goes through the hall server's SMS gateway); `true`
    /// without an uplink is a configuration error.
    #[serde(default)]
    pub notify: Option<bool>,
    /// The notice goes when this many people or fewer are ahead (default 3).
    #[serde(default = "default_notify_ahead")]
    pub notify_ahead: u32,
    /// … or when the estimated wait falls to this many minutes (default 10; 0: only
    /// `notify_ahead` counts).
    #[serde(default = "default_notify_minutes")]
    pub notify_minutes: u32,
}

impl Default for PhoneConfig {
    fn default() -> PhoneConfig {
        PhoneConfig {
            base_url: None,
            notify: None,
            notify_ahead: default_notify_ahead(),
            notify_minutes: default_notify_minutes(),
        }
    }
}

/// People ahead when the near-turn notice goes, unless `[phone] notify_ahead` says.
pub const DEFAULT_NOTIFY_AHEAD: u32 = 3;

fn default_notify_ahead() -> u32 {
    DEFAULT_NOTIFY_AHEAD
}

fn default_notify_minutes() -> u32 {
    10
}

/// When a near-turn notice goes: the core's part of `[phone]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct NearTurnPolicy {
    /// At most this many people ahead.
    pub ahead: u32,
    /// Or an estimated wait of at most this many minutes (`None`: not by time).
    pub minutes: Option<u32>,
}

impl NearTurnPolicy {
    /// Whether a ticket with `ahead` people before it and an estimate of `minutes` is
    /// near its turn.
    pub fn is_near(&self, ahead: u32, minutes: u32) -> bool {
        ahead <= self.ahead || self.minutes.is_some_and(|m| minutes <= m)
    }
}

impl PhoneConfig {
    /// Checks the section: `(key, message)` for the first mistake.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if self.notify_ahead > 50 {
            return Err((
                "phone.notify_ahead",
                "must be at most 50 (people ahead when the notice goes)".into(),
            ));
        }
        if self.notify_minutes > 240 {
            return Err((
                "phone.notify_minutes",
                "must be at most 240 (minutes of estimated wait; 0 turns it off)".into(),
            ));
        }
        let Some(url) = &self.base_url else {
            return Ok(());
        };
        let bad = |m: &str| Err(("phone.base_url", m.to_string()));
        let rest = url
            .strip_prefix("https://")
            .or_else(|| url.strip_prefix("http://"));
        let Some(rest) = rest else {
            return bad("must start with http:// or https://");
        };
        let host = rest.split('/').next().unwrap_or("");
        if host.is_empty() {
            return bad("names no host (http://HOST[:PORT][/PATH])");
        }
        if url.len() > 200 {
            return bad("is longer than 200 characters: the QR code would not fit the paper");
        }
        if !url
            .chars()
            .all(|c| c.is_ascii_graphic() && !"?#\"<>\\^`{|}".contains(c))
        {
            return bad(
                "may hold no spaces, quotes, query (?) or fragment (#): the page's path is added to it",
            );
        }
        Ok(())
    }

    /// The near-turn policy, when the hall offers the notice (`uplink`: one is
    /// configured).
    pub fn near_turn(&self, uplink: bool) -> Option<NearTurnPolicy> {
        self.notify.unwrap_or(uplink).then_some(NearTurnPolicy {
            ahead: self.notify_ahead,
            minutes: (self.notify_minutes > 0).then_some(self.notify_minutes),
        })
    }

    /// The page of the ticket whose token is `token`, when the hall set `base_url`.
    pub fn page_url(&self, token: &str) -> Option<String> {
        let base = self.base_url.as_deref()?.trim_end_matches('/');
        Some(format!("{base}/t/{token}"))
    }
}

/// Requests one address may make at once (a page, its stream and reconnects).
const BURST: f64 = 60.0;
/// Requests per second an address earns back.
const REFILL_PER_SEC: f64 = 1.0;
/// Unknown or expired tokens one address may present before it must wait.
const PROBE_BURST: f64 = 10.0;
/// Unknown tokens per second an address earns back (one a minute).
const PROBE_REFILL_PER_SEC: f64 = 1.0 / 60.0;
/// Addresses remembered before the idle ones are forgotten.
const SWEEP_ABOVE: usize = 10_000;

/// A token bucket: `level` tokens at `at`.
#[derive(Clone, Copy)]
struct Bucket {
    level: f64,
    at: Instant,
}

impl Bucket {
    fn full(cap: f64, now: Instant) -> Bucket {
        Bucket {
            level: cap,
            at: now,
        }
    }

    fn refill(&mut self, cap: f64, rate: f64, now: Instant) {
        let secs = now.saturating_duration_since(self.at).as_secs_f64();
        self.level = (self.level + secs * rate).min(cap);
        self.at = now;
    }

    /// How long until one token is there (zero when there is one now).
    fn wait(&self, rate: f64) -> Duration {
        if self.level >= 1.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64((1.0 - self.level) / rate)
        }
    }
}

#[derive(Default)]
struct Inner {
    requests: HashMap<IpAddr, Bucket>,
    probes: HashMap<IpAddr, Bucket>,
    unknown: u64,
    limited: u64,
    pages: u64,
}

/// The guard in front of `/t/…`: per-address request and probe budgets, and the
/// counters `/metrics` shows. Cheap to clone; one per daemon.
#[derive(Clone, Default)]
pub struct PhoneGuard(Arc<Mutex<Inner>>);

impl PhoneGuard {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes one request from `ip`'s budget; `Err(wait)` when the address has spent it,
    /// or its unknown-token budget, and must wait that long. A request without a socket
    /// (the router driven directly) is not counted.
    pub fn admit(&self, ip: Option<IpAddr>, now: Instant) -> Result<(), Duration> {
        let Some(ip) = ip else {
            return Ok(());
        };
        let mut m = self.lock();
        if m.requests.len() > SWEEP_ABOVE {
            let idle = Duration::from_secs_f64(BURST / REFILL_PER_SEC);
            m.requests
                .retain(|_, b| now.saturating_duration_since(b.at) < idle);
            let idle = Duration::from_secs_f64(PROBE_BURST / PROBE_REFILL_PER_SEC);
            m.probes
                .retain(|_, b| now.saturating_duration_since(b.at) < idle);
        }
        if let Some(p) = m.probes.get_mut(&ip) {
            p.refill(PROBE_BURST, PROBE_REFILL_PER_SEC, now);
            let wait = p.wait(PROBE_REFILL_PER_SEC);
            if !wait.is_zero() {
                m.limited += 1;
                return Err(wait);
            }
        }
        let b = m
            .requests
            .entry(ip)
            .or_insert_with(|| Bucket::full(BURST, now));
        b.refill(BURST, REFILL_PER_SEC, now);
        let wait = b.wait(REFILL_PER_SEC);
        if !wait.is_zero() {
            m.limited += 1;
            return Err(wait);
        }
        b.level -= 1.0;
        Ok(())
    }

    /// An unknown or expired token came from `ip`: counted, and taken from the
    /// address's probe budget.
    pub fn unknown(&self, ip: Option<IpAddr>, now: Instant) {
        let mut m = self.lock();
        m.unknown += 1;
        if let Some(ip) = ip {
            let p = m
                .probes
                .entry(ip)
                .or_insert_with(|| Bucket::full(PROBE_BURST, now));
            p.refill(PROBE_BURST, PROBE_REFILL_PER_SEC, now);
            p.level -= 1.0;
        }
    }

    /// A page or stream was served for a known token.
    pub fn served(&self) {
        self.lock().pages += 1;
    }

    /// The counters in Prometheus's text format.
    pub fn render_metrics(&self, out: &mut String) {
        use std::fmt::Write as _;
        let m = self.lock();
        out.push_str("# HELP hallq_phone_pages_total Ticket status pages and streams served for a known token.\n# TYPE hallq_phone_pages_total counter\n");
        let _ = writeln!(out, "hallq_phone_pages_total {}", m.pages);
        out.push_str("# HELP hallq_phone_unknown_tokens_total Requests for the ticket status page with an unknown or expired token (probing shows here).\n# TYPE hallq_phone_unknown_tokens_total counter\n");
        let _ = writeln!(out, "hallq_phone_unknown_tokens_total {}", m.unknown);
        out.push_str("# HELP hallq_phone_rate_limited_total Ticket status page requests refused with 429 (too fast, or too many unknown tokens).\n# TYPE hallq_phone_rate_limited_total counter\n");
        let _ = writeln!(out, "hallq_phone_rate_limited_total {}", m.limited);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn the_page_url_joins_the_base_and_the_token_once() {
        let c = PhoneConfig {
            base_url: Some("https://hall.example/q/".into()),
            ..PhoneConfig::default()
        };
        assert_eq!(
            c.page_url("ab12").as_deref(),
            Some("https://hall.example/q/t/ab12")
        );
        assert_eq!(PhoneConfig::default().page_url("ab12"), None);
    }

    #[test]
    fn a_base_url_without_scheme_or_with_a_query_is_refused() {
        for bad in [
            "hall.example",
            "ftp://x",
            "http://",
            "http://x/?a=1",
            "http://a b",
        ] {
            let c = PhoneConfig {
                base_url: Some(bad.into()),
                ..PhoneConfig::default()
            };
            assert_eq!(c.check().unwrap_err().0, "phone.base_url", "{bad}");
        }
        let good = PhoneConfig {
            base_url: Some("http://192.168.50.2:8080".into()),
            ..PhoneConfig::default()
        };
        assert!(good.check().is_ok());
    }

    #[test]
    fn the_notice_is_offered_with_an_uplink_unless_turned_off_and_goes_by_people_or_minutes() {
        let c = PhoneConfig::default();
        assert_eq!(c.near_turn(false), None);
        let p = c.near_turn(true).expect("offered with an uplink");
        assert_eq!((p.ahead, p.minutes), (3, Some(10)));
        assert!(p.is_near(3, 40) && p.is_near(9, 10) && !p.is_near(4, 11));
        let off = PhoneConfig {
            notify: Some(false),
            ..PhoneConfig::default()
        };
        assert_eq!(off.near_turn(true), None);
        let by_people = PhoneConfig {
            notify_minutes: 0,
            ..PhoneConfig::default()
        };
        assert!(!by_people.near_turn(true).unwrap().is_near(4, 0));
        let far = PhoneConfig {
            notify_ahead: 51,
            ..PhoneConfig::default()
        };
        assert_eq!(far.check().unwrap_err().0, "phone.notify_ahead");
    }

    #[test]
    fn an_address_that_asks_too_fast_waits_and_others_do_not() {
        let g = PhoneGuard::default();
        let now = Instant::now();
        for _ in 0..BURST as usize {
            g.admit(ip("10.0.0.1"), now).unwrap();
        }
        let wait = g.admit(ip("10.0.0.1"), now).unwrap_err();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(1),
            "{wait:?}"
        );
        assert!(g.admit(ip("10.0.0.2"), now).is_ok());
        assert!(
            g.admit(ip("10.0.0.1"), now + Duration::from_secs(2))
                .is_ok()
        );
    }

    #[test]
    fn too_many_unknown_tokens_shut_an_address_out_for_a_while() {
        let g = PhoneGuard::default();
        let now = Instant::now();
        for _ in 0..PROBE_BURST as usize {
            g.admit(ip("10.0.0.1"), now).unwrap();
            g.unknown(ip("10.0.0.1"), now);
        }
        let wait = g.admit(ip("10.0.0.1"), now).unwrap_err();
        assert!(wait >= Duration::from_secs(50), "{wait:?}");
        assert!(g.admit(ip("10.0.0.2"), now).is_ok());
        let mut out = String::new();
        g.render_metrics(&mut out);
        assert!(out.contains("hallq_phone_unknown_tokens_total 10"), "{out}");
        assert!(out.contains("hallq_phone_rate_limited_total 1"), "{out}");
    }
}
