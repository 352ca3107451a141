//! Service guide endpoints: the guide of a service for the kiosk screen, and the printed
//! material checklist (一次性告知单) built from it.

use super::Path;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use hallq_hardware::escpos::PaperWidth;
use hallq_hardware::layout::render_checklist;
use serde_json::{Value, json};

use super::{ApiError, AppState, Kiosk, local_time};
use crate::core::wall_now;
use crate::devices::printer::PrintOutcome;
use crate::guide::Guide;
use crate::in_force::InForce;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/services/{code}/guide", get(guide))
        .route("/api/v1/services/{code}/checklist", post(checklist))
}

/// The guide of `code` under the setup in force, or a 404 naming whether the service or
/// only its guide is missing.
fn find<'a>(
    in_force: &'a InForce,
    code: &str,
) -> Result<(&'a hallq_engine::setup::ServiceDef, &'a Guide), ApiError> {
    let service = in_force
        .setup
        .services
        .iter()
        .find(|d| d.code == code)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "unknown_service",
                "no service has this code",
            )
        })?;
    let guide = in_force.guides.get(code).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "no_guide",
            "this service has no published guide; please ask at the information desk",
        )
    })?;
    Ok((service, guide))
}

async fn guide(
    State(s): State<AppState>,
    Path(code): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let in_force = s.hall.in_force();
    let (service, guide) = find(&in_force, &code)?;
    let windows = in_force.windows_for(&code);
    let mut body = guide.to_json();
    body["code"] = json!(service.code);
    body["name"] = serde_json::to_value(&service.name).unwrap_or(Value::Null);
    body["department"] = json!(service.department);
    body["windows"] = json!(windows);
    Ok(Json(json!({ "guide": body })))
}

async fn checklist(
    State(s): State<AppState>,
    kiosk: Kiosk,
    Path(code): Path<String>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let in_force = s.hall.in_force();
    let (service, guide) = find(&in_force, &code)?;
    let printed_at = local_time(&s, wall_now());
    let print = guide.checklist(&s.config.hall.name, &service.name.zh_cn, printed_at);
    // The printer beside the kiosk that asks.
    let at = s.printers.at(&kiosk.channel);
    let paper = at.map_or(PaperWidth::Mm80, |p| p.config().paper);
    // Encode first, so a text the printer cannot print is refused here, not on paper.
    let bytes = render_checklist(&print, paper).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "not_printable",
            format!("the guide of {code} cannot be printed: {e}"),
        )
    })?;
    let size = bytes.len();
    let outcome = match at {
        Some(p) => {
            p.submit(
                format!("checklist {code}"),
                bytes,
                std::time::Instant::now(),
            )
            .await
        }
        None => PrintOutcome::Unavailable {
            code: "no_printer".into(),
        },
    };
    let printer = match &outcome {
        PrintOutcome::Printing => "printing",
        PrintOutcome::Queued => "queued",
        PrintOutcome::Unavailable { .. } | PrintOutcome::NotPrinted => "unavailable",
    };
    Ok((
        StatusCode::OK,
        Json(json!({ "checklist": print, "print": outcome, "printer": printer, "bytes": size })),
    ))
}
