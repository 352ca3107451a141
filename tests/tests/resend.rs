//! Gap repair for the hall server, against a real mosquitto: `resend` on the `cmd` topic
//! makes the real `hallq` daemon send stored events again, byte for byte and in order,
//! through its link, then carry on with new events; the retained state carries the
//! newest seq so that a gap at the tail shows too.

use std::collections::BTreeMap;
use std::sync::mpsc;
use std::time::Duration;

use hallq_tests::Hall;
use hallq_tests::mqtt::{
    Broker, BrokerOptions, CONTROLLER, HallServer, add_uplink, assert_events_match_schema, issue,
    last_seq, uplink_section, uplink_status, wait_for,
};
use serde_json::{Value, json};

const LONG: Duration = Duration::from_secs(60);

/// A plain MQTT client on the controller's `events` topic, as the hall server would
/// subscribe: every message's bytes, in the order they arrived.
struct Tap {
    rx: mpsc::Receiver<Vec<u8>>,
    seen: Vec<Vec<u8>>,
    _client: rumqttc::Client,
}

impl Tap {
    fn connect(port: u16) -> Tap {
        let mut o =
            rumqttc::MqttOptions::new(format!("tap-{}", std::process::id()), "127.0.0.1", port);
        o.set_keep_alive(Duration::from_secs(10));
        o.set_max_packet_size(1 << 20, 1 << 20);
        let (client, mut conn) = rumqttc::Client::new(o, 64);
        client
            .subscribe(
                format!("hallq/test-hall/{CONTROLLER}/events"),
                rumqttc::QoS::AtLeastOnce,
            )
            .expect("subscribe");
        let (tx, rx) = mpsc::channel();
        let (ready_tx, ready) = mpsc::channel();
        std::thread::spawn(move || {
            for ev in conn.iter() {
                match ev {
                    Ok(rumqttc::Event::Incoming(rumqttc::Incoming::SubAck(_))) => {
                        let _ = ready_tx.send(());
                    }
                    Ok(rumqttc::Event::Incoming(rumqttc::Incoming::Publish(p))) => {
                        if tx.send(p.payload.to_vec()).is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(_) => std::thread::sleep(Duration::from_millis(100)),
                }
            }
        });
        ready
            .recv_timeout(Duration::from_secs(10))
            .expect("the tap subscribed");
        Tap {
            rx,
            seen: Vec::new(),
            _client: client,
        }
    }

    /// Waits until the messages from index `since` on satisfy `done`.
    fn wait(&mut self, since: usize, what: &str, done: impl Fn(&[Vec<u8>]) -> bool) {
        wait_for(LONG, what, || {
            while let Ok(m) = self.rx.try_recv() {
                self.seen.push(m);
            }
            done(&self.seen[since..]).then_some(())
        });
    }
}

fn value(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).expect("an event is JSON")
}

fn seq(bytes: &[u8]) -> i64 {
    value(bytes)["seq"].as_i64().expect("seq")
}

/// Every seq from `from` to `to` is among `msgs`.
fn covers(msgs: &[Vec<u8>], from: i64, to: i64) -> bool {
    let seen: std::collections::HashSet<i64> = msgs.iter().map(|m| seq(m)).collect();
    (from..=to).all(|s| seen.contains(&s))
}

fn resend(server: &HallServer, id: &str, from_seq: Value) -> Value {
    let mut body = json!({"id": id, "command": "resend"});
    if !from_seq.is_null() {
        body["from_seq"] = from_seq;
    }
    server.request("cmd", &body, "id", &json!(id))
}

#[test]
fn a_resend_sends_every_event_from_the_seq_again_byte_for_byte_then_new_ones() {
    let hall = Hall::new();
    let broker = Broker::start(&hall.dir.path().join("broker"), &BrokerOptions::default())
        .expect("mosquitto starts");
    // Subscribed before the controller starts, so the tap sees every first copy.
    let mut tap = Tap::connect(broker.port);
    add_uplink(&hall.config, &uplink_section(broker.port, "test-hall"));
    let d = hall.start();
    let server = HallServer::connect(broker.port, "test-hall");
    issue(&d, 12);
    let last = last_seq(&hall, &d);
    assert!(last >= 12, "{last}");
    tap.wait(0, "every event's first copy", |m| covers(m, 1, last));
    wait_for(LONG, "every event delivered", || {
        (uplink_status(&hall, &d)["backlog"]["undelivered"] == 0).then_some(())
    });
    let mut first: BTreeMap<i64, Vec<u8>> = BTreeMap::new();
    for m in &tap.seen {
        first.entry(seq(m)).or_insert_with(|| m.clone());
    }
    let before = tap.seen.len();

    // The hall server lost 7 onwards: it asks for them again.
    let from = 7;
    let ack = resend(&server, "rs-1", json!(from));
    let first_ack = ack.clone();
    assert_eq!(ack["ok"], true, "{ack}");
    assert_eq!(ack["command"], "resend", "{ack}");
    assert_eq!(
        ack["result"],
        json!({"from_seq": from, "last_seq": last, "archived_before": null}),
        "{ack}"
    );
    // The pass after the rewind runs on to the resend's own record, `last + 1`.
    tap.wait(before, "the resent events and events_resent", |m| {
        let last_repeat = m.iter().rposition(|b| seq(b) == last);
        last_repeat.is_some_and(|i| m[i..].iter().any(|b| seq(b) == last + 1))
    });
    let again: Vec<&Vec<u8>> = tap.seen[before..]
        .iter()
        .filter(|m| seq(m) <= last)
        .collect();
    assert_eq!(
        again.iter().map(|m| seq(m)).collect::<Vec<_>>(),
        (from..=last).collect::<Vec<_>>(),
        "each event from {from} again, once, in order"
    );
    for m in &again {
        assert_eq!(
            Some(*m),
            first.get(&seq(m)),
            "event {} sent again with other bytes",
            seq(m)
        );
    }
    let record = tap.seen[before..]
        .iter()
        .map(|m| value(m))
        .find(|v| v["type"] == "events_resent")
        .expect("events_resent came up");
    assert_eq!(record["seq"], last + 1);
    assert_eq!(
        record["payload"],
        json!({"type": "events_resent", "command_id": "rs-1", "from_seq": from,
               "last_seq": last, "archived_before": null}),
    );
    // Delivery marks stay as they were: nothing is pending but the new record.
    wait_for(LONG, "the record delivered", || {
        (uplink_status(&hall, &d)["backlog"]["undelivered"] == 0).then_some(())
    });

    // Bad values are refused naming from_seq, and recorded.
    for (i, bad) in [json!(0), json!("5"), json!(2.5), json!(-3), Value::Null]
        .into_iter()
        .enumerate()
    {
        let id = format!("bad-{i}");
        let ack = resend(&server, &id, bad.clone());
        assert_eq!(ack["ok"], false, "{bad}: {ack}");
        assert!(
            ack["reason"].as_str().unwrap_or("").contains("from_seq"),
            "{bad}: {ack}"
        );
    }
    let refused = hall.events_of("command_refused");
    assert_eq!(refused.len(), 5, "{refused:?}");
    assert!(
        refused.iter().all(|e| e["command"] == "resend"),
        "{refused:?}"
    );

    // Beyond the newest event: ok, nothing to send.
    let newest = last_seq(&hall, &d);
    let ack = resend(&server, "rs-far", json!(newest + 100));
    assert_eq!(ack["ok"], true, "{ack}");
    assert_eq!(
        ack["result"],
        json!({"from_seq": newest + 100, "last_seq": newest, "archived_before": null}),
        "{ack}"
    );

    // New tickets after the resend arrive as usual.
    let before_new = tap.seen.len();
    issue(&d, 2);
    let newest = last_seq(&hall, &d);
    tap.wait(before_new, "the new tickets' events", |m| {
        covers(m, newest - 1, newest)
    });
    assert!(
        tap.seen[before_new..].iter().all(|m| seq(m) > last + 1),
        "nothing old was sent again"
    );
    let all: Vec<Value> = tap.seen.iter().map(|m| value(m)).collect();
    let types = assert_events_match_schema(&all);
    assert!(
        types.contains("events_resent") && types.contains("command_refused"),
        "{types:?}"
    );

    // A repeated id is answered again and not carried out again; the state document
    // (sent after every command) carries the newest seq.
    let again = resend(&server, "rs-1", json!(from));
    assert_eq!(again, first_ack);
    assert_eq!(hall.events_of("events_resent").len(), 2);
    let state = server.state_where(|v| v["events"]["last_seq"] == newest);
    let delivered = state["events"]["delivered_seq"]
        .as_i64()
        .expect("delivered_seq");
    assert!((last..=newest).contains(&delivered), "{state}");
}

/// `hallq receive` as a process of this test, killed when dropped.
struct ReceiveProcess(std::process::Child);

impl ReceiveProcess {
    fn start(port: u16, db: &std::path::Path, client_id: &str, extra: &[&str]) -> Self {
        use std::io::BufRead;
        let mut child = std::process::Command::new(hallq_tests::hallq_bin())
            .args(["receive", "--broker", &format!("127.0.0.1:{port}")])
            .arg("--db")
            .arg(db)
            .args(["--client-id", client_id])
            .args(extra)
            .env("HALLQ_LOG", "info")
            .stdout(std::process::Stdio::piped())
            .stderr(
                std::fs::File::create(db.with_extension(format!("{client_id}.log")))
                    .expect("log file"),
            )
            .spawn()
            .expect("hallq receive starts");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("receiver output");
        assert!(line.starts_with("receiving"), "receiver said {line:?}");
        ReceiveProcess(child)
    }
}

impl Drop for ReceiveProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn summary(db: &std::path::Path) -> hallq::uplink::receive::Summary {
    let conn = hallq::uplink::receive::open_db(db).expect("receiver db");
    hallq::uplink::receive::summarize(&conn).expect("summary")
}

#[test]
fn the_reference_receiver_asks_for_a_gap_again_and_it_is_filled() {
    let hall = Hall::new();
    let broker = Broker::start(&hall.dir.path().join("broker"), &BrokerOptions::default())
        .expect("mosquitto starts");
    let db = hall.dir.path().join("received.db");
    let first = ReceiveProcess::start(broker.port, &db, "receiver-a", &[]);
    add_uplink(&hall.config, &uplink_section(broker.port, "test-hall"));
    let d = hall.start();
    issue(&d, 3);
    let seen = last_seq(&hall, &d);
    wait_for(LONG, "the first events stored", || {
        summary(&db)
            .controllers
            .first()
            .is_some_and(|c| c.last_seq == seen)
            .then_some(())
    });
    // The receiver goes; events published meanwhile are kept for its session, which a
    // receiver under another client id never gets: they are lost to it.
    drop(first);
    issue(&d, 4);
    let lost_to = last_seq(&hall, &d);
    wait_for(LONG, "the missed events delivered", || {
        (uplink_status(&hall, &d)["backlog"]["undelivered"] == 0).then_some(())
    });
    let _second = ReceiveProcess::start(broker.port, &db, "receiver-b", &["--repair-after", "1"]);
    issue(&d, 1);
    // The next event shows the gap; a second later the receiver asks, the controller
    // sends it again and the gap closes.
    let deadline = std::time::Instant::now() + LONG;
    let s = loop {
        let s = summary(&db);
        if s.controllers
            .first()
            .is_some_and(|c| c.gaps.is_empty() && c.last_seq > lost_to)
        {
            break s;
        }
        if std::time::Instant::now() > deadline {
            let log = std::fs::read_to_string(db.with_extension("receiver-b.log"));
            panic!("the gap stays open: {s:?}\nreceiver: {log:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let c = &s.controllers[0];
    assert_eq!((c.first_seq, c.events), (1, c.last_seq), "{s:?}");
    let resent = hall.events_of("events_resent");
    assert!(!resent.is_empty(), "the receiver asked");
    assert_eq!(resent[0]["from_seq"], seen + 1, "{resent:?}");
    assert!(
        resent[0]["command_id"]
            .as_str()
            .unwrap_or("")
            .starts_with("receive-")
    );
}
