//! The controller with in-memory hardware: GPIO buttons, a MAX7219 chain, a USB keypad.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};

use embedded_hal::digital::InputPin;
use embedded_hal::spi::SpiDevice;
use hallq_hardware::window::font::BitmapFont;
use hallq_hardware::window::gpio::GpioKeypad;
use hallq_hardware::window::keys::{CallerKey, Key};
use hallq_hardware::window::max7219::{Geometry, Max7219Display};
use hallq_hardware::window::regmap::DeviceKind;
use hallq_hardware::window::{CounterDisplay, DisplayContent};

use super::keypad::{GpioSource, KeySource, key_place, keypad_link};
use super::matrix::{matrix_link, screen_place};
use super::screens::{call_screen, paused_screen};
use super::{LinkSetup, WindowBuses, drive};
use crate::devices::health::{Devices, Health};
use crate::in_force::InForce;
use embedded_hal::spi::{ErrorKind, ErrorType, Operation};
use hallq_engine::{Command, Role, TicketId};
use std::sync::Mutex;
use std::sync::atomic::AtomicBool;

/// A MAX7219 chain in memory: decodes the SPI words into each module's rows, the
/// way the chips latch them, and can be made to fail like an unplugged cable.
#[derive(Clone)]
struct MemChain {
    modules: usize,
    wide: usize,
    rows: Arc<Mutex<Vec<[u8; 8]>>>,
    broken: Arc<AtomicBool>,
}

impl MemChain {
    fn new(g: Geometry) -> MemChain {
        let modules = g.modules_wide as usize * g.modules_high as usize;
        MemChain {
            modules,
            wide: g.modules_wide as usize,
            rows: Arc::new(Mutex::new(vec![[0; 8]; modules])),
            broken: Arc::new(AtomicBool::new(false)),
        }
    }
    /// Dots of text line `n` (16 rows), as strings of '#' and '.'.
    fn line(&self, n: usize) -> Vec<String> {
        let rows = self.rows.lock().unwrap();
        (n * 16..n * 16 + 16)
            .map(|y| {
                (0..self.wide * 8)
                    .map(|x| {
                        let m = (y / 8) * self.wide + x / 8;
                        if rows[m][y % 8] >> (7 - x % 8) & 1 == 1 {
                            '#'
                        } else {
                            '.'
                        }
                    })
                    .collect()
            })
            .collect()
    }
}

#[derive(Debug)]
struct Unplugged;
impl embedded_hal::spi::Error for Unplugged {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Other
    }
}
impl ErrorType for MemChain {
    type Error = Unplugged;
}
impl SpiDevice for MemChain {
    fn transaction(&mut self, ops: &mut [Operation<'_, u8>]) -> Result<(), Unplugged> {
        if self.broken.load(Ordering::SeqCst) {
            return Err(Unplugged);
        }
        let mut rows = self.rows.lock().unwrap();
        for op in ops {
            if let Operation::Write(buf) = op {
                // The first word shifted in ends in the last module of the chain.
                for (i, w) in buf.chunks(2).enumerate() {
                    let m = self.modules - 1 - i;
                    if let [reg @ 1..=8, v] = *w {
                        rows[m][reg as usize - 1] = v;
                    }
                }
            }
        }
        Ok(())
    }
}

/// A push button in memory, wired to ground: low while pressed.
#[derive(Clone, Default)]
struct MemButton(Arc<AtomicBool>);
impl embedded_hal::digital::ErrorType for MemButton {
    type Error = core::convert::Infallible;
}
impl InputPin for MemButton {
    fn is_high(&mut self) -> Result<bool, Self::Error> {
        Ok(!self.0.load(Ordering::SeqCst))
    }
    fn is_low(&mut self) -> Result<bool, Self::Error> {
        Ok(self.0.load(Ordering::SeqCst))
    }
}
impl MemButton {
    async fn press(&self) {
        self.0.store(true, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(60)).await;
        self.0.store(false, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
}

async fn until(what: &str, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < Duration::from_secs(5), "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn reference(g: Geometry, font: &BitmapFont, c: &DisplayContent, n: usize) -> Vec<String> {
    let chain = MemChain::new(g);
    let mut d = Max7219Display::new(chain.clone(), g, font.clone());
    d.init().unwrap();
    d.show(c).unwrap();
    chain.line(n)
}

struct Rig {
    hall: crate::core::HallCore,
    devices: Devices,
    buses: WindowBuses,
    _dir: tempfile::TempDir,
}

async fn hall_with(links: impl FnOnce(&InForce) -> Vec<LinkSetup>) -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let store = crate::store::Store::open(&dir.path().join("hallq.db")).unwrap();
    let in_force = crate::testing::in_force();
    let (hall, _core) = crate::core::HallCore::start(in_force.clone(), store).unwrap();
    let devices = Devices::load(hall.clone()).await.unwrap();
    let buses = drive(
        links(&in_force),
        String::new(),
        false,
        hall.clone(),
        devices.clone(),
    )
    .await;
    Rig {
        hall,
        devices,
        buses,
        _dir: dir,
    }
}

/// The first service of window 3.
fn service_of_window_3() -> String {
    crate::testing::in_force().setup.windows[2].services[0]
        .code
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gpio_buttons_call_and_rate_and_the_spi_matrix_shows_it() {
    let font = BitmapFont::find().expect("install the Debian package unifont");
    let g = Geometry {
        modules_wide: 8,
        modules_high: 4,
    };
    let chain = MemChain::new(g);
    let (call, rate_good, rate_bad) = (
        MemButton::default(),
        MemButton::default(),
        MemButton::default(),
    );
    let opens = Arc::new(Mutex::new(0));
    let rig = hall_with(|_| {
        let (chain, font, opens) = (chain.clone(), font.clone(), opens.clone());
        let screen = matrix_link(
            "led-w3",
            screen_place(DeviceKind::WindowScreen, Some(3), g),
            move || {
                *opens.lock().unwrap() += 1;
                let mut d = Max7219Display::new(chain.clone(), g, font.clone());
                d.init().map_err(|e| e.to_string())?;
                Ok(d)
            },
        );
        let c = call.clone();
        let caller = keypad_link(
            "caller-w3",
            key_place(DeviceKind::CallerKeypad, Some(3), &None, None, 60),
            move || {
                Ok(GpioSource::new(GpioKeypad::new(
                    vec![(c.clone(), Key::Function(CallerKey::CallNext))],
                    Duration::from_millis(20),
                )))
            },
        );
        let (good, bad) = (rate_good.clone(), rate_bad.clone());
        let rating = keypad_link(
            "rate-w3",
            key_place(DeviceKind::RatingKeypad, Some(3), &None, Some(3), 60),
            move || {
                Ok(GpioSource::new(GpioKeypad::new(
                    vec![
                        (good.clone(), Key::Rating(1)),
                        (bad.clone(), Key::Rating(3)),
                    ],
                    Duration::from_millis(20),
                )))
            },
        );
        vec![screen, caller, rating]
    })
    .await;
    let hall = &rig.hall;
    hall.execute(Command::SignIn {
        window: 3,
        staff: "B001".into(),
        role: Role::A,
    })
    .await
    .unwrap();
    let service = service_of_window_3();
    hall.execute(crate::testing::issue(&service)).await.unwrap();

    // The caller's button calls as the staff signed in; the matrix shows the number.
    call.press().await;
    let number = loop {
        let n = hall
            .query(|e, _| {
                e.windows()[&3]
                    .current
                    .and_then(|t| e.ticket(t))
                    .map(|t| (t.id, t.number.clone()))
            })
            .await
            .unwrap();
        if let Some(n) = n {
            break n;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let want = reference(g, &font, &call_screen(&number.1, 3), 0);
    assert!(want.iter().any(|r| r.contains('#')), "the number has dots");
    // Line 0 blinks: wait for its lit phase.
    until("the number on the matrix", || chain.line(0) == want).await;
    let staff = hall
        .query(move |e, _| e.ticket(number.0).and_then(|t| t.staff.clone()))
        .await
        .unwrap();
    assert_eq!(staff.as_deref(), Some("B001"));

    // Finish arms the three-key pad: its third key is 不满意, stored reason pending.
    for cmd in [
        Command::StartServing {
            window: 3,
            staff: "B001".into(),
        },
        Command::Finish {
            window: 3,
            staff: "B001".into(),
            case_no: None,
        },
    ] {
        hall.execute(cmd).await.unwrap();
    }
    rate_bad.press().await;
    let rated = |id: TicketId| {
        let hall = hall.clone();
        async move {
            hall.query(move |e, _| {
                e.rating(id)
                    .map(|r| (r.level.name().to_string(), r.reason_pending))
            })
            .await
            .unwrap()
        }
    };
    let t = Instant::now();
    while rated(number.0).await.is_none() {
        assert!(t.elapsed() < Duration::from_secs(5), "no rating");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(rated(number.0).await, Some(("不满意".into(), true)));
    // A second press within the window replaces it.
    rate_good.press().await;
    until("the replaced rating", || {
        futures_lite(rated(number.0)) == Some(("满意".into(), false))
    })
    .await;

    // The SPI cable fails: offline; it comes back: the matrix is redrawn.
    chain.broken.store(true, Ordering::SeqCst);
    hall.execute(Command::Pause {
        window: 3,
        staff: "B001".into(),
        reason: "test".into(),
    })
    .await
    .unwrap();
    let led = |d: &Devices| {
        d.snapshot()
            .into_iter()
            .find(|s| s.device == "led-w3")
            .map(|s| s.health)
    };
    until(
        "the offline fault",
        || matches!(led(&rig.devices), Some(Health::Fault { ref code, .. }) if code == "offline"),
    )
    .await;
    let paused = reference(g, &font, &paused_screen(3), 0);
    chain.broken.store(false, Ordering::SeqCst);
    until("the paused screen after the cable returns", || {
        chain.line(0) == paused
    })
    .await;
    until("recovered", || led(&rig.devices) == Some(Health::Ok)).await;
    assert!(*opens.lock().unwrap() >= 2, "the chain was reopened");
    rig.buses.shutdown();
}

/// A USB keypad in memory: Linux key events in, decoded by the same keymap (the
/// standard layout plus the section's `keymap`) that the evdev reader uses.
#[cfg(feature = "usb-hid")]
struct MemUsb {
    events: std_mpsc::Receiver<(u16, i32)>,
    map: hallq_hardware::window::usb_hid::UsbKeymap,
}

#[cfg(feature = "usb-hid")]
impl KeySource for MemUsb {
    fn next_keys(&mut self) -> Result<Vec<Key>, String> {
        let (code, value) = self.events.recv().map_err(|_| "unplugged".to_string())?;
        Ok(self.map.decode(code, value).into_iter().collect())
    }
}

#[cfg(feature = "usb-hid")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_usb_keypad_acts_through_its_configured_keymap() {
    use evdev::KeyCode;
    let section: super::keypad_config::UsbKeypadConfig = toml::from_str(
        "device = \"usb-x-event-kbd\"\nkind = \"caller_keypad\"\nwindow = 3\n\
         [keymap]\nKEY_F12 = \"呼叫\"\nKEY_END = \"recall\"\n",
    )
    .unwrap();
    section.check(Some(&[3])).unwrap();
    let (tx, rx) = std_mpsc::channel();
    let mut rx = Some(rx);
    let rig = hall_with(|_| {
        let mut map = hallq_hardware::window::usb_hid::UsbKeymap::default();
        for (code, key) in section.overrides() {
            map.set(code, key);
        }
        let place = key_place(DeviceKind::CallerKeypad, Some(3), &None, None, 60);
        vec![keypad_link("caller-w3", place, move || {
            let events = rx.take().ok_or("unplugged")?;
            Ok(MemUsb {
                events,
                map: map.clone(),
            })
        })]
    })
    .await;
    let hall = &rig.hall;
    hall.execute(Command::SignIn {
        window: 3,
        staff: "B001".into(),
        role: Role::A,
    })
    .await
    .unwrap();
    let service = service_of_window_3();
    for _ in 0..2 {
        hall.execute(crate::testing::issue(&service)).await.unwrap();
    }
    let current = || {
        futures_lite(hall.query(|e, _| {
            e.windows()[&3]
                .current
                .and_then(|t| e.ticket(t))
                .map(|t| (t.number.clone(), t.recalls))
        }))
        .unwrap()
    };
    // F12 was made 呼叫; auto-repeat (2) and release (0) are not presses.
    for value in [1, 2, 2, 0] {
        tx.send((KeyCode::KEY_F12.code(), value)).unwrap();
    }
    until("a call from F12", || current().is_some()).await;
    let first = current().unwrap().0;
    // End is 完成 in the standard layout, recall here.
    tx.send((KeyCode::KEY_END.code(), 1)).unwrap();
    until("the recall", || current() == Some((first.clone(), 1))).await;
    // - is 弃号; then typed digits and Enter call a given number: the second ticket.
    let second = format!("{}2", &first[..first.len() - 1]);
    for k in [KeyCode::KEY_KPMINUS, KeyCode::KEY_KP2, KeyCode::KEY_KPENTER] {
        tx.send((k.code(), 1)).unwrap();
    }
    until("the typed call", || {
        current().is_some_and(|c| c.0 == second)
    })
    .await;
    rig.buses.shutdown();
}

/// Run a small future to completion from a synchronous closure (the test's polls).
fn futures_lite<F: std::future::Future>(f: F) -> F::Output {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(f))
}
