//! The queue state machine: `handle(command, now)` decides, changes state and says what
//! happened. One engine serves one hall; whoever drives it serialises commands, so two
//! windows calling "at the same instant" are simply two commands in some order.

use std::collections::{BTreeMap, BTreeSet};

/// Maps keyed by ids and short codes. foldhash with a fixed seed instead of SipHash:
/// about a seventh of the engine's time went to hashing, and a fixed seed keeps even
/// iteration order the same from run to run. Keys come from configuration and from
/// kiosks that hold a key, not from anonymous input, so flooding attacks are not a concern.
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::FixedState>;

use chrono::{NaiveDate, Timelike};
use serde::{Deserialize, Serialize};

use crate::calendar;
use crate::command::{Command, TransferTarget};
use crate::estimate::{self, Pace};
use crate::event::{Alarm, CancelReason, Event, SignOutReason};
use crate::model::{
    Appointment, Class, Level, Rating, Role, Ticket, TicketId, TicketState, WindowState,
};
use crate::queue::{Candidate, Lines};
use crate::refusal::Refusal;
use crate::setup::{NoShowPolicy, Setup, SetupError};
use crate::text::unsafe_in_text;
use crate::time::{LocalClock, Timestamp};

/// Longest free text (comments, reasons, case numbers) the engine keeps, in characters.
pub const MAX_TEXT: usize = 500;

/// How far ahead an appointment may be booked: a year and a day, in milliseconds.
pub const MAX_BOOKING_AHEAD_MS: i64 = 366 * 24 * 3600 * 1000;

/// A refused command. Time may still have moved the hall on before the refusal (a day
/// rolled over, a warning fell due): those events happened and must be recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// Why the command was refused.
    pub refusal: Refusal,
    /// What happened anyway because time passed.
    pub events: Vec<Event>,
}

/// Everything needed to bring an engine back after a restart. The store keeps these
/// rows current in the same transaction as the events that changed them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The latest instant the engine had seen; time never runs backwards past it.
    pub now: Timestamp,
    /// The next ticket id to hand out.
    pub next_id: u64,
    /// The current service day's tickets and any older ones still open.
    pub tickets: Vec<Ticket>,
    /// Window states.
    pub windows: Vec<WindowState>,
    /// Appointments not yet used or missed, and today's.
    pub appointments: Vec<Appointment>,
    /// Ratings of the current day's tickets.
    pub ratings: Vec<Rating>,
}

/// Copies of what changed since the last `take_changes`, for the store to persist.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// Tickets, in their latest state.
    pub tickets: Vec<Ticket>,
    /// Windows.
    pub windows: Vec<WindowState>,
    /// Appointments.
    pub appointments: Vec<Appointment>,
    /// Ratings.
    pub ratings: Vec<Rating>,
}

impl Changes {
    /// Nothing changed.
    pub fn is_empty(&self) -> bool {
        self.tickets.is_empty()
            && self.windows.is_empty()
            && self.appointments.is_empty()
            && self.ratings.is_empty()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Due {
    Wait(TicketId),
    Overtime(TicketId),
    Pause(u32),
}

/// What the callers of `update_ticket` need of the changed ticket: a few fields rather
/// than a clone of the whole ticket on every change (the engine's hot path).
struct Touched {
    number: String,
    service: String,
    class: Class,
    issued_at: Timestamp,
    serving_at: Option<Timestamp>,
    recalls: u32,
}

#[derive(Default)]
struct Dirty {
    tickets: BTreeSet<TicketId>,
    retired: Vec<Ticket>,
    retired_appointments: Vec<Appointment>,
    windows: BTreeSet<u32>,
    appointments: BTreeSet<String>,
    ratings: BTreeSet<TicketId>,
}

/// Per-service figures for the queue overview.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceLoad {
    /// Service code.
    pub code: String,
    /// Tickets waiting (including transfers into it).
    pub waiting: u32,
    /// Tickets issued today.
    pub issued: u32,
    /// Windows signed in, not paused, serving it.
    pub open_windows: u32,
    /// Estimated minutes for a ticket taken now.
    pub estimated_wait_minutes: u32,
    /// Seconds the longest-waiting ticket has waited.
    pub longest_wait_secs: i64,
}

/// The queue engine.
pub struct Engine {
    setup: Setup,
    clock: LocalClock,
    service_index: HashMap<String, usize>,
    window_index: BTreeMap<u32, usize>,
    now: Timestamp,
    day: NaiveDate,
    next_id: u64,
    // Entries live in one vector beside a small index table: growing the day's map
    // reallocates the vector (moved by the kernel, not copied) and rebuilds only the
    // index, instead of briefly holding every ticket twice as a hash map's rehash does.
    tickets: indexmap::IndexMap<TicketId, Ticket, foldhash::fast::FixedState>,
    by_number: HashMap<String, TicketId>,
    by_key: HashMap<String, TicketId>,
    lines: Vec<Lines>,
    reserved: BTreeMap<u32, Lines>,
    waiting: Vec<u32>,
    issued: Vec<u32>,
    slices: HashMap<(usize, u32), u32>,
    citizens: HashMap<String, u32>,
    windows: BTreeMap<u32, WindowState>,
    appointments: HashMap<String, Appointment>,
    ratings: HashMap<TicketId, Rating>,
    served: Vec<(i64, i64)>,
    /// The measured pace of each service today, for wait estimates.
    pace: Vec<Pace>,
    queue_alarmed: Vec<bool>,
    deadlines: BTreeSet<(Timestamp, Due)>,
    dirty: Dirty,
}

impl Engine {
    /// A fresh engine with no history, its clock at `now`.
    pub fn new(setup: Setup, now: Timestamp) -> Result<Engine, SetupError> {
        Engine::restore(
            setup,
            Snapshot {
                now,
                next_id: 1,
                ..Snapshot::default()
            },
        )
    }

    /// Rebuilds an engine from stored rows. Indices, counters and deadlines are derived
    /// from the tickets themselves, so there is nothing else to keep in step.
    pub fn restore(setup: Setup, snap: Snapshot) -> Result<Engine, SetupError> {
        setup.validate()?;
        let clock = LocalClock::new(setup.utc_offset_minutes);
        let n = setup.services.len();
        let service_index = setup
            .services
            .iter()
            .enumerate()
            .map(|(i, s)| (s.code.clone(), i))
            .collect();
        let window_index = setup
            .windows
            .iter()
            .enumerate()
            .map(|(i, w)| (w.number, i))
            .collect();
        let mut windows: BTreeMap<u32, WindowState> = setup
            .windows
            .iter()
            .map(|w| {
                (
                    w.number,
                    WindowState {
                        number: w.number,
                        ..WindowState::default()
                    },
                )
            })
            .collect();
        for w in snap.windows {
            if windows.contains_key(&w.number) {
                windows.insert(w.number, w);
            }
        }
        let day = clock.service_day(snap.now, setup.day_starts_at);
        let mut engine = Engine {
            clock,
            service_index,
            window_index,
            now: snap.now,
            day,
            next_id: snap.next_id.max(1),
            tickets: indexmap::IndexMap::default(),
            by_number: HashMap::default(),
            by_key: HashMap::default(),
            lines: vec![Lines::default(); n],
            reserved: BTreeMap::new(),
            waiting: vec![0; n],
            issued: vec![0; n],
            slices: HashMap::default(),
            citizens: HashMap::default(),
            windows,
            appointments: snap
                .appointments
                .into_iter()
                .map(|a| (a.code.clone(), a))
                .collect(),
            ratings: snap.ratings.into_iter().map(|r| (r.ticket, r)).collect(),
            served: vec![(0, 0); n],
            pace: vec![Pace::default(); n],
            queue_alarmed: vec![false; n],
            deadlines: BTreeSet::new(),
            dirty: Dirty::default(),
            setup,
        };
        let mut tickets = snap.tickets;
        tickets.sort_by_key(|t| t.id);
        // The day's first calls in the order they happened replay each service's pace.
        let mut calls: Vec<(Timestamp, Timestamp, usize)> = tickets
            .iter()
            .filter(|t| t.day == engine.day)
            .filter_map(|t| Some((t.called_at?, t.issued_at, engine.pace_index(t)?)))
            .collect();
        calls.sort();
        for (at, issued, s) in calls {
            engine.pace[s].called(issued, at);
        }
        for t in tickets {
            engine.next_id = engine.next_id.max(t.id.0 + 1);
            engine.adopt(t);
        }
        for (&number, w) in &engine.windows {
            if let (Some((since, _)), Some(limit), false) =
                (&w.paused, engine.setup.pause_alarm_minutes, w.pause_alarmed)
            {
                engine
                    .deadlines
                    .insert((since.plus_minutes(i64::from(limit)), Due::Pause(number)));
            }
        }
        for (i, alarmed) in engine.queue_alarmed.iter_mut().enumerate() {
            *alarmed = engine.setup.services[i]
                .queue_alarm
                .is_some_and(|a| engine.waiting[i] > a);
        }
        Ok(engine)
    }

    /// Indexes one stored ticket as if it had just reached its current state.
    fn adopt(&mut self, t: Ticket) {
        let Some(&s) = self.service_index.get(&t.service) else {
            return;
        };
        let origin = self
            .service_index
            .get(&t.origin_service)
            .copied()
            .unwrap_or(s);
        self.by_number.insert(t.number.clone(), t.id);
        if let Some(k) = &t.idempotency_key {
            self.by_key.insert(k.clone(), t.id);
        }
        if t.day == self.day {
            self.issued[origin] = self.issued[origin].max(t.seq);
            if t.class != Class::Appointment {
                *self
                    .slices
                    .entry((origin, self.slice_of(t.issued_at, origin)))
                    .or_insert(0) += 1;
            }
            if let Some(c) = &t.citizen {
                *self.citizens.entry(c.clone()).or_insert(0) += 1;
            }
        }
        if t.state.is_queued() {
            self.enqueue(&t);
        }
        if t.state == TicketState::Finished
            && let (Some(start), Some(end)) = (t.serving_at.or(t.called_at), t.closed_at)
        {
            let e = &mut self.served[s];
            e.0 += end.secs_since(start);
            e.1 += 1;
        }
        self.arm_deadlines(&t);
        self.tickets.insert(t.id, t);
    }

    /// The setup in force.
    pub fn setup(&self) -> &Setup {
        &self.setup
    }

    /// The latest instant seen.
    pub fn now(&self) -> Timestamp {
        self.now
    }

    /// The current service day.
    pub fn day(&self) -> NaiveDate {
        self.day
    }

    /// The hall's wall clock.
    pub fn clock(&self) -> LocalClock {
        self.clock
    }

    /// Whether the hall issues tickets at `at` (or at the latest instant seen, if that
    /// is later, as a command would), and if not, why. The kiosk asks before a citizen
    /// picks a service, so that a closed hall says so on its first screen instead of
    /// refusing after the choice. Caps and quotas are per service and stay with the
    /// issue itself.
    pub fn issuing_at(&self, at: Timestamp) -> Result<(), crate::refusal::Closed> {
        calendar::check_open(&self.setup.calendar, self.clock.local(at.max(self.now)))
    }

    /// A ticket of the current day (or one still open from before).
    pub fn ticket(&self, id: TicketId) -> Option<&Ticket> {
        self.tickets.get(&id)
    }

    /// The ticket a retry key made, if it was made today.
    pub fn ticket_by_key(&self, key: &str) -> Option<&Ticket> {
        self.by_key.get(key).and_then(|id| self.tickets.get(id))
    }

    /// A ticket of the current day by its printed number.
    pub fn ticket_by_number(&self, number: &str) -> Option<&Ticket> {
        self.by_number
            .get(number)
            .and_then(|id| self.tickets.get(id))
    }

    /// All tickets held, in no particular order.
    pub fn tickets(&self) -> impl Iterator<Item = &Ticket> {
        self.tickets.values()
    }

    /// Window states by number.
    pub fn windows(&self) -> &BTreeMap<u32, WindowState> {
        &self.windows
    }

    /// Whether `setup` could replace the one in force without stranding anyone: every
    /// open ticket's service and every window with staff or a citizen at it must still
    /// be there. The error's key is `services` or `windows`.
    pub fn fits(&self, setup: &Setup) -> Result<(), crate::SetupError> {
        let mut open: Vec<_> = self
            .tickets()
            .filter(|t| !t.state.is_terminal())
            .filter(|t| !setup.services.iter().any(|s| s.code == t.service))
            .collect();
        open.sort_by_key(|t| t.id);
        if let Some(t) = open.first() {
            return Err(crate::SetupError {
                key: "services".into(),
                message: format!(
                    "service {} is missing but ticket {} is still open in it ({} open in all); keep the service until its queue is empty",
                    t.service,
                    t.number,
                    open.len()
                ),
            });
        }
        for (number, w) in self.windows() {
            if (w.staff.is_some() || w.current.is_some())
                && !setup.windows.iter().any(|d| d.number == *number)
            {
                return Err(crate::SetupError {
                    key: "windows".into(),
                    message: format!(
                        "window {number} is missing but is in use; sign its staff out before removing it"
                    ),
                });
            }
        }
        Ok(())
    }

    /// A rating by ticket.
    pub fn rating(&self, ticket: TicketId) -> Option<&Rating> {
        self.ratings.get(&ticket)
    }

    /// An appointment by code.
    pub fn appointment(&self, code: &str) -> Option<&Appointment> {
        self.appointments.get(code)
    }

    /// Appointments not yet retired (booked for today or later, and today's checked-in
    /// ones), in no particular order.
    pub fn appointments(&self) -> impl Iterator<Item = &Appointment> {
        self.appointments.values()
    }

    /// Everything needed to rebuild this engine.
    pub fn snapshot(&self) -> Snapshot {
        let mut tickets: Vec<Ticket> = self.tickets.values().cloned().collect();
        tickets.sort_by_key(|t| t.id);
        let mut appointments: Vec<Appointment> = self.appointments.values().cloned().collect();
        appointments.sort_by(|a, b| a.code.cmp(&b.code));
        let mut ratings: Vec<Rating> = self.ratings.values().cloned().collect();
        ratings.sort_by_key(|r| r.ticket);
        Snapshot {
            now: self.now,
            next_id: self.next_id,
            tickets,
            windows: self.windows.values().cloned().collect(),
            appointments,
            ratings,
        }
    }

    /// When the engine next needs a `Tick`: a day rollover or a warning falling due.
    pub fn next_deadline(&self) -> Timestamp {
        let rollover = self
            .clock
            .next_day_start(self.day, self.setup.day_starts_at);
        let next = self
            .deadlines
            .first()
            .map_or(rollover, |(at, _)| (*at).min(rollover));
        self.unmanned_due()
            .into_iter()
            .map(|(_, _, due)| due)
            .fold(next, Timestamp::min)
    }

    /// Office-hour spans (as instants) from the current one on, for today's local date;
    /// the whole service day when the hall is always open.
    fn spans_ahead(&self) -> Vec<(Timestamp, Timestamp)> {
        let cal = &self.setup.calendar;
        if cal.always_open {
            let start = self
                .clock
                .instant(self.day.and_time(self.setup.day_starts_at));
            let end = self
                .clock
                .next_day_start(self.day, self.setup.day_starts_at);
            return vec![(start, end)];
        }
        let local = self.clock.local(self.now);
        let date = local.date();
        let mut spans: Vec<(Timestamp, Timestamp)> = calendar::spans_on(cal, local)
            .iter()
            .map(|s| {
                (
                    self.clock.instant(date.and_time(s.open)),
                    self.clock.instant(date.and_time(s.close)),
                )
            })
            .filter(|(_, close)| *close > self.now)
            .collect();
        spans.sort();
        spans
    }

    /// Windows that will need an unmanned warning, with the start of their empty
    /// stretch and the instant the warning falls due (possibly already past).
    fn unmanned_due(&self) -> Vec<(u32, Timestamp, Timestamp)> {
        let Some(limit) = self.setup.unmanned_alarm_minutes else {
            return Vec::new();
        };
        let spans = self.spans_ahead();
        let mut due = Vec::new();
        let open = |n: u32| {
            self.window_index
                .get(&n)
                .is_some_and(|&i| self.setup.windows[i].open)
        };
        for w in self
            .windows
            .values()
            .filter(|w| w.staff.is_none() && open(w.number))
        {
            for (open, close) in &spans {
                let start = w.vacant_since.map_or(*open, |v| v.max(*open));
                if start >= *close || w.unmanned_alarm_at.is_some_and(|a| a >= start) {
                    continue;
                }
                let at = start.plus_minutes(i64::from(limit));
                if at < *close {
                    due.push((w.number, start, at));
                    break;
                }
            }
        }
        due
    }

    /// Raises the unmanned-window warnings that have fallen due.
    fn check_unmanned(&mut self, events: &mut Vec<Event>) {
        let now = self.now;
        for (n, start, at) in self.unmanned_due() {
            if at <= now {
                self.set_window(n, |w| w.unmanned_alarm_at = Some(now));
                events.push(Event::UnmannedAlarm {
                    window: n,
                    unmanned_secs: now.secs_since(start),
                });
            }
        }
    }

    /// Takes copies of everything changed since the last call.
    pub fn take_changes(&mut self) -> Changes {
        let d = std::mem::take(&mut self.dirty);
        let mut tickets = d.retired;
        tickets.extend(
            d.tickets
                .iter()
                .filter_map(|id| self.tickets.get(id).cloned()),
        );
        Changes {
            tickets,
            windows: d
                .windows
                .iter()
                .filter_map(|n| self.windows.get(n).cloned())
                .collect(),
            appointments: d
                .retired_appointments
                .into_iter()
                .chain(
                    d.appointments
                        .iter()
                        .filter_map(|c| self.appointments.get(c).cloned()),
                )
                .collect(),
            ratings: d
                .ratings
                .iter()
                .filter_map(|t| self.ratings.get(t).cloned())
                .collect(),
        }
    }

    /// Carries out one command at `now`. An instant earlier than one already seen is
    /// taken as the latest seen: a clock stepped backwards must not reopen a closed day
    /// or reorder the queue.
    pub fn handle(&mut self, cmd: Command, now: Timestamp) -> Result<Vec<Event>, Refused> {
        let mut events = self.advance(now);
        match self.execute(cmd) {
            // Time passing usually makes no events: hand the command's own back rather
            // than copying them into a fresh vector (a tenth of the engine's allocations).
            Ok(more) if events.is_empty() => Ok(more),
            Ok(mut more) => {
                events.append(&mut more);
                Ok(events)
            }
            Err(refusal) => Err(Refused { refusal, events }),
        }
    }

    fn advance(&mut self, now: Timestamp) -> Vec<Event> {
        self.now = self.now.max(now);
        let mut events = Vec::new();
        let today = self.clock.service_day(self.now, self.setup.day_starts_at);
        if today > self.day {
            self.roll_over(today, &mut events);
        }
        while let Some(&(at, due)) = self.deadlines.first() {
            if at > self.now {
                break;
            }
            self.deadlines.pop_first();
            self.fire(due, &mut events);
        }
        self.check_unmanned(&mut events);
        events
    }

    fn roll_over(&mut self, today: NaiveDate, events: &mut Vec<Event>) {
        let previous = self.day;
        let mut open: Vec<TicketId> = self
            .tickets
            .values()
            .filter(|t| !t.state.is_terminal())
            .map(|t| t.id)
            .collect();
        open.sort();
        for id in open {
            if let Some(t) = self.tickets.get_mut(&id) {
                t.state = TicketState::Cancelled;
                t.closed_at = Some(self.now);
                events.push(Event::TicketCancelled {
                    ticket: id,
                    number: t.number.clone(),
                    by: "system".into(),
                    reason: CancelReason::DayEnded,
                    note: None,
                });
            }
        }
        let old = std::mem::take(&mut self.tickets);
        let mut retired: Vec<Ticket> = old.into_values().collect();
        retired.sort_by_key(|t| t.id);
        self.dirty.tickets.clear();
        self.dirty.retired.extend(retired);
        self.by_number.clear();
        self.by_key.clear();
        self.lines.iter_mut().for_each(|l| *l = Lines::default());
        self.reserved.clear();
        self.waiting.iter_mut().for_each(|w| *w = 0);
        self.issued.iter_mut().for_each(|w| *w = 0);
        self.served.iter_mut().for_each(|w| *w = (0, 0));
        self.pace.iter_mut().for_each(|p| *p = Pace::default());
        self.queue_alarmed.iter_mut().for_each(|w| *w = false);
        self.slices.clear();
        self.citizens.clear();
        self.ratings.clear();
        self.deadlines.retain(|(_, d)| matches!(d, Due::Pause(_)));
        for w in self.windows.values_mut() {
            if w.current.take().is_some() {
                self.dirty.windows.insert(w.number);
            }
        }
        let mut ended: Vec<String> = self
            .appointments
            .values()
            .filter(|a| {
                a.ticket.is_some()
                    || a.missed
                    || self.clock.service_day(a.slot_at, self.setup.day_starts_at) < today
            })
            .map(|a| a.code.clone())
            .collect();
        ended.sort();
        for code in ended {
            self.dirty.appointments.remove(&code);
            if let Some(mut a) = self.appointments.remove(&code) {
                a.mobile = None;
                a.mobile_masked = None;
                if a.ticket.is_none() && !a.missed {
                    a.missed = true;
                    events.push(Event::AppointmentMissed {
                        code: a.code.clone(),
                        service: a.service.clone(),
                    });
                }
                self.dirty.retired_appointments.push(a);
            }
        }
        self.day = today;
        events.push(Event::DayStarted {
            day: today,
            previous,
        });
    }

    fn fire(&mut self, due: Due, events: &mut Vec<Event>) {
        let now = self.now;
        match due {
            Due::Wait(id) => {
                if let Some(t) = self.tickets.get_mut(&id)
                    && t.state.is_queued()
                    && t.alarms & Alarm::WAIT == 0
                {
                    t.alarms |= Alarm::WAIT;
                    self.dirty.tickets.insert(id);
                    events.push(Event::WaitAlarm {
                        ticket: id,
                        number: t.number.clone(),
                        service: t.service.clone(),
                        waited_secs: now.secs_since(t.issued_at),
                    });
                }
            }
            Due::Overtime(id) => {
                if let Some(t) = self.tickets.get_mut(&id)
                    && let (TicketState::Serving, Some(w), Some(start)) =
                        (t.state, t.window, t.serving_at)
                    && t.alarms & Alarm::OVERTIME == 0
                {
                    t.alarms |= Alarm::OVERTIME;
                    self.dirty.tickets.insert(id);
                    events.push(Event::ServiceOverTime {
                        ticket: id,
                        number: t.number.clone(),
                        window: w,
                        served_secs: now.secs_since(start),
                    });
                }
            }
            Due::Pause(n) => {
                if let Some(w) = self.windows.get_mut(&n)
                    && let (Some((since, _)), false) = (&w.paused, w.pause_alarmed)
                {
                    w.pause_alarmed = true;
                    self.dirty.windows.insert(n);
                    events.push(Event::PauseAlarm {
                        window: n,
                        paused_secs: now.secs_since(*since),
                    });
                }
            }
        }
    }

    fn execute(&mut self, cmd: Command) -> Result<Vec<Event>, Refusal> {
        match cmd {
            Command::Tick => Ok(Vec::new()),
            Command::Issue {
                service,
                class,
                idempotency_key,
                citizen,
                channel,
                token_hash,
                green_reason,
                proxy,
                issued_by,
            } => self.issue(
                service,
                class,
                idempotency_key,
                citizen,
                Origin {
                    channel,
                    token_hash,
                    green_reason,
                    proxy,
                    issued_by,
                },
            ),
            Command::SignIn {
                window,
                staff,
                role,
            } => self.sign_in(window, staff, role),
            Command::SignOut { window, staff } => {
                self.sign_out(window, staff, SignOutReason::Requested)
            }
            Command::RevokeSignIn { window, staff } => {
                self.sign_out(window, staff, SignOutReason::AccountChanged)
            }
            Command::CallNext { window, staff } => self.call_next(window, staff),
            Command::CallNumber {
                window,
                staff,
                number,
            } => self.call_number(window, staff, number),
            Command::Recall { window, staff } => self.recall(window, staff),
            Command::StartServing { window, staff } => self.start_serving(window, staff),
            Command::NoShow { window, staff } => self.no_show(window, staff),
            Command::Transfer { window, staff, to } => self.transfer(window, staff, to),
            Command::Pause {
                window,
                staff,
                reason,
            } => self.pause(window, staff, reason),
            Command::Resume { window, staff } => self.resume(window, staff),
            Command::Finish {
                window,
                staff,
                case_no,
            } => {
                check_text("case_no", case_no.as_deref(), 64)?;
                let id = self.current(window, &staff)?;
                let mut events = Vec::new();
                self.finish(window, &staff, id, case_no, &mut events)?;
                Ok(events)
            }
            Command::Cancel { ticket, by, note } => self.cancel(ticket, by, note),
            Command::Rate {
                ticket,
                level,
                reasons,
                comment,
                channel,
                window,
            } => self.rate(ticket, level, reasons, comment, channel, window),
            Command::Book {
                service,
                slot_at,
                code,
                citizen,
                mobile,
                mobile_masked,
            } => self.book(service, slot_at, code, citizen, (mobile, mobile_masked)),
            Command::CheckIn {
                code,
                idempotency_key,
                channel,
                token_hash,
            } => self.check_in(
                code,
                idempotency_key,
                Origin {
                    channel,
                    token_hash,
                    green_reason: None,
                    proxy: false,
                    issued_by: None,
                },
            ),
        }
    }

    // ----- issuing -------------------------------------------------------------------

    fn issue(
        &mut self,
        service: String,
        class: Class,
        key: Option<String>,
        citizen: Option<String>,
        origin: Origin,
    ) -> Result<Vec<Event>, Refusal> {
        if let Some(k) = &key {
            check_text("idempotency_key", Some(k), 128)?;
            if self.by_key.contains_key(k) {
                return Ok(Vec::new());
            }
        }
        let s = *self
            .service_index
            .get(&service)
            .ok_or_else(|| Refusal::UnknownService(service.clone()))?;
        if class == Class::Appointment {
            return Err(Refusal::ClassNotIssuable("appointment"));
        }
        check_text("citizen", citizen.as_deref(), 128)?;
        origin.check()?;
        if origin.green_reason.is_some() && class != Class::Green {
            return Err(Refusal::BadText("green_reason"));
        }
        calendar::check_open(&self.setup.calendar, self.clock.local(self.now))
            .map_err(Refusal::Closed)?;
        let def = &self.setup.services[s];
        if def.daily_cap.is_some_and(|cap| self.issued[s] >= cap) {
            return Err(Refusal::DailyCapReached(service));
        }
        let slice = self.slice_of(self.now, s);
        if let Some(q) = &def.quota
            && self.slices.get(&(s, slice)).copied().unwrap_or(0) >= q.max
        {
            let minutes = self.minutes_into_day(self.now);
            return Err(Refusal::QuotaReached(
                service,
                calendar::next_slice_start(minutes, q.minutes),
            ));
        }
        if let (Some(limit), Some(c)) = (self.setup.per_citizen_daily_limit, &citizen)
            && self.citizens.get(c).copied().unwrap_or(0) >= limit
        {
            return Err(Refusal::CitizenLimitReached(limit));
        }
        let mut events = Vec::new();
        self.create_ticket(s, class, key, citizen, origin, None, &mut events);
        Ok(events)
    }

    #[allow(clippy::too_many_arguments)]
    fn create_ticket(
        &mut self,
        s: usize,
        class: Class,
        key: Option<String>,
        citizen: Option<String>,
        origin: Origin,
        appointment: Option<&Appointment>,
        events: &mut Vec<Event>,
    ) -> TicketId {
        let def = &self.setup.services[s];
        self.issued[s] += 1;
        let seq = self.issued[s];
        let width = usize::from(self.setup.number_width);
        let id = TicketId(self.next_id);
        self.next_id += 1;
        let t = Ticket {
            id,
            number: format!("{}{:0width$}", def.prefix, seq),
            seq,
            service: def.code.clone(),
            origin_service: def.code.clone(),
            class,
            state: TicketState::Waiting,
            day: self.day,
            issued_at: self.now,
            queue_at: self.now,
            due_at: appointment.map(|a| a.slot_at),
            reserved_window: None,
            window: None,
            staff: None,
            called_at: None,
            serving_at: None,
            closed_at: None,
            recalls: 0,
            no_shows: 0,
            transfers: 0,
            idempotency_key: key,
            citizen,
            appointment: appointment.map(|a| a.code.clone()),
            case_no: None,
            channel: origin.channel,
            token_hash: origin.token_hash,
            alarms: 0,
            green_reason: origin.green_reason,
            proxy: origin.proxy,
            issued_by: origin.issued_by,
        };
        if class != Class::Appointment {
            let slice = self.slice_of(self.now, s);
            *self.slices.entry((s, slice)).or_insert(0) += 1;
        }
        if let Some(c) = &t.citizen {
            *self.citizens.entry(c.clone()).or_insert(0) += 1;
        }
        self.by_number.insert(t.number.clone(), id);
        if let Some(k) = &t.idempotency_key {
            self.by_key.insert(k.clone(), id);
        }
        self.enqueue(&t);
        self.arm_deadlines(&t);
        let ahead = self.lines[s].ahead_of(&t, self.now) as u32;
        self.dirty.tickets.insert(id);
        events.push(Event::TicketIssued {
            ticket: t.clone(),
            ahead,
        });
        self.tickets.insert(id, t);
        self.check_queue_alarm(s, events);
        id
    }

    fn minutes_into_day(&self, at: Timestamp) -> u32 {
        let local = self.clock.local(at);
        local.hour() * 60 + local.minute()
    }

    fn slice_of(&self, at: Timestamp, s: usize) -> u32 {
        self.setup.services[s]
            .quota
            .as_ref()
            .map_or(0, |q| self.minutes_into_day(at) / q.minutes)
    }

    fn check_queue_alarm(&mut self, s: usize, events: &mut Vec<Event>) {
        let Some(level) = self.setup.services[s].queue_alarm else {
            return;
        };
        let over = self.waiting[s] > level;
        if over && !self.queue_alarmed[s] {
            events.push(Event::QueueAlarm {
                service: self.setup.services[s].code.clone(),
                waiting: self.waiting[s],
            });
        }
        self.queue_alarmed[s] = over;
    }

    // ----- queue bookkeeping ---------------------------------------------------------

    fn enqueue(&mut self, t: &Ticket) {
        let Some(&s) = self.service_index.get(&t.service) else {
            return;
        };
        match t.reserved_window {
            Some(w) => self.reserved.entry(w).or_default().insert(t),
            None => self.lines[s].insert(t),
        }
        self.waiting[s] += 1;
    }

    fn dequeue(&mut self, t: &Ticket) {
        let Some(&s) = self.service_index.get(&t.service) else {
            return;
        };
        let removed = match t.reserved_window {
            Some(w) => self.reserved.get_mut(&w).is_some_and(|l| l.remove(t)),
            None => self.lines[s].remove(t),
        };
        if removed {
            self.waiting[s] -= 1;
            if self.queue_alarmed[s]
                && self.setup.services[s]
                    .queue_alarm
                    .is_some_and(|a| self.waiting[s] <= a)
            {
                self.queue_alarmed[s] = false;
            }
        }
    }

    fn arm_deadlines(&mut self, t: &Ticket) {
        let def = self
            .service_index
            .get(&t.service)
            .map(|&s| &self.setup.services[s]);
        let Some(def) = def else { return };
        if t.state.is_queued()
            && t.alarms & Alarm::WAIT == 0
            && let Some(m) = def.wait_alarm_minutes
        {
            self.deadlines
                .insert((t.issued_at.plus_minutes(i64::from(m)), Due::Wait(t.id)));
        }
        if t.state == TicketState::Serving
            && t.alarms & Alarm::OVERTIME == 0
            && let (Some(m), Some(start)) = (def.time_limit_minutes, t.serving_at)
        {
            self.deadlines
                .insert((start.plus_minutes(i64::from(m)), Due::Overtime(t.id)));
        }
    }

    fn disarm(&mut self, t: &Ticket) {
        if let Some(def) = self
            .service_index
            .get(&t.service)
            .map(|&s| &self.setup.services[s])
        {
            if let Some(m) = def.wait_alarm_minutes {
                self.deadlines
                    .remove(&(t.issued_at.plus_minutes(i64::from(m)), Due::Wait(t.id)));
            }
            if let (Some(m), Some(start)) = (def.time_limit_minutes, t.serving_at) {
                self.deadlines
                    .remove(&(start.plus_minutes(i64::from(m)), Due::Overtime(t.id)));
            }
        }
    }

    /// Applies `f` to a ticket, keeping queues, deadlines and the dirty set in step.
    fn update_ticket(&mut self, id: TicketId, f: impl FnOnce(&mut Ticket)) -> Option<Touched> {
        // Taken out of its slot (the slot keeps its place) so the queue and deadline
        // helpers may borrow the engine mutably while the ticket changes.
        let slot = self.tickets.get_index_of(&id)?;
        let mut t = std::mem::replace(&mut self.tickets[slot], vacant_slot());
        if t.state.is_queued() {
            self.dequeue(&t);
        }
        self.disarm(&t);
        f(&mut t);
        if t.state.is_queued() {
            self.enqueue(&t);
        }
        self.arm_deadlines(&t);
        self.dirty.tickets.insert(id);
        let touched = Touched {
            number: t.number.clone(),
            service: t.service.clone(),
            class: t.class,
            issued_at: t.issued_at,
            serving_at: t.serving_at,
            recalls: t.recalls,
        };
        self.tickets[slot] = t;
        Some(touched)
    }

    fn set_window(&mut self, n: u32, f: impl FnOnce(&mut WindowState)) {
        if let Some(w) = self.windows.get_mut(&n) {
            f(w);
            self.dirty.windows.insert(n);
        }
    }

    // ----- windows -------------------------------------------------------------------

    fn window_def(&self, n: u32) -> Result<&crate::setup::WindowDef, Refusal> {
        self.window_index
            .get(&n)
            .map(|&i| &self.setup.windows[i])
            .ok_or(Refusal::UnknownWindow(n))
    }

    /// The window exists and `staff` is the one signed in there.
    fn staffed(&self, n: u32, staff: &str) -> Result<&WindowState, Refusal> {
        self.window_def(n)?;
        let w = self.windows.get(&n).ok_or(Refusal::UnknownWindow(n))?;
        match &w.staff {
            Some((s, _, _)) if s == staff => Ok(w),
            _ => Err(Refusal::NotSignedIn(staff.to_string(), n)),
        }
    }

    fn current(&self, n: u32, staff: &str) -> Result<TicketId, Refusal> {
        self.staffed(n, staff)?
            .current
            .ok_or(Refusal::NoCurrentTicket(n))
    }

    fn sign_out(
        &mut self,
        window: u32,
        staff: String,
        reason: SignOutReason,
    ) -> Result<Vec<Event>, Refusal> {
        self.staffed(window, &staff)?;
        let now = self.now;
        self.set_window(window, |w| {
            w.staff = None;
            w.vacant_since = Some(now);
        });
        Ok(vec![Event::StaffSignedOut {
            window,
            staff,
            reason,
        }])
    }

    fn sign_in(&mut self, window: u32, staff: String, role: Role) -> Result<Vec<Event>, Refusal> {
        self.window_def(window)?;
        check_text("staff", Some(&staff), 64)?;
        let mut events = Vec::new();
        if let Some((s, r, _)) = &self.windows[&window].staff {
            if *s == staff && *r == role {
                return Ok(events);
            }
            if *s != staff {
                events.push(Event::StaffSignedOut {
                    window,
                    staff: s.clone(),
                    reason: SignOutReason::Replaced,
                });
            }
        }
        let elsewhere: Vec<u32> = self
            .windows
            .values()
            .filter(|w| w.number != window && w.staff.as_ref().is_some_and(|(s, _, _)| *s == staff))
            .map(|w| w.number)
            .collect();
        let now = self.now;
        for n in elsewhere {
            self.set_window(n, |w| {
                w.staff = None;
                w.vacant_since = Some(now);
            });
            events.push(Event::StaffSignedOut {
                window: n,
                staff: staff.clone(),
                reason: SignOutReason::MovedWindow,
            });
        }
        self.set_window(window, |w| w.staff = Some((staff.clone(), role, now)));
        events.push(Event::StaffSignedIn {
            window,
            staff,
            role,
        });
        Ok(events)
    }

    /// The next ticket for window `n` by the call order, without taking it.
    pub fn peek_next(&self, n: u32) -> Option<TicketId> {
        let def = self.window_def(n).ok()?;
        let mut best: Option<Candidate> = None;
        let mut consider = |c: Candidate| {
            if best.is_none_or(|b| c.key() < b.key()) {
                best = Some(c);
            }
        };
        for ws in &def.services {
            if let Some(&s) = self.service_index.get(&ws.code) {
                self.lines[s]
                    .heads(self.now, ws.priority, ws.weight)
                    .for_each(&mut consider);
            }
        }
        if def.green_channel {
            for lines in &self.lines {
                lines
                    .heads(self.now, 0, 1)
                    .filter(|c| c.rank == 0)
                    .for_each(&mut consider);
            }
        }
        if let Some(l) = self.reserved.get(&n) {
            l.heads(self.now, 0, 1).for_each(&mut consider);
        }
        best.map(|c| c.id)
    }

    /// Before a new call: a called ticket blocks it, a served one is finished implicitly
    /// (a three-key caller's "next" means "done, next").
    fn clear_current(
        &mut self,
        window: u32,
        staff: &str,
        events: &mut Vec<Event>,
    ) -> Result<(), Refusal> {
        let w = self.staffed(window, staff)?;
        if w.paused.is_some() {
            return Err(Refusal::WindowPaused(window));
        }
        if let Some(id) = w.current
            && let Some(t) = self.tickets.get(&id)
        {
            match t.state {
                TicketState::Called => {
                    return Err(Refusal::CurrentTicketPending(t.number.clone()));
                }
                TicketState::Serving => self.finish(window, staff, id, None, events)?,
                _ => self.set_window(window, |w| w.current = None),
            }
        }
        Ok(())
    }

    fn call_next(&mut self, window: u32, staff: String) -> Result<Vec<Event>, Refusal> {
        let w = self.staffed(window, &staff)?;
        if w.paused.is_some() {
            return Err(Refusal::WindowPaused(window));
        }
        if let Some(t) = w.current.and_then(|id| self.tickets.get(&id))
            && t.state == TicketState::Called
        {
            return Err(Refusal::CurrentTicketPending(t.number.clone()));
        }
        let id = self.peek_next(window).ok_or(Refusal::QueueEmpty(window))?;
        let mut events = Vec::new();
        self.clear_current(window, &staff, &mut events)?;
        self.call(window, staff, id, false, &mut events);
        Ok(events)
    }

    fn call_number(
        &mut self,
        window: u32,
        staff: String,
        number: String,
    ) -> Result<Vec<Event>, Refusal> {
        let def = self.window_def(window)?;
        let t = self
            .ticket_by_number(number.trim())
            .ok_or_else(|| Refusal::UnknownTicket(number.clone()))?;
        if !(t.state.is_queued() || t.state == TicketState::NoShow) {
            return Err(Refusal::WrongState(t.number.clone(), t.state.as_str()));
        }
        let served_here = match t.reserved_window {
            Some(w) => w == window,
            None => {
                def.services.iter().any(|s| s.code == t.service)
                    || (def.green_channel && t.class == Class::Green)
            }
        };
        if !served_here {
            return Err(Refusal::NotServedHere(window, t.service.clone()));
        }
        let id = t.id;
        let mut events = Vec::new();
        self.clear_current(window, &staff, &mut events)?;
        self.call(window, staff, id, true, &mut events);
        Ok(events)
    }

    fn call(
        &mut self,
        window: u32,
        staff: String,
        id: TicketId,
        direct: bool,
        events: &mut Vec<Event>,
    ) {
        let now = self.now;
        if let Some(t) = self.tickets.get(&id)
            && t.called_at.is_none()
            && let Some(s) = self.pace_index(t)
        {
            self.pace[s].called(t.issued_at, now);
        }
        let Some(t) = self.update_ticket(id, |t| {
            t.state = TicketState::Called;
            t.window = Some(window);
            t.staff = Some(staff.clone());
            t.called_at = t.called_at.or(Some(now));
            t.closed_at = None;
            t.recalls = 0;
            t.reserved_window = None;
        }) else {
            return;
        };
        self.set_window(window, |w| w.current = Some(id));
        events.push(Event::TicketCalled {
            ticket: id,
            number: t.number,
            service: t.service,
            class: t.class,
            window,
            staff,
            direct,
            waited_secs: now.secs_since(t.issued_at),
        });
    }

    fn recall(&mut self, window: u32, staff: String) -> Result<Vec<Event>, Refusal> {
        let id = self.current(window, &staff)?;
        let t = &self.tickets[&id];
        if t.state != TicketState::Called {
            return Err(Refusal::WrongState(t.number.clone(), t.state.as_str()));
        }
        if t.recalls >= self.setup.recall_limit {
            return Err(Refusal::RecallLimit(self.setup.recall_limit));
        }
        let t = self
            .update_ticket(id, |t| t.recalls += 1)
            .ok_or(Refusal::NoCurrentTicket(window))?;
        Ok(vec![Event::TicketRecalled {
            ticket: id,
            number: t.number,
            window,
            staff,
            count: t.recalls,
        }])
    }

    fn start_serving(&mut self, window: u32, staff: String) -> Result<Vec<Event>, Refusal> {
        let id = self.current(window, &staff)?;
        let t = &self.tickets[&id];
        if t.state != TicketState::Called {
            return Err(Refusal::WrongState(t.number.clone(), t.state.as_str()));
        }
        let now = self.now;
        let t = self.update_ticket(id, |t| {
            t.state = TicketState::Serving;
            t.serving_at = Some(now);
        });
        let number = t.map(|t| t.number).unwrap_or_default();
        Ok(vec![Event::ServingStarted {
            ticket: id,
            number,
            window,
            staff,
        }])
    }

    fn no_show(&mut self, window: u32, staff: String) -> Result<Vec<Event>, Refusal> {
        let id = self.current(window, &staff)?;
        let t = &self.tickets[&id];
        if t.state != TicketState::Called {
            return Err(Refusal::WrongState(t.number.clone(), t.state.as_str()));
        }
        let requeue = self.setup.no_show == NoShowPolicy::RequeueOnce && t.no_shows == 0;
        let now = self.now;
        let t = self.update_ticket(id, |t| {
            t.no_shows += 1;
            if requeue {
                t.state = TicketState::Waiting;
                t.queue_at = now;
            } else {
                t.state = TicketState::NoShow;
                t.closed_at = Some(now);
            }
        });
        self.set_window(window, |w| w.current = None);
        let number = t.map(|t| t.number).unwrap_or_default();
        Ok(vec![Event::TicketNoShow {
            ticket: id,
            number,
            window,
            staff,
            requeued: requeue,
        }])
    }

    fn transfer(
        &mut self,
        window: u32,
        staff: String,
        to: TransferTarget,
    ) -> Result<Vec<Event>, Refusal> {
        let id = self.current(window, &staff)?;
        let t = &self.tickets[&id];
        if !matches!(t.state, TicketState::Called | TicketState::Serving) {
            return Err(Refusal::WrongState(t.number.clone(), t.state.as_str()));
        }
        let from_service = t.service.clone();
        match &to {
            TransferTarget::Service(code) => {
                if !self.service_index.contains_key(code) {
                    return Err(Refusal::UnknownService(code.clone()));
                }
                if *code == from_service {
                    return Err(Refusal::TransferToSelf);
                }
            }
            TransferTarget::Window(n) => {
                self.window_def(*n)?;
                if *n == window {
                    return Err(Refusal::TransferToSelf);
                }
            }
        }
        let target = to.clone();
        let t = self.update_ticket(id, |t| {
            t.state = TicketState::Transferred;
            t.transfers += 1;
            t.queue_at = t.issued_at;
            t.serving_at = None;
            match target {
                TransferTarget::Service(code) => {
                    t.service = code;
                    t.reserved_window = None;
                }
                TransferTarget::Window(n) => t.reserved_window = Some(n),
            }
        });
        self.set_window(window, |w| w.current = None);
        let number = t.map(|t| t.number).unwrap_or_default();
        Ok(vec![Event::TicketTransferred {
            ticket: id,
            number,
            from_service,
            to,
            window,
            staff,
        }])
    }

    fn pause(&mut self, window: u32, staff: String, reason: String) -> Result<Vec<Event>, Refusal> {
        if reason.chars().count() > 100 || reason.chars().any(unsafe_in_text) {
            return Err(Refusal::BadText("reason"));
        }
        if self.staffed(window, &staff)?.paused.is_some() {
            return Err(Refusal::WindowPaused(window));
        }
        let now = self.now;
        let r = reason.clone();
        self.set_window(window, |w| {
            w.paused = Some((now, r));
            w.pause_alarmed = false;
        });
        if let Some(m) = self.setup.pause_alarm_minutes {
            self.deadlines
                .insert((now.plus_minutes(i64::from(m)), Due::Pause(window)));
        }
        Ok(vec![Event::WindowPaused {
            window,
            staff,
            reason,
        }])
    }

    fn resume(&mut self, window: u32, staff: String) -> Result<Vec<Event>, Refusal> {
        let Some((since, _)) = self.staffed(window, &staff)?.paused.clone() else {
            return Err(Refusal::WindowNotPaused(window));
        };
        if let Some(m) = self.setup.pause_alarm_minutes {
            self.deadlines
                .remove(&(since.plus_minutes(i64::from(m)), Due::Pause(window)));
        }
        self.set_window(window, |w| {
            w.paused = None;
            w.pause_alarmed = false;
        });
        Ok(vec![Event::WindowResumed {
            window,
            staff,
            paused_secs: self.now.secs_since(since),
        }])
    }

    fn finish(
        &mut self,
        window: u32,
        staff: &str,
        id: TicketId,
        case_no: Option<String>,
        events: &mut Vec<Event>,
    ) -> Result<(), Refusal> {
        let t = self
            .tickets
            .get(&id)
            .ok_or_else(|| Refusal::UnknownTicket(id.to_string()))?;
        if !matches!(t.state, TicketState::Called | TicketState::Serving) {
            return Err(Refusal::WrongState(t.number.clone(), t.state.as_str()));
        }
        let now = self.now;
        let case = case_no.filter(|c| !c.trim().is_empty());
        let t = self
            .update_ticket(id, |t| {
                t.state = TicketState::Finished;
                t.closed_at = Some(now);
                t.case_no = case.clone();
                if t.serving_at.is_none() {
                    t.serving_at = t.called_at;
                }
            })
            .ok_or_else(|| Refusal::UnknownTicket(id.to_string()))?;
        let start = t.serving_at.unwrap_or(now);
        if let Some(&s) = self.service_index.get(&t.service) {
            self.served[s].0 += now.secs_since(start);
            self.served[s].1 += 1;
        }
        self.set_window(window, |w| w.current = None);
        events.push(Event::TicketFinished {
            ticket: id,
            number: t.number,
            service: t.service,
            window,
            staff: staff.to_string(),
            case_no: case,
            served_secs: now.secs_since(start),
        });
        Ok(())
    }

    fn cancel(
        &mut self,
        id: TicketId,
        by: String,
        note: Option<String>,
    ) -> Result<Vec<Event>, Refusal> {
        check_text("by", Some(&by), 64)?;
        check_text("reason", note.as_deref(), 200)?;
        let t = self
            .tickets
            .get(&id)
            .ok_or_else(|| Refusal::UnknownTicket(id.to_string()))?;
        if !t.state.is_queued() {
            return Err(Refusal::WrongState(t.number.clone(), t.state.as_str()));
        }
        let now = self.now;
        let t = self.update_ticket(id, |t| {
            t.state = TicketState::Cancelled;
            t.closed_at = Some(now);
        });
        let number = t.map(|t| t.number).unwrap_or_default();
        Ok(vec![Event::TicketCancelled {
            ticket: id,
            number,
            by,
            reason: CancelReason::Withdrawn,
            note,
        }])
    }

    // ----- ratings and appointments --------------------------------------------------

    fn rate(
        &mut self,
        id: TicketId,
        level: Level,
        reasons: Vec<String>,
        comment: Option<String>,
        channel: String,
        pad: Option<u32>,
    ) -> Result<Vec<Event>, Refusal> {
        check_text("channel", Some(&channel), 64)?;
        let comment = comment.filter(|c| !c.trim().is_empty());
        // A comment may run over lines (the rating page's box takes Enter); nothing else
        // a person would not see on the screen.
        if comment.as_ref().is_some_and(|c| {
            c.chars().count() > MAX_TEXT || c.chars().any(|ch| ch != '\n' && unsafe_in_text(ch))
        }) {
            return Err(Refusal::BadText("comment"));
        }
        let t = self
            .tickets
            .get(&id)
            .ok_or_else(|| Refusal::UnknownTicket(id.to_string()))?;
        if t.state != TicketState::Finished {
            return Err(Refusal::NotFinished(t.number.clone(), t.state.as_str()));
        }
        // A pad rates only the service its own window finished: a pad at window 3
        // cannot rate (or overwrite the rating of) a citizen served at window 5.
        if let Some(w) = pad
            && t.window != Some(w)
        {
            return Err(Refusal::NotFinishedHere(t.number.clone(), w));
        }
        let closed = t.closed_at.unwrap_or(self.now);
        if self.now.secs_since(closed) > i64::from(self.setup.rating.accept_within_minutes) * 60 {
            return Err(Refusal::RatingExpired(t.number.clone()));
        }
        for r in &reasons {
            if !self.setup.rating.reasons.contains(r) {
                return Err(Refusal::UnknownReason(r.clone()));
            }
        }
        if !level.is_bad() && !reasons.is_empty() {
            return Err(Refusal::BadRating(
                "reasons are given only with a bad rating",
            ));
        }
        let replaced = match self.ratings.get(&id) {
            // Only the one who rated (the same kiosk, the same pad) may change their
            // mind, and only within the replace window.
            Some(prev)
                if prev.channel == channel
                    && self.now.secs_since(prev.at)
                        <= i64::from(self.setup.rating.replace_within_secs) =>
            {
                true
            }
            Some(_) => return Err(Refusal::AlreadyRated(t.number.clone())),
            None => false,
        };
        let rating = Rating {
            ticket: id,
            number: t.number.clone(),
            level,
            reason_pending: level.is_bad() && reasons.is_empty(),
            reasons,
            comment,
            channel,
            service: t.service.clone(),
            window: t.window,
            staff: t.staff.clone(),
            case_no: t.case_no.clone(),
            at: self.now,
        };
        self.ratings.insert(id, rating.clone());
        self.dirty.ratings.insert(id);
        Ok(vec![Event::RatingRecorded { rating, replaced }])
    }

    fn book(
        &mut self,
        service: String,
        slot_at: Timestamp,
        code: String,
        citizen: Option<String>,
        mobile: (Option<String>, Option<String>),
    ) -> Result<Vec<Event>, Refusal> {
        if !self.service_index.contains_key(&service) {
            return Err(Refusal::UnknownService(service));
        }
        check_text("code", Some(&code), 32)?;
        check_text("citizen", citizen.as_deref(), 128)?;
        check_text("mobile", mobile.0.as_deref(), 128)?;
        check_text("mobile", mobile.1.as_deref(), 32)?;
        if self.appointments.contains_key(&code) {
            return Err(Refusal::DuplicateAppointment(code));
        }
        if slot_at.plus_minutes(i64::from(self.setup.checkin_after_minutes)) < self.now {
            return Err(Refusal::SlotInPast);
        }
        if slot_at.0 > self.now.0.saturating_add(MAX_BOOKING_AHEAD_MS) {
            return Err(Refusal::SlotTooFar);
        }
        let a = Appointment {
            code: code.clone(),
            service,
            slot_at,
            citizen,
            ticket: None,
            missed: false,
            mobile: mobile.0,
            mobile_masked: mobile.1,
        };
        self.appointments.insert(code.clone(), a.clone());
        self.dirty.appointments.insert(code);
        Ok(vec![Event::AppointmentBooked { appointment: a }])
    }

    fn check_in(
        &mut self,
        code: String,
        key: Option<String>,
        origin: Origin,
    ) -> Result<Vec<Event>, Refusal> {
        if let Some(k) = &key {
            check_text("idempotency_key", Some(k), 128)?;
            if self.by_key.contains_key(k) {
                return Ok(Vec::new());
            }
        }
        origin.check()?;
        let a = self
            .appointments
            .get(code.trim())
            .ok_or_else(|| Refusal::UnknownAppointment(code.clone()))?
            .clone();
        if a.ticket.is_some() {
            return Err(Refusal::AlreadyCheckedIn(code));
        }
        let opens = a
            .slot_at
            .plus_minutes(-i64::from(self.setup.checkin_before_minutes));
        let closes = a
            .slot_at
            .plus_minutes(i64::from(self.setup.checkin_after_minutes));
        if a.missed || self.now > closes {
            return Err(Refusal::CheckInTooLate);
        }
        if self.now < opens {
            return Err(Refusal::CheckInTooEarly(self.clock.local(opens).time()));
        }
        let s = *self
            .service_index
            .get(&a.service)
            .ok_or_else(|| Refusal::UnknownService(a.service.clone()))?;
        let mut events = Vec::new();
        let id = self.create_ticket(
            s,
            Class::Appointment,
            key,
            a.citizen.clone(),
            origin,
            Some(&a),
            &mut events,
        );
        if let Some(app) = self.appointments.get_mut(&a.code) {
            app.ticket = Some(id);
            // Found and checked in: the number has done its job.
            app.mobile = None;
            app.mobile_masked = None;
        }
        self.dirty.appointments.insert(a.code.clone());
        events.push(Event::AppointmentCheckedIn {
            code: a.code,
            ticket: id,
        });
        Ok(events)
    }

    // ----- figures ---------------------------------------------------------------------

    /// People who would be called before ticket `id` in its queue.
    pub fn ahead(&self, id: TicketId) -> Option<u32> {
        let t = self.tickets.get(&id)?;
        if !t.state.is_queued() {
            return Some(0);
        }
        let n = match t.reserved_window {
            Some(w) => self.reserved.get(&w).map_or(0, |l| l.ahead_of(t, self.now)),
            None => self
                .service_index
                .get(&t.service)
                .map_or(0, |&s| self.lines[s].ahead_of(t, self.now)),
        };
        Some(n as u32)
    }

    /// Average seconds one citizen takes for service `s` today, or the configured guess.
    fn average_service_secs(&self, s: usize) -> i64 {
        let (total, count) = self.served[s];
        if count >= 3 {
            total / count
        } else {
            i64::from(self.setup.services[s].expected_minutes) * 60
        }
    }

    /// The service whose pace a ticket's first call tells: the one it was issued for
    /// (a transfer only ever moves a ticket that has been called).
    fn pace_index(&self, t: &Ticket) -> Option<usize> {
        self.service_index
            .get(&t.origin_service)
            .or_else(|| self.service_index.get(&t.service))
            .copied()
    }

    /// Windows signed in, not paused, that serve the service.
    fn open_windows(&self, code: &str) -> u32 {
        self.setup
            .windows
            .iter()
            .filter(|d| d.services.iter().any(|s| s.code == code))
            .filter(|d| {
                self.windows
                    .get(&d.number)
                    .is_some_and(|w| w.staff.is_some() && w.paused.is_none())
            })
            .count() as u32
    }

    /// Estimated minutes until a ticket of service `code` with `ahead` people before it
    /// is called (see [`crate::estimate`]).
    pub fn estimate_wait_minutes(&self, code: &str, ahead: u32) -> u32 {
        let Some(&s) = self.service_index.get(code) else {
            return 0;
        };
        estimate::minutes(estimate::wait_secs(
            &self.pace[s],
            ahead,
            self.average_service_secs(s),
            self.open_windows(code),
        ))
    }

    /// Waiting, issued, open windows and estimates per service, in catalogue order.
    pub fn loads(&self) -> Vec<ServiceLoad> {
        self.setup
            .services
            .iter()
            .enumerate()
            .map(|(i, def)| {
                let longest = self.lines[i]
                    .green
                    .first()
                    .into_iter()
                    .chain(self.lines[i].normal.first())
                    .map(|(q, id)| self.tickets.get(id).map_or(*q, |t| t.issued_at))
                    .chain(self.lines[i].appointments.iter().map(|(_, q, _)| *q))
                    .min()
                    .map_or(0, |t| self.now.secs_since(t));
                ServiceLoad {
                    code: def.code.clone(),
                    waiting: self.waiting[i],
                    issued: self.issued[i],
                    open_windows: self.open_windows(&def.code),
                    estimated_wait_minutes: self.estimate_wait_minutes(&def.code, self.waiting[i]),
                    longest_wait_secs: longest,
                }
            })
            .collect()
    }
}

/// Where a new ticket was taken, the hash of the secret only its holder knows, and what
/// the guide desk records of a ticket it issues for a citizen.
struct Origin {
    channel: String,
    token_hash: Option<String>,
    green_reason: Option<String>,
    proxy: bool,
    issued_by: Option<String>,
}

impl Origin {
    fn check(&self) -> Result<(), Refusal> {
        check_text("channel", Some(&self.channel), 64)?;
        check_text("green_reason", self.green_reason.as_deref(), 80)?;
        check_text("issued_by", self.issued_by.as_deref(), 64)?;
        match &self.token_hash {
            Some(h) if h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()) => {
                Err(Refusal::BadText("token_hash"))
            }
            _ => Ok(()),
        }
    }
}

fn check_text(field: &'static str, value: Option<&str>, max: usize) -> Result<(), Refusal> {
    match value {
        Some(v)
            if v.trim().is_empty() || v.chars().count() > max || v.chars().any(unsafe_in_text) =>
        {
            Err(Refusal::BadText(field))
        }
        _ => Ok(()),
    }
}

/// What fills a ticket's slot for the moment [`Engine::update_ticket`] holds the ticket;
/// allocates nothing and is overwritten before the engine is seen again.
fn vacant_slot() -> Ticket {
    Ticket {
        id: TicketId(0),
        number: String::new(),
        seq: 0,
        service: String::new(),
        origin_service: String::new(),
        class: Class::Normal,
        state: TicketState::Cancelled,
        day: NaiveDate::MIN,
        issued_at: Timestamp(0),
        queue_at: Timestamp(0),
        due_at: None,
        reserved_window: None,
        window: None,
        staff: None,
        called_at: None,
        serving_at: None,
        closed_at: None,
        recalls: 0,
        no_shows: 0,
        transfers: 0,
        idempotency_key: None,
        citizen: None,
        appointment: None,
        case_no: None,
        channel: String::new(),
        token_hash: None,
        alarms: 0,
        green_reason: None,
        proxy: false,
        issued_by: None,
    }
}
