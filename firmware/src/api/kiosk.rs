//! What the hall server controls on the hall's screens: the kiosk lock (tickets are
//! refused while it holds), the board notice, and the uplink's own status.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use axum::{Json, Router};

use hallq_engine::{Lang, Setup};
use serde_json::{Value, json};

use super::{ApiError, AppState, Language};
use crate::core::wall_now;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/kiosk", get(kiosk))
        .route("/api/v1/notices", get(notices))
        .route("/api/v1/uplink", get(uplink))
}

impl AppState {
    /// Runs `f` with the queue setup in force, as the hall core holds it (the one
    /// pushed from the hall server if there is one, else the file's `[queue]`).
    pub fn with_setup<T>(&self, f: impl FnOnce(&Setup) -> T) -> T {
        f(&self.hall.in_force().setup)
    }
}

/// 423 with the lock's message while the hall server has locked the kiosk.
pub(super) fn refuse_if_locked(s: &AppState, lang: Lang) -> Result<(), ApiError> {
    let Some(lock) = s.uplink.controls.lock() else {
        return Ok(());
    };
    let lead = match lang {
        Lang::En => "Tickets are not being issued here right now",
        Lang::ZhTw => "本機暫停取號",
        Lang::ZhCn => "本机暂停取号",
    };
    Err(ApiError::new(
        StatusCode::LOCKED,
        "kiosk_locked",
        format!("{lead}: {}", lock.message),
    ))
}

/// The lock, the notice, the near-turn offer, and the printer beside the asking kiosk
/// (its `X-Kiosk-Id`): that printer's health only, so that paper running out at one
/// kiosk shows there and not at the next.
async fn kiosk(State(s): State<AppState>, headers: HeaderMap) -> Json<Value> {
    let now = wall_now().0;
    let body = match s.uplink.controls.lock() {
        Some(l) => json!({
            "locked": true, "message": l.message, "since": l.since, "command_id": l.command_id,
        }),
        None => json!({ "locked": false, "message": null }),
    };
    let mut body = body;
    body["notice"] = json!(s.uplink.controls.notice(now));
    // The near-turn text message the kiosk may offer after a ticket.
    body["notify"] = json!(s.hall.near_turn());
    let channel = super::kiosk_channel(&headers);
    body["printer"] = match s.printers.at(&channel) {
        Some(p) => {
            let state = s.devices.get(p.device());
            json!({
                "id": p.name(),
                "device": p.device(),
                "health": state.as_ref().map(|d| &d.health),
                "since": state.as_ref().map(|d| d.since),
            })
        }
        None => Value::Null,
    };
    Json(body)
}

async fn notices(State(s): State<AppState>) -> Json<Value> {
    let notices: Vec<_> = s.uplink.controls.notice(wall_now().0).into_iter().collect();
    Json(json!({ "notices": notices }))
}

async fn uplink(State(s): State<AppState>, Language(_): Language) -> Result<Json<Value>, ApiError> {
    let status = s.uplink.status();
    Ok(Json(json!({ "uplink": status })))
}
