//! State that commands from the hall server leave behind: the kiosk lock and the board
//! notice. Both are events (`kiosk_locked`, `notice_shown`, …) first; this is their
//! projection, rebuilt from the newest such events at start so a lock survives a
//! power cut.

use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::events::{Committed, HallEvent};
use crate::store::StoreError;
use crate::store::uplink::latest_of;

/// The kiosk lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KioskLock {
    /// Shown to citizens instead of the service tiles.
    pub message: String,
    /// When it was locked (ms).
    pub since: i64,
    /// The command that locked it.
    pub command_id: String,
}

/// A notice on the boards (通知公告).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    /// The text.
    pub text: String,
    /// Shown since (ms).
    pub since: i64,
    /// Taken down at (ms); none means until cleared.
    pub until: Option<i64>,
    /// The command that posted it.
    pub command_id: String,
}

#[derive(Debug, Default)]
struct State {
    lock: Option<KioskLock>,
    notice: Option<Notice>,
}

/// Shared, cheap to clone.
#[derive(Clone, Default)]
pub struct Controls {
    inner: Arc<RwLock<State>>,
}

impl Controls {
    /// Rebuilds the lock and the notice from the newest events that set them.
    pub fn load(conn: &rusqlite::Connection) -> Result<Controls, StoreError> {
        let c = Controls::default();
        if let Some(e) = latest_of(conn, &["kiosk_locked", "kiosk_unlocked"])? {
            c.apply(&e.kind, &e.payload, e.at);
        }
        if let Some(e) = latest_of(conn, &["notice_shown", "notice_cleared"])? {
            c.apply(&e.kind, &e.payload, e.at);
        }
        Ok(c)
    }

    /// Follows one committed event (others are ignored).
    pub fn apply(&self, kind: &str, payload: &Value, at: i64) {
        let Committed::Hall(event) = Committed::of(kind, payload) else {
            return;
        };
        let mut s = self.inner.write().unwrap_or_else(|p| p.into_inner());
        match event {
            HallEvent::KioskLocked {
                message,
                command_id,
            } => {
                s.lock = Some(KioskLock {
                    message,
                    since: at,
                    command_id,
                })
            }
            HallEvent::KioskUnlocked { .. } => s.lock = None,
            HallEvent::NoticeShown {
                text,
                until,
                command_id,
            } => {
                s.notice = Some(Notice {
                    text,
                    since: at,
                    until,
                    command_id,
                })
            }
            HallEvent::NoticeCleared { .. } => s.notice = None,
            _ => {}
        }
    }

    /// The lock, if the kiosk is locked.
    pub fn lock(&self) -> Option<KioskLock> {
        self.inner
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .lock
            .clone()
    }

    /// The notice showing at `now` (an expired one is not shown).
    pub fn notice(&self, now: i64) -> Option<Notice> {
        self.inner
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .notice
            .clone()
            .filter(|n| n.until.is_none_or(|u| u > now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{NewEvent, Store};
    use hallq_engine::Timestamp;
    use serde_json::json;

    #[test]
    fn a_lock_survives_a_restart_and_an_unlock_clears_it() {
        let mut store = Store::in_memory().unwrap();
        let ev = |at, kind: &str, body: Value| NewEvent {
            at: Timestamp(at),
            kind: kind.into(),
            payload: body.to_string(),
        };
        store
            .append(&[
                ev(1, "kiosk_locked", json!({"type": "kiosk_locked", "message": "维护", "command_id": "c1"})),
                ev(2, "notice_shown", json!({"type": "notice_shown", "text": "午休", "until": 100, "command_id": "c2"})),
            ])
            .unwrap();
        let c = Controls::load(store.conn()).unwrap();
        assert_eq!(c.lock().unwrap().message, "维护");
        assert_eq!(c.notice(50).unwrap().text, "午休");
        assert!(c.notice(100).is_none(), "an expired notice is not shown");
        store
            .append(&[ev(
                3,
                "kiosk_unlocked",
                json!({"type": "kiosk_unlocked", "command_id": "c3"}),
            )])
            .unwrap();
        assert!(Controls::load(store.conn()).unwrap().lock().is_none());
    }
}
