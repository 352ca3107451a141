//! The hall server's ingest, end to end: real `hallq` controllers taking tickets and
//! publishing through a real mosquitto, two `hallq-server` instances sharing the
//! subscription, a real PostgreSQL. Every test ends by comparing, controller by
//! controller, the events in the controller's own database with the rows in
//! PostgreSQL: the same ids with the same seqs, each once.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hallq_tests::mqtt::{Broker, BrokerOptions, add_uplink, uplink_section};
use hallq_tests::postgres::Postgres;
use hallq_tests::server::Instance;
use hallq_tests::{Daemon, Hall, client, missing_prerequisite, send};
use serde_json::json;

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
        County::prepared(test, n, |_, _| {})
    }

    /// As [`County::new`], with `prepare(i, hall)` run on each hall before it starts.
    fn prepared(test: &str, n: usize, prepare: impl Fn(usize, &Hall)) -> Option<County> {
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
            prepare(i, &hall);
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
    let Some(county) = County::prepared("the_county_dashboard", 3, |i, hall| {
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
