//! A simulated window bus on a pseudo-terminal, for trying Modbus tools (or a device
//! design) against the hall-device profile of `docs/protocol.md`.
//!
//! ```text
//! cargo run -p hallq-hardware --example window_sim -- /tmp/hallq-bus0
//! mbpoll -m rtu -b 9600 -P none -a 3 -0 -t 3:hex -r 0 -c 12 -1 /tmp/hallq-bus0
//! ```
//!
//! Devices: window screen at unit 3, hall board 10, caller keypad 23, rating keypad 33.
//! Commands on standard input, one a line:
//! `press UNIT CODE` (key code, e.g. 0x0101), `offline UNIT`, `online UNIT`,
//! `cycle UNIT` (power cut), `unplug`, `plug`, `show UNIT` (print its lines),
//! `png UNIT FILE` (render its LED matrix), `quit`.

use std::io::BufRead;
use std::path::PathBuf;

use hallq_hardware::window::font::BitmapFont;
use hallq_hardware::window::keys::Key;
use hallq_hardware::window::sim::{SimBus, SimSpec};

fn parse_u16(s: &str) -> Option<u16> {
    match s.strip_prefix("0x") {
        Some(h) => u16::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let link = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "/tmp/hallq-bus0".into()),
    );
    let bus = SimBus::new(&[
        SimSpec::window_screen(3),
        SimSpec::hall_board(10),
        SimSpec::caller_keypad(23),
        SimSpec::rating_keypad(33, 5),
    ]);
    bus.plug(&link)?;
    println!(
        "simulated window bus on {} (units 3 screen, 10 board, 23 caller, 33 rating)",
        link.display()
    );
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let font = BitmapFont::find().ok();
    while let Some(line) = rx.recv().await {
        let words: Vec<&str> = line.split_whitespace().collect();
        let unit = |i: usize| words.get(i).and_then(|w| w.parse::<u8>().ok());
        let result: anyhow::Result<String> = (|| {
            Ok(match words.as_slice() {
                ["press", _, code] => {
                    let code = parse_u16(code).ok_or_else(|| anyhow::anyhow!("bad key code"))?;
                    let key = Key::from_code(code).ok_or_else(|| anyhow::anyhow!("key code {code:#06x} not in the profile"))?;
                    format!("seq {:?}", bus.press(unit(1).unwrap_or(0), key)?)
                }
                ["offline", _] => format!("{:?}", bus.set_online(unit(1).unwrap_or(0), false)?),
                ["online", _] => format!("{:?}", bus.set_online(unit(1).unwrap_or(0), true)?),
                ["cycle", _] => format!("{:?}", bus.power_cycle(unit(1).unwrap_or(0))?),
                ["unplug"] => {
                    bus.unplug();
                    "unplugged".into()
                }
                ["plug"] => {
                    bus.plug(&link)?;
                    "plugged".into()
                }
                ["show", _] => format!("{:?}", bus.texts(unit(1).unwrap_or(0))?),
                ["png", _, file] => {
                    let font = font.as_ref().ok_or_else(|| anyhow::anyhow!("install the Debian package unifont"))?;
                    std::fs::write(file, bus.render_png(unit(1).unwrap_or(0), font)?)?;
                    format!("wrote {file}")
                }
                ["quit"] => return Err(anyhow::anyhow!("quit")),
                _ => "commands: press UNIT CODE | offline UNIT | online UNIT | cycle UNIT | unplug | plug | show UNIT | png UNIT FILE | quit".into(),
            })
        })();
        match result {
            Ok(s) => println!("{s}"),
            Err(e) if e.to_string() == "quit" => break,
            Err(e) => println!("error: {e}"),
        }
    }
    bus.unplug();
    Ok(())
}
