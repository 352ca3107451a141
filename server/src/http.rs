//! The web side: health, metrics, the halls live and over a period, and the
//! controllers' ingest state as JSON.

use std::sync::Arc;
use std::time::Duration;

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};
use tokio::sync::Mutex;
use tokio_postgres::Client;

use crate::config::{Hall, Region, region_level};
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
}

impl Web {
    /// The shared state.
    pub fn new(
        instance: String,
        metrics: Arc<Metrics>,
        db_url: String,
        regions: Vec<Region>,
        halls: Vec<Hall>,
    ) -> Arc<Web> {
        Arc::new(Web {
            instance,
            metrics,
            db_url,
            db: Mutex::new(None),
            regions,
            halls,
        })
    }

    async fn db(&self) -> Result<Arc<Client>, Response> {
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

fn unavailable(e: impl std::fmt::Display) -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({"error": "database_unavailable", "message": e.to_string()})),
    )
        .into_response()
}

/// The routes.
pub fn router(web: Arc<Web>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/metrics", get(metrics))
        .route("/api/v1/halls", get(halls))
        .route("/api/v1/period", get(period))
        .route("/api/v1/follow-ups", get(follow_ups))
        .route("/api/v1/controllers", get(controllers))
        .route("/api/v1/controllers/{id}/gaps", get(gaps))
        .with_state(web)
}

async fn metrics(State(web): State<Arc<Web>>) -> impl IntoResponse {
    (
        [("content-type", "text/plain; version=0.0.4")],
        web.metrics.render(&web.instance),
    )
}

/// Every hall's live figures from its controllers' states, and every region's sums.
async fn halls(State(web): State<Arc<Web>>) -> Result<Json<Value>, Response> {
    let db = web.db().await?;
    let states: Vec<(String, String, Option<Value>)> = db
        .query(
            "SELECT controller_id, hall_id, state FROM controllers ORDER BY controller_id",
            &[],
        )
        .await
        .map_err(unavailable)?
        .iter()
        .map(|r| {
            let state: Option<tokio_postgres::types::Json<Value>> = r.get(2);
            (r.get(0), r.get(1), state.map(|j| j.0))
        })
        .collect();
    let halls = halls_now(&web.halls, &states);
    let regions = regions_now(&web.regions, &halls);
    Ok(Json(json!({ "halls": halls, "regions": regions })))
}

/// A 400 naming the query parameter.
fn bad_request(field: &str, message: impl std::fmt::Display) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"error": "invalid_parameter", "field": field, "message": message.to_string()})),
    )
        .into_response()
}

/// `GET /api/v1/period`: every hall and region this server knows.
async fn period(
    State(web): State<Arc<Web>>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, Response> {
    let halls: Vec<&Hall> = web.halls.iter().collect();
    let regions: Vec<&Region> = web.regions.iter().collect();
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
    let span = crate::period::span(q).map_err(|e| bad_request(e.field, e.message))?;
    let (mut halls, mut regions) = (halls.to_vec(), regions.to_vec());
    if let Some(code) = q.get("region") {
        if region_level(code).is_none() {
            return Err(bad_request(
                "region",
                format!("{code:?} is not a 12-digit region code"),
            ));
        }
        if !regions.iter().any(|r| r.code == *code) {
            return Err(bad_request("region", format!("no region {code} here")));
        }
        let (r, h) = crate::period::within(code, &web.regions, &web.halls);
        regions.retain(|x| r.iter().any(|y| y.code == x.code));
        halls.retain(|x| h.iter().any(|y| y.id == x.id));
    }
    let db = web.db().await?;
    let view = crate::period::period(&db, &halls, &regions, span)
        .await
        .map_err(unavailable)?;
    let mut out = json!(view);
    if let Some(id) = q.get("hall") {
        if !halls.iter().any(|h| h.id == *id) {
            return Err(bad_request("hall", format!("no hall {id} here")));
        }
        let detail = crate::period::detail(&db, id, span)
            .await
            .map_err(unavailable)?;
        out["detail"] = json!(detail);
    }
    Ok(out)
}

/// `GET /api/v1/follow-ups`: every hall this server knows.
async fn follow_ups(
    State(web): State<Arc<Web>>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, Response> {
    let halls: Vec<&Hall> = web.halls.iter().collect();
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
        return Err(bad_request("state", "use state=open or state=overdue"));
    };
    let mut halls = halls.to_vec();
    if let Some(code) = q.get("region") {
        if region_level(code).is_none() || !web.regions.iter().any(|r| r.code == *code) {
            return Err(bad_request("region", format!("no region {code:?} here")));
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
async fn controllers(State(web): State<Arc<Web>>) -> Result<Json<Value>, Response> {
    let db = web.db().await?;
    let rows = db
        .query(
            "SELECT controller_id, hall_id, base_seq, max_seq, stored, contiguous_seq,
                    reported_seq, last_event_at, state_at, state->>'status', gap_since,
                    resends, resend_from, conflicts,
                    greatest(max_seq, coalesce(reported_seq, 0)) - base_seq + 1 - stored
             FROM controllers ORDER BY hall_id, controller_id",
            &[],
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
    Path(id): Path<String>,
) -> Result<Json<Value>, Response> {
    let db = web.db().await?;
    let Some(c) = db
        .query_opt(
            "SELECT base_seq, greatest(max_seq, coalesce(reported_seq, 0)) FROM controllers
             WHERE controller_id = $1",
            &[&id],
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
                     SELECT seq FROM events WHERE controller_id = $1 AND seq BETWEEN $2 AND $3
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
