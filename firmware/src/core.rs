//! The hall core: one thread owns the engine and the store. Requests arrive on a
//! bounded channel; whatever has queued up while the previous commit was on its way to
//! disk is handled as one batch and committed in one transaction (group commit). No
//! request is answered before its events are on disk. Committed events then fan out to
//! subscribers (the live stream now; printer, displays, voice and uplink later).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hallq_engine::{Command, Engine, Event, Refusal, Setup, Ticket, Timestamp};
use tokio::sync::{broadcast, oneshot};

use crate::in_force::{InForce, Setting};
use crate::near_turn::{NoticeAsk, NoticeError, NoticeGiven, Watch};
use crate::phone::NearTurnPolicy;
use crate::store::staff::{self, AccountChange, AccountState, StaffError};
use crate::store::{NewEvent, Store, StoreError, StoredEvent};

/// Requests that may wait for the writer; beyond this the API answers 503 at once.
const QUEUE_DEPTH: usize = 4096;
/// Most requests handled in one transaction.
const MAX_BATCH: usize = 512;

/// The wall clock, as the engine's time value.
pub fn wall_now() -> Timestamp {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    Timestamp(ms)
}

/// Why a request to the core did not complete.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// The engine refused the command; nothing changed.
    #[error("refused: {0}")]
    Refused(Refusal),
    /// The database failed; nothing of this request was committed.
    #[error("storage failed: {0}")]
    Store(String),
    /// The disk is full: nothing of this request was committed, and nothing new can be
    /// until space is freed (then the next request simply succeeds).
    #[error("storage full: {0}")]
    StorageFull(String),
    /// Too many requests are waiting.
    #[error("the controller is busy")]
    Busy,
    /// The core has stopped.
    #[error("the controller is shutting down")]
    Stopped,
    /// A rule of the controller's own (not the engine's) declined the command, checked
    /// on the core thread just before it would have run; nothing changed.
    #[error("declined: {}", .0.code)]
    Declined(Declined),
}

/// A command a controller rule declined (see [`HallCore::execute_unless`]), with what to
/// tell the citizen in each language.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Declined {
    /// Stable machine code, e.g. `already_holds_ticket`.
    pub code: &'static str,
    /// The reason in Simplified Chinese, Traditional Chinese and English.
    pub messages: [String; 3],
}

impl Declined {
    /// The reason in `lang`.
    pub fn message(&self, lang: hallq_engine::Lang) -> &str {
        match lang {
            hallq_engine::Lang::ZhCn => &self.messages[0],
            hallq_engine::Lang::ZhTw => &self.messages[1],
            hallq_engine::Lang::En => &self.messages[2],
        }
    }
}

/// A rule checked on the core thread against the state a command would run on.
pub type Guard = Box<dyn FnOnce(&Engine) -> Option<Declined> + Send>;

/// The result of a committed command.
#[derive(Debug, Clone)]
pub struct Done {
    /// The events it produced, as stored.
    pub events: Vec<StoredEvent>,
    /// For issue and check-in: the ticket (new, or the one the retry key made).
    pub ticket: Option<Ticket>,
    /// People ahead of that ticket.
    pub ahead: u32,
    /// Estimated minutes until that ticket is called.
    pub wait_minutes: u32,
    /// The retry key had been used: nothing new was made.
    pub replayed: bool,
}

type Query = Box<dyn FnOnce(&Engine, &Store) + Send>;

/// A near-turn notice request as committed (its events and what was recorded), or
/// refused; the outer error is the core's (storage, shutdown).
pub type NoticeOutcome = Result<Result<(Vec<StoredEvent>, NoticeGiven), NoticeError>, CoreError>;

/// A staff account change as committed: its events (the audit event first, then any
/// sign-out from a window) and the account as it is now.
pub type AccountOutcome = Result<(Vec<StoredEvent>, AccountState), StaffError>;

enum Request {
    Command(Command, oneshot::Sender<Result<Done, CoreError>>),
    /// A command that runs only if its guard, asked on the core thread right before,
    /// declines nothing: no other command can slip between the check and the command.
    Guarded(Command, Guard, oneshot::Sender<Result<Done, CoreError>>),
    Append(
        Vec<NewEvent>,
        oneshot::Sender<Result<Vec<StoredEvent>, CoreError>>,
    ),
    Query(Query),
    Reconfigure(Box<Reconfigure>),
    Account(Box<AccountChange>, oneshot::Sender<AccountOutcome>),
    Notice(NoticeAsk, oneshot::Sender<NoticeOutcome>),
    /// Commit everything queued before this, then stop: anything after it is never
    /// handled, so its caller gets [`CoreError::Stopped`] and no acknowledgement.
    Stop,
}

/// A new queue setup pushed from the hall server, applied on the core thread between
/// two batches: everything before it is committed under the old setup, everything after
/// runs under the new one.
pub struct Reconfigure {
    /// The new setup and guides; `in_force.version` is the hall server's number.
    pub in_force: InForce,
    /// The document as received, kept so a restart applies exactly what was acknowledged.
    pub document: String,
    /// The audit event (`config_applied`) committed with the configuration row.
    pub event: NewEvent,
    reply: Option<oneshot::Sender<Result<Vec<StoredEvent>, ReconfigureError>>>,
}

/// Why a new setup was not applied; the old one stays in force.
#[derive(Debug, thiserror::Error)]
pub enum ReconfigureError {
    /// The setup does not fit the hall as it is now (key path and reason).
    #[error("{key}: {message}")]
    Rejected {
        /// Dotted key path in the queue setup.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// Storage or the core failed.
    #[error(transparent)]
    Core(#[from] CoreError),
}

/// What the core's group commit has done since start, for `/metrics`: how many
/// transactions, how many writers they answered (their ratio is the mean batch), how
/// long the commits took and how long batches were held back for writers on their way.
#[derive(Debug, Default)]
pub struct CommitStats {
    commits: AtomicU64,
    writers: AtomicU64,
    commit_micros: AtomicU64,
    gather_micros: AtomicU64,
    sync_micros: AtomicU64,
}

/// A reading of [`CommitStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CommitTotals {
    /// Batches handled.
    pub commits: u64,
    /// Commands and appends they answered.
    pub writers: u64,
    /// Seconds spent handling batches (engine and transaction).
    pub commit_seconds: f64,
    /// Seconds batches were held back for writers on their way.
    pub gather_seconds: f64,
    /// Seconds of those spent ending transactions: their last writes and the sync that
    /// makes them durable (on an SD card most of a commit's time).
    pub sync_seconds: f64,
}

impl CommitStats {
    fn record(&self, writers: usize, commit: Duration, gather: Duration) {
        self.commits.fetch_add(1, Ordering::Relaxed);
        self.writers.fetch_add(writers as u64, Ordering::Relaxed);
        self.commit_micros
            .fetch_add(commit.as_micros() as u64, Ordering::Relaxed);
        self.gather_micros
            .fetch_add(gather.as_micros() as u64, Ordering::Relaxed);
    }

    fn synced(&self, took: Duration) {
        self.sync_micros
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
    }

    /// The totals now.
    pub fn totals(&self) -> CommitTotals {
        CommitTotals {
            commits: self.commits.load(Ordering::Relaxed),
            writers: self.writers.load(Ordering::Relaxed),
            commit_seconds: self.commit_micros.load(Ordering::Relaxed) as f64 / 1e6,
            gather_seconds: self.gather_micros.load(Ordering::Relaxed) as f64 / 1e6,
            sync_seconds: self.sync_micros.load(Ordering::Relaxed) as f64 / 1e6,
        }
    }
}

/// A cheap, cloneable handle to the hall core.
#[derive(Clone)]
pub struct HallCore {
    tx: SyncSender<Request>,
    events: broadcast::Sender<Arc<StoredEvent>>,
    in_force: Setting,
    stats: Arc<CommitStats>,
    near: Option<NearTurnPolicy>,
}

impl HallCore {
    /// Restores the engine from the store under `in_force` (the file's setup, or the
    /// stored pushed one) and starts the core thread.
    pub fn start(
        in_force: InForce,
        store: Store,
    ) -> Result<(HallCore, std::thread::JoinHandle<()>), StoreError> {
        HallCore::start_with(in_force, store, None)
    }

    /// [`HallCore::start`] for a hall that offers near-turn notices under `near`.
    pub fn start_with(
        in_force: InForce,
        store: Store,
        near: Option<NearTurnPolicy>,
    ) -> Result<(HallCore, std::thread::JoinHandle<()>), StoreError> {
        HallCore::start_full(in_force, store, near, Default::default())
    }

    /// [`HallCore::start_with`] coding rating records under `evaluation` (`[evaluation]`).
    pub fn start_full(
        in_force: InForce,
        store: Store,
        near: Option<NearTurnPolicy>,
        evaluation: crate::evaluation::EvaluationConfig,
    ) -> Result<(HallCore, std::thread::JoinHandle<()>), StoreError> {
        let started = Instant::now();
        let setup = in_force.setup.clone();
        let setting = Setting::new(in_force);
        let mut store = store;
        store.set_figure_rules(crate::store::figures::Rules::of(&setup))?;
        let engine = restore(&setup, &store)?;
        let watch = Watch::load(near, &store)?;
        tracing::info!(
            tickets = engine.tickets().count(),
            day = %engine.day(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "queue state restored"
        );
        let (tx, rx) = sync_channel(QUEUE_DEPTH);
        let (events, _) = broadcast::channel(4096);
        let fanout = events.clone();
        let (stop_checkpoints, checkpoint_stop) = std::sync::mpsc::channel::<()>();
        let checkpointer = crate::store::checkpoint::spawn(&store, checkpoint_stop)?;
        let core_setting = setting.clone();
        let stats = Arc::new(CommitStats::default());
        let core_stats = stats.clone();
        let handle = std::thread::Builder::new()
            .name("hall-core".into())
            .spawn(move || {
                Core {
                    engine,
                    store,
                    setup,
                    fanout,
                    in_force: core_setting,
                    broken: false,
                    stats: core_stats,
                    watch,
                    evaluation,
                }
                .run(rx);
                drop(stop_checkpoints);
                if let Some(c) = checkpointer {
                    let _ = c.join();
                }
            })
            .map_err(|e| StoreError::Damaged(format!("cannot start the core thread: {e}")))?;
        Ok((
            HallCore {
                tx,
                events,
                in_force: setting,
                stats,
                near,
            },
            handle,
        ))
    }

    fn send(&self, r: Request) -> Result<(), CoreError> {
        self.tx.try_send(r).map_err(|e| match e {
            TrySendError::Full(_) => CoreError::Busy,
            TrySendError::Disconnected(_) => CoreError::Stopped,
        })
    }

    /// Records a citizen's near-turn notice request (the ticket's token already
    /// checked); resolves once it is durable.
    pub async fn request_notice(&self, ask: NoticeAsk) -> NoticeOutcome {
        let (tx, rx) = oneshot::channel();
        self.send(Request::Notice(ask, tx))?;
        rx.await.map_err(|_| CoreError::Stopped)?
    }

    /// When near-turn notices go, if the hall offers them (what the kiosk is told).
    pub fn near_turn(&self) -> Option<NearTurnPolicy> {
        self.near
    }

    /// Runs a command; resolves once its events are durable.
    pub async fn execute(&self, cmd: Command) -> Result<Done, CoreError> {
        let (tx, rx) = oneshot::channel();
        self.send(Request::Command(cmd, tx))?;
        rx.await.map_err(|_| CoreError::Stopped)?
    }

    /// Runs a command unless `guard`, asked on the core thread against the state the
    /// command would run on (the clock moved on first), declines it; resolves once its
    /// events are durable.
    pub async fn execute_unless(&self, cmd: Command, guard: Guard) -> Result<Done, CoreError> {
        let (tx, rx) = oneshot::channel();
        self.send(Request::Guarded(cmd, guard, tx))?;
        rx.await.map_err(|_| CoreError::Stopped)?
    }

    /// Appends events that do not come from the engine (staff changes, failed sign-ins).
    pub async fn append(&self, events: Vec<NewEvent>) -> Result<Vec<StoredEvent>, CoreError> {
        let (tx, rx) = oneshot::channel();
        self.send(Request::Append(events, tx))?;
        rx.await.map_err(|_| CoreError::Stopped)?
    }

    /// [`HallCore::append`] for a device's own thread, outside the async runtime.
    pub fn append_blocking(&self, events: Vec<NewEvent>) -> Result<Vec<StoredEvent>, CoreError> {
        let (tx, rx) = oneshot::channel();
        self.send(Request::Append(events, tx))?;
        rx.blocking_recv().map_err(|_| CoreError::Stopped)?
    }

    /// Reads committed state on the core thread (never sees an uncommitted change).
    pub async fn query<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Engine, &Store) -> T + Send + 'static,
    ) -> Result<T, CoreError> {
        let (tx, rx) = oneshot::channel();
        self.send(Request::Query(Box::new(move |e, s| {
            let _ = tx.send(f(e, s));
        })))?;
        rx.await.map_err(|_| CoreError::Stopped)
    }

    /// Validates `setup` against the hall's live state and, if it fits, swaps the engine
    /// for one restored from the store under the new setup; the configuration row and
    /// its audit event commit in one transaction. On any error the old setup stays.
    pub async fn reconfigure(
        &self,
        in_force: InForce,
        document: String,
        event: NewEvent,
    ) -> Result<Vec<StoredEvent>, ReconfigureError> {
        let (tx, rx) = oneshot::channel();
        self.send(Request::Reconfigure(Box::new(Reconfigure {
            in_force,
            document,
            event,
            reply: Some(tx),
        })))?;
        rx.await.map_err(|_| CoreError::Stopped)?
    }

    /// Changes a staff account on the core thread: the account row, its audit event,
    /// and a `staff_signed_out` from every window the account no longer allows (it was
    /// disabled or removed, or the window left its list) commit in one transaction, so
    /// the window's displays show it unstaffed at once. Hash a new PIN before (it is
    /// slow on purpose): the core never does Argon2 work.
    pub async fn change_account(&self, change: AccountChange) -> Result<AccountOutcome, CoreError> {
        let (tx, rx) = oneshot::channel();
        self.send(Request::Account(Box::new(change), tx))?;
        rx.await.map_err(|_| CoreError::Stopped)
    }

    /// Signs out of every window whoever is signed in there although their account no
    /// longer allows it: changed by `hallq staff` beside the running daemon, or while
    /// it was stopped. Returns the sign-outs committed. The daemon runs it at start and
    /// every few seconds; an id without any account (a simulation's) is left alone.
    pub async fn revoke_stale_sign_ins(&self) -> Result<Vec<StoredEvent>, CoreError> {
        let stale = self
            .query(|e, s| {
                e.windows()
                    .values()
                    .filter_map(|w| w.staff.as_ref().map(|(id, _, _)| (w.number, id.clone())))
                    .filter(|(n, id)| matches!(staff::may_stay(s.conn(), id, *n), Ok(Some(false))))
                    .collect::<Vec<_>>()
            })
            .await?;
        let mut out = Vec::new();
        for (window, staff) in stale {
            match self.execute(Command::RevokeSignIn { window, staff }).await {
                Ok(done) => out.extend(done.events),
                // Someone signed out or in there meanwhile: nothing left to do.
                Err(CoreError::Refused(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// Asks the core to commit what it has accepted and stop, even while other handles
    /// remain (a connection the server gave up waiting for, say). Waits for room in the
    /// queue, so it runs on a blocking thread.
    pub async fn close(&self) {
        let tx = self.tx.clone();
        // A failed send means the core has stopped already: nothing left to ask.
        let _ = tokio::task::spawn_blocking(move || tx.send(Request::Stop).is_ok()).await;
    }

    /// Committed events as they happen.
    /// What the group commit has done since start.
    pub fn commit_totals(&self) -> CommitTotals {
        self.stats.totals()
    }

    /// Committed events, as they fan out.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<StoredEvent>> {
        self.events.subscribe()
    }

    /// The setup and guides in force now. It changes on the core thread before the
    /// `config_applied` event that records the change fans out.
    pub fn in_force(&self) -> Arc<InForce> {
        self.in_force.now()
    }

    /// The handle to the setup in force, to follow its changes.
    pub fn setting(&self) -> &Setting {
        &self.in_force
    }
}

fn restore(setup: &Setup, store: &Store) -> Result<Engine, StoreError> {
    let clock = hallq_engine::LocalClock::new(setup.utc_offset_minutes);
    let snapshot = store.load(clock, setup.day_starts_at, wall_now())?;
    Engine::restore(setup.clone(), snapshot).map_err(|e| StoreError::Damaged(e.to_string()))
}

struct Core {
    engine: Engine,
    store: Store,
    setup: Setup,
    fanout: broadcast::Sender<Arc<StoredEvent>>,
    /// The setup in force, as every consumer reads it.
    in_force: Setting,
    /// A commit failed and the engine could not yet be rebuilt from disk: refuse work
    /// rather than answer from a state that is not the committed one.
    broken: bool,
    stats: Arc<CommitStats>,
    /// Tickets whose near-turn notice has not gone yet.
    watch: Watch,
    /// How rating records are coded, and the follow-up's working days.
    evaluation: crate::evaluation::EvaluationConfig,
}

/// The batch being gathered: what its requests produced, what of it is already written
/// into its open transaction, and what to answer once that transaction is on disk.
#[derive(Default)]
struct Batch {
    /// Events of the batch, in order; `stored` holds the first of them as written.
    pending: Vec<NewEvent>,
    /// The events written so far, with their sequence numbers (`pending[..stored.len()]`).
    stored: Vec<StoredEvent>,
    /// Near-turn notice rows not yet written.
    notices: Vec<crate::store::notices::NewNotice>,
    /// A command ran (near-turn notices may be due).
    moved: bool,
    /// The transaction is open.
    open: bool,
    replies: Vec<Reply>,
}

/// What to send back once the batch is on disk. Lives only for one batch, so the
/// size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
enum Reply {
    Command {
        tx: oneshot::Sender<Result<Done, CoreError>>,
        range: std::ops::Range<usize>,
        outcome: Result<Done, CoreError>,
    },
    Append {
        tx: oneshot::Sender<Result<Vec<StoredEvent>, CoreError>>,
        range: std::ops::Range<usize>,
    },
    Notice {
        tx: oneshot::Sender<NoticeOutcome>,
        range: std::ops::Range<usize>,
        outcome: Result<NoticeGiven, NoticeError>,
    },
    Query(Query),
}

/// Longest a batch is held back for writers still on their way (see [`Gather`]).
const MAX_GATHER: Duration = Duration::from_millis(2);

/// How long the core holds a batch back so that writers still on their way join it.
///
/// The writers a commit answers come back with their next request a network round trip
/// later; the writers that queued during that commit are already here. Taking only what
/// is queued would commit the second group alone while the first is on its way, and the
/// two groups would alternate, each paying a whole commit: half the batch it could be.
/// So the next batch waits until as many writers are in as the last commit answered
/// plus those that queued during it, but never longer than half that commit's time
/// (and [`MAX_GATHER`]). A single client never waits: it is answered and alone. A batch
/// with no writer (queries, a tick) never waits either.
#[derive(Debug, Default)]
struct Gather {
    /// Writers answered by the last commit plus writers queued when it ended.
    expected: usize,
    /// How long the last commit took.
    last_commit: Duration,
}

impl Gather {
    /// After a commit that answered `answered` writers, while `queued` more queued.
    fn committed(&mut self, answered: usize, queued: usize) {
        self.expected = answered + queued;
    }

    /// How long to wait for more writers, given `writers` already in the batch.
    fn budget(&self, writers: usize) -> Duration {
        if writers == 0 || writers >= self.expected {
            Duration::ZERO
        } else {
            (self.last_commit / 2).min(MAX_GATHER)
        }
    }
}

fn is_writer(r: &Request) -> bool {
    matches!(
        r,
        Request::Command(..) | Request::Guarded(..) | Request::Append(..) | Request::Notice(..)
    )
}

/// Moves what is queued into `batch` (up to [`MAX_BATCH`]); true when a stop was among
/// it (nothing queued after a stop is taken).
fn drain(rx: &Receiver<Request>, batch: &mut Vec<Request>) -> bool {
    while batch.len() < MAX_BATCH {
        match rx.try_recv() {
            Ok(Request::Stop) => return true,
            Ok(r) => batch.push(r),
            Err(_) => break,
        }
    }
    false
}

impl Core {
    fn run(mut self, rx: Receiver<Request>) {
        let mut gather = Gather::default();
        // Requests that queued during the last commit: the next batch starts with them.
        let mut carried: Vec<Request> = Vec::new();
        let mut stopping = false;
        loop {
            let mut queued = std::mem::take(&mut carried);
            if queued.is_empty() {
                if stopping {
                    break;
                }
                let wait = (self.engine.next_deadline().0 - wall_now().0).clamp(0, 60_000);
                match rx.recv_timeout(Duration::from_millis(wait as u64)) {
                    Ok(Request::Stop) | Err(RecvTimeoutError::Disconnected) => break,
                    Ok(r) => queued.push(r),
                    Err(RecvTimeoutError::Timeout) => {
                        let (tx, _rx) = oneshot::channel();
                        queued.push(Request::Command(Command::Tick, tx));
                    }
                }
            }
            if !stopping {
                stopping = drain(&rx, &mut queued);
            }
            // Each request is run and written into the open transaction as it comes:
            // while the batch waits for writers on their way, the work of those already
            // in is done, and the commit after the last one is little more than its sync.
            let started = Instant::now();
            let mut batch = Batch::default();
            let mut writers = 0;
            let mut taken = 0;
            for r in queued {
                writers += usize::from(is_writer(&r));
                taken += 1;
                self.take(r, &mut batch);
            }
            let budget = gather.budget(writers);
            let gathering = Instant::now();
            let mut waited = Duration::ZERO;
            if !budget.is_zero() && !stopping {
                let until = gathering + budget;
                while writers < gather.expected && taken < MAX_BATCH {
                    let asked = Instant::now();
                    let got = rx.recv_timeout(until.saturating_duration_since(asked));
                    waited += asked.elapsed();
                    match got {
                        Ok(Request::Stop) => {
                            stopping = true;
                            break;
                        }
                        Ok(r) => {
                            writers += usize::from(is_writer(&r));
                            taken += 1;
                            self.take(r, &mut batch);
                        }
                        Err(_) => break,
                    }
                }
            }
            let gathered = gathering.elapsed();
            self.finish(batch);
            // The transaction's own time: its work and its sync, not the wait for writers.
            let took = started.elapsed().saturating_sub(waited);
            gather.last_commit = took;
            self.stats.record(writers, took, gathered);
            if !stopping {
                stopping = drain(&rx, &mut carried);
            }
            gather.committed(writers, carried.iter().filter(|r| is_writer(r)).count());
        }
        tracing::info!("hall core stopped");
    }

    /// Takes one request into the open batch. A reconfiguration or an account change
    /// has a transaction of its own: what came before it is committed first, so each
    /// transaction runs under one setup.
    fn take(&mut self, request: Request, batch: &mut Batch) {
        match request {
            Request::Reconfigure(r) => {
                self.finish(std::mem::take(batch));
                self.reconfigure(*r);
            }
            Request::Account(change, tx) => {
                self.finish(std::mem::take(batch));
                let outcome = self.account(&change);
                if let Ok((events, _)) = &outcome {
                    for e in events {
                        let _ = self.fanout.send(Arc::new(e.clone()));
                    }
                }
                let _ = tx.send(outcome);
            }
            other => self.execute(other, batch),
        }
    }

    fn reconfigure(&mut self, mut r: Reconfigure) {
        let outcome = self.try_reconfigure(&r);
        let stored = match outcome {
            Ok((engine, stored)) => {
                self.engine = engine;
                self.setup = r.in_force.setup.clone();
                if let Err(e) = self
                    .store
                    .set_figure_rules(crate::store::figures::Rules::of(&self.setup))
                {
                    tracing::error!(error = %e, "period figures keep the previous setup's rules");
                }
                tracing::info!(version = ?r.in_force.version, "queue setup replaced");
                // Before the events fan out: whoever reacts to `config_applied` reads
                // the new setup.
                self.in_force.replace(r.in_force.clone());
                Ok(stored)
            }
            Err(e) => Err(e),
        };
        if let Ok(events) = &stored {
            for e in events {
                let _ = self.fanout.send(Arc::new(e.clone()));
            }
        }
        if let Some(tx) = r.reply.take() {
            let _ = tx.send(stored);
        }
    }

    /// One account change in a transaction of its own, with the sign-outs it causes.
    fn account(&mut self, change: &AccountChange) -> AccountOutcome {
        if self.broken {
            return Err(StaffError::Storage("the database is unavailable".into()));
        }
        let engine = &mut self.engine;
        let mut touched = false;
        let id = change.staff.clone();
        let result = self.store.change_account(change, wall_now(), |conn| {
            let stale: Vec<u32> = engine
                .windows()
                .values()
                .filter(|w| w.staff.as_ref().is_some_and(|(s, _, _)| *s == id))
                .map(|w| w.number)
                .filter(|n| !matches!(staff::may_stay(conn, &id, *n), Ok(Some(true))))
                .collect();
            let mut events = Vec::new();
            for window in stale {
                touched = true;
                let cmd = Command::RevokeSignIn {
                    window,
                    staff: id.clone(),
                };
                let evs = match engine.handle(cmd, wall_now()) {
                    Ok(evs) => evs,
                    Err(refused) => refused.events,
                };
                let at = engine.now();
                for e in &evs {
                    events.push(NewEvent::encode(at, e.kind(), e)?);
                }
            }
            Ok((events, engine.take_changes()))
        });
        if touched && result.is_err() {
            // The engine moved on in memory but the disk did not: rebuild before more work.
            self.broken = true;
        }
        result
    }

    fn try_reconfigure(
        &mut self,
        r: &Reconfigure,
    ) -> Result<(Engine, Vec<StoredEvent>), ReconfigureError> {
        if self.broken {
            return Err(CoreError::Store("the database is unavailable".into()).into());
        }
        let setup = &r.in_force.setup;
        self.engine
            .fits(setup)
            .map_err(|e| ReconfigureError::Rejected {
                key: format!("queue.{}", e.key),
                message: e.message,
            })?;
        let engine = restore(setup, &self.store).map_err(|e| match e {
            StoreError::Damaged(message) => ReconfigureError::Rejected {
                key: "queue".into(),
                message,
            },
            other => CoreError::Store(other.to_string()).into(),
        })?;
        let stored = self
            .store
            .save_config(
                r.in_force.version.unwrap_or(0),
                &r.document,
                std::slice::from_ref(&r.event),
            )
            .map_err(|e| CoreError::Store(e.to_string()))?;
        Ok((engine, stored))
    }

    /// Runs one request into the batch and writes what it changed into the batch's
    /// transaction (opened by the first request that changes anything).
    fn execute(&mut self, request: Request, batch: &mut Batch) {
        if batch.replies.is_empty() && self.broken {
            match restore(&self.setup, &self.store)
                .and_then(|e| Ok((e, self.watch.reloaded(&self.store)?)))
            {
                Ok((engine, watch)) => {
                    self.engine = engine;
                    self.watch = watch;
                    self.broken = false;
                    tracing::info!("queue state rebuilt from the database after a storage failure");
                }
                Err(e) => tracing::error!(error = %e, "database still unavailable"),
            }
        }
        match request {
            Request::Query(q) => batch.replies.push(Reply::Query(q)),
            Request::Reconfigure(_) | Request::Account(..) => {
                unreachable!("take gives reconfigurations and account changes their own")
            }
            Request::Stop => unreachable!("the run loop takes the stop out of the batch"),
            Request::Append(events, tx) => {
                let start = batch.pending.len();
                batch.pending.extend(events);
                batch.replies.push(Reply::Append {
                    tx,
                    range: start..batch.pending.len(),
                });
            }
            Request::Notice(ask, tx) => {
                let start = batch.pending.len();
                let outcome = self.notice(ask, &mut batch.pending, &mut batch.notices);
                batch.replies.push(Reply::Notice {
                    tx,
                    range: start..batch.pending.len(),
                    outcome,
                });
            }
            Request::Command(cmd, tx) => {
                batch.moved = true;
                let reply = self.reply(cmd, None, tx, &mut batch.pending);
                batch.replies.push(reply);
            }
            Request::Guarded(cmd, guard, tx) => {
                batch.moved = true;
                let reply = self.reply(cmd, Some(guard), tx, &mut batch.pending);
                batch.replies.push(reply);
            }
        }
        self.write(batch);
    }

    /// Writes what the batch holds and has not written yet into its transaction. On a
    /// failure the transaction is rolled back and every writer in the batch so far hears
    /// why; the batch starts again empty.
    fn write(&mut self, batch: &mut Batch) {
        let changes = self.engine.take_changes();
        let events = &batch.pending[batch.stored.len()..];
        if events.is_empty() && changes.is_empty() && batch.notices.is_empty() {
            return;
        }
        let result = if batch.open {
            Ok(())
        } else {
            self.store.begin()
        }
        .and_then(|()| {
            batch.open = true;
            self.store.write(events, &changes, &batch.notices)
        });
        match result {
            Ok(stored) => {
                batch.stored.extend(stored);
                batch.notices.clear();
            }
            Err(e) => {
                self.store.abandon();
                self.failed(&e, std::mem::take(batch).replies);
            }
        }
    }

    /// Commits the batch and answers its requests (queries last, on the committed
    /// state); then its events fan out.
    fn finish(&mut self, mut batch: Batch) {
        if batch.moved && !self.broken {
            let at = self.engine.now();
            for e in self.watch.due(&self.engine) {
                push_event(&mut batch.pending, at, &e);
            }
            self.write(&mut batch);
        }
        if batch.open {
            let ending = Instant::now();
            let ended = self.store.end();
            self.stats.synced(ending.elapsed());
            if let Err(e) = ended {
                self.failed(&e, batch.replies);
                return;
            }
        }
        let stored = batch.stored;
        for r in batch.replies {
            match r {
                Reply::Command { tx, range, outcome } => {
                    let _ = tx.send(outcome.map(|mut done| {
                        done.events = stored[range].to_vec();
                        done
                    }));
                }
                Reply::Append { tx, range } => drop(tx.send(Ok(stored[range].to_vec()))),
                Reply::Notice { tx, range, outcome } => {
                    let _ = tx.send(Ok(outcome.map(|given| (stored[range].to_vec(), given))));
                }
                Reply::Query(q) => q(&self.engine, &self.store),
            }
        }
        for e in stored {
            let _ = self.fanout.send(Arc::new(e));
        }
        if batch.open {
            self.store.restart_log_if_due();
        }
    }

    /// A batch's commit failed: nothing of it is stored; every writer hears why, and
    /// the engine is rebuilt from the database before the next batch.
    fn failed(&mut self, e: &StoreError, replies: Vec<Reply>) {
        tracing::error!(error = %e, "commit failed; nothing of this batch was stored");
        self.broken = true;
        let full = e.is_disk_full();
        let msg = e.to_string();
        let err = || {
            if full {
                CoreError::StorageFull(msg.clone())
            } else {
                CoreError::Store(msg.clone())
            }
        };
        for r in replies {
            match r {
                Reply::Command { tx, .. } => drop(tx.send(Err(err()))),
                Reply::Append { tx, .. } => drop(tx.send(Err(err()))),
                Reply::Notice { tx, .. } => drop(tx.send(Err(err()))),
                Reply::Query(_) => {}
            }
        }
    }

    /// Records a near-turn notice request: its number goes to `notices`, its events to
    /// `pending` (with the `near_turn` at once when the turn is already near).
    fn notice(
        &mut self,
        ask: NoticeAsk,
        pending: &mut Vec<NewEvent>,
        notices: &mut Vec<crate::store::notices::NewNotice>,
    ) -> Result<NoticeGiven, NoticeError> {
        if self.broken {
            return Err(NoticeError::Store("the database is unavailable".into()));
        }
        // The clock moves on (a new day starts, say) before the ticket is looked at.
        if let Err(e) = self.command(Command::Tick, pending) {
            tracing::warn!(error = %e, "tick before a notice request");
        }
        let at = self.engine.now();
        let (row, events, given) = self.watch.ask(&self.engine, &self.store, ask, at)?;
        for e in &events {
            push_event(pending, at, e);
        }
        notices.push(row);
        Ok(given)
    }

    /// Runs a command (unless its guard declines it) and makes the reply its writer
    /// gets once the batch is on disk.
    fn reply(
        &mut self,
        cmd: Command,
        guard: Option<Guard>,
        tx: oneshot::Sender<Result<Done, CoreError>>,
        pending: &mut Vec<NewEvent>,
    ) -> Reply {
        let start = pending.len();
        let outcome = if self.broken {
            Err(CoreError::Store("the database is unavailable".into()))
        } else if let Some(guard) = guard {
            // The day may have turned: the guard judges today's state.
            if let Err(e) = self.command(Command::Tick, pending) {
                tracing::warn!(error = %e, "tick before a guarded command");
            }
            match guard(&self.engine) {
                Some(declined) => Err(CoreError::Declined(declined)),
                None => self.command(cmd, pending),
            }
        } else {
            self.command(cmd, pending)
        };
        Reply::Command {
            tx,
            range: start..pending.len(),
            outcome,
        }
    }

    /// Runs one command; its events go to `pending`. A refusal may still leave events
    /// (time passed), which are committed with the batch.
    fn command(&mut self, cmd: Command, pending: &mut Vec<NewEvent>) -> Result<Done, CoreError> {
        let key = match &cmd {
            Command::Issue {
                idempotency_key, ..
            }
            | Command::CheckIn {
                idempotency_key, ..
            } => idempotency_key.clone(),
            _ => None,
        };
        if let Some(k) = &key
            && self.engine.ticket_by_key(k).is_none()
        {
            // A key from an earlier day: the engine only holds today's tickets.
            match self.store.ticket_by_key(k) {
                Ok(Some(t)) => {
                    return Ok(Done {
                        events: Vec::new(),
                        ahead: 0,
                        wait_minutes: 0,
                        ticket: Some(t),
                        replayed: true,
                    });
                }
                Ok(None) => {}
                Err(e) => return Err(CoreError::Store(e.to_string())),
            }
        }
        let result = self.engine.handle(cmd, wall_now());
        let (events, outcome) = match result {
            Ok(events) => (events, Ok(())),
            Err(refused) => (refused.events, Err(refused.refusal)),
        };
        let at = self.engine.now();
        let mut done = Done {
            events: Vec::new(),
            ticket: None,
            ahead: 0,
            wait_minutes: 0,
            replayed: false,
        };
        for e in &events {
            if let Event::TicketIssued { ticket, ahead } = e {
                done.ticket = Some(ticket.clone());
                done.ahead = *ahead;
            }
            match self.encode(at, e, pending) {
                Ok(n) => pending.extend(n),
                Err(err) => tracing::error!(error = %err, "event could not be encoded"),
            }
        }
        outcome.map_err(CoreError::Refused)?;
        if let (None, Some(k)) = (&done.ticket, &key)
            && let Some(t) = self.engine.ticket_by_key(k)
        {
            done.ahead = self.engine.ahead(t.id).unwrap_or(0);
            done.ticket = Some(t.clone());
            done.replayed = true;
        }
        if let Some(t) = &done.ticket {
            done.wait_minutes = self.engine.estimate_wait_minutes(&t.service, done.ahead);
        }
        Ok(done)
    }
}

impl Core {
    /// An engine event as the events it commits: a rating carries its 好差评 record and
    /// may open a follow-up ([`crate::evaluation::rating_events`]).
    fn encode(
        &self,
        at: Timestamp,
        e: &Event,
        pending: &[NewEvent],
    ) -> Result<Vec<NewEvent>, StoreError> {
        let Event::RatingRecorded { rating, .. } = e else {
            return Ok(vec![NewEvent::encode(at, e.kind(), e)?]);
        };
        let in_force = self.in_force.now();
        // The name as the account has it now; a removed account leaves it out.
        let staff_name = rating
            .staff
            .as_deref()
            .and_then(|id| staff::get(self.store.conn(), id).ok())
            .map(|r| r.name);
        let cx = crate::evaluation::Context {
            config: &self.evaluation,
            setup: &in_force.setup,
            guides: &in_force.guides,
            staff_name,
        };
        crate::evaluation::rating_events(
            &cx,
            self.store.conn(),
            at,
            e,
            self.engine.ticket(rating.ticket),
            pending,
        )
    }
}

/// Encodes a controller event into the batch (an event that cannot be encoded is a
/// bug, logged; the batch goes on).
fn push_event(pending: &mut Vec<NewEvent>, at: Timestamp, e: &crate::events::HallEvent) {
    match NewEvent::encode(at, e.kind(), e) {
        Ok(n) => pending.push(n),
        Err(err) => tracing::error!(error = %err, "event could not be encoded"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::issue;

    /// Open tickets exist only on the newest day that has tickets: a ticket left
    /// waiting when the hall closed is found days later (through the by-day index, not
    /// a scan of the history) and cancelled as the day it belonged to has ended.
    #[test]
    fn a_ticket_left_open_when_the_hall_closed_is_loaded_days_later_and_cancelled() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("hallq.db")).unwrap();
        let setup = crate::history::unlimited_setup();
        let day = 86_400_000;
        let mut at = Timestamp(wall_now().0 - 4 * day);
        let mut engine = Engine::new(setup.clone(), at).unwrap();
        for _ in 0..2 {
            engine.handle(issue("SB"), at).unwrap();
            store.commit(&[], &engine.take_changes()).unwrap();
            at = Timestamp(at.0 + day);
        }
        // Two days on: the first day's ticket was cancelled when the second began.
        let ids: Vec<(u64, String)> = store
            .conn()
            .prepare("SELECT id, state FROM tickets ORDER BY id")
            .unwrap()
            .query_map([], |r| Ok((r.get::<_, i64>(0)? as u64, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(ids, [(1, "cancelled".into()), (2, "waiting".into())]);
        let clock = hallq_engine::LocalClock::new(setup.utc_offset_minutes);
        let now = Timestamp(at.0 + day);
        let snap = store.load(clock, setup.day_starts_at, now).unwrap();
        let loaded: Vec<u64> = snap.tickets.iter().map(|t| t.id.0).collect();
        assert_eq!(
            loaded,
            [2],
            "the open ticket of the newest day, and only it"
        );
        // As at a real start: the engine resumes on the day of the last activity (the
        // second day) and the first tick of today ends it.
        let last = Timestamp(at.0 - day);
        let snap = store.load(clock, setup.day_starts_at, last).unwrap();
        let mut engine = Engine::restore(setup, snap).unwrap();
        let events = engine.handle(Command::Tick, now).unwrap();
        assert!(
            events.iter().any(|e| matches!(
                e,
                Event::TicketCancelled {
                    ticket,
                    reason: hallq_engine::CancelReason::DayEnded,
                    ..
                } if ticket.0 == 2
            )),
            "{events:?}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_guard_sees_the_commands_before_it_so_only_one_of_many_racing_passes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("hallq.db")).unwrap();
        let (hall, _core) = HallCore::start(crate::testing::in_force(), store).unwrap();
        let service = hall.in_force().setup.services[0].code.clone();
        let racers: Vec<_> = (0..16)
            .map(|_| {
                let (hall, service) = (hall.clone(), service.clone());
                tokio::spawn(async move {
                    let cmd = Command::Issue {
                        token_hash: None,
                        service,
                        class: hallq_engine::Class::Normal,
                        idempotency_key: None,
                        citizen: Some("person".into()),
                        channel: "test".into(),
                        green_reason: None,
                        proxy: false,
                        issued_by: None,
                    };
                    let guard: Guard = Box::new(move |e: &Engine| {
                        e.tickets()
                            .any(|t| t.citizen.as_deref() == Some("person"))
                            .then(|| Declined {
                                code: "already_holds_ticket",
                                messages: ["一".into(), "一".into(), "one".into()],
                            })
                    });
                    hall.execute_unless(cmd, guard).await
                })
            })
            .collect();
        let mut passed = 0;
        for r in racers {
            match r.await.unwrap() {
                Ok(_) => passed += 1,
                Err(CoreError::Declined(d)) => {
                    assert_eq!(d.message(hallq_engine::Lang::En), "one")
                }
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(passed, 1);
        let tickets = hall.query(|e, _| e.tickets().count()).await.unwrap();
        assert_eq!(tickets, 1);
    }

    #[test]
    fn a_lone_writer_and_a_batch_without_writers_never_wait() {
        let mut g = Gather::default();
        g.committed(1, 0);
        g.last_commit = Duration::from_millis(4);
        assert_eq!(g.budget(1), Duration::ZERO);
        assert_eq!(g.budget(0), Duration::ZERO);
    }

    #[test]
    fn writers_answered_and_queued_during_a_commit_are_waited_for_at_most_half_a_commit() {
        let mut g = Gather::default();
        // 4 answered, 4 queued while the commit ran: 8 are about.
        g.committed(4, 4);
        g.last_commit = Duration::from_micros(600);
        assert_eq!(g.budget(4), Duration::from_micros(300));
        assert_eq!(g.budget(7), Duration::from_micros(300));
        assert_eq!(g.budget(8), Duration::ZERO);
        // A slow card: never more than MAX_GATHER.
        g.last_commit = Duration::from_millis(30);
        assert_eq!(g.budget(1), MAX_GATHER);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn writers_that_come_back_at_once_share_one_commit_instead_of_alternating() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("hallq.db")).unwrap();
        let (hall, _core) = HallCore::start(crate::testing::in_force(), store).unwrap();
        let service = hall.in_force().setup.services[0].code.clone();
        let before = hall.commit_totals();
        let clients: Vec<_> = (0..8)
            .map(|_| {
                let (hall, service) = (hall.clone(), service.clone());
                tokio::spawn(async move {
                    for _ in 0..40 {
                        // A client's turnaround between its answer and its next
                        // request, as short as a loopback round trip.
                        let t = Instant::now();
                        while t.elapsed() < Duration::from_micros(20) {
                            std::hint::spin_loop();
                        }
                        hall.execute(issue(&service)).await.unwrap();
                    }
                })
            })
            .collect();
        for c in clients {
            c.await.unwrap();
        }
        // The last commit is counted just after its writers are answered.
        let mut after = hall.commit_totals();
        for _ in 0..100 {
            if after.writers - before.writers == 320 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
            after = hall.commit_totals();
        }
        let writers = after.writers - before.writers;
        let commits = after.commits - before.commits;
        let mean = writers as f64 / commits as f64;
        eprintln!("{writers} tickets in {commits} commits: {mean:.2} a commit");
        assert_eq!(writers, 320);
        // Taking only what queued during the last commit settles into two groups of
        // about four that take turns.
        assert!(mean >= 7.0, "{mean:.2} tickets a commit");
        hall.close().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn whoever_hears_config_applied_reads_the_new_setup_and_a_refused_one_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("hallq.db")).unwrap();
        let first = crate::testing::in_force();
        let (hall, _core) = HallCore::start(first.clone(), store).unwrap();
        let mut events = hall.subscribe();
        let listener = hall.clone();
        // Reads the setup in force the moment the event arrives, as a consumer would.
        let heard = tokio::spawn(async move {
            let e = events.recv().await.unwrap();
            (e.kind.clone(), listener.in_force().version)
        });
        let mut watch = hall.setting().changed();
        assert_eq!(hall.in_force().version, None);

        let mut next = first.clone();
        next.version = Some(2);
        next.setup.services[0].prefix = "Q".into();
        let event = NewEvent::encode(
            wall_now(),
            "config_applied",
            &serde_json::json!({"type": "config_applied", "version": 2}),
        )
        .unwrap();
        hall.reconfigure(next, "{}".into(), event).await.unwrap();
        assert_eq!(
            heard.await.unwrap(),
            ("config_applied".to_string(), Some(2)),
            "the setup switched before the event fanned out"
        );
        assert_eq!(hall.in_force().setup.services[0].prefix, "Q");
        assert!(watch.has_changed().unwrap());
        watch.borrow_and_update();

        // A setup that strands a waiting citizen is refused and nothing changes.
        let code = hall.in_force().setup.services[0].code.clone();
        hall.execute(issue(&code)).await.unwrap();
        let mut smaller = (*hall.in_force()).clone();
        smaller.version = Some(3);
        smaller.setup.services.retain(|s| s.code != code);
        for w in &mut smaller.setup.windows {
            w.services.retain(|s| s.code != code);
        }
        smaller.setup.windows.retain(|w| !w.services.is_empty());
        let event = NewEvent::encode(wall_now(), "config_applied", &serde_json::json!({})).unwrap();
        let err = hall
            .reconfigure(smaller, "{}".into(), event)
            .await
            .unwrap_err();
        assert!(err.to_string().starts_with("queue.services"), "{err}");
        assert_eq!(hall.in_force().version, Some(2));
        assert!(!watch.has_changed().unwrap());
    }
}
