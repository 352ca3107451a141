//! The ID card at the kiosk (刷身份证取号) against the real daemon, with a simulated SAM
//! reader on a pseudo-terminal: a card placed shows masked on the kiosk's card
//! endpoint and takes a ticket; a second ticket for the same service is refused with
//! the citizen-facing reason; a 75-year-old's card gives a green ticket that is called
//! before earlier normal ones; the holder's appointment of today is checked in by the
//! card; a typed number with a wrong check character is refused; and afterwards
//! neither the name nor the full number is anywhere in the database file, its WAL or
//! the daemon's log.

use std::path::Path;
use std::time::{Duration, Instant};

use hallq_hardware::idcard::sim::SimReaderHandle;
use hallq_hardware::idcard::text::CardText;
use hallq_tests::{Hall, client, send};
use serde_json::{Value, json};
use serialport::{SerialPort, TTYPort};

/// A 46-year-old (born 1980-01-01): normal class.
const ADULT_NAME: &str = "王小明";
const ADULT_ID: &str = "110101198001012024";
/// Born 1950-01-01: 75 or older whenever this test runs.
const ELDER_NAME: &str = "欧阳秀英";
const ELDER_ID: &str = "11010119500101101X";

/// A simulated reader; keep the returned port open for the PTY to stay up.
fn reader_on_pty() -> (SimReaderHandle, TTYPort, String) {
    let (master, terminal) = TTYPort::pair().expect("pseudo-terminal pair");
    let path = terminal.name().expect("the terminal side has a path");
    let reader = SimReaderHandle::serve_stream(master).expect("simulated reader starts");
    (reader, terminal, path)
}

fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

struct Kiosk {
    url: String,
    id: &'static str,
}

impl Kiosk {
    fn card(&self) -> Value {
        let (s, b) = send(
            client()
                .get(format!("{}/api/v1/kiosk/card", self.url))
                .header("X-Kiosk-Id", self.id)
                .call(),
        );
        assert_eq!(s, 200, "{b}");
        b
    }

    fn issue(&self, key: &str, lang: &str, body: Value) -> (u16, Value) {
        send(
            client()
                .post(format!("{}/api/v1/tickets", self.url))
                .header("X-Kiosk-Id", self.id)
                .header("Idempotency-Key", key)
                .header("Accept-Language", lang)
                .send_json(body),
        )
    }

    fn wait_for_card(&self, masked_id: &str) -> Value {
        let mut last = Value::Null;
        wait_until(
            &format!("card {masked_id} on the kiosk"),
            Duration::from_secs(10),
            || {
                last = self.card();
                last["present"] == true && last["id"] == masked_id
            },
        );
        last
    }
}

/// UTF-8 and UCS-2LE (as the card holds it) of `text`.
fn spellings(text: &str) -> [Vec<u8>; 2] {
    [
        text.as_bytes().to_vec(),
        text.encode_utf16().flat_map(u16::to_le_bytes).collect(),
    ]
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Every file that must not hold the person: the database, its WAL, the daemon's log.
fn assert_no_trace(files: &[&Path], secrets: &[&str]) {
    for f in files {
        let Ok(bytes) = std::fs::read(f) else {
            continue;
        };
        for secret in secrets {
            for spelling in spellings(secret) {
                assert!(
                    !contains(&bytes, &spelling),
                    "{} holds {secret:?}",
                    f.display()
                );
            }
        }
    }
}

#[test]
fn a_card_takes_one_ticket_per_service_an_elder_goes_green_and_nothing_personal_is_kept() {
    let (reader, _keep, path) = reader_on_pty();
    let hall = Hall::with_config(&format!(
        "[[id_reader]]\nid = \"r1\"\nport = {path:?}\nkiosk = \"kiosk-1\"\npoll_ms = 100\n\n\
         [id_card]\ngreen_age = 70\n"
    ));
    hall.add_staff("S001", "135790", &["--window", "1"]);
    let log = hall.dir.path().join("daemon.log");
    let d = hall.start_logging(&log);
    let kiosk = Kiosk {
        url: d.url.clone(),
        id: "kiosk-1",
    };
    let c = client();

    // A kiosk without a reader says so; this one has one and no card yet.
    let other = Kiosk {
        url: d.url.clone(),
        id: "kiosk-2",
    };
    assert_eq!(other.card()["reader"], false);
    let (s, b) = other.issue("k2-1", "zh-CN", json!({"service": "SB", "id_card": true}));
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (409, Some("no_id_card")),
        "{b}"
    );
    let empty = kiosk.card();
    assert_eq!(
        (empty["reader"].clone(), empty["present"].clone()),
        (json!(true), json!(false))
    );
    let (s, b) = kiosk.issue("k1-0", "zh-CN", json!({"service": "SB", "id_card": true}));
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (409, Some("no_id_card")),
        "{b}"
    );
    assert!(
        b["error"]["message"].as_str().unwrap().contains("身份证"),
        "{b}"
    );

    // The card placed: the kiosk sees it masked, never the name or the number.
    reader.place(CardText::specimen(ADULT_NAME, ADULT_ID));
    let card = kiosk.wait_for_card("110***********2024");
    assert_eq!(card["name"], "王*明");
    assert_eq!(card["green"], false);
    assert!(
        card["age"].as_u64().is_some_and(|a| (45..=47).contains(&a)),
        "{card}"
    );
    assert_eq!(card["appointment"], Value::Null);
    let shown = card.to_string();
    assert!(
        !shown.contains(ADULT_NAME) && !shown.contains(ADULT_ID),
        "{shown}"
    );

    // A ticket with the card; a second for the same service is refused in the
    // citizen's language, naming the ticket they hold; another service is fine.
    let (s, first) = kiosk.issue("k1-1", "zh-CN", json!({"service": "SB", "id_card": true}));
    assert_eq!(s, 201, "{first}");
    assert_eq!(first["ticket"]["class"], "normal");
    let number = first["ticket"]["number"].as_str().unwrap().to_string();
    let (s, b) = kiosk.issue("k1-2", "zh-CN", json!({"service": "SB", "id_card": true}));
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (409, Some("already_holds_ticket")),
        "{b}"
    );
    let zh = b["error"]["message"].as_str().unwrap();
    assert!(
        zh.contains(&number) && zh.contains("同一事项每人只能取一个号"),
        "{zh}"
    );
    let (_, b) = kiosk.issue("k1-3", "en", json!({"service": "SB", "id_card": true}));
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .contains("One ticket per person per service"),
        "{b}"
    );
    let (_, b) = kiosk.issue("k1-4", "zh-TW", json!({"service": "SB", "id_card": true}));
    assert!(
        b["error"]["message"].as_str().unwrap().contains("同一事項"),
        "{b}"
    );
    // The retry of the first request is its ticket again, not a refusal.
    let (s, again) = kiosk.issue("k1-1", "zh-CN", json!({"service": "SB", "id_card": true}));
    assert_eq!(
        (s, again["ticket"]["number"].as_str()),
        (200, Some(number.as_str())),
        "{again}"
    );
    // The same person typing their number is the same person.
    let (s, b) = kiosk.issue(
        "k1-5",
        "zh-CN",
        json!({"service": "SB", "citizen_id": ADULT_ID}),
    );
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (409, Some("already_holds_ticket")),
        "{b}"
    );
    let (s, b) = kiosk.issue("k1-6", "zh-CN", json!({"service": "HJ", "id_card": true}));
    assert_eq!(s, 201, "{b}");
    assert_eq!(kiosk.card()["tickets"].as_array().map(Vec::len), Some(2));

    // A typed number whose check character is wrong is refused, naming the field.
    let wrong = format!("{}5", &ADULT_ID[..17]);
    let (s, b) = kiosk.issue(
        "k1-7",
        "zh-CN",
        json!({"service": "MZ", "citizen_id": wrong}),
    );
    assert_eq!(
        (s, b["error"]["field"].as_str()),
        (422, Some("citizen_id")),
        "{b}"
    );

    // Lifted: forgotten at once.
    reader.remove();
    wait_until("the card to be forgotten", Duration::from_secs(5), || {
        kiosk.card()["present"] == false
    });
    let (s, _) = kiosk.issue("k1-8", "zh-CN", json!({"service": "MZ", "id_card": true}));
    assert_eq!(s, 409);

    // An elder's card: a green ticket, called before the earlier normal one.
    reader.place(CardText::specimen(ELDER_NAME, ELDER_ID));
    let card = kiosk.wait_for_card("110***********101X");
    assert_eq!(card["name"], "欧**英");
    assert_eq!(card["green"], true);
    assert!(card["age"].as_u64().is_some_and(|a| a >= 75), "{card}");
    let (s, green) = kiosk.issue("k1-9", "zh-CN", json!({"service": "SB", "id_card": true}));
    assert_eq!(s, 201, "{green}");
    assert_eq!(green["ticket"]["class"], "green");
    let token = hallq_tests::sign_in(&d.url, "S001", "135790", Some(1));
    let (s, called) = send(
        c.post(format!("{}/api/v1/windows/1/call-next", d.url))
            .header("Authorization", &token)
            .send_json(json!({})),
    );
    assert_eq!(s, 200, "{called}");
    assert_eq!(
        called["events"][0]["number"], green["ticket"]["number"],
        "{called}"
    );

    // The elder's appointment of today (booked with the number typed) is offered on
    // the card and checked in by it, without the code.
    let slot = chrono::Utc::now().timestamp_millis() + 10 * 60_000;
    let (s, b) = send(c.post(format!("{}/api/v1/appointments", d.url)).send_json(
        json!({"service": "MZ", "slot_at": slot, "code": "YY2026", "citizen_id": ELDER_ID}),
    ));
    assert_eq!(s, 201, "{b}");
    let card = kiosk.card();
    assert_eq!(card["appointment"]["code"], "YY2026", "{card}");
    assert_eq!(card["appointment"]["service"], "MZ");
    let (s, checked) = kiosk.issue(
        "k1-10",
        "zh-CN",
        json!({"id_card": true, "appointment": true}),
    );
    assert_eq!(s, 201, "{checked}");
    assert_eq!(checked["ticket"]["appointment"], "YY2026");
    assert_eq!(checked["ticket"]["class"], "appointment");
    assert_eq!(kiosk.card()["appointment"], Value::Null);
    let (s, b) = kiosk.issue("k1-11", "en", json!({"id_card": true, "appointment": true}));
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (409, Some("no_appointment_today")),
        "{b}"
    );

    // The reader is a healthy device of the hall.
    let (_, devices) = send(c.get(format!("{}/api/v1/devices", d.url)).call());
    let r1 = devices["devices"]
        .as_array()
        .and_then(|l| l.iter().find(|x| x["device"] == "id_reader/r1").cloned())
        .unwrap_or_default();
    assert_eq!(r1["health"]["state"], "ok", "{devices}");
    assert!(reader.stats().reads >= 2);
    assert_eq!(reader.stats().corrupt, 0);

    // Nothing that names either person anywhere on disk or in the log, while the
    // daemon runs (the WAL holds the day's writes) and after it stopped.
    let data = hall.dir.path().join("data");
    let files = [
        data.join("hallq.db"),
        data.join("hallq.db-wal"),
        log.clone(),
    ];
    let refs: Vec<&Path> = files.iter().map(|p| p.as_path()).collect();
    let secrets = [
        ADULT_NAME,
        ADULT_ID,
        ELDER_NAME,
        ELDER_ID,
        "北京市东城区东长安街1号",
    ];
    assert!(
        data.join("hallq.db-wal").exists(),
        "the WAL is where the day's writes are"
    );
    assert_no_trace(&refs, &secrets);
    drop(d);
    assert_no_trace(&refs, &secrets);
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        text.contains("ID card read"),
        "the log shows the reader working"
    );
}

#[test]
fn a_bad_reader_section_names_its_key_and_line() {
    let hall = Hall::with_config(
        "[[id_reader]]\nid = \"r1\"\nport = \"/dev/ttyUSB0\"\nkiosk = \"kiosk-1\"\n\n\
         [[id_reader]]\nid = \"r2\"\nport = \"/dev/ttyUSB1\"\nkiosk = \"kiosk-1\"\n",
    );
    let said = hall.config_refusal();
    assert!(said.contains("id_reader[1].kiosk"), "{said}");
    let text = std::fs::read_to_string(&hall.config).unwrap();
    let line = text
        .lines()
        .enumerate()
        .filter(|(_, l)| l.starts_with("kiosk = \"kiosk-1\""))
        .nth(1)
        .map(|(i, _)| i + 1)
        .unwrap();
    assert!(
        said.contains(&format!(":{line}: id_reader[1].kiosk")),
        "{said}"
    );
}
