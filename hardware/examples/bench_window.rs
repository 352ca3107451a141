//! Benchmark: a call's content handed to the bus task → last byte of the display frame
//! written to the port, against that frame's wire time at 9600 baud (the physical
//! limit; target: ≤ wire time + 2 ms).
//!
//! Runs over a pseudo-terminal against the simulated bus, where bytes cost no wire
//! time, so the measured figure is pure software overhead. Baseline measured in the
//! same run: the same write done directly with tokio-modbus on its own connection (no
//! bus task, no polling).
//!
//! ```text
//! cargo run --release -p hallq-hardware --example bench_window [-- ROUNDS]
//! ```

use std::time::{Duration, Instant};

use hallq_hardware::window::bus::{self, BusConfig, BusDevice, BusEvent};
use hallq_hardware::window::regmap::{self, DeviceKind};
use hallq_hardware::window::rtu::{self, Request};
use hallq_hardware::window::sim::{SimBus, SimSpec};
use hallq_hardware::window::{Colour, DisplayContent, DisplayLine, Effect};
use tokio_modbus::client::Writer;
use tokio_modbus::slave::{Slave, SlaveContext};

fn screen(n: usize) -> DisplayContent {
    DisplayContent {
        lines: vec![
            DisplayLine::new(&format!("A{:03}", n % 1000))
                .unwrap()
                .colour(Colour::Red)
                .effect(Effect::Blink),
            DisplayLine::new("正在办理").unwrap(),
        ],
        brightness: 8,
    }
}

fn board(n: usize) -> DisplayContent {
    DisplayContent::from_lines(&[&format!("请 A{:03} 号到 3 号窗口办理", n % 1000)]).unwrap()
}

fn stats(mut v: Vec<Duration>) -> (Duration, Duration, Duration) {
    v.sort();
    let p = |q: f64| v[((v.len() as f64 - 1.0) * q) as usize];
    (p(0.5), p(0.99), *v.last().unwrap_or(&Duration::ZERO))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(300);
    let dir = tempfile::tempdir()?;
    let link = dir.path().join("bus");
    let sim = SimBus::new(&[
        SimSpec::window_screen(3),
        SimSpec::hall_board(10),
        SimSpec::caller_keypad(23),
        SimSpec::rating_keypad(33, 5),
    ]);
    sim.plug(&link)?;

    // Frame sizes and their wire time at 9600 8N1 (request + the device's answer:
    // half duplex, the line is busy until the answer ends).
    let line0 = Request::WriteMultiple {
        addr: regmap::line_address(0),
        values: regmap::encode_line(&screen(1).lines[0]),
    };
    let board0 = Request::WriteMultiple {
        addr: regmap::line_address(0),
        values: regmap::encode_line(&board(1).lines[0]),
    };
    let req_bytes = line0.encode(3).len();
    let board_bytes = board0.encode(10).len();
    let wire = rtu::wire_time(req_bytes, 9600);
    let wire_board = rtu::wire_time(board_bytes, 9600);

    // Baseline: tokio-modbus directly, same PTY, same simulator, no bus task.
    let port = tokio_serial::SerialStream::open(&tokio_serial::new(link.to_string_lossy(), 9600))?;
    let mut ctx = tokio_modbus::client::rtu::attach_slave(port, Slave(3));
    let mut base = Vec::with_capacity(rounds);
    for n in 0..rounds {
        let values = regmap::encode_line(&screen(n).lines[0]);
        let t = Instant::now();
        ctx.set_slave(Slave(3));
        ctx.write_multiple_registers(regmap::line_address(0), &values)
            .await??;
        base.push(t.elapsed());
    }
    drop(ctx);

    // The bus task, with keypads polled every 100 ms as in the hall.
    let devices = vec![
        BusDevice {
            unit: 3,
            kind: DeviceKind::WindowScreen,
        },
        BusDevice {
            unit: 10,
            kind: DeviceKind::HallBoard,
        },
        BusDevice {
            unit: 23,
            kind: DeviceKind::CallerKeypad,
        },
        BusDevice {
            unit: 33,
            kind: DeviceKind::RatingKeypad,
        },
    ];
    let (handle, mut events) =
        bus::spawn(BusConfig::new("bench", &link.to_string_lossy(), devices));
    let mut online = 0;
    while online < 4 {
        if let Some(BusEvent::Online { .. }) = events.recv().await {
            online += 1;
        }
    }
    let mut screen_lat = Vec::with_capacity(rounds);
    let mut board_lat = Vec::with_capacity(rounds);
    let mut bytes_seen = (0, 0);
    for n in 0..rounds {
        // A call: the window screen's number and the hall board's line, in that order.
        handle.show(3, screen(n + 1))?;
        handle.show(10, board(n + 1))?;
        let mut got = 0;
        while got < 2 {
            match events.recv().await {
                Some(BusEvent::Shown {
                    unit,
                    requested,
                    written,
                    bytes,
                }) => {
                    got += 1;
                    if n == 0 {
                        continue; // the first round also writes line 1 and brightness
                    }
                    if unit == 3 {
                        screen_lat.push(written - requested);
                        bytes_seen.0 = bytes;
                    } else {
                        board_lat.push(written - requested);
                        bytes_seen.1 = bytes;
                    }
                }
                Some(_) => {}
                None => anyhow::bail!("bus task stopped"),
            }
        }
        // Let polls interleave, as between calls in a real hall.
        tokio::time::sleep(Duration::from_millis(7)).await;
    }
    handle.shutdown();

    let (b50, b99, bmax) = stats(base);
    let (s50, s99, smax) = stats(screen_lat);
    let (h50, h99, hmax) = stats(board_lat);
    println!("rounds: {rounds}");
    println!(
        "window screen call frame: {req_bytes} bytes (bus wrote {}), wire time at 9600 = {:.2} ms",
        bytes_seen.0,
        ms(wire)
    );
    println!(
        "hall board call frame:    {board_bytes} bytes (bus wrote {}), wire time at 9600 = {:.2} ms",
        bytes_seen.1,
        ms(wire_board)
    );
    println!(
        "baseline, tokio-modbus alone, write → answer received (round trip) over PTY: p50 {:.3} ms  p99 {:.3} ms  max {:.3} ms",
        ms(b50),
        ms(b99),
        ms(bmax)
    );
    println!(
        "bus task, show → last byte of screen frame: p50 {:.3} ms  p99 {:.3} ms  max {:.3} ms  (p50 {:.2}× baseline)",
        ms(s50),
        ms(s99),
        ms(smax),
        s50.as_secs_f64() / b50.as_secs_f64()
    );
    println!(
        "bus task, show → last byte of board frame (queued behind the screen): p50 {:.3} ms  p99 {:.3} ms  max {:.3} ms",
        ms(h50),
        ms(h99),
        ms(hmax)
    );
    println!(
        "projected at 9600 baud, screen: p99 overhead {:.3} ms + wire {:.2} ms = {:.2} ms (target ≤ wire + 2 ms = {:.2} ms): {}",
        ms(s99),
        ms(wire),
        ms(s99 + wire),
        ms(wire) + 2.0,
        if s99 <= Duration::from_millis(2) {
            "met"
        } else {
            "NOT met"
        }
    );
    Ok(())
}
