//! The ticket's status page for the citizen's phone: `GET /t/{token}` (the page),
//! `/t/{token}/status` (its JSON) and `/t/{token}/stream` (Server-Sent Events). The
//! token is the ticket's secret, the one its QR code carries; the ticket is found by
//! the token's SHA-256, which is all the controller keeps. A token of another day is
//! expired: the page is gone at the day's end with the number.
//!
//! The stream carries this ticket's status and nothing else about the hall: no other
//! citizen's number, no staff name. Each event is the whole status, so a phone that
//! reconnects (after a controller restart, say) is up to date with the first event.
//!
//! Every request passes [`crate::phone::PhoneGuard`]: too fast from one address, or
//! too many unknown tokens, is a 429 with `Retry-After`; an unknown token is logged
//! (its first four characters only) and counted in `/metrics`.

use std::convert::Infallible;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hallq_engine::{Engine, Lang, TicketId, TicketState};
use serde_json::{Value, json};
use tokio::sync::broadcast::error::TryRecvError;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::signin::Source;
use super::{ApiError, AppState, Path};
use crate::connections::StreamSlot;
use crate::core::CoreError;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/t/{token}", get(page))
        .route("/t/{token}/status", get(status))
        .route("/t/{token}/stream", get(stream))
}

/// How often an open stream looks again without an event (the estimate moves with
/// the clock too).
const REFRESH: Duration = Duration::from_secs(30);

/// Whether `token` could be one the controller issued: hex, 16 to 128 digits. Anything
/// else is not looked up at all.
fn plausible(token: &str) -> bool {
    (16..=128).contains(&token.len()) && token.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The ticket whose token hashes to `hash` with its status, if it is a ticket of today.
fn find(
    e: &Engine,
    store: &crate::store::Store,
    hash: &str,
) -> Result<Option<(TicketId, Value)>, crate::store::StoreError> {
    Ok(store
        .ticket_by_token_hash(hash)?
        .and_then(|id| status_of(e, store, id).map(|v| (id, v))))
}

/// The status of ticket `id`, if it is a ticket of today. Only this ticket's own
/// fields: its number, its service, its place, its window, and its near-turn notice
/// (the number masked; whether it went).
fn status_of(e: &Engine, store: &crate::store::Store, id: TicketId) -> Option<Value> {
    let t = e.ticket(id)?;
    if t.day != e.day() {
        return None;
    }
    let names = |code: &str| {
        e.setup()
            .services
            .iter()
            .find(|s| s.code == code)
            .map(|s| {
                json!({ "zh-CN": s.name.zh_cn, "zh-TW": s.name.get(Lang::ZhTw), "en": s.name.get(Lang::En) })
            })
            .unwrap_or_else(|| json!({ "zh-CN": code, "zh-TW": code, "en": code }))
    };
    let queued = t.state.is_queued();
    let ahead = queued.then(|| e.ahead(id).unwrap_or(0));
    let wait = ahead.map(|a| e.estimate_wait_minutes(&t.service, a));
    let window = match t.state {
        TicketState::Called | TicketState::Serving | TicketState::Finished => t.window,
        TicketState::NoShow => t.window,
        _ => None,
    };
    let moved = t.transfers > 0 && t.service != t.origin_service;
    let notice = crate::store::notices::state(store.conn(), id).unwrap_or_else(|err| {
        tracing::warn!(error = %err, "ticket page: the notice cannot be read");
        None
    });
    Some(json!({
        "number": t.number,
        "service": t.service,
        "service_name": names(&t.service),
        "state": t.state,
        "ahead": ahead,
        "estimated_wait_minutes": wait,
        "window": window,
        "reserved_window": if queued { t.reserved_window } else { None },
        "recalls": t.recalls,
        "requeued": queued && t.no_shows > 0,
        "transferred_from": moved.then(|| names(&t.origin_service)),
        "issued_at_local": e.clock().local(t.issued_at).format("%H:%M").to_string(),
        "notice": notice,
    }))
}

/// Looks the token up: `Ok(None)` for an unknown or expired one (logged and counted).
async fn lookup(
    s: &AppState,
    source: &Source,
    token: &str,
) -> Result<Option<(TicketId, Value)>, ApiError> {
    let found = if plausible(token) {
        let hash = super::queue::token_hash(&token.to_ascii_lowercase());
        s.hall
            .query(move |e, store| find(e, store, &hash))
            .await
            .map_err(|e| ApiError::from_core(e, Lang::ZhCn))?
            .map_err(|e| ApiError::from_core(CoreError::Store(e.to_string()), Lang::ZhCn))?
    } else {
        None
    };
    if found.is_none() {
        s.phone.unknown(source.0, Instant::now());
        let shown: String = token.chars().take(4).collect();
        tracing::info!(client = %source.label(), token = %format!("{shown}…"), "ticket page: unknown or expired token");
    }
    Ok(found)
}

/// 429 with `Retry-After` when the address has asked too fast or guessed too often.
fn admit(s: &AppState, source: &Source) -> Result<(), ApiError> {
    s.phone.admit(source.0, Instant::now()).map_err(|wait| {
        let secs = wait.as_secs().max(1);
        ApiError {
            retry_after: Some(secs),
            ..ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_requests",
                format!("too many requests from this address; try again in {secs} s"),
            )
        }
    })
}

fn unknown_ticket() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "unknown_ticket",
        "no ticket of today has this token",
    )
}

/// The page itself, for a token of today's ticket; the friendly "gone" page in three
/// languages for any other.
async fn page(State(s): State<AppState>, source: Source, Path(token): Path<String>) -> Response {
    if let Err(e) = admit(&s, &source) {
        let wait = e.retry_after.unwrap_or(1);
        return private(
            (
                StatusCode::TOO_MANY_REQUESTS,
                [(header::RETRY_AFTER, wait.to_string())],
                super::pages::page("phone-busy.html"),
            )
                .into_response(),
        );
    }
    let resp = match lookup(&s, &source, &token).await {
        Ok(Some(_)) => {
            s.phone.served();
            super::pages::page("phone.html")
        }
        Ok(None) => (StatusCode::NOT_FOUND, super::pages::page("phone-gone.html")).into_response(),
        Err(e) => e.into_response(),
    };
    private(resp)
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

async fn status(
    State(s): State<AppState>,
    source: Source,
    Path(token): Path<String>,
) -> Result<Response, ApiError> {
    admit(&s, &source)?;
    let (_, found) = lookup(&s, &source, &token)
        .await?
        .ok_or_else(unknown_ticket)?;
    Ok(private(
        axum::Json(json!({ "status": found })).into_response(),
    ))
}

fn status_event(status: &Value) -> SseEvent {
    SseEvent::default()
        .event("status")
        .data(json!({ "type": "status", "status": status }).to_string())
}

async fn stream(
    State(s): State<AppState>,
    source: Source,
    Path(token): Path<String>,
    slot: StreamSlot,
) -> Result<Response, ApiError> {
    admit(&s, &source)?;
    // Subscribed before the first look, so nothing committed in between is missed.
    let mut live = s.hall.subscribe();
    let (id, first) = lookup(&s, &source, &token)
        .await?
        .ok_or_else(unknown_ticket)?;
    s.phone.served();
    let (tx, rx) = mpsc::channel::<Result<SseEvent, Infallible>>(16);
    let closing = s.closing.clone();
    tokio::spawn(async move {
        let _slot = slot;
        let last_word = tx.clone();
        let follow = async move {
            let mut last = first;
            if tx.send(Ok(status_event(&last))).await.is_err() {
                return;
            }
            let mut tick = tokio::time::interval(REFRESH);
            tick.tick().await;
            loop {
                tokio::select! {
                    got = live.recv() => {
                        if matches!(got, Err(tokio::sync::broadcast::error::RecvError::Closed)) {
                            return;
                        }
                        // Many events at once (a busy minute) make one look, not many.
                        while let Ok(_) | Err(TryRecvError::Lagged(_)) = live.try_recv() {}
                    }
                    _ = tick.tick() => {}
                }
                // The ticket's id is known now: no database read per look.
                let Ok(now) = s.hall.query(move |e, store| status_of(e, store, id)).await else {
                    return;
                };
                match now {
                    None => {
                        let gone = SseEvent::default()
                            .event("expired")
                            .data(json!({ "type": "expired" }).to_string());
                        let _ = tx.send(Ok(gone)).await;
                        return;
                    }
                    Some(now) if now != last => {
                        if tx.send(Ok(status_event(&now))).await.is_err() {
                            return;
                        }
                        last = now;
                    }
                    Some(_) => {}
                }
            }
        };
        tokio::select! {
            _ = follow => {}
            _ = last_word.closed() => {}
            _ = closing.wait() => {
                let _ = last_word.try_send(Ok(super::stream::reconnect()));
            }
        }
    });
    let sse = Sse::new(ReceiverStream::new(rx))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)));
    Ok(private(sse.into_response()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_hex_tokens_of_a_sane_length_are_looked_up() {
        assert!(plausible(&"a".repeat(32)));
        assert!(plausible(&"0F".repeat(32)));
        assert!(!plausible("short"));
        assert!(!plausible(&"a".repeat(129)));
        assert!(!plausible("../../etc/passwd/aaaaaaaaaaaa"));
    }
}
