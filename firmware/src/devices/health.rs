//! Device health: what each device (printer, bus displays, keypads, voice) reports, kept
//! in one registry so that the kiosk, the supervision page and the uplink see the same
//! picture, and turned into `device_fault` / `device_recovered` events only when a
//! state changes — a printer polled every few seconds must not flood the audit log.
//!
//! The registry is seeded from the events table at start, so a fault that cleared while
//! the controller was down still gets its recovered event.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use hallq_engine::Timestamp;
use serde::{Deserialize, Serialize};

use crate::core::{CoreError, HallCore, wall_now};
use crate::events::HallEvent;
use crate::store::{NewEvent, StoreError};

/// How a device is doing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Health {
    /// Working.
    Ok,
    /// Working, but someone should act soon (paper near end).
    Warning {
        /// Stable machine code, e.g. `paper_near_end`.
        code: String,
        /// Human detail for the supervisor.
        detail: String,
    },
    /// Not working (paper out, cover open, offline, unplugged).
    Fault {
        /// Stable machine code, e.g. `paper_out`.
        code: String,
        /// Human detail for the supervisor.
        detail: String,
    },
}

impl Health {
    /// A fault with a code and detail.
    pub fn fault(code: &str, detail: impl Into<String>) -> Health {
        Health::Fault {
            code: code.into(),
            detail: detail.into(),
        }
    }

    /// A warning with a code and detail.
    pub fn warning(code: &str, detail: impl Into<String>) -> Health {
        Health::Warning {
            code: code.into(),
            detail: detail.into(),
        }
    }

    /// The machine code, `ok` when working.
    pub fn code(&self) -> &str {
        match self {
            Health::Ok => "ok",
            Health::Warning { code, .. } | Health::Fault { code, .. } => code,
        }
    }

    /// The device can do its job (a warning still works).
    pub fn usable(&self) -> bool {
        !matches!(self, Health::Fault { .. })
    }
}

/// The current state of one device, as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceState {
    /// Device id, e.g. `printer` or `bus1/display3`.
    pub device: String,
    /// Its health.
    pub health: Health,
    /// Since when (ms since the epoch).
    pub since: i64,
}

/// The shared registry; cheap to clone.
#[derive(Clone, Default)]
pub struct Devices {
    inner: Arc<Mutex<BTreeMap<String, DeviceState>>>,
    hall: Option<HallCore>,
}

impl Devices {
    /// A registry that writes its events through `hall`, seeded from the stored events.
    pub async fn load(hall: HallCore) -> Result<Devices, CoreError> {
        let stored = hall
            .query(|_, store| store.device_events())
            .await?
            .map_err(|e: StoreError| CoreError::Store(e.to_string()))?;
        let mut map = BTreeMap::new();
        for (at, ev) in stored {
            let (device, health) = match ev {
                HallEvent::DeviceFault {
                    device,
                    severity,
                    code,
                    detail,
                } if severity == "warning" => (device, Health::Warning { code, detail }),
                HallEvent::DeviceFault {
                    device,
                    code,
                    detail,
                    ..
                } => (device, Health::Fault { code, detail }),
                HallEvent::DeviceRecovered { device, .. } => (device, Health::Ok),
                _ => continue,
            };
            map.insert(
                device.clone(),
                DeviceState {
                    device,
                    health,
                    since: at,
                },
            );
        }
        Ok(Devices {
            inner: Arc::new(Mutex::new(map)),
            hall: Some(hall),
        })
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, DeviceState>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records `health` for `device`; returns the events to store if it changed.
    fn update(&self, device: &str, health: Health, now: Timestamp) -> Vec<NewEvent> {
        let mut map = self.lock();
        let previous = map.get(device).map(|d| (d.health.clone(), d.since));
        if previous.as_ref().map(|p| &p.0) == Some(&health) {
            return Vec::new();
        }
        map.insert(
            device.to_string(),
            DeviceState {
                device: device.to_string(),
                health: health.clone(),
                since: now.0,
            },
        );
        drop(map);
        let mut out = Vec::new();
        if let Some((old, since)) = previous
            && old != Health::Ok
            && old.code() != health.code()
        {
            out.push(HallEvent::DeviceRecovered {
                device: device.to_string(),
                code: old.code().to_string(),
                down_ms: now.0 - since,
            });
        }
        match health {
            Health::Ok => {}
            Health::Warning { code, detail } => out.push(HallEvent::DeviceFault {
                device: device.to_string(),
                severity: "warning".into(),
                code,
                detail,
            }),
            Health::Fault { code, detail } => out.push(HallEvent::DeviceFault {
                device: device.to_string(),
                severity: "fault".into(),
                code,
                detail,
            }),
        }
        out.iter()
            .filter_map(|e| NewEvent::encode(now, e.kind(), e).ok())
            .collect()
    }

    /// Reports a device's health from async code; stores an event when it changed.
    pub async fn report(&self, device: &str, health: Health) {
        let events = self.update(device, health, wall_now());
        if let (false, Some(hall)) = (events.is_empty(), &self.hall)
            && let Err(e) = hall.append(events).await
        {
            tracing::error!(error = %e, device, "could not store a device event");
        }
    }

    /// Reports from a device's own thread (never from inside the async runtime).
    pub fn report_blocking(&self, device: &str, health: Health) {
        let events = self.update(device, health, wall_now());
        if let (false, Some(hall)) = (events.is_empty(), &self.hall)
            && let Err(e) = hall.append_blocking(events)
        {
            tracing::error!(error = %e, device, "could not store a device event");
        }
    }

    /// Every known device, by id.
    pub fn snapshot(&self) -> Vec<DeviceState> {
        self.lock().values().cloned().collect()
    }

    /// One device's health, if it ever reported.
    pub fn get(&self, device: &str) -> Option<DeviceState> {
        self.lock().get(device).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(events: &[NewEvent]) -> Vec<&str> {
        events.iter().map(|e| e.kind.as_str()).collect()
    }

    #[test]
    fn only_changes_make_events() {
        let d = Devices::default();
        let t = Timestamp(1_000);
        assert!(d.update("printer", Health::Ok, t).is_empty());
        assert!(d.update("printer", Health::Ok, t).is_empty());
        let e = d.update(
            "printer",
            Health::fault("paper_out", "no paper"),
            Timestamp(2_000),
        );
        assert_eq!(kinds(&e), ["device_fault"]);
        assert!(
            d.update("printer", Health::fault("paper_out", "no paper"), t)
                .is_empty()
        );
        let e = d.update("printer", Health::Ok, Timestamp(5_000));
        assert_eq!(kinds(&e), ["device_recovered"]);
        assert!(
            e[0].payload.contains("\"down_ms\":3000"),
            "{}",
            e[0].payload
        );
    }

    #[test]
    fn a_fault_that_changes_cause_recovers_the_old_one_first() {
        let d = Devices::default();
        let t = Timestamp(0);
        d.update("printer", Health::fault("cover_open", "cover"), t);
        let e = d.update("printer", Health::fault("paper_out", "paper"), t);
        assert_eq!(kinds(&e), ["device_recovered", "device_fault"]);
        let e = d.update("printer", Health::warning("paper_near_end", "low"), t);
        assert_eq!(kinds(&e), ["device_recovered", "device_fault"]);
        assert!(e[1].payload.contains("\"severity\":\"warning\""));
        assert!(d.get("printer").unwrap().health.usable());
    }
}
