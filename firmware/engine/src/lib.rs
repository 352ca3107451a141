//! The hallq queue engine: a pure, deterministic state machine for a service hall's
//! queue. Commands go in with the instant they happened; events come out. It reads no
//! clock, touches no file or socket, and is built as its own crate so that Cargo itself
//! keeps tokio, SQLite and HTTP out of it. The daemon in `firmware/` drives it: one task
//! owns the engine and the store, and commits each command's events in one transaction.
//!
//! # Layout
//! - [`time`]: instants as values, the hall's local clock and service days.
//! - [`setup`]: services, windows, calendar and rules, with validation.
//! - [`model`]: tickets, windows, ratings and appointments.
//! - [`command`] / [`event`]: what can be asked, and what happened.
//! - [`refusal`]: why a command was refused, in zh-CN, zh-TW and English.
//! - [`text`]: which characters typed text may hold, and how messages repeat input.
//! - [`calendar`]: office hours, holidays and make-up days.
//! - [`queue`]: per-service lines kept in call order.
//! - [`estimate`]: wait estimates from the measured pace of each service.
//! - [`engine`]: the state machine itself, its snapshot and its change set.
//!
//! # Promises (guarded by property tests)
//! A ticket is served at most once; a number is unique per service per day; within a
//! class and service, tickets are called first-come-first-served; caps are respected;
//! an idempotency key never makes a second ticket.

pub mod calendar;
pub mod command;
pub mod engine;
pub mod estimate;
pub mod event;
pub mod model;
pub mod queue;
pub mod refusal;
pub mod setup;
pub mod text;
pub mod time;

pub use command::{Command, TransferTarget};
pub use engine::{Changes, Engine, Refused, ServiceLoad, Snapshot};
pub use event::{CancelReason, Event, SignOutReason};
pub use model::{
    Appointment, Class, Level, Rating, Role, Ticket, TicketId, TicketState, WindowState,
};
pub use refusal::{Closed, Refusal};
pub use setup::{Lang, Names, Setup, SetupError};
pub use time::{LocalClock, Timestamp};
