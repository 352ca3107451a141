//! What an instance counts, for `/metrics` (Prometheus text format).

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crate::db::{Row, Stored};

/// How many recent lags the percentiles are taken over.
const LAGS: usize = 20_000;

/// The instance's counters.
#[derive(Default)]
pub struct Metrics {
    stored: AtomicU64,
    duplicates: AtomicU64,
    conflicts: AtomicU64,
    rejected: AtomicU64,
    batches: AtomicU64,
    batch_micros: AtomicU64,
    resends: AtomicU64,
    open_gaps: AtomicU64,
    mqtt_up: AtomicBool,
    db_up: AtomicBool,
    lags: Mutex<VecDeque<i64>>,
    sms_received: AtomicU64,
    sms_duplicates: AtomicU64,
    sms_posted: AtomicU64,
    sms_retries: AtomicU64,
    sms_expired: AtomicU64,
    sms_pending: AtomicU64,
}

impl Metrics {
    /// A batch was stored at `at` (ms).
    pub fn stored(&self, s: &Stored, rows: &[Row], at: i64, took: Duration) {
        self.stored.fetch_add(s.inserted, Ordering::Relaxed);
        self.duplicates.fetch_add(s.duplicates, Ordering::Relaxed);
        self.conflicts.fetch_add(s.conflicts, Ordering::Relaxed);
        self.sms_received.fetch_add(s.sms, Ordering::Relaxed);
        self.sms_duplicates
            .fetch_add(s.sms_duplicates, Ordering::Relaxed);
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.batch_micros
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
        if let Ok(mut lags) = self.lags.lock() {
            for r in rows {
                if lags.len() == LAGS {
                    lags.pop_front();
                }
                lags.push_back(at - r.at);
            }
        }
    }

    /// A text message was posted (answered 2xx).
    pub fn sms_posted(&self) {
        self.sms_posted.fetch_add(1, Ordering::Relaxed);
    }

    /// A POST of a text message failed and will be retried.
    pub fn sms_retry(&self) {
        self.sms_retries.fetch_add(1, Ordering::Relaxed);
    }

    /// Text messages dropped unposted, too old.
    pub fn sms_expired(&self, n: u64) {
        self.sms_expired.fetch_add(n, Ordering::Relaxed);
    }

    /// Text messages waiting to be posted (every instance's), at the last look.
    pub fn set_sms_pending(&self, n: u64) {
        self.sms_pending.store(n, Ordering::Relaxed);
    }

    /// A message could not be read.
    pub fn rejected(&self) {
        self.rejected.fetch_add(1, Ordering::Relaxed);
    }

    /// A resend was asked of a controller.
    pub fn resend_asked(&self) {
        self.resends.fetch_add(1, Ordering::Relaxed);
    }

    /// Controllers with a gap at the last look.
    pub fn set_open_gaps(&self, n: u64) {
        self.open_gaps.store(n, Ordering::Relaxed);
    }

    /// The broker connection is up or down.
    pub fn set_mqtt(&self, up: bool) {
        self.mqtt_up.store(up, Ordering::Relaxed);
    }

    /// PostgreSQL took the last batch, or did not.
    pub fn set_db(&self, up: bool) {
        self.db_up.store(up, Ordering::Relaxed);
    }

    /// Events stored by this instance.
    pub fn stored_total(&self) -> u64 {
        self.stored.load(Ordering::Relaxed)
    }

    /// The lag (event at the hall → row committed) at quantile `q`, over the recent
    /// events, in ms.
    pub fn lag_quantile(&self, q: f64) -> Option<i64> {
        let lags = self.lags.lock().ok()?;
        if lags.is_empty() {
            return None;
        }
        let mut v: Vec<i64> = lags.iter().copied().collect();
        v.sort_unstable();
        let i = ((v.len() as f64 - 1.0) * q).round() as usize;
        v.get(i).copied()
    }

    /// The Prometheus text.
    pub fn render(&self, instance: &str) -> String {
        let mut out = String::new();
        let l = format!("{{instance=\"{instance}\"}}");
        let mut line = |name: &str, kind: &str, help: &str, value: String| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name}{l} {value}"
            );
        };
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed).to_string();
        line(
            "hallq_server_events_stored_total",
            "counter",
            "Events stored in PostgreSQL by this instance.",
            get(&self.stored),
        );
        line(
            "hallq_server_events_duplicate_total",
            "counter",
            "Events received again and not stored twice.",
            get(&self.duplicates),
        );
        line(
            "hallq_server_events_conflict_total",
            "counter",
            "Events whose controller and seq were taken by another id, kept aside.",
            get(&self.conflicts),
        );
        line(
            "hallq_server_messages_rejected_total",
            "counter",
            "Messages that could not be read.",
            get(&self.rejected),
        );
        line(
            "hallq_server_batches_total",
            "counter",
            "Transactions that stored a batch.",
            get(&self.batches),
        );
        line(
            "hallq_server_batch_seconds_total",
            "counter",
            "Time spent storing batches.",
            format!(
                "{:.6}",
                self.batch_micros.load(Ordering::Relaxed) as f64 / 1e6
            ),
        );
        line(
            "hallq_server_resend_requests_total",
            "counter",
            "Resend commands sent to controllers for gaps.",
            get(&self.resends),
        );
        line(
            "hallq_server_open_gaps",
            "gauge",
            "Controllers with missing events at the last look.",
            get(&self.open_gaps),
        );
        line(
            "hallq_server_broker_up",
            "gauge",
            "1 while connected to the broker.",
            u8::from(self.mqtt_up.load(Ordering::Relaxed)).to_string(),
        );
        line(
            "hallq_server_database_up",
            "gauge",
            "1 while PostgreSQL takes batches.",
            u8::from(self.db_up.load(Ordering::Relaxed)).to_string(),
        );
        for (name, kind, help, value) in [
            (
                "hallq_server_sms_received_total",
                "counter",
                "Near-turn text messages stored by this instance.",
                &self.sms_received,
            ),
            (
                "hallq_server_sms_duplicate_total",
                "counter",
                "Text messages received again and not stored twice.",
                &self.sms_duplicates,
            ),
            (
                "hallq_server_sms_posted_total",
                "counter",
                "Text messages this instance posted to the webhook (answered 2xx).",
                &self.sms_posted,
            ),
            (
                "hallq_server_sms_retries_total",
                "counter",
                "Posts to the webhook that failed and are retried.",
                &self.sms_retries,
            ),
            (
                "hallq_server_sms_expired_total",
                "counter",
                "Text messages dropped unposted after sms.max_age_minutes.",
                &self.sms_expired,
            ),
            (
                "hallq_server_sms_pending",
                "gauge",
                "Text messages waiting to be posted, all instances.",
                &self.sms_pending,
            ),
        ] {
            line(name, kind, help, get(value));
        }
        for (q, name) in [(0.5, "p50"), (0.99, "p99")] {
            if let Some(v) = self.lag_quantile(q) {
                line(
                    &format!("hallq_server_lag_{name}_seconds"),
                    "gauge",
                    "Event at the hall to row committed, over the recent events.",
                    format!("{:.3}", v as f64 / 1000.0),
                );
            }
        }
        out
    }
}
