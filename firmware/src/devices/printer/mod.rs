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

use hallq_hardware::layout::{PreparedTemplate, TemplateError};
use hallq_hardware::status::{PrinterStatus, query_status};
use hallq_hardware::transport::{Backoff, PrinterTransport, Reconnect};
use serde::Serialize;
use tokio::sync::oneshot;

use super::health::{Devices, Health};

mod config;
pub use config::{PrinterConfig, PrinterConfigError, PrintersConfig};

/// The device id the single `[printer]` reports its health under; a `[[printer]]` with
/// `id = "p1"` reports under `printer-p1`.
pub const DEVICE: &str = "printer";

/// How long a request waits to learn whether the printer took its job.
pub const ACCEPT_WAIT: Duration = Duration::from_millis(400);

/// Jobs waiting beyond this many are refused: a kiosk printing faster than the paper
/// moves has a jammed printer, not a queue.
const MAX_QUEUED: usize = 32;

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
mod tests;
