//! The hall server's ingest, end to end: real `hallq` controllers taking tickets and
//! publishing through a real mosquitto, two `hallq-server` instances sharing the
//! subscription, a real PostgreSQL. Every test ends by comparing, controller by
//! controller, the events in the controller's own database with the rows in
//! PostgreSQL: the same ids with the same seqs, each once. The period figures the
//! ingest keeps are compared with each controller's own, hall by hall, and timed for a
//! county's month.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hallq_tests::mqtt::{Broker, BrokerOptions, add_uplink, uplink_section};
use hallq_tests::postgres::Postgres;
use hallq_tests::server::Instance;
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
        County::new_with(test, n, &|_| {})
    }

    /// As [`County::new`], with `prepare` run on each hall before its controller starts.
    fn new_with(test: &str, n: usize, prepare: &dyn Fn(&Hall)) -> Option<County> {
        let Some(pg) = Postgres::start() else {
            missing_prerequisite(test, "PostgreSQL server (Debian package postgresql)");
            return None;
        };
        let dir = tempfile::tempdir().expect("temp dir");
        let broker = Broker::start(&dir.path().join("broker"), &BrokerOptions::default())
            .expect("mosquitto starts");
        let mut halls = Vec::new();
        for i in 0..n {
            let hall = Hall::new();
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
            prepare(&hall);
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

    /// An instance that knows the county's regions and halls.
    fn instance_with_tree(&self, name: &str) -> Instance {
        Instance::start(
            self.dir.path(),
            name,
            self.broker.port,
            &self.pg.url(),
            &format!("{INGEST}{TREE}"),
        )
    }

    fn instance(&self, name: &str) -> Instance {
        Instance::start(
            self.dir.path(),
            name,
            self.broker.port,
            &self.pg.url(),
            INGEST,
        )
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
    let a = county.instance_with_tree("a");
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

/// A clerk's action at window 1; its answer.
fn act(url: &str, token: &str, action: &str, body: Value) -> Value {
    let (s, b) = send(
        client()
            .post(format!("{url}/api/v1/windows/1/{action}"))
            .header("Authorization", token)
            .send_json(body),
    );
    assert_eq!(s, 200, "{action}: {b}");
    b
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
    let Some(county) = County::new_with("period_figures_match_each_halls_own", 3, &|hall| {
        hall.add_staff_named("S001", "张三", "135790", &["--window", "1"]);
        hall.add_staff("J001", "246801", &["--role", "supervisor"]);
    }) else {
        return;
    };
    let a = county.instance_with_tree("a");
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
        let (s, body) = send(
            client()
                .get(format!("{}/api/v1/period?{query}", a.url))
                .call(),
        );
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
    let (s, body) = send(
        client()
            .get(format!("{}/api/v1/follow-ups?state=closed", a.url))
            .call(),
    );
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
         ANALYZE period_figures; ANALYZE period_reasons;",
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
    let started = Instant::now();
    let one = a.get("/api/v1/period?month=2026-11&hall=hall-7");
    let detail = started.elapsed();
    assert_eq!(one["detail"]["services"].as_array().map(Vec::len), Some(20));
    println!(
        "period roll-up: {rows} rows in period_figures (200 halls × 30 days × 55), filled in {:.1} s; \
         GET /api/v1/period?month=2026-11 (200 halls, 21 regions, ranking), 9 runs: \
         p50 {} ms, max {} ms; with one hall's detail: {} ms",
        fill.as_secs_f64(),
        times[times.len() / 2].as_millis(),
        times[times.len() - 1].as_millis(),
        detail.as_millis()
    );
}
