//! The controller's handle to one port-owning task or thread ([`DeviceLink`]), what such
//! a task reports ([`LinkEvent`]), where its devices sit ([`Placement`]) and the reopen
//! loop every task uses after its device went missing ([`Reopen`], on
//! `hallq_hardware::transport::Backoff`).

use std::time::Duration;

use hallq_hardware::transport::Backoff;
use hallq_hardware::window::DisplayContent;
use hallq_hardware::window::keys::{Key, RatingKeyMap};
use hallq_hardware::window::regmap::DeviceKind;
use tokio::sync::mpsc;

use crate::devices::health::Health;

/// First wait before reopening a device that is missing or failed.
pub const MIN_BACKOFF: Duration = Duration::from_millis(100);
/// Longest wait between attempts to reopen a device.
pub const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Longest wait between attempts to reopen a vendor screens' serial port.
pub const VENDOR_MAX_BACKOFF: Duration = Duration::from_secs(1);

/// What a device task tells the controller, whatever the wiring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkEvent {
    /// A key press, delivered once.
    Key {
        /// Device on the link (unit, address; 0 for a link with one device).
        unit: u8,
        /// The key.
        key: Key,
        /// The press's number on a device that keeps presses until they are confirmed
        /// stored ([`DeviceLink::with_confirm`]).
        seq: Option<u16>,
    },
    /// The device can be reached (first contact, or back).
    Online {
        /// Device.
        unit: u8,
        /// Text lines it shows, if it is a screen that says.
        lines: Option<u16>,
    },
    /// The device (or its port) cannot be reached.
    Offline {
        /// Device.
        unit: u8,
        /// Why, for the supervisor.
        reason: String,
    },
    /// The device reports its own health (latched fault bits and the like).
    Health {
        /// Device.
        unit: u8,
        /// Its state.
        health: Health,
    },
}

type ShowFn = Box<dyn Fn(u8, DisplayContent) -> bool + Send + Sync>;
type StopFn = Box<dyn Fn() + Send + Sync>;
type ConfirmFn = Box<dyn Fn(u8, u16) + Send + Sync>;

/// The controller's handle to the task or thread owning one window device port or
/// device file (not the uplink's MQTT link).
pub struct DeviceLink {
    pub(super) name: String,
    shared: bool,
    show: ShowFn,
    stop: StopFn,
    confirm: Option<ConfirmFn>,
}

impl DeviceLink {
    /// A link named `name`; `shared` when several devices sit on it (device ids are then
    /// `name/unitN`, else just `name`). `show` hands content to the owner and returns
    /// false once the owner has stopped; `stop` stops it.
    pub fn new(
        name: &str,
        shared: bool,
        show: impl Fn(u8, DisplayContent) -> bool + Send + Sync + 'static,
        stop: impl Fn() + Send + Sync + 'static,
    ) -> DeviceLink {
        DeviceLink {
            name: name.to_string(),
            shared,
            show: Box::new(show),
            stop: Box::new(stop),
            confirm: None,
        }
    }

    /// For a link whose devices keep a key press until told it is stored (the Modbus
    /// profile's rating pads): `confirm(unit, seq)` says so.
    pub fn with_confirm(mut self, confirm: impl Fn(u8, u16) + Send + Sync + 'static) -> DeviceLink {
        self.confirm = Some(Box::new(confirm));
        self
    }

    /// The device id used in health and fault events.
    pub fn device_id(&self, unit: u8) -> String {
        if self.shared {
            format!("{}/unit{unit}", self.name)
        } else {
            self.name.clone()
        }
    }

    /// Hands content to the owner; false once it has stopped.
    pub fn show(&self, unit: u8, content: DisplayContent) -> bool {
        (self.show)(unit, content)
    }

    /// Tells the device a key press is stored (or knowingly ignored).
    pub fn confirm(&self, unit: u8, seq: u16) {
        if let Some(c) = &self.confirm {
            c(unit, seq);
        }
    }

    /// Stops the owner.
    pub fn stop(&self) {
        (self.stop)()
    }
}

/// Where a device sits in the hall and what its keys mean.
#[derive(Debug, Clone)]
pub struct Placement {
    /// Device on its link.
    pub unit: u8,
    /// What it is.
    pub kind: DeviceKind,
    /// Its window (none for a hall board).
    pub window: Option<u32>,
    /// A rating pad's level keys; its reason keys are the setup in force's reasons,
    /// read at each press.
    pub keymap: Option<RatingKeyMap>,
    /// How long finish arms this rating pad.
    pub armed_for: Duration,
    /// Text lines, when known before the device says (vendor screens, LED matrices).
    pub lines: Option<u16>,
}

/// A started link with its events and the devices on it: what the controller drives.
pub struct LinkSetup {
    /// The handle.
    pub link: DeviceLink,
    /// Its events.
    pub events: mpsc::UnboundedReceiver<LinkEvent>,
    /// The devices behind it.
    pub devices: Vec<Placement>,
}

/// Opens a device with backoff, reporting offline once per outage and online when it
/// opens.
pub struct Reopen {
    backoff: Backoff,
    /// An outage has been reported and not yet ended.
    pub offline: bool,
}

impl Default for Reopen {
    fn default() -> Self {
        Reopen::new(MAX_BACKOFF)
    }
}

impl Reopen {
    /// Waits from [`MIN_BACKOFF`] doubling up to `max`.
    pub fn new(max: Duration) -> Reopen {
        Reopen {
            backoff: Backoff::new(MIN_BACKOFF, max),
            offline: false,
        }
    }

    /// Reports the device offline, once per outage.
    pub fn failed(&mut self, events: &mpsc::UnboundedSender<LinkEvent>, unit: u8, reason: String) {
        if !self.offline {
            tracing::warn!("window device unit {unit}: {reason}");
            let _ = events.send(LinkEvent::Offline { unit, reason });
            self.offline = true;
        }
    }

    /// How long to wait before the next attempt.
    pub fn wait(&mut self) -> Duration {
        self.backoff.next_delay()
    }

    /// The device opened: the backoff starts over.
    pub fn reset(&mut self) {
        self.backoff.reset();
        self.offline = false;
    }

    /// The device opened: report it online.
    pub fn opened(
        &mut self,
        events: &mpsc::UnboundedSender<LinkEvent>,
        unit: u8,
        lines: Option<u16>,
    ) {
        self.reset();
        let _ = events.send(LinkEvent::Online { unit, lines });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reopening_backs_off_doubling_to_its_limit_and_starts_over_once_open() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut r = Reopen::new(Duration::from_millis(350));
        r.failed(&tx, 3, "gone".into());
        r.failed(&tx, 3, "still gone".into());
        let waits: Vec<u64> = (0..4).map(|_| r.wait().as_millis() as u64).collect();
        assert_eq!(waits, [100, 200, 350, 350]);
        r.opened(&tx, 3, Some(2));
        assert_eq!(r.wait(), MIN_BACKOFF);
        assert!(matches!(
            rx.try_recv(),
            Ok(LinkEvent::Offline { unit: 3, .. })
        ));
        assert_eq!(
            rx.try_recv(),
            Ok(LinkEvent::Online {
                unit: 3,
                lines: Some(2)
            }),
            "one offline per outage"
        );
    }
}
