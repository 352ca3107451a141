//! Property tests: random command streams over a small hall must keep the engine's
//! promises whatever the order, timing or input.

mod common;
use std::collections::{HashMap, HashSet};

use common::*;
use hallq_engine::*;
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Issue(usize, bool, Option<u8>),
    Call(u32),
    CallNumber(u32, u8),
    Recall(u32),
    Start(u32),
    NoShow(u32),
    TransferService(u32, usize),
    TransferWindow(u32, u32),
    Finish(u32),
    Pause(u32),
    Resume(u32),
    Cancel(u64),
    Rate(u64, usize),
    Book(usize, u8, i64),
    CheckIn(u8),
    Tick,
}

const SERVICES: [&str; 2] = ["SB", "HJ"];

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..2usize, any::<bool>(), proptest::option::of(0..8u8)).prop_map(|(s, g, k)| Op::Issue(s, g, k)),
        5 => (1..4u32).prop_map(Op::Call),
        1 => (1..4u32, 1..30u8).prop_map(|(w, n)| Op::CallNumber(w, n)),
        1 => (1..4u32).prop_map(Op::Recall),
        3 => (1..4u32).prop_map(Op::Start),
        1 => (1..4u32).prop_map(Op::NoShow),
        1 => (1..4u32, 0..2usize).prop_map(|(w, s)| Op::TransferService(w, s)),
        1 => (1..4u32, 1..4u32).prop_map(|(w, t)| Op::TransferWindow(w, t)),
        3 => (1..4u32).prop_map(Op::Finish),
        1 => (1..4u32).prop_map(Op::Pause),
        1 => (1..4u32).prop_map(Op::Resume),
        1 => (1..40u64).prop_map(Op::Cancel),
        1 => (1..40u64, 0..5usize).prop_map(|(t, l)| Op::Rate(t, l)),
        1 => (0..2usize, 0..6u8, 0..180i64).prop_map(|(s, c, m)| Op::Book(s, c, m)),
        1 => (0..6u8).prop_map(Op::CheckIn),
        1 => Just(Op::Tick),
    ]
}

fn to_command(op: &Op, now: Timestamp) -> Command {
    let staff = |w: u32| format!("S{w}");
    match op.clone() {
        Op::Issue(s, green, key) => Command::Issue {
            token_hash: None,
            service: SERVICES[s].into(),
            class: if green { Class::Green } else { Class::Normal },
            idempotency_key: key.map(|k| format!("key-{k}")),
            citizen: None,
            channel: "prop".into(),
            green_reason: green.then(|| "elderly".into()),
            proxy: key.is_some_and(|k| k % 2 == 0),
            issued_by: green.then(|| "D001".into()),
        },
        Op::Call(w) => Command::CallNext {
            window: w,
            staff: staff(w),
        },
        Op::CallNumber(w, n) => Command::CallNumber {
            window: w,
            staff: staff(w),
            number: format!("A{n:03}"),
        },
        Op::Recall(w) => Command::Recall {
            window: w,
            staff: staff(w),
        },
        Op::Start(w) => Command::StartServing {
            window: w,
            staff: staff(w),
        },
        Op::NoShow(w) => Command::NoShow {
            window: w,
            staff: staff(w),
        },
        Op::TransferService(w, s) => Command::Transfer {
            window: w,
            staff: staff(w),
            to: TransferTarget::Service(SERVICES[s].into()),
        },
        Op::TransferWindow(w, t) => Command::Transfer {
            window: w,
            staff: staff(w),
            to: TransferTarget::Window(t),
        },
        Op::Finish(w) => Command::Finish {
            window: w,
            staff: staff(w),
            case_no: None,
        },
        Op::Pause(w) => Command::Pause {
            window: w,
            staff: staff(w),
            reason: "break".into(),
        },
        Op::Resume(w) => Command::Resume {
            window: w,
            staff: staff(w),
        },
        Op::Cancel(t) => Command::Cancel {
            ticket: TicketId(t),
            by: "citizen".into(),
            note: None,
        },
        Op::Rate(t, l) => Command::Rate {
            ticket: TicketId(t),
            level: Level::ALL[l],
            reasons: if Level::ALL[l].is_bad() {
                vec!["其他".into()]
            } else {
                vec![]
            },
            comment: None,
            channel: "pad".into(),
            window: None,
        },
        Op::Book(s, c, m) => Command::Book {
            service: SERVICES[s].into(),
            slot_at: now.plus_minutes(m),
            code: format!("Y{c}"),
            citizen: None,
            mobile: None,
            mobile_masked: None,
        },
        Op::CheckIn(c) => Command::CheckIn {
            token_hash: None,
            code: format!("Y{c}"),
            idempotency_key: None,
            channel: "prop".into(),
        },
        Op::Tick => Command::Tick,
    }
}

fn hall() -> Setup {
    let mut s = setup();
    s.services[0].daily_cap = Some(25);
    s.services[1].wait_alarm_minutes = Some(20);
    s.windows[2].green_channel = true;
    s.calendar.always_open = true;
    s
}

/// Runs the ops, checking invariants at every step; returns all events.
fn run(ops: &[(Op, i64)]) -> (Vec<Event>, Engine) {
    let mut e = engine(hall());
    let mut now = at("09:00");
    let mut all = Vec::new();
    let mut finished = HashSet::new();
    let mut numbers: HashSet<(chrono::NaiveDate, String)> = HashSet::new();
    let mut keys: HashMap<String, TicketId> = HashMap::new();
    let mut issued_per_day: HashMap<(chrono::NaiveDate, String), u32> = HashMap::new();
    for (op, step) in ops {
        now = now.plus_secs(*step);
        let before: Vec<Ticket> = e.tickets().cloned().collect();
        let cmd = to_command(op, now);
        let events = match e.handle(cmd.clone(), now) {
            Ok(ev) => ev,
            Err(refused) => refused.events,
        };
        if events.iter().any(|e| matches!(e, Event::DayStarted { .. })) {
            keys.clear(); // retry keys are the store's business across days
        }
        if let Command::Issue {
            idempotency_key: Some(k),
            ..
        } = &cmd
        {
            let id = e.ticket_by_key(k).map(|t| t.id);
            if let (Some(prev), Some(id)) = (keys.get(k), id) {
                assert_eq!(*prev, id, "a retry key made a second ticket");
            }
            if let Some(id) = id {
                keys.insert(k.clone(), id);
            }
        }
        for ev in &events {
            match ev {
                Event::TicketIssued { ticket, .. } => {
                    assert!(
                        numbers.insert((ticket.day, ticket.number.clone())),
                        "number {} repeated",
                        ticket.number
                    );
                    *issued_per_day
                        .entry((ticket.day, ticket.service.clone()))
                        .or_default() += 1;
                }
                Event::TicketFinished { ticket, .. } => {
                    assert!(finished.insert(*ticket), "ticket {ticket} finished twice")
                }
                Event::TicketCalled {
                    ticket,
                    service,
                    class,
                    direct: false,
                    window,
                    ..
                } => {
                    let called = before
                        .iter()
                        .find(|t| t.id == *ticket)
                        .expect("called ticket existed");
                    if *class != Class::Appointment && called.reserved_window.is_none() {
                        let jumped = before.iter().find(|t| {
                            t.state.is_queued()
                                && t.service == *service
                                && t.class == *class
                                && t.reserved_window.is_none()
                                && (t.queue_at, t.id) < (called.queue_at, called.id)
                        });
                        assert!(
                            jumped.is_none(),
                            "window {window} called {} before older {:?}",
                            called.number,
                            jumped.map(|t| &t.number)
                        );
                    }
                }
                _ => {}
            }
        }
        let mut current = HashSet::new();
        for w in e.windows().values() {
            if let Some(id) = w.current {
                assert!(current.insert(id), "ticket {id} is current at two windows");
                let t = e.ticket(id).expect("current ticket exists");
                assert!(matches!(
                    t.state,
                    TicketState::Called | TicketState::Serving
                ));
                assert_eq!(t.window, Some(w.number));
            }
        }
        all.extend(events);
    }
    for ((_, svc), n) in issued_per_day {
        if svc == "SB" {
            assert!(n <= 25, "daily cap exceeded: {n}");
        }
    }
    (all, e)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn invariants_hold_for_any_command_stream(ops in proptest::collection::vec((op(), 0..900i64), 1..250)) {
        run(&ops);
    }

    #[test]
    fn the_same_commands_give_the_same_events(ops in proptest::collection::vec((op(), 0..900i64), 1..120)) {
        let (a, _) = run(&ops);
        let (b, _) = run(&ops);
        prop_assert_eq!(a, b);
    }

    #[test]
    fn a_restored_engine_behaves_exactly_like_the_original(
        ops in proptest::collection::vec((op(), 0..900i64), 1..150),
        tail in proptest::collection::vec((op(), 0..900i64), 1..60),
    ) {
        let (_, mut original) = run(&ops);
        let mut restored = Engine::restore(hall(), original.snapshot()).unwrap();
        prop_assert_eq!(restored.snapshot(), original.snapshot());
        let mut now = original.now();
        for (op, step) in &tail {
            now = now.plus_secs(*step);
            let cmd = to_command(op, now);
            prop_assert_eq!(original.handle(cmd.clone(), now), restored.handle(cmd, now));
        }
    }

    #[test]
    fn a_restored_engine_gives_the_same_wait_estimates(ops in proptest::collection::vec((op(), 0..900i64), 1..200)) {
        let (_, original) = run(&ops);
        let restored = Engine::restore(hall(), original.snapshot()).unwrap();
        for code in SERVICES {
            let mut last = 0;
            for ahead in 0..40 {
                let m = original.estimate_wait_minutes(code, ahead);
                prop_assert_eq!(m, restored.estimate_wait_minutes(code, ahead), "{} with {} ahead", code, ahead);
                prop_assert!(m >= last, "{} with {} ahead: {} < {}", code, ahead, m, last);
                last = m;
            }
        }
    }

    #[test]
    fn changes_taken_after_each_command_rebuild_the_same_engine(ops in proptest::collection::vec((op(), 0..900i64), 1..200)) {
        // What the store persists (the change sets) must be enough to restore from.
        let mut e = engine(hall());
        let mut rows: HashMap<TicketId, Ticket> = HashMap::new();
        let mut wins: HashMap<u32, WindowState> = HashMap::new();
        let mut apps: HashMap<String, Appointment> = HashMap::new();
        let mut rates: HashMap<TicketId, Rating> = HashMap::new();
        let mut now = at("09:00");
        let mut absorb = |c: Changes| {
            for t in c.tickets { rows.insert(t.id, t); }
            for w in c.windows { wins.insert(w.number, w); }
            for a in c.appointments { apps.insert(a.code.clone(), a); }
            for r in c.ratings { rates.insert(r.ticket, r); }
        };
        absorb(e.take_changes());
        for (op, step) in &ops {
            now = now.plus_secs(*step);
            let _ = e.handle(to_command(op, now), now);
            absorb(e.take_changes());
        }
        let day = e.day();
        let mut tickets: Vec<Ticket> = rows.into_values().filter(|t| t.day == day || !t.state.is_terminal()).collect();
        tickets.sort_by_key(|t| t.id);
        let snap = Snapshot {
            now: e.now(),
            next_id: tickets.iter().map(|t| t.id.0 + 1).max().unwrap_or(1).max(e.snapshot().next_id),
            tickets,
            windows: wins.into_values().collect(),
            appointments: apps.into_values().filter(|a| !a.missed && (a.ticket.is_none() || e.appointment(&a.code).is_some())).collect(),
            ratings: rates.into_values().filter(|r| e.ticket(r.ticket).is_some()).collect(),
        };
        let restored = Engine::restore(hall(), snap).unwrap();
        prop_assert_eq!(restored.snapshot(), e.snapshot());
    }
}
