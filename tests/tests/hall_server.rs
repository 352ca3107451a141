//! The hall server's ingest, end to end: real `hallq` controllers taking tickets and
//! publishing through a real mosquitto, two `hallq-server` instances sharing the
//! subscription, a real PostgreSQL. Every test ends by comparing, controller by
//! controller, the events in the controller's own database with the rows in
//! PostgreSQL: the same ids with the same seqs, each once.
//!
//! The "Out" side too: the near-turn text messages reach an SMS webhook (a local HTTP
//! receiver) exactly once from two instances, retried while it answers 500, and their
//! numbers are gone from PostgreSQL afterwards; the day's 好差评 records come out of
//! `hallq-server export-ratings` and the API as the controllers made them, through a
//! field map, as JSON lines and as CSV.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hallq_tests::mqtt::{Broker, BrokerOptions, add_uplink, uplink_section, wait_for};
use hallq_tests::postgres::Postgres;
use hallq_tests::server::Instance;
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

    /// An instance that knows the county's regions and halls.
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

    fn instance(&self, name: &str) -> Instance {
        Instance::start(
            self.dir.path(),
            name,
            self.broker.port,
            &self.pg.url(),
            &format!("{INGEST}{TREE}"),
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

fn dashboard_in_a_browser(a: &Instance, password: &str, number: &str) {
    use hallq_tests::webdriver::Driver;
    let driver = match Driver::start() {
        Ok(d) => d,
        Err(e) => {
            missing_prerequisite(
                "the_county_dashboard",
                &format!("chromium and chromium-driver ({e})"),
            );
            return;
        }
    };
    let b = driver.browser(1440, 1000).expect("browser");
    b.go(&a.url).expect("dashboard");
    b.wait_for("the sign-in form", 20, |b| b.visible("#login-name"))
        .expect("sign-in form");
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
