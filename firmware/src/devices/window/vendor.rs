//! The task owning a vendor-frame `[[bus]]` (`protocol = "vendor"`): it owns the serial
//! port and writes the frames of every screen on it, in the order the controller asked
//! (a call's window screen before the hall board). The screens never answer, so the
//! task watches the port itself: a write error, a hang-up or the device node changing
//! means it is gone; it is reopened with backoff and every screen is redrawn, and all
//! screens are redrawn every `refresh_secs` in case one lost power.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use hallq_hardware::window::DisplayContent;
use hallq_hardware::window::regmap::DeviceKind;
use hallq_hardware::window::text::Gb2312Text;
use hallq_hardware::window::vendor_frame::{MAX_TEXT, VendorDisplay, VendorProfile};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use super::config::{BusProtocol, DEFAULT_VENDOR_REFRESH_SECS, WindowBusConfig, default_armed};
use super::link::{DeviceLink, LinkEvent, LinkSetup, Placement, Reopen, VENDOR_MAX_BACKOFF};

/// Start the task owning a vendor-frame `[[bus]]`: write-only screens on one port.
pub fn vendor_link(name: &str, b: &WindowBusConfig) -> LinkSetup {
    debug_assert_eq!(b.protocol, BusProtocol::Vendor);
    let (tx, rx) = mpsc::unbounded_channel::<(u8, DisplayContent)>();
    let (etx, erx) = mpsc::unbounded_channel();
    let screens: Vec<(u8, u16)> = b
        .devices
        .iter()
        .map(|d| {
            let default = if d.kind == DeviceKind::HallBoard {
                6
            } else {
                2
            };
            (d.unit, d.lines.unwrap_or(default))
        })
        .collect();
    let bus = VendorBus {
        name: name.to_string(),
        port: b.port.clone(),
        baud: b.baud,
        profile: b.vendor_profile(),
        refresh: Duration::from_secs(b.refresh_secs.unwrap_or(DEFAULT_VENDOR_REFRESH_SECS)),
        screens: screens.clone(),
    };
    let task = tokio::spawn(bus.run(rx, etx));
    LinkSetup {
        link: DeviceLink::new(
            name,
            true,
            move |unit, c| tx.send((unit, c)).is_ok(),
            move || task.abort(),
        ),
        events: erx,
        devices: b
            .devices
            .iter()
            .zip(&screens)
            .map(|(d, (_, lines))| Placement {
                unit: d.unit,
                kind: d.kind,
                window: d.window,
                keymap: None,
                armed_for: Duration::from_secs(default_armed()),
                lines: Some(*lines),
            })
            .collect(),
    }
}

struct VendorBus {
    name: String,
    port: String,
    baud: u32,
    profile: VendorProfile,
    refresh: Duration,
    screens: Vec<(u8, u16)>,
}

/// The device node a path leads to, to notice a port replaced under the same name.
fn node_of(path: &str) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.rdev(), m.ino()))
}

impl VendorBus {
    fn frames(&self, addr: u8, content: &DisplayContent) -> Option<Vec<u8>> {
        let lines = self.screens.iter().find(|s| s.0 == addr)?.1;
        let d = VendorDisplay::new(Vec::new(), addr, lines.min(255) as u8, self.profile);
        let mut content = content.clone();
        for l in &mut content.lines {
            if l.text.bytes().len() > MAX_TEXT {
                // A long notice is cut to what the screen's buffer takes rather than
                // leaving the whole screen undrawn.
                tracing::debug!(bus = %self.name, addr, "line cut to {MAX_TEXT} bytes");
                let mut cut = String::new();
                let mut used = 0;
                for ch in l.text.as_str().chars() {
                    used += if ch.is_ascii() { 1 } else { 2 };
                    if used > MAX_TEXT {
                        break;
                    }
                    cut.push(ch);
                }
                if let Ok(t) = Gb2312Text::new(&cut) {
                    l.text = t;
                }
            }
        }
        match d.frames(&content) {
            Ok(f) => Some(f),
            Err(e) => {
                tracing::warn!(bus = %self.name, addr, "cannot show content: {e}");
                None
            }
        }
    }

    // Over 100 lines: the select loop that owns the port, its queue and the refresh timer.
    async fn run(
        self,
        mut cmds: mpsc::UnboundedReceiver<(u8, DisplayContent)>,
        events: mpsc::UnboundedSender<LinkEvent>,
    ) {
        let mut want: BTreeMap<u8, DisplayContent> = BTreeMap::new();
        // A serial port is cheap to look for, and screens wait blank meanwhile.
        let mut reopen = Reopen::new(VENDOR_MAX_BACKOFF);
        let all_offline = |reopen: &mut Reopen, reason: String| {
            if !reopen.offline {
                tracing::warn!(bus = %self.name, port = %self.port, "{reason}");
                for (addr, _) in &self.screens {
                    let _ = events.send(LinkEvent::Offline {
                        unit: *addr,
                        reason: format!("port {}: {reason}", self.port),
                    });
                }
                reopen.offline = true;
            }
        };
        loop {
            let opened =
                tokio_serial::SerialStream::open(&tokio_serial::new(&self.port, self.baud));
            let port = match opened {
                Ok(p) => p,
                Err(e) => {
                    all_offline(&mut reopen, e.to_string());
                    // Keep taking content while waiting, so the redraw is the latest.
                    let wake = tokio::time::sleep(reopen.wait());
                    tokio::pin!(wake);
                    loop {
                        tokio::select! {
                            cmd = cmds.recv() => match cmd {
                                Some((a, c)) => { want.insert(a, c); }
                                None => return,
                            },
                            _ = &mut wake => break,
                        }
                    }
                    continue;
                }
            };
            let node = node_of(&self.port);
            tracing::info!(bus = %self.name, port = %self.port, "vendor screen port open");
            reopen.reset();
            for (addr, lines) in &self.screens {
                let _ = events.send(LinkEvent::Online {
                    unit: *addr,
                    lines: Some(*lines),
                });
            }
            let (mut rd, mut wr) = tokio::io::split(port);
            // Everything is drawn on a new port: a screen may have lost power with it.
            let mut queue: VecDeque<u8> = want.keys().copied().collect();
            let mut next_refresh = tokio::time::Instant::now() + self.refresh;
            let mut check = tokio::time::interval(Duration::from_secs(1));
            let mut buf = [0u8; 64];
            let reason = loop {
                while let Ok((a, c)) = cmds.try_recv() {
                    want.insert(a, c);
                    if !queue.contains(&a) {
                        queue.push_back(a);
                    }
                }
                if let Some(addr) = queue.pop_front() {
                    let Some(bytes) = want.get(&addr).and_then(|c| self.frames(addr, c)) else {
                        continue;
                    };
                    let r = async {
                        wr.write_all(&bytes).await?;
                        wr.flush().await
                    }
                    .await;
                    match r {
                        Ok(()) => continue,
                        Err(e) => break format!("write failed: {e}"),
                    }
                }
                tokio::select! {
                    cmd = cmds.recv() => match cmd {
                        Some((a, c)) => {
                            want.insert(a, c);
                            queue.push_back(a);
                        }
                        None => return,
                    },
                    r = rd.read(&mut buf) => match r {
                        // Screens do not talk; whatever arrives (an echo, noise) is dropped.
                        Ok(n) if n > 0 => {}
                        Ok(_) => break "the port hung up".to_string(),
                        Err(e) => break format!("the port failed: {e}"),
                    },
                    _ = check.tick() => {
                        if node_of(&self.port) != node {
                            break "the port disappeared".to_string();
                        }
                        if !self.refresh.is_zero() && tokio::time::Instant::now() >= next_refresh {
                            next_refresh = tokio::time::Instant::now() + self.refresh;
                            let more: Vec<u8> = want.keys().copied().filter(|a| !queue.contains(a)).collect();
                            queue.extend(more);
                        }
                    }
                }
            };
            all_offline(&mut reopen, reason);
            tokio::time::sleep(reopen.wait()).await;
        }
    }
}
