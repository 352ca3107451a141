//! A small hall for engine tests: two services, three windows, Monday 2026-11-23.
#![allow(dead_code)]

use hallq_engine::setup::{ServiceDef, WindowDef, WindowService};
use hallq_engine::*;

pub fn service(code: &str, prefix: &str) -> ServiceDef {
    ServiceDef {
        code: code.into(),
        prefix: prefix.into(),
        name: Names {
            zh_cn: format!("事项{code}"),
            zh_tw: String::new(),
            en: String::new(),
        },
        department: "测试".into(),
        daily_cap: None,
        quota: None,
        wait_alarm_minutes: None,
        queue_alarm: None,
        time_limit_minutes: None,
        expected_minutes: 5,
    }
}

pub fn window(number: u32, codes: &[&str]) -> WindowDef {
    WindowDef {
        number,
        name: format!("{number}号窗口"),
        kind: Default::default(),
        green_channel: false,
        location: String::new(),
        services: codes
            .iter()
            .map(|c| WindowService {
                code: (*c).into(),
                priority: 0,
                weight: 1,
            })
            .collect(),
        open: true,
    }
}

pub fn setup() -> Setup {
    let toml_free = Setup {
        utc_offset_minutes: 480,
        day_starts_at: chrono::NaiveTime::from_hms_opt(3, 0, 0).unwrap(),
        number_width: 3,
        recall_limit: 3,
        no_show: Default::default(),
        per_citizen_daily_limit: None,
        checkin_before_minutes: 60,
        checkin_after_minutes: 20,
        pause_alarm_minutes: None,
        unmanned_alarm_minutes: None,
        rating: Default::default(),
        calendar: Default::default(),
        services: vec![service("SB", "A"), service("HJ", "B")],
        windows: vec![
            window(1, &["SB"]),
            window(2, &["HJ"]),
            window(3, &["SB", "HJ"]),
        ],
    };
    toml_free.validate().unwrap();
    toml_free
}

/// Monday 2026-11-23 at the given local time.
pub fn at(hm: &str) -> Timestamp {
    let t = chrono::NaiveDateTime::parse_from_str(&format!("2026-11-23 {hm}"), "%Y-%m-%d %H:%M:%S")
        .or_else(|_| {
            chrono::NaiveDateTime::parse_from_str(&format!("2026-11-23 {hm}"), "%Y-%m-%d %H:%M")
        })
        .unwrap();
    LocalClock::new(480).instant(t)
}

pub fn engine(setup: Setup) -> Engine {
    let mut e = Engine::new(setup, at("08:00")).unwrap();
    for w in [1, 2, 3] {
        if e.windows().contains_key(&w) {
            e.handle(
                Command::SignIn {
                    window: w,
                    staff: format!("S{w}"),
                    role: Role::A,
                },
                at("08:30"),
            )
            .unwrap();
        }
    }
    e
}

pub fn issue(service: &str) -> Command {
    Command::Issue {
        token_hash: None,
        service: service.into(),
        class: Class::Normal,
        idempotency_key: None,
        citizen: None,
        channel: "test".into(),
        green_reason: None,
        proxy: false,
        issued_by: None,
    }
}

pub fn issued(events: &[Event]) -> &Ticket {
    events
        .iter()
        .find_map(|e| {
            if let Event::TicketIssued { ticket, .. } = e {
                Some(ticket)
            } else {
                None
            }
        })
        .expect("a ticket was issued")
}

pub fn called(events: &[Event]) -> String {
    events
        .iter()
        .find_map(|e| {
            if let Event::TicketCalled { number, .. } = e {
                Some(number.clone())
            } else {
                None
            }
        })
        .expect("a ticket was called")
}

pub fn call(window: u32) -> Command {
    Command::CallNext {
        window,
        staff: format!("S{window}"),
    }
}
