//! Whole-engine scenarios on a virtual clock, each named for the behaviour it shows.

mod common;
use common::*;
use hallq_engine::setup::Quota;
use hallq_engine::*;

#[test]
fn numbers_count_up_per_service_with_the_configured_width() {
    let mut e = engine(setup());
    let a = issued(&e.handle(issue("SB"), at("09:01")).unwrap())
        .number
        .clone();
    let b = issued(&e.handle(issue("SB"), at("09:02")).unwrap())
        .number
        .clone();
    let c = issued(&e.handle(issue("HJ"), at("09:03")).unwrap())
        .number
        .clone();
    assert_eq!(
        (a.as_str(), b.as_str(), c.as_str()),
        ("A001", "A002", "B001")
    );
}

#[test]
fn numbering_restarts_at_the_day_start_and_old_tickets_are_cancelled() {
    let mut e = engine(setup());
    e.handle(issue("SB"), at("09:01")).unwrap();
    let next_day = at("09:00").plus_secs(24 * 3600);
    let events = e.handle(issue("SB"), next_day).unwrap();
    assert!(events.iter().any(|e| matches!(
        e,
        Event::TicketCancelled {
            reason: CancelReason::DayEnded,
            ..
        }
    )));
    assert!(events.iter().any(|e| matches!(e, Event::DayStarted { .. })));
    assert_eq!(issued(&events).number, "A001");
    let changes = e.take_changes();
    assert!(
        changes
            .tickets
            .iter()
            .any(|t| t.state == TicketState::Cancelled && t.number == "A001")
    );
}

#[test]
fn a_clock_stepped_backwards_does_not_reopen_the_day() {
    let mut e = engine(setup());
    e.handle(issue("SB"), at("09:01")).unwrap();
    let t = issued(&e.handle(issue("SB"), at("08:00")).unwrap()).clone();
    assert_eq!(t.number, "A002");
    assert_eq!(t.issued_at, at("09:01"));
}

#[test]
fn an_idempotency_key_never_makes_a_second_ticket() {
    let mut e = engine(setup());
    let cmd = Command::Issue {
        token_hash: None,
        service: "SB".into(),
        class: Class::Normal,
        idempotency_key: Some("k1".into()),
        citizen: None,
        channel: "kiosk".into(),
        green_reason: None,
        proxy: false,
        issued_by: None,
    };
    let first = issued(&e.handle(cmd.clone(), at("09:01")).unwrap()).id;
    let again = e.handle(cmd, at("09:02")).unwrap();
    assert!(again.is_empty());
    assert_eq!(e.ticket_by_key("k1").unwrap().id, first);
}

#[test]
fn outside_office_hours_the_citizen_is_told_when_to_come() {
    let mut e = engine(setup());
    let r = e.handle(issue("SB"), at("12:30")).unwrap_err().refusal;
    assert_eq!(r.code(), "closed");
    assert!(
        r.message(Lang::ZhCn).contains("13:30"),
        "{}",
        r.message(Lang::ZhCn)
    );
    assert!(r.message(Lang::En).contains("13:30"));
}

#[test]
fn the_green_channel_goes_first_then_due_appointments_then_walk_ins() {
    let mut e = engine(setup());
    e.handle(issue("SB"), at("09:00")).unwrap();
    e.handle(
        Command::Book {
            service: "SB".into(),
            slot_at: at("09:30"),
            code: "Y1".into(),
            citizen: None,
            mobile: None,
            mobile_masked: None,
        },
        at("09:00"),
    )
    .unwrap();
    e.handle(
        Command::CheckIn {
            token_hash: None,
            code: "Y1".into(),
            idempotency_key: None,
            channel: "kiosk".into(),
        },
        at("09:10"),
    )
    .unwrap();
    e.handle(
        Command::Issue {
            token_hash: None,
            service: "SB".into(),
            class: Class::Green,
            idempotency_key: None,
            citizen: None,
            channel: "k".into(),
            green_reason: None,
            proxy: false,
            issued_by: None,
        },
        at("09:20"),
    )
    .unwrap();
    // Before the slot the appointment waits by its check-in time, behind A001.
    assert_eq!(called(&e.handle(call(1), at("09:25")).unwrap()), "A003");
    e.handle(
        Command::Finish {
            window: 1,
            staff: "S1".into(),
            case_no: None,
        },
        at("09:26"),
    )
    .unwrap();
    assert_eq!(called(&e.handle(call(1), at("09:31")).unwrap()), "A002");
    e.handle(
        Command::Finish {
            window: 1,
            staff: "S1".into(),
            case_no: None,
        },
        at("09:32"),
    )
    .unwrap();
    assert_eq!(called(&e.handle(call(1), at("09:33")).unwrap()), "A001");
}

#[test]
fn first_come_first_served_across_a_comprehensive_windows_services() {
    let mut e = engine(setup());
    e.handle(issue("HJ"), at("09:00")).unwrap();
    e.handle(issue("SB"), at("09:01")).unwrap();
    e.handle(issue("HJ"), at("09:02")).unwrap();
    let mut order = Vec::new();
    for m in 10..13 {
        order.push(called(&e.handle(call(3), at(&format!("09:{m}"))).unwrap()));
        e.handle(
            Command::Finish {
                window: 3,
                staff: "S3".into(),
                case_no: None,
            },
            at(&format!("09:{m}:30")),
        )
        .unwrap();
    }
    assert_eq!(order, ["B001", "A001", "B002"]);
}

#[test]
fn recall_after_the_limit_is_refused() {
    let mut e = engine(setup());
    e.handle(issue("SB"), at("09:00")).unwrap();
    e.handle(call(1), at("09:01")).unwrap();
    for _ in 0..3 {
        e.handle(
            Command::Recall {
                window: 1,
                staff: "S1".into(),
            },
            at("09:02"),
        )
        .unwrap();
    }
    let r = e
        .handle(
            Command::Recall {
                window: 1,
                staff: "S1".into(),
            },
            at("09:03"),
        )
        .unwrap_err()
        .refusal;
    assert_eq!(r, Refusal::RecallLimit(3));
}

#[test]
fn a_no_show_is_requeued_once_at_the_back_then_ended() {
    let mut e = engine(setup());
    e.handle(issue("SB"), at("09:00")).unwrap();
    e.handle(issue("SB"), at("09:01")).unwrap();
    e.handle(call(1), at("09:02")).unwrap();
    let ev = e
        .handle(
            Command::NoShow {
                window: 1,
                staff: "S1".into(),
            },
            at("09:03"),
        )
        .unwrap();
    assert!(matches!(ev[0], Event::TicketNoShow { requeued: true, .. }));
    assert_eq!(called(&e.handle(call(1), at("09:04")).unwrap()), "A002");
    e.handle(
        Command::Finish {
            window: 1,
            staff: "S1".into(),
            case_no: None,
        },
        at("09:05"),
    )
    .unwrap();
    assert_eq!(called(&e.handle(call(1), at("09:06")).unwrap()), "A001");
    let ev = e
        .handle(
            Command::NoShow {
                window: 1,
                staff: "S1".into(),
            },
            at("09:07"),
        )
        .unwrap();
    assert!(matches!(
        ev[0],
        Event::TicketNoShow {
            requeued: false,
            ..
        }
    ));
    assert_eq!(
        e.ticket_by_number("A001").unwrap().state,
        TicketState::NoShow
    );
}

#[test]
fn a_transfer_keeps_the_original_issue_time() {
    let mut e = engine(setup());
    e.handle(issue("SB"), at("09:00")).unwrap();
    e.handle(issue("HJ"), at("09:05")).unwrap();
    e.handle(call(1), at("09:10")).unwrap();
    e.handle(
        Command::Transfer {
            window: 1,
            staff: "S1".into(),
            to: TransferTarget::Service("HJ".into()),
        },
        at("09:11"),
    )
    .unwrap();
    // A001 was issued before B001, so window 2 takes it first.
    assert_eq!(called(&e.handle(call(2), at("09:12")).unwrap()), "A001");
    assert_eq!(e.ticket_by_number("A001").unwrap().transfers, 1);
}

#[test]
fn a_transfer_to_a_window_reserves_the_ticket_for_it() {
    let mut e = engine(setup());
    e.handle(issue("SB"), at("09:00")).unwrap();
    e.handle(issue("SB"), at("09:01")).unwrap();
    e.handle(call(1), at("09:02")).unwrap();
    e.handle(
        Command::Transfer {
            window: 1,
            staff: "S1".into(),
            to: TransferTarget::Window(3),
        },
        at("09:03"),
    )
    .unwrap();
    assert_eq!(called(&e.handle(call(1), at("09:04")).unwrap()), "A002");
    assert_eq!(called(&e.handle(call(3), at("09:05")).unwrap()), "A001");
}

#[test]
fn a_called_ticket_blocks_the_next_call_but_a_served_one_is_finished_implicitly() {
    let mut e = engine(setup());
    e.handle(issue("SB"), at("09:00")).unwrap();
    e.handle(issue("SB"), at("09:01")).unwrap();
    e.handle(call(1), at("09:02")).unwrap();
    assert_eq!(
        e.handle(call(1), at("09:03")).unwrap_err().refusal.code(),
        "current_ticket_pending"
    );
    e.handle(
        Command::StartServing {
            window: 1,
            staff: "S1".into(),
        },
        at("09:03"),
    )
    .unwrap();
    let ev = e.handle(call(1), at("09:10")).unwrap();
    assert!(matches!(
        ev[0],
        Event::TicketFinished {
            served_secs: 420,
            ..
        }
    ));
    assert_eq!(called(&ev), "A002");
}

#[test]
fn only_the_signed_in_staff_member_acts_at_a_window() {
    let mut e = engine(setup());
    e.handle(issue("SB"), at("09:00")).unwrap();
    let r = e
        .handle(
            Command::CallNext {
                window: 1,
                staff: "S2".into(),
            },
            at("09:01"),
        )
        .unwrap_err()
        .refusal;
    assert_eq!(r.code(), "not_signed_in");
}

#[test]
fn a_paused_window_cannot_call_until_resumed() {
    let mut s = setup();
    s.pause_alarm_minutes = Some(10);
    let mut e = engine(s);
    e.handle(issue("SB"), at("09:00")).unwrap();
    e.handle(
        Command::Pause {
            window: 1,
            staff: "S1".into(),
            reason: "午休".into(),
        },
        at("09:01"),
    )
    .unwrap();
    assert_eq!(
        e.handle(call(1), at("09:02")).unwrap_err().refusal,
        Refusal::WindowPaused(1)
    );
    assert_eq!(e.next_deadline(), at("09:11"));
    let ev = e.handle(Command::Tick, at("09:12")).unwrap();
    assert!(matches!(
        ev[0],
        Event::PauseAlarm {
            window: 1,
            paused_secs: 660
        }
    ));
    e.handle(
        Command::Resume {
            window: 1,
            staff: "S1".into(),
        },
        at("09:13"),
    )
    .unwrap();
    assert_eq!(called(&e.handle(call(1), at("09:14")).unwrap()), "A001");
}

#[test]
fn caps_and_quotas_refuse_with_a_reason() {
    let mut s = setup();
    s.services[0].daily_cap = Some(3);
    s.services[0].quota = Some(Quota {
        minutes: 30,
        max: 2,
    });
    let mut e = engine(s);
    e.handle(issue("SB"), at("09:00")).unwrap();
    e.handle(issue("SB"), at("09:10")).unwrap();
    let r = e.handle(issue("SB"), at("09:20")).unwrap_err().refusal;
    assert!(r.message(Lang::ZhCn).contains("09:30"));
    e.handle(issue("SB"), at("09:31")).unwrap();
    assert_eq!(
        e.handle(issue("SB"), at("09:32"))
            .unwrap_err()
            .refusal
            .code(),
        "daily_cap_reached"
    );
}

#[test]
fn a_citizen_may_take_only_the_daily_limit() {
    let mut s = setup();
    s.per_citizen_daily_limit = Some(1);
    let mut e = engine(s);
    let mine = |svc: &str| Command::Issue {
        token_hash: None,
        service: svc.into(),
        class: Class::Normal,
        idempotency_key: None,
        citizen: Some("h(id)".into()),
        channel: "k".into(),
        green_reason: None,
        proxy: false,
        issued_by: None,
    };
    e.handle(mine("SB"), at("09:00")).unwrap();
    assert_eq!(
        e.handle(mine("HJ"), at("09:01")).unwrap_err().refusal,
        Refusal::CitizenLimitReached(1)
    );
}

#[test]
fn a_desk_green_ticket_keeps_its_reason_and_issuer_and_is_called_first() {
    let mut e = engine(setup());
    e.handle(issue("SB"), at("09:00")).unwrap();
    let green = Command::Issue {
        token_hash: None,
        service: "SB".into(),
        class: Class::Green,
        idempotency_key: None,
        citizen: None,
        channel: "desk".into(),
        green_reason: Some("elderly".into()),
        proxy: true,
        issued_by: Some("D001".into()),
    };
    let events = e.handle(green, at("09:05")).unwrap();
    let t = issued(&events);
    assert_eq!(t.green_reason.as_deref(), Some("elderly"));
    assert!(t.proxy);
    assert_eq!(t.issued_by.as_deref(), Some("D001"));
    let json = serde_json::to_value(&events[0]).unwrap();
    assert_eq!(json["ticket"]["green_reason"], "elderly");
    assert_eq!(json["ticket"]["issued_by"], "D001");
    assert_eq!(json["ticket"]["proxy"], true);
    assert_eq!(called(&e.handle(call(1), at("09:06")).unwrap()), "A002");
    // A normal ticket carries none of it, and its event says nothing of it.
    let plain = e.handle(issue("SB"), at("09:07")).unwrap();
    let json = serde_json::to_value(&plain[0]).unwrap();
    assert!(json["ticket"].get("green_reason").is_none(), "{json}");
    assert!(json["ticket"].get("proxy").is_none(), "{json}");
}

#[test]
fn a_reason_on_a_normal_ticket_is_refused() {
    let mut e = engine(setup());
    let cmd = Command::Issue {
        token_hash: None,
        service: "SB".into(),
        class: Class::Normal,
        idempotency_key: None,
        citizen: None,
        channel: "desk".into(),
        green_reason: Some("elderly".into()),
        proxy: false,
        issued_by: None,
    };
    assert_eq!(
        e.handle(cmd, at("09:00")).unwrap_err().refusal,
        Refusal::BadText("green_reason")
    );
}

#[test]
fn an_appointments_mobile_is_kept_hashed_until_check_in_and_never_in_its_event() {
    let mut e = engine(setup());
    let booked = e
        .handle(
            Command::Book {
                service: "SB".into(),
                slot_at: at("09:30"),
                code: "Y7".into(),
                citizen: None,
                mobile: Some("hash-of-mobile".into()),
                mobile_masked: Some("138****5678".into()),
            },
            at("09:00"),
        )
        .unwrap();
    let json = serde_json::to_string(&booked).unwrap();
    assert!(!json.contains("hash-of-mobile"), "{json}");
    assert!(json.contains("138****5678"), "{json}");
    assert_eq!(
        e.appointment("Y7").and_then(|a| a.mobile.as_deref()),
        Some("hash-of-mobile")
    );
    e.handle(
        Command::CheckIn {
            token_hash: None,
            code: "Y7".into(),
            idempotency_key: None,
            channel: "desk".into(),
        },
        at("09:20"),
    )
    .unwrap();
    let a = e.appointment("Y7").unwrap();
    assert_eq!(
        (a.mobile.as_deref(), a.mobile_masked.as_deref()),
        (None, None)
    );
}

#[test]
fn appointment_check_in_is_allowed_only_in_its_window() {
    let mut e = engine(setup());
    e.handle(
        Command::Book {
            service: "SB".into(),
            slot_at: at("11:00"),
            code: "Y9".into(),
            citizen: None,
            mobile: None,
            mobile_masked: None,
        },
        at("08:40"),
    )
    .unwrap();
    let early = e
        .handle(
            Command::CheckIn {
                token_hash: None,
                code: "Y9".into(),
                idempotency_key: None,
                channel: "k".into(),
            },
            at("09:59"),
        )
        .unwrap_err();
    assert_eq!(early.refusal.code(), "check_in_too_early");
    assert!(early.refusal.message(Lang::ZhCn).contains("10:00"));
    let late = e
        .handle(
            Command::CheckIn {
                token_hash: None,
                code: "Y9".into(),
                idempotency_key: None,
                channel: "k".into(),
            },
            at("11:21"),
        )
        .unwrap_err();
    assert_eq!(late.refusal, Refusal::CheckInTooLate);
}

#[test]
fn a_bad_rating_without_a_reason_is_flagged_and_a_quick_second_press_replaces_the_first() {
    let mut e = engine(setup());
    let id = issued(&e.handle(issue("SB"), at("09:00")).unwrap()).id;
    e.handle(call(1), at("09:01")).unwrap();
    e.handle(
        Command::Finish {
            window: 1,
            staff: "S1".into(),
            case_no: Some("BJ2026-1".into()),
        },
        at("09:05"),
    )
    .unwrap();
    let rate = |level, reasons: Vec<&str>| Command::Rate {
        ticket: id,
        level,
        reasons: reasons.into_iter().map(String::from).collect(),
        comment: None,
        channel: "pad-1".into(),
        window: Some(1),
    };
    let ev = e
        .handle(rate(Level::Dissatisfied, vec![]), at("09:05:10"))
        .unwrap();
    let Event::RatingRecorded {
        rating,
        replaced: false,
    } = &ev[0]
    else {
        panic!("{ev:?}")
    };
    assert!(rating.reason_pending);
    assert_eq!(rating.case_no.as_deref(), Some("BJ2026-1"));
    assert_eq!(
        (rating.window, rating.staff.as_deref()),
        (Some(1), Some("S1"))
    );
    let ev = e
        .handle(rate(Level::Satisfied, vec![]), at("09:05:20"))
        .unwrap();
    assert!(matches!(
        ev[0],
        Event::RatingRecorded { replaced: true, .. }
    ));
    assert_eq!(
        e.handle(rate(Level::Satisfied, vec![]), at("09:07"))
            .unwrap_err()
            .refusal
            .code(),
        "already_rated"
    );
    assert_eq!(
        e.handle(rate(Level::Dissatisfied, vec!["不在列表"]), at("09:05:25"))
            .unwrap_err()
            .refusal
            .code(),
        "unknown_reason"
    );
}

#[test]
fn a_rating_is_replaced_only_from_the_channel_that_made_it() {
    let mut e = engine(setup());
    let id = issued(&e.handle(issue("SB"), at("09:00")).unwrap()).id;
    e.handle(call(1), at("09:01")).unwrap();
    e.handle(
        Command::Finish {
            window: 1,
            staff: "S1".into(),
            case_no: None,
        },
        at("09:05"),
    )
    .unwrap();
    let rate = |level, channel: &str, window| Command::Rate {
        ticket: id,
        level,
        reasons: Vec::new(),
        comment: None,
        channel: channel.into(),
        window,
    };
    e.handle(rate(Level::VerySatisfied, "pad-1", Some(1)), at("09:05:10"))
        .unwrap();
    // A kiosk (or anyone else) within the replace window cannot overwrite the pad's.
    let other = e
        .handle(rate(Level::VeryDissatisfied, "kiosk", None), at("09:05:12"))
        .unwrap_err();
    assert_eq!(other.refusal.code(), "already_rated");
    let same = e
        .handle(rate(Level::Satisfied, "pad-1", Some(1)), at("09:05:14"))
        .unwrap();
    assert!(matches!(
        same[0],
        Event::RatingRecorded { replaced: true, .. }
    ));
}

#[test]
fn a_pad_rates_only_what_its_window_finished_and_only_for_ten_minutes() {
    let mut e = engine(setup());
    let id = issued(&e.handle(issue("SB"), at("09:00")).unwrap()).id;
    let rate = |window, ts: &str, e: &mut Engine| {
        e.handle(
            Command::Rate {
                ticket: id,
                level: Level::Satisfied,
                reasons: vec![],
                comment: None,
                channel: "window-pad-x".into(),
                window,
            },
            at(ts),
        )
        .map_err(|r| r.refusal.code())
    };
    // Waiting, not yet served: nothing to rate.
    assert_eq!(
        rate(Some(1), "09:00:30", &mut e).unwrap_err(),
        "not_finished"
    );
    e.handle(call(1), at("09:01")).unwrap();
    assert_eq!(rate(None, "09:01:30", &mut e).unwrap_err(), "not_finished");
    e.handle(
        Command::Finish {
            window: 1,
            staff: "S1".into(),
            case_no: None,
        },
        at("09:05"),
    )
    .unwrap();
    // Window 3's pad cannot rate a citizen served at window 1.
    assert_eq!(
        rate(Some(3), "09:05:10", &mut e).unwrap_err(),
        "not_finished_here"
    );
    // The default rating window is ten minutes after finish.
    assert_eq!(
        hallq_engine::setup::RatingRules::default().accept_within_minutes,
        10,
        "the documented default"
    );
    assert!(rate(Some(1), "09:14:50", &mut e).is_ok());
    assert_eq!(
        rate(Some(1), "09:15:30", &mut e).unwrap_err(),
        "rating_expired"
    );
}

#[test]
fn a_long_wait_raises_one_warning_per_ticket() {
    let mut s = setup();
    s.services[0].wait_alarm_minutes = Some(30);
    s.services[0].queue_alarm = Some(1);
    let mut e = engine(s);
    e.handle(issue("SB"), at("09:00")).unwrap();
    let ev = e.handle(issue("SB"), at("09:01")).unwrap();
    assert!(matches!(&ev[1], Event::QueueAlarm { waiting: 2, .. }));
    assert_eq!(e.next_deadline(), at("09:30"));
    let ev = e.handle(Command::Tick, at("09:31")).unwrap();
    let warned: Vec<_> = ev
        .iter()
        .filter(|e| matches!(e, Event::WaitAlarm { .. }))
        .collect();
    assert_eq!(warned.len(), 2);
    assert!(e.handle(Command::Tick, at("09:40")).unwrap().is_empty());
}

#[test]
fn a_restored_engine_continues_where_the_old_one_stopped() {
    let mut e = engine(setup());
    for m in 0..5 {
        e.handle(
            issue(if m % 2 == 0 { "SB" } else { "HJ" }),
            at(&format!("09:0{m}")),
        )
        .unwrap();
    }
    e.handle(call(3), at("09:06")).unwrap();
    let snap = e.snapshot();
    let mut back = Engine::restore(setup(), snap.clone()).unwrap();
    assert_eq!(back.snapshot(), snap);
    let a = e.handle(issue("SB"), at("09:07")).unwrap();
    let b = back.handle(issue("SB"), at("09:07")).unwrap();
    assert_eq!(a, b);
    e.handle(
        Command::StartServing {
            window: 3,
            staff: "S3".into(),
        },
        at("09:08"),
    )
    .unwrap();
    back.handle(
        Command::StartServing {
            window: 3,
            staff: "S3".into(),
        },
        at("09:08"),
    )
    .unwrap();
    assert_eq!(
        e.handle(call(3), at("09:09")).unwrap(),
        back.handle(call(3), at("09:09")).unwrap()
    );
}

fn unmanned(ev: &[Event]) -> Vec<(u32, i64)> {
    ev.iter()
        .filter_map(|e| match e {
            Event::UnmannedAlarm {
                window,
                unmanned_secs,
            } => Some((*window, *unmanned_secs)),
            _ => None,
        })
        .collect()
}

fn sign_out(window: u32) -> Command {
    Command::SignOut {
        window,
        staff: format!("S{window}"),
    }
}

#[test]
fn a_window_left_without_staff_in_office_hours_warns_once() {
    let mut s = setup();
    s.unmanned_alarm_minutes = Some(15);
    let mut e = engine(s);
    e.handle(sign_out(2), at("09:10")).unwrap();
    assert_eq!(e.next_deadline(), at("09:25"));
    assert!(unmanned(&e.handle(Command::Tick, at("09:20")).unwrap()).is_empty());
    let ev = e.handle(Command::Tick, at("09:26")).unwrap();
    assert_eq!(unmanned(&ev), vec![(2, 960)]);
    assert_eq!(e.windows()[&2].unmanned_alarm_at, Some(at("09:26")));
    assert!(
        unmanned(&e.handle(Command::Tick, at("09:50")).unwrap()).is_empty(),
        "raised once per empty stretch"
    );
    // Someone comes and goes again: a new stretch, a new warning after the limit.
    e.handle(
        Command::SignIn {
            window: 2,
            staff: "S2".into(),
            role: Role::B,
        },
        at("10:00"),
    )
    .unwrap();
    e.handle(sign_out(2), at("10:05")).unwrap();
    assert_eq!(e.next_deadline(), at("10:20"));
    assert_eq!(
        unmanned(&e.handle(Command::Tick, at("10:20")).unwrap()),
        vec![(2, 900)]
    );
}

#[test]
fn nobody_at_the_windows_before_opening_counts_from_the_opening() {
    let mut s = setup();
    s.unmanned_alarm_minutes = Some(15);
    let mut e = Engine::new(s, at("08:00")).unwrap();
    assert_eq!(e.next_deadline(), at("09:15"));
    assert!(unmanned(&e.handle(Command::Tick, at("08:59")).unwrap()).is_empty());
    let ev = e.handle(Command::Tick, at("09:15")).unwrap();
    assert_eq!(unmanned(&ev), vec![(1, 900), (2, 900), (3, 900)]);
}

#[test]
fn an_empty_window_over_the_lunch_break_warns_only_after_the_limit_of_afternoon_hours() {
    let mut s = setup();
    s.unmanned_alarm_minutes = Some(15);
    let mut e = engine(s);
    e.handle(sign_out(1), at("11:50")).unwrap();
    assert!(unmanned(&e.handle(Command::Tick, at("12:30")).unwrap()).is_empty());
    assert_eq!(e.next_deadline(), at("13:45"));
    assert_eq!(
        unmanned(&e.handle(Command::Tick, at("13:46")).unwrap()),
        vec![(1, 960)]
    );
}

#[test]
fn a_window_configured_closed_is_never_unmanned() {
    let mut s = setup();
    s.unmanned_alarm_minutes = Some(15);
    s.windows[2].open = false;
    let mut e = Engine::new(s, at("08:00")).unwrap();
    let ev = e.handle(Command::Tick, at("09:30")).unwrap();
    assert_eq!(unmanned(&ev), vec![(1, 1800), (2, 1800)]);
}

#[test]
fn without_the_setting_an_empty_window_raises_nothing() {
    let mut e = engine(setup());
    e.handle(sign_out(3), at("09:00")).unwrap();
    assert!(unmanned(&e.handle(Command::Tick, at("16:00")).unwrap()).is_empty());
}

#[test]
fn the_hall_says_it_is_closed_before_a_citizen_picks_a_service_and_the_issue_agrees() {
    let mut e = engine(setup());
    // Default hours: 09:00–12:00 and 13:30–17:30 on weekdays.
    assert_eq!(
        e.issuing_at(at("08:45")),
        Err(Closed::BeforeOpening(
            chrono::NaiveTime::from_hms_opt(9, 0, 0).unwrap()
        ))
    );
    assert_eq!(e.issuing_at(at("10:00")), Ok(()));
    assert!(matches!(e.issuing_at(at("12:30")), Err(Closed::Break(_))));
    // What the question says is what an issue at that moment gets.
    for t in ["08:45", "10:00", "12:30", "18:00"] {
        let asked = e.issuing_at(at(t));
        let issued = e.handle(issue("SB"), at(t));
        match (asked, issued) {
            (Ok(()), Ok(_)) => {}
            (Err(c), Err(r)) => assert_eq!(r.refusal, Refusal::Closed(c), "at {t}"),
            (a, i) => panic!("at {t}: asked {a:?}, issue {:?}", i.map(|_| ())),
        }
    }
    // Time never runs backwards: once 18:00 was seen, an earlier clock reading still
    // answers for 18:00, as a command would.
    assert_eq!(e.issuing_at(at("10:00")), Err(Closed::AfterClosing));
}

#[test]
fn a_revoked_sign_in_leaves_the_window_unstaffed_for_that_reason() {
    let mut e = engine(setup());
    let ev = e
        .handle(
            Command::RevokeSignIn {
                window: 2,
                staff: "S2".into(),
            },
            at("09:10"),
        )
        .unwrap();
    assert_eq!(
        ev,
        vec![Event::StaffSignedOut {
            window: 2,
            staff: "S2".into(),
            reason: SignOutReason::AccountChanged,
        }]
    );
    assert!(e.windows()[&2].staff.is_none());
    assert!(
        e.handle(
            Command::RevokeSignIn {
                window: 2,
                staff: "S2".into(),
            },
            at("09:11"),
        )
        .is_err(),
        "nobody left to sign out"
    );
}
