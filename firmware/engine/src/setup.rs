//! What the engine must know about the hall: services, windows, the calendar and the
//! rules a hall chooses. Plain data, deserialised from the `[queue]` part of the daemon's
//! TOML; `Setup::validate` rejects what would break the engine's promises (two services
//! sharing a prefix would print the same number twice in one day).

use std::collections::BTreeSet;

use chrono::{NaiveDate, NaiveTime};
use serde::{Deserialize, Deserializer, Serialize};

/// A name in the three languages the kiosk offers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Names {
    /// Simplified Chinese, the hall's working language; always required.
    #[serde(rename = "zh-CN")]
    pub zh_cn: String,
    /// Traditional Chinese; falls back to `zh-CN` when empty.
    #[serde(rename = "zh-TW", default)]
    pub zh_tw: String,
    /// English for visitors; falls back to `zh-CN` when empty.
    #[serde(default)]
    pub en: String,
}

impl Names {
    /// The name in `lang`, falling back to Simplified Chinese where a translation is missing.
    pub fn get(&self, lang: Lang) -> &str {
        let s = match lang {
            Lang::ZhCn => &self.zh_cn,
            Lang::ZhTw => &self.zh_tw,
            Lang::En => &self.en,
        };
        if s.is_empty() { &self.zh_cn } else { s }
    }
}

/// The languages every citizen-facing text comes in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Lang {
    /// 简体中文
    #[default]
    #[serde(rename = "zh-CN")]
    ZhCn,
    /// 繁體中文
    #[serde(rename = "zh-TW")]
    ZhTw,
    /// English
    #[serde(rename = "en")]
    En,
}

impl Lang {
    /// Picks a language from an HTTP `Accept-Language`-style tag; unknown tags get zh-CN.
    pub fn from_tag(tag: &str) -> Lang {
        let t = tag.trim().to_ascii_lowercase();
        if t.starts_with("zh-tw") || t.starts_with("zh-hk") || t.starts_with("zh-hant") {
            Lang::ZhTw
        } else if t.starts_with("en") {
            Lang::En
        } else {
            Lang::ZhCn
        }
    }
}

/// At most `max` tickets per `minutes`-long slice of the day (e.g. 20 per half hour).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Quota {
    /// Length of a slice in minutes, counted from local midnight.
    pub minutes: u32,
    /// Tickets allowed in one slice.
    pub max: u32,
}

/// One service (事项) citizens can queue for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceDef {
    /// Stable code used by the API, reports and the hall server.
    pub code: String,
    /// Letters printed before the daily sequence (A in A001); unique in the hall.
    pub prefix: String,
    /// Display names.
    pub name: Names,
    /// The department (部门) whose service this is.
    #[serde(default)]
    pub department: String,
    /// Tickets allowed per day; none means unlimited.
    #[serde(default)]
    pub daily_cap: Option<u32>,
    /// Tickets allowed per time slice.
    #[serde(default)]
    pub quota: Option<Quota>,
    /// A citizen waiting longer than this raises a warning.
    #[serde(default)]
    pub wait_alarm_minutes: Option<u32>,
    /// More citizens waiting than this raises a warning.
    #[serde(default)]
    pub queue_alarm: Option<u32>,
    /// Serving one citizen longer than this raises a warning.
    #[serde(default)]
    pub time_limit_minutes: Option<u32>,
    /// What one citizen usually takes, used for wait estimates until the day has data.
    #[serde(default = "default_expected_minutes")]
    pub expected_minutes: u32,
}

fn default_expected_minutes() -> u32 {
    8
}

/// Whether a window belongs to one department or serves many services.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WindowKind {
    /// 常驻窗口: one department's own window.
    #[default]
    Resident,
    /// 综合窗口: one window accepts many services.
    Comprehensive,
}

/// A service as served at a particular window.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowService {
    /// The service code.
    pub code: String,
    /// Lower groups are served first; services in the same group share first-come-first-served.
    #[serde(default)]
    pub priority: u8,
    /// Waiting time counts this many times over when choosing between services (default 1).
    #[serde(default = "one")]
    pub weight: u32,
}

fn one() -> u32 {
    1
}

/// A window (窗口) and the services its staff handle.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowDef {
    /// The number on the sign above it; what citizens are sent to.
    pub number: u32,
    /// Display name, e.g. "社保窗口".
    pub name: String,
    /// Resident or comprehensive.
    #[serde(default)]
    pub kind: WindowKind,
    /// A green-channel window also serves priority (绿色通道) tickets of every service.
    #[serde(default)]
    pub green_channel: bool,
    /// Floor or area, printed on tickets and guides.
    #[serde(default)]
    pub location: String,
    /// Services served here, in the hall's preferred order.
    pub services: Vec<WindowService>,
    /// The window is meant to be staffed through office hours. A window the hall keeps
    /// closed, or opens only on demand, says `false` and raises no unmanned warning.
    #[serde(default = "yes")]
    pub open: bool,
}

fn yes() -> bool {
    true
}

/// A span of opening hours, written "09:00-12:00" (and written back so).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    /// Opening time.
    pub open: NaiveTime,
    /// Closing time (exclusive).
    pub close: NaiveTime,
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl Serialize for Span {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!(
            "{}-{}",
            self.open.format("%H:%M"),
            self.close.format("%H:%M")
        ))
    }
}

impl std::str::FromStr for Span {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("expected hours like \"09:00-12:00\", got {s:?}");
        let (a, b) = s.split_once('-').ok_or_else(bad)?;
        let open = NaiveTime::parse_from_str(a.trim(), "%H:%M").map_err(|_| bad())?;
        let close = NaiveTime::parse_from_str(b.trim(), "%H:%M").map_err(|_| bad())?;
        if close <= open {
            return Err(format!("closing time must be after opening time in {s:?}"));
        }
        Ok(Span { open, close })
    }
}

/// Office hours, holidays and make-up working days (调休).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CalendarDef {
    /// Hours Monday to Friday, and on make-up working days.
    #[serde(default = "default_weekday_hours")]
    pub weekdays: Vec<Span>,
    /// Saturday opening hours (周六办公时间); empty when closed.
    #[serde(default)]
    pub saturday: Vec<Span>,
    /// Sunday hours; empty when closed.
    #[serde(default)]
    pub sunday: Vec<Span>,
    /// Public holidays: closed whatever the weekday.
    #[serde(default)]
    pub holidays: Vec<NaiveDate>,
    /// Make-up working days: open with weekday hours even on a weekend.
    #[serde(default)]
    pub workdays: Vec<NaiveDate>,
    /// Ticket issue stops this many minutes before each closing time.
    #[serde(default)]
    pub stop_issuing_minutes_before_close: u32,
    /// Ignore hours entirely (the simulator and 24-hour self-service halls).
    #[serde(default)]
    pub always_open: bool,
}

fn default_weekday_hours() -> Vec<Span> {
    vec![
        "09:00-12:00".parse().expect("constant"),
        "13:30-17:30".parse().expect("constant"),
    ]
}

impl Default for CalendarDef {
    fn default() -> Self {
        CalendarDef {
            weekdays: default_weekday_hours(),
            saturday: Vec::new(),
            sunday: Vec::new(),
            holidays: Vec::new(),
            workdays: Vec::new(),
            stop_issuing_minutes_before_close: 0,
            always_open: false,
        }
    }
}

/// What happens to a ticket whose citizen does not come when called.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoShowPolicy {
    /// The first no-show sends the ticket to the back of its queue; the second ends it.
    #[default]
    RequeueOnce,
    /// A no-show ends the ticket; the citizen takes a new one (过号请重新取号).
    Drop,
}

/// Rating (好差评) rules.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RatingRules {
    /// The fixed list of reasons a bad rating may give.
    #[serde(default = "default_reasons")]
    pub reasons: Vec<String>,
    /// A second rating of the same ticket within this many seconds replaces the first.
    #[serde(default = "default_replace_secs")]
    pub replace_within_secs: u32,
    /// Ratings are accepted for this long after the ticket was finished (10 minutes by
    /// default: the citizen rates at the window, on the way out).
    #[serde(default = "default_rating_window")]
    pub accept_within_minutes: u32,
}

fn default_reasons() -> Vec<String> {
    [
        "服务态度差",
        "办事效率低",
        "材料要求不清",
        "多次跑腿",
        "其他",
    ]
    .map(String::from)
    .to_vec()
}
fn default_replace_secs() -> u32 {
    30
}
fn default_rating_window() -> u32 {
    10
}

impl Default for RatingRules {
    fn default() -> Self {
        RatingRules {
            reasons: default_reasons(),
            replace_within_secs: default_replace_secs(),
            accept_within_minutes: default_rating_window(),
        }
    }
}

/// Everything the engine is configured with. It serialises to the shape it is read
/// from (the `[queue]` table as JSON), so a setup in force can be sent up and read back.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Setup {
    /// Minutes east of UTC of the hall's clocks.
    #[serde(default = "default_offset")]
    pub utc_offset_minutes: i32,
    /// Local time at which numbering restarts ("03:00" keeps late work on the same day).
    #[serde(
        default = "default_day_start",
        deserialize_with = "de_time",
        serialize_with = "ser_time"
    )]
    pub day_starts_at: NaiveTime,
    /// Digits after the prefix (A001 has 3).
    #[serde(default = "default_width")]
    pub number_width: u8,
    /// How often a called number may be called again.
    #[serde(default = "default_recalls")]
    pub recall_limit: u32,
    /// What a no-show does.
    #[serde(default)]
    pub no_show: NoShowPolicy,
    /// Tickets one citizen (by ID) may take per day; none means no limit.
    #[serde(default)]
    pub per_citizen_daily_limit: Option<u32>,
    /// Appointment check-in opens this many minutes before the slot.
    #[serde(default = "default_checkin_before")]
    pub checkin_before_minutes: u32,
    /// …and closes this many minutes after the slot started.
    #[serde(default = "default_checkin_after")]
    pub checkin_after_minutes: u32,
    /// A window paused longer than this raises a warning.
    #[serde(default)]
    pub pause_alarm_minutes: Option<u32>,
    /// A window with no staff signed in for this long during office hours raises a
    /// warning (a window is never to be left unmanned: B stands in for A).
    #[serde(default)]
    pub unmanned_alarm_minutes: Option<u32>,
    /// Rating rules.
    #[serde(default)]
    pub rating: RatingRules,
    /// Opening hours.
    #[serde(default)]
    pub calendar: CalendarDef,
    /// The services offered.
    pub services: Vec<ServiceDef>,
    /// The windows.
    pub windows: Vec<WindowDef>,
}

fn default_offset() -> i32 {
    480
}
fn default_day_start() -> NaiveTime {
    NaiveTime::from_hms_opt(3, 0, 0).expect("constant")
}
fn default_width() -> u8 {
    3
}
fn default_recalls() -> u32 {
    3
}
fn default_checkin_before() -> u32 {
    60
}
fn default_checkin_after() -> u32 {
    20
}

fn de_time<'de, D: Deserializer<'de>>(d: D) -> Result<NaiveTime, D::Error> {
    let s = String::deserialize(d)?;
    NaiveTime::parse_from_str(&s, "%H:%M")
        .map_err(|_| serde::de::Error::custom(format!("expected a time like \"03:00\", got {s:?}")))
}

fn ser_time<S: serde::Serializer>(t: &NaiveTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&t.format("%H:%M").to_string())
}

/// A setup the engine cannot work with, naming the offending key path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct SetupError {
    /// Dotted key path, e.g. `services[2].prefix`.
    pub key: String,
    /// What is wrong, for a hall technician.
    pub message: String,
}

impl Setup {
    /// Checks the rules the engine relies on; the first problem found is returned.
    pub fn validate(&self) -> Result<(), SetupError> {
        let err = |key: String, message: String| Err(SetupError { key, message });
        if !(-720..=840).contains(&self.utc_offset_minutes) {
            return err(
                "utc_offset_minutes".into(),
                "must be between -720 and 840".into(),
            );
        }
        if !(1..=6).contains(&self.number_width) {
            return err(
                "number_width".into(),
                "must be between 1 and 6 digits".into(),
            );
        }
        if self.services.is_empty() {
            return err("services".into(), "at least one service is needed".into());
        }
        let mut codes = BTreeSet::new();
        let mut prefixes = BTreeSet::new();
        for (i, s) in self.services.iter().enumerate() {
            let key = |f: &str| format!("services[{i}].{f}");
            if s.code.trim().is_empty() || s.code.len() > 32 {
                return err(key("code"), "must be 1 to 32 characters".into());
            }
            if !codes.insert(s.code.as_str()) {
                return err(
                    key("code"),
                    format!("service code {:?} is used twice", s.code),
                );
            }
            if s.prefix.is_empty()
                || s.prefix.len() > 3
                || !s.prefix.chars().all(|c| c.is_ascii_uppercase())
            {
                return err(key("prefix"), "must be 1 to 3 capital letters A-Z".into());
            }
            if !prefixes.insert(s.prefix.as_str()) {
                return err(
                    key("prefix"),
                    format!(
                        "prefix {:?} is used by another service; numbers would repeat",
                        s.prefix
                    ),
                );
            }
            if s.name.zh_cn.trim().is_empty() {
                return err(
                    key("name.zh-CN"),
                    "a Simplified Chinese name is required".into(),
                );
            }
            if let Some(q) = &s.quota
                && (q.minutes == 0 || 1440 % q.minutes != 0)
            {
                return err(
                    key("quota.minutes"),
                    "must divide the day evenly (e.g. 15, 30, 60)".into(),
                );
            }
            if s.expected_minutes == 0 {
                return err(key("expected_minutes"), "must be at least 1".into());
            }
        }
        let mut numbers = BTreeSet::new();
        for (i, w) in self.windows.iter().enumerate() {
            let key = |f: &str| format!("windows[{i}].{f}");
            if w.number == 0 || !numbers.insert(w.number) {
                return err(
                    key("number"),
                    format!("window number {} is zero or used twice", w.number),
                );
            }
            if w.services.is_empty() && !w.green_channel {
                return err(
                    key("services"),
                    "a window must serve at least one service".into(),
                );
            }
            for (j, ws) in w.services.iter().enumerate() {
                if !codes.contains(ws.code.as_str()) {
                    return err(
                        format!("windows[{i}].services[{j}].code"),
                        format!("unknown service {:?}", ws.code),
                    );
                }
                if ws.weight == 0 {
                    return err(
                        format!("windows[{i}].services[{j}].weight"),
                        "must be at least 1".into(),
                    );
                }
            }
        }
        for (i, s) in self.services.iter().enumerate() {
            if !self
                .windows
                .iter()
                .any(|w| w.services.iter().any(|ws| ws.code == s.code))
            {
                return err(
                    format!("services[{i}].code"),
                    format!("no window serves {:?}", s.code),
                );
            }
        }
        let max_seq = 10u64.pow(u32::from(self.number_width)) - 1;
        for (i, s) in self.services.iter().enumerate() {
            if s.daily_cap.is_some_and(|c| u64::from(c) > max_seq) {
                return err(
                    format!("services[{i}].daily_cap"),
                    format!(
                        "exceeds what {} digits can number ({max_seq})",
                        self.number_width
                    ),
                );
            }
        }
        if self.rating.reasons.is_empty() {
            return err(
                "rating.reasons".into(),
                "bad ratings need at least one reason to choose".into(),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_setup_serialises_to_the_shape_it_is_read_from() {
        let text = r#"{
            "day_starts_at": "04:30", "number_width": 4, "no_show": "drop",
            "per_citizen_daily_limit": 2, "pause_alarm_minutes": 20,
            "calendar": { "weekdays": ["08:30-12:00", "13:00-17:30"], "saturday": ["09:00-11:45"],
                          "holidays": ["2026-10-01"], "workdays": ["2026-10-10"],
                          "stop_issuing_minutes_before_close": 15 },
            "services": [
                { "code": "SB", "prefix": "A", "name": { "zh-CN": "社保", "en": "Social insurance" },
                  "daily_cap": 300, "quota": { "minutes": 30, "max": 40 }, "wait_alarm_minutes": 45 },
                { "code": "MZ", "prefix": "B", "name": { "zh-CN": "民政" } }
            ],
            "windows": [
                { "number": 1, "name": "社保窗口", "services": [{ "code": "SB" }] },
                { "number": 8, "name": "综合窗口", "kind": "comprehensive", "open": false,
                  "services": [{ "code": "MZ", "priority": 1, "weight": 2 }, { "code": "SB" }] }
            ]
        }"#;
        let setup: Setup = serde_json::from_str(text).expect("reads");
        let written = serde_json::to_value(&setup).expect("writes");
        assert_eq!(written["day_starts_at"], "04:30");
        assert_eq!(
            written["calendar"]["weekdays"],
            serde_json::json!(["08:30-12:00", "13:00-17:30"])
        );
        let again: Setup = serde_json::from_value(written).expect("reads back");
        assert_eq!(again, setup);
        assert_eq!(again.validate(), Ok(()));
    }
}
