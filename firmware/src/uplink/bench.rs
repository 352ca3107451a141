//! `hallq uplink bench`: how fast a backlog drains to a local mosquitto, and what the
//! outbox costs ticket issue (the same daemon and workload with the uplink on and
//! off, measured in the same run).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, Incoming, MqttOptions, QoS};
use tokio::sync::{Notify, broadcast, mpsc, watch};

use super::broker::{Broker, BrokerOptions};
use super::link::MqttLink;
use super::outbox::Outbox;
use super::settings::UplinkConfig;
use super::wire::{Origin, Topics};
use crate::bench::{BenchError, BenchResult, Daemon, write_config};
use crate::store::{NewEvent, Store};

/// Options of `hallq uplink bench`.
#[derive(Debug, Clone)]
pub struct UplinkBenchOptions {
    /// Working directory (databases, broker).
    pub dir: PathBuf,
    /// Events in the backlog.
    pub events: usize,
    /// Tickets issued per run for the cost comparison.
    pub requests: usize,
    /// Concurrent clients for the cost comparison.
    pub clients: usize,
}

/// An uplink section pointing at a local broker.
pub fn uplink_toml(port: u16) -> String {
    format!("\n[uplink]\nhost = \"127.0.0.1\"\nport = {port}\nhall_id = \"bench-hall\"\n")
}

fn settings(port: u16) -> UplinkConfig {
    toml::from_str(&format!(
        "host = \"127.0.0.1\"\nport = {port}\nhall_id = \"bench-hall\"\n"
    ))
    .expect("constant settings")
}

/// Fills a fresh database with `n` realistic undelivered events.
fn fill(path: &std::path::Path, n: usize) -> BenchResult<()> {
    let mut store = Store::open(path)?;
    let mut done = 0;
    while done < n {
        let batch: Vec<NewEvent> = (done..(done + 2000).min(n))
            .map(|i| NewEvent {
                at: hallq_engine::Timestamp(1_795_395_600_000 + i as i64),
                kind: "ticket_called".into(),
                payload: serde_json::json!({
                    "type": "ticket_called", "ticket": i + 1, "number": format!("A{:03}", i % 1000),
                    "service": "SB", "class": "normal", "window": 1 + i % 8, "staff": "S001",
                    "direct": false, "waited_secs": 300,
                })
                .to_string(),
            })
            .collect();
        done += batch.len();
        store.append(&batch)?;
    }
    Ok(())
}

/// Drains `n` buffered events to the broker; returns the time until every one was
/// acknowledged and marked, and the count a subscriber received.
async fn drain(dir: &std::path::Path, port: u16, n: usize) -> BenchResult<(Duration, usize)> {
    let db = dir.join("drain.db");
    let _ = std::fs::remove_file(&db);
    fill(&db, n)?;
    let topics = Topics::new("hallq", "bench-hall", "bench");
    // A subscriber, to be sure the events went through the broker.
    let received = Arc::new(AtomicUsize::new(0));
    let mut o = MqttOptions::new("bench-subscriber", "127.0.0.1", port);
    o.set_max_packet_size(1 << 20, 1 << 20);
    let (sub, mut sub_events) = AsyncClient::new(o, 64);
    sub.subscribe(topics.events.clone(), QoS::AtLeastOnce)
        .await?;
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let count = received.clone();
    let subscriber = tokio::spawn(async move {
        let mut ready = Some(ready_tx);
        while let Ok(ev) = sub_events.poll().await {
            match ev {
                Event::Incoming(Incoming::SubAck(_)) => {
                    if let Some(r) = ready.take() {
                        let _ = r.send(());
                    }
                }
                Event::Incoming(Incoming::Publish(_)) => {
                    count.fetch_add(1, Ordering::Relaxed);
                }
                _ => {}
            }
        }
    });
    let _ = tokio::time::timeout(Duration::from_secs(5), ready_rx).await;

    let shared = super::Shared::default();
    let (_wake_tx, wake) = broadcast::channel(16);
    let (_out_tx, outgoing) = mpsc::channel(16);
    let (inbound, _in_rx) = mpsc::channel(16);
    let (stop, stop_rx) = watch::channel(false);
    let link = MqttLink {
        cfg: settings(port),
        origin: Origin::new("bench", "bench-hall", 480),
        topics,
        outbox: Outbox::open(&db)?,
        wake,
        outgoing,
        inbound,
        want_state: Arc::new(Notify::new()),
        want_setup: Arc::new(Notify::new()),
        shared: shared.clone(),
        last_will: b"{}".to_vec(),
        offline: b"{}".to_vec(),
        resend: super::link::Resend::default(),
    };
    let started = Instant::now();
    let task = tokio::spawn(link.run(stop_rx));
    let check = Outbox::open(&db)?;
    let elapsed = loop {
        if check.watermark().await? >= n as i64 {
            break started.elapsed();
        }
        if started.elapsed() > Duration::from_secs(120) {
            return Err(BenchError::new(format!(
                "the backlog did not drain in 120 s: {:?}",
                shared.status()
            )));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let wait = Instant::now();
    while received.load(Ordering::Relaxed) < n && wait.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let _ = stop.send(true);
    let _ = task.await;
    subscriber.abort();
    Ok((elapsed, received.load(Ordering::Relaxed)))
}

fn issue(agent: &ureq::Agent, url: &str, key: &str) -> BenchResult<Duration> {
    crate::bench::issue_one(agent, url, key).map_err(BenchError::new)
}

/// Figures of one run of ticket issue.
struct IssueRun {
    p50: Duration,
    p99: Duration,
    rate: f64,
    /// Undelivered events when the run ended (for the run during a drain).
    left: i64,
}

/// Sequential p50/p99 and concurrent throughput of durable ticket issue; `prefill`
/// undelivered events are put in the outbox first.
fn issue_figures(
    exe: &std::path::Path,
    dir: &std::path::Path,
    extra: &str,
    prefill: usize,
    opts: &UplinkBenchOptions,
) -> BenchResult<IssueRun> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir)?;
    let config = write_config(dir, "127.0.0.1:0", true)?;
    let mut text = std::fs::read_to_string(&config)?;
    text.push_str(extra);
    std::fs::write(&config, text)?;
    let db = crate::config::Config::load(&config)?.database();
    if prefill > 0 {
        std::fs::create_dir_all(db.parent().unwrap_or(dir))?;
        fill(&db, prefill)?;
    }
    let daemon = Daemon::start(exe, &config)?;
    let a = crate::bench::new_agent();
    for i in 0..100 {
        issue(&a, &daemon.url, &format!("warm-{i}"))?;
    }
    let mut seq: Vec<Duration> = (0..opts.requests)
        .map(|i| issue(&a, &daemon.url, &format!("seq-{i}")))
        .collect::<BenchResult<_>>()?;
    seq.sort();
    let p = |q: f64| seq[((seq.len() - 1) as f64 * q) as usize];
    let per = (opts.requests * 2 / opts.clients.max(1)).max(50);
    let started = Instant::now();
    let handles: Vec<_> = (0..opts.clients.max(1))
        .map(|c| {
            let url = daemon.url.clone();
            std::thread::spawn(move || -> BenchResult<usize> {
                let a = crate::bench::new_agent();
                for i in 0..per {
                    issue(&a, &url, &format!("conc-{c}-{i}"))?;
                }
                Ok(per)
            })
        })
        .collect();
    let mut total = 0;
    for h in handles {
        total += h
            .join()
            .map_err(|_| BenchError::new("client thread panicked"))??;
    }
    let rate = total as f64 / started.elapsed().as_secs_f64();
    let conn = rusqlite::Connection::open(&db)?;
    let left = crate::store::uplink::backlog(&conn)?.undelivered;
    Ok(IssueRun {
        p50: p(0.5),
        p99: p(0.99),
        rate,
        left,
    })
}

/// Runs the benchmark and prints the figures.
pub fn run(opts: &UplinkBenchOptions) -> BenchResult<()> {
    std::fs::create_dir_all(&opts.dir)?;
    let dir = std::fs::canonicalize(&opts.dir)?;
    let mut broker = Broker::start(&dir.join("broker"), &BrokerOptions::default())?;
    println!(
        "hallq uplink bench — mosquitto on 127.0.0.1:{}, data in {}",
        broker.port,
        dir.display()
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let (elapsed, received) = runtime.block_on(drain(&dir, broker.port, opts.events))?;
    println!(
        "backlog drain:            {} events in {:.2} s = {:.0} events/s (target: 100,000 in ≤ 5 s); subscriber received {}",
        opts.events,
        elapsed.as_secs_f64(),
        opts.events as f64 / elapsed.as_secs_f64(),
        received
    );
    let exe = std::env::current_exe()?;
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let line = |name: &str, r: &IssueRun| {
        println!(
            "{name:<34} p50 {:>7.3} ms   p99 {:>7.3} ms   {:>7.0} tickets/s with {} clients",
            ms(r.p50),
            ms(r.p99),
            r.rate,
            opts.clients
        )
    };
    // Alternate off and on, twice, so a disk or a neighbour that slows down for a
    // while does not land on one side only; the best of each pair is compared.
    let on = uplink_toml(broker.port);
    let mut off_runs = Vec::new();
    let mut on_runs = Vec::new();
    for round in 1..=2 {
        let r = issue_figures(&exe, &dir.join("off"), "", 0, opts)?;
        line(&format!("ticket issue, uplink off ({round})"), &r);
        off_runs.push(r);
        let r = issue_figures(&exe, &dir.join("on"), &on, 0, opts)?;
        line(&format!("ticket issue, uplink on ({round})"), &r);
        on_runs.push(r);
    }
    let best = |runs: &[IssueRun]| IssueRun {
        p50: runs.iter().map(|r| r.p50).min().unwrap_or_default(),
        p99: runs.iter().map(|r| r.p99).min().unwrap_or_default(),
        rate: runs.iter().map(|r| r.rate).fold(0.0, f64::max),
        left: 0,
    };
    let (off, on_best) = (best(&off_runs), best(&on_runs));
    println!(
        "cost of the outbox (on / off):     p50 {:.2}x   p99 {:.2}x   throughput {:.2}x",
        ms(on_best.p50) / ms(off.p50).max(1e-9),
        ms(on_best.p99) / ms(off.p99).max(1e-9),
        on_best.rate / off.rate.max(1e-9)
    );
    let drain = issue_figures(&exe, &dir.join("draining"), &on, opts.events, opts)?;
    line("ticket issue while draining", &drain);
    println!(
        "  …with {} events in the outbox at start, {} left at the end: p50 {:.2}x   p99 {:.2}x   throughput {:.2}x of uplink off",
        opts.events,
        drain.left,
        ms(drain.p50) / ms(off.p50).max(1e-9),
        ms(drain.p99) / ms(off.p99).max(1e-9),
        drain.rate / off.rate.max(1e-9)
    );
    broker.stop();
    Ok(())
}
