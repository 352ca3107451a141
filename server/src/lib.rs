//! `hallq-server`: the hall server of a county. Every hallq controller of the county
//! publishes its events to one MQTT broker; the instances of this server take them
//! through a shared subscription, store each exactly once by event id in PostgreSQL,
//! find gaps by sequence and ask the controllers to send again what went missing.
//!
//! # Layout
//! - [`config`]: `hallq-server.toml` (broker, database, ingest, regions, halls).
//! - [`db`]: the PostgreSQL schema and the one transaction per batch.
//! - [`partitions`]: the months of `events`, made ahead, listed, dropped.
//! - [`ingest`]: the MQTT 5 session, batches, acknowledgement after commit.
//! - [`repair`]: gaps by seq, and the `resend` command to their controller.
//! - [`metrics`]: the instance's counters for `/metrics`.
//! - [`halls`]: each hall's live figures, rolled up the region tree.
//! - [`auth`]: accounts with a role over a region, Argon2id, lockout, sessions, audit.
//! - [`sms`]: the near-turn text messages to the SMS provider's webhook.
//! - [`export`]: the daily 好差评 files in the provincial platform's shape.
//! - [`rollup`]: the period figures per hall and day, kept by the ingest's transaction.
//! - [`period`]: the period view and appraisal across halls and per region.
//! - [`push`]: commands and queue setups sent down to halls, with who and the answers.
//! - [`follow_ups`]: the 好差评 follow-ups of every hall, open and overdue, and those of
//!   a period's bad ratings.
//! - [`http`]: health, metrics, sign-in, the halls, regions, the period view, follow-ups, the ingest's JSON, the export.
//! - [`phone`]: the citizen's ticket page (`/t/{token}`) from the events.
//! - [`pages`]: the county dashboard (电子监察), three languages, embedded.

pub mod auth;
pub mod config;
pub mod db;
pub mod export;
pub mod follow_ups;
pub mod halls;
pub mod http;
pub mod ingest;
pub mod metrics;
pub mod pages;
pub mod partitions;
pub mod period;
pub mod phone;
pub mod push;
pub mod repair;
pub mod rollup;
pub mod sms;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::config::ServerConfig;

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Runs an instance until `shutdown` resolves: migrates the schema, makes the months of
/// `events` ahead (and every day after), starts the ingest,
/// the gap repair, the SMS sender (with `[sms]`), the daily 好差评 export (with
/// `[export] dir`) and the web listener. `ready` is called once the listener is bound.
pub async fn serve(
    config: ServerConfig,
    ready: impl FnOnce(std::net::SocketAddr),
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let url = config.database.url.clone();
    let mut db = db::connect(&url, Duration::from_secs(60)).await?;
    let applied = db::migrate(&mut db).await?;
    if applied > 0 {
        tracing::info!("database schema: {applied} step(s) applied");
    }
    let months = Arc::new(partitions::Months::default());
    partitions::keep(&mut db, config.database.months_ahead, &months).await;
    let metrics = Arc::new(metrics::Metrics::default());
    // Connected and migrated: up until a batch says otherwise.
    metrics.set_db(true);
    let (stop_tx, stop_rx) = watch::channel(false);
    let sms_wake = config
        .sms
        .as_ref()
        .map(|_| Arc::new(tokio::sync::Notify::new()));
    let (client, mut tasks) = ingest::start(
        &config.broker,
        &config.server.name,
        config.server.clock(),
        &config.ingest,
        db,
        url.clone(),
        metrics.clone(),
        sms_wake.clone(),
        months.clone(),
        stop_rx.clone(),
    )?;
    if let (Some(sms), Some(wake)) = (&config.sms, sms_wake) {
        let sender = sms::Sender {
            config: sms.clone(),
            instance: config.server.name.clone(),
            db_url: url.clone(),
            metrics: metrics.clone(),
            wake,
        };
        tasks.push(tokio::spawn(sender.run(stop_rx.clone())));
    }
    let export = config.export_settings();
    if let Some(dir) = export.dir.clone() {
        tasks.push(tokio::spawn(export::run_daily(
            export.clone(),
            dir,
            url.clone(),
            config.server.name.clone(),
            stop_rx.clone(),
        )));
    }
    tasks.push(tokio::spawn(partitions::keeper(
        url.clone(),
        config.database.months_ahead,
        months,
        stop_rx.clone(),
    )));
    let repair = repair::Repair {
        prefix: config.broker.topic_prefix.clone(),
        after: Duration::from_secs(config.ingest.repair_after_secs),
        every: Duration::from_secs(config.ingest.repair_every_secs.max(1)),
    };
    let pusher = push::Pusher {
        client: client.clone(),
        prefix: config.broker.topic_prefix.clone(),
    };
    tasks.push(tokio::spawn(repair::run(
        repair,
        url.clone(),
        client,
        metrics.clone(),
        stop_rx.clone(),
    )));
    let web = http::Web::new(
        config.server.name.clone(),
        metrics,
        url,
        config.regions.clone(),
        config.halls.clone(),
        config.auth.clone(),
        export,
        pusher,
        config.server.clock(),
    );
    let listener = tokio::net::TcpListener::bind(config.http.listen).await?;
    ready(listener.local_addr()?);
    let mut web_stop = stop_rx.clone();
    let served = axum::serve(
        listener,
        http::router(web).into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        let _ = web_stop.changed().await;
    });
    let web_task = tokio::spawn(async move {
        if let Err(e) = served.await {
            tracing::warn!("web listener: {e}");
        }
    });
    shutdown.await;
    let _ = stop_tx.send(true);
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
    }
    let _ = web_task.await;
    Ok(())
}
