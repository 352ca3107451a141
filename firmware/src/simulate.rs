//! A living hall for newcomers and demos: citizens arrive at random, staff sign in at
//! every window and call, serve, finish, and citizens rate. Everything goes through the
//! same hall core as real traffic, so the log, the API and the database show real work.

use std::time::Duration;

use hallq_engine::{Class, Command, Event, Level, Role};

use crate::core::{CoreError, HallCore};
use crate::events::Committed;

/// A small deterministic generator (xorshift), so the simulator needs no RNG crate.
struct Dice(u64);

impl Dice {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Runs the simulation until the hall core stops, under the setup in force (followed as
/// it changes). `speed` divides every pause.
// Over 100 lines: the one loop of a simulated hall day, read top to bottom as a script.
pub async fn run(hall: HallCore, speed: u32) {
    let speed = u64::from(speed.max(1));
    let mut dice = Dice(0x9e37_79b9_7f4a_7c15);
    let windows: Vec<u32> = hall.in_force().windows();
    for &w in &windows {
        let cmd = Command::SignIn {
            window: w,
            staff: format!("SIM{w:02}"),
            role: Role::A,
        };
        if let Err(e) = hall.execute(cmd).await {
            tracing::warn!(window = w, error = %e, "simulated staff could not sign in");
        }
    }
    tracing::info!(
        windows = windows.len(),
        "simulation started: citizens arrive, windows call and serve"
    );
    let mut tick: u64 = 0;
    loop {
        tokio::time::sleep(Duration::from_millis(1000 / speed)).await;
        tick += 1;
        if dice.below(3) == 0 {
            let in_force = hall.in_force();
            let services = &in_force.setup.services;
            let s = &services[dice.below(services.len() as u64) as usize];
            let class = if dice.below(12) == 0 {
                Class::Green
            } else {
                Class::Normal
            };
            match hall
                .execute(Command::Issue {
                    token_hash: None,
                    service: s.code.clone(),
                    class,
                    idempotency_key: None,
                    citizen: None,
                    channel: "simulator".into(),
                    green_reason: None,
                    proxy: false,
                    issued_by: None,
                })
                .await
            {
                Ok(done) => {
                    if let Some(t) = done.ticket {
                        tracing::info!(number = %t.number, service = %s.code, ahead = done.ahead, "citizen took a ticket");
                    }
                }
                Err(CoreError::Stopped) => return,
                Err(e) => tracing::info!(service = %s.code, reason = %e, "ticket refused"),
            }
        }
        let w = windows[dice.below(windows.len() as u64) as usize];
        let staff = format!("SIM{w:02}");
        let action = match dice.below(10) {
            0..=3 => Command::CallNext { window: w, staff },
            4..=5 => Command::StartServing { window: w, staff },
            6..=7 => Command::Finish {
                window: w,
                staff,
                case_no: Some(format!("SIM{tick:06}")),
            },
            8 => Command::Recall { window: w, staff },
            _ => Command::NoShow { window: w, staff },
        };
        match hall.execute(action).await {
            Ok(done) => {
                for e in &done.events {
                    match e.typed() {
                        Committed::Engine(Event::TicketCalled { number, .. }) => {
                            tracing::info!(number = %number, window = w, "请 {number} 号到 {w} 号窗口办理")
                        }
                        Committed::Engine(Event::TicketFinished { number, ticket, .. }) => {
                            tracing::info!(number = %number, window = w, "service finished");
                            let level = Level::ALL[(dice.below(100) as usize).min(99) / 40];
                            let reasons = if level.is_bad() {
                                vec!["其他".to_string()]
                            } else {
                                Vec::new()
                            };
                            let rate = Command::Rate {
                                ticket,
                                level,
                                reasons,
                                comment: None,
                                channel: format!("window-pad-{w}"),
                                window: Some(w),
                            };
                            if hall.execute(rate).await.is_ok() {
                                tracing::info!(
                                    window = w,
                                    level = level.name(),
                                    "citizen rated the service"
                                );
                            }
                        }
                        Committed::Engine(Event::TicketNoShow { number, .. }) => {
                            tracing::info!(number = %number, window = w, "citizen did not come")
                        }
                        _ => {}
                    }
                }
            }
            Err(CoreError::Stopped) => return,
            Err(_) => {}
        }
    }
}

/// A virtual ticket printer on a free loopback port, and the transport that reaches it.
fn serve_virtual(
    name: &str,
) -> std::io::Result<(
    hallq_hardware::virtual_printer::VirtualPrinterHandle,
    hallq_hardware::transport::TransportConfig,
)> {
    use hallq_hardware::transport::TransportConfig;
    use hallq_hardware::virtual_printer::{VirtualPrinter, VirtualPrinterHandle};
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let handle = VirtualPrinterHandle::serve_tcp(VirtualPrinter::new(), listener)?;
    let addr = handle
        .local_addr()
        .ok_or_else(|| std::io::Error::other("the virtual printer has no address"))?;
    tracing::info!(%addr, printer = name, "simulated ticket printer listening");
    Ok((
        handle,
        TransportConfig::Tcp {
            addr: addr.to_string(),
        },
    ))
}

/// A virtual ticket printer on a free loopback port, and the single `[printer]` that
/// points at it, so that `run --simulate` prints (and polls, and faults) like a hall
/// with a printer.
pub fn virtual_printer() -> std::io::Result<(
    hallq_hardware::virtual_printer::VirtualPrinterHandle,
    crate::devices::printer::PrinterConfig,
)> {
    let (handle, transport) = serve_virtual("printer")?;
    Ok((
        handle,
        crate::devices::printer::PrinterConfig::with_transport(transport),
    ))
}

/// One virtual printer per kiosk or desk id, each a `[[printer]]` named after the id
/// and serving it alone, so that `run --simulate --virtual-printers kiosk-1,kiosk-2`
/// is a hall with a printer beside each kiosk.
pub fn virtual_printers(
    ids: &[String],
) -> std::io::Result<(
    Vec<hallq_hardware::virtual_printer::VirtualPrinterHandle>,
    crate::devices::printer::PrintersConfig,
)> {
    let mut handles = Vec::with_capacity(ids.len());
    let mut list = Vec::with_capacity(ids.len());
    for id in ids {
        let (handle, transport) = serve_virtual(id)?;
        handles.push(handle);
        list.push(crate::devices::printer::PrinterConfig::serving(
            id,
            &[id.as_str()],
            transport,
        ));
    }
    Ok((
        handles,
        crate::devices::printer::PrintersConfig::Several(list),
    ))
}

/// A simulated RS-485 window bus for `--simulate`: an LED screen over every window
/// (unit = window number) and a hall board (unit 100) answering the hall-device Modbus
/// profile on a pseudo-terminal, added to `config` as a `[[bus]]`. What the screens
/// show is logged as it changes, and the hall board is drawn to `hall-board.png` in
/// the data directory. Must be called inside the tokio runtime.
pub fn window_bus(
    config: &mut crate::config::Config,
) -> std::io::Result<(hallq_hardware::window::sim::SimBus, tempfile::TempDir)> {
    use crate::devices::window::{WindowBusConfig, WindowDeviceConfig};
    use hallq_hardware::window::regmap::DeviceKind;
    use hallq_hardware::window::sim::{SimBus, SimSpec};

    const BOARD: u8 = 100;
    let windows: Vec<u8> = config
        .queue
        .windows
        .iter()
        .filter_map(|w| {
            u8::try_from(w.number)
                .ok()
                .filter(|n| (1..BOARD).contains(n))
        })
        .collect();
    let mut specs: Vec<SimSpec> = windows.iter().map(|&w| SimSpec::window_screen(w)).collect();
    specs.push(SimSpec::hall_board(BOARD));
    let sim = SimBus::new(&specs);
    let dir = tempfile::Builder::new().prefix("hallq-bus-").tempdir()?;
    let link = dir.path().join("ttyRS485");
    sim.plug(&link).map_err(std::io::Error::other)?;
    let mut devices: Vec<WindowDeviceConfig> = windows
        .iter()
        .map(|&w| WindowDeviceConfig {
            unit: w,
            kind: DeviceKind::WindowScreen,
            window: Some(u32::from(w)),
            levels: None,
            keys: None,
            lines: None,
        })
        .collect();
    devices.push(WindowDeviceConfig {
        unit: BOARD,
        kind: DeviceKind::HallBoard,
        window: None,
        levels: None,
        keys: None,
        lines: None,
    });
    config.buses.push(WindowBusConfig {
        name: Some("sim".into()),
        port: link.to_string_lossy().into_owned(),
        baud: 9600,
        response_timeout_ms: 100,
        key_poll_ms: 100,
        rating_armed_secs: 60,
        notice: "欢迎光临 · 办事请先取号 · 过号请重新取号".into(),
        devices,
        ..Default::default()
    });
    tracing::info!(port = %link.display(), "simulated window bus (screens and hall board) on a pseudo-terminal");
    let watch = sim.clone();
    let png = config.storage.data_dir.join("hall-board.png");
    let font = hallq_hardware::window::font::BitmapFont::find();
    if let Err(e) = &font {
        tracing::warn!("hall board picture not drawn: {e}");
    }
    let mut units: Vec<u8> = windows.clone();
    units.push(BOARD);
    tokio::spawn(async move {
        let mut shown: std::collections::HashMap<u8, Vec<String>> = Default::default();
        loop {
            tokio::time::sleep(Duration::from_millis(300)).await;
            for &u in &units {
                let Ok(texts) = watch.texts(u) else { continue };
                if shown.get(&u) != Some(&texts) {
                    tracing::info!(unit = u, lines = ?texts, "LED {}", if u == BOARD { "hall board" } else { "window screen" });
                    if u == BOARD
                        && let Ok(font) = &font
                        && let Ok(bytes) = watch.render_png(u, font)
                    {
                        let _ = std::fs::write(&png, bytes);
                    }
                    shown.insert(u, texts);
                }
            }
        }
    });
    Ok((sim, dir))
}

/// The simulated ID card reader of `run --simulate`, kept alive for the run.
pub struct SimIdReader {
    /// The reader; place and remove cards through it.
    pub handle: hallq_hardware::idcard::sim::SimReaderHandle,
    /// The terminal side, held open so the pseudo-terminal stays up.
    _terminal: serialport::TTYPort,
}

/// The name of the control file in the data directory: write `姓名 公民身份号码` into it
/// to lay a card on the simulated reader, empty it or delete it to lift the card.
pub const ID_CARD_CONTROL: &str = "id-card";

/// A simulated ID card reader for `--simulate`: a SAM reader on a pseudo-terminal,
/// added to `config` as an `[[id_reader]]` at the kiosk `kiosk` (a kiosk that sends no
/// `X-Kiosk-Id`), with a control file in the data directory
/// ([`ID_CARD_CONTROL`]) that a person or a script writes to place and lift cards.
pub fn id_reader(config: &mut crate::config::Config) -> std::io::Result<SimIdReader> {
    use hallq_hardware::idcard::sim::SimReaderHandle;
    use hallq_hardware::idcard::text::CardText;
    use serialport::SerialPort;

    let (master, terminal) = serialport::TTYPort::pair().map_err(std::io::Error::other)?;
    let port = terminal
        .name()
        .ok_or_else(|| std::io::Error::other("pseudo-terminal without a name"))?;
    let handle = SimReaderHandle::serve_stream(master)?;
    config
        .id_readers
        .push(crate::devices::id_reader::IdReaderConfig {
            id: "sim".into(),
            port: port.clone(),
            baud: 115_200,
            kiosk: "kiosk".into(),
            poll_ms: 300,
            timeout_ms: 600,
        });
    let control = config.storage.data_dir.join(ID_CARD_CONTROL);
    tracing::info!(%port, control = %control.display(), "simulated ID card reader at kiosk \"kiosk\": write \"姓名 号码\" into the control file to place a card, empty it to lift it");
    let reader = handle.control();
    std::thread::Builder::new()
        .name("sim-id-card-control".into())
        .spawn(move || {
            let mut shown = String::new();
            loop {
                std::thread::sleep(Duration::from_millis(300));
                let text = std::fs::read_to_string(&control).unwrap_or_default();
                let text = text.trim().to_string();
                if text == shown {
                    continue;
                }
                let mut words = text.split_whitespace();
                match (words.next(), words.next()) {
                    (Some(name), Some(id)) => {
                        reader.place(CardText::specimen(name, id));
                        tracing::info!("simulated ID card placed");
                    }
                    _ => {
                        reader.remove();
                        tracing::info!("simulated ID card lifted");
                    }
                }
                shown = text;
            }
        })?;
    Ok(SimIdReader {
        handle,
        _terminal: terminal,
    })
}
