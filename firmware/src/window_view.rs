//! One window as it is now, as the hall's supervision page shows it and the state
//! document carries it to the hall server.

use hallq_engine::Engine;
use serde_json::{Value, json};

/// One window as it is now: its state (`absent`, `paused`, `idle`, or the current
/// ticket's `called`/`serving`), who is signed in, the ticket at it and the pause. The
/// supervision dashboard shows it, and the state document carries it to the hall server.
pub fn window_row(
    e: &Engine,
    d: &hallq_engine::setup::WindowDef,
    w: &hallq_engine::WindowState,
) -> Value {
    let current = w.current.and_then(|id| e.ticket(id));
    let state = match (&w.staff, &w.paused, current) {
        (None, _, _) => "absent",
        (Some(_), Some(_), _) => "paused",
        (Some(_), None, Some(t)) => t.state.as_str(),
        (Some(_), None, None) => "idle",
    };
    json!({
        "number": d.number, "name": d.name, "location": d.location, "state": state,
        "services": d.services.iter().map(|s| s.code.clone()).collect::<Vec<_>>(),
        "staff": w.staff.as_ref().map(|(id, role, since)| json!({ "id": id, "role": role, "since": since.0 })),
        "current": current.map(|t| json!({
            "id": t.id, "number": t.number, "service": t.service, "state": t.state,
            "since": t.serving_at.or(t.called_at).map(|s| s.0),
        })),
        "paused": w.paused.as_ref().map(|(since, reason)| json!({ "since": since.0, "reason": reason })),
        "vacant_since": w.vacant_since.map(|t| t.0),
    })
}
