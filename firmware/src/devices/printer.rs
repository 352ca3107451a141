//! The ticket printer: one thread owns the transport, prints jobs in order, polls the
//! printer's status while idle (so paper-near-end is known before the roll runs out),
//! reconnects with backoff, and reports health to the [`Devices`] registry.
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

/// The device id printer health is reported under.
pub const DEVICE: &str = "printer";

/// How long a request waits to learn whether the printer took its job.
pub const ACCEPT_WAIT: Duration = Duration::from_millis(400);

/// Jobs waiting beyond this many are refused: a kiosk printing faster than the paper
/// moves has a jammed printer, not a queue.
const MAX_QUEUED: usize = 32;

/// The `[printer]` section of the configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrinterConfig {
    /// How the printer is attached.
    pub transport: TransportConfig,
    /// Roll width.
    #[serde(default = "default_paper")]
    pub paper: PaperWidth,
    /// What the ticket shows.
    #[serde(default)]
    pub ticket: TicketTemplate,
    /// Tickets print when their channel starts with one of these (`kiosk` covers
    /// `kiosk-2`); tickets taken by phone or at a window do not.
    #[serde(default = "default_channels")]
    pub channels: Vec<String>,
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

fn default_paper() -> PaperWidth {
    PaperWidth::Mm80
}
fn default_channels() -> Vec<String> {
    vec!["kiosk".into()]
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
    /// A printer config for `transport` with every other setting at its default.
    pub fn with_transport(transport: TransportConfig) -> PrinterConfig {
        PrinterConfig {
            transport,
            paper: default_paper(),
            ticket: TicketTemplate::default(),
            channels: default_channels(),
            status_poll_secs: default_poll(),
            timeout_ms: default_timeout(),
            max_job_age_secs: default_max_age(),
        }
    }

    /// Checks the template against the paper (logo width, field names, printable text).
    pub fn prepare(&self) -> Result<PreparedTemplate, TemplateError> {
        self.ticket.validate(self.paper)
    }

    /// Whether tickets from `channel` are printed.
    pub fn prints(&self, channel: &str) -> bool {
        self.channels
            .iter()
            .any(|c| channel.starts_with(c.as_str()))
    }
}

/// Why the printer could not be started.
#[derive(Debug, thiserror::Error)]
pub enum PrinterError {
    /// The ticket template does not fit the paper or the printer's character set.
    #[error("printer.ticket: {0}")]
    Template(#[from] TemplateError),
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
        let template = Arc::new(config.prepare()?);
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
        };
        let thread = std::thread::Builder::new()
            .name("printer".into())
            .spawn(move || owner.run())
            .map_err(PrinterError::Thread)?;
        Ok((
            Printer {
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

    /// The validated ticket template.
    pub fn template(&self) -> &PreparedTemplate {
        &self.template
    }

    /// Queues ESC/POS bytes; resolves once the printer took them (or could not), or
    /// after [`ACCEPT_WAIT`] with `Queued` when other jobs are ahead.
    pub async fn submit(&self, what: String, bytes: Vec<u8>, committed: Instant) -> PrintOutcome {
        if let Some(Health::Fault { code, .. }) = self.devices.get(DEVICE).map(|d| d.health)
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
                tracing::info!(printer = %io.describe(), "printer connected");
                self.io = Some(io);
                self.next_poll = Instant::now();
            }
            Err((e, delay)) => {
                self.next_attempt = Instant::now() + delay;
                self.devices.report_blocking(
                    DEVICE,
                    Health::fault("offline", format!("打印机未连接 / not connected: {e}")),
                );
            }
        }
    }

    fn lost(&mut self, why: String) {
        tracing::warn!(reason = %why, "printer connection lost");
        self.io = None;
        self.next_attempt = Instant::now();
        self.devices.report_blocking(
            DEVICE,
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
                self.devices.report_blocking(DEVICE, health.clone());
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
            tracing::warn!(job = %job.what, "print job too old, dropped");
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
            tracing::warn!(job = %job.what, code = health.code(), "not printed");
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
                tracing::debug!(job = %job.what, latency_us = us, "printed");
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
    }
}
