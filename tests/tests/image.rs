//! The appliance, booted: the disk image of `scripts/image --acceptance` in QEMU, with
//! the virtual printer on its first serial port and simulated Modbus window screens on
//! its RS-485 port, a DRM display and a tablet, its API forwarded to 127.0.0.1 only and
//! no other network. One boot checks systemd (multi-user.target, hallq.service active
//! after READY=1, the watchdog restarting a daemon whose heartbeat a test hook stopped,
//! logs in the journal), the kiosk's home screen on the KMS display (the hall's name, the
//! greeting and the 取号 label each with strokes of its colour on its background; saved
//! to docs/screens/image-kiosk-kms.png under CI or HALLQ_SCREENS), a citizen's taps on
//! 取号 and 社会保障 through QMP `input-send-event` on the tablet printing a ticket on the
//! host's printer, window 1 calling that number and its Modbus screen showing it, and a
//! ticket from the host printed too. Then power cuts: QEMU killed at a random moment while
//! tickets are issued, booted again on the same ext4 disk (`cache=none`), and nothing
//! acknowledged may be lost nor any number repeat. `HALLQ_IMAGE_CUTS=N` sets the cuts
//! (default 2; 50 is the long run), `HALLQ_IMAGE_SEED=S` replays a run.
//!
//! KVM is used when `/dev/kvm` opens and the guest gets as far as its serial console
//! within a boot timeout; otherwise (and with `HALLQ_IMAGE_ACCEL=tcg`) software
//! emulation. Figures printed: power-on to first API answer, to the kiosk's first frame.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hallq_hardware::virtual_printer::{VirtualPrinter, VirtualPrinterHandle};
use hallq_hardware::window::sim::{SimBus, SimSpec};
use hallq_tests::dice::{Dice, env_or};
use hallq_tests::{client, send};
use serde_json::{Value, json};
use serialport::{SerialPort, TTYPort};

const KIOSK_KEY: &str = "acceptance-kiosk-key-0001";

/// The virtio-gpu display's mode (`xres`, `yres` below).
const SCREEN: (u32, u32) = (1280, 800);

/// The kiosk's colours (kiosk-ui's palette): the header's blue, the page's grey, the
/// 取号 button's red, white, and the dark text.
const BLUE: [u8; 3] = [31, 78, 140];
const PAGE: [u8; 3] = [238, 242, 247];
const RED: [u8; 3] = [179, 18, 31];
const WHITE: [u8; 3] = [255, 255, 255];
const DARK: [u8; 3] = [23, 32, 46];

/// A text on the 1280×800 KMS frame, measured from the screendump: where it is, the
/// colour behind it and the colour of its strokes.
struct Text {
    what: &'static str,
    x: usize,
    y: usize,
    w: usize,
    h: usize,
    background: [u8; 3],
    ink: [u8; 3],
}

/// The home screen: the hall's name in the header, the greeting, the 取号 button.
const HOME: [Text; 3] = [
    Text {
        what: "青山县政务服务中心 (header)",
        x: 15,
        y: 35,
        w: 310,
        h: 35,
        background: BLUE,
        ink: WHITE,
    },
    Text {
        what: "欢迎！请问您要办理什么？",
        x: 25,
        y: 170,
        w: 615,
        h: 50,
        background: PAGE,
        ink: DARK,
    },
    Text {
        what: "取号 (button label)",
        x: 915,
        y: 290,
        w: 115,
        h: 60,
        background: RED,
        ink: WHITE,
    },
];
/// The services screen after the tap: its heading 取号：请选择业务 where the home screen's
/// greeting was (shorter: the greeting's right half is bare page there).
const SERVICES_HEADING: Text = Text {
    what: "取号：请选择业务",
    x: 25,
    y: 170,
    w: 400,
    h: 50,
    background: PAGE,
    ink: DARK,
};
/// Bare page on the services screen, ink on the home screen (欢迎…'s 什么？).
const GREETING_TAIL: (usize, usize, usize, usize) = (460, 170, 180, 50);
/// Where 取号 is tapped: the middle of its button (690..1255 × 250..428 on the frame).
const TAKE_TICKET: (u32, u32) = (972, 339);

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

fn require(tool: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found,
        "{tool} is missing: ./scripts/test installs it (apt-get install qemu-system-x86 mmdebstrap)"
    );
}

/// Builds (or finds cached) the acceptance image; returns its directory.
fn image() -> PathBuf {
    require("qemu-system-x86_64");
    require("mmdebstrap");
    let mut cmd = Command::new(repo().join("scripts/image"));
    cmd.arg("--acceptance");
    if let Ok(deb) = std::env::var("HALLQ_DEB") {
        cmd.args(["--deb", &deb]);
    }
    let t = Instant::now();
    let out = cmd
        .stderr(Stdio::inherit())
        .output()
        .expect("scripts/image runs");
    assert!(out.status.success(), "scripts/image failed");
    let dir = String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .expect("scripts/image prints its directory")
        .to_string();
    eprintln!("image: {dir} in {:.1} s", t.elapsed().as_secs_f64());
    repo().join(dir)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// What the guest wrote on its serial console, collected by a thread.
#[derive(Clone, Default)]
struct Console(Arc<Mutex<Vec<u8>>>);

impl Console {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
    fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }
    fn since(&self, from: usize) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()[from..]).into_owned()
    }
}

struct Vm {
    child: Child,
    qmp: BufReader<UnixStream>,
    console: Console,
    console_in: UnixStream,
    api: String,
    started: Instant,
    marks: u32,
    accel: &'static str,
}

struct Wiring {
    dir: tempfile::TempDir,
    disk: PathBuf,
    kernel: PathBuf,
    initrd: PathBuf,
    printer_tty: String,
    bus_tty: String,
}

fn connect_retry(path: &Path, within: Duration) -> UnixStream {
    let t = Instant::now();
    loop {
        match UnixStream::connect(path) {
            Ok(s) => return s,
            Err(e) if t.elapsed() > within => panic!("connect {}: {e}", path.display()),
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

impl Vm {
    fn boot(w: &Wiring, accel: &'static str) -> Vm {
        let port = free_port();
        let qmp_path = w.dir.path().join(format!("qmp-{port}.sock"));
        let con_path = w.dir.path().join(format!("con-{port}.sock"));
        let mut cmd = Command::new("qemu-system-x86_64");
        cmd.args(["-nodefaults", "-no-user-config", "-display", "none"])
            .args(["-machine", &format!("q35,accel={accel}")])
            .args(["-m", "1024", "-smp", "2"])
            .arg("-kernel")
            .arg(&w.kernel)
            .arg("-initrd")
            .arg(&w.initrd)
            .args([
                "-append",
                "root=/dev/vda rw console=ttyS0,115200 quiet loglevel=3 systemd.show_status=0",
            ])
            .arg("-drive")
            .arg(format!(
                "file={},if=virtio,format=raw,cache=none,aio=threads",
                w.disk.display()
            ))
            .args(["-device", "virtio-gpu-pci,xres=1280,yres=800"])
            .args(["-device", "virtio-tablet-pci"])
            .args([
                "-nic",
                &format!(
                    "user,model=virtio-net-pci,restrict=on,hostfwd=tcp:127.0.0.1:{port}-:8080"
                ),
            ])
            .arg("-chardev")
            .arg(format!(
                "socket,id=con,path={},server=on,wait=off",
                con_path.display()
            ))
            .args(["-serial", "chardev:con"])
            .arg("-chardev")
            .arg(format!("serial,id=prn,path={}", w.printer_tty))
            .args(["-serial", "chardev:prn"])
            .arg("-chardev")
            .arg(format!("serial,id=bus,path={}", w.bus_tty))
            .args(["-serial", "chardev:bus"])
            .arg("-qmp")
            .arg(format!("unix:{},server=on,wait=off", qmp_path.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        let started = Instant::now();
        let child = cmd.spawn().expect("qemu-system-x86_64 starts");
        let qmp = connect_retry(&qmp_path, Duration::from_secs(10));
        let con = connect_retry(&con_path, Duration::from_secs(10));
        let console = Console::default();
        let sink = console.clone();
        let mut reader = con.try_clone().expect("console clone");
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.0.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        let mut vm = Vm {
            child,
            qmp: BufReader::new(qmp),
            console,
            console_in: con,
            api: format!("http://127.0.0.1:{port}"),
            started,
            marks: 0,
            accel,
        };
        let mut greeting = String::new();
        vm.qmp.read_line(&mut greeting).expect("QMP greeting");
        vm.qmp_cmd("qmp_capabilities", json!({}));
        vm
    }

    fn qmp_cmd(&mut self, cmd: &str, args: Value) -> Value {
        let msg = json!({"execute": cmd, "arguments": args});
        let s = self.qmp.get_mut();
        writeln!(s, "{msg}").expect("QMP write");
        loop {
            let mut line = String::new();
            let n = self.qmp.read_line(&mut line).expect("QMP read");
            assert!(n > 0, "QMP closed during {cmd}");
            let v: Value = serde_json::from_str(&line).expect("QMP JSON");
            if v.get("event").is_some() {
                continue;
            }
            assert!(v.get("error").is_none(), "QMP {cmd}: {v}");
            return v["return"].clone();
        }
    }

    /// Waits for the first answer of the API on the forwarded port.
    fn wait_serving(&mut self, within: Duration) -> Option<Duration> {
        let c = client();
        while self.started.elapsed() < within {
            if let Ok(Some(_)) = self.child.try_wait() {
                panic!("QEMU exited during boot:\n{}", self.console.text());
            }
            if let Ok(r) = c.get(format!("{}/api/v1/overview", self.api)).call()
                && r.status() == 200
            {
                return Some(self.started.elapsed());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        None
    }

    /// Runs a command in the root shell on the serial console; returns its output.
    fn sh(&mut self, cmd: &str, within: Duration) -> String {
        self.marks += 1;
        let mark = self.marks;
        let from = self.console.len();
        // The marker is split in the command so that the echoed line never matches.
        writeln!(self.console_in, "{cmd}; echo \"@@\"\"END{mark} $?@@\"").expect("console write");
        let end = format!("@@END{mark} ");
        let t = Instant::now();
        loop {
            let out = self.console.since(from);
            // The exit code and its closing `@@` may not have arrived yet: the console is a
            // stream and a read can end right after the marker.
            let done = out
                .find(&end)
                .filter(|&i| out[i + end.len()..].contains("@@"));
            if let Some(i) = done {
                // Drop prompts and the echoed command line (before `stty -echo`).
                let body: String = out[..i]
                    .replace("root@hallq:~# ", "")
                    .lines()
                    .filter(|l| !l.contains("\"@@\"\"END"))
                    .map(|l| format!("{l}\n"))
                    .collect();
                let rest = &out[i + end.len()..];
                let code = rest.split("@@").next().unwrap_or("").trim().to_string();
                assert_eq!(code, "0", "`{cmd}` failed ({code}):\n{body}");
                return body.replace('\r', "");
            }
            assert!(
                t.elapsed() < within,
                "`{cmd}` did not finish within {within:?}:\n{out}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until the serial console has a root shell.
    fn wait_shell(&mut self, within: Duration) {
        let t = Instant::now();
        loop {
            if self.console.text().contains("root@hallq") {
                break;
            }
            assert!(
                t.elapsed() < within,
                "no shell on the console:\n{}",
                self.console.text()
            );
            writeln!(self.console_in).ok();
            std::thread::sleep(Duration::from_millis(500));
        }
        // A plain shell: no colours, no line editing surprises.
        self.sh(
            "stty -echo; export TERM=dumb PAGER=cat SYSTEMD_PAGER=cat",
            Duration::from_secs(30),
        );
    }

    /// A finger on the touch screen at `(x, y)` of the 1280×800 display: the tablet's
    /// absolute axes run 0..=32767 over the screen, as libinput scales them back.
    fn tap(&mut self, x: u32, y: u32) {
        let ax =
            |v: u32, span: u32| ((v as u64 * 32768 + span as u64 / 2) / span as u64).min(32767);
        let (ax, ay) = (ax(x, SCREEN.0), ax(y, SCREEN.1));
        self.qmp_cmd(
            "input-send-event",
            json!({"events": [
                {"type": "abs", "data": {"axis": "x", "value": ax}},
                {"type": "abs", "data": {"axis": "y", "value": ay}},
            ]}),
        );
        std::thread::sleep(Duration::from_millis(100));
        for down in [true, false] {
            self.qmp_cmd(
                "input-send-event",
                json!({"events": [{"type": "btn", "data": {"down": down, "button": "left"}}]}),
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Screendumps until `ok` holds for the frame (or `within` passes); the last frame.
    fn screen_until(
        &mut self,
        file: &Path,
        within: Duration,
        ok: impl Fn(&Image) -> bool,
    ) -> (Image, bool) {
        let t = Instant::now();
        loop {
            self.qmp_cmd(
                "screendump",
                json!({"filename": file.display().to_string()}),
            );
            let img = read_ppm(file);
            if ok(&img) {
                return (img, true);
            }
            if t.elapsed() > within {
                return (img, false);
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    fn kill(mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

fn boot_timeout() -> Duration {
    Duration::from_secs(env_or("HALLQ_IMAGE_BOOT_SECS", 300))
}

/// Boots with KVM when it works, else with software emulation.
fn boot_any(w: &Wiring, accel: &mut &'static str) -> (Vm, Duration) {
    if *accel == "kvm" {
        let mut vm = Vm::boot(w, "kvm");
        // A KVM guest that hangs early never writes to its console.
        let t = Instant::now();
        let kvm_secs = Duration::from_secs(env_or("HALLQ_IMAGE_KVM_SECS", 20));
        while vm.console.len() == 0 && t.elapsed() < kvm_secs {
            std::thread::sleep(Duration::from_millis(100));
        }
        let served = if vm.console.len() > 0 {
            vm.wait_serving(boot_timeout())
        } else {
            None
        };
        match served {
            Some(d) => return (vm, d),
            None => {
                eprintln!(
                    "image: the KVM guest did not serve in time; falling back to software emulation\n{}",
                    vm.console.text()
                );
                vm.kill();
                *accel = "tcg";
            }
        }
    }
    let mut vm = Vm::boot(w, "tcg");
    match vm.wait_serving(boot_timeout()) {
        Some(d) => (vm, d),
        None => {
            // Why: the units' state and the daemon's journal, through the console's shell.
            let console = vm.console.text();
            vm.wait_shell(Duration::from_secs(60));
            let why = vm.sh(
                "systemctl --no-pager status hallq.service hallq-kiosk.service systemd-networkd.service | tail -n 40; journalctl -b --no-pager -o short-monotonic -u hallq.service | tail -n 40; ip -br addr",
                Duration::from_secs(120),
            );
            panic!("the guest never served its API:\n{console}\n{why}");
        }
    }
}

fn kvm_opens() -> bool {
    std::env::var("HALLQ_IMAGE_ACCEL").map_or(true, |a| a != "tcg")
        && std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/kvm")
            .is_ok()
}

fn issue(api: &str, key: &str) -> Result<Value, String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(10)))
        .http_status_as_error(false)
        .build()
        .into();
    let r = agent
        .post(format!("{api}/api/v1/tickets"))
        .header("Idempotency-Key", key)
        .header("X-Kiosk-Key", KIOSK_KEY)
        .send_json(json!({"service": "SB"}))
        .map_err(|e| e.to_string())?;
    let status = r.status().as_u16();
    let body: Value = r.into_body().read_json().map_err(|e| e.to_string())?;
    if status == 201 || status == 200 {
        Ok(body["ticket"].clone())
    } else {
        Err(format!("{status} {body}"))
    }
}

#[test]
fn the_appliance_boots_serves_and_survives_power_cuts() {
    // The simulated bus runs on tokio.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let _guard = rt.enter();
    let dir_img = image();
    let work = tempfile::Builder::new()
        .prefix("hallq-vm")
        .tempdir_in(repo().join("target"))
        .expect("work dir on the disk (cache=none needs O_DIRECT)");
    let disk = work.path().join("disk.ext4");
    let cp = Command::new("cp")
        .arg("--sparse=always")
        .arg(dir_img.join("rootfs.ext4"))
        .arg(&disk)
        .status()
        .expect("cp");
    assert!(cp.success(), "copying the image");

    // The printer on a pseudo-terminal, the window bus on another.
    let (master, slave) = TTYPort::pair().expect("pseudo-terminal pair");
    let printer_tty = slave.name().expect("slave path");
    let printer = VirtualPrinterHandle::serve_stream(VirtualPrinter::new(), master)
        .expect("virtual printer starts");
    let bus_link = work.path().join("ttyRS485");
    let sim = SimBus::new(&[
        SimSpec::window_screen(1),
        SimSpec::window_screen(2),
        SimSpec::hall_board(10),
    ]);
    sim.plug(&bus_link).expect("simulated bus");
    let wiring = Wiring {
        disk: disk.clone(),
        kernel: dir_img.join("vmlinuz"),
        initrd: dir_img.join("initrd.img"),
        printer_tty,
        bus_tty: bus_link.display().to_string(),
        dir: work,
    };

    let mut accel: &'static str = if kvm_opens() { "kvm" } else { "tcg" };
    let (mut vm, to_serving) = boot_any(&wiring, &mut accel);
    eprintln!(
        "image [{}]: power-on to first API answer {:.1} s",
        vm.accel,
        to_serving.as_secs_f64()
    );
    vm.wait_shell(Duration::from_secs(120));
    let long = Duration::from_secs(120);

    // systemd: the system is up, hallq is active (Type=notify: only after READY=1).
    let state = vm.sh("systemctl is-active multi-user.target", long);
    assert_eq!(state.trim(), "active", "{state}");
    let show = vm.sh(
        "systemctl show hallq.service -p Type -p ActiveState -p SubState -p WatchdogUSec -p NRestarts -p MainPID",
        long,
    );
    for want in [
        "Type=notify",
        "ActiveState=active",
        "SubState=running",
        "WatchdogUSec=6s",
        "NRestarts=0",
    ] {
        assert!(show.contains(want), "hallq.service lacks {want}:\n{show}");
    }
    let pid_of = |s: &str| -> String {
        s.lines()
            .find_map(|l| l.strip_prefix("MainPID="))
            .unwrap_or("")
            .trim()
            .to_string()
    };
    let first_pid = pid_of(&show);
    let journal = vm.sh(
        "journalctl -b -u hallq.service --no-pager -o cat | tail -n 40",
        long,
    );
    assert!(
        journal.contains("Started hallq.service") || journal.contains("Started hallq"),
        "no start in the journal:\n{journal}"
    );
    // Ready as the guest's own clock sees it: kernel start to READY=1.
    let ready = vm.sh(
        "journalctl -b -u hallq.service -o short-monotonic --no-pager | grep -m1 Started",
        long,
    );
    eprintln!(
        "image [{}]: kernel start to hallq READY=1: {}",
        vm.accel,
        ready.trim()
    );

    // The kiosk's first frame on the KMS display.
    let kiosk = vm.sh("systemctl is-active hallq-kiosk.service || true", long);
    eprintln!("image: hallq-kiosk.service {}", kiosk.trim());
    let shot = wiring.dir.path().join("screen.ppm");
    let t = Instant::now();
    let (frame, drawn) = vm.screen_until(&shot, Duration::from_secs(90), |img| {
        HOME.iter().all(|t| check_text(img, t).is_ok())
    });
    eprintln!(
        "image [{}]: power-on to the kiosk's first frame about {:.1} s",
        vm.accel,
        vm.started
            .elapsed()
            .as_secs_f64()
            .min(to_serving.as_secs_f64() + t.elapsed().as_secs_f64())
    );
    if std::env::var("HALLQ_SCREENS").is_ok() || ci() || !drawn {
        let png = if drawn {
            repo().join("docs/screens/image-kiosk-kms.png")
        } else {
            repo().join("target/image-kiosk-kms-failed.png")
        };
        frame.write_png(&png);
    }
    if !drawn {
        let journal_kiosk = vm.sh(
            "journalctl -b -u hallq-kiosk.service --no-pager -o cat | tail -n 20",
            long,
        );
        let why: Vec<String> = HOME
            .iter()
            .filter_map(|t| check_text(&frame, t).err())
            .collect();
        panic!(
            "the KMS display does not show the home screen ({}; frame in target/image-kiosk-kms-failed.png); kiosk log:\n{journal_kiosk}",
            why.join("; ")
        );
    }

    // A citizen's tap: 取号 on the home screen, then 社会保障 on the services screen. The
    // kiosk issues the ticket; the printer on the host prints it.
    vm.tap(TAKE_TICKET.0, TAKE_TICKET.1);
    let services_shown = |img: &Image| {
        check_text(img, &SERVICES_HEADING).is_ok()
            && check_text(img, &HOME[2]).is_err()
            && ink_in(img, GREETING_TAIL, DARK) == 0
    };
    let (services, shown) = vm.screen_until(&shot, Duration::from_secs(30), services_shown);
    services.write_png(&repo().join("target/image-kiosk-services.png"));
    assert!(
        shown,
        "the tap on 取号 did not open the services screen ({:?}; frame in target/image-kiosk-services.png)",
        check_text(&services, &SERVICES_HEADING).err()
    );
    // 社会保障 (SB, prefix A, served at window 1) is the first tile: found on the frame,
    // its label checked, tapped in its middle.
    let tile = first_tile(&services).expect("no service tile on the services screen");
    // The label: the box around the tile's dark strokes (the grey wait line below is
    // another colour), wide enough for four characters.
    let dark: Vec<(usize, usize)> = (tile.1..tile.1 + tile.3)
        .flat_map(|y| (tile.0..tile.0 + tile.2).map(move |x| (x, y)))
        .filter(|&(x, y)| near(services.at(x, y), DARK))
        .collect();
    let (x0, x1) = (
        dark.iter().map(|p| p.0).min().unwrap_or(0),
        dark.iter().map(|p| p.0).max().unwrap_or(0),
    );
    let (y0, y1) = (
        dark.iter().map(|p| p.1).min().unwrap_or(0),
        dark.iter().map(|p| p.1).max().unwrap_or(0),
    );
    assert!(
        x1 - x0 >= 100 && y1 - y0 >= 20,
        "the first tile {tile:?} has no label: dark strokes in {x0}..{x1} × {y0}..{y1}"
    );
    let label = Text {
        what: "社会保障 (first tile)",
        x: x0,
        y: y0,
        w: x1 - x0 + 1,
        h: y1 - y0 + 1,
        background: WHITE,
        ink: DARK,
    };
    check_text(&services, &label).unwrap_or_else(|e| panic!("services screen, tile {tile:?}: {e}"));
    vm.tap((tile.0 + tile.2 / 2) as u32, (tile.1 + tile.3 / 2) as u32);
    assert!(
        printer.wait_for(Duration::from_secs(60), |p| printed_number(p).is_some()),
        "no ticket number on the printer after the taps: {}",
        printer.paper().to_text(32)
    );
    let tapped = printed_number(&printer.paper()).expect("a printed number");
    assert!(
        tapped.starts_with('A'),
        "社会保障 (SB) has prefix A: printed {tapped}"
    );
    eprintln!("image: the kiosk's taps printed ticket {tapped}");

    // A ticket from the host (the forwarded port, a LAN kiosk's key) prints on the host's
    // printer; a call reaches the window's Modbus screen.
    let t1 = issue(&vm.api, "image-first").expect("first ticket");
    let number = t1["number"].as_str().expect("number").to_string();
    assert!(
        printer.wait_for(Duration::from_secs(30), |p| p
            .runs()
            .any(|r| r.text.contains(&number))),
        "the printer never received {number}: {}",
        printer.paper().to_text(32)
    );
    vm.sh(
        "printf '135790\\n' | runuser -u hallq -- hallq staff add --config /etc/hallq/hallq.toml --id S001 --name 测试员 --window 1",
        long,
    );
    let c = client();
    let (s, b) = send(
        c.post(format!("{}/api/v1/sessions", vm.api))
            .send_json(json!({"staff_id": "S001", "pin": "135790", "window": 1})),
    );
    assert_eq!(s, 201, "{b}");
    let token = format!("Bearer {}", b["token"].as_str().expect("token"));
    let (s, b) = send(
        c.post(format!("{}/api/v1/windows/1/call-next", vm.api))
            .header("Authorization", &token)
            .send_json(json!({})),
    );
    assert!(s == 200 || s == 201, "{s} {b}");
    // The controller calls the tapped ticket first (it came before the host's): the
    // number the printer printed is the controller's.
    assert_eq!(
        b["events"][0]["number"].as_str(),
        Some(tapped.as_str()),
        "call-next at window 1: {b}"
    );
    let t = Instant::now();
    while !sim
        .texts(1)
        .unwrap_or_default()
        .iter()
        .any(|l| l.contains(&tapped))
    {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "window 1's screen never showed {tapped}: {:?}",
            sim.texts(1)
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // The watchdog: the test hook stops the heartbeat; systemd kills and restarts hallq.
    vm.sh(
        "mkdir -p /run/hallq-test && touch /run/hallq-test/stop-watchdog",
        long,
    );
    let t = Instant::now();
    loop {
        let j = vm.sh(
            "journalctl -b -u hallq.service --no-pager -o cat | grep -c -i watchdog || true",
            long,
        );
        if j.trim().parse::<u32>().unwrap_or(0) > 0
            && vm
                .sh("journalctl -b -u hallq.service --no-pager -o cat | grep -c 'Watchdog timeout' || true", long)
                .trim()
                .parse::<u32>()
                .unwrap_or(0)
                > 0
        {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(90),
            "systemd never saw the watchdog expire"
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    vm.sh("rm -f /run/hallq-test/stop-watchdog", long);
    let t = Instant::now();
    loop {
        let show = vm.sh(
            "systemctl show hallq.service -p ActiveState -p NRestarts -p MainPID",
            long,
        );
        if show.contains("ActiveState=active")
            && !show.contains("NRestarts=0")
            && pid_of(&show) != first_pid
        {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(90),
            "hallq was not restarted:\n{show}"
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    vm.wait_serving(vm.started.elapsed() + Duration::from_secs(60))
        .expect("the API answers after the watchdog restart");

    // Power cuts under load.
    let cuts: u32 = env_or("HALLQ_IMAGE_CUTS", 2);
    let mut dice = Dice::from_env("HALLQ_IMAGE_SEED", "image power cuts");
    let mut acked: Vec<(String, String, String)> =
        vec![("image-first".into(), t1["id"].to_string(), number.clone())];
    let mut serial = 0u64;
    for cut in 0..cuts {
        let api = vm.api.clone();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let done = Arc::new(Mutex::new(Vec::new()));
        let (stop2, done2) = (stop.clone(), done.clone());
        let base = serial;
        let load = std::thread::spawn(move || {
            let mut n = base;
            while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
                n += 1;
                let key = format!("cut-{n}");
                if let Ok(t) = issue(&api, &key) {
                    done2.lock().unwrap().push((
                        key,
                        t["id"].to_string(),
                        t["number"].as_str().unwrap_or("").to_string(),
                    ));
                }
            }
            n
        });
        let wait_ms = 300 + dice.below(3000);
        std::thread::sleep(Duration::from_millis(wait_ms));
        vm.kill();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        serial = load.join().expect("load thread");
        let got = std::mem::take(&mut *done.lock().unwrap());
        eprintln!(
            "image: cut {}/{cuts} after {wait_ms} ms, {} tickets acknowledged",
            cut + 1,
            got.len()
        );
        acked.extend(got);
        let (v, d) = boot_any(&wiring, &mut accel);
        vm = v;
        eprintln!(
            "image [{}]: power-on to first API answer {:.1} s",
            vm.accel,
            d.as_secs_f64()
        );
        // Every acknowledged ticket is there, with its number; a retry replays it.
        for (key, id, num) in &acked {
            let again = issue(&vm.api, key).unwrap_or_else(|e| panic!("replaying {key}: {e}"));
            assert_eq!(
                &again["id"].to_string(),
                id,
                "{key} lost after cut {}",
                cut + 1
            );
            assert_eq!(
                again["number"].as_str().unwrap_or(""),
                num,
                "{key} changed number"
            );
        }
        let mut numbers: Vec<&str> = acked.iter().map(|a| a.2.as_str()).collect();
        numbers.sort();
        let before = numbers.len();
        numbers.dedup();
        assert_eq!(
            numbers.len(),
            before,
            "a number repeated after cut {}",
            cut + 1
        );
    }
    eprintln!(
        "image: {cuts} cuts, {} acknowledged tickets all kept, no number repeated",
        acked.len()
    );
    // A fresh ticket after the last cut takes a new number.
    let fresh = issue(&vm.api, "after-the-cuts").expect("a ticket after the cuts");
    let fresh_number = fresh["number"].as_str().unwrap_or("").to_string();
    assert!(
        !acked.iter().any(|a| a.2 == fresh_number),
        "{fresh_number} was issued before"
    );
    vm.kill();
}

struct Image {
    w: usize,
    h: usize,
    rgb: Vec<u8>,
}

impl Image {
    fn write_png(&self, path: &Path) {
        let f = std::fs::File::create(path).expect("png file");
        let mut enc = png::Encoder::new(std::io::BufWriter::new(f), self.w as u32, self.h as u32);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        enc.write_header()
            .and_then(|mut w| w.write_image_data(&self.rgb))
            .expect("png written");
    }
}

/// QEMU's screendump (binary PPM, P6).
fn read_ppm(path: &Path) -> Image {
    let data = std::fs::read(path).expect("screendump file");
    let mut fields = Vec::new();
    let mut i = 0;
    while fields.len() < 4 {
        while data[i].is_ascii_whitespace() {
            i += 1;
        }
        let s = i;
        while !data[i].is_ascii_whitespace() {
            i += 1;
        }
        fields.push(String::from_utf8_lossy(&data[s..i]).into_owned());
    }
    assert_eq!(fields[0], "P6", "not a PPM screendump");
    let w: usize = fields[1].parse().expect("width");
    let h: usize = fields[2].parse().expect("height");
    let rgb = data[i + 1..i + 1 + w * h * 3].to_vec();
    Image { w, h, rgb }
}

impl Image {
    fn at(&self, x: usize, y: usize) -> [u8; 3] {
        let i = (y * self.w + x) * 3;
        [self.rgb[i], self.rgb[i + 1], self.rgb[i + 2]]
    }
}

fn near(a: [u8; 3], b: [u8; 3]) -> bool {
    a.iter().zip(b).all(|(x, y)| x.abs_diff(y) <= 24)
}

/// The check of the kiosk's own tests, made strict for a frame we cannot ask for its
/// labels: in the text's box the most common colour is the expected background, at
/// least 8 % of the pixels are the text's own colour (strokes, not a box outline or a
/// stray colour), and anti-aliasing leaves at least 8 distinct colours.
fn check_text(img: &Image, t: &Text) -> Result<(), String> {
    let mut counts = std::collections::HashMap::new();
    let mut ink = 0usize;
    for y in t.y..(t.y + t.h).min(img.h) {
        for x in t.x..(t.x + t.w).min(img.w) {
            let p = img.at(x, y);
            *counts.entry(p).or_insert(0usize) += 1;
            if near(p, t.ink) {
                ink += 1;
            }
        }
    }
    let cells = t.w * t.h;
    let background = counts
        .iter()
        .max_by_key(|(_, n)| **n)
        .map(|(c, _)| *c)
        .unwrap_or([0, 0, 0]);
    if !near(background, t.background) {
        return Err(format!(
            "\"{}\": background {background:?}, expected {:?}",
            t.what, t.background
        ));
    }
    if ink * 100 < cells * 8 || counts.len() < 8 {
        return Err(format!(
            "\"{}\": {ink} of {cells} pixels in the text colour {:?}, {} colours",
            t.what,
            t.ink,
            counts.len()
        ));
    }
    Ok(())
}

/// Pixels of colour `ink` in the rectangle `(x, y, w, h)`.
fn ink_in(img: &Image, (x0, y0, w, h): (usize, usize, usize, usize), ink: [u8; 3]) -> usize {
    (y0..(y0 + h).min(img.h))
        .flat_map(|y| (x0..(x0 + w).min(img.w)).map(move |x| (x, y)))
        .filter(|&(x, y)| near(img.at(x, y), ink))
        .count()
}

/// The first tile of the services screen (left column, top row): the white area that a
/// line down the page's left margin meets first below the heading, `(x, y, w, h)`.
fn first_tile(img: &Image) -> Option<(usize, usize, usize, usize)> {
    let x = 40;
    let top = (230..img.h).find(|&y| img.at(x, y) == WHITE)?;
    let bottom = (top..img.h)
        .find(|&y| img.at(x, y) != WHITE)
        .unwrap_or(img.h);
    let y = top + 4;
    let left = (0..x)
        .rev()
        .find(|&xx| img.at(xx, y) != WHITE)
        .map_or(0, |l| l + 1);
    let right = (x..img.w)
        .find(|&xx| img.at(xx, y) != WHITE)
        .unwrap_or(img.w);
    let (w, h) = (right - left, bottom - top);
    (w >= 200 && h >= 100 && w < img.w / 2).then_some((left, top, w, h))
}

/// The ticket number on the printed paper: the big (`GS !` enlarged) run that reads like
/// a number (prefix letters, digits).
fn printed_number(paper: &hallq_hardware::virtual_printer::Paper) -> Option<String> {
    paper.runs().find_map(|r| {
        let t = r.text.trim();
        let letters = t.chars().take_while(|c| c.is_ascii_uppercase()).count();
        (r.size.width() > 1
            && letters > 0
            && t.len() > letters
            && t[letters..].chars().all(|c| c.is_ascii_digit()))
        .then(|| t.to_string())
    })
}
