//! 好差评 follow-ups (回访整改) across halls: every bad rating's follow-up as its
//! controller reports it (`follow_up_opened`, then `follow_up_progressed` per step), kept
//! in `follow_ups` by the ingest's transaction for the events it inserted, and listed
//! open or overdue for the county.

use serde::Serialize;
use serde_json::Value;
use tokio_postgres::types::Json;
use tokio_postgres::{Client, Transaction};

use crate::config::Hall;
use crate::db::Row;

/// Keeps the follow-ups of the batch's newly inserted events (`rows`, any order).
pub async fn apply(tx: &Transaction<'_>, rows: &[&Row]) -> Result<(), tokio_postgres::Error> {
    let mut steps: Vec<&Row> = rows
        .iter()
        .copied()
        .filter(|r| r.kind == "follow_up_opened" || r.kind == "follow_up_progressed")
        .collect();
    // Rare (one per bad rating and step): one statement each, in the controllers' order.
    steps.sort_by(|a, b| (&a.controller_id, a.seq).cmp(&(&b.controller_id, b.seq)));
    for r in steps {
        let p = &r.payload;
        let Some(ticket) = p.get("ticket").and_then(Value::as_i64) else {
            continue;
        };
        let number = p.get("number").and_then(Value::as_str).unwrap_or_default();
        if r.kind == "follow_up_opened" {
            let text = |k: &str| p.get(k).and_then(Value::as_str).map(str::to_string);
            let reasons: Vec<String> = p
                .get("reasons")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect();
            tx.execute(
                "INSERT INTO follow_ups AS f (controller_id, ticket, hall_id, number, service,
                     window_no, staff, level, reasons, rated_at, due_day, due_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11::text::date, $12, $13)
                 ON CONFLICT (controller_id, ticket) DO UPDATE SET
                   hall_id = excluded.hall_id, number = excluded.number,
                   service = excluded.service, window_no = excluded.window_no,
                   staff = excluded.staff, level = excluded.level, reasons = excluded.reasons,
                   rated_at = excluded.rated_at, due_day = excluded.due_day,
                   due_at = excluded.due_at",
                &[
                    &r.controller_id,
                    &ticket,
                    &r.hall_id,
                    &number,
                    &text("service"),
                    &p.get("window").and_then(Value::as_i64),
                    &text("staff"),
                    &text("level"),
                    &reasons,
                    &p.get("rated_at").and_then(Value::as_i64),
                    &text("due_day"),
                    &p.get("due_at").and_then(Value::as_i64),
                    &r.at,
                ],
            )
            .await?;
        } else {
            let step = p.get("step").and_then(Value::as_str).unwrap_or("received");
            let late = p.get("late").and_then(Value::as_bool).unwrap_or(false);
            let record = serde_json::json!([{
                "step": step,
                "note": p.get("note"),
                "by": p.get("by"),
                "late": late,
                "at": r.at,
            }]);
            tx.execute(
                "INSERT INTO follow_ups AS f (controller_id, ticket, hall_id, number, state,
                     steps, late, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                 ON CONFLICT (controller_id, ticket) DO UPDATE SET
                   state = CASE WHEN f.state = 'closed' THEN 'closed' ELSE excluded.state END,
                   steps = f.steps || excluded.steps, late = f.late OR excluded.late,
                   updated_at = excluded.updated_at",
                &[
                    &r.controller_id,
                    &ticket,
                    &r.hall_id,
                    &number,
                    &step,
                    &Json(&record),
                    &late,
                    &r.at,
                ],
            )
            .await?;
        }
    }
    Ok(())
}

/// Which follow-ups to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    /// Not closed.
    Open,
    /// Not closed and past their due time.
    Overdue,
}

impl Which {
    /// From `state=`: `open` (the default) or `overdue`.
    pub fn parse(v: Option<&str>) -> Option<Which> {
        match v {
            None | Some("open") => Some(Which::Open),
            Some("overdue") => Some(Which::Overdue),
            _ => None,
        }
    }
}

/// One follow-up.
#[derive(Debug, Clone, Serialize)]
pub struct FollowUp {
    /// Hall id.
    pub hall_id: String,
    /// The hall's name (its id for a hall not configured).
    pub hall_name: String,
    /// Controller.
    pub controller_id: String,
    /// Ticket id on that controller (the `follow_up` command's `ticket`).
    pub ticket: i64,
    /// Ticket number.
    pub number: String,
    /// Service code.
    pub service: Option<String>,
    /// Window that served.
    pub window: Option<i64>,
    /// Staff member who served.
    pub staff: Option<String>,
    /// 不满意 or 非常不满意.
    pub level: Option<String>,
    /// Reasons given.
    pub reasons: Vec<String>,
    /// When rated (ms).
    pub rated_at: Option<i64>,
    /// The last day to close it.
    pub due_day: Option<String>,
    /// The end of that day (ms).
    pub due_at: Option<i64>,
    /// Past `due_at` and not closed.
    pub overdue: bool,
    /// `open`, the last step (`received`, `rectified`, `visited`) or `closed`.
    pub state: String,
    /// The steps so far: `{step, note, by, late, at}`.
    pub steps: Value,
    /// A step came after the due time.
    pub late: bool,
}

/// The columns [`read`] takes, in its order.
const COLUMNS: &str = "hall_id, controller_id, ticket, number, service, window_no, staff, level,
     coalesce(reasons, '{}'), rated_at, due_day::text, due_at, state, steps, late";

/// One row of [`COLUMNS`], its hall named from `halls`, overdue at `now`.
fn read(r: &tokio_postgres::Row, halls: &[&Hall], now: i64) -> FollowUp {
    let hall_id: String = r.get(0);
    let due_at: Option<i64> = r.get(11);
    let state: String = r.get(12);
    FollowUp {
        hall_name: halls
            .iter()
            .find(|h| h.id == hall_id)
            .map_or_else(|| hall_id.clone(), |h| h.name.clone()),
        hall_id,
        controller_id: r.get(1),
        ticket: r.get(2),
        number: r.get(3),
        service: r.get(4),
        window: r.get(5),
        staff: r.get(6),
        level: r.get(7),
        reasons: r.get(8),
        rated_at: r.get(9),
        due_day: r.get(10),
        due_at,
        overdue: state != "closed" && due_at.is_some_and(|d| d < now),
        state,
        steps: r.get::<_, Json<Value>>(13).0,
        late: r.get(14),
    }
}

/// The open (or overdue) follow-ups of `halls` at `now` (ms), the soonest due first, at
/// most `limit`.
pub async fn list(
    db: &Client,
    halls: &[&Hall],
    which: Which,
    now: i64,
    limit: i64,
) -> Result<Vec<FollowUp>, tokio_postgres::Error> {
    let ids: Vec<&str> = halls.iter().map(|h| h.id.as_str()).collect();
    let overdue_only = which == Which::Overdue;
    let rows = db
        .query(
            &format!(
                "SELECT {COLUMNS} FROM follow_ups
                 WHERE state <> 'closed' AND hall_id = ANY($1)
                   AND (NOT $2 OR due_at < $3)
                 ORDER BY due_at NULLS LAST, hall_id, controller_id, ticket
                 LIMIT $4"
            ),
            &[&ids, &overdue_only, &now, &limit],
        )
        .await?;
    Ok(rows.iter().map(|r| read(r, halls, now)).collect())
}

/// Every follow-up of `hall`'s bad ratings given from `from` (ms, inclusive) to `to`
/// (exclusive), closed or not, the newest rating first.
pub async fn rated_between(
    db: &Client,
    hall: &Hall,
    from: i64,
    to: i64,
    now: i64,
) -> Result<Vec<FollowUp>, tokio_postgres::Error> {
    let rows = db
        .query(
            &format!(
                "SELECT {COLUMNS} FROM follow_ups
                 WHERE hall_id = $1 AND rated_at >= $2 AND rated_at < $3
                 ORDER BY rated_at DESC, controller_id, ticket"
            ),
            &[&hall.id, &from, &to],
        )
        .await?;
    Ok(rows.iter().map(|r| read(r, &[hall], now)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_parameter() {
        assert_eq!(Which::parse(None), Some(Which::Open));
        assert_eq!(Which::parse(Some("overdue")), Some(Which::Overdue));
        assert_eq!(Which::parse(Some("closed")), None);
    }
}
