//! A living hall for newcomers and demos: citizens arrive at random, staff sign in at
//! every window and call, serve, finish, and citizens rate. Everything goes through the
//! same hall core as real traffic, so the log, the API and the database show real work.

use std::time::Duration;

use hallq_engine::{Class, Command, Level, Role, TicketId};

use crate::core::{CoreError, Hall};

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

/// Runs the simulation until the hall core stops. `speed` divides every pause.
pub async fn run(hall: Hall, setup: hallq_engine::Setup, speed: u32) {
    let speed = u64::from(speed.max(1));
    let mut dice = Dice(0x9e37_79b9_7f4a_7c15);
    let windows: Vec<u32> = setup.windows.iter().map(|w| w.number).collect();
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
            let s = &setup.services[dice.below(setup.services.len() as u64) as usize];
            let class = if dice.below(12) == 0 {
                Class::Green
            } else {
                Class::Normal
            };
            match hall
                .execute(Command::Issue {
                    service: s.code.clone(),
                    class,
                    idempotency_key: None,
                    citizen: None,
                    channel: "simulator".into(),
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
                    let p = &e.payload;
                    match e.kind.as_str() {
                        "ticket_called" => {
                            tracing::info!(number = %p["number"].as_str().unwrap_or(""), window = w, "请 {} 号到 {} 号窗口办理", p["number"].as_str().unwrap_or(""), w)
                        }
                        "ticket_finished" => {
                            tracing::info!(number = %p["number"].as_str().unwrap_or(""), window = w, "service finished");
                            if let Some(id) = p["ticket"].as_u64() {
                                let level = Level::ALL[(dice.below(100) as usize).min(99) / 40];
                                let reasons = if level.is_bad() {
                                    vec!["其他".to_string()]
                                } else {
                                    Vec::new()
                                };
                                let rate = Command::Rate {
                                    ticket: TicketId(id),
                                    level,
                                    reasons,
                                    comment: None,
                                    channel: format!("pad-{w}"),
                                };
                                if hall.execute(rate).await.is_ok() {
                                    tracing::info!(
                                        window = w,
                                        level = level.name(),
                                        "citizen rated the service"
                                    );
                                }
                            }
                        }
                        "ticket_no_show" => {
                            tracing::info!(number = %p["number"].as_str().unwrap_or(""), window = w, "citizen did not come")
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

/// A virtual ticket printer on a free loopback port, and the config that points at it,
/// so that `run --simulate` prints (and polls, and faults) like a hall with a printer.
pub fn virtual_printer() -> std::io::Result<(
    hallq_hardware::virtual_printer::VirtualPrinterHandle,
    crate::devices::printer::PrinterConfig,
)> {
    use hallq_hardware::transport::TransportConfig;
    use hallq_hardware::virtual_printer::{VirtualPrinter, VirtualPrinterHandle};
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let handle = VirtualPrinterHandle::serve_tcp(VirtualPrinter::new(), listener)?;
    let addr = handle
        .local_addr()
        .ok_or_else(|| std::io::Error::other("the virtual printer has no address"))?;
    tracing::info!(%addr, "simulated ticket printer listening");
    Ok((
        handle,
        crate::devices::printer::PrinterConfig::with_transport(TransportConfig::Tcp {
            addr: addr.to_string(),
        }),
    ))
}
