//! `GET /metrics`: the Prometheus exposition, with the queue's gauges read from the
//! engine at scrape time.

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

use super::{ApiError, AppState, Language};
use crate::devices::health::Health;
use crate::metrics::{gauge, label_value};

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/metrics", get(metrics))
}

// Over 100 lines: the exposition text, written family by family in the order it is read.
async fn metrics(
    State(s): State<AppState>,
    Language(lang): Language,
    server: crate::connections::ServerGauges,
) -> Result<impl IntoResponse, ApiError> {
    let (loads, windows, last_seq, notices) = s
        .hall
        .query(|e, store| {
            let windows: Vec<(u32, &'static str)> = e
                .windows()
                .values()
                .map(|w| {
                    let state = match (&w.staff, &w.paused, w.current) {
                        (None, _, _) => "unstaffed",
                        (Some(_), Some(_), _) => "paused",
                        (Some(_), None, Some(_)) => "serving",
                        (Some(_), None, None) => "idle",
                    };
                    (w.number, state)
                })
                .collect();
            let notices = crate::store::notices::counts(store.conn()).unwrap_or_default();
            (e.loads(), windows, store.last_seq().unwrap_or(0), notices)
        })
        .await
        .map_err(|e| ApiError::from_core(e, lang))?;
    let mut out = String::with_capacity(8192);
    let per_service = |f: &dyn Fn(&hallq_engine::ServiceLoad) -> f64| {
        loads
            .iter()
            .map(|l| (format!("service=\"{}\"", label_value(&l.code)), f(l)))
            .collect::<Vec<_>>()
    };
    gauge(
        &mut out,
        "hallq_waiting",
        "Citizens waiting, by service.",
        per_service(&|l| l.waiting as f64),
    );
    gauge(
        &mut out,
        "hallq_issued_today",
        "Tickets issued this service day, by service.",
        per_service(&|l| l.issued as f64),
    );
    gauge(
        &mut out,
        "hallq_longest_wait_seconds",
        "How long the longest-waiting citizen has waited, by service.",
        per_service(&|l| l.longest_wait_secs as f64),
    );
    gauge(
        &mut out,
        "hallq_notices_waiting",
        "Near-turn notices asked for whose turn is not near yet.",
        [(String::new(), notices.watched as f64)],
    );
    gauge(
        &mut out,
        "hallq_sms_outbox_messages",
        "Near-turn text messages waiting for the broker's acknowledgement.",
        [(String::new(), notices.outbox as f64)],
    );
    gauge(
        &mut out,
        "hallq_open_windows",
        "Windows staffed, not paused, serving the service.",
        per_service(&|l| l.open_windows as f64),
    );
    gauge(
        &mut out,
        "hallq_window_state",
        "1 for each window's current state (unstaffed, idle, serving, paused).",
        windows
            .iter()
            .map(|(n, st)| (format!("window=\"{n}\",state=\"{st}\""), 1.0)),
    );
    let devices = s.devices.snapshot();
    gauge(
        &mut out,
        "hallq_device_up",
        "1 when a device works (a warning still works), 0 on a fault.",
        devices.iter().map(|d| {
            (
                format!(
                    "device=\"{}\",code=\"{}\"",
                    label_value(&d.device),
                    label_value(d.health.code())
                ),
                if d.health.usable() { 1.0 } else { 0.0 },
            )
        }),
    );
    gauge(
        &mut out,
        "hallq_device_warning",
        "1 when a device raised a warning (paper near end).",
        devices.iter().map(|d| {
            (
                format!("device=\"{}\"", label_value(&d.device)),
                matches!(d.health, Health::Warning { .. }) as u8 as f64,
            )
        }),
    );
    if !s.printers.is_empty() {
        let stats: Vec<(String, crate::devices::printer::PrinterStats)> = s
            .printers
            .iter()
            .map(|p| (format!("printer=\"{}\"", label_value(p.name())), p.stats()))
            .collect();
        gauge(
            &mut out,
            "hallq_printer_jobs",
            "Print jobs since start, by printer and outcome.",
            stats.iter().flat_map(|(printer, st)| {
                [
                    ("printed", st.printed),
                    ("failed", st.failed),
                    ("stale", st.stale),
                ]
                .map(|(outcome, n)| (format!("{printer},outcome=\"{outcome}\""), n as f64))
            }),
        );
        gauge(
            &mut out,
            "hallq_printer_bytes",
            "Bytes written to each printer since start.",
            stats
                .iter()
                .map(|(printer, st)| (printer.clone(), st.bytes as f64)),
        );
        gauge(
            &mut out,
            "hallq_printer_queued",
            "Print jobs waiting for each printer now.",
            stats
                .iter()
                .map(|(printer, st)| (printer.clone(), st.queued as f64)),
        );
    }
    gauge(
        &mut out,
        "hallq_event_seq",
        "Sequence number of the newest stored event.",
        [(String::new(), last_seq as f64)],
    );
    let link = s.uplink.status();
    if link.enabled {
        uplink_gauges(&mut out, &s, &link).await;
    }
    commit_counters(&mut out, s.hall.commit_totals());
    server.write(&mut out);
    s.sign_in.render_metrics(&mut out);
    s.phone.render_metrics(&mut out);
    let body = s.metrics.render(&out);
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    ))
}

/// The group commit: transactions, the writers they answered (the mean batch is
/// their ratio), the time spent committing and holding batches for writers on their way.
fn commit_counters(out: &mut String, t: crate::core::CommitTotals) {
    use std::fmt::Write as _;
    for (name, help, v) in [
        (
            "hallq_commits_total",
            "Transactions of the group commit since start.",
            t.commits as f64,
        ),
        (
            "hallq_commit_writers_total",
            "Commands and appends those transactions answered.",
            t.writers as f64,
        ),
        (
            "hallq_commit_seconds_total",
            "Seconds spent running and committing batches.",
            t.commit_seconds,
        ),
        (
            "hallq_commit_gather_seconds_total",
            "Seconds batches were held back for writers on their way.",
            t.gather_seconds,
        ),
        (
            "hallq_commit_sync_seconds_total",
            "Seconds of hallq_commit_seconds_total spent ending transactions: their last writes and the sync that makes them durable.",
            t.sync_seconds,
        ),
    ] {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
        );
    }
}

/// The outbox and the link: how far the hall server is behind. The backlog is counted
/// on a read connection of its own in a blocking thread (WAL readers never hold up the
/// core's commits), so a scrape during a long offline spell costs the queue nothing.
async fn uplink_gauges(out: &mut String, s: &AppState, link: &crate::uplink::LinkStatus) {
    gauge(
        out,
        "hallq_uplink_connected",
        "1 while the uplink is connected to the hall server's broker.",
        [(String::new(), (link.state == "connected") as u8 as f64)],
    );
    gauge(
        out,
        "hallq_uplink_in_flight",
        "Events published whose acknowledgement has not come yet.",
        [(String::new(), link.in_flight as f64)],
    );
    let db = s.config.database();
    let backlog = tokio::task::spawn_blocking(move || {
        let conn = rusqlite::Connection::open_with_flags(
            db,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(std::time::Duration::from_secs(2))?;
        crate::store::uplink::backlog(&conn)
    })
    .await;
    match backlog {
        Ok(Ok(b)) => {
            gauge(
                out,
                "hallq_outbox_backlog_events",
                "Stored events the hall server has not acknowledged yet.",
                [(String::new(), b.undelivered as f64)],
            );
            let age = b
                .oldest_at
                .map(|at| ((crate::core::wall_now().0 - at).max(0) as f64) / 1000.0)
                .unwrap_or(0.0);
            gauge(
                out,
                "hallq_outbox_oldest_age_seconds",
                "Age of the oldest event not yet acknowledged (0 when none waits).",
                [(String::new(), age)],
            );
        }
        Ok(Err(e)) => tracing::warn!(error = %e, "metrics: outbox backlog unreadable"),
        Err(e) => tracing::warn!(error = %e, "metrics: outbox backlog task failed"),
    }
}
