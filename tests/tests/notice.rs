//! The near-turn notice against the real daemon (issue 20): the kiosk learns whether
//! the hall offers it, the citizen's number is checked and kept apart from every event
//! and log, the `near_turn` notice goes once per ticket when the people ahead fall to
//! `[phone] notify_ahead` (across a SIGKILL of the controller, and not again after a
//! recall), and the reference receiver posts each text message exactly once to an SMS
//! webhook, a local HTTP server here.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::time::Duration;

use hallq_tests::mqtt::{Broker, BrokerOptions, Receiver, add_uplink, uplink_section, wait_for};
use hallq_tests::webhook::Webhook;
use hallq_tests::{Hall, client, send, sign_in};
use serde_json::{Value, json};

const LONG: Duration = Duration::from_secs(60);

/// A hall with an uplink to `port` (a broker, or nothing listening) and `phone` added
/// to its `[phone]` section.
fn hall_with_uplink(port: u16, phone: &str) -> Hall {
    let hall = Hall::with_config(&format!("[phone]\n{phone}\n"));
    add_uplink(&hall.config, &uplink_section(port, "test-hall"));
    hall
}

/// A port nothing listens on.
fn unused_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
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

fn ask(url: &str, id: u64, token: Option<&str>, mobile: &str) -> (u16, Value) {
    let mut req = client().post(format!("{url}/api/v1/tickets/{id}/notice"));
    if let Some(t) = token {
        req = req.header("X-Ticket-Token", t);
    }
    send(req.send_json(json!({ "mobile": mobile })))
}

/// Asserts a refusal's status and error code.
fn refused_with((status, body): (u16, Value), want: u16, code: &str) {
    assert_eq!(status, want, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
}

fn act(url: &str, bearer: &str, action: &str) -> Value {
    let (s, b) = send(
        client()
            .post(format!("{url}/api/v1/windows/1/{action}"))
            .header("Authorization", bearer)
            .send_json(json!({})),
    );
    assert_eq!(s, 200, "{action}: {b}");
    b
}

/// Everything the controller's database holds as text, except the notice tables
/// (where the number belongs): events, tickets, the audit of staff, settings.
fn everything_but_notices(hall: &Hall) -> String {
    let db = hall.database();
    let mut out = String::new();
    for table in ["events", "tickets", "sessions", "meta"] {
        let sql = format!("SELECT * FROM {table}");
        let mut stmt = db.prepare(&sql).expect("query");
        let n = stmt.column_count();
        let mut rows = stmt.query([]).expect("rows");
        while let Some(r) = rows.next().expect("row") {
            for i in 0..n {
                if let Ok(v) = r.get::<_, rusqlite::types::Value>(i) {
                    out.push_str(&format!("{v:?}|"));
                }
            }
            out.push('\n');
        }
    }
    out
}

#[test]
fn the_kiosk_is_told_the_offer_and_a_number_is_checked_masked_and_kept_apart() {
    // No uplink: no text message can go, so the kiosk is not offered the step.
    let plain = Hall::new();
    let d = plain.start();
    let (s, k) = send(client().get(format!("{}/api/v1/kiosk", d.url)).call());
    assert_eq!(s, 200);
    assert_eq!(k["notify"], Value::Null, "{k}");
    let (id, _, token) = issue(&d.url);
    refused_with(
        ask(&d.url, id, Some(&token), "13812345678"),
        409,
        "notify_off",
    );
    drop(d);

    let hall = hall_with_uplink(unused_port(), "notify_ahead = 2");
    let log = hall.dir.path().join("daemon.log");
    let d = hall.start_logging(&log);
    let (_, k) = send(client().get(format!("{}/api/v1/kiosk", d.url)).call());
    assert_eq!(k["notify"], json!({ "ahead": 2, "minutes": 10 }), "{k}");
    let tickets: Vec<_> = (0..6).map(|_| issue(&d.url)).collect();
    let (id, number, token) = tickets[5].clone();
    refused_with(
        ask(&d.url, id, None, "13812345678"),
        403,
        "ticket_token_required",
    );
    refused_with(
        ask(&d.url, id, Some(&tickets[4].2), "13812345678"),
        403,
        "not_your_ticket",
    );
    for bad in [
        "1381234567",
        "23812345678",
        "138123456789",
        "138-1234-567a",
        "",
    ] {
        let (s, b) = ask(&d.url, id, Some(&token), bad);
        assert_eq!(s, 422, "{bad:?}: {b}");
        assert_eq!(b["error"]["field"], "mobile", "{bad:?}: {b}");
    }
    let (s, b) = send(
        client()
            .post(format!("{}/api/v1/tickets/{id}/notice", d.url))
            .header("X-Ticket-Token", &token)
            .send_json(json!({ "phone": "13812345678" })),
    );
    assert_eq!(s, 422, "an unknown field is named: {b}");
    // A typo, then the right number: the second replaces the first.
    let (s, b) = ask(&d.url, id, Some(&token), "139 0000 1111");
    assert_eq!(s, 201, "{b}");
    let (s, b) = ask(&d.url, id, Some(&token), "+86 138 1234 5678");
    assert_eq!(s, 201, "{b}");
    assert_eq!(
        b["notice"],
        json!({ "ticket": id, "mobile": "138****5678", "ahead": 5, "notify_ahead": 2,
                "notify_minutes": 10, "sent": false }),
        "five ahead and an estimate over ten minutes: not near yet"
    );
    let requested = hall.events_of("notice_requested");
    assert_eq!(requested.len(), 2, "{requested:?}");
    assert_eq!(
        requested[1],
        json!({ "type": "notice_requested", "ticket": id, "number": number, "mobile": "138****5678" })
    );
    let stored: String = hall
        .database()
        .query_row(
            "SELECT mobile FROM notices WHERE ticket = ?1",
            [id as i64],
            |r| r.get(0),
        )
        .expect("the number is kept for the ticket");
    assert_eq!(stored, "13812345678");
    // The ticket's own page shows the notice, masked.
    let (_, st) = send(client().get(format!("{}/t/{token}/status", d.url)).call());
    assert_eq!(
        st["status"]["notice"],
        json!({ "mobile": "138****5678", "sent": false })
    );
    // The citizen withdraws the ticket: the number goes with it.
    let (s, b) = send(
        client()
            .delete(format!("{}/api/v1/tickets/{id}", d.url))
            .header("X-Ticket-Token", &token)
            .call(),
    );
    assert_eq!(s, 200, "{b}");
    let left: i64 = hall
        .database()
        .query_row("SELECT COUNT(*) FROM notices", [], |r| r.get(0))
        .unwrap();
    assert_eq!(left, 0, "the number is erased when the ticket ends");
    refused_with(
        ask(&d.url, id, Some(&token), "13812345678"),
        409,
        "ticket_not_waiting",
    );
    drop(d);
    let text = everything_but_notices(&hall);
    for digits in ["13812345678", "13900001111", "12345678", "00001111"] {
        assert!(!text.contains(digits), "{digits} is in the database");
    }
    let log = std::fs::read_to_string(&log).expect("the daemon's log");
    assert!(
        log.contains("138****5678"),
        "the log says what was asked, masked"
    );
    for digits in ["13812345678", "13900001111", "1234 5678"] {
        assert!(!log.contains(digits), "{digits} is in the log");
    }
}

#[test]
fn each_near_turn_goes_once_across_a_sigkill_and_reaches_the_sms_webhook_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let broker =
        Broker::start(&dir.path().join("broker"), &BrokerOptions::default()).expect("mosquitto");
    let hook = Webhook::start(1, "503 Service Unavailable");
    let receiver = Receiver::start(dir.path(), broker.port, &["--sms-webhook", &hook.url]);
    // By people ahead only, so the test does not hang on the estimate.
    let hall = hall_with_uplink(broker.port, "notify_ahead = 2\nnotify_minutes = 0");
    hall.add_staff("S001", "135790", &["--window", "1"]);
    let log = hall.dir.path().join("daemon.log");
    let d = hall.start_logging(&log);
    let tickets: Vec<_> = (0..9).map(|_| issue(&d.url)).collect();
    // Mobile numbers for tickets 2 (already near: goes at once), 4, 5, 6, 7 and 9.
    let asked = [1usize, 3, 4, 5, 6, 8];
    let mobile = |i: usize| format!("1391234{i:04}");
    for &i in &asked {
        let (id, _, token) = &tickets[i];
        let (s, b) = ask(&d.url, *id, Some(token), &mobile(i));
        assert_eq!(s, 201, "{b}");
        assert_eq!(b["notice"]["sent"], json!(i <= 2), "ticket {i}: {b}");
    }
    let bearer = sign_in(&d.url, "S001", "135790", Some(1));
    // A message whose ticket ends before the broker has it is dropped with the number
    // (the citizen no longer needs it): the hall moves on only once the ones due are
    // with the webhook, as a real hall's minutes between calls allow.
    let delivered = |hall: &Hall| {
        let due = hall.events_of("near_turn").len();
        wait_for(LONG, "the text messages due to reach the webhook", || {
            (hook.posts().len() >= due).then_some(())
        });
    };
    let near = |hall: &Hall| -> BTreeMap<u64, usize> {
        let mut m = BTreeMap::new();
        for e in hall.events_of("near_turn") {
            *m.entry(e["ticket"].as_u64().expect("ticket")).or_default() += 1;
        }
        m
    };
    // The first call brings ticket 4 within two of its turn.
    act(&d.url, &bearer, "call-next");
    assert_eq!(
        near(&hall).keys().copied().collect::<Vec<_>>(),
        vec![tickets[1].0, tickets[3].0],
        "ticket 2 at once, ticket 4 when two were ahead"
    );
    delivered(&hall);
    // The ticket's own page says so too.
    let (_, st) = send(
        client()
            .get(format!("{}/t/{}/status", d.url, tickets[3].2))
            .call(),
    );
    assert_eq!(
        st["status"]["notice"],
        json!({ "mobile": "139****0003", "sent": true }),
        "{st}"
    );
    act(&d.url, &bearer, "recall");
    act(&d.url, &bearer, "start");
    // A power cut right after the call that makes ticket 5's notice, before the
    // uplink has had a chance to send it.
    act(&d.url, &bearer, "call-next");
    drop(d); // SIGKILL
    let d = hall.start_logging(&log);
    delivered(&hall);
    act(&d.url, &bearer, "start");
    // Everyone else is called, and recalled (ticket 2's notice does not go again).
    for _ in 2..9 {
        act(&d.url, &bearer, "call-next");
        delivered(&hall);
        act(&d.url, &bearer, "recall");
        act(&d.url, &bearer, "start");
    }
    let sent = near(&hall);
    let want: Vec<u64> = asked.iter().map(|&i| tickets[i].0).collect();
    assert_eq!(sent.keys().copied().collect::<Vec<_>>(), want);
    assert!(
        sent.values().all(|&n| n == 1),
        "one near_turn per ticket: {sent:?}"
    );
    // Each reaches the webhook once (the first post was refused and retried).
    let deadline = std::time::Instant::now() + LONG;
    let posts = loop {
        let p = hook.posts();
        if p.len() >= want.len() {
            break p;
        }
        let waiting: i64 = hall
            .database()
            .query_row("SELECT COUNT(*) FROM sms_outbox", [], |r| r.get(0))
            .unwrap();
        assert!(
            std::time::Instant::now() < deadline,
            "{} of {} posts; {waiting} in the controller's outbox; receiver: {:?}",
            p.len(),
            want.len(),
            receiver.summary()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    std::thread::sleep(Duration::from_secs(3));
    let posts_after = hook.posts();
    assert_eq!(
        posts_after.len(),
        want.len(),
        "no second post: {posts_after:?}"
    );
    let mut by_ticket: BTreeMap<u64, Vec<&Value>> = BTreeMap::new();
    for p in &posts {
        by_ticket
            .entry(p["near_turn"]["ticket"].as_u64().expect("ticket"))
            .or_default()
            .push(p);
    }
    assert_eq!(by_ticket.keys().copied().collect::<Vec<_>>(), want);
    for &i in &asked {
        let p = &by_ticket[&tickets[i].0][0];
        assert_eq!(p["mobile"], mobile(i), "{p}");
        assert_eq!(p["near_turn"]["number"], tickets[i].1.as_str(), "{p}");
        assert!(
            p["text"]
                .as_str()
                .is_some_and(|t| t.contains(&tickets[i].1)),
            "{p}"
        );
    }
    // The controller's outbox is empty once the broker has them; the receiver erased
    // the numbers it posted; no event anywhere holds one.
    wait_for(LONG, "the controller's outbox to empty", || {
        let n: i64 = hall
            .database()
            .query_row("SELECT COUNT(*) FROM sms_outbox", [], |r| r.get(0))
            .unwrap();
        (n == 0).then_some(())
    });
    let summary = receiver.summary();
    assert_eq!(
        (summary.sms, summary.sms_posted),
        (want.len() as i64, want.len() as i64)
    );
    let received = receiver.events();
    let text = format!(
        "{}{}",
        everything_but_notices(&hall),
        serde_json::to_string(&received).unwrap()
    );
    let kept: String = rusqlite::Connection::open(&receiver.db)
        .unwrap()
        .query_row("SELECT group_concat(body) FROM sms", [], |r| r.get(0))
        .unwrap();
    let log = std::fs::read_to_string(&log).expect("log");
    for &i in &asked {
        let m = mobile(i);
        assert!(
            !text.contains(&m),
            "{m} in the events or the uplink's event stream"
        );
        assert!(!kept.contains(&m), "{m} kept by the receiver after posting");
        assert!(!log.contains(&m), "{m} in the controller's log");
    }
    assert_eq!(
        received.iter().filter(|e| e["type"] == "near_turn").count(),
        want.len(),
        "the near_turn events reach the hall server too, without the number"
    );
    drop(d);
}

/// `notify = true` without an uplink is refused, naming the key.
#[test]
fn notify_without_an_uplink_is_a_configuration_error_naming_the_key() {
    let hall = Hall::with_config("[phone]\nnotify = true\n");
    let err = hall.config_refusal();
    assert!(err.contains("phone.notify"), "{err}");
}
