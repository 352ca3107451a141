//! The guide desk (导办台, issue 21) against the real daemon: only an account with the
//! `desk` role (or above) may use it; a green ticket needs a reason from the list, is
//! recorded with the reason and the member of staff who issued it, prints on a virtual
//! printer whose channels include `desk` (with 绿色通道 on the paper), and is called
//! before the walk-ins; a proxy ticket is marked; an appointment booked with a mobile
//! number is found by that number and checked in, and the number is nowhere in the
//! events table, the database file or its WAL; a kiosk's help request is acknowledged
//! from the desk. The page itself in headless Chromium: a green ticket by keyboard, a
//! proxy ticket, a check-in by phone, and the green ticket's reason on `/supervision`,
//! in a hall with a printer at the kiosk and one at the desk (each prints only its own).

use std::sync::Mutex;
use std::time::Duration;

use hallq_hardware::virtual_printer::{Paper, VirtualPrinter, VirtualPrinterHandle};
use hallq_tests::webdriver::{Browser, Driver};
use hallq_tests::{Hall, client, send, sign_in};
use serde_json::{Value, json};
use serialport::{SerialPort, TTYPort};

/// One browser test at a time (the machine that runs the suite has two cores).
static BROWSERS: Mutex<()> = Mutex::new(());

const MOBILE: &str = "13812345678";

/// A virtual serial printer; keep the returned port open for the PTY to stay up.
fn printer_on_pty() -> (VirtualPrinterHandle, TTYPort, String) {
    let (master, slave) = TTYPort::pair().expect("pseudo-terminal pair");
    let path = slave.name().expect("the slave side has a path");
    let printer = VirtualPrinterHandle::serve_stream(VirtualPrinter::new(), master)
        .expect("virtual printer starts");
    (printer, slave, path)
}

/// The printer section for a virtual printer at `path` that prints the kiosk's and the
/// desk's tickets.
fn printer_section(path: &str) -> String {
    format!(
        "[printer]\npaper = \"58mm\"\nstatus_poll_secs = 1\nchannels = [\"kiosk\", \"desk\"]\n\
         [printer.transport]\nkind = \"serial\"\npath = {path:?}\nbaud = 115200\n"
    )
}

/// Two printers as a hall with a printer beside the kiosk and one at the desk has them:
/// `kiosk` serves the kiosk (no `X-Kiosk-Id`), `desk` the guide desk.
fn two_printers(kiosk: &str, desk: &str) -> String {
    let one = |id: &str, path: &str| {
        format!(
            "[[printer]]\nid = {id:?}\nserves = [{id:?}]\npaper = \"58mm\"\nstatus_poll_secs = 1\n\
             [printer.transport]\nkind = \"serial\"\npath = {path:?}\nbaud = 115200\n\n"
        )
    };
    format!("{}{}", one("kiosk", kiosk), one("desk", desk))
}

fn printed(paper: &Paper, text: &str) -> bool {
    paper.runs().any(|r| r.text.contains(text))
}

fn get(url: &str, path: &str, token: Option<&str>) -> (u16, Value) {
    let mut req = client().get(format!("{url}{path}"));
    if let Some(t) = token {
        req = req.header("Authorization", t);
    }
    send(req.call())
}

fn post(url: &str, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
    let mut req = client().post(format!("{url}{path}"));
    if let Some(t) = token {
        req = req.header("Authorization", t);
    }
    send(req.send_json(body))
}

fn field(r: &(u16, Value)) -> (u16, Option<String>) {
    (r.0, r.1["error"]["field"].as_str().map(String::from))
}

fn code(r: &(u16, Value)) -> (u16, Option<String>) {
    (r.0, r.1["error"]["code"].as_str().map(String::from))
}

/// The `ticket_issued` event of ticket `number`.
fn issued_event(hall: &Hall, number: &str) -> Value {
    hall.events_of("ticket_issued")
        .into_iter()
        .find(|e| e["ticket"]["number"] == number)
        .unwrap_or_else(|| panic!("no ticket_issued for {number}"))["ticket"]
        .clone()
}

/// Every byte the controller wrote: the database file and its WAL.
fn database_bytes(hall: &Hall) -> Vec<u8> {
    let data = hall.dir.path().join("data");
    let mut all = Vec::new();
    for name in ["hallq.db", "hallq.db-wal"] {
        if let Ok(b) = std::fs::read(data.join(name)) {
            all.extend(b);
        }
    }
    assert!(!all.is_empty(), "the database was read");
    all
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// Books an appointment for SB five minutes from now (its check-in is open).
fn book(url: &str, code: &str, mobile: Option<&str>) -> (u16, Value) {
    let now = chrono::Utc::now().timestamp_millis();
    let mut body = json!({ "service": "SB", "slot_at": now + 5 * 60_000, "code": code });
    if let Some(m) = mobile {
        body["mobile"] = json!(m);
    }
    post(url, "/api/v1/appointments", None, body)
}

#[test]
fn only_the_desk_role_or_above_may_use_the_desk_and_a_green_ticket_needs_its_reason() {
    let hall = Hall::new();
    hall.add_staff("S001", "135790", &["--window", "1"]);
    hall.add_staff("D001", "246802", &["--role", "desk"]);
    hall.add_staff("J001", "246801", &["--role", "supervisor"]);
    let d = hall.start();
    let url = d.url.as_str();

    // Not signed in: 401. Window staff: 403 (and no sign-in without a window).
    assert_eq!(
        code(&get(url, "/api/v1/desk", None)),
        (401, Some("sign_in_required".into()))
    );
    let ticket = json!({ "service": "SB" });
    assert_eq!(
        post(url, "/api/v1/desk/tickets", None, ticket.clone()).0,
        401
    );
    let window = sign_in(url, "S001", "135790", Some(1));
    assert_eq!(
        code(&get(url, "/api/v1/desk", Some(&window))),
        (403, Some("forbidden".into()))
    );
    assert_eq!(
        post(url, "/api/v1/desk/tickets", Some(&window), ticket.clone()).0,
        403
    );
    assert_eq!(
        get(url, "/api/v1/desk/appointments?code=Y1", Some(&window)).0,
        403
    );
    let r = post(
        url,
        "/api/v1/sessions",
        None,
        json!({ "staff_id": "S001", "pin": "135790" }),
    );
    assert_eq!(code(&r), (403, Some("wrong_window".into())), "{}", r.1);

    // The desk role signs in without a window; a supervisor may use the desk too.
    let desk = sign_in(url, "D001", "246802", None);
    let (s, b) = get(url, "/api/v1/desk", Some(&desk));
    assert_eq!(s, 200, "{b}");
    let codes: Vec<&str> = b["green_reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["code"].as_str().unwrap())
        .collect();
    assert_eq!(
        codes,
        ["elderly", "disabled", "military", "pregnant", "other"]
    );
    assert_eq!(b["green_reasons"][0]["name"]["zh-CN"], "70 岁以上老人");
    assert_eq!(b["green_reasons"][0]["name"]["en"], "Aged 70 or over");
    assert!(
        b["services"][0]["estimated_wait_minutes"].is_number(),
        "{b}"
    );
    let supervisor = sign_in(url, "J001", "246801", None);
    assert_eq!(get(url, "/api/v1/desk", Some(&supervisor)).0, 200);

    // A green ticket without its reason, or with one not on the list: 422 naming it.
    let green = |body: Value| post(url, "/api/v1/desk/tickets", Some(&desk), body);
    let r = green(json!({ "service": "SB", "class": "green" }));
    assert_eq!(field(&r), (422, Some("green_reason".into())), "{}", r.1);
    let r = green(json!({ "service": "SB", "class": "green", "green_reason": "vip" }));
    assert_eq!(field(&r), (422, Some("green_reason".into())), "{}", r.1);
    let r = green(json!({ "service": "SB", "green_reason": "elderly" }));
    assert_eq!(field(&r), (422, Some("green_reason".into())), "{}", r.1);
    // A note is for "other" only, and never a phone or ID number.
    let r =
        green(json!({ "service": "SB", "class": "green", "green_reason": "elderly", "note": "x" }));
    assert_eq!(field(&r), (422, Some("note".into())), "{}", r.1);
    let r = green(json!({
        "service": "SB", "class": "green", "green_reason": "other", "note": "电话 138 1234 5678",
    }));
    assert_eq!(field(&r), (422, Some("note".into())), "{}", r.1);
    let r = green(json!({ "service": "XX", "class": "green", "green_reason": "pregnant" }));
    assert_eq!(r.0, 422, "{}", r.1);
    assert!(
        hall.events_of("ticket_issued").is_empty(),
        "nothing refused was issued"
    );

    // With a reason it is issued; `other` keeps its note.
    let r = green(json!({
        "service": "SB", "class": "green", "green_reason": "other", "note": "怀抱婴儿",
    }));
    assert_eq!(r.0, 201, "{}", r.1);
    assert_eq!(r.1["ticket"]["green_reason"], "other:怀抱婴儿");
    let ev = issued_event(&hall, r.1["ticket"]["number"].as_str().unwrap());
    assert_eq!(ev["green_reason"], "other:怀抱婴儿");
    assert_eq!(ev["issued_by"], "D001");
    assert_eq!(ev["channel"], "desk");
}

#[test]
fn a_green_desk_ticket_prints_on_the_desk_printer_records_who_and_why_and_is_called_first() {
    let (printer, _keep, path) = printer_on_pty();
    let hall = Hall::with_config(&printer_section(&path));
    hall.add_staff("S001", "135790", &["--window", "1"]);
    hall.add_staff("D001", "246802", &["--role", "desk"]);
    hall.add_staff("J001", "246801", &["--role", "supervisor"]);
    let d = hall.start();
    let url = d.url.as_str();
    let desk = sign_in(url, "D001", "246802", None);

    // Two walk-ins at the kiosk first.
    for _ in 0..2 {
        let r = post(url, "/api/v1/tickets", None, json!({ "service": "SB" }));
        assert_eq!(r.0, 201, "{}", r.1);
    }
    let r = post(
        url,
        "/api/v1/desk/tickets",
        Some(&desk),
        json!({ "service": "SB", "class": "green", "green_reason": "elderly" }),
    );
    assert_eq!(r.0, 201, "{}", r.1);
    let number = r.1["ticket"]["number"].as_str().unwrap().to_string();
    assert_eq!(r.1["ticket"]["class"], "green");
    assert_eq!(r.1["ticket"]["green_reason"], "elderly");
    assert!(
        matches!(r.1["print"]["state"].as_str(), Some("printing" | "queued")),
        "the desk's ticket prints: {}",
        r.1
    );
    assert!(
        printer.wait_for(Duration::from_secs(5), |p| printed(p, &number)),
        "the virtual printer never received {number}: {}",
        printer.paper().to_text(32)
    );
    assert!(
        printed(&printer.paper(), "绿色通道"),
        "the green ticket says so on paper: {}",
        printer.paper().to_text(32)
    );

    // Audit: who issued it and why, in the ticket_issued event.
    let ev = issued_event(&hall, &number);
    assert_eq!(ev["class"], "green");
    assert_eq!(ev["green_reason"], "elderly");
    assert_eq!(ev["issued_by"], "D001");
    assert_eq!(ev["channel"], "desk");
    assert!(ev.get("proxy").is_none(), "not a proxy ticket: {ev}");

    // A proxy ticket (代办), normal class.
    let r = post(
        url,
        "/api/v1/desk/tickets",
        Some(&desk),
        json!({ "service": "SB", "proxy": true }),
    );
    assert_eq!(r.0, 201, "{}", r.1);
    let proxy_number = r.1["ticket"]["number"].as_str().unwrap().to_string();
    assert_eq!(r.1["ticket"]["proxy"], true);
    let ev = issued_event(&hall, &proxy_number);
    assert_eq!(ev["proxy"], true);
    assert_eq!(ev["class"], "normal");
    assert_eq!(ev["issued_by"], "D001");
    assert!(ev.get("green_reason").is_none(), "{ev}");

    // The window calls the green ticket before the two walk-ins that came first.
    let window = sign_in(url, "S001", "135790", Some(1));
    let r = post(url, "/api/v1/windows/1/call-next", Some(&window), json!({}));
    assert_eq!(r.0, 200, "{}", r.1);
    let called = hall.events_of("ticket_called");
    assert_eq!(called.last().unwrap()["number"], number.as_str());
    assert_eq!(called.last().unwrap()["class"], "green");

    // Supervision counts green tickets per reason, and proxy tickets.
    let supervisor = sign_in(url, "J001", "246801", None);
    let (s, b) = get(url, "/api/v1/supervision", Some(&supervisor));
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["green"]["total"], 1, "{}", b["green"]);
    assert_eq!(b["green"]["reasons"]["elderly"], 1, "{}", b["green"]);
    assert_eq!(b["green"]["proxy"], 1, "{}", b["green"]);
    assert_eq!(b["green_reasons"][0]["code"], "elderly");
}

#[test]
fn an_appointment_booked_with_a_mobile_is_found_by_it_checked_in_and_the_number_kept_nowhere() {
    let (printer, _keep, path) = printer_on_pty();
    let hall = Hall::with_config(&printer_section(&path));
    hall.add_staff("D001", "246802", &["--role", "desk"]);
    let d = hall.start();
    let url = d.url.as_str();
    let desk = sign_in(url, "D001", "246802", None);

    // A wrong number names the field; a right one is taken, in any usual spelling.
    let r = book(url, "Y100", Some("12345"));
    assert_eq!(field(&r), (422, Some("mobile".into())), "{}", r.1);
    let r = book(url, "Y100", Some("+86 138-1234-5678"));
    assert_eq!(r.0, 201, "{}", r.1);
    let booked = &r.1["events"][0]["payload"]["appointment"];
    assert_eq!(booked["mobile_masked"], "138****5678", "{}", r.1);
    let r = book(url, "Y101", None);
    assert_eq!(r.0, 201, "{}", r.1);

    // Lookup: by phone number and by code; bad input names the field.
    let r = get(url, "/api/v1/desk/appointments?mobile=123", Some(&desk));
    assert_eq!(field(&r), (422, Some("mobile".into())), "{}", r.1);
    let r = get(url, "/api/v1/desk/appointments", Some(&desk));
    assert_eq!(field(&r), (422, Some("code".into())), "{}", r.1);
    let (s, b) = get(
        url,
        &format!("/api/v1/desk/appointments?mobile={MOBILE}"),
        Some(&desk),
    );
    assert_eq!(s, 200, "{b}");
    let found = b["appointments"].as_array().unwrap();
    assert_eq!(found.len(), 1, "{b}");
    assert_eq!(found[0]["code"], "Y100");
    assert_eq!(found[0]["mobile"], "138****5678");
    assert_eq!(found[0]["state"], "open");
    let (_, b) = get(url, "/api/v1/desk/appointments?code=Y101", Some(&desk));
    assert_eq!(b["appointments"][0]["code"], "Y101", "{b}");
    let (_, b) = get(
        url,
        "/api/v1/desk/appointments?mobile=13900000000",
        Some(&desk),
    );
    assert_eq!(b["appointments"], json!([]), "another number finds nothing");

    // Checked in at the desk: a ticket, printed on the desk's printer.
    let r = post(
        url,
        "/api/v1/desk/appointments/Y100/check-in",
        Some(&desk),
        json!({}),
    );
    assert_eq!(r.0, 201, "{}", r.1);
    assert_eq!(r.1["ticket"]["class"], "appointment");
    assert_eq!(r.1["ticket"]["appointment"], "Y100");
    let number = r.1["ticket"]["number"].as_str().unwrap().to_string();
    assert!(printer.wait_for(Duration::from_secs(5), |p| printed(p, &number)));
    assert_eq!(hall.events_of("appointment_checked_in").len(), 1);
    // Once checked in, the number has done its job: it finds nothing any more.
    let (_, b) = get(
        url,
        &format!("/api/v1/desk/appointments?mobile={MOBILE}"),
        Some(&desk),
    );
    assert_eq!(b["appointments"], json!([]), "erased at check-in: {b}");
    let (_, b) = get(url, "/api/v1/desk/appointments?code=Y100", Some(&desk));
    assert_eq!(b["appointments"][0]["state"], "checked_in", "{b}");
    assert_eq!(b["appointments"][0]["mobile"], Value::Null, "{b}");

    // The whole number is in no event, and nowhere in the database file or its WAL.
    let db = hall.database();
    let payloads: Vec<String> = db
        .prepare("SELECT payload FROM events")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(payloads.iter().all(|p| !p.contains(MOBILE)));
    let (hash, masked): (Option<String>, Option<String>) = db
        .query_row(
            "SELECT mobile, mobile_masked FROM appointments WHERE code = 'Y100'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((hash, masked), (None, None), "erased from the row");
    drop(db);
    let bytes = database_bytes(&hall);
    assert!(
        !contains(&bytes, MOBILE),
        "the mobile number is in the database"
    );
}

#[test]
fn a_kiosks_help_request_is_listed_and_acknowledged_at_the_desk() {
    let hall = Hall::new();
    hall.add_staff("D001", "246802", &["--role", "desk"]);
    let d = hall.start();
    let url = d.url.as_str();
    let desk = sign_in(url, "D001", "246802", None);
    let (s, b) = send(
        client()
            .post(format!("{url}/api/v1/help"))
            .header("X-Kiosk-Id", "kiosk-2")
            .send_json(json!({ "screen": "services" })),
    );
    assert_eq!(s, 201, "{b}");
    let (_, b) = get(url, "/api/v1/desk", Some(&desk));
    assert_eq!(b["help"][0]["kiosk"], "kiosk-2", "{b}");
    let r = post(url, "/api/v1/help/kiosk-2/ack", Some(&desk), json!({}));
    assert_eq!(r.0, 200, "{}", r.1);
    let acks = hall.events_of("help_acknowledged");
    assert_eq!(acks.len(), 1);
    assert_eq!(acks[0]["by"], "D001");
    let (_, b) = get(url, "/api/v1/desk", Some(&desk));
    assert_eq!(b["help"], json!([]), "{b}");
}

// ----- the page in Chromium --------------------------------------------------------------

fn shot(b: &Browser, name: &str) {
    b.screenshot(&hallq_tests::screens_dir().join(name))
        .expect("screenshot");
}

const ENTER: &str = "\u{E007}";

#[test]
fn the_desk_page_issues_green_and_proxy_tickets_and_checks_in_by_phone() {
    let _one = BROWSERS.lock().unwrap_or_else(|p| p.into_inner());
    let (kiosk_printer, _keep_kiosk, kiosk_path) = printer_on_pty();
    let (printer, _keep, path) = printer_on_pty();
    let hall = Hall::with_config(&two_printers(&kiosk_path, &path));
    let text = std::fs::read_to_string(&hall.config).unwrap();
    std::fs::write(
        &hall.config,
        text.replace("number_width = 6", "number_width = 3"),
    )
    .unwrap();
    hall.add_staff("S001", "135790", &["--window", "1"]);
    hall.add_staff("D001", "246802", &["--role", "desk"]);
    hall.add_staff("J001", "246801", &["--role", "supervisor"]);
    let d = hall.start();
    let url = d.url.clone();
    // A walk-in first, and an appointment booked with a mobile number.
    let r = post(&url, "/api/v1/tickets", None, json!({ "service": "SB" }));
    assert_eq!(r.0, 201, "{}", r.1);
    assert_eq!(book(&url, "Y200", Some(MOBILE)).0, 201);

    let driver = Driver::start().unwrap();
    let page = driver.browser(1440, 1000).unwrap();
    page.go(&format!("{url}/desk")).unwrap();
    page.wait_for("the sign-in form", 20, |b| b.visible("#login-staff"))
        .unwrap();
    page.type_into("#login-staff", "D001").unwrap();
    page.type_into("#login-pin", "246802").unwrap();
    page.click("#login-submit").unwrap();
    page.wait_for("the desk", 20, |b| {
        b.visible("#work") && b.text("#services").contains("社会保障")
    })
    .unwrap();
    assert!(
        page.text(".keys").contains("Esc"),
        "the shortcuts are shown"
    );

    // By keyboard: G (green), 1 (the first reason: 70 岁以上老人), 1 (the first service),
    // Enter.
    page.click("#result-number").unwrap();
    page.press("g").unwrap();
    page.wait_for("the reasons", 10, |b| b.visible("#reasons-box"))
        .unwrap();
    page.press("1").unwrap();
    page.wait_for("elderly chosen", 10, |b| {
        b.js(
            "return document.querySelector('#reasons [data-reason=elderly]').getAttribute('aria-checked')",
            json!([]),
        )
        .ok()
            == Some(json!("true"))
    })
    .unwrap();
    page.press("1").unwrap();
    page.wait_for("the confirm bar", 10, |b| b.visible("#pending"))
        .unwrap();
    assert!(page.text("#pending-text").contains("70 岁以上老人"));
    page.press(ENTER).unwrap();
    page.wait_for("the green ticket", 20, |b| {
        b.text("#result-number") == "A002"
    })
    .unwrap();
    assert!(
        page.text("#result-tags").contains("绿色通道"),
        "{}",
        page.text("#result-tags")
    );
    assert!(page.text("#result-tags").contains("70 岁以上老人"));
    page.wait_for("printed", 10, |b| {
        b.text("#result-print").contains("已打印")
    })
    .unwrap();
    assert!(printer.wait_for(Duration::from_secs(5), |p| printed(p, "A002")));
    // The desk's own printer: the walk-in's A001 came out at the kiosk, A002 did not.
    assert!(kiosk_printer.wait_for(Duration::from_secs(5), |p| printed(p, "A001")));
    assert!(!printed(&printer.paper(), "A001"));
    assert!(!printed(&kiosk_printer.paper(), "A002"));
    let ev = issued_event(&hall, "A002");
    assert_eq!(ev["green_reason"], "elderly");
    assert_eq!(ev["issued_by"], "D001");
    // The draft is back to normal for the next citizen.
    assert!(!page.visible("#reasons-box"));
    shot(&page, "desk.png");

    // A proxy ticket by mouse: 代办, then the service, then confirm.
    page.click("#mode-proxy").unwrap();
    page.click("#services [data-service='MZ']").unwrap();
    page.wait_for("the confirm bar", 10, |b| {
        b.text("#pending-text").contains("代办")
    })
    .unwrap();
    page.click("#confirm").unwrap();
    page.wait_for("the proxy ticket", 20, |b| {
        b.text("#result-number") == "B001"
    })
    .unwrap();
    assert!(page.text("#result-tags").contains("代办"));
    assert_eq!(issued_event(&hall, "B001")["proxy"], true);

    // The appointment by phone: / focuses the lookup, Enter finds it.
    page.press("/").unwrap();
    page.wait_for("the lookup focused", 10, |b| {
        b.js("return document.activeElement.id", json!([])).ok() == Some(json!("lookup"))
    })
    .unwrap();
    page.type_into("#lookup", "138 1234 5678").unwrap();
    page.press(ENTER).unwrap();
    page.wait_for("the appointment found", 10, |b| {
        b.visible("#found button.checkin[data-code='Y200']")
    })
    .unwrap();
    assert!(page.text("#found").contains("138****5678"));
    assert!(!page.text("body").contains(MOBILE));
    shot(&page, "desk-appointment.png");
    page.click("#found button.checkin[data-code='Y200']")
        .unwrap();
    page.wait_for("the appointment's ticket", 20, |b| {
        b.text("#result-number") == "A003" && b.text("#result-tags").contains("Y200")
    })
    .unwrap();
    assert_eq!(hall.events_of("appointment_checked_in").len(), 1);

    // The queue table counts them: A001, A002 and A003 wait for SB.
    page.wait_for("the queue", 10, |b| {
        b.text("#queue tr[data-service='SB'] .waiting") == "3"
    })
    .unwrap();

    // Esc cancels a choice.
    page.click("#result-number").unwrap();
    page.press("2").unwrap();
    page.wait_for("a pending choice", 10, |b| b.visible("#pending"))
        .unwrap();
    page.press("\u{E00C}").unwrap();
    page.wait_for("cancelled", 10, |b| !b.visible("#pending"))
        .unwrap();

    // The window calls the green ticket first; the board marks it.
    let window = sign_in(&url, "S001", "135790", Some(1));
    let r = post(
        &url,
        "/api/v1/windows/1/call-next",
        Some(&window),
        json!({}),
    );
    assert_eq!(r.0, 200, "{}", r.1);
    assert_eq!(
        hall.events_of("ticket_called").last().unwrap()["number"],
        "A002"
    );
    let board = driver.browser(1920, 1080).unwrap();
    board.go(&format!("{url}/board")).unwrap();
    board
        .wait_for("the green call on the board", 20, |b| {
            b.text("#latest-number") == "A002" && b.text("#latest-green").contains("绿色通道")
        })
        .unwrap();

    // Supervision shows the green ticket under its reason.
    let sup = driver.browser(1440, 1000).unwrap();
    sup.go(&format!("{url}/supervision")).unwrap();
    sup.wait_for("the sign-in form", 20, |b| b.visible("#login-staff"))
        .unwrap();
    sup.type_into("#login-staff", "J001").unwrap();
    sup.type_into("#login-pin", "246801").unwrap();
    sup.click("#login-submit").unwrap();
    sup.wait_for("the green channel figures", 20, |b| {
        b.text("#green li[data-reason='elderly']")
            .contains("70 岁以上老人")
            && b.text("#green li[data-reason='elderly'] .n") == "1"
    })
    .unwrap();
    assert!(
        sup.text("#green-total").contains("代办 1"),
        "{}",
        sup.text("#green-total")
    );

    // English, for a visitor's helper: the page switches language whole.
    page.click(".langs button[data-lang='en']").unwrap();
    page.wait_for("English", 10, |b| {
        b.text("#mode-green").contains("Green channel")
    })
    .unwrap();
    assert_eq!(
        page.blank_glyphs("main").unwrap(),
        Vec::<String>::new(),
        "glyphs the fonts lack"
    );
}
