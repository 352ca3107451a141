//! Prometheus metrics (`GET /metrics`, text format 0.0.4): what a hall's IT team
//! scrapes to see the queue, the devices and the controller's own latency next to
//! their other machines.
//!
//! Three sources: counters fed by the committed-event broadcast (everything the hall
//! did since start), request latencies recorded by an axum middleware, and gauges read
//! from the engine and the device registry at scrape time (so they are never stale).
//! The format is small enough to write by hand, which keeps the exposition exactly
//! Prometheus's and adds no dependency.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use tokio::sync::broadcast;

use crate::events::Committed;
use crate::store::StoredEvent;
use hallq_engine::Event;

/// Latency buckets in seconds: a durable commit is sub-millisecond on a good disk and
/// tens of milliseconds on a slow SD card.
const LATENCY_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// Wait buckets in seconds: five minutes to two hours.
const WAIT_BUCKETS: [f64; 8] = [300.0, 600.0, 900.0, 1200.0, 1800.0, 2700.0, 3600.0, 7200.0];

/// A cumulative histogram with fixed buckets.
#[derive(Debug, Clone)]
struct Histogram {
    bounds: &'static [f64],
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            counts: vec![0; bounds.len()],
            sum: 0.0,
            count: 0,
        }
    }

    fn observe(&mut self, v: f64) {
        for (b, c) in self.bounds.iter().zip(&mut self.counts) {
            if v <= *b {
                *c += 1;
            }
        }
        self.sum += v;
        self.count += 1;
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (b, c) in self.bounds.iter().zip(&self.counts) {
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {c}");
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}",
            self.count
        );
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{braces} {}", self.sum);
        let _ = writeln!(out, "{name}_count{braces} {}", self.count);
    }
}

#[derive(Default)]
struct Inner {
    events: BTreeMap<String, u64>,
    waits: BTreeMap<String, Histogram>,
    ratings: BTreeMap<String, u64>,
    http: BTreeMap<(String, String, u16), Histogram>,
}

/// The controller's metrics; cheap to clone.
#[derive(Clone, Default)]
pub struct Metrics {
    inner: Arc<Mutex<Inner>>,
    started: Option<Instant>,
}

/// Escapes a label value (backslash, quote, newline).
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Metrics {
    /// Empty metrics, with the process start time for the uptime gauge.
    pub fn new() -> Metrics {
        Metrics {
            inner: Arc::default(),
            started: Some(Instant::now()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts one committed event.
    pub fn event(&self, e: &StoredEvent) {
        let mut m = self.lock();
        *m.events.entry(e.kind.clone()).or_default() += 1;
        match e.typed() {
            Committed::Engine(Event::TicketCalled {
                service,
                waited_secs,
                ..
            }) => {
                m.waits
                    .entry(service)
                    .or_insert_with(|| Histogram::new(&WAIT_BUCKETS))
                    .observe(waited_secs as f64);
            }
            Committed::Engine(Event::RatingRecorded { rating, .. }) => {
                *m.ratings
                    .entry(rating.level.name().to_string())
                    .or_default() += 1;
            }
            _ => {}
        }
    }

    /// Counts committed events as they happen, until the core stops.
    pub async fn follow(self, mut rx: broadcast::Receiver<Arc<StoredEvent>>) {
        loop {
            match rx.recv().await {
                Ok(e) => self.event(&e),
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    *self.lock().events.entry("_lagged".into()).or_default() += n;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    }

    /// Records one HTTP request's latency by route pattern (never by raw path, so ids
    /// do not explode the label set).
    pub fn request(&self, route: &str, method: &str, status: u16, secs: f64) {
        self.lock()
            .http
            .entry((route.to_string(), method.to_string(), status))
            .or_insert_with(|| Histogram::new(&LATENCY_BUCKETS))
            .observe(secs);
    }

    /// The exposition of everything counted, plus `gauges` (already formatted).
    pub fn render(&self, gauges: &str) -> String {
        let m = self.lock();
        let mut out = String::with_capacity(4096);
        out.push_str(gauges);
        if let Some(t) = self.started {
            out.push_str("# HELP hallq_uptime_seconds Seconds since the controller started.\n# TYPE hallq_uptime_seconds gauge\n");
            let _ = writeln!(out, "hallq_uptime_seconds {}", t.elapsed().as_secs_f64());
        }
        out.push_str("# HELP hallq_events_total Events committed since start, by type.\n# TYPE hallq_events_total counter\n");
        for (k, v) in &m.events {
            let _ = writeln!(out, "hallq_events_total{{type=\"{}\"}} {v}", label(k));
        }
        out.push_str("# HELP hallq_ratings_total Ratings recorded since start, by level.\n# TYPE hallq_ratings_total counter\n");
        for (k, v) in &m.ratings {
            let _ = writeln!(out, "hallq_ratings_total{{level=\"{}\"}} {v}", label(k));
        }
        out.push_str("# HELP hallq_wait_seconds Wait from issue to first call, by service.\n# TYPE hallq_wait_seconds histogram\n");
        for (service, h) in &m.waits {
            h.render(
                &mut out,
                "hallq_wait_seconds",
                &format!("service=\"{}\"", label(service)),
            );
        }
        out.push_str("# HELP hallq_http_request_duration_seconds Local API latency, by route, method and status.\n# TYPE hallq_http_request_duration_seconds histogram\n");
        for ((route, method, status), h) in &m.http {
            h.render(
                &mut out,
                "hallq_http_request_duration_seconds",
                &format!(
                    "route=\"{}\",method=\"{}\",status=\"{status}\"",
                    label(route),
                    label(method)
                ),
            );
        }
        out
    }
}

/// Middleware recording each request's latency in [`Metrics`].
pub async fn record(State(metrics): State<Metrics>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let method = req.method().as_str().to_string();
    let t = Instant::now();
    let resp = next.run(req).await;
    // A live stream stays open for hours; its duration is not a latency.
    if !route.ends_with("/stream") {
        metrics.request(
            &route,
            &method,
            resp.status().as_u16(),
            t.elapsed().as_secs_f64(),
        );
    }
    resp
}

/// Appends one gauge family to `out`.
pub fn gauge<'a>(
    out: &mut String,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (String, f64)> + 'a,
) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
    for (labels, v) in samples {
        if labels.is_empty() {
            let _ = writeln!(out, "{name} {v}");
        } else {
            let _ = writeln!(out, "{name}{{{labels}}} {v}");
        }
    }
}

/// Escapes a label value for callers building gauge labels.
pub fn label_value(v: &str) -> String {
    label(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative_and_labels_escaped() {
        let m = Metrics::default();
        m.request("/api/v1/tickets", "POST", 201, 0.0007);
        m.request("/api/v1/tickets", "POST", 201, 0.03);
        let text = m.render("");
        assert!(text.contains("hallq_http_request_duration_seconds_bucket{route=\"/api/v1/tickets\",method=\"POST\",status=\"201\",le=\"0.001\"} 1"));
        assert!(text.contains("le=\"0.05\"} 2"));
        assert!(text.contains("hallq_http_request_duration_seconds_count{route=\"/api/v1/tickets\",method=\"POST\",status=\"201\"} 2"));
        assert_eq!(label("a\"b\\c"), "a\\\"b\\\\c");
    }

    #[test]
    fn events_feed_counters_waits_and_ratings() {
        let m = Metrics::default();
        let ev = |kind: &str, payload: serde_json::Value| StoredEvent {
            seq: 1,
            id: "x".into(),
            at: 0,
            kind: kind.into(),
            schema: 1,
            payload,
        };
        m.event(&ev(
            "ticket_called",
            serde_json::json!({"type": "ticket_called", "ticket": 1, "number": "A001",
                "service": "SB", "class": "normal", "window": 1, "staff": "S1",
                "direct": false, "waited_secs": 400}),
        ));
        m.event(&ev(
            "rating_recorded",
            serde_json::json!({"type": "rating_recorded", "replaced": false, "rating": {
                "ticket": 1, "number": "A001", "level": "满意", "reasons": [], "comment": null,
                "reason_pending": false, "channel": "kiosk", "service": "SB", "window": 1,
                "staff": "S1", "case_no": null, "at": 0}}),
        ));
        let text = m.render("");
        assert!(text.contains("hallq_events_total{type=\"ticket_called\"} 1"));
        assert!(text.contains("hallq_wait_seconds_bucket{service=\"SB\",le=\"300\"} 0"));
        assert!(text.contains("hallq_wait_seconds_bucket{service=\"SB\",le=\"600\"} 1"));
        assert!(text.contains("hallq_ratings_total{level=\"满意\"} 1"));
    }
}
