//! The hall server under a county's (and a province's) load: simulated controllers
//! publish a recorded hall day through mosquitto into two `hallq-server` instances on
//! one PostgreSQL. A benchmark, not a timed assertion: it prints the figures and checks
//! only that every event is stored exactly once.
//!
//! The hall day is recorded by `hallq gen-history` (the real store writes a working day
//! of a hall, every event of it); each simulated controller publishes the same stream
//! under its own controller id, with ids of its own, in the controllers' envelope
//! (`hallq::uplink::wire::encode_event`).
//!
//! Two phases:
//! 1. throughput: every controller publishes its share of the day as fast as the broker
//!    takes it; events per second from the first publish to the last row committed;
//! 2. lag at a steady rate: every controller publishes `HALLQ_SERVER_LOAD_RATE` events a
//!    second (default 10: 1,000 controllers make the 10,000 events/s of a province's peak,
//!    2,000 halls × 5), stamped when published; lag = row committed − stamped, p50/p99
//!    over the phase's rows.
//!
//! 3. failover under that load (`HALLQ_SERVER_LOAD_FAIL_SECS`, default 6): the same
//!    steady rate while instance b is killed (SIGKILL, its in-flight messages lost), then
//!    PostgreSQL is stopped for 2 s and started again, and b restarted: every event ends
//!    up stored exactly once, the lost ones asked for again by the gap repair and sent
//!    again by the simulated controllers (each answers `resend` from what it published);
//! 4. the county dashboard of 200 halls, timed.
//!
//! `HALLQ_SERVER_LOAD_CONTROLLERS` (1000), `HALLQ_SERVER_LOAD_EVENTS` (events per
//! controller in phase 1; CI 20, the long run 500) and `HALLQ_SERVER_LOAD_SECS`
//! (phase 2; CI 5, the long run 60) set the size.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hallq::store::uplink::OutboxRow;
use hallq::uplink::wire::{Origin, encode_event};
use hallq_tests::mqtt::{Broker, BrokerOptions};
use hallq_tests::postgres::Postgres;
use hallq_tests::server::Instance;
use hallq_tests::{hallq_bin, missing_prerequisite};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A working day of a hall, as the controller stored it: `(type, payload)` in seq order.
fn recorded_day(dir: &std::path::Path) -> Vec<(String, String)> {
    let db = dir.join("day.db");
    let out = std::process::Command::new(hallq_bin())
        .args(["gen-history", "--db"])
        .arg(&db)
        .args(["--days", "1", "--per-day", "600"])
        .output()
        .expect("hallq gen-history runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let conn = rusqlite::Connection::open(&db).expect("day db");
    let mut q = conn
        .prepare("SELECT type, payload FROM events ORDER BY seq")
        .expect("query");
    q.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("rows")
        .map(|r| r.expect("row"))
        .collect()
}

/// Raises the open-file limit to the hard limit (1,000 connections each side, in this
/// process and in the broker it starts) and returns it.
fn more_files() -> u64 {
    // SAFETY: getrlimit/setrlimit on a local struct.
    unsafe {
        let mut l = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) != 0 {
            return 1024;
        }
        l.rlim_cur = l.rlim_max;
        if libc::setrlimit(libc::RLIMIT_NOFILE, &l) != 0 {
            return 1024;
        }
        l.rlim_cur
    }
}

/// One simulated controller: its MQTT client, its envelope's origin, its topic and seq,
/// and every message it published (by seq) to send again when the server asks.
struct Sim {
    client: rumqttc::AsyncClient,
    origin: Origin,
    topic: String,
    seq: i64,
    sent: Arc<std::sync::Mutex<Vec<Vec<u8>>>>,
}

/// `from_seq` of a `resend` command, if the message is one.
fn resend_from(body: &[u8]) -> Option<usize> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    (v["command"] == "resend").then_some(())?;
    usize::try_from(v["from_seq"].as_u64()?).ok()
}

impl Sim {
    async fn publish(&mut self, kind: &str, payload: &str, at: i64) {
        let bytes = self.encode(kind, payload, at);
        self.send(bytes).await;
    }

    /// The next event in the controllers' envelope, kept for a resend.
    fn encode(&mut self, kind: &str, payload: &str, at: i64) -> Vec<u8> {
        self.seq += 1;
        let row = OutboxRow {
            seq: self.seq,
            id: uuid::Uuid::new_v4().to_string(),
            at,
            kind: kind.into(),
            schema: 1,
            payload: payload.into(),
        };
        let bytes = encode_event(&self.origin, &row);
        self.sent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(bytes.clone());
        bytes
    }

    async fn send(&self, bytes: Vec<u8>) {
        self.client
            .publish(&self.topic, rumqttc::QoS::AtLeastOnce, false, bytes)
            .await
            .expect("publish queued");
    }
}

/// Every controller publishing `rate` events a second for `secs` seconds (controller i
/// from `stride * i` into the recorded day), spread over the first second, stamped at
/// publish; each task gives its controller back with how many it published.
fn paced(
    rt: &tokio::runtime::Runtime,
    sims: &mut Vec<Sim>,
    day: &[(String, String)],
    secs: u64,
    rate: u64,
    stride: usize,
) -> Vec<tokio::task::JoinHandle<(Sim, u64)>> {
    sims.drain(..)
        .enumerate()
        .map(|(i, mut sim)| {
            let day: Vec<(String, String)> = (0..(secs * rate) as usize)
                .map(|k| day[(i * stride + k) % day.len()].clone())
                .collect();
            rt.spawn(async move {
                let offset = Duration::from_micros((i as u64 * 1_000) % 1_000_000);
                tokio::time::sleep(offset).await;
                let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate));
                for (kind, payload) in &day {
                    tick.tick().await;
                    sim.publish(kind, payload, hallq_server::now_ms()).await;
                }
                (sim, day.len() as u64)
            })
        })
        .collect()
}

/// Waits for the [`paced`] tasks: the controllers back in `sims`, the events published.
fn join(
    rt: &tokio::runtime::Runtime,
    sims: &mut Vec<Sim>,
    tasks: Vec<tokio::task::JoinHandle<(Sim, u64)>>,
) -> u64 {
    rt.block_on(async {
        let mut n = 0;
        for t in tasks {
            let (sim, k) = t.await.expect("publisher");
            n += k;
            sims.push(sim);
        }
        n
    })
}

/// CPU seconds used so far by each process of the load: PostgreSQL's backends,
/// mosquitto, both `hallq-server` instances and this test (the simulated controllers),
/// by pid. Read from `/proc` (user + system ticks of 1/100 s).
fn cpu_by_pid() -> BTreeMap<u32, (String, f64)> {
    let mut m = BTreeMap::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return m;
    };
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(s) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        let (Some(a), Some(b)) = (s.find('('), s.rfind(')')) else {
            continue;
        };
        let name = if pid == std::process::id() {
            "simulated controllers"
        } else {
            &s[a + 1..b]
        };
        if ![
            "postgres",
            "mosquitto",
            "hallq-server",
            "simulated controllers",
        ]
        .contains(&name)
        {
            continue;
        }
        let f: Vec<&str> = s[b + 2..].split(' ').collect();
        let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        m.insert(pid, (name.to_string(), (ticks(11) + ticks(12)) / 100.0));
    }
    m
}

/// The CPU each kind of process used between two [`cpu_by_pid`] readings, in µs an
/// event (processes that ended in between are left out).
fn cpu_an_event(
    before: &BTreeMap<u32, (String, f64)>,
    after: &BTreeMap<u32, (String, f64)>,
    events: u64,
) -> String {
    let mut used: BTreeMap<&str, f64> = BTreeMap::new();
    for (pid, (name, t)) in after {
        let t0 = before.get(pid).map_or(0.0, |b| b.1);
        *used.entry(name.as_str()).or_insert(0.0) += t - t0;
    }
    used.iter()
        .map(|(name, t)| format!("{name} {:.1}", t * 1e6 / events.max(1) as f64))
        .collect::<Vec<_>>()
        .join(", ")
}

fn stored(pg: &Postgres) -> u64 {
    pg.sql("SELECT count(*) FROM events").parse().unwrap_or(0)
}

/// What the ingest counted as stored (its per-controller counters, kept in the batch's
/// transaction), read over a connection kept open: cheap to poll ten times a second,
/// where counting the rows would scan the table, and starting `psql` each time took
/// about 5 % of the machine's CPU from the load being measured.
struct Counter {
    rt: tokio::runtime::Handle,
    url: String,
    client: Option<tokio_postgres::Client>,
}

impl Counter {
    fn new(rt: &tokio::runtime::Runtime, pg: &Postgres) -> Counter {
        Counter {
            rt: rt.handle().clone(),
            url: pg.url(),
            client: None,
        }
    }

    /// The sum of the controllers' `stored`; `None` while PostgreSQL does not answer.
    fn counted(&mut self) -> Option<u64> {
        if self
            .client
            .as_ref()
            .is_none_or(tokio_postgres::Client::is_closed)
        {
            self.client = self.rt.block_on(async {
                let (client, connection) =
                    tokio_postgres::connect(&self.url, tokio_postgres::NoTls)
                        .await
                        .ok()?;
                tokio::spawn(connection);
                Some(client)
            });
        }
        let client = self.client.as_ref()?;
        let n: i64 = self
            .rt
            .block_on(client.query_one(
                "SELECT coalesce(sum(stored), 0)::int8 FROM controllers",
                &[],
            ))
            .ok()?
            .get(0);
        u64::try_from(n).ok()
    }
}

fn wait_stored(pg: &Postgres, counter: &mut Counter, n: u64, timeout: Duration) -> Instant {
    let deadline = Instant::now() + timeout;
    loop {
        let have = counter.counted().unwrap_or(0);
        if have >= n {
            assert_eq!(stored(pg), n, "more rows than events published");
            return Instant::now();
        }
        assert!(
            Instant::now() < deadline,
            "only {have} of {n} events stored"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_province_of_controllers_through_two_instances() {
    let Some(mut pg) = Postgres::start() else {
        missing_prerequisite(
            "server_load",
            "PostgreSQL server (Debian package postgresql)",
        );
        return;
    };
    let files = more_files();
    let mut controllers = env("HALLQ_SERVER_LOAD_CONTROLLERS", 1000) as usize;
    // Each controller is a socket here and one in the broker; keep room for the rest.
    let fit = (files.saturating_sub(256) as usize).max(10);
    if controllers > fit {
        println!("open-file limit {files}: {fit} controllers instead of {controllers}");
        controllers = fit;
    }
    let per = env("HALLQ_SERVER_LOAD_EVENTS", 20) as usize;
    let secs = env("HALLQ_SERVER_LOAD_SECS", 5);
    let rate = env("HALLQ_SERVER_LOAD_RATE", 10);
    let dir = tempfile::tempdir().expect("temp dir");
    let day = recorded_day(dir.path());
    let broker = Broker::start(&dir.path().join("broker"), &BrokerOptions::default())
        .expect("mosquitto starts");
    // The default repair_after_secs: a gap younger than that may still be on its way
    // in the other instance's backlog (a shorter wait turns a backlog into a storm of
    // resends, each adding load; seen at 3 s in the long run).
    let ingest = "[ingest]\nrepair_after_secs = 10\nrepair_every_secs = 1\n";
    let a = Instance::start(dir.path(), "a", broker.port, &pg.url(), ingest);
    let mut b = Instance::start(dir.path(), "b", broker.port, &pg.url(), ingest);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut counter = Counter::new(&rt, &pg);
    let acked = Arc::new(AtomicU64::new(0));
    let resends = Arc::new(AtomicU64::new(0));
    let mut sims: Vec<Sim> = rt.block_on(async {
        let mut sims = Vec::with_capacity(controllers);
        for i in 0..controllers {
            let id = format!("sim-{i:04}");
            let hall = format!("hall-{i:04}");
            let mut o = rumqttc::MqttOptions::new(id.clone(), "127.0.0.1", broker.port);
            o.set_keep_alive(Duration::from_secs(60));
            o.set_inflight(200);
            let (client, mut events) = rumqttc::AsyncClient::new(o, 256);
            let acked = acked.clone();
            let resends = resends.clone();
            let sent = Arc::new(std::sync::Mutex::new(Vec::new()));
            let topic = format!("hallq/{hall}/{id}/events");
            let cmd = format!("hallq/{hall}/{id}/cmd");
            let (again, again_sent, again_topic) = (client.clone(), sent.clone(), topic.clone());
            tokio::spawn(async move {
                loop {
                    match events.poll().await {
                        Ok(rumqttc::Event::Incoming(rumqttc::Incoming::PubAck(_))) => {
                            acked.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(rumqttc::Event::Incoming(rumqttc::Incoming::ConnAck(_))) => {
                            // In a task of its own: the request queue may be full of
                            // publishes, and this loop is what empties it.
                            let (c, t) = (again.clone(), cmd.clone());
                            tokio::spawn(async move {
                                let _ = c.subscribe(t, rumqttc::QoS::AtLeastOnce).await;
                            });
                        }
                        Ok(rumqttc::Event::Incoming(rumqttc::Incoming::Publish(p))) => {
                            // The server found a gap: everything from `from_seq` again, in
                            // order, as the controller does (apart from this loop).
                            let Some(from) = resend_from(&p.payload) else {
                                continue;
                            };
                            resends.fetch_add(1, Ordering::Relaxed);
                            let list: Vec<Vec<u8>> = again_sent
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .iter()
                                .skip(from.saturating_sub(1))
                                .cloned()
                                .collect();
                            let (c, t) = (again.clone(), again_topic.clone());
                            tokio::spawn(async move {
                                for bytes in list {
                                    let _ = c
                                        .publish(&t, rumqttc::QoS::AtLeastOnce, false, bytes)
                                        .await;
                                }
                            });
                        }
                        Ok(_) => {}
                        Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                    }
                }
            });
            sims.push(Sim {
                client,
                origin: Origin::new(&id, &hall, 480),
                topic,
                seq: 0,
                sent,
            });
        }
        sims
    });

    // Phase 1: as fast as the broker takes them. Each controller publishes the next
    // `per` events of the recorded day (controller i starts at a different point),
    // encoded before the clock starts: a controller catching up sends what its outbox
    // holds, and the encoding is the controllers' work, not the platform's.
    let total1 = (controllers * per) as u64;
    let encoded: Vec<Vec<Vec<u8>>> = sims
        .iter_mut()
        .enumerate()
        .map(|(i, sim)| {
            let at = hallq_server::now_ms();
            (0..per)
                .map(|k| {
                    let (kind, payload) = &day[(i * 7 + k) % day.len()];
                    sim.encode(kind, payload, at)
                })
                .collect()
        })
        .collect();
    let cpu0 = cpu_by_pid();
    let started = Instant::now();
    rt.block_on(async {
        let mut tasks = Vec::new();
        for (sim, messages) in sims.drain(..).zip(encoded) {
            tasks.push(tokio::spawn(async move {
                for bytes in messages {
                    sim.send(bytes).await;
                }
                sim
            }));
        }
        for t in tasks {
            sims.push(t.await.expect("publisher"));
        }
    });
    let done = wait_stored(&pg, &mut counter, total1, Duration::from_secs(600));
    let took = done - started;
    let throughput = total1 as f64 / took.as_secs_f64();
    let cpu = cpu_an_event(&cpu0, &cpu_by_pid(), total1);

    // Phase 2: a steady rate, stamped at publish.
    let from_ms = hallq_server::now_ms();
    let tasks = paced(&rt, &mut sims, &day, secs, rate, 13);
    let total2 = join(&rt, &mut sims, tasks);
    wait_stored(&pg, &mut counter, total1 + total2, Duration::from_secs(600));
    let lags = pg.sql(&format!(
        "SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY stored_at - at) || ' ' ||
                percentile_disc(0.99) WITHIN GROUP (ORDER BY stored_at - at) || ' ' ||
                max(stored_at - at)
         FROM events WHERE at >= {from_ms}"
    ));
    let mut l = lags.split(' ').map(|v| v.parse::<i64>().unwrap_or(-1));
    let (p50, p99, max) = (
        l.next().unwrap_or(-1),
        l.next().unwrap_or(-1),
        l.next().unwrap_or(-1),
    );
    // Each event once: ids and (controller, seq) are unique by the schema; the counts
    // say nothing was dropped on the way.
    let distinct: u64 = pg
        .sql("SELECT count(DISTINCT (controller_id, seq)) FROM events")
        .parse()
        .unwrap_or(0);
    assert_eq!(distinct, total1 + total2);
    let per_instance = pg.sql("SELECT string_agg(instance || ' ' || n, ', ') FROM (SELECT instance, count(*) n FROM events GROUP BY instance ORDER BY instance) s");
    println!(
        "hall server load: {controllers} controllers, 2 instances, one PostgreSQL, one mosquitto, 2 cores\n\
         phase 1 (as fast as published): {total1} events in {:.2} s = {throughput:.0} events/s stored\n\
         CPU an event in phase 1 (µs): {}\n\
         phase 2 ({rate} events/s per controller = {} events/s for {secs} s): {total2} events, \
         lag p50 {p50} ms, p99 {p99} ms, max {max} ms\n\
         per instance: {per_instance}; broker acknowledgements {}",
        took.as_secs_f64(),
        cpu,
        controllers as u64 * rate,
        acked.load(Ordering::Relaxed)
    );

    // Phase 3: failover under the same steady load.
    let fail_secs = env("HALLQ_SERVER_LOAD_FAIL_SECS", 6).max(4);
    let before = total1 + total2;
    let resends_before = resends.load(Ordering::Relaxed);
    let tasks = paced(&rt, &mut sims, &day, fail_secs, rate, 17);
    std::thread::sleep(Duration::from_secs(fail_secs / 3));
    b.kill();
    std::thread::sleep(Duration::from_secs(1));
    pg.stop(true);
    std::thread::sleep(Duration::from_secs(2));
    pg.start_again();
    b.restart();
    let total3 = join(&rt, &mut sims, tasks);
    let published = Instant::now();
    let whole = wait_stored(&pg, &mut counter, before + total3, Duration::from_secs(300));
    let distinct: u64 = pg
        .sql("SELECT count(DISTINCT (controller_id, seq)) FROM events")
        .parse()
        .unwrap_or(0);
    assert_eq!(distinct, before + total3, "each event once");
    println!(
        "phase 3 (failover at {} events/s for {fail_secs} s: b killed at {} s, PostgreSQL \
         stopped for 2 s a second later, b restarted): {total3} events, every one stored \
         once {:.1} s after the last was published; resend commands answered {}",
        controllers as u64 * rate,
        fail_secs / 3,
        (whole - published).as_secs_f64(),
        resends.load(Ordering::Relaxed) - resends_before
    );
    drop(sims);
    drop(a);
    drop(b);
    dashboard_of_200_halls(&pg, dir.path(), broker.port);
}

/// Phase 4: the county dashboard's two questions against a county of 200 halls (20
/// townships of 10), each hall's retained state with 8 windows and 6 services, and a few
/// open warnings, on the database phase 1 and 2 filled. Prints the answer times of
/// `GET /api/v1/halls` (every hall live, rolled up) and `GET /api/v1/halls/{id}` (one
/// hall in full), over HTTP as the page asks them.
fn dashboard_of_200_halls(pg: &Postgres, dir: &std::path::Path, broker_port: u16) {
    let halls = 200;
    // The city above the county, so the county's supervisor is not at the top of the
    // tree (the top also sees the 800 other simulated halls, which are not listed).
    let mut tree = String::from(
        "[[region]]\ncode = \"330100000000\"\nname = \"杭州市\"\n\
         [[region]]\ncode = \"330122000000\"\nname = \"青山县\"\n",
    );
    for t in 0..20 {
        tree.push_str(&format!(
            "[[region]]\ncode = \"330122{:03}000\"\nname = \"镇{t}\"\n",
            100 + t
        ));
    }
    for h in 0..halls {
        tree.push_str(&format!(
            "[[hall]]\nid = \"hall-{h:04}\"\nname = \"便民服务中心 {h}\"\nregion = \"330122{:03}000\"\n",
            100 + h % 20
        ));
    }
    let windows: Vec<serde_json::Value> = (1..=8)
        .map(|n| {
            serde_json::json!({"number": n, "name": format!("窗口{n}"), "state": "serving",
                "services": ["SB"], "staff": {"id": format!("S{n:03}"), "role": "A", "since": 1},
                "current": {"id": n, "number": format!("A{n:03}"), "service": "SB", "state": "serving", "since": 1},
                "paused": null, "vacant_since": null})
        })
        .collect();
    let services: Vec<serde_json::Value> = ["SB", "MZ", "HJ", "YB", "GJ", "BZ"]
        .iter()
        .map(|c| {
            serde_json::json!({"code": c, "name": {"zh-CN": c}, "waiting": 5, "issued": 80,
                "open_windows": 2, "estimated_wait_minutes": 9, "longest_wait_secs": 600})
        })
        .collect();
    let state =
        serde_json::json!({"status": "online", "queue": {"waiting": 30, "windows_staffed": 8,
        "services": services, "windows": windows}, "backlog": {"undelivered": 0},
        "devices": [{"device": "printer", "health": {"state": "ok"}, "since": 1}],
        "kiosk": {"locked": false}, "events": {"last_seq": 1, "delivered_seq": 1}})
        .to_string()
        .replace('\'', "''");
    pg.sql(&format!(
        "INSERT INTO controllers (controller_id, hall_id, state, state_at)
         SELECT 'dash-' || g, 'hall-' || lpad(g::text, 4, '0'), '{state}'::jsonb, 1
         FROM generate_series(0, {}) g
         ON CONFLICT (controller_id) DO NOTHING",
        halls - 1
    ));
    pg.sql(&format!(
        "INSERT INTO warnings (controller_id, seq, hall_id, type, at, payload)
         SELECT 'dash-' || g, g, 'hall-' || lpad((g % {halls})::text, 4, '0'), 'wait_alarm',
                {}, '{{}}'::jsonb
         FROM generate_series(0, 599) g",
        hallq_server::now_ms()
    ));
    let c = Instance::start(dir, "dash", broker_port, &pg.url(), &tree);
    let (ok, out) = c.account(
        &[
            "add",
            "county",
            "--name",
            "县监察",
            "--role",
            "supervisor",
            "--region",
            "330122000000",
        ],
        "county supervisor 1",
    );
    assert!(ok, "{out}");
    let (s, b) = c.sign_in("county", "county supervisor 1");
    assert_eq!(s, 200, "{b}");
    let token = b["token"].as_str().expect("token").to_string();
    let time = |path: &str| -> (f64, f64) {
        let mut ms: Vec<f64> = (0..21)
            .map(|_| {
                let t = Instant::now();
                let (s, b) = c.get_as(&token, path);
                assert_eq!(s, 200, "{path}: {b}");
                t.elapsed().as_secs_f64() * 1000.0
            })
            .skip(1)
            .collect();
        ms.sort_by(f64::total_cmp);
        (ms[ms.len() / 2], ms[ms.len() - 1])
    };
    let (all_p50, all_max) = time("/api/v1/halls");
    let (one_p50, one_max) = time("/api/v1/halls/hall-0007");
    let n = c.get_as(&token, "/api/v1/halls").1["halls"]
        .as_array()
        .map_or(0, Vec::len);
    assert_eq!(n, halls, "every hall listed");
    println!(
        "county dashboard, {halls} halls in 20 townships ({} events in the database): \
         GET /api/v1/halls p50 {all_p50:.1} ms, max {all_max:.1} ms; \
         GET /api/v1/halls/{{id}} p50 {one_p50:.1} ms, max {one_max:.1} ms (20 requests each)",
        pg.sql("SELECT count(*) FROM events")
    );
}
