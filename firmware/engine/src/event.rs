//! Events: what happened, in the order it happened. They are the audit log and the
//! outbox to the hall server at once, so each says who, where and which ticket.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::command::TransferTarget;
use crate::model::{Appointment, Class, Rating, Role, Ticket, TicketId};

/// Bit flags of [`Ticket::alarms`]: a warning is raised once per ticket.
pub struct Alarm;

impl Alarm {
    /// The wait went over the service's threshold.
    pub const WAIT: u8 = 1;
    /// Service went over the service's time limit.
    pub const OVERTIME: u8 = 2;
}

/// Why a ticket was withdrawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CancelReason {
    /// The citizen or staff withdrew it.
    Withdrawn,
    /// The service day ended before it was served.
    DayEnded,
}

/// Why a staff member left a window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignOutReason {
    /// They signed out.
    Requested,
    /// Someone else signed in at the window.
    Replaced,
    /// They signed in at another window.
    MovedWindow,
    /// Their account was disabled or removed, or no longer lists this window.
    AccountChanged,
}

/// Something that happened in the hall.
// `TicketIssued` carries the whole ticket (the audit record of what was issued, the
// desk's reason and issuer included); events are made once and stored, not held in bulk.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// A new service day began; numbering restarts.
    DayStarted {
        /// The new day.
        day: NaiveDate,
        /// The day that ended.
        previous: NaiveDate,
    },
    /// A ticket was issued.
    TicketIssued {
        /// The whole ticket as issued.
        ticket: Ticket,
        /// People ahead of it at that moment.
        ahead: u32,
    },
    /// A ticket was called to a window (first call there).
    TicketCalled {
        /// Ticket id.
        ticket: TicketId,
        /// Its number.
        number: String,
        /// Its service.
        service: String,
        /// Its class.
        class: Class,
        /// The window.
        window: u32,
        /// The staff member.
        staff: String,
        /// Called by number (指呼) rather than by the call order.
        direct: bool,
        /// Seconds from issue to this call.
        waited_secs: i64,
    },
    /// The current ticket was called again.
    TicketRecalled {
        /// Ticket id.
        ticket: TicketId,
        /// Its number.
        number: String,
        /// The window.
        window: u32,
        /// The staff member.
        staff: String,
        /// Which recall this is (1 = first recall).
        count: u32,
    },
    /// The citizen arrived at the window.
    ServingStarted {
        /// Ticket id.
        ticket: TicketId,
        /// Its number.
        number: String,
        /// The window.
        window: u32,
        /// The staff member.
        staff: String,
    },
    /// The called citizen did not come.
    TicketNoShow {
        /// Ticket id.
        ticket: TicketId,
        /// Its number.
        number: String,
        /// The window.
        window: u32,
        /// The staff member.
        staff: String,
        /// Sent to the back of the queue rather than ended.
        requeued: bool,
    },
    /// A ticket was moved, keeping its issue time.
    TicketTransferred {
        /// Ticket id.
        ticket: TicketId,
        /// Its number.
        number: String,
        /// The service it was in.
        from_service: String,
        /// Where it went.
        to: TransferTarget,
        /// The window that transferred it.
        window: u32,
        /// The staff member.
        staff: String,
    },
    /// Service is done.
    TicketFinished {
        /// Ticket id.
        ticket: TicketId,
        /// Its number.
        number: String,
        /// Its service.
        service: String,
        /// The window.
        window: u32,
        /// The staff member.
        staff: String,
        /// 办件编号.
        case_no: Option<String>,
        /// Seconds at the window.
        served_secs: i64,
    },
    /// A ticket was withdrawn.
    TicketCancelled {
        /// Ticket id.
        ticket: TicketId,
        /// Its number.
        number: String,
        /// Who asked: `citizen` (holding the ticket's token), `staff:<id>`, `day_end`.
        by: String,
        /// Why.
        reason: CancelReason,
        /// The reason a member of staff gave for withdrawing a citizen's ticket.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<String>,
    },
    /// A staff member signed in.
    StaffSignedIn {
        /// The window.
        window: u32,
        /// The staff member.
        staff: String,
        /// A or B.
        role: Role,
    },
    /// A staff member left.
    StaffSignedOut {
        /// The window.
        window: u32,
        /// The staff member.
        staff: String,
        /// Why.
        reason: SignOutReason,
    },
    /// Calling stopped at a window.
    WindowPaused {
        /// The window.
        window: u32,
        /// The staff member.
        staff: String,
        /// Why.
        reason: String,
    },
    /// Calling resumed.
    WindowResumed {
        /// The window.
        window: u32,
        /// The staff member.
        staff: String,
        /// How long it was paused.
        paused_secs: i64,
    },
    /// A 好差评 rating was recorded.
    RatingRecorded {
        /// The record.
        rating: Rating,
        /// It replaces an earlier press for the same ticket.
        replaced: bool,
    },
    /// An appointment was booked.
    AppointmentBooked {
        /// The booking.
        appointment: Appointment,
    },
    /// An appointment was checked in and became a ticket.
    AppointmentCheckedIn {
        /// Appointment code.
        code: String,
        /// The ticket.
        ticket: TicketId,
    },
    /// An appointment's check-in window passed unused.
    AppointmentMissed {
        /// Appointment code.
        code: String,
        /// Service code.
        service: String,
    },
    /// 预警: a citizen has waited longer than the service allows.
    WaitAlarm {
        /// Ticket id.
        ticket: TicketId,
        /// Its number.
        number: String,
        /// Service code.
        service: String,
        /// Seconds waited so far.
        waited_secs: i64,
    },
    /// 预警: service at a window is taking longer than its limit.
    ServiceOverTime {
        /// Ticket id.
        ticket: TicketId,
        /// Its number.
        number: String,
        /// The window.
        window: u32,
        /// Seconds at the window so far.
        served_secs: i64,
    },
    /// 预警: a queue grew past its alarm level.
    QueueAlarm {
        /// Service code.
        service: String,
        /// People waiting.
        waiting: u32,
    },
    /// 预警: a window has been paused too long.
    PauseAlarm {
        /// The window.
        window: u32,
        /// Seconds paused so far.
        paused_secs: i64,
    },
    /// 预警: a window has had nobody signed in for too long during office hours.
    UnmannedAlarm {
        /// The window.
        window: u32,
        /// Seconds of office time it has been empty so far.
        unmanned_secs: i64,
    },
}

impl Event {
    /// The snake_case type name used in the events table and on the wire.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::DayStarted { .. } => "day_started",
            Event::TicketIssued { .. } => "ticket_issued",
            Event::TicketCalled { .. } => "ticket_called",
            Event::TicketRecalled { .. } => "ticket_recalled",
            Event::ServingStarted { .. } => "serving_started",
            Event::TicketNoShow { .. } => "ticket_no_show",
            Event::TicketTransferred { .. } => "ticket_transferred",
            Event::TicketFinished { .. } => "ticket_finished",
            Event::TicketCancelled { .. } => "ticket_cancelled",
            Event::StaffSignedIn { .. } => "staff_signed_in",
            Event::StaffSignedOut { .. } => "staff_signed_out",
            Event::WindowPaused { .. } => "window_paused",
            Event::WindowResumed { .. } => "window_resumed",
            Event::RatingRecorded { .. } => "rating_recorded",
            Event::AppointmentBooked { .. } => "appointment_booked",
            Event::AppointmentCheckedIn { .. } => "appointment_checked_in",
            Event::AppointmentMissed { .. } => "appointment_missed",
            Event::WaitAlarm { .. } => "wait_alarm",
            Event::ServiceOverTime { .. } => "service_over_time",
            Event::QueueAlarm { .. } => "queue_alarm",
            Event::PauseAlarm { .. } => "pause_alarm",
            Event::UnmannedAlarm { .. } => "unmanned_alarm",
        }
    }
}
