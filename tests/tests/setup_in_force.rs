//! One setup in force, everywhere at once: the hall server pushes (over a real mosquitto)
//! a setup that renames a service, adds a service with a new prefix served by a new
//! window, and changes the rating reasons. Without a restart, every consumer follows:
//! the printed ticket (virtual printer on a pseudo-terminal), the guide, the rating
//! page, the new window's LED screen, caller keypad and rating pad (a simulated Modbus
//! bus on a pseudo-terminal), the kiosk's service list. Then the daemon is killed
//! (SIGKILL) and restarted: all of it still holds.

use std::time::{Duration, Instant};

use hallq_hardware::virtual_printer::{VirtualPrinter, VirtualPrinterHandle};
use hallq_hardware::window::keys::{CallerKey, Key};
use hallq_hardware::window::sim::{SimBus, SimSpec};
use hallq_tests::mqtt::{Broker, BrokerOptions, HallServer, add_uplink, uplink_section};
use hallq_tests::{Daemon, Hall, client, send};
use serde_json::{Value, json};
use serialport::{SerialPort, TTYPort};

const NEW_WINDOW: u32 = 10;
const SCREEN: u8 = 1;
const CALLER: u8 = 21;
const PAD: u8 = 31;
const NEW_NAME: &str = "民政事务（新）";
const NEW_SERVICE: &str = "信访接待";
const REASONS: [&str; 3] = ["等候太久", "窗口无人", "其他问题"];

fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The file's `[queue]` and `[guide]` as the hall server would send them, changed.
fn pushed(hall: &Hall) -> Value {
    let text = std::fs::read_to_string(&hall.config).expect("config");
    let doc: toml::Table = toml::from_str(&text).expect("TOML");
    let mut queue = serde_json::to_value(&doc["queue"]).expect("JSON");
    let mut guide = serde_json::to_value(&doc["guide"]).expect("JSON");
    // Renamed: the second service (民政, MZ).
    assert_eq!(queue["services"][1]["code"], "MZ");
    queue["services"][1]["name"]["zh-CN"] = NEW_NAME.into();
    // Added: 信访 with prefix X, served by the new window 10 only.
    queue["services"]
        .as_array_mut()
        .expect("services")
        .push(json!({
            "code": "XF", "prefix": "X", "department": "县信访局",
            "name": {"zh-CN": NEW_SERVICE, "zh-TW": "信訪接待", "en": "Petitions"},
        }));
    queue["windows"]
        .as_array_mut()
        .expect("windows")
        .push(json!({
            "number": NEW_WINDOW, "name": "信访窗口", "location": "二楼",
            "services": [{"code": "XF"}],
        }));
    queue["rating"]["reasons"] = json!(REASONS);
    // Its guide: the social-insurance one, re-addressed.
    let mut xf = guide["SB"].clone();
    xf["item_code"] = "11000000000099".into();
    xf["pinyin"] = json!(["XF", "XFJD"]);
    xf["location"] =
        json!({"zh-CN": "二楼 10号窗口", "zh-TW": "二樓 10號窗口", "en": "First floor, window 10"});
    guide["XF"] = xf;
    json!({"version": 2, "queue": queue, "guide": guide})
}

/// What a citizen, a clerk and the devices see of the pushed setup; `round` tells the
/// tickets of the two rounds (before and after the restart) apart.
fn everything_follows(
    d: &Daemon,
    sim: &SimBus,
    printer: &VirtualPrinterHandle,
    hall: &Hall,
    round: usize,
) {
    let c = client();
    // The kiosk's service list (what it reads on its next refresh).
    let (s, b) = send(c.get(format!("{}/api/v1/services", d.url)).call());
    assert_eq!(s, 200, "{b}");
    let services = b["services"].as_array().expect("services");
    let xf = services
        .iter()
        .find(|s| s["code"] == "XF")
        .unwrap_or_else(|| panic!("the new service is listed: {b}"));
    assert_eq!(xf["name"]["zh-CN"], NEW_SERVICE);
    assert_eq!(xf["windows"], json!([NEW_WINDOW]));
    assert_eq!(xf["pinyin"], json!(["XF", "XFJD"]), "its guide's pinyin");
    let mz = services.iter().find(|s| s["code"] == "MZ").expect("MZ");
    assert_eq!(mz["name"]["zh-CN"], NEW_NAME);

    // Its guide answers, with the new window.
    let (s, g) = send(c.get(format!("{}/api/v1/services/XF/guide", d.url)).call());
    assert_eq!(s, 200, "{g}");
    assert_eq!(g["guide"]["windows"], json!([NEW_WINDOW]));
    assert_eq!(g["guide"]["name"]["zh-CN"], NEW_SERVICE);

    // The rating page of the new window, and the reasons it offers.
    let resp = c
        .get(format!("{}/rate/{NEW_WINDOW}", d.url))
        .call()
        .expect("rate page");
    assert_eq!(resp.status().as_u16(), 200);
    let (s, board) = send(c.get(format!("{}/api/v1/board", d.url)).call());
    assert_eq!(s, 200);
    assert_eq!(
        board["rating_reasons"],
        json!(REASONS),
        "the page's reasons"
    );

    // A kiosk ticket for the new service prints its name and its window.
    let (s, t) = send(
        c.post(format!("{}/api/v1/tickets", d.url))
            .header("Idempotency-Key", format!("xf-{round}-1"))
            .send_json(json!({"service": "XF"})),
    );
    assert_eq!(s, 201, "{t}");
    let number = t["ticket"]["number"].as_str().expect("number").to_string();
    assert!(number.starts_with('X'), "{number}");
    assert_eq!(t["ticket"]["windows"], json!([NEW_WINDOW]));
    assert!(
        printer.wait_for(Duration::from_secs(5), |p| {
            let text: Vec<String> = p.runs().map(|r| r.text.clone()).collect();
            text.iter().any(|r| r.contains(&number))
                && text.iter().any(|r| r.contains(NEW_SERVICE))
                && text.iter().any(|r| r.contains("10号窗口"))
        }),
        "ticket {number} printed with {NEW_SERVICE} and 10号窗口: {:?}",
        printer
            .paper()
            .runs()
            .map(|r| r.text.clone())
            .collect::<Vec<_>>()
    );

    // A clerk at the new window calls it: the window's LED screen shows the number.
    let pin = "246810";
    let staff = format!("X10{round}");
    hall.add_staff(&staff, pin, &["--window", &NEW_WINDOW.to_string()]);
    let (s, b) = send(
        c.post(format!("{}/api/v1/sessions", d.url))
            .send_json(json!({"staff_id": staff, "pin": pin, "window": NEW_WINDOW})),
    );
    assert_eq!(s, 201, "{b}");
    let token = format!("Bearer {}", b["token"].as_str().expect("token"));
    let act = |action: &str| -> Value {
        let (s, b) = send(
            c.post(format!("{}/api/v1/windows/{NEW_WINDOW}/{action}", d.url))
                .header("Authorization", &token)
                .send_json(json!({})),
        );
        assert_eq!(s, 200, "{action}: {b}");
        b
    };
    let texts = |unit: u8| sim.texts(unit).expect("sim unit");
    // Staffed and idle, the screen names who serves there (亮身份).
    let serving = format!("测试员 工号{staff}");
    wait_until("the new window staffed", Duration::from_secs(5), || {
        texts(SCREEN) == ["10号窗口", serving.as_str()]
    });
    let called = act("call-next");
    assert_eq!(called["events"][0]["number"], number.as_str(), "{called}");
    wait_until(
        "the call on window 10's LED",
        Duration::from_secs(5),
        || texts(SCREEN) == [number.as_str(), "请到10号窗口"],
    );

    // Finish arms the pad there; its reason keys mean the new reasons.
    act("start");
    act("finish");
    wait_until("the rating prompt", Duration::from_secs(5), || {
        texts(SCREEN).get(1).map(String::as_str) == Some("请您评价")
    });
    let before = hall.events_of("rating_recorded").len();
    sim.press(PAD, Key::Rating(4)).expect("press");
    sim.press(PAD, Key::Reason(2)).expect("press");
    wait_until("the rating with its reason", Duration::from_secs(5), || {
        hall.events_of("rating_recorded").len() >= before + 2
    });
    let r = hall.events_of("rating_recorded").pop().expect("rating");
    assert_eq!(r["rating"]["ticket"], t["ticket"]["id"], "{r}");
    assert_eq!(r["rating"]["reasons"], json!([REASONS[1]]), "{r}");

    // The caller keypad there calls a typed number with the new prefix and width.
    let (s, t2) = send(
        c.post(format!("{}/api/v1/tickets", d.url))
            .header("Idempotency-Key", format!("xf-{round}-2"))
            .send_json(json!({"service": "XF"})),
    );
    assert_eq!(s, 201, "{t2}");
    let second = t2["ticket"]["number"].as_str().expect("number").to_string();
    let digits = second.trim_start_matches('X').trim_start_matches('0');
    for ch in digits.chars() {
        let d = ch.to_digit(10).expect("digit") as u8;
        sim.press(CALLER, Key::Digit(d)).expect("press");
    }
    sim.press(CALLER, Key::Function(CallerKey::CallTyped))
        .expect("press");
    wait_until("the typed call on the LED", Duration::from_secs(5), || {
        texts(SCREEN).first() == Some(&second)
    });
    let calls = hall.events_of("ticket_called");
    let last = calls.last().expect("a call");
    assert_eq!(last["number"], second.as_str(), "{last}");
    assert_eq!(last["window"], NEW_WINDOW);
    assert_eq!(last["staff"], staff.as_str());
    act("start");
    act("finish");
    let resp = c
        .delete(format!("{}/api/v1/sessions/current", d.url))
        .header("Authorization", &token)
        .call()
        .expect("sign out");
    assert_eq!(resp.status().as_u16(), 204);
    wait_until("the unstaffed window 10", Duration::from_secs(5), || {
        texts(SCREEN) == ["暂停服务", "10号窗口"]
    });
}

#[test]
fn a_pushed_setup_is_in_force_everywhere_at_once_and_after_a_power_cut() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let _guard = rt.enter();
    let (master, slave) = TTYPort::pair().expect("pseudo-terminal pair");
    let printer_path = slave.name().expect("the slave side has a path");
    let printer = VirtualPrinterHandle::serve_stream(VirtualPrinter::new(), master)
        .expect("virtual printer starts");
    let dir = tempfile::tempdir().expect("temp dir");
    let link = dir.path().join("ttyRS485");
    let sim = SimBus::new(&[
        SimSpec::window_screen(SCREEN),
        SimSpec::caller_keypad(CALLER),
        SimSpec::rating_keypad(PAD, 5),
    ]);
    sim.plug(&link).expect("bus plugged");
    // Window 10 is not in the file: with an uplink the hall server may push it.
    let hall = Hall::with_config(&format!(
        "[printer]\npaper = \"58mm\"\nstatus_poll_secs = 1\n\
         [printer.transport]\nkind = \"serial\"\npath = {printer_path:?}\nbaud = 115200\n\
         [[bus]]\nport = {:?}\nkey_poll_ms = 20\nresponse_timeout_ms = 50\n\
         [[bus.device]]\nunit = {SCREEN}\nkind = \"window_screen\"\nwindow = {NEW_WINDOW}\n\
         [[bus.device]]\nunit = {CALLER}\nkind = \"caller_keypad\"\nwindow = {NEW_WINDOW}\n\
         [[bus.device]]\nunit = {PAD}\nkind = \"rating_keypad\"\nwindow = {NEW_WINDOW}\n",
        link.display().to_string()
    ));
    let broker = Broker::start(&dir.path().join("broker"), &BrokerOptions::default())
        .expect("mosquitto starts");
    add_uplink(&hall.config, &uplink_section(broker.port, "test-hall"));
    let d = hall.start();
    let (s, b) = send(client().get(format!("{}/rate/{NEW_WINDOW}", d.url)).call());
    assert_eq!(s, 404, "no window 10 before the push: {b}");
    wait_until("the uplink to connect", Duration::from_secs(60), || {
        let out = hall.cli(&["uplink", "status", "--json", "--api", &d.url]);
        let v: Value = serde_json::from_str(&out).expect("status JSON");
        v["link"]["state"] == "connected"
    });
    let server = HallServer::connect(broker.port, "test-hall");
    let ack = server.request("config/set", &pushed(&hall), "version", &json!(2));
    assert_eq!(ack["ok"], true, "{ack}");
    everything_follows(&d, &sim, &printer, &hall, 1);

    // A power cut: SIGKILL, then a fresh start with the same files.
    drop(d);
    let d = hall.start();
    wait_until(
        "window 10 drawn after the restart",
        Duration::from_secs(5),
        || sim.texts(SCREEN).expect("sim") == ["暂停服务", "10号窗口"],
    );
    everything_follows(&d, &sim, &printer, &hall, 2);
    drop(server);
}
