//! The web side: health and metrics (open), the county dashboard's pages, sign-in, and
//! the JSON API behind them (the halls live and over a period, the 好差评 follow-ups, the ingest, the 好差评 export for download).
//! Every API call but sign-in needs a session's bearer token, and answers only about
//! the halls in the caller's region.

use std::sync::Arc;
use std::time::Duration;

use std::collections::HashMap;

use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};
use tokio::sync::Mutex;
use tokio_postgres::Client;

use crate::auth::{self, Account, AuthError};
use crate::config::{Auth, Hall, Region, region_level};
use crate::halls::{halls_now, regions_now};
use crate::metrics::Metrics;

/// What the handlers share.
pub struct Web {
    /// This instance's name.
    pub instance: String,
    /// Its counters.
    pub metrics: Arc<Metrics>,
    db_url: String,
    db: Mutex<Option<Arc<Client>>>,
    regions: Vec<Region>,
    halls: Vec<Hall>,
    auth: Auth,
    export: crate::export::Settings,
    pusher: crate::push::Pusher,
    /// The guard in front of the phone page.
    pub phone: hallq::phone::PhoneGuard,
    /// The halls' service days and local time.
    pub clock: crate::rollup::DayClock,
}

impl Web {
    /// The shared state.
    #[allow(clippy::too_many_arguments)] // the instance's parts, each handed in by `serve`
    pub fn new(
        instance: String,
        metrics: Arc<Metrics>,
        db_url: String,
        regions: Vec<Region>,
        halls: Vec<Hall>,
        auth: Auth,
        export: crate::export::Settings,
        pusher: crate::push::Pusher,
        clock: crate::rollup::DayClock,
    ) -> Arc<Web> {
        Arc::new(Web {
            instance,
            metrics,
            db_url,
            db: Mutex::new(None),
            regions,
            halls,
            auth,
            export,
            pusher,
            phone: hallq::phone::PhoneGuard::default(),
            clock,
        })
    }

    /// The halls `a` may see.
    fn halls_of(&self, a: &Account) -> Vec<Hall> {
        self.halls
            .iter()
            .filter(|h| a.sees(&h.region))
            .cloned()
            .collect()
    }

    /// Whether `a`'s region is a top of the tree: then it also sees the halls that
    /// publish without being listed under `[[hall]]` (a controller set up with a wrong
    /// `hall_id` shows there, to be put right).
    fn sees_unlisted(&self, a: &Account) -> bool {
        crate::config::region_parent(&a.region)
            .is_none_or(|p| !self.regions.iter().any(|r| r.code == p))
    }

    /// Whether `a` may see hall `id`: a listed hall in its region, or (at the top of the
    /// tree) one that publishes without being listed.
    fn sees_hall(&self, a: &Account, id: &str) -> bool {
        match self.halls.iter().find(|h| h.id == id) {
            Some(h) => a.sees(&h.region),
            None => self.sees_unlisted(a),
        }
    }

    /// Every hall id under `[[hall]]`.
    fn listed_ids(&self) -> Vec<String> {
        self.halls.iter().map(|h| h.id.clone()).collect()
    }

    /// The listed regions from `a`'s own down to `code`, top first.
    fn region_path(&self, code: &str, a: &Account) -> Vec<Region> {
        let mut path = Vec::new();
        let mut c = Some(code.to_string());
        while let Some(x) = c.filter(|x| a.sees(x)) {
            if let Some(r) = self.regions.iter().find(|r| r.code == x) {
                path.push(r.clone());
            }
            c = crate::config::region_parent(&x);
        }
        path.reverse();
        path
    }

    /// The regions `a` may see: its own and those below.
    fn regions_of(&self, a: &Account) -> Vec<Region> {
        self.regions
            .iter()
            .filter(|r| a.sees(&r.code))
            .cloned()
            .collect()
    }

    /// The shared connection, connected again when it has closed; a 503 when it cannot be.
    pub(crate) async fn db(&self) -> Result<Arc<Client>, Response> {
        let mut slot = self.db.lock().await;
        if let Some(c) = slot.as_ref().filter(|c| !c.is_closed()) {
            return Ok(c.clone());
        }
        match crate::db::connect(&self.db_url, Duration::ZERO).await {
            Ok(c) => {
                let c = Arc::new(c);
                *slot = Some(c.clone());
                Ok(c)
            }
            Err(e) => Err(unavailable(e)),
        }
    }
}

/// The 503 when PostgreSQL cannot be reached.
pub(crate) fn unavailable(e: impl std::fmt::Display) -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({"error": "database_unavailable", "message": e.to_string()})),
    )
        .into_response()
}

fn error(status: StatusCode, error: &str, field: Option<&str>, message: &str) -> Response {
    let mut body = json!({"error": error, "message": message});
    if let Some(f) = field {
        body["field"] = json!(f);
    }
    (status, Json(body)).into_response()
}

fn bearer(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// The caller of an API route: a live session's account, or 401.
pub struct Signed(pub Account);

impl FromRequestParts<Arc<Web>> for Signed {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, web: &Arc<Web>) -> Result<Self, Response> {
        let refuse = || {
            error(
                StatusCode::UNAUTHORIZED,
                "sign_in_required",
                None,
                "sign in first: POST /api/v1/session, then send Authorization: Bearer <token>",
            )
        };
        let Some(token) = bearer(parts) else {
            return Err(refuse());
        };
        let db = web.db().await?;
        match auth::session(&db, &web.auth, token, crate::now_ms()).await {
            Ok(Some(a)) => Ok(Signed(a)),
            Ok(None) => Err(refuse()),
            Err(e) => Err(unavailable(e)),
        }
    }
}

/// The routes.
pub fn router(web: Arc<Web>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/metrics", get(metrics))
        .route("/api/v1/session", post(sign_in).get(who).delete(sign_out))
        .route("/api/v1/halls", get(halls))
        .route("/api/v1/halls/{id}", get(hall))
        .route("/api/v1/period", get(period))
        .route("/api/v1/follow-ups", get(follow_ups))
        .route("/api/v1/controllers", get(controllers))
        .route("/api/v1/controllers/{id}/gaps", get(gaps))
        .route("/api/v1/ratings/export", get(ratings_export))
        .route("/api/v1/halls/{id}/pushes", post(push_to_hall))
        .route("/api/v1/halls/{id}/setup", get(hall_setup))
        .route("/api/v1/regions/{code}/pushes", post(push_to_region))
        .route("/api/v1/pushes", get(pushes))
        .route(
            "/api/v1/follow-ups/{controller}/{ticket}/steps",
            post(follow_up_step),
        )
        .merge(crate::pages::routes())
        .merge(crate::phone::routes())
        .with_state(web)
}

async fn metrics(State(web): State<Arc<Web>>) -> impl IntoResponse {
    ([("content-type", "text/plain; version=0.0.4")], {
        let mut out = web.metrics.render(&web.instance);
        web.phone.render_metrics(&mut out);
        out
    })
}

/// Every hall's live figures from its controllers' states, and every region's sums: the
/// caller's region and what lies below it.
async fn halls(State(web): State<Arc<Web>>, Signed(who): Signed) -> Result<Json<Value>, Response> {
    let db = web.db().await?;
    let halls = live(&web, &db, &who, None).await?;
    let regions = regions_now(&web.regions_of(&who), &halls);
    Ok(Json(
        json!({ "halls": halls, "regions": regions, "region": who.region }),
    ))
}

/// The halls `who` sees (or the one `only`), live, with their open warnings.
async fn live(
    web: &Web,
    db: &Client,
    who: &Account,
    only: Option<&str>,
) -> Result<Vec<crate::halls::HallNow>, Response> {
    let visible = web.halls_of(who);
    let all = web.sees_unlisted(who);
    let listed_ids = web.listed_ids();
    let ids: Vec<String> = visible
        .iter()
        .map(|h| h.id.clone())
        .filter(|id| only.is_none_or(|o| o == id))
        .collect();
    let states: Vec<(String, String, Option<Value>)> = db
        .query(
            "SELECT controller_id, hall_id, state FROM controllers
             WHERE (hall_id = ANY($1) OR ($2 AND NOT hall_id = ANY($4)))
               AND ($3::text IS NULL OR hall_id = $3)
             ORDER BY controller_id",
            &[&ids, &all, &only, &listed_ids],
        )
        .await
        .map_err(unavailable)?
        .iter()
        .map(|r| {
            let state: Option<tokio_postgres::types::Json<Value>> = r.get(2);
            (r.get(0), r.get(1), state.map(|j| j.0))
        })
        .collect();
    let since = crate::now_ms() - WARNINGS_LOOK_BACK_MS;
    let open: std::collections::HashMap<String, i64> = db
        .query(
            "SELECT hall_id, count(*) FROM warnings
             WHERE handled_at IS NULL AND type IS NOT NULL AND at >= $1
               AND (hall_id = ANY($2) OR ($3 AND NOT hall_id = ANY($5)))
               AND ($4::text IS NULL OR hall_id = $4)
             GROUP BY hall_id",
            &[&since, &ids, &all, &only, &listed_ids],
        )
        .await
        .map_err(unavailable)?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let listed: Vec<Hall> = visible
        .into_iter()
        .filter(|h| ids.contains(&h.id))
        .collect();
    let mut now: Vec<crate::halls::HallNow> = halls_now(&listed, &states)
        .into_iter()
        .filter(|h| only.is_none_or(|o| o == h.id))
        .collect();
    for h in &mut now {
        h.open_warnings = open.get(&h.id).copied().unwrap_or(0);
    }
    Ok(now)
}

/// Warnings older than this are not counted open on the dashboard (the controller
/// escalates within its day, and looks back one day).
const WARNINGS_LOOK_BACK_MS: i64 = 24 * 3_600_000;

/// One hall in full: its figures, its controllers, every window as it is now, its
/// services, devices, notice and kiosk lock, and its open warnings.
async fn hall(
    State(web): State<Arc<Web>>,
    Signed(who): Signed,
    Path(id): Path<String>,
) -> Result<Json<Value>, Response> {
    let db = web.db().await?;
    let Some(h) = live(&web, &db, &who, Some(&id)).await?.into_iter().next() else {
        return Err(unseen_hall(&id));
    };
    let rows = db
        .query(
            "SELECT controller_id, state FROM controllers WHERE hall_id = $1 ORDER BY controller_id",
            &[&id],
        )
        .await
        .map_err(unavailable)?;
    let (mut controllers, mut windows, mut services, mut devices) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut notice, mut kiosk) = (Value::Null, Value::Null);
    for r in &rows {
        let controller: String = r.get(0);
        let state = r
            .get::<_, Option<tokio_postgres::types::Json<Value>>>(1)
            .map(|j| j.0)
            .unwrap_or(Value::Null);
        let tagged = |list: Option<&Value>| -> Vec<Value> {
            list.and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|v| {
                    let mut v = v.clone();
                    v["controller_id"] = json!(controller);
                    v
                })
                .collect()
        };
        windows.extend(tagged(state.pointer("/queue/windows")));
        services.extend(tagged(state.pointer("/queue/services")));
        devices.extend(tagged(state.get("devices")));
        if !state.get("notice").is_none_or(Value::is_null) {
            notice = state["notice"].clone();
        }
        if state.pointer("/kiosk/locked").and_then(Value::as_bool) == Some(true) || kiosk.is_null()
        {
            kiosk = state.get("kiosk").cloned().unwrap_or(Value::Null);
        }
        controllers.push(json!({
            "controller_id": controller,
            "status": state.get("status"),
            "at": state.get("at"),
            "version": state.get("version"),
            "config_version": state.get("config_version"),
            "day": state.pointer("/queue/day"),
            "backlog": state.get("backlog"),
            "events": state.get("events"),
            "reason": state.get("reason"),
        }));
    }
    let since = crate::now_ms() - WARNINGS_LOOK_BACK_MS;
    let warnings: Vec<Value> = db
        .query(
            "SELECT controller_id, seq, type, at, escalated_at, payload FROM warnings
             WHERE hall_id = $1 AND handled_at IS NULL AND type IS NOT NULL AND at >= $2
             ORDER BY at DESC LIMIT 200",
            &[&id, &since],
        )
        .await
        .map_err(unavailable)?
        .iter()
        .map(|r| {
            let payload: Option<tokio_postgres::types::Json<Value>> = r.get(5);
            json!({
                "controller_id": r.get::<_, String>(0),
                "seq": r.get::<_, i64>(1),
                "type": r.get::<_, Option<String>>(2),
                "at": r.get::<_, Option<i64>>(3),
                "escalated_at": r.get::<_, Option<i64>>(4),
                "detail": payload.map(|j| j.0),
            })
        })
        .collect();
    let path = web.region_path(h.region.as_deref().unwrap_or_default(), &who);
    Ok(Json(json!({
        "hall": h, "path": path, "controllers": controllers, "windows": windows,
        "services": services, "devices": devices, "notice": notice, "kiosk": kiosk,
        "warnings": warnings,
    })))
}

#[derive(serde::Deserialize)]
struct SignIn {
    login: Option<String>,
    password: Option<String>,
}

/// `POST /api/v1/session`: a login and password for a bearer token.
async fn sign_in(State(web): State<Arc<Web>>, body: axum::body::Bytes) -> Response {
    let form: SignIn = match serde_json::from_slice(&body) {
        Ok(f) => f,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                None,
                &format!("a JSON object with login and password: {e}"),
            );
        }
    };
    let Some(login) = form.login.filter(|l| !l.is_empty()) else {
        return error(
            StatusCode::BAD_REQUEST,
            "missing",
            Some("login"),
            "login is required",
        );
    };
    let Some(password) = form.password.filter(|p| !p.is_empty()) else {
        return error(
            StatusCode::BAD_REQUEST,
            "missing",
            Some("password"),
            "password is required",
        );
    };
    let db = match web.db().await {
        Ok(db) => db,
        Err(r) => return r,
    };
    match auth::sign_in(&db, &web.auth, &login, &password, crate::now_ms()).await {
        Ok((token, account)) => {
            let region_name = web
                .regions
                .iter()
                .find(|r| r.code == account.region)
                .map(|r| r.name.clone());
            Json(json!({
                "token": token, "account": account, "region_name": region_name,
                "idle_minutes": web.auth.session_idle_minutes,
            }))
            .into_response()
        }
        Err(AuthError::Locked(until)) => (
            StatusCode::LOCKED,
            Json(json!({"error": "account_locked", "until": until,
                        "message": "too many wrong passwords: the account is locked for a while"})),
        )
            .into_response(),
        Err(AuthError::WrongCredentials) => error(
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
            None,
            "wrong login or password",
        ),
        Err(e) => unavailable(e),
    }
}

/// `GET /api/v1/session`: who is signed in, and the region tree they see.
async fn who(State(web): State<Arc<Web>>, Signed(who): Signed) -> Json<Value> {
    let region_name = web
        .regions
        .iter()
        .find(|r| r.code == who.region)
        .map(|r| r.name.clone());
    Json(json!({ "account": who, "region_name": region_name, "regions": web.regions_of(&who) }))
}

/// `DELETE /api/v1/session`: signs out.
async fn sign_out(State(web): State<Arc<Web>>, parts: Parts) -> Response {
    let Some(token) = bearer(&parts) else {
        return StatusCode::NO_CONTENT.into_response();
    };
    let db = match web.db().await {
        Ok(db) => db,
        Err(r) => return r,
    };
    match auth::sign_out(&db, token, crate::now_ms()).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => unavailable(e),
    }
}

/// `GET /api/v1/period`: the caller's halls and regions.
async fn period(
    State(web): State<Arc<Web>>,
    Signed(who): Signed,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, Response> {
    let (halls, regions) = (web.halls_of(&who), web.regions_of(&who));
    let halls: Vec<&Hall> = halls.iter().collect();
    let regions: Vec<&Region> = regions.iter().collect();
    period_of(&web, &q, &halls, &regions).await.map(Json)
}

/// The period view (`month=` or `from=&to=`, optional `region=` and `hall=`) over the
/// halls and regions a caller may see: an account's handler passes its own.
pub async fn period_of(
    web: &Web,
    q: &HashMap<String, String>,
    halls: &[&Hall],
    regions: &[&Region],
) -> Result<Value, Response> {
    let span = crate::period::span(q).map_err(|e| bad_field(e.field, e.message.to_string()))?;
    let (mut halls, mut regions) = (halls.to_vec(), regions.to_vec());
    if let Some(code) = q.get("region") {
        if region_level(code).is_none() {
            return Err(bad_field(
                "region",
                format!("{code:?} is not a 12-digit region code"),
            ));
        }
        if !regions.iter().any(|r| r.code == *code) {
            return Err(bad_field("region", format!("no region {code} here")));
        }
        let (r, h) = crate::period::within(code, &web.regions, &web.halls);
        regions.retain(|x| r.iter().any(|y| y.code == x.code));
        halls.retain(|x| h.iter().any(|y| y.id == x.id));
    }
    // The hall whose tables are asked for: one the caller sees here.
    let mut one = None;
    if let Some(id) = q.get("hall") {
        one = Some(
            halls
                .iter()
                .copied()
                .find(|h| h.id == *id)
                .ok_or_else(|| bad_field("hall", format!("no hall {id} here")))?,
        );
    }
    let db = web.db().await?;
    let now = crate::now_ms();
    let view = crate::period::period(&db, &halls, &regions, span, &web.clock, now)
        .await
        .map_err(unavailable)?;
    let mut out = json!(view);
    if let Some(hall) = one {
        let detail = crate::period::detail(&db, hall, span, &web.clock, now)
            .await
            .map_err(unavailable)?;
        out["detail"] = json!(detail);
    }
    Ok(out)
}

/// `GET /api/v1/follow-ups`: the caller's halls.
async fn follow_ups(
    State(web): State<Arc<Web>>,
    Signed(who): Signed,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, Response> {
    if let Some(code) = q.get("region").filter(|c| !who.sees(c)) {
        return Err(bad_field(
            "region",
            format!("{code:?} is not a region of yours on this server"),
        ));
    }
    let halls = web.halls_of(&who);
    let halls: Vec<&Hall> = halls.iter().collect();
    follow_ups_of(&web, &q, &halls).await.map(Json)
}

/// The open (`state=open`, the default) or overdue (`state=overdue`) 好差评 follow-ups
/// of the halls a caller may see, optionally `region=`, the soonest due first (1000 at
/// most).
pub async fn follow_ups_of(
    web: &Web,
    q: &HashMap<String, String>,
    halls: &[&Hall],
) -> Result<Value, Response> {
    let Some(which) = crate::follow_ups::Which::parse(q.get("state").map(String::as_str)) else {
        return Err(bad_field("state", "use state=open or state=overdue".into()));
    };
    let mut halls = halls.to_vec();
    if let Some(code) = q.get("region") {
        if region_level(code).is_none() || !web.regions.iter().any(|r| r.code == *code) {
            return Err(bad_field("region", format!("no region {code:?} here")));
        }
        let (_, h) = crate::period::within(code, &web.regions, &web.halls);
        halls.retain(|x| h.iter().any(|y| y.id == x.id));
    }
    let db = web.db().await?;
    let now = crate::now_ms();
    let list = crate::follow_ups::list(&db, &halls, which, now, 1000)
        .await
        .map_err(unavailable)?;
    Ok(json!({
        "state": if which == crate::follow_ups::Which::Overdue { "overdue" } else { "open" },
        "now": now,
        "follow_ups": list,
    }))
}

/// Every controller: what is stored, what is missing, its last state.
async fn controllers(
    State(web): State<Arc<Web>>,
    Signed(who): Signed,
) -> Result<Json<Value>, Response> {
    let db = web.db().await?;
    let visible: Vec<String> = web.halls_of(&who).into_iter().map(|h| h.id).collect();
    let rows = db
        .query(
            "SELECT controller_id, hall_id, base_seq, max_seq, stored, contiguous_seq,
                    reported_seq, last_event_at, state_at, state->>'status', gap_since,
                    resends, resend_from, conflicts,
                    greatest(max_seq, coalesce(reported_seq, 0)) - base_seq + 1 - stored
             FROM controllers WHERE hall_id = ANY($1) OR ($2 AND NOT hall_id = ANY($3))
             ORDER BY hall_id, controller_id",
            &[&visible, &web.sees_unlisted(&who), &web.listed_ids()],
        )
        .await
        .map_err(unavailable)?;
    let list: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!({
                "controller_id": r.get::<_, String>(0),
                "hall_id": r.get::<_, String>(1),
                "base_seq": r.get::<_, i64>(2),
                "max_seq": r.get::<_, i64>(3),
                "stored": r.get::<_, i64>(4),
                "contiguous_seq": r.get::<_, i64>(5),
                "reported_seq": r.get::<_, Option<i64>>(6),
                "last_event_at": r.get::<_, Option<i64>>(7),
                "state_at": r.get::<_, Option<i64>>(8),
                "status": r.get::<_, Option<String>>(9),
                "gap_since": r.get::<_, Option<i64>>(10),
                "resends": r.get::<_, i64>(11),
                "resend_from": r.get::<_, Option<i64>>(12),
                "conflicts": r.get::<_, i64>(13),
                "missing": r.get::<_, i64>(14).max(0),
            })
        })
        .collect();
    Ok(Json(json!({ "controllers": list })))
}

/// The missing ranges of one controller (the first 1000).
async fn gaps(
    State(web): State<Arc<Web>>,
    Signed(who): Signed,
    Path(id): Path<String>,
) -> Result<Json<Value>, Response> {
    let db = web.db().await?;
    let visible: Vec<String> = web.halls_of(&who).into_iter().map(|h| h.id).collect();
    let Some(c) = db
        .query_opt(
            "SELECT base_seq, greatest(max_seq, coalesce(reported_seq, 0)) FROM controllers
             WHERE controller_id = $1 AND (hall_id = ANY($2) OR ($3 AND NOT hall_id = ANY($4)))",
            &[&id, &visible, &web.sees_unlisted(&who), &web.listed_ids()],
        )
        .await
        .map_err(unavailable)?
    else {
        return Err((
            StatusCode::NOT_FOUND,
            Json(json!({"error": "not_found", "field": "id", "message": format!("no controller {id}")})),
        )
            .into_response());
    };
    let (base, top): (i64, i64) = (c.get(0), c.get(1));
    // Bracket the stored seqs with base-1 and top+1 so the ends show as gaps too.
    let rows = db
        .query(
            "SELECT seq + 1, next - 1 FROM (
                 SELECT seq, lead(seq) OVER (ORDER BY seq) AS next FROM (
                     SELECT seq FROM event_keys WHERE controller_id = $1 AND seq BETWEEN $2 AND $3
                     UNION ALL SELECT $2 - 1 UNION ALL SELECT $3 + 1) s) t
             WHERE next > seq + 1 ORDER BY seq LIMIT 1000",
            &[&id, &base, &top],
        )
        .await
        .map_err(unavailable)?;
    let ranges: Vec<Value> = rows
        .iter()
        .map(|r| json!({"from": r.get::<_, i64>(0), "to": r.get::<_, i64>(1)}))
        .collect();
    Ok(Json(
        json!({ "controller_id": id, "base_seq": base, "top_seq": top, "gaps": ranges }),
    ))
}

/// A 400 naming the query parameter at fault.
fn bad_field(field: &str, message: String) -> Response {
    error(
        StatusCode::BAD_REQUEST,
        "bad_request",
        Some(field),
        &message,
    )
}

/// The two shapes of the export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// JSON lines.
    Jsonl,
    /// CSV.
    Csv,
}

/// A day's export of the halls in `visible` (`None`: every hall) as a file's text:
/// the query a handler runs once it knows which halls the request may see.
pub async fn export_text(
    db: &Client,
    settings: &crate::export::Settings,
    visible: Option<&[String]>,
    day: chrono::NaiveDate,
    format: ExportFormat,
) -> Result<String, crate::db::DbError> {
    let rated = crate::export::day_ratings(db, settings, day, visible).await?;
    Ok(match format {
        ExportFormat::Jsonl => crate::export::jsonl(&settings.fields, &rated),
        ExportFormat::Csv => crate::export::csv(&settings.fields, &rated),
    })
}

/// `GET /api/v1/ratings/export?day=YYYY-MM-DD&format=jsonl|csv[&region=CODE]`: the
/// day's 好差评 records as the daily files have them, of every hall or of a region's.
async fn ratings_export(
    State(web): State<Arc<Web>>,
    Signed(who): Signed,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> Result<Response, Response> {
    let day = q
        .get("day")
        .ok_or_else(|| bad_field("day", "give the day, YYYY-MM-DD".into()))?;
    let day = chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d")
        .map_err(|_| bad_field("day", format!("{day:?} is not a date YYYY-MM-DD")))?;
    let (format, content_type) = match q.get("format").map_or("jsonl", String::as_str) {
        "jsonl" => (ExportFormat::Jsonl, "application/x-ndjson; charset=utf-8"),
        "csv" => (ExportFormat::Csv, "text/csv; charset=utf-8"),
        other => {
            return Err(bad_field("format", format!("{other:?}: use jsonl or csv")));
        }
    };
    // The caller's halls (at the top of the tree, also those not listed), or a region's
    // within the caller's.
    let visible = match q.get("region") {
        None if web.sees_unlisted(&who) => None,
        None => Some(web.halls_of(&who).into_iter().map(|h| h.id).collect()),
        Some(code) => {
            if !web.regions.iter().any(|r| &r.code == code) || !who.sees(code) {
                return Err(bad_field(
                    "region",
                    format!("{code:?} is not a region of yours on this server"),
                ));
            }
            crate::export::halls_of_region(&web.halls, code)
        }
    };
    let db = web.db().await?;
    let text = export_text(&db, &web.export, visible.as_deref(), day, format)
        .await
        .map_err(unavailable)?;
    let ext = if format == ExportFormat::Csv {
        "csv"
    } else {
        "jsonl"
    };
    Ok((
        [
            ("content-type", content_type.to_string()),
            (
                "content-disposition",
                format!("attachment; filename=\"ratings-{day}.{ext}\""),
            ),
        ],
        text,
    )
        .into_response())
}

/// 403 for a viewer (watching only); `None` for those who may act.
fn refused_to_act(who: &Account) -> Option<Response> {
    (!who.role.may_act()).then(|| {
        error(
            StatusCode::FORBIDDEN,
            "forbidden",
            None,
            "a viewer may watch but not act on halls: ask for a supervisor's account",
        )
    })
}

/// The 400 for a body that is not JSON.
fn not_json(e: serde_json::Error) -> Response {
    error(
        StatusCode::BAD_REQUEST,
        "bad_request",
        None,
        &format!("a JSON object: {e}"),
    )
}

/// Records a push, sends it, and answers `202` with its id and targets.
async fn push(
    web: &Web,
    who: &Account,
    scope: &str,
    halls: &[String],
    controller: Option<&str>,
    push: crate::push::Push,
) -> Result<Response, Response> {
    let now = crate::now_ms();
    let (id, targets) =
        match crate::push::record(&web.db_url, who, scope, halls, controller, &push, now).await {
            Ok(r) => r,
            Err(crate::push::PushError::NoControllers) => {
                return Err(error(
                    StatusCode::CONFLICT,
                    "no_controllers",
                    None,
                    &crate::push::PushError::NoControllers.to_string(),
                ));
            }
            Err(crate::push::PushError::Db(e)) => return Err(unavailable(e)),
        };
    tracing::info!(
        "{} pushes {} to {scope}: {} controller(s), push {id}",
        who.login,
        push.name(),
        targets.len()
    );
    let db = web.db().await?;
    crate::push::send(&db, &web.pusher, &id, &push, &targets, now)
        .await
        .map_err(unavailable)?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "id": id, "command": push.name(), "scope": scope, "targets": targets })),
    )
        .into_response())
}

/// `POST /api/v1/halls/{id}/pushes`: a command or setup to every controller of a hall.
async fn push_to_hall(
    State(web): State<Arc<Web>>,
    Signed(who): Signed,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, Response> {
    if let Some(refused) = refused_to_act(&who) {
        return Err(refused);
    }
    if !web.sees_hall(&who, &id) {
        return Err(unseen_hall(&id));
    }
    let what = crate::push::read(&serde_json::from_slice(&body).map_err(not_json)?)
        .map_err(|b| bad_field(&b.field, b.message))?;
    push(&web, &who, &format!("hall:{id}"), &[id], None, what).await
}

/// The answer about a hall the caller does not see: as if it did not exist.
fn unseen_hall(id: &str) -> Response {
    error(
        StatusCode::NOT_FOUND,
        "not_found",
        Some("id"),
        &format!("no hall {id} in your region"),
    )
}

/// `GET /api/v1/halls/{id}/setup`: the setup in force at each of the hall's controllers,
/// as they last published it (the newest version first): what the setup editor starts
/// from. `404` (field `setup`) while none has published one.
async fn hall_setup(
    State(web): State<Arc<Web>>,
    Signed(who): Signed,
    Path(id): Path<String>,
) -> Result<Json<Value>, Response> {
    if !web.sees_hall(&who, &id) {
        return Err(unseen_hall(&id));
    }
    let db = web.db().await?;
    let setups: Vec<Value> = db
        .query(
            "SELECT controller_id, version, received_at, document FROM setups
             WHERE hall_id = $1 ORDER BY version DESC NULLS LAST, controller_id",
            &[&id],
        )
        .await
        .map_err(unavailable)?
        .iter()
        .map(|r| {
            let doc: tokio_postgres::types::Json<Value> = r.get(3);
            json!({
                "controller_id": r.get::<_, String>(0),
                "version": r.get::<_, Option<i64>>(1),
                "received_at": r.get::<_, i64>(2),
                "queue": doc.0.get("queue"),
                "guide": doc.0.get("guide"),
            })
        })
        .collect();
    if setups.is_empty() {
        return Err(error(
            StatusCode::NOT_FOUND,
            "not_found",
            Some("setup"),
            &format!("no controller of hall {id} has published its setup yet"),
        ));
    }
    Ok(Json(json!({ "hall_id": id, "setups": setups })))
}

/// `POST /api/v1/regions/{code}/pushes`: a command or setup to every hall of a region
/// (its own and those below).
async fn push_to_region(
    State(web): State<Arc<Web>>,
    Signed(who): Signed,
    Path(code): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, Response> {
    if let Some(refused) = refused_to_act(&who) {
        return Err(refused);
    }
    if !who.sees(&code) || !web.regions.iter().any(|r| r.code == code) {
        return Err(error(
            StatusCode::NOT_FOUND,
            "not_found",
            Some("code"),
            &format!("no region {code} in your region"),
        ));
    }
    let what = crate::push::read(&serde_json::from_slice(&body).map_err(not_json)?)
        .map_err(|b| bad_field(&b.field, b.message))?;
    let halls: Vec<String> = web
        .halls_of(&who)
        .into_iter()
        .filter(|h| auth::within(&h.region, &code))
        .map(|h| h.id)
        .collect();
    push(&web, &who, &format!("region:{code}"), &halls, None, what).await
}

/// `POST /api/v1/follow-ups/{controller}/{ticket}/steps`: a step of a bad rating's
/// follow-up, entered here, sent to the controller that holds it (`by` is the account's
/// name).
async fn follow_up_step(
    State(web): State<Arc<Web>>,
    Signed(who): Signed,
    Path((controller, ticket)): Path<(String, i64)>,
    body: axum::body::Bytes,
) -> Result<Response, Response> {
    if let Some(refused) = refused_to_act(&who) {
        return Err(refused);
    }
    let db = web.db().await?;
    let hall: Option<String> = db
        .query_opt(
            "SELECT hall_id FROM follow_ups WHERE controller_id = $1 AND ticket = $2",
            &[&controller, &ticket],
        )
        .await
        .map_err(unavailable)?
        .map(|r| r.get(0));
    let Some(hall) = hall.filter(|h| web.sees_hall(&who, h)) else {
        return Err(error(
            StatusCode::NOT_FOUND,
            "not_found",
            Some("ticket"),
            &format!("no follow-up of ticket {ticket} at {controller} in your region"),
        ));
    };
    let by = format!("{} ({})", who.name, who.login);
    let what = crate::push::follow_up(
        ticket,
        &serde_json::from_slice(&body).map_err(not_json)?,
        &by,
    )
    .map_err(|b| bad_field(&b.field, b.message))?;
    push(
        &web,
        &who,
        &format!("follow-up:{controller}/{ticket}"),
        &[hall],
        Some(&controller),
        what,
    )
    .await
}

/// `GET /api/v1/pushes?hall=`: the latest 100 pushes to the caller's halls, with each
/// controller's answer.
async fn pushes(
    State(web): State<Arc<Web>>,
    Signed(who): Signed,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, Response> {
    let db = web.db().await?;
    let halls: Option<Vec<String>> =
        (!web.sees_unlisted(&who)).then(|| web.halls_of(&who).into_iter().map(|h| h.id).collect());
    let list = crate::push::list(
        &db,
        halls.as_deref(),
        q.get("hall").map(String::as_str),
        100,
    )
    .await
    .map_err(unavailable)?;
    Ok(Json(json!({ "pushes": list })))
}
