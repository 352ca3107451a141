//! Fixtures for the crate's own unit tests (compiled only for them).

use hallq_engine::{Class, Command};

use crate::in_force::InForce;

/// The example hall, always open and without caps, as the setup in force.
pub fn in_force() -> InForce {
    let file = crate::config::Config::example();
    InForce::file(crate::history::unlimited_setup(), file.guide)
}

/// A normal ticket for `service` from channel `test`, without a retry key.
pub fn issue(service: &str) -> Command {
    Command::Issue {
        token_hash: None,
        service: service.into(),
        class: Class::Normal,
        idempotency_key: None,
        citizen: None,
        channel: "test".into(),
        green_reason: None,
        proxy: false,
        issued_by: None,
    }
}
