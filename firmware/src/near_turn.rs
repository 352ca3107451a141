//! The near-turn notice, as the hall core decides it (issue 20).
//!
//! A citizen who typed a mobile number at the kiosk is watched until the people ahead
//! of the ticket fall to `[phone] notify_ahead`, or the estimated wait to
//! `notify_minutes`. Then the core appends one `near_turn` event in the same
//! transaction as whatever moved the queue; the store marks the notice sent and puts
//! the text message in its outbox (`store::notices`). The watch is rebuilt from the
//! unsent notices at every start, so a notice goes exactly once across restarts; a
//! ticket that is called, ends or goes back to the queue after a no-show is never
//! watched again.

use std::collections::BTreeSet;

use hallq_engine::{Engine, Ticket, TicketId, TicketState, Timestamp};

use crate::events::HallEvent;
use crate::mobile::MobileNumber;
use crate::phone::{DEFAULT_NOTIFY_AHEAD, NearTurnPolicy};
use crate::store::notices::{self, NewNotice};
use crate::store::{Store, StoreError};

/// A citizen's request: the ticket (its token already checked) and the number.
#[derive(Debug, Clone)]
pub struct NoticeAsk {
    /// The ticket.
    pub ticket: TicketId,
    /// The number typed.
    pub mobile: MobileNumber,
}

/// What was recorded for a request.
#[derive(Debug, Clone, serde::Serialize)]
pub struct NoticeGiven {
    /// The ticket.
    pub ticket: TicketId,
    /// The number, masked.
    pub mobile: String,
    /// People ahead now.
    pub ahead: u32,
    /// The notice goes at this many ahead …
    pub notify_ahead: u32,
    /// … or at this estimated wait (minutes).
    pub notify_minutes: Option<u32>,
    /// The turn was already near: the notice went at once.
    pub sent: bool,
}

/// Why a request was not recorded.
#[derive(Debug, thiserror::Error)]
pub enum NoticeError {
    /// The hall does not offer the notice.
    #[error("this hall does not send near-turn text messages")]
    Off,
    /// No ticket of today has that id.
    #[error("no such ticket today")]
    UnknownTicket,
    /// The ticket is no longer waiting for its first call.
    #[error("the ticket is no longer waiting: it has been called or has ended")]
    NotWaiting,
    /// The notice for this ticket has already gone.
    #[error("the near-turn notice for this ticket has already been sent")]
    AlreadySent,
    /// The database could not be read (nothing was recorded).
    #[error("storage failed: {0}")]
    Store(String),
}

/// The tickets whose notice has not gone yet, under the hall's policy.
#[derive(Debug, Default)]
pub struct Watch {
    policy: Option<NearTurnPolicy>,
    unsent: BTreeSet<TicketId>,
}

/// The ticket, if it may still be notified: today's, waiting, never called.
fn waiting(engine: &Engine, id: TicketId) -> Option<&Ticket> {
    engine.ticket(id).filter(|t| {
        t.state == TicketState::Waiting && t.called_at.is_none() && t.day == engine.day()
    })
}

/// People ahead of `t` now, and its `near_turn` event when that is near under `policy`.
fn look(engine: &Engine, policy: NearTurnPolicy, t: &Ticket) -> (u32, Option<HallEvent>) {
    let ahead = engine.ahead(t.id).unwrap_or(0);
    let minutes = engine.estimate_wait_minutes(&t.service, ahead);
    let near = policy.is_near(ahead, minutes).then(|| HallEvent::NearTurn {
        ticket: t.id,
        number: t.number.clone(),
        service: t.service.clone(),
        ahead,
        minutes,
    });
    (ahead, near)
}

impl Watch {
    /// The unsent notices in the store, under `policy` (`None`: the hall offers none;
    /// notices asked for before it was turned off still go).
    pub fn load(policy: Option<NearTurnPolicy>, store: &Store) -> Result<Watch, StoreError> {
        Ok(Watch {
            policy,
            unsent: notices::unsent(store.conn())?.into_iter().collect(),
        })
    }

    /// The same watch read again from the store (after a storage failure).
    pub fn reloaded(&self, store: &Store) -> Result<Watch, StoreError> {
        Watch::load(self.policy, store)
    }

    /// The policy notices go under; with the notice turned off, the ones asked for
    /// before still go by people ahead.
    fn policy(&self) -> NearTurnPolicy {
        self.policy.unwrap_or(NearTurnPolicy {
            ahead: DEFAULT_NOTIFY_AHEAD,
            minutes: None,
        })
    }

    /// Records a request: the row to write, its `notice_requested` event, and a
    /// `near_turn` at once when the turn is already near.
    pub fn ask(
        &mut self,
        engine: &Engine,
        store: &Store,
        ask: NoticeAsk,
        at: Timestamp,
    ) -> Result<(NewNotice, Vec<HallEvent>, NoticeGiven), NoticeError> {
        let Some(policy) = self.policy else {
            return Err(NoticeError::Off);
        };
        let t = engine
            .ticket(ask.ticket)
            .filter(|t| t.day == engine.day())
            .ok_or(NoticeError::UnknownTicket)?;
        if !self.unsent.contains(&t.id)
            && notices::state(store.conn(), t.id)
                .map_err(|e| NoticeError::Store(e.to_string()))?
                .is_some_and(|n| n.sent)
        {
            return Err(NoticeError::AlreadySent);
        }
        let t = waiting(engine, t.id).ok_or(NoticeError::NotWaiting)?;
        let mut events = vec![HallEvent::NoticeRequested {
            ticket: t.id,
            number: t.number.clone(),
            mobile: ask.mobile.masked(),
        }];
        let (ahead, near) = look(engine, policy, t);
        let sent = near.is_some();
        if let Some(e) = near {
            self.unsent.remove(&t.id);
            events.push(e);
        } else {
            self.unsent.insert(t.id);
        }
        let given = NoticeGiven {
            ticket: t.id,
            mobile: ask.mobile.masked(),
            ahead,
            notify_ahead: policy.ahead,
            notify_minutes: policy.minutes,
            sent,
        };
        let row = NewNotice {
            ticket: t.id,
            day: t.day,
            mobile: ask.mobile,
            at: at.0,
        };
        Ok((row, events, given))
    }

    /// The `near_turn` events now due (each ticket once), after the queue moved. A
    /// ticket that was called or ended meanwhile leaves the watch without one.
    pub fn due(&mut self, engine: &Engine) -> Vec<HallEvent> {
        if self.unsent.is_empty() {
            return Vec::new();
        }
        let policy = self.policy();
        let mut out = Vec::new();
        self.unsent.retain(|&id| {
            let Some(t) = waiting(engine, id) else {
                return false;
            };
            match look(engine, policy, t).1 {
                Some(e) => {
                    out.push(e);
                    false
                }
                None => true,
            }
        });
        out
    }
}
