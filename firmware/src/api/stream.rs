//! The live event stream (Server-Sent Events) for boards, callers and the kiosk. A
//! client that reconnects with `Last-Event-ID` (or `?after=SEQ`) first gets what it
//! missed from the events table, then live events, with no gap and no repeat; one that
//! missed more than `[server.limits] stream_replay` events gets the current picture
//! instead (`resync`). Streams are capped in all and per client (`503 too_many_streams`).
//!
//! When the daemon stops, every stream gets one last event, `reconnect` (no id, so the
//! client's `Last-Event-ID` stays on the last real event), and then ends: an
//! `EventSource` reconnects on its own after the `retry` delay, and resumes where it
//! stopped once the controller is back.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use super::Query;
use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::routing::get;
use serde::Deserialize;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{mpsc, watch};
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;

use super::{ApiError, AppState, Kiosk};
use crate::connections::StreamSlot;
use crate::store::StoredEvent;

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/api/v1/stream", get(stream))
}

/// How long a client waits before reconnecting after the daemon said it is stopping.
pub const RECONNECT_AFTER: Duration = Duration::from_secs(1);

/// The daemon is stopping: set once, seen by every open stream.
#[derive(Clone, Debug)]
pub struct Closing(Arc<watch::Sender<bool>>);

impl Default for Closing {
    fn default() -> Self {
        Closing(Arc::new(watch::channel(false).0))
    }
}

impl Closing {
    /// Tells every stream, open now or opened later, to end.
    pub fn close(&self) {
        self.0.send_replace(true);
    }

    /// Resolves once [`Closing::close`] has been called.
    pub async fn wait(&self) {
        let mut rx = self.0.subscribe();
        let _ = rx.wait_for(|closing| *closing).await;
    }
}

/// The last event of a stream when the daemon stops.
pub(super) fn reconnect() -> SseEvent {
    SseEvent::default()
        .event("reconnect")
        .retry(RECONNECT_AFTER)
        .data(
            serde_json::json!({
                "type": "reconnect",
                "reason": "shutdown",
                "retry_ms": RECONNECT_AFTER.as_millis() as u64,
            })
            .to_string(),
        )
}

#[derive(Deserialize)]
struct StreamQuery {
    after: Option<i64>,
}

fn sse(e: &StoredEvent) -> SseEvent {
    SseEvent::default()
        .id(e.seq.to_string())
        .event(e.kind.clone())
        .data(serde_json::to_string(e).unwrap_or_default())
}

/// A stream that resumes further back than this many events is not replayed: it gets
/// the current picture instead (`resync`), see [`catch_up`].
fn replay_cap(s: &AppState) -> i64 {
    s.config.server.limits.stream_replay as i64
}

/// Sends every stored event after `last`, page by page, until the table has no more;
/// `false` when the client has gone or the store cannot be read. When more than
/// `[server.limits] stream_replay` events were missed, none is replayed: the client
/// gets one `resync` event with the current picture and the seq it follows on from,
/// so that a stream asked for `after=0` never reads the whole table through the core.
async fn catch_up(
    s: &AppState,
    tx: &mpsc::Sender<Result<SseEvent, Infallible>>,
    last: &mut i64,
) -> bool {
    const PAGE: usize = 500;
    let Ok(Ok(newest)) = s.hall.query(|_, store| store.last_seq()).await else {
        return false;
    };
    if newest - *last > replay_cap(s) {
        return resync(s, tx, last, newest).await;
    }
    loop {
        let after = *last;
        let Ok(Ok(page)) = s
            .hall
            .query(move |_, store| store.events_after(after, PAGE))
            .await
        else {
            return false;
        };
        let full = page.len() == PAGE;
        for e in page {
            *last = e.seq;
            if tx.send(Ok(sse(&e))).await.is_err() {
                return false;
            }
        }
        if !full {
            return true;
        }
    }
}

/// The `resync` event: the board's picture (what `GET /api/v1/board` answers) with the
/// seq it stands at, sent as the event's id so the stream follows on from there.
async fn resync(
    s: &AppState,
    tx: &mpsc::Sender<Result<SseEvent, Infallible>>,
    last: &mut i64,
    newest: i64,
) -> bool {
    let Ok(picture) = super::supervision::board_picture(s, hallq_engine::Lang::ZhCn).await else {
        return false;
    };
    let seq = picture["last_seq"].as_i64().unwrap_or(newest);
    let missed = seq - *last;
    tracing::debug!(after = *last, seq, "stream resumes too far back: resync");
    *last = seq;
    let body = serde_json::json!({
        "type": "resync", "seq": seq, "missed": missed, "board": picture,
    });
    let event = SseEvent::default()
        .id(seq.to_string())
        .event("resync")
        .data(body.to_string());
    tx.send(Ok(event)).await.is_ok()
}

async fn stream(
    State(s): State<AppState>,
    _k: Kiosk,
    slot: StreamSlot,
    headers: HeaderMap,
    Query(q): Query<StreamQuery>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i64>().ok())
        .or(q.after);
    let mut live = s.hall.subscribe();
    // The starting point is fixed before the response goes out, so a client that has
    // seen the headers misses nothing committed afterwards.
    let mut last = match resume {
        Some(seq) => seq,
        None => s
            .hall
            .query(|_, store| store.last_seq())
            .await
            .map_err(|e| ApiError::from_core(e, hallq_engine::Lang::ZhCn))?
            .map_err(|e| {
                ApiError::from_core(
                    crate::core::CoreError::Store(e.to_string()),
                    hallq_engine::Lang::ZhCn,
                )
            })?,
    };
    let (tx, rx) = mpsc::channel::<Result<SseEvent, Infallible>>(256);
    let closing = s.closing.clone();
    tokio::spawn(async move {
        // The stream's slot is given back when this task ends.
        let _slot = slot;
        let last_word = tx.clone();
        let follow = async move {
            // Subscribed before reading the backlog, so nothing falls between the two.
            if !catch_up(&s, &tx, &mut last).await {
                return;
            }
            loop {
                let sent = match live.recv().await {
                    Ok(e) if e.seq <= last => true,
                    Ok(e) => {
                        last = e.seq;
                        tx.send(Ok(sse(&e))).await.is_ok()
                    }
                    // Too slow for the live feed: catch up from the table instead.
                    Err(RecvError::Lagged(_)) => catch_up(&s, &tx, &mut last).await,
                    Err(RecvError::Closed) => false,
                };
                if !sent {
                    return;
                }
            }
        };
        tokio::select! {
            _ = follow => {}
            // The client has gone (its connection closed): free the slot now rather
            // than at the next event.
            _ = last_word.closed() => {}
            _ = closing.wait() => {
                // Not awaited: a client that does not read must not hold up the stop.
                let _ = last_word.try_send(Ok(reconnect()));
            }
        }
    });
    Ok(Sse::new(ReceiverStream::new(rx))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}
