//! 好差评 records in the shape of the national rules (国办发〔2019〕51号, GB/T 39734 and
//! GB/T 39735) and the provincial platforms, and the follow-up (回访整改) a bad rating
//! opens.
//!
//! The engine records a rating by name ([`hallq_engine::Rating`]); this module adds what
//! the platforms ask for and the engine does not know: the channel and level as codes
//! (platforms differ: 1 = best in one, 5 = best in another, so both maps are settings),
//! the hall's region code (行政区划代码), the department's code, the service's item code
//! (事项编码, from its guide), the staff member's name and the service times. The core
//! builds a [`Record`] in the same step that encodes the `rating_recorded` event, so the
//! record commits with the rating and reaches the hall server in it (`record`).
//!
//! A bad rating (不满意, 非常不满意) opens a follow-up due at the end of the fifth working
//! day of the hall's calendar after the rating (`follow_up_opened`); the hall server
//! reports its progress down (`follow_up` command: received, rectified, visited,
//! closed), each step an event; `store::follow_ups` keeps the state in step.

use std::collections::BTreeMap;

use chrono::{Duration, NaiveDate, NaiveTime};
use hallq_engine::{Event, Level, LocalClock, Rating, Setup, Ticket, Timestamp};
use serde::{Deserialize, Serialize};

use crate::events::HallEvent;
use crate::guide::Guide;
use crate::store::{NewEvent, StoreError};

/// `[evaluation]`: how rating records are coded for the hall's 好差评 platform.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvaluationConfig {
    /// The hall's administrative region code (行政区划代码): 6 digits for a county or
    /// city, 9 or 12 for a township or village centre. Absent: records carry null.
    #[serde(default)]
    pub region_code: Option<String>,
    /// Working days a follow-up (回访整改) of a bad rating has (5 by the national rules).
    #[serde(default = "default_follow_up_days")]
    pub follow_up_working_days: u32,
    /// Channel codes (评价渠道) by where the rating was given.
    #[serde(default)]
    pub channels: ChannelCodes,
    /// The platform's code of each level, keyed by the level's name (非常满意 …).
    #[serde(default = "default_level_codes")]
    pub level_codes: BTreeMap<String, String>,
    /// Department codes (部门编码, e.g. the 统一社会信用代码), keyed by the department
    /// name the services give in `[[queue.services]] department`.
    #[serde(default)]
    pub departments: BTreeMap<String, String>,
}

fn default_follow_up_days() -> u32 {
    5
}

/// The national data standard's order: 5 = 非常满意 … 1 = 非常不满意.
fn default_level_codes() -> BTreeMap<String, String> {
    Level::ALL
        .iter()
        .zip(["5", "4", "3", "2", "1"])
        .map(|(l, c)| (l.name().to_string(), c.to_string()))
        .collect()
}

impl Default for EvaluationConfig {
    fn default() -> Self {
        EvaluationConfig {
            region_code: None,
            follow_up_working_days: default_follow_up_days(),
            channels: ChannelCodes::default(),
            level_codes: default_level_codes(),
            departments: BTreeMap::new(),
        }
    }
}

/// The channel code of each place a rating can come from.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelCodes {
    /// The rating pad at the window (评价器): its own channel.
    #[serde(default = "pad_code")]
    pub pad: String,
    /// A kiosk (自助终端).
    #[serde(default = "kiosk_code")]
    pub kiosk: String,
    /// The citizen's phone (移动端).
    #[serde(default = "phone_code")]
    pub phone: String,
    /// Anything else (the simulator, an API client).
    #[serde(default = "other_code")]
    pub other: String,
}

fn pad_code() -> String {
    "PJQ".into()
}
fn kiosk_code() -> String {
    "ZZZD".into()
}
fn phone_code() -> String {
    "YDD".into()
}
fn other_code() -> String {
    "QT".into()
}

impl Default for ChannelCodes {
    fn default() -> Self {
        ChannelCodes {
            pad: pad_code(),
            kiosk: kiosk_code(),
            phone: phone_code(),
            other: other_code(),
        }
    }
}

/// Where a rating came from, read from its recorded channel.
pub fn channel_kind(channel: &str) -> &'static str {
    if channel.starts_with("window-pad-") {
        "pad"
    } else if channel.starts_with("kiosk") {
        "kiosk"
    } else if channel.starts_with("phone") {
        "phone"
    } else {
        "other"
    }
}

fn is_code(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

impl EvaluationConfig {
    /// Checks the section; `departments` are the department names the services use.
    /// The error names the key (below the file's root) and what is wrong.
    pub fn check(&self, departments: &[&str]) -> Result<(), (String, String)> {
        let err = |k: &str, m: &str| Err((format!("evaluation.{k}"), m.to_string()));
        if let Some(r) = &self.region_code
            && !(matches!(r.len(), 6 | 9 | 12) && r.chars().all(|c| c.is_ascii_digit()))
        {
            return err(
                "region_code",
                "a 行政区划代码 of 6 digits (county, city), or 9 or 12 (township, village)",
            );
        }
        if !(1..=30).contains(&self.follow_up_working_days) {
            return err("follow_up_working_days", "between 1 and 30 working days");
        }
        for (k, v) in [
            ("pad", &self.channels.pad),
            ("kiosk", &self.channels.kiosk),
            ("phone", &self.channels.phone),
            ("other", &self.channels.other),
        ] {
            if !is_code(v, 32) {
                return err(
                    &format!("channels.{k}"),
                    "a code of 1 to 32 letters, digits, - or _",
                );
            }
        }
        for name in self.level_codes.keys() {
            if Level::parse(name).is_none_or(|l| l.name() != name) {
                return err(
                    &format!("level_codes.{name}"),
                    "not a level: use 非常满意, 满意, 基本满意, 不满意, 非常不满意",
                );
            }
        }
        let mut seen: Vec<&str> = Vec::new();
        for l in Level::ALL {
            let Some(code) = self.level_codes.get(l.name()) else {
                return err(
                    "level_codes",
                    &format!("every level needs a code: {} has none", l.name()),
                );
            };
            if !is_code(code, 16) {
                return err(
                    &format!("level_codes.{}", l.name()),
                    "a code of 1 to 16 letters or digits",
                );
            }
            if seen.contains(&code.as_str()) {
                return err(
                    &format!("level_codes.{}", l.name()),
                    "another level has this code",
                );
            }
            seen.push(code);
        }
        for (name, code) in &self.departments {
            if !departments.contains(&name.as_str()) {
                return err(
                    &format!("departments.{name}"),
                    "no service in [[queue.services]] names this department",
                );
            }
            if !is_code(code, 32) {
                return err(
                    &format!("departments.{name}"),
                    "a code of 1 to 32 letters, digits, - or _",
                );
            }
        }
        Ok(())
    }

    /// The channel code of a recorded channel.
    pub fn channel_code(&self, channel: &str) -> &str {
        match channel_kind(channel) {
            "pad" => &self.channels.pad,
            "kiosk" => &self.channels.kiosk,
            "phone" => &self.channels.phone,
            _ => &self.channels.other,
        }
    }
}

/// One 好差评 record as the platforms take it; `docs/events.md` maps each field to the
/// standard's name. Times are milliseconds since the epoch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// 评价渠道 as a code (`PJQ` for the window's rating pad).
    pub channel_code: String,
    /// The channel as recorded (`window-pad-3`, a kiosk id).
    pub channel: String,
    /// 事项编码, from the service's guide (null without a guide).
    pub item_code: Option<String>,
    /// The service's code in this hall.
    pub service: String,
    /// 事项名称.
    pub service_name: String,
    /// 部门名称.
    pub department: String,
    /// 部门编码 (null when `[evaluation.departments]` does not list it).
    pub department_code: Option<String>,
    /// 行政区划代码 of the hall.
    pub region_code: Option<String>,
    /// 窗口.
    pub window: Option<u32>,
    /// The window's name.
    pub window_name: Option<String>,
    /// 被评价人 工号.
    pub staff_id: Option<String>,
    /// 被评价人 姓名.
    pub staff_name: Option<String>,
    /// 办件编号, when the service recorded one.
    pub case_no: Option<String>,
    /// 办理状态: `accepted` (受理: a case number was given, the case goes on) or
    /// `finished` (办结 at the window).
    pub handle_state: String,
    /// Service began (called, or started when the window pressed start).
    pub served_from: Option<i64>,
    /// Service ended.
    pub served_to: Option<i64>,
    /// 评价时间.
    pub rated_at: i64,
    /// 评价等级 by name.
    pub level: String,
    /// 评价等级 as the platform's code (`[evaluation] level_codes`).
    pub level_code: String,
    /// Whether the level is a bad one (差评).
    pub bad: bool,
    /// 差评原因.
    pub reasons: Vec<String>,
    /// 评价内容.
    pub comment: Option<String>,
    /// The ticket (service event) rated and its number.
    pub ticket: u64,
    /// Its number.
    pub number: String,
}

/// What the record is built from besides the rating and its ticket.
pub struct Context<'a> {
    /// The section.
    pub config: &'a EvaluationConfig,
    /// The queue setup in force.
    pub setup: &'a Setup,
    /// The guides in force.
    pub guides: &'a BTreeMap<String, Guide>,
    /// The name of the staff member who served, when known.
    pub staff_name: Option<String>,
}

/// The record of `rating` (of `ticket`, when the engine still has it).
pub fn record(cx: &Context<'_>, rating: &Rating, ticket: Option<&Ticket>) -> Record {
    let service = cx.setup.services.iter().find(|s| s.code == rating.service);
    let department = service.map(|s| s.department.clone()).unwrap_or_default();
    let window_name = rating.window.and_then(|n| {
        cx.setup
            .windows
            .iter()
            .find(|w| w.number == n)
            .map(|w| w.name.clone())
    });
    Record {
        channel_code: cx.config.channel_code(&rating.channel).to_string(),
        channel: rating.channel.clone(),
        item_code: cx.guides.get(&rating.service).map(|g| g.item_code.clone()),
        service: rating.service.clone(),
        service_name: service
            .map(|s| s.name.zh_cn.clone())
            .unwrap_or_else(|| rating.service.clone()),
        department_code: cx.config.departments.get(&department).cloned(),
        department,
        region_code: cx.config.region_code.clone(),
        window: rating.window,
        window_name,
        staff_id: rating.staff.clone(),
        staff_name: cx.staff_name.clone(),
        case_no: rating.case_no.clone(),
        handle_state: if rating.case_no.is_some() {
            "accepted"
        } else {
            "finished"
        }
        .into(),
        served_from: ticket.and_then(|t| t.serving_at.or(t.called_at).map(|at| at.0)),
        served_to: ticket.and_then(|t| t.closed_at.map(|at| at.0)),
        rated_at: rating.at.0,
        level: rating.level.name().into(),
        level_code: cx
            .config
            .level_codes
            .get(rating.level.name())
            .cloned()
            .unwrap_or_default(),
        bad: rating.level.is_bad(),
        reasons: rating.reasons.clone(),
        comment: rating.comment.clone(),
        ticket: rating.ticket.0,
        number: rating.number.clone(),
    }
}

/// When a follow-up of a rating at `at` is due: the last local day it may be done on
/// (the `days`th working day after the rating's day) and the instant that day ends.
pub fn follow_up_due(setup: &Setup, at: Timestamp, days: u32) -> (NaiveDate, Timestamp) {
    let clock = LocalClock::new(setup.utc_offset_minutes);
    let day = clock.local(at).date();
    let due = hallq_engine::calendar::working_days_after(&setup.calendar, day, days);
    let end = (due + Duration::days(1)).and_time(NaiveTime::MIN);
    (due, clock.instant(end))
}

/// The events a recorded rating commits as: `rating_recorded` carrying its [`Record`]
/// (`record`), then `follow_up_opened` when the level is bad and the ticket has no
/// follow-up yet (in the store, or in `pending`, the batch not yet committed). One
/// follow-up per ticket: a citizen who changes a bad press within the replace window
/// leaves it open; the hall server closes it.
pub fn rating_events(
    cx: &Context<'_>,
    conn: &rusqlite::Connection,
    at: Timestamp,
    event: &Event,
    ticket: Option<&Ticket>,
    pending: &[NewEvent],
) -> Result<Vec<NewEvent>, StoreError> {
    let Event::RatingRecorded { rating, .. } = event else {
        return Ok(vec![NewEvent::encode(at, event.kind(), event)?]);
    };
    let mut payload = serde_json::to_value(event)?;
    payload["record"] = serde_json::to_value(record(cx, rating, ticket))?;
    let mut out = vec![NewEvent::encode(at, event.kind(), &payload)?];
    if !rating.level.is_bad() {
        return Ok(out);
    }
    let marker = format!("\"ticket\":{},", rating.ticket.0);
    let opening = pending
        .iter()
        .any(|p| p.kind == "follow_up_opened" && p.payload.contains(&marker));
    if opening || crate::store::follow_ups::get(conn, rating.ticket.0)?.is_some() {
        return Ok(out);
    }
    let (due_day, due_at) = follow_up_due(cx.setup, rating.at, cx.config.follow_up_working_days);
    let opened = HallEvent::FollowUpOpened {
        ticket: rating.ticket,
        number: rating.number.clone(),
        service: rating.service.clone(),
        window: rating.window,
        staff: rating.staff.clone(),
        level: rating.level.name().into(),
        reasons: rating.reasons.clone(),
        rated_at: rating.at.0,
        due_day: due_day.to_string(),
        due_at: due_at.0,
    };
    out.push(NewEvent::encode(at, opened.kind(), &opened)?);
    Ok(out)
}

/// A step of a follow-up, as the hall server reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// 已接收: the platform's staff took the case on.
    Received,
    /// 已整改: the window fixed what was wrong.
    Rectified,
    /// 已回访: the citizen was called back.
    Visited,
    /// 已办结: closed; nothing more happens to it.
    Closed,
}

impl Step {
    /// The name on the wire, in events and in the table.
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Received => "received",
            Step::Rectified => "rectified",
            Step::Visited => "visited",
            Step::Closed => "closed",
        }
    }

    /// Inverse of [`Step::as_str`].
    pub fn parse(s: &str) -> Option<Step> {
        [Step::Received, Step::Rectified, Step::Visited, Step::Closed]
            .into_iter()
            .find(|x| x.as_str() == s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, ConfigError, EXAMPLE_HALL};

    /// The example with `from` replaced by `to`, refused: its key, line and message.
    fn refused(from: &str, to: &str) -> (String, usize, String) {
        assert!(EXAMPLE_HALL.contains(from), "{from}");
        let text = EXAMPLE_HALL.replacen(from, to, 1);
        let Err(ConfigError::Invalid {
            key, line, message, ..
        }) = Config::parse(&text, "h.toml")
        else {
            panic!("{to} was accepted");
        };
        let first = to.lines().next().unwrap_or(to);
        let expected = text.lines().position(|l| l.contains(first)).unwrap() + 1;
        assert_eq!(line, expected, "{key}: {message}");
        (key, line, message)
    }

    #[test]
    fn the_example_codes_ratings_for_its_platform() {
        let c = Config::example();
        let e = &c.evaluation;
        assert_eq!(e.region_code.as_deref(), Some("331121"));
        assert_eq!(e.channel_code("window-pad-3"), "PJQ");
        assert_eq!(e.channel_code("kiosk-1"), "ZZZD");
        assert_eq!(e.channel_code("simulator"), "QT");
        assert_eq!(e.follow_up_working_days, 5);
        assert_eq!(e.level_codes["非常满意"], "5");
        assert_eq!(e.departments["县民政局"], "11331121MB1A00002X");
    }

    #[test]
    fn a_bad_region_code_names_its_key_and_line() {
        let (key, _, message) = refused("region_code = \"331121\"", "region_code = \"33112\"");
        assert_eq!(key, "evaluation.region_code");
        assert!(message.contains("6 digits"), "{message}");
    }

    #[test]
    fn level_codes_must_cover_every_level_once() {
        let (key, _, message) = refused("\"非常不满意\" = \"1\"", "\"非常不满意\" = \"2\"");
        assert_eq!(key, "evaluation.level_codes.非常不满意");
        assert!(message.contains("another level"), "{message}");
        let (key, _, message) = refused("\"满意\" = \"4\"", "\"很满意\" = \"4\"");
        assert_eq!(key, "evaluation.level_codes.很满意");
        assert!(message.contains("not a level"), "{message}");
        // 1 = best, as some provinces have it.
        let text = EXAMPLE_HALL
            .replacen("\"非常满意\" = \"5\"", "\"非常满意\" = \"1\"", 1)
            .replacen("\"非常不满意\" = \"1\"", "\"非常不满意\" = \"5\"", 1);
        let c = Config::parse(&text, "h.toml").unwrap();
        assert_eq!(c.evaluation.level_codes["非常满意"], "1");
        assert_eq!(c.evaluation.level_codes["非常不满意"], "5");
    }

    #[test]
    fn a_missing_level_code_is_named() {
        let text = EXAMPLE_HALL.replacen("\"基本满意\" = \"3\"\n", "", 1);
        let Err(ConfigError::Invalid { key, message, .. }) = Config::parse(&text, "h.toml") else {
            panic!("accepted without 基本满意");
        };
        assert_eq!(key, "evaluation.level_codes");
        assert!(message.contains("基本满意"), "{message}");
    }

    #[test]
    fn a_department_code_needs_a_department_of_the_halls_services() {
        let (key, _, message) = refused(
            "\"县税务局\" = \"11331121MB1A00005X\"",
            "\"县税务所\" = \"11331121MB1A00005X\"",
        );
        assert_eq!(key, "evaluation.departments.县税务所");
        assert!(message.contains("department"), "{message}");
        let (key, ..) = refused("follow_up_working_days = 5", "follow_up_working_days = 0");
        assert_eq!(key, "evaluation.follow_up_working_days");
        let (key, ..) = refused("pad = \"PJQ\"", "pad = \"\"");
        assert_eq!(key, "evaluation.channels.pad");
    }

    #[test]
    fn a_follow_up_is_due_at_the_end_of_the_fifth_working_day() {
        let setup = Config::example().queue;
        let clock = LocalClock::new(setup.utc_offset_minutes);
        // Monday 2026-11-23 16:00 local: due the end of Monday 2026-11-30.
        let at = clock.instant(
            NaiveDate::from_ymd_opt(2026, 11, 23)
                .unwrap()
                .and_hms_opt(16, 0, 0)
                .unwrap(),
        );
        let (day, end) = follow_up_due(&setup, at, 5);
        assert_eq!(day, NaiveDate::from_ymd_opt(2026, 11, 30).unwrap());
        assert_eq!(
            clock.local(end),
            NaiveDate::from_ymd_opt(2026, 12, 1)
                .unwrap()
                .and_hms_opt(0, 0, 0)
                .unwrap()
        );
    }

    #[test]
    fn steps_read_by_name() {
        for s in ["received", "rectified", "visited", "closed"] {
            assert_eq!(Step::parse(s).unwrap().as_str(), s);
        }
        assert_eq!(Step::parse("done"), None);
    }
}
