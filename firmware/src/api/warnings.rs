//! Warnings followed up (预警纠错). A supervisor acknowledges a warning of the
//! supervision page with an outcome — `handled` (处理: acted on it) or `corrected` (纠错:
//! the warning was wrong) — and a note; that records a `warning_handled` event naming
//! who, and the page shows the warning handled. A warning nobody handled within
//! `[supervision] escalate_after_minutes` is escalated: a `warning_escalated` event,
//! once per warning, which the uplink carries to the hall server like every event. The
//! daemon looks for such warnings every [`ESCALATION_CHECK`] ([`escalate_every`]).
//!
//! What was done about each warning is a table of its own (`store::warnings`), written
//! in the transaction that appends the event. One lock makes "is it still unhandled?
//! then record" one step, for supervisors and the escalation alike.

use std::time::Duration;

use super::Path;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, AppState, JsonBody, Language, StaffAuth};
use crate::core::{CoreError, wall_now};
use crate::events::HallEvent;
use crate::store::NewEvent;
use crate::store::staff::Permission;
use crate::store::warnings::{self, OUTCOMES, Warning};

/// How often the daemon looks for warnings to escalate.
pub const ESCALATION_CHECK: Duration = Duration::from_secs(5);
/// How far back the escalation looks: a day, so a warning raised just before closing
/// still goes up the next morning, and a restart misses none.
const LOOK_BACK_MS: i64 = 24 * 3600 * 1000;
/// Most characters in a note.
pub const NOTE_MAX: usize = 200;

pub(super) fn routes() -> Router<AppState> {
    Router::new().route(
        "/api/v1/supervision/warnings/{warning}/handle",
        post(handle),
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HandleBody {
    /// `handled` or `corrected`.
    outcome: String,
    /// What was done, or why the warning was wrong.
    note: String,
}

/// Why a note is refused, as the `note` field's message.
fn check_note(note: &str) -> Result<(), String> {
    if note.is_empty() {
        return Err("say what was done, or why the warning was wrong".into());
    }
    if note.chars().count() > NOTE_MAX {
        return Err(format!("a note is at most {NOTE_MAX} characters"));
    }
    if note
        .chars()
        .any(|c| c != '\n' && hallq_engine::text::unsafe_in_text(c))
    {
        return Err("a note has no control characters".into());
    }
    // Personal data never enters the events: a run of six digits or more may be a
    // phone or ID number, so it is refused (spaces and dashes do not break a run).
    let mut run = 0;
    for c in note.chars() {
        if c.is_ascii_digit() || ('０'..='９').contains(&c) {
            run += 1;
            if run >= 6 {
                return Err(
                    "a note must not hold a phone or ID number (no run of 6 digits or more): no personal data".into(),
                );
            }
        } else if c != ' ' && c != '-' {
            run = 0;
        }
    }
    Ok(())
}

fn encode(e: &HallEvent) -> Result<NewEvent, ApiError> {
    NewEvent::encode(wall_now(), e.kind(), e).map_err(|_| ApiError::unavailable())
}

fn storage(e: crate::store::StoreError) -> ApiError {
    tracing::error!(error = %e, "warnings could not be read");
    ApiError::unavailable()
}

async fn handle(
    State(s): State<AppState>,
    Language(lang): Language,
    auth: StaffAuth,
    Path(warning): Path<String>,
    JsonBody(body): JsonBody<HandleBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    auth.require(Permission::Supervisor)?;
    let not_found = || ApiError {
        field: Some("warning".into()),
        ..ApiError::new(
            StatusCode::NOT_FOUND,
            "warning_not_found",
            format!(
                "there is no warning {} (give the seq of a warning's event)",
                hallq_engine::text::clip(&warning)
            ),
        )
    };
    let seq: i64 = warning.parse().map_err(|_| not_found())?;
    if !OUTCOMES.contains(&body.outcome.as_str()) {
        return Err(ApiError::field(
            "outcome",
            "use handled (处理: acted on) or corrected (纠错: the warning was wrong)",
        ));
    }
    let note = body.note.trim().to_string();
    check_note(&note).map_err(|m| ApiError::field("note", m))?;

    let _one_at_a_time = s.warning_lock.lock().await;
    let (found, action) = s
        .with_auth_db(move |c| {
            Ok::<_, crate::store::StoreError>((
                warnings::warning(c, seq)?,
                warnings::action(c, seq)?,
            ))
        })
        .await?
        .map_err(storage)?;
    let Some(found) = found else {
        return Err(not_found());
    };
    if let Some(h) = action.handled {
        return Err(ApiError {
            field: Some("warning".into()),
            ..ApiError::new(
                StatusCode::CONFLICT,
                "already_handled",
                format!(
                    "warning {seq} was already handled ({}) by {} at {}",
                    h.outcome, h.by, h.at
                ),
            )
        });
    }
    let by = auth.session.staff.id.clone();
    let event = HallEvent::WarningHandled {
        warning: seq,
        warning_type: found.kind.clone(),
        outcome: body.outcome.clone(),
        note: note.clone(),
        by: by.clone(),
    };
    let stored = s
        .hall
        .append(vec![encode(&event)?])
        .await
        .map_err(|e| ApiError::from_core(e, lang))?;
    let Some(ev) = stored.first() else {
        return Err(ApiError::unavailable());
    };
    tracing::info!(warning = seq, kind = %found.kind, outcome = %body.outcome, by = %by, "warning handled");
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "warning": seq,
            "type": found.kind,
            "handled": {
                "by": by, "by_name": auth.session.staff.name, "at": ev.at,
                "outcome": body.outcome, "note": note,
            },
            "escalated_at": action.escalated_at,
            "event": ev,
        })),
    ))
}

/// The `warning_escalated` event for a warning left unhandled past `minutes`.
fn escalation(w: &Warning, minutes: u32) -> HallEvent {
    let mut detail = w.payload.as_object().cloned().unwrap_or_default();
    for own in [
        "type",
        "warning",
        "warning_type",
        "raised_at",
        "after_minutes",
    ] {
        detail.remove(own);
    }
    HallEvent::WarningEscalated {
        warning: w.seq,
        warning_type: w.kind.clone(),
        raised_at: w.at,
        after_minutes: minutes,
        detail,
    }
}

/// Escalates every warning of the last day left unhandled past the setting, in one
/// transaction; returns how many went up, or `None` when the core has stopped.
pub async fn escalate_due(s: &AppState) -> Result<Option<usize>, String> {
    let minutes = s.config.supervision.escalate_after_minutes;
    let now = wall_now().0;
    let _one_at_a_time = s.warning_lock.lock().await;
    let due = s
        .with_auth_db(move |c| {
            let first = super::supervision::first_seq_since(c, now - LOOK_BACK_MS)?;
            warnings::unhandled(c, first, now - i64::from(minutes) * 60_000)
        })
        .await
        .map_err(|_| "the database reader stopped".to_string())?
        .map_err(|e| e.to_string())?;
    if due.is_empty() {
        return Ok(Some(0));
    }
    let mut events = Vec::with_capacity(due.len());
    for w in &due {
        let e = escalation(w, minutes);
        events.push(NewEvent::encode(wall_now(), e.kind(), &e).map_err(|e| e.to_string())?);
    }
    match s.hall.append(events).await {
        Ok(stored) => {
            for w in &due {
                tracing::warn!(warning = w.seq, kind = %w.kind, minutes, "warning unhandled: escalated to the hall server");
            }
            Ok(Some(stored.len()))
        }
        Err(CoreError::Stopped) => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}

/// Every [`ESCALATION_CHECK`] until the core stops: escalates what is due.
pub async fn escalate_every(s: AppState) {
    let mut every = tokio::time::interval(ESCALATION_CHECK);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        match escalate_due(&s).await {
            Ok(Some(_)) => {}
            Ok(None) => return,
            Err(e) => tracing::warn!(error = %e, "could not escalate unhandled warnings"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_note_is_short_printable_text_without_a_phone_or_id_number() {
        assert!(check_note("已电话联系群众，安排加窗").is_ok());
        assert!(check_note("3号窗口 12:05 已恢复").is_ok());
        assert!(check_note("").is_err());
        assert!(check_note(&"好".repeat(NOTE_MAX + 1)).is_err());
        assert!(check_note("a\u{7}b").is_err());
        assert!(
            check_note("回访 138 0013 8000")
                .unwrap_err()
                .contains("personal")
        );
        assert!(check_note("证件 11010519491231002X").is_err());
        assert!(check_note("第一行\n第二行").is_ok());
    }

    #[test]
    fn an_escalation_carries_the_warnings_own_fields() {
        let w = Warning {
            seq: 42,
            at: 1000,
            kind: "pause_alarm".into(),
            payload: json!({"type": "pause_alarm", "window": 3, "paused_secs": 900}),
        };
        let e = serde_json::to_value(escalation(&w, 30)).unwrap();
        assert_eq!(
            e,
            json!({"type": "warning_escalated", "warning": 42, "warning_type": "pause_alarm",
                   "raised_at": 1000, "after_minutes": 30, "window": 3, "paused_secs": 900})
        );
    }
}
