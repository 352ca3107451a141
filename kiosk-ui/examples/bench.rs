//! Kiosk figures on this machine, printed (never asserted):
//! - full-frame software render at 1080×1920 (target ≤ 8 ms), against the baseline of
//!   merely filling the same frame buffer;
//! - touch → confirmation screen with a durable ticket from the real controller (target
//!   ≤ 100 ms), against the baseline of the bare HTTP request for a ticket;
//! - resident memory of the kiosk process.
//!
//! `cargo build --release -p hallq --bins && cargo run --release -p hallq-kiosk --example bench`

use std::time::{Duration, Instant};

use hallq_kiosk::catalogue::Language;
use hallq_kiosk::client::Endpoint;
use hallq_kiosk::headless::Screen;
use hallq_kiosk::{App, Kiosk, Screen as Page, Settings};
use i_slint_backend_testing::ElementHandle;
use slint::Rgb8Pixel;
use slint::{ComponentHandle, Model};

fn stats(mut v: Vec<Duration>) -> (f64, f64, f64) {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let mean = v.iter().map(|d| ms(*d)).sum::<f64>() / v.len() as f64;
    (
        mean,
        ms(v[v.len() / 2]),
        ms(v[(v.len() * 99 / 100).min(v.len() - 1)]),
    )
}

fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

fn centre(app: &App, label: &str) -> (f32, f32) {
    let e = ElementHandle::find_by_accessible_label(app, label)
        .next()
        .unwrap_or_else(|| panic!("no {label} on screen"));
    let p = e.absolute_position();
    let s = e.size();
    (p.x + s.width / 2.0, p.y + s.height / 2.0)
}

fn main() -> anyhow::Result<()> {
    let frames: usize = std::env::var("FRAMES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let taps: usize = std::env::var("TAPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let rss_before = status_kib("VmRSS:");

    let hall = hallq_tests::Hall::new();
    let daemon = hall.start();
    let screen = Screen::install(1080, 1920)?;
    let app = App::new()?;
    hallq_kiosk::fonts::load_cjk(None)?;
    let logic = hallq_kiosk::attach(
        app,
        Settings {
            endpoint: Endpoint {
                base: daemon.url.clone(),
                kiosk_id: "bench".into(),
                kiosk_key: None,
                timeout: Duration::from_secs(5),
            },
            default_language: Language::ZhCn,
            idle_timeout: Duration::from_secs(600),
            refresh_every: Duration::from_secs(15),
            hall_name: String::new(),
            locked_reason: None,
            utc_offset_minutes: 480,
        },
    );
    let app = logic.app();
    let k = app.global::<Kiosk>();
    anyhow::ensure!(
        screen.pump_until(Duration::from_secs(10), || k.get_services().iter().count()
            == 6),
        "the catalogue did not arrive"
    );

    // 1. Full frames.
    let mut buffer = vec![Rgb8Pixel::new(0, 0, 0); 1080 * 1920];
    let mut fill = Vec::new();
    for i in 0..frames {
        let t = Instant::now();
        buffer.fill(Rgb8Pixel::new((i % 255) as u8, 0, 0));
        std::hint::black_box(&buffer);
        fill.push(t.elapsed());
    }
    println!("full-frame software render, 1080×1920, {frames} frames each:");
    let (fill_mean, _, _) = stats(fill);
    println!("  baseline: fill the frame buffer        mean {fill_mean:6.3} ms");
    for (name, setup) in [
        ("home", Page::Home),
        ("services", Page::Services),
        ("guide", Page::Guide),
    ] {
        if setup == Page::Guide {
            k.invoke_open_guide("BDC".into());
            screen.pump_until(Duration::from_secs(5), || k.get_screen() == Page::Guide);
        } else {
            k.invoke_navigate(setup);
        }
        screen.pump();
        screen.render_into(&mut buffer); // warm the glyph cache
        let mut times = Vec::new();
        for _ in 0..frames {
            let t = Instant::now();
            screen.render_into(&mut buffer);
            times.push(t.elapsed());
        }
        let (mean, p50, p99) = stats(times);
        println!(
            "  {name:<9} mean {mean:6.2} ms  p50 {p50:6.2} ms  p99 {p99:6.2} ms  = {:.0}× the fill",
            mean / fill_mean
        );
    }

    // 2. Touch → confirmation with a durable ticket.
    let agent = hallq_tests::client();
    let mut bare = Vec::new();
    for i in 0..taps {
        let t = Instant::now();
        let (status, _) = hallq_tests::send(
            agent
                .post(format!("{}/api/v1/tickets", daemon.url))
                .header("Idempotency-Key", &format!("bench-bare-{i}"))
                .send_json(serde_json::json!({ "service": "SB" })),
        );
        anyhow::ensure!(status == 201, "bare issue answered {status}");
        bare.push(t.elapsed());
    }
    let mut touch = Vec::new();
    for _ in 0..taps {
        k.invoke_go_home();
        k.invoke_navigate(Page::Services);
        screen.pump();
        let (x, y) = centre(app, "社会保障");
        let before = k.get_ticket().number;
        let t = Instant::now();
        screen.tap(x, y);
        let ok = screen.pump_until(Duration::from_secs(5), || {
            k.get_screen() == Page::Ticket && k.get_ticket().number != before
        });
        screen.render_into(&mut buffer); // the confirmation is on the glass
        let elapsed = t.elapsed();
        anyhow::ensure!(ok, "no confirmation screen");
        touch.push(elapsed);
    }
    let (bm, bp50, bp99) = stats(bare);
    let (tm, tp50, tp99) = stats(touch);
    println!(
        "touch → confirmation screen (ticket committed with fsync by the controller), {taps} tickets:"
    );
    println!(
        "  baseline: bare HTTP issue             mean {bm:6.2} ms  p50 {bp50:6.2} ms  p99 {bp99:6.2} ms"
    );
    println!(
        "  tap → drawn confirmation              mean {tm:6.2} ms  p50 {tp50:6.2} ms  p99 {tp99:6.2} ms  = {:.2}× the bare request",
        tm / bm
    );

    println!("kiosk process memory (headless, software renderer, one 1080×1920 frame buffer):");
    println!(
        "  RSS {} KiB, peak {} KiB (before the UI: {rss_before} KiB)",
        status_kib("VmRSS:"),
        status_kib("VmHWM:")
    );
    drop(logic);
    drop(daemon);
    Ok(())
}
