//! The citizen's ticket page (`/t/{token}`) served from the events, for phones outside
//! the hall's Wi-Fi: the hall's controllers print `{[phone] base_url}/t/{token}` with
//! `base_url` the hall server's public address, and the server answers with the same page
//! the controller serves (`hallq`'s `phone.html`, `phone.js`), fed from PostgreSQL.
//!
//! The server holds no secret: the token (what the citizen's QR code carries) is hashed
//! (`sha256`, lowercase hex) and the `ticket_issued` event with that `token_hash` found
//! (an index on it, among the events of the last two days: the months' partitions of
//! `events` outside them are not read); a ticket of an earlier service day is gone. The
//! ticket is then followed through the events of its controller after it (by seq),
//! read by hall and time on `events_hall_at` from a little before it was taken:
//! called, recalled, serving, no-show (sent back or not), transferred, finished,
//! withdrawn, and its near-turn notice (the number masked, as the event has it).
//!
//! The people ahead are counted from the events, not from the controller's queue: the
//! number ahead when the ticket was taken (in `ticket_issued`), less every call of its
//! service since, plus every green-channel (绿色通道) ticket of its service taken since,
//! which goes first; after a transfer or a return to the queue, the service's waiting
//! count from the controller's state, less one. The controller's own page counts exactly;
//! this one can be off by the tickets transferred into the service or withdrawn. The
//! estimated wait is the controller's estimate for its service (from its state) shared
//! out over the people waiting.
//!
//! The same guard as the controller's (`hallq::phone::PhoneGuard`) stands in front:
//! per-address request and probe budgets, so a token cannot be guessed by asking fast.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio_postgres::Client;
use tokio_postgres::types::Json;

use crate::db::DbError;
use crate::http::Web;
use crate::rollup::DayClock;

/// How often an open page's stream looks at the database again.
const LOOK_EVERY: Duration = Duration::from_secs(2);

/// The event types that move a ticket or the queue in front of it.
const FOLLOWED: &[&str] = &[
    "ticket_issued",
    "ticket_called",
    "ticket_recalled",
    "serving_started",
    "ticket_no_show",
    "ticket_transferred",
    "ticket_finished",
    "ticket_cancelled",
    "notice_requested",
    "near_turn",
];

/// Whether `token` could be one a controller issued: hex, 16 to 128 digits. Anything
/// else is not looked up at all.
fn plausible(token: &str) -> bool {
    (16..=128).contains(&token.len()) && token.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A ticket's `ticket_issued` event: where to follow it from.
pub struct Issued {
    controller: String,
    hall: String,
    seq: i64,
    at: i64,
    event: Value,
}

/// A ticket of today was taken less than this long ago (a service day, and as much
/// again for a hall's clock off by hours): older `ticket_issued` events are not looked
/// at, so only the newest month's partitions of `events` are read.
const TODAY_AT_MOST_MS: i64 = 2 * 86_400_000;

/// Events after a ticket are looked for among its hall's from this long before it was
/// taken (a hall's clock stepped back a little after it); an event stamped earlier still
/// is not seen. Read by hall and time, only the ticket's month's partitions are read and
/// the wide rows need no index by controller and seq.
const CLOCK_SLACK_MS: i64 = 10 * 60_000;

/// The `ticket_issued` event of the last two days (at `now`) whose `token_hash` is the
/// token's, if any.
pub async fn find(db: &Client, token: &str, now: i64) -> Result<Option<Issued>, DbError> {
    if !plausible(token) {
        return Ok(None);
    }
    let hash = hex::encode(Sha256::digest(token.to_ascii_lowercase().as_bytes()));
    let Some(row) = db
        .query_opt(
            "SELECT controller_id, hall_id, seq, at, payload FROM events
             WHERE type = 'ticket_issued' AND payload->'ticket'->>'token_hash' = $1
               AND at >= $2
             ORDER BY at DESC LIMIT 1",
            &[&hash, &(now - TODAY_AT_MOST_MS)],
        )
        .await?
    else {
        return Ok(None);
    };
    Ok(Some(Issued {
        controller: row.get(0),
        hall: row.get(1),
        seq: row.get(2),
        at: row.get(3),
        event: row.get::<_, Json<Value>>(4).0,
    }))
}

/// The status of the ticket `issued` at `now` (the shape of the controller's
/// `/t/{token}/status`) from the events after it, or `None` once its service day is over.
pub async fn follow(
    db: &Client,
    clock: &DayClock,
    issued: &Issued,
    now: i64,
) -> Result<Option<Value>, DbError> {
    let Issued {
        controller,
        hall,
        seq,
        at,
        event,
    } = issued;
    let ticket = &event["ticket"];
    let today = clock.day(now).map(|d| d.format("%Y-%m-%d").to_string());
    if ticket["day"].as_str().is_none() || ticket["day"].as_str() != today.as_deref() {
        return Ok(None);
    }
    let state: Option<Json<Value>> = db
        .query_opt(
            "SELECT state FROM controllers WHERE controller_id = $1",
            &[&controller],
        )
        .await?
        .and_then(|r| r.get(0));
    let state = state.map(|j| j.0).unwrap_or(Value::Null);
    let types: Vec<&str> = FOLLOWED.to_vec();
    let later: Vec<(String, Value)> = db
        .query(
            "SELECT type, payload FROM events
             WHERE hall_id = $1 AND at >= $2 AND controller_id = $3 AND seq > $4
               AND type = ANY($5)
             ORDER BY seq",
            &[hall, &(at - CLOCK_SLACK_MS), controller, seq, &types],
        )
        .await?
        .iter()
        .map(|r| (r.get::<_, String>(0), r.get::<_, Json<Value>>(1).0))
        .collect();
    let mut t = Followed::new(event);
    for (kind, payload) in &later {
        t.apply(kind, payload, &state);
    }
    Ok(Some(t.status(&state, clock)))
}

/// A ticket as its events tell it.
#[derive(Debug, Clone)]
struct Followed {
    id: i64,
    number: String,
    service: String,
    origin_service: String,
    green: bool,
    state: &'static str,
    ahead: i64,
    window: Option<i64>,
    reserved_window: Option<i64>,
    recalls: i64,
    requeued: bool,
    issued_at: i64,
    notice: Option<Value>,
}

impl Followed {
    fn new(issued: &Value) -> Followed {
        let t = &issued["ticket"];
        let text = |k: &str| t[k].as_str().unwrap_or_default().to_string();
        Followed {
            id: t["id"].as_i64().unwrap_or(-1),
            number: text("number"),
            service: text("service"),
            origin_service: t["origin_service"]
                .as_str()
                .map_or_else(|| text("service"), str::to_string),
            green: t["class"] == "green",
            state: if t["state"] == "transferred" {
                "transferred"
            } else {
                "waiting"
            },
            ahead: issued["ahead"].as_i64().unwrap_or(0),
            window: None,
            reserved_window: t["reserved_window"].as_i64(),
            recalls: 0,
            requeued: false,
            issued_at: t["issued_at"].as_i64().unwrap_or(0),
            notice: None,
        }
    }

    fn queued(&self) -> bool {
        self.state == "waiting" || self.state == "transferred"
    }

    /// The service's waiting count from the controller's state, less this ticket.
    fn waiting_in(state: &Value, service: &str) -> i64 {
        service_of(state, service)
            .and_then(|s| s["waiting"].as_i64())
            .map_or(0, |w| (w - 1).max(0))
    }

    fn apply(&mut self, kind: &str, p: &Value, state: &Value) {
        let mine = p["ticket"].as_i64() == Some(self.id);
        if !mine {
            if !self.queued() {
                return;
            }
            match kind {
                "ticket_called" if p["service"] == self.service.as_str() => self.ahead -= 1,
                "ticket_issued"
                    if !self.green
                        && p["ticket"]["class"] == "green"
                        && p["ticket"]["service"] == self.service.as_str() =>
                {
                    self.ahead += 1;
                }
                _ => {}
            }
            self.ahead = self.ahead.max(0);
            return;
        }
        match kind {
            "ticket_called" => {
                self.state = "called";
                self.window = p["window"].as_i64();
                self.recalls = 0;
            }
            "ticket_recalled" => {
                self.recalls = p["count"].as_i64().unwrap_or(self.recalls + 1);
            }
            "serving_started" => {
                self.state = "serving";
                self.window = p["window"].as_i64().or(self.window);
            }
            "ticket_no_show" => {
                if p["requeued"].as_bool() == Some(true) {
                    self.state = "waiting";
                    self.requeued = true;
                    self.window = None;
                    self.ahead = Self::waiting_in(state, &self.service);
                } else {
                    self.state = "no_show";
                }
            }
            "ticket_transferred" => {
                if let Some(to) = p["to"]["service"].as_str() {
                    self.service = to.to_string();
                    self.reserved_window = None;
                } else if let Some(w) = p["to"]["window"].as_i64() {
                    self.reserved_window = Some(w);
                }
                self.state = "transferred";
                self.window = None;
                self.ahead = Self::waiting_in(state, &self.service);
            }
            "ticket_finished" => self.state = "finished",
            "ticket_cancelled" => self.state = "cancelled",
            "notice_requested" => {
                self.notice = Some(json!({
                    "mobile": p["mobile"].as_str().unwrap_or("****"),
                    "sent": false,
                }));
            }
            "near_turn" => {
                if let Some(n) = self.notice.as_mut() {
                    n["sent"] = json!(true);
                }
                if let Some(a) = p["ahead"].as_i64() {
                    self.ahead = a;
                }
            }
            _ => {}
        }
    }

    fn status(&self, state: &Value, clock: &DayClock) -> Value {
        let queued = self.queued();
        let names = |code: &str| {
            service_of(state, code)
                .map(|s| s["name"].clone())
                .filter(|n| n.is_object())
                .unwrap_or_else(|| json!({ "zh-CN": code, "zh-TW": code, "en": code }))
        };
        let wait = queued.then(|| {
            let s = service_of(state, &self.service);
            let minutes = s
                .and_then(|s| s["estimated_wait_minutes"].as_i64())
                .unwrap_or(0);
            let waiting = s.and_then(|s| s["waiting"].as_i64()).unwrap_or(0);
            if waiting > 0 {
                (minutes * self.ahead + waiting / 2) / waiting
            } else {
                0
            }
        });
        let moved = self.service != self.origin_service;
        let window = match self.state {
            "called" | "serving" | "finished" | "no_show" => self.window,
            _ => None,
        };
        json!({
            "number": self.number,
            "service": self.service,
            "service_name": names(&self.service),
            "state": self.state,
            "ahead": queued.then_some(self.ahead),
            "estimated_wait_minutes": wait,
            "window": window,
            "reserved_window": if queued { self.reserved_window } else { None },
            "recalls": self.recalls,
            "requeued": queued && self.requeued,
            "transferred_from": moved.then(|| names(&self.origin_service)),
            "issued_at_local": clock.local_hm(self.issued_at),
            "notice": self.notice,
        })
    }
}

/// A service of the controller's state document (`queue.services`).
fn service_of<'a>(state: &'a Value, code: &str) -> Option<&'a Value> {
    state
        .pointer("/queue/services")?
        .as_array()?
        .iter()
        .find(|s| s["code"] == code)
}

/// `/t/{token}`, its status and its stream, and the page's files under `/web/`.
pub fn routes() -> Router<Arc<Web>> {
    Router::new()
        .route("/t/{token}", get(page))
        .route("/t/{token}/status", get(status_json))
        .route("/t/{token}/stream", get(stream))
}

/// A page whose address holds a secret: never stored by a cache, never sent on.
fn private(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    resp
}

/// The guard's answer for an address that asked too fast or guessed too often.
fn admit(web: &Web, from: SocketAddr) -> Result<(), Duration> {
    web.phone.admit(Some(from.ip()), Instant::now())
}

/// Looks the token up: the ticket and its status now; an unknown or expired one is
/// counted against the address.
async fn look(
    web: &Web,
    from: SocketAddr,
    token: &str,
) -> Result<Option<(Issued, Value)>, Response> {
    let db = web.db().await?;
    let found = async {
        let Some(issued) = find(&db, token, crate::now_ms()).await? else {
            return Ok(None);
        };
        let status = follow(&db, &web.clock, &issued, crate::now_ms()).await?;
        Ok::<_, DbError>(status.map(|s| (issued, s)))
    }
    .await
    .map_err(crate::http::unavailable)?;
    if found.is_none() {
        web.phone.unknown(Some(from.ip()), Instant::now());
        let shown: String = token.chars().take(4).collect();
        tracing::info!(client = %from.ip(), token = %format!("{shown}…"), "ticket page: unknown or expired token");
    }
    Ok(found)
}

/// The 404 of `/status` and `/stream` for an unknown or expired token.
fn unknown_ticket() -> Response {
    (
        StatusCode::NOT_FOUND,
        axum::Json(json!({"error": "unknown_ticket",
            "message": "no ticket of today has this token"})),
    )
        .into_response()
}

fn too_many(wait: Duration) -> Response {
    let secs = wait.as_secs().max(1);
    (
        StatusCode::TOO_MANY_REQUESTS,
        [(header::RETRY_AFTER, secs.to_string())],
        axum::Json(json!({"error": "too_many_requests",
            "message": format!("too many requests from this address; try again in {secs} s")})),
    )
        .into_response()
}

async fn page(
    State(web): State<Arc<Web>>,
    ConnectInfo(from): ConnectInfo<SocketAddr>,
    Path(token): Path<String>,
) -> Response {
    if admit(&web, from).is_err() {
        return private(crate::pages::page_with_status(
            "phone-busy.html",
            StatusCode::TOO_MANY_REQUESTS,
        ));
    }
    let resp = match look(&web, from, &token).await {
        Ok(Some(_)) => {
            web.phone.served();
            crate::pages::page("phone.html")
        }
        Ok(None) => crate::pages::page_with_status("phone-gone.html", StatusCode::NOT_FOUND),
        Err(r) => r,
    };
    private(resp)
}

async fn status_json(
    State(web): State<Arc<Web>>,
    ConnectInfo(from): ConnectInfo<SocketAddr>,
    Path(token): Path<String>,
) -> Response {
    if let Err(wait) = admit(&web, from) {
        return private(too_many(wait));
    }
    match look(&web, from, &token).await {
        Ok(Some((_, s))) => private(axum::Json(json!({ "status": s })).into_response()),
        Ok(None) => private(unknown_ticket()),
        Err(r) => r,
    }
}

async fn stream(
    State(web): State<Arc<Web>>,
    ConnectInfo(from): ConnectInfo<SocketAddr>,
    Path(token): Path<String>,
) -> Response {
    if let Err(wait) = admit(&web, from) {
        return private(too_many(wait));
    }
    let (issued, first) = match look(&web, from, &token).await {
        Ok(Some(found)) => found,
        Ok(None) => return private(unknown_ticket()),
        Err(r) => return r,
    };
    web.phone.served();
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<SseEvent, Infallible>>(8);
    tokio::spawn(async move {
        let event = |s: &Value| {
            SseEvent::default()
                .event("status")
                .data(json!({ "type": "status", "status": s }).to_string())
        };
        let mut last = first;
        if tx.send(Ok(event(&last))).await.is_err() {
            return;
        }
        loop {
            tokio::select! {
                _ = tokio::time::sleep(LOOK_EVERY) => {}
                _ = tx.closed() => return,
            }
            let Ok(db) = web.db().await else { continue };
            // The ticket is known now: only the events after it are read again.
            match follow(&db, &web.clock, &issued, crate::now_ms()).await {
                Ok(Some(now)) if now != last => {
                    if tx.send(Ok(event(&now))).await.is_err() {
                        return;
                    }
                    last = now;
                }
                Ok(Some(_)) | Err(_) => {}
                Ok(None) => {
                    let gone = SseEvent::default()
                        .event("expired")
                        .data(json!({ "type": "expired" }).to_string());
                    let _ = tx.send(Ok(gone)).await;
                    return;
                }
            }
        }
    });
    let sse = Sse::new(tokio_stream::wrappers::ReceiverStream::new(rx))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)));
    private(sse.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issued(id: i64, service: &str, class: &str, ahead: i64) -> Value {
        json!({"ticket": {"id": id, "number": format!("A{id:03}"), "service": service,
            "origin_service": service, "class": class, "state": "waiting", "day": "2026-12-07",
            "issued_at": 1_765_000_000_000_i64, "token_hash": "x"}, "ahead": ahead})
    }

    fn state() -> Value {
        json!({"queue": {"services": [
            {"code": "SB", "name": {"zh-CN": "社会保障", "zh-TW": "社會保障", "en": "Social insurance"},
             "waiting": 4, "estimated_wait_minutes": 20},
            {"code": "MZ", "name": {"zh-CN": "民政事务"}, "waiting": 2, "estimated_wait_minutes": 6}]}})
    }

    #[test]
    fn a_ticket_is_followed_through_its_events() {
        let st = state();
        let mut t = Followed::new(&issued(7, "SB", "normal", 3));
        // Another SB called: one fewer ahead; an MZ call changes nothing; a green SB
        // ticket goes first.
        t.apply("ticket_called", &json!({"ticket": 5, "service": "SB"}), &st);
        t.apply("ticket_called", &json!({"ticket": 6, "service": "MZ"}), &st);
        t.apply("ticket_issued", &issued(9, "SB", "green", 0), &st);
        let s = t.status(&st, &DayClock::default());
        assert_eq!(
            (s["state"].clone(), s["ahead"].clone()),
            (json!("waiting"), json!(3))
        );
        assert_eq!(
            s["estimated_wait_minutes"], 15,
            "20 min for 4 waiting, 3 ahead"
        );
        assert_eq!(s["service_name"]["en"], "Social insurance");
        t.apply(
            "notice_requested",
            &json!({"ticket": 7, "mobile": "138****1234"}),
            &st,
        );
        t.apply("near_turn", &json!({"ticket": 7, "ahead": 1}), &st);
        let s = t.status(&st, &DayClock::default());
        assert_eq!(s["notice"], json!({"mobile": "138****1234", "sent": true}));
        assert_eq!(s["ahead"], 1);
        t.apply(
            "ticket_called",
            &json!({"ticket": 7, "service": "SB", "window": 3}),
            &st,
        );
        t.apply(
            "ticket_recalled",
            &json!({"ticket": 7, "window": 3, "count": 1}),
            &st,
        );
        let s = t.status(&st, &DayClock::default());
        assert_eq!(
            (
                s["state"].clone(),
                s["window"].clone(),
                s["recalls"].clone(),
                s["ahead"].clone()
            ),
            (json!("called"), json!(3), json!(1), Value::Null)
        );
        // Transferred to MZ: waiting there, behind the others waiting.
        t.apply(
            "ticket_transferred",
            &json!({"ticket": 7, "to": {"service": "MZ"}, "from_service": "SB"}),
            &st,
        );
        let s = t.status(&st, &DayClock::default());
        assert_eq!(
            (s["state"].clone(), s["ahead"].clone()),
            (json!("transferred"), json!(1))
        );
        assert_eq!(s["transferred_from"]["zh-CN"], "社会保障");
        t.apply("ticket_finished", &json!({"ticket": 7}), &st);
        assert_eq!(t.status(&st, &DayClock::default())["state"], "finished");
    }

    #[test]
    fn only_hex_tokens_of_a_sane_length_are_looked_up() {
        assert!(plausible(&"ab12".repeat(8)));
        for t in ["", "abc", "zz".repeat(16).as_str(), &"a".repeat(129)] {
            assert!(!plausible(t), "{t}");
        }
    }
}
