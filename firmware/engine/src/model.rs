//! The things the engine keeps: tickets, windows, appointments and ratings.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::time::Timestamp;

/// A ticket's identity: unique per controller for ever, assigned in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TicketId(pub u64);

impl std::fmt::Display for TicketId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Where a ticket is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TicketState {
    /// In a queue.
    Waiting,
    /// Called to a window; the citizen is on the way.
    Called,
    /// At the window.
    Serving,
    /// Done.
    Finished,
    /// Did not come (or came too late) and was not requeued.
    NoShow,
    /// Moved to another service's queue or a given window, waiting there.
    Transferred,
    /// Withdrawn by the citizen, staff or the end of the day.
    Cancelled,
}

impl TicketState {
    /// Waiting in some queue, so a window may call it.
    pub fn is_queued(self) -> bool {
        matches!(self, TicketState::Waiting | TicketState::Transferred)
    }

    /// Nothing more will happen to it, except a rating after `Finished`.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            TicketState::Finished | TicketState::NoShow | TicketState::Cancelled
        )
    }

    /// Name used in the database and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            TicketState::Waiting => "waiting",
            TicketState::Called => "called",
            TicketState::Serving => "serving",
            TicketState::Finished => "finished",
            TicketState::NoShow => "no_show",
            TicketState::Transferred => "transferred",
            TicketState::Cancelled => "cancelled",
        }
    }

    /// Inverse of [`TicketState::as_str`].
    pub fn parse(s: &str) -> Option<TicketState> {
        Some(match s {
            "waiting" => TicketState::Waiting,
            "called" => TicketState::Called,
            "serving" => TicketState::Serving,
            "finished" => TicketState::Finished,
            "no_show" => TicketState::NoShow,
            "transferred" => TicketState::Transferred,
            "cancelled" => TicketState::Cancelled,
            _ => return None,
        })
    }
}

/// Priority class; the call order serves classes in this order.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    /// 绿色通道: elderly, disabled, veterans, pregnant women.
    Green,
    /// A checked-in appointment (预约).
    Appointment,
    /// Walk-in.
    #[default]
    Normal,
}

impl Class {
    /// Name used in the database and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Green => "green",
            Class::Appointment => "appointment",
            Class::Normal => "normal",
        }
    }

    /// Inverse of [`Class::as_str`].
    pub fn parse(s: &str) -> Option<Class> {
        Some(match s {
            "green" => Class::Green,
            "appointment" => Class::Appointment,
            "normal" => Class::Normal,
            _ => return None,
        })
    }
}

/// A queue ticket and everything that happened to it today.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ticket {
    /// Controller-wide identity.
    pub id: TicketId,
    /// What the citizen holds: prefix + zero-padded daily sequence.
    pub number: String,
    /// Daily sequence within the service.
    pub seq: u32,
    /// The service it queues for now (changes on transfer).
    pub service: String,
    /// The service it was issued for.
    pub origin_service: String,
    /// Priority class.
    pub class: Class,
    /// Life-cycle state.
    pub state: TicketState,
    /// The service day the number belongs to.
    pub day: NaiveDate,
    /// When it was issued; transfers keep it.
    pub issued_at: Timestamp,
    /// Its place in the queue: the issue time, or the requeue time after a no-show.
    pub queue_at: Timestamp,
    /// An appointment's slot start: from then on it goes ahead of walk-ins.
    pub due_at: Option<Timestamp>,
    /// Reserved for one window after a transfer to that window.
    pub reserved_window: Option<u32>,
    /// The window that called it last.
    pub window: Option<u32>,
    /// The staff member who called it last.
    pub staff: Option<String>,
    /// First call.
    pub called_at: Option<Timestamp>,
    /// Service began.
    pub serving_at: Option<Timestamp>,
    /// Finished, cancelled or ended as a no-show.
    pub closed_at: Option<Timestamp>,
    /// Calls after the first, at the current window.
    pub recalls: u32,
    /// Times marked as not present.
    pub no_shows: u32,
    /// Times moved to another service or window.
    pub transfers: u32,
    /// The client's retry key; the same key never makes a second ticket.
    pub idempotency_key: Option<String>,
    /// An opaque citizen key (the API stores a keyed hash of the ID, never the ID). Kept
    /// in the controller's state only: it is never serialized, so no event, stream or
    /// uplink message carries it.
    #[serde(skip_serializing, default)]
    pub citizen: Option<String>,
    /// The appointment code it was checked in with.
    pub appointment: Option<String>,
    /// 办件编号 of the application the service produced.
    pub case_no: Option<String>,
    /// Where it was taken (kiosk id, "api", "simulator").
    pub channel: String,
    /// SHA-256 (hex) of the ticket's secret token: the citizen proves a request is theirs
    /// (withdrawing it, the phone's status page) by the token, which is stored nowhere.
    #[serde(default)]
    pub token_hash: Option<String>,
    /// Warnings already raised for it (bit flags, see [`crate::event::Alarm`]).
    pub alarms: u8,
    /// Why a green ticket is green: a reason code from `[desk] green_reasons`, or
    /// `other:<note>`; set by whoever decided (the guide desk, the ID card's age).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub green_reason: Option<String>,
    /// 代办: taken by someone acting for the citizen.
    #[serde(default, skip_serializing_if = "is_false")]
    pub proxy: bool,
    /// The staff id of who issued it for the citizen (the guide desk); `None` for a
    /// ticket the citizen took.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issued_by: Option<String>,
}

/// For `skip_serializing_if`: a flag that is off is left out, so old readers and old
/// records agree.
pub fn is_false(b: &bool) -> bool {
    !*b
}

/// An A/B role at the windows (A角/B角): B stands in when A is away.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    /// The window's principal.
    #[default]
    A,
    /// The stand-in.
    B,
}

/// A window's working state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowState {
    /// Window number.
    pub number: u32,
    /// Who is signed in, with their role, and since when.
    pub staff: Option<(String, Role, Timestamp)>,
    /// Paused since, with the reason given.
    pub paused: Option<(Timestamp, String)>,
    /// The ticket being called or served.
    pub current: Option<TicketId>,
    /// A long-pause warning was raised for the current pause.
    pub pause_alarmed: bool,
    /// Without staff since the last sign-out; `None` when nobody has left since the
    /// state was created (the window counts as empty from the opening of the hall).
    #[serde(default)]
    pub vacant_since: Option<Timestamp>,
    /// When the last unmanned-window warning was raised, so it is raised once per
    /// stretch of emptiness within one span of office hours.
    #[serde(default)]
    pub unmanned_alarm_at: Option<Timestamp>,
}

/// The five 好差评 levels, stored by name because provinces number them differently.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Level {
    /// 非常满意
    #[serde(rename = "非常满意", alias = "very_satisfied")]
    VerySatisfied,
    /// 满意
    #[serde(rename = "满意", alias = "satisfied")]
    Satisfied,
    /// 基本满意
    #[serde(rename = "基本满意", alias = "basically_satisfied")]
    BasicallySatisfied,
    /// 不满意
    #[serde(rename = "不满意", alias = "dissatisfied")]
    Dissatisfied,
    /// 非常不满意
    #[serde(rename = "非常不满意", alias = "very_dissatisfied")]
    VeryDissatisfied,
}

impl Level {
    /// All levels, best first.
    pub const ALL: [Level; 5] = [
        Level::VerySatisfied,
        Level::Satisfied,
        Level::BasicallySatisfied,
        Level::Dissatisfied,
        Level::VeryDissatisfied,
    ];

    /// A bad rating needs a reason and a follow-up (回访整改).
    pub fn is_bad(self) -> bool {
        matches!(self, Level::Dissatisfied | Level::VeryDissatisfied)
    }

    /// The national name.
    pub fn name(self) -> &'static str {
        match self {
            Level::VerySatisfied => "非常满意",
            Level::Satisfied => "满意",
            Level::BasicallySatisfied => "基本满意",
            Level::Dissatisfied => "不满意",
            Level::VeryDissatisfied => "非常不满意",
        }
    }

    /// Inverse of [`Level::name`], also taking the English keys.
    pub fn parse(s: &str) -> Option<Level> {
        Level::ALL
            .into_iter()
            .find(|l| l.name() == s || l.key() == s)
    }
}

impl Level {
    /// English key, accepted by the API beside the Chinese name.
    pub fn key(self) -> &'static str {
        match self {
            Level::VerySatisfied => "very_satisfied",
            Level::Satisfied => "satisfied",
            Level::BasicallySatisfied => "basically_satisfied",
            Level::Dissatisfied => "dissatisfied",
            Level::VeryDissatisfied => "very_dissatisfied",
        }
    }
}

/// One 好差评 record, for one ticket.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rating {
    /// The ticket (service event) rated.
    pub ticket: TicketId,
    /// Its number, for people reading the record.
    pub number: String,
    /// Level by name.
    pub level: Level,
    /// Reasons from the fixed list (bad ratings).
    pub reasons: Vec<String>,
    /// Optional free text.
    pub comment: Option<String>,
    /// A bad rating that came without a reason: flagged so follow-up asks for one.
    pub reason_pending: bool,
    /// Channel code (the window pad, a tablet, …).
    pub channel: String,
    /// Service code.
    pub service: String,
    /// Window that served.
    pub window: Option<u32>,
    /// Staff member who served.
    pub staff: Option<String>,
    /// 办件编号, when finish recorded one.
    pub case_no: Option<String>,
    /// When it was given.
    pub at: Timestamp,
}

/// A booked appointment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Appointment {
    /// The code the citizen was given.
    pub code: String,
    /// Service code.
    pub service: String,
    /// Slot start.
    pub slot_at: Timestamp,
    /// Opaque citizen key; never serialized (see [`Ticket::citizen`]).
    #[serde(skip_serializing, default)]
    pub citizen: Option<String>,
    /// The ticket it was checked in with.
    pub ticket: Option<TicketId>,
    /// The check-in window passed without a check-in.
    pub missed: bool,
    /// Keyed hash of the citizen's mobile number (the guide desk finds the appointment
    /// by it); never serialized, erased at check-in and when the appointment ends.
    #[serde(skip_serializing, default)]
    pub mobile: Option<String>,
    /// The number masked (`138****5678`); erased with the hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mobile_masked: Option<String>,
}
