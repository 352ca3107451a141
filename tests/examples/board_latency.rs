//! How long a call takes to reach the hall board, against a baseline measured in the
//! same run: the same call's event arriving at a bare SSE reader.
//!
//! For each of N calls (default 30; `BOARD_CALLS=N`), the time from sending
//! `call-next` to (a) the `ticket_called` event line at a plain TCP client reading
//! `/api/v1/stream`, and (b) the number appearing in the board's DOM in headless
//! Chromium (recorded in the page by a MutationObserver, so WebDriver polling adds
//! nothing). Run: `cargo run --release -p hallq-tests --example board_latency`
//! (needs `cargo build --release --bins` first, and chromium + chromium-driver).

use std::io::{BufRead, BufReader, Write};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hallq_tests::webdriver::Driver;
use hallq_tests::{Hall, client, send};
use serde_json::json;

fn epoch_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64() * 1000.0)
        .unwrap_or(0.0)
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn main() -> anyhow::Result<()> {
    let calls: usize = std::env::var("BOARD_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    let hall = Hall::new();
    hall.add_staff("S001", "135790", &["--window", "1"]);
    let d = hall.start();
    let c = client();
    for _ in 0..calls {
        send(
            c.post(format!("{}/api/v1/tickets", d.url))
                .send_json(json!({"service": "SB"})),
        );
    }
    let (_, b) = send(
        c.post(format!("{}/api/v1/sessions", d.url))
            .send_json(json!({"staff_id": "S001", "pin": "135790", "window": 1})),
    );
    let token = format!("Bearer {}", b["token"].as_str().unwrap_or_default());

    // The baseline reader: raw SSE over TCP.
    let stream = std::net::TcpStream::connect(d.url.trim_start_matches("http://"))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    (&stream).write_all(b"GET /api/v1/stream HTTP/1.1\r\nHost: x\r\n\r\n")?;
    let mut sse = BufReader::new(stream);
    let mut line = String::new();
    while line != "\r\n" {
        line.clear();
        sse.read_line(&mut line)?;
    }

    let driver = Driver::start()?;
    let board = driver.browser(1920, 1080)?;
    board.go(&format!("{}/board", d.url))?;
    board.wait_for("the board to go live", 20, |b| {
        b.js("return document.body.dataset.live", json!([])).ok() == Some(json!("true"))
    })?;
    board.js(
        "window.__seen = {}; new MutationObserver(() => { const n = document.getElementById('latest-number').textContent; if (!(n in window.__seen)) window.__seen[n] = Date.now(); }).observe(document.getElementById('latest'), { childList: true, subtree: true, characterData: true });",
        json!([]),
    )?;

    let mut raw = Vec::new();
    let mut sent_at = Vec::new();
    for i in 0..calls {
        if i > 0 {
            let (s, _) = send(
                c.post(format!("{}/api/v1/windows/1/no-show", d.url))
                    .header("Authorization", &token)
                    .send_json(json!({})),
            );
            anyhow::ensure!(s == 200, "no-show failed");
        }
        std::thread::sleep(Duration::from_millis(300));
        let t0 = Instant::now();
        let at = epoch_ms();
        let (s, body) = send(
            c.post(format!("{}/api/v1/windows/1/call-next", d.url))
                .header("Authorization", &token)
                .send_json(json!({})),
        );
        anyhow::ensure!(s == 200, "call failed: {body}");
        let number = body["events"]
            .as_array()
            .and_then(|e| e.iter().find(|e| e["type"] == "ticket_called"))
            .and_then(|e| e["number"].as_str())
            .unwrap_or_default()
            .to_string();
        loop {
            line.clear();
            anyhow::ensure!(sse.read_line(&mut line)? > 0, "stream closed");
            if line.starts_with("event: ticket_called") {
                raw.push(t0.elapsed().as_secs_f64() * 1000.0);
                break;
            }
        }
        sent_at.push((number, at));
    }
    let last = sent_at.last().map(|(n, _)| n.clone()).unwrap_or_default();
    board.wait_for("the last call on the board", 20, |b| {
        b.text("#latest-number") == last
    })?;
    let seen = board.js("return window.__seen", json!([]))?;
    let mut dom: Vec<f64> = sent_at
        .iter()
        .filter_map(|(n, at)| seen[n].as_f64().map(|t| t - at))
        .collect();
    drop(board);
    drop(d);

    let n = dom.len();
    let (raw50, raw95) = (percentile(&mut raw, 0.5), percentile(&mut raw, 0.95));
    let (dom50, dom95) = (percentile(&mut dom, 0.5), percentile(&mut dom, 0.95));
    println!("calls measured: {n} of {calls}");
    println!("call -> SSE event at a bare reader : p50 {raw50:.1} ms, p95 {raw95:.1} ms");
    println!("call -> number in the board's DOM  : p50 {dom50:.1} ms, p95 {dom95:.1} ms");
    println!(
        "board / bare reader: p50 x{:.2}, p95 x{:.2}",
        dom50 / raw50.max(0.001),
        dom95 / raw95.max(0.001)
    );
    Ok(())
}
