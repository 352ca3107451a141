//! The bus task against the simulated bus, over a real pseudo-terminal: calls reach the
//! screens, keys arrive once, devices and the port come and go and screens are redrawn.

use std::path::PathBuf;
use std::time::Duration;

use hallq_hardware::window::bus::{self, BusConfig, BusDevice, BusEvent, BusHandle};
use hallq_hardware::window::keys::{CallerKey, Key};
use hallq_hardware::window::regmap::{DeviceKind, fault};
use hallq_hardware::window::sim::{SimBus, SimSpec};
use hallq_hardware::window::{Colour, DisplayContent, DisplayLine, Effect};
use tokio::sync::mpsc::UnboundedReceiver;

struct Rig {
    _dir: tempfile::TempDir,
    link: PathBuf,
    sim: SimBus,
    bus: BusHandle,
    events: UnboundedReceiver<BusEvent>,
}

const SCREEN: u8 = 3;
const BOARD: u8 = 10;
const CALLER: u8 = 23;
const RATING: u8 = 33;

fn rig() -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("ttyWIN0");
    let sim = SimBus::new(&[
        SimSpec::window_screen(SCREEN),
        SimSpec::hall_board(BOARD),
        SimSpec::caller_keypad(CALLER),
        SimSpec::rating_keypad(RATING, 5),
    ]);
    sim.plug(&link).unwrap();
    let devices = vec![
        BusDevice {
            unit: SCREEN,
            kind: DeviceKind::WindowScreen,
        },
        BusDevice {
            unit: BOARD,
            kind: DeviceKind::HallBoard,
        },
        BusDevice {
            unit: CALLER,
            kind: DeviceKind::CallerKeypad,
        },
        BusDevice {
            unit: RATING,
            kind: DeviceKind::RatingKeypad,
        },
    ];
    let mut config = BusConfig::new("bus0", &link.to_string_lossy(), devices);
    config.key_poll = Duration::from_millis(20);
    config.display_poll = Duration::from_millis(200);
    config.response_timeout = Duration::from_millis(50);
    let (bus, events) = bus::spawn(config);
    Rig {
        _dir: dir,
        link,
        sim,
        bus,
        events,
    }
}

async fn next_matching(
    events: &mut UnboundedReceiver<BusEvent>,
    within: Duration,
    f: impl Fn(&BusEvent) -> bool,
) -> BusEvent {
    tokio::time::timeout(within, async {
        loop {
            let e = events.recv().await.expect("bus task alive");
            if f(&e) {
                return e;
            }
        }
    })
    .await
    .expect("event in time")
}

/// No key press arrives for `wait`.
async fn no_key_within(events: &mut UnboundedReceiver<BusEvent>, wait: Duration) -> bool {
    tokio::time::timeout(wait, async {
        loop {
            if let Some(BusEvent::Key { .. }) = events.recv().await {
                return;
            }
        }
    })
    .await
    .is_err()
}

fn call_screen(number: &str) -> DisplayContent {
    DisplayContent {
        lines: vec![
            DisplayLine::new(number)
                .unwrap()
                .colour(Colour::Red)
                .effect(Effect::Blink),
            DisplayLine::new("正在办理").unwrap().colour(Colour::Green),
        ],
        brightness: 10,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_appears_on_the_window_screen_and_the_hall_board() {
    let mut r = rig();
    r.bus.show(SCREEN, call_screen("A001")).unwrap();
    r.bus
        .show(
            BOARD,
            DisplayContent::from_lines(&["请 A001 号到 3 号窗口办理"]).unwrap(),
        )
        .unwrap();
    assert!(
        r.sim
            .wait_for(Duration::from_secs(3), |s| s.texts(SCREEN).unwrap()
                == ["A001", "正在办理"]
                && s.texts(BOARD).unwrap()[0] == "请 A001 号到 3 号窗口办理")
            .await
    );
    assert_eq!(r.sim.lines(SCREEN).unwrap()[0].effect, Effect::Blink);
    assert_eq!(r.sim.brightness(SCREEN).unwrap(), 10);
    let shown = next_matching(&mut r.events, Duration::from_secs(3), |e| {
        matches!(e, BusEvent::Shown { unit: SCREEN, .. })
    })
    .await;
    let BusEvent::Shown {
        requested,
        written,
        bytes,
        ..
    } = shown
    else {
        unreachable!()
    };
    assert!(written >= requested);
    assert!(bytes > 20);
    // The next call changes only line 0: one write, the status line untouched.
    let before = r.sim.line_writes(SCREEN).unwrap();
    r.bus.show(SCREEN, call_screen("A002")).unwrap();
    assert!(
        r.sim
            .wait_for(Duration::from_secs(2), |s| s.texts(SCREEN).unwrap()[0]
                == "A002")
            .await
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(r.sim.line_writes(SCREEN).unwrap(), before + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_key_press_arrives_once_in_order() {
    let mut r = rig();
    next_matching(&mut r.events, Duration::from_secs(3), |e| {
        matches!(e, BusEvent::Online { unit: CALLER, .. })
    })
    .await;
    let keys = [
        Key::Letter('A'),
        Key::Digit(0),
        Key::Digit(1),
        Key::Digit(2),
        Key::Function(CallerKey::CallTyped),
        Key::Function(CallerKey::CallNext),
    ];
    let mut expected = Vec::new();
    for _ in 0..5 {
        for k in keys {
            let seq = r.sim.press(CALLER, k).unwrap().expect("queue has room");
            expected.push((seq, k));
        }
        // Six presses, faster than the poll; then a pause (the queue holds eight).
        tokio::time::sleep(Duration::from_millis(80)).await;
    }
    let mut got = Vec::new();
    while got.len() < expected.len() {
        if let BusEvent::Key { unit, seq, key } =
            next_matching(&mut r.events, Duration::from_secs(3), |e| {
                matches!(e, BusEvent::Key { .. })
            })
            .await
        {
            assert_eq!(unit, CALLER);
            got.push((seq, key));
        }
    }
    assert_eq!(got, expected);
    // Acknowledged: the device holds nothing, and no duplicate follows.
    assert!(
        r.sim
            .wait_for(Duration::from_secs(1), |s| s.pending_keys(CALLER).unwrap()
                == 0)
            .await
    );
    assert!(
        no_key_within(&mut r.events, Duration::from_millis(300)).await,
        "a press was delivered twice"
    );
    // A rating key from the other pad.
    r.sim.press(RATING, Key::Rating(2)).unwrap();
    let e = next_matching(&mut r.events, Duration::from_secs(2), |e| {
        matches!(e, BusEvent::Key { .. })
    })
    .await;
    assert_eq!(
        e,
        BusEvent::Key {
            unit: RATING,
            seq: 1,
            key: Key::Rating(2)
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rating_pad_keeps_its_press_until_the_controller_has_stored_it() {
    let mut r = rig();
    next_matching(&mut r.events, Duration::from_secs(3), |e| {
        matches!(e, BusEvent::Online { unit: RATING, .. })
    })
    .await;
    let seq = r.sim.press(RATING, Key::Rating(1)).unwrap().expect("room");
    let e = next_matching(&mut r.events, Duration::from_secs(2), |e| {
        matches!(e, BusEvent::Key { .. })
    })
    .await;
    assert_eq!(
        e,
        BusEvent::Key {
            unit: RATING,
            seq,
            key: Key::Rating(1)
        }
    );
    // Many polls later the pad still holds it (a controller dying now would read it
    // again after its restart), and it is not delivered a second time meanwhile.
    assert!(
        no_key_within(&mut r.events, Duration::from_millis(300)).await,
        "a held press was delivered twice"
    );
    assert_eq!(r.sim.pending_keys(RATING).unwrap(), 1);
    // Stored: the next poll lets the pad forget it.
    r.bus.confirm(RATING, seq).unwrap();
    assert!(
        r.sim
            .wait_for(Duration::from_secs(1), |s| s.pending_keys(RATING).unwrap()
                == 0)
            .await,
        "acknowledged once confirmed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_that_drops_off_goes_offline_and_is_redrawn_when_it_returns() {
    let mut r = rig();
    r.bus.show(SCREEN, call_screen("B007")).unwrap();
    assert!(
        r.sim
            .wait_for(Duration::from_secs(3), |s| s.texts(SCREEN).unwrap()[0]
                == "B007")
            .await
    );
    r.sim.set_online(SCREEN, false).unwrap();
    // It loses power while away: it comes back blank with a new boot id.
    r.sim.power_cycle(SCREEN).unwrap();
    r.sim.set_online(SCREEN, false).unwrap();
    let off = next_matching(&mut r.events, Duration::from_secs(3), |e| {
        matches!(e, BusEvent::Offline { unit: SCREEN, .. })
    })
    .await;
    assert!(matches!(off, BusEvent::Offline { ref reason, .. } if reason.contains("no answer")));
    r.sim.set_online(SCREEN, true).unwrap();
    next_matching(&mut r.events, Duration::from_secs(3), |e| {
        matches!(e, BusEvent::Online { unit: SCREEN, .. })
    })
    .await;
    assert!(
        r.sim
            .wait_for(Duration::from_secs(2), |s| s.texts(SCREEN).unwrap()
                == ["B007", "正在办理"])
            .await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_screen_that_refuses_text_is_reported_not_hammered() {
    let mut r = rig();
    next_matching(&mut r.events, Duration::from_secs(3), |e| {
        matches!(e, BusEvent::Online { unit: SCREEN, .. })
    })
    .await;
    r.sim.set_refuse_writes(SCREEN, true).unwrap();
    let before = r.sim.requests();
    r.bus.show(SCREEN, call_screen("A003")).unwrap();
    let e = next_matching(&mut r.events, Duration::from_secs(3), |e| {
        matches!(e, BusEvent::Faults { unit: SCREEN, .. })
    })
    .await;
    assert_eq!(
        e,
        BusEvent::Faults {
            unit: SCREEN,
            bits: fault::TEXT_REJECTED
        }
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Keypad polls every 20 ms for about half a second plus one refused write; a
    // retry loop on a pseudo-terminal would be thousands.
    assert!(
        r.sim.requests() - before < 300,
        "{} requests",
        r.sim.requests() - before
    );
    assert_eq!(r.sim.texts(SCREEN).unwrap()[0], "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_power_cut_on_a_screen_is_noticed_and_redrawn() {
    let r = rig();
    r.bus.show(SCREEN, call_screen("C010")).unwrap();
    assert!(
        r.sim
            .wait_for(Duration::from_secs(3), |s| s.texts(SCREEN).unwrap()[0]
                == "C010")
            .await
    );
    r.sim.power_cycle(SCREEN).unwrap();
    assert_eq!(r.sim.texts(SCREEN).unwrap()[0], "");
    assert!(
        r.sim
            .wait_for(Duration::from_secs(2), |s| s.texts(SCREEN).unwrap()[0]
                == "C010")
            .await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_are_reported_then_cleared() {
    let mut r = rig();
    next_matching(&mut r.events, Duration::from_secs(3), |e| {
        matches!(e, BusEvent::Online { unit: BOARD, .. })
    })
    .await;
    r.sim.raise_fault(BOARD, fault::DISPLAY).unwrap();
    let e = next_matching(&mut r.events, Duration::from_secs(3), |e| {
        matches!(e, BusEvent::Faults { unit: BOARD, .. })
    })
    .await;
    assert_eq!(
        e,
        BusEvent::Faults {
            unit: BOARD,
            bits: fault::DISPLAY
        }
    );
    // The host clears the latch; the fault was momentary, so it reads clear next time.
    let e = next_matching(&mut r.events, Duration::from_secs(3), |e| {
        matches!(e, BusEvent::Faults { unit: BOARD, .. })
    })
    .await;
    assert_eq!(
        e,
        BusEvent::Faults {
            unit: BOARD,
            bits: 0
        }
    );
    assert_eq!(r.sim.faults(BOARD).unwrap() & fault::RESTARTED, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bus_unplugged_and_replugged_gets_every_screen_redrawn_within_two_seconds() {
    let mut r = rig();
    r.bus.show(SCREEN, call_screen("A009")).unwrap();
    r.bus
        .show(
            BOARD,
            DisplayContent::from_lines(&["请 A009 号到 3 号窗口办理", "欢迎光临"]).unwrap(),
        )
        .unwrap();
    assert!(
        r.sim
            .wait_for(Duration::from_secs(3), |s| s.texts(BOARD).unwrap()[1]
                == "欢迎光临"
                && s.texts(SCREEN).unwrap()[0] == "A009")
            .await
    );
    r.sim.unplug();
    next_matching(&mut r.events, Duration::from_secs(3), |e| {
        matches!(e, BusEvent::PortDown { .. })
    })
    .await;
    // While unplugged the screens lose power too, and a new call comes in.
    r.sim.power_cycle(SCREEN).unwrap();
    r.sim.power_cycle(BOARD).unwrap();
    r.bus.show(SCREEN, call_screen("A010")).unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let t0 = std::time::Instant::now();
    r.sim.plug(&r.link).unwrap();
    assert!(
        r.sim
            .wait_for(Duration::from_secs(2), |s| s.texts(SCREEN).unwrap()
                == ["A010", "正在办理"]
                && s.texts(BOARD).unwrap()
                    == ["请 A009 号到 3 号窗口办理", "欢迎光临", "", "", "", ""])
            .await,
        "screens redrawn within 2 s of replug"
    );
    eprintln!("redrawn {:?} after replug", t0.elapsed());
}

#[tokio::test]
async fn a_calls_screen_is_written_before_a_board_with_a_lower_unit_id() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("ttyWIN1");
    // The board has the lower unit id: it must not go first just for that.
    let (board, screen) = (2u8, 7u8);
    let sim = SimBus::new(&[SimSpec::hall_board(board), SimSpec::window_screen(screen)]);
    sim.plug(&link).unwrap();
    let config = BusConfig::new(
        "bus1",
        &link.to_string_lossy(),
        vec![
            BusDevice {
                unit: board,
                kind: DeviceKind::HallBoard,
            },
            BusDevice {
                unit: screen,
                kind: DeviceKind::WindowScreen,
            },
        ],
    );
    let (bus, mut events) = bus::spawn(config);
    for unit in [board, screen] {
        next_matching(
            &mut events,
            Duration::from_secs(5),
            |e| matches!(e, BusEvent::Online { unit: u, .. } if *u == unit),
        )
        .await;
    }
    // Hold the bus task back so both shows are pending when it next looks.
    bus.show(
        screen,
        DisplayContent::from_lines(&["A001", "请到7号窗口"]).unwrap(),
    )
    .unwrap();
    let lines: Vec<String> = (0..6)
        .map(|i| format!("请 A00{i} 号到 7 号窗口办理"))
        .collect();
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    bus.show(board, DisplayContent::from_lines(&refs).unwrap())
        .unwrap();
    assert!(
        sim.wait_for(Duration::from_secs(5), |s| {
            s.texts(board).is_ok_and(|t| t.first() == Some(&lines[0]))
                && s.texts(screen).is_ok_and(|t| t[0] == "A001")
        })
        .await
    );
    let (at_screen, _) = sim.last_line_write(screen).unwrap().unwrap();
    let (at_board, _) = sim.last_line_write(board).unwrap().unwrap();
    assert!(
        at_screen < at_board,
        "the window screen waited for the board's six lines"
    );
    bus.shutdown();
}
