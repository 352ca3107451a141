//! Fixtures for the crate's own unit tests (compiled only for them).

use crate::in_force::InForce;

/// The example hall, always open and without caps, as the setup in force.
pub fn in_force() -> InForce {
    let file = crate::config::Config::example();
    InForce::file(crate::history::unlimited_setup(), file.guide)
}
