//! The guide desk (导办台) at the hall's entrance, for staff with the `desk` role (or
//! supervisor, or admin): the picture it works from (every service's queue and wait,
//! the green-channel reasons, the kiosks asking for help), tickets issued for a citizen
//! — normal, green with a reason, or by proxy (代办) — and today's appointments found by
//! code or mobile number and checked in. Tickets go through the same answer as the
//! kiosk's ([`super::queue::ticket_response`]) with the channel `desk`, so they print
//! on the printer that serves the desk.
//!
//! A green ticket records its reason's code and who issued it (`ticket_issued` carries
//! `green_reason` and `issued_by`): the audit of every priority ticket.

use super::{Path, Query};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use hallq_engine::{Appointment, Class, Command, Engine};
use serde::Deserialize;
use serde_json::{Value, json};

use super::queue::{
    check_in_at, idempotency_key, mobile_key, names, parse_class, ticket_response, ticket_token,
    windows_for,
};
use super::{ApiError, AppState, JsonBody, Language, StaffAuth};
use crate::desk::{self, NoteError};
use crate::mobile::MobileNumber;
use crate::store::staff::Permission;

/// The channel recorded on the desk's tickets; a printer prints them when its
/// `channels` list it (or when the desk is mapped to it).
pub const CHANNEL: &str = "desk";

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/desk", get(picture))
        .route("/api/v1/desk/tickets", post(issue))
        .route("/api/v1/desk/appointments", get(appointments))
        .route("/api/v1/desk/appointments/{code}/check-in", post(check_in))
}

fn desk_staff(auth: &StaffAuth) -> Result<String, ApiError> {
    auth.require(Permission::Desk)?;
    Ok(auth.session.staff.id.clone())
}

/// What the desk page starts from and re-reads after every event.
async fn picture(
    State(s): State<AppState>,
    Language(lang): Language,
    auth: StaffAuth,
) -> Result<Json<Value>, ApiError> {
    desk_staff(&auth)?;
    let st = s.clone();
    let mut body = s
        .hall
        .query(move |e, _| {
            let services: Vec<Value> = e
                .setup()
                .services
                .iter()
                .zip(e.loads())
                .map(|(d, l)| {
                    json!({
                        "code": d.code, "prefix": d.prefix, "name": names(&d.name),
                        "windows": windows_for(e.setup(), &d.code),
                        "waiting": l.waiting, "issued": l.issued, "open_windows": l.open_windows,
                        "estimated_wait_minutes": l.estimated_wait_minutes,
                        "longest_wait_secs": l.longest_wait_secs,
                    })
                })
                .collect();
            let green_today = e
                .tickets()
                .filter(|t| t.day == e.day() && t.class == Class::Green)
                .count();
            json!({
                "day": e.day().to_string(), "now": e.now().0,
                "services": services, "green_today": green_today,
                "printer": st.printers.for_ticket(CHANNEL).is_some(),
            })
        })
        .await
        .map_err(|e| ApiError::from_core(e, lang))?;
    body["hall"] = json!(s.config.hall.name);
    body["green_reasons"] = green_reasons(&s);
    body["help"] = super::help::open_json(&s).await?;
    body["staff"] = json!({ "id": auth.session.staff.id, "name": auth.session.staff.name });
    Ok(Json(body))
}

/// The configured reasons, `{code, name: {zh-CN, zh-TW, en}}`, in order.
pub(super) fn green_reasons(s: &AppState) -> Value {
    Value::Array(
        s.config
            .desk
            .green_reasons
            .iter()
            .map(|r| json!({ "code": r.code, "name": names(&r.name) }))
            .collect(),
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IssueBody {
    service: String,
    /// `normal` (default) or `green`.
    #[serde(default)]
    class: Option<String>,
    /// A reason's code from `[desk] green_reasons`; required for a green ticket.
    #[serde(default)]
    green_reason: Option<String>,
    /// With the reason `other`: a few words (no personal data).
    #[serde(default)]
    note: Option<String>,
    /// 代办: someone acting for the citizen.
    #[serde(default)]
    proxy: bool,
}

async fn issue(
    State(s): State<AppState>,
    Language(lang): Language,
    auth: StaffAuth,
    headers: HeaderMap,
    JsonBody(body): JsonBody<IssueBody>,
) -> Result<Response, ApiError> {
    let by = desk_staff(&auth)?;
    let class = parse_class(body.class.as_deref())?;
    let green_reason = match (class, body.green_reason.as_deref().map(str::trim)) {
        (Class::Green, None | Some("")) => {
            return Err(ApiError::field(
                "green_reason",
                "a green-channel ticket needs its reason, one of the configured codes",
            ));
        }
        (Class::Green, Some(code)) => {
            if s.config.desk.reason(code).is_none() {
                let codes: Vec<&str> = s
                    .config
                    .desk
                    .green_reasons
                    .iter()
                    .map(|r| r.code.as_str())
                    .collect();
                return Err(ApiError::field(
                    "green_reason",
                    format!("must be one of: {}", codes.join(", ")),
                ));
            }
            Some(
                desk::recorded_reason(code, body.note.as_deref())
                    .map_err(|e: NoteError| ApiError::field("note", e.to_string()))?,
            )
        }
        (_, Some(r)) if !r.is_empty() => {
            return Err(ApiError::field(
                "green_reason",
                "only a green-channel ticket (\"class\": \"green\") has a reason",
            ));
        }
        _ => {
            if body.note.as_deref().is_some_and(|n| !n.trim().is_empty()) {
                return Err(ApiError::field(
                    "note",
                    "a note goes with the green-channel reason \"other\"",
                ));
            }
            None
        }
    };
    let key = idempotency_key(&headers)?;
    let (token, token_hash) = ticket_token(&s, key.as_deref())?;
    let cmd = Command::Issue {
        token_hash: Some(token_hash),
        service: body.service,
        class,
        idempotency_key: key,
        citizen: None,
        channel: CHANNEL.into(),
        green_reason,
        proxy: body.proxy,
        issued_by: Some(by.clone()),
    };
    let done = s
        .hall
        .execute(cmd)
        .await
        .map_err(|e| ApiError::from_core(e, lang))?;
    if let Some(t) = &done.ticket {
        tracing::info!(number = %t.number, class = t.class.as_str(), proxy = t.proxy, staff = %by, "desk issued a ticket");
    }
    ticket_response(&s, done, CHANNEL, &token, lang).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Lookup {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    mobile: Option<String>,
}

/// An appointment as the desk sees it: never the number, only its masked form.
fn appointment_json(s: &AppState, e: &Engine, a: &Appointment) -> Value {
    let setup = e.setup();
    let clock = e.clock();
    let opens = a
        .slot_at
        .plus_minutes(-i64::from(setup.checkin_before_minutes));
    let closes = a
        .slot_at
        .plus_minutes(i64::from(setup.checkin_after_minutes));
    let ticket = a.ticket.and_then(|id| e.ticket(id));
    let state = if a.ticket.is_some() {
        "checked_in"
    } else if a.missed || e.now() > closes {
        "missed"
    } else if e.now() < opens {
        "early"
    } else {
        "open"
    };
    let name = setup
        .services
        .iter()
        .find(|d| d.code == a.service)
        .map(|d| names(&d.name));
    json!({
        "code": a.code, "service": a.service, "service_name": name,
        "slot_at": a.slot_at.0, "slot_local": super::local_time(s, a.slot_at),
        "day": clock.service_day(a.slot_at, setup.day_starts_at).to_string(),
        "mobile": a.mobile_masked, "state": state,
        "opens_local": clock.local(opens).format("%H:%M").to_string(),
        "closes_local": clock.local(closes).format("%H:%M").to_string(),
        "ticket": ticket.map(|t| json!({ "id": t.id, "number": t.number, "state": t.state })),
    })
}

/// Today's appointments with this code, or booked with this mobile number.
async fn appointments(
    State(s): State<AppState>,
    Language(lang): Language,
    auth: StaffAuth,
    Query(q): Query<Lookup>,
) -> Result<Json<Value>, ApiError> {
    desk_staff(&auth)?;
    let code = q
        .code
        .map(|c| c.trim().to_string())
        .filter(|c| !c.is_empty());
    let mobile = q.mobile.filter(|m| !m.trim().is_empty());
    let wanted = match (code, mobile) {
        (Some(c), None) => {
            if c.chars().count() > 32 {
                return Err(ApiError::field(
                    "code",
                    "an appointment code is at most 32 characters",
                ));
            }
            Wanted::Code(c)
        }
        (None, Some(m)) => {
            let m =
                MobileNumber::parse(&m).map_err(|e| ApiError::field("mobile", e.to_string()))?;
            Wanted::Mobile(mobile_key(&s, &m))
        }
        (Some(_), Some(_)) => {
            return Err(ApiError::field(
                "mobile",
                "give a code or a mobile number, not both",
            ));
        }
        (None, None) => {
            return Err(ApiError::field(
                "code",
                "give an appointment code or a mobile number",
            ));
        }
    };
    let st = s.clone();
    let list = s
        .hall
        .query(move |e, _| {
            let today = e.day();
            let setup = e.setup();
            let mut found: Vec<&Appointment> = match &wanted {
                Wanted::Code(c) => e.appointment(c).into_iter().collect(),
                Wanted::Mobile(h) => e
                    .appointments()
                    .filter(|a| a.mobile.as_deref() == Some(h.as_str()))
                    .filter(|a| e.clock().service_day(a.slot_at, setup.day_starts_at) == today)
                    .collect(),
            };
            found.sort_by_key(|a| (a.slot_at, a.code.clone()));
            found
                .into_iter()
                .map(|a| appointment_json(&st, e, a))
                .collect::<Vec<_>>()
        })
        .await
        .map_err(|e| ApiError::from_core(e, lang))?;
    Ok(Json(json!({ "appointments": list })))
}

enum Wanted {
    Code(String),
    /// The keyed hash of the number.
    Mobile(String),
}

/// Checks an appointment in for the citizen at the desk: the kiosk's check-in, with the
/// desk's channel (so it prints on the desk's printer).
async fn check_in(
    State(s): State<AppState>,
    Language(lang): Language,
    auth: StaffAuth,
    headers: HeaderMap,
    Path(code): Path<String>,
) -> Result<Response, ApiError> {
    let by = desk_staff(&auth)?;
    let key = idempotency_key(&headers)?;
    let (done, token) = check_in_at(&s, code, CHANNEL, key, lang).await?;
    if let Some(t) = &done.ticket {
        tracing::info!(number = %t.number, staff = %by, "desk checked an appointment in");
    }
    ticket_response(&s, done, CHANNEL, &token, lang).await
}
