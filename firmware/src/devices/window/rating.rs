//! Rating pads armed by finish, as pure functions of the time: finish arms a window's
//! pad for that ticket; a level key rates it while armed; a reason key qualifies the bad
//! level just given; an unarmed or expired pad rates nothing, so no rating is invented.
//! After a restart the armed pads are derived from the engine's state.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use hallq_engine::{Engine, Level, TicketId, TicketState};
use hallq_hardware::window::keys::RatingInput;

/// A window's pad, armed for one finished ticket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Armed {
    /// The ticket a press rates.
    pub ticket: TicketId,
    /// When the pad stops taking presses.
    pub until: Instant,
    /// The level given so far, which a reason key qualifies.
    pub last: Option<Level>,
}

impl Armed {
    /// Armed at `now` for `ticket`, for `armed_for`.
    pub fn new(ticket: TicketId, now: Instant, armed_for: Duration) -> Armed {
        Armed {
            ticket,
            until: now + armed_for,
            last: None,
        }
    }
}

/// What a press on an armed pad means at `now`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Press {
    /// Rate the ticket with this level and these reasons.
    Rate {
        /// The ticket.
        ticket: TicketId,
        /// The level.
        level: Level,
        /// Reasons (one, from a reason key, or none).
        reasons: Vec<String>,
    },
    /// Nothing to rate: the pad is not armed, the time ran out, or the key means
    /// nothing alone; the reason, for the log.
    Ignored(&'static str),
}

/// Decides what `input` on `window`'s pad does at `now`, and updates the armed pads.
pub fn press(
    armed: &mut HashMap<u32, Armed>,
    window: u32,
    input: Option<RatingInput>,
    now: Instant,
) -> Press {
    let Some(a) = armed.get_mut(&window) else {
        return Press::Ignored("rating key pressed with no finished service to rate");
    };
    if now > a.until {
        armed.remove(&window);
        return Press::Ignored("rating key pressed after the rating time");
    }
    let (level, reasons) = match input {
        Some(RatingInput::Level(l)) => match Level::parse(l.name()) {
            Some(level) => (level, Vec::new()),
            None => return Press::Ignored("unknown level"),
        },
        // A reason qualifies the bad rating just given; alone it means nothing.
        Some(RatingInput::Reason(r)) => match a.last {
            Some(level) if level.is_bad() => (level, vec![r]),
            _ => return Press::Ignored("a reason key without a bad rating before it"),
        },
        None => return Press::Ignored("a key this pad does not have"),
    };
    a.last = Some(level);
    Press::Rate {
        ticket: a.ticket,
        level,
        reasons,
    }
}

/// The armed pads a restart must not forget: for each window with a rating pad, its
/// latest finished ticket, if nothing was called there since and the armed time
/// (measured from the stored finish time, `now_wall` in ms) has not run out.
pub fn restore(
    e: &Engine,
    armed_for: &HashMap<u32, Duration>,
    now_wall: i64,
    now: Instant,
) -> HashMap<u32, Armed> {
    let mut out = HashMap::new();
    for (&w, &armed) in armed_for {
        if e.windows().get(&w).is_some_and(|s| s.current.is_some()) {
            continue;
        }
        let at_window = || e.tickets().filter(move |t| t.window == Some(w));
        let Some((ticket, closed)) = at_window()
            .filter(|t| t.state == TicketState::Finished)
            .filter_map(|t| t.closed_at.map(|c| (t.id, c.0)))
            .max_by_key(|(_, c)| *c)
        else {
            continue;
        };
        if at_window().any(|t| t.called_at.is_some_and(|c| c.0 > closed)) {
            continue;
        }
        let age = Duration::from_millis(now_wall.saturating_sub(closed).max(0) as u64);
        let Some(left) = armed.checked_sub(age) else {
            continue;
        };
        out.insert(
            w,
            Armed {
                ticket,
                until: now + left,
                last: e.rating(ticket).map(|r| r.level),
            },
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use hallq_hardware::window::keys::RatingLevel;

    #[test]
    fn a_pad_rates_only_while_armed_and_a_reason_only_after_a_bad_level() {
        let t0 = Instant::now();
        let mut armed = HashMap::new();
        let level = |l| Some(RatingInput::Level(l));
        let reason = || Some(RatingInput::Reason("办事效率低".into()));
        assert!(matches!(
            press(&mut armed, 3, level(RatingLevel::Satisfied), t0),
            Press::Ignored(_)
        ));
        armed.insert(3, Armed::new(TicketId(7), t0, Duration::from_secs(30)));
        assert!(matches!(
            press(&mut armed, 3, reason(), t0),
            Press::Ignored(_)
        ));
        let bad = press(&mut armed, 3, level(RatingLevel::Dissatisfied), t0);
        assert!(
            matches!(bad, Press::Rate { ticket: TicketId(7), ref reasons, .. } if reasons.is_empty())
        );
        let qualified = press(&mut armed, 3, reason(), t0 + Duration::from_secs(5));
        assert!(matches!(qualified, Press::Rate { ref reasons, .. } if reasons == &["办事效率低"]));
        let late = press(
            &mut armed,
            3,
            level(RatingLevel::Satisfied),
            t0 + Duration::from_secs(31),
        );
        assert!(matches!(late, Press::Ignored(_)));
        assert!(armed.is_empty(), "an expired pad is disarmed");
    }
}
