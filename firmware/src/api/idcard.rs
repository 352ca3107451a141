//! The ID card at the kiosk (刷身份证取号): what the kiosk may show of the card on its
//! reader (masked, never the name or the number), the holder's live tickets and
//! today's appointment; and the rules a ticket taken with a card (or a typed number)
//! follows: one live ticket per person per service, the green channel from an age.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use chrono::Datelike;
use hallq_engine::{Appointment, Engine, Lang};
use hallq_hardware::idcard::number::Date;
use serde_json::{Value, json};

use super::{ApiError, AppState, Kiosk, Language, local_time};
use crate::core::{Declined, Guard, wall_now};
use crate::devices::id_reader::HeldCard;
use crate::store::Store;

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/api/v1/kiosk/card", get(card))
}

/// Today in the hall's time zone.
pub(super) fn today(s: &AppState) -> Date {
    let d = hallq_engine::LocalClock::new(s.with_setup(|x| x.utc_offset_minutes))
        .local(wall_now())
        .date();
    Date {
        year: u16::try_from(d.year()).unwrap_or(0),
        month: d.month() as u8,
        day: d.day() as u8,
    }
}

/// The card on this kiosk's reader, or 409 `no_id_card` in the citizen's language.
pub(super) fn held_card(s: &AppState, kiosk: &str, lang: Lang) -> Result<HeldCard, ApiError> {
    s.id_cards.current(kiosk).ok_or_else(|| {
        let message = match (s.id_cards.reader_of(kiosk).is_some(), lang) {
            (true, Lang::ZhCn) => "请将身份证放在读卡区，读取后再取号。",
            (true, Lang::ZhTw) => "請將身份證放在讀卡區，讀取後再取號。",
            (true, Lang::En) => "Please place your ID card on the reader first.",
            (false, Lang::ZhCn) => "本机没有身份证阅读器，请选择事项直接取号。",
            (false, Lang::ZhTw) => "本機沒有身份證閱讀器，請選擇事項直接取號。",
            (false, Lang::En) => {
                "This kiosk has no ID card reader; please take a ticket without the card."
            }
        };
        ApiError::new(StatusCode::CONFLICT, "no_id_card", message)
    })
}

/// The holder's appointment for today that can still be checked in, earliest first.
pub(super) fn appointment_today(e: &Engine, store: &Store, citizen: &str) -> Option<Appointment> {
    let clock = e.clock();
    let today = clock.local(wall_now()).date();
    let mut stmt = store
        .conn()
        .prepare_cached(
            "SELECT code FROM appointments WHERE citizen = ?1 AND ticket IS NULL AND missed = 0 ORDER BY slot_at",
        )
        .ok()?;
    let codes: Vec<String> = stmt
        .query_map([citizen], |r| r.get(0))
        .ok()?
        .filter_map(Result::ok)
        .collect();
    codes
        .iter()
        .filter_map(|c| e.appointment(c))
        .find(|a| a.ticket.is_none() && !a.missed && clock.local(a.slot_at).date() == today)
        .cloned()
}

/// Refuses a second live ticket (waiting, called, being served, transferred) for the
/// same service by the same person. A retry of the request that made the first (same
/// idempotency key) is let through: the engine answers it with that ticket.
pub(super) fn one_live_ticket(citizen: String, service: String, key: Option<String>) -> Guard {
    Box::new(move |e: &Engine| {
        if key.as_deref().is_some_and(|k| e.ticket_by_key(k).is_some()) {
            return None;
        }
        let held = e.tickets().find(|t| {
            t.day == e.day()
                && t.service == service
                && !t.state.is_terminal()
                && t.citizen.as_deref() == Some(citizen.as_str())
        })?;
        let n = &held.number;
        Some(Declined {
            code: "already_holds_ticket",
            messages: [
                format!("您已持有该事项的号码 {n}，请留意叫号。同一事项每人只能取一个号。"),
                format!("您已持有該事項的號碼 {n}，請留意叫號。同一事項每人只能取一個號。"),
                format!(
                    "You already hold ticket {n} for this service; please wait to be called. One ticket per person per service."
                ),
            ],
        })
    })
}

/// 409 `no_appointment_today`: the card's holder has no appointment to check in today.
pub(super) fn no_appointment(lang: Lang) -> ApiError {
    let message = match lang {
        Lang::ZhCn => "未找到您今天的预约，请选择事项取号。",
        Lang::ZhTw => "未找到您今天的預約，請選擇事項取號。",
        Lang::En => "You have no appointment today; please choose a service to take a ticket.",
    };
    ApiError::new(StatusCode::CONFLICT, "no_appointment_today", message)
}

fn appointment_json(s: &AppState, a: &Appointment) -> Value {
    let name = s.with_setup(|setup| {
        setup
            .services
            .iter()
            .find(|d| d.code == a.service)
            .map(|d| {
                json!({ "zh-CN": d.name.zh_cn, "zh-TW": d.name.get(Lang::ZhTw), "en": d.name.get(Lang::En) })
            })
    });
    json!({
        "code": a.code, "service": a.service, "service_name": name,
        "slot_at": a.slot_at.0, "slot_at_local": local_time(s, a.slot_at),
    })
}

/// `GET /api/v1/kiosk/card`: the card on the reader of the kiosk asking (`X-Kiosk-Id`).
async fn card(
    State(s): State<AppState>,
    kiosk: Kiosk,
    Language(lang): Language,
) -> Result<Json<Value>, ApiError> {
    let reader = s.id_cards.reader_of(&kiosk.channel).is_some();
    let Some(held) = s.id_cards.current(&kiosk.channel) else {
        return Ok(Json(json!({
            "reader": reader, "present": false, "name": null, "id": null, "age": null,
            "green": false, "appointment": null, "tickets": [],
        })));
    };
    let age = held.birth.age_on(today(&s));
    let green = s.config.id_card.green(age);
    let find = s.config.id_card.find_appointment;
    let citizen = held.citizen.clone();
    let (appointment, tickets) = s
        .hall
        .query(move |e, store| {
            let a = if find {
                appointment_today(e, store, &citizen)
            } else {
                None
            };
            let live: Vec<Value> = e
                .tickets()
                .filter(|t| {
                    t.day == e.day()
                        && !t.state.is_terminal()
                        && t.citizen.as_deref() == Some(citizen.as_str())
                })
                .map(|t| json!({ "id": t.id, "number": t.number, "service": t.service, "state": t.state }))
                .collect();
            (a, live)
        })
        .await
        .map_err(|e| ApiError::from_core(e, lang))?;
    Ok(Json(json!({
        "reader": true,
        "present": true,
        "name": held.name,
        "id": held.id,
        "age": age,
        "green": green,
        "appointment": appointment.map(|a| appointment_json(&s, &a)),
        "tickets": tickets,
    })))
}
