//! Benchmark: a call committed by the hall core → the window's LED screen holding the
//! number, through the real daemon path (core → committed-event broadcast → window
//! controller → bus task → tokio-modbus over a pseudo-terminal → simulated screen),
//! against the call frame's wire time at 9600 baud.
//!
//! The PTY costs no wire time, so the figure is software overhead; on a real bus the
//! screen has the number after this overhead plus the frame's wire time.
//!
//! ```text
//! cargo run --release -p hallq --example window_latency [-- ROUNDS]
//! ```

use hallq::bench::{ms, percentile};
use std::time::{Duration, Instant};

use hallq::config::Config;
use hallq::core::HallCore;
use hallq::devices::health::Devices;
use hallq::devices::window::screens::call_screen;
use hallq::devices::window::{self, WindowBusConfig, WindowDeviceConfig};
use hallq::in_force::InForce;
use hallq::store::Store;
use hallq_engine::{Class, Command, Role};
use hallq_hardware::window::regmap::{self, DeviceKind};
use hallq_hardware::window::rtu::{self, Request};
use hallq_hardware::window::sim::{SimBus, SimSpec};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200);
    let dir = tempfile::tempdir()?;
    // The example hall, always open and without caps, its data in the temp folder.
    let mut config = Config::example();
    config.storage.data_dir = dir.path().join("data");
    config.queue.calendar.always_open = true;
    config.queue.per_citizen_daily_limit = None;
    for s in &mut config.queue.services {
        s.daily_cap = None;
        s.quota = None;
    }
    std::fs::create_dir_all(&config.storage.data_dir)?;
    let window = 3u32;
    let service = config
        .queue
        .windows
        .iter()
        .find(|w| w.number == window)
        .and_then(|w| w.services.first())
        .map(|s| s.code.clone())
        .ok_or_else(|| anyhow::anyhow!("window 3 serves nothing"))?;

    let link = dir.path().join("ttyRS485");
    let sim = SimBus::new(&[SimSpec::window_screen(3), SimSpec::hall_board(10)]);
    sim.plug(&link)?;
    config.buses.push(WindowBusConfig {
        name: Some("bench".into()),
        port: link.to_string_lossy().into_owned(),
        baud: 9600,
        response_timeout_ms: 100,
        key_poll_ms: 100,
        rating_armed_secs: 60,
        notice: String::new(),
        devices: vec![
            WindowDeviceConfig {
                unit: 3,
                kind: DeviceKind::WindowScreen,
                window: Some(window),
                levels: None,
                keys: None,
                lines: None,
            },
            WindowDeviceConfig {
                unit: 10,
                kind: DeviceKind::HallBoard,
                window: None,
                levels: None,
                keys: None,
                lines: None,
            },
        ],
        ..Default::default()
    });

    let store = Store::open(&config.database())?;
    let in_force = InForce::file(config.queue.clone(), config.guide.clone());
    let (hall, core) = HallCore::start(in_force, store)?;
    let devices = Devices::load(hall.clone()).await?;
    let buses = window::start(&config.window_devices(), hall.clone(), devices).await;
    let staff = "B001".to_string();
    hall.execute(Command::SignIn {
        window,
        staff: staff.clone(),
        role: Role::A,
    })
    .await?;
    for _ in 0..rounds {
        hall.execute(Command::Issue {
            token_hash: None,
            service: service.clone(),
            class: Class::Normal,
            idempotency_key: None,
            citizen: None,
            channel: "bench".into(),
            green_reason: None,
            proxy: false,
            issued_by: None,
        })
        .await?;
    }
    // Let the screens come up.
    sim.wait_for(Duration::from_secs(5), |s| {
        s.texts(3).is_ok_and(|t| t[0] == "3号窗口")
    })
    .await;

    let mut reply = Vec::new();
    let mut shown = Vec::new();
    let mut frame_bytes = 0;
    for _ in 0..rounds {
        let t0 = Instant::now();
        let done = hall
            .execute(Command::CallNext {
                window,
                staff: staff.clone(),
            })
            .await?;
        let t1 = Instant::now();
        let number = done
            .events
            .iter()
            .find(|e| e.kind == "ticket_called")
            .and_then(|e| e.payload["number"].as_str().map(String::from))
            .ok_or_else(|| anyhow::anyhow!("no call"))?;
        let mut at = None;
        let deadline = Instant::now() + Duration::from_secs(2);
        while at.is_none() && Instant::now() < deadline {
            if let Some((t, texts)) = sim.last_line_write(3)?
                && texts[0] == number
            {
                at = Some(t);
            } else {
                tokio::time::sleep(Duration::from_micros(200)).await;
            }
        }
        let at = at.ok_or_else(|| anyhow::anyhow!("{number} never reached the screen"))?;
        reply.push(t1 - t0);
        shown.push(at.saturating_duration_since(t0));
        frame_bytes = Request::WriteMultiple {
            addr: regmap::line_address(0),
            values: regmap::encode_line(&call_screen(&number, window).lines[0]),
        }
        .encode(3)
        .len();
        hall.execute(Command::StartServing {
            window,
            staff: staff.clone(),
        })
        .await?;
        hall.execute(Command::Finish {
            window,
            staff: staff.clone(),
            case_no: None,
        })
        .await?;
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    buses.shutdown();
    drop(hall);
    let _ = tokio::task::spawn_blocking(move || core.join()).await;

    // Per call: how long the screen took beyond the committed reply (0 when the
    // screen had it first: the broadcast goes out before the reply).
    let mut beyond: Vec<Duration> = shown
        .iter()
        .zip(&reply)
        .map(|(s, r)| s.saturating_sub(*r))
        .collect();
    reply.sort();
    shown.sort();
    beyond.sort();
    let wire = rtu::wire_time(frame_bytes, 9600);
    println!("rounds: {rounds}");
    println!(
        "call frame on the window screen: {frame_bytes} bytes; wire time at 9600 baud {:.2} ms",
        ms(wire)
    );
    println!(
        "baseline, CallNext command → committed reply (SQLite commit): p50 {:.3} ms  p99 {:.3} ms",
        ms(percentile(&reply, 0.5)),
        ms(percentile(&reply, 0.99))
    );
    println!(
        "CallNext command → screen holds the number (commit + broadcast + controller + bus + PTY): p50 {:.3} ms  p99 {:.3} ms  max {:.3} ms",
        ms(percentile(&shown, 0.5)),
        ms(percentile(&shown, 0.99)),
        ms(*shown.last().unwrap_or(&Duration::ZERO))
    );
    let over = |q: f64| percentile(&beyond, q);
    println!(
        "display path beyond the commit: p50 {:.3} ms  p99 {:.3} ms ({:.2}× the commit at p50); projected on a 9600 baud bus: {:.2} ms vs wire {:.2} ms + 2 ms",
        ms(over(0.5)),
        ms(over(0.99)),
        percentile(&shown, 0.5).as_secs_f64() / percentile(&reply, 0.5).as_secs_f64(),
        ms(over(0.99) + wire),
        ms(wire)
    );
    Ok(())
}
