//! Voice endpoints: what the hall's voice can say, and the kiosk's elder-mode prompts
//! spoken through the same announcer as the calls (so a prompt never talks over a call).

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, AppState, JsonBody, Kiosk};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/voice", get(status))
        .route("/api/v1/voice/prompt", post(prompt))
}

async fn status(State(s): State<AppState>) -> Json<Value> {
    Json(match &s.voice {
        Some(v) => json!({
            "enabled": true,
            "pack": v.pack_name(),
            "sink": v.sink_name(),
            "prompts": v.prompts(),
            "backlog": v.backlog(),
        }),
        None => json!({ "enabled": false, "prompts": [] }),
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PromptBody {
    /// Prompt id from the pack, e.g. `welcome`, `take_ticket`, `help_coming`.
    prompt: String,
    /// The ticket number `your_number` / `your_number_en` reads after the prompt
    /// (and only they take one).
    #[serde(default)]
    number: Option<String>,
}

/// Prompts that end with a ticket number.
fn takes_number(prompt: &str) -> bool {
    prompt == "your_number" || prompt.starts_with("your_number_")
}

async fn prompt(
    State(s): State<AppState>,
    _kiosk: Kiosk,
    JsonBody(body): JsonBody<PromptBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let Some(voice) = &s.voice else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "voice_disabled",
            "this hall has no voice configured",
        ));
    };
    let accepted = match (&body.number, takes_number(&body.prompt)) {
        (None, false) => voice.prompt(&body.prompt),
        (Some(n), true) => {
            if n.is_empty() || n.len() > 12 || !n.chars().all(|c| c.is_ascii_alphanumeric()) {
                return Err(ApiError::field(
                    "number",
                    "a ticket number as printed: 1 to 12 letters and digits",
                ));
            }
            voice.prompt_number(&body.prompt, n)
        }
        (None, true) => {
            return Err(ApiError::field(
                "number",
                format!(
                    "prompt {} reads a ticket number: give it",
                    hallq_engine::text::clip(&body.prompt)
                ),
            ));
        }
        (Some(_), false) => {
            return Err(ApiError::field(
                "number",
                format!(
                    "prompt {} takes no number",
                    hallq_engine::text::clip(&body.prompt)
                ),
            ));
        }
    }
    .map_err(|e| ApiError::field("prompt", e.to_string()))?;
    if !accepted.queued {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "voice_busy",
            "calls fill the announcer's queue; the prompt was not queued",
        ));
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "queued": true, "ahead": accepted.ahead })),
    ))
}
