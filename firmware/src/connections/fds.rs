//! File descriptors: the open-file limit raised at start toward what the caps need, and
//! the reserve that connections may never take.

// `rlim_t` is u64 here but not on every target: the casts stay.
#![allow(clippy::unnecessary_cast)]

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Raises the soft open-file limit (`RLIMIT_NOFILE`) to `wanted`, or as far toward it as
/// the hard limit allows; returns the soft limit in force afterwards.
pub fn raise_open_file_limit(wanted: u64) -> u64 {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own; no other memory is touched.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) } != 0 {
        return 1024;
    }
    if r.rlim_cur as u64 >= wanted {
        return r.rlim_cur as u64;
    }
    let raised = libc::rlimit {
        rlim_cur: (wanted as libc::rlim_t).min(r.rlim_max),
        rlim_max: r.rlim_max,
    };
    // SAFETY: setrlimit only reads the struct we pass.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
        raised.rlim_cur as u64
    } else {
        r.rlim_cur as u64
    }
}

fn soft_limit() -> u64 {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) } != 0 {
        return 1024;
    }
    r.rlim_cur as u64
}

/// Descriptors open in this process now (`/proc/self/fd`), if it can be read.
fn open_now() -> Option<u64> {
    let dir = std::fs::read_dir("/proc/self/fd").ok()?;
    // The directory handle itself is one of the entries.
    Some((dir.count() as u64).saturating_sub(1))
}

/// How often the count of open descriptors is taken again while near the limit.
const RECOUNT: Duration = Duration::from_millis(100);

/// Decides whether one more connection leaves the reserve free.
pub(super) struct Budget {
    reserve: u64,
    limit: u64,
    /// The last count: when, descriptors open, connections open then.
    counted: Mutex<(Instant, u64, u64)>,
}

impl Budget {
    pub(super) fn new(reserve: u64) -> Budget {
        let open = open_now().unwrap_or(0);
        Budget {
            reserve,
            limit: soft_limit(),
            counted: Mutex::new((Instant::now(), open, 0)),
        }
    }

    /// Whether a connection just accepted (its descriptor already open) may stay, with
    /// `connections` others open: it may while `reserve` descriptors stay free.
    pub(super) fn may_open(&self, connections: u64) -> bool {
        let mut c = self.counted.lock().unwrap_or_else(|p| p.into_inner());
        let estimate = |c: &(Instant, u64, u64)| c.1 + connections.saturating_sub(c.2);
        // Far from the limit the estimate from the last count will do; near it, count.
        if estimate(&c) + 2 * self.reserve >= self.limit
            && c.0.elapsed() >= RECOUNT
            && let Some(open) = open_now()
        {
            *c = (Instant::now(), open.saturating_sub(1), connections);
        }
        estimate(&c) + 1 + self.reserve <= self.limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reserve_is_kept_free_near_the_limit() {
        let b = Budget {
            reserve: 10,
            limit: 100,
            // Counted "in the future": no recount during the test.
            counted: Mutex::new((Instant::now() + Duration::from_secs(600), 50, 0)),
        };
        // 50 open at the last count; 39 more connections since leave 11 free: one more
        // leaves exactly the reserve.
        assert!(b.may_open(38));
        assert!(!b.may_open(40));
    }

    #[test]
    fn the_soft_limit_is_raised_no_further_than_the_hard_one() {
        let got = raise_open_file_limit(64);
        assert!(got >= 64, "{got}");
        let mut r = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) }, 0);
        assert!(raise_open_file_limit(u64::MAX) <= r.rlim_max as u64);
    }
}
