//! The kiosk driven through its flows as a citizen would: taps at the buttons on screen,
//! the real `hallq` controller answering over HTTP, the software renderer drawing every
//! screen. Assertions read what is shown (labels, the adapter's properties) and pixels
//! (Chinese text must leave ink, never blank boxes). Screenshots of every screen land in
//! the target dir, and in `docs/screens/` when `HALLQ_SCREENS=1`.

use std::path::PathBuf;
use std::time::Duration;

use hallq_kiosk::catalogue::Language;
use hallq_kiosk::client::Endpoint;
use hallq_kiosk::headless::{Area, Frame, Screen};
use hallq_kiosk::{App, Kiosk, KioskLogic, Screen as Page, Settings};
use hallq_tests::{Hall, client, send};
use i_slint_backend_testing::{AccessibleRole, ElementHandle, ElementRoot};
use slint::{ComponentHandle, Model};

const PORTRAIT: (u32, u32) = (1080, 1920);
const LANDSCAPE: (u32, u32) = (1920, 1080);
const WAIT: Duration = Duration::from_secs(10);
/// The lowest a control may be, in pixels: about 25 mm on a 21.5" 1080p panel, well
/// above the 15 mm touch target.
const MIN_TOUCH: f32 = 100.0;

/// A controller, a kiosk on the headless screen, and the means to touch it.
struct Rig {
    screen: Screen,
    logic: KioskLogic,
    url: String,
    _daemon: Option<hallq_tests::Daemon>,
    _hall: Hall,
}

impl Rig {
    fn new() -> Rig {
        Rig::with(PORTRAIT, Duration::from_secs(60))
    }

    fn with(size: (u32, u32), idle: Duration) -> Rig {
        Rig::in_hall(Hall::new(), size, idle)
    }

    /// A kiosk in a hall that offers the near-turn text message.
    fn offering_notices() -> Rig {
        Rig::in_hall(notify_hall(), PORTRAIT, Duration::from_secs(60))
    }

    fn in_hall(hall: Hall, size: (u32, u32), idle: Duration) -> Rig {
        let daemon = hall.start();
        let url = daemon.url.clone();
        let rig = Rig::on(url, size, idle, hall, Some(daemon));
        assert!(
            rig.wait_for(|app| app.global::<Kiosk>().get_services().iter().count() == 6),
            "the catalogue arrives from the controller"
        );
        rig
    }

    fn on(
        url: String,
        size: (u32, u32),
        idle: Duration,
        hall: Hall,
        daemon: Option<hallq_tests::Daemon>,
    ) -> Rig {
        let screen = Screen::install(size.0, size.1).expect("headless platform");
        let app = App::new().expect("kiosk UI");
        hallq_kiosk::fonts::load_cjk(None).expect("a CJK font is installed (fonts-wqy-microhei)");
        let logic = hallq_kiosk::attach(
            app,
            Settings {
                endpoint: Endpoint {
                    base: url.clone(),
                    kiosk_id: "kiosk-test".into(),
                    kiosk_key: None,
                    timeout: Duration::from_secs(3),
                },
                default_language: Language::ZhCn,
                idle_timeout: idle,
                refresh_every: Duration::from_secs(15),
                hall_name: String::new(),
                locked_reason: None,
                utc_offset_minutes: 480,
            },
        );
        Rig {
            screen,
            logic,
            url,
            _daemon: daemon,
            _hall: hall,
        }
    }

    fn app(&self) -> &App {
        self.logic.app()
    }

    fn kiosk(&self) -> Kiosk<'_> {
        self.app().global::<Kiosk>()
    }

    fn wait_for(&self, cond: impl Fn(&App) -> bool) -> bool {
        self.screen.pump_until(WAIT, || cond(self.app()))
    }

    /// The on-screen element with this label (a button's text, a text's content).
    fn find(&self, label: &str) -> Option<ElementHandle> {
        let (w, h) = self.screen.size();
        ElementHandle::find_by_accessible_label(self.app(), label).find(|e| {
            let p = e.absolute_position();
            let s = e.size();
            s.width > 0.0
                && p.x >= 0.0
                && p.y >= 0.0
                && p.x + s.width <= w as f32 + 1.0
                && p.y + s.height <= h as f32 + 1.0
        })
    }

    fn shows(&self, label: &str) -> bool {
        self.find(label).is_some()
    }

    /// Taps the centre of the element labelled `label`, as a finger would.
    fn tap(&self, label: &str) {
        let e = self
            .find(label)
            .unwrap_or_else(|| panic!("no \"{label}\" on screen {:?}", self.kiosk().get_screen()));
        let p = e.absolute_position();
        let s = e.size();
        self.screen.tap(p.x + s.width / 2.0, p.y + s.height / 2.0);
    }

    fn area_of(&self, label: &str) -> Area {
        let e = self
            .find(label)
            .unwrap_or_else(|| panic!("no \"{label}\" on screen"));
        let p = e.absolute_position();
        let s = e.size();
        Area {
            x: p.x.max(0.0) as u32,
            y: p.y.max(0.0) as u32,
            w: s.width as u32,
            h: s.height as u32,
        }
    }

    /// Renders and checks that the text labelled `label` left ink: anti-aliased strokes,
    /// not an empty box.
    fn assert_drawn(&self, frame: &Frame, label: &str) {
        let a = self.area_of(label);
        let ink = frame.ink_in(a);
        let colours = frame.colours_in(a);
        let cells = (a.w * a.h) as usize;
        assert!(
            ink * 100 >= cells && colours >= 8,
            "\"{label}\" looks blank: {ink} ink pixels of {cells}, {colours} colours"
        );
    }

    /// Every control on screen lies inside the window, is at least a touch target high,
    /// and is not under another control; with `texts`, every text lies inside the window
    /// too. A button or line pushed off a short screen fails here, as does a tile
    /// squashed to a sliver.
    fn assert_controls_fit(&self, what: &str, texts: bool) {
        let (w, h) = self.screen.size();
        let (w, h) = (w as f32, h as f32);
        let placed = |role: AccessibleRole| -> Vec<(String, f32, f32, f32, f32)> {
            self.app()
                .root_element()
                .query_descendants()
                .match_accessible_role(role)
                .find_all()
                .into_iter()
                .filter_map(|e| {
                    let s = e.size();
                    let label = e.accessible_label().unwrap_or_default().to_string();
                    if s.width <= 0.0 || s.height <= 0.0 || label.is_empty() {
                        return None; // hidden (a tile of another page) or an empty line
                    }
                    let p = e.absolute_position();
                    Some((label, p.x, p.y, s.width, s.height))
                })
                .collect()
        };
        let inside = |x: f32, y: f32, bw: f32, bh: f32| {
            x >= -0.5 && y >= -0.5 && x + bw <= w + 0.5 && y + bh <= h + 0.5
        };
        let buttons = placed(AccessibleRole::Button);
        assert!(buttons.len() >= 4, "{what}: the top bar's buttons at least");
        for (label, x, y, bw, bh) in &buttons {
            assert!(
                inside(*x, *y, *bw, *bh),
                "{what}: \"{label}\" at ({x}, {y}), {bw}×{bh}, is not all on the {w}×{h} screen"
            );
            assert!(
                *bh >= MIN_TOUCH && *bw >= MIN_TOUCH,
                "{what}: \"{label}\" is {bw}×{bh}, below a touch target"
            );
        }
        for (i, a) in buttons.iter().enumerate() {
            for b in &buttons[i + 1..] {
                let apart = a.1 + a.3 <= b.1 + 0.5
                    || b.1 + b.3 <= a.1 + 0.5
                    || a.2 + a.4 <= b.2 + 0.5
                    || b.2 + b.4 <= a.2 + 0.5;
                assert!(apart, "{what}: \"{}\" and \"{}\" overlap", a.0, b.0);
            }
        }
        if texts {
            for (label, x, y, tw, th) in placed(AccessibleRole::Text) {
                assert!(
                    inside(x, y, tw, th),
                    "{what}: the text \"{label}\" at ({x}, {y}), {tw}×{th}, is not all on the {w}×{h} screen"
                );
            }
        }
    }

    fn screenshot(&self, name: &str) -> Frame {
        let frame = self.screen.render();
        let file = format!("{name}.png");
        let target = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join("screens")
            .join(&file);
        frame.save_png(&target).expect("write screenshot");
        // The docs get the screen gallery; a flow's intermediate shots stay in target.
        if !name.starts_with("test-") && std::env::var_os("HALLQ_SCREENS").is_some_and(|v| v == "1")
        {
            let docs = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../docs/screens")
                .join(&file);
            frame.save_png(&docs).expect("write docs screenshot");
        }
        frame
    }
}

/// A hall that offers the near-turn text message: `[phone] notify` is on by default
/// with an uplink, here to a port where no broker listens (the uplink keeps retrying,
/// which changes nothing for the kiosk).
fn notify_hall() -> Hall {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("port");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    Hall::with_config(&format!(
        "[uplink]\nhost = \"127.0.0.1\"\nport = {port}\nhall_id = \"test-hall\"\n"
    ))
}

/// Takes `n` tickets of `service` over the API, as other citizens would.
fn others_take(url: &str, service: &str, n: usize) {
    for _ in 0..n {
        let (status, body) = send(
            client()
                .post(format!("{url}/api/v1/tickets"))
                .send_json(serde_json::json!({ "service": service })),
        );
        assert_eq!(status, 201, "{body}");
    }
}

/// The id of today's ticket `number`, from its `ticket_issued` event.
fn ticket_id(hall: &Hall, number: &str) -> u64 {
    hall.events_of("ticket_issued")
        .iter()
        .find(|e| e["ticket"]["number"] == number)
        .and_then(|e| e["ticket"]["id"].as_u64())
        .unwrap_or_else(|| panic!("no ticket_issued for {number}"))
}

/// What the kiosk logs, at every level, from the first flow that asks: the mobile
/// number must never be in it.
fn kiosk_log() -> &'static std::sync::Mutex<Vec<u8>> {
    static LOG: std::sync::OnceLock<&'static std::sync::Mutex<Vec<u8>>> =
        std::sync::OnceLock::new();
    LOG.get_or_init(|| {
        let log: &'static std::sync::Mutex<Vec<u8>> =
            Box::leak(Box::new(std::sync::Mutex::new(Vec::new())));
        struct Sink(&'static std::sync::Mutex<Vec<u8>>);
        impl std::io::Write for Sink {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let _ = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || Sink(log))
            .try_init();
        log
    })
}

/// Types `digits` on the pad on screen, key by key.
fn type_on_pad(rig: &Rig, digits: &str) {
    for d in digits.chars() {
        rig.tap(&d.to_string());
    }
}

fn tickets_today(url: &str) -> u32 {
    let (status, body) = send(client().get(format!("{url}/api/v1/overview")).call());
    assert_eq!(status, 200);
    body["services"]
        .as_array()
        .expect("services")
        .iter()
        .map(|s| s["issued"].as_u64().unwrap_or(0) as u32)
        .sum()
}

fn a_citizen_takes_a_ticket_and_sees_a_durable_number_in_chinese() {
    let rig = Rig::new();
    assert_eq!(rig.kiosk().get_screen(), Page::Home);
    assert!(rig.shows("欢迎！请问您要办理什么？"));
    let home = rig.screenshot("test-home");
    rig.assert_drawn(&home, "取号");

    rig.tap("取号");
    assert_eq!(rig.kiosk().get_screen(), Page::Services);
    rig.tap("社会保障");
    assert!(rig.wait_for(|a| a.global::<Kiosk>().get_screen() == Page::Ticket));

    let number = rig.kiosk().get_ticket().number.to_string();
    assert!(number.starts_with('A'), "{number}");
    assert!(rig.shows("您的号码是"));
    assert!(rig.shows(&number));
    assert!(rig.shows("社会保障"));
    assert!(rig.shows("您前面还有 0 人"));
    let frame = rig.screenshot("test-ticket");
    rig.assert_drawn(&frame, "您的号码是");
    rig.assert_drawn(&frame, &number);

    // The ticket is the controller's, committed: it answers for it by number.
    assert_eq!(tickets_today(&rig.url), 1);

    // This hall sends no text messages: nothing offers one.
    assert!(!rig.kiosk().get_notify_offered());
    assert!(!rig.shows("快到我时发短信提醒我"));

    rig.tap("完成");
    assert_eq!(rig.kiosk().get_screen(), Page::Home);
}

/// The near-turn text message: a wrong number is explained on the pad, which keeps it;
/// a right one goes to the controller, and the ticket screen then shows it masked. The
/// controller's events hold only the masked number, and the kiosk logs none of it.
fn a_citizen_asks_for_a_text_when_the_turn_is_near() {
    let log = kiosk_log();
    let rig = Rig::offering_notices();
    others_take(&rig.url, "SB", 4);
    rig.tap("取号");
    rig.tap("社会保障");
    assert!(rig.wait_for(|a| a.global::<Kiosk>().get_screen() == Page::Ticket));
    assert!(rig.shows("您前面还有 4 人"));
    assert!(rig.kiosk().get_notify_offered(), "the hall offers texts");
    assert!(rig.shows("快到我时发短信提醒我"));
    assert!(rig.shows("您前面还剩 3 人时发送"));
    let frame = rig.screenshot("test-ticket-notify-offer");
    rig.assert_drawn(&frame, "快到我时发短信提醒我");
    let number = rig.kiosk().get_ticket().number.to_string();

    rig.tap("快到我时发短信提醒我");
    assert_eq!(rig.kiosk().get_screen(), Page::Notify);
    assert!(rig.shows("请输入您的手机号码，仅用于本次叫号提醒短信。"));
    rig.assert_controls_fit("notify pad", true);

    // Send with nothing typed, too few digits, and 11 digits that are no mobile number:
    // each says why, and the pad keeps what was typed.
    rig.tap("提交");
    assert!(rig.shows("请先输入您的手机号码。"));
    type_on_pad(&rig, "1381234");
    assert!(
        !rig.shows("请先输入您的手机号码。"),
        "typing answers the problem"
    );
    assert_eq!(rig.kiosk().get_notify_input(), "138 1234");
    rig.tap("提交");
    assert!(rig.shows("手机号码是 11 位数字，您输入了 7 位，请核对。"));
    assert_eq!(rig.kiosk().get_screen(), Page::Notify);
    rig.tap("清空");
    type_on_pad(&rig, "12812345678");
    assert!(rig.shows("128 1234 5678"));
    rig.tap("提交");
    let wrong = "这不是手机号码。手机号码以 13 至 19 开头，请核对。";
    assert!(rig.shows(wrong));
    assert_eq!(rig.kiosk().get_screen(), Page::Notify);
    assert_eq!(rig.kiosk().get_notify_input(), "128 1234 5678");
    let frame = rig.screenshot("test-notify-wrong");
    rig.assert_drawn(&frame, wrong);
    rig.assert_controls_fit("notify pad with a problem", true);
    // Nothing reached the controller.
    assert!(rig._hall.events_of("notice_requested").is_empty());

    // Corrected with Delete and Clear, as a citizen would.
    rig.tap("清空");
    type_on_pad(&rig, "1381234567");
    rig.tap("删除");
    type_on_pad(&rig, "78");
    assert_eq!(rig.kiosk().get_notify_input(), "138 1234 5678");
    assert!(rig.shows("138 1234 5678"), "the number is grouped as typed");
    assert_eq!(rig.logic.mobile_digits_held(), 11);
    let frame = rig.screenshot("test-notify");
    rig.assert_drawn(&frame, "138 1234 5678");
    rig.tap("提交");
    assert!(
        rig.wait_for(|a| a.global::<Kiosk>().get_screen() == Page::Ticket),
        "taken: back to the ticket, message: {:?}",
        rig.kiosk().get_message()
    );
    let taken = "您前面还剩 3 人时，我们会发短信到 138****5678。";
    assert!(rig.shows(taken));
    assert!(!rig.shows("快到我时发短信提醒我"), "the offer gives way");
    assert!(rig.shows(&number), "still the citizen's ticket");
    let frame = rig.screenshot("test-ticket-notice");
    rig.assert_drawn(&frame, taken);
    rig.assert_controls_fit("ticket with a notice", true);
    // The typed number is gone from the kiosk; only the mask is shown.
    assert_eq!(rig.logic.mobile_digits_held(), 0);
    assert_eq!(rig.kiosk().get_notify_input(), "");
    assert_eq!(rig.kiosk().get_notice_mobile(), "138****5678");
    assert!(!rig.kiosk().get_notice_sent());
    assert_eq!(rig.kiosk().get_notice_ahead(), 3);

    // In English and 繁體, the same sentence.
    rig.tap("EN");
    assert!(rig.shows("We will text 138****5678 when 3 people are ahead of you."));
    rig.tap("繁體");
    assert!(rig.shows("您前面還剩 3 人時，我們會傳簡訊到 138****5678。"));
    rig.tap("简体");

    // The controller took it for this ticket, and recorded only the mask.
    let id = ticket_id(&rig._hall, &number);
    let events = rig._hall.events_of("notice_requested");
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["ticket"], id, "{events:?}");
    assert_eq!(events[0]["mobile"], "138****5678", "{events:?}");
    let db = rig._hall.database();
    let whole: i64 = db
        .query_row(
            "SELECT count(*) FROM events WHERE payload LIKE '%13812345678%'",
            [],
            |r| r.get(0),
        )
        .expect("query");
    assert_eq!(whole, 0, "no event holds the whole number");
    let (status, body) = send(
        client()
            .get(format!("{}/api/v1/tickets/{id}", rig.url))
            .call(),
    );
    assert_eq!(status, 200, "{body}");
    assert!(!body.to_string().contains("13812345678"), "{body}");

    // Done works as ever, and the notice leaves with the citizen.
    rig.tap("完成");
    assert_eq!(rig.kiosk().get_screen(), Page::Home);
    assert_eq!(rig.kiosk().get_notice_mobile(), "");
    assert!(!rig.logic.ticket_token_held());
    let logged = String::from_utf8_lossy(&log.lock().unwrap()).into_owned();
    assert!(
        logged.contains("near-turn notice taken"),
        "the log is captured:\n{logged}"
    );
    for secret in ["13812345678", "12812345678", "138 1234 5678", "1381234"] {
        assert!(
            !logged.contains(secret),
            "the kiosk logged {secret}:\n{logged}"
        );
    }
}

/// A text asked for when the turn is already near goes at once, and the ticket screen
/// says so. A ticket called at a window while its citizen types is refused in the
/// controller's words: back to the ticket, the offer withdrawn, the number forgotten.
fn a_near_turn_texts_at_once_and_a_called_ticket_is_refused() {
    let hall = notify_hall();
    hall.add_staff("S001", "135790", &["--window", "1"]);
    let rig = Rig::in_hall(hall, PORTRAIT, Duration::from_secs(60));
    rig.tap("取号");
    rig.tap("社会保障");
    assert!(rig.wait_for(|a| a.global::<Kiosk>().get_screen() == Page::Ticket));
    assert!(rig.shows("您前面还有 0 人"));
    let first = rig.kiosk().get_ticket().number.to_string();
    rig.tap("快到我时发短信提醒我");
    type_on_pad(&rig, "13912345678");
    rig.tap("提交");
    assert!(rig.wait_for(|a| !a.global::<Kiosk>().get_notice_mobile().is_empty()));
    assert_eq!(rig.kiosk().get_screen(), Page::Ticket);
    assert!(rig.kiosk().get_notice_sent());
    let gone = "快轮到您了，提醒短信已发送到 139****5678。";
    assert!(rig.shows(gone));
    let frame = rig.screenshot("test-ticket-notice-sent");
    rig.assert_drawn(&frame, gone);
    let near = rig._hall.events_of("near_turn");
    assert_eq!(near.len(), 1, "{near:?}");
    assert_eq!(near[0]["ticket"], ticket_id(&rig._hall, &first), "{near:?}");
    assert!(!near[0].to_string().contains("13912345678"), "{near:?}");
    rig.tap("完成");

    rig.tap("取号");
    rig.tap("社会保障");
    assert!(rig.wait_for(|a| a.global::<Kiosk>().get_screen() == Page::Ticket));
    let number = rig.kiosk().get_ticket().number.to_string();
    assert_ne!(number, first);
    rig.tap("快到我时发短信提醒我");
    type_on_pad(&rig, "13912345678");
    // Window 1 calls this very number (指呼) while the citizen types.
    let bearer = hallq_tests::sign_in(&rig.url, "S001", "135790", Some(1));
    let (status, body) = send(
        client()
            .post(format!("{}/api/v1/windows/1/call", rig.url))
            .header("Authorization", &bearer)
            .send_json(serde_json::json!({ "number": number })),
    );
    assert_eq!(status, 200, "{body}");
    rig.tap("提交");
    assert!(
        rig.wait_for(|a| !a.global::<Kiosk>().get_message().is_empty()),
        "the refusal is said"
    );
    assert_eq!(rig.kiosk().get_screen(), Page::Ticket);
    assert!(rig.shows("此号已叫过或已结束，无需提醒"));
    rig.tap("知道了");
    assert!(!rig.kiosk().get_notify_offered(), "the offer is withdrawn");
    assert!(!rig.shows("快到我时发短信提醒我"));
    assert_eq!(rig.logic.mobile_digits_held(), 0);
    assert_eq!(rig.kiosk().get_notice_mobile(), "");
    assert_eq!(rig._hall.events_of("notice_requested").len(), 1);
}

/// Cancel on the notice's pad: back to the ticket, the offer still there, nothing sent,
/// nothing kept; the offer is optional and Done works without it.
fn cancel_on_the_notice_pad_sends_nothing() {
    let rig = Rig::offering_notices();
    rig.tap("取号");
    rig.tap("户籍办理");
    assert!(rig.wait_for(|a| a.global::<Kiosk>().get_screen() == Page::Ticket));
    rig.tap("快到我时发短信提醒我");
    assert_eq!(rig.kiosk().get_screen(), Page::Notify);
    type_on_pad(&rig, "13912345678");
    assert_eq!(rig.logic.mobile_digits_held(), 11);
    rig.tap("取消");
    assert_eq!(rig.kiosk().get_screen(), Page::Ticket);
    assert_eq!(rig.logic.mobile_digits_held(), 0);
    assert_eq!(rig.kiosk().get_notify_input(), "");
    assert_eq!(rig.kiosk().get_notice_mobile(), "");
    assert!(rig.shows("快到我时发短信提醒我"), "still offered");
    // Opened again, the pad starts empty.
    rig.tap("快到我时发短信提醒我");
    assert_eq!(rig.kiosk().get_notify_input(), "");
    assert!(rig.shows("…"));
    rig.tap("取消");
    rig.screen.pump_until(Duration::from_millis(300), || false);
    assert!(rig._hall.events_of("notice_requested").is_empty());
    rig.tap("完成");
    assert_eq!(rig.kiosk().get_screen(), Page::Home);
    assert_eq!(tickets_today(&rig.url), 1);
}

/// Home, or the idle timeout, in the middle of typing forgets the number and the
/// ticket's token: the adapter holds nothing, and the pad cannot be reopened.
fn leaving_the_notice_pad_forgets_the_number() {
    let rig = Rig::in_hall(notify_hall(), PORTRAIT, Duration::from_secs(60));
    rig.tap("取号");
    rig.tap("民政事务");
    assert!(rig.wait_for(|a| a.global::<Kiosk>().get_screen() == Page::Ticket));
    assert!(rig.logic.ticket_token_held());
    rig.tap("快到我时发短信提醒我");
    type_on_pad(&rig, "1501234");
    assert_eq!(rig.kiosk().get_notify_input(), "150 1234");
    rig.tap("提交");
    assert_eq!(rig.kiosk().get_notify_problem(), "short");
    rig.tap("首页");
    assert_eq!(rig.kiosk().get_screen(), Page::Home);
    let k = rig.kiosk();
    assert_eq!(k.get_notify_input(), "");
    assert_eq!(k.get_notify_problem(), "");
    assert_eq!(k.get_notify_typed(), 0);
    assert_eq!(k.get_notice_mobile(), "");
    assert!(!k.get_notify_offered());
    assert_eq!(rig.logic.mobile_digits_held(), 0);
    assert!(
        !rig.logic.ticket_token_held(),
        "the token is forgotten at home"
    );
    k.invoke_navigate(Page::Notify);
    assert_eq!(k.get_screen(), Page::Home, "no ticket, no pad");

    // The idle timeout on the pad does the same.
    rig.tap("取号");
    rig.tap("民政事务");
    assert!(rig.wait_for(|a| a.global::<Kiosk>().get_screen() == Page::Ticket));
    rig.tap("快到我时发短信提醒我");
    type_on_pad(&rig, "13612345678");
    assert_eq!(rig.logic.mobile_digits_held(), 11);
    rig.screen.advance(Duration::from_secs(61));
    assert_eq!(rig.kiosk().get_screen(), Page::Home);
    assert_eq!(rig.kiosk().get_notify_input(), "");
    assert_eq!(rig.logic.mobile_digits_held(), 0);
    assert!(!rig.logic.ticket_token_held());
    assert!(rig._hall.events_of("notice_requested").is_empty());
}

fn a_double_tap_makes_one_ticket() {
    let rig = Rig::new();
    rig.tap("取号");
    // Two taps before the answer can arrive: the second finds the kiosk busy.
    let e = rig.find("民政事务").expect("tile");
    let p = e.absolute_position();
    let s = e.size();
    rig.screen.tap(p.x + s.width / 2.0, p.y + s.height / 2.0);
    rig.screen.tap(p.x + s.width / 2.0, p.y + s.height / 2.0);
    assert!(rig.wait_for(|a| a.global::<Kiosk>().get_screen() == Page::Ticket));
    rig.screen.pump_until(Duration::from_millis(300), || false);
    assert_eq!(tickets_today(&rig.url), 1);
}

fn a_guide_opens_and_its_checklist_is_requested() {
    let rig = Rig::new();
    rig.tap("办事指南");
    assert_eq!(rig.kiosk().get_screen(), Page::Guides);
    rig.tap("不动产登记");
    assert!(rig.wait_for(|a| a.global::<Kiosk>().get_screen() == Page::Guide));
    let g = rig.kiosk().get_guide();
    assert_eq!(g.code, "BDC");
    assert!(
        g.materials.contains("不动产权属证书（原件）× 1"),
        "{}",
        g.materials
    );
    assert!(rig.shows("申请材料"));
    assert!(rig.shows("设定依据"));
    let frame = rig.screenshot("test-guide");
    rig.assert_drawn(&frame, "申请材料");

    rig.tap("打印一次性告知单");
    assert!(rig.wait_for(|a| !a.global::<Kiosk>().get_checklist_state().is_empty()));
    // No printer is attached in this build; the kiosk says so instead of pretending.
    assert_eq!(rig.kiosk().get_checklist_state(), "unavailable");
    assert!(rig.shows("打印机暂不可用。请拍下材料清单，或请工作人员为您打印。"));

    rig.tap("为此事项取号");
    assert!(rig.wait_for(|a| a.global::<Kiosk>().get_screen() == Page::Ticket));
    assert!(rig.kiosk().get_ticket().number.starts_with('C'));
}

fn sb_on_the_letter_pad_finds_social_insurance() {
    let rig = Rig::new();
    rig.tap("搜索");
    assert_eq!(rig.kiosk().get_screen(), Page::Search);
    rig.tap("S");
    let after_s: Vec<String> = rig
        .kiosk()
        .get_search_results()
        .iter()
        .map(|t| t.code.to_string())
        .collect();
    assert!(
        after_s.contains(&"SB".to_string()) && after_s.contains(&"SW".to_string()),
        "{after_s:?}"
    );
    rig.tap("B");
    assert_eq!(rig.kiosk().get_search_input(), "SB");
    let found: Vec<String> = rig
        .kiosk()
        .get_search_results()
        .iter()
        .map(|t| t.code.to_string())
        .collect();
    assert_eq!(found, ["SB"]);
    assert!(rig.shows("找到 1 项："));
    let frame = rig.screenshot("test-search");
    rig.assert_drawn(&frame, "社会保障");

    // By item code on the number pad.
    rig.tap("数字");
    rig.tap("0");
    rig.tap("3");
    let found: Vec<String> = rig
        .kiosk()
        .get_search_results()
        .iter()
        .map(|t| t.code.to_string())
        .collect();
    assert_eq!(found, ["BDC"]);
    rig.tap("不动产登记");
    assert!(rig.wait_for(|a| a.global::<Kiosk>().get_screen() == Page::Guide));
}

fn an_appointment_checks_in_on_the_number_pad() {
    let rig = Rig::new();
    let slot = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64
        + 10 * 60_000;
    let (status, body) = send(
        client()
            .post(format!("{}/api/v1/appointments", rig.url))
            .send_json(serde_json::json!({ "service": "HJ", "slot_at": slot, "code": "482913" })),
    );
    assert_eq!(status, 201, "{body}");

    rig.tap("预约签到");
    assert_eq!(rig.kiosk().get_screen(), Page::Checkin);
    for d in ["4", "8", "2", "9", "1", "7", "删除", "3"] {
        rig.tap(d);
    }
    assert_eq!(rig.kiosk().get_checkin_code(), "482913");
    rig.screenshot("test-checkin");
    rig.tap("签到取号");
    assert!(rig.wait_for(|a| a.global::<Kiosk>().get_screen() == Page::Ticket));
    assert!(rig.kiosk().get_ticket().appointment);
    assert!(rig.kiosk().get_ticket().number.starts_with('D'));
    assert!(rig.shows("签到成功，您的号码是"));

    // A wrong code is explained, not a crash.
    rig.tap("首页");
    rig.tap("预约签到");
    for d in ["1", "1", "1"] {
        rig.tap(d);
    }
    rig.tap("签到取号");
    assert!(rig.wait_for(|a| !a.global::<Kiosk>().get_message().is_empty()));
    rig.tap("知道了");
    assert!(rig.kiosk().get_message().is_empty());
}

fn the_language_switches_on_every_screen_and_names_follow() {
    let rig = Rig::new();
    rig.tap("EN");
    assert!(rig.shows("Take a ticket"));
    assert!(rig.shows("Welcome. How can we help you?"));
    rig.tap("Take a ticket");
    assert!(rig.shows("Social insurance"));
    let frame = rig.screenshot("test-services-en");
    rig.assert_drawn(&frame, "Social insurance");
    rig.tap("繁體");
    assert!(rig.shows("社會保障"));
    assert!(rig.shows("取號：請選擇業務"));
    let frame = rig.screenshot("test-services-zh-tw");
    rig.assert_drawn(&frame, "社會保障");
    rig.tap("简体");
    assert!(rig.shows("社会保障"));
}

fn elder_mode_is_larger_with_fewer_tiles_and_one_step_at_a_time() {
    let rig = Rig::new();
    rig.tap("取号");
    let normal = rig.area_of("社会保障");
    let visible_normal = [
        "社会保障",
        "民政事务",
        "不动产登记",
        "户籍办理",
        "税务办理",
        "市场主体登记",
    ]
    .iter()
    .filter(|n| rig.shows(n))
    .count();
    rig.tap("关怀模式");
    assert!(rig.kiosk().get_elder());
    let elder = rig.area_of("社会保障");
    assert!(
        elder.w > normal.w,
        "elder tiles are larger: {elder:?} vs {normal:?}"
    );
    assert!(rig.shows("第 1 页，共 2 页"));
    let frame = rig.screenshot("test-services-elder");
    rig.assert_drawn(&frame, "社会保障");
    // Fewer tiles per page: the fourth service is on page two.
    assert_eq!(visible_normal, 6);
    rig.tap("下一页");
    assert_eq!(rig.kiosk().get_page(), 1);

    // The guide, one section at a time.
    rig.tap("首页");
    rig.tap("办事指南");
    rig.tap("社会保障");
    assert!(rig.wait_for(|a| a.global::<Kiosk>().get_screen() == Page::Guide));
    assert!(rig.shows("第 1 步，共 7 步"));
    assert!(rig.shows("办理地点"));
    assert!(!rig.shows("申请材料"));
    rig.tap("下一步");
    assert!(rig.shows("申请材料"));
    assert!(!rig.shows("办理地点"));
    let body = rig.find("申请材料").expect("heading");
    assert!(
        body.size().height >= 48.0,
        "elder text is at least 48 px: {:?}",
        body.size()
    );
}

fn an_idle_kiosk_returns_home_in_the_default_language() {
    let rig = Rig::with(PORTRAIT, Duration::from_secs(60));
    rig.tap("EN");
    rig.tap("Service guide");
    rig.tap("Elder mode");
    assert_eq!(rig.kiosk().get_screen(), Page::Guides);
    rig.screen.advance(Duration::from_secs(30));
    assert_eq!(rig.kiosk().get_screen(), Page::Guides, "not yet idle");
    rig.tap("Next page");
    rig.screen.advance(Duration::from_secs(45));
    assert_eq!(
        rig.kiosk().get_screen(),
        Page::Guides,
        "a touch restarts the wait"
    );
    rig.screen.advance(Duration::from_secs(20));
    assert_eq!(rig.kiosk().get_screen(), Page::Home);
    assert_eq!(rig.kiosk().get_language(), "zh_CN");
    assert!(!rig.kiosk().get_elder());
    assert!(rig.shows("取号"));
}

fn an_unreachable_controller_is_said_in_plain_words_and_the_kiosk_recovers() {
    // A port with nobody listening yet.
    let hall = Hall::new();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("port");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    let url = format!("http://127.0.0.1:{port}");
    let rig = Rig::on(url.clone(), PORTRAIT, Duration::from_secs(60), hall, None);
    assert!(rig.wait_for(|a| !a.global::<Kiosk>().get_online()));
    let banner = "暂时连不上叫号系统，本机正在自动重试。请稍候，或请工作人员帮忙。";
    assert!(rig.shows(banner));
    let frame = rig.screenshot("offline-portrait");
    rig.assert_drawn(&frame, banner);

    // Taking a ticket now explains itself; the UI stays responsive meanwhile.
    rig.tap("取号");
    rig.tap("首页");
    assert_eq!(rig.kiosk().get_screen(), Page::Home);

    // The controller comes up on that port: the kiosk finds it by itself.
    let config = std::fs::read_to_string(&rig._hall.config).expect("config");
    let config = config.replace("127.0.0.1:0", &format!("127.0.0.1:{port}"));
    std::fs::write(&rig._hall.config, config).expect("config");
    let _daemon = rig._hall.start();
    assert!(
        rig.screen
            .pump_until(Duration::from_secs(15), || rig.kiosk().get_online()
                && rig.kiosk().get_services().iter().count() == 6),
        "the kiosk recovers when the controller returns"
    );
    assert!(!rig.shows(banner));
    rig.tap("取号");
    rig.tap("户籍办理");
    assert!(rig.wait_for(|a| a.global::<Kiosk>().get_screen() == Page::Ticket));
}

fn live_events_update_the_queue_figures() {
    let rig = Rig::new();
    assert_eq!(rig.kiosk().get_total_waiting(), 0);
    let (status, _) = send(
        client()
            .post(format!("{}/api/v1/tickets", rig.url))
            .send_json(serde_json::json!({ "service": "SW" })),
    );
    assert_eq!(status, 201);
    // Well inside the 15 s periodic refresh: the event stream woke the kiosk.
    assert!(
        rig.screen
            .pump_until(Duration::from_secs(5), || rig.kiosk().get_total_waiting()
                == 1)
    );
    assert!(rig.shows("当前等候人数：1"));
}

fn a_checklist_and_a_ticket_print_on_the_halls_printer() {
    use hallq_hardware::virtual_printer::{VirtualPrinter, VirtualPrinterHandle};
    use serialport::SerialPort;
    let (master, slave) = serialport::TTYPort::pair().expect("pseudo-terminal");
    let path = slave.name().expect("pty path");
    let printer =
        VirtualPrinterHandle::serve_stream(VirtualPrinter::new(), master).expect("printer");
    let hall = Hall::new();
    let mut text = std::fs::read_to_string(&hall.config).expect("config");
    text.push_str(&format!(
        "\n[printer]\npaper = \"80mm\"\n[printer.transport]\nkind = \"serial\"\npath = {path:?}\nbaud = 9600\n"
    ));
    std::fs::write(&hall.config, text).expect("config");
    let daemon = hall.start();
    let rig = Rig::on(
        daemon.url.clone(),
        PORTRAIT,
        Duration::from_secs(60),
        hall,
        Some(daemon),
    );
    assert!(rig.wait_for(|a| a.global::<Kiosk>().get_services().iter().count() == 6));

    rig.tap("办事指南");
    rig.tap("户籍办理");
    assert!(rig.wait_for(|a| a.global::<Kiosk>().get_screen() == Page::Guide));
    rig.tap("打印一次性告知单");
    assert!(rig.wait_for(|a| !a.global::<Kiosk>().get_checklist_state().is_empty()));
    assert_eq!(rig.kiosk().get_checklist_state(), "printing");
    assert!(rig.shows("告知单正在打印，请在下方取单。"));
    assert!(
        printer.wait_for(WAIT, |p| p.to_text(48).contains("一次性告知单")
            && p.to_text(48).contains("户口簿")),
        "the checklist came out of the printer: {}",
        printer.paper().to_text(48)
    );

    rig.tap("为此事项取号");
    assert!(rig.wait_for(|a| a.global::<Kiosk>().get_screen() == Page::Ticket));
    assert_eq!(rig.kiosk().get_printer_state(), "printing");
    assert!(rig.shows("号票正在打印，请在下方取票。"));
    let number = rig.kiosk().get_ticket().number.to_string();
    assert!(
        printer.wait_for(WAIT, |p| p.to_text(48).contains(&number)),
        "the ticket printed"
    );
    drop(slave);
}

/// The hall server locks the kiosk through the uplink (a real mosquitto, the controller's
/// real downstream commands): the kiosk shows the locked screen with the reason at start,
/// on the stream event, and when a ticket request answers 423; unlocking brings home back.
fn the_hall_servers_lock_shows_its_reason_and_unlocking_returns_home() {
    use hallq_tests::mqtt::{
        Broker, BrokerOptions, HallServer, add_uplink, uplink_section, wait_for,
    };
    let hall = Hall::new();
    let broker = Broker::start(&hall.dir.path().join("broker"), &BrokerOptions::default())
        .expect("mosquitto starts");
    add_uplink(&hall.config, &uplink_section(broker.port, "test-hall"));
    let daemon = hall.start();
    let server = HallServer::connect(broker.port, "test-hall");
    wait_for(Duration::from_secs(60), "the uplink to connect", || {
        let out = hall.cli(&["uplink", "status", "--json", "--api", &daemon.url]);
        let status: serde_json::Value = serde_json::from_str(&out).ok()?;
        (status["link"]["state"] == "connected").then_some(())
    });
    let command = |id: &str, body: serde_json::Value| {
        let mut body = body;
        body["id"] = id.into();
        let ack = server.request("cmd", &body, "id", &serde_json::json!(id));
        assert_eq!(ack["ok"], true, "{ack}");
    };
    let reason = "系统维护，请到服务台取号";

    // Locked before the kiosk starts: it opens on the locked screen.
    command(
        "lock-1",
        serde_json::json!({"command": "lock_kiosk", "message": reason}),
    );
    let url = daemon.url.clone();
    let rig = Rig::on(url, PORTRAIT, Duration::from_secs(60), hall, Some(daemon));
    assert!(
        rig.wait_for(|a| a.global::<Kiosk>().get_screen() == Page::Closed),
        "the kiosk starts on the locked screen"
    );
    assert!(rig.kiosk().get_locked());
    assert!(rig.shows("本机暂停取号"));
    assert!(rig.shows(reason));
    let frame = rig.screenshot("test-locked");
    rig.assert_drawn(&frame, "本机暂停取号");
    rig.assert_drawn(&frame, reason);
    // Home leads back to the locked screen; the guides stay open to read.
    rig.tap("办事指南");
    assert_eq!(rig.kiosk().get_screen(), Page::Guides);
    rig.tap("首页");
    assert_eq!(rig.kiosk().get_screen(), Page::Closed);
    // In every language; the reason is the hall server's own words.
    rig.tap("EN");
    assert!(rig.shows("Tickets are not being issued here right now"));
    assert!(rig.shows(reason));
    rig.tap("繁體");
    assert!(rig.shows("本機暫停取號"));
    let frame = rig.screenshot("test-locked-zh-tw");
    rig.assert_drawn(&frame, "本機暫停取號");
    rig.tap("简体");

    // Unlocked: home again, by the stream, well inside the 15 s periodic refresh.
    command("unlock-1", serde_json::json!({"command": "unlock_kiosk"}));
    assert!(
        rig.screen
            .pump_until(Duration::from_secs(5), || rig.kiosk().get_screen()
                == Page::Home),
        "unlocking returns home"
    );
    assert!(!rig.kiosk().get_locked());
    assert!(rig.shows("取号"));

    // Locked while a citizen chooses a service: the stream's event shows the lock at once.
    rig.tap("取号");
    assert_eq!(rig.kiosk().get_screen(), Page::Services);
    let reason2 = "网络故障，暂停取号";
    command(
        "lock-2",
        serde_json::json!({"command": "lock_kiosk", "message": reason2}),
    );
    assert!(
        rig.screen
            .pump_until(Duration::from_secs(5), || rig.kiosk().get_screen()
                == Page::Closed),
        "the stream's lock event shows the locked screen"
    );
    assert!(rig.shows(reason2));
    command("unlock-2", serde_json::json!({"command": "unlock_kiosk"}));
    assert!(
        rig.screen
            .pump_until(Duration::from_secs(5), || rig.kiosk().get_screen()
                == Page::Home)
    );

    // A citizen reading a guide is left to read; asking for a ticket then meets the 423,
    // and the kiosk shows the lock's reason instead of an error.
    rig.tap("办事指南");
    rig.tap("户籍办理");
    assert!(rig.wait_for(|a| a.global::<Kiosk>().get_screen() == Page::Guide));
    command(
        "lock-3",
        serde_json::json!({"command": "lock_kiosk", "message": reason}),
    );
    assert!(
        rig.screen
            .pump_until(Duration::from_secs(5), || rig.kiosk().get_locked())
    );
    assert_eq!(rig.kiosk().get_screen(), Page::Guide);
    rig.tap("为此事项取号");
    assert!(rig.wait_for(|a| a.global::<Kiosk>().get_screen() == Page::Closed));
    assert!(rig.kiosk().get_message().is_empty(), "no error box");
    assert!(rig.shows(reason));
    assert_eq!(tickets_today(&rig.url), 0, "no ticket while locked");
    command("unlock-3", serde_json::json!({"command": "unlock_kiosk"}));
    assert!(
        rig.screen
            .pump_until(Duration::from_secs(5), || rig.kiosk().get_screen()
                == Page::Home)
    );
    rig.tap("取号");
    rig.tap("户籍办理");
    assert!(rig.wait_for(|a| a.global::<Kiosk>().get_screen() == Page::Ticket));
    assert_eq!(tickets_today(&rig.url), 1);
    drop(server);
    drop(broker);
}

/// A hall closed for the day says so on home, before anyone picks a service: the big
/// ticket entry carries the reason and leads to the closed screen, in every language;
/// the guides stay open, and no request reaches the controller.
fn a_closed_hall_says_why_on_home_before_a_service_is_picked() {
    let hall = Hall::closed_today();
    let daemon = hall.start();
    let url = daemon.url.clone();
    let rig = Rig::on(url, PORTRAIT, Duration::from_secs(60), hall, Some(daemon));
    let reason = "今天是法定节假日，大厅不办理业务。";
    assert!(
        rig.wait_for(|a| !a.global::<Kiosk>().get_open()),
        "the overview's hours arrive"
    );
    assert_eq!(rig.kiosk().get_screen(), Page::Home);
    assert!(rig.shows(reason), "home's ticket entry says why");
    let frame = rig.screenshot("test-closed-home");
    rig.assert_drawn(&frame, reason);

    rig.tap("取号");
    assert_eq!(rig.kiosk().get_screen(), Page::Closed);
    assert!(!rig.kiosk().get_locked());
    assert!(rig.shows("现在暂停取号"));
    assert!(rig.shows(reason));
    let frame = rig.screenshot("test-closed-hours");
    rig.assert_drawn(&frame, "现在暂停取号");
    rig.assert_drawn(&frame, reason);

    rig.tap("EN");
    assert!(rig.shows("Tickets are not being issued now"));
    assert!(rig.shows("The hall is closed today for a public holiday."));
    rig.tap("繁體");
    assert!(rig.shows("現在暫停取號"));
    assert!(rig.shows("今天是法定節假日，大廳不辦理業務。"));
    rig.tap("简体");

    // The guides are still there to read.
    rig.tap("办事指南");
    assert_eq!(rig.kiosk().get_screen(), Page::Guides);
    rig.tap("首页");
    assert_eq!(rig.kiosk().get_screen(), Page::Home);
    assert_eq!(tickets_today(&rig.url), 0);
}

/// The notice's pad for a new ticket of 户籍办理 (HJ), through the kiosk's callbacks.
fn open_notify_pad(r: &Rig) {
    r.kiosk().invoke_navigate(Page::Services);
    r.kiosk().invoke_take_ticket("HJ".into());
    assert!(r.wait_for(|a| a.global::<Kiosk>().get_screen() == Page::Ticket));
    assert!(r.kiosk().get_notify_offered(), "the hall offers texts");
    r.kiosk().invoke_navigate(Page::Notify);
    assert_eq!(r.kiosk().get_screen(), Page::Notify);
}

fn type_by_callback(r: &Rig, digits: &str) {
    for d in digits.chars() {
        r.kiosk().invoke_notify_key(d.to_string().into());
    }
}

/// Every screen in portrait, landscape and elder mode, for `docs/screens/` and the README.
fn every_screen_renders_in_both_orientations_and_elder_mode() {
    // A hall that offers texts, so that the ticket screen shows its offer.
    let rig = Rig::offering_notices();
    // One waiting ticket so that figures are not all zero, and four ahead of every 户籍
    // ticket the kiosk takes, so that its text is still to come.
    others_take(&rig.url, "BDC", 1);
    rig.screen.pump_until(Duration::from_secs(3), || {
        rig.kiosk().get_total_waiting() == 1
    });
    others_take(&rig.url, "HJ", 4);

    type Step = fn(&Rig);
    let screens: [(&str, Step); 14] = [
        ("home", |_| {}),
        ("services", |r| r.kiosk().invoke_navigate(Page::Services)),
        ("ticket", |r| {
            r.kiosk().invoke_navigate(Page::Services);
            r.kiosk().invoke_take_ticket("SB".into());
            assert!(r.wait_for(|a| a.global::<Kiosk>().get_screen() == Page::Ticket));
        }),
        ("guides", |r| r.kiosk().invoke_navigate(Page::Guides)),
        ("guide", |r| {
            r.kiosk().invoke_open_guide("SB".into());
            assert!(r.wait_for(|a| a.global::<Kiosk>().get_screen() == Page::Guide));
        }),
        ("search", |r| {
            r.kiosk().invoke_navigate(Page::Search);
            r.kiosk().invoke_search_key("S".into());
            r.kiosk().invoke_search_key("B".into());
        }),
        ("checkin", |r| {
            r.kiosk().invoke_navigate(Page::Checkin);
            for d in ["4", "8", "2", "9"] {
                r.kiosk().invoke_checkin_key(d.into());
            }
        }),
        ("status", |r| r.kiosk().invoke_navigate(Page::Status)),
        ("closed", |r| {
            r.kiosk().set_locked(false);
            r.kiosk()
                .set_closed_reason("今日办公时间已结束（9:00-12:00，13:30-17:30）".into());
            r.kiosk().set_screen(Page::Closed);
        }),
        ("locked", |r| {
            r.kiosk().set_locked(true);
            r.kiosk()
                .set_closed_reason("系统维护，请到一楼服务台人工取号".into());
            r.kiosk().set_screen(Page::Closed);
        }),
        ("home-closed", |r| {
            r.kiosk().set_locked(false);
            r.kiosk().set_open(false);
            r.kiosk()
                .set_hours_note("现在是午间休息，13:30 恢复取号。".into());
        }),
        ("notify", |r| {
            open_notify_pad(r);
            type_by_callback(r, "13812345678");
        }),
        // A number refused on the pad: checked for fit, not for the README.
        ("test-notify-wrong", |r| {
            open_notify_pad(r);
            type_by_callback(r, "1381234");
            r.kiosk().invoke_send_notice();
            assert_eq!(r.kiosk().get_notify_problem(), "short");
        }),
        ("notice", |r| {
            open_notify_pad(r);
            type_by_callback(r, "13812345678");
            r.kiosk().invoke_send_notice();
            assert!(
                r.wait_for(|a| a.global::<Kiosk>().get_screen() == Page::Ticket
                    && !a.global::<Kiosk>().get_notice_mobile().is_empty()),
                "the notice is taken"
            );
        }),
    ];
    for (elder, suffix) in [(false, ""), (true, "-elder")] {
        for (name, step) in &screens {
            rig.kiosk().invoke_go_home();
            rig.kiosk().set_open(true);
            if rig.kiosk().get_elder() != elder {
                rig.kiosk().invoke_toggle_elder();
            }
            step(&rig);
            rig.screen.pump();
            for (orientation, (w, h)) in [("portrait", PORTRAIT), ("landscape", LANDSCAPE)] {
                rig.screen.resize(w, h);
                rig.screen.pump();
                let shot = format!("{name}-{orientation}{suffix}");
                let frame = rig.screenshot(&shot);
                assert!(
                    frame.colours_in(Area { x: 0, y: 0, w, h }) > 16,
                    "{shot} is not blank"
                );
                // The guide's sections scroll (texts below the fold are meant to be).
                rig.assert_controls_fit(&shot, *name != "guide");
                if *name == "ticket" || *name == "notice" {
                    let done = rig.area_of("完成");
                    assert!(done.y + done.h <= h, "{shot}: Done is on the screen");
                    // Its label is drawn, not just its box: a 34 px "完成" leaves over
                    // a thousand pixels of ink on the button's colour.
                    let ink = frame.ink_in(done);
                    assert!(ink >= 500, "{shot}: Done's label has {ink} ink pixels");
                }
            }
            rig.screen.resize(PORTRAIT.0, PORTRAIT.1);
        }
    }
    // In English too: the longest texts.
    rig.kiosk().invoke_go_home();
    rig.kiosk().invoke_set_language("en".into());
    for elder in [false, true] {
        if rig.kiosk().get_elder() != elder {
            rig.kiosk().invoke_toggle_elder();
        }
        for (name, step) in &screens {
            rig.kiosk().invoke_go_home();
            rig.kiosk().set_open(true);
            step(&rig);
            rig.screen.pump();
            for (orientation, (w, h)) in [("portrait", PORTRAIT), ("landscape", LANDSCAPE)] {
                rig.screen.resize(w, h);
                rig.screen.pump();
                rig.screen.render();
                let what = format!(
                    "{name}-{orientation}-en{}",
                    if elder { "-elder" } else { "" }
                );
                rig.assert_controls_fit(&what, *name != "guide");
            }
            rig.screen.resize(PORTRAIT.0, PORTRAIT.1);
        }
    }
}

fn the_help_button_is_on_every_screen_and_rings_for_staff_once() {
    let rig = Rig::offering_notices();
    let help_open = |url: &str| -> Vec<serde_json::Value> {
        let (s, b) = send(client().get(format!("{url}/api/v1/help")).call());
        assert_eq!(s, 200, "{b}");
        b["help"].as_array().unwrap().clone()
    };
    type Step = fn(&Rig);
    let screens: [(Page, Step); 9] = [
        (Page::Home, |_| {}),
        (Page::Services, |r| {
            r.kiosk().invoke_navigate(Page::Services)
        }),
        (Page::Guides, |r| r.kiosk().invoke_navigate(Page::Guides)),
        (Page::Guide, |r| {
            r.kiosk().invoke_open_guide("SB".into());
            assert!(r.wait_for(|a| a.global::<Kiosk>().get_screen() == Page::Guide));
        }),
        (Page::Search, |r| r.kiosk().invoke_navigate(Page::Search)),
        (Page::Checkin, |r| r.kiosk().invoke_navigate(Page::Checkin)),
        (Page::Status, |r| r.kiosk().invoke_navigate(Page::Status)),
        (Page::Ticket, |r| {
            r.kiosk().invoke_navigate(Page::Services);
            r.kiosk().invoke_take_ticket("SB".into());
            assert!(r.wait_for(|a| a.global::<Kiosk>().get_screen() == Page::Ticket));
        }),
        (Page::Notify, open_notify_pad),
    ];
    for elder in [false, true] {
        for (orientation, (w, h)) in [("portrait", PORTRAIT), ("landscape", LANDSCAPE)] {
            rig.screen.resize(w, h);
            for (page, step) in &screens {
                rig.kiosk().invoke_go_home();
                if rig.kiosk().get_elder() != elder {
                    rig.kiosk().invoke_toggle_elder();
                }
                step(&rig);
                rig.screen.pump();
                assert_eq!(rig.kiosk().get_screen(), *page);
                let a = rig.area_of("求助");
                assert!(
                    a.w as f32 >= MIN_TOUCH && a.h as f32 >= MIN_TOUCH,
                    "{page:?} {orientation} elder={elder}: the help button is {a:?}"
                );
                if elder {
                    assert!(a.w >= 240, "large in elder mode: {a:?}");
                }
            }
        }
    }
    rig.screen.resize(PORTRAIT.0, PORTRAIT.1);
    rig.kiosk().invoke_go_home();
    if rig.kiosk().get_elder() {
        rig.kiosk().invoke_toggle_elder();
    }
    assert!(help_open(&rig.url).is_empty());

    // A tap on the services screen rings for staff and says so.
    rig.kiosk().invoke_navigate(Page::Services);
    rig.screen.pump();
    rig.tap("求助");
    assert!(
        rig.wait_for(|a| a
            .global::<Kiosk>()
            .get_message()
            .contains("已为您呼叫工作人员")),
        "the kiosk says staff are coming: {:?}",
        rig.kiosk().get_message()
    );
    let open = help_open(&rig.url);
    assert_eq!(open.len(), 1, "{open:?}");
    assert_eq!(open[0]["kiosk"], "kiosk-test");
    assert_eq!(open[0]["screen"], "services");
    rig.tap("知道了");
    // Pressing again (impatiently, elsewhere) adds no second request.
    rig.kiosk().invoke_navigate(Page::Guides);
    rig.screen.pump();
    rig.tap("求助");
    assert!(rig.wait_for(|a| {
        a.global::<Kiosk>()
            .get_message()
            .contains("已为您呼叫工作人员")
    }));
    let open = help_open(&rig.url);
    assert_eq!(open.len(), 1, "{open:?}");
    assert_eq!(open[0]["screen"], "services");
}

fn elder_mode_speaks_each_step_through_the_halls_voice() {
    let pack = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../firmware/voice/pack/default");
    let scratch = Hall::new();
    let voice_dir = scratch.dir.path().join("announcements");
    let hall = Hall::with_config(&format!(
        "[voice]\nsink = \"files\"\ndir = {:?}\npace = false\npack = {:?}\n",
        voice_dir.display().to_string(),
        pack.display().to_string()
    ));
    let daemon = hall.start();
    let url = daemon.url.clone();
    let rig = Rig::on(url, PORTRAIT, Duration::from_secs(60), hall, Some(daemon));
    assert!(rig.wait_for(|app| app.global::<Kiosk>().get_services().iter().count() == 6));
    let spoken = || -> Vec<String> {
        let mut files: Vec<_> = std::fs::read_dir(&voice_dir)
            .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
            .unwrap_or_default();
        files.retain(|p: &PathBuf| p.extension().is_some_and(|e| e == "json"));
        files.sort();
        files
            .iter()
            .map(|p| {
                let v: serde_json::Value =
                    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap();
                let m = &v["message"];
                match m["number"].as_str() {
                    Some(n) => format!("{} {n}", m["id"].as_str().unwrap_or("?")),
                    None => m["id"].as_str().unwrap_or("?").to_string(),
                }
            })
            .collect()
    };
    // Standard mode says nothing.
    rig.tap("取号");
    rig.screen.pump_until(Duration::from_secs(1), || false);
    assert!(spoken().is_empty(), "{:?}", spoken());
    rig.tap("首页");
    rig.tap("关怀模式");
    rig.tap("取号");
    rig.tap("社会保障");
    assert!(rig.wait_for(|a| a.global::<Kiosk>().get_screen() == Page::Ticket));
    let number = rig.kiosk().get_ticket().number.to_string();
    assert!(
        rig.screen.pump_until(WAIT, || spoken().len() >= 4),
        "spoken so far: {:?}",
        spoken()
    );
    assert_eq!(
        spoken(),
        [
            "welcome".to_string(),
            "choose_service".to_string(),
            format!("your_number {number}"),
            "take_ticket".to_string(),
        ]
    );
    // In English, the English prompts.
    rig.tap("首页");
    rig.kiosk().invoke_set_language("en".into());
    rig.kiosk().invoke_navigate(Page::Services);
    assert!(
        rig.screen.pump_until(WAIT, || spoken().len() >= 6),
        "{:?}",
        spoken()
    );
    assert_eq!(spoken()[4..], ["welcome", "choose_service_en"]);
}

/// A 46-year-old (born 1980-01-01) and a citizen born 1950-01-01 (75 or older whenever
/// this runs), as the simulated reader holds their cards.
const ADULT: (&str, &str) = ("王小明", "110101198001012024");
const ELDER: (&str, &str) = ("欧阳秀英", "11010119500101101X");

/// 刷身份证取号 on the kiosk: a simulated SAM reader on a pseudo-terminal, the
/// controller reading it, the kiosk following it. A card placed opens the card screen
/// with the holder masked; a service tapped takes the ticket; a second ticket for the
/// same service is refused with the controller's words and the tile already says so; a
/// 75-year-old's card gives a green ticket, said on the ticket screen; the holder's
/// appointment is checked in without its code; a card lifted returns home.
fn a_card_on_the_reader_takes_a_ticket_and_an_elder_goes_green() {
    use hallq_hardware::idcard::sim::SimReaderHandle;
    use hallq_hardware::idcard::text::CardText;
    use serialport::{SerialPort, TTYPort};

    let (master, terminal) = TTYPort::pair().expect("pseudo-terminal pair");
    let path = terminal.name().expect("the terminal side has a path");
    let reader = SimReaderHandle::serve_stream(master).expect("simulated reader starts");
    let rig = Rig::in_hall(
        Hall::with_config(&format!(
            "[[id_reader]]\nid = \"r1\"\nport = {path:?}\nkiosk = \"kiosk-test\"\npoll_ms = 100\n"
        )),
        PORTRAIT,
        Duration::from_secs(60),
    );
    assert!(
        rig.wait_for(|a| a.global::<Kiosk>().get_card_reader()),
        "the kiosk learns it has a reader"
    );
    assert!(rig.shows("带了身份证？请将身份证放在读卡区，即可取号。"));
    let card_on = |r: &Rig| r.wait_for(|a| a.global::<Kiosk>().get_screen() == Page::Card);
    let card_off = |r: &Rig| r.wait_for(|a| a.global::<Kiosk>().get_card().id.is_empty());

    // Placed: the card screen, masked; a service tapped is a ticket.
    reader.place(CardText::specimen(ADULT.0, ADULT.1));
    assert!(card_on(&rig), "a card placed opens the card screen");
    assert!(rig.shows("已读取身份证：王*明"));
    assert!(rig.shows("110***********2024"));
    assert!(!rig.shows("绿色通道：您的号码将优先叫号。"));
    let shot = rig.screenshot("test-card");
    rig.assert_drawn(&shot, "刷身份证取号");
    let before = tickets_today(&rig.url);
    rig.tap("社会保障");
    assert!(rig.wait_for(|a| a.global::<Kiosk>().get_screen() == Page::Ticket));
    let number = rig.kiosk().get_ticket().number.to_string();
    assert!(!rig.kiosk().get_ticket().green);
    assert_eq!(tickets_today(&rig.url), before + 1);
    rig.tap("完成");
    assert_eq!(rig.kiosk().get_screen(), Page::Home);

    // Lifted and placed again: the tile names the ticket held, and a second is refused
    // in the citizen's words.
    reader.remove();
    assert!(card_off(&rig), "a lifted card is forgotten");
    reader.place(CardText::specimen(ADULT.0, ADULT.1));
    assert!(card_on(&rig));
    let held = format!("您已持有 {number} 号");
    assert!(
        rig.wait_for(|_| rig.shows(&held)),
        "the 社会保障 tile says {held}"
    );
    rig.tap("社会保障");
    assert!(rig.wait_for(|a| !a.global::<Kiosk>().get_message().is_empty()));
    let refusal = rig.kiosk().get_message().to_string();
    assert!(
        refusal.contains(&number) && refusal.contains("同一事项每人只能取一个号"),
        "{refusal}"
    );
    assert_eq!(tickets_today(&rig.url), before + 1, "no second ticket");
    rig.tap("知道了");
    // Lifted while the card screen shows: home, and nothing of the card is left on it.
    reader.remove();
    assert!(rig.wait_for(|a| a.global::<Kiosk>().get_screen() == Page::Home));
    assert!(rig.kiosk().get_card().name.is_empty());

    // An elder's card: green, said on the card screen and on the ticket.
    reader.place(CardText::specimen(ELDER.0, ELDER.1));
    assert!(card_on(&rig));
    assert!(rig.shows("已读取身份证：欧**英"));
    assert!(rig.shows("绿色通道：您的号码将优先叫号。"));
    rig.tap("社会保障");
    assert!(rig.wait_for(|a| a.global::<Kiosk>().get_screen() == Page::Ticket));
    assert!(rig.kiosk().get_ticket().green);
    assert!(rig.shows("绿色通道：将优先为您叫号。"));
    rig.screenshot("test-card-green-ticket");
    let green_number = rig.kiosk().get_ticket().number.to_string();
    let issued = rig._hall.events_of("ticket_issued");
    let green = issued
        .iter()
        .find(|e| e["ticket"]["number"] == green_number.as_str())
        .expect("the green ticket's event");
    assert_eq!(green["ticket"]["class"], "green", "{green}");
    assert_eq!(green["ticket"]["green_reason"], "elderly", "{green}");
    assert_eq!(green["ticket"]["channel"], "kiosk-test", "{green}");
    rig.tap("完成");

    // The elder's appointment of today, booked with the number typed, is offered on the
    // card screen and checked in by the card.
    let slot = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64
        + 10 * 60_000;
    let (status, body) = send(client().post(format!("{}/api/v1/appointments", rig.url)).send_json(
        serde_json::json!({ "service": "HJ", "slot_at": slot, "code": "YY2026", "citizen_id": ELDER.1 }),
    ));
    assert_eq!(status, 201, "{body}");
    reader.remove();
    assert!(card_off(&rig));
    reader.place(CardText::specimen(ELDER.0, ELDER.1));
    assert!(card_on(&rig));
    assert!(
        rig.wait_for(|a| !a.global::<Kiosk>().get_card().appointment.is_empty()),
        "the appointment is offered"
    );
    assert!(rig.kiosk().get_card().appointment.contains("户籍"));
    // The card screen with all it can show: green, the appointment, a number held.
    for (elder, suffix) in [(false, ""), (true, "-elder")] {
        if rig.kiosk().get_elder() != elder {
            rig.kiosk().invoke_toggle_elder();
        }
        for (orientation, (w, h)) in [("portrait", PORTRAIT), ("landscape", LANDSCAPE)] {
            rig.screen.resize(w, h);
            rig.screen.pump();
            let shot = format!("card-{orientation}{suffix}");
            let frame = rig.screenshot(&shot);
            assert!(frame.colours_in(Area { x: 0, y: 0, w, h }) > 16, "{shot}");
            rig.assert_controls_fit(&shot, true);
        }
        rig.screen.resize(PORTRAIT.0, PORTRAIT.1);
    }
    if rig.kiosk().get_elder() {
        rig.kiosk().invoke_toggle_elder();
    }
    rig.screen.pump();
    rig.tap("签到我的预约");
    assert!(rig.wait_for(|a| a.global::<Kiosk>().get_screen() == Page::Ticket));
    assert!(rig.kiosk().get_ticket().appointment);
    assert!(rig.shows("签到成功，您的号码是"));
    reader.remove();
    assert!(card_off(&rig));

    // Home invites the card, in every orientation and mode (the docs' home-card shots).
    rig.kiosk().invoke_go_home();
    for (elder, suffix) in [(false, ""), (true, "-elder")] {
        if rig.kiosk().get_elder() != elder {
            rig.kiosk().invoke_toggle_elder();
        }
        for (orientation, (w, h)) in [("portrait", PORTRAIT), ("landscape", LANDSCAPE)] {
            rig.screen.resize(w, h);
            rig.screen.pump();
            let shot = format!("home-card-{orientation}{suffix}");
            rig.screenshot(&shot);
            rig.assert_controls_fit(&shot, true);
        }
        rig.screen.resize(PORTRAIT.0, PORTRAIT.1);
    }
    drop(terminal);
}

/// Slint's platform is process-wide and its UI bound to one thread, so the flows run one
/// after the other on this test's thread, each with its own controller and kiosk.
#[test]
fn the_kiosk_flows() {
    // HALLQ_KIOSK_FLOW=part runs only the flows whose names contain it (while working on one).
    fn run(name: &str, flow: fn()) {
        if let Ok(only) = std::env::var("HALLQ_KIOSK_FLOW")
            && !name.contains(&only)
        {
            return;
        }
        eprintln!("flow: {name}");
        flow();
    }
    run(
        "a_citizen_takes_a_ticket_and_sees_a_durable_number_in_chinese",
        a_citizen_takes_a_ticket_and_sees_a_durable_number_in_chinese,
    );
    run(
        "a_citizen_asks_for_a_text_when_the_turn_is_near",
        a_citizen_asks_for_a_text_when_the_turn_is_near,
    );
    run(
        "a_near_turn_texts_at_once_and_a_called_ticket_is_refused",
        a_near_turn_texts_at_once_and_a_called_ticket_is_refused,
    );
    run(
        "cancel_on_the_notice_pad_sends_nothing",
        cancel_on_the_notice_pad_sends_nothing,
    );
    run(
        "leaving_the_notice_pad_forgets_the_number",
        leaving_the_notice_pad_forgets_the_number,
    );
    run(
        "a_double_tap_makes_one_ticket",
        a_double_tap_makes_one_ticket,
    );
    run(
        "a_guide_opens_and_its_checklist_is_requested",
        a_guide_opens_and_its_checklist_is_requested,
    );
    run(
        "sb_on_the_letter_pad_finds_social_insurance",
        sb_on_the_letter_pad_finds_social_insurance,
    );
    run(
        "an_appointment_checks_in_on_the_number_pad",
        an_appointment_checks_in_on_the_number_pad,
    );
    run(
        "the_language_switches_on_every_screen_and_names_follow",
        the_language_switches_on_every_screen_and_names_follow,
    );
    run(
        "elder_mode_is_larger_with_fewer_tiles_and_one_step_at_a_time",
        elder_mode_is_larger_with_fewer_tiles_and_one_step_at_a_time,
    );
    run(
        "an_idle_kiosk_returns_home_in_the_default_language",
        an_idle_kiosk_returns_home_in_the_default_language,
    );
    run(
        "an_unreachable_controller_is_said_in_plain_words_and_the_kiosk_recovers",
        an_unreachable_controller_is_said_in_plain_words_and_the_kiosk_recovers,
    );
    run(
        "a_checklist_and_a_ticket_print_on_the_halls_printer",
        a_checklist_and_a_ticket_print_on_the_halls_printer,
    );
    run(
        "live_events_update_the_queue_figures",
        live_events_update_the_queue_figures,
    );
    run(
        "the_hall_servers_lock_shows_its_reason_and_unlocking_returns_home",
        the_hall_servers_lock_shows_its_reason_and_unlocking_returns_home,
    );
    run(
        "a_closed_hall_says_why_on_home_before_a_service_is_picked",
        a_closed_hall_says_why_on_home_before_a_service_is_picked,
    );
    run(
        "the_help_button_is_on_every_screen_and_rings_for_staff_once",
        the_help_button_is_on_every_screen_and_rings_for_staff_once,
    );
    run(
        "elder_mode_speaks_each_step_through_the_halls_voice",
        elder_mode_speaks_each_step_through_the_halls_voice,
    );
    run(
        "a_card_on_the_reader_takes_a_ticket_and_an_elder_goes_green",
        a_card_on_the_reader_takes_a_ticket_and_an_elder_goes_green,
    );
    run(
        "every_screen_renders_in_both_orientations_and_elder_mode",
        every_screen_renders_in_both_orientations_and_elder_mode,
    );
}
