//! Commands: everything that can ask the queue to change.

use serde::{Deserialize, Serialize};

use crate::model::{Class, Level, Role, TicketId};
use crate::time::Timestamp;

/// Where a transfer sends a ticket.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransferTarget {
    /// To the queue of another service.
    Service(String),
    /// Reserved for one window.
    Window(u32),
}

/// A request to change the queue. Window actions name the window and the staff member
/// acting, and the engine checks that this person is the one signed in there.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Command {
    /// Take a ticket.
    Issue {
        /// Service code.
        service: String,
        /// Normal or green channel (appointments come through `CheckIn`).
        class: Class,
        /// A retry with the same key returns the same ticket.
        idempotency_key: Option<String>,
        /// Opaque citizen key, for the per-citizen daily limit.
        citizen: Option<String>,
        /// Where it was taken.
        channel: String,
        /// SHA-256 (hex) of the ticket's secret token, which only the citizen holds (the
        /// kiosk's answer, the QR on the ticket): it proves the citizen's own requests.
        token_hash: Option<String>,
        /// Why a green ticket is green (the reason's code from `[desk] green_reasons`,
        /// `other:<note>` with a note): the audit of every priority ticket. Only with
        /// `class: Green`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        green_reason: Option<String>,
        /// 代办: taken for a citizen by someone acting for them.
        #[serde(default, skip_serializing_if = "crate::model::is_false")]
        proxy: bool,
        /// The staff id of who issued it for the citizen (the guide desk).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        issued_by: Option<String>,
    },
    /// Sign a staff member in at a window (replacing whoever was there).
    SignIn {
        /// Window number.
        window: u32,
        /// Staff id.
        staff: String,
        /// A or B role.
        role: Role,
    },
    /// Sign out.
    SignOut {
        /// Window number.
        window: u32,
        /// Staff id.
        staff: String,
    },
    /// Sign a staff member out of a window because their account no longer lets them
    /// work there (disabled, removed, or the window taken off their list).
    RevokeSignIn {
        /// Window number.
        window: u32,
        /// Staff id.
        staff: String,
    },
    /// Call the next citizen by the call order.
    CallNext {
        /// Window number.
        window: u32,
        /// Staff id.
        staff: String,
    },
    /// Call a given number (指呼), including a returning no-show.
    CallNumber {
        /// Window number.
        window: u32,
        /// Staff id.
        staff: String,
        /// The number, e.g. "A012".
        number: String,
    },
    /// Call the current ticket again.
    Recall {
        /// Window number.
        window: u32,
        /// Staff id.
        staff: String,
    },
    /// The citizen arrived at the window.
    StartServing {
        /// Window number.
        window: u32,
        /// Staff id.
        staff: String,
    },
    /// The called citizen did not come.
    NoShow {
        /// Window number.
        window: u32,
        /// Staff id.
        staff: String,
    },
    /// Move the current ticket to another service or window, keeping its issue time.
    Transfer {
        /// Window number.
        window: u32,
        /// Staff id.
        staff: String,
        /// Where to.
        to: TransferTarget,
    },
    /// Stop calling at this window.
    Pause {
        /// Window number.
        window: u32,
        /// Staff id.
        staff: String,
        /// Shown to supervisors.
        reason: String,
    },
    /// Calling may go on.
    Resume {
        /// Window number.
        window: u32,
        /// Staff id.
        staff: String,
    },
    /// The current ticket is done; arms the rating pad.
    Finish {
        /// Window number.
        window: u32,
        /// Staff id.
        staff: String,
        /// 办件编号 of the application it produced.
        case_no: Option<String>,
    },
    /// Withdraw a waiting ticket.
    Cancel {
        /// The ticket.
        ticket: TicketId,
        /// Who asked (`citizen`, `staff:<id>`).
        by: String,
        /// The reason staff gave (required of staff by the API).
        note: Option<String>,
    },
    /// Rate a finished ticket.
    Rate {
        /// The ticket.
        ticket: TicketId,
        /// The level.
        level: Level,
        /// Reasons from the configured list.
        reasons: Vec<String>,
        /// Free text.
        comment: Option<String>,
        /// Channel code, set by the controller from who sent the rating (never from
        /// the rating's own body).
        channel: String,
        /// The window whose rating pad sent it: the ticket must have been finished
        /// there. `None` for a kiosk, which may rate any finished ticket.
        window: Option<u32>,
    },
    /// Book an appointment slot.
    Book {
        /// Service code.
        service: String,
        /// Slot start.
        slot_at: Timestamp,
        /// The code the citizen will show.
        code: String,
        /// Opaque citizen key.
        citizen: Option<String>,
        /// The keyed hash of the citizen's mobile number, so the guide desk can find the
        /// appointment by it; never serialized into an event.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mobile: Option<String>,
        /// The number masked (`138****5678`), for the desk's screen.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mobile_masked: Option<String>,
    },
    /// Check an appointment in: it becomes a ticket.
    CheckIn {
        /// Appointment code.
        code: String,
        /// Retry key.
        idempotency_key: Option<String>,
        /// Where.
        channel: String,
        /// SHA-256 (hex) of the new ticket's secret token, as for `Issue`.
        token_hash: Option<String>,
    },
    /// Let time pass: day rollover, warnings and missed appointments.
    Tick,
}
