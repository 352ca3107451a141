//! Why the engine said no, in words for the person in front of the screen.

use chrono::NaiveTime;

use crate::setup::Lang;
use crate::text::clip;

/// Why the hall is not issuing tickets now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Closed {
    /// A public holiday.
    Holiday,
    /// No hours on this weekday.
    ClosedToday,
    /// Before opening; opens at the time given.
    BeforeOpening(NaiveTime),
    /// Between two spans (lunch); reopens at the time given.
    Break(NaiveTime),
    /// After the last span (or within the stop-issuing margin).
    AfterClosing,
}

/// A command the engine will not carry out. Nothing changed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// No such service code.
    #[error("unknown service {}", clip(.0))]
    UnknownService(String),
    /// Outside office hours.
    #[error("the hall is not issuing tickets now ({0:?})")]
    Closed(Closed),
    /// The day's cap for the service is used up.
    #[error("today's tickets for {} are all taken", clip(.0))]
    DailyCapReached(String),
    /// This time slice's quota is used up; the next slice starts at the time given.
    #[error("the tickets for {} in this period are all taken", clip(.0))]
    QuotaReached(String, NaiveTime),
    /// The citizen already holds the most tickets allowed per day.
    #[error("citizen daily limit of {0} reached")]
    CitizenLimitReached(u32),
    /// The green channel was asked for a service nobody can serve that way.
    #[error("class {0:?} cannot be requested when issuing")]
    ClassNotIssuable(&'static str),
    /// No such window.
    #[error("unknown window {0}")]
    UnknownWindow(u32),
    /// Nobody (or somebody else) is signed in at the window.
    #[error("{staff} is not signed in at window {window}", staff = clip(.0), window = .1)]
    NotSignedIn(String, u32),
    /// The window is paused.
    #[error("window {0} is paused")]
    WindowPaused(u32),
    /// Resume on a window that is not paused.
    #[error("window {0} is not paused")]
    WindowNotPaused(u32),
    /// Nobody is waiting for the window's services.
    #[error("nobody is waiting for window {0}")]
    QueueEmpty(u32),
    /// The action needs a current ticket and there is none.
    #[error("window {0} has no current ticket")]
    NoCurrentTicket(u32),
    /// A called citizen must be served, marked absent or transferred before the next call.
    #[error("ticket {0} is still called; start, no-show or transfer it first")]
    CurrentTicketPending(String),
    /// Recalls used up.
    #[error("recall limit of {0} reached")]
    RecallLimit(u32),
    /// No such ticket today.
    #[error("unknown ticket {}", clip(.0))]
    UnknownTicket(String),
    /// The ticket is not in a state that allows this.
    #[error("ticket {0} is {1}")]
    WrongState(String, &'static str),
    /// The window does not serve the ticket's service.
    #[error("window {window} does not serve {service}", window = .0, service = clip(.1))]
    NotServedHere(u32, String),
    /// Transfer to where the ticket already is.
    #[error("the ticket is already there")]
    TransferToSelf,
    /// A second rating outside the replace window.
    #[error("ticket {0} was already rated")]
    AlreadyRated(String),
    /// Rating a ticket that is not (yet) finished.
    #[error("ticket {0} is {1}, not finished: only a finished service is rated")]
    NotFinished(String, &'static str),
    /// A rating pad rating a ticket its window did not finish.
    #[error("ticket {0} was not finished at window {1}")]
    NotFinishedHere(String, u32),
    /// Rating too late.
    #[error("the rating period for ticket {0} has ended")]
    RatingExpired(String),
    /// A reason not on the configured list.
    #[error("unknown reason {}", clip(.0))]
    UnknownReason(String),
    /// A good rating with reasons, or a comment too long.
    #[error("{0}")]
    BadRating(&'static str),
    /// No such appointment.
    #[error("unknown appointment code {}", clip(.0))]
    UnknownAppointment(String),
    /// An appointment code already in use.
    #[error("appointment code {} already exists", clip(.0))]
    DuplicateAppointment(String),
    /// Booking a slot that already started.
    #[error("the slot has already begun")]
    SlotInPast,
    /// Booking a slot more than a year and a day ahead.
    #[error("the slot is more than 366 days ahead")]
    SlotTooFar,
    /// Check-in opens at the given local time.
    #[error("check-in opens at {0}")]
    CheckInTooEarly(NaiveTime),
    /// The check-in window has passed.
    #[error("the check-in period has ended")]
    CheckInTooLate,
    /// Already checked in.
    #[error("appointment {} was already checked in", clip(.0))]
    AlreadyCheckedIn(String),
    /// A text field is empty or too long.
    #[error("{0} is empty or too long")]
    BadText(&'static str),
}

impl Refusal {
    /// A stable machine-readable code for APIs and logs.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::UnknownService(_) => "unknown_service",
            Refusal::Closed(_) => "closed",
            Refusal::DailyCapReached(_) => "daily_cap_reached",
            Refusal::QuotaReached(..) => "quota_reached",
            Refusal::CitizenLimitReached(_) => "citizen_limit_reached",
            Refusal::ClassNotIssuable(_) => "class_not_issuable",
            Refusal::UnknownWindow(_) => "unknown_window",
            Refusal::NotSignedIn(..) => "not_signed_in",
            Refusal::WindowPaused(_) => "window_paused",
            Refusal::WindowNotPaused(_) => "window_not_paused",
            Refusal::QueueEmpty(_) => "queue_empty",
            Refusal::NoCurrentTicket(_) => "no_current_ticket",
            Refusal::CurrentTicketPending(_) => "current_ticket_pending",
            Refusal::RecallLimit(_) => "recall_limit",
            Refusal::UnknownTicket(_) => "unknown_ticket",
            Refusal::WrongState(..) => "wrong_state",
            Refusal::NotServedHere(..) => "not_served_here",
            Refusal::TransferToSelf => "transfer_to_self",
            Refusal::AlreadyRated(_) => "already_rated",
            Refusal::RatingExpired(_) => "rating_expired",
            Refusal::NotFinished(..) => "not_finished",
            Refusal::NotFinishedHere(..) => "not_finished_here",
            Refusal::UnknownReason(_) => "unknown_reason",
            Refusal::BadRating(_) => "bad_rating",
            Refusal::UnknownAppointment(_) => "unknown_appointment",
            Refusal::DuplicateAppointment(_) => "duplicate_appointment",
            Refusal::SlotInPast => "slot_in_past",
            Refusal::SlotTooFar => "slot_too_far",
            Refusal::CheckInTooEarly(_) => "check_in_too_early",
            Refusal::CheckInTooLate => "check_in_too_late",
            Refusal::AlreadyCheckedIn(_) => "already_checked_in",
            Refusal::BadText(_) => "bad_text",
        }
    }

    /// The request field the refusal is about, when it is about one.
    pub fn field(&self) -> Option<&'static str> {
        Some(match self {
            Refusal::UnknownService(_) | Refusal::NotServedHere(..) => "service",
            Refusal::ClassNotIssuable(_) => "class",
            Refusal::UnknownWindow(_) => "window",
            Refusal::UnknownTicket(_) => "ticket",
            Refusal::UnknownReason(_) => "reasons",
            Refusal::UnknownAppointment(_) | Refusal::DuplicateAppointment(_) => "code",
            Refusal::SlotInPast | Refusal::SlotTooFar => "slot_at",
            Refusal::BadText(f) => f,
            _ => return None,
        })
    }

    /// Whether this is a state conflict (409) rather than bad input (422).
    pub fn is_conflict(&self) -> bool {
        self.field().is_none()
            || matches!(
                self,
                Refusal::DuplicateAppointment(_) | Refusal::NotServedHere(..)
            )
    }

    /// What to tell the person, in their language.
    pub fn message(&self, lang: Lang) -> String {
        let t = |zh: String, tw: String, en: String| match lang {
            Lang::ZhCn => zh,
            Lang::ZhTw => tw,
            Lang::En => en,
        };
        let hm = |t: &NaiveTime| t.format("%H:%M").to_string();
        match self {
            Refusal::UnknownService(c) => { let c = clip(c); t(format!("没有编号为 {c} 的事项"), format!("沒有編號為 {c} 的事項"), format!("There is no service with code {c}.")) },
            Refusal::Closed(Closed::Holiday) => t("今天是法定节假日，大厅不办理业务。".into(), "今天是法定節假日，大廳不辦理業務。".into(), "The hall is closed today for a public holiday.".into()),
            Refusal::Closed(Closed::ClosedToday) => t("今天不是办公日，请在工作日前来办理。".into(), "今天不是辦公日，請在工作日前來辦理。".into(), "The hall is closed today. Please come on a working day.".into()),
            Refusal::Closed(Closed::BeforeOpening(at)) => t(format!("还未到办公时间，{} 开始取号。", hm(at)), format!("還未到辦公時間，{} 開始取號。", hm(at)), format!("The hall is not open yet. Tickets from {}.", hm(at))),
            Refusal::Closed(Closed::Break(at)) => t(format!("现在是午间休息，{} 恢复取号。", hm(at)), format!("現在是午間休息，{} 恢復取號。", hm(at)), format!("The hall is on its midday break. Tickets again from {}.", hm(at))),
            Refusal::Closed(Closed::AfterClosing) => t("今日取号已结束，请明天再来。".into(), "今日取號已結束，請明天再來。".into(), "Ticket issue has ended for today. Please come back tomorrow.".into()),
            Refusal::DailyCapReached(_) => t("该事项今日号源已取完，请明天再来或预约办理。".into(), "該事項今日號源已取完，請明天再來或預約辦理。".into(), "All of today's tickets for this service are taken. Please come tomorrow or book an appointment.".into()),
            Refusal::QuotaReached(_, at) => t(format!("本时段号源已取完，请于 {} 后再取号。", hm(at)), format!("本時段號源已取完，請於 {} 後再取號。", hm(at)), format!("All tickets for this period are taken. Please try again after {}.", hm(at))),
            Refusal::CitizenLimitReached(n) => t(format!("每人每天最多取 {n} 个号，您今天已取满。"), format!("每人每天最多取 {n} 個號，您今天已取滿。"), format!("Each person may take {n} tickets a day; you have reached the limit.")),
            Refusal::ClassNotIssuable(_) => t("预约号请使用预约签到。".into(), "預約號請使用預約簽到。".into(), "Appointments are checked in with their code.".into()),
            Refusal::UnknownWindow(n) => t(format!("没有 {n} 号窗口"), format!("沒有 {n} 號窗口"), format!("There is no window {n}.")),
            Refusal::NotSignedIn(_, n) => t(format!("您未在 {n} 号窗口登录"), format!("您未在 {n} 號窗口登錄"), format!("You are not signed in at window {n}.")),
            Refusal::WindowPaused(n) => t(format!("{n} 号窗口已暂停服务，请先恢复"), format!("{n} 號窗口已暫停服務，請先恢復"), format!("Window {n} is paused; resume it first.")),
            Refusal::WindowNotPaused(n) => t(format!("{n} 号窗口未暂停"), format!("{n} 號窗口未暫停"), format!("Window {n} is not paused.")),
            Refusal::QueueEmpty(_) => t("当前没有等候的办事群众".into(), "當前沒有等候的辦事群眾".into(), "Nobody is waiting.".into()),
            Refusal::NoCurrentTicket(_) => t("当前没有正在办理的号".into(), "當前沒有正在辦理的號".into(), "There is no current ticket.".into()),
            Refusal::CurrentTicketPending(n) => t(format!("{n} 号仍在呼叫中，请先开始办理、过号或转移"), format!("{n} 號仍在呼叫中，請先開始辦理、過號或轉移"), format!("{n} is still being called: start serving, mark no-show or transfer it first.")),
            Refusal::RecallLimit(n) => t(format!("重呼次数已达上限（{n} 次）"), format!("重呼次數已達上限（{n} 次）"), format!("The recall limit ({n}) is reached.")),
            Refusal::UnknownTicket(n) => { let n = clip(n); t(format!("今天没有号码 {n}"), format!("今天沒有號碼 {n}"), format!("There is no ticket {n} today.")) },
            Refusal::WrongState(n, s) => t(format!("{n} 号当前状态为 {}，不能执行此操作", state_zh(s)), format!("{n} 號當前狀態為 {}，不能執行此操作", state_zh(s)), format!("Ticket {n} is {s}; that is not possible now.")),
            Refusal::NotServedHere(n, s) => { let s = clip(s); t(format!("{n} 号窗口不办理事项 {s}"), format!("{n} 號窗口不辦理事項 {s}"), format!("Window {n} does not handle service {s}.")) },
            Refusal::TransferToSelf => t("该号已在目标队列中".into(), "該號已在目標隊列中".into(), "The ticket is already there.".into()),
            Refusal::AlreadyRated(_) => t("该次服务已评价，感谢您的参与".into(), "該次服務已評價，感謝您的參與".into(), "This service has already been rated. Thank you.".into()),
            Refusal::RatingExpired(_) => t("评价时间已过".into(), "評價時間已過".into(), "The time to rate this service has passed.".into()),
            Refusal::NotFinished(n, _) => t(format!("{n} 号的业务尚未办结，办结后才能评价"), format!("{n} 號的業務尚未辦結，辦結後才能評價"), format!("Ticket {n} has not been finished yet; a service is rated once it is done.")),
            Refusal::NotFinishedHere(n, w) => t(format!("{n} 号不是在 {w} 号窗口办结的，请在办理窗口评价"), format!("{n} 號不是在 {w} 號窗口辦結的，請在辦理窗口評價"), format!("Ticket {n} was not served at window {w}; please rate it at the window that served you.")),
            Refusal::UnknownReason(r) => { let r = clip(r); t(format!("不在可选原因中：{r}"), format!("不在可選原因中：{r}"), format!("Not one of the listed reasons: {r}")) },
            Refusal::BadRating(why) => t("评价内容不符合要求".into(), "評價內容不符合要求".into(), format!("The rating is not valid: {why}.")),
            Refusal::UnknownAppointment(_) => t("未找到该预约，请核对预约码".into(), "未找到該預約，請核對預約碼".into(), "No appointment with that code. Please check it.".into()),
            Refusal::DuplicateAppointment(_) => t("该预约码已存在".into(), "該預約碼已存在".into(), "That appointment code already exists.".into()),
            Refusal::SlotInPast => t("预约时段已开始，不能再预约".into(), "預約時段已開始，不能再預約".into(), "That slot has already begun.".into()),
            Refusal::SlotTooFar => t("最多可预约 366 天内的时段".into(), "最多可預約 366 天內的時段".into(), "A slot can be booked at most 366 days ahead.".into()),
            Refusal::CheckInTooEarly(at) => t(format!("签到时间未到，请于 {} 后签到", hm(at)), format!("簽到時間未到，請於 {} 後簽到", hm(at)), format!("Check-in opens at {}.", hm(at))),
            Refusal::CheckInTooLate => t("已超过签到时间，请重新取号或预约".into(), "已超過簽到時間，請重新取號或預約".into(), "The check-in time has passed. Please take a ticket or book again.".into()),
            Refusal::AlreadyCheckedIn(_) => t("该预约已签到".into(), "該預約已簽到".into(), "This appointment is already checked in.".into()),
            Refusal::BadText(f) => t(format!("{f} 为空或过长"), format!("{f} 為空或過長"), format!("{f} is empty or too long.")),
        }
    }
}

fn state_zh(s: &str) -> &'static str {
    match s {
        "waiting" => "等候中",
        "called" => "呼叫中",
        "serving" => "办理中",
        "finished" => "已办结",
        "no_show" => "已过号",
        "transferred" => "已转移",
        _ => "已取消",
    }
}
