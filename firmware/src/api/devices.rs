//! Device endpoints: every device's health (the kiosk shows its printer's, the
//! supervision page all of them), the printers and their counters, and ticket reprints
//! on the printer of the kiosk that asks.

use super::Path;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use hallq_engine::TicketState;
use serde::Serialize;
use serde_json::{Value, json};

use super::queue::{parse_id, print_ticket};
use super::{ApiError, AppState, Kiosk, Language};
use crate::core::wall_now;
use crate::devices::printer::PrintOutcome;
use crate::devices::tickets::print_message;
use crate::store::NewEvent;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/devices", get(devices))
        .route("/api/v1/tickets/{id}/reprint", post(reprint))
}

async fn devices(State(s): State<AppState>) -> Json<Value> {
    let printers: Vec<Value> = s
        .printers
        .iter()
        .map(|p| {
            json!({
                "id": p.name(),
                "device": p.device(),
                "serves": p.config().serves,
                "channels": p.config().channels,
                "paper": p.config().paper,
                "health": s.devices.get(p.device()).map(|d| d.health),
                "stats": p.stats(),
            })
        })
        .collect();
    Json(json!({
        "devices": s.devices.snapshot(),
        // The first printer's, as before there were several.
        "printer": s.printers.iter().next().map(|p| json!({
            "configured": true,
            "paper": p.config().paper,
            "stats": p.stats(),
        })),
        "printers": printers,
    }))
}

/// The audit record of a reprint: a second paper copy of a number is worth knowing about.
#[derive(Serialize)]
struct TicketReprinted<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    ticket: u64,
    number: &'a str,
    by: &'a str,
    /// The printer it went to (the `[[printer]]` id, or `printer`).
    printer: &'a str,
    outcome: &'a PrintOutcome,
}

async fn reprint(
    State(s): State<AppState>,
    kiosk: Kiosk,
    Language(lang): Language,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&id)?;
    // The printer beside the kiosk or desk that asks, wherever the ticket was taken.
    let Some(printer) = s.printers.at(&kiosk.channel).cloned() else {
        let message = if s.printers.is_empty() {
            "this hall has no ticket printer configured".to_string()
        } else {
            format!("no printer serves {}", kiosk.channel)
        };
        return Err(ApiError::new(StatusCode::CONFLICT, "no_printer", message));
    };
    let found = s
        .hall
        .query(move |e, _| e.ticket(id).map(|t| (t.clone(), e.ahead(id).unwrap_or(0))))
        .await
        .map_err(|e| ApiError::from_core(e, lang))?;
    let Some((ticket, ahead)) = found else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_ticket",
            "no such ticket today",
        ));
    };
    if matches!(
        ticket.state,
        TicketState::Finished | TicketState::Cancelled | TicketState::NoShow
    ) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "ticket_closed",
            "this ticket is no longer in the queue; take a new one",
        ));
    }
    let outcome = print_ticket(
        &s,
        &printer,
        &ticket,
        ahead,
        None,
        std::time::Instant::now(),
    )
    .await;
    let record = TicketReprinted {
        kind: "ticket_reprinted",
        ticket: ticket.id.0,
        number: &ticket.number,
        by: &kiosk.channel,
        printer: printer.name(),
        outcome: &outcome,
    };
    if let Ok(ev) = NewEvent::encode(wall_now(), "ticket_reprinted", &record) {
        s.hall
            .append(vec![ev])
            .await
            .map_err(|e| ApiError::from_core(e, lang))?;
    }
    Ok(Json(json!({
        "ticket": ticket.id.0,
        "number": ticket.number,
        "print": outcome,
        "print_message": print_message(&outcome, &ticket.number, lang),
    })))
}
