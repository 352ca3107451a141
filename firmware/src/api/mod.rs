//! The local HTTP/JSON API under `/api/v1` (documented in `docs/api.md`). Handlers turn
//! requests into engine commands for the hall core and map the outcome to JSON; errors
//! go through one [`ApiError`] so that every 4xx names its field and no 5xx leaks
//! internals.

mod accounts;
mod boundary;
mod desk;
mod devices;
mod extract;
use extract::{Path, Query};
mod guide;
mod help;
mod idcard;
mod kiosk;
mod metrics;
mod notice;
mod pages;
pub use pages::asset as web_asset;
mod period;
mod phone;
mod queue;
pub mod signin;
mod stream;
pub use stream::Closing;
pub mod supervision;
mod voice;
pub mod warnings;
mod windows;

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hallq_engine::{Lang, Ticket, Timestamp};
use rusqlite::Connection;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::config::Config;
use crate::core::{CoreError, HallCore, wall_now};
use crate::devices::health::Devices;
use crate::devices::printer::Printers;
use crate::metrics::Metrics;
use crate::store::staff::{self, Permission, Session};

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// The hall core.
    pub hall: HallCore,
    /// The configuration in force.
    pub config: Arc<Config>,
    /// A second connection for staff sign-in and token lookups. Held only for short
    /// reads and writes: the Argon2 work runs on the sign-in guard's pool, unlocked.
    pub auth_db: Arc<Mutex<Connection>>,
    /// Uplink status, kiosk lock and board notice, and the pushed queue setup.
    pub uplink: crate::uplink::Shared,
    /// Every device's health.
    pub devices: Devices,
    /// The hall's ticket printers (none, the single `[printer]`, or one per kiosk and
    /// desk): [`Printers`] says which prints a ticket and which a kiosk stands beside.
    pub printers: Printers,
    /// The voice, when the hall speaks its calls (set by the server after start).
    pub voice: Option<crate::devices::voice::Voice>,
    /// Counters and latencies for `/metrics`.
    pub metrics: Metrics,
    /// Set when the daemon stops: live streams send `reconnect` and end.
    pub closing: stream::Closing,
    /// Held while a help request is checked and recorded (one open request per kiosk).
    help_lock: Arc<tokio::sync::Mutex<()>>,
    /// Held while a warning is checked and its follow-up or escalation recorded (each
    /// warning is handled once and escalated once).
    warning_lock: Arc<tokio::sync::Mutex<()>>,
    /// The hall's secret for keyed hashes of personal identifiers (never sent anywhere).
    pub personal: crate::personal::PersonalKey,
    /// The PIN pool, the sign-in back-offs and the refusal summaries.
    pub sign_in: signin::SignInGuard,
    /// The ticket status page's per-address budgets and counters.
    pub phone: crate::phone::PhoneGuard,
    /// The ID card lying on each kiosk's reader (masked, hashed, in memory only).
    pub id_cards: crate::devices::id_reader::IdCards,
}

impl AppState {
    /// Opens the auth connection beside the core's own.
    pub fn new(
        hall: HallCore,
        config: Arc<Config>,
        devices: Devices,
        printers: Printers,
        personal: crate::personal::PersonalKey,
    ) -> Result<AppState, crate::store::StoreError> {
        let conn = Connection::open(config.database())?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        Ok(AppState {
            hall,
            config,
            auth_db: Arc::new(Mutex::new(conn)),
            uplink: crate::uplink::Shared::default(),
            devices,
            printers,
            voice: None,
            metrics: Metrics::new(),
            closing: stream::Closing::default(),
            help_lock: Arc::default(),
            warning_lock: Arc::default(),
            personal,
            sign_in: signin::SignInGuard::new(),
            phone: crate::phone::PhoneGuard::default(),
            id_cards: crate::devices::id_reader::IdCards::default(),
        })
    }

    /// Runs `f` with the auth connection on a blocking thread.
    async fn with_auth_db<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let db = self.auth_db.clone();
        tokio::task::spawn_blocking(move || {
            let conn = db.lock().unwrap_or_else(|p| p.into_inner());
            f(&conn)
        })
        .await
        .map_err(|_| ApiError::unavailable())
    }
}

/// A reprint as the uplink asks for it: the same layout as the kiosk's, on the printer
/// of the kiosk or desk the ticket was taken at (the first printer for a ticket taken
/// where none prints).
pub fn reprinter(state: AppState) -> Option<crate::uplink::downstream::Reprinter> {
    if state.printers.is_empty() {
        return None;
    }
    Some(Arc::new(move |t: Ticket, ahead: u32| {
        let s = state.clone();
        Box::pin(async move {
            match s.printers.for_reprint_of(&t.channel) {
                Some(p) => {
                    queue::print_ticket(&s, p, &t, ahead, None, std::time::Instant::now()).await
                }
                None => crate::devices::printer::PrintOutcome::NotPrinted,
            }
        })
    }))
}

/// The router; `main` binds it, tests call it directly.
pub fn app(state: AppState) -> Router {
    Router::new()
        .merge(queue::routes())
        .merge(guide::routes())
        .merge(devices::routes())
        .merge(metrics::routes())
        .merge(windows::routes())
        .merge(accounts::routes())
        .merge(stream::routes())
        .merge(voice::routes())
        .merge(help::routes())
        .merge(supervision::routes())
        .merge(period::routes())
        .merge(warnings::routes())
        .merge(pages::routes())
        .merge(phone::routes())
        .merge(kiosk::routes())
        .merge(idcard::routes())
        .merge(notice::routes())
        .merge(desk::routes())
        .fallback(|| async {
            ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
        })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this endpoint does not take that method",
            )
        })
        .layer(axum::middleware::from_fn_with_state(
            boundary::Hosts::new(&state.config.server),
            boundary::guard,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.metrics.clone(),
            crate::metrics::record,
        ))
        .with_state(state)
}

/// An API error: a status and a JSON body `{"error": {"code", "message", "field"?}}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: String,
    message: String,
    field: Option<String>,
    retry_after: Option<u64>,
}

impl ApiError {
    /// An error with a status, a machine code and a human message.
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code: code.into(),
            message: message.into(),
            field: None,
            retry_after: None,
        }
    }

    /// Bad input in a named field (422).
    pub fn field(field: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            field: Some(field.into()),
            ..ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", message)
        }
    }

    fn unavailable() -> ApiError {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the controller cannot take this request now; please try again",
        )
    }

    /// Maps a core error, with the refusal's text in the caller's language.
    pub fn from_core(e: CoreError, lang: Lang) -> ApiError {
        match e {
            CoreError::Refused(r) => ApiError {
                status: if r.is_conflict() {
                    StatusCode::CONFLICT
                } else {
                    StatusCode::UNPROCESSABLE_ENTITY
                },
                code: r.code().into(),
                message: r.message(lang),
                field: r.field().map(String::from),
                retry_after: None,
            },
            CoreError::Store(detail) => {
                tracing::error!(%detail, "request failed in storage");
                let message = match lang {
                    Lang::En => {
                        "The system cannot record this right now. Please ask the staff for help."
                    }
                    Lang::ZhTw => "系統暫時無法記錄，請聯繫工作人員。",
                    Lang::ZhCn => "系统暂时无法记录，请联系工作人员。",
                };
                ApiError {
                    retry_after: Some(5),
                    ..ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "storage_unavailable",
                        message,
                    )
                }
            }
            CoreError::StorageFull(detail) => {
                tracing::error!(%detail, "disk full: refusing new records");
                let message = match lang {
                    Lang::En => {
                        "The controller's disk is full, so nothing new can be recorded. Please ask the staff for help."
                    }
                    Lang::ZhTw => "控制器磁碟已滿，暫時無法記錄，請聯繫工作人員。",
                    Lang::ZhCn => "控制器磁盘已满，暂时无法记录，请联系工作人员。",
                };
                ApiError {
                    retry_after: Some(30),
                    ..ApiError::new(StatusCode::INSUFFICIENT_STORAGE, "storage_full", message)
                }
            }
            CoreError::Busy => ApiError {
                retry_after: Some(1),
                ..ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "busy",
                    "the controller is busy; retry",
                )
            },
            CoreError::Stopped => ApiError::unavailable(),
            CoreError::Declined(d) => ApiError::new(StatusCode::CONFLICT, d.code, d.message(lang)),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({ "code": self.code, "message": self.message });
        if let Some(f) = &self.field {
            body["field"] = json!(f);
        }
        let mut resp = (self.status, axum::Json(json!({ "error": body }))).into_response();
        if let Some(secs) = self.retry_after {
            resp.headers_mut().insert(header::RETRY_AFTER, secs.into());
        }
        resp
    }
}

/// The caller's language, from `Accept-Language` (default zh-CN).
#[derive(Debug, Clone, Copy)]
pub struct Language(pub Lang);

impl<S: Send + Sync> FromRequestParts<S> for Language {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Language(lang_of(&parts.headers)))
    }
}

fn lang_of(headers: &HeaderMap) -> Lang {
    headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .map_or(Lang::ZhCn, |v| {
            Lang::from_tag(v.split(',').next().unwrap_or(""))
        })
}

/// A JSON body whose errors name the offending field.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|_| {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "body_unreadable",
                    "the request body is too large or unreadable",
                )
            })?;
        let bytes = if bytes.is_empty() {
            axum::body::Bytes::from_static(b"{}")
        } else {
            bytes
        };
        let de = &mut serde_json::Deserializer::from_slice(&bytes);
        let value = serde_path_to_error::deserialize(&mut *de)
            .map(JsonBody)
            .map_err(|e| {
                let path = e.path().to_string();
                let msg = e.inner().to_string();
                let named = msg.split('`').nth(1).filter(|_| {
                    msg.starts_with("missing field") || msg.starts_with("unknown field")
                });
                let field = match (path.as_str(), named) {
                    (".", Some(n)) => n.to_string(),
                    (".", None) => "body".to_string(),
                    (p, Some(n)) if msg.starts_with("missing field") => format!("{p}.{n}"),
                    (p, _) => p.to_string(),
                };
                // serde quotes the input (an unknown field's name, a string of the
                // wrong type): a few dozen characters of it are enough.
                let field = hallq_engine::text::clip(&field);
                ApiError::field(&field, hallq_engine::text::clip_to(&msg, 160))
            })?;
        // One JSON document and nothing after it (whitespace aside).
        de.end().map_err(|_| {
            ApiError::field(
                "body",
                "the body must hold one JSON document and nothing after it",
            )
        })?;
        Ok(value)
    }
}

impl ApiError {
    /// The same error about another field (the API's name for what the engine calls
    /// something else).
    pub(crate) fn about(mut self, field: &str) -> ApiError {
        self.field = Some(field.into());
        self
    }

    /// The machine code.
    pub(crate) fn code(&self) -> &str {
        &self.code
    }
}

/// A caller allowed to act as a kiosk: on this machine, holding a kiosk key (or a rating
/// pad's key), or signed in.
pub struct Kiosk {
    /// Channel code recorded on tickets.
    pub channel: String,
}

/// Whether the request came over loopback, and the `X-Kiosk-Key` it carries: what the
/// kiosk and the rating extractors both judge a caller by.
fn loopback_and_kiosk_key(parts: &Parts) -> (bool, Option<&str>) {
    let local = signin::peer_ip(parts).is_some_and(|ip| ip.is_loopback());
    let key = parts
        .headers
        .get("x-kiosk-key")
        .and_then(|v| v.to_str().ok());
    (local, key)
}

impl FromRequestParts<AppState> for Kiosk {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let (local, key) = loopback_and_kiosk_key(parts);
        let keyed = key.is_some_and(|k| {
            state
                .config
                .server
                .kiosk_keys
                .iter()
                .any(|known| constant_eq(known, k))
                || pad_of_key(state, k).is_some()
        });
        let channel = kiosk_channel(&parts.headers);
        if local
            || keyed
            || bearer(&parts.headers).is_some()
                && StaffAuth::from_request_parts(parts, state).await.is_ok()
        {
            Ok(Kiosk { channel })
        } else {
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "kiosk_key_required",
                "this endpoint is open to kiosks on this machine or with a kiosk key",
            ))
        }
    }
}

/// The channel a kiosk's request speaks for: its `X-Kiosk-Id` (1 to 32 characters), or
/// `kiosk` without one. Tickets record it, and it picks the kiosk's printer.
pub(crate) fn kiosk_channel(headers: &HeaderMap) -> String {
    headers
        .get("x-kiosk-id")
        .and_then(|v| v.to_str().ok())
        .filter(|s| !s.is_empty() && s.len() <= 32)
        .unwrap_or("kiosk")
        .to_string()
}

fn pad_of_key(state: &AppState, key: &str) -> Option<u32> {
    state
        .config
        .server
        .rating_pads
        .iter()
        .find(|p| constant_eq(&p.key, key))
        .map(|p| p.window)
}

/// Who may rate a service, as the controller itself tells: a citizen at a kiosk, or at
/// the rating pad of one window. Never a member of staff, and never what the request
/// says about itself in its body.
pub enum Rater {
    /// A kiosk: on this machine, or holding a kiosk key.
    Kiosk {
        /// Recorded as the rating's channel (`kiosk`, or `kiosk-<X-Kiosk-Id>`).
        channel: String,
    },
    /// The rating pad of a window: a pad key configured for that window, or the rating
    /// page on this machine (which names its window in `X-Rating-Pad`).
    Pad(u32),
}

impl Rater {
    /// The channel code the rating records.
    pub fn channel(&self) -> String {
        match self {
            Rater::Kiosk { channel } => channel.clone(),
            Rater::Pad(w) => format!("window-pad-{w}"),
        }
    }

    /// The window whose pad rates, if a pad.
    pub fn window(&self) -> Option<u32> {
        match self {
            Rater::Kiosk { .. } => None,
            Rater::Pad(w) => Some(*w),
        }
    }
}

impl FromRequestParts<AppState> for Rater {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        // Refused before anything else, whoever else the caller might also be: a clerk
        // must not be able to rate their own service, not even from the controller's
        // own screen.
        if parts.headers.contains_key(header::AUTHORIZATION) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "staff_cannot_rate",
                "a rating comes from the citizen at a kiosk or a window's rating pad, never with a staff sign-in",
            ));
        }
        let (local, key) = loopback_and_kiosk_key(parts);
        let named_pad = match parts.headers.get("x-rating-pad") {
            None => None,
            Some(v) => Some(
                v.to_str()
                    .ok()
                    .and_then(|v| v.trim().parse::<u32>().ok())
                    .filter(|w| state.with_setup(|s| s.windows.iter().any(|d| d.number == *w)))
                    .ok_or_else(|| {
                        ApiError::field(
                            "X-Rating-Pad",
                            "must be the number of a window of this hall",
                        )
                    })?,
            ),
        };
        if let Some(w) = key.and_then(|k| pad_of_key(state, k)) {
            if named_pad.is_some_and(|n| n != w) {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "wrong_pad",
                    format!("this key belongs to the rating pad of window {w}"),
                ));
            }
            return Ok(Rater::Pad(w));
        }
        let keyed = key.is_some_and(|k| {
            state
                .config
                .server
                .kiosk_keys
                .iter()
                .any(|known| constant_eq(known, k))
        });
        match named_pad {
            Some(w) if local => Ok(Rater::Pad(w)),
            Some(_) => Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "rating_pad_key_required",
                "a rating pad on another machine is known by its own key ([[server.rating_pads]])",
            )),
            None if local || keyed => {
                let id = parts
                    .headers
                    .get("x-kiosk-id")
                    .and_then(|v| v.to_str().ok())
                    .filter(|s| !s.is_empty() && s.len() <= 32);
                let channel = match id {
                    None => "kiosk".to_string(),
                    Some(id) if id.starts_with("kiosk") => id.to_string(),
                    Some(id) => format!("kiosk-{id}"),
                };
                Ok(Rater::Kiosk { channel })
            }
            None => Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "kiosk_key_required",
                "ratings are taken from kiosks and rating pads only",
            )),
        }
    }
}

pub(crate) fn constant_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

/// A signed-in staff member (bearer token).
pub struct StaffAuth {
    /// The session.
    pub session: Session,
    /// The token, to end the session.
    pub token: String,
}

impl StaffAuth {
    /// Refuses unless the session has `p`, or a role above it (admin above all, a
    /// supervisor above the desk).
    pub fn require(&self, p: Permission) -> Result<(), ApiError> {
        if self.session.staff.roles.iter().any(|r| r.grants(p)) {
            Ok(())
        } else {
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "your account may not do this",
            ))
        }
    }
}

impl FromRequestParts<AppState> for StaffAuth {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let unauthorized = || {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "sign_in_required",
                "sign in with your staff id and PIN",
            )
        };
        let token = bearer(&parts.headers).ok_or_else(unauthorized)?.to_string();
        let t = token.clone();
        let session = state
            .with_auth_db(move |c| staff::session(c, &t, wall_now()))
            .await?
            .map_err(|_| ApiError::unavailable())?;
        session
            .map(|session| StaffAuth { session, token })
            .ok_or_else(unauthorized)
    }
}

/// Milliseconds as the hall's local time, for people reading JSON.
pub fn local_time(state: &AppState, ts: Timestamp) -> String {
    hallq_engine::LocalClock::new(state.with_setup(|s| s.utc_offset_minutes))
        .local(ts)
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}
