//! Citizen-side endpoints: catalogue, overview, tickets, appointments and ratings.

use super::Path;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use hallq_engine::{Class, Command, Level, Ticket, TicketId, Timestamp};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, AppState, JsonBody, Kiosk, Language, Rater, local_time};
use crate::core::Done;
use crate::devices::printer::{PrintOutcome, Printer};
use crate::devices::tickets::{print_message, ticket_print};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/health", get(health))
        .route("/api/v1/services", get(services))
        .route("/api/v1/overview", get(overview))
        .route("/api/v1/tickets", post(issue))
        .route("/api/v1/tickets/{id}", get(ticket).delete(cancel))
        .route("/api/v1/appointments", post(book))
        .route("/api/v1/appointments/{code}/check-in", post(check_in))
        .route("/api/v1/ratings", post(rate))
}

async fn health(
    State(s): State<AppState>,
    Language(lang): Language,
) -> Result<Json<Value>, ApiError> {
    let (day, now) = s
        .hall
        .query(|e, _| (e.day(), e.now()))
        .await
        .map_err(|e| ApiError::from_core(e, lang))?;
    Ok(Json(json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "controller_id": s.config.hall.controller_id,
        "day": day.to_string(),
        "now": now.0,
    })))
}

pub(super) use crate::report::period::names;

/// The windows that serve a service, from the configuration.
pub(super) fn windows_for(setup: &hallq_engine::Setup, code: &str) -> Vec<u32> {
    setup
        .windows
        .iter()
        .filter(|w| w.services.iter().any(|s| s.code == code))
        .map(|w| w.number)
        .collect()
}

async fn services(
    State(s): State<AppState>,
    Language(lang): Language,
) -> Result<Json<Value>, ApiError> {
    let in_force = s.hall.in_force();
    let body = s
        .hall
        .query(move |e, _| {
            let loads = e.loads();
            let list: Vec<Value> = e
                .setup()
                .services
                .iter()
                .zip(loads)
                .map(|(d, l)| {
                    let guide = in_force.guides.get(&d.code);
                    json!({
                        "pinyin": guide.map(|g| g.pinyin.clone()).unwrap_or_default(),
                        "item_code": guide.map(|g| g.item_code.clone()),
                        "code": d.code, "prefix": d.prefix, "name": names(&d.name), "department": d.department,
                        "windows": windows_for(e.setup(), &d.code),
                        "waiting": l.waiting, "open_windows": l.open_windows, "estimated_wait_minutes": l.estimated_wait_minutes,
                    })
                })
                .collect();
            json!({ "services": list })
        })
        .await
        .map_err(|e| ApiError::from_core(e, lang))?;
    Ok(Json(body))
}

async fn overview(
    State(s): State<AppState>,
    Language(lang): Language,
) -> Result<Json<Value>, ApiError> {
    let hall = s.config.hall.name.clone();
    let body = s
        .hall
        .query(move |e, _| {
            let services: Vec<Value> = e
                .loads()
                .into_iter()
                .map(|l| json!({
                    "code": l.code, "waiting": l.waiting, "issued": l.issued, "open_windows": l.open_windows,
                    "estimated_wait_minutes": l.estimated_wait_minutes, "longest_wait_secs": l.longest_wait_secs,
                }))
                .collect();
            let windows: Vec<Value> = e
                .setup()
                .windows
                .iter()
                .filter_map(|d| e.windows().get(&d.number).map(|w| (d, w)))
                .map(|(d, w)| {
                    let current = w.current.and_then(|id| e.ticket(id)).map(|t| json!({ "id": t.id, "number": t.number, "state": t.state }));
                    json!({
                        "number": d.number, "name": d.name, "staffed": w.staff.is_some(), "paused": w.paused.is_some(), "current": current,
                    })
                })
                .collect();
            json!({ "hall": hall, "day": e.day().to_string(), "now": e.now().0, "issuing": issuing(e), "services": services, "windows": windows })
        })
        .await
        .map_err(|e| ApiError::from_core(e, lang))?;
    Ok(Json(body))
}

/// Whether tickets are being issued now and, if not, the reason in each language (the
/// same words a refused issue gives), so that a kiosk can say so on its first screen
/// and switch language without asking again.
fn issuing(e: &hallq_engine::Engine) -> Value {
    match e.issuing_at(crate::core::wall_now()) {
        Ok(()) => json!({ "open": true, "reason": null }),
        Err(closed) => {
            let r = hallq_engine::Refusal::Closed(closed);
            json!({
                "open": false,
                "reason": {
                    "zh-CN": r.message(hallq_engine::Lang::ZhCn),
                    "zh-TW": r.message(hallq_engine::Lang::ZhTw),
                    "en": r.message(hallq_engine::Lang::En),
                },
            })
        }
    }
}

/// The ticket as clients see it. Names and windows come from the configuration so
/// that answering an issue needs no second trip to the core thread.
pub(super) fn ticket_json(s: &AppState, t: &Ticket, ahead: u32, wait: u32) -> Value {
    let (service_name, windows) = s.with_setup(|setup| {
        let name = setup
            .services
            .iter()
            .find(|d| d.code == t.service)
            .map(|d| names(&d.name));
        (name, windows_for(setup, &t.service))
    });
    json!({
        "id": t.id, "number": t.number, "service": t.service, "service_name": service_name, "class": t.class,
        "state": t.state, "day": t.day.to_string(), "issued_at": t.issued_at.0, "issued_at_local": local_time(s, t.issued_at),
        "ahead": ahead, "estimated_wait_minutes": wait, "windows": windows, "window": t.window,
        "reserved_window": t.reserved_window, "appointment": t.appointment,
        "green_reason": t.green_reason, "proxy": t.proxy,
    })
}

/// Answers an issue or check-in: 201 for a new ticket, 200 with `replayed` for a retry.
/// A new ticket is handed after the commit to the printer of the channel it was taken
/// at (the kiosk's, the desk's; none for a channel no printer serves); the answer says
/// whether it prints, and in words when it cannot, because the number on the screen is
/// then the citizen's only record.
pub(super) async fn ticket_response(
    s: &AppState,
    done: Done,
    channel: &str,
    token: &str,
    lang: hallq_engine::Lang,
) -> Result<Response, ApiError> {
    let committed = std::time::Instant::now();
    let t = done.ticket.ok_or_else(|| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "no ticket was produced",
        )
    })?;
    // The citizen's secret, only when it is this ticket's (a ticket issued before tokens
    // existed has none).
    let token = (t.token_hash.as_deref() == Some(token_hash(token).as_str())).then_some(token);
    let print = match s.printers.for_ticket(channel) {
        Some(p) if !done.replayed => print_ticket(s, p, &t, done.ahead, token, committed).await,
        _ => PrintOutcome::NotPrinted,
    };
    let body = ticket_json(s, &t, done.ahead, done.wait_minutes);
    let status = if done.replayed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    let message = print_message(&print, &t.number, lang);
    let mut resp = (
        status,
        Json(json!({
            "ticket": body,
            "token": token,
            "replayed": done.replayed,
            "print": print,
            "print_message": message,
        })),
    )
        .into_response();
    if done.replayed {
        resp.headers_mut().insert(
            "idempotent-replayed",
            axum::http::HeaderValue::from_static("true"),
        );
    }
    Ok(resp)
}

/// Lays a ticket out and hands it to `printer`. With its `token` (a new ticket) and `[phone] base_url`, the QR
/// code opens the ticket's status page; a reprint has no token (only its hash is
/// kept), so its QR code carries what the template says.
pub(super) async fn print_ticket(
    s: &AppState,
    printer: &Printer,
    t: &Ticket,
    ahead: u32,
    token: Option<&str>,
    committed: std::time::Instant,
) -> PrintOutcome {
    let page_url = token.and_then(|k| s.config.phone.page_url(k));
    match printer.template().render(&ticket_print(
        &s.config.hall.name,
        &s.hall.in_force().setup,
        t,
        ahead,
        page_url,
    )) {
        Ok(bytes) => {
            printer
                .submit(format!("ticket {}", t.number), bytes, committed)
                .await
        }
        Err(e) => {
            // Config validation checks the template; this is data it cannot print
            // (a character outside GB18030 in a service name added later).
            tracing::error!(error = %e, number = %t.number, "ticket cannot be laid out");
            PrintOutcome::Unavailable {
                code: "layout".into(),
            }
        }
    }
}

pub(super) fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    match headers.get("idempotency-key") {
        None => Ok(None),
        Some(v) => {
            let k = v
                .to_str()
                .map_err(|_| ApiError::field("Idempotency-Key", "must be printable ASCII"))?
                .trim();
            if k.is_empty() || k.len() > 128 {
                return Err(ApiError::field(
                    "Idempotency-Key",
                    "must be 1 to 128 characters",
                ));
            }
            Ok(Some(k.to_string()))
        }
    }
}

/// A citizen ID is never stored: only its HMAC under the hall's secret, enough to count
/// tickets per person per day, and kept in the state alone (never in an event). An
/// 18-character number must carry its GB 11643 check character, so a mistyped digit
/// is caught at the kiosk instead of becoming another person; the key is the same one
/// an ID card on the kiosk's reader gives.
fn citizen_key(s: &AppState, id: Option<String>) -> Result<Option<String>, ApiError> {
    let Some(id) = id
        .map(|i| i.trim().to_uppercase())
        .filter(|i| !i.is_empty())
    else {
        return Ok(None);
    };
    if id.len() > 32 || !id.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(ApiError::field(
            "citizen_id",
            "an ID number is letters and digits, at most 32",
        ));
    }
    if id.len() == 18 {
        use hallq_hardware::idcard::number::{IdError, validate};
        validate(&id).map_err(|e| {
            ApiError::field(
                "citizen_id",
                match e {
                    IdError::CheckDigit => {
                        "the check character does not match: a digit was mistyped (GB 11643)"
                    }
                    IdError::BadDate => "characters 7 to 14 are not a birth date (GB 11643)",
                    _ => "an 18-character ID number is 17 digits and a digit or X (GB 11643)",
                },
            )
        })?;
    }
    Ok(Some(s.personal.hash("id", &id)))
}

/// A mobile number is matched only by its HMAC under the hall's secret (kind `mobile`).
pub(super) fn mobile_key(s: &AppState, m: &crate::mobile::MobileNumber) -> String {
    s.personal.hash("mobile", m.digits())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IssueBody {
    #[serde(default)]
    service: Option<String>,
    #[serde(default)]
    class: Option<String>,
    #[serde(default)]
    citizen_id: Option<String>,
    /// Take the ticket as the holder of the ID card on this kiosk's reader.
    #[serde(default)]
    id_card: bool,
    /// With `id_card`: check in the holder's appointment of today instead.
    #[serde(default)]
    appointment: bool,
}

async fn issue(
    State(s): State<AppState>,
    kiosk: Kiosk,
    Language(lang): Language,
    headers: HeaderMap,
    JsonBody(body): JsonBody<IssueBody>,
) -> Result<Response, ApiError> {
    super::kiosk::refuse_if_locked(&s, lang)?;
    let mut green_reason = None;
    let mut class = parse_class(body.class.as_deref())?;
    let channel = kiosk.channel;
    let key = idempotency_key(&headers)?;
    if body.appointment && !body.id_card {
        return Err(ApiError::field(
            "appointment",
            "checks in with the ID card (\"id_card\": true); with a code use /api/v1/appointments/{code}/check-in",
        ));
    }
    let citizen = if body.id_card {
        if body.citizen_id.is_some() {
            return Err(ApiError::field(
                "citizen_id",
                "give either citizen_id or \"id_card\": true, not both",
            ));
        }
        let held = super::idcard::held_card(&s, &channel, lang)?;
        if body.appointment {
            return check_in_with_card(&s, held.citizen, channel, key, lang).await;
        }
        if s.config
            .id_card
            .green(held.birth.age_on(super::idcard::today(&s)))
        {
            class = Class::Green;
            green_reason = Some(s.config.id_card.green_reason.clone());
        }
        Some(held.citizen)
    } else {
        citizen_key(&s, body.citizen_id)?
    };
    let service = body
        .service
        .ok_or_else(|| ApiError::field("service", "missing field `service`"))?;
    let (token, token_hash) = ticket_token(&s, key.as_deref())?;
    let guard = citizen
        .clone()
        .filter(|_| s.config.id_card.daily_limit_per_service)
        .map(|c| super::idcard::one_live_ticket(c, service.clone(), key.clone()));
    let cmd = Command::Issue {
        token_hash: Some(token_hash),
        service,
        class,
        idempotency_key: key,
        citizen,
        channel: channel.clone(),
        green_reason,
        proxy: false,
        issued_by: None,
    };
    let done = match guard {
        Some(guard) => s.hall.execute_unless(cmd, guard).await,
        None => s.hall.execute(cmd).await,
    }
    .map_err(|e| ApiError::from_core(e, lang))?;
    ticket_response(&s, done, &channel, &token, lang).await
}

/// Checks in the card holder's appointment of today (found by the keyed hash the
/// appointment was booked with), as the check-in endpoint does with its code.
async fn check_in_with_card(
    s: &AppState,
    citizen: String,
    channel: String,
    key: Option<String>,
    lang: hallq_engine::Lang,
) -> Result<Response, ApiError> {
    if !s.config.id_card.find_appointment {
        return Err(super::idcard::no_appointment(lang));
    }
    // A retry of a check-in that went through finds no open appointment: the key
    // answers it with the ticket it made.
    let retried = key.clone();
    let code = s
        .hall
        .query(move |e, store| {
            if let Some(t) = retried.as_deref().and_then(|k| e.ticket_by_key(k)) {
                return t.appointment.clone();
            }
            super::idcard::appointment_today(e, store, &citizen).map(|a| a.code)
        })
        .await
        .map_err(|e| ApiError::from_core(e, lang))?
        .ok_or_else(|| super::idcard::no_appointment(lang))?;
    let (done, token) = check_in_at(s, code, &channel, key, lang).await?;
    ticket_response(s, done, &channel, &token, lang).await
}

/// A ticket request's `class`: `normal` (when absent) or `green`.
pub(super) fn parse_class(class: Option<&str>) -> Result<Class, ApiError> {
    match class {
        None | Some("normal") => Ok(Class::Normal),
        Some("green") => Ok(Class::Green),
        Some(_) => Err(ApiError::field("class", "must be \"normal\" or \"green\"")),
    }
}

/// Checks the appointment `code` in, its ticket taken at `channel` (a kiosk, the desk);
/// gives the outcome and the new ticket's token for [`ticket_response`]. A retry with
/// the same idempotency key gets the same token.
pub(super) async fn check_in_at(
    s: &AppState,
    code: String,
    channel: &str,
    key: Option<String>,
    lang: hallq_engine::Lang,
) -> Result<(Done, String), ApiError> {
    let (token, token_hash) = ticket_token(s, key.as_deref())?;
    let cmd = Command::CheckIn {
        token_hash: Some(token_hash),
        code,
        idempotency_key: key,
        channel: channel.to_string(),
    };
    let done = s
        .hall
        .execute(cmd)
        .await
        .map_err(|e| ApiError::from_core(e, lang))?;
    Ok((done, token))
}

pub(super) fn parse_id(id: &str) -> Result<TicketId, ApiError> {
    id.parse::<u64>()
        .map(TicketId)
        .map_err(|_| ApiError::field("id", "a ticket id is a whole number"))
}

async fn ticket(
    State(s): State<AppState>,
    _k: Kiosk,
    Language(lang): Language,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&id)?;
    let st = s.clone();
    let found = s
        .hall
        .query(move |e, store| match e.ticket(id) {
            Some(t) => {
                let ahead = e.ahead(id).unwrap_or(0);
                Ok(Some(ticket_json(
                    &st,
                    t,
                    ahead,
                    e.estimate_wait_minutes(&t.service, ahead),
                )))
            }
            None => store
                .ticket(id)
                .map(|t| t.map(|t| ticket_json(&st, &t, 0, 0))),
        })
        .await
        .map_err(|e| ApiError::from_core(e, lang))?
        .map_err(|_| {
            ApiError::from_core(crate::core::CoreError::Store("read failed".into()), lang)
        })?;
    found
        .map(|t| Json(json!({ "ticket": t })))
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "unknown_ticket", "no such ticket"))
}

/// A new ticket's secret for its citizen, and the hash the ticket keeps. With a retry key
/// the token is the hall's HMAC of the key, so a retry answers the same token; without
/// one it is 128 random bits. Never derived from the id or the number.
pub(super) fn ticket_token(s: &AppState, key: Option<&str>) -> Result<(String, String), ApiError> {
    let token = match key {
        Some(k) => s.personal.hash("ticket-token", k),
        None => {
            let mut b = [0u8; 16];
            getrandom::fill(&mut b).map_err(|_| ApiError::unavailable())?;
            hex::encode(b)
        }
    };
    let hash = token_hash(&token);
    Ok((token, hash))
}

/// Whether the request holds ticket `ticket`'s own token (`X-Ticket-Token`): 403
/// `ticket_token_required` without one, `not_your_ticket` with another ticket's.
pub(super) async fn citizen_holds(
    s: &AppState,
    ticket: TicketId,
    headers: &axum::http::HeaderMap,
    lang: hallq_engine::Lang,
) -> Result<(), ApiError> {
    let Some(token) = headers.get("x-ticket-token").and_then(|v| v.to_str().ok()) else {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "ticket_token_required",
            "only the ticket's citizen, holding its token (X-Ticket-Token), may do this",
        ));
    };
    let want = token_hash(token.trim());
    let held = s
        .hall
        .query(move |e, _| e.ticket(ticket).and_then(|t| t.token_hash.clone()))
        .await
        .map_err(|e| ApiError::from_core(e, lang))?;
    if !held.is_some_and(|h| super::constant_eq(&h, &want)) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "not_your_ticket",
            "the ticket token does not belong to this ticket",
        ));
    }
    Ok(())
}

/// SHA-256 (hex) of a ticket token, as the ticket stores it.
pub(super) fn token_hash(token: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(token.as_bytes()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CancelBody {
    reason: String,
}

/// Withdraws a waiting ticket: by its citizen (header `X-Ticket-Token`, the secret the
/// kiosk's answer and the ticket's QR carry), or by a signed-in member of staff with a
/// reason, recorded by name. Nobody else: ids are sequential, and a kiosk could
/// otherwise withdraw any citizen's ticket.
async fn cancel(
    State(s): State<AppState>,
    Language(lang): Language,
    Path(id): Path<String>,
    req: axum::extract::Request,
) -> Result<Json<Value>, ApiError> {
    let ticket = parse_id(&id)?;
    let (mut parts, body) = req.into_parts();
    let token = parts
        .headers
        .get("x-ticket-token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let (by, note) = if token.is_some() {
        citizen_holds(&s, ticket, &parts.headers, lang).await?;
        ("citizen".to_string(), None)
    } else if super::bearer(&parts.headers).is_some() {
        use axum::extract::FromRequestParts;
        let staff = super::StaffAuth::from_request_parts(&mut parts, &s).await?;
        let bytes = axum::body::to_bytes(body, 4096)
            .await
            .map_err(|_| ApiError::field("reason", "the body is at most 4 KiB"))?;
        let body: CancelBody = serde_json::from_slice(&bytes).map_err(|_| {
            ApiError::field("reason", "staff give the reason for withdrawing a ticket")
        })?;
        let reason = body.reason.trim().to_string();
        if reason.is_empty() {
            return Err(ApiError::field(
                "reason",
                "staff give the reason for withdrawing a ticket",
            ));
        }
        (format!("staff:{}", staff.session.staff.id), Some(reason))
    } else {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "ticket_token_required",
            "only the ticket's citizen (X-Ticket-Token) or a member of staff with a reason may withdraw it",
        ));
    };
    let done = s
        .hall
        .execute(Command::Cancel { ticket, by, note })
        .await
        .map_err(|e| ApiError::from_core(e, lang))?;
    Ok(Json(json!({ "events": done.events })))
}

#[derive(Deserialize)]
#[serde(untagged)]
enum When {
    Millis(i64),
    Local(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BookBody {
    service: String,
    slot_at: When,
    code: String,
    #[serde(default)]
    citizen_id: Option<String>,
    /// The citizen's mobile number, so the guide desk can find the appointment by it:
    /// kept only as the hall's keyed hash and a masked form.
    #[serde(default)]
    mobile: Option<String>,
}

async fn book(
    State(s): State<AppState>,
    _k: Kiosk,
    Language(lang): Language,
    JsonBody(body): JsonBody<BookBody>,
) -> Result<Response, ApiError> {
    let slot_at = match body.slot_at {
        When::Millis(ms) => Timestamp(ms),
        When::Local(text) => {
            let local =
                chrono::NaiveDateTime::parse_from_str(&text, "%Y-%m-%d %H:%M").map_err(|_| {
                    ApiError::field(
                        "slot_at",
                        "use milliseconds or local time \"YYYY-MM-DD HH:MM\"",
                    )
                })?;
            hallq_engine::LocalClock::new(s.with_setup(|x| x.utc_offset_minutes)).instant(local)
        }
    };
    let (mobile, mobile_masked) = match body.mobile.as_deref().map(str::trim) {
        None | Some("") => (None, None),
        Some(typed) => {
            let m = crate::mobile::MobileNumber::parse(typed)
                .map_err(|e| ApiError::field("mobile", e.to_string()))?;
            (Some(mobile_key(&s, &m)), Some(m.masked()))
        }
    };
    let cmd = Command::Book {
        service: body.service,
        slot_at,
        code: body.code,
        citizen: citizen_key(&s, body.citizen_id)?,
        mobile,
        mobile_masked,
    };
    let done = s
        .hall
        .execute(cmd)
        .await
        .map_err(|e| ApiError::from_core(e, lang))?;
    Ok((StatusCode::CREATED, Json(json!({ "events": done.events }))).into_response())
}

async fn check_in(
    State(s): State<AppState>,
    kiosk: Kiosk,
    Language(lang): Language,
    headers: HeaderMap,
    Path(code): Path<String>,
) -> Result<Response, ApiError> {
    super::kiosk::refuse_if_locked(&s, lang)?;
    let channel = kiosk.channel;
    let key = idempotency_key(&headers)?;
    let (done, token) = check_in_at(&s, code, &channel, key, lang).await?;
    ticket_response(&s, done, &channel, &token, lang).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RateBody {
    ticket: u64,
    level: String,
    #[serde(default)]
    reasons: Vec<String>,
    #[serde(default)]
    comment: Option<String>,
    /// Ignored: see [`rate`].
    #[serde(default, rename = "channel")]
    _channel: Option<serde::de::IgnoredAny>,
}

/// A rating, from a kiosk or a window's rating pad only (see [`Rater`]). The channel is
/// the controller's to set from who sent the rating: a `channel` in the body (older
/// clients sent one) is accepted and ignored, and the answer shows the one recorded.
async fn rate(
    State(s): State<AppState>,
    rater: Rater,
    Language(lang): Language,
    JsonBody(body): JsonBody<RateBody>,
) -> Result<Response, ApiError> {
    let level = Level::parse(&body.level).ok_or_else(|| {
        ApiError::field(
            "level",
            "one of 非常满意, 满意, 基本满意, 不满意, 非常不满意",
        )
    })?;
    // A person at a screen can always pick a reason, so the API insists; only a
    // keypad without reason keys may leave it pending.
    if level.is_bad() && body.reasons.is_empty() {
        return Err(ApiError::field(
            "reasons",
            "a bad rating needs at least one reason from the list",
        ));
    }
    let cmd = Command::Rate {
        ticket: TicketId(body.ticket),
        level,
        reasons: body.reasons,
        comment: body.comment,
        channel: rater.channel(),
        window: rater.window(),
    };
    let done = s
        .hall
        .execute(cmd)
        .await
        .map_err(|e| ApiError::from_core(e, lang))?;
    Ok((StatusCode::CREATED, Json(json!({ "events": done.events }))).into_response())
}
