//! Warnings followed up (预警纠错): which warning a supervisor handled (by whom, when,
//! the outcome and note) and which went up to the hall server unhandled. One row per
//! warning in `warning_actions`, keyed by the `seq` of the warning's event and kept in
//! step with the `warning_handled` / `warning_escalated` events in the transaction that
//! appends them, so the state never depends on events that retention may prune.

use std::collections::HashMap;

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use super::{NewEvent, StoreError};
use crate::events::HallEvent;

/// Event types that are warnings a supervisor follows up (`device_recovered` ends a
/// fault and is none).
pub const RAISED: &[&str] = &[
    "wait_alarm",
    "service_over_time",
    "queue_alarm",
    "pause_alarm",
    "unmanned_alarm",
    "device_fault",
];

/// The outcomes of a follow-up: 处理 (acted on) and 纠错 (the warning was wrong).
pub const OUTCOMES: &[&str] = &["handled", "corrected"];

/// How a warning was handled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Handled {
    /// Staff id of the supervisor.
    pub by: String,
    /// Their name, when the account still exists.
    pub by_name: Option<String>,
    /// When (ms since the epoch).
    pub at: i64,
    /// `handled` or `corrected`.
    pub outcome: String,
    /// The note.
    pub note: String,
}

/// What was done about one warning.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Action {
    /// Set once a supervisor followed it up.
    pub handled: Option<Handled>,
    /// When it was escalated to the hall server (ms), if it was.
    pub escalated_at: Option<i64>,
}

/// A stored warning event.
#[derive(Debug, Clone, PartialEq)]
pub struct Warning {
    /// Its `seq`.
    pub seq: i64,
    /// When it was raised (ms).
    pub at: i64,
    /// Its type.
    pub kind: String,
    /// Its payload.
    pub payload: serde_json::Value,
}

/// Applies a warning follow-up event being appended.
pub(super) fn apply(tx: &Connection, e: &NewEvent) -> Result<(), StoreError> {
    if e.kind != "warning_handled" && e.kind != "warning_escalated" {
        return Ok(());
    }
    match serde_json::from_str::<HallEvent>(&e.payload)? {
        HallEvent::WarningHandled {
            warning,
            outcome,
            note,
            by,
            ..
        } => {
            tx.prepare_cached(
                "INSERT INTO warning_actions (warning, handled_at, handled_by, outcome, note) \
                 VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (warning) DO UPDATE SET \
                 handled_at = excluded.handled_at, handled_by = excluded.handled_by, \
                 outcome = excluded.outcome, note = excluded.note",
            )?
            .execute(params![warning, e.at.0, by, outcome, note])?;
        }
        HallEvent::WarningEscalated { warning, .. } => {
            tx.prepare_cached(
                "INSERT INTO warning_actions (warning, escalated_at) VALUES (?1, ?2) \
                 ON CONFLICT (warning) DO UPDATE SET escalated_at = excluded.escalated_at",
            )?
            .execute(params![warning, e.at.0])?;
        }
        _ => {}
    }
    Ok(())
}

fn read_action(r: &rusqlite::Row<'_>) -> rusqlite::Result<(i64, Action)> {
    let handled_at: Option<i64> = r.get(1)?;
    let handled = match handled_at {
        Some(at) => Some(Handled {
            by: r.get::<_, Option<String>>(2)?.unwrap_or_default(),
            by_name: r.get(6)?,
            at,
            outcome: r.get::<_, Option<String>>(3)?.unwrap_or_default(),
            note: r.get::<_, Option<String>>(4)?.unwrap_or_default(),
        }),
        None => None,
    };
    Ok((
        r.get(0)?,
        Action {
            handled,
            escalated_at: r.get(5)?,
        },
    ))
}

const SELECT_ACTIONS: &str = "SELECT a.warning, a.handled_at, a.handled_by, a.outcome, a.note, \
     a.escalated_at, s.name FROM warning_actions a LEFT JOIN staff s ON s.id = a.handled_by";

/// What was done about the warnings whose event is `first` or later, by warning.
pub fn actions_since(conn: &Connection, first: i64) -> Result<HashMap<i64, Action>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!("{SELECT_ACTIONS} WHERE a.warning >= ?1"))?;
    let rows = stmt.query_map([first], read_action)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// What was done about one warning (nothing yet: the default).
pub fn action(conn: &Connection, warning: i64) -> Result<Action, StoreError> {
    let mut stmt = conn.prepare_cached(&format!("{SELECT_ACTIONS} WHERE a.warning = ?1"))?;
    Ok(stmt
        .query_row([warning], read_action)
        .optional()?
        .map(|(_, a)| a)
        .unwrap_or_default())
}

fn raised_list() -> String {
    RAISED
        .iter()
        .map(|t| format!("'{t}'"))
        .collect::<Vec<_>>()
        .join(",")
}

fn read_warning(r: &rusqlite::Row<'_>) -> rusqlite::Result<Warning> {
    Ok(Warning {
        seq: r.get(0)?,
        at: r.get(1)?,
        kind: r.get(2)?,
        payload: serde_json::from_str(&r.get::<_, String>(3)?).unwrap_or_default(),
    })
}

/// The warning stored as event `seq`, if that event is one.
pub fn warning(conn: &Connection, seq: i64) -> Result<Option<Warning>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT seq, at, type, payload FROM events WHERE seq = ?1 AND type IN ({})",
        raised_list()
    ))?;
    Ok(stmt.query_row([seq], read_warning).optional()?)
}

/// Warnings from event `first` on, raised at or before `raised_by` (ms), that nobody
/// handled and that were not escalated yet: the ones due to go up, oldest first.
pub fn unhandled(
    conn: &Connection,
    first: i64,
    raised_by: i64,
) -> Result<Vec<Warning>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT e.seq, e.at, e.type, e.payload FROM events e \
         LEFT JOIN warning_actions a ON a.warning = e.seq \
         WHERE e.seq >= ?1 AND e.at <= ?2 AND e.type IN ({}) \
         AND a.handled_at IS NULL AND a.escalated_at IS NULL ORDER BY e.seq",
        raised_list()
    ))?;
    let rows = stmt.query_map(params![first, raised_by], read_warning)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;
    use hallq_engine::Timestamp;

    fn ev(at: i64, kind: &str, payload: serde_json::Value) -> NewEvent {
        NewEvent {
            at: Timestamp(at),
            kind: kind.into(),
            payload: payload.to_string(),
        }
    }

    fn hall_ev(at: i64, e: &HallEvent) -> NewEvent {
        NewEvent::encode(Timestamp(at), e.kind(), e).unwrap()
    }

    #[test]
    fn a_handled_or_escalated_warning_is_no_longer_due_and_keeps_who_and_when() {
        let mut store = Store::in_memory().unwrap();
        let stored = store
            .append(&[
                ev(
                    10,
                    "pause_alarm",
                    serde_json::json!({"type": "pause_alarm", "window": 3, "paused_secs": 600}),
                ),
                ev(
                    20,
                    "wait_alarm",
                    serde_json::json!({"type": "wait_alarm", "ticket": 1, "number": "A001", "service": "SB", "waited_secs": 900}),
                ),
                ev(30, "ticket_called", serde_json::json!({"type": "ticket_called"})),
            ])
            .unwrap();
        let (pause, wait, call) = (stored[0].seq, stored[1].seq, stored[2].seq);
        assert!(warning(store.conn(), call).unwrap().is_none());
        assert_eq!(
            warning(store.conn(), wait).unwrap().unwrap().kind,
            "wait_alarm"
        );
        let due: Vec<i64> = unhandled(store.conn(), 0, 25)
            .unwrap()
            .iter()
            .map(|w| w.seq)
            .collect();
        assert_eq!(due, [pause, wait]);
        assert_eq!(unhandled(store.conn(), 0, 15).unwrap().len(), 1);
        let handled = HallEvent::WarningHandled {
            warning: pause,
            warning_type: "pause_alarm".into(),
            outcome: "corrected".into(),
            note: "午休，已报备".into(),
            by: "J001".into(),
        };
        let escalated = HallEvent::WarningEscalated {
            warning: wait,
            warning_type: "wait_alarm".into(),
            raised_at: 20,
            after_minutes: 30,
            detail: Default::default(),
        };
        store
            .append(&[hall_ev(40, &handled), hall_ev(41, &escalated)])
            .unwrap();
        assert!(unhandled(store.conn(), 0, 100).unwrap().is_empty());
        let a = action(store.conn(), pause).unwrap();
        let h = a.handled.unwrap();
        assert_eq!(
            (h.by.as_str(), h.at, h.outcome.as_str(), h.note.as_str()),
            ("J001", 40, "corrected", "午休，已报备")
        );
        assert_eq!(a.escalated_at, None);
        let all = actions_since(store.conn(), 0).unwrap();
        assert_eq!(all[&wait].escalated_at, Some(41));
        assert!(all[&wait].handled.is_none());
        assert_eq!(action(store.conn(), call).unwrap(), Action::default());
    }
}
