//! The task owning a Modbus `[[bus]]` (the hall-device profile of `docs/protocol.md`,
//! through `hallq_hardware::window::bus`), turned into [`LinkEvent`]s.

use std::time::Duration;

use hallq_hardware::window::bus::{self, BusConfig, BusDevice, BusEvent};
use hallq_hardware::window::regmap::{DeviceKind, fault};
use tokio::sync::mpsc;

use super::config::{WindowBusConfig, rating_key_map};
use super::link::{DeviceLink, LinkEvent, LinkSetup, Placement};
use crate::devices::health::Health;

/// Start the task owning a Modbus `[[bus]]` (`hallq_hardware::window::bus`).
pub fn modbus_link(name: &str, b: &WindowBusConfig) -> LinkSetup {
    let mut bc = BusConfig::new(
        name,
        &b.port,
        b.devices
            .iter()
            .map(|d| BusDevice {
                unit: d.unit,
                kind: d.kind,
            })
            .collect(),
    );
    bc.baud = b.baud;
    bc.response_timeout = Duration::from_millis(b.response_timeout_ms.max(10));
    bc.key_poll = Duration::from_millis(b.key_poll_ms.max(10));
    let (handle, mut events) = bus::spawn(bc);
    let (tx, rx) = mpsc::unbounded_channel();
    let bus_name = name.to_string();
    tokio::spawn(async move {
        while let Some(e) = events.recv().await {
            let ev = match e {
                BusEvent::Key { unit, key, seq } => LinkEvent::Key {
                    unit,
                    key,
                    seq: Some(seq),
                },
                BusEvent::Online { unit, identity } => LinkEvent::Online {
                    unit,
                    lines: Some(identity.lines),
                },
                BusEvent::Offline { unit, reason } => LinkEvent::Offline { unit, reason },
                BusEvent::Faults { unit, bits } => LinkEvent::Health {
                    unit,
                    health: if bits == 0 {
                        Health::Ok
                    } else if bits & fault::DISPLAY != 0 {
                        Health::fault("display_fault", fault::names(bits).join(","))
                    } else {
                        Health::warning("device_warning", fault::names(bits).join(","))
                    },
                },
                BusEvent::PortDown { reason } => {
                    tracing::warn!(bus = %bus_name, "window bus port down: {reason}");
                    continue;
                }
                BusEvent::PortUp | BusEvent::Shown { .. } => continue,
            };
            if tx.send(ev).is_err() {
                break;
            }
        }
    });
    let (show, confirm) = (handle.clone(), handle.clone());
    LinkSetup {
        link: DeviceLink::new(
            name,
            true,
            move |unit, c| show.show(unit, c).is_ok(),
            move || handle.shutdown(),
        )
        .with_confirm(move |unit, seq| {
            let _ = confirm.confirm(unit, seq);
        }),
        events: rx,
        devices: b
            .devices
            .iter()
            .map(|d| Placement {
                unit: d.unit,
                kind: d.kind,
                window: d.window,
                keymap: (d.kind == DeviceKind::RatingKeypad)
                    .then(|| rating_key_map(&d.levels, d.keys, &[]).ok())
                    .flatten(),
                armed_for: Duration::from_secs(b.rating_armed_secs.max(1)),
                lines: None,
            })
            .collect(),
    }
}
