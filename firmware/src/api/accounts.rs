//! Staff account management for admins (`/admin` is its page): list, add, disable,
//! enable, reset a PIN, unlock, change roles and windows, remove. Only a signed-in
//! account with the `admin` role may use it; every change is committed by the core
//! together with its audit event (`by` the admin's staff id, `via` `web`) and with the
//! sign-outs it causes, as `hallq staff` does from the command line.

use super::Path;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use hallq_engine::Role;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, AppState, JsonBody, Language, StaffAuth};
use crate::core::wall_now;
use crate::store::staff::{self, AccountChange, AccountState, Change, Permission, PinHash};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/staff", get(list).post(add))
        .route(
            "/api/v1/staff/{id}",
            axum::routing::patch(set).delete(remove),
        )
        .route("/api/v1/staff/{id}/{action}", post(action))
}

/// Refuses anyone but an admin, saying why.
fn admin(auth: &StaffAuth) -> Result<String, ApiError> {
    if auth.session.staff.roles.contains(&Permission::Admin) {
        return Ok(auth.session.staff.id.clone());
    }
    Err(ApiError::new(
        StatusCode::FORBIDDEN,
        "admin_required",
        "only an account with the admin role manages staff accounts (supervisor does not)",
    ))
}

/// One account as the API shows it (never a PIN or its hash).
fn account_json(a: &AccountState) -> Value {
    let state = if a.removed_at.is_some() {
        "removed"
    } else if a.disabled_at.is_some() {
        "disabled"
    } else if a.locked_until.is_some() {
        "locked"
    } else {
        "active"
    };
    json!({
        "id": a.record.id,
        "name": a.record.name,
        "roles": a.record.roles,
        "windows": a.record.windows.iter().map(|(n, r)| json!({ "window": n, "role": r })).collect::<Vec<_>>(),
        "state": state,
        "disabled_at": a.disabled_at,
        "locked_until": a.locked_until,
    })
}

async fn list(State(s): State<AppState>, auth: StaffAuth) -> Result<Json<Value>, ApiError> {
    admin(&auth)?;
    let accounts = s
        .with_auth_db(|c| staff::accounts(c, wall_now()))
        .await?
        .map_err(|e| staff_error(e, None))?;
    Ok(Json(json!({
        "accounts": accounts.iter().map(account_json).collect::<Vec<_>>(),
        "windows": s.with_setup(|setup| setup.windows.iter().map(|w| w.number).collect::<Vec<_>>()),
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WindowRole {
    window: u32,
    #[serde(default = "role_a")]
    role: Role,
}

fn role_a() -> Role {
    Role::A
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddBody {
    id: String,
    name: String,
    pin: String,
    #[serde(default = "staff_role")]
    roles: Vec<Permission>,
    #[serde(default)]
    windows: Vec<WindowRole>,
}

fn staff_role() -> Vec<Permission> {
    vec![Permission::Staff]
}

fn check_id(id: &str) -> Result<(), ApiError> {
    if id.is_empty()
        || id.chars().count() > 64
        || id
            .chars()
            .any(|c| c.is_whitespace() || hallq_engine::text::unsafe_in_text(c) || c == '/')
    {
        return Err(ApiError::field(
            "id",
            "1 to 64 characters, no spaces or slashes",
        ));
    }
    Ok(())
}

fn check_roles(roles: &[Permission]) -> Result<(), ApiError> {
    if roles.is_empty() {
        return Err(ApiError::field(
            "roles",
            "at least one of staff, desk, supervisor, admin",
        ));
    }
    Ok(())
}

fn check_windows(s: &AppState, windows: &[WindowRole]) -> Result<Vec<(u32, Role)>, ApiError> {
    let mut out: Vec<(u32, Role)> = Vec::new();
    for (i, w) in windows.iter().enumerate() {
        if !s.hall.in_force().has_window(w.window) {
            return Err(ApiError::field(
                &format!("windows[{i}].window"),
                format!("there is no window {}", w.window),
            ));
        }
        if out.iter().any(|(n, _)| *n == w.window) {
            return Err(ApiError::field(
                &format!("windows[{i}].window"),
                format!("window {} is listed twice", w.window),
            ));
        }
        out.push((w.window, w.role));
    }
    Ok(out)
}

/// Hashes a PIN off the async threads (Argon2 is slow on purpose).
async fn hash(pin: String) -> Result<PinHash, ApiError> {
    tokio::task::spawn_blocking(move || PinHash::new(&pin))
        .await
        .map_err(|_| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "try again"))?
        .map_err(|e| staff_error(e, Some("pin")))
}

async fn add(
    State(s): State<AppState>,
    Language(lang): Language,
    auth: StaffAuth,
    JsonBody(body): JsonBody<AddBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let by = admin(&auth)?;
    check_id(&body.id)?;
    let name = body.name.trim().to_string();
    if name.is_empty()
        || name.chars().count() > 64
        || name.chars().any(hallq_engine::text::unsafe_in_text)
    {
        return Err(ApiError::field(
            "name",
            "1 to 64 characters, no control or text-direction characters",
        ));
    }
    check_roles(&body.roles)?;
    let windows = check_windows(&s, &body.windows)?;
    if body.roles == [Permission::Staff] && windows.is_empty() {
        return Err(ApiError::field(
            "windows",
            "an account with only the staff role needs at least one window",
        ));
    }
    let pin = hash(body.pin).await?;
    let change = Change::Add {
        name,
        roles: body.roles,
        windows,
        pin,
    };
    let out = commit(&s, lang, body.id, change, by).await?;
    Ok((StatusCode::CREATED, out))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetBody {
    #[serde(default)]
    roles: Option<Vec<Permission>>,
    #[serde(default)]
    windows: Option<Vec<WindowRole>>,
}

async fn set(
    State(s): State<AppState>,
    Language(lang): Language,
    auth: StaffAuth,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<SetBody>,
) -> Result<Json<Value>, ApiError> {
    let by = admin(&auth)?;
    if body.roles.is_none() && body.windows.is_none() {
        return Err(ApiError::field(
            "roles",
            "give roles and/or windows: each replaces the account's list",
        ));
    }
    if let Some(r) = &body.roles {
        check_roles(r)?;
        if id == by && !r.contains(&Permission::Admin) {
            return Err(own_account("take the admin role from"));
        }
    }
    let windows = body
        .windows
        .as_deref()
        .map(|w| check_windows(&s, w))
        .transpose()?;
    let change = Change::Set {
        roles: body.roles,
        windows,
    };
    commit(&s, lang, id, change, by).await
}

async fn remove(
    State(s): State<AppState>,
    Language(lang): Language,
    auth: StaffAuth,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let by = admin(&auth)?;
    if id == by {
        return Err(own_account("remove"));
    }
    commit(&s, lang, id, Change::Remove, by).await
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ActionBody {
    #[serde(default)]
    pin: Option<String>,
}

/// `disable`, `enable`, `unlock`, `reset-pin` (with `pin`).
async fn action(
    State(s): State<AppState>,
    Language(lang): Language,
    auth: StaffAuth,
    Path((id, action)): Path<(String, String)>,
    JsonBody(body): JsonBody<ActionBody>,
) -> Result<Json<Value>, ApiError> {
    let by = admin(&auth)?;
    let change = match action.as_str() {
        "disable" if id == by => return Err(own_account("disable")),
        "disable" => Change::Disable,
        "enable" => Change::Enable,
        "unlock" => Change::Unlock,
        "reset-pin" => {
            let pin = body
                .pin
                .ok_or_else(|| ApiError::field("pin", "the new PIN, 6 to 12 digits"))?;
            Change::ResetPin(hash(pin).await?)
        }
        other => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "unknown_action",
                format!(
                    "no staff action {}: use disable, enable, unlock or reset-pin",
                    hallq_engine::text::clip(other)
                ),
            ));
        }
    };
    commit(&s, lang, id, change, by).await
}

fn own_account(what: &str) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "own_account",
        format!("an admin cannot {what} their own account; ask another admin or use `hallq staff`"),
    )
}

/// Sends the change to the core, which commits it with its audit event and sign-outs.
async fn commit(
    s: &AppState,
    lang: hallq_engine::Lang,
    id: String,
    change: Change,
    by: String,
) -> Result<Json<Value>, ApiError> {
    let change = AccountChange {
        staff: id,
        change,
        by,
        via: "web".into(),
    };
    let (events, account) = s
        .hall
        .change_account(change)
        .await
        .map_err(|e| ApiError::from_core(e, lang))?
        .map_err(|e| staff_error(e, None))?;
    Ok(Json(json!({
        "account": account_json(&account),
        "events": events.iter().map(|e| json!({ "seq": e.seq, "type": e.kind, "payload": e.payload })).collect::<Vec<_>>(),
    })))
}

fn staff_error(e: staff::StaffError, field: Option<&str>) -> ApiError {
    use staff::StaffError as E;
    match e {
        E::WeakPin => ApiError::field(field.unwrap_or("pin"), e.to_string()),
        E::Exists(_) => ApiError {
            field: Some("id".into()),
            ..ApiError::new(StatusCode::CONFLICT, "staff_exists", e.to_string())
        },
        E::Unknown(_) => ApiError::new(StatusCode::NOT_FOUND, "unknown_staff", e.to_string()),
        other => {
            tracing::error!(error = %other, "staff account change failed");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the account could not be changed now; nothing was changed, try again",
            )
        }
    }
}
