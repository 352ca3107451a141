//! Near-turn notices (issue 20): the mobile numbers citizens typed at the kiosk, and the
//! text messages waiting to go up to the hall server's SMS gateway.
//!
//! A number is personal data. It lives in `notices`, one row per ticket, and nowhere
//! else: the `notice_requested` event holds only the masked form, `near_turn` none at
//! all. When a `near_turn` event is appended, [`apply`] copies the number into
//! `sms_outbox` in the same transaction, keyed by the event's id, and marks the notice
//! sent; so the notice goes exactly once whatever restarts, and a recall does not send
//! it again. The uplink removes an outbox row once the broker has acknowledged it
//! ([`sms_delivered`]). When the ticket ends (finished, cancelled, a no-show not sent
//! back to the queue), or its day ends, its rows are erased.

use chrono::NaiveDate;
use hallq_engine::{Event, TicketId};
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use super::{NewEvent, StoreError};
use crate::events::HallEvent;
use crate::mobile::MobileNumber;

/// A number to keep for a ticket, written with the `notice_requested` event.
#[derive(Debug, Clone)]
pub struct NewNotice {
    /// The ticket.
    pub ticket: TicketId,
    /// The ticket's day: the row is erased when it ends.
    pub day: NaiveDate,
    /// The number.
    pub mobile: MobileNumber,
    /// When it was asked for (ms).
    pub at: i64,
}

/// What the status page may show of a ticket's notice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NoticeState {
    /// The number, masked (`138****1234`).
    pub mobile: String,
    /// The near-turn notice has gone.
    pub sent: bool,
}

/// A text message waiting for the broker's acknowledgement.
#[derive(Debug, Clone, PartialEq)]
pub struct SmsRow {
    /// The `near_turn` event's id: the receiver drops a resend by it.
    pub id: String,
    /// The ticket.
    pub ticket: i64,
    /// The number, whole.
    pub mobile: String,
    /// The `near_turn` event's JSON payload.
    pub body: serde_json::Value,
    /// When the notice was made (ms).
    pub at: i64,
}

/// Writes (or replaces: a corrected typo) the numbers of a batch, before its events.
pub(super) fn put(tx: &Connection, rows: &[NewNotice]) -> Result<(), StoreError> {
    let mut put = tx.prepare_cached(
        "INSERT INTO notices (ticket, day, mobile, requested_at, sent_at) VALUES (?1, ?2, ?3, ?4, NULL) \
         ON CONFLICT (ticket) DO UPDATE SET mobile = excluded.mobile, requested_at = excluded.requested_at \
         WHERE sent_at IS NULL",
    )?;
    for n in rows {
        put.execute(params![
            n.ticket.0 as i64,
            n.day.to_string(),
            n.mobile.digits(),
            n.at
        ])?;
    }
    Ok(())
}

/// Keeps the notice tables in step with an event being appended with id `id`.
pub(super) fn apply(tx: &Connection, e: &NewEvent, id: &str) -> Result<(), StoreError> {
    let ended = match e.kind.as_str() {
        "near_turn" => {
            if let HallEvent::NearTurn { ticket, .. } = serde_json::from_str(&e.payload)? {
                let t = ticket.0 as i64;
                let marked = tx
                    .prepare_cached(
                        "UPDATE notices SET sent_at = ?2 WHERE ticket = ?1 AND sent_at IS NULL",
                    )?
                    .execute(params![t, e.at.0])?;
                if marked == 1 {
                    tx.prepare_cached(
                        "INSERT INTO sms_outbox (id, ticket, day, mobile, body, at) \
                         SELECT ?2, ticket, day, mobile, ?3, ?4 FROM notices WHERE ticket = ?1",
                    )?
                    .execute(params![t, id, e.payload, e.at.0])?;
                }
            }
            return Ok(());
        }
        "ticket_finished" | "ticket_cancelled" | "ticket_no_show" | "day_started" => {
            serde_json::from_str::<Event>(&e.payload)?
        }
        _ => return Ok(()),
    };
    match ended {
        Event::TicketFinished { ticket, .. }
        | Event::TicketCancelled { ticket, .. }
        | Event::TicketNoShow {
            ticket,
            requeued: false,
            ..
        } => erase_ticket(tx, ticket)?,
        Event::DayStarted { day, .. } => {
            let day = day.to_string();
            tx.prepare_cached("DELETE FROM notices WHERE day < ?1")?
                .execute([&day])?;
            tx.prepare_cached("DELETE FROM sms_outbox WHERE day < ?1")?
                .execute([&day])?;
        }
        _ => {}
    }
    Ok(())
}

fn erase_ticket(tx: &Connection, ticket: TicketId) -> Result<(), StoreError> {
    let t = ticket.0 as i64;
    tx.prepare_cached("DELETE FROM notices WHERE ticket = ?1")?
        .execute([t])?;
    tx.prepare_cached("DELETE FROM sms_outbox WHERE ticket = ?1")?
        .execute([t])?;
    Ok(())
}

/// The tickets whose notice has not gone yet (the core watches them).
pub fn unsent(conn: &Connection) -> Result<Vec<TicketId>, StoreError> {
    let mut stmt = conn.prepare_cached("SELECT ticket FROM notices WHERE sent_at IS NULL")?;
    let rows = stmt.query_map([], |r| r.get::<_, i64>(0))?;
    let mut out = Vec::new();
    for r in rows {
        out.push(TicketId(r? as u64));
    }
    Ok(out)
}

/// A ticket's notice as its status page shows it.
pub fn state(conn: &Connection, ticket: TicketId) -> Result<Option<NoticeState>, StoreError> {
    let row = conn
        .prepare_cached("SELECT mobile, sent_at IS NOT NULL FROM notices WHERE ticket = ?1")?
        .query_row([ticket.0 as i64], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, bool>(1)?))
        })
        .optional()?;
    Ok(row.map(|(mobile, sent)| NoticeState {
        mobile: MobileNumber::parse(&mobile)
            .map(|m| m.masked())
            .unwrap_or_else(|_| "****".into()),
        sent,
    }))
}

/// Messages waiting for the broker, oldest first, at most `limit`.
pub fn sms_pending(conn: &Connection, limit: usize) -> Result<Vec<SmsRow>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, ticket, mobile, body, at FROM sms_outbox ORDER BY at, id LIMIT ?1",
    )?;
    let rows = stmt.query_map([limit as i64], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, String>(3)?,
            r.get::<_, i64>(4)?,
        ))
    })?;
    let mut out = Vec::new();
    for r in rows {
        let (id, ticket, mobile, body, at) = r?;
        out.push(SmsRow {
            id,
            ticket,
            mobile,
            body: serde_json::from_str(&body)?,
            at,
        });
    }
    Ok(out)
}

/// Messages waiting for the broker.
pub fn sms_waiting(conn: &Connection) -> Result<i64, StoreError> {
    Ok(conn.query_row("SELECT COUNT(*) FROM sms_outbox", [], |r| r.get(0))?)
}

/// Notices not sent yet and messages not acknowledged yet, for `/metrics`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Counts {
    /// Notices whose turn is not near yet.
    pub watched: i64,
    /// Messages waiting for the broker.
    pub outbox: i64,
}

/// [`Counts`] now.
pub fn counts(conn: &Connection) -> Result<Counts, StoreError> {
    Ok(Counts {
        watched: conn.query_row(
            "SELECT COUNT(*) FROM notices WHERE sent_at IS NULL",
            [],
            |r| r.get(0),
        )?,
        outbox: sms_waiting(conn)?,
    })
}

/// Removes messages the broker has acknowledged (the number with them).
pub fn sms_delivered(conn: &Connection, ids: &[String]) -> Result<usize, StoreError> {
    let mut del = conn.prepare_cached("DELETE FROM sms_outbox WHERE id = ?1")?;
    let mut n = 0;
    for id in ids {
        n += del.execute([id])?;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;
    use hallq_engine::Timestamp;

    fn notice(ticket: u64, mobile: &str) -> NewNotice {
        NewNotice {
            ticket: TicketId(ticket),
            day: NaiveDate::from_ymd_opt(2026, 12, 6).unwrap(),
            mobile: MobileNumber::parse(mobile).unwrap(),
            at: 1,
        }
    }

    fn near(ticket: u64) -> NewEvent {
        NewEvent::encode(
            Timestamp(5),
            "near_turn",
            &HallEvent::NearTurn {
                ticket: TicketId(ticket),
                number: format!("A{ticket:03}"),
                service: "SB".into(),
                ahead: 3,
                minutes: 9,
            },
        )
        .unwrap()
    }

    fn finished(ticket: u64) -> NewEvent {
        let e = Event::TicketFinished {
            ticket: TicketId(ticket),
            number: format!("A{ticket:03}"),
            service: "SB".into(),
            window: 1,
            staff: "s1".into(),
            case_no: None,
            served_secs: 60,
        };
        NewEvent::encode(Timestamp(9), e.kind(), &e).unwrap()
    }

    /// One near_turn moves the number into the outbox once; a second one for the same
    /// ticket (a recall, a replay) adds nothing; the ticket's end erases the number.
    #[test]
    fn a_notice_goes_to_the_outbox_once_and_the_number_goes_when_the_ticket_ends() {
        let mut store = Store::in_memory().unwrap();
        store
            .commit_with(&[], &Default::default(), &[notice(1, "13812345678")])
            .unwrap();
        assert_eq!(unsent(store.conn()).unwrap(), vec![TicketId(1)]);
        let stored = store
            .commit_with(&[near(1), near(1)], &Default::default(), &[])
            .unwrap();
        let out = sms_pending(store.conn(), 10).unwrap();
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0].id, stored[0].id);
        assert_eq!(out[0].mobile, "13812345678");
        assert!(unsent(store.conn()).unwrap().is_empty());
        assert_eq!(
            state(store.conn(), TicketId(1)).unwrap(),
            Some(NoticeState {
                mobile: "138****5678".into(),
                sent: true
            })
        );
        // A number typed again after the notice went changes nothing.
        store
            .commit_with(&[], &Default::default(), &[notice(1, "13900000000")])
            .unwrap();
        assert_eq!(
            sms_pending(store.conn(), 10).unwrap()[0].mobile,
            "13812345678"
        );
        store
            .commit_with(&[finished(1)], &Default::default(), &[])
            .unwrap();
        assert!(sms_pending(store.conn(), 10).unwrap().is_empty());
        assert_eq!(state(store.conn(), TicketId(1)).unwrap(), None);
        let left: i64 = store
            .conn()
            .query_row(
                "SELECT (SELECT COUNT(*) FROM notices) + (SELECT COUNT(*) FROM sms_outbox)",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(left, 0);
        let events: String = store
            .conn()
            .query_row("SELECT group_concat(payload) FROM events", [], |r| r.get(0))
            .unwrap();
        assert!(!events.contains("1381234"), "{events}");
    }

    #[test]
    fn delivered_messages_leave_the_outbox_and_a_new_day_erases_the_rest() {
        let mut store = Store::in_memory().unwrap();
        store
            .commit_with(
                &[],
                &Default::default(),
                &[notice(1, "13812345678"), notice(2, "15912345678")],
            )
            .unwrap();
        let stored = store
            .commit_with(&[near(1), near(2)], &Default::default(), &[])
            .unwrap();
        assert_eq!(sms_waiting(store.conn()).unwrap(), 2);
        assert_eq!(
            sms_delivered(store.conn(), &[stored[0].id.clone()]).unwrap(),
            1
        );
        assert_eq!(sms_waiting(store.conn()).unwrap(), 1);
        let next = Event::DayStarted {
            day: NaiveDate::from_ymd_opt(2026, 12, 7).unwrap(),
            previous: NaiveDate::from_ymd_opt(2026, 12, 6).unwrap(),
        };
        store
            .commit_with(
                &[NewEvent::encode(Timestamp(10), next.kind(), &next).unwrap()],
                &Default::default(),
                &[],
            )
            .unwrap();
        assert_eq!(sms_waiting(store.conn()).unwrap(), 0);
        assert_eq!(state(store.conn(), TicketId(2)).unwrap(), None);
    }
}
