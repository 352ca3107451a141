//! The kiosk's help button (求助): a citizen's call for a member of staff. A press
//! records a `help_requested` event naming the kiosk and the screen and speaks
//! `help_coming`; the request shows on the supervision page and the board's staff line
//! until a signed-in member of staff acknowledges it (`help_acknowledged`, naming who).
//! Open requests are a table of their own (`store::help`), so a restart keeps them.

use super::Path;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::routing::{get, post};
use axum::{Json, Router};
use hallq_engine::Lang;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, AppState, JsonBody, Kiosk, Language, StaffAuth};
use crate::core::wall_now;
use crate::events::HallEvent;
use crate::store::NewEvent;
use crate::store::help::{self, HelpRequest};

/// The kiosk screens a request may come from (the kiosk's `Screen` names).
pub const SCREENS: &[&str] = &[
    "home", "services", "ticket", "guides", "guide", "search", "checkin", "status", "closed",
    "card",
];

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/help", get(list).post(request))
        .route("/api/v1/help/{kiosk}/ack", post(acknowledge))
}

/// The open requests, oldest first, as JSON for the supervision page and the board.
pub(super) async fn open_json(s: &AppState) -> Result<Value, ApiError> {
    Ok(json!(read_open(s).await?))
}

async fn read_open(s: &AppState) -> Result<Vec<HelpRequest>, ApiError> {
    s.with_auth_db(help::open).await?.map_err(|e| {
        tracing::error!(error = %e, "help requests could not be read");
        ApiError::unavailable()
    })
}

fn encode(e: &HallEvent) -> Result<NewEvent, ApiError> {
    NewEvent::encode(wall_now(), e.kind(), e).map_err(|_| ApiError::unavailable())
}

async fn list(State(s): State<AppState>) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!({ "help": open_json(&s).await? })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RequestBody {
    /// The screen the kiosk showed.
    screen: String,
}

async fn request(
    State(s): State<AppState>,
    Language(lang): Language,
    headers: axum::http::HeaderMap,
    kiosk: Kiosk,
    JsonBody(body): JsonBody<RequestBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    // The bell is the citizen's: a member of staff signed in at a screen needs none.
    if headers.contains_key(header::AUTHORIZATION) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "kiosk_only",
            "the help button is a kiosk's, never rung with a staff sign-in",
        ));
    }
    if !SCREENS.contains(&body.screen.as_str()) {
        return Err(ApiError::field(
            "screen",
            format!("must be one of: {}", SCREENS.join(", ")),
        ));
    }
    // One open request per kiosk: presses while staff are on their way add nothing.
    // The lock makes "is one open? if not, record it" one step across requests.
    let _one_at_a_time = s.help_lock.lock().await;
    let open = read_open(&s).await?;
    if let Some(existing) = open.into_iter().find(|o| o.kiosk == kiosk.channel) {
        return Ok((
            StatusCode::OK,
            Json(json!({ "help": existing, "already_open": true, "spoken": false })),
        ));
    }
    let event = HallEvent::HelpRequested {
        kiosk: kiosk.channel.clone(),
        screen: body.screen.clone(),
    };
    let stored = s
        .hall
        .append(vec![encode(&event)?])
        .await
        .map_err(|e| ApiError::from_core(e, lang))?;
    let Some(ev) = stored.first() else {
        return Err(ApiError::unavailable());
    };
    tracing::info!(kiosk = %kiosk.channel, screen = %body.screen, "help requested");
    let spoken = speak_help_coming(&s, lang);
    let req = HelpRequest {
        kiosk: kiosk.channel,
        screen: body.screen,
        at: ev.at,
        seq: ev.seq,
    };
    Ok((
        StatusCode::CREATED,
        Json(json!({ "help": req, "already_open": false, "spoken": spoken })),
    ))
}

/// Queues `help_coming` (`help_coming_en` for English) behind any call; whether it was.
fn speak_help_coming(s: &AppState, lang: Lang) -> bool {
    let Some(voice) = &s.voice else { return false };
    let id = match lang {
        Lang::En if voice.prompts().iter().any(|p| p == "help_coming_en") => "help_coming_en",
        _ => "help_coming",
    };
    match voice.prompt(id) {
        Ok(a) => a.queued,
        Err(e) => {
            tracing::warn!(error = %e, "help_coming cannot be spoken");
            false
        }
    }
}

async fn acknowledge(
    State(s): State<AppState>,
    Language(lang): Language,
    auth: StaffAuth,
    Path(kiosk): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let _one_at_a_time = s.help_lock.lock().await;
    let open = read_open(&s).await?;
    let Some(req) = open.into_iter().find(|o| o.kiosk == kiosk) else {
        return Err(ApiError {
            field: Some("kiosk".into()),
            ..ApiError::new(
                StatusCode::NOT_FOUND,
                "help_not_open",
                format!(
                    "kiosk {} has no open help request (already acknowledged, or never asked)",
                    hallq_engine::text::clip(&kiosk)
                ),
            )
        });
    };
    let by = auth.session.staff.id.clone();
    let event = HallEvent::HelpAcknowledged {
        kiosk: req.kiosk.clone(),
        by: by.clone(),
    };
    s.hall
        .append(vec![encode(&event)?])
        .await
        .map_err(|e| ApiError::from_core(e, lang))?;
    tracing::info!(kiosk = %req.kiosk, staff = %by, "help acknowledged");
    Ok(Json(json!({
        "acknowledged": req,
        "by": by,
        "waited_ms": (wall_now().0 - req.at).max(0),
    })))
}
