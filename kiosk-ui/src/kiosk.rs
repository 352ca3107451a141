//! The kiosk's logic: answers the screens' callbacks, keeps the catalogue fresh from the
//! controller (a refresher thread woken by the live event stream), and runs citizens'
//! requests on a worker thread so the UI never waits on the network. Results come back to
//! the UI thread through `slint::invoke_from_event_loop`.

use std::rc::Rc;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use slint::{ComponentHandle, Model, ModelRc, SharedString, Timer, TimerMode, VecModel, Weak};

use crate::catalogue::{self, Guide, Language, Overview, Service, Ticket};
use crate::client::{
    CardState, Client, ClientError, Endpoint, Issued, KioskState, Notice, NotifyOffer, StreamEvent,
    TicketToken,
};
use crate::mobile::{self, MobileInput};
use crate::{App, CardView, GuideView, Kiosk, Screen, ServiceTile, TicketView, WindowRow};

/// What a kiosk needs to know to run.
#[derive(Debug, Clone)]
pub struct Settings {
    /// How to reach the controller.
    pub endpoint: Endpoint,
    /// The language the kiosk starts in and returns to when idle.
    pub default_language: Language,
    /// Untouched this long, the kiosk returns home in the default language.
    pub idle_timeout: Duration,
    /// How often the catalogue is refreshed even without events.
    pub refresh_every: Duration,
    /// The hall name shown until the controller answers.
    pub hall_name: String,
    /// Why the kiosk is locked, if the operator started it locked (shown on the locked
    /// screen). The hall server's lock (`GET /api/v1/kiosk`) comes on top of this one.
    pub locked_reason: Option<String>,
    /// The hall's offset from UTC, for the clock on screen (480 in China).
    pub utc_offset_minutes: i32,
}

/// The most recent answers from the controller, shared with the worker threads.
#[derive(Default)]
struct Shared {
    services: Vec<Service>,
    overview: Option<Overview>,
    online: bool,
    /// The hall server's kiosk lock as last learnt: `Some(reason)` while locked.
    lock: Option<String>,
    /// The near-turn text message, while the hall offers it.
    notify: Option<NotifyOffer>,
}

/// Why the refresher is woken.
enum Wake {
    /// Something happened in the hall: refresh the figures.
    Event,
    /// The stream said the kiosk was locked (`Some(reason)`) or unlocked (`None`).
    Lock(Option<String>),
}

/// A spoken step of elder mode, for the voice thread: a prompt id and the ticket number
/// it reads, if any.
struct Speak {
    prompt: String,
    number: Option<String>,
}

/// The prompt id in the citizen's language: the voice speaks Mandarin for both Chinese
/// scripts, and English prompts carry `_en`.
fn prompt_id(base: &str, lang: Language) -> String {
    match lang {
        Language::En => format!("{base}_en"),
        Language::ZhCn | Language::ZhTw => base.to_string(),
    }
}

/// The name the controller knows a screen by (`POST /api/v1/help`'s `screen`).
pub fn screen_name(screen: Screen) -> &'static str {
    match screen {
        Screen::Home => "home",
        Screen::Services => "services",
        Screen::Ticket => "ticket",
        Screen::Guides => "guides",
        Screen::Guide => "guide",
        Screen::Search => "search",
        Screen::Checkin => "checkin",
        Screen::Status => "status",
        Screen::Closed => "closed",
        // The notice's pad belongs to the ticket on screen (and the controller knows no
        // other screen names).
        Screen::Notify => "ticket",
        Screen::Card => "card",
    }
}

/// In elder mode, says a step aloud through the hall's voice (queued behind calls,
/// never over one); outside elder mode, nothing.
fn speak(state: &Rc<std::cell::RefCell<UiState>>, base: &str, number: Option<&str>) {
    let st = state.borrow();
    if !st.elder {
        return;
    }
    let _ = st.voice.send(Speak {
        prompt: prompt_id(base, st.language),
        number: number.map(String::from),
    });
}

/// Posts elder-mode prompts one after another, off the UI thread and apart from the
/// ticket worker, so a slow voice never delays a ticket.
fn voice_worker(client: Client, rx: Receiver<Speak>) {
    while let Ok(s) = rx.recv() {
        if let Err(e) = client.prompt(&s.prompt, s.number.as_deref()) {
            tracing::debug!(prompt = %s.prompt, "voice prompt not spoken: {e}");
        }
    }
}

/// A citizen's request for the worker.
enum Job {
    Help {
        screen: &'static str,
        lang: Language,
    },
    Issue {
        service: String,
        key: String,
        lang: Language,
    },
    CheckIn {
        code: String,
        key: String,
        lang: Language,
    },
    /// A ticket taken with the ID card on this kiosk's reader.
    IssueWithCard {
        service: String,
        key: String,
        lang: Language,
    },
    /// The card holder's appointment of today checked in by the card.
    CheckInWithCard {
        key: String,
        lang: Language,
    },
    Guide {
        code: String,
        lang: Language,
    },
    Checklist {
        code: String,
        lang: Language,
    },
    /// A near-turn text message for the ticket on screen. The number goes in a
    /// `MobileInput`, which is overwritten when the job is done with it.
    Notice {
        ticket: u64,
        token: TicketToken,
        mobile: MobileInput,
        lang: Language,
    },
}

/// The kiosk's logic bound to one `App`. Dropping it stops its threads.
pub struct KioskLogic {
    app: App,
    state: Rc<std::cell::RefCell<UiState>>,
    _clock: Timer,
    _refresh_stop: Sender<()>,
    _card_stop: Sender<()>,
}

/// State that only the UI thread touches.
struct UiState {
    settings: Settings,
    language: Language,
    elder: bool,
    shared: Arc<Mutex<Shared>>,
    jobs: Sender<Job>,
    /// Elder mode's spoken steps.
    voice: Sender<Speak>,
    idle: Timer,
    /// The request (service code or booking code) whose answer was lost, and its
    /// idempotency key: tapping the same again reuses the key, so a request that did
    /// reach the controller is answered with its ticket rather than a second one.
    pending_key: Option<(String, String)>,
    guide: Option<Guide>,
    ticket: Option<(Ticket, Option<String>)>,
    /// The secret of the ticket on screen, for its near-turn notice; forgotten at home.
    token: Option<TicketToken>,
    /// The mobile number being typed on the notice's pad (personal data: cleared
    /// whenever the citizen leaves the pad).
    mobile: MobileInput,
    /// The notice the controller took for the ticket on screen.
    notice: Option<Notice>,
    /// The controller will take no notice for the ticket on screen (called already,
    /// the hall stopped offering them, the text has gone): the offer is withdrawn.
    notice_closed: bool,
    search_input: String,
    checkin_code: String,
    /// The hall server's lock in force on screen.
    controller_lock: Option<String>,
    /// The ID card on this kiosk's reader, masked as the controller gives it; `None`
    /// when no card lies there.
    card: Option<CardState>,
}

impl KioskLogic {
    /// Wires `app` to the controller at `settings.endpoint` and starts the worker,
    /// the refresher and the live-stream follower.
    pub fn start(app: App, settings: Settings) -> KioskLogic {
        let shared = Arc::new(Mutex::new(Shared::default()));
        let (jobs_tx, jobs_rx) = mpsc::channel::<Job>();
        let client = Client::new(settings.endpoint.clone());
        let weak = app.as_weak();

        let worker_client = client.clone();
        let worker_weak = weak.clone();
        std::thread::Builder::new()
            .name("kiosk-worker".into())
            .spawn(move || worker(worker_client, jobs_rx, worker_weak))
            .expect("spawn the kiosk worker");

        let (voice_tx, voice_rx) = mpsc::channel::<Speak>();
        {
            let client = client.clone();
            std::thread::Builder::new()
                .name("kiosk-voice".into())
                .spawn(move || voice_worker(client, voice_rx))
                .expect("spawn the kiosk voice worker");
        }

        let (wake_tx, wake_rx) = mpsc::channel::<Wake>();
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        {
            let client = client.clone();
            let shared = shared.clone();
            let weak = weak.clone();
            let every = settings.refresh_every;
            std::thread::Builder::new()
                .name("kiosk-refresh".into())
                .spawn(move || refresher(client, shared, weak, wake_rx, stop_rx, every))
                .expect("spawn the kiosk refresher");
        }
        {
            let client = client.clone();
            std::thread::Builder::new()
                .name("kiosk-events".into())
                .spawn(move || follow(client, wake_tx))
                .expect("spawn the kiosk event follower");
        }

        let (card_stop_tx, card_stop_rx) = mpsc::channel::<()>();
        {
            let client = client.clone();
            let weak = weak.clone();
            std::thread::Builder::new()
                .name("kiosk-card".into())
                .spawn(move || card_watch(client, weak, card_stop_rx))
                .expect("spawn the kiosk's card watch");
        }

        let k = app.global::<Kiosk>();
        k.set_hall_name(settings.hall_name.clone().into());
        k.set_online(true);

        let state = Rc::new(std::cell::RefCell::new(UiState {
            language: settings.default_language,
            settings,
            elder: false,
            shared,
            jobs: jobs_tx,
            voice: voice_tx,
            idle: Timer::default(),
            pending_key: None,
            guide: None,
            ticket: None,
            token: None,
            mobile: MobileInput::default(),
            notice: None,
            notice_closed: false,
            search_input: String::new(),
            checkin_code: String::new(),
            controller_lock: None,
            card: None,
        }));

        let clock = Timer::default();
        {
            let weak = weak.clone();
            let state = state.clone();
            clock.start(TimerMode::Repeated, Duration::from_secs(1), move || {
                if let Some(app) = weak.upgrade() {
                    let st = state.borrow();
                    let text = clock_text(st.language, st.settings.utc_offset_minutes);
                    app.global::<Kiosk>().set_clock_text(text.into());
                }
            });
        }
        let logic = KioskLogic {
            app,
            state,
            _clock: clock,
            _refresh_stop: stop_tx,
            _card_stop: card_stop_tx,
        };
        logic.connect();
        logic.apply_language();
        logic.go_home();
        logic
    }

    /// The application window.
    pub fn app(&self) -> &App {
        &self.app
    }

    fn connect(&self) {
        let k = self.app.global::<Kiosk>();
        let weak = self.app.as_weak();
        let state = self.state.clone();

        macro_rules! with {
            ($body:expr) => {{
                let weak = weak.clone();
                let state = state.clone();
                move || {
                    if let Some(app) = weak.upgrade() {
                        let f: &dyn Fn(&App, &Rc<std::cell::RefCell<UiState>>) = &$body;
                        f(&app, &state);
                    }
                }
            }};
        }

        k.on_touched(with!(|app: &App, st| restart_idle(app, st)));
        k.on_go_home(with!(|app: &App, st| go_home(app, st)));
        {
            let weak = weak.clone();
            let state = state.clone();
            k.on_navigate(move |screen| {
                if let Some(app) = weak.upgrade() {
                    navigate(&app, &state, screen);
                }
            });
        }
        {
            let weak = weak.clone();
            let state = state.clone();
            k.on_take_ticket(move |code| {
                if let Some(app) = weak.upgrade() {
                    take_ticket(&app, &state, code.as_str());
                }
            });
        }
        {
            let weak = weak.clone();
            let state = state.clone();
            k.on_open_guide(move |code| {
                if let Some(app) = weak.upgrade() {
                    open_guide(&app, &state, code.as_str());
                }
            });
        }
        {
            let weak = weak.clone();
            let state = state.clone();
            k.on_print_checklist(move |code| {
                if let Some(app) = weak.upgrade() {
                    let st = state.borrow();
                    app.global::<Kiosk>().set_checklist_state("".into());
                    let _ = st.jobs.send(Job::Checklist {
                        code: code.to_string(),
                        lang: st.language,
                    });
                    app.global::<Kiosk>().set_busy(true);
                }
            });
        }
        {
            let weak = weak.clone();
            let state = state.clone();
            k.on_search_key(move |key| {
                if let Some(app) = weak.upgrade() {
                    let mut st = state.borrow_mut();
                    edit(&mut st.search_input, key.as_str(), 12);
                    let input = st.search_input.clone();
                    drop(st);
                    app.global::<Kiosk>().set_search_input(input.into());
                    refresh_search(&app, &state);
                }
            });
        }
        {
            let weak = weak.clone();
            let state = state.clone();
            k.on_search_mode(move |digits| {
                if let Some(app) = weak.upgrade() {
                    state.borrow_mut().search_input.clear();
                    let k = app.global::<Kiosk>();
                    k.set_search_digits(digits);
                    k.set_search_input("".into());
                    refresh_search(&app, &state);
                }
            });
        }
        {
            let weak = weak.clone();
            let state = state.clone();
            k.on_checkin_key(move |key| {
                if let Some(app) = weak.upgrade() {
                    let mut st = state.borrow_mut();
                    edit(&mut st.checkin_code, key.as_str(), 12);
                    app.global::<Kiosk>()
                        .set_checkin_code(st.checkin_code.clone().into());
                }
            });
        }
        k.on_check_in(with!(|app: &App, st| check_in(app, st)));
        {
            let weak = weak.clone();
            let state = state.clone();
            k.on_card_take_ticket(move |code| {
                if let Some(app) = weak.upgrade() {
                    take_ticket_with_card(&app, &state, code.as_str());
                }
            });
        }
        k.on_card_check_in(with!(|app: &App, st| check_in_with_card(app, st)));
        {
            let weak = weak.clone();
            let state = state.clone();
            k.on_notify_key(move |key| {
                if let Some(app) = weak.upgrade() {
                    let mut st = state.borrow_mut();
                    st.mobile.key(key.as_str());
                    let k = app.global::<Kiosk>();
                    k.set_notify_input(st.mobile.grouped().into());
                    // A problem shown is about the number as it was: typing again is
                    // the answer to it.
                    k.set_notify_problem("".into());
                    k.set_notify_error("".into());
                }
            });
        }
        k.on_send_notice(with!(|app: &App, st| send_notice(app, st)));
        k.on_cancel_notice(with!(|app: &App, st| {
            clear_mobile(app, st);
            app.global::<Kiosk>().set_screen(Screen::Ticket);
            restart_idle(app, st);
        }));
        {
            let weak = weak.clone();
            let state = state.clone();
            k.on_set_language(move |code| {
                if let Some(app) = weak.upgrade()
                    && let Some(lang) = Language::parse(code.as_str())
                {
                    state.borrow_mut().language = lang;
                    apply_language(&app, &state);
                }
            });
        }
        k.on_toggle_elder(with!(|app: &App, st| {
            let elder = !st.borrow().elder;
            st.borrow_mut().elder = elder;
            let k = app.global::<Kiosk>();
            k.set_elder(elder);
            k.set_page(0);
            k.set_guide_step(0);
            refresh_search(app, st);
            if elder {
                speak_screen(st, k.get_screen());
            }
        }));
        k.on_request_help(with!(|app: &App, st| {
            let k = app.global::<Kiosk>();
            let st = st.borrow();
            let _ = st.jobs.send(Job::Help {
                screen: screen_name(k.get_screen()),
                lang: st.language,
            });
            k.set_busy(true);
        }));
        k.on_dismiss_message(with!(|app: &App, _st| {
            app.global::<Kiosk>().set_message("".into());
        }));
        k.on_change_page(move |delta| {
            if let Some(app) = weak.upgrade() {
                let k = app.global::<Kiosk>();
                k.set_page((k.get_page() + delta).max(0));
            }
        });
    }

    fn apply_language(&self) {
        apply_language(&self.app, &self.state);
    }

    fn go_home(&self) {
        go_home(&self.app, &self.state);
    }

    /// The language in force.
    pub fn language(&self) -> Language {
        self.state.borrow().language
    }

    /// How many digits of a mobile number the kiosk holds now (0 once the citizen has
    /// left the notice's pad, sent it, cancelled or gone home): for the tests.
    pub fn mobile_digits_held(&self) -> usize {
        self.state.borrow().mobile.len()
    }

    /// Whether the kiosk holds a ticket's secret token (only while its ticket is on
    /// screen): for the tests.
    pub fn ticket_token_held(&self) -> bool {
        self.state.borrow().token.is_some()
    }
}

/// Applies a pad key to an input: a digit or letter appends, DEL deletes, CLR clears.
fn edit(input: &mut String, key: &str, max: usize) {
    match key {
        "DEL" => {
            input.pop();
        }
        "CLR" => input.clear(),
        k if k.len() == 1 && k.chars().all(|c| c.is_ascii_alphanumeric()) && input.len() < max => {
            input.push_str(k)
        }
        _ => {}
    }
}

fn clock_text(lang: Language, utc_offset_minutes: i32) -> String {
    let offset = chrono::FixedOffset::east_opt(utc_offset_minutes * 60)
        .unwrap_or_else(|| chrono::FixedOffset::east_opt(0).expect("zero offset"));
    let now = chrono::Utc::now().with_timezone(&offset);
    match lang {
        Language::En => now.format("%a %-d %b %Y  %H:%M").to_string(),
        Language::ZhCn | Language::ZhTw => {
            let wd = ["一", "二", "三", "四", "五", "六", "日"]
                [chrono::Datelike::weekday(&now).num_days_from_monday() as usize];
            format!(
                "{}  星期{wd}  {}",
                now.format("%Y年%-m月%-d日"),
                now.format("%H:%M")
            )
        }
    }
}

fn restart_idle(app: &App, state: &Rc<std::cell::RefCell<UiState>>) {
    let st = state.borrow();
    let weak = app.as_weak();
    let st2 = state.clone();
    st.idle
        .start(TimerMode::SingleShot, st.settings.idle_timeout, move || {
            if let Some(app) = weak.upgrade() {
                idle_return(&app, &st2);
            }
        });
}

/// Untouched for the idle time: home, default language, standard mode, inputs cleared.
fn idle_return(app: &App, state: &Rc<std::cell::RefCell<UiState>>) {
    {
        let mut st = state.borrow_mut();
        st.language = st.settings.default_language;
        st.elder = false;
    }
    app.global::<Kiosk>().set_elder(false);
    app.global::<Kiosk>().set_message("".into());
    apply_language(app, state);
    go_home(app, state);
    tracing::debug!("idle: back home in the default language");
}

fn go_home(app: &App, state: &Rc<std::cell::RefCell<UiState>>) {
    let k = app.global::<Kiosk>();
    {
        let mut st = state.borrow_mut();
        st.search_input.clear();
        st.checkin_code.clear();
        // The ticket's secret and its notice leave with the citizen.
        st.token = None;
        st.notice = None;
        st.notice_closed = false;
    }
    clear_mobile(app, state);
    show_notice(app, state);
    k.set_search_input("".into());
    k.set_search_results(ModelRc::default());
    k.set_checkin_code("".into());
    k.set_checklist_state("".into());
    k.set_page(0);
    k.set_guide_step(0);
    let lock = {
        let st = state.borrow();
        st.settings
            .locked_reason
            .clone()
            .or_else(|| st.controller_lock.clone())
    };
    k.set_screen(match lock {
        Some(reason) => {
            k.set_locked(true);
            k.set_closed_reason(reason.into());
            Screen::Closed
        }
        None => {
            k.set_locked(false);
            Screen::Home
        }
    });
    speak_screen(state, k.get_screen());
}

/// Follows the hall server's kiosk lock: locking shows the locked screen with its reason
/// wherever a ticket could be taken (home, services, check-in; a citizen reading a guide
/// or their ticket is left alone, and home leads to the locked screen); unlocking turns
/// the locked screen back into home.
fn apply_lock(app: &App, state: &Rc<std::cell::RefCell<UiState>>, lock: Option<String>) {
    if state.borrow().controller_lock == lock {
        return;
    }
    tracing::info!(locked = lock.is_some(), reason = ?lock, "kiosk lock changed");
    state.borrow_mut().controller_lock = lock.clone();
    if state.borrow().settings.locked_reason.is_some() {
        return; // locked on this kiosk itself; the hall server's lock changes nothing
    }
    let k = app.global::<Kiosk>();
    match lock {
        Some(reason) => {
            k.set_locked(true);
            k.set_closed_reason(reason.into());
            if matches!(
                k.get_screen(),
                Screen::Home | Screen::Services | Screen::Checkin | Screen::Card | Screen::Closed
            ) {
                k.set_message("".into());
                k.set_screen(Screen::Closed);
            }
        }
        None => {
            let was_locked_screen = k.get_locked() && k.get_screen() == Screen::Closed;
            k.set_locked(false);
            if was_locked_screen {
                go_home(app, state);
            }
        }
    }
}

fn navigate(app: &App, state: &Rc<std::cell::RefCell<UiState>>, screen: Screen) {
    let k = app.global::<Kiosk>();
    // The notice's pad opens empty, and leaving it forgets what was typed.
    clear_mobile(app, state);
    if screen == Screen::Notify && !notice_open(state) {
        return; // nothing to ask a notice for (no ticket on screen, or not offered)
    }
    k.set_page(0);
    k.set_guide_step(0);
    if screen == Screen::Search {
        state.borrow_mut().search_input.clear();
        k.set_search_input("".into());
        k.set_search_results(ModelRc::default());
    }
    if screen == Screen::Checkin {
        state.borrow_mut().checkin_code.clear();
        k.set_checkin_code("".into());
    }
    // Outside office hours the service list would only lead to a refusal: say why at
    // once. (Check-in stays open: its window is set around the booked slot.)
    let screen = if screen == Screen::Services && !k.get_open() {
        Screen::Closed
    } else {
        screen
    };
    k.set_screen(screen);
    restart_idle(app, state);
    speak_screen(state, screen);
}

/// Elder mode's prompt for arriving at a screen: welcome at home, choose a service on
/// the service list.
fn speak_screen(state: &Rc<std::cell::RefCell<UiState>>, screen: Screen) {
    match screen {
        Screen::Home => speak(state, "welcome", None),
        Screen::Services => speak(state, "choose_service", None),
        _ => {}
    }
}

/// What the screen says once the help request is recorded (the voice says the same).
fn help_coming_message(lang: Language) -> &'static str {
    match lang {
        Language::ZhCn => "已为您呼叫工作人员，请稍候，工作人员马上就到。",
        Language::ZhTw => "已為您呼叫工作人員，請稍候，工作人員馬上就到。",
        Language::En => {
            "A member of staff has been called and is coming to help you. Please wait here."
        }
    }
}

fn offline_message(lang: Language) -> &'static str {
    match lang {
        Language::ZhCn => "暂时连不上叫号系统，请稍候再试，或请工作人员帮忙。",
        Language::ZhTw => "暫時連不上叫號系統，請稍候再試，或請工作人員幫忙。",
        Language::En => {
            "The queue system cannot be reached right now. Please try again in a moment or ask the staff."
        }
    }
}

/// The idempotency key for `what`: the pending one if it was for the same request,
/// else a fresh one.
fn key_for(pending: &mut Option<(String, String)>, what: &str) -> String {
    match pending {
        Some((w, key)) if w == what => key.clone(),
        _ => {
            let key = uuid::Uuid::new_v4().to_string();
            *pending = Some((what.to_string(), key.clone()));
            key
        }
    }
}

/// Takes a ticket of `code` with the card on the reader (the card screen's tiles).
fn take_ticket_with_card(app: &App, state: &Rc<std::cell::RefCell<UiState>>, code: &str) {
    let k = app.global::<Kiosk>();
    if k.get_busy() {
        return;
    }
    let mut st = state.borrow_mut();
    let key = key_for(&mut st.pending_key, &format!("card-issue:{code}"));
    let _ = st.jobs.send(Job::IssueWithCard {
        service: code.to_string(),
        key,
        lang: st.language,
    });
    k.set_busy(true);
}

/// Checks in the card holder's appointment (the card screen's appointment button).
fn check_in_with_card(app: &App, state: &Rc<std::cell::RefCell<UiState>>) {
    let k = app.global::<Kiosk>();
    if k.get_busy() {
        return;
    }
    let mut st = state.borrow_mut();
    let key = key_for(&mut st.pending_key, "card-check-in");
    let _ = st.jobs.send(Job::CheckInWithCard {
        key,
        lang: st.language,
    });
    k.set_busy(true);
}

/// A card placed, changed or lifted on this kiosk's reader. A card newly placed opens
/// the card screen (刷身份证取号) wherever the kiosk is, unless it is locked, closed or
/// busy with a request; lifted, the card screen goes home. Only the masks the controller
/// gives are kept or shown.
fn card_changed(app: &App, state: &Rc<std::cell::RefCell<UiState>>, card: CardState) {
    let k = app.global::<Kiosk>();
    k.set_card_reader(card.reader);
    let placed = card.present
        && state
            .borrow()
            .card
            .as_ref()
            .is_none_or(|old| old.id != card.id || old.name != card.name);
    state.borrow_mut().card = card.present.then_some(card);
    fill_card(app, state);
    if state.borrow().card.is_none() {
        if k.get_screen() == Screen::Card {
            go_home(app, state);
        }
        return;
    }
    if placed && !k.get_locked() && k.get_open() && !k.get_busy() {
        tracing::info!("an ID card was placed on the reader");
        {
            let mut st = state.borrow_mut();
            // A new citizen: whatever the last one left on screen goes with them.
            st.pending_key = None;
            st.token = None;
            st.notice = None;
            st.notice_closed = false;
        }
        clear_mobile(app, state);
        k.set_message("".into());
        k.set_page(0);
        k.set_screen(Screen::Card);
        restart_idle(app, state);
        speak(state, "choose_service", None);
    }
}

/// Fills the card screen in the current language: the masked holder, the appointment
/// of today, and the services with the numbers the holder already has.
fn fill_card(app: &App, state: &Rc<std::cell::RefCell<UiState>>) {
    let k = app.global::<Kiosk>();
    let st = state.borrow();
    let lang = st.language;
    let Some(card) = &st.card else {
        k.set_card(CardView::default());
        k.set_card_services(ModelRc::default());
        return;
    };
    let shared = st.shared.lock().unwrap_or_else(|p| p.into_inner());
    let name_of = |code: &str| {
        shared
            .services
            .iter()
            .find(|s| s.code == code)
            .map(|s| s.name.get(lang).to_string())
    };
    let appointment = card
        .appointment
        .as_ref()
        .map(|a| {
            let name = a
                .service_name
                .as_ref()
                .map(|n| n.get(lang).to_string())
                .or_else(|| name_of(&a.service))
                .unwrap_or_else(|| a.service.clone());
            // The slot's time of day (`2026-12-07 10:30:00` → `10:30`): it is today's.
            let time = a
                .slot_at_local
                .split_once(' ')
                .map(|(_, t)| t.get(..5).unwrap_or(t))
                .unwrap_or(&a.slot_at_local);
            format!("{name} · {time}")
        })
        .unwrap_or_default();
    k.set_card(CardView {
        name: card.name.clone().unwrap_or_default().into(),
        id: card.id.clone().unwrap_or_default().into(),
        age: card.age.unwrap_or(0) as i32,
        green: card.green,
        appointment: appointment.into(),
    });
    let tiles: Vec<ServiceTile> = shared
        .services
        .iter()
        .map(|s| {
            let mut t = tile(s, lang);
            if let Some(held) = card.tickets.iter().find(|t| t.service == s.code) {
                t.held = held.number.clone().into();
            }
            t
        })
        .collect();
    k.set_card_services(ModelRc::new(VecModel::from(tiles)));
}

fn take_ticket(app: &App, state: &Rc<std::cell::RefCell<UiState>>, code: &str) {
    let k = app.global::<Kiosk>();
    if k.get_busy() {
        return; // a double tap while the first request is in flight
    }
    let mut st = state.borrow_mut();
    let key = key_for(&mut st.pending_key, &format!("issue:{code}"));
    let _ = st.jobs.send(Job::Issue {
        service: code.to_string(),
        key,
        lang: st.language,
    });
    k.set_busy(true);
}

/// Forgets the typed mobile number, in the logic and on screen.
fn clear_mobile(app: &App, state: &Rc<std::cell::RefCell<UiState>>) {
    state.borrow_mut().mobile.clear();
    let k = app.global::<Kiosk>();
    k.set_notify_input("".into());
    k.set_notify_problem("".into());
    k.set_notify_error("".into());
    k.set_notify_typed(0);
}

/// Whether a near-turn notice can be asked for the ticket on screen: the hall offers
/// them, the ticket came with its token, and none is taken or refused yet.
fn notice_open(state: &Rc<std::cell::RefCell<UiState>>) -> bool {
    let st = state.borrow();
    let offered = st
        .shared
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .notify
        .is_some();
    offered && st.token.is_some() && st.notice.is_none() && !st.notice_closed
}

/// Shows the near-turn notice's offer, or the notice taken (masked), on the ticket screen.
fn show_notice(app: &App, state: &Rc<std::cell::RefCell<UiState>>) {
    let k = app.global::<Kiosk>();
    let open = notice_open(state);
    let st = state.borrow();
    let offer = st.shared.lock().unwrap_or_else(|p| p.into_inner()).notify;
    k.set_notify_offered(open);
    k.set_notify_ahead(offer.map(|o| o.ahead as i32).unwrap_or(0));
    match &st.notice {
        Some(n) => {
            k.set_notice_mobile(n.mobile.clone().into());
            k.set_notice_ahead(n.notify_ahead as i32);
            k.set_notice_sent(n.sent);
        }
        None => {
            k.set_notice_mobile("".into());
            k.set_notice_ahead(0);
            k.set_notice_sent(false);
        }
    }
}

/// Send on the notice's pad: a number that is no mainland mobile number is explained
/// there and then; a good one goes to the controller.
fn send_notice(app: &App, state: &Rc<std::cell::RefCell<UiState>>) {
    let k = app.global::<Kiosk>();
    if k.get_busy() {
        return;
    }
    let st = state.borrow();
    if let Err(problem) = st.mobile.check() {
        k.set_notify_problem(problem.code().into());
        k.set_notify_typed(st.mobile.len() as i32);
        k.set_notify_error("".into());
        return;
    }
    let (Some((ticket, _)), Some(token)) = (&st.ticket, &st.token) else {
        return;
    };
    let _ = st.jobs.send(Job::Notice {
        ticket: ticket.id,
        token: token.clone(),
        mobile: st.mobile.clone(),
        lang: st.language,
    });
    k.set_busy(true);
}

/// The controller's answer to a notice, on the UI thread. Taken: back to the ticket
/// screen, which now shows the masked number; a number refused: said on the pad, which
/// keeps it for correcting; a notice that cannot be (the ticket was called, the hall
/// stopped offering them): said, and the offer withdrawn.
fn notice_answer(
    app: &App,
    state: &Rc<std::cell::RefCell<UiState>>,
    lang: Language,
    ticket: u64,
    answer: Result<Notice, ClientError>,
) {
    let k = app.global::<Kiosk>();
    let current = {
        let st = state.borrow();
        st.token.is_some() && st.ticket.as_ref().is_some_and(|(t, _)| t.id == ticket)
    };
    if !current || k.get_screen() != Screen::Notify {
        return; // the citizen has gone: the answer is for nobody on screen now
    }
    match answer {
        Ok(mut notice) => {
            if !mobile::looks_masked(&notice.mobile) {
                // Never a whole number on screen, whatever the answer holds.
                notice.mobile = mobile::masked(state.borrow().mobile.digits());
            }
            tracing::info!(ticket, sent = notice.sent, "near-turn notice taken");
            state.borrow_mut().notice = Some(notice);
            clear_mobile(app, state);
            show_notice(app, state);
            k.set_screen(Screen::Ticket);
        }
        Err(ClientError::Refused {
            status,
            code,
            message,
        }) => {
            // The code only: the controller's words might quote what was typed.
            tracing::warn!(ticket, status, code = %code, "near-turn notice refused");
            if status == 422 {
                k.set_notify_problem("refused".into());
                k.set_notify_error(message.into());
            } else if status == 503 {
                k.set_message(offline_message(lang).into());
            } else {
                state.borrow_mut().notice_closed = true;
                clear_mobile(app, state);
                show_notice(app, state);
                k.set_screen(Screen::Ticket);
                k.set_message(message.into());
            }
        }
        Err(e) => {
            // An unreachable controller's reason is about the connection; a garbled
            // answer's could quote the answer, so only its kind is logged.
            match &e {
                ClientError::Unreachable(why) => {
                    tracing::warn!(ticket, "near-turn notice not sent: {why}");
                    k.set_online(false);
                }
                _ => tracing::warn!(ticket, "near-turn notice: unexpected answer"),
            }
            k.set_message(offline_message(lang).into());
        }
    }
    restart_idle(app, state);
}

fn check_in(app: &App, state: &Rc<std::cell::RefCell<UiState>>) {
    let k = app.global::<Kiosk>();
    let mut st = state.borrow_mut();
    if k.get_busy() || st.checkin_code.is_empty() {
        return;
    }
    let what = format!("check-in:{}", st.checkin_code);
    let key = key_for(&mut st.pending_key, &what);
    let _ = st.jobs.send(Job::CheckIn {
        code: st.checkin_code.clone(),
        key,
        lang: st.language,
    });
    k.set_busy(true);
}

fn open_guide(app: &App, state: &Rc<std::cell::RefCell<UiState>>, code: &str) {
    let st = state.borrow();
    let _ = st.jobs.send(Job::Guide {
        code: code.to_string(),
        lang: st.language,
    });
    app.global::<Kiosk>().set_busy(true);
}

fn refresh_search(app: &App, state: &Rc<std::cell::RefCell<UiState>>) {
    let st = state.borrow();
    let shared = st.shared.lock().unwrap_or_else(|p| p.into_inner());
    // Elder mode shows fewer, larger results.
    let found: Vec<ServiceTile> = catalogue::search(&shared.services, &st.search_input)
        .into_iter()
        .take(if st.elder { 3 } else { 4 })
        .map(|s| tile(s, st.language))
        .collect();
    app.global::<Kiosk>()
        .set_search_results(ModelRc::new(VecModel::from(found)));
}

fn tile(s: &Service, lang: Language) -> ServiceTile {
    ServiceTile {
        code: s.code.clone().into(),
        name: s.name.get(lang).into(),
        department: s.department.clone().into(),
        prefix: s.prefix.clone().into(),
        waiting: s.waiting as i32,
        wait_minutes: s.estimated_wait_minutes as i32,
        windows: catalogue::windows_text(&s.windows, lang).into(),
        held: SharedString::new(),
    }
}

/// Selects the bundled translation and refills every model in the language.
fn apply_language(app: &App, state: &Rc<std::cell::RefCell<UiState>>) {
    let lang = state.borrow().language;
    let offset = state.borrow().settings.utc_offset_minutes;
    if let Err(e) = slint::select_bundled_translation(lang.code()) {
        tracing::warn!(lang = lang.code(), "no bundled translation: {e}");
    }
    let k = app.global::<Kiosk>();
    k.set_language(lang.code().into());
    k.set_clock_text(clock_text(lang, offset).into());
    fill_catalogue(app, state);
    refresh_search(app, state);
    fill_card(app, state);
    let st = state.borrow();
    if let Some(g) = &st.guide {
        k.set_guide(guide_view(g, lang));
    }
    if let Some((t, printer)) = &st.ticket {
        k.set_ticket(ticket_view(t, lang));
        k.set_printer_state(
            printer
                .clone()
                .unwrap_or_else(|| "unavailable".into())
                .into(),
        );
    }
}

/// Refills the service tiles, the overview figures and the windows from the shared copy.
fn fill_catalogue(app: &App, state: &Rc<std::cell::RefCell<UiState>>) {
    let st = state.borrow();
    let lang = st.language;
    let shared = st.shared.lock().unwrap_or_else(|p| p.into_inner());
    let k = app.global::<Kiosk>();
    k.set_online(shared.online);
    let tiles: Vec<ServiceTile> = shared.services.iter().map(|s| tile(s, lang)).collect();
    let same = {
        let old = k.get_services();
        old.row_count() == tiles.len() && old.iter().zip(&tiles).all(|(a, b)| &a == b)
    };
    if !same {
        k.set_services(ModelRc::new(VecModel::from(tiles)));
    }
    k.set_total_waiting(shared.services.iter().map(|s| s.waiting as i32).sum());
    if let Some(o) = &shared.overview {
        k.set_hall_name(o.hall.clone().into());
        let rows: Vec<WindowRow> = o
            .windows
            .iter()
            .map(|w| WindowRow {
                number: w.number as i32,
                name: w.name.clone().into(),
                serving: w
                    .current
                    .as_ref()
                    .map(|c| SharedString::from(c.number.as_str()))
                    .unwrap_or_default(),
                state: if w.paused {
                    "paused".into()
                } else if w.staffed {
                    "open".into()
                } else {
                    "closed".into()
                },
            })
            .collect();
        k.set_windows(ModelRc::new(VecModel::from(rows)));
    }
    let closed = shared.overview.as_ref().and_then(|o| {
        (!o.issuing.open).then(|| {
            o.issuing
                .reason
                .as_ref()
                .map(|r| r.get(lang).to_string())
                .unwrap_or_default()
        })
    });
    let lock = shared.lock.clone();
    drop(shared);
    drop(st);
    show_notice(app, state);
    apply_lock(app, state, lock);
    apply_hours(app, state, closed);
}

/// Follows the hall's office hours from the overview. While tickets are not issued,
/// home's ticket entry says why and leads to the closed screen rather than to a list
/// of services that would each be refused; once they are, a closed screen shown for
/// the hours (not for a lock) turns back into home.
fn apply_hours(app: &App, state: &Rc<std::cell::RefCell<UiState>>, closed: Option<String>) {
    let k = app.global::<Kiosk>();
    if k.get_open() != closed.is_none() {
        tracing::info!(open = closed.is_none(), reason = ?closed, "ticket issue hours changed");
    }
    k.set_open(closed.is_none());
    k.set_hours_note(closed.clone().unwrap_or_default().into());
    if k.get_locked() {
        return; // the closed screen gives the lock's reason
    }
    match closed {
        Some(reason) => k.set_closed_reason(reason.into()),
        None if k.get_screen() == Screen::Closed => go_home(app, state),
        None => {}
    }
}

fn ticket_view(t: &Ticket, lang: Language) -> TicketView {
    TicketView {
        number: t.number.clone().into(),
        service: t
            .service_name
            .as_ref()
            .map(|n| n.get(lang).to_string())
            .unwrap_or_else(|| t.service.clone())
            .into(),
        ahead: t.ahead as i32,
        wait_minutes: t.estimated_wait_minutes as i32,
        windows: catalogue::windows_text(&t.windows, lang).into(),
        issued_at: t.issued_at_local.clone().into(),
        appointment: t.appointment.as_ref().is_some_and(|a| !a.is_null()),
        green: t.class == "green",
    }
}

fn guide_view(g: &Guide, lang: Language) -> GuideView {
    let mut location = g.location.get(lang).to_string();
    if let Some(url) = &g.online {
        location.push('\n');
        location.push_str(url);
    }
    GuideView {
        code: g.code.clone().into(),
        name: g.name.get(lang).into(),
        item_code: g.item_code.clone().into(),
        department: g.department.clone().into(),
        basis: g.basis.get(lang).into(),
        conditions: Guide::lines(&g.conditions, lang, false).into(),
        materials: g.materials_text(lang).into(),
        process: Guide::lines(&g.process, lang, true).into(),
        promised_days: g.promised_days as i32,
        statutory_days: g.statutory_days as i32,
        fees: g.fees.get(lang).into(),
        location: location.into(),
        phone: g.phone.clone().into(),
        online: g.online.clone().unwrap_or_default().into(),
    }
}

/// What the worker hands back to the UI thread.
enum Outcome {
    /// A ticket issued or checked in (boxed: the ticket is by far the largest answer).
    Ticket(Result<Box<Issued>, ClientError>),
    /// The answer to a near-turn notice for a ticket (by id).
    Notice(u64, Result<Notice, ClientError>),
    /// A ticket request answered 423 `kiosk_locked`; the lock's reason.
    Locked(String),
    Guide(Result<Box<Guide>, ClientError>),
    Checklist(Result<String, ClientError>),
    /// The help request recorded (whether one was already open), or why not.
    Help(Result<bool, ClientError>),
}

fn worker(client: Client, jobs: Receiver<Job>, app: Weak<App>) {
    while let Ok(job) = jobs.recv() {
        let (lang, outcome) = match job {
            Job::Help { screen, lang } => {
                (lang, Outcome::Help(retrying(|| client.help(screen, lang))))
            }
            Job::Issue { service, key, lang } => (
                lang,
                ticket_outcome(&client, retrying(|| client.issue(&service, &key, lang))),
            ),
            Job::CheckIn { code, key, lang } => (
                lang,
                ticket_outcome(&client, retrying(|| client.check_in(&code, &key, lang))),
            ),
            Job::IssueWithCard { service, key, lang } => (
                lang,
                ticket_outcome(
                    &client,
                    retrying(|| client.issue_with_card(&service, &key, lang)),
                ),
            ),
            Job::CheckInWithCard { key, lang } => (
                lang,
                ticket_outcome(&client, retrying(|| client.check_in_with_card(&key, lang))),
            ),
            Job::Guide { code, lang } => (
                lang,
                Outcome::Guide(client.guide(&code, lang).map(Box::new)),
            ),
            Job::Notice {
                ticket,
                token,
                mobile,
                lang,
            } => {
                // Asking again replaces the number, so a retry after a lost answer is safe.
                let answer = retrying(|| client.notice(ticket, &token, mobile.digits(), lang));
                drop(mobile);
                (lang, Outcome::Notice(ticket, answer))
            }
            Job::Checklist { code, lang } => (
                lang,
                Outcome::Checklist(client.checklist(&code, lang).map(|a| {
                    if a.printer == "queued" {
                        "printing".to_string()
                    } else {
                        a.printer
                    }
                })),
            ),
        };
        let app = app.clone();
        let sent = slint::invoke_from_event_loop(move || {
            if let Some(app) = app.upgrade() {
                deliver(&app, lang, outcome);
            }
        });
        if sent.is_err() {
            break; // the event loop is gone: the kiosk is shutting down
        }
    }
}

/// A ticket answer, or the lock's own reason when the hall server has locked the kiosk
/// (the 423's message also carries a lead-in meant for a screen without a locked page).
fn ticket_outcome(client: &Client, answer: Result<Issued, ClientError>) -> Outcome {
    match answer {
        Err(ClientError::Refused { code, message, .. }) if code == "kiosk_locked" => {
            Outcome::Locked(client.lock().ok().flatten().unwrap_or(message))
        }
        other => Outcome::Ticket(other.map(Box::new)),
    }
}

/// Tries a request up to three times over about four seconds while the controller is
/// unreachable; the same idempotency key makes the retries safe.
fn retrying<T>(mut f: impl FnMut() -> Result<T, ClientError>) -> Result<T, ClientError> {
    let mut last = None;
    for pause in [0u64, 1000, 2500] {
        std::thread::sleep(Duration::from_millis(pause));
        match f() {
            Err(e) if e.is_transient() => last = Some(e),
            other => return other,
        }
    }
    Err(last.unwrap_or_else(|| ClientError::Unreachable("no attempt".into())))
}

thread_local! {
    /// The UI state of the kiosk on this thread, for results arriving from workers.
    static UI: std::cell::RefCell<Option<std::rc::Weak<std::cell::RefCell<UiState>>>> =
        const { std::cell::RefCell::new(None) };
}

fn with_ui(f: impl FnOnce(&Rc<std::cell::RefCell<UiState>>)) {
    UI.with(|u| {
        if let Some(st) = u.borrow().as_ref().and_then(std::rc::Weak::upgrade) {
            f(&st);
        }
    });
}

fn deliver(app: &App, lang: Language, outcome: Outcome) {
    let k = app.global::<Kiosk>();
    k.set_busy(false);
    with_ui(|state| match outcome {
        Outcome::Ticket(Ok(issued)) => {
            let Issued {
                ticket: t,
                printer,
                token,
            } = *issued;
            state.borrow_mut().pending_key = None;
            let lang_now = state.borrow().language;
            k.set_ticket(ticket_view(&t, lang_now));
            k.set_printer_state(
                printer
                    .clone()
                    .unwrap_or_else(|| "unavailable".into())
                    .into(),
            );
            let number = t.number.clone();
            {
                let mut st = state.borrow_mut();
                st.ticket = Some((t, printer));
                st.token = token;
                st.notice = None;
                st.notice_closed = false;
                st.checkin_code.clear();
            }
            clear_mobile(app, state);
            show_notice(app, state);
            k.set_checkin_code("".into());
            k.set_screen(Screen::Ticket);
            restart_idle(app, state);
            speak(state, "your_number", Some(&number));
            speak(state, "take_ticket", None);
        }
        Outcome::Ticket(Err(e)) => {
            tracing::warn!("ticket request failed: {e}");
            match e {
                ClientError::Refused { code, message, .. } => {
                    // A refusal is final for this key: the next tap is a new request.
                    state.borrow_mut().pending_key = None;
                    if code == "closed" {
                        k.set_open(false);
                        k.set_locked(false);
                        k.set_hours_note(message.clone().into());
                        k.set_closed_reason(message.into());
                        k.set_screen(Screen::Closed);
                    } else {
                        k.set_message(message.into());
                    }
                }
                // Unreachable: keep the key, so tapping again cannot make a second ticket
                // if the first did get through.
                ClientError::Unreachable(_) => {
                    k.set_online(false);
                    k.set_message(offline_message(lang).into());
                }
                ClientError::Protocol(_) => k.set_message(offline_message(lang).into()),
            }
        }
        Outcome::Locked(reason) => {
            // Refused for good: the next tap is a new request.
            state.borrow_mut().pending_key = None;
            {
                let st = state.borrow();
                let mut shared = st.shared.lock().unwrap_or_else(|p| p.into_inner());
                shared.lock = Some(reason.clone());
            }
            apply_lock(app, state, Some(reason.clone()));
            // Even from a guide: this citizen just asked for a ticket.
            if state.borrow().settings.locked_reason.is_none() {
                k.set_locked(true);
                k.set_closed_reason(reason.into());
                k.set_screen(Screen::Closed);
            }
        }
        Outcome::Guide(Ok(g)) => {
            let lang_now = state.borrow().language;
            k.set_guide(guide_view(&g, lang_now));
            k.set_checklist_state("".into());
            k.set_guide_step(0);
            state.borrow_mut().guide = Some(*g);
            k.set_screen(Screen::Guide);
            restart_idle(app, state);
        }
        Outcome::Guide(Err(e)) | Outcome::Checklist(Err(e)) => {
            tracing::warn!("guide request failed: {e}");
            match e {
                ClientError::Refused { message, .. } => k.set_message(message.into()),
                _ => k.set_message(offline_message(lang).into()),
            }
        }
        Outcome::Checklist(Ok(printer)) => {
            k.set_checklist_state(printer.into());
        }
        Outcome::Notice(ticket, answer) => notice_answer(app, state, lang, ticket, answer),
        Outcome::Help(Ok(_)) => k.set_message(help_coming_message(lang).into()),
        Outcome::Help(Err(e)) => {
            tracing::warn!("help request failed: {e}");
            match e {
                ClientError::Refused { message, .. } => k.set_message(message.into()),
                _ => k.set_message(offline_message(lang).into()),
            }
        }
    });
}

impl KioskLogic {
    /// Registers this kiosk's state for results arriving on this (the UI) thread.
    fn register(&self) {
        UI.with(|u| *u.borrow_mut() = Some(Rc::downgrade(&self.state)));
    }
}

/// Keeps the catalogue, overview and kiosk lock fresh: on every wake-up from the event
/// stream (a burst is folded into one refresh), and every `every` anyway; every 2 s while
/// offline. A lock or unlock seen on the stream is newer than any answer to a request
/// that may have crossed it, so within its refresh it wins over `GET /api/v1/kiosk`.
fn refresher(
    client: Client,
    shared: Arc<Mutex<Shared>>,
    app: Weak<App>,
    wake: Receiver<Wake>,
    stop: Receiver<()>,
    every: Duration,
) {
    let mut from_stream: Option<Option<String>> = None;
    loop {
        if !matches!(stop.try_recv(), Err(mpsc::TryRecvError::Empty)) {
            return;
        }
        let result = client.services().and_then(|s| Ok((s, client.overview()?)));
        let online = result.is_ok();
        // An older controller without the kiosk route: no lock, no text messages.
        let kiosk = if online {
            match client.kiosk() {
                Ok(k) => Some(k),
                Err(ClientError::Refused { status: 404, .. }) => Some(KioskState::default()),
                Err(e) => {
                    tracing::debug!("kiosk state unknown: {e}");
                    None
                }
            }
        } else {
            None
        };
        let notify = kiosk.as_ref().map(|k| k.notify);
        let lock = match from_stream.take() {
            Some(l) => Some(l),
            None => kiosk.map(|k| k.lock),
        };
        {
            let mut sh = shared.lock().unwrap_or_else(|p| p.into_inner());
            match result {
                Ok((services, overview)) => {
                    sh.services = services;
                    sh.overview = Some(overview);
                }
                Err(ref e) => tracing::debug!("refresh failed: {e}"),
            }
            if sh.online != online {
                tracing::info!(online, "controller reachability changed");
            }
            sh.online = online;
            if let Some(l) = lock {
                sh.lock = l;
            }
            if let Some(n) = notify {
                sh.notify = n;
            }
        }
        let app2 = app.clone();
        if slint::invoke_from_event_loop(move || {
            if let Some(app) = app2.upgrade() {
                with_ui(|st| fill_catalogue(&app, st));
            }
        })
        .is_err()
        {
            return;
        }
        let wait = if online {
            every
        } else {
            Duration::from_secs(2)
        };
        let mut note = |w: Wake| {
            if let Wake::Lock(l) = w {
                from_stream = Some(l);
            }
        };
        match wake.recv_timeout(wait) {
            Ok(w) => {
                note(w);
                // Fold a burst of events into one refresh.
                std::thread::sleep(Duration::from_millis(50));
                while let Ok(w) = wake.try_recv() {
                    note(w);
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => std::thread::sleep(wait),
        }
    }
}

/// Follows the live stream and wakes the refresher on each event (with the lock's news
/// for `kiosk_locked` / `kiosk_unlocked`); reconnects with backoff when the stream breaks.
fn follow(client: Client, wake: Sender<Wake>) {
    let mut backoff = Duration::from_millis(500);
    loop {
        let mut alive = true;
        let mut restarting = false;
        let why = client.follow_events(|event: &StreamEvent| {
            // The controller is stopping (a restart, an upgrade): the stream ends next.
            if event.name == "reconnect" {
                restarting = true;
                return true;
            }
            let w = match event.lock_change() {
                Some(l) => Wake::Lock(l),
                None => Wake::Event,
            };
            alive = wake.send(w).is_ok();
            alive
        });
        if !alive {
            return;
        }
        tracing::debug!("event stream ended: {why}");
        // Wake the refresher so the screen learns of the outage at once.
        if wake.send(Wake::Event).is_err() {
            return;
        }
        if restarting {
            // Back in about a second: try then, and back off from the start again.
            backoff = Duration::from_millis(500);
            std::thread::sleep(Duration::from_secs(1));
            continue;
        }
        std::thread::sleep(backoff);
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

/// Watches this kiosk's ID card reader: every 400 ms while the kiosk has one (a card is
/// placed by a citizen waiting for the screen to answer), every 10 s otherwise (to learn
/// of a reader configured later). A change is handed to the UI thread; an unreachable
/// controller changes nothing here (the banner says it).
fn card_watch(client: Client, app: Weak<App>, stop: Receiver<()>) {
    let mut last: Option<CardState> = None;
    loop {
        let now = match client.card() {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::debug!("card state unknown: {e}");
                None
            }
        };
        let wait = if now.as_ref().or(last.as_ref()).is_some_and(|c| c.reader) {
            Duration::from_millis(400)
        } else {
            Duration::from_secs(10)
        };
        if let Some(card) = now
            && last.as_ref() != Some(&card)
        {
            last = Some(card.clone());
            let app = app.clone();
            let sent = slint::invoke_from_event_loop(move || {
                if let Some(app) = app.upgrade() {
                    with_ui(|st| card_changed(&app, st, card));
                }
            });
            if sent.is_err() {
                return;
            }
        }
        match stop.recv_timeout(wait) {
            Err(RecvTimeoutError::Timeout) => {}
            _ => return,
        }
    }
}

/// Builds the logic for `app` on the current (UI) thread.
pub fn attach(app: App, settings: Settings) -> KioskLogic {
    let logic = KioskLogic::start(app, settings);
    logic.register();
    // Results that arrived before registration are re-read from the shared copy.
    fill_catalogue(&logic.app, &logic.state);
    logic
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_request_reuses_its_key_and_another_gets_a_new_one() {
        let mut pending = None;
        let a = key_for(&mut pending, "issue:SB");
        assert_eq!(key_for(&mut pending, "issue:SB"), a);
        let b = key_for(&mut pending, "issue:MZ");
        assert_ne!(a, b);
        pending = None;
        assert_ne!(key_for(&mut pending, "issue:MZ"), b);
    }

    #[test]
    fn pad_keys_edit_the_input() {
        let mut s = String::new();
        for k in ["4", "8", "DEL", "2", "x!", "CLR", "9"] {
            edit(&mut s, k, 12);
        }
        assert_eq!(s, "9");
    }
}
