//! `POST /api/v1/tickets/{id}/notice`: the citizen asks for a text message when the
//! turn is near (the kiosk's "notify me" step). Only the ticket's own citizen, who holds
//! its token (`X-Ticket-Token`), may ask; the number is validated as a mainland mobile
//! number and never logged whole (see `store::notices` for where it lives).

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use hallq_engine::{Lang, TicketId};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, AppState, JsonBody, Language, Path};
use crate::mobile::{MobileError, MobileNumber};
use crate::near_turn::{NoticeAsk, NoticeError};

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/api/v1/tickets/{id}/notice", post(request))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoticeBody {
    mobile: String,
}

/// Why a typed number is refused, in the citizen's language.
fn mobile_message(e: &MobileError, lang: Lang) -> String {
    match (e, lang) {
        (MobileError::Empty, Lang::ZhCn) => "请输入手机号码".into(),
        (MobileError::Empty, Lang::ZhTw) => "請輸入手機號碼".into(),
        (MobileError::Length(n), Lang::ZhCn) => format!("手机号码是11位数字，您输入了{n}位"),
        (MobileError::Length(n), Lang::ZhTw) => format!("手機號碼是11位數字，您輸入了{n}位"),
        (MobileError::NotDigits, Lang::ZhCn) => "手机号码只能是数字".into(),
        (MobileError::NotDigits, Lang::ZhTw) => "手機號碼只能是數字".into(),
        (MobileError::NotMobile, Lang::ZhCn) => "这不是大陆手机号码（以13至19开头）".into(),
        (MobileError::NotMobile, Lang::ZhTw) => "這不是大陸手機號碼（以13至19開頭）".into(),
        (e, Lang::En) => e.to_string(),
    }
}

fn refused(e: NoticeError, lang: Lang) -> ApiError {
    let said = |cn: &str, tw: &str| match lang {
        Lang::ZhCn => cn.to_string(),
        Lang::ZhTw => tw.to_string(),
        Lang::En => e.to_string(),
    };
    let (status, code, message) = match &e {
        NoticeError::Off => (
            StatusCode::CONFLICT,
            "notify_off",
            said("本厅未开通到号短信提醒", "本廳未開通到號簡訊提醒"),
        ),
        NoticeError::UnknownTicket => (
            StatusCode::NOT_FOUND,
            "unknown_ticket",
            said("今天没有这个号", "今天沒有這個號"),
        ),
        NoticeError::NotWaiting => (
            StatusCode::CONFLICT,
            "ticket_not_waiting",
            said(
                "此号已叫过或已结束，无需提醒",
                "此號已叫過或已結束，無需提醒",
            ),
        ),
        NoticeError::AlreadySent => (
            StatusCode::CONFLICT,
            "notice_already_sent",
            said("到号提醒已经发出", "到號提醒已經發出"),
        ),
        NoticeError::Store(detail) => {
            return ApiError::from_core(crate::core::CoreError::Store(detail.clone()), lang);
        }
    };
    ApiError::new(status, code, message)
}

async fn request(
    State(s): State<AppState>,
    Language(lang): Language,
    Path(id): Path<String>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<NoticeBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let ticket: TicketId = super::queue::parse_id(&id)?;
    if s.hall.near_turn().is_none() {
        return Err(refused(NoticeError::Off, lang));
    }
    super::queue::citizen_holds(&s, ticket, &headers, lang).await?;
    let mobile = MobileNumber::parse(&body.mobile)
        .map_err(|e| ApiError::field("mobile", mobile_message(&e, lang)))?;
    let masked = mobile.masked();
    let (events, given) = s
        .hall
        .request_notice(NoticeAsk { ticket, mobile })
        .await
        .map_err(|e| ApiError::from_core(e, lang))?
        .map_err(|e| refused(e, lang))?;
    tracing::info!(ticket = ticket.0, mobile = %masked, sent = given.sent, "near-turn notice requested");
    Ok((
        StatusCode::CREATED,
        Json(json!({ "notice": given, "events": events })),
    ))
}
