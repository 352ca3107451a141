//! Follow-ups (回访整改) of bad ratings: one row per rated ticket in `follow_ups`, kept in
//! step with the `follow_up_opened` / `follow_up_progressed` events in the transaction
//! that appends them, like `store::help`. Supervision lists the ones not closed, and
//! marks those whose due time has passed as overdue.

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use super::{NewEvent, StoreError};
use crate::events::HallEvent;

/// A follow-up as supervision shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FollowUp {
    /// The ticket rated.
    pub ticket: u64,
    /// Its number.
    pub number: String,
    /// Service code.
    pub service: String,
    /// Window that served.
    pub window: Option<u32>,
    /// Staff id of who served.
    pub staff: Option<String>,
    /// The level by name.
    pub level: String,
    /// The reasons given.
    pub reasons: Vec<String>,
    /// When the rating was given (ms).
    pub rated_at: i64,
    /// The last local day it may be done on.
    pub due_day: String,
    /// When that day ends (ms).
    pub due_at: i64,
    /// `open` (nothing heard yet), `received`, `rectified`, `visited` or `closed`.
    pub state: String,
    /// The last step's note.
    pub note: Option<String>,
    /// Who took the last step.
    pub by: Option<String>,
    /// When the last change was recorded (ms).
    pub updated_at: i64,
    /// When it was closed (ms).
    pub closed_at: Option<i64>,
}

/// Applies a follow-up event being appended as `seq`.
pub(super) fn apply(tx: &Connection, e: &NewEvent, seq: i64) -> Result<(), StoreError> {
    if e.kind == "rating_recorded" {
        return replaced(tx, e);
    }
    if e.kind != "follow_up_opened" && e.kind != "follow_up_progressed" {
        return Ok(());
    }
    match serde_json::from_str::<HallEvent>(&e.payload)? {
        HallEvent::FollowUpOpened {
            ticket,
            number,
            service,
            window,
            staff,
            level,
            reasons,
            rated_at,
            due_day,
            due_at,
        } => {
            tx.prepare_cached(
                "INSERT OR IGNORE INTO follow_ups (ticket, number, service, window, staff, \
                 level, reasons, rated_at, due_day, due_at, state, updated_at, opened_seq) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 'open', ?11, ?12)",
            )?
            .execute(params![
                ticket.0 as i64,
                number,
                service,
                window,
                staff,
                level,
                serde_json::to_string(&reasons)?,
                rated_at,
                due_day,
                due_at,
                e.at.0,
                seq
            ])?;
        }
        HallEvent::FollowUpProgressed {
            ticket,
            step,
            note,
            by,
            ..
        } => {
            let closed = (step == "closed").then_some(e.at.0);
            tx.prepare_cached(
                "UPDATE follow_ups SET state = ?2, note = ?3, by_whom = ?4, updated_at = ?5, \
                 closed_at = COALESCE(closed_at, ?6) WHERE ticket = ?1",
            )?
            .execute(params![ticket.0 as i64, step, note, by, e.at.0, closed])?;
        }
        _ => {}
    }
    Ok(())
}

/// A rating replaced within the replace window (a keypad's reason key pressed after
/// the level, a citizen changing their mind) updates the level and reasons of its
/// follow-up while the hall server has not taken it on yet.
fn replaced(tx: &Connection, e: &NewEvent) -> Result<(), StoreError> {
    let v: serde_json::Value = serde_json::from_str(&e.payload)?;
    let r = &v["rating"];
    let (Some(true), Some(ticket), Some(level)) = (
        v["replaced"].as_bool(),
        r["ticket"].as_i64(),
        r["level"].as_str(),
    ) else {
        return Ok(());
    };
    tx.prepare_cached(
        "UPDATE follow_ups SET level = ?2, reasons = ?3 WHERE ticket = ?1 AND state = 'open'",
    )?
    .execute(params![ticket, level, r["reasons"].to_string()])?;
    Ok(())
}

fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<FollowUp> {
    let reasons: String = r.get("reasons")?;
    Ok(FollowUp {
        ticket: r.get::<_, i64>("ticket")? as u64,
        number: r.get("number")?,
        service: r.get("service")?,
        window: r.get("window")?,
        staff: r.get("staff")?,
        level: r.get("level")?,
        // Written by `apply` from a list; a row that does not read shows no reasons.
        reasons: serde_json::from_str(&reasons).unwrap_or_default(),
        rated_at: r.get("rated_at")?,
        due_day: r.get("due_day")?,
        due_at: r.get("due_at")?,
        state: r.get("state")?,
        note: r.get("note")?,
        by: r.get("by_whom")?,
        updated_at: r.get("updated_at")?,
        closed_at: r.get("closed_at")?,
    })
}

/// The follow-up of `ticket`, if its rating opened one.
pub fn get(conn: &Connection, ticket: u64) -> Result<Option<FollowUp>, StoreError> {
    let mut stmt = conn.prepare_cached("SELECT * FROM follow_ups WHERE ticket = ?1")?;
    Ok(stmt.query_row([ticket as i64], from_row).optional()?)
}

/// Every follow-up not closed, the earliest due first.
pub fn open(conn: &Connection) -> Result<Vec<FollowUp>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT * FROM follow_ups WHERE state <> 'closed' ORDER BY due_at, ticket",
    )?;
    let rows = stmt.query_map([], from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Follow-ups closed since `since` (ms), the latest first, at most `limit`.
pub fn closed_since(
    conn: &Connection,
    since: i64,
    limit: u32,
) -> Result<Vec<FollowUp>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT * FROM follow_ups WHERE state = 'closed' AND closed_at >= ?1 \
         ORDER BY closed_at DESC LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![since, limit], from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;
    use hallq_engine::{TicketId, Timestamp};
    use serde_json::json;

    fn ev(at: i64, e: &HallEvent) -> NewEvent {
        NewEvent::encode(Timestamp(at), e.kind(), e).unwrap()
    }

    fn opened(ticket: u64, due_at: i64) -> HallEvent {
        HallEvent::FollowUpOpened {
            ticket: TicketId(ticket),
            number: format!("A{ticket:03}"),
            service: "SB".into(),
            window: Some(1),
            staff: Some("S001".into()),
            level: "不满意".into(),
            reasons: vec!["办事效率低".into()],
            rated_at: 1000,
            due_day: "2026-11-30".into(),
            due_at,
        }
    }

    fn step(ticket: u64, step: &str) -> HallEvent {
        HallEvent::FollowUpProgressed {
            ticket: TicketId(ticket),
            number: String::new(),
            step: step.into(),
            note: format!("{step} note"),
            by: "李科长".into(),
            late: false,
            command_id: "c".into(),
        }
    }

    #[test]
    fn a_follow_up_stays_open_through_its_steps_until_closed_and_opens_once() {
        let mut store = Store::in_memory().unwrap();
        store
            .append(&[ev(1000, &opened(7, 9000)), ev(1100, &opened(8, 5000))])
            .unwrap();
        // A second opening of the same ticket keeps the first.
        store.append(&[ev(1200, &opened(7, 99_999))]).unwrap();
        let open = super::open(store.conn()).unwrap();
        assert_eq!(
            open.iter()
                .map(|f| (f.ticket, f.due_at))
                .collect::<Vec<_>>(),
            vec![(8, 5000), (7, 9000)]
        );
        assert_eq!(open[1].state, "open");
        assert_eq!(open[1].reasons, vec!["办事效率低".to_string()]);
        store.append(&[ev(2000, &step(7, "received"))]).unwrap();
        let f = get(store.conn(), 7).unwrap().unwrap();
        assert_eq!(
            (f.state.as_str(), f.note.as_deref(), f.by.as_deref()),
            ("received", Some("received note"), Some("李科长"))
        );
        store.append(&[ev(3000, &step(7, "closed"))]).unwrap();
        let f = get(store.conn(), 7).unwrap().unwrap();
        assert_eq!((f.state.as_str(), f.closed_at), ("closed", Some(3000)));
        let open = super::open(store.conn()).unwrap();
        assert_eq!(open.iter().map(|f| f.ticket).collect::<Vec<_>>(), vec![8]);
        let closed = closed_since(store.conn(), 0, 10).unwrap();
        assert_eq!(closed.len(), 1);
        assert!(get(store.conn(), 9).unwrap().is_none());
    }

    #[test]
    fn a_replaced_rating_gives_the_open_follow_up_its_reasons() {
        let mut store = Store::in_memory().unwrap();
        let mut first = opened(7, 9000);
        if let HallEvent::FollowUpOpened { reasons, .. } = &mut first {
            reasons.clear();
        }
        store.append(&[ev(1000, &first)]).unwrap();
        let rated = |replaced: bool, level: &str, reason: &str| NewEvent {
            at: Timestamp(1500),
            kind: "rating_recorded".into(),
            payload: json!({"type": "rating_recorded", "replaced": replaced,
                "rating": {"ticket": 7, "level": level, "reasons": [reason]}})
            .to_string(),
        };
        store.append(&[rated(false, "满意", "x")]).unwrap();
        assert!(get(store.conn(), 7).unwrap().unwrap().reasons.is_empty());
        store
            .append(&[rated(true, "非常不满意", "服务态度差")])
            .unwrap();
        let f = get(store.conn(), 7).unwrap().unwrap();
        assert_eq!(
            (f.level.as_str(), f.reasons.clone()),
            ("非常不满意", vec!["服务态度差".to_string()])
        );
        // Once the hall server has it, the record it took stays.
        store.append(&[ev(2000, &step(7, "received"))]).unwrap();
        store.append(&[rated(true, "不满意", "其他")]).unwrap();
        assert_eq!(get(store.conn(), 7).unwrap().unwrap().level, "非常不满意");
    }
}
