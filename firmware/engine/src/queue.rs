//! The waiting lines of one service, kept in call order so the head is always cheap.

use std::collections::BTreeSet;

use crate::model::{Class, Ticket, TicketId};
use crate::time::Timestamp;

/// Where a queued ticket sits. Ordered sets make FIFO within a class structural: the
/// head of each set is the oldest entry, and removing any entry is logarithmic.
#[derive(Debug, Default, Clone)]
pub struct Lines {
    /// 绿色通道, by queue time.
    pub green: BTreeSet<(Timestamp, TicketId)>,
    /// Checked-in appointments, by slot then check-in time.
    pub appointments: BTreeSet<(Timestamp, Timestamp, TicketId)>,
    /// Walk-ins, by queue time.
    pub normal: BTreeSet<(Timestamp, TicketId)>,
}

impl Lines {
    /// Adds a queued ticket.
    pub fn insert(&mut self, t: &Ticket) {
        match t.class {
            Class::Green => self.green.insert((t.queue_at, t.id)),
            Class::Appointment => {
                self.appointments
                    .insert((t.due_at.unwrap_or(t.queue_at), t.queue_at, t.id))
            }
            Class::Normal => self.normal.insert((t.queue_at, t.id)),
        };
    }

    /// Removes a ticket, using the fields it was inserted with.
    pub fn remove(&mut self, t: &Ticket) -> bool {
        match t.class {
            Class::Green => self.green.remove(&(t.queue_at, t.id)),
            Class::Appointment => {
                self.appointments
                    .remove(&(t.due_at.unwrap_or(t.queue_at), t.queue_at, t.id))
            }
            Class::Normal => self.normal.remove(&(t.queue_at, t.id)),
        }
    }

    /// How many tickets are in these lines.
    pub fn len(&self) -> usize {
        self.green.len() + self.appointments.len() + self.normal.len()
    }

    /// No ticket waits here.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The best candidate of each rank, as (rank, order key, ticket).
    ///
    /// Rank 0 is the green channel, rank 1 appointments whose slot has begun, rank 2
    /// walk-ins together with appointments that are early (they wait in check-in order).
    /// The order key is compared within a rank; `weight` turns a walk-in's wait into a
    /// larger claim so a hall can favour one service at a comprehensive window.
    pub fn heads(&self, now: Timestamp, group: u8, weight: u32) -> impl Iterator<Item = Candidate> {
        let green = self.green.first().map(|&(q, id)| Candidate {
            rank: 0,
            group: 0,
            claim: -i128::from(q.0),
            at: q,
            id,
        });
        let due = self
            .appointments
            .iter()
            .take_while(|(due, _, _)| *due <= now)
            .min_by_key(|(due, q, id)| (*due, *q, *id))
            .map(|&(due, _, id)| Candidate {
                rank: 1,
                group: 0,
                claim: -i128::from(due.0),
                at: due,
                id,
            });
        let early = self
            .appointments
            .iter()
            .filter(|(due, _, _)| *due > now)
            .min_by_key(|(_, q, id)| (*q, *id))
            .map(|&(_, q, id)| (q, id));
        let walk_in = self.normal.first().copied();
        let oldest = match (early, walk_in) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let normal = oldest.map(|(q, id)| Candidate {
            rank: 2,
            group,
            claim: i128::from(now.0.saturating_sub(q.0).max(0)) * i128::from(weight),
            at: q,
            id,
        });
        green.into_iter().chain(due).chain(normal)
    }

    /// Tickets that would be called before `t` from these lines.
    pub fn ahead_of(&self, t: &Ticket, now: Timestamp) -> usize {
        let due_count = self
            .appointments
            .iter()
            .take_while(|(due, _, _)| *due <= now)
            .count();
        match t.class {
            Class::Green => before(&self.green, &(t.queue_at, t.id)),
            Class::Appointment if t.due_at.is_some_and(|d| d <= now) => {
                let key = (t.due_at.unwrap_or(t.queue_at), t.queue_at, t.id);
                self.green.len() + before(&self.appointments, &key)
            }
            _ => {
                let early_before = self
                    .appointments
                    .iter()
                    .filter(|(due, q, id)| *due > now && (*q, *id) < (t.queue_at, t.id))
                    .count();
                self.green.len()
                    + due_count
                    + before(&self.normal, &(t.queue_at, t.id))
                    + early_before
            }
        }
    }
}

/// How many entries of `set` sort before `key`, walking from whichever end of the set
/// is nearer: a ticket just issued sits at the back, so a long line costs no more to
/// answer "people ahead" for it than a short one.
fn before<K: Ord>(set: &BTreeSet<K>, key: &K) -> usize {
    let mut front = set.range(..key);
    let mut back = set.range(key..);
    let mut n = 0;
    loop {
        match (front.next(), back.next()) {
            (Some(_), Some(_)) => n += 1,
            // `front` ran out first: exactly `n` entries sort before `key`.
            (None, _) => return n,
            // `back` ran out first: exactly `n` entries are at or after `key`.
            (Some(_), None) => return set.len() - n,
        }
    }
}

/// A ticket a window could call, with what decides between candidates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    /// 0 green, 1 appointment due, 2 walk-in.
    pub rank: u8,
    /// The window's priority group for the service (walk-ins only).
    pub group: u8,
    /// Larger goes first: minus the queue time for ranks 0–1, weighted wait for rank 2.
    pub claim: i128,
    /// Queue time, the tie-breaker that keeps equal claims first-come-first-served.
    pub at: Timestamp,
    /// The ticket.
    pub id: TicketId,
}

impl Candidate {
    /// Sort key: the smallest goes first.
    pub fn key(&self) -> (u8, u8, i128, Timestamp, TicketId) {
        (self.rank, self.group, -self.claim, self.at, self.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn before_counts_from_either_end() {
        for len in 0..12u32 {
            let set: BTreeSet<u32> = (0..len).map(|i| i * 2).collect();
            for key in 0..(len * 2 + 2) {
                assert_eq!(
                    before(&set, &key),
                    set.range(..key).count(),
                    "len {len} key {key}"
                );
            }
        }
    }
}
