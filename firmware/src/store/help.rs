//! Open help requests: the kiosks whose citizen pressed the help button (求助) and whom
//! no member of staff has acknowledged yet. One row per kiosk in `help_requests`, kept
//! in step with the `help_requested` / `help_acknowledged` events in the same
//! transaction that appends them, so the state never depends on events that retention
//! may prune.

use rusqlite::{Connection, params};
use serde::Serialize;

use super::{NewEvent, StoreError};
use crate::events::HallEvent;

/// An open help request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HelpRequest {
    /// The kiosk that asked.
    pub kiosk: String,
    /// The screen it showed.
    pub screen: String,
    /// When (ms since the epoch).
    pub at: i64,
    /// The `seq` of its `help_requested` event.
    pub seq: i64,
}

/// Applies a help event being appended as `seq` to the open requests. A request for a
/// kiosk that already has one keeps the first (the earliest press is the citizen's wait).
pub(super) fn apply(tx: &Connection, e: &NewEvent, seq: i64) -> Result<(), StoreError> {
    if e.kind != "help_requested" && e.kind != "help_acknowledged" {
        return Ok(());
    }
    match serde_json::from_str::<HallEvent>(&e.payload)? {
        HallEvent::HelpRequested { kiosk, screen } => {
            tx.prepare_cached(
                "INSERT OR IGNORE INTO help_requests (kiosk, screen, requested_at, event_seq) \
                 VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![kiosk, screen, e.at.0, seq])?;
        }
        HallEvent::HelpAcknowledged { kiosk, .. } => {
            tx.prepare_cached("DELETE FROM help_requests WHERE kiosk = ?1")?
                .execute([kiosk])?;
        }
        _ => {}
    }
    Ok(())
}

/// Every open request, oldest first.
pub fn open(conn: &Connection) -> Result<Vec<HelpRequest>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT kiosk, screen, requested_at, event_seq FROM help_requests ORDER BY requested_at, kiosk",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(HelpRequest {
            kiosk: r.get(0)?,
            screen: r.get(1)?,
            at: r.get(2)?,
            seq: r.get(3)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;
    use hallq_engine::Timestamp;

    fn ev(at: i64, e: &HallEvent) -> NewEvent {
        NewEvent::encode(Timestamp(at), e.kind(), e).unwrap()
    }

    #[test]
    fn a_request_stays_open_until_acknowledged_and_one_per_kiosk() {
        let mut store = Store::in_memory().unwrap();
        let req = |k: &str, s: &str| HallEvent::HelpRequested {
            kiosk: k.into(),
            screen: s.into(),
        };
        store
            .append(&[ev(1, &req("k1", "home")), ev(2, &req("k2", "ticket"))])
            .unwrap();
        store.append(&[ev(3, &req("k1", "services"))]).unwrap();
        let open = open(store.conn()).unwrap();
        assert_eq!(open.len(), 2);
        assert_eq!(
            (open[0].kiosk.as_str(), open[0].screen.as_str(), open[0].at),
            ("k1", "home", 1)
        );
        let ack = HallEvent::HelpAcknowledged {
            kiosk: "k1".into(),
            by: "S1".into(),
        };
        store.append(&[ev(4, &ack)]).unwrap();
        let open = super::open(store.conn()).unwrap();
        assert_eq!(open.len(), 1);
        assert_eq!(open[0].kiosk, "k2");
    }
}
