//! Staff endpoints: sign-in sessions and the window actions of the caller.

use super::{Path, Query};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use hallq_engine::{Command, TransferTarget};
use serde::Deserialize;
use serde_json::{Value, json};
use std::time::Instant;

use super::queue::ticket_json;
use super::signin::{Source, Turned};
use super::{ApiError, AppState, JsonBody, Language, StaffAuth};
use crate::core::wall_now;
use crate::store::StoredEvent;
use crate::store::staff::{self, Permission, StaffError};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/sessions", post(sign_in))
        .route("/api/v1/sessions/current", get(whoami).delete(sign_out))
        .route("/api/v1/windows/{n}", get(window))
        .route("/api/v1/windows/{n}/{action}", post(action))
        .route("/api/v1/reports/daily", get(daily_report))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignInBody {
    staff_id: String,
    pin: String,
    #[serde(default)]
    window: Option<u32>,
}

async fn sign_in(
    State(s): State<AppState>,
    Language(lang): Language,
    source: Source,
    JsonBody(body): JsonBody<SignInBody>,
) -> Result<Response, ApiError> {
    if body.staff_id.is_empty() || body.staff_id.len() > 64 {
        return Err(ApiError::field("staff_id", "1 to 64 characters"));
    }
    if let Some(w) = body.window
        && !s.with_setup(|setup| setup.windows.iter().any(|d| d.number == w))
    {
        return Err(ApiError::field("window", format!("there is no window {w}")));
    }
    let (who, role, token, expires) = match check_pin(&s, &source, &body).await {
        Ok(r) => r,
        Err(refusal) => return Err(refuse(&s, &source, &body.staff_id, refusal).await),
    };
    s.sign_in.succeeded(&source);
    let window = body.window;
    if let (Some(w), Some(role)) = (window, role) {
        s.hall
            .execute(Command::SignIn {
                window: w,
                staff: who.id.clone(),
                role,
            })
            .await
            .map_err(|e| ApiError::from_core(e, lang))?;
    }
    let body = json!({ "token": token, "expires_at": expires, "window": window, "role": role, "staff": { "id": who.id, "name": who.name, "roles": who.roles } });
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// Why a sign-in did not go through.
enum Refusal {
    /// Turned away before the PIN was checked (back-off, or every checker busy).
    Turned(Turned),
    /// The account's answer: wrong PIN or unknown id, locked, disabled, wrong window.
    Staff(StaffError),
    /// The auth connection could not be had.
    Api(ApiError),
}

/// A signed-in account, its A/B role at the window, and the session's token and end.
type SignedIn = (staff::StaffRecord, Option<hallq_engine::Role>, String, i64);

/// The sign-in itself: a short read under the auth connection's lock (a lock for this
/// id and address answers here), the back-offs, the Argon2 check on the PIN pool (no
/// lock held), a short write.
async fn check_pin(s: &AppState, source: &Source, body: &SignInBody) -> Result<SignedIn, Refusal> {
    // A lock is answered first (a read, no PIN work): 423 stays 423 under the back-off.
    let (id, src) = (body.staff_id.clone(), source.label());
    let check = s
        .with_auth_db(move |c| staff::prepare_sign_in(c, &id, &src, wall_now()))
        .await
        .map_err(Refusal::Api)?
        .map_err(Refusal::Staff)?;
    s.sign_in
        .admit(source, &body.staff_id, Instant::now())
        .map_err(Refusal::Turned)?;
    let matched = s
        .sign_in
        .pin_matches(check.hash.clone(), body.pin.clone())
        .await
        .map_err(Refusal::Turned)?;
    let auth = s.config.auth.clone();
    let (id, src, window) = (body.staff_id.clone(), source.label(), body.window);
    s.with_auth_db(move |c| {
        let now = wall_now();
        let (max, minutes) = (auth.max_failures, auth.lockout_minutes);
        let who = staff::finish_sign_in(c, &id, &src, check, matched, now, max, minutes)?;
        let role = match window {
            Some(w) => Some(
                who.windows
                    .iter()
                    .find(|(n, _)| *n == w)
                    .map(|(_, r)| *r)
                    .ok_or_else(|| StaffError::WrongWindow(id.clone(), w))?,
            ),
            None => None,
        };
        if window.is_none() && !who.roles.iter().any(|r| r.grants(Permission::Desk)) {
            return Err(StaffError::WrongWindow(id.clone(), 0));
        }
        let (token, expires) = staff::open_session(c, &id, window, now, auth.session_hours)?;
        Ok((who, role, token, expires))
    })
    .await
    .map_err(Refusal::Api)?
    .map_err(Refusal::Staff)
}

/// The answer to a refused sign-in, counted and summed up (`sign_in_failures`).
async fn refuse(s: &AppState, source: &Source, staff_id: &str, refusal: Refusal) -> ApiError {
    // The reason counted and summed up is the code the caller is told.
    let (reason, e) = match refusal {
        Refusal::Turned(Turned::Throttled(wait)) => {
            let code = "too_many_attempts";
            let e = ApiError {
                retry_after: Some(wait.as_secs_f64().ceil().max(1.0) as u64),
                ..ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    code,
                    "too many failed sign-ins from this device or for this staff id; wait and try again",
                )
            };
            (code, e)
        }
        Refusal::Turned(Turned::Busy) => {
            let code = "busy";
            let e = ApiError {
                retry_after: Some(1),
                ..ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    code,
                    "too many sign-ins at once; try again in a moment",
                )
            };
            (code, e)
        }
        Refusal::Staff(e) => {
            let (status, code) = match &e {
                StaffError::Locked { .. } => (StatusCode::LOCKED, "account_locked"),
                StaffError::WrongWindow(..) => (StatusCode::FORBIDDEN, "wrong_window"),
                StaffError::Disabled(..) => (StatusCode::FORBIDDEN, "account_disabled"),
                StaffError::Invalid => (StatusCode::UNAUTHORIZED, "invalid_credentials"),
                _ => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            };
            let message = match &e {
                StaffError::Locked { until_ms } => format!(
                    "too many wrong PINs from this device; locked until {}",
                    super::local_time(s, hallq_engine::Timestamp(*until_ms))
                ),
                other => other.to_string(),
            };
            (code, ApiError::new(status, code, message))
        }
        // The auth connection could not be had (`unavailable`).
        Refusal::Api(e) => ("unavailable", e),
    };
    if let Some(ev) = s.sign_in.refused(source, staff_id, reason, Instant::now()) {
        // The first refusal from this source in a minute; the rest wait for the summary.
        let _ = s.hall.append(vec![ev]).await;
    }
    e
}

async fn whoami(auth: StaffAuth) -> Json<Value> {
    Json(
        json!({ "staff": auth.session.staff, "window": auth.session.window, "expires_at": auth.session.expires_at }),
    )
}

async fn sign_out(
    State(s): State<AppState>,
    Language(lang): Language,
    auth: StaffAuth,
) -> Result<StatusCode, ApiError> {
    if let Some(w) = auth.session.window {
        let cmd = Command::SignOut {
            window: w,
            staff: auth.session.staff.id.clone(),
        };
        match s.hall.execute(cmd).await {
            Ok(_) | Err(crate::core::CoreError::Refused(_)) => {}
            Err(e) => return Err(ApiError::from_core(e, lang)),
        }
    }
    let token = auth.token.clone();
    s.with_auth_db(move |c| staff::close_session(c, &token))
        .await?
        .map_err(|_| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "try again"))?;
    Ok(StatusCode::NO_CONTENT)
}

async fn window(
    State(s): State<AppState>,
    Language(lang): Language,
    _auth: StaffAuth,
    Path(n): Path<u32>,
) -> Result<Json<Value>, ApiError> {
    let st = s.clone();
    let body = s
        .hall
        .query(move |e, _| {
            let def = e.setup().windows.iter().find(|d| d.number == n)?;
            let w = e.windows().get(&n)?;
            let cur = w.current.and_then(|id| e.ticket(id));
            let current = cur.map(|t| ticket_json(&st, t, 0, 0));
            let loads: Vec<Value> = e
                .loads()
                .into_iter()
                .filter(|l| def.services.iter().any(|s| s.code == l.code))
                .map(|l| json!({ "code": l.code, "waiting": l.waiting, "longest_wait_secs": l.longest_wait_secs }))
                .collect();
            Some(json!({
                "number": n, "name": def.name, "services": loads, "current": current,
                "staff": w.staff.as_ref().map(|(id, role, _)| json!({ "id": id, "role": role })),
                "paused": w.paused.as_ref().map(|(since, reason)| json!({ "since": since.0, "reason": reason })),
                "recall_limit": e.setup().recall_limit,
                "recalls": cur.map(|t| t.recalls),
                "current_since": cur.and_then(|t| t.serving_at.or(t.called_at)).map(|t| t.0),
                "now": e.now().0,
            }))
        })
        .await
        .map_err(|e| ApiError::from_core(e, lang))?;
    body.map(Json).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_window",
            format!("there is no window {n}"),
        )
    })
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ActionBody {
    #[serde(default)]
    number: Option<String>,
    #[serde(default)]
    service: Option<String>,
    #[serde(default)]
    window: Option<u32>,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    case_no: Option<String>,
}

/// Window actions: `call-next`, `call`, `recall`, `start`, `no-show`, `transfer`,
/// `pause`, `resume`, `finish`. Only the staff member signed in at window `n` may act.
async fn action(
    State(s): State<AppState>,
    Language(lang): Language,
    auth: StaffAuth,
    Path((n, action)): Path<(u32, String)>,
    JsonBody(body): JsonBody<ActionBody>,
) -> Result<Json<Value>, ApiError> {
    if auth.session.window != Some(n) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "wrong_window",
            match auth.session.window {
                Some(w) => format!("you are signed in at window {w}, not {n}"),
                None => format!("you are not signed in at a window; sign in at window {n} first"),
            },
        ));
    }
    let staff = auth.session.staff.id.clone();
    let window = n;
    let cmd = match action.as_str() {
        "call-next" => Command::CallNext { window, staff },
        "call" => Command::CallNumber {
            window,
            staff,
            number: body
                .number
                .ok_or_else(|| ApiError::field("number", "which number to call"))?,
        },
        "recall" => Command::Recall { window, staff },
        "start" => Command::StartServing { window, staff },
        "no-show" => Command::NoShow { window, staff },
        "transfer" => {
            let to = match (body.service, body.window) {
                (Some(code), None) => TransferTarget::Service(code),
                (None, Some(w)) => TransferTarget::Window(w),
                _ => {
                    return Err(ApiError::field(
                        "service",
                        "give either a service or a window to transfer to",
                    ));
                }
            };
            Command::Transfer { window, staff, to }
        }
        "pause" => Command::Pause {
            window,
            staff,
            reason: body.reason.unwrap_or_default(),
        },
        "resume" => Command::Resume { window, staff },
        "finish" => Command::Finish {
            window,
            staff,
            case_no: body.case_no,
        },
        other => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "unknown_action",
                format!(
                    "no window action {}: use call-next, call, recall, start, no-show, transfer, pause, resume or finish",
                    hallq_engine::text::clip(other)
                ),
            ));
        }
    };
    let calls_number = matches!(cmd, Command::CallNumber { .. });
    let done = s.hall.execute(cmd).await.map_err(|e| {
        let e = ApiError::from_core(e, lang);
        // The engine knows the ticket; the caller typed its number.
        if calls_number && e.code() == "unknown_ticket" {
            e.about("number")
        } else {
            e
        }
    })?;
    Ok(Json(
        json!({ "events": done.events.iter().map(|e: &StoredEvent| &e.payload).collect::<Vec<_>>() }),
    ))
}

#[derive(Deserialize)]
struct ReportQuery {
    day: Option<String>,
}

async fn daily_report(
    State(s): State<AppState>,
    auth: StaffAuth,
    Query(q): Query<ReportQuery>,
) -> Result<Json<Value>, ApiError> {
    auth.require(Permission::Supervisor)?;
    let report = day_report(&s, q.day).await?;
    Ok(Json(serde_json::to_value(report).unwrap_or_default()))
}

/// The figures of one day (`YYYY-MM-DD`, default the current service day), for the
/// JSON report and the CSV download alike.
pub(super) async fn day_report(
    s: &AppState,
    day: Option<String>,
) -> Result<crate::report::Report, ApiError> {
    let day = match day {
        Some(d) => d
            .parse::<chrono::NaiveDate>()
            .map_err(|_| ApiError::field("day", "use YYYY-MM-DD"))?,
        None => s
            .hall
            .query(|e, _| e.day())
            .await
            .map_err(|e| ApiError::from_core(e, hallq_engine::Lang::ZhCn))?,
    };
    s.with_auth_db(move |c| crate::report::build(c, crate::report::Period::day(day)))
        .await?
        .map_err(|_| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "try again"))
}
