//! The hall server's ingest, end to end: real `hallq` controllers taking tickets and
//! publishing through a real mosquitto, two `hallq-server` instances sharing the
//! subscription, a real PostgreSQL. Every test ends by comparing, controller by
//! controller, the events in the controller's own database with the rows in
//! PostgreSQL: the same ids with the same seqs, each once. The period figures the
//! ingest keeps are compared with each controller's own, hall by hall, and timed for a
//! county's month.
//!
//! The "Out" side too: the near-turn text messages reach an SMS webhook (a local HTTP
//! receiver) exactly once from two instances, retried while it answers 500, and their
//! numbers are gone from PostgreSQL afterwards; the day's 好差评 records come out of
//! `hallq-server export-ratings` and the API as the controllers made them, through a
//! field map, as JSON lines and as CSV.
//!
//! And down: pushes from above answered by the controllers, and a hall's setup in force,
//! up from its controller on the retained `setup` topic, edited on the dashboard and
//! pushed back to the hall or a region, then run by the controller.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hallq_tests::mqtt::{Broker, BrokerOptions, add_uplink, uplink_section, wait_for};
use hallq_tests::postgres::Postgres;
use hallq_tests::server::Instance;
use hallq_tests::webdriver::{Browser, Driver};
use hallq_tests::webhook::Webhook;
use hallq_tests::{Daemon, Hall, client, missing_prerequisite, send, sign_in};
use serde_json::{Value, json};

/// 青山县 with the county hall, and 青山镇 below it with two township halls.
const TREE: &str = "
[[region]]
code = \"330122000000\"
name = \"青山县\"
[[region]]
code = \"330122100000\"
name = \"青山镇\"
[[hall]]
id = \"hall-0\"
name = \"青山县政务服务中心\"
region = \"330122000000\"
[[hall]]
id = \"hall-1\"
name = \"青山镇便民服务中心\"
region = \"330122100000\"
[[hall]]
id = \"hall-2\"
name = \"青山镇东区服务点\"
region = \"330122100000\"
";

const INGEST: &str =
    "[ingest]\nrepair_after_secs = 2\nrepair_every_secs = 1\nreceive_maximum = 200\n";

/// A county in miniature: PostgreSQL, the broker, `n` controllers (halls `hall-0` …).
struct County {
    pg: Postgres,
    broker: Broker,
    halls: Vec<(Hall, Daemon, String)>,
    dir: tempfile::TempDir,
}

impl County {
    fn new(test: &str, n: usize) -> Option<County> {
        County::build(test, n, "", |_, _| {})
    }

    /// `n` controllers with `extra` in their configuration, each `prepare(i, hall)`d
    /// before it starts (staff accounts, settings).
    fn build(test: &str, n: usize, extra: &str, prepare: impl Fn(usize, &Hall)) -> Option<County> {
        let Some(pg) = Postgres::start() else {
            missing_prerequisite(test, "PostgreSQL server (Debian package postgresql)");
            return None;
        };
        let dir = tempfile::tempdir().expect("temp dir");
        let broker = Broker::start(&dir.path().join("broker"), &BrokerOptions::default())
            .expect("mosquitto starts");
        let mut halls = Vec::new();
        for i in 0..n {
            let hall = Hall::with_config(extra);
            prepare(i, &hall);
            let controller = format!("ctl-{i}");
            let text = std::fs::read_to_string(&hall.config).expect("config");
            std::fs::write(
                &hall.config,
                text.replace(
                    "controller_id = \"qingshan-main\"",
                    &format!("controller_id = \"{controller}\""),
                ),
            )
            .expect("config");
            add_uplink(
                &hall.config,
                &uplink_section(broker.port, &format!("hall-{i}")),
            );
            let d = hall.start();
            halls.push((hall, d, controller));
        }
        Some(County {
            pg,
            broker,
            halls,
            dir,
        })
    }

    /// An instance with the tree and `extra` (`[sms]`, `[export]`) in its configuration.
    fn instance_with(&self, name: &str, extra: &str) -> Instance {
        Instance::start(
            self.dir.path(),
            name,
            self.broker.port,
            &self.pg.url(),
            &format!("{INGEST}{TREE}{extra}"),
        )
    }

    /// An instance that knows the county's regions and halls.
    fn instance(&self, name: &str) -> Instance {
        self.instance_with(name, "")
    }

    /// Takes tickets on every controller, round robin, until `stop` (at most `max` each).
    fn load(&self, stop: Arc<AtomicBool>, max: usize) -> std::thread::JoinHandle<usize> {
        let urls: Vec<String> = self.halls.iter().map(|(_, d, _)| d.url.clone()).collect();
        std::thread::spawn(move || {
            let c = client();
            let mut n = 0;
            'outer: for _ in 0..max {
                for url in &urls {
                    if stop.load(Ordering::SeqCst) {
                        break 'outer;
                    }
                    let (s, b) = send(
                        c.post(format!("{url}/api/v1/tickets"))
                            .send_json(json!({"service": "SB"})),
                    );
                    assert_eq!(s, 201, "{b}");
                    n += 1;
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            n
        })
    }

    /// Each controller's events as `seq → id`, from its own database.
    fn at_the_halls(&self) -> BTreeMap<String, BTreeMap<i64, String>> {
        self.halls
            .iter()
            .map(|(hall, _, controller)| {
                let db = hall.database();
                let mut q = db.prepare("SELECT seq, id FROM events").expect("query");
                let rows: BTreeMap<i64, String> = q
                    .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                    .expect("rows")
                    .map(|r| r.expect("row"))
                    .collect();
                (controller.clone(), rows)
            })
            .collect()
    }

    /// What PostgreSQL holds, the same way.
    fn in_postgres(&self) -> BTreeMap<String, BTreeMap<i64, String>> {
        let mut out: BTreeMap<String, BTreeMap<i64, String>> = BTreeMap::new();
        let text = self
            .pg
            .sql("SELECT controller_id || ' ' || seq || ' ' || id FROM events");
        for line in text.lines().filter(|l| !l.is_empty()) {
            let mut p = line.split(' ');
            let (Some(c), Some(seq), Some(id)) = (p.next(), p.next(), p.next()) else {
                panic!("row {line:?}");
            };
            let seq: i64 = seq.parse().expect("seq");
            let before = out.entry(c.into()).or_default().insert(seq, id.into());
            assert!(before.is_none(), "{c} seq {seq} stored twice");
        }
        out
    }

    /// Waits until PostgreSQL holds exactly the controllers' events.
    fn wait_until_whole(&self, timeout: Duration, instances: &[&Instance]) {
        let deadline = Instant::now() + timeout;
        loop {
            let halls = self.at_the_halls();
            let pg = self.in_postgres();
            if halls == pg {
                return;
            }
            if Instant::now() > deadline {
                let mut why = String::new();
                for (c, events) in &halls {
                    let got = pg.get(c).cloned().unwrap_or_default();
                    let missing: Vec<&i64> = events
                        .keys()
                        .filter(|s| !got.contains_key(s))
                        .take(20)
                        .collect();
                    let wrong: Vec<&i64> = got
                        .iter()
                        .filter(|(s, id)| events.get(s) != Some(id))
                        .map(|(s, _)| s)
                        .take(20)
                        .collect();
                    why.push_str(&format!(
                        "{c}: {} at the hall, {} stored, missing {missing:?}, wrong {wrong:?}\n",
                        events.len(),
                        got.len()
                    ));
                }
                for i in instances {
                    why.push_str(&format!("--- {} log (tail):\n", i.name));
                    let log = i.log_text();
                    let tail: Vec<&str> = log.lines().rev().take(15).collect();
                    why.push_str(&tail.into_iter().rev().collect::<Vec<_>>().join("\n"));
                    why.push('\n');
                }
                panic!("PostgreSQL does not hold the halls' events:\n{why}");
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

#[test]
fn two_instances_store_every_event_once_and_refuse_forgeries() {
    let Some(county) = County::new("two_instances_store_every_event_once", 3) else {
        return;
    };
    let a = county.instance("a");
    let b = county.instance("b");
    let stop = Arc::new(AtomicBool::new(false));
    let taken = county.load(stop, 60).join().expect("load");
    assert_eq!(taken, 180);
    county.wait_until_whole(Duration::from_secs(60), &[&a, &b]);
    // The shared subscription split the events between the two.
    let per: BTreeMap<String, i64> = county
        .pg
        .sql("SELECT instance || ' ' || count(*) FROM events GROUP BY instance")
        .lines()
        .filter_map(|l| {
            l.split_once(' ')
                .map(|(i, n)| (i.to_string(), n.parse().unwrap_or(0)))
        })
        .collect();
    assert!(
        per.get("a").copied().unwrap_or(0) > 0 && per.get("b").copied().unwrap_or(0) > 0,
        "{per:?}"
    );
    // Each controller's state arrived, and nothing is missing.
    let controllers = a.get("/api/v1/controllers");
    let list = controllers["controllers"].as_array().expect("list");
    assert_eq!(list.len(), 3, "{controllers}");
    for c in list {
        assert_eq!(c["missing"], 0, "{c}");
        assert_eq!(c["status"], "online", "{c}");
        assert_eq!(c["contiguous_seq"], c["max_seq"], "{c}");
    }
    // Live figures per hall from the controllers' states, rolled up the region tree:
    // 60 tickets waiting in each hall, nobody called.
    let deadline = Instant::now() + Duration::from_secs(30);
    let overview = loop {
        let o = a.get("/api/v1/halls");
        let county = o["regions"]
            .as_array()
            .and_then(|r| r.iter().find(|r| r["code"] == "330122000000"))
            .cloned();
        if county
            .as_ref()
            .is_some_and(|c| c["waiting"] == 180 && c["halls_online"] == 3)
        {
            break o;
        }
        assert!(
            Instant::now() < deadline,
            "the halls' figures did not arrive: {o}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let town = overview["regions"]
        .as_array()
        .and_then(|r| r.iter().find(|r| r["code"] == "330122100000"))
        .cloned()
        .expect("township");
    assert_eq!(
        (
            town["halls"].clone(),
            town["waiting"].clone(),
            town["parent"].clone()
        ),
        (json!(2), json!(120), json!("330122000000")),
        "{overview}"
    );
    let hall1 = overview["halls"]
        .as_array()
        .and_then(|h| h.iter().find(|h| h["id"] == "hall-1"))
        .cloned()
        .expect("hall-1");
    assert_eq!(hall1["name"], "青山镇便民服务中心");
    assert_eq!(hall1["controllers"], json!(["ctl-1"]));
    assert_eq!(hall1["online"], 1);
    assert!(hall1["longest_wait_secs"].as_i64().is_some(), "{hall1}");
    let gaps = b.get("/api/v1/controllers/ctl-1/gaps");
    assert_eq!(gaps["gaps"], json!([]), "{gaps}");

    // A document naming another controller than its topic, and one that is not JSON:
    // kept aside as rejected, nothing stored.
    let stored_before = county.pg.sql("SELECT count(*) FROM events");
    let mut o = rumqttc::MqttOptions::new("forger", "127.0.0.1", county.broker.port);
    o.set_keep_alive(Duration::from_secs(10));
    let (forger, mut conn) = rumqttc::Client::new(o, 16);
    let forged = json!({"id": "6f1c0c1e-8d7b-4a53-9c55-0f2f3c0c2a11", "controller_id": "ctl-1",
        "hall_id": "hall-1", "seq": 1_000_000, "schema": 1, "at": 1, "time": "t",
        "type": "ticket_issued", "payload": {"type": "ticket_issued"}});
    forger
        .publish(
            "hallq/hall-0/ctl-0/events",
            rumqttc::QoS::AtLeastOnce,
            false,
            forged.to_string(),
        )
        .expect("publish");
    forger
        .publish(
            "hallq/hall-0/ctl-0/events",
            rumqttc::QoS::AtLeastOnce,
            false,
            "{not json",
        )
        .expect("publish");
    let mut acked = 0;
    for ev in conn.iter() {
        if let Ok(rumqttc::Event::Incoming(rumqttc::Incoming::PubAck(_))) = ev {
            acked += 1;
            if acked == 2 {
                break;
            }
        }
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while county.pg.sql("SELECT count(*) FROM rejected") != "2" {
        assert!(Instant::now() < deadline, "the forgeries were not rejected");
        std::thread::sleep(Duration::from_millis(100));
    }
    let reasons = county.pg.sql("SELECT reason FROM rejected ORDER BY n");
    assert!(
        reasons.contains("names hall-1/ctl-1 but came on hall-0/ctl-0"),
        "{reasons}"
    );
    assert!(reasons.contains("not an event"), "{reasons}");
    assert_eq!(county.pg.sql("SELECT count(*) FROM events"), stored_before);
    let rejected = a.metric("hallq_server_messages_rejected_total")
        + b.metric("hallq_server_messages_rejected_total");
    assert_eq!(rejected, 2.0);

    // One event six times in a burst (a resend crossing the original): each instance
    // gets three in one batch. Stored, counted and folded into the figures once.
    let issued = "SELECT coalesce(sum(issued), 0) FROM period_figures
                  WHERE hall_id = 'hall-0' AND scope = 'hall'";
    let issued_before: i64 = county.pg.sql(issued).parse().expect("issued");
    let payload: Value = serde_json::from_str(&county.pg.sql(
        "SELECT payload FROM events WHERE controller_id = 'ctl-0' AND type = 'ticket_issued'
         ORDER BY seq LIMIT 1",
    ))
    .expect("a ticket_issued payload");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let twice = json!({"id": "0b6f3f52-4f7e-4a5e-9a43-6f0f5d1f1d99", "controller_id": "ctl-dup",
        "hall_id": "hall-0", "seq": 1, "schema": 1, "at": now, "time": "t",
        "type": "ticket_issued", "payload": payload});
    let duplicates_before = a.metric("hallq_server_events_duplicate_total")
        + b.metric("hallq_server_events_duplicate_total");
    for _ in 0..6 {
        forger
            .publish(
                "hallq/hall-0/ctl-dup/events",
                rumqttc::QoS::AtLeastOnce,
                false,
                twice.to_string(),
            )
            .expect("publish");
    }
    let mut acked = 0;
    for ev in conn.iter() {
        if let Ok(rumqttc::Event::Incoming(rumqttc::Incoming::PubAck(_))) = ev {
            acked += 1;
            if acked == 6 {
                break;
            }
        }
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let duplicates = a.metric("hallq_server_events_duplicate_total")
            + b.metric("hallq_server_events_duplicate_total");
        if duplicates - duplicates_before >= 5.0 {
            assert_eq!(duplicates - duplicates_before, 5.0);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the six copies were not all taken"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        county.pg.sql(
            "SELECT count(*) || ' ' || (SELECT stored || ' ' || contiguous_seq FROM controllers
             WHERE controller_id = 'ctl-dup') FROM events WHERE controller_id = 'ctl-dup'"
        ),
        "1 1 1"
    );
    let issued_after: i64 = county.pg.sql(issued).parse().expect("issued");
    assert_eq!(issued_after, issued_before + 1);
}

/// A batch that holds one event twice (a resend that crossed its original in the
/// broker): `db::store` inserts it once, and counts it once, so the controller's run of
/// seqs is seen whole. (Counting each copy made `stored` run ahead of the rows, which
/// could take a real gap for a whole run, and folded the copy into the figures twice.)
#[test]
fn a_batch_holding_one_event_twice_counts_it_once() {
    let Some(pg) = Postgres::start() else {
        missing_prerequisite(
            "hall_server",
            "PostgreSQL server (Debian package postgresql)",
        );
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let row = |seq: i64, id: &str| hallq_server::db::Row {
        id: uuid::Uuid::parse_str(id).expect("uuid"),
        controller_id: "ctl-x".into(),
        hall_id: "hall-x".into(),
        seq,
        at: 1_796_000_000_000 + seq,
        kind: "hall_closed".into(),
        payload: json!({"type": "hall_closed"}),
    };
    let stored = rt.block_on(async {
        let mut db = hallq_server::db::connect(&pg.url(), Duration::from_secs(10))
            .await
            .expect("connect");
        hallq_server::db::migrate(&mut db).await.expect("migrate");
        let first = "9a0e9b4e-3c1b-4b8e-9d51-2f6a3c1e0a01";
        let mut rows = vec![
            row(1, first),
            row(2, "9a0e9b4e-3c1b-4b8e-9d51-2f6a3c1e0a02"),
            row(1, first),
        ];
        hallq_server::db::store(
            &mut db,
            &mut rows,
            &mut [],
            "a",
            1_796_000_001_000,
            &hallq_server::rollup::DayClock::default(),
        )
        .await
        .expect("store")
    });
    assert_eq!((stored.inserted, stored.duplicates), (2, 1));
    assert_eq!(
        pg.sql(
            "SELECT (SELECT count(*) FROM events) || ' ' || stored || ' ' || max_seq || ' ' ||
                    contiguous_seq FROM controllers WHERE controller_id = 'ctl-x'"
        ),
        "2 2 2 2"
    );
}

#[test]
fn an_instance_that_hangs_and_dies_mid_load_loses_nothing() {
    let Some(county) = County::new("an_instance_that_hangs_and_dies", 3) else {
        return;
    };
    let mut a = county.instance("a");
    let b = county.instance("b");
    let stop = Arc::new(AtomicBool::new(false));
    let load = county.load(stop.clone(), 100_000);
    std::thread::sleep(Duration::from_millis(800));
    // Hung: the broker keeps sending a its share, which piles up unacknowledged; then
    // killed: the broker drops those messages (mosquitto does not hand them to b).
    a.pause(true);
    std::thread::sleep(Duration::from_millis(1200));
    a.kill();
    std::thread::sleep(Duration::from_millis(2000));
    stop.store(true, Ordering::SeqCst);
    let taken = load.join().expect("load");
    assert!(taken > 100, "only {taken} tickets");
    county.wait_until_whole(Duration::from_secs(90), &[&a, &b]);
    // The gap was found and asked for again: b is the one left to ask.
    assert!(
        b.metric("hallq_server_resend_requests_total") >= 1.0,
        "no resend was needed: the kill lost nothing in flight\n{}",
        b.metrics()
    );
    // Back again, a takes its share of new events.
    a.restart();
    let before = county
        .pg
        .sql("SELECT count(*) FROM events WHERE instance = 'a'");
    let again = county
        .load(Arc::new(AtomicBool::new(false)), 40)
        .join()
        .expect("load");
    assert_eq!(again, 120);
    county.wait_until_whole(Duration::from_secs(60), &[&a, &b]);
    let after = county
        .pg
        .sql("SELECT count(*) FROM events WHERE instance = 'a'");
    assert!(
        after.parse::<i64>().unwrap_or(0) > before.parse::<i64>().unwrap_or(0),
        "{before} → {after}"
    );
}

#[test]
fn a_postgresql_restart_mid_load_loses_nothing() {
    let Some(mut county) = County::new("a_postgresql_restart_mid_load", 2) else {
        return;
    };
    let a = county.instance("a");
    let b = county.instance("b");
    let stop = Arc::new(AtomicBool::new(false));
    let load = county.load(stop.clone(), 100_000);
    std::thread::sleep(Duration::from_millis(800));
    county.pg.stop(true);
    std::thread::sleep(Duration::from_millis(2500));
    let down = a.metric("hallq_server_database_up") + b.metric("hallq_server_database_up");
    county.pg.start_again();
    std::thread::sleep(Duration::from_millis(1500));
    stop.store(true, Ordering::SeqCst);
    let taken = load.join().expect("load");
    assert!(taken > 100, "only {taken} tickets");
    county.wait_until_whole(Duration::from_secs(90), &[&a, &b]);
    assert!(down < 2.0, "neither instance noticed the database was down");
    assert_eq!(a.metric("hallq_server_database_up"), 1.0);
    assert_eq!(b.metric("hallq_server_database_up"), 1.0);
}

/// A township's viewer sees only the township; a wrong password five times locks the
/// account even against the right one; no token, no figures. Then the county dashboard
/// in Chromium: a county supervisor signs in, sees every hall live, drills down region →
/// township → hall → window, reads the hall's open warning, and switches language.
#[test]
fn the_county_dashboard_and_accounts_per_region() {
    // Hall 0 raises a long-wait warning for every HJ ticket at once, and has a clerk.
    let Some(county) = County::build("the_county_dashboard", 3, "", |i, hall| {
        if i == 0 {
            let text = std::fs::read_to_string(&hall.config).expect("config");
            let text = text.replacen(
                "expected_minutes = 7",
                "expected_minutes = 7\nwait_alarm_minutes = 0",
                1,
            );
            std::fs::write(&hall.config, text).expect("config");
            hall.add_staff_named("S001", "王芳", "135790", &["--window", "1"]);
        }
    }) else {
        return;
    };
    let a = county.instance("a");
    let take = |i: usize, service: &str, n: usize| {
        for _ in 0..n {
            let (s, b) = send(
                client()
                    .post(format!("{}/api/v1/tickets", county.halls[i].1.url))
                    .send_json(json!({ "service": service })),
            );
            assert_eq!(s, 201, "{b}");
        }
    };
    take(0, "SB", 4);
    take(0, "HJ", 1);
    take(1, "SB", 3);
    take(2, "SB", 2);
    let url0 = county.halls[0].1.url.clone();
    let clerk = hallq_tests::sign_in(&url0, "S001", "135790", Some(1));
    let (s, called) = send(
        client()
            .post(format!("{url0}/api/v1/windows/1/call-next"))
            .header("Authorization", &clerk)
            .send_json(json!({})),
    );
    assert_eq!(s, 200, "{called}");
    let number = called["events"][0]["number"]
        .as_str()
        .expect("called number")
        .to_string();

    // Accounts: a county supervisor, a township viewer.
    let county_pw = "qingshan county 1";
    let town_pw = "qingshan-town-22";
    for (login, name, role, region, pw) in [
        ("wang.fang", "王芳", "supervisor", "330122000000", county_pw),
        ("li.ming", "李明", "viewer", "330122100000", town_pw),
    ] {
        let (ok, out) = a.account(
            &[
                "add", login, "--name", name, "--role", role, "--region", region,
            ],
            pw,
        );
        assert!(ok, "{out}");
    }
    let (ok, out) = a.account(
        &[
            "add",
            "bad",
            "--name",
            "x",
            "--role",
            "viewer",
            "--region",
            "330122999000",
        ],
        "long enough 1",
    );
    assert!(!ok && out.contains("region"), "{out}");
    let (ok, out) = a.account(
        &[
            "add",
            "weak",
            "--name",
            "x",
            "--role",
            "viewer",
            "--region",
            "330122000000",
        ],
        "short",
    );
    assert!(!ok && out.contains("password"), "{out}");

    // No token, no figures; the sign-in names a missing field.
    let (s, b) = send(client().get(format!("{}/api/v1/halls", a.url)).call());
    assert_eq!(
        (s, b["error"].as_str()),
        (401, Some("sign_in_required")),
        "{b}"
    );
    let (s, b) = send(
        client()
            .post(format!("{}/api/v1/session", a.url))
            .send_json(json!({"login": "li.ming"})),
    );
    assert_eq!((s, b["field"].as_str()), (400, Some("password")), "{b}");

    // The township's viewer: its two halls only, not the county's own.
    let (s, b) = a.sign_in("li.ming", town_pw);
    assert_eq!(s, 200, "{b}");
    let town = b["token"].as_str().expect("token").to_string();
    let (s, o) = a.get_as(&town, "/api/v1/halls");
    assert_eq!(s, 200, "{o}");
    let ids: Vec<&str> = o["halls"]
        .as_array()
        .expect("halls")
        .iter()
        .filter_map(|h| h["id"].as_str())
        .collect();
    assert_eq!(ids, ["hall-1", "hall-2"], "{o}");
    let codes: Vec<&str> = o["regions"]
        .as_array()
        .expect("regions")
        .iter()
        .filter_map(|r| r["code"].as_str())
        .collect();
    assert_eq!(codes, ["330122100000"], "{o}");
    let (s, b) = a.get_as(&town, "/api/v1/halls/hall-0");
    assert_eq!((s, b["field"].as_str()), (404, Some("id")), "{b}");
    let (s, b) = a.get_as(&town, "/api/v1/controllers/ctl-0/gaps");
    assert_eq!(s, 404, "{b}");
    let (_, b) = a.get_as(&town, "/api/v1/controllers");
    assert_eq!(b["controllers"].as_array().map(Vec::len), Some(2), "{b}");

    // Five wrong passwords lock the account; then even the right one is refused, until
    // an admin unlocks it. Signing out ends the session.
    for i in 1..=5 {
        let (s, b) = a.sign_in("li.ming", "wrong password 9");
        let want = if i < 5 { 401 } else { 423 };
        assert_eq!(s, want, "attempt {i}: {b}");
    }
    let (s, b) = a.sign_in("li.ming", town_pw);
    assert_eq!(
        (s, b["error"].as_str()),
        (423, Some("account_locked")),
        "{b}"
    );
    let (ok, out) = a.account(&["unlock", "li.ming"], "");
    assert!(ok, "{out}");
    let (s, b) = a.sign_in("li.ming", town_pw);
    assert_eq!(s, 200, "{b}");
    let (s, _) = send(
        client()
            .delete(format!("{}/api/v1/session", a.url))
            .header("Authorization", format!("Bearer {town}"))
            .call(),
    );
    assert_eq!(s, 204);
    assert_eq!(a.get_as(&town, "/api/v1/halls").0, 401);
    let audit = county
        .pg
        .sql("SELECT action FROM audit WHERE login = 'li.ming' ORDER BY n");
    for action in ["signed_in", "sign_in_failed", "signed_out"] {
        assert!(audit.contains(action), "{action} not audited: {audit}");
    }

    // The hall's detail reaches the server: window 1 calling, the open warning.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let d = a.get("/api/v1/halls/hall-0");
        let w1 = d["windows"]
            .as_array()
            .and_then(|w| w.iter().find(|w| w["number"] == 1))
            .cloned()
            .unwrap_or_default();
        if w1["state"] == "called"
            && w1["current"]["number"] == number.as_str()
            && d["warnings"].as_array().is_some_and(|w| !w.is_empty())
        {
            assert_eq!(w1["staff"]["id"], "S001", "{w1}");
            assert_eq!(d["hall"]["open_warnings"], 1, "{d}");
            assert_eq!(d["warnings"][0]["type"], "wait_alarm", "{d}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "hall-0 never showed its call: {d}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    dashboard_in_a_browser(&a, county_pw, &number);
}

/// Chromium on the dashboard's sign-in form: the driver (keep it) and the browser, or
/// `None` (counted as missing) without Chromium.
fn open_dashboard(test: &str, a: &Instance, height: u32) -> Option<(Driver, Browser)> {
    let driver = match Driver::start() {
        Ok(d) => d,
        Err(e) => {
            missing_prerequisite(test, &format!("chromium and chromium-driver ({e})"));
            return None;
        }
    };
    let b = driver.browser(1440, height).expect("browser");
    b.go(&a.url).expect("dashboard");
    b.wait_for("the sign-in form", 20, |b| b.visible("#login-name"))
        .expect("sign-in form");
    Some((driver, b))
}

fn dashboard_in_a_browser(a: &Instance, password: &str, number: &str) {
    let Some((_driver, b)) = open_dashboard("the_county_dashboard", a, 1000) else {
        return;
    };
    b.type_into("#login-name", "wang.fang").expect("login");
    b.type_into("#login-password", "not the password 1")
        .expect("password");
    b.click("#login-submit").expect("submit");
    b.wait_for("the refusal", 20, |b| {
        b.text("#login-message") == "账号或密码错误"
    })
    .expect("refusal");
    b.js(
        "document.getElementById('login-password').value = ''",
        json!([]),
    )
    .expect("clear");
    b.type_into("#login-password", password).expect("password");
    b.click("#login-submit").expect("submit");
    // The county: three halls, the township below, the sums.
    b.wait_for("every hall", 20, |b| {
        b.js(
            "return document.querySelectorAll('#halls tbody tr').length",
            json!([]),
        )
        .ok()
            == Some(json!(3))
            && b.text("[data-figure='waiting'] .n") == "9"
    })
    .expect("the county's halls");
    assert_eq!(b.text("#scope"), "· 青山县");
    assert!(b.text("#who").contains("王芳"), "{}", b.text("#who"));
    assert_eq!(
        b.text("#regions tr[data-region='330122100000'] td:first-child"),
        "青山镇"
    );
    // The hall with the open warning comes first.
    assert_eq!(
        b.js(
            "return document.querySelector('#halls tbody tr').dataset.hall",
            json!([])
        )
        .expect("first row"),
        json!("hall-0")
    );
    b.screenshot(&hallq_tests::screens_dir().join("county-dashboard.png"))
        .expect("screenshot");
    // Drill down: the township, then back up, then the county's own hall.
    b.click("#regions tr[data-region='330122100000']")
        .expect("township");
    b.wait_for("the township's halls", 20, |b| {
        b.js(
            "return document.querySelectorAll('#halls tbody tr').length",
            json!([]),
        )
        .ok()
            == Some(json!(2))
            && b.text("#crumbs").contains("青山镇")
    })
    .expect("township");
    b.click("#crumbs a[data-region='330122000000']")
        .expect("county");
    b.wait_for("the county again", 20, |b| {
        b.js(
            "return document.querySelectorAll('#halls tbody tr').length",
            json!([]),
        )
        .ok()
            == Some(json!(3))
    })
    .expect("county");
    b.click("#halls tr[data-hall='hall-0']").expect("hall");
    b.wait_for("the hall's windows", 20, |b| {
        b.visible("#hall-view") && b.text("#windows tr[data-window='1'] td.ticket") == number
    })
    .expect("hall view");
    assert_eq!(
        b.text("#windows tr[data-window='1'] td:nth-child(2)"),
        "呼叫中"
    );
    assert_eq!(
        b.text("#windows tr[data-window='1'] td:nth-child(3)"),
        "S001"
    );
    assert!(
        b.text("#warnings li[data-type='wait_alarm']")
            .contains("超时等候"),
        "{}",
        b.text("#warnings")
    );
    assert_eq!(b.text("#hall-name"), "青山县政务服务中心");
    b.screenshot(&hallq_tests::screens_dir().join("county-hall.png"))
        .expect("screenshot");
    // English.
    b.click("#langs button[data-lang='en']").expect("English");
    b.wait_for("English texts", 20, |b| {
        b.text("#windows tr[data-window='1'] td:nth-child(2)") == "Calling"
    })
    .expect("English");
    assert!(
        b.text("#warnings li[data-type='wait_alarm']")
            .contains("Long wait"),
        "{}",
        b.text("#warnings")
    );
    b.click("#langs button[data-lang='zh-TW']").expect("繁體");
    b.wait_for("traditional texts", 20, |b| {
        b.text("#windows tr[data-window='1'] td:nth-child(2)") == "呼叫中"
            && b.text("#sign-out") == "登出"
    })
    .expect("繁體");
    // Signing out shows the form again and the token no longer works.
    b.click("#sign-out").expect("sign out");
    b.wait_for("the sign-in form again", 20, |b| b.visible("#login-name"))
        .expect("signed out");
}

const LONG: Duration = Duration::from_secs(60);

/// A window action at window 1.
fn act(url: &str, bearer: &str, action: &str, body: Value) -> Value {
    let (s, b) = send(
        client()
            .post(format!("{url}/api/v1/windows/1/{action}"))
            .header("Authorization", bearer)
            .send_json(body),
    );
    assert_eq!(s, 200, "{action}: {b}");
    b
}

/// Takes a ticket for SB: (id, number, token).
fn issue(url: &str) -> (u64, String, String) {
    let (s, b) = send(
        client()
            .post(format!("{url}/api/v1/tickets"))
            .send_json(json!({ "service": "SB" })),
    );
    assert_eq!(s, 201, "{b}");
    (
        b["ticket"]["id"].as_u64().expect("id"),
        b["ticket"]["number"].as_str().expect("number").to_string(),
        b["token"].as_str().expect("token").to_string(),
    )
}

/// The sum of a metric over instances.
fn total(instances: &[&Instance], name: &str) -> f64 {
    instances.iter().map(|i| i.metric(name)).sum()
}

#[test]
fn near_turn_messages_reach_the_sms_webhook_once_from_two_instances_and_the_numbers_go() {
    let Some(county) = County::build(
        "near_turn_messages_reach_the_sms_webhook",
        1,
        "[phone]\nnotify_ahead = 1\nnotify_minutes = 0\n",
        |_, hall| hall.add_staff("S001", "135790", &["--window", "1"]),
    ) else {
        return;
    };
    // The SMS relay answers 500 twice before it takes anything.
    let hook = Webhook::start(2, "500 Internal Server Error");
    let sms = format!(
        "[sms]\nwebhook_url = \"{}\"\ntoken = \"relay-secret\"\ntimeout_ms = 2000\n\
         retry_min_ms = 200\nretry_max_ms = 800\nmax_age_minutes = 30\n",
        hook.url
    );
    let a = county.instance_with("a", &sms);
    let b = county.instance_with("b", &sms);
    let (hall, d, controller) = &county.halls[0];
    let tickets: Vec<_> = (0..3).map(|_| issue(&d.url)).collect();
    let mobile = |i: usize| format!("1391234{i:04}");
    // Ticket 2 has one ahead: its message goes at once; ticket 3 once the first is called.
    for i in [1, 2] {
        let (id, _, token) = &tickets[i];
        let (s, b) = send(
            client()
                .post(format!("{}/api/v1/tickets/{id}/notice", d.url))
                .header("X-Ticket-Token", token)
                .send_json(json!({ "mobile": mobile(i) })),
        );
        assert_eq!(s, 201, "{b}");
    }
    let bearer = sign_in(&d.url, "S001", "135790", Some(1));
    act(&d.url, &bearer, "call-next", json!({}));
    wait_for(LONG, "two posts accepted by the webhook", || {
        (hook.posts().len() >= 2).then_some(())
    });
    // Nothing more comes: each message once, though both instances post.
    std::thread::sleep(Duration::from_secs(3));
    let posts = hook.accepted();
    assert_eq!(posts.len(), 2, "{posts:?}");
    assert_eq!(hook.refused(), 2);
    let near: Vec<String> = {
        let db = hall.database();
        let mut q = db
            .prepare("SELECT id FROM events WHERE type = 'near_turn' ORDER BY seq")
            .expect("query");
        q.query_map([], |r| r.get(0))
            .expect("rows")
            .map(|r| r.expect("row"))
            .collect()
    };
    assert_eq!(near.len(), 2);
    for (k, i) in [1usize, 2].into_iter().enumerate() {
        let p = posts
            .iter()
            .find(|p| p.body["near_turn"]["ticket"] == tickets[i].0)
            .unwrap_or_else(|| panic!("no post for ticket {i}: {posts:?}"));
        assert_eq!(p.authorization.as_deref(), Some("Bearer relay-secret"));
        assert_eq!(p.body["mobile"], mobile(i), "{:?}", p.body);
        assert_eq!(p.body["id"], near[k].as_str(), "the near_turn event's id");
        assert_eq!(p.body["controller_id"], controller.as_str());
        assert_eq!(p.body["hall_id"], "hall-0");
        let m: hallq::uplink::wire::SmsMessage =
            serde_json::from_value(p.body.clone()).expect("the message");
        let text = p.body["text"].as_str().expect("text");
        assert_eq!(text, hallq::uplink::receive::sms_text(&m));
        assert!(
            text.starts_with(&format!("您的{}号前面还有", tickets[i].1)),
            "{text}"
        );
    }
    // Posted: the numbers are gone from PostgreSQL, the rows stay against a resend.
    assert_eq!(
        county.pg.sql("SELECT string_agg(state, ',') FROM sms"),
        "posted,posted"
    );
    assert_eq!(
        county
            .pg
            .sql("SELECT count(*) FROM sms WHERE mobile IS NOT NULL"),
        "0"
    );
    let everything = county.pg.sql(
        "SELECT coalesce((SELECT string_agg(t::text, '') FROM sms t), '') ||
                coalesce((SELECT string_agg(t::text, '') FROM events t), '') ||
                coalesce((SELECT string_agg(t::text, '') FROM rejected t), '')",
    );
    assert!(everything.contains(&near[0]), "the query sees the rows");
    let instances = [&a, &b];
    assert_eq!(total(&instances, "hallq_server_sms_received_total"), 2.0);
    assert_eq!(total(&instances, "hallq_server_sms_posted_total"), 2.0);
    assert_eq!(total(&instances, "hallq_server_sms_retries_total"), 2.0);
    wait_for(LONG, "no message pending", || {
        (total(&instances, "hallq_server_sms_pending") == 0.0).then_some(())
    });

    // A message from long ago (its turn has passed) is dropped with its number, never
    // posted; one naming another controller than its topic is refused, not kept.
    let mut o = rumqttc::MqttOptions::new("late", "127.0.0.1", county.broker.port);
    o.set_keep_alive(Duration::from_secs(10));
    let (late, mut conn) = rumqttc::Client::new(o, 16);
    let old_at = chrono::Utc::now().timestamp_millis() - 2 * 3_600_000;
    let message = |id: &str, controller: &str, number: &str| {
        json!({"id": id, "controller_id": controller, "hall_id": "hall-0", "at": old_at,
               "time": "t", "mobile": number,
               "near_turn": {"type": "near_turn", "ticket": 99, "number": "099", "ahead": 1, "minutes": 2}})
        .to_string()
    };
    let topic = format!("hallq/hall-0/{controller}/sms");
    for body in [
        message("old-1", controller, "13700000001"),
        message("forged-1", "ctl-x", "13700000002"),
    ] {
        late.publish(topic.as_str(), rumqttc::QoS::AtLeastOnce, false, body)
            .expect("publish");
    }
    let mut acked = 0;
    for ev in conn.iter() {
        if let Ok(rumqttc::Event::Incoming(rumqttc::Incoming::PubAck(_))) = ev {
            acked += 1;
            if acked == 2 {
                break;
            }
        }
    }
    wait_for(LONG, "the old message to expire", || {
        (county.pg.sql("SELECT state FROM sms WHERE id = 'old-1'") == "expired").then_some(())
    });
    wait_for(LONG, "the forged message to be refused", || {
        (county.pg.sql("SELECT count(*) FROM rejected") == "1").then_some(())
    });
    let reason = county.pg.sql("SELECT reason FROM rejected");
    assert!(reason.contains("names hall-0/ctl-x"), "{reason}");
    assert_eq!(total(&instances, "hallq_server_sms_expired_total"), 1.0);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(hook.posts().len(), 2, "the old message was not posted");
    assert_eq!(
        county
            .pg
            .sql("SELECT count(*) FROM sms WHERE mobile IS NOT NULL"),
        "0"
    );

    // No number anywhere: PostgreSQL, the instances' logs and metrics.
    let everything = county.pg.sql(
        "SELECT coalesce((SELECT string_agg(t::text, '') FROM sms t), '') ||
                coalesce((SELECT string_agg(t::text, '') FROM events t), '') ||
                coalesce((SELECT string_agg(t::text, '') FROM rejected t), '') ||
                coalesce((SELECT string_agg(t::text, '') FROM controllers t), '')",
    );
    let logs = format!(
        "{}{}{}{}",
        a.log_text(),
        b.log_text(),
        a.metrics(),
        b.metrics()
    );
    for number in [
        mobile(1),
        mobile(2),
        "13700000001".into(),
        "13700000002".into(),
    ] {
        assert!(!everything.contains(&number), "{number} in PostgreSQL");
        assert!(!logs.contains(&number), "{number} in a log or the metrics");
    }
}

/// The day (UTC+8) of now.
fn today() -> String {
    (chrono::Utc::now() + chrono::Duration::hours(8))
        .format("%Y-%m-%d")
        .to_string()
}

/// Parses CSV (RFC 4180) into rows of fields.
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let (mut rows, mut row, mut field) = (Vec::new(), Vec::new(), String::new());
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') if field.is_empty() => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut field)),
            (false, '\r') if chars.peek() == Some(&'\n') => {}
            (false, '\n') => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => field.push(c),
        }
    }
    assert!(
        !quoted && field.is_empty() && row.is_empty(),
        "CSV ends with CRLF"
    );
    rows
}

/// A GET's status and body as text.
/// A GET with a bearer token, as text.
fn get_text(url: &str, token: &str) -> (u16, String) {
    match client()
        .get(url)
        .header("Authorization", format!("Bearer {token}"))
        .call()
    {
        Ok(mut r) => (
            r.status().as_u16(),
            r.body_mut().read_to_string().unwrap_or_default(),
        ),
        Err(e) => panic!("{url}: {e}"),
    }
}

#[test]
fn ratings_are_exported_per_day_through_the_field_map_as_json_lines_and_csv() {
    let Some(county) = County::build("ratings_are_exported_per_day", 2, "", |_, hall| {
        hall.add_staff("S001", "135790", &["--window", "1"])
    }) else {
        return;
    };
    // The platform's names: three renamed, the event's id and the hall added.
    let fields: [(&str, &str); 10] = [
        ("evaluate_id", "id"),
        ("hall", "hall_id"),
        ("evaluate_level", "level"),
        ("level_code", "level_code"),
        ("reasons", "reasons"),
        ("evaluate_content", "comment"),
        ("ticket", "ticket"),
        ("window", "window"),
        ("case_no", "case_no"),
        ("bad", "bad"),
    ];
    let map: String = fields
        .iter()
        .map(|(k, v)| format!("{k} = \"{v}\"\n"))
        .collect();
    // The daily run (at 00:00, so yesterday is due at once) after a platform stopped
    // for two days: the days since the last one written come out at the start, once,
    // however many instances there are.
    let daily = county.dir.path().join("daily");
    let export = format!(
        "[export]\ndir = \"{}\"\nat = \"00:00\"\n[export.fields]\n{map}",
        daily.display()
    );
    let (config, _) = hallq_tests::server::write_config(
        county.dir.path(),
        "migrate",
        county.broker.port,
        &county.pg.url(),
        &format!("{TREE}{export}"),
    );
    let migrated = std::process::Command::new(hallq_tests::server::server_bin())
        .args(["migrate", "--config"])
        .arg(&config)
        .output()
        .expect("migrate runs");
    assert!(migrated.status.success(), "{migrated:?}");
    let day_before = |n: i64| {
        (chrono::Utc::now() + chrono::Duration::hours(8) - chrono::Duration::days(n))
            .format("%Y-%m-%d")
            .to_string()
    };
    county.pg.sql(&format!(
        "INSERT INTO exports (day, written_at, instance, ratings) VALUES ('{}', 0, 'old', 0)",
        day_before(3)
    ));
    let a = county.instance_with("a", &export);
    let b = county.instance_with("b", &export);
    wait_for(LONG, "the daily export", || {
        (county.pg.sql("SELECT count(*) FROM exports") == "3").then_some(())
    });
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        county
            .pg
            .sql("SELECT string_agg(day || ' ' || ratings, ',' ORDER BY day) FROM exports WHERE instance <> 'old'"),
        format!("{} 0,{} 0", day_before(2), day_before(1))
    );
    let mut written: Vec<String> = std::fs::read_dir(&daily)
        .expect("the daily directory")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    written.sort();
    assert_eq!(
        written,
        [2, 1]
            .iter()
            .flat_map(|n| ["csv", "jsonl"].map(|ext| format!("ratings-{}.{ext}", day_before(*n))))
            .collect::<Vec<_>>(),
        "no temporary file left, no day twice"
    );
    drop(b);
    let ratings = [
        ("非常满意", json!([]), json!("很好, 谢谢")),
        (
            "不满意",
            json!(["办事效率低"]),
            json!("等了\"很久\",\n下次快点"),
        ),
        ("满意", json!([]), Value::Null),
    ];
    for (_, d, _) in &county.halls {
        let clerk = sign_in(&d.url, "S001", "135790", Some(1));
        for (k, (level, reasons, comment)) in ratings.iter().enumerate() {
            let (ticket, _, _) = issue(&d.url);
            act(&d.url, &clerk, "call-next", json!({}));
            act(&d.url, &clerk, "start", json!({}));
            let finish = if k == 0 {
                json!({"case_no": "SB-2026-000731"})
            } else {
                json!({})
            };
            act(&d.url, &clerk, "finish", finish);
            let mut rating = json!({"ticket": ticket, "level": level});
            if reasons != &json!([]) {
                rating["reasons"] = reasons.clone();
            }
            if !comment.is_null() {
                rating["comment"] = comment.clone();
            }
            let (s, b) = send(
                client()
                    .post(format!("{}/api/v1/ratings", d.url))
                    .header("X-Rating-Pad", "1")
                    .send_json(rating),
            );
            assert_eq!(s, 201, "{b}");
        }
    }
    county.wait_until_whole(LONG, &[&a]);
    // What the controllers recorded, mapped by hand: hall-0's, then hall-1's.
    let expected: Vec<Vec<(String, Value)>> = county
        .halls
        .iter()
        .enumerate()
        .flat_map(|(i, (hall, _, _))| {
            let db = hall.database();
            let mut q = db
                .prepare(
                    "SELECT id, payload FROM events WHERE type = 'rating_recorded' ORDER BY seq",
                )
                .expect("query");
            let rows: Vec<(String, String)> = q
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .expect("rows")
                .map(|r| r.expect("row"))
                .collect();
            rows.into_iter()
                .map(|(id, payload)| {
                    let p: Value = serde_json::from_str(&payload).expect("payload");
                    fields
                        .iter()
                        .map(|(name, path)| {
                            let v = match *path {
                                "id" => json!(id),
                                "hall_id" => json!(format!("hall-{i}")),
                                f => p["record"][f].clone(),
                            };
                            (name.to_string(), v)
                        })
                        .collect()
                })
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(expected.len(), 6);
    assert_eq!(expected[1][5].1, json!("等了\"很久\",\n下次快点"));

    let out = county.dir.path().join("export");
    let day = today();
    let run = |region: Option<&str>, out: &std::path::Path| {
        let mut c = std::process::Command::new(hallq_tests::server::server_bin());
        c.args(["export-ratings", "--config"])
            .arg(county.dir.path().join("a.toml"))
            .args(["--day", &day, "--out"])
            .arg(out);
        if let Some(r) = region {
            c.args(["--region", r]);
        }
        let o = c.output().expect("export-ratings runs");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let said = run(None, &out);
    assert!(said.starts_with("6 ratings"), "{said}");
    let jsonl = std::fs::read_to_string(out.join(format!("ratings-{day}.jsonl"))).expect("jsonl");
    let lines: Vec<&str> = jsonl.lines().collect();
    assert_eq!(lines.len(), 6, "{jsonl}");
    for (line, want) in lines.iter().zip(&expected) {
        let got: Value = serde_json::from_str(line).expect("a JSON line");
        let want_obj: serde_json::Map<String, Value> = want.iter().cloned().collect();
        assert_eq!(got, Value::Object(want_obj), "{line}");
        assert!(
            line.starts_with("{\"evaluate_id\":\""),
            "in the map's order: {line}"
        );
    }
    let csv = std::fs::read_to_string(out.join(format!("ratings-{day}.csv"))).expect("csv");
    let rows = parse_csv(&csv);
    let names: Vec<String> = fields.iter().map(|(n, _)| n.to_string()).collect();
    assert_eq!(rows[0], names);
    assert_eq!(rows.len(), 7, "{csv}");
    let cell = |v: &Value| match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    for (row, want) in rows[1..].iter().zip(&expected) {
        let want: Vec<String> = want.iter().map(|(_, v)| cell(v)).collect();
        assert_eq!(row, &want);
    }
    // The township's halls only (hall-1; hall-0 is the county's).
    let town = county.dir.path().join("town");
    let said = run(Some("330122100000"), &town);
    assert!(said.starts_with("3 ratings"), "{said}");
    let lines = std::fs::read_to_string(town.join(format!("ratings-{day}.jsonl"))).expect("jsonl");
    assert!(
        lines.lines().all(|l| l.contains("\"hall\":\"hall-1\"")),
        "{lines}"
    );
    // The same for download, and bad requests name their parameter.
    let token = a.admin_token();
    let base = format!("{}/api/v1/ratings/export?day={day}", a.url);
    assert_eq!(
        get_text(&format!("{base}&format=csv"), &token),
        (200, csv.clone())
    );
    assert_eq!(
        get_text(&format!("{base}&format=jsonl"), &token),
        (200, jsonl.clone())
    );
    assert_eq!(
        get_text(&format!("{base}&format=jsonl&region=330122100000"), &token),
        (200, lines)
    );
    for (query, field) in [
        (format!("{base}&format=xml"), "format"),
        (
            format!("{}/api/v1/ratings/export?day=2026-13-01", a.url),
            "day",
        ),
        (format!("{base}&region=330122999000"), "region"),
    ] {
        let (s, b) = send(
            client()
                .get(&query)
                .header("Authorization", format!("Bearer {token}"))
                .call(),
        );
        assert_eq!(s, 400, "{query}: {b}");
        assert_eq!(b["field"], field, "{b}");
    }
    // Another day has none.
    let (s, empty) = get_text(
        &format!("{}/api/v1/ratings/export?day=2020-01-01&format=csv", a.url),
        &token,
    );
    assert_eq!((s, parse_csv(&empty).len()), (200, 1));
}

/// The ticket a call-next called.
fn called(answer: &Value) -> u64 {
    answer["events"][0]["ticket"]
        .as_u64()
        .unwrap_or_else(|| panic!("no ticket called: {answer}"))
}

/// A rating from window 1's pad.
fn rate(url: &str, ticket: u64, level: &str, reasons: &[&str]) {
    let (s, b) = send(
        client()
            .post(format!("{url}/api/v1/ratings"))
            .header("X-Rating-Pad", "1")
            .send_json(json!({"ticket": ticket, "level": level, "reasons": reasons})),
    );
    assert_eq!(s, 201, "{b}");
}

/// A row's figures as the server and the controller both give them: without its key,
/// names and department, and without the time signed in (the controller counts open
/// sessions up to now, the server when they end).
fn figures_only(row: &Value) -> Value {
    let mut f = row.clone();
    if let Some(o) = f.as_object_mut() {
        for k in [
            "key",
            "name",
            "department",
            "signed_in_secs",
            "id",
            "region",
            "appraisal",
            "follow_ups",
        ] {
            o.remove(k);
        }
    }
    f
}

/// The rows of a table that counted something, by key.
fn counted_rows(rows: &Value) -> BTreeMap<String, Value> {
    rows.as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            (
                r["key"].as_str().unwrap_or_default().to_string(),
                figures_only(r),
            )
        })
        .filter(|(_, f)| {
            f.as_object().is_some_and(|o| {
                o.iter().any(|(k, v)| {
                    k != "ratings" && k != "bad_reasons" && v.as_i64().is_some_and(|n| n != 0)
                })
            })
        })
        .collect()
}

#[test]
// Over 100 lines: one day's work at three halls, then each view compared in turn; the
// replay and the follow-ups build on that day.
fn period_figures_match_each_halls_own_and_a_replay_counts_nothing_twice() {
    let Some(county) = County::build("period_figures_match_each_halls_own", 3, "", |_, hall| {
        hall.add_staff_named("S001", "张三", "135790", &["--window", "1"]);
        hall.add_staff("J001", "246801", &["--role", "supervisor"]);
    }) else {
        return;
    };
    let a = county.instance("a");
    let b = county.instance("b");
    // A day's work at each hall: 3, 4 and 5 tickets; one served and rated 不满意, a
    // pause, a no-show, one more served and rated 非常满意 (at hall-1 and hall-2), one
    // transferred.
    for (i, (_, d, _)) in county.halls.iter().enumerate() {
        let url = &d.url;
        for _ in 0..3 + i {
            let (s, t) = send(
                client()
                    .post(format!("{url}/api/v1/tickets"))
                    .send_json(json!({"service": "SB"})),
            );
            assert_eq!(s, 201, "{t}");
        }
        let clerk = sign_in(url, "S001", "135790", Some(1));
        let first = called(&act(url, &clerk, "call-next", json!({})));
        act(url, &clerk, "start", json!({}));
        act(url, &clerk, "finish", json!({}));
        rate(url, first, "不满意", &["办事效率低"]);
        act(url, &clerk, "pause", json!({"reason": "break"}));
        act(url, &clerk, "resume", json!({}));
        act(url, &clerk, "call-next", json!({}));
        act(url, &clerk, "no-show", json!({}));
        if i > 0 {
            let next = called(&act(url, &clerk, "call-next", json!({})));
            act(url, &clerk, "start", json!({}));
            act(url, &clerk, "finish", json!({}));
            rate(url, next, "非常满意", &[]);
        }
        act(url, &clerk, "call-next", json!({}));
        act(url, &clerk, "transfer", json!({"service": "MZ"}));
    }
    county.wait_until_whole(Duration::from_secs(60), &[&a, &b]);

    let (_, d0, _) = &county.halls[0];
    let sup0 = sign_in(&d0.url, "J001", "246801", None);
    let controller_period = |url: &str, token: &str, q: &str| -> Value {
        let (s, v) = send(
            client()
                .get(format!("{url}/api/v1/supervision/period?{q}"))
                .header("Authorization", token)
                .call(),
        );
        assert_eq!(s, 200, "{v}");
        v
    };
    let today = controller_period(&d0.url, &sup0, "month=2000-01")["today"]
        .as_str()
        .expect("today")
        .to_string();
    let q = format!("from={today}&to={today}");
    for (i, (_, d, _)) in county.halls.iter().enumerate() {
        let sup = sign_in(&d.url, "J001", "246801", None);
        let own = controller_period(&d.url, &sup, &format!("day={today}"));
        let server = a.get(&format!("/api/v1/period?{q}&hall=hall-{i}"));
        let hall = server["halls"]
            .as_array()
            .and_then(|h| h.iter().find(|h| h["id"] == format!("hall-{i}")))
            .cloned()
            .expect("the hall in the view");
        assert_eq!(
            figures_only(&hall),
            figures_only(&own["hall"]),
            "hall-{i}: the server's figures (left) and the controller's"
        );
        assert_eq!(hall["issued"], json!(3 + i), "{hall}");
        let detail = &server["detail"];
        for table in ["windows", "services", "staff", "hours"] {
            assert_eq!(
                counted_rows(&detail[table]),
                counted_rows(&own[table]),
                "hall-{i} {table}: the server's (left) and the controller's"
            );
        }
        assert_eq!(
            counted_rows(&detail["days"]),
            counted_rows(&own["days"]),
            "hall-{i} days"
        );
    }
    // The regions add up their halls, and the halls are ranked: hall-1 and hall-2
    // have one good rating of two, hall-0 only a bad one.
    let view = a.get(&format!("/api/v1/period?month={}", &today[..7]));
    let hall = |id: &str| -> Value {
        view["halls"]
            .as_array()
            .and_then(|h| h.iter().find(|h| h["id"] == id))
            .cloned()
            .expect("hall")
    };
    let region = |code: &str| -> Value {
        view["regions"]
            .as_array()
            .and_then(|r| r.iter().find(|r| r["code"] == code))
            .cloned()
            .expect("region")
    };
    for field in [
        "issued",
        "called",
        "served",
        "no_shows",
        "transfers",
        "rated",
        "bad",
        "pauses",
    ] {
        let sum = |ids: &[&str]| -> i64 {
            ids.iter()
                .map(|h| hall(h)[field].as_i64().unwrap_or(0))
                .sum()
        };
        assert_eq!(
            region("330122000000")[field].as_i64(),
            Some(sum(&["hall-0", "hall-1", "hall-2"])),
            "county {field}"
        );
        assert_eq!(
            region("330122100000")[field].as_i64(),
            Some(sum(&["hall-1", "hall-2"])),
            "township {field}"
        );
    }
    assert_eq!(region("330122000000")["issued"], 12);
    assert_eq!(region("330122000000")["halls"], 3);
    assert_eq!(region("330122000000")["satisfaction"], json!(0.4));
    assert_eq!(
        region("330122100000")["bad_reasons"],
        json!({"办事效率低": 2})
    );
    let ranked: Vec<&str> = view["ranking"]
        .as_array()
        .expect("ranking")
        .iter()
        .filter_map(|r| r["hall"].as_str())
        .collect();
    assert_eq!(ranked.len(), 3);
    assert_eq!(ranked[2], "hall-0", "{}", view["ranking"]);
    // Within a township: its halls and regions only.
    let town = a.get(&format!("/api/v1/period?{q}&region=330122100000"));
    assert_eq!(town["halls"].as_array().map(Vec::len), Some(2), "{town}");
    assert_eq!(town["regions"].as_array().map(Vec::len), Some(1), "{town}");
    // Refusals name the parameter.
    for (query, field) in [
        (format!("from={today}"), "to"),
        ("from=2026-12-02&to=2026-12-01".to_string(), "to"),
        ("month=2026-13".to_string(), "month"),
        (format!("{q}&region=3301"), "region"),
        (format!("{q}&region=330122200000"), "region"),
        (format!("{q}&hall=nowhere"), "hall"),
    ] {
        let (s, body) = a.get_as(&a.admin_token(), &format!("/api/v1/period?{query}"));
        assert_eq!(
            (s, body["field"].as_str()),
            (400, Some(field)),
            "{query}: {body}"
        );
    }

    // Replayed: the controllers send every event again (`resend` from seq 1), the
    // server stores none twice and counts none twice.
    let before = |v: &Value| {
        let mut v = v.clone();
        if let Some(o) = v.as_object_mut() {
            o.remove("elapsed_ms");
        }
        v
    };
    let view_before = before(&view);
    let dup_before = a.metric("hallq_server_events_duplicate_total")
        + b.metric("hallq_server_events_duplicate_total");
    let stored: f64 = county
        .pg
        .sql("SELECT count(*) FROM events")
        .parse()
        .expect("count");
    let mut o = rumqttc::MqttOptions::new("replayer", "127.0.0.1", county.broker.port);
    o.set_keep_alive(Duration::from_secs(10));
    let (replayer, mut conn) = rumqttc::Client::new(o, 16);
    for (i, (_, _, controller)) in county.halls.iter().enumerate() {
        let cmd = json!({"id": format!("replay-{i}"), "command": "resend", "from_seq": 1});
        replayer
            .publish(
                format!("hallq/hall-{i}/{controller}/cmd"),
                rumqttc::QoS::AtLeastOnce,
                false,
                cmd.to_string(),
            )
            .expect("publish");
    }
    let mut acked = 0;
    for ev in conn.iter() {
        if let Ok(rumqttc::Event::Incoming(rumqttc::Incoming::PubAck(_))) = ev {
            acked += 1;
            if acked == county.halls.len() {
                break;
            }
        }
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let dup = a.metric("hallq_server_events_duplicate_total")
            + b.metric("hallq_server_events_duplicate_total");
        let resent = county
            .pg
            .sql("SELECT count(*) FROM events WHERE type = 'events_resent'");
        // At least one `events_resent` per controller (the server's own gap repair may
        // have asked too, while the replay's first events looked like news).
        let resent_all = resent.parse::<usize>().unwrap_or(0) >= county.halls.len();
        if dup - dup_before >= stored && resent_all {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the replay did not arrive: {} duplicates of {stored}, {resent} events_resent",
            dup - dup_before
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    county.wait_until_whole(Duration::from_secs(30), &[&a, &b]);
    let after = before(&a.get(&format!("/api/v1/period?month={}", &today[..7])));
    assert_eq!(after, view_before, "the replay changed the figures");

    // Each hall's bad rating opened a follow-up, open and not yet overdue; one closed
    // from above (`follow_up`) leaves the other two.
    let open = a.get("/api/v1/follow-ups?state=open");
    let list = open["follow_ups"].as_array().cloned().unwrap_or_default();
    assert_eq!(list.len(), 3, "{open}");
    for f in &list {
        assert_eq!(
            (&f["state"], &f["overdue"], &f["level"], &f["reasons"]),
            (
                &json!("open"),
                &json!(false),
                &json!("不满意"),
                &json!(["办事效率低"])
            ),
            "{f}"
        );
    }
    let overdue = a.get("/api/v1/follow-ups?state=overdue");
    assert_eq!(overdue["follow_ups"], json!([]), "{overdue}");
    let town = a.get("/api/v1/follow-ups?region=330122100000");
    assert_eq!(
        town["follow_ups"].as_array().map(Vec::len),
        Some(2),
        "{town}"
    );
    let (s, body) = a.get_as(&a.admin_token(), "/api/v1/follow-ups?state=closed");
    assert_eq!((s, body["field"].as_str()), (400, Some("state")), "{body}");
    let hall0 = list
        .iter()
        .find(|f| f["hall_id"] == "hall-0")
        .cloned()
        .expect("hall-0's follow-up");
    let mut o = rumqttc::MqttOptions::new("supervisor", "127.0.0.1", county.broker.port);
    o.set_keep_alive(Duration::from_secs(10));
    let (supervisor, mut conn) = rumqttc::Client::new(o, 16);
    let step = json!({"id": "follow-up-1", "command": "follow_up", "ticket": hall0["ticket"],
        "step": "closed", "note": "已电话回访，群众表示理解", "by": "county"});
    supervisor
        .publish(
            "hallq/hall-0/ctl-0/cmd",
            rumqttc::QoS::AtLeastOnce,
            false,
            step.to_string(),
        )
        .expect("publish");
    for ev in conn.iter() {
        if let Ok(rumqttc::Event::Incoming(rumqttc::Incoming::PubAck(_))) = ev {
            break;
        }
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let open = a.get("/api/v1/follow-ups");
        let halls: Vec<&str> = open["follow_ups"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|f| f["hall_id"].as_str())
            .collect();
        if halls == ["hall-1", "hall-2"] || halls == ["hall-2", "hall-1"] {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the follow-up was not closed: {open}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let closed = county.pg.sql(
        "SELECT state || ' ' || jsonb_array_length(steps) FROM follow_ups WHERE hall_id = 'hall-0'",
    );
    assert_eq!(closed, "closed 1");
}

/// 200 halls (20 townships of 10) with a month of figures: 20 services, 12 windows,
/// 12 staff and 10 hours per hall and day.
fn county_of_200() -> String {
    let mut t = String::from("[[region]]\ncode = \"330122000000\"\nname = \"青山县\"\n");
    for k in 0..20 {
        t.push_str(&format!(
            "[[region]]\ncode = \"330122{:03}000\"\nname = \"镇{k}\"\n",
            101 + k
        ));
        for j in 0..10 {
            t.push_str(&format!(
                "[[hall]]\nid = \"hall-{}\"\nname = \"便民服务中心 {k}-{j}\"\nregion = \"330122{:03}000\"\n",
                k * 10 + j,
                101 + k
            ));
        }
    }
    t
}

#[test]
fn a_county_months_roll_up_is_timed() {
    let Some(county) = County::new("a_county_months_roll_up_is_timed", 0) else {
        return;
    };
    let a = Instance::start(
        county.dir.path(),
        "a",
        county.broker.port,
        &county.pg.url(),
        &county_of_200(),
    );
    let filled = Instant::now();
    county.pg.sql(
        "INSERT INTO period_figures (hall_id, day, scope, key, issued, called, served, no_shows,
             waits, wait_sum, wait_max, services, service_sum, service_max, very_satisfied,
             satisfied, dissatisfied, warnings, warnings_handled)
         SELECT 'hall-' || h, d::date, s.scope, s.key, 20 + (h + s.n) % 30, 18, 17, 1,
             18, 18 * (300 + h), 1800, 17, 17 * 600, 2400, 10, 5, (h + s.n) % 2, 2, 1
         FROM generate_series(0, 199) AS h,
              generate_series('2026-11-01'::date, '2026-11-30'::date, '1 day') AS d,
              (SELECT 'hall' AS scope, '' AS key, 0 AS n
               UNION ALL SELECT 'service', 'S' || i, i FROM generate_series(1, 20) AS i
               UNION ALL SELECT 'window', i::text, i FROM generate_series(1, 12) AS i
               UNION ALL SELECT 'staff', 'S' || lpad(i::text, 3, '0'), i
                         FROM generate_series(1, 12) AS i
               UNION ALL SELECT 'hour', lpad(i::text, 2, '0'), i FROM generate_series(8, 17) AS i)
              AS s;
         INSERT INTO period_reasons (hall_id, day, scope, key, reason, n)
         SELECT hall_id, day, scope, key, '办事效率低', dissatisfied FROM period_figures
         WHERE dissatisfied > 0;
         INSERT INTO follow_ups (controller_id, ticket, hall_id, number, service, window_no,
             staff, level, reasons, rated_at, due_day, due_at, state, updated_at)
         SELECT 'ctl-' || hall_id, day - '2026-11-01'::date, hall_id, 'A001', 'S1', 1, 'S001',
             '不满意', '{办事效率低}',
             extract(epoch FROM day + time '10:00')::int8 * 1000 - 28800000,
             day + 3, extract(epoch FROM day + 4)::int8 * 1000 - 18000000,
             CASE WHEN day < '2026-11-20' THEN 'closed' ELSE 'open' END, 0
         FROM period_figures WHERE scope = 'hall' AND dissatisfied > 0;
         ANALYZE period_figures; ANALYZE period_reasons; ANALYZE follow_ups;",
    );
    let rows = county.pg.sql("SELECT count(*) FROM period_figures");
    let fill = filled.elapsed();
    let mut times = Vec::new();
    let mut view = Value::Null;
    for _ in 0..9 {
        let started = Instant::now();
        view = a.get("/api/v1/period?month=2026-11");
        times.push(started.elapsed());
    }
    times.sort();
    assert_eq!(view["halls"].as_array().map(Vec::len), Some(200));
    assert_eq!(view["regions"].as_array().map(Vec::len), Some(21));
    let county_issued: i64 = view["halls"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|h| h["issued"].as_i64().unwrap_or(0))
        .sum();
    assert_eq!(view["regions"][0]["issued"].as_i64(), Some(county_issued));
    let follow_ups: i64 = county
        .pg
        .sql("SELECT count(*) FROM follow_ups")
        .parse()
        .expect("count");
    assert!(follow_ups > 0);
    assert_eq!(
        view["regions"][0]["follow_ups"]["opened"].as_i64(),
        Some(follow_ups),
        "{}",
        view["regions"][0]
    );
    let started = Instant::now();
    let one = a.get("/api/v1/period?month=2026-11&hall=hall-7");
    let detail = started.elapsed();
    assert_eq!(one["detail"]["services"].as_array().map(Vec::len), Some(20));
    println!(
        "period roll-up: {rows} rows in period_figures (200 halls × 30 days × 55) and \
         {follow_ups} follow-ups, filled in {:.1} s; \
         GET /api/v1/period?month=2026-11 (200 halls, 21 regions, ranking), 9 runs: \
         p50 {} ms, max {} ms; with one hall's detail: {} ms",
        fill.as_secs_f64(),
        times[times.len() / 2].as_millis(),
        times[times.len() - 1].as_millis(),
        detail.as_millis()
    );
}

/// 青山县 with its hall, 青山镇 (its hall, and 东村 below it with a village hall) and 石门乡
/// with its hall: two townships to rank, a village to drill into.
const PERIOD_TREE: &str = "
[[region]]
code = \"330122000000\"
name = \"青山县\"
[[region]]
code = \"330122100000\"
name = \"青山镇\"
[[region]]
code = \"330122100201\"
name = \"东村\"
[[region]]
code = \"330122200000\"
name = \"石门乡\"
[[hall]]
id = \"hall-0\"
name = \"青山县政务服务中心\"
region = \"330122000000\"
[[hall]]
id = \"hall-1\"
name = \"青山镇便民服务中心\"
region = \"330122100000\"
[[hall]]
id = \"hall-2\"
name = \"东村便民服务站\"
region = \"330122100201\"
[[hall]]
id = \"hall-3\"
name = \"石门乡便民服务中心\"
region = \"330122200000\"
";

/// A rating's level and reasons.
type Rating<'a> = (&'a str, &'a [&'a str]);

/// Calls the next ticket at window 1, serves it and rates it from the pad: the ticket.
fn serve_and_rate(url: &str, clerk: &str, level: &str, reasons: &[&str]) -> u64 {
    let ticket = called(&act(url, clerk, "call-next", json!({})));
    act(url, clerk, "start", json!({}));
    act(url, clerk, "finish", json!({}));
    rate(url, ticket, level, reasons);
    ticket
}

/// The period views on the county dashboard, from a day's work at four halls: the
/// county's figures, its two townships ranked and its four halls ranked; a follow-up
/// closed on the dashboard counted closed; the picker's days (the API's refusal shown
/// next to the field, an empty day, the day itself); drilling into a township and its
/// village; a hall's tables per window, staff number, service, hour and day and its bad
/// ratings; a table downloaded as CSV; three languages.
#[test]
// Over 100 lines: one day's work, then one supervisor's session through the views.
#[allow(clippy::too_many_lines)]
fn the_period_views_and_appraisal_on_the_county_dashboard() {
    let Some(county) = County::build("the_period_views", 4, "", |_, hall| {
        hall.add_staff_named("S001", "张三", "135790", &["--window", "1"]);
    }) else {
        return;
    };
    let a = Instance::start(
        county.dir.path(),
        "a",
        county.broker.port,
        &county.pg.url(),
        &format!("{INGEST}{PERIOD_TREE}"),
    );
    // hall-0: 3 tickets, one served and rated 不满意, two no-shows. hall-1: 4 tickets, two
    // served (非常满意, 不满意). hall-2: 2 tickets, one served (满意). hall-3: 3 tickets,
    // all served (非常满意, 不满意, 非常不满意).
    let work: [(usize, &[Rating]); 4] = [
        (3, &[("不满意", &["办事效率低"])]),
        (4, &[("非常满意", &[]), ("不满意", &["服务态度差"])]),
        (2, &[("满意", &[])]),
        (
            3,
            &[
                ("非常满意", &[]),
                ("不满意", &["办事效率低"]),
                ("非常不满意", &["多次跑腿"]),
            ],
        ),
    ];
    let mut last_bad = Vec::new();
    for (i, (tickets, ratings)) in work.iter().enumerate() {
        let url = &county.halls[i].1.url;
        for _ in 0..*tickets {
            issue(url);
        }
        let clerk = sign_in(url, "S001", "135790", Some(1));
        let mut bad = 0;
        for (level, reasons) in *ratings {
            let t = serve_and_rate(url, &clerk, level, reasons);
            if !reasons.is_empty() {
                bad = t;
            }
        }
        if i == 0 {
            // Two no-shows each (the first sends a ticket back to the queue).
            for _ in 0..4 {
                act(url, &clerk, "call-next", json!({}));
                act(url, &clerk, "no-show", json!({}));
            }
        }
        last_bad.push(bad);
    }
    county.wait_until_whole(Duration::from_secs(60), &[&a]);
    // Every bad rating's follow-up is in.
    wait_for(Duration::from_secs(30), "the four follow-ups", || {
        let open = a.get("/api/v1/follow-ups");
        (open["follow_ups"].as_array().map(Vec::len) == Some(4)).then_some(())
    });
    let today = county
        .pg
        .sql("SELECT max(day)::text FROM period_figures WHERE scope = 'hall'");
    let yesterday = (chrono::NaiveDate::parse_from_str(&today, "%Y-%m-%d").expect("day")
        - chrono::Duration::days(1))
    .to_string();
    let day_q = format!("from={today}&to={today}");
    // What the API says, for the figures the pages must show.
    let view = a.get(&format!("/api/v1/period?{day_q}"));
    let region = |code: &str| -> Value {
        view["regions"]
            .as_array()
            .and_then(|r| r.iter().find(|r| r["code"] == code))
            .cloned()
            .expect("region")
    };
    assert_eq!(region("330122000000")["issued"], 12, "{view}");
    assert_eq!(region("330122000000")["bad"], 4, "{view}");
    assert_eq!(region("330122000000")["follow_ups"]["opened"], 4, "{view}");
    assert_eq!(
        (
            region("330122100000")["rank"].as_u64(),
            region("330122200000")["rank"].as_u64(),
            region("330122100201")["rank"].as_u64()
        ),
        (Some(1), Some(2), Some(1)),
        "{view}"
    );
    let ranked: Vec<&str> = view["ranking"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["hall"].as_str())
        .collect();
    assert_eq!(ranked, ["hall-2", "hall-1", "hall-3", "hall-0"], "{view}");
    let hall1 = a.get(&format!("/api/v1/period?{day_q}&hall=hall-1"));
    let w1 = hall1["detail"]["windows"]
        .as_array()
        .and_then(|w| w.iter().find(|w| w["key"] == "1"))
        .cloned()
        .expect("window 1");
    assert_eq!(
        (
            &w1["served"],
            &w1["rated"],
            &w1["bad"],
            &w1["follow_ups"]["opened"]
        ),
        (&json!(2), &json!(2), &json!(1), &json!(1)),
        "{w1}"
    );
    let bad1 = &hall1["detail"]["bad_ratings"];
    assert_eq!(bad1.as_array().map(Vec::len), Some(1), "{bad1}");
    assert_eq!(bad1[0]["reasons"], json!(["服务态度差"]), "{bad1}");

    let (ok, out) = a.account(
        &[
            "add",
            "wang.fang",
            "--name",
            "王芳",
            "--role",
            "supervisor",
            "--region",
            "330122000000",
        ],
        "qingshan county 1",
    );
    assert!(ok, "{out}");
    let Some((_driver, b)) = open_dashboard("the_period_views", &a, 1100) else {
        return;
    };
    let downloads = tempfile::tempdir().expect("downloads");
    b.downloads_to(downloads.path()).expect("downloads");
    b.type_into("#login-name", "wang.fang").expect("login");
    b.type_into("#login-password", "qingshan county 1")
        .expect("password");
    b.click("#login-submit").expect("submit");
    b.wait_for("the dashboard", 20, |b| b.visible("#period-panel"))
        .expect("dashboard");
    let pick = |b: &Browser, kind: &str, values: &[(&str, &str)]| {
        b.click(&format!("#pk-{kind}")).expect("kind");
        for (id, v) in values {
            b.js(
                "const e = document.getElementById(arguments[0]); e.value = arguments[1]; \
                 e.dispatchEvent(new Event('input', {bubbles: true}));",
                json!([id, v]),
            )
            .expect("value");
        }
        b.click("#p-show").expect("show");
    };
    let figure = |b: &Browser, id: &str| {
        b.js(
            "const e = document.querySelector(`#p-figures [data-p-figure='${arguments[0]}']`); \
             return e ? e.dataset.value : null;",
            json!([id]),
        )
        .unwrap_or(Value::Null)
    };
    let cell = |b: &Browser, table: &str, row: &str, col: &str| {
        b.text(&format!(
            "#{table} tr[data-key='{row}'] td[data-col='{col}']"
        ))
    };
    let rows = |b: &Browser, table: &str| -> Vec<String> {
        b.js(
            "return [...document.querySelectorAll(`#${arguments[0]} tbody tr[data-key]`)].map((r) => r.dataset.key)",
            json!([table]),
        )
        .ok()
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default()
    };
    let span = |b: &Browser| {
        b.js(
            "const p = document.getElementById('period-panel'); return [p.dataset.from || '', p.dataset.to || '']",
            json!([]),
        )
        .unwrap_or(Value::Null)
    };

    // The county's month: its figures, its townships ranked, its halls ranked.
    pick(&b, "month", &[("p-month", &today[..7])]);
    b.wait_for("the county's month", 30, |b| {
        figure(b, "issued") == json!("12") && rows(b, "period").len() == 4
    })
    .expect("the county's month");
    assert_eq!(figure(&b, "bad"), json!("4"));
    assert_eq!(figure(&b, "rated"), json!("7"));
    assert_eq!(
        b.text("#p-figures [data-p-figure='satisfaction'] .n"),
        "42.9%"
    );
    assert_eq!(figure(&b, "fu_opened"), json!("4"));
    assert_eq!(rows(&b, "p-regions"), ["330122100000", "330122200000"]);
    assert_eq!(cell(&b, "p-regions", "330122100000", "rank"), "1");
    assert_eq!(cell(&b, "p-regions", "330122100000", "region"), "青山镇");
    assert_eq!(cell(&b, "p-regions", "330122100000", "halls"), "2");
    assert_eq!(cell(&b, "p-regions", "330122100000", "issued"), "6");
    assert_eq!(
        cell(&b, "p-regions", "330122100000", "satisfaction"),
        "66.7%"
    );
    assert_eq!(cell(&b, "p-regions", "330122200000", "rank"), "2");
    assert_eq!(cell(&b, "p-regions", "330122200000", "bad"), "2");
    assert_eq!(
        cell(&b, "p-regions", "330122200000", "satisfaction"),
        "33.3%"
    );
    assert_eq!(rows(&b, "period"), ["hall-2", "hall-1", "hall-3", "hall-0"]);
    assert_eq!(cell(&b, "period", "hall-0", "no_show_rate"), "66.7%");
    assert!(
        b.text("#p-levels [data-level='very_dissatisfied']")
            .ends_with('1'),
        "{}",
        b.text("#p-levels")
    );
    assert!(
        b.text("#p-levels .reasons").contains("办事效率低 2"),
        "{}",
        b.text("#p-levels")
    );
    // A follow-up closed on the dashboard comes back from the hall and counts closed.
    let item = format!("#follow-ups li[data-follow-up='ctl-3/{}']", last_bad[3]);
    b.wait_for("hall-3's follow-up", 20, |b| b.visible(&item))
        .expect("follow-up listed");
    b.js(
        "document.querySelector(arguments[0] + ' select.step').value = 'closed'",
        json!([item]),
    )
    .expect("step");
    b.type_into(&format!("{item} input.note"), "已回访，群众满意")
        .expect("note");
    b.click(&format!("{item} button.send-step"))
        .expect("send step");
    b.wait_for("the follow-up closed in the figures", 40, |b| {
        figure(b, "fu_closed") == json!("1")
            && cell(b, "p-regions", "330122200000", "fu_closed") == "1"
    })
    .expect("closed counted");
    assert_eq!(cell(&b, "period", "hall-3", "fu_closed"), "1");
    b.js(
        "document.getElementById('period-panel').scrollIntoView()",
        json!([]),
    )
    .expect("scroll");
    b.screenshot(&hallq_tests::screens_dir().join("county-period.png"))
        .expect("screenshot");

    // Days: a last day before the first is the API's to refuse, next to the field.
    let month_span = span(&b);
    pick(&b, "range", &[("p-from", &today), ("p-to", &yesterday)]);
    b.wait_for("the refusal next to the last day", 20, |b| {
        b.text("#p-to-error").contains("截止日须不早于起始日")
    })
    .expect("refusal");
    assert!(
        b.text("#p-to-error").contains("the span must be"),
        "{}",
        b.text("#p-to-error")
    );
    assert_eq!(
        b.js(
            "return document.getElementById('p-to').getAttribute('aria-invalid')",
            json!([])
        )
        .expect("aria"),
        json!("true")
    );
    assert_eq!(span(&b), month_span, "the refused days changed the view");
    // The day before: nothing; the day itself: the day's figures.
    pick(&b, "range", &[("p-from", &yesterday), ("p-to", &yesterday)]);
    b.wait_for("the day before", 20, |b| {
        span(b) == json!([yesterday, yesterday]) && figure(b, "issued") == json!("0")
    })
    .expect("the day before");
    assert_eq!(b.text("#p-to-error"), "");
    assert_eq!(cell(&b, "period", "hall-1", "satisfaction"), "—");
    pick(&b, "range", &[("p-from", &today), ("p-to", &today)]);
    b.wait_for("the day", 20, |b| {
        span(b) == json!([today, today]) && figure(b, "issued") == json!("12")
    })
    .expect("the day");

    // Down to 青山镇 from its row (the keyboard: its link and Enter): its village ranked,
    // its two halls ranked; the days chosen stay.
    b.js(
        "document.querySelector(\"#p-regions tr[data-region='330122100000'] a\").focus()",
        json!([]),
    )
    .expect("focus");
    b.press("\u{E007}").expect("Enter");
    b.wait_for("the township's period", 20, |b| {
        b.text("#crumbs").contains("青山镇") && rows(b, "period") == ["hall-2", "hall-1"]
    })
    .expect("township");
    assert_eq!(span(&b), json!([today, today]));
    assert_eq!(figure(&b, "issued"), json!("6"));
    assert_eq!(rows(&b, "p-regions"), ["330122100201"]);
    assert_eq!(cell(&b, "p-regions", "330122100201", "region"), "东村");
    assert_eq!(cell(&b, "p-regions", "330122100201", "rank"), "1");

    // A hall's tables.
    b.click("#period tr[data-hall='hall-1'] a").expect("hall-1");
    b.wait_for("hall-1's tables", 30, |b| {
        b.visible("#p-hall") && cell(b, "p-windows", "1", "served") == "2"
    })
    .expect("hall tables");
    assert_eq!(b.text("#p-figures [data-p-figure='rank'] .n"), "2/4");
    assert_eq!(cell(&b, "p-windows", "1", "rated"), "2");
    assert_eq!(cell(&b, "p-windows", "1", "bad"), "1");
    assert_eq!(cell(&b, "p-windows", "1", "satisfaction"), "50.0%");
    assert_eq!(cell(&b, "p-windows", "1", "fu_opened"), "1");
    assert_eq!(rows(&b, "p-staff"), ["S001"]);
    assert_eq!(cell(&b, "p-staff", "S001", "served"), "2");
    assert_eq!(cell(&b, "p-services", "SB", "issued"), "4");
    // The service's name comes from the hall's state (the period figures have codes).
    let live = a.get("/api/v1/halls/hall-1");
    let sb = live["services"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["code"] == "SB"))
        .map(|s| &s["name"])
        .and_then(|n| n.as_str().or_else(|| n["zh-CN"].as_str()))
        .unwrap_or_else(|| panic!("SB's name: {live}"))
        .to_string();
    assert_eq!(cell(&b, "p-services", "SB", "name"), sb);
    assert_ne!(sb, "SB");
    let by_hour: i64 = b
        .js(
            "return [...document.querySelectorAll(\"#p-hours td[data-col='issued']\")].reduce((s, c) => s + Number(c.dataset.value), 0)",
            json!([]),
        )
        .ok()
        .and_then(|v| v.as_i64())
        .unwrap_or(0);
    assert_eq!(by_hour, 4);
    assert_eq!(rows(&b, "p-days"), [today.as_str()]);
    let bad_row = "#p-bad tbody tr[data-ticket]";
    assert!(
        b.text(bad_row).contains("服务态度差") && b.text(bad_row).contains("待受理"),
        "{}",
        b.text("#p-bad")
    );
    assert!(
        !b.text("#period-panel").contains("张三"),
        "a staff member's name on the page"
    );
    b.js(
        "document.getElementById('period-panel').scrollIntoView()",
        json!([]),
    )
    .expect("scroll");
    b.screenshot(&hallq_tests::screens_dir().join("county-period-hall.png"))
        .expect("screenshot");

    // The windows table as CSV: a file as Excel takes it, the figures as shown.
    b.click("#p-hall button.csv[data-table='windows']")
        .expect("CSV");
    let file = downloads
        .path()
        .join(format!("hallq-hall-1-{today}_{today}-windows.csv"));
    let bytes = wait_for(Duration::from_secs(20), "the CSV file", || {
        std::fs::read(&file).ok().filter(|b| !b.is_empty())
    });
    assert!(bytes.starts_with(b"\xEF\xBB\xBF"), "no BOM");
    let text = String::from_utf8(bytes[3..].to_vec()).expect("UTF-8");
    assert!(text.contains("\r\n") && !text.replace("\r\n", "").contains('\n'));
    let table = parse_csv(&text);
    assert_eq!(
        table[0][..6],
        ["窗口", "名称", "呼叫", "办结", "过号", "转移"],
        "{text}"
    );
    let col = |name: &str| {
        table[0]
            .iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("no column {name}: {text}"))
    };
    let row1 = table
        .iter()
        .find(|r| r[0] == "1")
        .expect("window 1 in the CSV");
    assert_eq!(row1[col("办结")], w1["served"].to_string());
    assert_eq!(row1[col("满意率（%）")], "50.0");
    assert_eq!(row1[col("平均等候（秒）")], w1["avg_wait_secs"].to_string());
    assert_eq!(row1[col("需整改")], "1");

    // English and 繁體.
    b.click("#langs button[data-lang='en']").expect("English");
    b.wait_for("English headers", 20, |b| {
        b.text("#p-windows th[data-col='served']") == "Served"
            && b.text("#p-bad-title") == "Bad ratings and their follow-ups"
    })
    .expect("English");
    assert!(b.text(bad_row).contains("open"), "{}", b.text(bad_row));
    b.click("#langs button[data-lang='zh-TW']").expect("繁體");
    b.wait_for("traditional headers", 20, |b| {
        b.text("#p-windows th[data-col='satisfaction']") == "滿意率"
            && b.text("#p-staff-title") == "按工作人員（工號）"
    })
    .expect("繁體");
}

/// A hall's `[queue]` as the JSON a setup push carries.
fn queue_of(hall: &Hall) -> Value {
    let text = std::fs::read_to_string(&hall.config).expect("config");
    let doc: toml::Table = toml::from_str(&text).expect("config reads");
    serde_json::to_value(&doc["queue"]).expect("queue as JSON")
}

/// A ticket for SB at a controller: the status.
fn ticket_status(url: &str) -> u16 {
    send(
        client()
            .post(format!("{url}/api/v1/tickets"))
            .send_json(json!({ "service": "SB" })),
    )
    .0
}

/// Waits until every target of push `id` has answered; the push as listed.
fn answered(a: &Instance, token: &str, id: &str) -> Value {
    wait_for(Duration::from_secs(60), "the push answered", || {
        let (_, list) = a.get_as(token, "/api/v1/pushes");
        list["pushes"]
            .as_array()?
            .iter()
            .find(|p| p["id"] == id)
            .filter(|p| {
                p["targets"]
                    .as_array()
                    .is_some_and(|t| t.iter().all(|t| !t["answered_at"].is_null()))
            })
            .cloned()
    })
}

/// Pushes from above: a township supervisor locks the kiosks of the township's halls
/// (not the county's), puts a notice on one hall's board and unlocks again; a viewer
/// may not, and a bad request names its field. The county's admin pushes a queue setup
/// to the county hall: it is in force at the controller (new name on the kiosk) and its
/// version in the hall's state; a setup dropping a service with a citizen waiting comes
/// back refused naming the key; one with a clash is refused here before it is sent. A
/// controller that is down when a notice is pushed gets it once it is back. Every push
/// is listed with who sent it and each controller's answer, and is in the audit.
#[test]
// Over 100 lines: one supervisor's session, push after push, each checked at the halls.
#[allow(clippy::too_many_lines)]
fn pushes_from_above_reach_a_hall_or_a_region_and_their_answers_come_back() {
    let Some(mut county) = County::build("pushes_from_above", 3, "", |i, hall| {
        if i == 1 {
            hall.add_staff_named("S001", "张三", "135790", &["--window", "1"]);
        }
    }) else {
        return;
    };
    let a = county.instance("a");
    let admin = a.admin_token();
    // A citizen served at hall-1 rates 不满意: a follow-up for the township to take up.
    let url1 = county.halls[1].1.url.clone();
    assert_eq!(ticket_status(&url1), 201);
    let clerk = sign_in(&url1, "S001", "135790", Some(1));
    let rated = called(&act(&url1, &clerk, "call-next", json!({})));
    act(&url1, &clerk, "start", json!({}));
    act(&url1, &clerk, "finish", json!({}));
    rate(&url1, rated, "不满意", &["办事效率低"]);
    wait_for(
        Duration::from_secs(60),
        "three controllers reported",
        || {
            (a.get("/api/v1/controllers")["controllers"]
                .as_array()
                .map(Vec::len)
                == Some(3))
            .then_some(())
        },
    );
    let town_pw = "qingshan-town-33";
    for (login, role) in [("zhao.town", "supervisor"), ("qian.view", "viewer")] {
        let (ok, out) = a.account(
            &[
                "add",
                login,
                "--name",
                "赵",
                "--role",
                role,
                "--region",
                "330122100000",
            ],
            town_pw,
        );
        assert!(ok, "{out}");
    }
    let token = |login: &str| {
        let (s, b) = a.sign_in(login, town_pw);
        assert_eq!(s, 200, "{b}");
        b["token"].as_str().expect("token").to_string()
    };
    let (town, viewer) = (token("zhao.town"), token("qian.view"));
    let region = "/api/v1/regions/330122100000/pushes";

    // Refusals: a viewer, a hall outside the township, bad fields.
    let lock = json!({"command": "lock_kiosk", "message": "系统维护，请到服务台取号"});
    let (s, b) = a.post_as(&viewer, region, &lock);
    assert_eq!((s, b["error"].as_str()), (403, Some("forbidden")), "{b}");
    let (s, b) = a.post_as(&town, "/api/v1/halls/hall-0/pushes", &lock);
    assert_eq!((s, b["field"].as_str()), (404, Some("id")), "{b}");
    let (s, b) = a.post_as(&town, "/api/v1/regions/330122000000/pushes", &lock);
    assert_eq!((s, b["field"].as_str()), (404, Some("code")), "{b}");
    for (body, field) in [
        (json!({"command": "lock_kiosk"}), "message"),
        (
            json!({"command": "show_notice", "text": "x", "minutes": 0}),
            "minutes",
        ),
        (json!({"command": "reboot"}), "command"),
    ] {
        let (s, b) = a.post_as(&town, region, &body);
        assert_eq!((s, b["field"].as_str()), (400, Some(field)), "{body}: {b}");
    }

    // The township's kiosks locked, the county's not.
    let (s, b) = a.post_as(&town, region, &lock);
    assert_eq!(s, 202, "{b}");
    let halls: Vec<&str> = b["targets"]
        .as_array()
        .expect("targets")
        .iter()
        .filter_map(|t| t["hall_id"].as_str())
        .collect();
    assert_eq!(halls, ["hall-1", "hall-2"], "{b}");
    let push = answered(&a, &town, b["id"].as_str().expect("id"));
    assert_eq!(
        (push["by"].as_str(), push["refused"].as_i64()),
        (Some("zhao.town"), Some(0)),
        "{push}"
    );
    assert_eq!(ticket_status(&county.halls[0].1.url), 201);
    for i in [1, 2] {
        assert_eq!(
            ticket_status(&county.halls[i].1.url),
            423,
            "hall-{i} locked"
        );
    }

    // A notice on one hall's board.
    let notice = "今日16:00起停电检修，请提前办理";
    let (s, b) = a.post_as(
        &town,
        "/api/v1/halls/hall-1/pushes",
        &json!({"command": "show_notice", "text": notice, "minutes": 60}),
    );
    assert_eq!(s, 202, "{b}");
    answered(&a, &town, b["id"].as_str().expect("id"));
    let (_, n) = send(
        client()
            .get(format!("{}/api/v1/notices", county.halls[1].1.url))
            .call(),
    );
    assert!(n.to_string().contains(notice), "{n}");

    // Unlocked again, while hall-2's controller is down: it gets the push once back.
    unsafe { libc::kill(county.halls[2].1.pid() as i32, libc::SIGKILL) };
    let (s, b) = a.post_as(&town, region, &json!({"command": "unlock_kiosk"}));
    assert_eq!(s, 202, "{b}");
    let unlock = b["id"].as_str().expect("id").to_string();
    assert_eq!(
        wait_for(Duration::from_secs(30), "hall-1 unlocked", || {
            let s = ticket_status(&county.halls[1].1.url);
            (s != 423).then_some(s)
        }),
        201
    );
    std::thread::sleep(Duration::from_secs(3));
    county.halls[2].1 = county.halls[2].0.start();
    let push = answered(&a, &town, &unlock);
    assert_eq!(push["refused"].as_i64(), Some(0), "{push}");
    assert_eq!(
        ticket_status(&county.halls[2].1.url),
        201,
        "hall-2 unlocked"
    );

    // A queue setup for the county hall, from the county's admin.
    let mut queue = queue_of(&county.halls[0].0);
    queue["services"][0]["name"]["zh-CN"] = json!("社会保障（医保）");
    let (s, b) = a.post_as(
        &admin,
        "/api/v1/halls/hall-0/pushes",
        &json!({"command": "setup", "queue": queue}),
    );
    assert_eq!(s, 202, "{b}");
    assert_eq!(b["targets"][0]["version"].as_i64(), Some(1), "{b}");
    let push = answered(&a, &admin, b["id"].as_str().expect("id"));
    assert_eq!(push["targets"][0]["ok"], json!(true), "{push}");
    let (_, services) = send(
        client()
            .get(format!("{}/api/v1/services", county.halls[0].1.url))
            .call(),
    );
    assert!(
        services.to_string().contains("社会保障（医保）"),
        "{services}"
    );
    wait_for(
        Duration::from_secs(30),
        "the setup's version in the hall's state",
        || {
            let (_, h) = a.get_as(&admin, "/api/v1/halls/hall-0");
            (h["controllers"][0]["config_version"] == 1).then_some(())
        },
    );

    // A clash is refused here; dropping a service with a citizen waiting, by the hall.
    let mut clash = queue.clone();
    clash["services"][1]["prefix"] = clash["services"][0]["prefix"].clone();
    let (s, b) = a.post_as(
        &admin,
        "/api/v1/halls/hall-0/pushes",
        &json!({"command": "setup", "queue": clash}),
    );
    assert_eq!(
        (s, b["field"].as_str()),
        (400, Some("queue.services[1].prefix")),
        "{b}"
    );
    let mut without_sb = queue.clone();
    if let Some(list) = without_sb["services"].as_array_mut() {
        list.retain(|s| s["code"] != "SB");
    }
    if let Some(windows) = without_sb["windows"].as_array_mut() {
        for w in windows.iter_mut() {
            if let Some(serves) = w["services"].as_array_mut() {
                serves.retain(|c| c["code"] != "SB");
            }
        }
        windows.retain(|w| w["services"].as_array().is_some_and(|s| !s.is_empty()));
    }
    let (s, b) = a.post_as(
        &admin,
        "/api/v1/halls/hall-0/pushes",
        &json!({"command": "setup", "queue": without_sb}),
    );
    assert_eq!(s, 202, "{b}");
    assert_eq!(b["targets"][0]["version"].as_i64(), Some(2), "{b}");
    let push = answered(&a, &admin, b["id"].as_str().expect("id"));
    let target = &push["targets"][0];
    assert_eq!(target["ok"], json!(false), "{push}");
    assert!(
        target["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("queue.services")),
        "{push}"
    );

    // The township's supervisor sees the township's pushes only; the audit has them all.
    let (_, mine) = a.get_as(&town, "/api/v1/pushes");
    let commands: Vec<&str> = mine["pushes"]
        .as_array()
        .expect("pushes")
        .iter()
        .filter_map(|p| p["command"].as_str())
        .collect();
    assert_eq!(
        commands,
        ["unlock_kiosk", "show_notice", "lock_kiosk"],
        "{mine}"
    );
    let audit = county.pg.sql(
        "SELECT string_agg(login || ' ' || action || ' ' || target, ',' ORDER BY n) FROM audit
         WHERE action LIKE 'push %'",
    );
    assert_eq!(
        audit.trim(),
        "zhao.town push lock_kiosk region:330122100000,\
         zhao.town push show_notice hall:hall-1,\
         zhao.town push unlock_kiosk region:330122100000,\
         it-admin push setup hall:hall-0,\
         it-admin push setup hall:hall-0"
    );
    let fu = format!("ctl-1/{rated}");
    pushes_in_a_browser(&a, town_pw, &fu, &county.halls[2].1.url);
}

/// The township's supervisor on the dashboard: the month's figures of the township's
/// halls, the bad rating's follow-up taken a step further, a notice to every hall of the
/// township, each answered.
fn pushes_in_a_browser(a: &Instance, password: &str, follow_up: &str, url2: &str) {
    let Some((_driver, b)) = open_dashboard("pushes_from_above", a, 1400) else {
        return;
    };
    b.type_into("#login-name", "zhao.town").expect("login");
    b.type_into("#login-password", password).expect("password");
    b.click("#login-submit").expect("submit");
    let item = format!("#follow-ups li[data-follow-up='{follow_up}']");
    b.wait_for("the month and the follow-up", 30, |b| {
        b.text("#period tr[data-hall='hall-1'] td:nth-child(7)") == "1" && b.visible(&item)
    })
    .expect("the township's month");
    assert_eq!(b.text("#act-title"), "向青山镇全部大厅下发");
    assert!(b.text(&item).contains("办事效率低"), "{}", b.text(&item));
    // A step of the follow-up, sent down to hall-1 and back up as its event.
    b.js(
        "document.querySelector(arguments[0] + ' select.step').value = 'rectified'",
        json!([item]),
    )
    .expect("step");
    b.type_into(&format!("{item} input.note"), "已约谈窗口人员并整改")
        .expect("note");
    b.click(&format!("{item} button.send-step"))
        .expect("send step");
    b.wait_for("the step come back from the hall", 40, |b| {
        b.js(
            "const li = document.querySelector(arguments[0]); return li && li.dataset.state",
            json!([item]),
        )
        .ok()
            == Some(json!("rectified"))
    })
    .expect("the follow-up rectified");
    // A notice to every hall of the township, answered by both.
    let notice = "明日上午系统升级，暂停办理";
    b.type_into("#notice-text", notice).expect("notice");
    b.type_into("#notice-minutes", "30").expect("minutes");
    b.click("#show-notice").expect("show notice");
    b.wait_for("both halls answered", 40, |b| {
        b.js(
            "const li = document.querySelector('#pushes li'); return li && [li.dataset.command, li.dataset.answered]",
            json!([]),
        )
        .ok()
            == Some(json!(["show_notice", "2/2"]))
    })
    .expect("the notice answered");
    assert_eq!(b.text("#act-message"), "已下发到 2 台控制器");
    let (_, n) = send(client().get(format!("{url2}/api/v1/notices")).call());
    assert!(n.to_string().contains(notice), "{n}");
    b.screenshot(&hallq_tests::screens_dir().join("county-pushes.png"))
        .expect("screenshot");
    b.click("#langs button[data-lang='en']").expect("English");
    b.wait_for("English texts", 20, |b| {
        b.text("#act-title") == "Send to every hall of 青山镇"
            && b.text("#pushes li strong") == "Notice"
    })
    .expect("English");
}

/// The fields of a ticket page's status both pages must agree on.
fn page_fields(status: &Value) -> Value {
    json!({
        "number": status["number"], "service": status["service"], "state": status["state"],
        "ahead": status["ahead"], "window": status["window"], "recalls": status["recalls"],
        "service_name": status["service_name"], "requeued": status["requeued"],
    })
}

/// The ticket page a phone opens outside the hall: served by the hall server from the
/// events, it follows a ticket as the controller's own page does (waiting with two
/// ahead, then one, then called to window 1, recalled, finished), over `/status` and the
/// stream; an unknown or malformed token gets the friendly page, counted.
#[test]
fn the_phone_page_outside_the_hall_follows_the_ticket_from_the_events() {
    use std::io::{Read, Write};
    let Some(county) = County::build("the_phone_page_outside_the_hall", 1, "", |_, hall| {
        hall.add_staff_named("S001", "张三", "135790", &["--window", "1"]);
    }) else {
        return;
    };
    let a = county.instance("a");
    let hall = county.halls[0].1.url.clone();
    let tickets: Vec<(u64, String, String)> = (0..3).map(|_| issue(&hall)).collect();
    let (_, number, token) = tickets[2].clone();
    // Both pages agree, once the events are in.
    let agree = |what: &str| -> Value {
        let (s, own) = send(client().get(format!("{hall}/t/{token}/status")).call());
        assert_eq!(s, 200, "{own}");
        let own = page_fields(&own["status"]);
        wait_for(Duration::from_secs(30), what, || {
            // Gently: the page's guard allows 60 requests at once, then one a second.
            std::thread::sleep(Duration::from_millis(250));
            let (s, server) = send(client().get(format!("{}/t/{token}/status", a.url)).call());
            (s == 200 && page_fields(&server["status"]) == own).then_some(server["status"].clone())
        })
    };
    let first = agree("the server's page: waiting, two ahead");
    assert_eq!(
        (
            first["number"].as_str(),
            first["state"].as_str(),
            first["ahead"].as_i64()
        ),
        (Some(number.as_str()), Some("waiting"), Some(2)),
        "{first}"
    );
    assert!(
        first["estimated_wait_minutes"].as_i64().is_some(),
        "{first}"
    );
    assert_eq!(first["service_name"]["zh-CN"], "社会保障", "{first}");
    let page = client()
        .get(format!("{}/t/{token}", a.url))
        .call()
        .expect("page");
    assert_eq!(page.status().as_u16(), 200);
    assert_eq!(
        page.headers()
            .get("cache-control")
            .and_then(|v| v.to_str().ok()),
        Some("no-store")
    );
    let html = page.into_body().read_to_string().expect("html");
    assert!(html.contains("phone.js"), "{html}");
    let css = send(client().get(format!("{}/web/phone.css", a.url)).call()).0;
    assert_eq!(css, 200);

    // The stream: the first status at once, the call as it comes.
    let addr = a.url.trim_start_matches("http://").to_string();
    let mut sock = std::net::TcpStream::connect(&addr).expect("connect");
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    write!(
        sock,
        "GET /t/{token}/stream HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n"
    )
    .expect("request");
    let mut got = Vec::new();
    let mut read_until = |needle: &str, got: &mut Vec<u8>| {
        let end = Instant::now() + Duration::from_secs(30);
        let mut buf = [0u8; 4096];
        while Instant::now() < end && !String::from_utf8_lossy(got).contains(needle) {
            if let Ok(n) = sock.read(&mut buf) {
                got.extend_from_slice(&buf[..n]);
            }
        }
        String::from_utf8_lossy(got).into_owned()
    };
    let text = read_until("event: status", &mut got);
    assert!(text.contains("\"ahead\":2"), "{text}");

    let clerk = sign_in(&hall, "S001", "135790", Some(1));
    act(&hall, &clerk, "call-next", json!({}));
    let one = agree("one ahead");
    assert_eq!(one["ahead"], 1, "{one}");
    act(&hall, &clerk, "start", json!({}));
    act(&hall, &clerk, "finish", json!({}));
    act(&hall, &clerk, "call-next", json!({}));
    act(&hall, &clerk, "start", json!({}));
    act(&hall, &clerk, "finish", json!({}));
    act(&hall, &clerk, "call-next", json!({}));
    let called = agree("called to window 1");
    assert_eq!(
        (called["state"].as_str(), called["window"].as_i64()),
        (Some("called"), Some(1)),
        "{called}"
    );
    let text = read_until("\"state\":\"called\"", &mut got);
    assert!(text.contains("\"window\":1"), "{text}");
    act(&hall, &clerk, "recall", json!({}));
    assert_eq!(agree("recalled")["recalls"], 1);
    act(&hall, &clerk, "start", json!({}));
    act(&hall, &clerk, "finish", json!({}));
    assert_eq!(agree("finished")["state"], "finished");

    // Unknown and malformed tokens: the friendly page, counted.
    for bad in ["0123456789abcdef0123456789abcdef", "not-a-token"] {
        let (s, body) = get_text(&format!("{}/t/{bad}", a.url), "");
        assert_eq!(s, 404, "{body}");
        assert!(body.contains("phone.css"), "{body}");
    }
    assert!(
        a.metrics().contains("hallq_phone_unknown_tokens_total 2"),
        "{}",
        a.metrics()
    );
}

/// TLS to the broker with client certificates, as the controllers have it: mosquitto
/// refuses any client without a certificate signed by the county's CA; a controller and
/// an instance with theirs get every event through, and an instance without one is
/// refused and says so on `/metrics`.
#[test]
fn the_ingest_over_tls_with_client_certificates() {
    use hallq_tests::mqtt::{BrokerTls, Certs};
    let Some(pg) = Postgres::start() else {
        missing_prerequisite(
            "the_ingest_over_tls",
            "PostgreSQL server (Debian package postgresql)",
        );
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let certs = Certs::generate(&dir.path().join("certs"));
    let broker = Broker::start(
        &dir.path().join("broker"),
        &BrokerOptions {
            tls: Some(BrokerTls {
                ca: certs.ca.clone(),
                cert: certs.server.0.clone(),
                key: certs.server.1.clone(),
                require_client_cert: true,
            }),
            password_file: None,
        },
    )
    .expect("mosquitto starts with TLS");
    let tls = format!(
        "ca = {:?}\ncert = {:?}\nkey = {:?}\n",
        certs.ca.display().to_string(),
        certs.client.0.display().to_string(),
        certs.client.1.display().to_string()
    );
    let hall = Hall::new();
    add_uplink(
        &hall.config,
        &format!(
            "{}\n[uplink.tls]\n{tls}",
            uplink_section(broker.port, "hall-0")
        ),
    );
    let d = hall.start();
    let a = Instance::start(
        dir.path(),
        "a",
        broker.port,
        &pg.url(),
        &format!("{INGEST}[broker.tls]\n{tls}"),
    );
    // Without a client certificate (the CA only): refused by the broker.
    let b = Instance::start(
        dir.path(),
        "b",
        broker.port,
        &pg.url(),
        &format!(
            "{INGEST}[broker.tls]\nca = {:?}\n",
            certs.ca.display().to_string()
        ),
    );
    for _ in 0..5 {
        issue(&d.url);
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let at_hall: i64 = hall
            .database()
            .query_row("SELECT count(*) FROM events", [], |r| r.get(0))
            .expect("count");
        let stored: i64 = pg
            .sql("SELECT count(*) FROM events WHERE controller_id = 'qingshan-main'")
            .parse()
            .unwrap_or(0);
        if at_hall >= 5 && stored == at_hall {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{stored} of {at_hall} events over TLS; a's log:\n{}\nthe broker's log:\n{}",
            a.log_text(),
            std::fs::read_to_string(broker.dir.join("mosquitto.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(a.metric("hallq_server_broker_up"), 1.0);
    assert_eq!(b.metric("hallq_server_broker_up"), 0.0);
    assert!(
        b.log_text().contains("broker"),
        "the refusal in b's log: {}",
        b.log_text()
    );
    drop(d);
}

/// The first instant (ms, UTC) of the month `offset` months from the current one, and
/// the name of its partition.
fn month(offset: i32) -> (i64, String) {
    use chrono::Datelike;
    let now = chrono::Utc::now();
    let index = now.year() * 12 + now.month0() as i32 + offset;
    let (year, month0) = (index.div_euclid(12), index.rem_euclid(12) as u32);
    let start = chrono::NaiveDate::from_ymd_opt(year, month0 + 1, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .expect("a month")
        .and_utc()
        .timestamp_millis();
    (start, format!("events_{year:04}_{:02}", month0 + 1))
}

/// An event of controller `ctl-p` at hall-0, in the controllers' envelope.
fn envelope(id: &str, seq: i64, at: i64) -> Value {
    json!({"id": id, "controller_id": "ctl-p", "hall_id": "hall-0", "seq": seq, "schema": 1,
        "at": at, "time": "t", "type": "note", "payload": {"type": "note", "seq": seq}})
}

/// Publishes events on `hallq/hall-0/ctl-p/events` and waits for the broker's PUBACKs.
fn publish_events(port: u16, events: &[Value]) {
    let mut o =
        rumqttc::MqttOptions::new(format!("ctl-p-{}", uuid::Uuid::new_v4()), "127.0.0.1", port);
    o.set_keep_alive(Duration::from_secs(10));
    let (c, mut conn) = rumqttc::Client::new(o, 64);
    for e in events {
        c.publish(
            "hallq/hall-0/ctl-p/events",
            rumqttc::QoS::AtLeastOnce,
            false,
            e.to_string(),
        )
        .expect("publish");
    }
    let mut acked = 0;
    for ev in conn.iter() {
        if let Ok(rumqttc::Event::Incoming(rumqttc::Incoming::PubAck(_))) = ev {
            acked += 1;
            if acked == events.len() {
                break;
            }
        }
    }
}

/// Polls `sql` until it returns `want` (20 s at most).
fn wait_sql(pg: &Postgres, sql: &str, want: &str, a: &Instance) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let got = pg.sql(sql);
        if got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{sql}: {got:?}, not {want:?}; a's log:\n{}",
            a.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn events_land_in_their_months_once_and_old_months_are_dropped_whole() {
    let Some(county) = County::new("events_land_in_their_months_once", 0) else {
        return;
    };
    let a = county.instance("a");
    let (older, older_name) = month(-2);
    let (last, last_name) = month(-1);
    let (this, this_name) = month(0);
    let (next, next_name) = month(1);
    let day = 86_400_000;
    // The current month and two ahead are made at start; the two past months are not.
    let made = county.pg.sql(
        "SELECT string_agg(c.relname, ' ' ORDER BY c.relname) FROM pg_inherits i
         JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'events'::regclass",
    );
    let (_, after_next) = month(2);
    assert_eq!(
        made,
        format!("{this_name} {next_name} {after_next} events_default")
    );
    let ids: Vec<String> = (0..6).map(|_| uuid::Uuid::new_v4().to_string()).collect();
    // Four events in four months: the two past ones go to the default partition at first,
    // and their months are made for them and take them over.
    publish_events(
        county.broker.port,
        &[
            envelope(&ids[0], 1, older + 2 * day),
            envelope(&ids[1], 2, last + 2 * day),
            envelope(&ids[2], 3, hallq_server::now_ms()),
            envelope(&ids[3], 4, next + 2 * day),
        ],
    );
    let placed = format!("1 {older_name}\n2 {last_name}\n3 {this_name}\n4 {next_name}");
    let where_sql = "SELECT seq || ' ' || tableoid::regclass FROM events ORDER BY seq";
    wait_sql(&county.pg, where_sql, &placed, &a);
    // The same event again with another month's time: stored once, where it was. A new
    // id with a seq already taken: a conflict, kept aside.
    publish_events(
        county.broker.port,
        &[
            envelope(&ids[1], 2, this + day),
            envelope(&ids[4], 3, older + 3 * day),
        ],
    );
    wait_sql(
        &county.pg,
        "SELECT count(*) FROM conflicts WHERE controller_id = 'ctl-p' AND seq = 3",
        "1",
        &a,
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while a.metric("hallq_server_events_duplicate_total") < 1.0 {
        assert!(Instant::now() < deadline, "the resend was not counted");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(county.pg.sql(where_sql), placed);
    assert_eq!(
        county
            .pg
            .sql("SELECT count(*) || ' ' || count(DISTINCT id) FROM event_keys"),
        "4 4"
    );
    assert_eq!(
        county.pg.sql(
            "SELECT stored || ' ' || max_seq || ' ' || contiguous_seq || ' ' || conflicts
             FROM controllers WHERE controller_id = 'ctl-p'"
        ),
        "4 4 4 1"
    );
    // A day's query reads that month's partition only.
    let plan = county.pg.sql(&format!(
        "EXPLAIN (COSTS OFF) SELECT id FROM events WHERE type = 'rating_recorded'
         AND at >= {this} AND at < {}",
        this + day
    ));
    assert!(
        plan.contains(&this_name) && !plan.contains(&last_name) && !plan.contains("events_default"),
        "{plan}"
    );

    // Dropping the months before the next one would drop the current month: refused.
    let (ok, _, err) = a.cli(
        "partitions",
        &[
            "drop",
            "--before",
            &next_name["events_".len()..].replace('_', "-"),
        ],
    );
    assert!(!ok && err.contains("current month"), "{err}");
    assert_eq!(county.pg.sql("SELECT count(*) FROM events"), "4");
    // Older than one month: the month before last goes, with its keys.
    let (ok, out, err) = a.cli("partitions", &["drop", "--older-than", "1"]);
    assert!(ok, "{out}{err}");
    let dropped: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(dropped.len(), 2, "{out}");
    assert_eq!(
        (
            dropped[0]["name"].as_str(),
            &dropped[0]["rows"],
            &dropped[0]["keys"]
        ),
        (Some(older_name.as_str()), &json!(1), &json!(1)),
        "{out}"
    );
    assert_eq!(dropped[1]["name"], "events_default", "{out}");
    assert_eq!(
        county.pg.sql(where_sql),
        format!("2 {last_name}\n3 {this_name}\n4 {next_name}")
    );
    assert_eq!(county.pg.sql("SELECT count(*) FROM event_keys"), "3");
    assert_eq!(
        county
            .pg
            .sql(&format!("SELECT to_regclass('{older_name}') IS NULL")),
        "t"
    );
    // A copy of the dropped event, and an event older still: new to the keys, so stored
    // (into the default partition), and their months are not made again.
    publish_events(
        county.broker.port,
        &[
            envelope(&ids[0], 1, older + 2 * day),
            envelope(&ids[5], 5, older - 20 * day),
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while !a.log_text().contains("2 rows are in events_default") {
        assert!(
            Instant::now() < deadline,
            "the keeper did not look; a's log:\n{}",
            a.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        county.pg.sql(where_sql),
        format!("1 events_default\n2 {last_name}\n3 {this_name}\n4 {next_name}\n5 events_default")
    );
    let (ok, out, err) = a.cli("partitions", &["list"]);
    assert!(ok, "{out}{err}");
    let listed: Vec<(String, i64)> = out
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("a JSON line"))
        .map(|p| {
            (
                p["name"].as_str().unwrap_or("").to_string(),
                p["rows"].as_i64().unwrap_or(-1),
            )
        })
        .collect();
    assert_eq!(
        listed,
        vec![
            (last_name.clone(), 1),
            (this_name.clone(), 1),
            (next_name.clone(), 1),
            (after_next, 0),
            ("events_default".to_string(), 2)
        ]
    );
    // The next drop takes them out of the default partition too.
    let (ok, out, err) = a.cli("partitions", &["drop", "--older-than", "1"]);
    assert!(ok, "{out}{err}");
    assert!(
        out.contains(r#"{"name":"events_default","month":null,"rows":2,"keys":2}"#),
        "{out}"
    );
    assert_eq!(
        county.pg.sql(where_sql),
        format!("2 {last_name}\n3 {this_name}\n4 {next_name}")
    );
    assert_eq!(county.pg.sql("SELECT count(*) FROM event_keys"), "3");
}

#[test]
fn a_database_of_version_6_is_partitioned_by_month_with_every_row_kept() {
    let Some(pg) = Postgres::start() else {
        missing_prerequisite(
            "a_database_of_version_6_is_partitioned",
            "PostgreSQL server (Debian package postgresql)",
        );
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let url = pg.url();
    rt.block_on(async {
        let mut db = hallq_server::db::connect(&url, Duration::from_secs(10))
            .await
            .expect("connects");
        hallq_server::db::migrate_to(&mut db, 6)
            .await
            .expect("version 6");
    });
    // Version 6's events: two controllers' 1,500 events each, about an hour apart from
    // the start of the month before last into the current month, tickets with their
    // token hash and ratings among them; and a third controller's two with clocks far
    // off (1970, 2191).
    let (older, older_name) = month(-2);
    let (_, last_name) = month(-1);
    let (this, this_name) = month(0);
    pg.sql(&format!(
        "INSERT INTO events (id, controller_id, hall_id, seq, at, type, payload, stored_at, instance)
         SELECT gen_random_uuid(), 'm-' || c, 'hall-' || c, g, {older} + g::int8 * 5000000,
                CASE WHEN g % 50 = 0 THEN 'rating_recorded'
                     WHEN g % 3 = 0 THEN 'ticket_issued' ELSE 'ticket_called' END,
                CASE WHEN g % 3 = 0
                     THEN jsonb_build_object('ticket', jsonb_build_object('token_hash', md5(c || '-' || g)))
                     ELSE jsonb_build_object('n', g) END,
                {this}, 'v6'
         FROM generate_series(1, 2) c, generate_series(1, 1500) g;
         INSERT INTO events VALUES
           (gen_random_uuid(), 'm-3', 'hall-3', 1, 5, 'note', '{{}}', {this}, 'v6'),
           (gen_random_uuid(), 'm-3', 'hall-3', 2, 7000000000000, 'note', '{{}}', {this}, 'v6');
         INSERT INTO controllers (controller_id, hall_id, max_seq, stored, contiguous_seq)
         VALUES ('m-1', 'hall-1', 1500, 1500, 1500), ('m-2', 'hall-2', 1500, 1500, 1500),
                ('m-3', 'hall-3', 2, 2, 2)"
    ));
    let digest = "SELECT count(*) || ' ' || md5(string_agg(id || controller_id || hall_id || seq
                  || at || type || payload::text || stored_at || instance, ',' ORDER BY id))
                  FROM events";
    let before = pg.sql(digest);
    assert!(before.starts_with("3002 "), "{before}");

    let dir = tempfile::tempdir().expect("temp dir");
    let (config, _) = hallq_tests::server::write_config(dir.path(), "m", 1883, &url, "");
    let out = std::process::Command::new(hallq_tests::server::server_bin())
        .args(["migrate", "--config"])
        .arg(&config)
        .output()
        .expect("hallq-server migrate runs");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && said.contains("2 step(s) applied"),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Every row kept, once, each in the partition of its month (the two far off in the
    // default), with its key.
    assert_eq!(pg.sql(digest), before);
    assert_eq!(
        pg.sql("SELECT count(*) || ' ' || count(DISTINCT id) || ' ' || count(DISTINCT (controller_id, seq)) FROM event_keys"),
        "3002 3002 3002"
    );
    assert_eq!(
        pg.sql(
            "SELECT count(*) FROM events e LEFT JOIN event_keys k USING (id)
             WHERE k.controller_id IS DISTINCT FROM e.controller_id OR k.seq IS DISTINCT FROM e.seq"
        ),
        "0"
    );
    assert_eq!(
        pg.sql(
            "SELECT count(*) FROM events WHERE tableoid::regclass::text <>
             CASE WHEN at < 946684800000 OR at >= 4102444800000 THEN 'events_default'
                  ELSE 'events_' || to_char(to_timestamp(at / 1000.0) AT TIME ZONE 'UTC', 'YYYY_MM') END"
        ),
        "0"
    );
    assert_eq!(
        pg.sql("SELECT string_agg(DISTINCT tableoid::regclass::text, ' ') FROM events"),
        {
            let mut names = [
                older_name.clone(),
                last_name,
                this_name.clone(),
                "events_default".into(),
            ];
            names.sort();
            names.join(" ")
        }
    );
    // Every index the queries use, on the parent and on each partition; the keys' two.
    assert_eq!(
        pg.sql(
            "SELECT string_agg(indexrelid::regclass::text, ' ' ORDER BY indexrelid::regclass::text)
             FROM pg_index WHERE indrelid = 'events'::regclass"
        ),
        "events_hall_at events_ratings events_token_hash"
    );
    let partitions: i64 = pg
        .sql("SELECT count(*) FROM pg_inherits WHERE inhparent = 'events'::regclass")
        .parse()
        .expect("count");
    for index in ["events_hall_at", "events_ratings", "events_token_hash"] {
        assert_eq!(
            pg.sql(&format!(
                "SELECT count(*) FROM pg_inherits WHERE inhparent = '{index}'::regclass"
            )),
            partitions.to_string(),
            "{index} on every partition"
        );
    }
    assert_eq!(
        pg.sql(
            "SELECT string_agg(conname || ' ' || contype::text, ', ' ORDER BY conname) FROM pg_constraint
             WHERE conrelid = 'event_keys'::regclass AND contype IN ('p', 'u')"
        ),
        "event_keys_controller_seq u, event_keys_pkey p"
    );
    // The ingest on the migrated table: a migrated event sent again is a duplicate, a new
    // event goes into its month, a taken seq with another id is a conflict.
    let old: Vec<String> = pg
        .sql("SELECT id || ' ' || at FROM events WHERE controller_id = 'm-1' AND seq = 7")
        .split(' ')
        .map(str::to_string)
        .collect();
    let row = |id: uuid::Uuid, seq: i64, at: i64| hallq_server::db::Row {
        id,
        controller_id: "m-1".into(),
        hall_id: "hall-1".into(),
        seq,
        at,
        kind: "note".into(),
        payload: json!({"type": "note"}),
    };
    let now = hallq_server::now_ms();
    let mut rows = vec![
        row(
            old[0].parse().expect("uuid"),
            7,
            old[1].parse().expect("at"),
        ),
        row(uuid::Uuid::new_v4(), 1501, now),
        row(uuid::Uuid::new_v4(), 8, now),
    ];
    let stored = rt.block_on(async {
        let mut db = hallq_server::db::connect(&url, Duration::from_secs(10))
            .await
            .expect("connects");
        hallq_server::db::store(
            &mut db,
            &mut rows,
            &mut [],
            "t",
            now,
            &hallq_server::rollup::DayClock::default(),
        )
        .await
        .expect("stored")
    });
    assert_eq!(
        (stored.inserted, stored.duplicates, stored.conflicts),
        (1, 1, 1)
    );
    assert_eq!(
        pg.sql("SELECT tableoid::regclass FROM events WHERE controller_id = 'm-1' AND seq = 1501"),
        this_name
    );
    assert_eq!(pg.sql("SELECT count(*) FROM events"), "3003");
}

/// The setup editor: each controller's setup in force comes up on its retained `setup`
/// topic (the file's, without a version) and `GET /api/v1/halls/{id}/setup` serves it to
/// whoever sees the hall; a hall whose controllers never published one is a 404 naming
/// `setup`, a hall outside the caller's region a 404 naming `id`, and a viewer may read
/// but not push (403). Then on the dashboard a county supervisor edits the county hall's
/// setup, is shown the server's refusal of a clash next to the field it names, adds a
/// service with a daily cap at window 8 and pushes it: the controller runs it (its own
/// API lists the service, numbers its tickets and stops at the cap) and the page shows
/// the new version in force. From a township hall's page the same editor pushes to every
/// hall of the township. A viewer sees the setup without the push buttons.
#[test]
fn a_halls_setup_comes_up_from_its_controller_and_is_edited_and_pushed_from_the_dashboard() {
    let Some(county) = County::new("setup_editor", 2) else {
        return;
    };
    let a = county.instance("a");
    let admin = a.admin_token();
    for (i, (hall, _, controller)) in county.halls.iter().enumerate() {
        let got = wait_for(LONG, "the hall's setup on the server", || {
            let (s, b) = a.get_as(&admin, &format!("/api/v1/halls/hall-{i}/setup"));
            (s == 200).then_some(b)
        });
        let setup = &got["setups"][0];
        assert_eq!(
            (setup["controller_id"].as_str(), setup["version"].clone()),
            (Some(controller.as_str()), Value::Null),
            "{got}"
        );
        let on_server =
            hallq::uplink::apply::parse_setup(&setup["queue"]).expect("a setup the hall reads");
        let in_file = hallq::uplink::apply::parse_setup(&queue_of(hall)).expect("the file's");
        assert_eq!(on_server, in_file, "hall-{i}");
        assert!(setup["guide"]["SB"]["item_code"].is_string(), "{got}");
    }
    let (s, b) = a.get_as(&admin, "/api/v1/halls/hall-2/setup");
    assert_eq!((s, b["field"].as_str()), (404, Some("setup")), "{b}");

    let pw = "qingshan-setup-44";
    for (login, role, region) in [
        ("wang.fang", "supervisor", "330122000000"),
        ("qian.view", "viewer", "330122100000"),
    ] {
        let (ok, out) = a.account(
            &[
                "add", login, "--name", "王芳", "--role", role, "--region", region,
            ],
            pw,
        );
        assert!(ok, "{out}");
    }
    let (s, b) = a.sign_in("qian.view", pw);
    assert_eq!(s, 200, "{b}");
    let viewer = b["token"].as_str().expect("token").to_string();
    let (s, b) = a.get_as(&viewer, "/api/v1/halls/hall-1/setup");
    assert_eq!(s, 200, "{b}");
    let (s, b) = a.get_as(&viewer, "/api/v1/halls/hall-0/setup");
    assert_eq!((s, b["field"].as_str()), (404, Some("id")), "{b}");
    let (s, b) = a.post_as(
        &viewer,
        "/api/v1/halls/hall-1/pushes",
        &json!({"command": "setup", "queue": queue_of(&county.halls[1].0)}),
    );
    assert_eq!((s, b["error"].as_str()), (403, Some("forbidden")), "{b}");

    setup_in_a_browser(&a, pw, &county.halls[0].1.url, &county.halls[1].1.url);
}

/// A ticket for `service` at a controller: the status and the answer.
fn take(url: &str, service: &str) -> (u16, Value) {
    send(
        client()
            .post(format!("{url}/api/v1/tickets"))
            .send_json(json!({ "service": service })),
    )
}

/// The dashboard's setup editor, driven as a supervisor and then a viewer would.
// Over 100 lines: one supervisor's edit, push and check after another, then the viewer.
#[allow(clippy::too_many_lines)]
fn setup_in_a_browser(a: &Instance, password: &str, url0: &str, url1: &str) {
    let Some((_driver, b)) = open_dashboard("setup_editor", a, 1400) else {
        return;
    };
    let sign_in_as = |login: &str| {
        b.type_into("#login-name", login).expect("login");
        b.type_into("#login-password", password).expect("password");
        b.click("#login-submit").expect("submit");
        b.wait_for("signed in", 20, |b| b.visible("#sign-out"))
            .expect("signed in");
    };
    let go = |hall: &str| {
        b.js("location.hash = arguments[0]", json!([format!("h/{hall}")]))
            .expect("hall page");
    };
    let count = |css: &str| {
        b.js(
            "return document.querySelectorAll(arguments[0]).length",
            json!([css]),
        )
        .expect("count")
    };
    let data = |css: &str, name: &str| {
        b.js(
            "const e = document.querySelector(arguments[0]); return e ? e.dataset[arguments[1]] : null",
            json!([css, name]),
        )
        .expect("data attribute")
    };
    sign_in_as("wang.fang");
    go("hall-0");
    b.wait_for("the county hall's setup in the editor", 30, |b| {
        b.visible("#su-form")
            && count("#su-service-list details[data-service]") == json!(6)
            && count("#su-window-list details[data-window]") == json!(9)
    })
    .expect("the editor");
    assert_eq!(b.text("#su-version"), "· 控制器本地配置");
    assert!(b.visible("#su-push-hall"));

    // A clash: the server names the key, and the message shows next to that field.
    b.click("#su-service-list details[data-service='MZ'] > summary")
        .expect("MZ opened");
    let prefix1 = "[data-key='queue.services[1].prefix']";
    assert_eq!(
        b.js(
            "return document.querySelector(arguments[0]).value",
            json!([prefix1])
        )
        .expect("prefix"),
        json!("B")
    );
    b.type_into(prefix1, "A").expect("clash");
    b.click("#su-push-hall").expect("push");
    b.wait_for("the refusal next to the field", 20, |b| {
        b.js(
            "return document.querySelector(arguments[0]).getAttribute('aria-invalid')",
            json!([prefix1]),
        )
        .ok()
            == Some(json!("true"))
    })
    .expect("the field marked");
    let error = b.text("#su-queue-services-1-prefix-error");
    assert!(error.contains("numbers would repeat"), "{error}");
    assert!(
        b.text("#su-message").contains("queue.services[1].prefix"),
        "{}",
        b.text("#su-message")
    );
    assert_eq!(
        b.js(
            "return document.activeElement && document.activeElement.dataset.key",
            json!([])
        )
        .expect("focus"),
        json!("queue.services[1].prefix"),
        "the focus goes to the field at fault"
    );

    // Put right; a new service 住房公积金 with 2 tickets a day, at window 8.
    b.type_into(prefix1, "B").expect("prefix");
    assert_eq!(b.text("#su-queue-services-1-prefix-error"), "");
    b.click("#su-add-service").expect("add a service");
    let new = |field: &str| format!("[data-key='queue.services[6].{field}']");
    b.wait_for("the new service's fields", 20, |b| b.visible(&new("code")))
        .expect("new service");
    for (field, value) in [
        ("code", "GJJ"),
        ("prefix", "G"),
        ("name.zh-CN", "住房公积金"),
        ("name.zh-TW", "住房公積金"),
        ("name.en", "Housing fund"),
        ("department", "县住房公积金中心"),
        ("daily_cap", "2"),
        ("quota.minutes", "30"),
        ("quota.max", "20"),
    ] {
        b.type_into(&new(field), value).expect(field);
    }
    b.click("#su-window-list details[data-window='8'] > summary")
        .expect("window 8 opened");
    let serves = "#su-window-list details[data-window='8'] input[data-serves='GJJ']";
    b.wait_for("window 8 may serve GJJ", 20, |b| b.visible(serves))
        .expect("the new service among window 8's");
    b.click(serves).expect("window 8 serves GJJ");
    b.click("#su-push-hall").expect("push");
    b.wait_for("the push sent", 20, |b| {
        b.text("#su-message") == "已下发到 1 台控制器（版本 1），执行结果见下表"
    })
    .expect("sent");
    b.wait_for("version 1 in force at the hall", 60, |b| {
        data("#su-answers tr[data-controller='ctl-0']", "answer") == json!("ok")
            && data("#su-answers tr[data-controller='ctl-0']", "inForce") == json!("1")
            && data("#su-version", "version") == json!("1")
            && b.visible("#su-service-list details[data-service='GJJ']")
    })
    .expect("version 1 in force");
    assert_eq!(b.text("#su-version"), "· 生效版本 1");
    assert!(
        b.text("#pushes li[data-command='setup']")
            .contains("大厅配置"),
        "{}",
        b.text("#pushes")
    );

    // The controller runs it: the service at window 8, its numbers, its daily cap.
    let (_, services) = send(client().get(format!("{url0}/api/v1/services")).call());
    let gjj = services["services"]
        .as_array()
        .expect("services")
        .iter()
        .find(|s| s["code"] == "GJJ")
        .cloned()
        .unwrap_or_else(|| panic!("no GJJ at the hall: {services}"));
    assert_eq!(
        (gjj["prefix"].clone(), gjj["windows"].clone()),
        (json!("G"), json!([8])),
        "{gjj}"
    );
    for n in ["G000001", "G000002"] {
        let (s, t) = take(url0, "GJJ");
        assert_eq!((s, t["ticket"]["number"].as_str()), (201, Some(n)), "{t}");
    }
    let (s, t) = take(url0, "GJJ");
    assert_eq!(
        t["error"]["code"].as_str(),
        Some("daily_cap_reached"),
        "{s} {t}"
    );
    for open in [
        "#su-service-list details[data-service='GJJ'] > summary",
        "#su-window-list details[data-window='8'] > summary",
    ] {
        b.click(open).expect("open");
    }
    assert!(
        b.text("#su-service-list details[data-service='GJJ'] > summary")
            .contains("每日限号 2 · 每 30 分钟 20 号"),
        "{}",
        b.text("#su-service-list details[data-service='GJJ'] > summary")
    );
    b.js(
        "document.getElementById('su-answers').scrollIntoView({ block: 'end' })",
        json!([]),
    )
    .expect("scroll");
    b.screenshot(&hallq_tests::screens_dir().join("county-setup.png"))
        .expect("screenshot");

    // From a township hall, to every hall of the township: starts from that hall's setup.
    go("hall-1");
    b.wait_for("the township hall's setup", 30, |b| {
        b.visible("#su-form")
            && count("#su-service-list details[data-service]") == json!(6)
            && data("#su-version", "version") == json!("")
    })
    .expect("hall-1's setup");
    b.click("#su-service-list details[data-service='MZ'] > summary")
        .expect("MZ opened");
    b.type_into(
        "[data-key='queue.services[1].name.zh-CN']",
        "民政事务（婚姻登记）",
    )
    .expect("name");
    b.js(
        "const r = document.getElementById('su-region'); r.value = arguments[0]; \
         r.dispatchEvent(new Event('change'));",
        json!(["330122100000"]),
    )
    .expect("region");
    assert_eq!(b.text("#su-push-region"), "推送到青山镇全部大厅");
    b.click("#su-push-region").expect("push to the township");
    b.wait_for("version 1 in force at hall-1", 60, |_| {
        data("#su-answers tr[data-controller='ctl-1']", "answer") == json!("ok")
            && data("#su-version", "version") == json!("1")
    })
    .expect("the township's push in force");
    let (_, services) = send(client().get(format!("{url1}/api/v1/services")).call());
    assert!(
        services.to_string().contains("民政事务（婚姻登记）"),
        "{services}"
    );
    b.click("#langs button[data-lang='en']").expect("English");
    b.wait_for("English texts", 20, |b| {
        b.js(
            "return document.querySelector(\"label[for='su-queue-services-1-prefix']\").textContent",
            json!([]),
        )
        .ok()
            == Some(json!("Prefix"))
            && b.text("#su-push-region") == "Push to every hall of 青山镇"
    })
    .expect("English");
    assert_eq!(b.text("#su-version"), "· version 1 in force");
    b.click("#langs button[data-lang='zh-CN']").expect("简体");
    b.click("#sign-out").expect("sign out");
    b.wait_for("the sign-in form", 20, |b| b.visible("#login-name"))
        .expect("signed out");

    // A viewer reads the setup, and has nothing to push it with.
    sign_in_as("qian.view");
    go("hall-1");
    b.wait_for("the setup, read-only", 30, |b| {
        b.visible("#su-form")
            && data("#su-version", "version") == json!("1")
            && b.js(
                "return document.getElementById('su-fields').disabled",
                json!([]),
            )
            .ok()
                == Some(json!(true))
    })
    .expect("read-only setup");
    assert_eq!(
        count("#su-push-hall, #su-push-region, .su-add, .su-remove"),
        json!(0)
    );
}
