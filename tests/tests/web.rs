//! The web pages in headless Chromium driven over WebDriver, against the real daemon:
//! a member of staff signs in and calls, the board shows the call, finishing wakes the
//! rating pad, a bad rating is refused without a reason and stored with one; the
//! supervision dashboard shows a long-wait warning; wrong PINs lock the account; the
//! board marks a lost connection and recovers after a restart. Each page is saved as a
//! screenshot in `docs/screens/` for the README.

use std::sync::Mutex;
use std::time::Duration;

use hallq_tests::webdriver::{Browser, Driver};
use hallq_tests::{Hall, client, send, sign_in};
use serde_json::{Value, json};

/// One browser test at a time: each runs several Chromium instances, and the machine
/// that runs the suite has two cores.
static BROWSERS: Mutex<()> = Mutex::new(());

fn shot(b: &Browser, name: &str) {
    b.screenshot(&hallq_tests::screens_dir().join(name))
        .expect("screenshot");
}

/// A test hall on a fixed port (so a restart keeps the address): three-digit numbers,
/// notices on the board, and whatever `edit` changes in the configuration text.
fn hall(edit: impl Fn(String) -> String) -> (Hall, String) {
    let hall = Hall::new();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let text = std::fs::read_to_string(&hall.config).unwrap();
    let text = text
        .replace("number_width = 6", "number_width = 3")
        .replace("127.0.0.1:0", &format!("127.0.0.1:{port}"));
    std::fs::write(&hall.config, edit(text)).unwrap();
    (hall, format!("http://127.0.0.1:{port}"))
}

fn issue(url: &str, service: &str) -> Value {
    let (s, b) = send(
        client()
            .post(format!("{url}/api/v1/tickets"))
            .send_json(json!({ "service": service })),
    );
    assert_eq!(s, 201, "{b}");
    b["ticket"].clone()
}

fn act(url: &str, token: &str, window: u32, action: &str, body: Value) -> (u16, Value) {
    send(
        client()
            .post(format!("{url}/api/v1/windows/{window}/{action}"))
            .header("Authorization", token)
            .send_json(body),
    )
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

#[test]
fn staff_call_the_board_shows_it_and_a_bad_rating_needs_a_reason() {
    let _one = BROWSERS.lock().unwrap_or_else(|p| p.into_inner());
    let (hall, url) = hall(|t| t);
    hall.add_staff("S001", "135790", &["--window", "1"]);
    hall.add_staff("J001", "246801", &["--role", "supervisor"]);
    let _d = hall.start();
    issue(&url, "SB");
    issue(&url, "SB");
    issue(&url, "MZ");

    let driver = Driver::start().unwrap();
    let board = driver.browser(1920, 1080).unwrap();
    board.go(&format!("{url}/board")).unwrap();
    board
        .wait_for("the board to go live", 20, |b| {
            b.js("return document.body.dataset.live", json!([])).ok() == Some(json!("true"))
        })
        .unwrap();
    assert!(
        board.text("#notices").contains("绿色通道"),
        "notices scroll"
    );
    for css in ["header", "#notices", "#waiting"] {
        assert_eq!(
            board.blank_glyphs(css).unwrap(),
            Vec::<String>::new(),
            "{css} has glyphs the fonts lack"
        );
    }
    assert!(
        !board.visible("#offline"),
        "no reconnecting mark while live"
    );

    let pad = driver.browser(1280, 800).unwrap();
    pad.go(&format!("{url}/rate/1")).unwrap();
    pad.wait_for("the pad to sleep", 20, |b| b.visible("#sleep"))
        .unwrap();

    let counter = driver.browser(1366, 900).unwrap();
    counter.go(&format!("{url}/counter?window=1")).unwrap();
    counter
        .wait_for("the sign-in form", 20, |b| b.visible("#login-staff"))
        .unwrap();
    counter.type_into("#login-staff", "S001").unwrap();
    counter.type_into("#login-pin", "135790").unwrap();
    shot(&counter, "web-counter-login.png");
    counter.click("#login-submit").unwrap();
    counter
        .wait_for("the desk with two waiting", 20, |b| {
            b.visible("#desk") && b.text("#queues").contains('2')
        })
        .unwrap();

    // N is the shortcut for "call next".
    counter.click("#cur-number").unwrap();
    counter.press("n").unwrap();
    counter
        .wait_for("A001 called at the counter", 20, |b| {
            b.text("#cur-number") == "A001"
        })
        .unwrap();
    board
        .wait_for("A001 large on the board", 20, |b| {
            b.text("#latest-number") == "A001" && b.text("#latest-window").contains('1')
        })
        .unwrap();
    assert!(
        board
            .js(
                "return document.querySelector('#latest').classList.contains('flash')",
                json!([])
            )
            .unwrap()
            == json!(true),
        "the newest call blinks"
    );
    let chimes = board
        .js(
            "return Number(document.body.dataset.chimes || 0)",
            json!([]),
        )
        .unwrap();
    assert!(
        chimes.as_u64().unwrap_or(0) >= 1,
        "the call chimed: {chimes}"
    );
    board
        .wait_for("A001 in the latest calls", 10, |b| {
            b.text("#recent").contains("A001")
        })
        .unwrap();
    std::thread::sleep(Duration::from_millis(3500)); // let the blink finish for the picture
    shot(&board, "web-board.png");

    // A refused action is a clear message, not silence: calling again before the
    // citizen arrived is refused with the reason.
    counter.press("n").unwrap();
    counter
        .wait_for("a refusal message", 10, |b| {
            b.js(
                "return document.getElementById('message').dataset.code",
                json!([]),
            )
            .ok()
                == Some(json!("current_ticket_pending"))
        })
        .unwrap();
    counter.press("s").unwrap();
    counter
        .wait_for("serving", 10, |b| b.text("#cur-state").contains("办理中"))
        .unwrap();
    counter.type_into("#case-no", "QS2026112300017").unwrap();
    shot(&counter, "web-counter.png");
    counter.click("#act-finish").unwrap();
    counter
        .wait_for("finished", 10, |b| b.text("#message").contains("已办结"))
        .unwrap();

    pad.wait_for("the pad to wake for A001", 20, |b| {
        b.visible("#levels") && b.text("#prompt").contains("A001")
    })
    .unwrap();
    shot(&pad, "web-rate.png");
    pad.click("button[data-level='不满意']").unwrap();
    pad.wait_for("the reasons", 10, |b| b.visible("#reasons"))
        .unwrap();
    pad.click("#submit").unwrap();
    pad.wait_for(
        "the controller to refuse a bad rating without a reason",
        10,
        |b| {
            b.js(
                "return document.getElementById('rate-message').dataset.field",
                json!([]),
            )
            .ok()
                == Some(json!("reasons"))
        },
    )
    .unwrap();
    let sup = sign_in(&url, "J001", "246801", None);
    assert_eq!(
        supervision(&url, &sup)["ratings"]["total"],
        0,
        "nothing stored yet"
    );
    pad.click("button[data-reason='办事效率低']").unwrap();
    pad.type_into("#comment", "等了很久").unwrap();
    shot(&pad, "web-rate-reasons.png");
    pad.click("#submit").unwrap();
    pad.wait_for("thanks", 10, |b| b.visible("#thanks"))
        .unwrap();
    pad.wait_for("the pad to sleep again after thanking", 15, |b| {
        b.visible("#sleep")
    })
    .unwrap();

    let s = supervision(&url, &sup);
    assert_eq!(s["ratings"]["levels"]["不满意"], 1, "{}", s["ratings"]);
    assert_eq!(s["ratings"]["reasons"]["办事效率低"], 1);
    let w1 = &s["windows"][0];
    assert!(w1["current"].is_null() && w1["served"] == 1, "{w1}");

    // The other layout, on a 4K television, with window 1 calling the next citizen.
    counter.press("n").unwrap();
    counter
        .wait_for("A002 called", 10, |b| b.text("#cur-number") == "A002")
        .unwrap();
    let tv = driver.browser(3840, 2160).unwrap();
    tv.go(&format!("{url}/board?layout=windows")).unwrap();
    tv.wait_for("the column layout", 20, |b| {
        b.visible("#layout-windows") && b.text("[data-window='1'] .col-number") == "A002"
    })
    .unwrap();
    std::thread::sleep(Duration::from_millis(3500)); // past the blink
    shot(&tv, "web-board-4k-windows.png");
}

#[test]
fn supervision_shows_a_long_wait_warning_and_offers_the_daily_csv() {
    let _one = BROWSERS.lock().unwrap_or_else(|p| p.into_inner());
    // A one-minute threshold would make the test wait a minute: 0 raises the warning
    // at the first clock tick after the ticket is issued, which is the same code path.
    let (hall, url) = hall(|t| {
        t.replacen(
            "expected_minutes = 7",
            "expected_minutes = 7\nwait_alarm_minutes = 0",
            1,
        )
    });
    hall.add_staff("S001", "135790", &["--window", "1"]);
    hall.add_staff("S002", "135791", &["--window", "2"]);
    hall.add_staff("J001", "246801", &["--role", "supervisor"]);
    let _d = hall.start();
    for _ in 0..3 {
        issue(&url, "SB");
    }
    let a = sign_in(&url, "S001", "135790", Some(1));
    let b = sign_in(&url, "S002", "135791", Some(2));
    act(&url, &a, 1, "call-next", json!({}));
    act(&url, &a, 1, "start", json!({}));
    let (_, done) = act(&url, &a, 1, "finish", json!({}));
    let rated = done["events"][0]["ticket"].clone();
    let (s, r) = send(
        client()
            .post(format!("{url}/api/v1/ratings"))
            .send_json(json!({ "ticket": rated, "level": "满意" })),
    );
    assert_eq!(s, 201, "{r}");
    act(&url, &a, 1, "call-next", json!({}));
    act(&url, &b, 2, "pause", json!({ "reason": "午休" }));
    let hj = issue(&url, "HJ");

    let driver = Driver::start().unwrap();
    let page = driver.browser(1600, 1100).unwrap();
    page.go(&format!("{url}/supervision")).unwrap();
    page.wait_for("the sign-in form", 20, |b| b.visible("#login-staff"))
        .unwrap();
    page.type_into("#login-staff", "S001").unwrap();
    page.type_into("#login-pin", "135790").unwrap();
    page.click("#login-submit").unwrap();
    page.wait_for("window staff to be refused", 10, |b| {
        b.js(
            "return document.getElementById('login-message').dataset.code",
            json!([]),
        )
        .ok()
            == Some(json!("wrong_window"))
    })
    .unwrap();
    page.type_into("#login-staff", "J001").unwrap();
    page.type_into("#login-pin", "246801").unwrap();
    page.click("#login-submit").unwrap();
    let number = hj["number"].as_str().unwrap().to_string();
    page.wait_for("an open long-wait warning", 20, |b| {
        b.js(
            "return [...document.querySelectorAll('#warnings li.open[data-type=wait_alarm]')].map(e => e.innerText).join('|')",
            json!([]),
        )
        .ok()
        .and_then(|v| v.as_str().map(|s| s.contains(&number)))
        .unwrap_or(false)
    })
    .unwrap();
    assert!(page.text("tr[data-window='2']").contains("暂停服务"));
    assert!(page.text("tr[data-window='1']").contains("呼叫中"));
    assert!(page.text("tr[data-window='3']").contains("无人值守"));
    page.click("#csv-window").unwrap();
    page.wait_for("the CSV", 10, |b| {
        b.js("return document.body.dataset.lastCsv || ''", json!([]))
            .ok()
            .and_then(|v| v.as_str().map(|s| s.starts_with("scope,key,")))
            .unwrap_or(false)
    })
    .unwrap();
    let csv = page
        .js("return document.body.dataset.lastCsv", json!([]))
        .unwrap();
    let csv = csv.as_str().unwrap();
    assert!(
        csv.lines().any(|l| l.starts_with("window,1,2,1,0,")),
        "{csv}"
    );
    assert_eq!(page.text("#ratings li[data-level='满意'] .n"), "1");
    assert!(!csv.lines().any(|l| l.starts_with("service,")), "{csv}");
    page.js("window.scrollTo(0, 0)", json!([])).unwrap();
    shot(&page, "web-supervision.png");
}

#[test]
fn wrong_pins_at_the_counter_lock_the_account() {
    let _one = BROWSERS.lock().unwrap_or_else(|p| p.into_inner());
    let (hall, url) = hall(|t| t);
    hall.add_staff("S002", "864200", &["--window", "2:B"]);
    let _d = hall.start();
    let driver = Driver::start().unwrap();
    let counter = driver.browser(1366, 900).unwrap();
    counter.go(&format!("{url}/counter?window=2")).unwrap();
    counter
        .wait_for("the sign-in form", 20, |b| b.visible("#login-staff"))
        .unwrap();
    let code = |b: &Browser| {
        b.js(
            "return document.getElementById('login-message').dataset.code || ''",
            json!([]),
        )
        .unwrap()
    };
    for i in 1..=5 {
        counter
            .js(
                "document.getElementById('login-message').dataset.code = ''",
                json!([]),
            )
            .unwrap();
        counter.type_into("#login-staff", "S002").unwrap();
        counter.type_into("#login-pin", "111111").unwrap();
        counter.click("#login-submit").unwrap();
        let want = if i < 5 {
            "invalid_credentials"
        } else {
            "account_locked"
        };
        counter
            .wait_for(&format!("attempt {i} answered {want}"), 10, |b| {
                code(b) == json!(want)
            })
            .unwrap();
    }
    counter
        .js(
            "document.getElementById('login-message').dataset.code = ''",
            json!([]),
        )
        .unwrap();
    counter.type_into("#login-staff", "S002").unwrap();
    counter.type_into("#login-pin", "864200").unwrap();
    counter.click("#login-submit").unwrap();
    counter
        .wait_for("the right PIN refused while locked", 10, |b| {
            code(b) == json!("account_locked")
        })
        .unwrap();
    assert!(counter.text("#login-message").contains("锁定"));
    assert_eq!(
        counter.blank_glyphs("#login").unwrap(),
        Vec::<String>::new()
    );
    // The language switch: Traditional Chinese, then English, for the same page.
    counter.click(".langs button[data-lang='zh-TW']").unwrap();
    assert_eq!(counter.text("#login-submit"), "登入");
    assert_eq!(
        counter.blank_glyphs("#login").unwrap(),
        Vec::<String>::new()
    );
    counter.click(".langs button[data-lang='en']").unwrap();
    assert_eq!(counter.text("#login-submit"), "Sign in");
    counter.click(".langs button[data-lang='zh-CN']").unwrap();
    assert!(!counter.visible("#desk"));
    shot(&counter, "web-counter-locked.png");
}

#[test]
fn the_board_marks_a_lost_connection_and_recovers_after_a_restart() {
    let _one = BROWSERS.lock().unwrap_or_else(|p| p.into_inner());
    let (hall, url) = hall(|t| t);
    hall.add_staff("S001", "135790", &["--window", "1"]);
    let d = hall.start();
    let driver = Driver::start().unwrap();
    let board = driver.browser(1920, 1080).unwrap();
    board.go(&format!("{url}/board")).unwrap();
    let live = |b: &Browser| b.js("return document.body.dataset.live", json!([])).ok();
    board
        .wait_for("live", 20, |b| live(b) == Some(json!("true")))
        .unwrap();
    drop(d); // SIGKILL: the controller is gone
    board
        .wait_for("the reconnecting mark", 20, |b| {
            live(b) == Some(json!("false")) && b.visible("#offline")
        })
        .unwrap();
    assert!(board.text("#offline").contains("正在重新连接"));
    shot(&board, "web-board-reconnecting.png");

    let _d = hall.start();
    board
        .wait_for("live again", 30, |b| {
            live(b) == Some(json!("true")) && !b.visible("#offline")
        })
        .unwrap();
    issue(&url, "SB");
    let a = sign_in(&url, "S001", "135790", Some(1));
    let (s, b) = act(&url, &a, 1, "call-next", json!({}));
    assert_eq!(s, 200, "{b}");
    board
        .wait_for("the call after the restart", 20, |b| {
            b.text("#latest-number") == "A001"
        })
        .unwrap();
}

#[test]
fn an_unmanned_window_is_a_warning_until_someone_signs_in() {
    let (hall, url) = hall(|t| {
        t.replacen(
            "pause_alarm_minutes = 30",
            "pause_alarm_minutes = 30\nunmanned_alarm_minutes = 0",
            1,
        )
    });
    hall.add_staff("S002", "135791", &["--window", "2"]);
    hall.add_staff("J001", "246801", &["--role", "supervisor"]);
    let _d = hall.start();
    let sup = sign_in(&url, "J001", "246801", None);
    let open_for = |w: u64| {
        supervision(&url, &sup)["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|x| x["type"] == "unmanned_alarm" && x["window"] == w)
            .map(|x| x["open"] == true)
            .collect::<Vec<_>>()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while open_for(2) != vec![true] {
        assert!(std::time::Instant::now() < deadline, "{:?}", open_for(2));
        std::thread::sleep(Duration::from_millis(100));
    }
    sign_in(&url, "S002", "135791", Some(2));
    assert_eq!(open_for(2), vec![false], "signing in closes it");
    assert_eq!(open_for(3), vec![true], "window 3 is still empty");

    let staff = sign_in(&url, "S002", "135791", Some(2));
    let (s, b) = send(
        client()
            .get(format!("{url}/api/v1/supervision"))
            .header("Authorization", &staff)
            .call(),
    );
    assert_eq!((s, b["error"]["code"].as_str()), (403, Some("forbidden")));
    let (s, b) = send(
        client()
            .get(format!("{url}/api/v1/reports/daily.csv?scope=desk"))
            .header("Authorization", &sup)
            .call(),
    );
    assert_eq!((s, b["error"]["field"].as_str()), (422, Some("scope")));
    let (s, _) = send(client().get(format!("{url}/rate/99")).call());
    assert_eq!(s, 404, "no pad for a window that does not exist");
}

#[test]
fn the_caller_transfers_calls_a_number_pauses_and_says_when_the_queue_is_empty() {
    let _one = BROWSERS.lock().unwrap_or_else(|p| p.into_inner());
    let (hall, url) = hall(|t| t);
    hall.add_staff("S003", "135792", &["--window", "3"]);
    let _d = hall.start();
    issue(&url, "MZ");
    issue(&url, "MZ");
    let driver = Driver::start().unwrap();
    let counter = driver.browser(1366, 900).unwrap();
    counter.go(&format!("{url}/counter?window=3")).unwrap();
    counter
        .wait_for("the sign-in form", 20, |b| b.visible("#login-staff"))
        .unwrap();
    counter.type_into("#login-staff", "S003").unwrap();
    counter.type_into("#login-pin", "135792").unwrap();
    counter.click("#login-submit").unwrap();
    counter
        .wait_for("the desk", 20, |b| b.visible("#desk"))
        .unwrap();
    counter.click("#cur-number").unwrap();
    let message = |b: &Browser| b.text("#message");
    let current = |b: &Browser| b.text("#cur-number");

    counter.press("n").unwrap();
    counter
        .wait_for("B001 called", 10, |b| current(b) == "B001")
        .unwrap();
    // T opens the transfer dialog; send B001 to household registration.
    counter.press("t").unwrap();
    counter
        .wait_for("the transfer dialog", 5, |b| b.visible("#dlg-transfer"))
        .unwrap();
    counter
        .js(
            "document.getElementById('transfer-service').value = 'HJ'",
            json!([]),
        )
        .unwrap();
    counter.click("#form-transfer button[type=submit]").unwrap();
    counter
        .wait_for("transferred", 10, |b| {
            message(b).contains("B001 已转移") && current(b) == "暂无"
        })
        .unwrap();

    counter.press("n").unwrap();
    counter
        .wait_for("B002 called", 10, |b| current(b) == "B002")
        .unwrap();
    counter.press("r").unwrap();
    counter
        .wait_for("recalled once", 10, |b| {
            b.text("#cur-detail").contains("已重呼 1/3")
        })
        .unwrap();
    counter.press("x").unwrap();
    counter
        .wait_for("no-show", 10, |b| message(b).contains("B002 已过号"))
        .unwrap();
    // G calls a given number: the citizen who missed the call came back.
    counter.press("g").unwrap();
    counter
        .wait_for("the call dialog", 5, |b| b.visible("#dlg-call"))
        .unwrap();
    counter.type_into("#call-number", "b002").unwrap();
    counter.click("#form-call button[type=submit]").unwrap();
    counter
        .wait_for("B002 called by number", 10, |b| {
            current(b) == "B002" && message(b).contains("已呼叫 B002")
        })
        .unwrap();
    counter.press("s").unwrap();
    counter
        .wait_for("serving", 10, |b| b.text("#cur-state").contains("办理中"))
        .unwrap();
    counter.press("f").unwrap();
    counter
        .wait_for("finished", 10, |b| message(b).contains("B002 已办结"))
        .unwrap();

    counter.press("n").unwrap();
    counter
        .wait_for("the empty queue said plainly", 10, |b| {
            message(b).contains("当前没有等候的办事群众")
                && b.js(
                    "return document.getElementById('message').dataset.code",
                    json!([]),
                )
                .ok()
                    == Some(json!("queue_empty"))
        })
        .unwrap();

    counter.press("p").unwrap();
    counter
        .wait_for("the pause dialog", 5, |b| b.visible("#dlg-pause"))
        .unwrap();
    counter.type_into("#pause-reason", "午休").unwrap();
    counter.click("#form-pause button[type=submit]").unwrap();
    counter
        .wait_for("paused", 10, |b| {
            b.text("#cur-state").contains("暂停服务") && b.visible("#act-resume")
        })
        .unwrap();
    assert_eq!(
        counter
            .js(
                "return document.getElementById('act-call-next').disabled",
                json!([])
            )
            .unwrap(),
        json!(true),
        "no calling while paused"
    );
    counter.press("p").unwrap();
    counter
        .wait_for("resumed", 10, |b| {
            b.text("#cur-state").contains("空闲") && message(b).contains("已恢复叫号")
        })
        .unwrap();
}

#[test]
fn an_admin_adds_and_disables_an_account_on_the_admin_page_and_a_supervisor_cannot() {
    let _one = BROWSERS.lock().unwrap_or_else(|p| p.into_inner());
    let (hall, url) = hall(|t| t);
    hall.add_staff("A001", "135790", &["--role", "admin"]);
    hall.add_staff("J001", "246801", &["--role", "supervisor"]);
    hall.add_staff("S001", "112233", &["--window", "1"]);
    let _d = hall.start();
    let driver = Driver::start().unwrap();
    let page = driver.browser(1366, 900).unwrap();
    page.go(&format!("{url}/admin")).unwrap();
    page.wait_for("the sign-in form", 20, |b| b.visible("#login-staff"))
        .unwrap();
    let login_code = |b: &Browser| {
        b.js(
            "return document.getElementById('login-message').dataset.code || ''",
            json!([]),
        )
        .unwrap()
    };
    page.type_into("#login-staff", "J001").unwrap();
    page.type_into("#login-pin", "246801").unwrap();
    page.click("#login-submit").unwrap();
    page.wait_for("a supervisor to be refused", 10, |b| {
        login_code(b) == json!("admin_required")
    })
    .unwrap();
    assert!(page.text("#login-message").contains("管理员"));
    assert!(!page.visible("#desk"));

    page.type_into("#login-staff", "A001").unwrap();
    page.type_into("#login-pin", "135790").unwrap();
    page.click("#login-submit").unwrap();
    page.wait_for("the account list", 20, |b| {
        b.visible("#accounts tr[data-id='S001']")
    })
    .unwrap();
    // Add with the keyboard alone: type, then Enter submits the form.
    page.type_into("#add-id", "S009").unwrap();
    page.type_into("#add-name", "赵敏").unwrap();
    page.type_into("#add-pin", "246802").unwrap();
    page.type_into("#add-windows", "2:B").unwrap();
    page.press("\u{E007}").unwrap();
    page.wait_for("the new account listed as active", 15, |b| {
        b.js(
            "const r = document.querySelector(\"#accounts tr[data-id='S009']\"); return r ? r.dataset.state : ''",
            json!([]),
        )
        .ok()
            == Some(json!("active"))
    })
    .unwrap();
    let row = page.text("#accounts tr[data-id='S009']");
    assert!(
        row.contains("赵敏") && row.contains("2:B") && row.contains("正常"),
        "{row}"
    );
    assert_eq!(
        page.js("return document.getElementById('add-pin').value", json!([]))
            .unwrap(),
        json!(""),
        "the PIN is never shown back"
    );
    assert!(!page.text("body").contains("246802"));

    page.click("#accounts tr[data-id='S009'] button[data-action='disable']")
        .unwrap();
    page.wait_for("the account listed as disabled", 15, |b| {
        b.js(
            "const r = document.querySelector(\"#accounts tr[data-id='S009']\"); return r ? r.dataset.state : ''",
            json!([]),
        )
        .ok()
            == Some(json!("disabled"))
    })
    .unwrap();
    assert!(page.text("#accounts tr[data-id='S009']").contains("已停用"));
    assert!(page.visible("#accounts tr[data-id='S009'] button[data-action='enable']"));
    assert!(
        !page.visible("#accounts tr[data-id='A001'] button[data-action='disable']"),
        "an admin is not offered to disable their own account"
    );
    assert_eq!(page.blank_glyphs("#desk").unwrap(), Vec::<String>::new());
    page.click(".langs button[data-lang='zh-TW']").unwrap();
    assert_eq!(page.text("#add-submit"), "新增");
    assert_eq!(page.blank_glyphs("#desk").unwrap(), Vec::<String>::new());
    page.click(".langs button[data-lang='en']").unwrap();
    assert!(
        page.text("#accounts tr[data-id='S009']")
            .contains("Disabled")
    );
    page.click(".langs button[data-lang='zh-CN']").unwrap();

    let added = hall.events_of("staff_added");
    let by_web: Vec<_> = added.iter().filter(|e| e["staff"] == "S009").collect();
    assert_eq!(by_web.len(), 1, "{added:?}");
    assert_eq!(
        (&by_web[0]["by"], &by_web[0]["via"]),
        (&json!("A001"), &json!("web"))
    );
    let disabled = hall.events_of("staff_disabled");
    assert_eq!(disabled.len(), 1, "{disabled:?}");
    assert_eq!(
        (&disabled[0]["staff"], &disabled[0]["by"]),
        (&json!("S009"), &json!("A001"))
    );
    shot(&page, "admin.png");
}

#[test]
fn a_kiosk_help_request_shows_on_supervision_and_board_until_acknowledged() {
    let _one = BROWSERS.lock().unwrap_or_else(|p| p.into_inner());
    let (hall, url) = hall(|t| t);
    hall.add_staff("J001", "246801", &["--role", "supervisor"]);
    let _d = hall.start();
    let (s, b) = send(
        client()
            .post(format!("{url}/api/v1/help"))
            .header("X-Kiosk-Id", "lobby-1")
            .send_json(json!({ "screen": "services" })),
    );
    assert_eq!(s, 201, "{b}");

    let driver = Driver::start().unwrap();
    let board = driver.browser(1920, 1080).unwrap();
    board.go(&format!("{url}/board")).unwrap();
    board
        .wait_for("the board's staff line to name the kiosk", 20, |b| {
            b.visible("#staff-line") && b.text("#staff-line").contains("lobby-1")
        })
        .unwrap();
    assert!(board.text("#staff-line").contains("选择事项"));
    shot(&board, "web-board-help.png");

    let page = driver.browser(1600, 1100).unwrap();
    page.go(&format!("{url}/supervision")).unwrap();
    page.wait_for("the sign-in form", 20, |b| b.visible("#login-staff"))
        .unwrap();
    page.type_into("#login-staff", "J001").unwrap();
    page.type_into("#login-pin", "246801").unwrap();
    page.click("#login-submit").unwrap();
    page.wait_for("the open help request", 20, |b| {
        b.visible("#help li.open[data-kiosk='lobby-1'] button.ack")
    })
    .unwrap();
    assert!(page.text("#help li.open").contains("lobby-1"));
    shot(&page, "web-supervision-help.png");
    page.click("#help li.open[data-kiosk='lobby-1'] button.ack")
        .unwrap();
    page.wait_for("the request to leave the supervision page", 20, |b| {
        !b.visible("#help li.open") && b.visible("#help li.none")
    })
    .unwrap();
    board
        .wait_for("the staff line to go", 20, |b| !b.visible("#staff-line"))
        .unwrap();
    let acks = hall.events_of("help_acknowledged");
    assert_eq!(
        acks,
        [json!({"type": "help_acknowledged", "kiosk": "lobby-1", "by": "J001"})]
    );
}
