//! The ticket printers: one thread owns each printer's transport, prints its jobs in
//! order, polls its status while idle (so paper-near-end is known before the roll runs
//! out), reconnects with backoff, and reports health to the [`Devices`] registry under
//! the printer's own device id.
//!
//! A hall has one `[printer]` (the first form, device id `printer`, serving the channels
//! its `channels` prefixes match) or several `[[printer]]` tables, each with an `id`
//! (device id `printer-<id>`) and the kiosk and desk ids it `serves`. [`Printers`] routes:
//! a ticket prints on the printer of the channel it was taken at, a reprint or a
//! checklist on the printer of the kiosk that asks.
//!
//! A print never decides a ticket: the ticket is committed before its job is queued, and
//! a job that cannot print only tells the kiosk "printer unavailable" and raises a fault
//! event. Blocking serial, USB and TCP I/O stays on this thread, off the async runtime.
//!
//! The caller learns, within [`ACCEPT_WAIT`], whether the printer took the job: the
//! thread asks `DLE EOT` before writing, so a printer that ran out of paper a moment
//! ago is reported for the very ticket that could not print.

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use hallq_hardware::escpos::PaperWidth;
use hallq_hardware::layout::{PreparedTemplate, TemplateError, TicketTemplate};
use hallq_hardware::status::{PrinterStatus, query_status};
use hallq_hardware::transport::{Backoff, PrinterTransport, Reconnect, TransportConfig};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use super::health::{Devices, Health};

/// The device id the single `[printer]` reports its health under; a `[[printer]]` with
/// `id = "p1"` reports under `printer-p1`.
pub const DEVICE: &str = "printer";

/// How long a request waits to learn whether the printer took its job.
pub const ACCEPT_WAIT: Duration = Duration::from_millis(400);

/// Jobs waiting beyond this many are refused: a kiosk printing faster than the paper
/// moves has a jammed printer, not a queue.
const MAX_QUEUED: usize = 32;

/// One printer of the configuration: the `[printer]` table, or one of the `[[printer]]`
/// tables (which name it with `id` and list the kiosks and desks it `serves`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrinterConfig {
    /// `[[printer]]` only: the printer's name, unique in the hall (letters, digits, `-`
    /// and `_`); its health is device `printer-<id>`, its metrics carry `printer="<id>"`.
    #[serde(default)]
    pub id: Option<String>,
    /// `[[printer]]` only: the kiosk ids (`X-Kiosk-Id`) and desk ids (`desk`,
    /// `desk-<id>`) whose tickets print here, matched exactly. One kiosk, one printer.
    #[serde(default)]
    pub serves: Vec<String>,
    /// How the printer is attached.
    pub transport: TransportConfig,
    /// Roll width.
    #[serde(default = "default_paper")]
    pub paper: PaperWidth,
    /// What the ticket shows.
    #[serde(default)]
    pub ticket: TicketTemplate,
    /// `[printer]` only: tickets print when their channel starts with one of these
    /// (`kiosk` covers `kiosk-2`); tickets taken by phone or at a window do not. Absent
    /// means `["kiosk"]`.
    #[serde(default)]
    pub channels: Option<Vec<String>>,
    /// Status poll interval while idle, seconds.
    #[serde(default = "default_poll")]
    pub status_poll_secs: u64,
    /// Read/connect timeout, milliseconds.
    #[serde(default = "default_timeout")]
    pub timeout_ms: u64,
    /// A job older than this when its turn comes is dropped: a ticket printed minutes
    /// after the citizen left only confuses the next one.
    #[serde(default = "default_max_age")]
    pub max_job_age_secs: u64,
}

/// The channels a single `[printer]` prints when it does not say.
const DEFAULT_CHANNEL: &str = "kiosk";

fn default_paper() -> PaperWidth {
    PaperWidth::Mm80
}
fn default_poll() -> u64 {
    5
}
fn default_timeout() -> u64 {
    500
}
fn default_max_age() -> u64 {
    60
}

impl PrinterConfig {
    /// A single `[printer]` on `transport` with every other setting at its default.
    pub fn with_transport(transport: TransportConfig) -> PrinterConfig {
        PrinterConfig {
            id: None,
            serves: Vec::new(),
            transport,
            paper: default_paper(),
            ticket: TicketTemplate::default(),
            channels: None,
            status_poll_secs: default_poll(),
            timeout_ms: default_timeout(),
            max_job_age_secs: default_max_age(),
        }
    }

    /// Checks the template against the paper (logo width, field names, printable text).
    pub fn prepare(&self) -> Result<PreparedTemplate, TemplateError> {
        self.ticket.validate(self.paper)
    }

    /// A `[[printer]]` named `id` serving `serves`, on `transport`, the rest at defaults.
    pub fn serving(id: &str, serves: &[&str], transport: TransportConfig) -> PrinterConfig {
        PrinterConfig {
            id: Some(id.to_string()),
            serves: serves.iter().map(|s| s.to_string()).collect(),
            ..PrinterConfig::with_transport(transport)
        }
    }

    /// The printer's name: its `id`, or `printer` for the single `[printer]`.
    pub fn name(&self) -> &str {
        self.id.as_deref().unwrap_or(DEVICE)
    }

    /// The device id its health is reported under: `printer` for the single
    /// `[printer]`, `printer-<id>` for a `[[printer]]`.
    pub fn device(&self) -> String {
        match &self.id {
            None => DEVICE.to_string(),
            Some(id) => format!("{DEVICE}-{id}"),
        }
    }

    /// Whether tickets taken at `channel` print here: for a `[[printer]]` the channel is
    /// one it serves; for the single `[printer]` it starts with one of its `channels`.
    pub fn prints(&self, channel: &str) -> bool {
        if self.id.is_some() {
            return self.serves.iter().any(|s| s == channel);
        }
        match &self.channels {
            Some(prefixes) => prefixes.iter().any(|c| channel.starts_with(c.as_str())),
            None => channel.starts_with(DEFAULT_CHANNEL),
        }
    }
}

/// The configuration's `printer` key: nothing, the single `[printer]` table halls had
/// first, or `[[printer]]` tables, one per printer. Both forms read the same keys; the
/// checks of [`PrintersConfig::check`] keep each form's own (`id` and `serves` for the
/// tables, `channels` for the single one).
#[derive(Debug, Clone, Default)]
pub enum PrintersConfig {
    /// No printer: tickets are not printed.
    #[default]
    None,
    /// `[printer]`: one printer, device `printer`, printing what `channels` match.
    Single(PrinterConfig),
    /// `[[printer]]`: several printers, each serving its kiosks and desks.
    Several(Vec<PrinterConfig>),
}

impl<'de> Deserialize<'de> for PrintersConfig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Form;
        impl<'de> serde::de::Visitor<'de> for Form {
            type Value = PrintersConfig;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a [printer] table or [[printer]] tables")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<Self::Value, A::Error> {
                PrinterConfig::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(PrintersConfig::Single)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                seq: A,
            ) -> Result<Self::Value, A::Error> {
                Vec::<PrinterConfig>::deserialize(serde::de::value::SeqAccessDeserializer::new(seq))
                    .map(PrintersConfig::Several)
            }
        }
        d.deserialize_any(Form)
    }
}

/// A printer configuration that cannot be used: the dotted key (`printer.channels`,
/// `printer[1].serves`) and what is wrong.
pub type PrinterConfigError = (String, String);

impl PrintersConfig {
    /// Every printer configured, in the file's order.
    pub fn iter(&self) -> impl Iterator<Item = &PrinterConfig> {
        let list: &[PrinterConfig] = match self {
            PrintersConfig::None => &[],
            PrintersConfig::Single(p) => std::slice::from_ref(p),
            PrintersConfig::Several(list) => list,
        };
        list.iter()
    }

    /// The printers with the dotted key each is configured under.
    pub fn keyed(&self) -> Vec<(String, &PrinterConfig)> {
        match self {
            PrintersConfig::None => Vec::new(),
            PrintersConfig::Single(p) => vec![("printer".to_string(), p)],
            PrintersConfig::Several(list) => list
                .iter()
                .enumerate()
                .map(|(i, p)| (format!("printer[{i}]"), p))
                .collect(),
        }
    }

    /// Whether no printer is configured.
    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }

    /// Checks each form's keys, the ids and the mapping: `id` and `serves` only in
    /// `[[printer]]`, `channels` only in `[printer]`; ids present, well formed and
    /// unique; every printer serving something, and no kiosk or desk served by two. When
    /// the configuration declares its kiosks and desks (`known`), a printer may serve
    /// only those. The ticket template is checked apart ([`PrinterConfig::prepare`]).
    pub fn check(&self, known: Option<&[String]>) -> Result<(), PrinterConfigError> {
        let err = |key: String, message: &str| Err((key, message.to_string()));
        match self {
            PrintersConfig::None => Ok(()),
            PrintersConfig::Single(p) => {
                if p.id.is_some() {
                    return err(
                        "printer.id".into(),
                        "a single [printer] is known as \"printer\"; for several printers write [[printer]] tables, each with an id",
                    );
                }
                if !p.serves.is_empty() {
                    return err(
                        "printer.serves".into(),
                        "serves belongs to [[printer]] tables; a single [printer] prints the channels its `channels` list",
                    );
                }
                if p.channels.as_ref().is_some_and(Vec::is_empty) {
                    return err(
                        "printer.channels".into(),
                        "list at least one channel whose tickets print, e.g. [\"kiosk\"]",
                    );
                }
                Ok(())
            }
            PrintersConfig::Several(list) => {
                // Which printer serves each kiosk or desk, to refuse a second.
                let mut served: std::collections::BTreeMap<&str, &str> = Default::default();
                for (i, p) in list.iter().enumerate() {
                    let key = format!("printer[{i}]");
                    let Some(id) = p.id.as_deref() else {
                        return err(
                            format!("{key}.id"),
                            "each [[printer]] needs an id (letters, digits, - and _), e.g. id = \"p1\"",
                        );
                    };
                    if !is_id(id) {
                        return err(format!("{key}.id"), "use 1 to 32 letters, digits, - and _");
                    }
                    if list[..i].iter().any(|q| q.id.as_deref() == Some(id)) {
                        return Err((
                            format!("{key}.id"),
                            format!("another [[printer]] is already called {id:?}"),
                        ));
                    }
                    if p.channels.is_some() {
                        return err(
                            format!("{key}.channels"),
                            "a [[printer]] prints for the kiosks and desks its `serves` names (exact ids such as \"kiosk-1\" or \"desk\"); channels belongs to a single [printer]",
                        );
                    }
                    if p.serves.is_empty() {
                        return err(
                            format!("{key}.serves"),
                            "list the kiosk ids (X-Kiosk-Id) and desk ids whose tickets print here, e.g. serves = [\"kiosk-1\"]",
                        );
                    }
                    for s in &p.serves {
                        if !is_channel(s) {
                            return Err((
                                format!("{key}.serves"),
                                format!(
                                    "{s:?}: a kiosk or desk id is 1 to 32 letters, digits, - and _"
                                ),
                            ));
                        }
                        if let Some(known) = known
                            && !known.iter().any(|k| k == s)
                        {
                            return Err((
                                format!("{key}.serves"),
                                format!(
                                    "{s:?} is not a kiosk or desk of this hall (known: {})",
                                    known.join(", ")
                                ),
                            ));
                        }
                        if let Some(other) = served.insert(s, id) {
                            return Err((
                                format!("{key}.serves"),
                                format!(
                                    "{s:?} is already served by printer {other:?}: a kiosk or desk has one printer"
                                ),
                            ));
                        }
                    }
                }
                Ok(())
            }
        }
    }
}

/// A printer id: 1 to 32 letters, digits, `-` and `_`.
fn is_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 32
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// A kiosk or desk id as `X-Kiosk-Id` carries it (the API takes up to 32 characters).
fn is_channel(s: &str) -> bool {
    is_id(s)
}

/// Why the printer could not be started.
#[derive(Debug, thiserror::Error)]
pub enum PrinterError {
    /// The ticket template does not fit the paper or the printer's character set.
    #[error("{key}.ticket: {source}")]
    Template {
        /// The printer's key (`printer`, `printer[1]`).
        key: String,
        /// What is wrong with it.
        source: TemplateError,
    },
    /// The owning thread could not be spawned.
    #[error("cannot start the printer thread: {0}")]
    Thread(std::io::Error),
}

/// What happened to a print request, as the kiosk is told.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum PrintOutcome {
    /// The printer was ready and is printing it.
    Printing,
    /// Queued behind other jobs; it will print.
    Queued,
    /// It will not print; `code` says why (paper_out, cover_open, offline, busy).
    Unavailable {
        /// Machine code.
        code: String,
    },
    /// This ticket does not print (no printer, another channel, or a retry).
    NotPrinted,
}

/// Figures for the benchmark and the supervisor.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PrinterStats {
    /// Jobs written to the printer.
    pub printed: u64,
    /// Jobs that could not print.
    pub failed: u64,
    /// Jobs dropped because they were too old.
    pub stale: u64,
    /// Bytes written.
    pub bytes: u64,
    /// Jobs waiting for the printer now.
    pub queued: u64,
    /// Committed → last byte written, µs, of the most recent jobs (newest last).
    pub recent_latency_us: Vec<u64>,
}

struct Job {
    bytes: Vec<u8>,
    what: String,
    committed: Instant,
    accepted: Option<oneshot::Sender<PrintOutcome>>,
}

/// The handle the API holds; cheap to clone.
#[derive(Clone)]
pub struct Printer {
    /// The device id its health is reported under.
    device: Arc<str>,
    tx: SyncSender<Job>,
    shared: Arc<Mutex<PrinterStats>>,
    devices: Devices,
    config: Arc<PrinterConfig>,
    template: Arc<PreparedTemplate>,
}

fn lock(m: &Mutex<PrinterStats>) -> MutexGuard<'_, PrinterStats> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Printer {
    /// Starts the thread that owns the printer. It runs until every handle is dropped.
    pub fn start(
        config: PrinterConfig,
        devices: Devices,
    ) -> Result<(Printer, std::thread::JoinHandle<()>), PrinterError> {
        let key = match &config.id {
            None => "printer".to_string(),
            Some(id) => format!("printer {id}"),
        };
        let template = Arc::new(
            config
                .prepare()
                .map_err(|source| PrinterError::Template { key, source })?,
        );
        let device: Arc<str> = config.device().into();
        let (tx, rx) = mpsc::sync_channel(MAX_QUEUED);
        let shared = Arc::new(Mutex::new(PrinterStats::default()));
        let config = Arc::new(config);
        let owner = Owner {
            rx,
            reconnect: Reconnect::new(
                config.transport.clone(),
                Duration::from_millis(config.timeout_ms),
                Backoff::new(Duration::from_millis(500), Duration::from_secs(30)),
            ),
            io: None,
            next_attempt: Instant::now(),
            next_poll: Instant::now(),
            poll: Duration::from_secs(config.status_poll_secs.max(1)),
            timeout: Duration::from_millis(config.timeout_ms.max(10)),
            max_age: Duration::from_secs(config.max_job_age_secs.max(1)),
            shared: shared.clone(),
            devices: devices.clone(),
            device: device.clone(),
        };
        let thread = std::thread::Builder::new()
            .name(device.to_string())
            .spawn(move || owner.run())
            .map_err(PrinterError::Thread)?;
        Ok((
            Printer {
                device,
                tx,
                shared,
                devices,
                config,
                template,
            },
            thread,
        ))
    }

    /// The configuration in force.
    pub fn config(&self) -> &PrinterConfig {
        &self.config
    }

    /// Its name: the `[[printer]]` id, or `printer` for the single `[printer]`.
    pub fn name(&self) -> &str {
        self.config.name()
    }

    /// The device id its health is reported under (`printer`, `printer-<id>`).
    pub fn device(&self) -> &str {
        &self.device
    }

    /// The validated ticket template.
    pub fn template(&self) -> &PreparedTemplate {
        &self.template
    }

    /// Queues ESC/POS bytes; resolves once the printer took them (or could not), or
    /// after [`ACCEPT_WAIT`] with `Queued` when other jobs are ahead.
    pub async fn submit(&self, what: String, bytes: Vec<u8>, committed: Instant) -> PrintOutcome {
        if let Some(Health::Fault { code, .. }) = self.devices.get(&self.device).map(|d| d.health)
            && code == "offline"
        {
            // Not connected: the thread retries on its own schedule; don't queue a
            // ticket that would print long after its citizen left.
            return PrintOutcome::Unavailable { code };
        }
        let (tx, rx) = oneshot::channel();
        let job = Job {
            bytes,
            what,
            committed,
            accepted: Some(tx),
        };
        match self.tx.try_send(job) {
            Ok(()) => lock(&self.shared).queued += 1,
            Err(TrySendError::Full(_)) => {
                return PrintOutcome::Unavailable {
                    code: "busy".into(),
                };
            }
            Err(TrySendError::Disconnected(_)) => {
                return PrintOutcome::Unavailable {
                    code: "stopped".into(),
                };
            }
        }
        match tokio::time::timeout(ACCEPT_WAIT, rx).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(_)) => PrintOutcome::Unavailable {
                code: "stopped".into(),
            },
            Err(_) => PrintOutcome::Queued,
        }
    }

    /// Counters and recent latencies.
    pub fn stats(&self) -> PrinterStats {
        lock(&self.shared).clone()
    }
}

/// Every printer of the hall, and which one prints what. Cheap to clone.
#[derive(Clone, Default)]
pub struct Printers {
    list: Arc<[Printer]>,
    /// The single `[printer]` of the first form: it serves every kiosk that asks.
    single: bool,
}

impl Printers {
    /// Starts one owning thread per configured printer.
    pub fn start(config: &PrintersConfig, devices: &Devices) -> Result<Printers, PrinterError> {
        let list = config
            .iter()
            .map(|p| Printer::start(p.clone(), devices.clone()).map(|(printer, _)| printer))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Printers {
            list: list.into(),
            single: matches!(config, PrintersConfig::Single(_)),
        })
    }

    /// The printers, in the configuration's order.
    pub fn iter(&self) -> impl Iterator<Item = &Printer> {
        self.list.iter()
    }

    /// Whether the hall has no printer.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The printer a new ticket taken at `channel` prints on: the `[[printer]]` that
    /// serves it, or the single `[printer]` when one of its `channels` matches. `None`:
    /// the ticket is not printed.
    pub fn for_ticket(&self, channel: &str) -> Option<&Printer> {
        self.list.iter().find(|p| p.config().prints(channel))
    }

    /// The printer beside the kiosk or desk `channel` (its `X-Kiosk-Id`), where a
    /// reprint or a checklist it asks for comes out and whose health it shows: the
    /// `[[printer]]` serving it, or the single `[printer]` whatever asks (as before
    /// there were several).
    pub fn at(&self, channel: &str) -> Option<&Printer> {
        if self.single {
            return self.list.first();
        }
        self.for_ticket(channel)
    }

    /// Where a reprint the hall server asks for comes out: the printer of the channel
    /// the ticket was taken at, else the first printer configured.
    pub fn for_reprint_of(&self, channel: &str) -> Option<&Printer> {
        self.for_ticket(channel).or_else(|| self.list.first())
    }
}

/// The thread's state: the only code that touches the transport.
struct Owner {
    rx: Receiver<Job>,
    reconnect: Reconnect,
    io: Option<Box<dyn PrinterTransport>>,
    next_attempt: Instant,
    next_poll: Instant,
    poll: Duration,
    timeout: Duration,
    max_age: Duration,
    shared: Arc<Mutex<PrinterStats>>,
    devices: Devices,
    /// The device id health is reported under.
    device: Arc<str>,
}

/// How a printer's status reads as health.
fn health_of(s: &PrinterStatus) -> Health {
    if s.paper_out {
        Health::fault("paper_out", "打印机缺纸 / the printer is out of paper")
    } else if s.cover_open {
        Health::fault("cover_open", "打印机仓盖未关 / the printer cover is open")
    } else if s.cutter_error {
        Health::fault("cutter_error", "切刀故障 / the auto-cutter failed")
    } else if s.unrecoverable_error || s.recoverable_error {
        Health::fault("error", "打印机故障 / the printer reports an error")
    } else if !s.online {
        Health::fault("printer_offline", "打印机离线 / the printer is offline")
    } else if s.paper_near_end {
        Health::warning(
            "paper_near_end",
            "纸将用尽 / the paper roll is nearly used up",
        )
    } else {
        Health::Ok
    }
}

const RECENT: usize = 4096;

impl Owner {
    fn run(mut self) {
        loop {
            let now = Instant::now();
            if self.io.is_none() && now >= self.next_attempt {
                self.connect();
            }
            if self.io.is_some() && Instant::now() >= self.next_poll {
                self.check();
            }
            let wake = if self.io.is_some() {
                self.next_poll
            } else {
                self.next_attempt
            };
            let wait = wake.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(wait) {
                Ok(job) => self.print(job),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
    }

    fn connect(&mut self) {
        match self.reconnect.try_connect() {
            Ok(io) => {
                tracing::info!(device = %self.device, printer = %io.describe(), "printer connected");
                self.io = Some(io);
                self.next_poll = Instant::now();
            }
            Err((e, delay)) => {
                self.next_attempt = Instant::now() + delay;
                self.devices.report_blocking(
                    &self.device,
                    Health::fault("offline", format!("打印机未连接 / not connected: {e}")),
                );
            }
        }
    }

    fn lost(&mut self, why: String) {
        tracing::warn!(device = %self.device, reason = %why, "printer connection lost");
        self.io = None;
        self.next_attempt = Instant::now();
        self.devices.report_blocking(
            &self.device,
            Health::fault("offline", format!("打印机无响应 / no answer: {why}")),
        );
    }

    /// Asks the printer's status and reports it; `None` when the connection is gone.
    fn check(&mut self) -> Option<Health> {
        let io = self.io.as_mut()?;
        self.next_poll = Instant::now() + self.poll;
        match query_status(io, self.timeout) {
            Ok(status) => {
                let health = health_of(&status);
                self.devices.report_blocking(&self.device, health.clone());
                Some(health)
            }
            Err(e) => {
                self.lost(e.to_string());
                None
            }
        }
    }

    fn print(&mut self, mut job: Job) {
        {
            let mut sh = lock(&self.shared);
            sh.queued = sh.queued.saturating_sub(1);
        }
        let reply = |job: &mut Job, outcome: PrintOutcome| {
            if let Some(tx) = job.accepted.take() {
                let _ = tx.send(outcome);
            }
        };
        if job.committed.elapsed() > self.max_age {
            tracing::warn!(device = %self.device, job = %job.what, "print job too old, dropped");
            lock(&self.shared).stale += 1;
            reply(
                &mut job,
                PrintOutcome::Unavailable {
                    code: "stale".into(),
                },
            );
            return;
        }
        if self.io.is_none() && Instant::now() >= self.next_attempt {
            self.connect();
        }
        let health = match self.check() {
            Some(h) => h,
            None => Health::fault("offline", "not connected"),
        };
        if !health.usable() {
            lock(&self.shared).failed += 1;
            tracing::warn!(device = %self.device, job = %job.what, code = health.code(), "not printed");
            reply(
                &mut job,
                PrintOutcome::Unavailable {
                    code: health.code().to_string(),
                },
            );
            return;
        }
        reply(&mut job, PrintOutcome::Printing);
        let Some(io) = self.io.as_mut() else { return };
        let written = io.write_all(&job.bytes).and_then(|()| io.flush());
        match written {
            Ok(()) => {
                let us = job.committed.elapsed().as_micros() as u64;
                let mut sh = lock(&self.shared);
                sh.printed += 1;
                sh.bytes += job.bytes.len() as u64;
                let recent = &mut sh.recent_latency_us;
                if recent.len() == RECENT {
                    recent.remove(0);
                }
                recent.push(us);
                tracing::debug!(device = %self.device, job = %job.what, latency_us = us, "printed");
            }
            Err(e) => {
                lock(&self.shared).failed += 1;
                self.lost(format!("write failed: {e}"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_maps_to_health_by_severity() {
        let mut s = PrinterStatus {
            online: true,
            ..Default::default()
        };
        assert_eq!(health_of(&s), Health::Ok);
        s.paper_near_end = true;
        assert_eq!(health_of(&s).code(), "paper_near_end");
        assert!(health_of(&s).usable());
        s.paper_out = true;
        s.online = false;
        assert_eq!(health_of(&s).code(), "paper_out");
        assert!(!health_of(&s).usable());
    }

    #[test]
    fn channels_match_by_prefix() {
        let c = PrinterConfig::with_transport(TransportConfig::Tcp {
            addr: "127.0.0.1:9100".into(),
        });
        assert!(c.prints("kiosk"));
        assert!(c.prints("kiosk-2"));
        assert!(!c.prints("wechat"));
        assert_eq!((c.name(), c.device().as_str()), ("printer", "printer"));
    }

    fn nowhere() -> TransportConfig {
        // Port 9 on loopback: nothing listens, the thread only fails to connect.
        TransportConfig::Tcp {
            addr: "127.0.0.1:9".into(),
        }
    }

    #[test]
    fn a_printer_of_several_serves_exactly_its_kiosks() {
        let c = PrinterConfig::serving("p1", &["kiosk-1", "desk"], nowhere());
        assert!(c.prints("kiosk-1"));
        assert!(c.prints("desk"));
        assert!(!c.prints("kiosk-10"), "ids match exactly, not by prefix");
        assert!(!c.prints("kiosk"));
        assert_eq!((c.name(), c.device().as_str()), ("p1", "printer-p1"));
    }

    fn several(list: Vec<PrinterConfig>) -> Result<(), (String, String)> {
        PrintersConfig::Several(list).check(None)
    }

    #[test]
    fn several_printers_refuse_a_kiosk_served_twice_and_a_duplicate_id() {
        assert_eq!(
            several(vec![
                PrinterConfig::serving("p1", &["kiosk-1"], nowhere()),
                PrinterConfig::serving("p2", &["kiosk-2", "desk"], nowhere()),
            ]),
            Ok(())
        );
        let (key, message) = several(vec![
            PrinterConfig::serving("p1", &["kiosk-1"], nowhere()),
            PrinterConfig::serving("p2", &["kiosk-2", "kiosk-1"], nowhere()),
        ])
        .unwrap_err();
        assert_eq!(key, "printer[1].serves");
        assert!(
            message.contains("\"kiosk-1\"") && message.contains("\"p1\""),
            "{message}"
        );
        let (key, message) = several(vec![
            PrinterConfig::serving("p1", &["kiosk-1"], nowhere()),
            PrinterConfig::serving("p1", &["kiosk-2"], nowhere()),
        ])
        .unwrap_err();
        assert_eq!(key, "printer[1].id", "{message}");
    }

    #[test]
    fn each_form_keeps_its_own_keys() {
        let mut no_id = PrinterConfig::serving("p1", &["kiosk-1"], nowhere());
        no_id.id = None;
        assert_eq!(several(vec![no_id]).unwrap_err().0, "printer[0].id");
        let bad_id = PrinterConfig::serving("p 1", &["kiosk-1"], nowhere());
        assert_eq!(several(vec![bad_id]).unwrap_err().0, "printer[0].id");
        let mut prefixes = PrinterConfig::serving("p1", &["kiosk-1"], nowhere());
        prefixes.channels = Some(vec!["kiosk".into()]);
        assert_eq!(
            several(vec![prefixes]).unwrap_err().0,
            "printer[0].channels"
        );
        let idle = PrinterConfig::serving("p1", &[], nowhere());
        assert_eq!(several(vec![idle]).unwrap_err().0, "printer[0].serves");
        let mut single = PrinterConfig::with_transport(nowhere());
        assert_eq!(PrintersConfig::Single(single.clone()).check(None), Ok(()));
        single.id = Some("p1".into());
        assert_eq!(
            PrintersConfig::Single(single.clone())
                .check(None)
                .unwrap_err()
                .0,
            "printer.id"
        );
        single.id = None;
        single.serves = vec!["kiosk-1".into()];
        assert_eq!(
            PrintersConfig::Single(single.clone())
                .check(None)
                .unwrap_err()
                .0,
            "printer.serves"
        );
        single.serves.clear();
        single.channels = Some(Vec::new());
        assert_eq!(
            PrintersConfig::Single(single).check(None).unwrap_err().0,
            "printer.channels"
        );
    }

    #[test]
    fn when_the_hall_declares_its_kiosks_a_printer_serves_only_those() {
        let list = PrintersConfig::Several(vec![PrinterConfig::serving(
            "p1",
            &["kiosk-1", "kiosk-9"],
            nowhere(),
        )]);
        let known = [
            "kiosk-1".to_string(),
            "kiosk-2".to_string(),
            "desk".to_string(),
        ];
        let (key, message) = list.check(Some(&known)).unwrap_err();
        assert_eq!(key, "printer[0].serves");
        assert!(message.contains("\"kiosk-9\""), "{message}");
        let ok = PrintersConfig::Several(vec![PrinterConfig::serving(
            "p1",
            &["kiosk-1", "desk"],
            nowhere(),
        )]);
        assert_eq!(ok.check(Some(&known)), Ok(()));
    }

    #[test]
    fn a_ticket_prints_where_it_was_taken_and_a_reprint_where_it_is_asked() {
        let devices = Devices::default();
        let several = Printers::start(
            &PrintersConfig::Several(vec![
                PrinterConfig::serving("p1", &["kiosk-1"], nowhere()),
                PrinterConfig::serving("p2", &["kiosk-2", "desk"], nowhere()),
            ]),
            &devices,
        )
        .unwrap();
        let name = |p: Option<&Printer>| p.map(|p| p.name().to_string());
        assert_eq!(name(several.for_ticket("kiosk-1")).as_deref(), Some("p1"));
        assert_eq!(name(several.for_ticket("kiosk-2")).as_deref(), Some("p2"));
        assert_eq!(name(several.for_ticket("desk")).as_deref(), Some("p2"));
        assert_eq!(name(several.for_ticket("kiosk-3")), None);
        assert_eq!(name(several.at("kiosk-2")).as_deref(), Some("p2"));
        assert_eq!(
            name(several.at("kiosk-3")),
            None,
            "a kiosk without a printer"
        );
        assert_eq!(
            name(several.for_reprint_of("wechat")).as_deref(),
            Some("p1")
        );
        assert_eq!(
            several.iter().map(Printer::device).collect::<Vec<_>>(),
            ["printer-p1", "printer-p2"]
        );
        // The single [printer] prints its channels, and serves any kiosk that asks.
        let single = Printers::start(
            &PrintersConfig::Single(PrinterConfig::with_transport(nowhere())),
            &devices,
        )
        .unwrap();
        assert!(single.for_ticket("kiosk-7").is_some());
        assert!(single.for_ticket("phone").is_none());
        assert_eq!(single.at("7").map(Printer::device), Some("printer"));
        assert!(Printers::default().at("kiosk-1").is_none());
    }
}
