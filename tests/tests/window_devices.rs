//! The daemon and a simulated window bus on a pseudo-terminal: a call through the API
//! reaches the window's LED screen and the hall board; a rating pad press becomes a
//! stored rating linked to the ticket; two caller keypads pressing call at the same
//! moment get different tickets; a pause shows 暂停服务; the bus unplugged and
//! replugged gets every screen redrawn within 2 s, with the outage stored as device
//! events. A window where staff signed in names them on its status line (亮身份: name
//! and staff number, the number alone for a name outside GB2312), unless the hall
//! turned that off.

use std::time::{Duration, Instant};

use hallq_hardware::window::font::BitmapFont;
use hallq_hardware::window::keys::{CallerKey, Key};
use hallq_hardware::window::sim::{SimBus, SimSpec, lit_dots};
use hallq_tests::{Hall, client, send};
use serde_json::{Value, json};

const BOARD: u8 = 10;

fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn window_devices_follow_the_queue_and_feed_it() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("ttyRS485");
    let sim = SimBus::new(&[
        SimSpec::window_screen(1),
        SimSpec::window_screen(2),
        SimSpec::hall_board(BOARD),
        SimSpec::caller_keypad(21),
        SimSpec::caller_keypad(22),
        SimSpec::rating_keypad(31, 5),
    ]);
    sim.plug(&link).unwrap();
    let hall = Hall::with_config(&format!(
        "[[bus]]\nport = {:?}\nkey_poll_ms = 20\nresponse_timeout_ms = 50\nrating_armed_secs = 30\n\
         notice = \"今日办理社保业务请带身份证原件\"\n\
         [[bus.device]]\nunit = 1\nkind = \"window_screen\"\nwindow = 1\n\
         [[bus.device]]\nunit = 2\nkind = \"window_screen\"\nwindow = 2\n\
         [[bus.device]]\nunit = 10\nkind = \"hall_board\"\n\
         [[bus.device]]\nunit = 21\nkind = \"caller_keypad\"\nwindow = 1\n\
         [[bus.device]]\nunit = 22\nkind = \"caller_keypad\"\nwindow = 2\n\
         [[bus.device]]\nunit = 31\nkind = \"rating_keypad\"\nwindow = 1\n",
        link.display().to_string()
    ));
    hall.add_staff("S001", "135790", &["--window", "1"]);
    // 堃 is outside GB2312: the screen cannot draw this name.
    hall.add_staff_named("S002", "李堃", "246801", &["--window", "2"]);
    let d = hall.start();
    let c = client();
    let texts = |unit: u8| sim.texts(unit).unwrap();

    // At start nobody is signed in: the windows say so, never 欢迎办理.
    wait_until("unstaffed screens", Duration::from_secs(5), || {
        texts(1) == ["暂停服务", "1号窗口"] && texts(2) == ["暂停服务", "2号窗口"]
    });

    let sign_in = |id: &str, pin: &str, w: u32| -> String {
        let (s, b) = send(
            c.post(format!("{}/api/v1/sessions", d.url))
                .send_json(json!({"staff_id": id, "pin": pin, "window": w})),
        );
        assert_eq!(s, 201, "{b}");
        format!("Bearer {}", b["token"].as_str().unwrap())
    };
    let t1 = sign_in("S001", "135790", 1);
    let _t2 = sign_in("S002", "246801", 2);
    // 亮身份: the status line names who serves; a name the screen cannot show gives
    // the staff number alone.
    wait_until(
        "idle screens naming the staff",
        Duration::from_secs(3),
        || texts(1) == ["1号窗口", "测试员 工号S001"] && texts(2) == ["2号窗口", "工号S002"],
    );
    let act = |token: &str, w: u32, action: &str| -> Value {
        let (s, b) = send(
            c.post(format!("{}/api/v1/windows/{w}/{action}", d.url))
                .header("Authorization", token)
                .send_json(json!({})),
        );
        assert_eq!(s, 200, "{action}: {b}");
        b
    };
    let mut tickets = Vec::new();
    for i in 0..4 {
        let (s, t) = send(
            c.post(format!("{}/api/v1/tickets", d.url))
                .header("Idempotency-Key", format!("w-{i}"))
                .send_json(json!({"service": "SB"})),
        );
        assert!(s == 201 || s == 200, "{t}");
        tickets.push((
            t["ticket"]["id"].as_u64().unwrap(),
            t["ticket"]["number"].as_str().unwrap().to_string(),
        ));
    }

    // 1. A call through the API: the window screen and the hall board.
    let called = act(&t1, 1, "call-next");
    let number = called["events"][0]["number"].as_str().unwrap().to_string();
    let ticket = called["events"][0]["ticket"].as_u64().unwrap();
    let board_line = format!("请 {number} 号到 1 号窗口办理");
    wait_until("the call on the screens", Duration::from_secs(3), || {
        texts(1) == [number.as_str(), "请到1号窗口"] && texts(BOARD)[0] == board_line
    });
    assert_eq!(texts(BOARD)[5], "今日办理社保业务请带身份证原件");

    // 2. Finish arms the rating pad: 不满意 without a reason, then a reason key.
    act(&t1, 1, "start");
    act(&t1, 1, "finish");
    wait_until("the rating prompt", Duration::from_secs(3), || {
        texts(1)[1] == "请您评价"
    });
    sim.press(31, Key::Rating(4)).unwrap();
    wait_until("a rating", Duration::from_secs(5), || {
        !hall.events_of("rating_recorded").is_empty()
    });
    let r = &hall.events_of("rating_recorded")[0];
    assert_eq!(r["rating"]["ticket"], ticket, "{r}");
    assert_eq!(r["rating"]["level"], "不满意");
    assert_eq!(r["rating"]["reason_pending"], true);
    assert_eq!(r["rating"]["channel"], "window-pad-1");
    assert_eq!(r["rating"]["window"], 1);
    assert_eq!(r["rating"]["staff"], "S001");
    sim.press(31, Key::Reason(2)).unwrap();
    wait_until("the reason", Duration::from_secs(5), || {
        hall.events_of("rating_recorded").len() == 2
    });
    let r = &hall.events_of("rating_recorded")[1];
    assert_eq!(r["replaced"], true);
    assert_eq!(r["rating"]["reasons"], json!(["办事效率低"]));
    assert_eq!(r["rating"]["reason_pending"], false);
    // The pad is its own 好差评 channel; the bad rating's follow-up (回访整改), opened by
    // the press without a reason, takes the reason pressed after it.
    assert_eq!(r["record"]["channel_code"], "PJQ", "{r}");
    assert_eq!(r["record"]["reasons"], json!(["办事效率低"]));
    assert_eq!(hall.events_of("follow_up_opened").len(), 1);
    let reasons: String = hall
        .database()
        .query_row(
            "SELECT reasons FROM follow_ups WHERE ticket = ?1",
            [ticket as i64],
            |row| row.get(0),
        )
        .expect("the follow-up");
    assert_eq!(reasons, r#"["办事效率低"]"#);

    // 3. Two caller keypads press 呼叫 at the same moment: two different tickets.
    sim.press(21, Key::Function(CallerKey::CallNext)).unwrap();
    sim.press(22, Key::Function(CallerKey::CallNext)).unwrap();
    wait_until("two calls", Duration::from_secs(5), || {
        hall.events_of("ticket_called").len() == 3
    });
    let calls = hall.events_of("ticket_called");
    let (a, b) = (&calls[1], &calls[2]);
    assert_ne!(a["ticket"], b["ticket"]);
    let mut staff = vec![a["staff"].as_str().unwrap(), b["staff"].as_str().unwrap()];
    staff.sort();
    assert_eq!(
        staff,
        ["S001", "S002"],
        "each keypad acts as its window's staff"
    );
    let n2 = if a["window"] == 2 { a } else { b }["number"]
        .as_str()
        .unwrap()
        .to_string();
    wait_until("window 2's call", Duration::from_secs(3), || {
        texts(2)[0] == n2
    });
    // The board lists the latest call first and keeps the earlier ones.
    wait_until("the board's list", Duration::from_secs(3), || {
        texts(BOARD).contains(&board_line) && texts(BOARD)[0] != board_line
    });
    // No rating was invented for a ticket nobody rated.
    assert_eq!(hall.events_of("rating_recorded").len(), 2);

    // 4. Pause from the keypad (one toggle key): 暂停服务.
    sim.press(22, Key::Function(CallerKey::NoShow)).unwrap();
    sim.press(22, Key::Function(CallerKey::PauseToggle))
        .unwrap();
    wait_until("paused", Duration::from_secs(3), || {
        texts(2)[0] == "暂停服务"
    });
    assert_eq!(hall.events_of("window_paused").len(), 1);

    // A picture of the hall board for the docs (pixels prove the text was drawn).
    let font = BitmapFont::find().expect("install the Debian package unifont");
    let png = sim.render_png(BOARD, &font).unwrap();
    assert!(
        lit_dots(&png, 0, 0, 200, 16) > 300,
        "the call line is drawn"
    );
    if let Ok(path) = std::env::var("HALLQ_DOCS_PNG") {
        std::fs::write(path, &png).unwrap();
    }

    // 5. The bus unplugged, every screen losing power meanwhile, then replugged.
    let before = (texts(1), texts(2), texts(BOARD));
    sim.unplug();
    wait_until("offline faults", Duration::from_secs(5), || {
        hall.events_of("device_fault")
            .iter()
            .filter(|e| e["code"] == "offline")
            .count()
            >= 6
    });
    for u in [1, 2, BOARD] {
        sim.power_cycle(u).unwrap();
    }
    std::thread::sleep(Duration::from_millis(1200));
    let t = Instant::now();
    sim.plug(&link).unwrap();
    let redrawn = (0..100).any(|_| {
        std::thread::sleep(Duration::from_millis(20));
        (texts(1), texts(2), texts(BOARD)) == before
    });
    assert!(
        redrawn,
        "not redrawn within 2 s: {:?} != {before:?}; {} requests",
        (texts(1), texts(2), texts(BOARD)),
        sim.requests()
    );
    eprintln!("redrawn {:?} after replug", t.elapsed());
    wait_until("recoveries stored", Duration::from_secs(5), || {
        hall.events_of("device_recovered").len() >= 6
    });

    // 6. The clerk at window 1 signs out: its screen says 暂停服务, never 欢迎办理.
    act(&t1, 1, "no-show");
    let resp = c
        .delete(format!("{}/api/v1/sessions/current", d.url))
        .header("Authorization", &t1)
        .call()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 204);
    assert_eq!(hall.events_of("staff_signed_out").len(), 1);
    wait_until("window 1 unstaffed", Duration::from_secs(3), || {
        texts(1) == ["暂停服务", "1号窗口"]
    });
    drop(d);
}

/// A hall's staff member signed in at a window, and the calls the tests make.
struct Desk<'a> {
    url: &'a str,
    token: String,
}

impl Desk<'_> {
    fn sign_in<'a>(url: &'a str, id: &str, pin: &str, window: u32) -> Desk<'a> {
        let (s, b) = send(
            client()
                .post(format!("{url}/api/v1/sessions"))
                .send_json(json!({"staff_id": id, "pin": pin, "window": window})),
        );
        assert_eq!(s, 201, "{b}");
        Desk {
            url,
            token: format!("Bearer {}", b["token"].as_str().unwrap()),
        }
    }

    fn act(&self, w: u32, action: &str) -> Value {
        let (s, b) = send(
            client()
                .post(format!("{}/api/v1/windows/{w}/{action}", self.url))
                .header("Authorization", &self.token)
                .send_json(json!({})),
        );
        assert_eq!(s, 200, "{action}: {b}");
        b
    }
}

fn issue(url: &str, key: &str) -> u64 {
    let (s, t) = send(
        client()
            .post(format!("{url}/api/v1/tickets"))
            .header("Idempotency-Key", key)
            .send_json(json!({"service": "SB"})),
    );
    assert!(s == 201 || s == 200, "{t}");
    t["ticket"]["id"].as_u64().unwrap()
}

fn check_config_ok(hall: &Hall) {
    let out = std::process::Command::new(hallq_tests::hallq_bin())
        .arg("check-config")
        .arg(&hall.config)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn vendor_frame_screens_on_one_line_show_calls_pauses_and_the_board() {
    use hallq_hardware::window::vendor_frame::VendorProfile;
    use hallq_hardware::window::vendor_sim::VendorSim;
    let rt = runtime();
    let _guard = rt.enter();
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("ttyScreens");
    // A vendor whose frames start with 0xAA and end with 0x03, set in the config.
    let sim = VendorSim::new(VendorProfile {
        header: 0xAA,
        end: 0x03,
    });
    sim.plug(&link).unwrap();
    let hall = Hall::with_config(&format!(
        "[[bus]]\nname = \"screens\"\nport = {:?}\nprotocol = \"vendor\"\n\
         frame_header = 0xAA\nframe_end = 0x03\n\
         [[bus.device]]\nunit = 1\nkind = \"window_screen\"\nwindow = 1\n\
         [[bus.device]]\nunit = 2\nkind = \"window_screen\"\nwindow = 2\n\
         [[bus.device]]\nunit = 9\nkind = \"hall_board\"\nlines = 4\n",
        link.display().to_string()
    ));
    check_config_ok(&hall);
    hall.add_staff_named("S001", "王芳", "135790", &["--window", "1"]);
    let d = hall.start();
    wait_until("unstaffed screens", Duration::from_secs(5), || {
        sim.texts(1) == ["暂停服务", "1号窗口"] && sim.texts(2) == ["暂停服务", "2号窗口"]
    });
    let desk = Desk::sign_in(&d.url, "S001", "135790", 1);
    // The GB2312 bytes the screen received decode to her name and number.
    wait_until("window 1 naming 王芳", Duration::from_secs(3), || {
        sim.texts(1) == ["1号窗口", "王芳 工号S001"]
    });
    issue(&d.url, "v-1");
    issue(&d.url, "v-2");

    let called = desk.act(1, "call-next");
    let number = called["events"][0]["number"].as_str().unwrap().to_string();
    let board_line = format!("请 {number} 号到 1 号窗口办理");
    wait_until("the call on the screens", Duration::from_secs(3), || {
        sim.texts(1) == [number.as_str(), "请到1号窗口"]
            && sim.texts(9).first() == Some(&board_line)
    });
    // A four-line board: the call, two blank rows, the [board] notice scrolling last.
    let board = sim.texts(9);
    assert_eq!(board.len(), 4, "{board:?}");
    assert!(!board[3].is_empty(), "{board:?}");
    // The number goes red (1) and blinking (1 << 4) in the vendor attribute byte.
    assert_eq!(sim.screen(1).lines[&0].1, 0x11);
    assert_eq!(sim.texts(2), ["暂停服务", "2号窗口"], "window 2 untouched");

    desk.act(1, "start");
    desk.act(1, "finish");
    desk.act(1, "pause");
    wait_until("paused", Duration::from_secs(3), || {
        sim.texts(1).first().map(String::as_str) == Some("暂停服务")
    });
    assert_eq!(sim.errors(), (0, 0), "every byte was part of a good frame");

    // Unplugged (the screens lose power with it), then plugged back in.
    sim.unplug();
    wait_until("offline faults", Duration::from_secs(5), || {
        hall.events_of("device_fault")
            .iter()
            .filter(|e| e["code"] == "offline")
            .count()
            >= 3
    });
    let faulted: Vec<String> = hall
        .events_of("device_fault")
        .iter()
        .map(|e| e["device"].as_str().unwrap().to_string())
        .collect();
    assert!(
        faulted.contains(&"screens/unit9".to_string()),
        "{faulted:?}"
    );
    std::thread::sleep(Duration::from_millis(1200));
    let t = Instant::now();
    sim.plug(&link).unwrap();
    wait_until("every screen redrawn", Duration::from_secs(2), || {
        sim.texts(1).first().map(String::as_str) == Some("暂停服务")
            && sim.texts(2) == ["暂停服务", "2号窗口"]
            && sim.texts(9).first() == Some(&board_line)
    });
    eprintln!("vendor screens redrawn {:?} after replug", t.elapsed());
    wait_until("recoveries stored", Duration::from_secs(5), || {
        hall.events_of("device_recovered").len() >= 3
    });
    drop(d);
}

#[test]
fn missing_spi_gpio_and_usb_devices_are_reported_offline_and_the_queue_goes_on() {
    for dev in ["/dev/spidev0.0", "/dev/gpiochip0"] {
        assert!(
            !std::path::Path::new(dev).exists(),
            "{dev} exists here: this test needs a machine without it"
        );
    }
    let hall = Hall::with_config(
        "[[led_matrix]]\nname = \"led-w1\"\nspi = \"/dev/spidev0.0\"\nkind = \"window_screen\"\n\
         window = 1\nmodules_wide = 8\nmodules_high = 4\n\
         [[gpio_keypad]]\nname = \"rate-w1\"\nchip = \"/dev/gpiochip0\"\nkind = \"rating_keypad\"\n\
         window = 1\nkeys = 3\n[gpio_keypad.buttons]\nrating1 = 17\nrating2 = 27\nrating3 = 22\n\
         [[usb_keypad]]\nname = \"caller-w1\"\ndevice = \"usb-hallq-test-absent-event-kbd\"\n\
         kind = \"caller_keypad\"\nwindow = 1\n[usb_keypad.keymap]\nKEY_F12 = \"call_next\"\n",
    );
    check_config_ok(&hall);
    hall.add_staff("S001", "135790", &["--window", "1"]);
    let d = hall.start();
    wait_until("three offline faults", Duration::from_secs(5), || {
        let mut devices: Vec<String> = hall
            .events_of("device_fault")
            .iter()
            .filter(|e| e["code"] == "offline")
            .map(|e| e["device"].as_str().unwrap().to_string())
            .collect();
        devices.sort();
        devices == ["caller-w1", "led-w1", "rate-w1"]
    });
    let faults = hall.events_of("device_fault");
    let led = faults.iter().find(|e| e["device"] == "led-w1").unwrap();
    assert!(
        led["detail"].as_str().unwrap().contains("/dev/spidev0.0"),
        "{led}"
    );
    // The queue does not wait for its devices.
    let desk = Desk::sign_in(&d.url, "S001", "135790", 1);
    let ticket = issue(&d.url, "m-1");
    let called = desk.act(1, "call-next");
    assert_eq!(called["events"][0]["ticket"], ticket);
    // Retried with backoff, and reported once, not at every retry.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(hall.events_of("device_fault").len(), 3);
    let (s, devices) = send(client().get(format!("{}/api/v1/devices", d.url)).call());
    assert_eq!(s, 200, "{devices}");
    let led = devices["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["device"] == "led-w1")
        .cloned()
        .unwrap_or_default();
    assert_eq!(led["health"]["code"], "offline", "{devices}");
    drop(d);
}

#[test]
fn a_bad_device_setting_names_its_key() {
    let hall = Hall::with_config(
        "[[gpio_keypad]]\nchip = \"/dev/gpiochip0\"\nkind = \"caller_keypad\"\nwindow = 1\n\
         [gpio_keypad.buttons]\ncall_next = 5\nfinnish = 6\n",
    );
    let out = std::process::Command::new(hallq_tests::hallq_bin())
        .args(["check-config"])
        .arg(&hall.config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("gpio_keypad[0].buttons.finnish"), "{err}");
}

#[test]
fn a_rating_pad_armed_before_a_power_cut_still_rates_that_ticket() {
    let rt = runtime();
    let _guard = rt.enter();
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("ttyRS485");
    let sim = SimBus::new(&[SimSpec::window_screen(1), SimSpec::rating_keypad(31, 5)]);
    sim.plug(&link).unwrap();
    // A hall that keeps 欢迎办理 on its screens (亮身份 off).
    let hall = Hall::with_config(&format!(
        "[windows]\nshow_staff = false\n\
         [[bus]]\nport = {:?}\nkey_poll_ms = 20\nresponse_timeout_ms = 50\nrating_armed_secs = 4\n\
         [[bus.device]]\nunit = 1\nkind = \"window_screen\"\nwindow = 1\n\
         [[bus.device]]\nunit = 31\nkind = \"rating_keypad\"\nwindow = 1\n",
        link.display().to_string()
    ));
    hall.add_staff("S001", "135790", &["--window", "1"]);
    let served = |d: &hallq_tests::Daemon, key: &str| -> u64 {
        let desk = Desk::sign_in(&d.url, "S001", "135790", 1);
        issue(&d.url, key);
        let t = desk.act(1, "call-next")["events"][0]["ticket"]
            .as_u64()
            .unwrap();
        desk.act(1, "start");
        desk.act(1, "finish");
        t
    };

    // 1. Finish, the power goes (kill -9), the controller comes back, the citizen presses.
    let d = hall.start();
    let first = served(&d, "p-1");
    drop(d);
    let d = hall.start();
    wait_until("the rating prompt redrawn", Duration::from_secs(3), || {
        sim.texts(1).unwrap().get(1).map(String::as_str) == Some("请您评价")
    });
    sim.press(31, Key::Rating(2)).unwrap();
    wait_until("the rating", Duration::from_secs(3), || {
        !hall.events_of("rating_recorded").is_empty()
    });
    let r = &hall.events_of("rating_recorded")[0];
    assert_eq!(r["rating"]["ticket"], first, "{r}");
    assert_eq!(r["rating"]["level"], "满意");
    assert_eq!(r["rating"]["channel"], "window-pad-1");

    // 2. Finish, power cut, back only after the armed time: the press records nothing.
    let second = served(&d, "p-2");
    assert_ne!(second, first);
    drop(d);
    std::thread::sleep(Duration::from_millis(4300));
    let d = hall.start();
    wait_until("the idle screen", Duration::from_secs(3), || {
        sim.texts(1).unwrap() == ["1号窗口", "欢迎办理"]
    });
    sim.press(31, Key::Rating(1)).unwrap();
    wait_until(
        "the press read and acknowledged",
        Duration::from_secs(3),
        || sim.pending_keys(31).unwrap() == 0,
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        hall.events_of("rating_recorded").len(),
        1,
        "no rating after the armed time"
    );
    drop(d);
}
