//! The uplink against a real mosquitto: the real `hallq` daemon publishes, the reference
//! receiver (`hallq receive`) stores what arrives, a stand-in hall server sends
//! configuration and commands.

use std::time::Duration;

use hallq_tests::mqtt::{
    Broker, BrokerOptions, BrokerTls, CONTROLLER, Certs, HallServer, Receiver, add_uplink,
    assert_events_match_schema, issue, last_seq, password_file, uplink_section, uplink_status,
    wait_for,
};
use hallq_tests::{Daemon, Hall, client, send};
use serde_json::{Value, json};

const LONG: Duration = Duration::from_secs(60);

/// One unlabelled gauge from the controller's `/metrics`.
fn metric(d: &Daemon, name: &str) -> Option<f64> {
    let mut resp = client()
        .get(format!("{}/metrics", d.url))
        .call()
        .expect("metrics reachable");
    assert_eq!(resp.status().as_u16(), 200);
    let body = resp.body_mut().read_to_string().expect("metrics text");
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Every event arrived once, without gaps, in sequence order.
fn assert_complete(r: &Receiver, last: i64) -> Vec<Value> {
    r.wait_for_count(last, LONG);
    let s = r.summary();
    let c = s
        .controllers
        .iter()
        .find(|c| c.controller_id == CONTROLLER)
        .expect("the controller's events");
    assert_eq!(
        (c.first_seq, c.last_seq, c.events),
        (1, last, last),
        "{s:?}"
    );
    assert!(c.gaps.is_empty(), "gaps: {:?}", c.gaps);
    let events = r.events();
    let mut seen = std::collections::HashSet::new();
    let mut prev = 0;
    for e in &events {
        let seq = e["seq"].as_i64().expect("seq");
        assert!(seen.insert(e["id"].as_str().expect("id").to_string()));
        assert!(seq > prev, "event {seq} arrived after {prev}");
        prev = seq;
    }
    events
}

#[test]
fn every_event_is_delivered_once_in_order_and_matches_the_schema() {
    let hall = Hall::new();
    hall.add_staff("S001", "135790", &["--window", "1"]);
    let broker = Broker::start(&hall.dir.path().join("broker"), &BrokerOptions::default())
        .expect("mosquitto starts");
    let receiver = Receiver::start(hall.dir.path(), broker.port, &[]);
    add_uplink(&hall.config, &uplink_section(broker.port, "test-hall"));
    let d = hall.start();
    let c = client();
    issue(&d, 20);
    let (s, b) = send(
        c.post(format!("{}/api/v1/sessions", d.url))
            .send_json(json!({"staff_id": "S001", "pin": "000000", "window": 1})),
    );
    assert_eq!(s, 401, "{b}");
    let (s, b) = send(
        c.post(format!("{}/api/v1/sessions", d.url))
            .send_json(json!({"staff_id": "S001", "pin": "135790", "window": 1})),
    );
    assert_eq!(s, 201, "{b}");
    let token = format!("Bearer {}", b["token"].as_str().expect("token"));
    for action in ["call-next", "start", "finish"] {
        let (s, b) = send(
            c.post(format!("{}/api/v1/windows/1/{action}", d.url))
                .header("Authorization", &token)
                .send_json(json!({})),
        );
        assert_eq!(s, 200, "{action}: {b}");
    }
    let (s, b) = send(c.post(format!("{}/api/v1/ratings", d.url)).send_json(
        json!({"ticket": 1, "level": "不满意", "reasons": ["办事效率低"], "channel": "pad-1"}),
    ));
    assert_eq!(s, 201, "{b}");
    // Staff withdraw a citizen's ticket only with a reason, recorded by name.
    let (s, b) = send(
        c.delete(format!("{}/api/v1/tickets/2", d.url))
            .header("Authorization", &token)
            .force_send_body()
            .send_json(json!({"reason": "市民已离开大厅"})),
    );
    assert_eq!(s, 200, "{b}");
    // Commands from above are events too.
    let server = HallServer::connect(broker.port, "test-hall");
    for (id, cmd) in [
        (
            "n1",
            json!({"command": "show_notice", "text": "今日下午16:00后暂停受理不动产业务", "minutes": 60}),
        ),
        ("n2", json!({"command": "clear_notice"})),
        (
            "r1",
            json!({"command": "request_report", "period": "2026-W48"}),
        ),
        ("p1", json!({"command": "reprint_ticket", "ticket": 3})),
        (
            "l1",
            json!({"command": "lock_kiosk", "message": "系统维护"}),
        ),
        ("u1", json!({"command": "unlock_kiosk"})),
    ] {
        let mut body = cmd.clone();
        body["id"] = id.into();
        let ack = server.request("cmd", &body, "id", &json!(id));
        if id == "p1" {
            assert_eq!(ack["ok"], false, "{ack}");
            assert!(
                ack["reason"].as_str().unwrap_or("").contains("printer"),
                "{ack}"
            );
        } else {
            assert_eq!(ack["ok"], true, "{id}: {ack}");
        }
        if id == "r1" {
            assert_eq!(ack["result"]["from"], "2026-11-23", "{ack}");
        }
    }
    let ack = server.request(
        "config/set",
        &json!({"version": 1, "queue": {"services": []}}),
        "version",
        &json!(1),
    );
    assert_eq!(ack["ok"], false, "{ack}");

    let last = last_seq(&hall, &d);
    let events = assert_complete(&receiver, last);
    let types = assert_events_match_schema(&events);
    for t in [
        "ticket_issued",
        "staff_signed_in",
        "sign_in_failures",
        "ticket_called",
        "serving_started",
        "ticket_finished",
        "rating_recorded",
        "ticket_cancelled",
        "notice_shown",
        "notice_cleared",
        "report_requested",
        "command_refused",
        "kiosk_locked",
        "kiosk_unlocked",
        "config_refused",
        "staff_added",
    ] {
        assert!(types.contains(t), "no {t} event among {types:?}");
    }
    let e = &events[0];
    assert_eq!(e["controller_id"], CONTROLLER);
    assert_eq!(e["hall_id"], "test-hall");
    // The outbox is empty once everything is acknowledged.
    let st = wait_for(LONG, "an empty backlog", || {
        let st = uplink_status(&hall, &d);
        (st["backlog"]["undelivered"] == 0).then_some(st)
    });
    assert_eq!(st["link"]["state"], "connected", "{st}");
    let text = hall.cli(&["uplink", "status", "--api", &d.url]);
    assert!(text.contains("connection: connected"), "{text}");
    assert!(text.contains("backlog:    empty"), "{text}");
}

#[test]
fn a_broker_restart_mid_stream_loses_nothing_and_repeats_are_dropped_by_id() {
    let hall = Hall::new();
    let mut broker = Broker::start(&hall.dir.path().join("broker"), &BrokerOptions::default())
        .expect("mosquitto starts");
    let receiver = Receiver::start(hall.dir.path(), broker.port, &[]);
    add_uplink(&hall.config, &uplink_section(broker.port, "test-hall"));
    let d = hall.start();
    let url = d.url.clone();
    let issuing = std::thread::spawn(move || {
        let c = client();
        for i in 0..600 {
            let (s, b) = send(
                c.post(format!("{url}/api/v1/tickets"))
                    .send_json(json!({"service": "SB"})),
            );
            assert_eq!(s, 201, "ticket {i}: {b}");
            std::thread::sleep(Duration::from_millis(2));
        }
    });
    receiver.wait_for_count(50, LONG);
    broker.stop();
    // Tickets go on while the hall server is unreachable.
    std::thread::sleep(Duration::from_millis(1500));
    let during = uplink_status(&hall, &d);
    assert_ne!(during["link"]["state"], "connected", "{during}");
    // A technician's scrape sees the link down and the backlog growing.
    assert_eq!(metric(&d, "hallq_uplink_connected"), Some(0.0));
    let waiting = metric(&d, "hallq_outbox_backlog_events").expect("backlog gauge");
    assert!(waiting > 0.0, "events pile up while the broker is down");
    assert!(metric(&d, "hallq_outbox_oldest_age_seconds").expect("age gauge") > 0.0);
    broker.restart().expect("mosquitto restarts");
    issuing.join().expect("issuing thread");
    let last = last_seq(&hall, &d);
    assert!(last >= 600);
    assert_complete(&receiver, last);
    // ...and, once the delivered marks are written, an empty outbox on a live link.
    wait_for(LONG, "the backlog gauge to reach 0", || {
        (metric(&d, "hallq_outbox_backlog_events") == Some(0.0)
            && metric(&d, "hallq_uplink_connected") == Some(1.0))
        .then_some(())
    });
    let s = receiver.summary();
    eprintln!("duplicates dropped by the receiver: {}", s.duplicates);
}

#[test]
fn a_controller_killed_mid_backlog_resumes_and_nothing_is_lost() {
    let hall = Hall::new();
    // A backlog of 12,000 events in the outbox, as a long broker outage leaves one.
    // (`hallq gen-history` cannot make it: the uplink refuses generated history.)
    {
        std::fs::create_dir_all(hall.dir.path().join("data")).expect("data dir");
        let mut store = hallq::store::Store::open(&hall.dir.path().join("data/hallq.db"))
            .expect("the hall's database");
        let now = hallq::core::wall_now().0;
        for batch in 0..6 {
            let events: Vec<hallq::store::NewEvent> = (0..2000)
                .map(|i| {
                    let n = batch * 2000 + i;
                    hallq::store::NewEvent {
                        at: hallq_engine::Timestamp(now - 60_000 + n),
                        kind: "outage_backlog".into(),
                        payload: format!(r#"{{"type":"outage_backlog","n":{n}}}"#),
                    }
                })
                .collect();
            store.append(&events).expect("backlog written");
        }
    }
    let mut broker = Broker::start(&hall.dir.path().join("broker"), &BrokerOptions::default())
        .expect("mosquitto starts");
    let receiver = Receiver::start(hall.dir.path(), broker.port, &[]);
    add_uplink(&hall.config, &uplink_section(broker.port, "test-hall"));
    let total = {
        // Learn the backlog before anything is sent.
        broker.stop();
        let d = hall.start();
        let st = uplink_status(&hall, &d);
        assert_eq!(
            st["backlog"]["undelivered"], st["backlog"]["last_seq"],
            "{st}"
        );
        drop(d);
        st["backlog"]["last_seq"].as_i64().expect("last_seq")
    };
    assert!(total > 10_000, "a real backlog: {total}");
    broker.restart().expect("mosquitto restarts");
    let d = hall.start();
    wait_for(LONG, "the drain to start", || {
        (receiver.count() > 500).then_some(())
    });
    drop(d); // SIGKILL
    let at_kill = receiver.count();
    assert!(
        at_kill < total,
        "killed after the backlog had drained ({at_kill}/{total})"
    );
    let d = hall.start();
    issue(&d, 5);
    // The first of these tickets may also start a new service day: 5 events or more.
    let last = last_seq(&hall, &d);
    assert!(last >= total + 5, "{last} < {total} + 5");
    assert_complete(&receiver, last);
    eprintln!(
        "killed at {at_kill}/{total}; duplicates dropped: {}",
        receiver.summary().duplicates
    );
}

#[test]
fn tls_with_a_generated_certificate_client_certificate_and_password() {
    let hall = Hall::new();
    let dir = hall.dir.path();
    let certs = Certs::generate(&dir.join("certs"));
    let passwords = password_file(
        dir,
        &[
            ("qingshan-main", "controller-secret"),
            ("receiver", "receiver-secret"),
        ],
    );
    let broker = Broker::start(
        &dir.join("broker"),
        &BrokerOptions {
            tls: Some(BrokerTls {
                ca: certs.ca.clone(),
                cert: certs.server.0.clone(),
                key: certs.server.1.clone(),
                require_client_cert: true,
            }),
            password_file: Some(passwords),
        },
    )
    .expect("mosquitto starts with TLS");
    let (ca, cert, key) = (
        certs.ca.display().to_string(),
        certs.client.0.display().to_string(),
        certs.client.1.display().to_string(),
    );
    let receiver = Receiver::start(
        dir,
        broker.port,
        &[
            "--ca",
            &ca,
            "--cert",
            &cert,
            "--key",
            &key,
            "--username",
            "receiver",
        ],
    );
    add_uplink(
        &hall.config,
        &format!(
            "{}\nusername = \"qingshan-main\"\npassword = \"controller-secret\"\n[uplink.tls]\nca = {ca:?}\ncert = {cert:?}\nkey = {key:?}",
            uplink_section(broker.port, "test-hall")
        ),
    );
    let d = hall.start();
    issue(&d, 3);
    let last = last_seq(&hall, &d);
    let events = assert_complete(&receiver, last);
    assert_events_match_schema(&events);
    drop(d);

    // A wrong password is refused by the broker and shown in the status.
    let text = std::fs::read_to_string(&hall.config)
        .expect("config")
        .replace("controller-secret", "wrong");
    std::fs::write(&hall.config, text).expect("config");
    let d = hall.start();
    let st = wait_for(LONG, "the refusal in the status", || {
        let st = uplink_status(&hall, &d);
        st["link"]["last_error"].as_str().is_some().then_some(st)
    });
    assert_ne!(st["link"]["state"], "connected", "{st}");
    issue(&d, 1);
    let st = uplink_status(&hall, &d);
    assert!(st["backlog"]["undelivered"].as_i64() >= Some(1), "{st}");
}

fn queue_json(hall: &Hall) -> Value {
    let text = std::fs::read_to_string(&hall.config).expect("config");
    let doc: toml::Table = toml::from_str(&text).expect("TOML");
    serde_json::to_value(&doc["queue"]).expect("JSON")
}

fn service_codes(d: &Daemon) -> Vec<String> {
    let (s, b) = send(client().get(format!("{}/api/v1/services", d.url)).call());
    assert_eq!(s, 200);
    b["services"]
        .as_array()
        .expect("services")
        .iter()
        .map(|s| s["code"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn a_bad_configuration_is_refused_with_its_reason_and_the_old_one_stays() {
    let hall = Hall::new();
    let broker = Broker::start(&hall.dir.path().join("broker"), &BrokerOptions::default())
        .expect("mosquitto starts");
    let original = queue_json(&hall);
    add_uplink(&hall.config, &uplink_section(broker.port, "test-hall"));
    let d = hall.start();
    wait_for(LONG, "the uplink to connect", || {
        (uplink_status(&hall, &d)["link"]["state"] == "connected").then_some(())
    });
    let server = HallServer::connect(broker.port, "test-hall");
    let before = service_codes(&d);

    // Two services with one prefix: refused, with the key and the reason.
    let mut bad = original.clone();
    bad["services"][1]["prefix"] = bad["services"][0]["prefix"].clone();
    let ack = server.request(
        "config/set",
        &json!({"version": 2, "queue": bad}),
        "version",
        &json!(2),
    );
    assert_eq!(ack["ok"], false, "{ack}");
    assert_eq!(ack["key"], "queue.services[1].prefix", "{ack}");
    assert!(
        ack["reason"].as_str().is_some_and(|r| !r.is_empty()),
        "{ack}"
    );
    assert_eq!(service_codes(&d), before, "the old configuration stays");

    // Removing a service that still has a citizen waiting is refused too.
    issue(&d, 1);
    let mut without_sb = original.clone();
    without_sb["services"]
        .as_array_mut()
        .expect("services")
        .retain(|s| s["code"] != "SB");
    for w in without_sb["windows"].as_array_mut().expect("windows") {
        if let Some(list) = w["services"].as_array_mut() {
            list.retain(|s| s.as_str() != Some("SB") && s["code"] != "SB");
        }
    }
    without_sb["windows"]
        .as_array_mut()
        .expect("windows")
        .retain(|w| w["services"].as_array().is_some_and(|l| !l.is_empty()));
    let ack = server.request(
        "config/set",
        &json!({"version": 3, "queue": without_sb}),
        "version",
        &json!(3),
    );
    assert_eq!(ack["ok"], false, "{ack}");
    assert!(ack["reason"].as_str().unwrap_or("").contains("SB"), "{ack}");
    assert_eq!(service_codes(&d), before);

    // A good one is applied at once, survives a restart, and an older one is refused.
    let mut renamed = original.clone();
    renamed["services"][1]["name"]["zh-CN"] = "民政事务（新）".into();
    let ack = server.request(
        "config/set",
        &json!({"version": 4, "queue": renamed}),
        "version",
        &json!(4),
    );
    assert_eq!(ack["ok"], true, "{ack}");
    assert_eq!(ack["in_force"], 4);
    let name = |d: &Daemon| {
        let (_, b) = send(client().get(format!("{}/api/v1/services", d.url)).call());
        b["services"][1]["name"]["zh-CN"].clone()
    };
    assert_eq!(name(&d), "民政事务（新）");
    drop(server);
    drop(d);
    let d = hall.start();
    assert_eq!(
        name(&d),
        "民政事务（新）",
        "the pushed configuration survives a restart"
    );
    assert_eq!(uplink_status(&hall, &d)["config_version"], 4);
    let server = HallServer::connect(broker.port, "test-hall");
    let ack = server.request(
        "config/set",
        &json!({"version": 3, "queue": original}),
        "version",
        &json!(3),
    );
    assert_eq!(ack["ok"], false, "{ack}");
    assert_eq!(ack["in_force"], 4, "{ack}");
}

#[test]
fn a_lock_stops_ticket_issue_and_a_notice_scrolls_on_the_board_both_surviving_a_restart() {
    let hall = Hall::new();
    let broker = Broker::start(&hall.dir.path().join("broker"), &BrokerOptions::default())
        .expect("mosquitto starts");
    add_uplink(&hall.config, &uplink_section(broker.port, "test-hall"));
    let d = hall.start();
    let server = HallServer::connect(broker.port, "test-hall");
    wait_for(LONG, "the uplink to connect", || {
        (uplink_status(&hall, &d)["link"]["state"] == "connected").then_some(())
    });
    let c = client();
    let (_, k) = send(c.get(format!("{}/api/v1/kiosk", d.url)).call());
    assert_eq!(k["locked"], false, "{k}");

    let ack = server.request(
        "cmd",
        &json!({"id": "lock-1", "command": "lock_kiosk", "message": "系统维护，请到服务台取号"}),
        "id",
        &json!("lock-1"),
    );
    assert_eq!(ack["ok"], true, "{ack}");
    let (_, k) = send(c.get(format!("{}/api/v1/kiosk", d.url)).call());
    assert_eq!(k["locked"], true, "{k}");
    assert_eq!(k["message"], "系统维护，请到服务台取号");
    let (s, b) = send(
        c.post(format!("{}/api/v1/tickets", d.url))
            .header("Accept-Language", "en")
            .send_json(json!({"service": "SB"})),
    );
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (423, Some("kiosk_locked")),
        "{b}"
    );
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("系统维护"),
        "{b}"
    );
    server.state_where(|v| v["kiosk"]["locked"] == true);

    // A repeated command id is answered again, not done twice.
    let again = server.request(
        "cmd",
        &json!({"id": "lock-1", "command": "lock_kiosk", "message": "系统维护，请到服务台取号"}),
        "id",
        &json!("lock-1"),
    );
    assert_eq!(again, ack);
    // An unknown command is refused with its reason.
    let ack = server.request(
        "cmd",
        &json!({"id": "x-1", "command": "reboot"}),
        "id",
        &json!("x-1"),
    );
    assert_eq!(ack["ok"], false);
    assert!(
        ack["reason"].as_str().unwrap_or("").contains("reboot"),
        "{ack}"
    );

    // A notice from above scrolls on the hall board and is listed by the API.
    let ack = server.request(
        "cmd",
        &json!({"id": "n-1", "command": "show_notice", "text": "今日16:00后暂停受理不动产业务"}),
        "id",
        &json!("n-1"),
    );
    assert_eq!(ack["ok"], true, "{ack}");
    let (_, b) = send(c.get(format!("{}/api/v1/board", d.url)).call());
    assert_eq!(b["notices"][0], "今日16:00后暂停受理不动产业务", "{b}");
    let (_, n) = send(c.get(format!("{}/api/v1/notices", d.url)).call());
    assert_eq!(
        n["notices"][0]["text"], "今日16:00后暂停受理不动产业务",
        "{n}"
    );

    // The lock survives a restart.
    drop(d);
    let d = hall.start();
    let (_, k) = send(c.get(format!("{}/api/v1/kiosk", d.url)).call());
    assert_eq!(k["locked"], true, "{k}");
    let ack = server.request(
        "cmd",
        &json!({"id": "unlock-1", "command": "unlock_kiosk"}),
        "id",
        &json!("unlock-1"),
    );
    assert_eq!(ack["ok"], true, "{ack}");
    let (_, k) = send(c.get(format!("{}/api/v1/kiosk", d.url)).call());
    assert_eq!(k["locked"], false, "{k}");
    issue(&d, 1);
    let ack = server.request(
        "cmd",
        &json!({"id": "n-2", "command": "clear_notice"}),
        "id",
        &json!("n-2"),
    );
    assert_eq!(ack["ok"], true, "{ack}");
    let (_, n) = send(c.get(format!("{}/api/v1/notices", d.url)).call());
    assert_eq!(n["notices"], json!([]), "{n}");
}

#[test]
fn a_reprint_command_prints_the_ticket_again_on_the_halls_printer() {
    use hallq_hardware::virtual_printer::{VirtualPrinter, VirtualPrinterHandle};
    use serialport::{SerialPort, TTYPort};
    let (master, slave) = TTYPort::pair().expect("pseudo-terminal pair");
    let path = slave.name().expect("the slave side has a path");
    let printer = VirtualPrinterHandle::serve_stream(VirtualPrinter::new(), master)
        .expect("virtual printer starts");
    let hall = Hall::with_config(&format!(
        "[printer]\npaper = \"58mm\"\nstatus_poll_secs = 1\n\
         [printer.transport]\nkind = \"serial\"\npath = {path:?}\nbaud = 115200\n"
    ));
    let broker = Broker::start(&hall.dir.path().join("broker"), &BrokerOptions::default())
        .expect("mosquitto starts");
    let receiver = Receiver::start(hall.dir.path(), broker.port, &[]);
    add_uplink(&hall.config, &uplink_section(broker.port, "test-hall"));
    let d = hall.start();
    let server = HallServer::connect(broker.port, "test-hall");
    let (s, t) = send(
        client()
            .post(format!("{}/api/v1/tickets", d.url))
            .send_json(json!({"service": "SB"})),
    );
    assert_eq!(s, 201, "{t}");
    let number = t["ticket"]["number"].as_str().expect("number").to_string();
    let copies = |n: &str| {
        printer
            .paper()
            .runs()
            .filter(|r| r.text.contains(n))
            .count()
    };
    assert!(printer.wait_for(Duration::from_secs(5), |p| {
        p.runs().any(|r| r.text.contains(&number))
    }));
    let once = copies(&number);
    let ack = server.request(
        "cmd",
        &json!({"id": "rp-1", "command": "reprint_ticket", "ticket": t["ticket"]["id"]}),
        "id",
        &json!("rp-1"),
    );
    assert_eq!(ack["ok"], true, "{ack}");
    assert_eq!(ack["result"]["number"], number.as_str(), "{ack}");
    assert!(
        printer.wait_for(Duration::from_secs(5), |p| p
            .runs()
            .filter(|r| r.text.contains(&number))
            .count()
            > once),
        "no second copy of {number}"
    );
    let ack = server.request(
        "cmd",
        &json!({"id": "rp-2", "command": "reprint_ticket", "ticket": 999}),
        "id",
        &json!("rp-2"),
    );
    assert_eq!(ack["ok"], false, "{ack}");
    let last = last_seq(&hall, &d);
    let events = assert_complete(&receiver, last);
    let types = assert_events_match_schema(&events);
    assert!(
        types.contains("ticket_reprinted") && types.contains("command_refused"),
        "{types:?}"
    );
    let reprinted = events
        .iter()
        .find(|e| e["type"] == "ticket_reprinted")
        .expect("reprint event");
    assert_eq!(reprinted["payload"]["by"], "hall_server");
    assert_eq!(reprinted["payload"]["command_id"], "rp-1");
}

#[test]
fn the_retained_state_says_online_with_the_queue_and_the_last_will_says_offline() {
    let hall = Hall::new();
    let broker = Broker::start(&hall.dir.path().join("broker"), &BrokerOptions::default())
        .expect("mosquitto starts");
    add_uplink(
        &hall.config,
        &format!(
            "{}\nkeep_alive_secs = 5",
            uplink_section(broker.port, "test-hall")
        ),
    );
    let d = hall.start();
    let server = HallServer::connect(broker.port, "test-hall");
    issue(&d, 2);
    let online = server.state_where(|v| v["status"] == "online" && v["queue"]["waiting"] == 2);
    assert_eq!(online["controller_id"], CONTROLLER);
    assert_eq!(online["kiosk"]["locked"], false);
    assert!(
        online["queue"]["services"]
            .as_array()
            .is_some_and(|s| !s.is_empty())
    );
    assert!(online["devices"].is_array(), "{online}");
    drop(d); // SIGKILL: no goodbye, the broker publishes the last will.
    let offline = server.state_where(|v| v["status"] == "offline");
    assert_eq!(offline["reason"], "connection lost", "{offline}");
    assert_eq!(offline["controller_id"], CONTROLLER);
}
