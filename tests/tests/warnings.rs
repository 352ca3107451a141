//! Warnings followed up (预警纠错) and who serves at a window (亮身份), against the real
//! daemon: a supervisor handles a warning with an outcome and a note, and every bad
//! request names its field; a warning left unhandled is escalated once, and both steps
//! reach the hall server through the real receiver; the supervision page does it all
//! from the keyboard and says who handled it; the board names whoever is signed in.

use std::sync::Mutex;
use std::time::Duration;

use hallq_tests::mqtt::{
    Broker, BrokerOptions, Receiver, add_uplink, assert_events_match_schema, uplink_section,
    wait_for,
};
use hallq_tests::webdriver::Driver;
use hallq_tests::{Hall, client, send, sign_in};
use serde_json::{Value, json};

/// One browser at a time (the machine has two cores).
static BROWSERS: Mutex<()> = Mutex::new(());

/// A hall whose every waiting ticket for HJ raises a long-wait warning at the first clock
/// tick (a threshold of 0 takes the same path as a real one), with `extra` configuration.
fn alarming_hall(extra: &str) -> Hall {
    let hall = Hall::with_config(extra);
    let text = std::fs::read_to_string(&hall.config).unwrap();
    let text = text.replacen(
        "expected_minutes = 7",
        "expected_minutes = 7\nwait_alarm_minutes = 0",
        1,
    );
    std::fs::write(&hall.config, text).unwrap();
    hall
}

/// A ticket for HJ, the service whose warning threshold the test hall sets to 0.
fn issue(url: &str) -> Value {
    let (s, b) = send(
        client()
            .post(format!("{url}/api/v1/tickets"))
            .send_json(json!({ "service": "HJ" })),
    );
    assert_eq!(s, 201, "{b}");
    b["ticket"].clone()
}

fn supervision(url: &str, token: &str) -> Value {
    let (s, b) = send(
        client()
            .get(format!("{url}/api/v1/supervision"))
            .header("Authorization", token)
            .call(),
    );
    assert_eq!(s, 200, "{b}");
    b
}

/// Waits for the long-wait warning of ticket `number` on the dashboard; its `seq`.
fn wait_alarm_of(url: &str, token: &str, number: &str) -> i64 {
    wait_for(Duration::from_secs(20), "the long-wait warning", || {
        supervision(url, token)["warnings"]
            .as_array()?
            .iter()
            .find(|w| w["type"] == "wait_alarm" && w["number"] == number)
            .and_then(|w| w["seq"].as_i64())
    })
}

fn handle(url: &str, token: &str, warning: &str, body: Value) -> (u16, Value) {
    send(
        client()
            .post(format!(
                "{url}/api/v1/supervision/warnings/{warning}/handle"
            ))
            .header("Authorization", token)
            .send_json(body),
    )
}

#[test]
fn a_supervisor_follows_up_a_warning_once_and_every_bad_request_names_its_field() {
    let hall = alarming_hall("");
    hall.add_staff_named("J001", "李督查", "246801", &["--role", "supervisor"]);
    hall.add_staff_named("S001", "王芳", "135790", &["--window", "1"]);
    let d = hall.start();
    let url = d.url.clone();
    let ticket = issue(&url);
    let sup = sign_in(&url, "J001", "246801", None);
    let seq = wait_alarm_of(&url, &sup, ticket["number"].as_str().unwrap());
    let at = seq.to_string();
    let good = json!({ "outcome": "corrected", "note": "取号机时钟有误，已核实" });

    // Window staff may not; nor may anyone signed out.
    let clerk = sign_in(&url, "S001", "135790", Some(1));
    assert_eq!(handle(&url, &clerk, &at, good.clone()).0, 403);
    assert_eq!(handle(&url, "Bearer nope", &at, good.clone()).0, 401);

    let refused = |warning: &str, body: Value, status: u16, code: &str, field: &str| {
        let (s, b) = handle(&url, &sup, warning, body);
        assert_eq!(s, status, "{b}");
        assert_eq!(b["error"]["code"], code, "{b}");
        assert_eq!(b["error"]["field"], field, "{b}");
        b["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    refused("999999", good.clone(), 404, "warning_not_found", "warning");
    refused("A001", good.clone(), 404, "warning_not_found", "warning");
    // An event that is not a warning (the ticket's issue) is no warning either.
    let issued: i64 = hall
        .database()
        .query_row(
            "SELECT seq FROM events WHERE type = 'ticket_issued'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    refused(
        &issued.to_string(),
        good.clone(),
        404,
        "warning_not_found",
        "warning",
    );
    refused(
        &at,
        json!({ "outcome": "fixed", "note": "x" }),
        422,
        "invalid_field",
        "outcome",
    );
    refused(
        &at,
        json!({ "outcome": "handled", "note": "  " }),
        422,
        "invalid_field",
        "note",
    );
    let long = "好".repeat(201);
    refused(
        &at,
        json!({ "outcome": "handled", "note": long }),
        422,
        "invalid_field",
        "note",
    );
    let m = refused(
        &at,
        json!({ "outcome": "handled", "note": "已回电 138 0013 8000" }),
        422,
        "invalid_field",
        "note",
    );
    assert!(m.contains("personal data"), "{m}");
    assert!(hall.events_of("warning_handled").is_empty());

    let (s, b) = handle(&url, &sup, &at, good.clone());
    assert_eq!(s, 201, "{b}");
    assert_eq!(b["handled"]["by"], "J001");
    assert_eq!(b["handled"]["by_name"], "李督查");
    assert_eq!(b["handled"]["outcome"], "corrected");
    let m = refused(
        &at,
        json!({ "outcome": "handled", "note": "再处理一次" }),
        409,
        "already_handled",
        "warning",
    );
    assert!(m.contains("J001"), "{m}");

    let w = supervision(&url, &sup)["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["seq"] == seq)
        .cloned()
        .unwrap();
    assert_eq!(w["handled"]["by"], "J001");
    assert_eq!(w["handled"]["by_name"], "李督查");
    assert_eq!(w["handled"]["note"], "取号机时钟有误，已核实");
    assert_eq!(w["escalated_at"], Value::Null);
    assert_eq!(
        hall.events_of("warning_handled"),
        [
            json!({"type": "warning_handled", "warning": seq, "warning_type": "wait_alarm",
                "outcome": "corrected", "note": "取号机时钟有误，已核实", "by": "J001"})
        ]
    );
    // 30 minutes by default: nothing went up.
    assert!(hall.events_of("warning_escalated").is_empty());

    // 亮身份 on the board: the window where 王芳 signed in names her; the others nobody.
    let (s, board) = send(client().get(format!("{url}/api/v1/board")).call());
    assert_eq!(s, 200, "{board}");
    let windows = board["windows"].as_array().unwrap();
    let one = windows.iter().find(|w| w["number"] == 1).unwrap();
    assert_eq!(one["staff"], json!({"id": "S001", "name": "王芳"}));
    let two = windows.iter().find(|w| w["number"] == 2).unwrap();
    assert_eq!(two["staff"], Value::Null);
}

#[test]
fn the_board_names_nobody_when_the_hall_does_not_show_staff() {
    let hall = Hall::with_config("[windows]\nshow_staff = false");
    hall.add_staff_named("S001", "王芳", "135790", &["--window", "1"]);
    let d = hall.start();
    sign_in(&d.url, "S001", "135790", Some(1));
    let (_, board) = send(client().get(format!("{}/api/v1/board", d.url)).call());
    let one = board["windows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["number"] == 1)
        .cloned()
        .unwrap();
    assert_eq!(one["staffed"], true);
    assert_eq!(one["staff"], Value::Null);
}

#[test]
fn an_escalation_setting_out_of_range_names_its_key_and_line() {
    let hall = Hall::with_config("[supervision]\nescalate_after_minutes = 5000");
    let text = std::fs::read_to_string(&hall.config).unwrap();
    let line = text
        .lines()
        .position(|l| l.starts_with("escalate_after_minutes"))
        .unwrap()
        + 1;
    let said = hall.config_refusal();
    assert!(
        said.contains(&format!(":{line}: supervision.escalate_after_minutes")),
        "{said}"
    );
    let hall = Hall::with_config("[supervision]\nescalate_after_minutes = -1");
    let said = hall.config_refusal();
    assert!(said.contains("escalate_after_minutes"), "{said}");
}

#[test]
fn an_unhandled_warning_is_escalated_once_and_both_steps_reach_the_hall_server() {
    let hall = alarming_hall("[supervision]\nescalate_after_minutes = 0");
    hall.add_staff_named("J001", "李督查", "246801", &["--role", "supervisor"]);
    let broker = Broker::start(&hall.dir.path().join("broker"), &BrokerOptions::default())
        .expect("mosquitto starts");
    let receiver = Receiver::start(hall.dir.path(), broker.port, &[]);
    add_uplink(&hall.config, &uplink_section(broker.port, "test-hall"));
    let d = hall.start();
    let ticket = issue(&d.url);
    let sup = sign_in(&d.url, "J001", "246801", None);
    let seq = wait_alarm_of(&d.url, &sup, ticket["number"].as_str().unwrap());

    let upstream = |kind: &str| -> Vec<Value> {
        receiver
            .events()
            .into_iter()
            .filter(|e| e["type"] == kind)
            .map(|e| e["payload"].clone())
            .collect()
    };
    let escalated = wait_for(Duration::from_secs(30), "the escalation upstream", || {
        upstream("warning_escalated").into_iter().next()
    });
    assert_eq!(escalated["warning"], seq, "{escalated}");
    assert_eq!(escalated["warning_type"], "wait_alarm");
    assert_eq!(escalated["after_minutes"], 0);
    assert_eq!(escalated["number"], ticket["number"]);
    assert_eq!(escalated["service"], "HJ");
    assert!(escalated["raised_at"].as_i64().unwrap() > 0);

    // The dashboard says so, and an escalated warning may still be followed up.
    let w = supervision(&d.url, &sup)["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["seq"] == seq)
        .cloned()
        .unwrap();
    assert!(w["escalated_at"].as_i64().is_some(), "{w}");
    let (s, b) = handle(
        &d.url,
        &sup,
        &seq.to_string(),
        json!({ "outcome": "handled", "note": "已加开3号窗口" }),
    );
    assert_eq!(s, 201, "{b}");
    let handled = wait_for(Duration::from_secs(30), "the follow-up upstream", || {
        upstream("warning_handled").into_iter().next()
    });
    assert_eq!(handled["warning"], seq);
    assert_eq!(handled["by"], "J001");

    // Once per warning: two more checks later there is still one escalation each.
    std::thread::sleep(Duration::from_secs(11));
    let stored = hall.events_of("warning_escalated");
    let mut warnings: Vec<i64> = stored
        .iter()
        .filter_map(|e| e["warning"].as_i64())
        .collect();
    let all = warnings.len();
    warnings.sort();
    warnings.dedup();
    assert_eq!(all, warnings.len(), "{stored:?}");
    assert!(warnings.contains(&seq));
    let types = assert_events_match_schema(&receiver.events());
    assert!(types.contains("warning_escalated") && types.contains("warning_handled"));
}

#[test]
fn the_supervision_page_follows_up_a_warning_from_the_keyboard_and_says_who() {
    let _one = BROWSERS.lock().unwrap_or_else(|p| p.into_inner());
    let hall = alarming_hall("");
    hall.add_staff_named("J001", "李督查", "246801", &["--role", "supervisor"]);
    hall.add_staff_named("S001", "王芳", "135790", &["--window", "1"]);
    let d = hall.start();
    let url = d.url.clone();
    let ticket = issue(&url);
    let number = ticket["number"].as_str().unwrap().to_string();
    sign_in(&url, "S001", "135790", Some(1));
    let sup = sign_in(&url, "J001", "246801", None);
    let seq = wait_alarm_of(&url, &sup, &number);

    let driver = Driver::start().unwrap();
    let page = driver.browser(1600, 1100).unwrap();
    page.go(&format!("{url}/supervision")).unwrap();
    page.wait_for("the sign-in form", 20, |b| b.visible("#login-staff"))
        .unwrap();
    page.type_into("#login-staff", "J001").unwrap();
    page.type_into("#login-pin", "246801").unwrap();
    page.click("#login-submit").unwrap();
    let button = format!("#warnings li.open[data-seq='{seq}'] button.handle");
    page.wait_for("the warning's 处理 button", 20, |b| b.visible(&button))
        .unwrap();
    assert!(
        page.text(&format!("#warnings li[data-seq='{seq}']"))
            .contains(&number)
    );

    // Keyboard only: the button takes Enter, the note has the focus, Tab goes on.
    page.js(
        &format!("document.querySelector(\"{button}\").focus()"),
        json!([]),
    )
    .unwrap();
    page.press("\u{E007}").unwrap();
    page.wait_for("the form, the note focused", 10, |b| {
        b.visible("#warn-form")
            && b.js("return document.activeElement.id", json!([])).ok() == Some(json!("warn-note"))
    })
    .unwrap();
    assert!(page.text("#warn-form-what").contains(&number));
    // 纠错 first, then back to 处理, by the radio buttons' arrow keys.
    page.js(
        "document.getElementById('warn-outcome-handled').focus()",
        json!([]),
    )
    .unwrap();
    page.press("\u{E015}").unwrap();
    assert_eq!(
        page.js(
            "return document.getElementById('warn-outcome-corrected').checked",
            json!([])
        )
        .unwrap(),
        json!(true)
    );
    page.press("\u{E013}").unwrap();
    page.type_into("#warn-note", "已联系群众，加开窗口")
        .unwrap();
    page.press("\u{E004}").unwrap();
    assert_eq!(
        page.js("return document.activeElement.id", json!([]))
            .unwrap(),
        json!("warn-submit")
    );
    page.press("\u{E007}").unwrap();
    let item = format!("#warnings li.handled[data-seq='{seq}']");
    page.wait_for("the warning shown handled by whom", 20, |b| {
        b.visible(&item) && b.text(&item).contains("李督查")
    })
    .unwrap();
    let text = page.text(&item);
    assert!(text.contains("已处理"), "{text}");
    assert!(text.contains("(J001)"), "{text}");
    assert!(text.contains("已联系群众，加开窗口"), "{text}");
    assert!(!page.visible(&format!("{item} button.handle")));
    assert!(!page.visible("#warn-form"));
    assert_eq!(
        hall.events_of("warning_handled")[0]["outcome"],
        "handled",
        "the outcome chosen with the keyboard"
    );
    page.js("window.scrollTo(0, 0)", json!([])).unwrap();
    page.screenshot(&hallq_tests::screens_dir().join("web-supervision-warning.png"))
        .expect("screenshot");

    // 亮身份 on the board's window columns.
    let board = driver.browser(1920, 1080).unwrap();
    board.go(&format!("{url}/board?layout=windows")).unwrap();
    board
        .wait_for("window 1's column to name 王芳", 20, |b| {
            b.text(".column[data-window='1'] .col-staff") == "王芳 工号 S001"
        })
        .unwrap();
    assert_eq!(board.text(".column[data-window='2'] .col-staff"), "");
    board
        .screenshot(&hallq_tests::screens_dir().join("web-board-staff.png"))
        .expect("screenshot");
}
