//! Wait estimates: how long until a window calls a ticket with `ahead` people before it.
//!
//! The pace of a service is measured, not derived from its service time: the gaps
//! between successive first calls of its tickets while someone was waiting all along
//! (the caller was waiting at the previous call, so the gap was spent on windows
//! working, not on an empty queue). That one figure holds everything a formula of
//! service time over windows misses: the walk to the window, no-shows, comprehensive
//! windows that take the service only when their own queue is empty, green tickets
//! that jump the line, staff who look at the waiting count only now and then. A ticket
//! with `k` people ahead is called after `k + 1` calls of its service, so it waits
//! about `(k + 1)` gaps.
//!
//! The gaps are averaged over the last half hour (at most [`KEPT_GAPS`] of them): a
//! shorter window is noisy (32 gaps of a service with 24 windows span two minutes and
//! wander by a fifth), a longer one lags. The estimate given is nine tenths of the
//! expected wait, because the two errors do not cost the same: a citizen back a
//! little early waits a little; one back late has lost the turn.

use std::collections::VecDeque;

use crate::time::Timestamp;

/// The moving window the pace is averaged over.
pub const WINDOW_MS: i64 = 30 * 60 * 1000;
/// At most this many busy gaps are kept per service, however busy the half hour.
pub const KEPT_GAPS: usize = 256;
/// Gaps needed before the measured pace replaces the configured guess.
pub const ENOUGH_GAPS: usize = 4;
/// A longer gap, with someone waiting all along, means nobody was calling (a lunch
/// break, every window paused): it says nothing about the pace and is not kept.
pub const LONGEST_GAP_MS: i64 = 15 * 60 * 1000;

/// The measured pace of one service.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pace {
    /// The latest instant one of its tickets was first called.
    last_call: Option<Timestamp>,
    /// The latest such instant before `last_call`.
    call_before: Option<Timestamp>,
    /// The latest busy gaps, oldest first: when each ended, and its milliseconds.
    gaps: VecDeque<(Timestamp, i64)>,
    /// Their sum.
    sum: i64,
}

impl Pace {
    /// A ticket issued at `issued` was called for the first time at `now` (never
    /// earlier than a call already told). Calls at the same instant are each measured
    /// from the instant before, so their order does not matter: a restart that replays
    /// the day's calls sorted by time rebuilds exactly this pace.
    pub fn called(&mut self, issued: Timestamp, now: Timestamp) {
        let previous = match self.last_call {
            Some(last) if now > last => {
                self.call_before = Some(last);
                self.last_call = Some(now);
                Some(last)
            }
            Some(last) if now == last => self.call_before,
            Some(_) => return,
            None => {
                self.last_call = Some(now);
                None
            }
        };
        if let Some(previous) = previous
            && issued <= previous
        {
            let gap = now.0.saturating_sub(previous.0);
            if gap <= LONGEST_GAP_MS {
                self.gaps.push_back((now, gap));
                self.sum += gap;
                let since = Timestamp(now.0.saturating_sub(WINDOW_MS));
                while let Some(&(end, old)) = self.gaps.front()
                    && (self.gaps.len() > KEPT_GAPS
                        || (end < since && self.gaps.len() > ENOUGH_GAPS))
                {
                    self.gaps.pop_front();
                    self.sum -= old;
                }
            }
        }
    }

    /// Mean milliseconds between calls while someone waits, once enough are measured.
    pub fn gap_ms(&self) -> Option<i64> {
        (self.gaps.len() >= ENOUGH_GAPS).then(|| self.sum / self.gaps.len() as i64)
    }
}

/// Seconds until a ticket with `ahead` people before it is called: nine tenths of
/// `ahead + 1` gaps of the measured pace, or, before the day has measured one, `ahead`
/// service times shared among the open windows.
pub fn wait_secs(pace: &Pace, ahead: u32, service_secs: i64, open_windows: u32) -> i64 {
    let ahead = i64::from(ahead);
    match pace.gap_ms() {
        Some(gap) => (ahead + 1).saturating_mul(gap).saturating_mul(9) / 10_000,
        None => ahead.saturating_mul(service_secs.max(0)) / i64::from(open_windows.max(1)),
    }
}

/// Seconds as whole minutes, to the nearest.
pub fn minutes(secs: i64) -> u32 {
    u32::try_from(secs.max(0).saturating_add(30) / 60).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// First calls as (issued, called) in milliseconds, in time order: `steps` are the
    /// gaps between calls (0 for two calls at one instant) and how long before its call
    /// each ticket was issued.
    fn calls(steps: &[(i64, i64)]) -> Vec<(i64, i64)> {
        let mut at = 0;
        steps
            .iter()
            .map(|&(step, waited)| {
                at += step;
                (at - waited, at)
            })
            .collect()
    }

    fn step() -> impl Strategy<Value = (i64, i64)> {
        (
            prop_oneof![1 => Just(0i64), 4 => 0..20 * 60 * 1000i64],
            0..60 * 60 * 1000i64,
        )
    }

    proptest! {
        #[test]
        fn the_estimate_never_falls_as_people_ahead_grow(
            steps in proptest::collection::vec(step(), 0..80),
            a in 0..10_000u32,
            more in 0..10_000u32,
            service_secs in 0..7_200i64,
            windows in 0..50u32,
        ) {
            let p = pace(&calls(&steps));
            let b = a.saturating_add(more);
            prop_assert!(wait_secs(&p, a, service_secs, windows) <= wait_secs(&p, b, service_secs, windows));
        }

        #[test]
        fn the_estimate_is_finite_and_small_with_nobody_ahead(
            steps in proptest::collection::vec(step(), 0..80),
            ahead in any::<u32>(),
            service_secs in any::<i64>(),
            windows in any::<u32>(),
        ) {
            let p = pace(&calls(&steps));
            let w = wait_secs(&p, ahead, service_secs, windows);
            prop_assert!(w >= 0);
            let _ = minutes(w);
            // Nobody ahead: at most one gap, and no gap is longer than the longest kept.
            prop_assert!(wait_secs(&p, 0, service_secs, windows) <= LONGEST_GAP_MS / 1000);
        }

        #[test]
        fn calls_at_one_instant_tell_the_same_pace_in_any_order(
            steps in proptest::collection::vec(step(), 0..80),
        ) {
            let told = calls(&steps);
            let mut sorted = told.clone();
            sorted.sort_by_key(|&(issued, at)| (at, std::cmp::Reverse(issued)));
            prop_assert_eq!(pace(&told), pace(&sorted));
        }
    }

    fn pace(calls: &[(i64, i64)]) -> Pace {
        let mut p = Pace::default();
        for &(issued, at) in calls {
            p.called(Timestamp(issued), Timestamp(at));
        }
        p
    }

    #[test]
    fn gaps_count_only_while_the_next_caller_was_already_waiting() {
        // Three waiting from the start, called 10 s apart; then one who came to an
        // empty queue much later: that gap measured the queue, not the windows.
        let p = pace(&[
            (0, 1_000),
            (0, 11_000),
            (0, 21_000),
            (0, 31_000),
            (0, 41_000),
            (500_000, 501_000),
        ]);
        assert_eq!(p.gap_ms(), Some(10_000));
    }

    #[test]
    fn the_pace_is_a_guess_until_enough_gaps_are_measured() {
        let p = pace(&[(0, 1_000), (0, 2_000), (0, 3_000), (0, 4_000)]);
        assert_eq!(p.gap_ms(), None);
        assert_eq!(wait_secs(&p, 6, 120, 3), 240);
    }

    #[test]
    fn a_gap_over_a_lunch_break_is_not_kept() {
        let mut calls: Vec<(i64, i64)> = (0..6).map(|i| (0, i * 5_000)).collect();
        calls.push((0, 25_000 + LONGEST_GAP_MS + 1));
        assert_eq!(pace(&calls).gap_ms(), Some(5_000));
    }

    #[test]
    fn the_pace_forgets_gaps_older_than_half_an_hour() {
        // A minute apart for 40 minutes, then 10 s apart for 31 minutes: 186 gaps, fewer
        // than are kept, all of the last half hour.
        let mut calls: Vec<(i64, i64)> = (0..=40).map(|i| (0, i * 60_000)).collect();
        let end = 40 * 60_000;
        calls.extend((1..=186).map(|i| (0, end + i * 10_000)));
        assert_eq!(pace(&calls).gap_ms(), Some(10_000));
    }

    #[test]
    fn a_busy_half_hour_keeps_only_the_latest_gaps() {
        let mut calls: Vec<(i64, i64)> = (0..=20).map(|i| (0, i * 12_000)).collect();
        let end = 20 * 12_000;
        calls.extend((1..=KEPT_GAPS as i64).map(|i| (0, end + i * 3_000)));
        let p = pace(&calls);
        assert_eq!(p.gaps.len(), KEPT_GAPS);
        assert_eq!(p.gap_ms(), Some(3_000));
    }

    #[test]
    fn the_estimate_is_nine_tenths_of_the_measured_pace() {
        let p = pace(&[(0, 0), (0, 20_000), (0, 40_000), (0, 60_000), (0, 80_000)]);
        // 9 ahead: 10 calls of 20 s, 200 s, told as 180 s.
        assert_eq!(wait_secs(&p, 9, 600, 1), 180);
        assert_eq!(wait_secs(&p, 0, 600, 1), 18);
    }

    #[test]
    fn minutes_round_to_the_nearest() {
        assert_eq!(minutes(-5), 0);
        assert_eq!(minutes(29), 0);
        assert_eq!(minutes(30), 1);
        assert_eq!(minutes(89), 1);
        assert_eq!(minutes(i64::MAX), u32::MAX);
    }
}
