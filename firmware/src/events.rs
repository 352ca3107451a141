//! Committed events as types. Engine events are [`hallq_engine::Event`]; every event
//! that does not come from the engine (devices, kiosk lock and board notice, staff
//! accounts, the hall server's configuration) is a [`HallEvent`], in this one module.
//! A consumer matches on [`Committed`] instead of on type strings and JSON.
//!
//! Adding a type is one variant here (its fields as `docs/events.md` lists them). A
//! stored event this build does not know (written by a newer one, say) still flows, as
//! [`Committed::Other`], and its JSON reaches the stream and the uplink unchanged.

use hallq_engine::{Event, Role};
use serde::{Deserialize, Serialize};

/// What a staff member may do (a staff account's roles; `store::staff` keeps accounts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    /// Work at a window.
    Staff,
    /// Work at the guide desk (导办台): issue tickets for citizens (green channel, proxy),
    /// find and check in appointments, reprint, answer the kiosks' help requests.
    Desk,
    /// Watch the hall and read reports; may also work at the guide desk.
    Supervisor,
    /// Configure the hall.
    Admin,
}

impl Permission {
    /// Parses `staff`, `desk`, `supervisor` or `admin`.
    pub fn parse(s: &str) -> Option<Permission> {
        Some(match s {
            "staff" => Permission::Staff,
            "desk" => Permission::Desk,
            "supervisor" => Permission::Supervisor,
            "admin" => Permission::Admin,
            _ => return None,
        })
    }

    /// Whether an account with this role may do what `needed` allows: admin may do
    /// everything, a supervisor also works at the guide desk, otherwise only the role
    /// itself.
    pub fn grants(self, needed: Permission) -> bool {
        self == needed
            || self == Permission::Admin
            || (self == Permission::Supervisor && needed == Permission::Desk)
    }
}

/// Who changed a staff account: `by` is the admin's staff id on the web (`via` =
/// `web`), or the login that ran `hallq staff` (`via` = `cli`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// Staff id or login.
    #[serde(default)]
    pub by: String,
    /// `web` or `cli`.
    #[serde(default)]
    pub via: String,
}

/// Events the controller records beside the engine's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum HallEvent {
    /// A device stopped working or raised a warning.
    DeviceFault {
        /// Device id.
        device: String,
        /// `fault` or `warning`.
        severity: String,
        /// Machine code.
        code: String,
        /// Human detail.
        detail: String,
    },
    /// A device that had a fault or warning works again.
    DeviceRecovered {
        /// Device id.
        device: String,
        /// The code it recovered from.
        code: String,
        /// How long it was out (ms).
        down_ms: i64,
    },
    /// The hall server locked the kiosk: tickets are refused with `message`.
    KioskLocked {
        /// What the kiosk says.
        #[serde(default)]
        message: String,
        /// The hall server's command.
        #[serde(default)]
        command_id: String,
    },
    /// The kiosk issues tickets again.
    KioskUnlocked {
        /// The hall server's command.
        #[serde(default)]
        command_id: String,
    },
    /// A notice scrolls on the board until `until` (ms), or until cleared.
    NoticeShown {
        /// The text.
        #[serde(default)]
        text: String,
        /// When it ends.
        #[serde(default)]
        until: Option<i64>,
        /// The hall server's command.
        #[serde(default)]
        command_id: String,
    },
    /// The board notice was taken down.
    NoticeCleared {
        /// The hall server's command.
        #[serde(default)]
        command_id: String,
    },
    /// A staff account was created.
    StaffAdded {
        /// Staff id.
        staff: String,
        /// Its permissions.
        roles: Vec<Permission>,
        /// Its windows, with the A/B role at each.
        windows: Vec<(u32, Role)>,
        /// Who did it and from where.
        #[serde(flatten)]
        by: Actor,
    },
    /// A staff account was disabled: it cannot sign in, its sessions ended.
    StaffDisabled {
        /// Staff id.
        staff: String,
        /// Who did it and from where.
        #[serde(flatten)]
        by: Actor,
    },
    /// A disabled account may sign in again.
    StaffEnabled {
        /// Staff id.
        staff: String,
        /// Who did it and from where.
        #[serde(flatten)]
        by: Actor,
    },
    /// An account got a new PIN (never in the event); its sessions ended.
    StaffPinReset {
        /// Staff id.
        staff: String,
        /// Who did it and from where.
        #[serde(flatten)]
        by: Actor,
    },
    /// A lockout after wrong PINs was lifted.
    StaffUnlocked {
        /// Staff id.
        staff: String,
        /// Who did it and from where.
        #[serde(flatten)]
        by: Actor,
    },
    /// An account's roles and/or windows were replaced; its sessions ended.
    StaffChanged {
        /// Staff id.
        staff: String,
        /// Its permissions now.
        roles: Vec<Permission>,
        /// Its windows now.
        windows: Vec<(u32, Role)>,
        /// Who did it and from where.
        #[serde(flatten)]
        by: Actor,
    },
    /// An account was removed: it never signs in again and its id is never reused.
    StaffRemoved {
        /// Staff id.
        staff: String,
        /// Who did it and from where.
        #[serde(flatten)]
        by: Actor,
    },
    /// A sign-in was refused (recorded one by one before the summaries; kept so that
    /// older events still read).
    SignInFailed {
        /// The staff id given.
        staff: String,
        /// The window asked for, the reason code.
        #[serde(flatten)]
        detail: serde_json::Map<String, serde_json::Value>,
    },
    /// Refused staff sign-ins from one client address, summed up: the first refusal
    /// after a quiet minute at once, the rest at most once a minute.
    SignInFailures {
        /// The client address they came from (`local` without a socket).
        source: String,
        /// Refusals in this summary.
        count: u64,
        /// Refusals by reason code (`invalid_credentials`, `account_locked`,
        /// `wrong_window`, `too_many_attempts`, `busy`, …).
        reasons: std::collections::BTreeMap<String, u64>,
        /// Staff ids tried, at most ten.
        staff: Vec<String>,
        /// Further distinct staff ids tried.
        more_staff: u64,
        /// The first refusal summed up here, ms.
        first_at: i64,
        /// The last one, ms.
        last_at: i64,
    },
    /// A setup pushed by the hall server is in force from this event on.
    ConfigApplied {
        /// Its version.
        version: i64,
        /// Services, windows, guides counts and the previous version.
        #[serde(flatten)]
        detail: serde_json::Map<String, serde_json::Value>,
    },
    /// A citizen pressed the help button (求助) on a kiosk. At most one is open per
    /// kiosk: presses while it is open record nothing more.
    HelpRequested {
        /// The kiosk (its `X-Kiosk-Id`, `kiosk` when it sends none).
        kiosk: String,
        /// The screen it showed (`home`, `services`, `ticket`, …).
        screen: String,
    },
    /// A member of staff acknowledged a kiosk's open help request and is on the way.
    HelpAcknowledged {
        /// The kiosk.
        kiosk: String,
        /// Staff id of who acknowledged it.
        by: String,
    },
    /// A bad rating opened a follow-up (回访整改), due at the end of `due_day`.
    FollowUpOpened {
        /// The ticket rated (one follow-up per ticket).
        ticket: hallq_engine::TicketId,
        /// Its number.
        number: String,
        /// Service code.
        service: String,
        /// Window that served.
        #[serde(default)]
        window: Option<u32>,
        /// Staff id of who served.
        #[serde(default)]
        staff: Option<String>,
        /// The level by name.
        level: String,
        /// The reasons given.
        #[serde(default)]
        reasons: Vec<String>,
        /// When the rating was given (ms).
        rated_at: i64,
        /// The last local day (`YYYY-MM-DD`) it may be done on.
        due_day: String,
        /// The instant that day ends (ms): not closed by then, it is overdue.
        due_at: i64,
    },
    /// The hall server reported a step of a follow-up.
    FollowUpProgressed {
        /// The ticket.
        ticket: hallq_engine::TicketId,
        /// Its number.
        #[serde(default)]
        number: String,
        /// `received`, `rectified`, `visited` or `closed`.
        step: String,
        /// What was done.
        #[serde(default)]
        note: String,
        /// Who did it (the platform's staff).
        #[serde(default)]
        by: String,
        /// After the due time.
        #[serde(default)]
        late: bool,
        /// The hall server's command.
        #[serde(default)]
        command_id: String,
    },
    /// A citizen asked for a text message when the turn is near. The number itself is
    /// kept apart (`store::notices`) and erased with the ticket; here only its mask.
    NoticeRequested {
        /// The ticket.
        ticket: hallq_engine::TicketId,
        /// Its number.
        number: String,
        /// The mobile number, masked: `138****1234`.
        mobile: String,
    },
    /// The turn of a ticket whose citizen asked for a notice is near: the status page
    /// says so, and the text message goes up to the hall server (without the number
    /// here: the uplink sends it apart, see `docs/events.md`). Once per ticket.
    NearTurn {
        /// The ticket.
        ticket: hallq_engine::TicketId,
        /// Its number.
        number: String,
        /// Its service.
        service: String,
        /// People ahead of it now.
        ahead: u32,
        /// The estimated wait now (minutes).
        minutes: u32,
    },
    /// A supervisor followed up a warning (预警纠错): `handled` (处理: acted on it) or
    /// `corrected` (纠错: the warning was wrong), with a note. Once per warning.
    WarningHandled {
        /// The `seq` of the warning's event.
        warning: i64,
        /// Its type (`wait_alarm`, `device_fault`, …).
        warning_type: String,
        /// `handled` or `corrected`.
        outcome: String,
        /// What was done, or why the warning was wrong (no personal data).
        note: String,
        /// Staff id of the supervisor.
        by: String,
    },
    /// A warning nobody followed up within `[supervision] escalate_after_minutes` was
    /// reported upward to the hall server. Once per warning.
    WarningEscalated {
        /// The `seq` of the warning's event.
        warning: i64,
        /// Its type.
        warning_type: String,
        /// When it was raised (ms).
        raised_at: i64,
        /// The setting it went unhandled past (minutes).
        after_minutes: u32,
        /// The warning's own fields (window, service, number, device, …).
        #[serde(flatten)]
        detail: serde_json::Map<String, serde_json::Value>,
    },
    /// A pushed setup was refused; the old one stays.
    ConfigRefused {
        /// Its version.
        #[serde(default)]
        version: Option<i64>,
        /// Key and reason.
        #[serde(flatten)]
        detail: serde_json::Map<String, serde_json::Value>,
    },
}

impl HallEvent {
    /// Its type name, as stored.
    pub fn kind(&self) -> &'static str {
        match self {
            HallEvent::DeviceFault { .. } => "device_fault",
            HallEvent::DeviceRecovered { .. } => "device_recovered",
            HallEvent::KioskLocked { .. } => "kiosk_locked",
            HallEvent::KioskUnlocked { .. } => "kiosk_unlocked",
            HallEvent::NoticeShown { .. } => "notice_shown",
            HallEvent::NoticeCleared { .. } => "notice_cleared",
            HallEvent::StaffAdded { .. } => "staff_added",
            HallEvent::StaffDisabled { .. } => "staff_disabled",
            HallEvent::StaffEnabled { .. } => "staff_enabled",
            HallEvent::StaffPinReset { .. } => "staff_pin_reset",
            HallEvent::StaffUnlocked { .. } => "staff_unlocked",
            HallEvent::StaffChanged { .. } => "staff_changed",
            HallEvent::StaffRemoved { .. } => "staff_removed",
            HallEvent::SignInFailed { .. } => "sign_in_failed",
            HallEvent::SignInFailures { .. } => "sign_in_failures",
            HallEvent::ConfigApplied { .. } => "config_applied",
            HallEvent::ConfigRefused { .. } => "config_refused",
            HallEvent::HelpRequested { .. } => "help_requested",
            HallEvent::HelpAcknowledged { .. } => "help_acknowledged",
            HallEvent::NoticeRequested { .. } => "notice_requested",
            HallEvent::NearTurn { .. } => "near_turn",
            HallEvent::WarningHandled { .. } => "warning_handled",
            HallEvent::WarningEscalated { .. } => "warning_escalated",
            HallEvent::FollowUpOpened { .. } => "follow_up_opened",
            HallEvent::FollowUpProgressed { .. } => "follow_up_progressed",
        }
    }
}

/// A committed event, typed. It lives only while a consumer matches on it, so the
/// size of the engine's variant does not matter (boxing it would only hide the patterns).
#[derive(Debug, Clone, PartialEq)]
#[allow(clippy::large_enum_variant)]
pub enum Committed {
    /// From the engine.
    Engine(Event),
    /// From the controller.
    Hall(HallEvent),
    /// A type this build does not model (its JSON flows on untouched).
    Other {
        /// Its type name.
        kind: String,
    },
}

impl Committed {
    /// Reads a stored event of type `kind` from its payload (which carries its `type`).
    pub fn of(kind: &str, payload: &serde_json::Value) -> Committed {
        if let Ok(ev) = Event::deserialize(payload) {
            return Committed::Engine(ev);
        }
        if let Ok(ev) = HallEvent::deserialize(payload) {
            return Committed::Hall(ev);
        }
        Committed::Other { kind: kind.into() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Stored(serde_json::Value);
    impl Stored {
        fn typed(&self) -> Committed {
            Committed::of(self.0["type"].as_str().unwrap_or_default(), &self.0)
        }
    }
    fn stored(payload: serde_json::Value) -> Stored {
        Stored(payload)
    }

    #[test]
    fn engine_hall_and_unknown_events_are_each_typed() {
        let call = stored(
            serde_json::json!({"type": "window_paused", "window": 3, "staff": "S1", "reason": "x"}),
        );
        assert!(matches!(
            call.typed(),
            Committed::Engine(Event::WindowPaused { window: 3, .. })
        ));
        let applied =
            stored(serde_json::json!({"type": "config_applied", "version": 4, "services": 7}));
        match applied.typed() {
            Committed::Hall(HallEvent::ConfigApplied { version, detail }) => {
                assert_eq!(version, 4);
                assert_eq!(detail["services"], 7);
            }
            other => panic!("{other:?}"),
        }
        let fault = HallEvent::DeviceFault {
            device: "bus0/unit1".into(),
            severity: "fault".into(),
            code: "offline".into(),
            detail: "gone".into(),
        };
        let v = serde_json::to_value(&fault).unwrap();
        assert_eq!(v["type"], fault.kind());
        assert_eq!(stored(v).typed(), Committed::Hall(fault));
        let help = HallEvent::HelpRequested {
            kiosk: "k1".into(),
            screen: "home".into(),
        };
        let v = serde_json::to_value(&help).unwrap();
        assert_eq!(v["type"], "help_requested");
        assert_eq!(stored(v).typed(), Committed::Hall(help));
        let new = stored(serde_json::json!({"type": "lift_called", "floor": 2}));
        assert_eq!(
            new.typed(),
            Committed::Other {
                kind: "lift_called".into()
            }
        );
    }
}
