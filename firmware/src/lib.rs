//! The hallq controller: drives the queue engine, keeps it durable in SQLite, and serves
//! the local API that kiosks, window callers, boards and rating pads use.
//!
//! Data flows one way: input (API, simulator; devices and uplink later) → engine command
//! → one SQLite transaction with the state and its events → fan-out of the committed
//! events. An effect that fails never undoes a committed ticket.
//!
//! # Layout
//! - [`config`]: the TOML file, validated with errors naming key and line.
//! - [`store`]: SQLite (WAL, `synchronous=FULL`), migrations, the events table (audit log
//!   and outbox), projected rows, staff accounts and sessions.
//! - [`core`]: the one thread that owns engine and store, with group commit, and the
//!   setup in force.
//! - [`in_force`]: what is in force now (queue setup and guides, the file's or the
//!   pushed one), read by every consumer from the core and followed live.
//! - [`guide`]: the service guides (办事指南) and their printed material checklists.
//! - [`evaluation`]: 好差评 records in the platforms' shape (`[evaluation]` codes) and
//!   the five-working-day follow-up (回访整改) of a bad rating.
//! - [`events`]: committed events as types (the engine's and the controller's own).
//! - [`devices`]: a thread per ticket printer (and which prints what), the device health
//!   registry, voice and the window devices (`devices/window/`).
//! - [`api`]: the axum router under `/api/v1`, including the SSE live stream.
//! - [`metrics`]: Prometheus counters, histograms and the text exposition.
//! - [`mobile`]: mainland mobile numbers for near-turn notices: validation, masking.
//! - [`report`]: per-window and per-service figures for a day, week or month.
//! - [`connections`]: the HTTP accept loop with its caps, timeouts and reserve
//!   descriptors.
//! - [`server`]: wiring for `hallq run`: open, restore, bind, serve, shut down.
//! - [`systemd`]: readiness and watchdog notifications.
//! - [`simulate`]: citizens and staff for `hallq run --simulate`.
//! - [`bench`]: `hallq bench` and the history generator behind it.
//! - [`phone`]: the citizen's phone: `[phone]`, the QR's page address, the page's guard.
//! - [`uplink`]: MQTT to the hall server: the outbox, configuration and commands from
//!   above, the reference receiver.

pub mod api;
pub mod bench;
pub mod config;
pub mod connections;
pub mod core;
pub mod desk;
pub mod devices;
pub mod evaluation;
pub mod events;
pub mod guide;
pub mod history;
pub mod in_force;
pub mod metrics;
pub mod mobile;
pub mod near_turn;
pub mod personal;
pub mod phone;
pub mod report;
pub mod server;
pub mod simulate;
pub mod store;
pub mod systemd;
pub mod uplink;
pub mod window_view;

#[cfg(test)]
mod testing;
