//! 好差评 in the standard's shape, end to end: a rating made on the window's rating pad
//! reaches the hall server (`hallq receive`, through a real mosquitto) as a record
//! carrying every field the national rules and the platforms ask for; a bad rating
//! opens a follow-up (回访整改) due five working days later, which the hall server moves
//! on through the broker, which supervision shows (API and page), and which is overdue
//! once the controller's clock (libfaketime) passes the due day.

use std::sync::Mutex;
use std::time::Duration;

use chrono::{Datelike, NaiveDate, Weekday};
use hallq_tests::mqtt::{
    Broker, BrokerOptions, HallServer, Receiver, add_uplink, assert_events_match_schema,
    uplink_section, wait_for,
};
use hallq_tests::webdriver::Driver;
use hallq_tests::{Daemon, Hall, client, send, sign_in};
use serde_json::{Value, json};

static BROWSERS: Mutex<()> = Mutex::new(());

const LONG: Duration = Duration::from_secs(60);

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

/// The received event of `kind` about `ticket`, once it has arrived.
fn received(r: &Receiver, kind: &str, ticket: u64) -> Value {
    wait_for(LONG, kind, || {
        r.events().into_iter().find(|e| {
            e["type"] == kind
                && (e["payload"]["ticket"] == ticket || e["payload"]["rating"]["ticket"] == ticket)
        })
    })
}

fn date_of(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("a date")
}

/// The local (UTC+8) date of an instant in ms.
fn local_day(ms: i64) -> NaiveDate {
    chrono::DateTime::from_timestamp_millis(ms + 8 * 3_600_000)
        .expect("an instant")
        .date_naive()
}

#[test]
fn a_pad_rating_reaches_the_hall_server_in_the_standards_shape_and_its_follow_up_is_shown_until_closed()
 {
    let _one = BROWSERS.lock().unwrap_or_else(|p| p.into_inner());
    let hall = Hall::new();
    hall.add_staff("S001", "135790", &["--window", "1"]);
    hall.add_staff("J001", "246801", &["--role", "supervisor"]);
    let broker = Broker::start(&hall.dir.path().join("broker"), &BrokerOptions::default())
        .expect("mosquitto starts");
    let receiver = Receiver::start(hall.dir.path(), broker.port, &[]);
    add_uplink(&hall.config, &uplink_section(broker.port, "test-hall"));
    let clock = hall.dir.path().join("faketime");
    let Some(d) = Daemon::start_faked_clock(
        &hallq_tests::hallq_bin(),
        &hall.config,
        &clock,
        "a_pad_rating_reaches_the_hall_server_in_the_standards_shape",
    ) else {
        return;
    };
    let url = d.url.clone();
    let server = HallServer::connect(broker.port, "test-hall");

    // A citizen is served at window 1 and the case is accepted with its number.
    let (s, t) = send(
        client()
            .post(format!("{url}/api/v1/tickets"))
            .send_json(json!({"service": "SB"})),
    );
    assert_eq!(s, 201, "{t}");
    let ticket = t["ticket"]["id"].as_u64().expect("ticket id");
    let number = t["ticket"]["number"].as_str().expect("number").to_string();
    let clerk = sign_in(&url, "S001", "135790", Some(1));
    act(&url, &clerk, "call-next", json!({}));
    act(&url, &clerk, "start", json!({}));
    act(&url, &clerk, "finish", json!({"case_no": "SB-2026-000731"}));

    // The window's rating pad (the page /rate/1 sends X-Rating-Pad): 不满意, a reason.
    let (s, b) = send(
        client()
            .post(format!("{url}/api/v1/ratings"))
            .header("X-Rating-Pad", "1")
            .send_json(json!({
                "ticket": ticket, "level": "不满意", "reasons": ["办事效率低"],
                "comment": "等候时间太长",
            })),
    );
    assert_eq!(s, 201, "{b}");

    // What the hall server received, field by field.
    let rated = received(&receiver, "rating_recorded", ticket);
    let r = &rated["payload"]["record"];
    assert_eq!(r["channel_code"], "PJQ", "{r}");
    assert_eq!(r["channel"], "window-pad-1");
    assert_eq!(r["item_code"], "0101");
    assert_eq!(r["service"], "SB");
    assert_eq!(r["service_name"], "社会保障");
    assert_eq!(r["department"], "县人力资源和社会保障局");
    assert_eq!(r["department_code"], "11331121MB1A00001X");
    assert_eq!(r["region_code"], "331121");
    assert_eq!(r["window"], 1);
    assert_eq!(r["window_name"], "社保窗口");
    assert_eq!(r["staff_id"], "S001");
    assert_eq!(r["staff_name"], "测试员");
    assert_eq!(r["case_no"], "SB-2026-000731");
    assert_eq!(r["handle_state"], "accepted");
    assert_eq!(r["level"], "不满意");
    assert_eq!(r["level_code"], "2");
    assert_eq!(r["bad"], true);
    assert_eq!(r["reasons"], json!(["办事效率低"]));
    assert_eq!(r["comment"], "等候时间太长");
    assert_eq!(r["ticket"], ticket);
    assert_eq!(r["number"], number.as_str());
    let from = r["served_from"].as_i64().expect("served_from");
    let to = r["served_to"].as_i64().expect("served_to");
    let at = r["rated_at"].as_i64().expect("rated_at");
    assert!(from <= to && to <= at, "{r}");
    assert_eq!(at, rated["at"].as_i64().unwrap(), "rated when recorded");
    assert_eq!(
        r.as_object().unwrap().len(),
        24,
        "every field of the record, and no other: {r}"
    );

    // The follow-up: due at the end of the fifth working day after the rating's day.
    let opened = received(&receiver, "follow_up_opened", ticket);
    let p = &opened["payload"];
    assert_eq!(
        (&p["level"], &p["reasons"], &p["window"], &p["staff"]),
        (
            &json!("不满意"),
            &json!(["办事效率低"]),
            &json!(1),
            &json!("S001")
        )
    );
    let rated_day = local_day(at);
    let due_day = date_of(p["due_day"].as_str().expect("due_day"));
    let holidays = [date_of("2027-01-01")];
    let working = |d: &NaiveDate| {
        !matches!(d.weekday(), Weekday::Sat | Weekday::Sun) && !holidays.contains(d)
    };
    let days: Vec<NaiveDate> = rated_day
        .iter_days()
        .skip(1)
        .take_while(|d| *d <= due_day)
        .collect();
    assert!(working(&due_day), "{due_day} is a working day");
    assert_eq!(days.iter().filter(|d| working(d)).count(), 5, "{days:?}");
    assert_eq!(
        local_day(p["due_at"].as_i64().unwrap()),
        due_day.succ_opt().unwrap(),
        "due at the end of the due day"
    );

    // Supervision shows it open, not overdue.
    let sup = sign_in(&url, "J001", "246801", None);
    let fu = &supervision(&url, &sup)["follow_ups"];
    assert_eq!(fu["overdue"], 0, "{fu}");
    let open = &fu["open"][0];
    assert_eq!(
        (&open["ticket"], &open["state"], &open["overdue"]),
        (&json!(ticket), &json!("open"), &json!(false)),
        "{fu}"
    );

    // The hall server's platform takes it on, through the broker.
    let ack = server.request(
        "cmd",
        &json!({"id": "fu-1", "command": "follow_up", "ticket": ticket, "step": "received",
                "note": "已转人社局窗口负责人", "by": "李科长"}),
        "id",
        &json!("fu-1"),
    );
    assert_eq!(ack["ok"], true, "{ack}");
    assert_eq!(ack["result"]["state"], "received");
    assert_eq!(ack["result"]["late"], false);
    for (id, body, why) in [
        (
            "fu-x1",
            json!({"ticket": ticket, "step": "done", "by": "李科长"}),
            "step",
        ),
        (
            "fu-x2",
            json!({"ticket": 999_999, "step": "closed", "by": "李科长"}),
            "ticket",
        ),
        (
            "fu-x3",
            json!({"ticket": ticket, "step": "closed", "by": " "}),
            "by",
        ),
    ] {
        let mut body = body;
        body["id"] = json!(id);
        body["command"] = json!("follow_up");
        let ack = server.request("cmd", &body, "id", &json!(id));
        assert_eq!(ack["ok"], false, "{ack}");
        assert!(ack["reason"].as_str().unwrap().starts_with(why), "{ack}");
    }
    let open = supervision(&url, &sup)["follow_ups"]["open"][0].clone();
    assert_eq!(open["state"], "received", "{open}");
    assert_eq!(open["note"], "已转人社局窗口负责人");
    assert_eq!(open["by"], "李科长");

    // Nine days on (past any five working days but a long holiday), it is overdue.
    std::fs::write(&clock, "+9d\n").expect("move the clock");
    let sup = sign_in(&url, "J001", "246801", None);
    let fu = supervision(&url, &sup)["follow_ups"].clone();
    assert_eq!(fu["overdue"], 1, "{fu}");
    assert_eq!(fu["open"][0]["overdue"], true, "{fu}");

    // The page shows it red, in its own panel.
    let driver = Driver::start().expect("chromedriver");
    let page = driver.browser(1600, 1100).expect("browser");
    page.go(&format!("{url}/supervision")).unwrap();
    page.wait_for("the sign-in form", 20, |b| b.visible("#login-staff"))
        .unwrap();
    page.type_into("#login-staff", "J001").unwrap();
    page.type_into("#login-pin", "246801").unwrap();
    page.click("#login-submit").unwrap();
    let row = format!("#follow-ups li.overdue[data-ticket='{ticket}']");
    page.wait_for("the overdue follow-up", 20, |b| b.visible(&row))
        .unwrap();
    let text = page.text(&row);
    assert!(
        text.contains(&number) && text.contains("已逾期") && text.contains("已接收"),
        "{text}"
    );
    assert!(page.text("#follow-up-count").contains("逾期 1 件"));
    page.screenshot(&hallq_tests::screens_dir().join("web-supervision-follow-ups.png"))
        .expect("screenshot");

    // Visited late, then closed: it leaves the open list.
    let ack = server.request(
        "cmd",
        &json!({"id": "fu-2", "command": "follow_up", "ticket": ticket, "step": "visited",
                "note": "已电话回访，群众表示理解", "by": "李科长"}),
        "id",
        &json!("fu-2"),
    );
    assert_eq!(
        (&ack["ok"], &ack["result"]["late"]),
        (&json!(true), &json!(true)),
        "{ack}"
    );
    let ack = server.request(
        "cmd",
        &json!({"id": "fu-3", "command": "follow_up", "ticket": ticket, "step": "closed",
                "by": "李科长"}),
        "id",
        &json!("fu-3"),
    );
    assert_eq!(ack["ok"], true, "{ack}");
    let fu = supervision(&url, &sup)["follow_ups"].clone();
    assert_eq!(
        (&fu["open"], &fu["overdue"]),
        (&json!([]), &json!(0)),
        "{fu}"
    );
    page.wait_for("the follow-up to leave the page", 20, |b| {
        !b.visible(&row) && b.visible("#follow-ups li.none")
    })
    .unwrap();
    let ack = server.request(
        "cmd",
        &json!({"id": "fu-4", "command": "follow_up", "ticket": ticket, "step": "visited",
                "by": "李科长"}),
        "id",
        &json!("fu-4"),
    );
    assert_eq!(
        ack["ok"], false,
        "a closed follow-up takes no more steps: {ack}"
    );

    // Every step went up as an event, each valid against the published schema.
    let steps = wait_for(LONG, "three follow-up steps at the receiver", || {
        let steps: Vec<Value> = receiver
            .events()
            .into_iter()
            .filter(|e| e["type"] == "follow_up_progressed")
            .collect();
        (steps.len() == 3).then_some(steps)
    });
    let seen: Vec<(&Value, &Value, &Value)> = steps
        .iter()
        .map(|e| {
            (
                &e["payload"]["step"],
                &e["payload"]["late"],
                &e["payload"]["command_id"],
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (&json!("received"), &json!(false), &json!("fu-1")),
            (&json!("visited"), &json!(true), &json!("fu-2")),
            (&json!("closed"), &json!(true), &json!("fu-3")),
        ]
    );
    assert_eq!(steps[0]["payload"]["by"], "李科长");
    let all = receiver.events();
    let types = assert_events_match_schema(&all);
    assert!(
        types.contains("rating_recorded") && types.contains("follow_up_opened"),
        "{types:?}"
    );
}

#[test]
fn a_good_rating_opens_no_follow_up_and_carries_its_platform_code() {
    let hall = Hall::new();
    hall.add_staff("S001", "135790", &["--window", "1"]);
    let d = hall.start();
    let url = d.url.clone();
    let (s, t) = send(
        client()
            .post(format!("{url}/api/v1/tickets"))
            .send_json(json!({"service": "SB"})),
    );
    assert_eq!(s, 201, "{t}");
    let ticket = t["ticket"]["id"].as_u64().unwrap();
    let clerk = sign_in(&url, "S001", "135790", Some(1));
    act(&url, &clerk, "call-next", json!({}));
    act(&url, &clerk, "start", json!({}));
    act(&url, &clerk, "finish", json!({}));
    let (s, b) = send(
        client()
            .post(format!("{url}/api/v1/ratings"))
            .header("X-Rating-Pad", "1")
            .send_json(json!({"ticket": ticket, "level": "非常满意"})),
    );
    assert_eq!(s, 201, "{b}");
    let types: Vec<&str> = b["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["rating_recorded"], "{b}");
    let stored = hall.events_of("rating_recorded");
    let r = &stored[0]["record"];
    assert_eq!(
        (
            &r["level_code"],
            &r["bad"],
            &r["handle_state"],
            &r["case_no"]
        ),
        (&json!("5"), &json!(false), &json!("finished"), &Value::Null),
        "{r}"
    );
    assert!(hall.events_of("follow_up_opened").is_empty());
}
