//! Interoperability with Modbus implementations we did not write, over pseudo-terminals:
//! Debian's `mbpoll` (libmodbus) drives our simulated devices exactly as
//! `docs/protocol.md` shows, and a pymodbus server playing a window screen holds,
//! after our bus task shows a call, exactly the registers and text the map says.
//! Needs the Debian packages mbpoll, socat, python3-pymodbus and python3-serial-asyncio
//! (installed by scripts/test).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hallq_hardware::window::bus::{self, BusConfig, BusDevice, BusEvent};
use hallq_hardware::window::keys::Key;
use hallq_hardware::window::regmap::DeviceKind;
use hallq_hardware::window::sim::{SimBus, SimSpec};
use hallq_hardware::window::{Align, Colour, DisplayContent, DisplayLine, Effect};

/// Kills what it started.
struct Kid(Child);
impl Drop for Kid {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn tool(name: &str, package: &str) -> String {
    for dir in ["/usr/bin", "/bin", "/usr/local/bin"] {
        let p = Path::new(dir).join(name);
        if p.exists() {
            return p.to_string_lossy().into_owned();
        }
    }
    panic!("{name} not found: install the Debian package {package} (scripts/test does)");
}

/// Run mbpoll once against `link` with options, then values to write (after the
/// device, as mbpoll wants them); its standard output.
fn mbpoll(link: &Path, args: &[&str]) -> String {
    let split = args
        .iter()
        .position(|a| *a == "--values")
        .unwrap_or(args.len());
    let out = Command::new(tool("mbpoll", "mbpoll"))
        .args([
            "-m", "rtu", "-b", "9600", "-P", "none", "-0", "-1", "-o", "1",
        ])
        .args(&args[..split])
        .arg(link)
        .args(args.get(split + 1..).unwrap_or(&[]))
        .output()
        .expect("run mbpoll");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "mbpoll {args:?} failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// mbpoll's "[n]: 0xABCD" lines.
fn mbpoll_values(out: &str) -> Vec<u16> {
    out.lines()
        .filter_map(|l| l.trim().strip_prefix('[').and_then(|l| l.split_once("]:")))
        .filter_map(|(_, v)| {
            let v = v.trim();
            v.strip_prefix("0x")
                .map(|h| u16::from_str_radix(h, 16).ok())
                .unwrap_or_else(|| v.parse().ok())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mbpoll_reads_and_writes_our_simulated_devices_as_the_protocol_page_shows() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("ttyWIN0");
    let sim = SimBus::new(&[SimSpec::window_screen(3), SimSpec::rating_keypad(33, 5)]);
    sim.plug(&link).unwrap();
    let l = link.clone();
    let sim2 = sim.clone();
    tokio::task::spawn_blocking(move || {
        // Identity of the window screen.
        let id = mbpoll_values(&mbpoll(
            &l,
            &["-a", "3", "-t", "3:hex", "-r", "0", "-c", "12"],
        ));
        assert_eq!(id, vec![0x4851, 1, 1, 0x3D, 2, 8, 128, 32, 0, 0, 0x0100, 0]);
        // The example write of the protocol page: 请 A001 号, red, centred.
        mbpoll(
            &l,
            &[
                "-a", "3", "-t", "4:hex", "-r", "0x1000", "--values", "0x0001", "0x0100", "0x000A",
                "0xC7EB", "0x2041", "0x3030", "0x3120", "0xBAC5",
            ],
        );
        let lines = sim2.lines(3).unwrap();
        assert_eq!(lines[0].text.as_str(), "请 A001 号");
        assert_eq!(
            (lines[0].colour, lines[0].align),
            (Colour::Red, Align::Centre)
        );
        // Read it back.
        let back = mbpoll_values(&mbpoll(
            &l,
            &["-a", "3", "-t", "4:hex", "-r", "4096", "-c", "8"],
        ));
        assert_eq!(
            back,
            vec![
                0x0001, 0x0100, 0x000A, 0xC7EB, 0x2041, 0x3030, 0x3120, 0xBAC5
            ]
        );
        // Key queue on the rating pad: two presses, read, acknowledge, gone.
        sim2.press(33, Key::Rating(1)).unwrap();
        sim2.press(33, Key::Reason(2)).unwrap();
        let st = mbpoll_values(&mbpoll(
            &l,
            &["-a", "33", "-t", "3:hex", "-r", "0x20", "-c", "6"],
        ));
        assert_eq!(st, vec![2, 2, 1, 0x0101, 2, 0x0202]);
        mbpoll(&l, &["-a", "33", "-t", "4", "-r", "0x100", "--values", "2"]);
        let st = mbpoll_values(&mbpoll(
            &l,
            &["-a", "33", "-t", "3:hex", "-r", "0x20", "-c", "2"],
        ));
        assert_eq!(st, vec![2, 0]);
        // Text that is not GB2312 is refused with exception 3 and the old text stays.
        let out = Command::new(tool("mbpoll", "mbpoll"))
            .args([
                "-m", "rtu", "-b", "9600", "-P", "none", "-0", "-1", "-o", "1", "-a", "3", "-t",
                "4:hex", "-r", "0x1000",
            ])
            .arg(&l)
            .args(["0", "0", "2", "0x8140"])
            .output()
            .unwrap();
        assert!(
            !out.status.success()
                || String::from_utf8_lossy(&out.stderr).contains("Illegal data value")
        );
        assert_eq!(sim2.texts(3).unwrap()[0], "请 A001 号");
    })
    .await
    .unwrap();
}

fn wait_for_path(p: &Path, within: Duration) {
    let t = Instant::now();
    while !p.exists() {
        assert!(t.elapsed() < within, "{} did not appear", p.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[derive(serde::Deserialize, Debug)]
struct Dumped {
    lines: Vec<DumpedLine>,
    brightness: u16,
}
#[derive(serde::Deserialize, Debug)]
struct DumpedLine {
    colour: u16,
    mode: u16,
    length: u16,
    regs: Vec<u16>,
    text: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pymodbus_window_screen_holds_exactly_what_the_register_map_says_after_a_call() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b): (PathBuf, PathBuf) = (dir.path().join("screen"), dir.path().join("host"));
    let _socat = Kid(Command::new(tool("socat", "socat"))
        .arg(format!("pty,raw,echo=0,link={}", a.display()))
        .arg(format!("pty,raw,echo=0,link={}", b.display()))
        .stderr(Stdio::null())
        .spawn()
        .expect("start socat"));
    wait_for_path(&a, Duration::from_secs(5));
    wait_for_path(&b, Duration::from_secs(5));
    let dump = dir.path().join("screen.json");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/pymodbus_screen.py");
    let _py = Kid(Command::new(tool("python3", "python3"))
        .arg(&script)
        .arg(&a)
        .arg("5")
        .arg(&dump)
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start pymodbus"));
    wait_for_path(&dump, Duration::from_secs(10));

    let mut config = BusConfig::new(
        "interop",
        &b.to_string_lossy(),
        vec![BusDevice {
            unit: 5,
            kind: DeviceKind::WindowScreen,
        }],
    );
    config.response_timeout = Duration::from_millis(300);
    let (bus, mut events) = bus::spawn(config);
    let content = DisplayContent {
        lines: vec![
            DisplayLine::new("A001")
                .unwrap()
                .colour(Colour::Red)
                .effect(Effect::Blink)
                .align(Align::Centre),
            DisplayLine::new("请到3号窗口")
                .unwrap()
                .colour(Colour::Green),
        ],
        brightness: 12,
    };
    bus.show(5, content).unwrap();
    let shown = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            match events.recv().await {
                Some(BusEvent::Shown { unit: 5, .. }) => return,
                Some(_) => {}
                None => panic!("bus task stopped"),
            }
        }
    })
    .await;
    assert!(shown.is_ok(), "pymodbus screen never confirmed the writes");
    let d: Dumped = serde_json::from_str(&std::fs::read_to_string(&dump).unwrap()).unwrap();
    // Line 0: COLOUR 1 (red), MODE 0x0101 (centre, blink), LENGTH 4, "A0" "01".
    assert_eq!(d.lines[0].regs, vec![1, 0x0101, 4, 0x4130, 0x3031]);
    assert_eq!(d.lines[0].text, "A001");
    // Line 1: green, steady left, 11 bytes of GB2312 decoded by Python's own codec.
    assert_eq!(
        (d.lines[1].colour, d.lines[1].mode, d.lines[1].length),
        (2, 0, 11)
    );
    assert_eq!(d.lines[1].text, "请到3号窗口");
    assert_eq!(d.brightness, 12);
    bus.shutdown();
}
