//! The citizen's phone, against the real daemon: the ticket's QR code opens its status
//! page (`/t/{token}`), which shows that ticket and nothing else of the hall, follows it
//! live through its own stream and recovers after a controller restart; an unknown or
//! expired token gets the friendly page, probing is logged, counted and slowed down;
//! the token itself is found nowhere but on the citizen's side (not in the database,
//! an event, the uplink or the log), only its SHA-256. The browser tests run headless
//! Chromium at a phone's size and save the page's screenshots for the README.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hallq_hardware::virtual_printer::{VirtualPrinter, VirtualPrinterHandle};
use hallq_tests::mqtt::{Broker, BrokerOptions, Receiver, add_uplink, uplink_section};
use hallq_tests::webdriver::{Browser, Driver};
use hallq_tests::{Hall, client, send, sign_in};
use serde_json::{Value, json};
use serialport::SerialPort as _;
use sha2::{Digest, Sha256};

/// One browser test at a time (the machine has two cores).
static BROWSERS: Mutex<()> = Mutex::new(());

/// A phone's viewport.
const PHONE: (u32, u32) = (360, 740);

/// A test hall on a fixed port, three-digit numbers, whose QR codes open
/// `{its own address}/t/{token}`, plus `extra` configuration.
fn hall(extra: &str) -> (Hall, String) {
    let hall = Hall::new();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let text = std::fs::read_to_string(&hall.config).unwrap();
    let text = text
        .replace("number_width = 6", "number_width = 3")
        .replace("127.0.0.1:0", &format!("127.0.0.1:{port}"));
    let text = format!("{text}\n[phone]\nbase_url = \"{url}\"\n{extra}\n");
    std::fs::write(&hall.config, text).unwrap();
    (hall, url)
}

/// Takes a ticket: (ticket, token).
fn issue(url: &str, service: &str) -> (Value, String) {
    let (s, b) = send(
        client()
            .post(format!("{url}/api/v1/tickets"))
            .send_json(json!({ "service": service })),
    );
    assert_eq!(s, 201, "{b}");
    let token = b["token"].as_str().expect("a token").to_string();
    (b["ticket"].clone(), token)
}

fn act(url: &str, bearer: &str, window: u32, action: &str) -> Value {
    let (s, b) = send(
        client()
            .post(format!("{url}/api/v1/windows/{window}/{action}"))
            .header("Authorization", bearer)
            .send_json(json!({})),
    );
    assert_eq!(s, 200, "{action}: {b}");
    b
}

fn status(url: &str, token: &str) -> (u16, Value) {
    send(client().get(format!("{url}/t/{token}/status")).call())
}

/// A GET as text: status, headers we check, body.
fn get_text(url: &str) -> (u16, ureq::http::HeaderMap, String) {
    let mut r = client().get(url).call().expect("reached the daemon");
    let headers = r.headers().clone();
    let body = r.body_mut().read_to_string().unwrap_or_default();
    (r.status().as_u16(), headers, body)
}

/// The raw bytes of a ticket's stream, read while `during` runs and a moment after.
fn stream_bytes(url: &str, token: &str, during: impl FnOnce()) -> String {
    let addr = url.trim_start_matches("http://");
    let mut sock = TcpStream::connect(addr).expect("connect");
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    write!(
        sock,
        "GET /t/{token}/stream HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n"
    )
    .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let mut read_for = |d: Duration, got: &mut Vec<u8>| {
        let end = Instant::now() + d;
        while Instant::now() < end {
            match sock.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(_) => {}
            }
        }
    };
    read_for(Duration::from_millis(500), &mut got);
    during();
    read_for(Duration::from_millis(1500), &mut got);
    String::from_utf8_lossy(&got).into_owned()
}

fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

#[test]
fn the_status_shows_only_its_own_ticket_and_its_stream_follows_the_call() {
    let (hall, url) = hall("");
    hall.add_staff("S001", "135790", &["--window", "1"]);
    let _d = hall.start();
    let (first, _) = issue(&url, "SB");
    let (mine, token) = issue(&url, "SB");
    let (other, _) = issue(&url, "MZ");
    let numbers = [
        first["number"].as_str().unwrap(),
        other["number"].as_str().unwrap(),
    ];

    let (s, headers, page) = get_text(&format!("{url}/t/{token}"));
    assert_eq!(s, 200);
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(headers["referrer-policy"], "no-referrer");
    assert!(page.contains("phone.js"), "{page}");

    let (s, b) = status(&url, &token);
    assert_eq!(s, 200, "{b}");
    let st = &b["status"];
    assert_eq!(st["number"], mine["number"]);
    assert_eq!(
        (st["state"].as_str(), st["ahead"].as_u64()),
        (Some("waiting"), Some(1))
    );
    assert_eq!(st["service"], "SB");
    assert!(st["estimated_wait_minutes"].is_u64(), "{st}");
    for n in numbers {
        assert!(!b.to_string().contains(n), "{n} in {b}");
    }

    let bearer = sign_in(&url, "S001", "135790", Some(1));
    let bytes = stream_bytes(&url, &token, || {
        act(&url, &bearer, 1, "call-next"); // the first ticket
        act(&url, &bearer, 1, "start");
        std::thread::sleep(Duration::from_millis(300));
        act(&url, &bearer, 1, "call-next"); // this one (the first is finished)
    });
    assert!(bytes.contains("event: status"), "{bytes}");
    assert!(bytes.contains(r#""ahead":0"#), "{bytes}");
    assert!(bytes.contains(r#""state":"called""#), "{bytes}");
    assert!(bytes.contains(r#""window":1"#), "{bytes}");
    for n in numbers {
        assert!(
            !bytes.contains(n),
            "another ticket's number {n} in the stream: {bytes}"
        );
    }
    for staff in ["S001", "测试员"] {
        assert!(
            !bytes.contains(staff),
            "staff {staff} in the stream: {bytes}"
        );
    }
}

#[test]
fn an_unknown_token_gets_the_friendly_page_and_probing_is_logged_counted_and_slowed() {
    let (hall, url) = hall("");
    let log = hall.dir.path().join("daemon.log");
    let _d = hall.start_logging(&log);
    let (_, token) = issue(&url, "SB");
    let probes: Vec<String> = (0..10u32)
        .map(|i| {
            if i % 2 == 0 {
                format!("{i:04x}{}", "9e".repeat(14))
            } else {
                format!("not-a-token-{i}")
            }
        })
        .collect();
    for p in &probes {
        let (s, headers, body) = get_text(&format!("{url}/t/{p}"));
        assert_eq!(s, 404, "{p}");
        assert!(
            headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
        for words in [
            "找不到这张号票",
            "找不到這張號票",
            "This ticket cannot be found",
        ] {
            assert!(body.contains(words), "{words} missing: {body}");
        }
    }
    // The eleventh guess is refused, and so is this address's next request, even for a
    // real ticket, until the budget refills.
    let (s, headers, _) = get_text(&format!("{url}/t/{}", "ab".repeat(16)));
    assert_eq!(s, 429);
    let wait: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "Retry-After {wait}");
    let (s, b) = status(&url, &token);
    assert_eq!(s, 429, "{b}");
    assert_eq!(b["error"]["code"], "too_many_requests");

    let (_, _, metrics) = get_text(&format!("{url}/metrics"));
    assert!(
        metrics.contains("hallq_phone_unknown_tokens_total 10"),
        "{metrics}"
    );
    let limited = metrics
        .lines()
        .find_map(|l| l.strip_prefix("hallq_phone_rate_limited_total "))
        .and_then(|v| v.parse::<u64>().ok())
        .expect("the rate-limited counter");
    assert!(limited >= 2, "{limited}");

    let text = std::fs::read_to_string(&log).unwrap();
    let probe_lines = text
        .lines()
        .filter(|l| l.contains("unknown or expired token"))
        .count();
    assert_eq!(probe_lines, 10, "{text}");
    assert!(text.contains("0000…"), "{text}");
    for p in &probes {
        assert!(!text.contains(p.as_str()), "a whole token in the log: {p}");
    }
}

#[test]
fn the_event_carries_the_tokens_hash_and_the_token_is_nowhere_but_the_qr_code() {
    let (master, slave) = serialport::TTYPort::pair().expect("pseudo-terminal pair");
    let path = slave.name().expect("pty path");
    let printer =
        VirtualPrinterHandle::serve_stream(VirtualPrinter::new(), master).expect("virtual printer");
    let (hall, url) = hall(&format!(
        "[printer]\npaper = \"58mm\"\n[printer.transport]\nkind = \"serial\"\npath = {path:?}\nbaud = 115200\n"
    ));
    let broker = Broker::start(&hall.dir.path().join("broker"), &BrokerOptions::default())
        .expect("mosquitto starts");
    let receiver = Receiver::start(hall.dir.path(), broker.port, &[]);
    add_uplink(&hall.config, &uplink_section(broker.port, "test-hall"));
    hall.add_staff("S001", "135790", &["--window", "1"]);
    let log = hall.dir.path().join("daemon.log");
    let d = hall.start_logging(&log);
    let (ticket, token) = issue(&url, "SB");
    assert!(token.len() >= 24, "at least 96 bits: {token}");

    // The paper ticket's QR code opens the page.
    let page = format!("{url}/t/{token}");
    assert!(
        printer.wait_for(Duration::from_secs(5), |p| p
            .qr_payloads()
            .contains(&page.clone().into_bytes())),
        "the QR code does not carry {page}: {:?}",
        printer.paper().qr_payloads()
    );
    // The whole life of the ticket, with the page open.
    assert_eq!(status(&url, &token).0, 200);
    let bearer = sign_in(&url, "S001", "135790", Some(1));
    for a in ["call-next", "start", "finish"] {
        act(&url, &bearer, 1, a);
    }
    let (s, b) = status(&url, &token);
    assert_eq!((s, b["status"]["state"].as_str()), (200, Some("finished")));

    let issued = hall.events_of("ticket_issued");
    assert_eq!(issued[0]["ticket"]["token_hash"], sha256_hex(&token));
    let n = hall
        .database()
        .query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0))
        .unwrap();
    receiver.wait_for_count(n, Duration::from_secs(20));
    let up = receiver.events();
    let up_issued = up
        .iter()
        .find(|e| e["type"] == "ticket_issued")
        .expect("issued upstream");
    assert_eq!(
        up_issued["payload"]["ticket"]["token_hash"],
        sha256_hex(&token),
        "{up_issued}"
    );
    for e in &up {
        assert!(
            !e.to_string().contains(&token),
            "the token went upstream: {e}"
        );
    }
    drop(d);

    assert_eq!(ticket["number"], b["status"]["number"]);
    let db = hall.database();
    let tables: Vec<String> = db
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    for t in &tables {
        let mut stmt = db.prepare(&format!("SELECT * FROM \"{t}\"")).unwrap();
        let cols = stmt.column_count();
        let mut rows = stmt.query([]).unwrap();
        while let Some(row) = rows.next().unwrap() {
            for c in 0..cols {
                if let Ok(Some(text)) = row.get::<_, Option<String>>(c) {
                    assert!(!text.contains(&token), "the token is stored in {t}");
                }
            }
        }
    }
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("ticket"), "the debug log was written");
    assert!(!text.contains(&token), "the token is in the log");
}

#[test]
fn a_ticket_of_yesterday_is_gone_at_the_days_end() {
    let (hall, url) = hall("");
    let offset = hall.dir.path().join("faketime");
    let Some(_d) = hallq_tests::Daemon::start_faked_clock(
        &hallq_tests::hallq_bin(),
        &hall.config,
        &offset,
        "a_ticket_of_yesterday_is_gone_at_the_days_end",
    ) else {
        return;
    };
    let (_, token) = issue(&url, "SB");
    assert_eq!(status(&url, &token).0, 200);
    std::fs::write(&offset, "+1d\n").unwrap();
    // The next ticket starts the new day.
    issue(&url, "SB");
    let (s, b) = status(&url, &token);
    assert_eq!(s, 404, "{b}");
    assert_eq!(b["error"]["code"], "unknown_ticket");
    let (s, _, body) = get_text(&format!("{url}/t/{token}"));
    assert_eq!(s, 404);
    assert!(body.contains("号票只在取号当天有效"), "{body}");
}

fn shot(b: &Browser, name: &str) {
    b.screenshot(&hallq_tests::screens_dir().join(name))
        .expect("screenshot");
}

fn page_text(b: &Browser) -> String {
    b.js("return document.body.innerText", json!([]))
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default()
}

#[test]
fn a_phone_follows_its_ticket_from_the_queue_to_the_window_and_through_a_restart() {
    let _one = BROWSERS.lock().unwrap_or_else(|p| p.into_inner());
    // The hall offers the near-turn text message (an uplink, to no broker here), when
    // one person is ahead.
    let (hall, url) = hall("notify_ahead = 1\nnotify_minutes = 0");
    let nobody = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = nobody.local_addr().unwrap().port();
    drop(nobody);
    add_uplink(&hall.config, &uplink_section(port, "h"));
    hall.add_staff("S001", "135790", &["--window", "3"]);
    let d = hall.start();
    // Window 3 serves 民政 (MZ); the other ticket is for 社保 (SB).
    let (first, _) = issue(&url, "MZ");
    let (_, _) = issue(&url, "MZ");
    let (mine, token) = issue(&url, "MZ");
    let (other, _) = issue(&url, "SB");
    let number = mine["number"].as_str().unwrap();
    let (s, b) = send(
        client()
            .post(format!("{url}/api/v1/tickets/{}/notice", mine["id"]))
            .header("X-Ticket-Token", &token)
            .send_json(json!({ "mobile": "13812345678" })),
    );
    assert_eq!(s, 201, "{b}");

    let driver = Driver::start().unwrap();
    let phone = driver.browser(PHONE.0, PHONE.1).unwrap();
    // Scanning the QR code opens the page (in 简体中文: the test browser says English).
    phone.go(&format!("{url}/t/{token}")).unwrap();
    phone
        .wait_for("the page", 20, |b| b.visible(".langs"))
        .unwrap();
    phone.click(".langs button[data-lang='zh-CN']").unwrap();
    phone
        .wait_for("the number and the people ahead", 20, |b| {
            b.text("#number") == number && b.text("#ahead") == "2"
        })
        .unwrap();
    assert!(
        page_text(&phone).contains("前面还有"),
        "{}",
        page_text(&phone)
    );
    assert_eq!(phone.text("#sms"), "快到您时将短信提醒 138****5678");
    assert!(!phone.visible("#near"));
    for n in [&first["number"], &other["number"]] {
        assert!(
            !page_text(&phone).contains(n.as_str().unwrap()),
            "{n} shows"
        );
    }
    assert_eq!(phone.blank_glyphs("main").unwrap(), Vec::<String>::new());
    shot(&phone, "phone-waiting.png");

    // The controller loses power and comes back: the page says it is reconnecting, then
    // catches up with what happened meanwhile.
    drop(d);
    phone
        .wait_for("the reconnecting mark", 20, |b| b.visible("#offline"))
        .unwrap();
    let _d = hall.start();
    let bearer = sign_in(&url, "S001", "135790", Some(3));
    act(&url, &bearer, 3, "call-next");
    act(&url, &bearer, 3, "start");
    phone
        .wait_for("live again with one ahead", 30, |b| {
            !b.visible("#offline") && b.text("#ahead") == "1"
        })
        .unwrap();
    // One ahead: the near-turn notice has gone, and the page says so.
    phone
        .wait_for("the near-turn banner", 5, |b| {
            b.visible("#near") && b.text("#near") == "快到您了！请回到大厅，留意叫号。"
        })
        .unwrap();
    assert_eq!(phone.text("#sms"), "已短信提醒 138****5678");
    assert_eq!(phone.blank_glyphs("main").unwrap(), Vec::<String>::new());
    shot(&phone, "phone-near.png");

    act(&url, &bearer, 3, "call-next");
    act(&url, &bearer, 3, "start");
    phone
        .wait_for("next in line", 5, |b| b.text("#ahead") == "0")
        .unwrap();
    let before = Instant::now();
    act(&url, &bearer, 3, "call-next");
    phone
        .wait_for("the call", 5, |b| b.text("#call") == "请到 3 号窗口")
        .unwrap();
    let took = before.elapsed();
    println!("the call showed on the phone {took:?} after the request was sent");
    assert!(
        took < Duration::from_secs(1),
        "the call took {took:?} to show"
    );
    let text = page_text(&phone);
    for n in [&first["number"], &other["number"]] {
        assert!(!text.contains(n.as_str().unwrap()), "{n} shows: {text}");
    }
    assert!(!text.contains("测试员") && !text.contains("S001"), "{text}");
    shot(&phone, "phone-called.png");

    // In English, the same call.
    phone.click(".langs button[data-lang='en']").unwrap();
    phone
        .wait_for("English", 5, |b| b.text("#call") == "Please go to window 3")
        .unwrap();
    assert!(
        !page_text(&phone).contains("前面"),
        "no Chinese left in English: {}",
        page_text(&phone)
    );
}

#[test]
fn a_wrong_token_gets_the_friendly_page_on_a_phone() {
    let _one = BROWSERS.lock().unwrap_or_else(|p| p.into_inner());
    let (hall, url) = hall("");
    let _d = hall.start();
    let driver = Driver::start().unwrap();
    let phone = driver.browser(PHONE.0, PHONE.1).unwrap();
    phone
        .go(&format!("{url}/t/{}", "0123456789abcdef".repeat(2)))
        .unwrap();
    phone
        .wait_for("the gone page", 20, |b| b.visible(".gone-block"))
        .unwrap();
    let text = page_text(&phone);
    for words in [
        "找不到这张号票",
        "找不到這張號票",
        "This ticket cannot be found",
    ] {
        assert!(text.contains(words), "{words} missing: {text}");
    }
    assert_eq!(phone.blank_glyphs("main").unwrap(), Vec::<String>::new());
    shot(&phone, "phone-unknown.png");
}
